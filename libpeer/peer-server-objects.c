/* peer-server-objects.c: the PeerServer API of peer-server-objects.h,
 * handed to the server's object registry. */
#include "config.h"

#include "peer-object-registry-private.h"
#include "peer-server-objects.h"
#include "peer-server-private.h"

gboolean
peer_server_unexport_path (PeerServer    *self,
                           const char    *object_path,
                           PeerInterface *iface)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (object_path != NULL, FALSE);
  g_return_val_if_fail (PEER_IS_INTERFACE (iface), FALSE);

  return _peer_server_get_object_registry (self) != NULL &&
         _peer_object_registry_unexport (_peer_server_get_object_registry (self), object_path, iface);
}

gboolean
peer_server_export_subtree (PeerServer  *self,
                            const char  *object_path,
                            PeerSubtree *subtree,
                            GError     **error)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (PEER_IS_SUBTREE (subtree), FALSE);
  g_return_val_if_fail (_peer_server_get_object_registry (self) != NULL, FALSE);

  return _peer_object_registry_export_subtree (_peer_server_get_object_registry (self), object_path,
                                               subtree, error);
}

gboolean
peer_server_unexport_subtree (PeerServer  *self,
                              PeerSubtree *subtree)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (PEER_IS_SUBTREE (subtree), FALSE);

  return _peer_server_get_object_registry (self) != NULL &&
         _peer_object_registry_unexport_subtree (_peer_server_get_object_registry (self), subtree);
}

gboolean
peer_server_export_skeleton (PeerServer             *self,
                             const char             *object_path,
                             GDBusInterfaceSkeleton *skeleton,
                             GError                **error)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (G_IS_DBUS_INTERFACE_SKELETON (skeleton), FALSE);
  g_return_val_if_fail (_peer_server_get_object_registry (self) != NULL, FALSE);

  return _peer_object_registry_export_skeleton (_peer_server_get_object_registry (self), object_path,
                                                skeleton, error);
}

gboolean
peer_server_unexport_skeleton (PeerServer             *self,
                               GDBusInterfaceSkeleton *skeleton)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (G_IS_DBUS_INTERFACE_SKELETON (skeleton), FALSE);

  return _peer_server_get_object_registry (self) != NULL &&
         _peer_object_registry_unexport_skeleton (_peer_server_get_object_registry (self), skeleton);
}

gboolean
peer_server_add_object_manager (PeerServer  *self,
                                const char  *object_path,
                                GError     **error)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (_peer_server_get_object_registry (self) != NULL, FALSE);

  return _peer_object_registry_add_manager (_peer_server_get_object_registry (self), object_path, error);
}

gboolean
peer_server_remove_object_manager (PeerServer *self,
                                   const char *object_path)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (object_path != NULL, FALSE);

  return _peer_server_get_object_registry (self) != NULL &&
         _peer_object_registry_remove_manager (_peer_server_get_object_registry (self), object_path);
}
