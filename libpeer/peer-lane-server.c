/* peer-lane-server.c: the server's end of a lane.
 *
 * Open() makes a socketpair and keeps one end, which a small fixed set of
 * loop threads (one per CPU the process may use, made with the first
 * lane, ended with the last) serve together from one epoll set: the
 * thread count does not grow with the number of lanes, and whichever
 * loop is free takes whichever lane is ready next (see "the loops"
 * below). A loop serves a lane by turns: up to PEER_LANE_TURN_FRAMES
 * frames of it in a row (peer-lane-frame.c), then the others that are
 * ready, so that a busy lane cannot starve the others. A call to a
 * handler flagged PEER_METHOD_FLAGS_THREAD_SAFE runs right there, on the
 * loop thread; the replies and signals written on the loop during a turn
 * are queued and written together as it ends (in one batch, to a client
 * that reads them: one syscall, one wake-up of the client). Replies from
 * other threads are written from whatever thread replies: no hop at all.
 * Other handlers are handed to the server's main context (correct, one
 * hop). Large replies go in chunks when the loop writes them (within a
 * send timeout), as sealed memfd blobs otherwise: see lane_send(). What a
 * loop reads into (a frame's buffer, the spare one chunked bodies are
 * assembled in) is the loop's, not each lane's, and the spare is let go
 * when the loop has been idle a while.
 *
 * Calls to methods the table Open handed over does not list (objects
 * exported since, a subtree's children, Properties) come by name and are
 * served as the peer's GDBus connection would serve them, by the same
 * code, or handed back unrun to be made there: see "calls by name"
 * below, which says which and why.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-blob-private.h"
#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-debug-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-lane-private.h"
#include "peer-object-registry-private.h"
#include "peer-router-private.h"
#include "peer-server-private.h"

/* --- server: a lane -------------------------------------------------------- */

typedef struct {
  PeerInterface *iface;
  char *object_path;            /* an interface may be at several paths */
  guint method_index;
  gboolean thread_safe;
  LaneType in;
  LaneType out;
  /* Atomic: the router's objects serial when @iface was last seen
   * exported at @object_path (see lane_method_is_current()). */
  guint validated;
} LaneMethod;

static void
lane_method_free (LaneMethod *m)
{
  _peer_lane_type_clear (&m->in);
  _peer_lane_type_clear (&m->out);
  g_object_unref (m->iface);
  g_free (m->object_path);
  g_free (m);
}

/* Owned by references: its loop's (while it is watched), the connection's
 * list of lanes (main context), and each call in progress. The fd is closed with the
 * last reference, never before: a reply written from another thread must
 * not reach a reused fd number. */
typedef struct {
  gatomicrefcount ref_count;
  guint64 id;                   /* for its connection's list, which may outlive it */
  int fd;
  PeerConnection *connection;
  PeerRouter *router;           /* for monitors' copies */
  GWeakRef server;              /* PeerServer: calls by name find its objects */
  GMainContext *context;
  GPtrArray *methods;           /* LaneMethod*, indexed by id; read-only */
  gint shut;                    /* atomic */
  LaneSpin spin;                /* its loop's, for the next frame */
  gsize chunk_size;
  gsize max_chunked;            /* what the client was told it may receive in chunks */
  gsize kernel_reserved;        /* the sockets' buffers, held in the peer's quota */

  /* What is written, in order. Frames are queued in @queued and written
   * by whoever holds @write_lock: a loop serving this lane queues the
   * replies and signals of its turn and writes them together at the
   * turn's end (in one batch, the client woken once), waiting for
   * the client if it must (large replies in chunks); other threads
   * write at once when nothing is queued and the lock is free, and
   * never wait: when the lock is held, they queue and whoever holds it
   * writes what they queued after releasing it. */
  GMutex write_lock;
  GMutex queue_lock;
  GArray *queued;               /* QueuedFrame, under queue_lock */
  GArray *writing;              /* QueuedFrame, under write_lock: being written */
  gint n_queued;                /* atomic: @queued's length */
  gint peer_batches;            /* atomic: the client takes BATCH frames (it sent one) */
  /* Atomic: counted as a loop arms the lane for the next turn, read as a
   * loop takes it. Loops hand a lane on to each other through the kernel
   * (the epoll set), which ThreadSanitizer does not see as a hand-off:
   * this is the one it sees. */
  gint turns;
  guint lone_turns;             /* its loop's: turns in a row that found one frame */
  gboolean watched;             /* frames are logged or captured */
  /* A finished call's block, for its loop's next call: a call
   * costs no allocation in the steady state. Atomic: calls finish on
   * any thread. */
  gpointer spare_call;
} LaneServer;

/* A frame waiting to be written: its body and fds held. */
typedef PeerLaneOutFrame QueuedFrame;

static void lane_loops_release (void);

/* Runs @func in @context, always from its loop. Not
 * g_main_context_invoke(): a loop thread whose thread-default context is
 * the server's (the global default, say) would run @func itself when the
 * context is free to acquire. */
static void
lane_invoke_in_context (GMainContext *context,
                        GSourceFunc   func,
                        gpointer      data,
                        const char   *name)
{
  GSource *source = g_idle_source_new ();

  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, func, data, NULL);
  g_source_set_static_name (source, name);
  g_source_attach (source, context);
  g_source_unref (source);
}

/* Lets go of what @frames hold and empties it. Not the array's clear
 * function: GArray calls that through a slower path, on every reply. */
static void
queued_frames_clear (GArray *frames)
{
  for (guint i = 0; i < frames->len; i++)
    {
      QueuedFrame *q = &g_array_index (frames, QueuedFrame, i);

      g_clear_pointer (&q->body, g_variant_unref);
      g_clear_object (&q->fd_list);
    }
  g_array_set_size (frames, 0);
}

/* The lane whose turn this thread (a loop) is serving now, if any: what
 * is written on it from here waits for the turn's end. A thread-local
 * variable, not a GPrivate: read on every reply. */
static __thread LaneServer *current_lane;

static LaneServer *
lane_server_ref (LaneServer *lane)
{
  g_atomic_ref_count_inc (&lane->ref_count);
  return lane;
}

static void
lane_server_unref (LaneServer *lane)
{
  if (!g_atomic_ref_count_dec (&lane->ref_count))
    return;
  close (lane->fd);
  _peer_wire_limits_release (_peer_connection_get_limits (lane->connection), lane->kernel_reserved);
  queued_frames_clear (lane->queued);
  g_array_unref (lane->queued);
  g_array_unref (lane->writing);
  g_mutex_clear (&lane->write_lock);
  g_mutex_clear (&lane->queue_lock);
  g_ptr_array_unref (lane->methods);
  g_main_context_unref (lane->context);
  g_object_unref (lane->connection);
  _peer_router_unref (lane->router);
  g_weak_ref_clear (&lane->server);
  g_free (lane->spare_call);
  g_free (lane);
}

/* Any thread. Its loop sees the end of stream and lets it go. */
static void
lane_server_shutdown (LaneServer *lane)
{
  if (g_atomic_int_compare_and_exchange (&lane->shut, FALSE, TRUE))
    shutdown (lane->fd, SHUT_RDWR);
}

typedef struct {
  LaneServer *lane;
  const LaneMethod *method;     /* lives as long as lane->methods; NULL: by name */
  guint32 serial;
} LaneCall;

/* How the server writes a reply: waiting for the client only on the lane
 * thread (@wait BLOCK: in chunks), never elsewhere (NONE). Either way a
 * body over the peer's message-size limit (as it is now, and as Open told
 * the client) goes as a blob, as a body over PEER_LANE_MAX_INLINE does
 * when it is not chunked. */
static PeerLaneWriteOptions
lane_write_options (LaneServer   *lane,
                    PeerLaneWait  wait)
{
  PeerLaneWriteOptions options = {
    wait, wait == PEER_LANE_WAIT_BLOCK ? lane->chunk_size : 0,
    MIN (lane->max_chunked, _peer_connection_get_max_message_size (lane->connection)),
  };

  options.batch = g_atomic_int_get (&lane->peer_batches);
  return options;
}

