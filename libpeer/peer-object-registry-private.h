/* peer-object-registry-private.h: what a PeerServer serves, and where.
 *
 * The registry keeps a server's objects: interfaces at paths (one
 * interface may be at several), subtrees, exported GDBusInterfaceSkeletons
 * and ObjectManagers. It registers each on every peer's GDBus connection
 * as peers come (the peer's connection drops them as it goes), tells the
 * router which objects worker-thread dispatch and lanes may look up, and
 * has the ObjectManagers announce objects as they come and go. Main
 * context only.
 */
#pragma once

#include <gio/gio.h>

#include "peer-connection.h"
#include "peer-interface.h"
#include "peer-router-private.h"
#include "peer-subtree.h"

G_BEGIN_DECLS

typedef struct _PeerObjectRegistry PeerObjectRegistry;

PeerObjectRegistry *_peer_object_registry_new      (PeerRouter         *router);
/* Unexports everything, then frees. */
void                _peer_object_registry_free     (PeerObjectRegistry *registry);

/* @builtin: the server's own (the bus driver, the lane…), which no
 * ObjectManager lists. */
gboolean            _peer_object_registry_export   (PeerObjectRegistry *registry,
                                                    const char         *object_path,
                                                    PeerInterface      *iface,
                                                    gboolean            builtin,
                                                    GError            **error);
/* @object_path NULL: at every path. TRUE when something was unexported. */
gboolean            _peer_object_registry_unexport (PeerObjectRegistry *registry,
                                                    const char         *object_path,
                                                    PeerInterface      *iface);
gboolean            _peer_object_registry_export_subtree   (PeerObjectRegistry *registry,
                                                            const char         *object_path,
                                                            PeerSubtree        *subtree,
                                                            GError            **error);
gboolean            _peer_object_registry_unexport_subtree (PeerObjectRegistry *registry,
                                                            PeerSubtree        *subtree);
gboolean            _peer_object_registry_export_skeleton  (PeerObjectRegistry     *registry,
                                                            const char             *object_path,
                                                            GDBusInterfaceSkeleton *skeleton,
                                                            GError                **error);
gboolean            _peer_object_registry_unexport_skeleton (PeerObjectRegistry     *registry,
                                                             GDBusInterfaceSkeleton *skeleton);
gboolean            _peer_object_registry_add_manager      (PeerObjectRegistry *registry,
                                                            const char         *object_path,
                                                            GError            **error);
gboolean            _peer_object_registry_remove_manager   (PeerObjectRegistry *registry,
                                                            const char         *object_path);

/* What a call by name (a lane's: peer-lane-dispatch.c) to @member of
 * @interface_name at @object_path, with @parameters (a tuple), from
 * @caller, comes to: what the peer's GDBus connection would dispatch it
 * to, found the way GDBus finds it (an export or skeleton at the path
 * first, then, unless the path has objects of its own and the call is
 * to org.freedesktop.DBus.Properties, the child of a subtree one level
 * up), served with the code that serves it there.
 *
 *  - METHOD: a PeerInterface's method (an export's, a subtree child's,
 *    an ObjectManager's), its arguments of the method's types:
 *    *out_iface (transfer full) and *out_index; the transport makes the
 *    PeerCall and dispatches it.
 *  - ANSWERED: org.freedesktop.DBus.Properties Get, Set or GetAll of a
 *    PeerInterface or a skeleton, done by the same functions GDBus's
 *    callbacks call (PropertiesChanged included, emitted before this
 *    returns): *out_reply (transfer full), or *out_error set.
 *  - NOT_SERVED: everything GDBus answers by itself (an unknown object,
 *    interface, method or property, a refused access, a wrong type or
 *    wrong arguments, introspection, org.freedesktop.DBus.Peer), what
 *    only a GDBusMethodInvocation can carry (a skeleton's methods, and
 *    its properties when its vtable leaves them to its method handler),
 *    and the server's own interfaces (the bus driver, the lane, the
 *    wire): the caller has the call sent on the connection, where GDBus
 *    answers it in its own words.
 *
 * Main context: the lookups and property functions run there. */
typedef enum {
  PEER_OBJECT_CALL_NOT_SERVED,
  PEER_OBJECT_CALL_METHOD,
  PEER_OBJECT_CALL_ANSWERED,
} PeerObjectCall;

PeerObjectCall      _peer_object_registry_call        (PeerObjectRegistry *registry,
                                                       PeerConnection     *caller,
                                                       const char         *object_path,
                                                       const char         *interface_name,
                                                       const char         *member,
                                                       GVariant           *parameters,
                                                       PeerInterface     **out_iface,
                                                       guint              *out_index,
                                                       GVariant          **out_reply,
                                                       GError            **out_error);

/* A peer that authenticated: everything is registered on its connection.
 * FALSE with @error set when GDBus refused a registration. */
gboolean            _peer_object_registry_add_peer    (PeerObjectRegistry *registry,
                                                       PeerConnection     *peer,
                                                       GError            **error);

G_END_DECLS
