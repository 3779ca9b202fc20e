/* peer-subtree.h: a tree of dynamic objects below one path.
 *
 * What g_dbus_connection_register_subtree() is to GDBus: rather than one
 * export per object, a PeerSubtree answers for every path below its own
 * with two callbacks, one that lists its children and one that says
 * which interfaces a child has. Calls, properties and introspection of a
 * child go to the PeerInterface the lookup names (its handlers see the
 * child's path in peer_call_get_object_path(), its values may be the
 * child's own: peer_interface_set_object_property()). Introspecting the
 * subtree's path lists the children; an ObjectManager above it lists
 * them with their properties.
 *
 * Children are one level deep: `<path>/<node>`. The callbacks run in the
 * server's main context. Calls to children reach handlers in the main
 * context, as GDBus dispatches them, whatever their flags; a PeerClient
 * with a lane open makes them over the lane, by name (the lookup is asked
 * once there, as the call is dispatched).
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

/**
 * PeerSubtree:
 *
 * A tree of dynamic objects below one path: rather than one export per
 * object, two callbacks answer for every child, one that lists them and
 * one that says which interfaces a child has.
 */
#define PEER_TYPE_SUBTREE (peer_subtree_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerSubtree, peer_subtree, PEER, SUBTREE, GObject)

/**
 * PeerSubtreeEnumerateFunc:
 * @subtree: the subtree
 * @caller: (transfer none): the peer asking
 * @user_data: data given to peer_subtree_new()
 *
 * Lists the children a peer may see (for introspection and
 * GetManagedObjects).
 *
 * Returns: (transfer full) (array zero-terminated=1) (nullable): node
 *   names (one path element each), or %NULL for none
 */
typedef char **(*PeerSubtreeEnumerateFunc) (PeerSubtree    *subtree,
                                            PeerConnection *caller,
                                            gpointer        user_data);

/**
 * PeerSubtreeLookupFunc:
 * @subtree: the subtree
 * @caller: (transfer none) (nullable): the peer asking, or %NULL when
 *   libpeer asks on behalf of every peer (ObjectManager signals)
 * @node: a child's name; it may be one the enumerate function never
 *   listed, or no longer lists
 * @user_data: data given to peer_subtree_new()
 *
 * Says what a child is. Called for each call or property access to it,
 * so a child that went between listing and calling is answered
 * org.freedesktop.DBus.Error.UnknownObject.
 *
 * Returns: (transfer full) (element-type PeerInterface) (nullable): the
 *   child's interfaces (an array whose free function unrefs them, e.g.
 *   from g_ptr_array_new_with_free_func (g_object_unref)), or %NULL when
 *   there is no such child
 */
typedef GPtrArray *(*PeerSubtreeLookupFunc) (PeerSubtree    *subtree,
                                             PeerConnection *caller,
                                             const char     *node,
                                             gpointer        user_data);

/**
 * peer_subtree_new: (skip)
 * @enumerate: lists the children
 * @lookup: finds a child's interfaces
 * @user_data: data for both
 * @destroy: (nullable): frees @user_data with the subtree
 *
 * Not in the bindings, where two functions cannot share one @user_data,
 * and a #GPtrArray returned from a binding's function does not unref
 * its interfaces: there, one #PeerInterface exported at several paths
 * (peer_server_export(), peer_server_unexport_path()) with values of each
 * object's own (peer_interface_set_object_property()) serves dynamic
 * objects, and an ObjectManager announces them.
 *
 * Returns: (transfer full): a subtree to export with
 *   peer_server_export_subtree()
 */
PEER_EXPORT
PeerSubtree *peer_subtree_new              (PeerSubtreeEnumerateFunc  enumerate,
                                            PeerSubtreeLookupFunc     lookup,
                                            gpointer                  user_data,
                                            GDestroyNotify            destroy);

/**
 * peer_subtree_add_interface:
 * @self: a subtree, not yet exported
 * @iface: (transfer none): an interface its children have (a reference
 *   is taken)
 *
 * Names an interface the lookup hands out, so that it is bound to the
 * server with the subtree: then peer_interface_set_object_property() and
 * peer_interface_emit_object_signal() on a child's path reach peers. An
 * interface also exported at its own paths needs no adding.
 */
PEER_EXPORT
void         peer_subtree_add_interface    (PeerSubtree   *self,
                                            PeerInterface *iface);

/**
 * peer_subtree_get_object_path:
 * @self: a subtree
 *
 * Returns: (transfer none) (nullable): where it is exported, or %NULL
 */
PEER_EXPORT
const char  *peer_subtree_get_object_path  (PeerSubtree   *self);

/**
 * peer_subtree_object_added:
 * @self: an exported subtree
 * @node: a child that appeared (the lookup finds it now)
 *
 * Has every ObjectManager above the subtree send InterfacesAdded with
 * the child's interfaces and their stored values. Main context.
 */
PEER_EXPORT
void         peer_subtree_object_added     (PeerSubtree   *self,
                                            const char    *node);

/**
 * peer_subtree_object_removed:
 * @self: an exported subtree
 * @node: a child that is going
 * @interface_names: (nullable) (array zero-terminated=1): the interfaces
 *   it had, or %NULL to ask the lookup (call before it stops finding it)
 *
 * Has every ObjectManager above the subtree send InterfacesRemoved.
 * Main context.
 */
PEER_EXPORT
void         peer_subtree_object_removed   (PeerSubtree        *self,
                                            const char         *node,
                                            const char * const *interface_names);

G_END_DECLS