/* With @write_lock held: writes what is queued, in order, until nothing
 * is; waiting for the client only as @wait says (a loop's BLOCK). A
 * frame that cannot be written shuts the lane. */
static void
lane_write_queued_locked (LaneServer   *lane,
                          PeerLaneWait  wait)
{
  while (g_atomic_int_get (&lane->n_queued) > 0)
    {
      g_autoptr(GError) error = NULL;
      GArray *batch;

      g_mutex_lock (&lane->queue_lock);
      batch = lane->queued;
      lane->queued = lane->writing;
      lane->writing = batch;
      g_atomic_int_set (&lane->n_queued, 0);
      g_mutex_unlock (&lane->queue_lock);
      if (!g_atomic_int_get (&lane->shut))
        {
          PeerLaneWriteOptions options = lane_write_options (lane, wait);

          if (_peer_lane_write_frames (lane->fd, (const PeerLaneOutFrame *) batch->data, batch->len,
                                       &options, &error) < batch->len)
            {
              g_debug ("libpeer: lane reply to %s failed: %s",
                       peer_connection_get_unique_name (lane->connection), error->message);
              lane_server_shutdown (lane);
            }
        }
      queued_frames_clear (batch);
    }
}

/* Writes what is queued, unless another thread holds the lock (it does
 * so itself after releasing it). Never waits for the client. */
static void
lane_flush_queued (LaneServer *lane)
{
  while (g_atomic_int_get (&lane->n_queued) > 0 && g_mutex_trylock (&lane->write_lock))
    {
      lane_write_queued_locked (lane, PEER_LANE_WAIT_NONE);
      g_mutex_unlock (&lane->write_lock);
    }
}

/* On its loop, at the end of a turn: the turn's replies and signals (and
 * whatever others queued meanwhile), waiting for the client if it must. */
static void
lane_flush_turn (LaneServer *lane)
{
  if (g_atomic_int_get (&lane->n_queued) == 0)
    return;
  g_mutex_lock (&lane->write_lock);
  lane_write_queued_locked (lane, PEER_LANE_WAIT_BLOCK);
  g_mutex_unlock (&lane->write_lock);
  lane_flush_queued (lane);             /* queued between the last look and the unlock */
}

static void
lane_queue (LaneServer   *lane,
            PeerLaneKind  kind,
            guint32       target,
            GVariant     *body,
            GUnixFDList  *fd_list)
{
  QueuedFrame q = {
    kind, 0, target, g_variant_ref (body), fd_list != NULL ? g_object_ref (fd_list) : NULL,
  };

  g_mutex_lock (&lane->queue_lock);
  g_array_append_val (lane->queued, q);
  g_atomic_int_inc (&lane->n_queued);
  g_mutex_unlock (&lane->queue_lock);
}

/* Any thread: the log, the capture and monitors see a frame as the D-Bus
 * message it stands for, between the peer and the server's unique name,
 * as they see the peer's messages on its D-Bus connection. */
static void
lane_observe_frame (LaneServer   *lane,
                    gboolean      incoming,
                    PeerLaneKind  kind,
                    guint32       serial,
                    guint32       target,
                    const char   *path,
                    const char   *interface_name,
                    const char   *member,
                    GVariant     *body,
                    GUnixFDList  *fd_list)
{
  g_autoptr(GDBusMessage) message = _peer_lane_frame_to_message (kind, serial, target, path, interface_name,
                                                                 member, body, NULL);
  const char *peer_name = peer_connection_get_unique_name (lane->connection);

  if (lane->watched)
    {
      if (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > 0)
        g_dbus_message_set_num_unix_fds (message, g_unix_fd_list_get_length (fd_list));
      _peer_debug_peer_lane_message (message, incoming, "server lane",
                                     peer_connection_get_dbus_connection (lane->connection));
    }
  if (_peer_router_has_monitors (lane->router))
    {
      /* A monitor gets the fds too, as on the D-Bus connection. */
      g_dbus_message_set_num_unix_fds (message, 0);
      if (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > 0)
        g_dbus_message_set_unix_fd_list (message, fd_list);
      _peer_router_copy_to_monitors (lane->router, message,
                                     incoming ? peer_name : PEER_ROUTER_SERVER_NAME,
                                     incoming ? PEER_ROUTER_SERVER_NAME : peer_name,
                                     lane->connection);
    }
}

/* Any thread: a reply or an error for call @target, observed as
 * @observed (what it stands for on D-Bus; NULL: not observed). */
static void
lane_send_observed (LaneServer   *lane,
                    PeerLaneKind  kind,
                    guint32       target,
                    GVariant     *body,
                    GVariant     *observed,
                    GUnixFDList  *fd_list)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (kind != PEER_LANE_KIND_SIGNAL && observed != NULL &&
      (lane->watched || _peer_router_has_monitors (lane->router)))
    lane_observe_frame (lane, FALSE, kind, 0, target, NULL, NULL, NULL, observed, fd_list);
  if (current_lane == lane)
    {
      /* The lane's loop, in a turn of this lane: written with the turn's
       * other frames as it ends (lane_flush_turn()). */
      lane_queue (lane, kind, target, body, fd_list);
      return;
    }
  if (g_atomic_int_get (&lane->n_queued) == 0 && g_mutex_trylock (&lane->write_lock))
    {
      /* Never waiting: a peer that does not read its replies loses its
       * lane instead of stalling the thread that replies (maybe the main
       * one); what it can make us hold is the socket buffer. */
      PeerLaneWriteOptions options = lane_write_options (lane, PEER_LANE_WAIT_NONE);

      ok = _peer_lane_write_frame_full (lane->fd, kind, 0, target, body, fd_list, &options, &error);
      g_mutex_unlock (&lane->write_lock);
      if (!ok)
        {
          g_debug ("libpeer: lane reply to %s failed: %s",
                   peer_connection_get_unique_name (lane->connection), error->message);
          lane_server_shutdown (lane);
        }
      lane_flush_queued (lane);
      return;
    }
  /* Behind what is queued, or while another thread writes. */
  lane_queue (lane, kind, target, body, fd_list);
  lane_flush_queued (lane);
}

static void
lane_send (LaneServer   *lane,
           PeerLaneKind  kind,
           guint32       target,
           GVariant     *body,
           GUnixFDList  *fd_list)
{
  lane_send_observed (lane, kind, target, body, body, fd_list);
}

/* Any thread: call @serial is not served on the lane (nothing of it
 * ran): the client sends it on its D-Bus connection. Not observed: the
 * log and monitors see the call once, where it is served. */
static void
lane_redirect (LaneServer *lane,
               guint32     serial)
{
  lane_send_observed (lane, PEER_LANE_KIND_REDIRECT, serial, _peer_lane_unit_variant (), NULL, NULL);
}

static void
lane_call_send (PeerCall     *call,
                PeerLaneKind  kind,
                GVariant     *body,
                GUnixFDList  *fd_list)
{
  LaneCall *lc = call->transport_data;

  lane_send (lc->lane, kind, lc->serial, body, fd_list);
}

static void
lane_return_error (PeerCall   *call,
                   const char *error_name,
                   const char *message)
{
  g_autoptr(GVariant) body = _peer_lane_error_body (error_name, message);

  lane_call_send (call, PEER_LANE_KIND_ERROR, body, NULL);
}

static void
lane_return_value (PeerCall    *call,
                   GVariant    *value,
                   GUnixFDList *fd_list)
{
  LaneCall *lc = call->transport_data;
  g_autoptr(GVariant) unit = NULL;

  if (value == NULL)
    value = unit = g_variant_ref (_peer_lane_unit_variant ());
  if (lc->method != NULL ? !_peer_lane_type_is_of (&lc->method->out, value)
                         : !g_variant_is_of_type (value, _peer_interface_get_reply_type (call->iface,
                                                                                        call->method_index)))
    {
      /* A handler bug; GDBus answers the same way on its path. */
      const GVariantType *expected = _peer_interface_get_reply_type (call->iface, call->method_index);
      g_autofree char *message = g_strdup_printf ("%s returned '%s', not '%.*s'",
                                                  peer_call_get_method_name (call),
                                                  g_variant_get_type_string (value),
                                                  (int) g_variant_type_get_string_length (expected),
                                                  g_variant_type_peek_string (expected));
      g_debug ("libpeer: %s", message);
      lane_return_error (call, "org.libpeer.Error.Failed", message);
      return;
    }
  if (lc->method == NULL)
    {
      /* By name: the client knows no reply type, so the tuple goes in a
       * variant; the log and monitors see the tuple. */
      g_autoptr(GVariant) boxed = g_variant_ref_sink (g_variant_new_variant (value));

      lane_send_observed (lc->lane, PEER_LANE_KIND_REPLY, lc->serial, boxed, value, fd_list);
      return;
    }
  lane_call_send (call, PEER_LANE_KIND_REPLY, value, fd_list);
}

