/* peer-call.h: one incoming method call, independent of its transport.
 *
 * A handler gets a PeerCall, reads its arguments, fds and caller, and
 * replies through it: now, or later after taking a reference. The same
 * handler serves calls that arrive over GDBus and over libpeer's own faster
 * transports, so nothing here exposes GDBusMethodInvocation or GDBusMessage.
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

/**
 * PeerCall:
 *
 * One incoming method call, whatever transport it came by. A handler
 * reads its arguments, fds and caller, and replies through it: at once,
 * or later after taking a reference. A call nobody replied to is answered
 * `org.libpeer.Error.NoReply` when its last reference goes.
 */
#define PEER_TYPE_CALL (peer_call_get_type ())

PEER_EXPORT
GType           peer_call_get_type            (void) G_GNUC_CONST;

/**
 * peer_call_ref:
 * @call: a call
 *
 * Takes a reference, to reply after the handler has returned. Thread-safe.
 *
 * Returns: (transfer full): @call
 */
PEER_EXPORT
PeerCall       *peer_call_ref                 (PeerCall    *call);

/**
 * peer_call_unref:
 * @call: (nullable) (transfer full): a call
 *
 * Drops a reference. When the last one goes and nobody replied, the caller
 * gets org.libpeer.Error.NoReply: a call is never left unanswered.
 */
PEER_EXPORT
void            peer_call_unref               (PeerCall    *call);

/**
 * peer_call_get_object_path:
 * @call: a call
 *
 * Returns: (transfer none): the object path called
 */
PEER_EXPORT
const char     *peer_call_get_object_path     (PeerCall    *call);
/**
 * peer_call_get_interface_name:
 * @call: a call
 *
 * Returns: (transfer none): the interface called
 */
PEER_EXPORT
const char     *peer_call_get_interface_name  (PeerCall    *call);
/**
 * peer_call_get_method_name:
 * @call: a call
 *
 * Returns: (transfer none): the method called
 */
PEER_EXPORT
const char     *peer_call_get_method_name     (PeerCall    *call);

/**
 * peer_call_get_parameters:
 * @call: a call
 *
 * Returns: (transfer none): the arguments, a tuple already checked against
 *   the method's introspection data
 */
PEER_EXPORT
GVariant       *peer_call_get_parameters      (PeerCall    *call);

/**
 * peer_call_get_unix_fd_list:
 * @call: a call
 *
 * The fds that came with the call; the `h` arguments index into it. The
 * list owns them and closes them when the call is freed (after the reply,
 * or when the last reference goes). To keep one, use peer_call_dup_fd(),
 * which also checks the index; g_unix_fd_list_steal_fds() takes them all.
 *
 * Returns: (transfer none) (nullable): the fds, or %NULL when none came
 */
PEER_EXPORT
GUnixFDList    *peer_call_get_unix_fd_list    (PeerCall    *call);

/**
 * peer_call_get_n_fds:
 * @call: a call
 *
 * Returns: how many fds came with the call
 */
PEER_EXPORT
guint           peer_call_get_n_fds           (PeerCall    *call);

/**
 * peer_call_dup_fd:
 * @call: a call
 * @handle: an `h` argument of the call, as the peer sent it (not trusted)
 * @error: PEER_ERROR_INVALID_ARGS when no fd of the call has that index,
 *   or the G_IO_ERROR of dup()
 *
 * Returns: a new fd (close-on-exec) that the caller owns and closes, or -1
 */
PEER_EXPORT
int             peer_call_dup_fd              (PeerCall    *call,
                                               gint32       handle,
                                               GError     **error);

/**
 * peer_call_get_connection:
 * @call: a call
 *
 * Returns: (transfer none): the peer that made the call
 */
PEER_EXPORT
PeerConnection *peer_call_get_connection      (PeerCall    *call);

/**
 * peer_call_get_interface:
 * @call: a call
 *
 * Returns: (transfer none): the exported interface that was called
 */
PEER_EXPORT
PeerInterface  *peer_call_get_interface       (PeerCall    *call);

/**
 * peer_call_return_value:
 * @call: a call not yet replied to
 * @value: (nullable): the reply tuple (a floating reference is sunk), or
 *   %NULL for a method with no out arguments
 *
 * Replies. Thread-safe. Replying twice is a programming error.
 */
PEER_EXPORT
void            peer_call_return_value        (PeerCall    *call,
                                               GVariant    *value);

/**
 * peer_call_return_value_with_unix_fd_list:
 * @call: a call not yet replied to
 * @value: (nullable): the reply tuple (a floating reference is sunk)
 * @fd_list: (nullable) (transfer none): fds to send; the `h` values in
 *   @value index into it. A reference is taken until the reply is written;
 *   the caller still owns @fd_list and its fds and unrefs it as usual
 *   (but must not steal fds out of it afterwards).
 *
 * Replies with fds. When the peer did not negotiate fd passing (see
 * peer_connection_can_pass_fds()), it gets org.libpeer.Error.NotSupported
 * instead, and nothing is sent.
 */
PEER_EXPORT
void            peer_call_return_value_with_unix_fd_list (PeerCall    *call,
                                                          GVariant    *value,
                                                          GUnixFDList *fd_list);

/**
 * peer_call_return_error: (skip)
 * @call: a call not yet replied to
 * @domain: an error domain, best one registered with D-Bus names
 *   (PEER_ERROR, G_DBUS_ERROR, G_IO_ERROR)
 * @code: the code
 * @format: printf-style message
 * @...: its arguments
 *
 * Not in the bindings (a variadic function): they use
 * peer_call_return_gerror() or peer_call_return_dbus_error().
 */
PEER_EXPORT
void            peer_call_return_error        (PeerCall    *call,
                                               GQuark       domain,
                                               gint         code,
                                               const char  *format,
                                               ...) G_GNUC_PRINTF (4, 5);

/**
 * peer_call_return_gerror:
 * @call: a call not yet replied to
 * @error: (transfer none): the error to send
 */
PEER_EXPORT
void            peer_call_return_gerror       (PeerCall     *call,
                                               const GError *error);

/**
 * peer_call_take_error:
 * @call: a call not yet replied to
 * @error: (transfer full): the error to send; freed
 */
PEER_EXPORT
void            peer_call_take_error          (PeerCall    *call,
                                               GError      *error);

/**
 * peer_call_return_dbus_error:
 * @call: a call not yet replied to
 * @error_name: a D-Bus error name ("com.example.Error.Busy")
 * @message: a human-readable message
 */
PEER_EXPORT
void            peer_call_return_dbus_error   (PeerCall    *call,
                                               const char  *error_name,
                                               const char  *message);

/**
 * peer_call_has_replied:
 * @call: a call
 *
 * Returns: whether a reply (or error) was already sent
 */
PEER_EXPORT
gboolean        peer_call_has_replied         (PeerCall    *call);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerCall, peer_call_unref)

G_END_DECLS
