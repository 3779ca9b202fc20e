/* peer-server.h: a private D-Bus server for an application's own peers.
 *
 * A PeerServer listens on a path socket in a 0700 directory, admits peers
 * that authenticate with EXTERNAL and pass its PeerPolicy, exports every
 * PeerInterface on every peer, and answers the message-bus handshake so
 * that standard D-Bus tools work against it although no bus runs.
 *
 * A PeerServer belongs to the thread-default main context that was current
 * when it was created: its signals, handlers and peers' "closed" signals are
 * delivered there, and its non-thread-safe methods are called from there.
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

/**
 * PeerServerFlags:
 * @PEER_SERVER_FLAGS_NONE: safe defaults
 * @PEER_SERVER_FLAGS_ALLOW_UNSAFE_ADDRESS: accept `unix:abstract=` and
 *   `unix:tmpdir=` addresses (any process in the network namespace can
 *   connect to an abstract socket; authentication is then the only guard)
 * @PEER_SERVER_FLAGS_NO_BUS_COMPAT: do not answer the message-bus
 *   handshake (Hello, AddMatch, GetNameOwner…) at /org/freedesktop/DBus
 *
 * How a #PeerServer serves.
 */
typedef enum {
  PEER_SERVER_FLAGS_NONE                 = 0,
  PEER_SERVER_FLAGS_ALLOW_UNSAFE_ADDRESS = 1 << 0,
  PEER_SERVER_FLAGS_NO_BUS_COMPAT        = 1 << 1,
} PeerServerFlags;

/**
 * PEER_SERVER_DEFAULT_HANDSHAKE_TIMEOUT_MS:
 *
 * How long a peer may take to authenticate.
 */
#define PEER_SERVER_DEFAULT_HANDSHAKE_TIMEOUT_MS 5000

/**
 * PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE:
 *
 * How many fds one message may carry (libdbus's default too).
 */
#define PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE 16

/**
 * PEER_SERVER_MAX_FDS_PER_MESSAGE:
 *
 * The highest limit that can be set (the kernel's SCM_MAX_FD).
 */
#define PEER_SERVER_MAX_FDS_PER_MESSAGE 253

/* Limits on what one peer, or everyone who connects, can make the server
 * hold. Everything a peer sends is untrusted: a helper often runs with
 * more privilege than its clients. */

/**
 * PEER_SERVER_DEFAULT_MAX_PEERS:
 *
 * How many authenticated peers may be connected at once.
 */
#define PEER_SERVER_DEFAULT_MAX_PEERS 256

/**
 * PEER_SERVER_DEFAULT_MAX_HANDSHAKES:
 *
 * How many connections may be authenticating at once.
 */
#define PEER_SERVER_DEFAULT_MAX_HANDSHAKES 64

/**
 * PEER_SERVER_DEFAULT_MAX_CALLS_IN_FLIGHT:
 *
 * How many calls of one peer may be in its handlers at once.
 */
#define PEER_SERVER_DEFAULT_MAX_CALLS_IN_FLIGHT 64

/**
 * PEER_SERVER_DEFAULT_MAX_QUEUED_BYTES:
 *
 * How much may wait to be written to one peer (16 MiB).
 */
#define PEER_SERVER_DEFAULT_MAX_QUEUED_BYTES (16 * 1024 * 1024)

/**
 * PEER_SERVER_DEFAULT_MAX_MAPPED_BYTES:
 *
 * How many blob bytes one peer may have mapped in the server at once (1 GiB).
 */
#define PEER_SERVER_DEFAULT_MAX_MAPPED_BYTES ((gsize) 1024 * 1024 * 1024)

/**
 * PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE:
 *
 * The largest message body, either way (4 MiB; larger data travels as blobs or fds).
 */
#define PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE (4 * 1024 * 1024)

/**
 * PEER_SERVER_DEFAULT_MAX_MATCH_RULES:
 *
 * How many match rules one peer may hold (dbus-daemon's default).
 */
#define PEER_SERVER_DEFAULT_MAX_MATCH_RULES 512