static gboolean
lane_finalize (PeerCall *call)
{
  LaneServer *lane = ((LaneCall *) call->transport_data)->lane;
  /* Nothing of @call is touched once it is the spare: its loop may
   * be building its next call in it already. */
  gboolean kept = g_atomic_pointer_compare_and_exchange (&lane->spare_call, NULL, call);

  /* What kept the call's borrowed connection and interface alive (and,
   * when it is the last reference, what frees the spare). */
  lane_server_unref (lane);
  return kept;
}

static const PeerCallTransport lane_transport = {
  lane_return_value,
  lane_return_error,
  lane_finalize,
};

static gboolean
dispatch_in_main_context (gpointer user_data)
{
  PeerCall *call = user_data;

  _peer_interface_dispatch (call->iface, call);
  peer_call_unref (call);
  return G_SOURCE_REMOVE;
}

/* Answers a call with an error before it becomes a PeerCall. */
static void
lane_refuse (LaneServer *lane,
             guint32     serial,
             const char *name,
             const char *message)
{
  g_autoptr(GVariant) body = _peer_lane_error_body (name, message);

  lane_send (lane, PEER_LANE_KIND_ERROR, serial, body, NULL);
}

/* Answers a call with @error, by the name the registered tables give it. */
static void
lane_refuse_gerror (LaneServer   *lane,
                    guint32       serial,
                    const GError *error)
{
  g_autofree char *name = _peer_wire_error_name (error);

  lane_refuse (lane, serial, name, error->message);
}

/* --- calls by name ---------------------------------------------------------
 *
 * The table Open hands over lists the methods of the interfaces exported
 * then; everything else a client calls on the lane goes by name
 * (PEER_LANE_TARGET_BY_NAME): the methods of objects exported since, of
 * a subtree's children, org.freedesktop.DBus.Properties Get, Set and
 * GetAll, an ObjectManager's. A call by name is served as the peer's
 * GDBus connection would serve it, by the same code: a thread-safe
 * handler of an exported interface here on the loop, as the router
 * answers it on GDBus's worker thread; the rest in the server's main
 * context, where the object registry finds what GDBus would dispatch it
 * to (_peer_object_registry_call()) and the PeerInterface's handler or
 * property functions serve it. PropertiesChanged from a Set is emitted
 * before the Set's reply is written, so a client that takes its signals
 * on this lane reads it first.
 *
 * What GDBus answers by itself (unknown objects, interfaces, methods
 * and properties, refused access, wrong types, introspection) and what
 * only GDBus can carry (a gdbus-codegen skeleton's methods: their
 * handlers take a GDBusMethodInvocation, which GLib lets nobody else
 * make) is not served here: the lane answers REDIRECT, nothing of the
 * call having run, and the client sends it on its D-Bus connection, so
 * that the answer is GDBus's own, word for word, on either transport. A
 * table entry whose interface is no longer exported at its path is
 * answered the same way (the client then calls it by name). */

/* The type of a call by name's body, made once. */
static const LaneType *
by_name_type (void)
{
  static LaneType type;
  static gsize made;

  if (g_once_init_enter (&made))
    {
      _peer_lane_type_init (&type, "(sssv)");
      g_once_init_leave (&made, 1);
    }
  return &type;
}

gboolean
_peer_lane_serves_interface (const char *interface_name)
{
  if (g_str_equal (interface_name, PEER_LANE_INTERFACE) || g_str_equal (interface_name, PEER_WIRE_INTERFACE))
    return FALSE;
  return !g_str_has_prefix (interface_name, PEER_ROUTER_BUS_NAME) ||
         g_str_equal (interface_name, "org.freedesktop.DBus.Properties") ||
         g_str_equal (interface_name, "org.freedesktop.DBus.ObjectManager");
}

/* Whether table entry @m's interface is still exported at its path:
 * checked again only when the router's objects changed. Any thread. */
static gboolean
lane_method_is_current (LaneServer *lane,
                        LaneMethod *m)
{
  guint serial = _peer_router_get_objects_serial (lane->router);
  g_autoptr(PeerInterface) iface = NULL;

  if (G_LIKELY ((guint) g_atomic_int_get (&m->validated) == serial))
    return TRUE;
  iface = _peer_router_lookup_object (lane->router, m->object_path, peer_interface_get_info (m->iface)->name);
  if (iface != m->iface)
    return FALSE;
  g_atomic_int_set (&m->validated, serial);
  return TRUE;
}

/* A PeerCall for a call by name to method @index of @iface at @path,
 * already counted in flight; takes @parameters. */
static PeerCall *
lane_call_new_by_name (LaneServer    *lane,
                       guint32        serial,
                       PeerInterface *iface,
                       guint          index,
                       const char    *path,
                       GVariant      *parameters,
                       GUnixFDList   *fd_list)
{
  PeerCall *call = _peer_call_new (g_atomic_pointer_exchange (&lane->spare_call, NULL), &lane_transport, NULL,
                                   sizeof (LaneCall), lane->connection, iface, FALSE, index, parameters,
                                   fd_list);
  LaneCall *lc = call->transport_data;

  call->counted_in = _peer_connection_get_limits (lane->connection);
  if (g_strcmp0 (peer_interface_get_object_path (iface), path) != 0)
    _peer_call_set_object_path (call, path);
  lc->lane = lane_server_ref (lane);
  lc->method = NULL;
  lc->serial = serial;
  return call;
}

/* String @index of @body, (sssv) in normal form: it points into the
 * body's bytes, alive as long as @body is (a child shares its parent's
 * serialized data). */
static const char *
body_string (GVariant *body,
             gsize     index)
{
  g_autoptr(GVariant) child = g_variant_get_child_value (body, index);

  return g_variant_get_string (child, NULL);
}

/* A call by name on its way to the main context. */
typedef struct {
  LaneServer *lane;             /* a reference */
  gboolean counted;             /* in the peer's calls in flight, until served */
  guint32 serial;
  GVariant *body;               /* (sssv): the names below point into it */
  const char *path;
  const char *interface_name;
  const char *member;
  GVariant *parameters;
  GUnixFDList *fd_list;
} LaneByName;

/* Also when the server's context goes without running it. */
static void
lane_by_name_free (gpointer data)
{
  LaneByName *job = data;

  if (job->counted)
    _peer_wire_limits_end_call (_peer_connection_get_limits (job->lane->connection));
  lane_server_unref (job->lane);
  g_variant_unref (job->body);
  g_variant_unref (job->parameters);
  g_clear_object (&job->fd_list);
  g_free (job);
}

