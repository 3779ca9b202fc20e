/* peer-helper.h: an application's own helper process, over a socketpair.
 *
 * A PeerHelper starts a helper program (a thumbnailer, a sandboxed worker,
 * a plugin host) with one end of a socketpair as fd 3, named by the
 * `PEER_FD` environment variable; the helper serves on it with
 * peer_server_new_for_fd(). Both ends run an authenticated D-Bus peer
 * connection (the application authenticates the helper with EXTERNAL and
 * its PeerPolicy); nothing is created in the filesystem and no other
 * process can connect.
 *
 * The PeerHelper supervises the process: it tells when the helper exits
 * and why, fails the calls in flight with that reason, restarts it as its
 * restart policy allows, and never leaves it behind: the helper is
 * stopped when the PeerHelper is disposed, and killed (PR_SET_PDEATHSIG)
 * when the application dies.
 *
 * Threads: a PeerHelper may be used, stopped and finalized on any thread,
 * several at once: the first stop joins the supervisor thread and the
 * others wait for it. Its last reference dropped on the supervisor thread
 * itself (a handler of its PeerClient::closed) is handed to a thread of
 * its own, which stops it and finalizes it. What the supervisor runs
 * holds no reference (the PeerHelper joins it before it goes) and what it
 * sends to the application's context holds the PeerHelper weakly.
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
 * PEER_HELPER_FD_ENV:
 *
 * The environment variable that tells a helper its fd.
 */
#define PEER_HELPER_FD_ENV "PEER_FD"

/**
 * PEER_HELPER_CHILD_FD:
 *
 * The fd number the helper's end of the socketpair has.
 */
#define PEER_HELPER_CHILD_FD 3

/**
 * PEER_HELPER_STOP_TIMEOUT_MS:
 *
 * How long a helper has to exit after SIGTERM before SIGKILL.
 */
#define PEER_HELPER_STOP_TIMEOUT_MS 2000

/**
 * PEER_HELPER_HANDSHAKE_TIMEOUT_MS:
 *
 * How long a new helper has to authenticate.
 */
#define PEER_HELPER_HANDSHAKE_TIMEOUT_MS 10000

/**
 * PeerHelper:
 *
 * An application's own helper process, over a socketpair. It starts the
 * helper program with its end of the socketpair as fd 3 (named by
 * `PEER_FD`), where the helper serves with peer_server_new_for_fd(),
 * then supervises it: it tells when the helper exits and why, fails the
 * calls in flight with that reason, restarts it as its restart policy
 * allows, and never leaves it behind. A helper may be used, stopped and
 * finalized on any thread.
 */
#define PEER_TYPE_HELPER (peer_helper_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerHelper, peer_helper, PEER, HELPER, GObject)

/**
 * peer_helper_new:
 * @argv: (array zero-terminated=1): the helper's command line; a program
 *   without a slash is looked up in `PATH`
 * @policy: (nullable) (transfer none): who the helper may be; %NULL for
 *   the default (the same uid only)
 * @error: set when the program cannot be started
 *
 * Starts the helper. The handshake runs in the background; calls made
 * before it is done wait for it. The helper inherits the environment
 * (less `PEER_CAPTURE`: the application's capture already has every
 * message of the connection), standard output and standard error;
 * standard input is `/dev/null`. It runs in a process group of its own,
 * so that the terminal's Ctrl-C reaches the application only.
 *
 * peer_helper_new_sandboxed() (peer-sandbox.h) starts it in a sandbox
 * instead, for a helper that works on untrusted input.
 *
 * Supervision runs in a thread of the PeerHelper's own; the
 * #PeerHelper::started and #PeerHelper::exited signals are delivered in
 * the thread-default main context of this call.
 *
 * Returns: (transfer full) (nullable): the helper, or %NULL
 */
PEER_EXPORT
PeerHelper *peer_helper_new                (const char * const  *argv,
                                            PeerPolicy          *policy,
                                            GError             **error);

/**
 * peer_helper_set_restart_policy:
 * @self: a helper
 * @max_restarts: how many restarts are allowed within @window_ms (0, the
 *   default: never restart)
 * @window_ms: the window, in milliseconds
 * @backoff_ms: the delay before the first restart in the window; it
 *   doubles with every further restart in the window (up to 30 s)
 *
 * When the helper exits for any reason but peer_helper_stop(), a new one
 * is started after the back-off, unless @max_restarts restarts already
 * happened within the last @window_ms; then the helper stays stopped and
 * calls fail with the last exit reason. Calls made while it restarts wait
 * for the new one, within their timeout. Thread-safe.
 */
PEER_EXPORT
void        peer_helper_set_restart_policy (PeerHelper          *self,
                                            guint                max_restarts,
                                            guint                window_ms,
                                            guint                backoff_ms);

/**
 * peer_helper_dup_client:
 * @self: a helper
 * @timeout_ms: how long to wait for a running helper: 0 not at all, -1
 *   for the default (25 s), G_MAXINT for ever
 * @cancellable: (nullable): a cancellable
 * @error: PEER_ERROR_TIMED_OUT, the exit reason (PEER_ERROR_DISCONNECTED)
 *   when the helper is stopped for good, or G_IO_ERROR_CANCELLED
 *
 * The client connected to the running helper, for signals, properties and
 * anything else. A restarted helper comes with a new client: subscribe
 * again on #PeerHelper::started. Thread-safe; may block.
 *
 * Returns: (transfer full) (nullable): the client, or %NULL
 */
