/* peer-debug.c: the PEER_DEBUG=messages log and the PEER_CAPTURE capture.
 *
 * Both are GDBus filters. Filters run in GDBus's worker thread (for
 * incoming and outgoing messages alike) and see every message once, in
 * order; they hand the message on untouched, so behaviour does not change.
 * The log goes straight to stderr rather than through g_log: the user
 * asked for it by name, and it must not depend on G_MESSAGES_DEBUG.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "peer-debug-private.h"

typedef enum {
  PEER_DEBUG_MESSAGES = 1 << 0,
} PeerDebugFlags;

typedef struct {
  PeerDebugFlags flags;
  GMutex lock;
  /* Written under @lock (records go whole, one at a time); read
   * atomically to skip the work when there is no capture. */
  FILE *capture;
} PeerDebug;

static gboolean
write_pcap_header (FILE *file)
{
  /* The classic pcap header, in our byte order (readers detect it from
   * the magic): version 2.4, UTC, the snap length, DLT_DBUS. */
  const guint32 magic = 0xa1b2c3d4;
  const guint16 version[2] = { 2, 4 };
  const gint32 thiszone = 0;
  const guint32 rest[3] = { 0, PEER_DEBUG_PCAP_SNAPLEN, PEER_DEBUG_PCAP_LINKTYPE };

  return fwrite (&magic, sizeof magic, 1, file) == 1 &&
         fwrite (version, sizeof version, 1, file) == 1 &&
         fwrite (&thiszone, sizeof thiszone, 1, file) == 1 &&
         fwrite (rest, sizeof rest, 1, file) == 1 &&
         fflush (file) == 0;
}

static PeerDebug *
peer_debug_get (void)
{
  static PeerDebug *debug = NULL;

  if (g_once_init_enter (&debug))
    {
      static const GDebugKey keys[] = {
        { "messages", PEER_DEBUG_MESSAGES },
      };
      PeerDebug *d = g_new0 (PeerDebug, 1);
      const char *capture = g_getenv ("PEER_CAPTURE");

      g_mutex_init (&d->lock);
      d->flags = g_parse_debug_string (g_getenv ("PEER_DEBUG"), keys, G_N_ELEMENTS (keys));
      if (capture != NULL && capture[0] != '\0')
        {
          d->capture = fopen (capture, "wbe");
          if (d->capture == NULL)
            g_debug ("libpeer: cannot open the capture file %s: %s", capture, g_strerror (errno));
          else if (!write_pcap_header (d->capture))
            {
              g_debug ("libpeer: cannot write the capture file %s: %s", capture, g_strerror (errno));
              fclose (d->capture);
              d->capture = NULL;
            }
        }
      /* Lives as long as the process: connections may be anywhere. */
      g_once_init_leave (&debug, d);
    }
  return debug;
}

static const char *
message_type_name (GDBusMessageType type)
{
  switch (type)
    {
    case G_DBUS_MESSAGE_TYPE_METHOD_CALL:
      return "call";
    case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
      return "return";
    case G_DBUS_MESSAGE_TYPE_ERROR:
      return "error";
    case G_DBUS_MESSAGE_TYPE_SIGNAL:
      return "signal";
    case G_DBUS_MESSAGE_TYPE_INVALID:
    default:
      return "invalid";
    }
}

char *
_peer_debug_describe_message (GDBusMessage *message,
                              gboolean      incoming)
{
  GString *line = g_string_new (NULL);
  GDBusMessageType type = g_dbus_message_get_message_type (message);
  GVariant *body = g_dbus_message_get_body (message);
  const char *path = g_dbus_message_get_path (message);
  const char *interface_name = g_dbus_message_get_interface (message);
  const char *member = g_dbus_message_get_member (message);
  const char *signature = g_dbus_message_get_signature (message);

  g_string_append_printf (line, "%s %s serial=%u", incoming ? "<" : ">",
                          message_type_name (type), g_dbus_message_get_serial (message));
  if (type == G_DBUS_MESSAGE_TYPE_METHOD_RETURN || type == G_DBUS_MESSAGE_TYPE_ERROR)
    g_string_append_printf (line, " reply_serial=%u", g_dbus_message_get_reply_serial (message));
  if (path != NULL)
    g_string_append_printf (line, " path=%s", path);
  if (member != NULL)
    g_string_append_printf (line, " member=%s%s%s", interface_name ? interface_name : "",
                            interface_name ? "." : "", member);
  if (type == G_DBUS_MESSAGE_TYPE_ERROR)
    g_string_append_printf (line, " error=%s", g_dbus_message_get_error_name (message));
  g_string_append_printf (line, " signature='%s' fds=%u", signature ? signature : "",
                          g_dbus_message_get_num_unix_fds (message));
  if (body != NULL)
    {
      g_autofree char *text = g_variant_print (body, FALSE);

      g_string_append (line, " body=");
      if (strlen (text) > PEER_DEBUG_MAX_BODY_CHARS)
        {
          /* Cut at a character boundary: bodies are UTF-8. */
          const char *end = g_utf8_find_prev_char (text, text + PEER_DEBUG_MAX_BODY_CHARS + 1);
          g_string_append_len (line, text, end - text);
          g_string_append (line, "…");
        }
      else
        g_string_append (line, text);
    }
  return g_string_free (line, FALSE);
}