/**
 * PEER_SERVER_HANDSHAKE_MAX_BYTES:
 *
 * What a peer may send before BEGIN (the EXTERNAL handshake takes ~100).
 */
#define PEER_SERVER_HANDSHAKE_MAX_BYTES 16384

/**
 * PeerServer:
 *
 * A private D-Bus server for an application's own peers.
 *
 * It listens on a path socket in a `0700` directory (or serves the one
 * peer at the other end of an fd), admits the peers that authenticate
 * with `EXTERNAL` and pass its #PeerPolicy, serves every exported
 * #PeerInterface to every peer, and answers the message-bus handshake so
 * that standard D-Bus tools work against it although no bus runs.
 *
 * A server belongs to the thread-default main context that was current
 * when it was created: its signals, handlers and peers' "closed" signals
 * are delivered there, and its methods that are not marked thread-safe
 * are called from there.
 */
#define PEER_TYPE_SERVER (peer_server_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerServer, peer_server, PEER, SERVER, GObject)

/**
 * peer_server_new:
 * @address: (nullable): a D-Bus address such as `unix:path=/run/app/socket`
 *   or `unix:dir=/run/app`, or %NULL for a fresh socket in a new 0700
 *   directory under `$XDG_RUNTIME_DIR` (or the temporary directory)
 * @policy: (nullable) (transfer none): who may connect; %NULL for the
 *   default (the same uid only)
 * @flags: flags
 * @cancellable: (nullable): a cancellable
 * @error: set on failure: PEER_ERROR_UNSAFE_ADDRESS for a non-private
 *   address, PEER_ERROR_ADDRESS_IN_USE when another server listens on the
 *   path, PEER_ERROR_INVALID_ARGS for a malformed one
 *
 * Creates the socket; peers are accepted once peer_server_start() is called.
 * A stale socket left by a server that died is replaced; a live one is not.
 *
 * Returns: (transfer full) (nullable): the server, or %NULL
 */
PEER_EXPORT
PeerServer     *peer_server_new                (const char      *address,
                                                PeerPolicy      *policy,
                                                PeerServerFlags  flags,
                                                GCancellable    *cancellable,
                                                GError         **error);

/**
 * peer_server_new_for_fd:
 * @fd: a connected Unix stream socket (the server owns it from this
 *   call on, see below), or -1 for the one
 *   named by the `PEER_FD` environment variable (%PEER_HELPER_FD_ENV),
 *   which is then unset
 * @policy: (nullable) (transfer none): who may be at the other end; %NULL
 *   for the default (the same uid only)
 * @flags: flags (%PEER_SERVER_FLAGS_ALLOW_UNSAFE_ADDRESS has no effect)
 * @error: set to PEER_ERROR_INVALID_ARGS when @fd (or `PEER_FD`) is not a
 *   connected Unix stream socket, or `PEER_FD` is unset
 *
 * The helper's side of a PeerHelper: a server for exactly one peer, the
 * process at the other end of @fd, with no socket in the filesystem.
 * Export interfaces, then call peer_server_start(): the policy judges the
 * other end's kernel credentials, the D-Bus handshake runs (this side
 * authenticating as the client, with EXTERNAL), and the peer is served
 * like any peer of a listening server. #PeerServer::peer-disconnected
 * (or #PeerServer::peer-refused) tells when it is gone, which is usually
 * when a helper should exit. @fd is owned by the server from this call
 * on, also when it fails; it is made close-on-exec.
 *
 * Returns: (transfer full) (nullable): the server, or %NULL
 */
PEER_EXPORT
PeerServer     *peer_server_new_for_fd         (int              fd,
                                                PeerPolicy      *policy,
                                                PeerServerFlags  flags,
                                                GError         **error);

/**
 * peer_server_start:
 * @self: a server
 *
 * Starts accepting peers in the server's main context (or, for a server
 * made with peer_server_new_for_fd(), the handshake with its one peer).
 */
PEER_EXPORT
void            peer_server_start              (PeerServer      *self);

/**
 * peer_server_stop:
 * @self: a server
 *
 * Stops accepting, closes every peer (reason: "server stopped"), and
 * removes the socket and the directory the server created. A stopped
 * server cannot be started again. Disposing a server stops it.
 */
