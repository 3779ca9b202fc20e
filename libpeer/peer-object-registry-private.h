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

/* A peer that authenticated: everything is registered on its connection.
 * FALSE with @error set when GDBus refused a registration. */
gboolean            _peer_object_registry_add_peer    (PeerObjectRegistry *registry,
                                                       PeerConnection     *peer,
                                                       GError            **error);

G_END_DECLS
