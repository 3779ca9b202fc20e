/* peer-lane-client.c: the client's end of a lane.
 *
 * Calls are pipelined: each gets a serial and waits in a table for the
 * reply that names it, whatever the order replies come in. One thread at
 * a time reads the socket (it holds "the reader's part") and hands each
 * reply to its call. A synchronous call reads on its own thread when no
 * one else is reading (so a lone caller's call is a write and a read, no
 * thread hop, as before pipelining), and otherwise waits to be handed its
 * reply.
 *
 * Asynchronous calls end in their callers' main contexts, and are read
 * for there by a source in each context: that machinery (the sources,
 * their timed waits, the corking of calls made while one returns ends,
 * and signals' deliveries) is peer-lane-client-source.c's, and the lane,
 * its table, its calls by name, its synchronous calls and the reading
 * and writing of frames are this file's. What both need (the lane's
 * structure, its calls' and its sources') is in
 * peer-lane-client-private.h. Once signals come on the lane, the reader
 * thread here reads it always.
 *
 * A reply to a call that timed out or was cancelled finds no one in the
 * table and is dropped with its fds. The frames themselves are
 * peer-lane-frame.c's.
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
#include "peer-lane-client-private.h"
#include "peer-router-private.h"

/* --- client ------------------------------------------------------------------ */

static void
lane_entry_clear (LaneEntry *e)
{
  _peer_lane_type_clear (&e->in);
  _peer_lane_type_clear (&e->out);
  g_free (e->object_path);
  g_free (e->interface_name);
  g_free (e->member);
}

static void
lane_entry_free (LaneEntry *e)
{
  lane_entry_clear (e);
  g_free (e);
}

PeerLaneClient *
_peer_lane_client_ref (PeerLaneClient *lane)
{
  g_atomic_ref_count_inc (&lane->ref_count);
  return lane;
}

/* The last reference: everything else (the sources, the reader thread)
 * is gone already (_peer_lane_client_free()). */
void
_peer_lane_client_unref (PeerLaneClient *lane)
{
  if (!g_atomic_ref_count_dec (&lane->ref_count))
    return;
  if (lane->fd >= 0)
    close (lane->fd);
  g_clear_pointer (&lane->pending, g_hash_table_unref);
  g_ptr_array_unref (lane->sources);
  g_array_unref (lane->corked);
  g_ptr_array_unref (lane->corked_entries);
  g_cond_clear (&lane->cond);
  g_mutex_clear (&lane->write_lock);
  g_hash_table_unref (lane->by_member);
  g_ptr_array_unref (lane->by_id);
  if (lane->by_name.in.type != NULL)
    lane_entry_clear (&lane->by_name);
  _peer_lane_buffers_unref (lane->buffers);
  g_free (lane->buffer);
  g_mutex_clear (&lane->lock);
  g_free (lane);
}

/* @lock held. GLib's broadcast is a futex syscall even with no waiter;
 * most wake-ups (each call, each frame read) have none. */
void
_peer_lane_client_wake_locked (PeerLaneClient *lane)
{
  if (lane->n_waiting > 0)
    g_cond_broadcast (&lane->cond);
}

/* @lock held. Until @deadline (monotonic; -1: none); FALSE when it passed. */
static gboolean
lane_wait_locked (PeerLaneClient *lane,
                  gint64          deadline)
{
  gboolean woken = TRUE;

  lane->n_waiting++;
  if (deadline < 0)
    g_cond_wait (&lane->cond, &lane->lock);
  else
    woken = g_cond_wait_until (&lane->cond, &lane->lock, deadline);
  lane->n_waiting--;
  return woken;
}

/* @lock held: the reader's part is free again. Synchronous callers and
 * the sources that found it taken try again. */
void
_peer_lane_client_release_reader_locked (PeerLaneClient *lane)
{
  lane->reader_active = FALSE;
  _peer_lane_client_wake_locked (lane);
  for (guint i = 0; lane->n_blocked > 0 && i < lane->sources->len; i++)
    {
      LaneSource *source = g_ptr_array_index (lane->sources, i);

      if (source->blocked)
        {
          source->blocked = FALSE;
          lane->n_blocked--;
          _peer_lane_client_source_wake_locked (source);
        }
    }
}