PEER_EXPORT
PeerClient *peer_helper_dup_client         (PeerHelper          *self,
                                            int                  timeout_ms,
                                            GCancellable        *cancellable,
                                            GError             **error);

/**
 * peer_helper_call_sync:
 * @self: a helper
 * @object_path: the object
 * @interface_name: its interface
 * @method_name: the method
 * @parameters: (nullable): arguments as a tuple (a floating reference is sunk)
 * @reply_type: (nullable): the expected reply type
 * @timeout_ms: for waiting for a running helper and the call together:
 *   -1 for the default (25 s), G_MAXINT for none
 * @fd_list: (nullable) (transfer none): fds to send, as for
 *   peer_client_call_sync()
 * @out_fd_list: (out) (optional) (nullable) (transfer full): fds that came
 *   with the reply
 * @cancellable: (nullable): a cancellable
 * @error: as for peer_client_call_sync(); when the helper died with the
 *   call in flight, PEER_ERROR_DISCONNECTED with the exit reason ("helper
 *   killed by signal 9 …")
 *
 * Calls the helper, waiting first for it to be running. A call in flight
 * when the helper exits fails; it is not sent again. Thread-safe; may be
 * called from any thread, including the one whose main context the
 * PeerHelper was made in.
 *
 * Returns: (transfer full) (nullable): the reply tuple, or %NULL
 */
PEER_EXPORT
GVariant   *peer_helper_call_sync          (PeerHelper          *self,
                                            const char          *object_path,
                                            const char          *interface_name,
                                            const char          *method_name,
                                            GVariant            *parameters,
                                            const GVariantType  *reply_type,
                                            int                  timeout_ms,
                                            GUnixFDList         *fd_list,
                                            GUnixFDList        **out_fd_list,
                                            GCancellable        *cancellable,
                                            GError             **error);

/**
 * peer_helper_call:
 * @self: a helper
 * @object_path: the object
 * @interface_name: its interface
 * @method_name: the method
 * @parameters: (nullable): arguments (a floating reference is sunk)
 * @reply_type: (nullable): the expected reply type
 * @timeout_ms: as for peer_helper_call_sync()
 * @fd_list: (nullable) (transfer none): fds to send; a reference is taken
 *   until the call is sent
 * @cancellable: (nullable): a cancellable
 * @callback: called in the current thread-default main context
 * @user_data: data for @callback
 *
 * peer_helper_call_sync() without blocking; finish with
 * peer_helper_call_finish().
 */
PEER_EXPORT
void        peer_helper_call               (PeerHelper          *self,
                                            const char          *object_path,
                                            const char          *interface_name,
                                            const char          *method_name,
                                            GVariant            *parameters,
                                            const GVariantType  *reply_type,
                                            int                  timeout_ms,
                                            GUnixFDList         *fd_list,
                                            GCancellable        *cancellable,
                                            GAsyncReadyCallback  callback,
                                            gpointer             user_data);

/**
 * peer_helper_call_finish:
 * @self: a helper
 * @out_fd_list: (out) (optional) (nullable) (transfer full): fds that came
 *   with the reply
 * @result: the result
 * @error: as for peer_helper_call_sync()
 *
 * Returns: (transfer full) (nullable): the reply tuple, or %NULL
 */
PEER_EXPORT
GVariant   *peer_helper_call_finish        (PeerHelper          *self,
                                            GUnixFDList        **out_fd_list,
                                            GAsyncResult        *result,
                                            GError             **error);

/**
 * peer_helper_get_pid:
 * @self: a helper
 *
 * Returns: the helper's pid, or 0 while none runs. Thread-safe.
 */
PEER_EXPORT
GPid        peer_helper_get_pid            (PeerHelper          *self);

/**
 * peer_helper_get_n_restarts:
 * @self: a helper
 *
 * Returns: how many times the helper was restarted. Thread-safe.
 */
PEER_EXPORT
guint       peer_helper_get_n_restarts     (PeerHelper          *self);

/**
 * peer_helper_dup_exit_reason:
 * @self: a helper
 *
 * Why the last helper went away: PEER_ERROR_DISCONNECTED with "helper
 * exited with status N" or "helper killed by signal N", and what the
 * helper was. Thread-safe.
 *
 * Returns: (transfer full) (nullable): the reason, or %NULL when no
 *   helper has exited yet
 */
PEER_EXPORT
GError     *peer_helper_dup_exit_reason    (PeerHelper          *self);

/**
 * peer_helper_stop:
 * @self: a helper
 *
 * Closes the connection, sends the helper SIGTERM (SIGKILL after
 * %PEER_HELPER_STOP_TIMEOUT_MS), waits for it to exit and restarts no
 * more. Calls fail from then on with PEER_ERROR_DISCONNECTED. Disposing
 * the PeerHelper stops it. Blocks until the helper is gone, which takes
 * the supervisor thread: do not call it from a handler of the helper's own
 * PeerClient::closed signal, which runs on that thread's behalf; defer it
 * to an idle source instead (dropping the last reference there is fine).
 * Thread-safe: a stop while another is in progress waits for it.
 */
PEER_EXPORT
void        peer_helper_stop               (PeerHelper          *self);

G_END_DECLS
