/* peer-server-private.h: what libpeer's own parts ask of a PeerServer. */
#pragma once

#include "peer-server.h"

G_BEGIN_DECLS

/* The interfaces exported now; main context only. (transfer container) */
GPtrArray *_peer_server_dup_exports  (PeerServer *self);

G_END_DECLS