PeerLaneClient *
_peer_lane_client_new (GVariant     *open_reply,
                       GUnixFDList  *fd_list,
                       GError      **error)
{
  g_autoptr(PeerLaneClient) lane = g_new0 (PeerLaneClient, 1);
  g_autoptr(GVariantIter) iter = NULL;
  g_autoptr(GVariant) limits = NULL;
  guint32 max_chunked = 0;
  gboolean calls_by_name = FALSE;
  gint32 handle;
  guint32 id, flags;
  const char *path, *iface, *member, *in_sig, *out_sig;

  g_atomic_ref_count_init (&lane->ref_count);
  lane->fd = -1;
  g_mutex_init (&lane->lock);
  g_mutex_init (&lane->write_lock);
  g_cond_init (&lane->cond);
  lane->pending = g_hash_table_new (NULL, NULL);
  lane->sources = g_ptr_array_new ();
  lane->corked = g_array_new (FALSE, FALSE, sizeof (PeerLaneOutFrame));
  lane->corked_entries = g_ptr_array_new ();
  lane->by_member = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  lane->by_id = g_ptr_array_new_with_free_func ((GDestroyNotify) lane_entry_free);
  lane->buffer = g_malloc (PEER_LANE_BUFFER_SIZE);
  lane->buffers = _peer_lane_buffers_new ();

  g_variant_get (open_reply, "(ha(usssssu)@a{sv})", &handle, &iter, &limits);
  /* Absent: no chunks either way, blobs only. */
  g_variant_lookup (limits, "max-chunked-body", "u", &max_chunked);
  lane->max_chunked = max_chunked;
  /* Absent: a frame a datagram, both ways. */
  g_variant_lookup (limits, "batched-frames", "b", &lane->batches);
  g_variant_lookup (limits, "calls-by-name", "b", &calls_by_name);
  lane->calls_by_name = calls_by_name;
  lane->call_flags = calls_by_name ? PEER_LANE_FLAG_REDIRECTABLE : 0;
  lane->by_name.id = PEER_LANE_TARGET_BY_NAME;
  lane->by_name.object_path = g_strdup ("/");
  lane->by_name.interface_name = g_strdup ("");
  lane->by_name.member = g_strdup ("");
  _peer_lane_type_init (&lane->by_name.in, "(sssv)");
  _peer_lane_type_init (&lane->by_name.out, "v");
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
   * itself. Calls with another timeout or a cancellable poll. A write
   * that may wait (asynchronous calls, and calls while others are in
   * flight) waits no longer than a call would for its reply. */
  {
    struct timeval tv = { PEER_LANE_DEFAULT_TIMEOUT_MS / 1000, (PEER_LANE_DEFAULT_TIMEOUT_MS % 1000) * 1000 };
    setsockopt (lane->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt (lane->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  /* An empty batch tells the server this end reads batches too. Its
   * failure is the lane's, which the first call finds. */
  if (lane->batches)
    {
      PeerLaneHeader hello = { 0, 0, PEER_LANE_KIND_BATCH, 0, 0, 0 };

      if (send (lane->fd, &hello, sizeof hello, MSG_NOSIGNAL | MSG_DONTWAIT) != sizeof hello)
        g_debug ("libpeer: lane: could not offer batches: %s", g_strerror (errno));
    }
  return g_steal_pointer (&lane);
}

/* Its owner lets go of it: the PeerClient's finalize, on any thread but
 * the reader thread. No call is in flight (each holds what holds us),
 * so the sources have nothing queued but deliveries, which go to their
 * contexts on their own. A source still dispatching (the last call's end
 * may let the client go) holds the lane until it is done. */
void
_peer_lane_client_free (PeerLaneClient *lane)
{
  g_autoptr(GPtrArray) sources = NULL;

  if (lane == NULL)
    return;
  if (lane->reader_thread != NULL)
    {
      g_mutex_lock (&lane->lock);
      lane->stopping = TRUE;
      _peer_lane_client_wake_locked (lane);
      g_mutex_unlock (&lane->lock);
      shutdown (lane->fd, SHUT_RDWR);
      g_thread_join (lane->reader_thread);
    }
  g_mutex_lock (&lane->lock);
  sources = g_steal_pointer (&lane->sources);
  lane->sources = g_ptr_array_new ();
  lane->last_source = NULL;
  g_mutex_unlock (&lane->lock);
  for (guint i = 0; i < sources->len; i++)
    {
      LaneSource *source = g_ptr_array_index (sources, i);
      g_autoptr(GMainContext) context = NULL;
      GQueue deliveries = G_QUEUE_INIT;
      LaneWaiter *w;

      g_source_destroy (&source->source);
      g_mutex_lock (&lane->lock);
      deliveries = source->done;
      g_queue_init (&source->done);
      context = g_steal_pointer (&source->context);
      g_mutex_unlock (&lane->lock);
      while ((w = g_queue_pop_head (&deliveries)) != NULL)
        {
          GSource *idle = g_idle_source_new ();

          g_assert (w->deliver != NULL);
          g_source_set_priority (idle, G_PRIORITY_DEFAULT);
          g_source_set_callback (idle, w->deliver, w->user_data, w->destroy);
          g_source_set_static_name (idle, "[libpeer] lane signal");
          g_source_attach (idle, context);
          g_source_unref (idle);
          w->destroy = NULL;
          _peer_lane_client_waiter_free (w);
        }
      g_source_unref (&source->source);
    }
  _peer_lane_client_unref (lane);
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
      return !g_atomic_int_get (&last->stale);
    }
  same_name = g_hash_table_lookup (lane->by_member, method_name);
  for (guint i = 0; same_name != NULL && i < same_name->len; i++)
    {
      const LaneEntry *e = g_ptr_array_index (same_name, i);

      if (strcmp (e->interface_name, interface_name) == 0 && strcmp (e->object_path, object_path) == 0)
        {
          g_atomic_pointer_set (&lane->last_found, e);
          *out_id = e->id;
          /* Unexported since: called by name from now on. */
          return !g_atomic_int_get (&e->stale);
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

void
_peer_lane_client_get_method_names (PeerLaneClient  *lane,
                                    guint32          id,
                                    const char     **out_path,
                                    const char     **out_interface,
                                    const char     **out_member)
{
  const LaneEntry *e = g_ptr_array_index (lane->by_id, id);

  *out_path = e->object_path;
  *out_interface = e->interface_name;
  *out_member = e->member;
}

G_DEFINE_QUARK (peer-lane-error-quark, _peer_lane_error)

gboolean
_peer_lane_client_serves_by_name (PeerLaneClient *lane,
                                  const char     *interface_name)
{
  return lane->calls_by_name && interface_name != NULL && !g_atomic_int_get (&lane->closed) &&
         _peer_lane_serves_interface (interface_name);
}

/* (transfer full) the body of a call by name. */
static GVariant *
by_name_body (const char *object_path,
              const char *interface_name,
              const char *method_name,
              GVariant   *parameters)
{
  GVariant *children[4] = {
    g_variant_new_string (object_path),
    g_variant_new_string (interface_name),
    g_variant_new_string (method_name),
    g_variant_new_variant (parameters != NULL ? parameters : _peer_lane_unit_variant ()),
  };

  /* Not g_variant_new ("(sssv)"): GLib parses a format string each time. */
  return g_variant_ref_sink (g_variant_new_tuple (children, G_N_ELEMENTS (children)));
}

GVariant *
_peer_lane_client_call_by_name (PeerLaneClient  *lane,
                                const char      *object_path,
                                const char      *interface_name,
                                const char      *method_name,
                                GVariant        *parameters,
                                int              timeout_ms,
                                GUnixFDList     *fd_list,
                                GUnixFDList    **out_fd_list,
                                GCancellable    *cancellable,
                                GError         **error)
{
  g_autoptr(GVariant) body = by_name_body (object_path, interface_name, method_name, parameters);

  return _peer_lane_client_call (lane, PEER_LANE_TARGET_BY_NAME, body, NULL, timeout_ms, fd_list, out_fd_list,
                                 cancellable, error);
}

void
_peer_lane_client_call_by_name_async (PeerLaneClient     *lane,
                                      const char         *object_path,
                                      const char         *interface_name,
                                      const char         *method_name,
                                      GVariant           *parameters,
                                      int                 timeout_ms,
                                      GUnixFDList        *fd_list,
                                      GCancellable       *cancellable,
                                      GMainContext       *context,
                                      PeerLaneReplyFunc   func,
                                      gpointer            user_data,
                                      GDestroyNotify      destroy)
{
  g_autoptr(GVariant) body = by_name_body (object_path, interface_name, method_name, parameters);

  _peer_lane_client_call_async (lane, PEER_LANE_TARGET_BY_NAME, body, NULL, timeout_ms, fd_list, cancellable,
                                context, func, user_data, destroy);
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

/* The checks GDBus makes before a call leaves, with its answers. */
gboolean
_peer_lane_client_check_call_types (const LaneEntry    *e,
                                    GVariant           *params,
                                    const GVariantType *reply_type,
                                    GError            **error)
{
  if (!_peer_lane_type_is_of (&e->in, params))
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                   "Type of message, '%s', does not match expected type '%s'",
                   g_variant_get_type_string (params), e->in.string);
      return FALSE;
    }
  if (reply_type != NULL && !type_string_equal (e->out.string, e->out.length, reply_type) &&
      !g_variant_type_is_subtype_of (e->out.type, reply_type))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Method returns type '%s', but expected '%s'",
                   e->out.string, g_variant_type_peek_string (reply_type));
      return FALSE;
    }
  return TRUE;
}

/* The same for a serialized call's types. */
static gboolean
check_serialized_types (const LaneEntry    *e,
                        const GVariantType *parameters_type,
                        const GVariantType *reply_type,
                        GError            **error)
{
  if (!(g_variant_type_get_string_length (parameters_type) == e->in.length &&
        type_string_equal (e->in.string, e->in.length, parameters_type)))
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                   "Type of message, '%.*s', does not match expected type '%s'",
                   (int) g_variant_type_get_string_length (parameters_type),
                   g_variant_type_peek_string (parameters_type), e->in.string);
      return FALSE;
    }
  if (!(g_variant_type_get_string_length (reply_type) == e->out.length &&
        type_string_equal (e->out.string, e->out.length, reply_type)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Method returns type '%s', but expected '%.*s'",
                   e->out.string, (int) g_variant_type_get_string_length (reply_type),
                   g_variant_type_peek_string (reply_type));
      return FALSE;
    }
  return TRUE;
}

