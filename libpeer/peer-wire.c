/* peer-wire.c: fd limits and blob-wrapped calls on top of plain D-Bus.
 *
 * Large byte arrays as sealed memfds, and why the wire looks like this:
 *
 * A method whose argument is `ay` must keep taking `ay` from gdbus,
 * dbus-send, busctl and python-dbus, so the method's signature cannot
 * change, and a message cannot be marked with a private header field (the
 * spec lets receivers drop unknown fields). Instead a libpeer client that
 * has a large `ay` argument to send asks once per connection whether the
 * server speaks libpeer (org.libpeer.Transport1.GetFeatures at
 * /org/libpeer/Transport; any other server answers UnknownMethod or
 * UnknownObject and is never asked again), and then sends the call wrapped:
 *
 *   org.libpeer.Transport1.BlobCall (s interface, s method, v args,
 *                                    a(uht) blobs)
 *
 * to the object the original call goes to. @args is the original argument
 * tuple in which every top-level `ay` of at least the threshold is an empty
 * array; @blobs names, for each, (argument index, fd handle, size), and the
 * blobs' fds are the last ones of the message, after the caller's own. The
 * server unwraps the message in GDBus's worker thread, before dispatch:
 * it verifies each memfd's seals and size, maps it, puts an `ay` backed by
 * the mapping (g_variant_new_from_bytes) back at its index, and hands GDBus
 * the original call, so introspection checks, handlers and PeerCall see
 * exactly what a plain call would have given them. The reply to a wrapped
 * call is wrapped the same way, (v reply, a(uht) blobs), because only the
 * client that sent the wrapped call knows to expect it.
 *
 * Plain calls are never wrapped: tools that know nothing of this see plain
 * D-Bus, and a small call costs nothing extra. The price of the rule is
 * that a large reply to a call with small arguments travels as plain `ay`;
 * an application that returns large results says so with an explicit `h`
 * and a PeerBlob. Only top-level arguments are considered: nested arrays
 * stay in the message.
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "peer-blob-private.h"
#include "peer-error.h"
#include "peer-server.h"
#include "peer-wire-private.h"

#define BLOB_CALL_TYPE   "(ssva(uht))"
#define BLOB_REPLY_TYPE  "(va(uht))"

/* Set on a call message the filter unwrapped: its reply must be wrapped. */
static GQuark
wrapped_call_quark (void)
{
  static gsize quark;

  if (g_once_init_enter (&quark))
    g_once_init_leave (&quark, g_quark_from_static_string ("peer-wire-wrapped-call"));
  return (GQuark) quark;
}

/* --- limits ------------------------------------------------------------- */

struct _PeerWireLimits
{
  gatomicrefcount ref_count;
  guint max_fds;                        /* atomic */
  gsize blob_threshold;                 /* atomic (pointer-sized) */
  guint max_message_size;               /* atomic */
  guint max_in_flight;                  /* atomic */
  gint in_flight;                       /* atomic: PeerCalls alive */
  gsize max_queued;                     /* atomic (pointer-sized) */
  gssize queued;                        /* atomic (pointer-sized): messages to write */
  gssize reserved;                      /* atomic (pointer-sized): calls read, not yet answered */
  gint reservations;                    /* atomic: calls whose reply is not yet written */
  gint overflowed;                      /* atomic: the queue passed max_queued */
  gsize max_mapped;                     /* atomic (pointer-sized) */
  gssize mapped;                        /* atomic (pointer-sized): blob bytes mapped for the peer */
};

PeerWireLimits *
_peer_wire_limits_new (void)
{
  PeerWireLimits *limits = g_new0 (PeerWireLimits, 1);

  g_atomic_ref_count_init (&limits->ref_count);
  limits->max_fds = PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE;
  limits->blob_threshold = PEER_BLOB_DEFAULT_THRESHOLD;
  limits->max_message_size = PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE;
  limits->max_in_flight = PEER_SERVER_DEFAULT_MAX_CALLS_IN_FLIGHT;
  limits->max_queued = PEER_SERVER_DEFAULT_MAX_QUEUED_BYTES;
  limits->max_mapped = PEER_SERVER_DEFAULT_MAX_MAPPED_BYTES;
  return limits;
}

PeerWireLimits *
_peer_wire_limits_ref (PeerWireLimits *limits)
{
  g_atomic_ref_count_inc (&limits->ref_count);
  return limits;
}

void
_peer_wire_limits_unref (PeerWireLimits *limits)
{
  if (limits != NULL && g_atomic_ref_count_dec (&limits->ref_count))
    g_free (limits);
}

void
_peer_wire_limits_set_max_fds (PeerWireLimits *limits,
                               guint           max_fds)
{
  g_atomic_int_set (&limits->max_fds, max_fds);
}

guint
_peer_wire_limits_get_max_fds (PeerWireLimits *limits)
{
  return (guint) g_atomic_int_get (&limits->max_fds);
}

void
_peer_wire_limits_set_blob_threshold (PeerWireLimits *limits,
                                      gsize           threshold)
{
  g_atomic_pointer_set (&limits->blob_threshold, threshold);
}

gsize
_peer_wire_limits_get_blob_threshold (PeerWireLimits *limits)
{
  return (gsize) g_atomic_pointer_get (&limits->blob_threshold);
}

void
_peer_wire_limits_set_max_message_size (PeerWireLimits *limits,
                                        guint           max_size)
{
  g_atomic_int_set (&limits->max_message_size, max_size);
}

