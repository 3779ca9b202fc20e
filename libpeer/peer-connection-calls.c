/* peer-connection-calls.c: how a peer's method calls reach PeerInterface
 * handlers as PeerCalls, and how their replies leave, on the D-Bus
 * connection: either GDBus dispatches a call in the server's main context
 * (the GDBus transport), or the router answers it in GDBus's worker
 * thread (the router's transport). Both build their replies here, checked
 * as GDBus would check them, stamped as a bus would, and counted in the
 * peer's outgoing queue. */
#include "config.h"

#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-router-private.h"
#include "peer-wire-private.h"

/* One per (connection, interface) registration; owned by GDBus, freed when
 * the object is unregistered. @connection is not a reference: the
 * PeerConnection unregisters everything before it goes away, and GDBus
 * dispatches nothing for an unregistered object. */
typedef struct {
  PeerConnection *connection;
  PeerInterface *iface;
  char *object_path;
} Registration;

static void
registration_free (gpointer data)
{
  Registration *reg = data;

  g_object_unref (reg->iface);
  g_free (reg->object_path);
  g_free (reg);
}

/* --- replies ------------------------------------------------------------ */

/* Who a reply comes from, as a bus would stamp it: the bus answers for
 * its own interfaces, the server for everything else. Bus-style client
 * libraries record the sender of a method's reply as the owner of the
 * name they called, and take signals only from that owner. */
static const char *
reply_sender (GDBusMessage *request)
{
  const char *interface_name = g_dbus_message_get_interface (request);

  if (interface_name != NULL && g_str_has_prefix (interface_name, PEER_ROUTER_BUS_NAME) &&
      (interface_name[sizeof PEER_ROUTER_BUS_NAME - 1] == '\0' ||
       g_str_equal (interface_name, PEER_ROUTER_MONITORING_INTERFACE)))
    return PEER_ROUTER_BUS_NAME;
  return PEER_ROUTER_SERVER_NAME;
}

/* Only for a bus-style peer: a plain peer-to-peer one gets what GDBus
 * would send it, and two header fields fewer to write. */
static void
stamp_reply (PeerConnection *self,
             GDBusMessage   *reply,
             const char     *sender)
{
  if (!_peer_connection_said_hello (self))
    return;
  g_dbus_message_set_sender (reply, sender);
  g_dbus_message_set_destination (reply, peer_connection_get_unique_name (self));
}

/* Replies are built here rather than with g_dbus_method_invocation_return_*(),
 * which would queue them where libpeer cannot count them: every reply goes
 * out through _peer_wire_send() (see "the outgoing queue" in peer-wire.c). */
static void
send_error (PeerConnection *self,
            GDBusMessage   *request,
            const char     *sender,
            const char     *error_name,
            const char     *message)
{
  g_autoptr(GDBusMessage) reply = NULL;

  if (g_dbus_message_get_flags (request) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED)
    return;
  reply = g_dbus_message_new_method_error_literal (request, error_name, message);
  stamp_reply (self, reply, sender);
  _peer_connection_send_message (self, reply);
}

/* Any thread: an error reply to @request, named from @error's domain. */
void
_peer_connection_send_error_reply (PeerConnection *self,
                                   GDBusMessage   *request,
                                   const GError   *error)
{
  g_autofree char *name = g_dbus_error_encode_gerror (error);

  send_error (self, request, PEER_ROUTER_BUS_NAME, name, error->message);
}

/* A reply with fds to a peer that did not negotiate fd passing: GDBus
 * would try, fail in its worker and drop the whole connection, so the
 * call is answered NotSupported instead. TRUE when it was. */
static gboolean
refuse_fds_nobody_can_take (PeerCall     *call,
                            GDBusMessage *request,
                            GUnixFDList  *fd_list)
{
  if (fd_list == NULL || g_unix_fd_list_get_length (fd_list) == 0 ||
      peer_connection_can_pass_fds (call->connection))
    return FALSE;
  g_debug ("libpeer: %s.%s replied with fds to a peer that cannot receive them",
           peer_call_get_interface_name (call), peer_call_get_method_name (call));
  send_error (call->connection, request, reply_sender (request), "org.libpeer.Error.NotSupported",
              "The reply carries file descriptors, but this connection did not negotiate fd passing");
  return TRUE;
}

/* The reply to @request, from either transport: checked as GDBus would
 * check it, stamped, and counted on its way out. */