/* Main context: what the registry makes of a call by name. */
static gboolean
serve_by_name_in_main_context (gpointer data)
{
  LaneByName *job = data;
  LaneServer *lane = job->lane;
  PeerWireLimits *limits = _peer_connection_get_limits (lane->connection);
  g_autoptr(GObject) server = g_weak_ref_get (&lane->server);
  PeerObjectRegistry *registry = server != NULL ? _peer_server_get_object_registry (PEER_SERVER (server)) : NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  PeerObjectCall outcome = PEER_OBJECT_CALL_NOT_SERVED;
  guint index = 0;

  if (registry != NULL && !g_atomic_int_get (&lane->shut) && !_peer_connection_is_closed (lane->connection))
    outcome = _peer_object_registry_call (registry, lane->connection, job->path, job->interface_name, job->member,
                                          job->parameters, &iface, &index, &reply, &error);
  if (outcome != PEER_OBJECT_CALL_NOT_SERVED && (lane->watched || _peer_router_has_monitors (lane->router)))
    lane_observe_frame (lane, TRUE, PEER_LANE_KIND_CALL, job->serial, 0, job->path, job->interface_name,
                        job->member, job->parameters, job->fd_list);
  /* The call's own count goes now, or with its PeerCall. */
  job->counted = FALSE;
  switch (outcome)
    {
    case PEER_OBJECT_CALL_NOT_SERVED:
      _peer_wire_limits_end_call (limits);
      lane_redirect (lane, job->serial);
      break;
    case PEER_OBJECT_CALL_ANSWERED:
      _peer_wire_limits_end_call (limits);
      if (reply != NULL)
        {
          g_autoptr(GVariant) boxed = g_variant_ref_sink (g_variant_new_variant (reply));

          lane_send_observed (lane, PEER_LANE_KIND_REPLY, job->serial, boxed, reply, NULL);
        }
      else
        lane_refuse_gerror (lane, job->serial, error);
      break;
    case PEER_OBJECT_CALL_METHOD:
      {
        PeerCall *call = lane_call_new_by_name (lane, job->serial, iface, index, job->path,
                                                g_variant_ref (job->parameters), job->fd_list);

        _peer_interface_dispatch (iface, call);
        peer_call_unref (call);
      }
      break;
    }
  return G_SOURCE_REMOVE;
}

/* On the loop: a call by name. */
static void
lane_handle_by_name (LaneServer    *lane,
                     PeerLaneFrame *frame)
{
  const PeerLaneHeader *h = &frame->header;
  g_autoptr(GVariant) body = _peer_lane_type_read (by_name_type (), frame->body);
  g_autoptr(GVariant) boxed = NULL;
  g_autoptr(GVariant) parameters = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  const char *path, *interface_name, *member;
  LaneByName *job;

  if (body == NULL)
    {
      lane_refuse (lane, h->serial, "org.freedesktop.DBus.Error.InvalidArgs",
                   "Arguments are not in normal form for their type");
      return;
    }
  /* Not g_variant_get (body, "(&s&s&s@v)"), which parses its format each
   * time: the strings are in @body's bytes, which the job keeps. */
  path = body_string (body, 0);
  interface_name = body_string (body, 1);
  member = body_string (body, 2);
  boxed = g_variant_get_child_value (body, 3);
  parameters = g_variant_get_variant (boxed);
  /* What the D-Bus path's validation would refuse. */
  if (!g_variant_is_object_path (path) || !g_dbus_is_interface_name (interface_name) ||
      !g_dbus_is_member_name (member) || !g_variant_is_of_type (parameters, G_VARIANT_TYPE_TUPLE))
    {
      lane_refuse (lane, h->serial, "org.freedesktop.DBus.Error.InvalidArgs",
                   "A call by name needs an object path, an interface and a member name, and a tuple");
      return;
    }
  /* Over the peer's budget of calls in flight, the connection decides:
   * it counts method calls the same way, and serves Properties. */
  if (!_peer_lane_serves_interface (interface_name) ||
      !_peer_wire_limits_check_begin_call (_peer_connection_get_limits (lane->connection), NULL))
    {
      lane_redirect (lane, h->serial);
      return;
    }

  /* A thread-safe handler of an exported interface, its arguments of the
   * method's types: answered here, as the router answers it (an object
   * at the path comes first in GDBus's dispatch too). */
  if (!g_str_equal (interface_name, "org.freedesktop.DBus.Properties") &&
      (iface = _peer_router_lookup_object (lane->router, path, interface_name)) != NULL)
    {
      GDBusMethodInfo *info = g_dbus_interface_info_lookup_method (peer_interface_get_info (iface), member);
      PeerMethodFlags flags;
      guint index;

      if (info != NULL && _peer_interface_lookup_method (iface, info, &index) &&
          _peer_interface_get_method_handler (iface, index, &flags) && (flags & PEER_METHOD_FLAGS_THREAD_SAFE) &&
          _peer_interface_check_arguments (iface, index, parameters))
        {
          PeerCall *call;

          if (lane->watched || _peer_router_has_monitors (lane->router))
            lane_observe_frame (lane, TRUE, PEER_LANE_KIND_CALL, h->serial, 0, path, interface_name, member,
                                parameters, frame->fd_list);
          call = lane_call_new_by_name (lane, h->serial, iface, index, path, g_steal_pointer (&parameters),
                                        frame->fd_list);
          _peer_interface_dispatch (iface, call);
          peer_call_unref (call);
          return;
        }
    }

  job = g_new0 (LaneByName, 1);
  job->lane = lane_server_ref (lane);
  job->counted = TRUE;
  job->serial = h->serial;
  job->path = path;
  job->interface_name = interface_name;
  job->member = member;
  job->body = g_steal_pointer (&body);
  job->parameters = g_steal_pointer (&parameters);
  job->fd_list = frame->fd_list != NULL ? g_object_ref (frame->fd_list) : NULL;
  {
    GSource *source = g_idle_source_new ();

    /* As lane_invoke_in_context(), and the job freed however it ends. */
    g_source_set_priority (source, G_PRIORITY_DEFAULT);
    g_source_set_callback (source, serve_by_name_in_main_context, job, lane_by_name_free);
    g_source_set_static_name (source, "[libpeer] lane call by name");
    g_source_attach (source, lane->context);
    g_source_unref (source);
  }
}

/* Returns FALSE when the frame breaks the protocol. */
static gboolean
lane_handle_frame (LaneServer    *lane,
                   PeerLaneFrame *frame)
{
  PeerWireLimits *limits = _peer_connection_get_limits (lane->connection);
  g_autoptr(GError) refusal = NULL;
  const PeerLaneHeader *h = &frame->header;
  const LaneMethod *m;
  GVariant *parameters;
  LaneCall *lc;
  PeerCall *call;

  if (h->kind != PEER_LANE_KIND_CALL)
    return FALSE;
  /* The checks the D-Bus path makes too, in the ledger they share.
   * Over the limit: a chunked body arrives oversized (read and dropped),
   * an inline one is measured here; a blob's does not count (what the
   * peer has mapped does: over_mapped). The fds are closed with the
   * frame. */
  if (frame->over_mapped != NULL)
    {
      lane_refuse_gerror (lane, h->serial, frame->over_mapped);
      return TRUE;
    }
  if ((frame->oversized || !(h->flags & PEER_LANE_FLAG_BODY_IN_BLOB)) &&
      (!_peer_wire_limits_check_body_size (limits, "call", h->body_size, &refusal) || frame->oversized))
    {
      if (refusal == NULL)          /* the limit was raised since it arrived */
        g_set_error (&refusal, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                     "The call's body of %u bytes was over the limit as it arrived", h->body_size);
      lane_refuse_gerror (lane, h->serial, refusal);
      return TRUE;
    }
  if (frame->fd_list != NULL &&
      !_peer_wire_limits_check_n_fds (limits, g_unix_fd_list_get_length (frame->fd_list), &refusal))
    {
      lane_refuse_gerror (lane, h->serial, refusal);
      return TRUE;
    }
  /* Only a client that takes REDIRECT calls by name (no other could). */
  if (h->target == PEER_LANE_TARGET_BY_NAME && (h->flags & PEER_LANE_FLAG_REDIRECTABLE))
    {
      lane_handle_by_name (lane, frame);
      return TRUE;
    }
  if (h->target >= lane->methods->len)
    {
      lane_refuse (lane, h->serial, "org.freedesktop.DBus.Error.UnknownMethod", "No method has that lane id");
      return TRUE;
    }
  m = g_ptr_array_index (lane->methods, h->target);
  if ((h->flags & PEER_LANE_FLAG_REDIRECTABLE) && G_UNLIKELY (!lane_method_is_current (lane, (LaneMethod *) m)))
    {
      /* Unexported since Open: the client calls it by name instead. (A
       * client from before calls by name keeps the table it was given.) */
      lane_redirect (lane, h->serial);
      return TRUE;
    }

  /* Untrusted bytes: g_variant_new_from_bytes() reads any of them safely,
   * and the normal-form check refuses what GDBus's parser would. */
  parameters = _peer_lane_type_read (&m->in, frame->body);
  if (parameters == NULL)
    {
      lane_refuse (lane, h->serial, "org.freedesktop.DBus.Error.InvalidArgs",
                   "Arguments are not in normal form for their type");
      return TRUE;
    }

  if (lane->watched || _peer_router_has_monitors (lane->router))
    lane_observe_frame (lane, TRUE, PEER_LANE_KIND_CALL, h->serial, 0, m->object_path,
                 peer_interface_get_info (m->iface)->name,
                 _peer_interface_get_method_info (m->iface, m->method_index)->name, parameters, frame->fd_list);

  /* The peer's one budget: a lane is no way around the limit on its
   * GDBus connection, and a thread-safe call counts while it runs. */
  if (!_peer_wire_limits_check_begin_call (limits, &refusal))
    {
      g_variant_unref (parameters);
      lane_refuse_gerror (lane, h->serial, refusal);
      return TRUE;
    }

  /* The call borrows the connection and the interface: the lane reference
   * it holds keeps both alive (lane->connection, lane->methods). */
  call = _peer_call_new (g_atomic_pointer_exchange (&lane->spare_call, NULL),
                         &lane_transport, NULL, sizeof (LaneCall), lane->connection, m->iface, TRUE,
                         m->method_index, parameters, frame->fd_list);
  call->counted_in = _peer_connection_get_limits (lane->connection);
  call->object_path = m->object_path;
  lc = call->transport_data;
  lc->lane = lane_server_ref (lane);
  lc->method = m;
  lc->serial = h->serial;

  if (m->thread_safe)
    {
      /* The fast path: handled and answered on this thread. */
      _peer_interface_dispatch (m->iface, call);
      peer_call_unref (call);
      return TRUE;
    }

  lane_invoke_in_context (lane->context, dispatch_in_main_context, call, "[libpeer] lane call");
  return TRUE;
}