static void
capture_message (PeerDebug    *debug,
                 GDBusMessage *message)
{
  g_autoptr(GError) error = NULL;
  g_autofree guchar *blob = NULL;
  gsize size = 0;
  gint64 now = g_get_real_time ();
  guint32 record[4];

  /* The bytes as they are on the wire (for a received message, as GDBus
   * serializes it again: the same fields in the same byte order). */
  blob = g_dbus_message_to_blob (message, &size, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
  if (blob == NULL)
    {
      g_debug ("libpeer: message not captured: %s", error->message);
      return;
    }
  record[0] = (guint32) (now / G_USEC_PER_SEC);
  record[1] = (guint32) (now % G_USEC_PER_SEC);
  record[2] = (guint32) MIN (size, (gsize) PEER_DEBUG_PCAP_SNAPLEN);
  record[3] = (guint32) MIN (size, (gsize) G_MAXUINT32);

  g_mutex_lock (&debug->lock);
  if (debug->capture != NULL &&
      (fwrite (record, sizeof record, 1, debug->capture) != 1 ||
       fwrite (blob, 1, record[2], debug->capture) != record[2] ||
       fflush (debug->capture) != 0))
    {
      g_debug ("libpeer: cannot write the capture; stopping it: %s", g_strerror (errno));
      fclose (debug->capture);
      g_atomic_pointer_set (&debug->capture, NULL);
    }
  g_mutex_unlock (&debug->lock);
}

/* Which peer a server-side connection is, for its log lines: set when the
 * peer is admitted, on the GDBusConnection, which lives at least as long
 * as any filter call or lane frame that reads it. */
#define PEER_DEBUG_LABEL_KEY "libpeer-debug-peer"

static void
log_message (GDBusConnection *connection,
             GDBusMessage    *message,
             gboolean         incoming,
             const char      *side)
{
  PeerDebug *debug = peer_debug_get ();

  if (debug->flags & PEER_DEBUG_MESSAGES)
    {
      g_autofree char *line = _peer_debug_describe_message (message, incoming);
      const char *peer = connection != NULL ? g_object_get_data (G_OBJECT (connection), PEER_DEBUG_LABEL_KEY) : NULL;

      /* One write per line, so lines from several threads do not mix. */
      fprintf (stderr, "libpeer[%d] %s%s%s %s\n", (int) getpid (), side, peer != NULL ? " " : "",
               peer != NULL ? peer : "", line);
    }
  if (g_atomic_pointer_get (&debug->capture) != NULL)
    capture_message (debug, message);
}

static GDBusMessage *
on_message (GDBusConnection *connection,
            GDBusMessage    *message,
            gboolean         incoming,
            gpointer         user_data)
{
  log_message (connection, message, incoming, user_data);
  return message;
}

gboolean
_peer_debug_lanes_watched (void)
{
  PeerDebug *debug = peer_debug_get ();

  return (debug->flags & PEER_DEBUG_MESSAGES) || g_atomic_pointer_get (&debug->capture) != NULL;
}

void
_peer_debug_lane_message (GDBusMessage *message,
                          gboolean      incoming,
                          const char   *side)
{
  log_message (NULL, message, incoming, side);
}

void
_peer_debug_peer_lane_message (GDBusMessage    *message,
                               gboolean         incoming,
                               const char      *side,
                               GDBusConnection *peer)
{
  log_message (peer, message, incoming, side);
}

void
_peer_debug_watch_connection (GDBusConnection *connection,
                              const char      *side)
{
  PeerDebug *debug = peer_debug_get ();
  gboolean capturing = g_atomic_pointer_get (&debug->capture) != NULL;

  /* @side is static and the filter holds nothing else, so it needs no
   * removal and no destroy notify. */
  if ((debug->flags & PEER_DEBUG_MESSAGES) || capturing)
    g_dbus_connection_add_filter (connection, on_message, (gpointer) side, NULL);
}

void
_peer_debug_watch_peer (GDBusConnection *connection,
                        const char      *unique_name,
                        pid_t            pid)
{
  PeerDebug *debug = peer_debug_get ();

  if (debug->flags & PEER_DEBUG_MESSAGES)
    g_object_set_data_full (G_OBJECT (connection), PEER_DEBUG_LABEL_KEY,
                            pid > 0 ? g_strdup_printf ("%s pid=%d", unique_name, (int) pid)
                                    : g_strdup_printf ("%s pid=?", unique_name),
                            g_free);
  _peer_debug_watch_connection (connection, "server");
}
