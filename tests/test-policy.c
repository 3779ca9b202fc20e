/* test-policy.c: PeerPolicy's decisions on credentials. */
#include "config.h"

#include <sys/socket.h>
#include <unistd.h>

#include <libpeer.h>

static GCredentials *
make_credentials (uid_t uid,
                  gid_t gid)
{
  GCredentials *credentials = g_credentials_new ();
  struct ucred ucred = { .pid = getpid (), .uid = uid, .gid = gid };

  g_credentials_set_native (credentials, G_CREDENTIALS_TYPE_LINUX_UCRED, &ucred);
  return credentials;
}

static void
test_same_uid_admitted (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GCredentials) me = make_credentials (getuid (), getgid ());
  g_autoptr(GError) error = NULL;

  g_assert_true (peer_policy_check_credentials (policy, me, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (peer_policy_get_n_refused (policy), ==, 0);
  g_assert_false (peer_policy_admits_other_users (policy));
}

static void
test_other_uid_refused (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GCredentials) other = make_credentials (getuid () + 4242, 4242);
  g_autoptr(GError) error = NULL;

  g_assert_false (peer_policy_check_credentials (policy, other, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);
  g_assert_cmpuint (peer_policy_get_n_refused (policy), ==, 1);
}

static void
test_same_uid_can_be_refused (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GCredentials) me = make_credentials (getuid (), getgid ());
  g_autoptr(GError) error = NULL;

  peer_policy_set_allow_same_uid (policy, FALSE);
  g_assert_false (peer_policy_check_credentials (policy, me, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);
}

static void
test_allowed_uid (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GCredentials) listed = make_credentials (getuid () + 7, 99999);
  g_autoptr(GCredentials) unlisted = make_credentials (getuid () + 8, 99999);

  peer_policy_allow_uid (policy, getuid () + 7);
  g_assert_true (peer_policy_admits_other_users (policy));
  g_assert_true (peer_policy_check_credentials (policy, listed, NULL));
  g_assert_false (peer_policy_check_credentials (policy, unlisted, NULL));
  g_assert_cmpuint (peer_policy_get_n_refused (policy), ==, 1);
}

static void
test_allowed_gid (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GCredentials) in_group = make_credentials (getuid () + 7, 5555);
  g_autoptr(GCredentials) not_in_group = make_credentials (getuid () + 7, 5556);

  peer_policy_allow_gid (policy, 5555);
  g_assert_true (peer_policy_admits_other_users (policy));
  g_assert_true (peer_policy_check_credentials (policy, in_group, NULL));
  g_assert_false (peer_policy_check_credentials (policy, not_in_group, NULL));
}

static gboolean
only_even_uids (PeerPolicy   *policy,
                GCredentials *credentials,
                gboolean      lists_allow,
                gpointer      user_data)
{
  guint *calls = user_data;

  (*calls)++;
  return g_credentials_get_unix_user (credentials, NULL) % 2 == 0;
}

static void
test_check_func_decides (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GCredentials) even = make_credentials (424242, 1);
  g_autoptr(GCredentials) odd = make_credentials (424243, 1);
  guint calls = 0;

  /* Widens: an even uid the lists do not name is admitted... */
  peer_policy_set_check_func (policy, only_even_uids, &calls, NULL);
  g_assert_true (peer_policy_admits_other_users (policy));
  g_assert_true (peer_policy_check_credentials (policy, even, NULL));
  /* ...and narrows: an odd one is refused. */
  g_assert_false (peer_policy_check_credentials (policy, odd, NULL));
  g_assert_cmpuint (calls, ==, 2);

  peer_policy_set_check_func (policy, NULL, NULL, NULL);
  g_assert_false (peer_policy_check_credentials (policy, even, NULL));
  g_assert_cmpuint (calls, ==, 2);
}

static void
test_no_credentials_refused (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GError) error = NULL;

  g_assert_false (peer_policy_check_credentials (policy, NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);
}

static void
test_observer_mechanisms (void)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GDBusAuthObserver) observer = peer_policy_create_auth_observer (policy);

  g_assert_true (g_dbus_auth_observer_allow_mechanism (observer, "EXTERNAL"));
  g_assert_false (g_dbus_auth_observer_allow_mechanism (observer, "ANONYMOUS"));
  g_assert_false (g_dbus_auth_observer_allow_mechanism (observer, "DBUS_COOKIE_SHA1"));
  /* GDBus asks about every mechanism to build its offer: not refusals. */
  g_assert_cmpuint (peer_policy_get_n_refused (policy), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/peer/policy/same-uid-admitted", test_same_uid_admitted);
  g_test_add_func ("/peer/policy/other-uid-refused", test_other_uid_refused);
  g_test_add_func ("/peer/policy/same-uid-can-be-refused", test_same_uid_can_be_refused);
  g_test_add_func ("/peer/policy/allowed-uid", test_allowed_uid);
  g_test_add_func ("/peer/policy/allowed-gid", test_allowed_gid);
  g_test_add_func ("/peer/policy/check-func-decides", test_check_func_decides);
  g_test_add_func ("/peer/policy/no-credentials-refused", test_no_credentials_refused);
  g_test_add_func ("/peer/policy/observer-allows-external-only", test_observer_mechanisms);
  return g_test_run ();
}
