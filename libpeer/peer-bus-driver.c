/* peer-bus-driver.c: what bus clients ask the bus, answered honestly.
 *
 * Tools built for a message bus (busctl, dbus-monitor, dbus-next,
 * python-dbus's BusConnection, GDBus with
 * G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION) start with Hello and go
 * on with AddMatch, GetNameOwner and, to watch, BecomeMonitor. On a
 * private server there is no bus, so the server plays its part, and says
 * only what is so: the bus is org.freedesktop.DBus, the server is ":1.0"
 * and owns the well-known names it was given (peer_server_add_name()),
 * and every connected peer has its unique name. Peers own no names: only
 * the server answers calls.
 *
 * Every method here is thread-safe, so the router answers it in GDBus's
 * worker thread, at any object path for org.freedesktop.DBus (as
 * dbus-daemon does, for old clients that call Hello at "/Hello").
 */
#include "config.h"

#include <unistd.h>

#include <gio/gio.h>

#include "peer-bus-driver-private.h"
#include "peer-call.h"
#include "peer-connection-private.h"
#include "peer-error.h"

static const char driver_xml[] =
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
  "  <method name='GetAdtAuditSessionData'><arg direction='in' type='s'/><arg direction='out' type='ay'/></method>"
  "  <method name='GetConnectionSELinuxSecurityContext'><arg direction='in' type='s'/><arg direction='out' type='ay'/></method>"
  "  <method name='ReloadConfig'/>"
  "  <method name='GetId'><arg direction='out' type='s'/></method>"
  "  <signal name='NameOwnerChanged'><arg type='s'/><arg type='s'/><arg type='s'/></signal>"
  "  <signal name='NameLost'><arg type='s'/></signal>"
  "  <signal name='NameAcquired'><arg type='s'/></signal>"
  "  <property name='Features' type='as' access='read'/>"
  "  <property name='Interfaces' type='as' access='read'/>"
  " </interface>"
  " <interface name='org.freedesktop.DBus.Monitoring'>"
  "  <method name='BecomeMonitor'><arg direction='in' type='as'/><arg direction='in' type='u'/></method>"
  " </interface>"
  "</node>";

/* --- names -------------------------------------------------------------- */

/* Who owns @name: a static or caller-owned string, or NULL. Sets
 * @out_peer (transfer full) when a peer owns it. */
static const char *
lookup_owner (PeerRouter      *router,
              const char      *name,
              PeerConnection **out_peer)
{
  *out_peer = NULL;
  if (g_str_equal (name, PEER_ROUTER_BUS_NAME))
    return PEER_ROUTER_BUS_NAME;
  if (_peer_router_is_server_name (router, name))
    return PEER_ROUTER_SERVER_NAME;
  if (g_dbus_is_unique_name (name))
    {
      *out_peer = _peer_router_lookup_peer (router, name);
      if (*out_peer != NULL)
        return peer_connection_get_unique_name (*out_peer);
    }
  return NULL;
}

/* The name argument of most methods, checked. */
static const char *
get_name_argument (PeerCall *call)
{
  const char *name;

  g_variant_get_child (peer_call_get_parameters (call), 0, "&s", &name);
  if (g_dbus_is_name (name))
    return name;
  peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                          "'%s' is not a valid bus name", name);
  return NULL;
}

static void
return_no_owner (PeerCall   *call,
                 const char *what,
                 const char *name)
{
  peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER,
                          "Could not get %s of name '%s': no such name", what, name);
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
  PeerConnection *caller = peer_call_get_connection (call);
  const char *name = get_name_argument (call);

  if (name == NULL)
    return;
  if (name[0] == ':')
    peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                            "Cannot acquire a service starting with ':' such as \"%s\"", name);
  else if (g_str_equal (name, PEER_ROUTER_BUS_NAME))
    peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                            "Connection \"%s\" is not allowed to own the service \"%s\" because it is reserved "
                            "for D-Bus' use only", peer_connection_get_unique_name (caller), name);
  else
    peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED,
                            "Connection \"%s\" is not allowed to own the name \"%s\": on this private "
                            "server only the server (%s) owns names",
                            peer_connection_get_unique_name (caller), name, PEER_ROUTER_SERVER_NAME);
}