guint
_peer_wire_limits_get_max_message_size (PeerWireLimits *limits)
{
  return (guint) g_atomic_int_get (&limits->max_message_size);
}

void
_peer_wire_limits_set_max_in_flight (PeerWireLimits *limits,
                                     guint           max_calls)
{
  g_atomic_int_set (&limits->max_in_flight, max_calls);
}

gboolean
_peer_wire_limits_begin_call (PeerWireLimits *limits)
{
  guint max_calls = (guint) g_atomic_int_get (&limits->max_in_flight);

  if ((guint) g_atomic_int_add (&limits->in_flight, 1) >= max_calls)
    {
      g_atomic_int_add (&limits->in_flight, -1);
      return FALSE;
    }
  return TRUE;
}

gboolean
_peer_wire_limits_check_body_size (PeerWireLimits *limits,
                                   const char     *what,
                                   gsize           size,
                                   GError        **error)
{
  guint max_size = _peer_wire_limits_get_max_message_size (limits);

  if (size <= max_size)
    return TRUE;
  g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
               "The %s's body of %" G_GSIZE_FORMAT " bytes is over the limit of %u", what, size, max_size);
  return FALSE;
}

gboolean
_peer_wire_limits_check_n_fds (PeerWireLimits *limits,
                               guint           n_fds,
                               GError        **error)
{
  guint max_fds = _peer_wire_limits_get_max_fds (limits);

  if (n_fds <= max_fds)
    return TRUE;
  g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
               "%u file descriptors in one message, more than %u", n_fds, max_fds);
  return FALSE;
}

gboolean
_peer_wire_limits_check_begin_call (PeerWireLimits *limits,
                                    GError        **error)
{
  if (_peer_wire_limits_begin_call (limits))
    return TRUE;
  g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED, "More than %u calls in progress",
               _peer_wire_limits_get_max_in_flight (limits));
  return FALSE;
}

char *
_peer_wire_error_name (const GError *error)
{
  /* Registers PEER_ERROR's names before the lookup. */
  (void) PEER_ERROR;
  return g_dbus_error_encode_gerror (error);
}

void
_peer_wire_limits_end_call (PeerWireLimits *limits)
{
  g_atomic_int_add (&limits->in_flight, -1);
}

guint
_peer_wire_limits_get_in_flight (PeerWireLimits *limits)
{
  return (guint) g_atomic_int_get (&limits->in_flight);
}

guint
_peer_wire_limits_get_max_in_flight (PeerWireLimits *limits)
{
  return (guint) g_atomic_int_get (&limits->max_in_flight);
}

/* --- blobs mapped for the peer -------------------------------------------
 *
 * A blob's pages are the sender's (a sealed memfd it wrote: see
 * peer-blob.c for why holes are refused), but the mapping is the
 * server's: address space and page tables, and what a handler may copy.
 * Every blob that arrives from a peer counts against the peer's limit for
 * as long as any value made from its bytes lives. */

typedef struct {
  PeerWireLimits *limits;               /* owned */
  PeerBlob *blob;                       /* owned */
  gsize size;
} MappedBlob;

static void
mapped_blob_free (gpointer data)
{
  MappedBlob *mapped = data;

  g_atomic_pointer_add (&mapped->limits->mapped, -(gssize) mapped->size);
  peer_blob_unref (mapped->blob);
  _peer_wire_limits_unref (mapped->limits);
  g_free (mapped);
}

void
_peer_wire_limits_set_max_mapped (PeerWireLimits *limits,
                                  gsize           max_bytes)
{
  g_atomic_pointer_set (&limits->max_mapped, max_bytes);
}

GBytes *
_peer_wire_limits_take_blob_bytes (PeerWireLimits *limits,
                                   PeerBlob       *blob,
                                   GError        **error)
{
  gsize max_mapped = (gsize) g_atomic_pointer_get (&limits->max_mapped);
  gsize size;
  gconstpointer data = peer_blob_get_data (blob, &size);
  gssize before = g_atomic_pointer_add (&limits->mapped, (gssize) size);
  MappedBlob *mapped;

  if (MAX (before, 0) + size > max_mapped)
    {
      g_atomic_pointer_add (&limits->mapped, -(gssize) size);
      g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                   "A blob of %" G_GSIZE_FORMAT " bytes would pass the limit of %" G_GSIZE_FORMAT
                   " bytes mapped for one peer at once (%" G_GSSIZE_FORMAT " are)",
                   size, max_mapped, MAX (before, 0));
      return NULL;
    }
  mapped = g_new0 (MappedBlob, 1);
  mapped->limits = _peer_wire_limits_ref (limits);
  mapped->blob = peer_blob_ref (blob);
  mapped->size = size;
  return g_bytes_new_with_free_func (data, size, mapped_blob_free, mapped);
}