/* --- completing calls -------------------------------------------------------- */

void
_peer_lane_client_waiter_free (LaneWaiter *w)
{
  g_clear_pointer (&w->reply, g_variant_unref);
  g_clear_object (&w->fd_list);
  g_clear_error (&w->error);
  g_clear_object (&w->cancellable);
  if (w->destroy != NULL)
    w->destroy (w->user_data);
  g_free (w);
}

/* Called with @lock held, for a waiter just taken out of @pending (which
 * happens once): records its end and wakes, or queues for, its caller.
 * An asynchronous call's end always goes through its context's source:
 * its callback never runs inside peer_client_call() or a lock of ours. */
void
_peer_lane_client_waiter_finish_locked (PeerLaneClient *lane,
                                        LaneWaiter     *w,
                                        GVariant       *reply,
                                        GUnixFDList    *fd_list,
                                        GError         *error)
{
  w->reply = reply;
  w->fd_list = fd_list;
  w->error = error;
  w->done = TRUE;
  if (!w->is_async)
    {
      _peer_lane_client_wake_locked (lane);
      return;
    }
  if (w->link.data != NULL)
    {
      g_queue_unlink (&w->source->timed, &w->link);
      w->link.data = NULL;
    }
  if (!w->setting_up)
    {
      g_atomic_int_add (&w->source->n_async, -1);
      _peer_lane_client_source_push_locked (w->source, w);
    }
}

