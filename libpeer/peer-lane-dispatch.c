/* peer-lane-dispatch.c: the calls a server's lane carries.
 *
 * A CALL frame, handed over by its loop (peer-lane-loop.c) through
 * _peer_lane_server_handle_frame(), is checked against the peer's limits
 * and made a PeerCall: by its id in the table Open handed over, or by
 * name (see "calls by name" below), or answered REDIRECT, having run
 * nothing. A thread-safe handler runs right there, on the loop; the
 * others in the server's main context. Replies and errors, from whatever
 * thread answers, go back through the loop's _peer_lane_loop_send(),
 * which queues them or writes them at once. The lane object is
 * peer-lane-server.c's.
 */
#include "config.h"

#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-lane-private.h"
#include "peer-lane-server-private.h"
#include "peer-object-registry-private.h"
#include "peer-router-private.h"
#include "peer-server-private.h"

/* --- calls and their replies ------------------------------------------------- */

typedef struct {
  LaneServer *lane;
  const LaneMethod *method;     /* lives as long as lane->methods; NULL: by name */
  guint32 serial;
} LaneCall;

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

/* Any thread: call @serial is not served on the lane (nothing of it
 * ran): the client sends it on its D-Bus connection. Not observed: the
 * log and monitors see the call once, where it is served. */
static void
lane_redirect (LaneServer *lane,
               guint32     serial)
{
  _peer_lane_loop_send_observed (lane, PEER_LANE_KIND_REDIRECT, serial, _peer_lane_unit_variant (), NULL, NULL);
}

static void
lane_call_send (PeerCall     *call,
                PeerLaneKind  kind,
                GVariant     *body,
                GUnixFDList  *fd_list)
{
  LaneCall *lc = call->transport_data;

  _peer_lane_loop_send (lc->lane, kind, lc->serial, body, fd_list);
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

      _peer_lane_loop_send_observed (lc->lane, PEER_LANE_KIND_REPLY, lc->serial, boxed, value, fd_list);
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
  _peer_lane_server_unref (lane);
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

  _peer_lane_loop_send (lane, PEER_LANE_KIND_ERROR, serial, body, NULL);
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
  lc->lane = _peer_lane_server_ref (lane);
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
  _peer_lane_server_unref (job->lane);
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
    _peer_lane_server_observe_frame (lane, TRUE, PEER_LANE_KIND_CALL, job->serial, 0, job->path, job->interface_name,
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

          _peer_lane_loop_send_observed (lane, PEER_LANE_KIND_REPLY, job->serial, boxed, reply, NULL);
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
            _peer_lane_server_observe_frame (lane, TRUE, PEER_LANE_KIND_CALL, h->serial, 0, path, interface_name,
                                             member, parameters, frame->fd_list);
          call = lane_call_new_by_name (lane, h->serial, iface, index, path, g_steal_pointer (&parameters),
                                        frame->fd_list);
          _peer_interface_dispatch (iface, call);
          peer_call_unref (call);
          return;
        }
    }

  job = g_new0 (LaneByName, 1);
  job->lane = _peer_lane_server_ref (lane);
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

/* --- a frame from the loop --------------------------------------------------- */

/* Returns FALSE when the frame breaks the protocol. */
gboolean
_peer_lane_server_handle_frame (LaneServer    *lane,
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
    _peer_lane_server_observe_frame (lane, TRUE, PEER_LANE_KIND_CALL, h->serial, 0, m->object_path,
                                     peer_interface_get_info (m->iface)->name,
                                     _peer_interface_get_method_info (m->iface, m->method_index)->name,
                                     parameters, frame->fd_list);

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
  lc->lane = _peer_lane_server_ref (lane);
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
