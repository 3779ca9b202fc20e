/* peer-subtree-private.h: what the object registry asks of a PeerSubtree. */
#pragma once

#include "peer-subtree.h"
#include "peer-connection.h"

G_BEGIN_DECLS

/* How a subtree's announcements reach the ObjectManagers: @interfaces is
 * a{sa{sv}} for an object that came, @removed the interface names of one
 * that goes (exactly one of the two is set). */
typedef void (*PeerSubtreeNotifyFunc) (gpointer            registry,
                                       const char         *object_path,
                                       GVariant           *interfaces,
                                       const char * const *removed);

gboolean   _peer_subtree_bind           (PeerSubtree           *self,
                                         const char            *object_path,
                                         PeerSubtreeNotifyFunc  notify,
                                         gpointer               registry,
                                         GError               **error);
void       _peer_subtree_unbind         (PeerSubtree           *self);
/* (transfer none) (element-type PeerInterface) those peer_subtree_add_interface() named */
GPtrArray *_peer_subtree_get_interfaces (PeerSubtree           *self);
/* Registers the subtree on @peer's GDBus connection: the registration
 * id, or 0 with @error set. */
guint      _peer_subtree_register       (PeerSubtree           *self,
                                         PeerConnection        *peer,
                                         GError               **error);
/* (transfer full) (nullable) child @node's interface named
 * @interface_name, as the lookup says now; NULL when the child or the
 * interface is not there (or @node is no node name). */
PeerInterface *_peer_subtree_lookup_interface (PeerSubtree    *self,
                                               PeerConnection *caller,
                                               const char     *node,
                                               const char     *interface_name);
/* Adds every child @caller may see to @builder (a{oa{sa{sv}}}). */
void       _peer_subtree_list_objects   (PeerSubtree           *self,
                                         PeerConnection        *caller,
                                         GVariantBuilder       *builder);

G_END_DECLS
