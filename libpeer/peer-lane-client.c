/* peer-lane-client.c: the client's end of a lane.
 *
 * A synchronous call writes its frame and reads the reply on the caller's
 * own thread: no worker thread, no main context. One call is on a lane at
 * a time (a mutex); a late reply to a call that timed out is recognised
 * by its serial and dropped. The frames themselves are peer-lane-frame.c's.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-blob-private.h"
#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-debug-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-lane-private.h"
#include "peer-router-private.h"

/* --- client ------------------------------------------------------------------ */

typedef struct {
  guint32 id;
  char *object_path;
  char *interface_name;
  char *member;
  LaneType in;
  LaneType out;
} LaneEntry;

static void
lane_entry_free (LaneEntry *e)
{
  _peer_lane_type_clear (&e->in);
  _peer_lane_type_clear (&e->out);
  g_free (e->object_path);
  g_free (e->interface_name);
  g_free (e->member);
  g_free (e);
}

struct _PeerLaneClient
{
  int fd;
  /* Looked up on every call: by member name first (a short string to
   * hash), then the few entries of that name compared by interface and
   * path. Read-only after creation. */
  GHashTable *by_member;        /* member → GPtrArray of LaneEntry*, borrowed */
  GPtrArray *by_id;             /* LaneEntry*, owned */
  const LaneEntry *last_found;  /* atomic: the last entry has_method() found */
  gint closed;                  /* atomic */

  gsize chunk_size;
  gsize max_chunked;            /* the server's limit on chunked bodies */
  PeerLaneBuffers *buffers;     /* chunked replies are assembled here */
  gboolean watched;             /* frames are logged or captured */

  GMutex lock;                  /* one call on the lane at a time */
  /* Protected by @lock */
  guint32 next_serial;
  guint8 *buffer;
  LaneSpin spin;                /* for the reply */
};