/* --- the outgoing queue ---------------------------------------------------
 *
 * GDBus 2.74 queues outgoing messages without bound and tells nobody when
 * one has been written, so a peer that stops reading makes the server
 * hold every reply and signal meant for it. libpeer counts, per
 * connection, the bytes it hands GDBus and takes them off again when GDBus
 * lets go of the message: a GDBusMessage's last reference is the one
 * GDBus's writer holds until the message is on the socket (or dropped with
 * a closed connection), and a qdata destroy notify on it runs right then,
 * in the writer's thread. This counts exactly what sits in GDBus's queue,
 * without a flush, a poll or a thread per peer.
 *
 * The same quota covers what the peer sends: GDBus reads every message as
 * it comes and queues it for dispatch without bound. Each incoming message
 * is counted from the filter (the first to see it) until GDBus and the
 * handler let go of it, the same way. And GDBus answers some calls on its
 * own (Introspect, Properties, Peer, errors for unknown methods and wrong
 * argument types), replies that never pass through libpeer: for those each
 * call that expects a reply also reserves PEER_WIRE_REPLY_RESERVATION
 * bytes, given back when the outgoing filter sees a reply go out. A peer
 * that floods calls without reading fills its quota, whoever answers.
 *
 * What is read and what is to be written are counted apart so that a
 * large reply to a large call fits: a message to write always fits when
 * no other message waits to be written (one reply may be as large as a
 * message may be), and a message read always fits when nothing at all is
 * held for the peer. Past that, both together stay within the limit.
 *
 * The cost of a message is an estimate made without serializing it: its
 * body, its header fields, and GDBus's own bookkeeping for a queued
 * message (PEER_WIRE_MESSAGE_OVERHEAD). */

typedef struct {
  PeerWireLimits *limits;               /* owned */
  gsize cost;
  gboolean incoming;                    /* counted in reserved, not queued */
} QueuedMessage;

static GQuark
queued_message_quark (void)
{
  static gsize quark;

  if (g_once_init_enter (&quark))
    g_once_init_leave (&quark, g_quark_from_static_string ("peer-wire-queued"));
  return (GQuark) quark;
}

gsize
_peer_wire_message_cost (GDBusMessage *message)
{
  GVariant *body = g_dbus_message_get_body (message);
  const char *path = g_dbus_message_get_path (message);
  gsize cost = PEER_WIRE_MESSAGE_OVERHEAD;

  /* Every other header field is a name or a signature, which D-Bus caps
   * at 255 bytes: the flat overhead stands for them (a message with the
   * longest names holds about 1.3 KiB more than counted), where asking
   * for each, a hash lookup apiece, cost over a thousand instructions per
   * message. The path has no cap, so it is counted. */
  if (path != NULL)
    cost += strlen (path) + 8;
  if (body != NULL)
    cost += g_variant_get_size (body);
  return cost;
}

/* Adds @cost to what is to be written. Returns FALSE once the limit is
 * passed: the caller closes the connection. */
gboolean
_peer_wire_limits_charge_queued (PeerWireLimits *limits,
                                 gsize           cost)
{
  gsize max_queued = (gsize) g_atomic_pointer_get (&limits->max_queued);
  gssize reserved = (gssize) g_atomic_pointer_get (&limits->reserved);
  gssize before = g_atomic_pointer_add (&limits->queued, (gssize) cost);

  if (before > 0 && (gsize) MAX (before + reserved, 0) + cost > max_queued)
    {
      g_atomic_int_set (&limits->overflowed, TRUE);
      return FALSE;
    }
  return TRUE;
}

void
_peer_wire_limits_credit_queued (PeerWireLimits *limits,
                                 gsize           cost)
{
  g_atomic_pointer_add (&limits->queued, -(gssize) cost);
}

/* Adds @cost to what was read and is not yet done with. */
static gboolean
charge_reserved (PeerWireLimits *limits,
                 gsize           cost)
{
  gsize max_queued = (gsize) g_atomic_pointer_get (&limits->max_queued);
  gssize queued = (gssize) g_atomic_pointer_get (&limits->queued);
  gssize before = g_atomic_pointer_add (&limits->reserved, (gssize) cost);
  gssize held = MAX (before + queued, 0);

  if (held > 0 && (gsize) held + cost > max_queued)
    {
      g_atomic_int_set (&limits->overflowed, TRUE);
      return FALSE;
    }
  return TRUE;
}

static void
credit_reserved (PeerWireLimits *limits,
                 gsize           cost)
{
  g_atomic_pointer_add (&limits->reserved, -(gssize) cost);
}

gboolean
_peer_wire_limits_reserve (PeerWireLimits *limits,
                           gsize           bytes,
                           const char     *what,
                           GError        **error)
{
  gsize max_queued = (gsize) g_atomic_pointer_get (&limits->max_queued);
  gssize queued = (gssize) g_atomic_pointer_get (&limits->queued);
  gssize before = g_atomic_pointer_add (&limits->reserved, (gssize) bytes);
  gsize held = (gsize) MAX (before + queued, 0);

  /* Refused, not overflowed: nothing was sent that the peer did not read. */
  if (held + bytes > max_queued)
    {
      g_atomic_pointer_add (&limits->reserved, -(gssize) bytes);
      g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                   "%s of %" G_GSIZE_FORMAT " bytes would pass the %" G_GSIZE_FORMAT
                   " bytes the server may hold for one peer (%" G_GSIZE_FORMAT " are held)",
                   what, bytes, max_queued, held);
      return FALSE;
    }
  return TRUE;
}

void
_peer_wire_limits_release (PeerWireLimits *limits,
                           gsize           bytes)
{
  credit_reserved (limits, bytes);
}

gsize
_peer_wire_limits_get_queued (PeerWireLimits *limits)
{
  gssize held = (gssize) g_atomic_pointer_get (&limits->queued) +
                (gssize) g_atomic_pointer_get (&limits->reserved);

  return held > 0 ? (gsize) held : 0;
}

