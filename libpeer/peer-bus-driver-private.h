/* peer-bus-compat-private.h: the message-bus handshake on a bus-less server. */
#pragma once

#include "peer-interface.h"

G_BEGIN_DECLS

#define PEER_BUS_COMPAT_PATH "/org/freedesktop/DBus"
#define PEER_BUS_COMPAT_NAME "org.freedesktop.DBus"
/* The unique name the server answers for itself. */
#define PEER_BUS_COMPAT_SERVER_UNIQUE_NAME ":1.0"

PeerInterface *_peer_bus_compat_new (PeerServer *server);

G_END_DECLS