PEER_EXPORT
void            peer_server_stop               (PeerServer      *self);

/**
 * peer_server_get_client_address:
 * @self: a server
 *
 * Returns: (transfer none) (nullable): the address peers connect to, e.g.
 *   `unix:path=/run/user/1000/libpeer-Ab12Cd/socket`; %NULL for a server
 *   made with peer_server_new_for_fd()
 */
PEER_EXPORT
const char     *peer_server_get_client_address (PeerServer      *self);

/**
 * peer_server_get_socket_path:
 * @self: a server
 *
 * Returns: (transfer none) (nullable): the socket's path, or %NULL for an
 *   abstract socket
 */
PEER_EXPORT
const char     *peer_server_get_socket_path    (PeerServer      *self);

/**
 * peer_server_get_guid:
 * @self: a server
 *
 * Returns: (transfer none): the server's GUID, as sent in the handshake
 */
PEER_EXPORT
const char     *peer_server_get_guid           (PeerServer      *self);

/**
 * peer_server_get_policy:
 * @self: a server
 *
 * Returns: (transfer none): the policy in force
 */
PEER_EXPORT
PeerPolicy     *peer_server_get_policy         (PeerServer      *self);

/**
 * peer_server_set_handshake_timeout:
 * @self: a server
 * @timeout_ms: how long a connection may take to authenticate, > 0
 *   (default %PEER_SERVER_DEFAULT_HANDSHAKE_TIMEOUT_MS)
 *
 * A connection still authenticating after that is closed.
 */
PEER_EXPORT
void            peer_server_set_handshake_timeout (PeerServer   *self,
                                                   guint         timeout_ms);

/**
 * peer_server_set_max_fds_per_message:
 * @self: a server
 * @max_fds: how many fds one incoming message may carry, from 0 (none) to
 *   %PEER_SERVER_MAX_FDS_PER_MESSAGE (default
 *   %PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE)
 *
 * A message with more is refused before any handler sees it: the caller
 * gets org.libpeer.Error.LimitExceeded and every fd that came with the
 * message is closed. Applies to connected peers too, from their next
 * message on. Blobs sent for large `ay` arguments count as fds.
 */
PEER_EXPORT
void            peer_server_set_max_fds_per_message (PeerServer *self,
                                                     guint       max_fds);

/**
 * peer_server_set_max_peers:
 * @self: a server
 * @max_peers: how many authenticated peers may be connected at once, > 0
 *   (default %PEER_SERVER_DEFAULT_MAX_PEERS)
 *
 * A connection that would be one too many is closed as soon as it is
 * accepted (or, when others finished authenticating meanwhile, as soon as
 * it has), and counted as refused with PEER_ERROR_LIMIT_EXCEEDED. Peers
 * already connected stay.
 */
PEER_EXPORT
void            peer_server_set_max_peers      (PeerServer *self,
                                                guint       max_peers);

/**
 * peer_server_set_max_handshakes:
 * @self: a server
 * @max_handshakes: how many connections may be authenticating at once, > 0
 *   (default %PEER_SERVER_DEFAULT_MAX_HANDSHAKES)
 *
 * Each costs a thread of GIO's pool for as long as it lasts (at most the
 * handshake timeout). One more is closed as soon as it is accepted and
 * counted as refused with PEER_ERROR_LIMIT_EXCEEDED. Independently of
 * this, a connection that sends more than %PEER_SERVER_HANDSHAKE_MAX_BYTES
 * before it finishes authenticating is refused.
 */
PEER_EXPORT
void            peer_server_set_max_handshakes (PeerServer *self,
                                                guint       max_handshakes);

/**
 * peer_server_set_max_calls_in_flight:
 * @self: a server
 * @max_calls: how many calls of one peer may be in progress at once, > 0
 *   (default %PEER_SERVER_DEFAULT_MAX_CALLS_IN_FLIGHT)
 *
 * A call is in progress while its #PeerCall is alive: from its dispatch
 * until the handler has replied and dropped every reference. Calls over
 * GDBus and over the peer's lanes share the one budget. One call more is
 * answered org.libpeer.Error.LimitExceeded without running its handler.
 * Applies to connected peers too.
 */