void
_peer_wire_limits_set_max_queued (PeerWireLimits *limits,
                                  gsize           max_bytes)
{
  g_atomic_pointer_set (&limits->max_queued, max_bytes);
}

gsize
_peer_wire_limits_get_max_queued (PeerWireLimits *limits)
{
  return (gsize) g_atomic_pointer_get (&limits->max_queued);
}

gboolean
_peer_wire_limits_has_overflowed (PeerWireLimits *limits)
{
  return g_atomic_int_get (&limits->overflowed);
}

static void
queued_message_written (gpointer data)
{
  QueuedMessage *queued = data;

  if (queued->incoming)
    credit_reserved (queued->limits, queued->cost);
  else
    _peer_wire_limits_credit_queued (queued->limits, queued->cost);
  _peer_wire_limits_unref (queued->limits);
  g_free (queued);
}

gboolean
_peer_wire_send (GDBusConnection *connection,
                 PeerWireLimits  *limits,
                 GDBusMessage    *message)
{
  return _peer_wire_send_full (connection, limits, message, G_DBUS_SEND_MESSAGE_FLAGS_NONE);
}

void
_peer_wire_move_accounting (GDBusMessage *from,
                            GDBusMessage *to)
{
  gpointer queued = g_object_steal_qdata (G_OBJECT (from), queued_message_quark ());

  if (queued != NULL)
    g_object_set_qdata_full (G_OBJECT (to), queued_message_quark (), queued, queued_message_written);
}

gboolean
_peer_wire_send_full (GDBusConnection       *connection,
                      PeerWireLimits        *limits,
                      GDBusMessage          *message,
                      GDBusSendMessageFlags  flags)
{
  QueuedMessage *queued = g_new0 (QueuedMessage, 1);
  gboolean fits;

  queued->limits = _peer_wire_limits_ref (limits);
  queued->cost = _peer_wire_message_cost (message);
  fits = _peer_wire_limits_charge_queued (limits, queued->cost);
  /* Credited when GDBus drops the message: written, or never queued. */
  g_object_set_qdata_full (G_OBJECT (message), queued_message_quark (), queued, queued_message_written);
  if (!fits)
    {
      g_debug ("libpeer: a peer does not read: more than %" G_GSIZE_FORMAT
               " bytes queued for it; closing", _peer_wire_limits_get_max_queued (limits));
      g_dbus_connection_close (connection, NULL, NULL, NULL);
      return FALSE;
    }
  /* Fails only when the connection is closed, which its closed handler
   * reports on its own. */
  return g_dbus_connection_send_message (connection, message, flags, NULL, NULL);
}

/* --- blobs in and out of an argument tuple ------------------------------- */

static gboolean
is_large_byte_array (GVariant *child,
                     gsize     threshold)
{
  return threshold > 0 &&
         g_variant_is_of_type (child, G_VARIANT_TYPE_BYTESTRING) &&
         g_variant_get_size (child) >= threshold;
}

/* Every top-level `ay` of @tuple of at least @threshold bytes becomes an
 * empty array in *out_args and a blob whose fd is appended to @fd_list.
 * Bytes that arrived as a blob leave as the same memfd: no copy. */
static gboolean
extract_blobs (GVariant     *tuple,
               gsize         threshold,
               GUnixFDList  *fd_list,
               GVariant    **out_args,
               GVariant    **out_blobs,
               GError      **error)
{
  g_auto(GVariantBuilder) args = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_TUPLE);
  g_auto(GVariantBuilder) blobs = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("a(uht)"));
  gsize n = tuple != NULL ? g_variant_n_children (tuple) : 0;

  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (tuple, i);
      g_autoptr(PeerBlob) blob = NULL;
      gconstpointer data;
      gsize size;
      gint32 handle;

      if (!is_large_byte_array (child, threshold) || i > G_MAXUINT32)
        {
          g_variant_builder_add_value (&args, child);
          continue;
        }
      data = g_variant_get_data (child);
      size = g_variant_get_size (child);
      blob = _peer_blob_lookup_mapping (data, size);
      if (blob == NULL)
        blob = peer_blob_new_from_data (data, size, error);
      if (blob == NULL)
        return FALSE;
      handle = peer_blob_append_to_fd_list (blob, fd_list, error);
      if (handle < 0)
        return FALSE;
      g_variant_builder_add (&blobs, "(uht)", (guint32) i, handle, (guint64) size);
      g_variant_builder_add_value (&args, g_variant_new_array (G_VARIANT_TYPE_BYTE, NULL, 0));
    }
  *out_args = g_variant_ref_sink (g_variant_builder_end (&args));
  *out_blobs = g_variant_ref_sink (g_variant_builder_end (&blobs));
  return TRUE;
}

static void
close_fds (int  *fds,
           gint  n_fds)
{
  for (gint i = 0; i < n_fds; i++)
    if (fds[i] >= 0)
      close (fds[i]);
}

/* Reverses extract_blobs() on what came off the wire, trusting nothing:
 * each index must name an empty `ay` argument, once; each handle one of
 * the last fds of @fd_list, once; each memfd must be sealed and of the
 * announced size. Takes every fd out of @fd_list: the caller's own (the
 * first ones) come back in *out_user_fds, the blobs' end up mapped, and on
 * failure all are closed. */