static void
send_reply (PeerCall     *call,
            GDBusMessage *request,
            GVariant     *value,
            GUnixFDList  *fd_list)
{
  PeerConnection *self = call->connection;
  const char *sender = reply_sender (request);
  const GVariantType *expected;
  g_autoptr(GDBusMessage) reply = NULL;
  g_autoptr(GVariant) unit = NULL;
  g_autoptr(GError) size_error = NULL;

  if (refuse_fds_nobody_can_take (call, request, fd_list))
    return;
  if (g_dbus_message_get_flags (request) & G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED)
    return;

  if (value == NULL)
    value = unit = g_variant_ref_sink (g_variant_new_tuple (NULL, 0));
  expected = _peer_interface_get_reply_type (call->iface, call->method_index);
  if (!g_variant_is_of_type (value, expected))
    {
      /* A handler bug, not the peer's doing; GDBus answers the same way. */
      g_critical ("libpeer: %s.%s replied with type '%s' instead of '%.*s'",
                  peer_call_get_interface_name (call), peer_call_get_method_name (call),
                  g_variant_get_type_string (value), (int) g_variant_type_get_string_length (expected),
                  g_variant_type_peek_string (expected));
      send_error (self, request, sender, "org.libpeer.Error.Failed",
                  "The handler replied with the wrong type");
      return;
    }
  if (!_peer_wire_limits_check_body_size (_peer_connection_get_limits (self), "reply", g_variant_get_size (value),
                                          &size_error))
    {
      g_autofree char *name = _peer_wire_error_name (size_error);

      g_debug ("libpeer: %s.%s: %s", peer_call_get_interface_name (call),
               peer_call_get_method_name (call), size_error->message);
      send_error (self, request, sender, name, size_error->message);
      return;
    }

  reply = g_dbus_message_new_method_reply (request);
  g_dbus_message_set_body (reply, value);
  if (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > 0)
    g_dbus_message_set_unix_fd_list (reply, fd_list);
  stamp_reply (self, reply, sender);
  _peer_connection_send_message (self, reply);
}

/* --- the GDBus transport: calls GDBus dispatched in the main context ---- */

static void
gdbus_return_value (PeerCall    *call,
                    GVariant    *value,
                    GUnixFDList *fd_list)
{
  g_autoptr(GDBusMethodInvocation) invocation = g_steal_pointer (&call->transport_data);
  GDBusMessage *request = g_dbus_method_invocation_get_message (invocation);

  if (_peer_wire_message_is_wrapped (request))
    {
      if (refuse_fds_nobody_can_take (call, request, fd_list))
        return;
      _peer_wire_return_wrapped (g_steal_pointer (&invocation), _peer_connection_get_limits (call->connection), value, fd_list);
      return;
    }
  send_reply (call, request, value, fd_list);
}

static void
gdbus_return_error (PeerCall   *call,
                    const char *error_name,
                    const char *message)
{
  g_autoptr(GDBusMethodInvocation) invocation = g_steal_pointer (&call->transport_data);
  GDBusMessage *request = g_dbus_method_invocation_get_message (invocation);

  send_error (call->connection, request, reply_sender (request), error_name, message);
}

static gboolean
gdbus_finalize (PeerCall *call)
{
  g_clear_object (&call->transport_data);
  return FALSE;
}

static const PeerCallTransport gdbus_transport = {
  gdbus_return_value,
  gdbus_return_error,
  gdbus_finalize,
};

/* --- the router's transport: calls answered in GDBus's worker thread ---- */

static void
router_return_value (PeerCall    *call,
                     GVariant    *value,
                     GUnixFDList *fd_list)
{
  g_autoptr(GDBusMessage) request = g_steal_pointer (&call->transport_data);

  send_reply (call, request, value, fd_list);
}

static void
router_return_error (PeerCall   *call,
                     const char *error_name,
                     const char *message)
{
  g_autoptr(GDBusMessage) request = g_steal_pointer (&call->transport_data);

  send_error (call->connection, request, reply_sender (request), error_name, message);
}

static gboolean
router_finalize (PeerCall *call)
{
  g_clear_object (&call->transport_data);
  return FALSE;
}

static const PeerCallTransport router_transport = {
  router_return_value,
  router_return_error,
  router_finalize,
};

/* Calls to a max of calls in flight are refused before they start. */
static gboolean
begin_counted_call (PeerConnection *self,
                    GDBusMessage   *request)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;

  if (_peer_wire_limits_check_begin_call (_peer_connection_get_limits (self), &error))
    return TRUE;
  g_debug ("libpeer: refusing %s.%s from %s: %s", g_dbus_message_get_interface (request),
           g_dbus_message_get_member (request), peer_connection_get_unique_name (self), error->message);
  name = _peer_wire_error_name (error);
  send_error (self, request, reply_sender (request), name, error->message);
  return FALSE;
}