PEER_EXPORT
void            peer_server_set_max_calls_in_flight (PeerServer *self,
                                                     guint       max_calls);

/**
 * peer_server_set_max_queued_bytes:
 * @self: a server
 * @max_bytes: how many bytes of replies and signals may wait to be
 *   written to one peer (default %PEER_SERVER_DEFAULT_MAX_QUEUED_BYTES)
 *
 * A peer that stops reading would otherwise make the server hold all it
 * is sent. A message always fits an empty queue; past that the queue holds
 * @max_bytes and not one more: the peer whose queue would pass it is
 * closed with PEER_ERROR_LIMIT_EXCEEDED. Messages read from the peer and
 * not yet done with count too (GDBus reads them all as they come), and each
 * call waiting for its reply. Sizes are estimates that include what GDBus
 * keeps per message. A call and its reply can be held at once, and the
 * next call read a moment before the last is let go of: keep this at
 * least three times the message size limit. Applies to connected peers
 * too.
 */
PEER_EXPORT
void            peer_server_set_max_queued_bytes (PeerServer *self,
                                                  gsize       max_bytes);

/**
 * peer_server_set_max_message_size:
 * @self: a server
 * @max_size: the largest message body, in bytes, a peer may send or be
 *   sent (default %PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE)
 *
 * Sizes are those of the body in GVariant's serialization, as libpeer
 * holds it: within a few bytes per array of its size on the wire (an `ay`
 * of n bytes counts n).
 *
 * A call with a larger body is answered org.libpeer.Error.LimitExceeded
 * before any handler sees it (GDBus itself refuses anything over 128 MiB);
 * a larger reply is replaced by that error. Bytes passed as blobs or fds
 * do not count. On a lane, a body over this size travels as a blob; a
 * lane opened before the limit was lowered keeps chunking up to the old
 * one, and the server answers such a call LimitExceeded.
 * Applies to connected peers too.
 */
PEER_EXPORT
void            peer_server_set_max_message_size (PeerServer *self,
                                                  guint       max_size);

/**
 * peer_server_set_max_mapped_bytes:
 * @self: a server
 * @max_bytes: how many bytes of blobs (sealed memfds: #PeerBlob, or
 *   automatic blobs for large `ay` arguments) one peer may have mapped in
 *   the server at once, counted from their arrival until the last value
 *   made from them is freed (default %PEER_SERVER_DEFAULT_MAX_MAPPED_BYTES)
 *
 * A call whose blob would pass it is answered
 * org.libpeer.Error.LimitExceeded. Per peer; applies to connected peers
 * too. Any blob with holes (pages its sender never wrote) is refused
 * whatever this limit, since reading a hole would make the server
 * allocate memory the peer never sent.
 */
PEER_EXPORT
void            peer_server_set_max_mapped_bytes (PeerServer *self,
                                                  gsize       max_bytes);

/**
 * peer_server_set_max_match_rules:
 * @self: a server
 * @max_rules: how many match rules (AddMatch, and a monitor's rules) one
 *   peer may hold (default %PEER_SERVER_DEFAULT_MAX_MATCH_RULES); AddMatch
 *   past it fails with org.freedesktop.DBus.Error.LimitsExceeded
 */
PEER_EXPORT
void            peer_server_set_max_match_rules (PeerServer *self,
                                                 guint       max_rules);

/**
 * peer_server_add_name:
 * @self: a server
 * @name: a well-known bus name, such as `org.example.App`
 * @error: set to PEER_ERROR_INVALID_ARGS for a unique name (`:1.5`),
 *   `org.freedesktop.DBus` or a malformed one
 *
 * Has the server own @name, as a service owns a name on a bus: bus-style
 * clients see it in ListNames, NameHasOwner and GetNameOwner (which
 * answers the server's unique name, ":1.0"), may address calls to it and
 * match signals on it, and get NameOwnerChanged. Calls addressed to a
 * name the server does not own fail as on a bus (ServiceUnknown). Adding
 * a name the server owns already does nothing. Any thread.
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean        peer_server_add_name            (PeerServer  *self,
                                                 const char  *name,
                                                 GError     **error);

/**
 * peer_server_remove_name:
 * @self: a server
 * @name: a name given to peer_server_add_name()
 *
 * Any thread.
 *
 * Returns: %TRUE when the server owned @name
 */