static GVariant *
insert_blobs (GVariant        *args,
              GVariant        *blobs,
              GUnixFDList     *fd_list,
              PeerWireLimits  *limits,
              GUnixFDList    **out_user_fds,
              GError         **error)
{
  gint n_fds = fd_list != NULL ? g_unix_fd_list_get_length (fd_list) : 0;
  gsize n_blobs = g_variant_n_children (blobs);
  gsize n_args = g_variant_n_children (args);
  g_autofree int *fds = NULL;
  g_autofree GVariant **children = NULL;
  g_autofree gboolean *replaced = NULL;
  GVariant *result = NULL;
  gint n_user;

  *out_user_fds = NULL;
  if (n_fds > 0)
    fds = g_unix_fd_list_steal_fds (fd_list, NULL);
  if (n_blobs > (gsize) n_fds)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "%" G_GSIZE_FORMAT " blobs announced but only %d fds sent", n_blobs, n_fds);
      close_fds (fds, n_fds);
      return NULL;
    }
  n_user = n_fds - (gint) n_blobs;

  children = g_new0 (GVariant *, n_args + 1);
  replaced = g_new0 (gboolean, n_args + 1);
  for (gsize i = 0; i < n_args; i++)
    children[i] = g_variant_get_child_value (args, i);

  for (gsize i = 0; i < n_blobs; i++)
    {
      g_autoptr(PeerBlob) blob = NULL;
      g_autoptr(GBytes) bytes = NULL;
      guint32 index;
      gint32 handle;
      guint64 size;

      g_variant_get_child (blobs, i, "(uht)", &index, &handle, &size);
      if (index >= n_args || replaced[index] ||
          !g_variant_is_of_type (children[index], G_VARIANT_TYPE_BYTESTRING) ||
          g_variant_get_size (children[index]) != 0)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Blob %" G_GSIZE_FORMAT " names argument %u, which is not an empty byte array",
                       i, index);
          goto fail;
        }
      if (handle < n_user || handle >= n_fds || fds[handle] < 0)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Blob %" G_GSIZE_FORMAT " names fd %d, which is not one of the message's "
                       "last %" G_GSIZE_FORMAT " or is used twice", i, handle, n_blobs);
          goto fail;
        }
      if (size > G_MAXSSIZE)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Blob %" G_GSIZE_FORMAT " is too large", i);
          goto fail;
        }
      blob = peer_blob_new_take_fd (fds[handle], (gssize) size, error);
      fds[handle] = -1;
      if (blob == NULL)
        goto fail;
      /* A server counts what a peer had it map (NULL: a client). */
      bytes = limits != NULL ? _peer_wire_limits_take_blob_bytes (limits, blob, error)
                             : peer_blob_get_bytes (blob);
      if (bytes == NULL)
        goto fail;
      g_variant_unref (children[index]);
      children[index] = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_BYTESTRING,
                                                                      bytes, TRUE));
      replaced[index] = TRUE;
    }

  result = g_variant_ref_sink (g_variant_new_tuple (children, n_args));
  if (n_user > 0)
    *out_user_fds = g_unix_fd_list_new_from_array (fds, n_user);
  n_fds = 0;

fail:
  close_fds (fds, n_fds);
  for (gsize i = 0; i < n_args; i++)
    g_variant_unref (children[i]);
  return result;
}

/* --- the server's filter ------------------------------------------------ */

/* Drops @message (transfer full), closing every fd it carries, and answers
 * a call that expects a reply with @error. Runs in the worker thread:
 * sending only queues the reply. */
static GDBusMessage *
refuse_message (GDBusConnection *connection,
                PeerWireLimits  *limits,
                GDBusMessage    *message,
                const GError    *error)
{
  GUnixFDList *fd_list = g_dbus_message_get_unix_fd_list (message);

  g_debug ("libpeer: refusing a message: %s", error->message);
  if (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > 0)
    {
      gint n_fds;
      g_autofree int *fds = g_unix_fd_list_steal_fds (fd_list, &n_fds);
      close_fds (fds, n_fds);
    }

  if (g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL &&
      !(g_dbus_message_get_flags (message) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED))
    {
      g_autofree char *name = g_dbus_error_encode_gerror (error);
      g_autoptr(GDBusMessage) reply = g_dbus_message_new_method_error_literal (message, name,
                                                                                error->message);

      _peer_wire_send (connection, limits, reply);
    }
  g_object_unref (message);
  return NULL;
}

