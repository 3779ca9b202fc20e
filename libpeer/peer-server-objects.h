/* peer-server-objects.h: serving objects as GDBus does: an interface at
 * several paths, subtrees, gdbus-codegen skeletons and ObjectManagers.
 *
 * Everything here runs in the server's main context.
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include "peer-export.h"
#include "peer-server.h"
#include "peer-subtree.h"

G_BEGIN_DECLS

/**
 * peer_server_unexport_path:
 * @self: a server
 * @object_path: one of the paths @iface is exported at
 * @iface: an interface exported on @self
 *
 * Stops serving @iface at @object_path alone (peer_server_unexport()
 * stops it everywhere).
 *
 * Returns: %TRUE when @iface was exported there
 */
PEER_EXPORT
gboolean peer_server_unexport_path       (PeerServer             *self,
                                          const char             *object_path,
                                          PeerInterface          *iface);

/**
 * peer_server_export_subtree:
 * @self: a server
 * @object_path: the subtree's path; its children are `@object_path/<node>`
 * @subtree: (transfer none): the subtree; the server takes a reference
 * @error: set when the path is invalid or taken by another subtree, or
 *   @subtree is exported already
 *
 * Serves @subtree on every peer, present and future (see #PeerSubtree).
 * Children that exist already are not announced to ObjectManagers; see
 * peer_subtree_object_added().
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean peer_server_export_subtree      (PeerServer             *self,
                                          const char             *object_path,
                                          PeerSubtree            *subtree,
                                          GError                **error);

/**
 * peer_server_unexport_subtree:
 * @self: a server
 * @subtree: a subtree exported on @self
 *
 * Returns: %TRUE when it was exported
 */
PEER_EXPORT
gboolean peer_server_unexport_subtree    (PeerServer             *self,
                                          PeerSubtree            *subtree);

/**
 * peer_server_export_skeleton:
 * @self: a server
 * @object_path: where to serve it
 * @skeleton: (transfer none): a GDBusInterfaceSkeleton, such as a
 *   gdbus-codegen `*Skeleton`, not exported elsewhere at another path; the
 *   server takes a reference
 * @error: set when the path is invalid or the interface is served there
 *   already, or @skeleton is exported on @self already
 *
 * Exports @skeleton on the D-Bus connection of every peer, present and
 * future, as g_dbus_interface_skeleton_export() does on one connection,
 * so that gdbus-codegen server code runs unchanged: its `handle-*`
 * signals are emitted in the server's main context, its property
 * changes and signals reach every peer. Its messages take the router's
 * path like every other (validation, size and queue limits; monitors see
 * its calls and replies); its signals are stamped as the server's, reach
 * a bus-style peer only through its match rules, wait at the signal gate
 * and count in the peer's queue, but monitors get no copy of them. Its
 * calls are not counted in a peer's calls in flight (GDBus answers them).
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean peer_server_export_skeleton     (PeerServer             *self,
                                          const char             *object_path,
                                          GDBusInterfaceSkeleton *skeleton,
                                          GError                **error);

/**
 * peer_server_unexport_skeleton:
 * @self: a server
 * @skeleton: a skeleton exported on @self
 *
 * Unexports it from every peer's connection.
 *
 * Returns: %TRUE when it was exported
 */
PEER_EXPORT
gboolean peer_server_unexport_skeleton   (PeerServer             *self,
                                          GDBusInterfaceSkeleton *skeleton);

/**
 * peer_server_add_object_manager:
 * @self: a server
 * @object_path: where to serve org.freedesktop.DBus.ObjectManager
 * @error: set when the path is invalid or has a manager already
 *
 * Serves org.freedesktop.DBus.ObjectManager at @object_path: its
 * GetManagedObjects lists every object below it (exported interfaces,
 * skeletons, subtrees' children; not the server's own, such as the bus
 * driver) with their readable properties, and it sends InterfacesAdded
 * and InterfacesRemoved as they are exported and unexported (for
 * subtrees: peer_subtree_object_added() and
 * peer_subtree_object_removed()). What those signals list of a property
 * computed by a #PeerPropertyGetFunc is its stored value, since they go
 * to every peer at once.
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean peer_server_add_object_manager  (PeerServer             *self,
                                          const char             *object_path,
                                          GError                **error);

/**
 * peer_server_remove_object_manager:
 * @self: a server
 * @object_path: a path given to peer_server_add_object_manager()
 *
 * Returns: %TRUE when a manager was there
 */
PEER_EXPORT
gboolean peer_server_remove_object_manager (PeerServer           *self,
                                            const char           *object_path);

G_END_DECLS