static void
handle_release_name (PeerCall *call,
                     gpointer  user_data)
{
  PeerRouter *router = user_data;
  g_autoptr(PeerConnection) peer = NULL;
  const char *name = get_name_argument (call);

  if (name == NULL)
    return;
  if (name[0] == ':' || g_str_equal (name, PEER_ROUTER_BUS_NAME))
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                              "Cannot release the name \"%s\"", name);
      return;
    }
  /* 2 = DBUS_RELEASE_NAME_REPLY_NON_EXISTENT, 3 = _NOT_OWNER: a peer
   * never owns one. */
  peer_call_return_value (call, g_variant_new ("(u)", lookup_owner (router, name, &peer) ? 3 : 2));
}

static void
handle_start_service_by_name (PeerCall *call,
                              gpointer  user_data)
{
  PeerRouter *router = user_data;
  g_autoptr(PeerConnection) peer = NULL;
  const char *name = get_name_argument (call);

  if (name == NULL)
    return;
  if (lookup_owner (router, name, &peer) == NULL)
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
  PeerRouter *router = user_data;
  g_autoptr(PeerConnection) peer = NULL;
  const char *name = get_name_argument (call);

  if (name != NULL)
    peer_call_return_value (call, g_variant_new ("(b)", lookup_owner (router, name, &peer) != NULL));
}

static void
handle_list_names (PeerCall *call,
                   gpointer  user_data)
{
  PeerRouter *router = user_data;
  g_auto(GStrv) names = _peer_router_dup_names (router);
  g_autoptr(GPtrArray) peers = _peer_router_dup_peers (router);
  g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_STRING_ARRAY);

  g_variant_builder_add (&builder, "s", PEER_ROUTER_BUS_NAME);
  g_variant_builder_add (&builder, "s", PEER_ROUTER_SERVER_NAME);
  for (guint i = 0; names[i] != NULL; i++)
    g_variant_builder_add (&builder, "s", names[i]);
  for (guint i = 0; i < peers->len; i++)
    g_variant_builder_add (&builder, "s", peer_connection_get_unique_name (g_ptr_array_index (peers, i)));
  peer_call_return_value (call, g_variant_new ("(as)", &builder));
}

static void
handle_list_activatable_names (PeerCall *call,
                               gpointer  user_data)
{
  const char *names[] = { PEER_ROUTER_BUS_NAME, NULL };

  peer_call_return_value (call, g_variant_new ("(^as)", names));
}

static void
handle_add_match (PeerCall *call,
                  gpointer  user_data)
{
  PeerRouter *router = user_data;
  g_autoptr(GError) error = NULL;
  const char *rule;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &rule);
  if (!_peer_connection_add_match (peer_call_get_connection (call), rule,
                                   _peer_router_get_max_match_rules (router), &error))
    {
      peer_call_return_gerror (call, error);
      return;
    }
  peer_call_return_value (call, NULL);
}

static void
handle_remove_match (PeerCall *call,
                     gpointer  user_data)
{
  g_autoptr(GError) error = NULL;
  const char *rule;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &rule);
  if (!_peer_connection_remove_match (peer_call_get_connection (call), rule, &error))
    {
      peer_call_return_gerror (call, error);
      return;
    }
  peer_call_return_value (call, NULL);
}

static void
handle_get_name_owner (PeerCall *call,
                       gpointer  user_data)
{
  PeerRouter *router = user_data;
  g_autoptr(PeerConnection) peer = NULL;
  const char *name = get_name_argument (call);
  const char *owner;

  if (name == NULL)
    return;
  owner = lookup_owner (router, name, &peer);
  if (owner == NULL)
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER,
                              "Could not get owner of name '%s': no such name", name);
      return;
    }
  peer_call_return_value (call, g_variant_new ("(s)", owner));
}

static void
handle_list_queued_owners (PeerCall *call,
                           gpointer  user_data)
{
  PeerRouter *router = user_data;
  g_autoptr(PeerConnection) peer = NULL;
  const char *name = get_name_argument (call);
  const char *owners[2] = { NULL, NULL };

  if (name == NULL)
    return;
  owners[0] = lookup_owner (router, name, &peer);
  if (owners[0] == NULL)
    {
      return_no_owner (call, "owners", name);
      return;
    }
  peer_call_return_value (call, g_variant_new ("(^as)", owners));
}

