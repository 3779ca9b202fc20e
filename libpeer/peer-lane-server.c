/* peer-lane-server.c: the server's end of a lane.
 *
 * Open() makes a socketpair and keeps one end, which a small fixed set of
 * loop threads (one per CPU the process may use, made with the first lane,
 * ended with the last) serve together from one epoll set: the thread count
 * does not grow with the number of lanes, and whichever loop is free takes
 * whichever lane is ready next (see "the loops" in peer-lane-loop.c). A
 * loop serves a lane by turns: up to PEER_LANE_TURN_FRAMES frames of it in
 * a row (peer-lane-frame.c), then the others that are ready, so that a
 * busy lane cannot starve the others. A call to a handler flagged
 * PEER_METHOD_FLAGS_THREAD_SAFE runs right there, on the loop thread; the
 * replies and signals written on the loop during a turn are queued and
 * written together as it ends (in one batch, to a client that reads them:
 * one syscall, one wake-up of the client). Replies from other threads are
 * written from whatever thread replies: no hop at all. Other handlers are
 * handed to the server's main context (correct, one hop). Large replies go
 * in chunks when the loop writes them (within a send timeout), as sealed
 * memfd blobs otherwise: see _peer_lane_loop_send(). What a loop reads
 * into (a frame's buffer, the spare one chunked bodies are assembled in)
 * is the loop's, not each lane's, and the spare is let go when the loop
 * has been idle a while.
 *
 * Calls to methods the table Open handed over does not list (objects
 * exported since, a subtree's children, Properties) come by name and are
 * served as the peer's GDBus connection would serve them, by the same
 * code, or handed back unrun to be made there: see "calls by name"
 * in peer-lane-dispatch.c, which says which and why.
 *
 * The lane's code is in three files, by concern, the calls between
 * them few and named in peer-lane-server-private.h:
 *  - this one: the lane object (LaneServer, in
 *    peer-lane-server-private.h) and its lifetime, its connection's
 *    list of lanes, org.libpeer.Lane1 (Open, which builds the method
 *    table, and TakeSignals with the signal sink it sets);
 *  - peer-lane-loop.c: the loop threads, their turns, and each lane's
 *    reading and writing (the queue, the turn's batch, the socket
 *    buffers); it knows frames and lanes, and hands each CALL frame
 *    to dispatch through one entry point,
 *    _peer_lane_server_handle_frame();
 *  - peer-lane-dispatch.c: a CALL frame made a PeerCall (by table id
 *    or by name), its handler run (on the loop or in the main
 *    context), its reply or error written through the loop's
 *    _peer_lane_loop_send().
 */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-debug-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-lane-private.h"
#include "peer-lane-server-private.h"
#include "peer-router-private.h"
#include "peer-server-private.h"

/* --- server: a lane -------------------------------------------------------- */

static void
lane_method_free (LaneMethod *m)
{
  _peer_lane_type_clear (&m->in);
  _peer_lane_type_clear (&m->out);
  g_object_unref (m->iface);
  g_free (m->object_path);
  g_free (m);
}

LaneServer *
_peer_lane_server_ref (LaneServer *lane)
{
  g_atomic_ref_count_inc (&lane->ref_count);
  return lane;
}

void
_peer_lane_server_unref (LaneServer *lane)
{
  if (!g_atomic_ref_count_dec (&lane->ref_count))
    return;
  close (lane->fd);
  _peer_wire_limits_release (_peer_connection_get_limits (lane->connection), lane->kernel_reserved);
  _peer_lane_loop_clear_queued (lane->queued);
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
void
_peer_lane_server_shutdown (LaneServer *lane)
{
  if (g_atomic_int_compare_and_exchange (&lane->shut, FALSE, TRUE))
    shutdown (lane->fd, SHUT_RDWR);
}

/* Any thread: the log, the capture and monitors see a frame as the D-Bus
 * message it stands for, between the peer and the server's unique name,
 * as they see the peer's messages on its D-Bus connection. */
void
_peer_lane_server_observe_frame (LaneServer   *lane,
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

/* --- the connection's lanes -------------------------------------------------- */

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

/* Any thread (a loop's, as @lane ends): the connection's list, main
 * context only, lets go of it there. */
void
_peer_lane_server_unlist (LaneServer *lane)
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

static void
shut_lanes (gpointer data)
{
  GPtrArray *lanes = data;

  for (guint i = 0; i < lanes->len; i++)
    _peer_lane_server_shutdown (g_ptr_array_index (lanes, i));
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

/* --- Open -------------------------------------------------------------------- */

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
  gsize kernel_bytes = 0;
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
  if (!_peer_lane_loop_prepare_socket (pair, ledger, &kernel_bytes, &error))
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
      lanes = g_ptr_array_new_with_free_func ((GDestroyNotify) _peer_lane_server_unref);
      g_object_set_qdata_full (G_OBJECT (connection), lanes_quark (), lanes, shut_lanes);
      g_signal_connect (connection, "closed", G_CALLBACK (on_lane_connection_closed), NULL);
    }
  g_ptr_array_add (lanes, _peer_lane_server_ref (lane));     /* the connection's reference */

  if (!_peer_lane_loop_add (lane, &error))
    {
      g_ptr_array_remove (lanes, lane);
      _peer_lane_server_unref (lane);
      g_variant_builder_clear (&description);
      peer_call_return_gerror (call, error);
      return;
    }
  _peer_lane_server_unref (lane);             /* the loop and the connection hold it now */

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
  _peer_lane_loop_send (lane, PEER_LANE_KIND_SIGNAL, 0, body, g_dbus_message_get_unix_fd_list (signal));
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
  _peer_connection_set_signal_sink (connection, lane_send_signal, _peer_lane_server_ref (lane),
                                    (GDestroyNotify) _peer_lane_server_unref);
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