GDBusMessage *
_peer_wire_unwrap_blob_call (GDBusMessage    *message,
                             PeerWireLimits  *limits,
                             GError         **error)
{
  GVariant *body = g_dbus_message_get_body (message);
  g_autoptr(GVariant) boxed = NULL;
  g_autoptr(GVariant) args = NULL;
  g_autoptr(GVariant) blobs = NULL;
  g_autoptr(GVariant) unwrapped = NULL;
  g_autoptr(GUnixFDList) user_fds = NULL;
  GDBusMessage *call;
  const char *interface_name, *method_name;

  if (body == NULL || !g_variant_is_of_type (body, G_VARIANT_TYPE (BLOB_CALL_TYPE)))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "%s takes %s, not %s",
                   PEER_WIRE_BLOB_CALL_METHOD, BLOB_CALL_TYPE,
                   body != NULL ? g_variant_get_type_string (body) : "()");
      return NULL;
    }
  g_variant_get (body, "(&s&s@v@a(uht))", &interface_name, &method_name, &boxed, &blobs);
  args = g_variant_get_variant (boxed);
  if (!g_dbus_is_interface_name (interface_name) || !g_dbus_is_member_name (method_name) ||
      g_str_equal (interface_name, PEER_WIRE_INTERFACE) ||
      !g_variant_is_of_type (args, G_VARIANT_TYPE_TUPLE))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "%s cannot stand for %s.%s with arguments of type %s", PEER_WIRE_BLOB_CALL_METHOD,
                   interface_name, method_name, g_variant_get_type_string (args));
      return NULL;
    }

  unwrapped = insert_blobs (args, blobs, g_dbus_message_get_unix_fd_list (message), limits, &user_fds, error);
  if (unwrapped == NULL)
    return NULL;

  /* The same call, as if it had come plain: same serial (the reply goes to
   * it), flags, sender and destination. */
  call = g_dbus_message_new_method_call (g_dbus_message_get_destination (message),
                                         g_dbus_message_get_path (message),
                                         interface_name, method_name);
  g_dbus_message_set_serial (call, g_dbus_message_get_serial (message));
  g_dbus_message_set_flags (call, g_dbus_message_get_flags (message));
  if (g_dbus_message_get_sender (message) != NULL)
    g_dbus_message_set_sender (call, g_dbus_message_get_sender (message));
  g_dbus_message_set_body (call, unwrapped);
  if (user_fds != NULL)
    g_dbus_message_set_unix_fd_list (call, user_fds);
  g_object_set_qdata (G_OBJECT (call), wrapped_call_quark (), GINT_TO_POINTER (TRUE));
  return call;
}

static GDBusMessage *
unwrap_blob_call (GDBusConnection *connection,
                  PeerWireLimits  *limits,
                  GDBusMessage    *message)
{
  g_autoptr(GError) error = NULL;
  GDBusMessage *call = _peer_wire_unwrap_blob_call (message, limits, &error);

  if (call == NULL)
    return refuse_message (connection, limits, message, error);
  /* The call stands for the message, and is counted in its place. */
  _peer_wire_move_accounting (message, call);
  g_object_unref (message);
  return call;
}

GDBusMessage *
_peer_wire_server_filter (GDBusConnection *connection,
                          GDBusMessage    *message,
                          gboolean         incoming,
                          gpointer         user_data)
{
  PeerWireLimits *limits = user_data;
  GUnixFDList *fd_list;
  GVariant *body;
  GError *size_error = NULL;
  gint n_fds;

  if (!incoming)
    {
      GDBusMessageType type = g_dbus_message_get_message_type (message);

      /* A reply is being written: its call's reservation is given back
       * (see "the outgoing queue"). */
      if (type == G_DBUS_MESSAGE_TYPE_METHOD_RETURN || type == G_DBUS_MESSAGE_TYPE_ERROR)
        {
          gint n = g_atomic_int_get (&limits->reservations);

          while (n > 0 && !g_atomic_int_compare_and_exchange (&limits->reservations, n, n - 1))
            n = g_atomic_int_get (&limits->reservations);
          if (n > 0)
            credit_reserved (limits, PEER_WIRE_REPLY_RESERVATION);
        }
      return message;
    }

  /* GDBus has read the whole message by now (it allocates what the header
   * announces, up to 128 MiB, as address space that becomes memory only
   * as bytes arrive); what can still be refused is handing it on. A
   * message over the size limit is answered, not held: counting it first
   * would make a large call cost the peer its connection instead of an
   * error. Its refusal gives back a reply reservation, so it takes one. */
  body = g_dbus_message_get_body (message);
  if (body != NULL && !_peer_wire_limits_check_body_size (limits, "message", g_variant_get_size (body), &size_error))
    {
      g_autoptr(GError) error = g_steal_pointer (&size_error);

      if (g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL &&
          !(g_dbus_message_get_flags (message) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED))
        {
          g_atomic_int_inc (&limits->reservations);
          g_atomic_pointer_add (&limits->reserved, (gssize) PEER_WIRE_REPLY_RESERVATION);
        }
      return refuse_message (connection, limits, message, error);
    }

  {
    QueuedMessage *held = g_new0 (QueuedMessage, 1);
    gboolean fits;

    held->limits = _peer_wire_limits_ref (limits);
    held->cost = _peer_wire_message_cost (message);
    held->incoming = TRUE;
    fits = charge_reserved (limits, held->cost);
    g_object_set_qdata_full (G_OBJECT (message), queued_message_quark (), held, queued_message_written);
    if (fits && g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL &&
        !(g_dbus_message_get_flags (message) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED))
      {
        g_atomic_int_inc (&limits->reservations);
        fits = charge_reserved (limits, PEER_WIRE_REPLY_RESERVATION);
      }
    if (!fits)
      {
        g_debug ("libpeer: a peer sends more than it reads: over %" G_GSIZE_FORMAT
                 " bytes held for it; closing", _peer_wire_limits_get_max_queued (limits));
        g_dbus_connection_close (connection, NULL, NULL, NULL);
        g_object_unref (message);
        return NULL;
      }
  }

  fd_list = g_dbus_message_get_unix_fd_list (message);
  n_fds = fd_list != NULL ? g_unix_fd_list_get_length (fd_list) : 0;
  if (n_fds > 0)
    {
      g_autoptr(GError) error = NULL;

      if (!(g_dbus_connection_get_capabilities (connection) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING))
        error = g_error_new_literal (PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                                     "File descriptors were sent without negotiating fd passing");
      else
        _peer_wire_limits_check_n_fds (limits, n_fds, &error);
      if (error != NULL)
        return refuse_message (connection, limits, message, error);
    }

  if (g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL &&
      g_strcmp0 (g_dbus_message_get_interface (message), PEER_WIRE_INTERFACE) == 0 &&
      g_strcmp0 (g_dbus_message_get_member (message), PEER_WIRE_BLOB_CALL_METHOD) == 0)
    return unwrap_blob_call (connection, limits, message);
  return message;
}