/* The lanes of one connection, as qdata on it; main context only. */
static GQuark
lanes_quark (void)
{
  return g_quark_from_static_string ("peer-lanes");
}

/* A lane that ended, to be taken off its connection's list: by id, and
 * holding the connection weakly, so that an idle never dispatched (the
 * server's context no longer runs) keeps nothing alive. */
typedef struct {
  GWeakRef connection;
  guint64 id;
} EndedLane;

static void
ended_lane_free (gpointer data)
{
  EndedLane *ended = data;

  g_weak_ref_clear (&ended->connection);
  g_free (ended);
}

static gboolean
lane_ended_in_main_context (gpointer user_data)
{
  EndedLane *ended = user_data;
  g_autoptr(PeerConnection) connection = g_weak_ref_get (&ended->connection);
  GPtrArray *lanes = connection != NULL ? g_object_get_qdata (G_OBJECT (connection), lanes_quark ()) : NULL;

  for (guint i = 0; lanes != NULL && i < lanes->len; i++)
    if (((LaneServer *) g_ptr_array_index (lanes, i))->id == ended->id)
      {
        g_ptr_array_remove_index (lanes, i);
        break;
      }
  return G_SOURCE_REMOVE;
}

/* --- the loops ------------------------------------------------------------- */

/* How long a loop with nothing to do keeps the spare buffer chunked bodies
 * were assembled in: a lane busy with large calls reuses it, an idle one
 * gives the memory back. */
#define LOOP_IDLE_MS 1000
/* Lanes a loop takes at once, each getting a turn: one while other loops
 * could take the rest (each lane that becomes ready goes to whichever
 * loop is free), more for a loop alone. */
#define LOOP_MAX_EVENTS 16
/* A turn: the frames of one lane served in a row, their replies written
 * together at its end (in one batch, one wake-up of the client), at
 * most PEER_LANE_TURN_FRAMES of them, and ending after a frame that
 * brings its bodies to LOOP_TURN_BYTES. The work a lane gets per turn is
 * bounded, so a lane with much to say does not hold the others back; a
 * lane with more is ready again as its turn ends, behind them. The only
 * lane of the process holds no other back: its turns are up to
 * LOOP_ALONE_FRAMES (a pipelining client's calls all read, and answered
 * in one write, and the client woken once for them). */
#define LOOP_TURN_BYTES (256 * 1024)
#define LOOP_ALONE_FRAMES 64
/* A lane whose last LOOP_LONE_TURNS turns each found one frame (a client
 * that calls once at a time) gets turns of one frame, without a read that
 * finds nothing after it: its reply goes at once, a syscall earlier.
 * Every LOOP_PROBE_EVERY-th of them reads on, so that a client that
 * began to pipeline gets long turns again. */
#define LOOP_LONE_TURNS 4
#define LOOP_PROBE_EVERY 16
/* How long a loop waits for the rest of a chunked frame once its header
 * came: the client writes them in a row, and a client that stops midway
 * must not hold the other lanes of its loop for long. */
#define LOOP_CHUNK_TIMEOUT_MS 2000

/* What the loops share: one epoll set with every lane in it, each armed
 * for one loop at a time (EPOLLONESHOT: the loop that takes a ready lane
 * has it alone for its turn, and arms it again after), so that whichever
 * loop is free serves whichever lane is ready, in the order they became
 * ready. Lanes given to loops for good would share them as unevenly as
 * they happened to be given out: with four clients on two loops, one
 * loop's lane served alone as fast as its client calls, the other
 * three's taking turns on the other loop. */
typedef struct {
  gatomicrefcount ref_count;    /* each loop's */
  int epoll_fd;
  int wake_fd;                  /* an eventfd, always readable once written: the loops are to end */
  /* EPOLLIN, and EPOLLONESHOT with more than one loop: one loop alone
   * need not arm a lane again after each turn. */
  guint32 lane_events;
} LaneLoopSet;

typedef struct {
  LaneLoopSet *set;             /* a reference */
  /* Only the loop's thread touches these */
  guint8 *buffer;               /* a frame's header and inline body */
  PeerLaneBuffers *buffers;     /* chunked calls are assembled here */
} LaneLoop;

/* The loops exist while some lane does (any server's in the process):
 * made with the first, ended with the last, so that a process with no
 * lanes has no threads or fds for them. A loop that is told to end frees
 * itself as its thread ends (the last lane may end on a loop's thread,
 * which cannot wait for itself), and the last of them the set. */
static GMutex loops_lock;
/* Protected by @loops_lock */
static LaneLoopSet *loop_set;
static guint n_loops;
static guint n_lanes_total;     /* lanes given to the loops, not yet handed back; atomic reads */

static void
lane_loop_set_unref (LaneLoopSet *set)
{
  if (!g_atomic_ref_count_dec (&set->ref_count))
    return;
  close (set->epoll_fd);
  close (set->wake_fd);
  g_free (set);
}

/* The limit applies to connected peers as soon as it changes. */
static gsize
lane_max_body (gpointer connection)
{
  return _peer_connection_get_max_message_size (connection);
}

/* On its loop: the lane is done (end of stream, a bad frame, shut). */
static void
lane_end (LaneLoop   *loop,
          LaneServer *lane,
          GError     *error)
{
  epoll_ctl (loop->set->epoll_fd, EPOLL_CTL_DEL, lane->fd, NULL);
  if (error != NULL && !g_atomic_int_get (&lane->shut))
    {
      /* A peer that breaks the lane protocol is broken or hostile; the
       * GDBus connection carries the same credentials, so it goes too. */
      g_autoptr(GError) reason = g_error_new (PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                                              "Bad lane frame: %s", error->message);
      g_debug ("libpeer: closing %s: %s", peer_connection_get_unique_name (lane->connection),
               reason->message);
      peer_connection_close (lane->connection, reason);
    }
  lane_server_shutdown (lane);
  /* Signals go back to the connection (if it still takes any). */
  _peer_connection_clear_signal_sink (lane->connection, lane);
  /* The connection's list, main context only, lets go of it there. */
  {
    EndedLane *ended = g_new0 (EndedLane, 1);
    GSource *source = g_idle_source_new ();

    g_weak_ref_init (&ended->connection, lane->connection);
    ended->id = lane->id;
    g_source_set_callback (source, lane_ended_in_main_context, ended, ended_lane_free);
    g_source_set_static_name (source, "[libpeer] lane ended");
    g_source_attach (source, lane->context);
    g_source_unref (source);
  }
  /* The loop's reference goes here: a lane holds nothing that must go in
   * the main context (its connection defers its own teardown there). */
  lane_server_unref (lane);
  /* The last lane ends the loops. */
  lane_loops_release ();
}

