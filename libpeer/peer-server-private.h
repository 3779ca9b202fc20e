/* peer-server-private.h: what libpeer's own parts ask of a PeerServer. */
#pragma once

#include "peer-server.h"

G_BEGIN_DECLS

/* org.libpeer.Transport1, exported at PEER_WIRE_PATH. (transfer full) */
PeerInterface *_peer_server_transport_interface_new (void);

/* What the server serves: see peer-object-registry-private.h. NULL once
 * the server is disposed. (transfer none) */
typedef struct _PeerObjectRegistry PeerObjectRegistry;
PeerObjectRegistry *_peer_server_get_object_registry (PeerServer *self);

G_END_DECLS
