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
  PeerTestServer *ts = peer_test_server_start ();
  g_autoptr(PeerClient) client = NULL;
  guint counted = 0, reference = 0, id;

  client = peer_test_connect (ts, FALSE);
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

/* Where a client was finalized, and whether its "closed" handler was
 * still running on it then. */
typedef struct {
  PeerClient *client;                   /* the test's reference, the last */
  gboolean in_handler;
  gboolean disposed;
  gboolean disposed_in_handler;
  GThread *disposed_on;
  gboolean dbus_closed;
} LastRef;

static void
on_client_disposed (gpointer  data,
                    GObject  *where_the_object_was)
{
  LastRef *l = data;

  l->disposed = TRUE;
  l->disposed_in_handler = l->in_handler;
  l->disposed_on = g_thread_self ();
}

static gpointer
unref_in_thread (gpointer object)
{
  g_object_unref (object);
  return NULL;
}

/* Drops the client's last reference on another thread, and waits for
 * that thread, from inside the client's handler of the connection's
 * "closed" (which logs as it starts), before the client emits its own. */
static void
on_debug_drop_last_ref (const char     *log_domain,
                        GLogLevelFlags  log_level,
                        const char     *message,
                        gpointer        user_data)
{
  LastRef *l = user_data;

  /* The server, in its thread, logs too. */
  if (!g_str_has_prefix (message, "libpeer: client connection closed") || l->client == NULL)
    return;
  l->in_handler = TRUE;
  g_thread_join (g_thread_new ("drop-client", unref_in_thread, g_steal_pointer (&l->client)));
  l->in_handler = FALSE;
}

static LastRef *
last_ref_new (PeerTestServer *ts)
{
  LastRef *l = g_new0 (LastRef, 1);

  l->client = peer_test_connect (ts, FALSE);
  /* The idle that starts a frozen client's message processing holds a
   * reference until it has run. */
  peer_test_ping_async (l->client);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_object_weak_ref (G_OBJECT (l->client), on_client_disposed, l);
  return l;
}

/* GDBus emits "closed" in the client's context while the application may
 * drop its last reference on another thread: the client's handler holds
 * the client for as long as it runs, so it is finalized after, in that
 * context, not under the handler's feet. */
static void
test_last_ref_during_closed (void)
{
  PeerTestServer *ts = peer_test_server_start ();
  g_autofree LastRef *l = NULL;
  guint handler;

  l = last_ref_new (ts);
  handler = g_log_set_handler ("libpeer", G_LOG_LEVEL_DEBUG, on_debug_drop_last_ref, l);
  peer_client_close (l->client);
  PEER_TEST_WAIT_UNTIL (l->disposed);
  g_log_remove_handler ("libpeer", handler);
  g_assert_false (l->disposed_in_handler);
  g_assert_true (l->disposed_on == g_thread_self ());
  peer_test_server_free (ts);
}

static void
on_dbus_closed (GDBusConnection *connection,
                gboolean         remote_peer_vanished,
                GError          *error,
                LastRef         *l)
{
  l->dbus_closed = TRUE;
}

/* Twin: dropped on another thread while the connection is open, the
 * client goes there; the connection's "closed", emitted afterwards in the
 * client's context, finds nobody to tell. */
static void
test_last_ref_off_thread (void)
{
  PeerTestServer *ts = peer_test_server_start ();
  g_autofree LastRef *l = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  GThread *thread;

  l = last_ref_new (ts);
  connection = g_object_ref (peer_client_get_connection (l->client));
  g_signal_connect (connection, "closed", G_CALLBACK (on_dbus_closed), l);
  thread = g_thread_new ("drop-client", unref_in_thread, g_steal_pointer (&l->client));
  g_thread_join (thread);
  g_assert_true (l->disposed);
  g_assert_true (l->disposed_on == thread);
  PEER_TEST_WAIT_UNTIL (l->dbus_closed);
  g_signal_handlers_disconnect_by_func (connection, on_dbus_closed, l);
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
  g_test_add_func ("/peer/client/lifetime/last-ref-during-closed", test_last_ref_during_closed);
  g_test_add_func ("/peer/client/lifetime/last-ref-off-thread", test_last_ref_off_thread);
  return g_test_run ();
}