typedef enum {
  SERVE_NONE,                   /* nothing to read */
  SERVE_DONE,                   /* a frame read and handled */
  SERVE_END,                    /* the lane is done: *error says why, if it broke */
} ServeResult;

/* On its loop, in a turn of @lane: one frame of it (or a batch of them),
 * if there is one; *@out_frames and *@out_size say how many and how
 * large. */
static ServeResult
lane_serve_one (LaneLoop    *loop,
                LaneServer  *lane,
                guint       *out_frames,
                gsize       *out_size,
                GError     **error)
{
  /* Up to the most any limit allows; the peer's limit, which may change,
   * is applied to each call (lane_handle_frame()). */
  PeerLaneReadOptions options = {
    .max_fds = PEER_SERVER_MAX_FDS_PER_MESSAGE,
    .drain_oversized = TRUE,
    .nonblocking = TRUE,
    .buffers = loop->buffers,
    .max_body_func = lane_max_body,
    .max_body_data = lane->connection,
    .mapped_in = _peer_connection_get_limits (lane->connection),
  };
  g_autoptr(GError) read_error = NULL;
  PeerLaneFrame frame;
  gboolean ok;

  if (!_peer_lane_read_frame_full (lane->fd, loop->buffer, &options, &frame, &read_error))
    {
      if (g_error_matches (read_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return SERVE_NONE;
      if (read_error != NULL)             /* else the end of the stream */
        g_propagate_error (error, g_steal_pointer (&read_error));
      return SERVE_END;
    }
  if (_peer_connection_is_closed (lane->connection))
    {
      /* The connection went first; its "closed" handler will shut this
       * lane, but nothing more is served meanwhile. */
      _peer_lane_frame_clear (&frame);
      return SERVE_END;
    }
  *out_size = frame.header.body_size;
  if (frame.header.kind == PEER_LANE_KIND_BATCH)
    {
      PeerLaneFrame call;
      gsize offset = 0;

      /* The client takes batches too (an empty one says so). */
      g_atomic_int_set (&lane->peer_batches, TRUE);
      ok = TRUE;
      *out_frames = 0;
      while (ok && _peer_lane_batch_next (&frame, &offset, &call, error))
        {
          ok = lane_handle_frame (lane, &call);
          _peer_lane_frame_clear (&call);
          (*out_frames)++;
        }
      _peer_lane_frame_clear (&frame);
      if (error != NULL && *error != NULL)
        return SERVE_END;
    }
  else
    {
      ok = lane_handle_frame (lane, &frame);
      _peer_lane_frame_clear (&frame);
      *out_frames = 1;
    }
  if (!ok)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                           "Sent a lane frame only a server sends");
      return SERVE_END;
    }
  return SERVE_DONE;
}

/* On its loop: a turn of @lane. Returns FALSE when the lane ended (it is
 * gone), and in *out_drained whether the turn read all there was. */
static gboolean
lane_serve_turn (LaneLoop   *loop,
                 LaneServer *lane,
                 gboolean   *out_drained)
{
  g_autoptr(GError) error = NULL;
  ServeResult result = SERVE_NONE;
  gsize bytes = 0;
  guint served = 0;
  guint max_frames = g_atomic_int_get (&n_lanes_total) == 1 ? LOOP_ALONE_FRAMES : PEER_LANE_TURN_FRAMES;
  gboolean probe = lane->lone_turns < LOOP_LONE_TURNS || lane->lone_turns % LOOP_PROBE_EVERY == 0;

  if (!probe)
    max_frames = 1;

  /* Replies and signals written on this thread for this lane meanwhile
   * are queued, and written at the end of the turn. */
  current_lane = lane;
  while (served < max_frames && bytes < LOOP_TURN_BYTES)
    {
      guint frames = 0;
      gsize size = 0;

      result = lane_serve_one (loop, lane, &frames, &size, &error);
      if (result != SERVE_DONE)
        break;
      served += MAX (frames, 1);        /* an empty batch counts as one */
      bytes += size;
    }
  current_lane = NULL;
  lane_flush_turn (lane);
  if (result == SERVE_END)
    {
      lane_end (loop, lane, error);
      return FALSE;
    }
  if (served == 1 && (result == SERVE_NONE || !probe))
    lane->lone_turns++;
  else
    lane->lone_turns = 0;
  *out_drained = result == SERVE_NONE || !probe;
  return TRUE;
}

/* After a lane's turn: ready again, the loops take it again. Nothing of
 * it is touched once it is armed: another loop may have it at once (and
 * end it). */
static void
lane_rearm (LaneLoop   *loop,
            LaneServer *lane)
{
  struct epoll_event event = { .events = loop->set->lane_events, .data.ptr = lane };
  int fd = lane->fd;

  if (!(event.events & EPOLLONESHOT))
    return;                     /* armed still */
  g_atomic_int_inc (&lane->turns);
  if (epoll_ctl (loop->set->epoll_fd, EPOLL_CTL_MOD, fd, &event) != 0)
    g_debug ("libpeer: lane loop: epoll_ctl(): %s", g_strerror (errno));
}

static gpointer
lane_loop_thread (gpointer data)
{
  LaneLoop *loop = data;
  struct epoll_event events[LOOP_MAX_EVENTS];
  gboolean spare_held = FALSE;

  for (;;)
    {
      int n = epoll_wait (loop->set->epoll_fd, events, (loop->set->lane_events & EPOLLONESHOT) ? 1 : LOOP_MAX_EVENTS,
                          spare_held ? LOOP_IDLE_MS : -1);

      if (n < 0)
        {
          if (errno != EINTR)
            g_debug ("libpeer: lane loop: epoll_wait(): %s", g_strerror (errno));
          continue;
        }
      if (n == 0)
        {
          /* Idle: whatever a large call left in the spare buffer goes
           * (values made from it still hold it until they go). */
          _peer_lane_buffers_unref (loop->buffers);
          loop->buffers = _peer_lane_buffers_new ();
          spare_held = FALSE;
          continue;
        }
      for (int i = 0; i < n; i++)
        if (events[i].data.ptr == NULL)
          {
            /* The last lane is gone; the lanes taken with it were too. */
            goto out;
          }
      /* A turn for each lane taken; a lane with more is armed again
       * after its turn, behind the others that are ready. */
      for (int i = 0; i < n; i++)
        {
          LaneServer *lane = events[i].data.ptr;
          gboolean drained = FALSE, ended = FALSE;

          (void) g_atomic_int_get (&lane->turns);       /* after the loop that armed it */

          for (;;)
            {
              if (!lane_serve_turn (loop, lane, &drained))
                {
                  ended = TRUE;
                  break;
                }
              /* The only lane of the process: its client calling again
               * at once is caught without a wake-up, and served without
               * an epoll_wait(). Not with others: the client that calls
               * again fastest (one spinning itself) would be served first
               * every time, the others behind it; and CPU time spent
               * spinning is theirs. */
              if (!drained || n != 1 || g_atomic_int_get (&n_lanes_total) != 1 ||
                  !_peer_lane_spin_wait (&lane->spin, lane->fd))
                break;
            }
          if (!ended)
            lane_rearm (loop, lane);
        }
      spare_held = TRUE;
    }
out:
  /* Whoever told it to end did so under the lock: taken once, so that
   * the eventfd (which TSan does not see as a hand-off) is not the only
   * order between that and the frees below. */
  g_mutex_lock (&loops_lock);
  g_mutex_unlock (&loops_lock);
  _peer_lane_buffers_unref (loop->buffers);
  g_free (loop->buffer);
  lane_loop_set_unref (loop->set);
  g_free (loop);
  return NULL;
}

