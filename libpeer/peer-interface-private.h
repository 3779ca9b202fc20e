/* peer-interface-private.h: what servers and transports need of an interface. */
#pragma once

#include "peer-interface.h"
#include "peer-call-private.h"

G_BEGIN_DECLS

/* Where an exported interface's signals go: the server's router, given
 * as a function so that this layer never calls up. Any thread. */
typedef gboolean (*PeerInterfaceEmitFunc) (gpointer        emitter,
                                           PeerConnection *destination,
                                           const char     *object_path,
                                           const char     *interface_name,
                                           const char     *signal_name,
                                           GVariant       *parameters,
                                           GError        **error);

/* Binds @self to a server's emitter: at @object_path (a static export),
 * or with @object_path NULL for a subtree that serves it. One emitter at a
 * time; each bind is matched by one unbind with the same path. */
gboolean         _peer_interface_bind            (PeerInterface         *self,
                                                  PeerInterfaceEmitFunc  emit,
                                                  gpointer               emitter,
                                                  GBoxedCopyFunc         emitter_ref,
                                                  GDestroyNotify         emitter_unref,
                                                  const char            *object_path,
                                                  GError               **error);
/* Whether @body (nullable: no arguments) has method @index's in types. */
gboolean         _peer_interface_check_arguments (PeerInterface   *self,
                                                  guint            index,
                                                  GVariant        *body);
void             _peer_interface_unbind          (PeerInterface   *self,
                                                  const char      *object_path);
GDBusMethodInfo *_peer_interface_get_method_info (PeerInterface   *self,
                                                  guint            index);
/* The method's out args as a tuple type. (transfer none) */
const GVariantType *_peer_interface_get_reply_type (PeerInterface *self,
                                                    guint          index);
gboolean         _peer_interface_lookup_method   (PeerInterface   *self,
                                                  GDBusMethodInfo *info,
                                                  guint           *out_index);
void             _peer_interface_dispatch        (PeerInterface   *self,
                                                  PeerCall        *call);
/* Whether method @index has a handler, and its flags. */
gboolean         _peer_interface_get_method_handler (PeerInterface   *self,
                                                     guint            index,
                                                     PeerMethodFlags *out_flags);
/* @caller NULL: a value for every peer at once (stored values only). */
GVariant        *_peer_interface_get_property    (PeerInterface   *self,
                                                  PeerConnection  *caller,
                                                  const char      *object_path,
                                                  const char      *property_name,
                                                  GError         **error);
/* Every readable property with a value, as a{sv}. (transfer full) */
GVariant        *_peer_interface_dup_all_properties (PeerInterface  *self,
                                                     PeerConnection *caller,
                                                     const char     *object_path);
gboolean         _peer_interface_set_property_from_peer (PeerInterface  *self,
                                                         PeerConnection *caller,
                                                         const char     *object_path,
                                                         const char     *property_name,
                                                         GVariant       *value,
                                                         GError        **error);
/* FALSE: a peer's accepted write is not stored (the set func keeps the
 * value where it belongs, e.g. in a GObject). Before export. */
void             _peer_interface_set_store_writes (PeerInterface *self,
                                                   gboolean       store_writes);

G_END_DECLS