/* Takes @serial's waiter out of the table and ends it with @error (which
 * it takes), if it is still there; @lock held. */
gboolean
_peer_lane_client_end_call_locked (PeerLaneClient *lane,
                                   LaneWaiter     *w,
                                   GError         *error)
{
  if (w->done || g_hash_table_lookup (lane->pending, GUINT_TO_POINTER (w->serial)) != w)
    {
      g_error_free (error);
      return FALSE;
    }
  g_hash_table_remove (lane->pending, GUINT_TO_POINTER (w->serial));
  _peer_lane_client_waiter_finish_locked (lane, w, NULL, NULL, error);
  return TRUE;
}

/* The lane is gone: every call in flight ends with @reason. */
static void
lane_fail_all (PeerLaneClient *lane,
               const GError   *reason)
{
  GHashTableIter iter;
  gpointer value;

  _peer_lane_client_shutdown (lane);
  g_mutex_lock (&lane->lock);
  g_hash_table_iter_init (&iter, lane->pending);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      g_hash_table_iter_steal (&iter);
      _peer_lane_client_waiter_finish_locked (lane, value, NULL, NULL, g_error_copy (reason));
    }
  _peer_lane_client_wake_locked (lane);
  g_mutex_unlock (&lane->lock);
}

/* --- reading ----------------------------------------------------------------- */

/* Turns a reply or error frame into what its caller gets. */
static void
lane_frame_result (PeerLaneClient   *lane,
                   const LaneEntry  *e,
                   PeerLaneFrame    *frame,
                   GVariant        **out_reply,
                   GUnixFDList     **out_fd_list,
                   GError          **out_error)
{
  guint32 serial = frame->header.target;

  if (frame->header.kind == PEER_LANE_KIND_REDIRECT)
    {
      /* Nothing of the call ran. A table entry's interface is no longer
       * exported where the table said: its calls go by name from now on. */
      if (e != &lane->by_name)
        g_atomic_int_set (&((LaneEntry *) e)->stale, TRUE);
      g_set_error_literal (out_error, PEER_LANE_ERROR, PEER_LANE_ERROR_NOT_SERVED,
                           "The lane does not serve this call");
      return;
    }
  if (frame->header.kind == PEER_LANE_KIND_ERROR)
    {
      g_autoptr(GVariant) body = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ss)"),
                                                                             frame->body, FALSE));
      const char *name, *message;
      GError *remote;

      /* Checked like a reply: GLib would read a malformed (ss) as two
       * empty strings and the caller get an error nobody sent. */
      if (!g_variant_is_normal_form (body))
        {
          g_set_error_literal (out_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                               "The server's error reply is not in normal form");
          return;
        }
      if (lane->watched)
        _peer_lane_debug_frame ("client lane", TRUE, PEER_LANE_KIND_ERROR, 0, serial, NULL, NULL, NULL, body,
                                frame->fd_list);
      g_variant_get (body, "(&s&s)", &name, &message);
      if (!g_dbus_is_error_name (name))
        name = "org.libpeer.Error.Failed";
      remote = g_dbus_error_new_for_dbus_error (name, message);
      /* As on the GDBus path: mapped names lose GDBus's prefix. */
      if (!g_error_matches (remote, G_IO_ERROR, G_IO_ERROR_DBUS_ERROR))
        g_dbus_error_strip_remote_error (remote);
      *out_error = remote;
      return;
    }

  GVariant *reply = _peer_lane_type_read (&e->out, frame->body);

  if (reply != NULL && e == &lane->by_name)
    {
      /* By name: the reply tuple, in a variant. */
      GVariant *tuple = g_variant_get_variant (reply);

      g_variant_unref (reply);
      reply = tuple;
      if (!g_variant_is_of_type (reply, G_VARIANT_TYPE_TUPLE))
        g_clear_pointer (&reply, g_variant_unref);
    }
  if (reply == NULL)
    {
      g_set_error_literal (out_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "The server's reply is not in normal form");
      return;
    }
  if (lane->watched)
    _peer_lane_debug_frame ("client lane", TRUE, PEER_LANE_KIND_REPLY, 0, serial, NULL, NULL, NULL, reply,
                            frame->fd_list);
  *out_reply = reply;
  *out_fd_list = g_steal_pointer (&frame->fd_list);
}

