/* peer-bus-compat.c: answering what bus clients ask the bus.
 *
 * Tools built for a message bus (busctl, dbus-next, python-dbus's
 * BusConnection, GDBus with G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION)
 * start with Hello and go on with AddMatch and GetNameOwner. On a private
 * server there is no bus, so the server plays its part: on its private bus
 * the server is the only service, every well-known name belongs to it
 * (":1.0"), and each peer is alone with it.
 */
#include "config.h"

#include <unistd.h>

#include <gio/gio.h>

#include "peer-bus-compat-private.h"
#include "peer-call.h"
#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-server.h"

static const char bus_xml[] =
  "<node>"
  " <interface name='org.freedesktop.DBus'>"
  "  <method name='Hello'><arg direction='out' type='s'/></method>"
  "  <method name='RequestName'><arg direction='in' type='s'/><arg direction='in' type='u'/><arg direction='out' type='u'/></method>"
  "  <method name='ReleaseName'><arg direction='in' type='s'/><arg direction='out' type='u'/></method>"
  "  <method name='StartServiceByName'><arg direction='in' type='s'/><arg direction='in' type='u'/><arg direction='out' type='u'/></method>"
  "  <method name='NameHasOwner'><arg direction='in' type='s'/><arg direction='out' type='b'/></method>"
  "  <method name='ListNames'><arg direction='out' type='as'/></method>"
  "  <method name='ListActivatableNames'><arg direction='out' type='as'/></method>"
  "  <method name='AddMatch'><arg direction='in' type='s'/></method>"
  "  <method name='RemoveMatch'><arg direction='in' type='s'/></method>"
  "  <method name='GetNameOwner'><arg direction='in' type='s'/><arg direction='out' type='s'/></method>"
  "  <method name='ListQueuedOwners'><arg direction='in' type='s'/><arg direction='out' type='as'/></method>"
  "  <method name='GetConnectionUnixUser'><arg direction='in' type='s'/><arg direction='out' type='u'/></method>"
  "  <method name='GetConnectionUnixProcessID'><arg direction='in' type='s'/><arg direction='out' type='u'/></method>"
  "  <method name='GetConnectionCredentials'><arg direction='in' type='s'/><arg direction='out' type='a{sv}'/></method>"
  "  <method name='GetId'><arg direction='out' type='s'/></method>"
  "  <signal name='NameOwnerChanged'><arg type='s'/><arg type='s'/><arg type='s'/></signal>"
  "  <signal name='NameLost'><arg type='s'/></signal>"
  "  <signal name='NameAcquired'><arg type='s'/></signal>"
  "  <property name='Features' type='as' access='read'/>"
  "  <property name='Interfaces' type='as' access='read'/>"
  " </interface>"
  "</node>";

/* Who a name stands for, from the caller's point of view. */
typedef enum { NAME_NONE, NAME_BUS, NAME_SERVER, NAME_CALLER } NameOwner;

static NameOwner
resolve_name (PeerCall   *call,
              const char *name)
{
  PeerConnection *caller = peer_call_get_connection (call);

  if (g_str_equal (name, PEER_BUS_COMPAT_NAME))
    return NAME_BUS;
  if (g_str_equal (name, peer_connection_get_unique_name (caller)))
    return NAME_CALLER;
  if (g_str_equal (name, PEER_BUS_COMPAT_SERVER_UNIQUE_NAME))
    return NAME_SERVER;
  if (name[0] == ':')
    return NAME_NONE;             /* other peers are invisible to each other */
  return NAME_SERVER;
}

static gboolean
check_bus_name (PeerCall   *call,
                const char *name)
{
  if (g_dbus_is_name (name))
    return TRUE;
  peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                          "'%s' is not a valid bus name", name);
  return FALSE;
}

