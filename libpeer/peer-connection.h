/* peer-connection.h: one authenticated peer of a PeerServer.
 *
 * Created by the server once a peer has passed authentication and the
 * policy; it carries the peer's kernel-verified credentials, an id, a
 * unique name (":1.N", what Hello answers) and, once closed, the reason.
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include <sys/types.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

#define PEER_TYPE_CONNECTION (peer_connection_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerConnection, peer_connection, PEER, CONNECTION, GObject)

/**
 * peer_connection_get_id:
 * @self: a connection
 *
 * Returns: an id unique within its server, starting at 1
 */
PEER_EXPORT
guint64          peer_connection_get_id               (PeerConnection *self);

/**
 * peer_connection_get_unique_name:
 * @self: a connection
 *
 * Returns: (transfer none): the bus-style unique name, ":1.<id>"
 */
PEER_EXPORT
const char      *peer_connection_get_unique_name      (PeerConnection *self);

/**
 * peer_connection_get_credentials:
 * @self: a connection
 *
 * Returns: (transfer none): the credentials the peer authenticated with
 */
PEER_EXPORT
GCredentials    *peer_connection_get_credentials      (PeerConnection *self);

/** peer_connection_get_uid: Returns: the peer's uid */
PEER_EXPORT
uid_t            peer_connection_get_uid              (PeerConnection *self);
/** peer_connection_get_gid: Returns: the peer's primary gid, or -1 when unknown */
PEER_EXPORT
gid_t            peer_connection_get_gid              (PeerConnection *self);
/** peer_connection_get_pid: Returns: the peer's pid, or -1 when unknown */
PEER_EXPORT
pid_t            peer_connection_get_pid              (PeerConnection *self);

/**
 * peer_connection_get_dbus_connection:
 * @self: a connection
 *
 * The underlying GDBus connection, for what libpeer does not wrap.
 *
 * Returns: (transfer none): the GDBusConnection
 */
PEER_EXPORT
GDBusConnection *peer_connection_get_dbus_connection  (PeerConnection *self);

/**
 * peer_connection_can_pass_fds:
 * @self: a connection
 *
 * Whether the peer negotiated fd passing. Without it, a reply that
 * carries fds reaches the peer as org.libpeer.Error.NotSupported instead.
 *
 * Returns: %TRUE when fds can be sent to and received from the peer
 */
PEER_EXPORT
gboolean         peer_connection_can_pass_fds         (PeerConnection *self);

/**
 * peer_connection_is_closed:
 * @self: a connection
 *
 * Returns: whether the connection is closed. Thread-safe.
 */
PEER_EXPORT
gboolean         peer_connection_is_closed            (PeerConnection *self);

/**
 * peer_connection_dup_close_reason:
 * @self: a connection
 *
 * Why the connection closed: PEER_ERROR_DISCONNECTED when the peer went
 * away or the server stopped, or the error given to
 * peer_connection_close(). Thread-safe.
 *
 * Returns: (transfer full) (nullable): the reason, or %NULL while open
 */
PEER_EXPORT
GError          *peer_connection_dup_close_reason     (PeerConnection *self);

/**
 * peer_connection_close:
 * @self: a connection
 * @reason: (nullable) (transfer none): why; %NULL for "closed by the server"
 *
 * Disconnects the peer. Its calls in flight get no reply; the "closed"
 * signal follows in the server's main context. Closing twice is harmless.
 */
PEER_EXPORT
void             peer_connection_close                (PeerConnection *self,
                                                       const GError   *reason);

G_END_DECLS