/* A reply frame to a serialized call: its body, checked where it lies. */
static void
lane_frame_body (PeerLaneClient   *lane,
                 const LaneEntry  *e,
                 PeerLaneFrame    *frame,
                 GBytes          **out_body,
                 GUnixFDList     **out_fd_list,
                 GError          **out_error)
{
  if (!_peer_lane_type_check (&e->out, frame->body))
    {
      g_set_error_literal (out_error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                           "The server's reply is not in normal form");
      return;
    }
  if (lane->watched)
    {
      g_autoptr(GVariant) reply = g_variant_ref_sink (g_variant_new_from_bytes (e->out.type, frame->body, TRUE));

      _peer_lane_debug_frame ("client lane", TRUE, PEER_LANE_KIND_REPLY, 0, frame->header.target, NULL, NULL,
                              NULL, reply, frame->fd_list);
    }
  *out_body = g_bytes_ref (frame->body);
  *out_fd_list = g_steal_pointer (&frame->fd_list);
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

/* With the reader's part held: a signal frame to whoever takes them. Its
 * deliveries are queued behind the replies read before it. */
static void
lane_handle_signal (PeerLaneClient *lane,
                    PeerLaneFrame  *frame)
{
  g_autoptr(GVariant) body = NULL;
  g_autoptr(GVariant) args = NULL;
  const char *path, *iface, *member;

  if (lane->signal_func == NULL)
    return;
  body = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(sssv)"), frame->body, FALSE));
  if (!g_variant_is_normal_form (body))
    return;
  g_variant_get (body, "(&s&s&s@v)", &path, &iface, &member, &args);
  {
    g_autoptr(GVariant) tuple = g_variant_get_variant (args);

    if (!g_variant_is_object_path (path) || !g_dbus_is_interface_name (iface) || !g_dbus_is_member_name (member) ||
        !g_variant_is_of_type (tuple, G_VARIANT_TYPE_TUPLE))
      return;
    if (lane->watched)
      _peer_lane_debug_frame ("client lane", TRUE, PEER_LANE_KIND_SIGNAL, 0, 0, path, iface, member, tuple,
                              frame->fd_list);
    lane->signal_func (lane, path, iface, member, tuple, lane->signal_data);
  }
}

/* With the reader's part held: @frame (which it clears) to the call it
 * answers, or to whoever takes signals. */
static void
lane_take_frame (PeerLaneClient *lane,
                 PeerLaneFrame  *frame)
{
  GVariant *reply = NULL;
  GUnixFDList *fd_list = NULL;
  GError *call_error = NULL;
  LaneWaiter *w;

  if (frame->header.kind == PEER_LANE_KIND_SIGNAL)
    {
      lane_handle_signal (lane, frame);
      _peer_lane_frame_clear (frame);
      return;
    }
  if (frame->header.kind != PEER_LANE_KIND_REPLY && frame->header.kind != PEER_LANE_KIND_ERROR &&
      frame->header.kind != PEER_LANE_KIND_REDIRECT)
    {
      /* The rest of a reply dropped while a call was written, or noise. */
      _peer_lane_frame_clear (frame);
      return;
    }

  g_mutex_lock (&lane->lock);
  w = g_hash_table_lookup (lane->pending, GUINT_TO_POINTER (frame->header.target));
  if (w != NULL)
    g_hash_table_remove (lane->pending, GUINT_TO_POINTER (frame->header.target));
  g_mutex_unlock (&lane->lock);
  if (w == NULL)
    {
      /* A reply to a call that timed out or was cancelled: dropped with its
       * fds. */
      _peer_lane_frame_clear (frame);
      return;
    }

  /* Out of the table, @w is ours alone until it is finished. */
  if (w->serialized && frame->header.kind == PEER_LANE_KIND_REPLY)
    lane_frame_body (lane, w->entry, frame, &w->reply_body, &fd_list, &call_error);
  else
    lane_frame_result (lane, w->entry, frame, &reply, &fd_list, &call_error);
  _peer_lane_frame_clear (frame);
  g_mutex_lock (&lane->lock);
  _peer_lane_client_waiter_finish_locked (lane, w, reply, fd_list, call_error);
  g_mutex_unlock (&lane->lock);
}

/* With the reader's part held: reads one frame and hands it to the call
 * it answers. LANE_READ_POLL waits until @deadline (-1: none) or
 * @cancellable. FALSE with @error when the wait ends first, or with
 * G_IO_ERROR_WOULD_BLOCK when there was nothing to read (the caller
 * decides what that means to it); a broken lane ends every call in
 * flight and counts as read. */
gboolean
_peer_lane_client_read_one (PeerLaneClient *lane,
                            LaneReadMode    mode,
                            gint64          deadline,
                            GCancellable   *cancellable,
                            GError        **error)
{
  PeerLaneReadOptions read_options = {
    .max_fds = G_MAXUINT16,
    .max_body = lane->max_chunked,
    .buffers = lane->buffers,
    .nonblocking = mode != LANE_READ_BLOCK,
  };
  g_autoptr(GError) read_error = NULL;
  PeerLaneFrame frame;
  gboolean ok;

  if (mode == LANE_READ_BLOCK)
    {
      _peer_lane_wait_begin ();
      _peer_lane_spin_wait (&lane->spin, lane->fd);
    }
  else if (mode == LANE_READ_POLL && !wait_readable (lane->fd, deadline, cancellable, error))
    return FALSE;

  ok = _peer_lane_read_frame_full (lane->fd, lane->buffer, &read_options, &frame, &read_error);
  if (mode == LANE_READ_BLOCK)
    _peer_lane_wait_end ();
  if (!ok)
    {
      g_autoptr(GError) reason = NULL;

      if (g_error_matches (read_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        {
          /* Woken for nothing, or the socket's timeout. */
          if (mode == LANE_READ_BLOCK)
            g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timeout was reached");
          else
            g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK, "Nothing to read");
          return FALSE;
        }
      if (read_error != NULL)
        reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED, "Lane broken: %s", read_error->message);
      else
        reason = g_error_new_literal (PEER_ERROR, PEER_ERROR_DISCONNECTED, "The peer went away before replying");
      lane_fail_all (lane, reason);
      return TRUE;
    }

  if (frame.header.kind == PEER_LANE_KIND_BATCH)
    {
      g_autoptr(GError) bad = NULL;
      PeerLaneFrame one;
      gsize offset = 0;

      while (_peer_lane_batch_next (&frame, &offset, &one, &bad))
        lane_take_frame (lane, &one);
      _peer_lane_frame_clear (&frame);
      if (bad != NULL)
        {
          g_autoptr(GError) reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED, "Lane broken: %s",
                                                  bad->message);

          lane_fail_all (lane, reason);
        }
      return TRUE;
    }
  lane_take_frame (lane, &frame);
  return TRUE;
}

