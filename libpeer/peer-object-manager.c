/* peer-object-manager.c: org.freedesktop.DBus.ObjectManager, as
 * GDBusObjectManagerClient, busctl and d-spy expect it.
 *
 * GetManagedObjects lists what the registry serves below the manager's
 * path (static exports, subtrees' children, skeletons), with every
 * readable property; InterfacesAdded and InterfacesRemoved leave through
 * the router like every other signal of the server, so match rules and
 * the signal gate apply to them.
 */
#include "config.h"

#include <string.h>

#include "peer-call.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-object-manager-private.h"

static const char manager_xml[] =
  "<node>"
  "  <interface name='" PEER_OBJECT_MANAGER_INTERFACE "'>"
  "    <method name='GetManagedObjects'>"
  "      <arg name='objects' type='a{oa{sa{sv}}}' direction='out'/>"
  "    </method>"
  "    <signal name='InterfacesAdded'>"
  "      <arg name='object' type='o'/>"
  "      <arg name='interfaces' type='a{sa{sv}}'/>"
  "    </signal>"
  "    <signal name='InterfacesRemoved'>"
  "      <arg name='object' type='o'/>"
  "      <arg name='interfaces' type='as'/>"
  "    </signal>"
  "  </interface>"
  "</node>";

/* Object data of the manager interface: a lane call may still reach the
 * handler after the registry went, so it asks this, not the registry. */
typedef struct {
  PeerObjectManagerListFunc list;
  gpointer registry;                    /* NULL once detached; main context */
} ManagerData;

static void
handle_get_managed_objects (PeerCall *call,
                            gpointer  user_data)
{
  ManagerData *data = g_object_get_data (G_OBJECT (peer_call_get_interface (call)), "peer-manager");
  GVariantBuilder objects;

  if (data == NULL || data->registry == NULL)
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT,
                              "The object manager at %s is gone", peer_call_get_object_path (call));
      return;
    }
  g_variant_builder_init (&objects, G_VARIANT_TYPE ("a{oa{sa{sv}}}"));
  data->list (data->registry, peer_call_get_connection (call), peer_call_get_object_path (call), &objects);
  peer_call_return_value (call, g_variant_new ("(@a{oa{sa{sv}}})", g_variant_builder_end (&objects)));
}

PeerInterface *
_peer_object_manager_new (PeerObjectManagerListFunc list,
                          gpointer                  registry)
{
  static const PeerMethodEntry entries[] = {
    { "GetManagedObjects", handle_get_managed_objects, PEER_METHOD_FLAGS_NONE },
  };
  g_autoptr(GError) error = NULL;
  PeerInterface *manager = peer_interface_new_for_xml (manager_xml, PEER_OBJECT_MANAGER_INTERFACE, &error);
  ManagerData *data = g_new0 (ManagerData, 1);

  g_assert_no_error (error);
  peer_interface_add_methods (manager, entries, G_N_ELEMENTS (entries), NULL, &error);
  g_assert_no_error (error);
  data->list = list;
  data->registry = registry;
  g_object_set_data_full (G_OBJECT (manager), "peer-manager", data, g_free);
  return manager;
}

void
_peer_object_manager_detach (PeerInterface *manager)
{
  ManagerData *data = g_object_get_data (G_OBJECT (manager), "peer-manager");

  data->registry = NULL;
}

gboolean
_peer_object_manager_manages (const char *manager_path,
                              const char *object_path)
{
  gsize length = strlen (manager_path);

  if (g_str_equal (manager_path, "/"))
    return !g_str_equal (object_path, "/");
  return strncmp (object_path, manager_path, length) == 0 && object_path[length] == '/';
}

void
_peer_object_manager_emit_added (PeerInterface *manager,
                                 const char    *manager_path,
                                 const char    *object_path,
                                 GVariant      *interfaces)
{
  g_autoptr(GError) error = NULL;

  if (!peer_interface_emit_object_signal (manager, manager_path, NULL, "InterfacesAdded",
                                          g_variant_new ("(o@a{sa{sv}})", object_path, interfaces), &error))
    g_debug ("libpeer: InterfacesAdded for %s not sent: %s", object_path, error->message);
}

void
_peer_object_manager_emit_removed (PeerInterface      *manager,
                                   const char         *manager_path,
                                   const char         *object_path,
                                   const char * const *names)
{
  g_autoptr(GError) error = NULL;

  if (!peer_interface_emit_object_signal (manager, manager_path, NULL, "InterfacesRemoved",
                                          g_variant_new ("(o^as)", object_path, names), &error))
    g_debug ("libpeer: InterfacesRemoved for %s not sent: %s", object_path, error->message);
}
