/* peer-policy.c: EXTERNAL-only authentication and uid/gid rules.
 *
 * GDBus calls the auth observer from its worker threads, so every field
 * the observer reads is protected by the policy's mutex.
 */
#include "config.h"

#include <sys/socket.h>

#include <unistd.h>

#include "peer-error.h"
#include "peer-policy.h"

struct _PeerPolicy
{
  GObject parent_instance;

  GMutex lock;
  /* Protected by @lock */
  gboolean allow_same_uid;
  GArray *uids;                  /* uid_t */
  GArray *gids;                  /* gid_t */
  PeerPolicyCheckFunc check_func;
  gpointer check_data;
  GDestroyNotify check_destroy;
  guint64 n_refused;
  gboolean allow_same_uid_monitor;
  GArray *monitor_uids;          /* uid_t */
};

G_DEFINE_FINAL_TYPE (PeerPolicy, peer_policy, G_TYPE_OBJECT)

static void
peer_policy_finalize (GObject *object)
{
  PeerPolicy *self = PEER_POLICY (object);

  if (self->check_destroy != NULL)
    self->check_destroy (self->check_data);
  g_array_unref (self->uids);
  g_array_unref (self->gids);
  g_array_unref (self->monitor_uids);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (peer_policy_parent_class)->finalize (object);
}

static void
peer_policy_class_init (PeerPolicyClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = peer_policy_finalize;
}

static void
peer_policy_init (PeerPolicy *self)
{
  g_mutex_init (&self->lock);
  self->allow_same_uid = TRUE;
  self->uids = g_array_new (FALSE, FALSE, sizeof (uid_t));
  self->gids = g_array_new (FALSE, FALSE, sizeof (gid_t));
  self->allow_same_uid_monitor = TRUE;
  self->monitor_uids = g_array_new (FALSE, FALSE, sizeof (uid_t));
}

PeerPolicy *
peer_policy_new (void)
{
  return g_object_new (PEER_TYPE_POLICY, NULL);
}

void
peer_policy_set_allow_same_uid (PeerPolicy *self,
                                gboolean    allow)
{
  g_return_if_fail (PEER_IS_POLICY (self));

  g_mutex_lock (&self->lock);
  self->allow_same_uid = !!allow;
  g_mutex_unlock (&self->lock);
}

void
peer_policy_allow_uid (PeerPolicy *self,
                       uid_t       uid)
{
  g_return_if_fail (PEER_IS_POLICY (self));
  g_return_if_fail (uid != (uid_t) -1);

  g_mutex_lock (&self->lock);
  g_array_append_val (self->uids, uid);
  g_mutex_unlock (&self->lock);
}

void
peer_policy_allow_gid (PeerPolicy *self,
                       gid_t       gid)
{
  g_return_if_fail (PEER_IS_POLICY (self));
  g_return_if_fail (gid != (gid_t) -1);

  g_mutex_lock (&self->lock);
  g_array_append_val (self->gids, gid);
  g_mutex_unlock (&self->lock);
}

void
peer_policy_set_check_func (PeerPolicy          *self,
                            PeerPolicyCheckFunc  func,
                            gpointer             user_data,
                            GDestroyNotify       destroy)
{
  GDestroyNotify old_destroy;
  gpointer old_data;

  g_return_if_fail (PEER_IS_POLICY (self));

  g_mutex_lock (&self->lock);
  old_destroy = self->check_destroy;
  old_data = self->check_data;
  self->check_func = func;
  self->check_data = user_data;
  self->check_destroy = destroy;
  g_mutex_unlock (&self->lock);

  if (old_destroy != NULL)
    old_destroy (old_data);
}

gboolean
peer_policy_admits_other_users (PeerPolicy *self)
{
  gboolean ret;

  g_return_val_if_fail (PEER_IS_POLICY (self), FALSE);

  g_mutex_lock (&self->lock);
  ret = self->uids->len > 0 || self->gids->len > 0 || self->check_func != NULL;
  g_mutex_unlock (&self->lock);
  return ret;
}

guint64
peer_policy_get_n_refused (PeerPolicy *self)
{
  guint64 ret;

  g_return_val_if_fail (PEER_IS_POLICY (self), 0);

  g_mutex_lock (&self->lock);
  ret = self->n_refused;
  g_mutex_unlock (&self->lock);
  return ret;
}

static void
count_refusal (PeerPolicy *self)
{
  g_mutex_lock (&self->lock);
  self->n_refused++;
  g_mutex_unlock (&self->lock);
}