PEER_EXPORT
gboolean        peer_server_remove_name         (PeerServer  *self,
                                                 const char  *name);

/**
 * peer_server_dup_names:
 * @self: a server
 *
 * Returns: (transfer full) (array zero-terminated=1): the well-known names
 *   the server owns
 */
PEER_EXPORT
char          **peer_server_dup_names           (PeerServer  *self);

/**
 * peer_server_set_blob_threshold:
 * @self: a server
 * @threshold: the size from which an `ay` value in a reply travels as a
 *   sealed memfd, or 0 to always send the bytes in the message (default
 *   %PEER_BLOB_DEFAULT_THRESHOLD)
 *
 * Only replies to calls that a libpeer client sent with blobs are
 * concerned (see peer_client_set_blob_threshold()); every other reply is
 * plain D-Bus. Applies to connected peers too.
 */
PEER_EXPORT
void            peer_server_set_blob_threshold (PeerServer *self,
                                                gsize       threshold);

/**
 * peer_server_export:
 * @self: a server
 * @object_path: where to serve @iface
 * @iface: (transfer none): the interface; the server takes a reference
 * @error: set when the path is invalid, an interface of that name is
 *   served at @object_path already, or @iface is exported by another server
 *
 * Serves @iface at @object_path on every connected peer and every peer
 * that connects later. One interface may be exported at several paths
 * (see peer_interface_set_object_property() for values of each object's
 * own); ObjectManagers above @object_path announce it.
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean        peer_server_export             (PeerServer      *self,
                                                const char      *object_path,
                                                PeerInterface   *iface,
                                                GError         **error);

/**
 * peer_server_unexport:
 * @self: a server
 * @iface: an interface exported on @self
 *
 * Stops serving @iface on every peer, at every path it is exported at
 * (peer_server_unexport_path() stops one).
 */
PEER_EXPORT
void            peer_server_unexport           (PeerServer      *self,
                                                PeerInterface   *iface);

/**
 * peer_server_emit_signal:
 * @self: a server
 * @destination: (nullable): one peer, or %NULL for every connected peer
 * @object_path: the emitting object
 * @interface_name: the signal's interface
 * @signal_name: the signal
 * @parameters: (nullable): the arguments (a floating reference is sunk)
 * @error: set when a name is invalid
 *
 * Sends a signal without checking it against introspection data (see
 * peer_interface_emit_signal() for the checked variant). Thread-safe.
 *
 * Returns: %TRUE when the signal was queued to every destination
 */
PEER_EXPORT
gboolean        peer_server_emit_signal        (PeerServer      *self,
                                                PeerConnection  *destination,
                                                const char      *object_path,
                                                const char      *interface_name,
                                                const char      *signal_name,
                                                GVariant        *parameters,
                                                GError         **error);

/**
 * peer_server_list_peers:
 * @self: a server
 *
 * Thread-safe.
 *
 * Returns: (transfer container) (element-type PeerConnection): the
 *   connected peers, each with a reference held by the array
 */
PEER_EXPORT
GPtrArray      *peer_server_list_peers         (PeerServer      *self);

/**
 * peer_server_get_n_peers:
 * @self: a server
 *
 * Returns: the number of connected peers. Thread-safe.
 */
PEER_EXPORT
guint           peer_server_get_n_peers        (PeerServer      *self);

/**
 * peer_server_get_n_refused:
 * @self: a server
 *
 * Returns: how many connections were refused: by the policy, for an
 *   unsupported mechanism, or for failing the handshake
 */
PEER_EXPORT
guint64         peer_server_get_n_refused      (PeerServer      *self);

G_END_DECLS
