/* peer-client-private.h: what tests may ask of a PeerClient. */
#pragma once

#include "peer-client.h"
#include "peer-lane-private.h"

G_BEGIN_DECLS

/* (transfer none) (nullable): the lane, once opened. */
PeerLaneClient *_peer_client_get_lane (PeerClient *self);

G_END_DECLS