static void
handle_hello (PeerCall *call,
              gpointer  user_data)
{
  PeerConnection *caller = peer_call_get_connection (call);
  PeerInterface *iface = peer_call_get_interface (call);
  const char *unique = peer_connection_get_unique_name (caller);

  if (!_peer_connection_take_hello (caller))
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_FAILED,
                              "Already handled an Hello message");
      return;
    }
  peer_call_return_value (call, g_variant_new ("(s)", unique));
  /* Bus clients insist the Hello reply comes first: signals held for this
   * peer go out only now. */
  _peer_connection_open_signal_gate (caller);
  /* As a bus does, right after the reply. */
  peer_interface_emit_signal (iface, caller, "NameAcquired", g_variant_new ("(s)", unique), NULL);
}

static void
handle_request_name (PeerCall *call,
                     gpointer  user_data)
{
  const char *name;
  guint32 flags;

  g_variant_get (peer_call_get_parameters (call), "(&su)", &name, &flags);
  if (!check_bus_name (call, name))
    return;
  if (name[0] == ':')
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                              "Cannot acquire a unique name");
      return;
    }
  /* 1 = DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER: nobody else is here. */
  peer_call_return_value (call, g_variant_new ("(u)", 1));
}

static void
handle_release_name (PeerCall *call,
                     gpointer  user_data)
{
  const char *name;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &name);
  if (!check_bus_name (call, name))
    return;
  /* 1 = DBUS_RELEASE_NAME_REPLY_RELEASED */
  peer_call_return_value (call, g_variant_new ("(u)", 1));
}

static void
handle_start_service_by_name (PeerCall *call,
                              gpointer  user_data)
{
  const char *name;
  guint32 flags;

  g_variant_get (peer_call_get_parameters (call), "(&su)", &name, &flags);
  if (!check_bus_name (call, name))
    return;
  if (resolve_name (call, name) == NAME_NONE)
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
                              "The name %s was not provided by any .service files", name);
      return;
    }
  /* 2 = DBUS_START_REPLY_ALREADY_RUNNING */
  peer_call_return_value (call, g_variant_new ("(u)", 2));
}

static void
handle_name_has_owner (PeerCall *call,
                       gpointer  user_data)
{
  const char *name;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &name);
  if (!check_bus_name (call, name))
    return;
  peer_call_return_value (call, g_variant_new ("(b)", resolve_name (call, name) != NAME_NONE));
}

static void
handle_list_names (PeerCall *call,
                   gpointer  user_data)
{
  const char *names[] = {
    PEER_BUS_COMPAT_NAME,
    PEER_BUS_COMPAT_SERVER_UNIQUE_NAME,
    peer_connection_get_unique_name (peer_call_get_connection (call)),
    NULL
  };

  peer_call_return_value (call, g_variant_new ("(^as)", names));
}

static void
handle_list_activatable_names (PeerCall *call,
                               gpointer  user_data)
{
  const char *names[] = { PEER_BUS_COMPAT_NAME, NULL };

  peer_call_return_value (call, g_variant_new ("(^as)", names));
}

static void
handle_match (PeerCall *call,
              gpointer  user_data)
{
  /* Every signal the server emits reaches every peer already; a match
   * rule changes nothing on a private connection. */
  peer_call_return_value (call, NULL);
}

static void
handle_get_name_owner (PeerCall *call,
                       gpointer  user_data)
{
  const char *name;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &name);
  if (!check_bus_name (call, name))
    return;
  switch (resolve_name (call, name))
    {
    case NAME_BUS:
      peer_call_return_value (call, g_variant_new ("(s)", PEER_BUS_COMPAT_NAME));
      break;
    case NAME_SERVER:
      peer_call_return_value (call, g_variant_new ("(s)", PEER_BUS_COMPAT_SERVER_UNIQUE_NAME));
      break;
    case NAME_CALLER:
      peer_call_return_value (call, g_variant_new ("(s)", name));
      break;
    case NAME_NONE:
    default:
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER,
                              "Could not get owner of name '%s': no such name", name);
      break;
    }
}