/* Tells every loop (none has a lane) to end; @loops_lock held. */
static void
lane_loops_stop_locked (void)
{
  guint64 one = 1;

  while (write (loop_set->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
  lane_loop_set_unref (loop_set);
  loop_set = NULL;
  n_loops = 0;
  g_atomic_int_set (&n_lanes_total, 0);
}

/* Main context, for each lane it gives the loops; @loops_lock held. */
static gboolean
lane_loops_start_locked (GError **error)
{
  struct epoll_event wake = { .events = EPOLLIN, .data.ptr = NULL };
  LaneLoopSet *set;

  if (n_lanes_total > 0)
    {
      g_atomic_int_inc (&n_lanes_total);
      return TRUE;
    }
  set = g_new0 (LaneLoopSet, 1);
  g_atomic_ref_count_init (&set->ref_count);    /* the loops' creator's, until they are made */
  set->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  set->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (set->epoll_fd < 0 || set->wake_fd < 0 ||
      epoll_ctl (set->epoll_fd, EPOLL_CTL_ADD, set->wake_fd, &wake) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "Lane loop: %s",
                   g_strerror (saved_errno));
      if (set->epoll_fd >= 0)
        close (set->epoll_fd);
      if (set->wake_fd >= 0)
        close (set->wake_fd);
      g_free (set);
      return FALSE;
    }
  loop_set = set;
  n_loops = _peer_lane_n_cpus ();
  set->lane_events = EPOLLIN | (n_loops > 1 ? EPOLLONESHOT : 0);
  for (guint i = 0; i < n_loops; i++)
    {
      LaneLoop *loop = g_new0 (LaneLoop, 1);

      g_atomic_ref_count_inc (&set->ref_count);
      loop->set = set;
      loop->buffer = g_malloc (PEER_LANE_BUFFER_SIZE);
      loop->buffers = _peer_lane_buffers_new ();
      g_thread_unref (g_thread_new ("peer-lane-loop", lane_loop_thread, loop));
    }
  g_atomic_int_set (&n_lanes_total, 1);
  return TRUE;
}

/* For each lane handed back (or not given after all); any thread, a
 * loop's included. */
static void
lane_loops_release (void)
{
  g_mutex_lock (&loops_lock);
  if (g_atomic_int_dec_and_test (&n_lanes_total))
    lane_loops_stop_locked ();
  g_mutex_unlock (&loops_lock);
}

/* Main context: gives @lane (and a reference to it) to the loops, until
 * lane_end(). */
static gboolean
lane_loops_add (LaneServer  *lane,
                GError     **error)
{
  struct epoll_event event = { .data.ptr = lane };

  g_mutex_lock (&loops_lock);
  if (!lane_loops_start_locked (error))
    {
      g_mutex_unlock (&loops_lock);
      return FALSE;
    }
  event.events = loop_set->lane_events;
  lane_server_ref (lane);
  g_atomic_int_inc (&lane->turns);
  if (epoll_ctl (loop_set->epoll_fd, EPOLL_CTL_ADD, lane->fd, &event) != 0)
    {
      int saved_errno = errno;

      g_mutex_unlock (&loops_lock);
      lane_server_unref (lane);
      lane_loops_release ();
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "epoll_ctl(): %s",
                   g_strerror (saved_errno));
      return FALSE;
    }
  g_mutex_unlock (&loops_lock);
  return TRUE;
}

static void
shut_lanes (gpointer data)
{
  GPtrArray *lanes = data;

  for (guint i = 0; i < lanes->len; i++)
    lane_server_shutdown (g_ptr_array_index (lanes, i));
  g_ptr_array_unref (lanes);
}

static void
on_lane_connection_closed (PeerConnection *connection,
                           const GError   *reason,
                           gpointer        user_data)
{
  /* Drops the list: every lane is shut, and freed once its loop and its
   * calls are done. The sink's reference to a lane goes too: nothing
   * more is sent to this peer. */
  g_object_set_qdata (G_OBJECT (connection), lanes_quark (), NULL);
  _peer_connection_set_signal_sink (connection, NULL, NULL, NULL);
}

/* Builds the method table: every method with a handler in every interface
 * the server exports, except the bus's and the lane's own. What is
 * exported later is called by name. */
static GPtrArray *
build_method_table (PeerRouter      *router,
                    GVariantBuilder *description)
{
  /* Read first: a change while the table is made is checked again. */
  guint serial = _peer_router_get_objects_serial (router);
  g_autoptr(GPtrArray) exports = _peer_router_dup_objects (router);
  GPtrArray *methods = g_ptr_array_new_with_free_func ((GDestroyNotify) lane_method_free);

  for (guint i = 0; i < exports->len; i++)
    {
      PeerRouterObject *object = g_ptr_array_index (exports, i);
      PeerInterface *iface = object->iface;
      GDBusInterfaceInfo *info = peer_interface_get_info (iface);

      if (g_str_equal (info->name, PEER_LANE_INTERFACE) || g_str_has_prefix (info->name, PEER_ROUTER_BUS_NAME))
        continue;
      for (guint j = 0; info->methods != NULL && info->methods[j] != NULL; j++)
        {
          GDBusMethodInfo *method = info->methods[j];
          g_autoptr(GString) in_sig = g_string_new ("(");
          g_autoptr(GString) out_sig = g_string_new ("(");
          PeerMethodFlags flags;
          LaneMethod *m;

          if (!_peer_interface_get_method_handler (iface, j, &flags))
            continue;
          for (guint k = 0; method->in_args != NULL && method->in_args[k] != NULL; k++)
            g_string_append (in_sig, method->in_args[k]->signature);
          for (guint k = 0; method->out_args != NULL && method->out_args[k] != NULL; k++)
            g_string_append (out_sig, method->out_args[k]->signature);
          g_string_append_c (in_sig, ')');
          g_string_append_c (out_sig, ')');

          m = g_new0 (LaneMethod, 1);
          m->iface = g_object_ref (iface);
          m->object_path = g_strdup (object->path);
          m->method_index = j;
          m->thread_safe = (flags & PEER_METHOD_FLAGS_THREAD_SAFE) != 0;
          m->validated = serial;
          _peer_lane_type_init (&m->in, in_sig->str);
          _peer_lane_type_init (&m->out, out_sig->str);
          g_variant_builder_add (description, "(usssssu)", methods->len,
                                 object->path, info->name, method->name,
                                 in_sig->str, out_sig->str, (guint32) flags);
          g_ptr_array_add (methods, m);
        }
    }
  return methods;
}

/* What Open needs: the interface's user data, freed with it. */
typedef struct {
  PeerRouter *router;           /* not a reference: it outlives the interface (unbound first) */
  GWeakRef server;              /* PeerServer */
} LaneService;

static void
lane_service_free (gpointer data)
{
  LaneService *service = data;

  g_weak_ref_clear (&service->server);
  g_free (service);
}