/* --- replies to wrapped calls -------------------------------------------- */

gboolean
_peer_wire_message_is_wrapped (GDBusMessage *message)
{
  return g_object_get_qdata (G_OBJECT (message), wrapped_call_quark ()) != NULL;
}

GVariantType *
_peer_wire_method_reply_type (const GDBusMethodInfo *info)
{
  g_autoptr(GString) sig = g_string_new ("(");

  for (guint i = 0; info->out_args != NULL && info->out_args[i] != NULL; i++)
    g_string_append (sig, info->out_args[i]->signature);
  g_string_append_c (sig, ')');
  return g_variant_type_new (sig->str);
}

static GDBusMessage *
build_wrapped_reply (GDBusMessage *request,
                     GVariant     *value,
                     GUnixFDList  *fd_list,
                     gboolean      can_pass_fds,
                     gsize         threshold,
                     GError      **error)
{
  g_autoptr(GUnixFDList) out_fds = g_unix_fd_list_new ();
  g_autoptr(GVariant) args = NULL;
  g_autoptr(GVariant) blobs = NULL;
  g_autoptr(GDBusMessage) reply = NULL;

  /* Our own copies: the caller keeps @fd_list and its fds. */
  for (gint i = 0; fd_list != NULL && i < g_unix_fd_list_get_length (fd_list); i++)
    if (g_unix_fd_list_append (out_fds, g_unix_fd_list_peek_fds (fd_list, NULL)[i], error) < 0)
      return NULL;
  if (!extract_blobs (value, can_pass_fds ? threshold : 0, out_fds, &args, &blobs, error))
    return NULL;

  reply = g_dbus_message_new_method_reply (request);
  g_dbus_message_set_body (reply, g_variant_new ("(v@a(uht))", args, blobs));
  if (g_unix_fd_list_get_length (out_fds) > 0)
    g_dbus_message_set_unix_fd_list (reply, out_fds);
  return g_steal_pointer (&reply);
}

/* An error reply to @request through the counted queue. */
static void
send_error_reply (GDBusConnection *connection,
                  PeerWireLimits  *limits,
                  GDBusMessage    *request,
                  const char      *error_name,
                  const char      *message)
{
  g_autoptr(GDBusMessage) reply = g_dbus_message_new_method_error_literal (request, error_name, message);

  _peer_wire_send (connection, limits, reply);
}

/* The blob threshold of a wrapped reply that would not fit otherwise. */
#define REPLY_FIT_THRESHOLD (64 * 1024)

void
_peer_wire_return_wrapped (GDBusMethodInvocation *invocation,
                           PeerWireLimits        *limits,
                           GVariant              *value,
                           GUnixFDList           *fd_list)
{
  g_autoptr(GDBusMethodInvocation) owned = invocation;
  GDBusMessage *request = g_dbus_method_invocation_get_message (invocation);
  GDBusConnection *connection = g_dbus_method_invocation_get_connection (invocation);
  const GDBusMethodInfo *info = g_dbus_method_invocation_get_method_info (invocation);
  g_autoptr(GVariant) unit = NULL;
  g_autoptr(GDBusMessage) reply = NULL;
  g_autoptr(GError) error = NULL;
  gboolean can_pass_fds;
  gsize threshold;
  GVariant *body;

  if (g_dbus_message_get_flags (request) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED)
    return;
  if (value == NULL)
    value = unit = g_variant_ref_sink (g_variant_new_tuple (NULL, 0));

  /* The plain path checks this; the wrapped one must too. */
  if (info != NULL)
    {
      g_autoptr(GVariantType) expected = _peer_wire_method_reply_type (info);

      if (!g_variant_is_of_type (value, expected))
        {
          g_critical ("libpeer: %s.%s replied with type '%s' instead of '%.*s'",
                      g_dbus_method_invocation_get_interface_name (invocation), info->name,
                      g_variant_get_type_string (value),
                      (int) g_variant_type_get_string_length (expected),
                      g_variant_type_peek_string (expected));
          send_error_reply (connection, limits, request, "org.libpeer.Error.Failed",
                            "The handler replied with the wrong type");
          return;
        }
    }

  can_pass_fds = g_dbus_connection_get_capabilities (connection) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING;
  threshold = _peer_wire_limits_get_blob_threshold (limits);
  reply = build_wrapped_reply (request, value, fd_list, can_pass_fds, threshold, &error);
  body = reply != NULL ? g_dbus_message_get_body (reply) : NULL;
  /* Over the limit the client's messages meet, the reply's large `ay`
   * values go as blobs whatever their size, as the client does with its
   * call (see threshold_to_fit() in peer-client-calls.c). */
  if (body != NULL && g_variant_get_size (body) > _peer_wire_limits_get_max_message_size (limits) &&
      threshold > REPLY_FIT_THRESHOLD)
    {
      g_clear_object (&reply);
      reply = build_wrapped_reply (request, value, fd_list, can_pass_fds, REPLY_FIT_THRESHOLD, &error);
      body = reply != NULL ? g_dbus_message_get_body (reply) : NULL;
    }
  if (body != NULL && !_peer_wire_limits_check_body_size (limits, "reply", g_variant_get_size (body), &error))
    g_clear_object (&reply);
  if (reply == NULL)
    {
      g_autofree char *name = NULL;

      g_debug ("libpeer: cannot send a wrapped reply: %s", error->message);
      (void) PEER_ERROR;
      name = g_dbus_error_encode_gerror (error);
      send_error_reply (connection, limits, request, name, error->message);
      return;
    }
  _peer_wire_send (connection, limits, reply);
}