gboolean
peer_policy_check_credentials (PeerPolicy   *self,
                               GCredentials *credentials,
                               GError      **error)
{
  PeerPolicyCheckFunc func;
  gpointer func_data;
  gboolean allowed = FALSE;
  uid_t uid;
  gid_t gid = (gid_t) -1;
  pid_t pid;
  g_autoptr(GError) local_error = NULL;

  g_return_val_if_fail (PEER_IS_POLICY (self), FALSE);

  if (credentials == NULL)
    {
      count_refusal (self);
      g_debug ("libpeer: refusing peer: no credentials (only EXTERNAL is accepted)");
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                           "Peer has no credentials");
      return FALSE;
    }

  uid = g_credentials_get_unix_user (credentials, &local_error);
  if (uid == (uid_t) -1)
    {
      count_refusal (self);
      g_debug ("libpeer: refusing peer: no uid in credentials: %s", local_error->message);
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                   "Peer credentials carry no uid: %s", local_error->message);
      return FALSE;
    }
  pid = g_credentials_get_unix_pid (credentials, NULL);
#ifdef __linux__
  {
    const struct ucred *ucred = g_credentials_get_native (credentials, G_CREDENTIALS_TYPE_LINUX_UCRED);
    if (ucred != NULL)
      gid = ucred->gid;
  }
#endif

  g_mutex_lock (&self->lock);
  if (self->allow_same_uid && uid == getuid ())
    allowed = TRUE;
  for (guint i = 0; !allowed && i < self->uids->len; i++)
    allowed = g_array_index (self->uids, uid_t, i) == uid;
  for (guint i = 0; !allowed && gid != (gid_t) -1 && i < self->gids->len; i++)
    allowed = g_array_index (self->gids, gid_t, i) == gid;
  func = self->check_func;
  func_data = self->check_data;
  g_mutex_unlock (&self->lock);

  /* Called without the lock: the hook may call back into the policy. */
  if (func != NULL)
    allowed = func (self, credentials, allowed, func_data);

  if (!allowed)
    {
      count_refusal (self);
      g_debug ("libpeer: refusing peer uid=%d gid=%d pid=%d", (int) uid, (int) gid, (int) pid);
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                   "Peer uid %d is not allowed to connect", (int) uid);
      return FALSE;
    }
  return TRUE;
}

static gboolean
on_allow_mechanism (GDBusAuthObserver *observer,
                    const char        *mechanism,
                    PeerPolicy        *self)
{
  /* EXTERNAL is the only mechanism whose identity comes from the kernel.
   * DBUS_COOKIE_SHA1 trusts a file in $HOME; ANONYMOUS trusts nothing.
   * GDBus asks about every mechanism it knows to build the list it offers,
   * so a "no" here is not a refused peer and is not counted: a peer that
   * insists on another mechanism fails its handshake, which the server
   * counts. */
  return g_strcmp0 (mechanism, "EXTERNAL") == 0;
}

static gboolean
on_authorize_authenticated_peer (GDBusAuthObserver *observer,
                                 GIOStream         *stream,
                                 GCredentials      *credentials,
                                 PeerPolicy        *self)
{
  return peer_policy_check_credentials (self, credentials, NULL);
}

GDBusAuthObserver *
peer_policy_create_auth_observer (PeerPolicy *self)
{
  GDBusAuthObserver *observer;

  g_return_val_if_fail (PEER_IS_POLICY (self), NULL);

  observer = g_dbus_auth_observer_new ();
  g_signal_connect_data (observer, "allow-mechanism",
                         G_CALLBACK (on_allow_mechanism),
                         g_object_ref (self), (GClosureNotify) (void (*) (void)) g_object_unref, 0);
  g_signal_connect_object (observer, "authorize-authenticated-peer",
                           G_CALLBACK (on_authorize_authenticated_peer), self, 0);
  return observer;
}

void
peer_policy_set_allow_same_uid_monitor (PeerPolicy *self,
                                        gboolean    allow)
{
  g_return_if_fail (PEER_IS_POLICY (self));

  g_mutex_lock (&self->lock);
  self->allow_same_uid_monitor = !!allow;
  g_mutex_unlock (&self->lock);
}

void
peer_policy_allow_monitor_uid (PeerPolicy *self,
                               uid_t       uid)
{
  g_return_if_fail (PEER_IS_POLICY (self));

  g_mutex_lock (&self->lock);
  g_array_append_val (self->monitor_uids, uid);
  g_mutex_unlock (&self->lock);
}

gboolean
peer_policy_may_monitor (PeerPolicy *self,
                         uid_t       uid)
{
  gboolean allowed;

  g_return_val_if_fail (PEER_IS_POLICY (self), FALSE);

  g_mutex_lock (&self->lock);
  allowed = self->allow_same_uid_monitor && uid == getuid ();
  for (guint i = 0; !allowed && i < self->monitor_uids->len; i++)
    allowed = g_array_index (self->monitor_uids, uid_t, i) == uid;
  g_mutex_unlock (&self->lock);
  return allowed;
}