static void
handle_open (PeerCall *call,
             gpointer  user_data)
{
  LaneService *service = user_data;
  PeerRouter *router = service->router;
  g_autoptr(GObject) server = g_weak_ref_get (&service->server);
  PeerConnection *connection = peer_call_get_connection (call);
  GDBusConnection *dbus = peer_connection_get_dbus_connection (connection);
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GError) error = NULL;
  GVariantBuilder description;
  GPtrArray *lanes;
  LaneServer *lane;
  GVariantDict limits;
  PeerWireLimits *ledger = _peer_connection_get_limits (connection);
  gsize buffer_size, kernel_bytes = 0;
  int pair[2];

  if (!(g_dbus_connection_get_capabilities (dbus) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING))
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                              "A lane is handed over by fd passing, which this connection did not negotiate");
      return;
    }
  lanes = g_object_get_qdata (G_OBJECT (connection), lanes_quark ());
  if (lanes != NULL && lanes->len >= PEER_LANE_MAX_PER_CONNECTION)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                              "A connection may have %d lanes open", PEER_LANE_MAX_PER_CONNECTION);
      return;
    }
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    {
      int saved_errno = errno;
      peer_call_return_error (call, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                              "socketpair(): %s", g_strerror (saved_errno));
      return;
    }
  /* Room for large chunks, forced when this process may (CAP_NET_ADMIN),
   * else capped by the kernel at wmem_max (some 208 KiB), which still
   * holds an inline frame. Each end sends chunks of half its own buffer
   * (_peer_lane_chunk_size_for()). What the buffers can hold is the peer's to fill,
   * so it is sized from, and held in, the peer's quota. */
  buffer_size = CLAMP (_peer_wire_limits_get_max_queued (ledger) / (8 * PEER_LANE_MAX_PER_CONNECTION),
                       PEER_LANE_MIN_SOCKET_BUFFER, PEER_LANE_SOCKET_BUFFER);
  for (int i = 0; i < 2; i++)
    {
      int size = (int) buffer_size;

      if (setsockopt (pair[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        setsockopt (pair[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
      if (setsockopt (pair[i], SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt (pair[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
  /* A loop waits this long for a client to take a chunk, and this long
   * for the next chunk of a call. */
  {
    struct timeval tv = { PEER_LANE_SEND_TIMEOUT_MS / 1000, (PEER_LANE_SEND_TIMEOUT_MS % 1000) * 1000 };
    struct timeval chunk_tv = { LOOP_CHUNK_TIMEOUT_MS / 1000, (LOOP_CHUNK_TIMEOUT_MS % 1000) * 1000 };

    setsockopt (pair[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt (pair[0], SOL_SOCKET, SO_RCVTIMEO, &chunk_tv, sizeof chunk_tv);
  }

  for (int i = 0; i < 2; i++)
    {
      int granted = 0;
      socklen_t length = sizeof granted;

      if (getsockopt (pair[i], SOL_SOCKET, SO_SNDBUF, &granted, &length) == 0 && granted > 0)
        kernel_bytes += (gsize) granted;
    }
  if (!_peer_wire_limits_reserve (ledger, kernel_bytes, "A lane's socket buffers", &error))
    {
      close (pair[0]);
      close (pair[1]);
      peer_call_return_gerror (call, error);
      return;
    }

  fd_list = g_unix_fd_list_new_from_array (&pair[1], 1);   /* takes it */

  lane = g_new0 (LaneServer, 1);
  {
    static gsize next_id;

    lane->id = (guint64) g_atomic_pointer_add (&next_id, 1) + 1;   /* never reused */
  }
  lane->kernel_reserved = kernel_bytes;
  g_atomic_ref_count_init (&lane->ref_count);
  lane->fd = pair[0];
  lane->connection = g_object_ref (connection);
  lane->router = _peer_router_ref (router);
  g_weak_ref_init (&lane->server, server);
  lane->context = g_main_context_ref_thread_default ();
  _peer_lane_spin_init_for_peer (&lane->spin, peer_connection_get_pid (connection));
  lane->watched = _peer_debug_lanes_watched ();
  lane->chunk_size = _peer_lane_chunk_size_for (pair[0]);
  lane->max_chunked = _peer_connection_get_max_message_size (connection);
  g_mutex_init (&lane->write_lock);
  g_mutex_init (&lane->queue_lock);
  lane->queued = g_array_new (FALSE, FALSE, sizeof (QueuedFrame));
  lane->writing = g_array_new (FALSE, FALSE, sizeof (QueuedFrame));
  g_variant_builder_init (&description, G_VARIANT_TYPE ("a(usssssu)"));
  lane->methods = build_method_table (router, &description);

  if (lanes == NULL)
    {
      lanes = g_ptr_array_new_with_free_func ((GDestroyNotify) lane_server_unref);
      g_object_set_qdata_full (G_OBJECT (connection), lanes_quark (), lanes, shut_lanes);
      g_signal_connect (connection, "closed", G_CALLBACK (on_lane_connection_closed), NULL);
    }
  g_ptr_array_add (lanes, lane_server_ref (lane));     /* the connection's reference */

  if (!lane_loops_add (lane, &error))
    {
      g_ptr_array_remove (lanes, lane);
      lane_server_unref (lane);
      g_variant_builder_clear (&description);
      peer_call_return_gerror (call, error);
      return;
    }
  lane_server_unref (lane);             /* the loop and the connection hold it now */

  g_debug ("libpeer: lane opened for %s with %u methods", peer_connection_get_unique_name (connection),
           lane->methods->len);
  g_variant_dict_init (&limits, NULL);
  g_variant_dict_insert (&limits, "max-chunked-body", "u", (guint32) lane->max_chunked);
  g_variant_dict_insert (&limits, "calls-by-name", "b", TRUE);
  g_variant_dict_insert (&limits, "batched-frames", "b", TRUE);
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(ha(usssssu)@a{sv})", 0, &description,
                                                                 g_variant_dict_end (&limits)),
                                            fd_list);
}

/* --- signals ----------------------------------------------------------------- */

/* The connection's signal sink, under its lock, on the emitting thread: a
 * signal the peer wants goes as a frame on the lane that asked for them,
 * in order with the replies written on it. Monitors had their copy from
 * the router already; the log has it here. */
static void
lane_send_signal (GDBusMessage *signal,
                  gpointer      data)
{
  LaneServer *lane = data;
  GVariant *args = g_dbus_message_get_body (signal);
  g_autoptr(GVariant) body = NULL;

  if (g_atomic_int_get (&lane->shut))
    return;
  if (lane->watched)
    _peer_debug_peer_lane_message (signal, FALSE, "server lane",
                                   peer_connection_get_dbus_connection (lane->connection));
  body = g_variant_ref_sink (g_variant_new ("(sss@v)", g_dbus_message_get_path (signal),
                                            g_dbus_message_get_interface (signal),
                                            g_dbus_message_get_member (signal),
                                            g_variant_new_variant (args != NULL ? args : _peer_lane_unit_variant ())));
  lane_send (lane, PEER_LANE_KIND_SIGNAL, 0, body, g_dbus_message_get_unix_fd_list (signal));
}

/* TakeSignals(): the connection's newest lane carries the signals its
 * peer wants from now on, instead of the connection. */
static void
handle_take_signals (PeerCall *call,
                     gpointer  user_data)
{
  PeerConnection *connection = peer_call_get_connection (call);
  GPtrArray *lanes = g_object_get_qdata (G_OBJECT (connection), lanes_quark ());
  LaneServer *lane;

  lane = NULL;
  for (guint i = lanes != NULL ? lanes->len : 0; i-- > 0 && lane == NULL;)
    if (!g_atomic_int_get (&((LaneServer *) g_ptr_array_index (lanes, i))->shut))
      lane = g_ptr_array_index (lanes, i);
  if (lane == NULL || _peer_connection_is_closed (connection))
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED, "This connection has no lane open");
      return;
    }
  _peer_connection_set_signal_sink (connection, lane_send_signal, lane_server_ref (lane),
                                    (GDestroyNotify) lane_server_unref);
  peer_call_return_value (call, NULL);
}

static const char lane_xml[] =
  "<node>"
  " <interface name='" PEER_LANE_INTERFACE "'>"
  "  <method name='TakeSignals'/>"
  "  <method name='Open'>"
  "   <arg name='lane' type='h' direction='out'/>"
  "   <arg name='methods' type='a(usssssu)' direction='out'/>"
  "   <arg name='limits' type='a{sv}' direction='out'/>"
  "  </method>"
  " </interface>"
  "</node>";

PeerInterface *
_peer_lane_interface_new (PeerRouter *router,
                          PeerServer *server)
{
  const PeerMethodEntry entries[] = {
    { "Open", handle_open, PEER_METHOD_FLAGS_NONE },
    { "TakeSignals", handle_take_signals, PEER_METHOD_FLAGS_NONE },
  };
  g_autoptr(GError) error = NULL;
  PeerInterface *iface = peer_interface_new_for_xml (lane_xml, PEER_LANE_INTERFACE, &error);
  LaneService *service = g_new0 (LaneService, 1);

  g_assert_no_error (error);    /* static XML */
  service->router = router;
  g_weak_ref_init (&service->server, server);
  g_object_set_data_full (G_OBJECT (iface), "peer-lane-service", service, lane_service_free);
  peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), service, &error);
  g_assert_no_error (error);
  return iface;
}

