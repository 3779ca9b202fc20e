/* peer-bus-driver-private.h: org.freedesktop.DBus on a bus-less server. */
#pragma once

#include "peer-interface.h"
#include "peer-router-private.h"

G_BEGIN_DECLS

/* The driver (org.freedesktop.DBus, which the router answers at any
 * path) and org.freedesktop.DBus.Monitoring; both are exported at
 * PEER_ROUTER_BUS_PATH. (transfer full) */
PeerInterface *_peer_bus_driver_new            (PeerRouter *router);
PeerInterface *_peer_bus_driver_new_monitoring (PeerRouter *router);

G_END_DECLS
