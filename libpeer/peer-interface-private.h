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
void             _peer_interface_unbind          (PeerInterface   *self);
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
GVariant        *_peer_interface_get_property    (PeerInterface   *self,
                                                  PeerConnection  *caller,
                                                  const char      *property_name,
                                                  GError         **error);
gboolean         _peer_interface_set_property_from_peer (PeerInterface  *self,
                                                         PeerConnection *caller,
                                                         const char     *property_name,
                                                         GVariant       *value,
                                                         GError        **error);

G_END_DECLS
