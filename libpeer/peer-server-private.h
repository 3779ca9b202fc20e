/* peer-server-private.h: what libpeer's own parts ask of a PeerServer. */
#pragma once

#include "peer-server.h"

G_BEGIN_DECLS

/* org.libpeer.Transport1, exported at PEER_WIRE_PATH. (transfer full) */
PeerInterface *_peer_server_transport_interface_new (void);

G_END_DECLS