/* The credentials behind a name: a peer's (from the kernel, at connect),
 * or the server process's for the bus and the server. */
static gboolean
lookup_credentials (PeerCall   *call,
                    PeerRouter *router,
                    const char *what,
                    guint32    *out_uid,
                    guint32    *out_pid,
                    guint32    *out_gid)
{
  g_autoptr(PeerConnection) peer = NULL;
  const char *name = get_name_argument (call);

  if (name == NULL)
    return FALSE;
  if (lookup_owner (router, name, &peer) == NULL)
    {
      return_no_owner (call, what, name);
      return FALSE;
    }
  if (peer != NULL)
    {
      *out_uid = peer_connection_get_uid (peer);
      *out_pid = peer_connection_get_pid (peer);
      *out_gid = peer_connection_get_gid (peer);
    }
  else
    {
      *out_uid = getuid ();
      *out_pid = getpid ();
      *out_gid = getgid ();
    }
  return TRUE;
}

/* GetConnectionUnixUser and GetConnectionUnixProcessID: one number,
 * or the bus's error when the kernel did not tell it. */
static void
return_credential (PeerCall   *call,
                   PeerRouter *router,
                   gboolean    want_pid)
{
  guint32 uid, pid, gid;
  guint32 value;

  if (!lookup_credentials (call, router, want_pid ? "PID" : "UID", &uid, &pid, &gid))
    return;
  value = want_pid ? pid : uid;
  if (value == (guint32) -1)
    peer_call_return_error (call, G_DBUS_ERROR,
                            want_pid ? G_DBUS_ERROR_UNIX_PROCESS_ID_UNKNOWN : G_DBUS_ERROR_FAILED,
                            "Could not determine the %s of this peer", want_pid ? "PID" : "UID");
  else
    peer_call_return_value (call, g_variant_new ("(u)", value));
}

static void
handle_get_connection_unix_user (PeerCall *call,
                                 gpointer  user_data)
{
  return_credential (call, user_data, FALSE);
}

static void
handle_get_connection_unix_process_id (PeerCall *call,
                                       gpointer  user_data)
{
  return_credential (call, user_data, TRUE);
}

static void
handle_get_connection_credentials (PeerCall *call,
                                   gpointer  user_data)
{
  guint32 uid, pid, gid;
  g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);

  if (!lookup_credentials (call, user_data, "credentials", &uid, &pid, &gid))
    return;
  if (uid != (guint32) -1)
    g_variant_builder_add (&builder, "{sv}", "UnixUserID", g_variant_new_uint32 (uid));
  if (pid != (guint32) -1)
    g_variant_builder_add (&builder, "{sv}", "ProcessID", g_variant_new_uint32 (pid));
  /* SO_PEERCRED gives the primary group only; dbus-daemon's list would
   * hold the supplementary ones too, which nothing here can know. */
  if (gid != (guint32) -1)
    {
      guint32 gids[] = { gid };

      g_variant_builder_add (&builder, "{sv}", "UnixGroupIDs",
                             g_variant_new_fixed_array (G_VARIANT_TYPE_UINT32, gids, 1, sizeof gids[0]));
    }
  peer_call_return_value (call, g_variant_new ("(a{sv})", &builder));
}

static void
handle_get_adt_audit_session_data (PeerCall *call,
                                   gpointer  user_data)
{
  guint32 uid, pid, gid;

  if (lookup_credentials (call, user_data, "audit data", &uid, &pid, &gid))
    peer_call_return_dbus_error (call, "org.freedesktop.DBus.Error.AdtAuditDataUnknown",
                                 "This server does not keep audit data");
}

static void
handle_get_selinux_context (PeerCall *call,
                            gpointer  user_data)
{
  guint32 uid, pid, gid;

  if (lookup_credentials (call, user_data, "security context", &uid, &pid, &gid))
    peer_call_return_dbus_error (call, "org.freedesktop.DBus.Error.SELinuxSecurityContextUnknown",
                                 "This server does not keep SELinux contexts");
}

static void
handle_reload_config (PeerCall *call,
                      gpointer  user_data)
{
  /* Nothing to reload: the server's configuration is its code. */
  peer_call_return_value (call, NULL);
}