/* The reader thread, once signals come on the lane: reads whenever no
 * synchronous caller is reading (who hands on what it reads). It never
 * holds a reference to a call's task or client: what it finishes goes to
 * the caller's context, so nothing is finalized here. */
static gpointer
lane_reader_thread (gpointer data)
{
  PeerLaneClient *lane = data;

  g_mutex_lock (&lane->lock);
  for (;;)
    {
      g_autoptr(GError) error = NULL;

      while (!lane->stopping && lane->reader_active)
        lane_wait_locked (lane, -1);
      if (lane->stopping)
        break;
      lane->reader_active = TRUE;
      g_mutex_unlock (&lane->lock);
      /* The socket's timeout wakes it now and then; calls time out on
       * their own. */
      _peer_lane_client_read_one (lane, LANE_READ_BLOCK, -1, NULL, &error);
      g_mutex_lock (&lane->lock);
      _peer_lane_client_release_reader_locked (lane);
    }
  g_mutex_unlock (&lane->lock);
  return NULL;
}

/* --- writing ----------------------------------------------------------------- */

/* Logs and captures a call written, as the D-Bus message it stands for:
 * a call by name with its names and arguments. */
static void
lane_debug_call (PeerLaneClient  *lane,
                 const LaneEntry *e,
                 guint32          serial,
                 GVariant        *params,
                 GUnixFDList     *fd_list)
{
  if (e == &lane->by_name)
    {
      g_autoptr(GVariant) args = NULL;
      const char *path, *iface, *member;

      g_variant_get (params, "(&s&s&s@v)", &path, &iface, &member, &args);
      {
        g_autoptr(GVariant) tuple = g_variant_get_variant (args);

        _peer_lane_debug_frame ("client lane", FALSE, PEER_LANE_KIND_CALL, serial, 0, path, iface, member,
                                tuple, fd_list);
      }
      return;
    }
  _peer_lane_debug_frame ("client lane", FALSE, PEER_LANE_KIND_CALL, serial, 0, e->object_path,
                          e->interface_name, e->member, params, fd_list);
}

/* With @write_lock held: the corked calls, written in order; those that
 * could not be end with the error. */
static void
lane_write_corked_locked (PeerLaneClient *lane)
{
  g_autoptr(GError) error = NULL;
  PeerLaneWriteOptions options = {
    PEER_LANE_WAIT_BLOCK, 0, lane->max_chunked, .flags = lane->call_flags, .batch = lane->batches,
  };
  guint n = lane->corked->len, written;

  if (n == 0)
    return;
  written = _peer_lane_write_frames (lane->fd, (const PeerLaneOutFrame *) lane->corked->data, n, &options,
                                     &error);
  for (guint i = 0; i < n; i++)
    {
      PeerLaneOutFrame *f = &g_array_index (lane->corked, PeerLaneOutFrame, i);

      if (i < written && lane->watched)
        lane_debug_call (lane, g_ptr_array_index (lane->corked_entries, i), f->serial, f->body, f->fd_list);
      g_clear_pointer (&f->body, g_variant_unref);
      g_clear_object (&f->fd_list);
    }
  if (written < n)
    {
      gboolean disconnected = g_error_matches (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);

      /* Each call not sent ends with the error, unless the lane broke
       * meanwhile and ended it already. */
      g_mutex_lock (&lane->lock);
      for (guint i = written; i < n; i++)
        {
          guint32 serial = g_array_index (lane->corked, PeerLaneOutFrame, i).serial;
          LaneWaiter *w = g_hash_table_lookup (lane->pending, GUINT_TO_POINTER (serial));

          if (w != NULL)
            _peer_lane_client_end_call_locked (lane, w, g_error_copy (error));
        }
      g_mutex_unlock (&lane->lock);
      if (disconnected)
        _peer_lane_client_shutdown (lane);
    }
  g_array_set_size (lane->corked, 0);
  g_ptr_array_set_size (lane->corked_entries, 0);
}

/* After a source returned its ends: the calls their callbacks made, if
 * another thread has not written them already. */
void
_peer_lane_client_uncork (PeerLaneClient *lane)
{
  g_mutex_lock (&lane->write_lock);
  lane_write_corked_locked (lane);
  g_mutex_unlock (&lane->write_lock);
}

/* With @write_lock held: @w's call frame, its arguments @params or, for a
 * serialized call, its bytes. */
