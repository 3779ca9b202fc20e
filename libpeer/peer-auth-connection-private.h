/* peer-auth-connection-private.h: the stream a PeerServer hands GDBus for
 * a connection, bounding what a peer may send before it authenticates. */
#pragma once

#include <gio/gio.h>
#include <gio/gunixconnection.h>

G_BEGIN_DECLS

#define PEER_TYPE_AUTH_CONNECTION (_peer_auth_connection_get_type ())
G_DECLARE_FINAL_TYPE (PeerAuthConnection, _peer_auth_connection, PEER, AUTH_CONNECTION, GUnixConnection)

/* A connection on @socket (transfer none) whose input stream fails with
 * G_IO_ERROR_MESSAGE_TOO_LARGE once @max_bytes have been read through it. */
GIOStream *_peer_auth_connection_new (GSocket *socket,
                                      gsize    max_bytes);

G_END_DECLS