/* --- the client's side --------------------------------------------------- */

gboolean
_peer_wire_wants_blob_call (const char *interface_name,
                            GVariant   *parameters,
                            gsize       threshold)
{
  gsize n;

  if (interface_name == NULL || parameters == NULL || threshold == 0)
    return FALSE;
  /* No member is larger than the whole: most calls stop here, without
   * taking each member out. */
  if (g_variant_get_size (parameters) < threshold)
    return FALSE;
  n = g_variant_n_children (parameters);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GVariant) child = g_variant_get_child_value (parameters, i);

      if (is_large_byte_array (child, threshold))
        return TRUE;
    }
  return FALSE;
}

gboolean
_peer_wire_features_have_blob_call (GVariant *reply)
{
  g_autoptr(GVariant) features = NULL;
  gboolean blob_call = FALSE;

  if (reply == NULL || !g_variant_is_of_type (reply, G_VARIANT_TYPE ("(a{sv})")))
    return FALSE;
  features = g_variant_get_child_value (reply, 0);
  g_variant_lookup (features, "blob-call", "b", &blob_call);
  return blob_call;
}

void
_peer_wire_features_get_limits (GVariant *reply,
                                guint32  *max_message_size,
                                guint32  *max_fds)
{
  g_autoptr(GVariant) features = NULL;

  *max_message_size = G_MAXUINT32;
  *max_fds = G_MAXUINT32;
  if (reply == NULL || !g_variant_is_of_type (reply, G_VARIANT_TYPE ("(a{sv})")))
    return;
  features = g_variant_get_child_value (reply, 0);
  g_variant_lookup (features, "max-message-size", "u", max_message_size);
  g_variant_lookup (features, "max-fds-per-message", "u", max_fds);
}

GDBusMessage *
_peer_wire_new_blob_call (const char  *object_path,
                          const char  *interface_name,
                          const char  *method_name,
                          GVariant    *parameters,
                          GUnixFDList *fd_list,
                          gsize        threshold,
                          GError     **error)
{
  g_autoptr(GUnixFDList) out_fds = g_unix_fd_list_new ();
  g_autoptr(GVariant) args = NULL;
  g_autoptr(GVariant) blobs = NULL;
  GDBusMessage *message;

  /* The caller's fds first, so its `h` values stay valid; ours copies. */
  for (gint i = 0; fd_list != NULL && i < g_unix_fd_list_get_length (fd_list); i++)
    if (g_unix_fd_list_append (out_fds, g_unix_fd_list_peek_fds (fd_list, NULL)[i], error) < 0)
      return NULL;
  if (!extract_blobs (parameters, threshold, out_fds, &args, &blobs, error))
    return NULL;

  message = g_dbus_message_new_method_call (NULL, object_path, PEER_WIRE_INTERFACE, PEER_WIRE_BLOB_CALL_METHOD);
  g_dbus_message_set_body (message, g_variant_new ("(ssv@a(uht))", interface_name, method_name,
                                                   args, blobs));
  g_dbus_message_set_unix_fd_list (message, out_fds);
  return message;
}

GVariant *
_peer_wire_finish_blob_call (GDBusMessage        *reply,
                             const GVariantType  *reply_type,
                             GUnixFDList        **out_fd_list,
                             GError             **error)
{
  GVariant *body;
  g_autoptr(GVariant) boxed = NULL;
  g_autoptr(GVariant) args = NULL;
  g_autoptr(GVariant) blobs = NULL;
  g_autoptr(GVariant) result = NULL;
  g_autoptr(GUnixFDList) user_fds = NULL;

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  if (g_dbus_message_to_gerror (reply, error))
    return NULL;

  body = g_dbus_message_get_body (reply);
  if (body == NULL || !g_variant_is_of_type (body, G_VARIANT_TYPE (BLOB_REPLY_TYPE)))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "The reply to a blob call has type %s, not %s",
                   body != NULL ? g_variant_get_type_string (body) : "()", BLOB_REPLY_TYPE);
      return NULL;
    }
  g_variant_get (body, "(@v@a(uht))", &boxed, &blobs);
  args = g_variant_get_variant (boxed);
  if (!g_variant_is_of_type (args, G_VARIANT_TYPE_TUPLE))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "The reply to a blob call holds %s, not a tuple", g_variant_get_type_string (args));
      return NULL;
    }
  result = insert_blobs (args, blobs, g_dbus_message_get_unix_fd_list (reply), NULL, &user_fds, error);
  if (result == NULL)
    return NULL;
  if (reply_type != NULL && !g_variant_is_of_type (result, reply_type))
    {
      g_autofree char *expected = g_variant_type_dup_string (reply_type);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Method returned type '%s', but expected '%s'",
                   g_variant_get_type_string (result), expected);
      return NULL;
    }
  if (out_fd_list != NULL)
    *out_fd_list = g_steal_pointer (&user_fds);
  return g_steal_pointer (&result);
}