static gboolean
lane_write_call (PeerLaneClient             *lane,
                 LaneWaiter                 *w,
                 GVariant                   *params,
                 GUnixFDList                *fd_list,
                 const PeerLaneWriteOptions *options,
                 GError                    **error)
{
  if (w->serialized)
    return _peer_lane_write_frame_data (lane->fd, PEER_LANE_KIND_CALL, w->serial, w->entry->id, w->data, w->size,
                                        fd_list, options, error);
  return _peer_lane_write_frame_full (lane->fd, PEER_LANE_KIND_CALL, w->serial, w->entry->id, params, fd_list,
                                      options, error);
}

/* Registers @w under a new serial and writes its call; FALSE with @error
 * when it was not sent (and is not in flight). A call that finds
 * nothing else in flight writes as before pipelining: large bodies in
 * chunks, dropping what arrives meanwhile (only stale replies can), and it
 * keeps the reader's part for its reply (*out_reader). Otherwise nothing
 * that arrives may be dropped: the call waits only for room in the socket
 * (within its send timeout), and a large body goes as a blob, never in
 * chunks that a server writing its own long reply might wait on. An
 * asynchronous call made while its context's source returns ends is
 * corked: written with the others made then, after the last end. */
gboolean
_peer_lane_client_send_call (PeerLaneClient  *lane,
                             LaneWaiter      *w,
                             GVariant        *params,
                             GUnixFDList     *fd_list,
                             gint64           deadline,
                             GCancellable    *cancellable,
                             gboolean        *out_reader,
                             GError         **error)
{
  const LaneEntry *e = w->entry;
  gboolean alone, ok;

  *out_reader = FALSE;
  g_mutex_lock (&lane->write_lock);
  g_mutex_lock (&lane->lock);
  if (g_atomic_int_get (&lane->closed))
    {
      g_mutex_unlock (&lane->lock);
      g_mutex_unlock (&lane->write_lock);
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_DISCONNECTED, "The lane is closed");
      return FALSE;
    }
  if (++lane->next_serial == 0)
    lane->next_serial = 1;
  w->serial = lane->next_serial;
  g_hash_table_insert (lane->pending, GUINT_TO_POINTER (w->serial), w);
  if (w->is_async)
    g_atomic_int_inc (&w->source->n_async);
  /* Not when signals come on the lane: they may arrive while it writes. */
  alone = !w->is_async && g_hash_table_size (lane->pending) == 1 && !lane->reader_active &&
          lane->signal_func == NULL;
  if (alone)
    lane->reader_active = TRUE;
  g_mutex_unlock (&lane->lock);

  if (w->is_async && _peer_lane_client_returning_source == w->source)
    {
      PeerLaneOutFrame f = {
        PEER_LANE_KIND_CALL, w->serial, e->id, g_variant_ref (params),
        fd_list != NULL ? g_object_ref (fd_list) : NULL,
      };

      g_array_append_val (lane->corked, f);
      g_ptr_array_add (lane->corked_entries, (gpointer) e);
      w->source->corked = TRUE;         /* this is its owner, dispatching it */
      g_mutex_unlock (&lane->write_lock);
      return TRUE;
    }
  /* Behind the corked calls of an earlier moment. */
  lane_write_corked_locked (lane);
  if (alone)
    {
      PeerLaneWriteOptions options = {
        PEER_LANE_WAIT_POLL, lane->chunk_size, lane->max_chunked,
        deadline, cancellable, lane->buffer,
        .flags = lane->call_flags,
      };

      ok = lane_write_call (lane, w, params, fd_list, &options, error);
    }
  else
    {
      PeerLaneWriteOptions options = { PEER_LANE_WAIT_BLOCK, 0, lane->max_chunked, .flags = lane->call_flags };

      ok = lane_write_call (lane, w, params, fd_list, &options, error);
    }
  g_mutex_unlock (&lane->write_lock);

  if (!ok)
    {
      gboolean disconnected = g_error_matches (*error, PEER_ERROR, PEER_ERROR_DISCONNECTED);

      gboolean ended_already;

      g_mutex_lock (&lane->lock);
      if (alone)
        _peer_lane_client_release_reader_locked (lane);
      /* Unless the lane broke meanwhile and ended the call already: then
       * that is its end, and the write's error goes. */
      ended_already = g_hash_table_lookup (lane->pending, GUINT_TO_POINTER (w->serial)) != w;
      if (!ended_already)
        {
          g_hash_table_remove (lane->pending, GUINT_TO_POINTER (w->serial));
          if (w->is_async)
            g_atomic_int_add (&w->source->n_async, -1);
        }
      _peer_lane_client_wake_locked (lane);
      g_mutex_unlock (&lane->lock);
      if (disconnected)
        _peer_lane_client_shutdown (lane);
      if (ended_already)
        {
          g_clear_error (error);
          return TRUE;
        }
      return FALSE;
    }
  if (lane->watched && w->serialized)
    {
      g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_from_data (e->in.type, w->data, w->size,
                                                                               FALSE, NULL, NULL));

      lane_debug_call (lane, e, w->serial, value, fd_list);
    }
  else if (lane->watched)
    lane_debug_call (lane, e, w->serial, params, fd_list);
  *out_reader = alone;
  return TRUE;
}

/* --- synchronous calls ------------------------------------------------------- */

static void
wake_waiters (GCancellable *cancellable,
              gpointer      data)
{
  PeerLaneClient *lane = data;

  g_mutex_lock (&lane->lock);
  _peer_lane_client_wake_locked (lane);
  g_mutex_unlock (&lane->lock);
}

