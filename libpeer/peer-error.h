/* peer-error.h: the PEER_ERROR domain.
 *
 * Every code maps to a D-Bus error name "org.libpeer.Error.<Name>", so a peer
 * on the other side of a connection gets the same GError back (as long as it
 * links libpeer, or it sees the D-Bus name).
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <glib.h>
#include "peer-export.h"

G_BEGIN_DECLS

#define PEER_ERROR (peer_error_quark ())

/**
 * PeerError:
 * @PEER_ERROR_FAILED: generic failure (org.libpeer.Error.Failed)
 * @PEER_ERROR_INVALID_ARGS: an argument was out of range or malformed
 *   (org.libpeer.Error.InvalidArgs)
 * @PEER_ERROR_PERMISSION_DENIED: the caller may not do this
 *   (org.libpeer.Error.PermissionDenied)
 * @PEER_ERROR_LIMIT_EXCEEDED: a limit on what a peer may use was hit
 *   (org.libpeer.Error.LimitExceeded)
 * @PEER_ERROR_NOT_SUPPORTED: the operation is not supported here
 *   (org.libpeer.Error.NotSupported)
 * @PEER_ERROR_UNSAFE_ADDRESS: an address that is not private (abstract
 *   socket, TCP) was refused (org.libpeer.Error.UnsafeAddress)
 * @PEER_ERROR_ADDRESS_IN_USE: another server listens on that address
 *   (org.libpeer.Error.AddressInUse)
 * @PEER_ERROR_DISCONNECTED: the peer is gone (org.libpeer.Error.Disconnected)
 * @PEER_ERROR_TIMED_OUT: the operation did not finish in time
 *   (org.libpeer.Error.TimedOut)
 * @PEER_ERROR_NO_REPLY: a handler finished without replying
 *   (org.libpeer.Error.NoReply)
 * @PEER_ERROR_PROTOCOL: a peer broke the D-Bus protocol (a malformed
 *   header, a missing field, a body that does not match its signature);
 *   the peer is disconnected with this as the close reason
 *   (org.libpeer.Error.Protocol)
 *
 * The codes of the `PEER_ERROR` domain.
 */
typedef enum {
  PEER_ERROR_FAILED,
  PEER_ERROR_INVALID_ARGS,
  PEER_ERROR_PERMISSION_DENIED,
  PEER_ERROR_LIMIT_EXCEEDED,
  PEER_ERROR_NOT_SUPPORTED,
  PEER_ERROR_UNSAFE_ADDRESS,
  PEER_ERROR_ADDRESS_IN_USE,
  PEER_ERROR_DISCONNECTED,
  PEER_ERROR_TIMED_OUT,
  PEER_ERROR_NO_REPLY,
  PEER_ERROR_PROTOCOL,
} PeerError;

/**
 * peer_error_quark:
 *
 * The first call registers the domain with
 * g_dbus_error_register_error_domain(); it is thread-safe.
 *
 * Returns: the `PEER_ERROR` quark
 */
PEER_EXPORT
GQuark peer_error_quark (void);

G_END_DECLS