static void
handle_list_queued_owners (PeerCall *call,
                           gpointer  user_data)
{
  const char *name;
  const char *owners[2] = { NULL, NULL };

  g_variant_get (peer_call_get_parameters (call), "(&s)", &name);
  if (!check_bus_name (call, name))
    return;
  switch (resolve_name (call, name))
    {
    case NAME_BUS:    owners[0] = PEER_BUS_COMPAT_NAME; break;
    case NAME_SERVER: owners[0] = PEER_BUS_COMPAT_SERVER_UNIQUE_NAME; break;
    case NAME_CALLER: owners[0] = name; break;
    case NAME_NONE:
    default:
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER,
                              "Could not get owners of name '%s': no such name", name);
      return;
    }
  peer_call_return_value (call, g_variant_new ("(^as)", owners));
}

/* The credentials behind a name: the caller's own, or the server process's
 * for the bus and the server. Other peers' stay private. */
static gboolean
lookup_credentials (PeerCall *call,
                    guint32  *out_uid,
                    guint32  *out_pid)
{
  PeerConnection *caller = peer_call_get_connection (call);
  const char *name;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &name);
  if (!check_bus_name (call, name))
    return FALSE;
  switch (resolve_name (call, name))
    {
    case NAME_CALLER:
      *out_uid = peer_connection_get_uid (caller);
      *out_pid = peer_connection_get_pid (caller);
      return TRUE;
    case NAME_BUS:
    case NAME_SERVER:
      *out_uid = getuid ();
      *out_pid = getpid ();
      return TRUE;
    case NAME_NONE:
    default:
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER,
                              "Could not get credentials of name '%s': no such name", name);
      return FALSE;
    }
}

static void
handle_get_connection_unix_user (PeerCall *call,
                                 gpointer  user_data)
{
  guint32 uid, pid;

  if (lookup_credentials (call, &uid, &pid))
    peer_call_return_value (call, g_variant_new ("(u)", uid));
}

static void
handle_get_connection_unix_process_id (PeerCall *call,
                                       gpointer  user_data)
{
  guint32 uid, pid;

  if (lookup_credentials (call, &uid, &pid))
    peer_call_return_value (call, g_variant_new ("(u)", pid));
}

static void
handle_get_connection_credentials (PeerCall *call,
                                   gpointer  user_data)
{
  guint32 uid, pid;
  GVariantBuilder builder;

  if (!lookup_credentials (call, &uid, &pid))
    return;
  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add (&builder, "{sv}", "UnixUserID", g_variant_new_uint32 (uid));
  if (pid != (guint32) -1)
    g_variant_builder_add (&builder, "{sv}", "ProcessID", g_variant_new_uint32 (pid));
  peer_call_return_value (call, g_variant_new ("(a{sv})", &builder));
}

static void
handle_get_id (PeerCall *call,
               gpointer  user_data)
{
  PeerServer *server = user_data;

  peer_call_return_value (call, g_variant_new ("(s)", peer_server_get_guid (server)));
}

PeerInterface *
_peer_bus_compat_new (PeerServer *server)
{
  const PeerMethodEntry entries[] = {
    { "Hello", handle_hello, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "RequestName", handle_request_name, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ReleaseName", handle_release_name, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "StartServiceByName", handle_start_service_by_name, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "NameHasOwner", handle_name_has_owner, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ListNames", handle_list_names, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ListActivatableNames", handle_list_activatable_names, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "AddMatch", handle_match, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "RemoveMatch", handle_match, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetNameOwner", handle_get_name_owner, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ListQueuedOwners", handle_list_queued_owners, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetConnectionUnixUser", handle_get_connection_unix_user, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetConnectionUnixProcessID", handle_get_connection_unix_process_id, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetConnectionCredentials", handle_get_connection_credentials, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetId", handle_get_id, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  const char *no_strings[] = { NULL };
  g_autoptr(GError) error = NULL;
  PeerInterface *iface;

  iface = peer_interface_new_for_xml (bus_xml, PEER_BUS_COMPAT_NAME, &error);
  g_assert_no_error (error);    /* static XML */
  peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), server, &error);
  g_assert_no_error (error);
  peer_interface_set_property (iface, "Features", g_variant_new_strv (no_strings, 0), NULL);
  peer_interface_set_property (iface, "Interfaces", g_variant_new_strv (no_strings, 0), NULL);
  return iface;
}