/* A synchronous call of @w (its entry set, and for a serialized call its
 * bytes) with @params, until it ends: FALSE with @error, or TRUE with
 * its reply in @w. */
static gboolean
lane_call_sync (PeerLaneClient *lane,
                LaneWaiter     *w,
                GVariant       *params,
                int             timeout_ms,
                GUnixFDList    *fd_list,
                GUnixFDList   **out_fd_list,
                GCancellable   *cancellable,
                GError        **error)
{
  gulong cancelled_id = 0;
  gboolean reader, blocking;
  gint64 deadline;

  /* -1 without a cancellable: the default, which the socket's SO_RCVTIMEO
   * enforces for the thread that reads (no poll per call). */
  blocking = timeout_ms < 0 && cancellable == NULL;
  if (timeout_ms == G_MAXINT)
    deadline = -1;
  else
    deadline = g_get_monotonic_time () + (gint64) (timeout_ms < 0 ? PEER_LANE_DEFAULT_TIMEOUT_MS : timeout_ms) * 1000;

  if (!_peer_lane_client_send_call (lane, w, params, fd_list, deadline, cancellable, &reader, error))
    return FALSE;
  if (cancellable != NULL)
    cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (wake_waiters), lane, NULL);

  g_mutex_lock (&lane->lock);
  while (!w->done)
    {
      g_autoptr(GError) wait_error = NULL;
      gboolean progressed;

      if (reader || !lane->reader_active)
        {
          /* This thread reads, for itself and for whoever else waits. */
          lane->reader_active = TRUE;
          g_mutex_unlock (&lane->lock);
          progressed = _peer_lane_client_read_one (lane, blocking ? LANE_READ_BLOCK : LANE_READ_POLL, deadline,
                                                   cancellable, &wait_error);
          g_mutex_lock (&lane->lock);
          _peer_lane_client_release_reader_locked (lane);
          reader = FALSE;
          if (progressed || g_error_matches (wait_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            continue;
          if (blocking && g_get_monotonic_time () < deadline)
            continue;                   /* the socket's timeout, for another call's wait */
        }
      else
        {
          /* Checked before each wait, under the lock that wake_waiters()
           * takes: a cancellation is never missed between the two. */
          if (!g_cancellable_set_error_if_cancelled (cancellable, &wait_error))
            {
              if (deadline < 0)
                lane_wait_locked (lane, -1);
              else if (!lane_wait_locked (lane, deadline) &&
                       g_get_monotonic_time () >= deadline)
                g_set_error_literal (&wait_error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timeout was reached");
              if (wait_error == NULL)
                continue;
            }
        }
      /* Ended by the wait, unless a reader took its reply meanwhile:
       * then it is finished in a moment. */
      if (!_peer_lane_client_end_call_locked (lane, w, g_steal_pointer (&wait_error)))
        while (!w->done)
          lane_wait_locked (lane, -1);
    }
  g_mutex_unlock (&lane->lock);
  if (cancelled_id != 0)
    g_cancellable_disconnect (cancellable, cancelled_id);

  if (w->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&w->error));
      return FALSE;
    }
  if (out_fd_list != NULL)
    *out_fd_list = g_steal_pointer (&w->fd_list);
  g_clear_object (&w->fd_list);
  return TRUE;
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
  LaneWaiter w = { .entry = lane_entry (lane, id) };
  GVariant *params = parameters != NULL ? parameters : _peer_lane_unit_variant ();

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  if (!_peer_lane_client_check_call_types (w.entry, params, reply_type, error) ||
      !lane_call_sync (lane, &w, params, timeout_ms, fd_list, out_fd_list, cancellable, error))
    return NULL;
  return w.reply;
}

GBytes *
_peer_lane_client_call_serialized (PeerLaneClient     *lane,
                                   guint32             id,
                                   const GVariantType *parameters_type,
                                   gconstpointer       data,
                                   gsize               size,
                                   const GVariantType *reply_type,
                                   int                 timeout_ms,
                                   GUnixFDList        *fd_list,
                                   GUnixFDList       **out_fd_list,
                                   GCancellable       *cancellable,
                                   GError            **error)
{
  LaneWaiter w = { .entry = lane_entry (lane, id), .serialized = TRUE, .data = data, .size = size };

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  if (!check_serialized_types (w.entry, parameters_type, reply_type, error) ||
      !lane_call_sync (lane, &w, NULL, timeout_ms, fd_list, out_fd_list, cancellable, error))
    return NULL;
  return w.reply_body;
}

/* --- signals ----------------------------------------------------------------- */

void
_peer_lane_client_set_signal_func (PeerLaneClient     *lane,
                                   PeerLaneSignalFunc  func,
                                   gpointer            data)
{
  g_mutex_lock (&lane->lock);
  if (lane->signal_func == NULL)
    {
      lane->signal_data = data;
      g_atomic_pointer_set (&lane->signal_func, func);
      if (lane->reader_thread == NULL)
        lane->reader_thread = g_thread_new ("peer-lane-reader", lane_reader_thread, lane);
      /* The sources stop polling: the thread reads for them. */
      for (guint i = 0; i < lane->sources->len; i++)
        _peer_lane_client_source_wake_locked (g_ptr_array_index (lane->sources, i));
      _peer_lane_client_wake_locked (lane);
    }
  g_mutex_unlock (&lane->lock);
}