/* Worker thread: @request (transfer none), validated, to method @index of
 * @iface, whose handler is thread-safe and whose arguments it matches. */
void
_peer_connection_dispatch (PeerConnection *self,
                           PeerInterface  *iface,
                           guint           index,
                           GDBusMessage   *request)
{
  GVariant *body = g_dbus_message_get_body (request);
  PeerCall *call;

  if (!begin_counted_call (self, request))
    return;
  call = _peer_call_new (NULL, &router_transport, g_object_ref (request), 0, self, iface, FALSE, index,
                         body != NULL ? g_variant_ref (body) : g_variant_ref_sink (g_variant_new_tuple (NULL, 0)),
                         g_dbus_message_get_unix_fd_list (request));
  call->counted_in = _peer_connection_get_limits (self);
  /* An interface at several paths: the call says which object. */
  if (g_strcmp0 (peer_interface_get_object_path (iface), g_dbus_message_get_path (request)) != 0)
    _peer_call_set_object_path (call, g_dbus_message_get_path (request));
  _peer_interface_dispatch (iface, call);
  peer_call_unref (call);
}

void
_peer_connection_dispatch_invocation (PeerConnection        *self,
                                      PeerInterface         *iface,
                                      const char            *object_path,
                                      GDBusMethodInvocation *invocation)
{
  GDBusMethodInfo *info = (GDBusMethodInfo *) g_dbus_method_invocation_get_method_info (invocation);
  GDBusMessage *request = g_dbus_method_invocation_get_message (invocation);
  GUnixFDList *fd_list = g_dbus_message_get_unix_fd_list (request);
  PeerCall *call;
  guint index;

  if (info == NULL || !_peer_interface_lookup_method (iface, info, &index))
    {
      g_dbus_method_invocation_return_error (invocation, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                             "No such method %s.%s",
                                             g_dbus_method_invocation_get_interface_name (invocation),
                                             g_dbus_method_invocation_get_method_name (invocation));
      return;
    }
  if (!begin_counted_call (self, request))
    {
      g_object_unref (invocation);
      return;
    }

  call = _peer_call_new (NULL, &gdbus_transport, invocation, 0, self, iface, FALSE,
                         index, g_variant_ref (g_dbus_method_invocation_get_parameters (invocation)),
                         fd_list);
  call->counted_in = _peer_connection_get_limits (self);
  if (g_strcmp0 (peer_interface_get_object_path (iface), object_path) != 0)
    _peer_call_set_object_path (call, object_path);
  _peer_interface_dispatch (iface, call);
  peer_call_unref (call);
}

static void
on_method_call (GDBusConnection       *connection,
                const char            *sender,
                const char            *object_path,
                const char            *interface_name,
                const char            *method_name,
                GVariant              *parameters,
                GDBusMethodInvocation *invocation,
                gpointer               user_data)
{
  Registration *reg = user_data;

  _peer_connection_dispatch_invocation (reg->connection, reg->iface, reg->object_path, invocation);
}

static GVariant *
on_get_property (GDBusConnection *connection,
                 const char      *sender,
                 const char      *object_path,
                 const char      *interface_name,
                 const char      *property_name,
                 GError         **error,
                 gpointer         user_data)
{
  Registration *reg = user_data;

  return _peer_interface_get_property (reg->iface, reg->connection, reg->object_path, property_name, error);
}

static gboolean
on_set_property (GDBusConnection *connection,
                 const char      *sender,
                 const char      *object_path,
                 const char      *interface_name,
                 const char      *property_name,
                 GVariant        *value,
                 GError         **error,
                 gpointer         user_data)
{
  Registration *reg = user_data;

  return _peer_interface_set_property_from_peer (reg->iface, reg->connection, reg->object_path,
                                                 property_name, value, error);
}

static const GDBusInterfaceVTable interface_vtable = {
  on_method_call,
  on_get_property,
  on_set_property,
  { 0 }
};

guint
_peer_connection_register_calls (PeerConnection *self,
                                 const char     *object_path,
                                 PeerInterface  *iface,
                                 GError        **error)
{
  Registration *reg = g_new0 (Registration, 1);

  reg->connection = self;
  reg->iface = g_object_ref (iface);
  reg->object_path = g_strdup (object_path);
  return g_dbus_connection_register_object (peer_connection_get_dbus_connection (self),
                                            object_path,
                                            peer_interface_get_info (iface),
                                            &interface_vtable, reg, registration_free,
                                            error);
}