PeerLaneClient *
_peer_lane_client_new (GVariant     *open_reply,
                       GUnixFDList  *fd_list,
                       GError      **error)
{
  g_autoptr(PeerLaneClient) lane = g_new0 (PeerLaneClient, 1);
  g_autoptr(GVariantIter) iter = NULL;
  g_autoptr(GVariant) limits = NULL;
  guint32 max_chunked = 0;
  gint32 handle;
  guint32 id, flags;
  const char *path, *iface, *member, *in_sig, *out_sig;

  lane->fd = -1;
  g_mutex_init (&lane->lock);
  lane->by_member = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  lane->by_id = g_ptr_array_new_with_free_func ((GDestroyNotify) lane_entry_free);
  lane->buffer = g_malloc (PEER_LANE_BUFFER_SIZE);
  lane->buffers = _peer_lane_buffers_new ();

  g_variant_get (open_reply, "(ha(usssssu)@a{sv})", &handle, &iter, &limits);
  /* Absent: no chunks either way, blobs only. */
  g_variant_lookup (limits, "max-chunked-body", "u", &max_chunked);
  lane->max_chunked = max_chunked;
  if (fd_list == NULL || handle < 0 || handle >= g_unix_fd_list_get_length (fd_list))
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "The server sent no lane fd");
      return NULL;
    }
  lane->fd = g_unix_fd_list_get (fd_list, handle, error);
  if (lane->fd < 0)
    return NULL;
  lane->chunk_size = _peer_lane_chunk_size_for (lane->fd);
  lane->watched = _peer_debug_lanes_watched ();
  _peer_lane_spin_init (&lane->spin);

  while (g_variant_iter_next (iter, "(u&s&s&s&s&su)", &id, &path, &iface, &member, &in_sig, &out_sig, &flags))
    {
      LaneEntry *e;

      if (id != lane->by_id->len ||
          !g_variant_type_string_is_valid (in_sig) || !g_variant_type_string_is_valid (out_sig) ||
          !g_variant_type_is_tuple (G_VARIANT_TYPE (in_sig)) || !g_variant_type_is_tuple (G_VARIANT_TYPE (out_sig)))
        {
          g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "The server sent a bad lane table");
          return NULL;
        }
      GPtrArray *same_name;

      e = g_new0 (LaneEntry, 1);
      e->id = id;
      e->object_path = g_strdup (path);
      e->interface_name = g_strdup (iface);
      e->member = g_strdup (member);
      _peer_lane_type_init (&e->in, in_sig);
      _peer_lane_type_init (&e->out, out_sig);
      g_ptr_array_add (lane->by_id, e);
      same_name = g_hash_table_lookup (lane->by_member, member);
      if (same_name == NULL)
        {
          same_name = g_ptr_array_new ();
          g_hash_table_insert (lane->by_member, g_strdup (member), same_name);
        }
      g_ptr_array_add (same_name, e);
    }

  /* The default timeout costs no poll() per call: the socket waits by
   * itself. Calls with another timeout or a cancellable poll. */
  {
    struct timeval tv = { PEER_LANE_DEFAULT_TIMEOUT_MS / 1000, (PEER_LANE_DEFAULT_TIMEOUT_MS % 1000) * 1000 };
    setsockopt (lane->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  return g_steal_pointer (&lane);
}

void
_peer_lane_client_free (PeerLaneClient *lane)
{
  if (lane == NULL)
    return;
  if (lane->fd >= 0)
    close (lane->fd);
  g_hash_table_unref (lane->by_member);
  g_ptr_array_unref (lane->by_id);
  _peer_lane_buffers_unref (lane->buffers);
  g_free (lane->buffer);
  g_mutex_clear (&lane->lock);
  g_free (lane);
}

guint
_peer_lane_client_get_n_methods (PeerLaneClient *lane)
{
  return lane->by_id->len;
}

gboolean
_peer_lane_client_has_method (PeerLaneClient *lane,
                              const char     *object_path,
                              const char     *interface_name,
                              const char     *method_name,
                              guint32        *out_id)
{
  const LaneEntry *last;
  GPtrArray *same_name;

  if (interface_name == NULL || g_atomic_int_get (&lane->closed))
    return FALSE;
  /* A caller usually repeats its method: three short comparisons instead
   * of hashing the name. Compared by content, never by address. */
  last = g_atomic_pointer_get (&lane->last_found);
  if (last != NULL && strcmp (last->member, method_name) == 0 &&
      strcmp (last->interface_name, interface_name) == 0 && strcmp (last->object_path, object_path) == 0)
    {
      *out_id = last->id;
      return TRUE;
    }
  same_name = g_hash_table_lookup (lane->by_member, method_name);
  for (guint i = 0; same_name != NULL && i < same_name->len; i++)
    {
      const LaneEntry *e = g_ptr_array_index (same_name, i);

      if (strcmp (e->interface_name, interface_name) == 0 && strcmp (e->object_path, object_path) == 0)
        {
          g_atomic_pointer_set (&lane->last_found, e);
          *out_id = e->id;
          return TRUE;
        }
    }
  return FALSE;
}

void
_peer_lane_client_shutdown (PeerLaneClient *lane)
{
  if (g_atomic_int_compare_and_exchange (&lane->closed, FALSE, TRUE))
    shutdown (lane->fd, SHUT_RDWR);
}

int
_peer_lane_client_get_fd (PeerLaneClient *lane)
{
  return lane->fd;
}

gboolean
_peer_lane_client_is_closed (PeerLaneClient *lane)
{
  return g_atomic_int_get (&lane->closed);
}

/* Whether two types are the same, compared character by character: type
 * strings are prefix-free, so the walk ends at the first difference or at
 * the end of @known and never reads past the end of @other. Cheaper than
 * g_variant_type_equal(), which measures both strings first. */
static gboolean
type_string_equal (const char         *known,
                   gsize               length,
                   const GVariantType *other)
{
  const char *a = known;
  const char *b = g_variant_type_peek_string (other);

  for (gsize i = 0; i < length; i++)
    if (a[i] != b[i])
      return FALSE;
  return TRUE;
}

/* Waits until @fd is readable; FALSE with @error on timeout or cancel. */
static gboolean
wait_readable (int           fd,
               gint64        deadline,
               GCancellable *cancellable,
               GError      **error)
{
  GPollFD fds[2] = { { fd, G_IO_IN, 0 } };
  guint n = 1;

  if (g_cancellable_make_pollfd (cancellable, &fds[1]))
    n = 2;
  for (;;)
    {
      int timeout = -1, r;

      if (deadline >= 0)
        {
          gint64 left = deadline - g_get_monotonic_time ();
          timeout = left <= 0 ? 0 : (int) MIN ((left + 999) / 1000, G_MAXINT);
        }
      r = g_poll (fds, n, timeout);
      if (r < 0 && errno == EINTR)
        continue;
      if (n == 2)
        g_cancellable_release_fd (cancellable);
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (r == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timeout was reached");
          return FALSE;
        }
      return TRUE;
    }
}

GVariant *
_peer_lane_client_call (PeerLaneClient     *lane,
                        guint32             id,
                        GVariant           *parameters,
                        const GVariantType *reply_type,
                        int                 timeout_ms,
                        GUnixFDList        *fd_list,
                        GUnixFDList       **out_fd_list,
                        GCancellable       *cancellable,
                        GError            **error)
{
  const LaneEntry *e = g_ptr_array_index (lane->by_id, id);
  GVariant *params = parameters != NULL ? parameters : _peer_lane_unit_variant ();
  g_autoptr(GMutexLocker) locker = NULL;
  PeerLaneReadOptions read_options = {
    .max_fds = G_MAXUINT16,
    .max_body = lane->max_chunked,
    .skip_interleaved = TRUE,
    .buffers = lane->buffers,
  };
  gboolean write_ok;
  gint64 deadline;
  guint32 serial;

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  /* The checks GDBus makes, with its answers. */
  if (!_peer_lane_type_is_of (&e->in, params))
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                   "Type of message, '%s', does not match expected type '%s'",
                   g_variant_get_type_string (params), e->in.string);
      return NULL;
    }
  if (reply_type != NULL && !type_string_equal (e->out.string, e->out.length, reply_type) &&
      !g_variant_type_is_subtype_of (e->out.type, reply_type))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Method returns type '%s', but expected '%s'",
                   e->out.string, g_variant_type_peek_string (reply_type));
      return NULL;
    }

  /* -1: the default, which the socket's SO_RCVTIMEO enforces. */
  if (timeout_ms < 0 && cancellable == NULL)
    deadline = -2;
  else if (timeout_ms == G_MAXINT)
    deadline = -1;
  else
    deadline = g_get_monotonic_time () + (gint64) (timeout_ms < 0 ? PEER_LANE_DEFAULT_TIMEOUT_MS : timeout_ms) * 1000;

  locker = g_mutex_locker_new (&lane->lock);
  serial = ++lane->next_serial;
  {
    /* While the call is written, whatever arrives (only stale replies can)
     * is dropped: a server writing a long one waits for us to read. With
     * no deadline of the call's own, the write has the default timeout. */
    PeerLaneWriteOptions options = {
      PEER_LANE_WAIT_POLL, lane->chunk_size, lane->max_chunked,
      deadline >= 0 ? deadline : -1, cancellable, lane->buffer,
    };

    write_ok = _peer_lane_write_frame_full (lane->fd, PEER_LANE_KIND_CALL, serial, id, params, fd_list,
                                            &options, error);
  }
  if (!write_ok)
    {
      if (g_error_matches (*error, PEER_ERROR, PEER_ERROR_DISCONNECTED))
        _peer_lane_client_shutdown (lane);
      return NULL;
    }
  if (lane->watched)
    _peer_lane_debug_frame ("client lane", FALSE, PEER_LANE_KIND_CALL, serial, 0, e->object_path, e->interface_name,
                            e->member, params, fd_list);
  _peer_lane_spin_wait (&lane->spin, lane->fd);

  for (;;)
    {
      PeerLaneFrame frame;
      g_autoptr(GError) read_error = NULL;
      GVariant *reply;

      if (deadline != -2 && !wait_readable (lane->fd, deadline, cancellable, error))
        return NULL;
      read_options.nonblocking = deadline != -2;
      if (!_peer_lane_read_frame_full (lane->fd, lane->buffer, &read_options, &frame, &read_error))
        {
          if (g_error_matches (read_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            {
              if (deadline != -2)
                continue;               /* woken for nothing: wait again */
              g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timeout was reached");
              return NULL;
            }
          _peer_lane_client_shutdown (lane);
          if (read_error != NULL)
            g_set_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED, "Lane broken: %s", read_error->message);
          else
            g_set_error_literal (error, PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                 "The peer went away before replying");
          return NULL;
        }
      if (frame.header.target != serial || frame.header.kind == PEER_LANE_KIND_CALL ||
          frame.header.kind == PEER_LANE_KIND_CHUNK)
        {
          /* A reply to a call that timed out earlier (or the rest of one
           * dropped while this call was written), or noise: dropped with
           * its fds. */
          _peer_lane_frame_clear (&frame);
          continue;
        }

      if (frame.header.kind == PEER_LANE_KIND_ERROR)
        {
          g_autoptr(GVariant) body = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ss)"),
                                                                                 frame.body, FALSE));
          const char *name, *message;
          GError *remote;

          if (lane->watched)
            _peer_lane_debug_frame ("client lane", TRUE, PEER_LANE_KIND_ERROR, 0, serial, NULL, NULL, NULL, body,
                                    frame.fd_list);

          g_variant_get (body, "(&s&s)", &name, &message);
          if (!g_dbus_is_error_name (name))
            name = "org.libpeer.Error.Failed";
          remote = g_dbus_error_new_for_dbus_error (name, message);
          /* As on the GDBus path: mapped names lose GDBus's prefix. */
          if (!g_error_matches (remote, G_IO_ERROR, G_IO_ERROR_DBUS_ERROR))
            g_dbus_error_strip_remote_error (remote);
          g_propagate_error (error, remote);
          _peer_lane_frame_clear (&frame);
          return NULL;
        }

      reply = _peer_lane_type_read (&e->out, frame.body);
      if (reply == NULL)
        {
          _peer_lane_frame_clear (&frame);
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                               "The server's reply is not in normal form");
          return NULL;
        }
      if (lane->watched)
        _peer_lane_debug_frame ("client lane", TRUE, PEER_LANE_KIND_REPLY, 0, serial, NULL, NULL, NULL, reply,
                                frame.fd_list);
      if (out_fd_list != NULL)
        *out_fd_list = g_steal_pointer (&frame.fd_list);
      _peer_lane_frame_clear (&frame);
      return reply;
    }
}
