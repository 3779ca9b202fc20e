/* peer-policy.h: who may connect to a PeerServer.
 *
 * A PeerPolicy decides on the credentials a peer proved with the EXTERNAL
 * mechanism (the kernel's SO_PEERCRED, not anything the peer claims). The
 * default admits only the server's own uid.
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include <sys/types.h>
#include "peer-export.h"

G_BEGIN_DECLS

/**
 * PeerPolicy:
 *
 * Who may connect to a #PeerServer, decided on the credentials a peer
 * proved with the `EXTERNAL` mechanism (the kernel's `SO_PEERCRED`, not
 * anything the peer claims). The default admits only the server's own
 * uid.
 */
#define PEER_TYPE_POLICY (peer_policy_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerPolicy, peer_policy, PEER, POLICY, GObject)

/**
 * PeerPolicyCheckFunc:
 * @policy: the policy
 * @credentials: (transfer none): the peer's credentials
 * @lists_allow: what the built-in rules (same uid, allowed uids and gids)
 *   decided
 * @user_data: the data given to peer_policy_set_check_func()
 *
 * The application's own decision. It sees the built-in verdict and returns
 * the final one, so it can both narrow and widen the rules. It runs on a
 * GDBus worker thread while the peer authenticates, so it must be
 * thread-safe and must not block for long.
 *
 * Returns: %TRUE to admit the peer
 */
typedef gboolean (*PeerPolicyCheckFunc) (PeerPolicy   *policy,
                                         GCredentials *credentials,
                                         gboolean      lists_allow,
                                         gpointer      user_data);

/**
 * peer_policy_new:
 *
 * Returns: (transfer full): a policy that admits the current uid only
 */
PEER_EXPORT
PeerPolicy        *peer_policy_new                  (void);

/**
 * peer_policy_set_allow_same_uid:
 * @self: a policy
 * @allow: whether peers with the server's own uid are admitted (default %TRUE)
 */
PEER_EXPORT
void               peer_policy_set_allow_same_uid   (PeerPolicy          *self,
                                                     gboolean             allow);

/**
 * peer_policy_allow_uid:
 * @self: a policy
 * @uid: a uid to admit besides the server's own
 */
PEER_EXPORT
void               peer_policy_allow_uid            (PeerPolicy          *self,
                                                     uid_t                uid);

/**
 * peer_policy_allow_gid:
 * @self: a policy
 * @gid: a primary gid to admit (the kernel reports the peer's primary gid
 *   only, not its supplementary groups)
 */
PEER_EXPORT
void               peer_policy_allow_gid            (PeerPolicy          *self,
                                                     gid_t                gid);

/**
 * peer_policy_set_check_func:
 * @self: a policy
 * @func: (nullable): the application's decision, or %NULL to remove it
 * @user_data: (closure): data for @func
 * @destroy: (nullable): frees @user_data when replaced or when @self dies
 */
PEER_EXPORT
void               peer_policy_set_check_func       (PeerPolicy          *self,
                                                     PeerPolicyCheckFunc  func,
                                                     gpointer             user_data,
                                                     GDestroyNotify       destroy);

/**
 * peer_policy_check_credentials:
 * @self: a policy
 * @credentials: (transfer none): credentials to judge
 * @error: set to PEER_ERROR_PERMISSION_DENIED when refused
 *
 * Applies the policy. Refusals are counted and logged at debug level.
 * Thread-safe.
 *
 * Returns: %TRUE when the peer is admitted
 */
PEER_EXPORT
gboolean           peer_policy_check_credentials    (PeerPolicy          *self,
                                                     GCredentials        *credentials,
                                                     GError             **error);

/**
 * peer_policy_admits_other_users:
 * @self: a policy
 *
 * Returns: %TRUE when the policy may admit a uid other than the server's own
 *   (an allow-list entry or a check function); the server then makes its
 *   socket connectable by others and relies on authentication alone.
 */
PEER_EXPORT
gboolean           peer_policy_admits_other_users   (PeerPolicy          *self);

/**
 * peer_policy_get_n_refused:
 * @self: a policy
 *
 * Returns: how many peers this policy refused on their credentials
 */
PEER_EXPORT
guint64            peer_policy_get_n_refused        (PeerPolicy          *self);

/**
 * peer_policy_create_auth_observer:
 * @self: a policy
 *
 * An observer that allows only the EXTERNAL mechanism and applies @self to
 * the authenticated credentials. It holds a reference on @self.
 *
 * Returns: (transfer full): a new observer
 */
PEER_EXPORT
GDBusAuthObserver *peer_policy_create_auth_observer (PeerPolicy          *self);

/**
 * peer_policy_set_allow_same_uid_monitor:
 * @self: a policy
 * @allow: whether peers with the server's own uid may become monitors
 *   (org.freedesktop.DBus.Monitoring.BecomeMonitor: a copy of every
 *   message to and from every peer); default %TRUE
 */
PEER_EXPORT
void               peer_policy_set_allow_same_uid_monitor (PeerPolicy *self,
                                                           gboolean    allow);

/**
 * peer_policy_allow_monitor_uid:
 * @self: a policy
 * @uid: a uid, besides the server's own, whose peers may become monitors
 *   (it must also be admitted as a peer)
 */
PEER_EXPORT
void               peer_policy_allow_monitor_uid    (PeerPolicy          *self,
                                                     uid_t                uid);

/**
 * peer_policy_may_monitor:
 * @self: a policy
 * @uid: a connected peer's uid
 *
 * Thread-safe.
 *
 * Returns: %TRUE when a peer with @uid may become a monitor
 */
PEER_EXPORT
gboolean           peer_policy_may_monitor          (PeerPolicy          *self,
                                                     uid_t                uid);

G_END_DECLS