static void
handle_get_id (PeerCall *call,
               gpointer  user_data)
{
  PeerRouter *router = user_data;

  peer_call_return_value (call, g_variant_new ("(s)", _peer_router_get_guid (router)));
}

static void
handle_become_monitor (PeerCall *call,
                       gpointer  user_data)
{
  PeerRouter *router = user_data;
  PeerConnection *caller = peer_call_get_connection (call);
  g_autoptr(GError) error = NULL;
  g_autofree const char **rules = NULL;
  guint32 flags;

  g_variant_get (peer_call_get_parameters (call), "(^a&su)", &rules, &flags);
  if (flags != 0)
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                              "BecomeMonitor takes no flags, not 0x%x", flags);
      return;
    }
  /* From here on the peer gets only copies; the reply itself still goes
   * out to it (replies are not signals), but is not copied to monitors. */
  if (!_peer_router_become_monitor (router, caller, rules, &error))
    {
      peer_call_return_gerror (call, error);
      return;
    }
  peer_call_return_value (call, NULL);
  /* As dbus-daemon does: the monitor's unique name is gone from the bus. */
  {
    g_autoptr(GDBusMessage) lost = g_dbus_message_new_signal (PEER_ROUTER_BUS_PATH, PEER_ROUTER_BUS_NAME,
                                                              "NameLost");

    g_dbus_message_set_body (lost, g_variant_new ("(s)", peer_connection_get_unique_name (caller)));
    g_dbus_message_set_sender (lost, PEER_ROUTER_BUS_NAME);
    g_dbus_message_set_destination (lost, peer_connection_get_unique_name (caller));
    _peer_connection_send_message (caller, lost);
  }
}

static PeerInterface *
new_interface (const char            *name,
               const PeerMethodEntry *entries,
               gsize                  n_entries,
               PeerRouter            *router)
{
  g_autoptr(GError) error = NULL;
  PeerInterface *iface;

  iface = peer_interface_new_for_xml (driver_xml, name, &error);
  g_assert_no_error (error);    /* static XML */
  /* The router outlives its driver: no reference (it would be a cycle). */
  peer_interface_add_methods (iface, entries, n_entries, router, &error);
  g_assert_no_error (error);
  return iface;
}

PeerInterface *
_peer_bus_driver_new (PeerRouter *router)
{
  const PeerMethodEntry entries[] = {
    { "Hello", handle_hello, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "RequestName", handle_request_name, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ReleaseName", handle_release_name, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "StartServiceByName", handle_start_service_by_name, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "NameHasOwner", handle_name_has_owner, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ListNames", handle_list_names, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ListActivatableNames", handle_list_activatable_names, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "AddMatch", handle_add_match, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "RemoveMatch", handle_remove_match, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetNameOwner", handle_get_name_owner, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ListQueuedOwners", handle_list_queued_owners, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetConnectionUnixUser", handle_get_connection_unix_user, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetConnectionUnixProcessID", handle_get_connection_unix_process_id, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetConnectionCredentials", handle_get_connection_credentials, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetAdtAuditSessionData", handle_get_adt_audit_session_data, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetConnectionSELinuxSecurityContext", handle_get_selinux_context, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "ReloadConfig", handle_reload_config, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "GetId", handle_get_id, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  const char *no_features[] = { NULL };
  const char *interfaces[] = { PEER_ROUTER_MONITORING_INTERFACE, NULL };
  PeerInterface *iface = new_interface (PEER_ROUTER_BUS_NAME, entries, G_N_ELEMENTS (entries), router);

  peer_interface_set_property (iface, "Features", g_variant_new_strv (no_features, -1), NULL);
  peer_interface_set_property (iface, "Interfaces", g_variant_new_strv (interfaces, -1), NULL);
  return iface;
}

PeerInterface *
_peer_bus_driver_new_monitoring (PeerRouter *router)
{
  const PeerMethodEntry entries[] = {
    { "BecomeMonitor", handle_become_monitor, PEER_METHOD_FLAGS_THREAD_SAFE },
  };

  return new_interface (PEER_ROUTER_MONITORING_INTERFACE, entries, G_N_ELEMENTS (entries), router);
}
