/* peer-connection.h: one authenticated peer of a PeerServer.
 *
 * Created by the server once a peer has passed authentication and the
 * policy; it carries the peer's kernel-verified credentials, an id, a
 * unique name (":1.N", what Hello answers), the peer's shares of what the
 * services hand out (peer_connection_take_share()) and, once closed, the
 * reason.
 *
 * Threads: references may be taken and dropped on any thread (a call's,
 * a lane's, GDBus's worker), but a connection is torn down only by the
 * thread that owns the server's main context, where GDBus dispatches its
 * registrations and "closed" handler: a last reference dropped on another
 * thread hands the teardown to that context (or takes the context for it,
 * when nobody owns it), and sources and callbacks hold it weakly.
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

/**
 * PeerConnection:
 *
 * One authenticated peer of a #PeerServer: its kernel-verified
 * credentials, an id, a unique name (":1.N", what Hello answers), its
 * shares of what the services hand out (peer_connection_take_share()) and,
 * once closed, the reason. The server creates it once the peer has passed
 * authentication and the policy.
 */
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

/**
 * peer_connection_get_uid:
 * @self: a connection
 *
 * Returns: the peer's uid
 */
PEER_EXPORT
uid_t            peer_connection_get_uid              (PeerConnection *self);
/**
 * peer_connection_get_gid:
 * @self: a connection
 *
 * Returns: the peer's primary gid, or -1 when unknown
 */
PEER_EXPORT
gid_t            peer_connection_get_gid              (PeerConnection *self);
/**
 * peer_connection_get_pid:
 * @self: a connection
 *
 * Returns: the peer's pid, or -1 when unknown
 */
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

/**
 * peer_connection_take_share:
 * @self: a connection
 * @pool: (transfer none): what the peer draws from, as a plural noun
 *   ("running digests", "jobs"): the pool's key on this connection and
 *   the wording of the error
 * @max_per_peer: how many of @pool one peer may hold at once
 * @error: PEER_ERROR_LIMIT_EXCEEDED when the peer holds @max_per_peer
 *   already ("Peer :1.5 has 4 running digests already; the limit per peer
 *   is 4"), PEER_ERROR_DISCONNECTED once the peer is closed
 *
 * Counts one more of @pool against this peer, unless that would take it
 * past @max_per_peer. A service whose resources all peers draw from
 * (threads, timers, table slots) takes a share for each one it commits
 * to a peer, so that a peer that asks for all of them exhausts only its
 * own share and the others carry on. A server-wide cap, if the service
 * keeps one to protect the machine, should stay out of reach of any one
 * peer: more than @max_per_peer.
 *
 * The service gives every share back, with
 * peer_connection_give_back_share(), when what it stood for goes, however
 * it goes. Disconnecting gives nothing back by itself: the service
 * releases what it held for the peer (in its #PeerConnection::closed or
 * #PeerServer::peer-disconnected handler, or as its work ends) and gives
 * the shares back then. A closed connection refuses new shares; in the
 * server's main context a share taken is therefore always followed by
 * the "closed" signal, so a handler connected after taking it still runs.
 *
 * Thread-safe: the counts are kept under the connection's lock, and a
 * share may be given back on another thread than the one that took it.
 *
 * Returns: %TRUE when the share was taken, %FALSE with @error set
 */
PEER_EXPORT
gboolean         peer_connection_take_share           (PeerConnection *self,
                                                       const char     *pool,
                                                       guint           max_per_peer,
                                                       GError        **error);

/**
 * peer_connection_give_back_share:
 * @self: a connection, open or closed
 * @pool: (transfer none): a pool the peer holds a share of
 *
 * Gives back one share taken with peer_connection_take_share(). Giving
 * back one that was never taken is a programming error. Thread-safe.
 */
PEER_EXPORT
void             peer_connection_give_back_share      (PeerConnection *self,
                                                       const char     *pool);

/**
 * peer_connection_get_share:
 * @self: a connection
 * @pool: (transfer none): a pool's name
 *
 * Thread-safe; the count may change as soon as it is returned.
 *
 * Returns: how many shares of @pool the peer holds now
 */
PEER_EXPORT
guint            peer_connection_get_share            (PeerConnection *self,
                                                       const char     *pool);

G_END_DECLS
