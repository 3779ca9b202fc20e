/* test-client.c: PeerClient's connecting: sync and async, timeouts,
 * cancellation, bad addresses; and signal subscriptions. */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "peer-test-util.h"

/* A socket that accepts connections (the kernel does, through the backlog)
 * but never says a word: a server that hangs in the handshake. */
typedef struct {
  char *dir;
  char *address;
  int fd;
} MuteServer;

static MuteServer *
mute_server_new (void)
{
  MuteServer *m = g_new0 (MuteServer, 1);
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  g_autofree char *path = NULL;
  int r;

  m->dir = peer_test_make_dir ();
  path = g_build_filename (m->dir, "mute", NULL);
  g_strlcpy (sun.sun_path, path, sizeof sun.sun_path);
  m->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  r = bind (m->fd, (struct sockaddr *) &sun, sizeof sun);
  g_assert_cmpint (r, ==, 0);
  r = listen (m->fd, 8);
  g_assert_cmpint (r, ==, 0);
  m->address = g_strconcat ("unix:path=", path, NULL);
  return m;
}

static void
mute_server_free (MuteServer *m)
{
  close (m->fd);
  peer_test_remove_dir (m->dir);
  g_free (m->dir);
  g_free (m->address);
  g_free (m);
}

static void
test_connect_sync_timeout (void)
{
  MuteServer *mute = mute_server_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = peer_client_new_sync (mute->address, 200, NULL, &error);

  g_assert_null (client);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_TIMED_OUT);
  g_assert_nonnull (strstr (error->message, mute->address));
  mute_server_free (mute);
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static void
test_connect_async_timeout (void)
{
  MuteServer *mute = mute_server_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;

  peer_client_new (mute->address, 200, NULL, on_connected, &result);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  client = peer_client_new_finish (result, &error);
  g_assert_null (client);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_TIMED_OUT);
  mute_server_free (mute);
}

static gboolean
cancel_soon (gpointer user_data)
{
  g_cancellable_cancel (user_data);
  return G_SOURCE_REMOVE;
}

static void
test_connect_cancelled (void)
{
  MuteServer *mute = mute_server_new ();
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;

  peer_client_new (mute->address, 10000, cancellable, on_connected, &result);
  g_idle_add (cancel_soon, cancellable);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  client = peer_client_new_finish (result, &error);
  g_assert_null (client);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  mute_server_free (mute);
}

static void
test_connect_async (void)
{
  g_autoptr(GError) error = NULL;
  PeerTestServer *ts = peer_test_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GVariant) reply = NULL;

  g_assert_no_error (error);
  peer_client_new (ts->address, 5000, NULL, on_connected, &result);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  client = peer_client_new_finish (result, &error);
  g_assert_no_error (error);
  reply = peer_client_call_sync (client, "/org/libpeer/Bench", "org.libpeer.Bench1", "Echo",
                                 g_variant_new_parsed ("(@ay [1, 2, 3],)"), G_VARIANT_TYPE ("(ay)"),
                                 -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  {
    g_autoptr(GVariant) bytes = g_variant_get_child_value (reply, 0);
    g_assert_cmpuint (g_variant_n_children (bytes), ==, 3);
  }
  g_clear_object (&client);
  peer_test_server_free (ts);
}

static void
test_connect_failures (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *nowhere = g_strdup_printf ("unix:path=%s/none", dir);
  const char *bad[] = { "", "nonsense", "unix:", "unix:bogus=1", "frob:x=1" };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;

  client = peer_client_new_sync (nowhere, 1000, NULL, &error);
  g_assert_null (client);
  g_assert_nonnull (error);
  g_assert_false (g_error_matches (error, PEER_ERROR, PEER_ERROR_TIMED_OUT));
  g_assert_nonnull (strstr (error->message, nowhere));
  g_clear_error (&error);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      client = peer_client_new_sync (bad[i], 1000, NULL, &error);
      g_assert_null (client);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
      g_clear_error (&error);
    }
  peer_test_remove_dir (dir);
}

static void
count_signal (PeerClient *client,
              const char *object_path,
              const char *interface_name,
              const char *signal_name,
              GVariant   *parameters,
              gpointer    user_data)
{
  (*(guint *) user_data)++;
}

static void
notify (PeerClient *client)
{
  const char *no_actions[] = { NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  reply = peer_client_call_sync (client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Notify",
                                 g_variant_new ("(susss^as@a{sv}i)", "t", 0, "", "s", "", no_actions,
                                                g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0), -1),
                                 NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
test_unsubscribe (void)
{
  g_autoptr(GError) error = NULL;
  PeerTestServer *ts = peer_test_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_autoptr(PeerClient) client = NULL;
  guint counted = 0, reference = 0, id;

  g_assert_no_error (error);
  client = peer_client_new_sync (ts->address, 5000, NULL, &error);
  g_assert_no_error (error);
  id = peer_client_subscribe_signal (client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Notified",
                                     count_signal, &counted, NULL);
  peer_client_subscribe_signal (client, NULL, "org.libpeer.Helper1", "Notified",
                                count_signal, &reference, NULL);
  notify (client);
  PEER_TEST_WAIT_UNTIL (counted == 1 && reference == 1);

  peer_client_unsubscribe_signal (client, id);
  notify (client);
  /* The second subscription is the witness that the signal came. */
  PEER_TEST_WAIT_UNTIL (reference == 2);
  g_assert_cmpuint (counted, ==, 1);

  g_clear_object (&client);
  peer_test_server_free (ts);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/peer/client/connect/async", test_connect_async);
  g_test_add_func ("/peer/client/connect/sync-timeout", test_connect_sync_timeout);
  g_test_add_func ("/peer/client/connect/async-timeout", test_connect_async_timeout);
  g_test_add_func ("/peer/client/connect/cancelled", test_connect_cancelled);
  g_test_add_func ("/peer/client/connect/failures", test_connect_failures);
  g_test_add_func ("/peer/client/signals/unsubscribe", test_unsubscribe);
  return g_test_run ();
}
