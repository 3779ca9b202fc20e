/* test-server.c: PeerServer with real clients: addresses and sockets,
 * authentication, the peer registry, dispatch, errors, properties,
 * signals and the bus handshake.
 *
 * The server runs in its own thread (PeerTestServer); the test's thread
 * is the client. Server-side events travel back through a GAsyncQueue, so
 * every wait is for an event, never a sleep. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "peer-test-util.h"

#define TEST_IFACE "org.libpeer.Test1"
#define TEST_PATH "/org/libpeer/Test"
#define HELPER_PATH "/org/libpeer/Helper"
#define HELPER_IFACE "org.libpeer.Helper1"

static const char test_xml[] =
  "<node><interface name='org.libpeer.Test1'>"
  " <method name='Fail'><arg name='kind' type='s' direction='in'/></method>"
  " <method name='Hang'/>"
  " <method name='Later'><arg type='s' direction='in'/><arg type='s' direction='out'/></method>"
  " <method name='Forget'/>"
  " <method name='Unimplemented'/>"
  " <method name='WhoAmI'>"
  "  <arg name='id' type='t' direction='out'/><arg name='uid' type='u' direction='out'/>"
  "  <arg name='pid' type='i' direction='out'/><arg name='name' type='s' direction='out'/>"
  " </method>"
  " <signal name='Poke'><arg type='s'/></signal>"
  "</interface></node>";

/* --- server-side events ------------------------------------------------- */

typedef struct {
  char *kind;                           /* "connected", "disconnected", "refused" */
  guint64 id;
  uid_t uid;
  pid_t pid;
  GError *error;                        /* close or refusal reason */
} Event;

static void
event_free (Event *event)
{
  g_free (event->kind);
  g_clear_error (&event->error);
  g_free (event);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Event, event_free)

typedef struct {
  PeerTestServer *ts;
  GAsyncQueue *events;                  /* Event* */
  GAsyncQueue *held_calls;              /* PeerCall* from Hang */
  PeerInterface *test_iface;            /* exported in the server thread */
  char *dir;
} Fixture;

static void
push_peer_event (GAsyncQueue    *queue,
                 const char     *kind,
                 PeerConnection *peer)
{
  Event *event = g_new0 (Event, 1);

  event->kind = g_strdup (kind);
  event->id = peer_connection_get_id (peer);
  event->uid = peer_connection_get_uid (peer);
  event->pid = peer_connection_get_pid (peer);
  event->error = peer_connection_dup_close_reason (peer);
  g_async_queue_push (queue, event);
}

static void
on_peer_connected (PeerServer     *server,
                   PeerConnection *peer,
                   Fixture        *f)
{
  push_peer_event (f->events, "connected", peer);
}

static void
on_peer_disconnected (PeerServer     *server,
                      PeerConnection *peer,
                      Fixture        *f)
{
  push_peer_event (f->events, "disconnected", peer);
}

static void
on_peer_refused (PeerServer   *server,
                 const GError *reason,
                 Fixture      *f)
{
  Event *event = g_new0 (Event, 1);

  event->kind = g_strdup ("refused");
  event->error = g_error_copy (reason);
  g_async_queue_push (f->events, event);
}

/* Waits for the next server event, which must be of @kind. */
static Event *
expect_event (Fixture    *f,
              const char *kind)
{
  Event *event = g_async_queue_timeout_pop (f->events, 10 * G_USEC_PER_SEC);

  if (event == NULL)
    g_error ("no '%s' event within 10 s", kind);
  g_assert_cmpstr (event->kind, ==, kind);
  return event;
}

/* --- the test interface, served in the server thread -------------------- */

static void
handle_fail (PeerCall *call,
             gpointer  user_data)
{
  const char *kind;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &kind);
  if (g_str_equal (kind, "permission"))
    peer_call_return_error (call, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED, "not for you");
  else if (g_str_equal (kind, "limit"))
    peer_call_return_error (call, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED, "too much");
  else if (g_str_equal (kind, "invalid"))
    peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "bad %s", "argument");
  else if (g_str_equal (kind, "custom"))
    peer_call_return_dbus_error (call, "com.example.Error.Custom", "custom failure");
  else if (g_str_equal (kind, "gio"))
    peer_call_return_error (call, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "no such thing");
  else
    peer_call_return_value (call, NULL);
}

static void
handle_hang (PeerCall *call,
             gpointer  user_data)
{
  Fixture *f = user_data;

  g_async_queue_push (f->held_calls, peer_call_ref (call));
}

static gboolean
reply_later (gpointer user_data)
{
  g_autoptr(PeerCall) call = user_data;
  const char *text;
  g_autofree char *reply = NULL;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &text);
  reply = g_strconcat (text, "!", NULL);
  peer_call_return_value (call, g_variant_new ("(s)", reply));
  return G_SOURCE_REMOVE;
}

static void
handle_later (PeerCall *call,
              gpointer  user_data)
{
  GSource *idle = g_idle_source_new ();

  /* Handlers run in the server's context, which is not the default one here. */
  g_source_set_callback (idle, reply_later, peer_call_ref (call), NULL);
  g_source_attach (idle, g_main_context_get_thread_default ());
  g_source_unref (idle);
}

static void
handle_forget (PeerCall *call,
               gpointer  user_data)
{
}

static void
handle_who_am_i (PeerCall *call,
                 gpointer  user_data)
{
  PeerConnection *peer = peer_call_get_connection (call);

  peer_call_return_value (call, g_variant_new ("(tuis)", peer_connection_get_id (peer),
                                               (guint32) peer_connection_get_uid (peer),
                                               (gint32) peer_connection_get_pid (peer),
                                               peer_connection_get_unique_name (peer)));
}

static gboolean
set_up_in_server (gpointer user_data)
{
  Fixture *f = user_data;
  static const PeerMethodEntry entries[] = {
    { "Fail", handle_fail, 0 },
    { "Hang", handle_hang, 0 },
    { "Later", handle_later, 0 },
    { "Forget", handle_forget, 0 },
    { "WhoAmI", handle_who_am_i, 0 },
  };
  g_autoptr(GError) error = NULL;
  PeerServer *server = f->ts->server;

  f->test_iface = peer_interface_new_for_xml (test_xml, TEST_IFACE, &error);
  g_assert_no_error (error);
  g_assert_true (peer_interface_add_methods (f->test_iface, entries, G_N_ELEMENTS (entries), f, &error));
  g_assert_true (peer_server_export (server, TEST_PATH, f->test_iface, &error));
  g_signal_connect (server, "peer-connected", G_CALLBACK (on_peer_connected), f);
  g_signal_connect (server, "peer-disconnected", G_CALLBACK (on_peer_disconnected), f);
  g_signal_connect (server, "peer-refused", G_CALLBACK (on_peer_refused), f);
  return G_SOURCE_REMOVE;
}

static void
start_server (Fixture    *f,
              PeerPolicy *policy)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = g_strdup_printf ("unix:path=%s/socket", f->dir);

  f->ts = peer_test_server_new (policy, address, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_no_error (error);
  peer_test_server_invoke (f->ts, set_up_in_server, f);
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  f->events = g_async_queue_new_full ((GDestroyNotify) event_free);
  f->held_calls = g_async_queue_new_full ((GDestroyNotify) peer_call_unref);
  f->dir = peer_test_make_dir ();
  if (data == NULL)
    start_server (f, NULL);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_autofree char *socket_path = g_build_filename (f->dir, "socket", NULL);

  g_async_queue_unref (f->held_calls);  /* replies NoReply to anything still held */
  peer_test_server_free (f->ts);
  g_clear_object (&f->test_iface);
  g_async_queue_unref (f->events);
  /* The server removed its socket when it stopped. */
  g_assert_false (g_file_test (socket_path, G_FILE_TEST_EXISTS));
  peer_test_remove_dir (f->dir);
  g_free (f->dir);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static PeerClient *
connect_client (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  PeerClient *client = peer_client_new_sync (f->ts->address, 5000, NULL, &error);

  g_assert_no_error (error);
  return client;
}

static GVariant *
call (PeerClient *client,
      const char *path,
      const char *iface,
      const char *method,
      GVariant   *params,
      GError    **error)
{
  return peer_client_call_sync (client, path, iface, method, params, NULL, 5000,
                                NULL, NULL, NULL, error);
}

/* --- addresses and sockets ---------------------------------------------- */

static void
assert_mode (const char *path,
             mode_t      expected)
{
  struct stat st;

  g_assert_cmpint (lstat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 07777, ==, expected);
}

static void
test_default_address (void)
{
  g_autofree char *runtime = peer_test_make_dir ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *expected = NULL;
  const char *path;

  g_setenv ("XDG_RUNTIME_DIR", runtime, TRUE);
  server = peer_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_unsetenv ("XDG_RUNTIME_DIR");
  g_assert_no_error (error);

  path = peer_server_get_socket_path (server);
  dir = g_path_get_dirname (path);
  g_assert_true (g_str_has_prefix (path, runtime));
  assert_mode (dir, 0700);
  assert_mode (path, 0600);
  expected = g_strconcat ("unix:path=", path, NULL);
  g_assert_cmpstr (peer_server_get_client_address (server), ==, expected);

  peer_server_stop (server);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
  peer_test_remove_dir (runtime);
}

static void
test_default_address_ignores_open_runtime_dir (void)
{
  g_autofree char *runtime = peer_test_make_dir ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autofree char *dir = NULL;

  /* A runtime directory others can enter is not used. */
  g_assert_cmpint (chmod (runtime, 0755), ==, 0);
  g_setenv ("XDG_RUNTIME_DIR", runtime, TRUE);
  server = peer_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_unsetenv ("XDG_RUNTIME_DIR");
  g_assert_no_error (error);

  g_assert_false (g_str_has_prefix (peer_server_get_socket_path (server), runtime));
  dir = g_path_get_dirname (peer_server_get_socket_path (server));
  assert_mode (dir, 0700);
  g_clear_object (&server);             /* disposing stops and cleans up */
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
  peer_test_remove_dir (runtime);
}

static void
test_refuses_unsafe_addresses (void)
{
  const char *unsafe[] = {
    "unix:abstract=libpeer-test",
    "unix:tmpdir=/tmp",
    "tcp:host=127.0.0.1,port=0",
    "nonce-tcp:host=127.0.0.1,port=0",
  };

  for (guint i = 0; i < G_N_ELEMENTS (unsafe); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(PeerServer) server = peer_server_new (unsafe[i], NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);

      g_assert_null (server);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_UNSAFE_ADDRESS);
      g_assert_nonnull (strstr (error->message, unsafe[i]));
    }
}

static void
test_unsafe_address_opt_in (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = g_strdup_printf ("libpeer-test-%d", getpid ());
  g_autofree char *address = g_strconcat ("unix:abstract=", name, NULL);
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerServer) tcp = NULL;

  server = peer_server_new (address, NULL, PEER_SERVER_FLAGS_ALLOW_UNSAFE_ADDRESS, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (peer_server_get_client_address (server), ==, address);
  g_assert_null (peer_server_get_socket_path (server));

  /* TCP stays refused even with the opt-in: EXTERNAL needs a Unix socket. */
  tcp = peer_server_new ("tcp:host=127.0.0.1,port=0", NULL, PEER_SERVER_FLAGS_ALLOW_UNSAFE_ADDRESS,
                         NULL, &error);
  g_assert_null (tcp);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED);
}

static void
test_socket_mode_follows_policy (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *own = g_strdup_printf ("unix:path=%s/own", dir);
  g_autofree char *shared = g_strdup_printf ("unix:path=%s/shared", dir);
  g_autofree char *own_path = g_build_filename (dir, "own", NULL);
  g_autofree char *shared_path = g_build_filename (dir, "shared", NULL);
  g_autoptr(PeerPolicy) open_policy = peer_policy_new ();
  g_autoptr(PeerServer) a = NULL;
  g_autoptr(PeerServer) b = NULL;
  g_autoptr(GError) error = NULL;

  a = peer_server_new (own, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_assert_no_error (error);
  assert_mode (own_path, 0600);

  peer_policy_allow_uid (open_policy, 4242);
  b = peer_server_new (shared, open_policy, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_assert_no_error (error);
  assert_mode (shared_path, 0666);

  g_clear_object (&a);
  g_clear_object (&b);
  g_assert_false (g_file_test (own_path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (shared_path, G_FILE_TEST_EXISTS));
  peer_test_remove_dir (dir);
}

static void
test_second_server_refused (Fixture      *f,
                            gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) second = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GVariant) reply = NULL;

  second = peer_server_new (f->ts->address, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_assert_null (second);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_ADDRESS_IN_USE);
  g_assert_nonnull (strstr (error->message, "already listening"));
  g_clear_error (&error);

  /* The first server still has its socket and serves. */
  client = connect_client (f);
  reply = call (client, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 8), &error);
  g_assert_no_error (error);
}

static void
test_stale_socket_replaced (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *path = g_build_filename (dir, "socket", NULL);
  g_autofree char *address = g_strconcat ("unix:path=", path, NULL);
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  int fd, r;

  /* What a crashed server leaves: a socket file nobody listens on. */
  g_strlcpy (sun.sun_path, path, sizeof sun.sun_path);
  fd = socket (AF_UNIX, SOCK_STREAM, 0);
  r = bind (fd, (struct sockaddr *) &sun, sizeof sun);
  g_assert_cmpint (r, ==, 0);
  close (fd);
  g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));

  server = peer_server_new (address, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&server);
  peer_test_remove_dir (dir);
}

static void
test_not_a_socket_refused (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *path = g_build_filename (dir, "file", NULL);
  g_autofree char *address = g_strconcat ("unix:path=", path, NULL);
  g_autofree char *missing = g_strdup_printf ("unix:path=%s/no/such/dir/socket", dir);
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;

  g_assert_true (g_file_set_contents (path, "precious", -1, NULL));
  server = peer_server_new (address, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_assert_null (server);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_ADDRESS_IN_USE);
  g_assert_nonnull (strstr (error->message, "not a socket"));
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  g_clear_error (&error);

  server = peer_server_new (missing, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_assert_null (server);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "no/such/dir"));
  peer_test_remove_dir (dir);
}

/* --- authentication ----------------------------------------------------- */

static int
raw_connect (const char *path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int r;

  g_strlcpy (sun.sun_path, path, sizeof sun.sun_path);
  r = connect (fd, (struct sockaddr *) &sun, sizeof sun);
  g_assert_cmpint (r, ==, 0);
  return fd;
}

static char *
raw_read_line (int fd)
{
  GString *line = g_string_new (NULL);
  char c;

  while (read (fd, &c, 1) == 1)
    {
      if (c == '\n')
        break;
      if (c != '\r')
        g_string_append_c (line, c);
    }
  return g_string_free (line, FALSE);
}

static void
raw_write (int         fd,
           const char *data,
           gsize       len)
{
  gssize n = write (fd, data, len);
  g_assert_cmpint (n, ==, (gssize) len);
}

static void
test_auth_anonymous_refused (Fixture      *f,
                             gconstpointer data)
{
  g_autofree char *path = g_build_filename (f->dir, "socket", NULL);
  g_autofree char *reply = NULL;
  g_autoptr(Event) refused = NULL;
  int fd = raw_connect (path);

  raw_write (fd, "\0AUTH ANONYMOUS 6c6962706565720a\r\n", 35);
  reply = raw_read_line (fd);
  g_assert_cmpstr (reply, ==, "REJECTED EXTERNAL");
  close (fd);

  refused = expect_event (f, "refused");
  g_assert_nonnull (refused->error);
  g_assert_cmpuint (peer_server_get_n_peers (f->ts->server), ==, 0);
}

static void
test_auth_external_accepted (Fixture      *f,
                             gconstpointer data)
{
  g_autofree char *path = g_build_filename (f->dir, "socket", NULL);
  g_autofree char *uid = g_strdup_printf ("%u", (guint) getuid ());
  g_autofree char *hex = NULL;
  g_autofree char *auth = NULL;
  g_autofree char *reply = NULL;
  g_autofree char *expected = NULL;
  g_autoptr(Event) connected = NULL;
  g_autoptr(Event) disconnected = NULL;
  GString *s = g_string_new (NULL);
  int fd = raw_connect (path);

  for (const char *p = uid; *p; p++)
    g_string_append_printf (s, "%02x", *p);
  hex = g_string_free (s, FALSE);
  auth = g_strdup_printf ("AUTH EXTERNAL %s\r\n", hex);
  raw_write (fd, "\0", 1);
  raw_write (fd, auth, strlen (auth));
  reply = raw_read_line (fd);
  expected = g_strconcat ("OK ", peer_server_get_guid (f->ts->server), NULL);
  g_assert_cmpstr (reply, ==, expected);
  raw_write (fd, "BEGIN\r\n", 7);

  connected = expect_event (f, "connected");
  g_assert_cmpint (connected->uid, ==, getuid ());
  close (fd);
  disconnected = expect_event (f, "disconnected");
  g_assert_cmpuint (disconnected->id, ==, connected->id);
}

static void
test_handshake_deadline (Fixture      *f,
                         gconstpointer data)
{
  g_autofree char *path = g_build_filename (f->dir, "socket", NULL);
  g_autoptr(Event) refused = NULL;
  g_autoptr(PeerClient) client = NULL;
  char c;
  int fd;

  peer_server_set_handshake_timeout (f->ts->server, 200);
  fd = raw_connect (path);
  /* Says nothing: the server hangs up when the deadline passes. */
  g_assert_cmpint (read (fd, &c, 1), ==, 0);
  close (fd);
  refused = expect_event (f, "refused");
  g_assert_error (refused->error, PEER_ERROR, PEER_ERROR_TIMED_OUT);

  /* A peer that authenticates in time is unaffected. */
  client = connect_client (f);
  g_clear_pointer (&refused, event_free);
  refused = expect_event (f, "connected");
}

static void
run_as_nobody (gpointer user_data)
{
  /* In the child between fork and exec. */
  if (setgroups (0, NULL) != 0 || setgid (65534) != 0 || setuid (65534) != 0)
    _exit (99);
}

static int
ping_as_nobody (Fixture *f,
                char   **out_stderr)
{
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--address", f->ts->address,
                         "ping", "--count", "1", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;          /* kept out of the TAP stream */
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, 0, run_as_nobody, NULL,
                               &out, out_stderr, &status, &error));
  g_assert_no_error (error);
  g_assert_true (WIFEXITED (status));
  return WEXITSTATUS (status);
}

static void
test_auth_other_uid (Fixture      *f,
                     gconstpointer data)
{
  gboolean allowed = GPOINTER_TO_INT (data) == 2;
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autofree char *err = NULL;
  g_autoptr(Event) event = NULL;
  int code;

  if (getuid () != 0)
    {
      g_test_skip ("needs root to run a client as another uid");
      return;
    }
  /* The allow-list opens the socket to other users (0666); the uid check is
   * then authentication's job. Uid 4242 is allowed, nobody (65534) is not,
   * unless this is the positive twin. */
  peer_policy_allow_uid (policy, allowed ? 65534 : 4242);
  g_assert_cmpint (chmod (f->dir, 0711), ==, 0);
  start_server (f, policy);

  code = ping_as_nobody (f, &err);
  if (allowed)
    {
      g_assert_cmpint (code, ==, 0);
      event = expect_event (f, "connected");
      g_assert_cmpint (event->uid, ==, 65534);
    }
  else
    {
      g_assert_cmpint (code, ==, 1);
      g_assert_nonnull (strstr (err, "not allowed by its policy"));
      event = expect_event (f, "refused");
      g_assert_cmpuint (peer_server_get_n_refused (f->ts->server), ==, 1);
      g_assert_cmpuint (peer_policy_get_n_refused (policy), ==, 1);
      g_assert_cmpuint (peer_server_get_n_peers (f->ts->server), ==, 0);
    }
}

/* --- the registry ------------------------------------------------------- */

static void
test_registry (Fixture      *f,
               gconstpointer data)
{
  g_autoptr(PeerClient) a = connect_client (f);
  g_autoptr(PeerClient) b = connect_client (f);
  g_autoptr(Event) ea = expect_event (f, "connected");
  g_autoptr(Event) eb = expect_event (f, "connected");
  g_autoptr(Event) gone = NULL;
  g_autoptr(GVariant) who = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) peers = NULL;
  guint64 id;
  guint32 uid;
  gint32 pid;
  const char *name;

  g_assert_cmpuint (ea->id, !=, eb->id);
  g_assert_cmpint (ea->uid, ==, getuid ());
  g_assert_cmpint (ea->pid, ==, getpid ());
  g_assert_cmpuint (peer_server_get_n_peers (f->ts->server), ==, 2);
  peers = peer_server_list_peers (f->ts->server);
  g_assert_cmpuint (peers->len, ==, 2);

  who = call (a, TEST_PATH, TEST_IFACE, "WhoAmI", NULL, &error);
  g_assert_no_error (error);
  g_variant_get (who, "(tui&s)", &id, &uid, &pid, &name);
  g_assert_cmpuint (id, ==, ea->id);
  g_assert_cmpuint (uid, ==, getuid ());
  g_assert_cmpint (pid, ==, getpid ());
  g_assert_true (g_str_has_prefix (name, ":1."));

  peer_client_close (a);
  gone = expect_event (f, "disconnected");
  g_assert_cmpuint (gone->id, ==, ea->id);
  g_assert_error (gone->error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_cmpuint (peer_server_get_n_peers (f->ts->server), ==, 1);
}

/* --- dispatch and errors ------------------------------------------------ */

static void
test_errors_map_both_ways (Fixture      *f,
                           gconstpointer data)
{
  static const struct { const char *kind; PeerError code; const char *message; } cases[] = {
    { "permission", PEER_ERROR_PERMISSION_DENIED, "not for you" },
    { "limit", PEER_ERROR_LIMIT_EXCEEDED, "too much" },
    { "invalid", PEER_ERROR_INVALID_ARGS, "bad argument" },
  };
  g_autoptr(PeerClient) client = connect_client (f);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = call (client, TEST_PATH, TEST_IFACE, "Fail",
                                        g_variant_new ("(s)", cases[i].kind), &error);
      g_assert_null (reply);
      g_assert_error (error, PEER_ERROR, (gint) cases[i].code);
      g_assert_cmpstr (error->message, ==, cases[i].message);
    }

  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = call (client, TEST_PATH, TEST_IFACE, "Fail",
                                      g_variant_new ("(s)", "custom"), &error);
    g_autofree char *remote = NULL;
    g_assert_null (reply);
    remote = g_dbus_error_get_remote_error (error);
    g_assert_cmpstr (remote, ==, "com.example.Error.Custom");
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = call (client, TEST_PATH, TEST_IFACE, "Fail",
                                      g_variant_new ("(s)", "gio"), &error);
    g_assert_null (reply);
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  }
  {
    /* The positive twin: no error asked for, none given. */
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = call (client, TEST_PATH, TEST_IFACE, "Fail",
                                      g_variant_new ("(s)", "none"), &error);
    g_assert_no_error (error);
    g_assert_cmpstr (g_variant_get_type_string (reply), ==, "()");
  }
}

static void
test_quick (Fixture      *f,
            gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  const gint32 good[] = { 1, 8, 64, 1024 };
  const gint32 bad[] = { 0, -1, 1025, G_MAXINT32 };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = call (client, HELPER_PATH, HELPER_IFACE, "Quick",
                                        g_variant_new ("(i)", good[i]), &error);
      const char *number;

      g_assert_no_error (error);
      g_variant_get (reply, "(&s)", &number);
      g_assert_true (number[0] != '\0');
      for (const char *p = number; *p; p++)
        g_assert_true (g_ascii_isdigit (*p));
      if (good[i] == 1)
        g_assert_true (g_str_equal (number, "0") || g_str_equal (number, "1"));
      if (good[i] == 8)
        g_assert_cmpint (atoi (number), <, 256);
      if (good[i] == 1024)
        g_assert_cmpuint (strlen (number), <=, 309);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = call (client, HELPER_PATH, HELPER_IFACE, "Quick",
                                        g_variant_new ("(i)", bad[i]), &error);
      g_assert_null (reply);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
      g_assert_nonnull (strstr (error->message, "between 1 and 1024"));
    }
}

static void
test_async_handler (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = call (client, TEST_PATH, TEST_IFACE, "Later",
                                    g_variant_new ("(s)", "later"), &error);
  const char *text;

  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &text);
  g_assert_cmpstr (text, ==, "later!");
}

static void
test_no_reply (Fixture      *f,
               gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = call (client, TEST_PATH, TEST_IFACE, "Forget", NULL, &error);

  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_NO_REPLY);
}

static void
test_bad_calls_keep_peer (Fixture      *f,
                          gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  reply = call (client, TEST_PATH, TEST_IFACE, "Unimplemented", NULL, &error);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_clear_error (&error);

  /* Wrong argument types for a known method. */
  reply = call (client, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(s)", "8"), &error);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  reply = call (client, "/org/libpeer/Nowhere", TEST_IFACE, "Fail", g_variant_new ("(s)", ""), &error);
  g_assert_nonnull (error);
  g_assert_true (error->domain == G_DBUS_ERROR);
  g_clear_error (&error);

  /* The peer is still served. */
  reply = call (client, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 8), &error);
  g_assert_no_error (error);
  g_assert_false (peer_client_is_closed (client));
}

/* --- peers vanishing ---------------------------------------------------- */

typedef struct {
  GVariant *reply;
  GError *error;
  gboolean done;
} AsyncResult;

static void
on_async_reply (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  AsyncResult *r = user_data;

  r->reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &r->error);
  r->done = TRUE;
}

static void
on_client_closed (PeerClient   *client,
                  const GError *reason,
                  GError      **out)
{
  *out = g_error_copy (reason);
}

static void
test_server_drops_peer_mid_call (Fixture      *f,
                                 gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(Event) connected = expect_event (f, "connected");
  g_autoptr(Event) gone = NULL;
  g_autoptr(PeerCall) held = NULL;
  g_autoptr(GError) closed_reason = NULL;
  AsyncResult r = { 0 };

  g_signal_connect (client, "closed", G_CALLBACK (on_client_closed), &closed_reason);
  peer_client_call (client, TEST_PATH, TEST_IFACE, "Hang", NULL, NULL, -1, NULL, NULL, on_async_reply, &r);
  held = g_async_queue_timeout_pop (f->held_calls, 10 * G_USEC_PER_SEC);
  g_assert_nonnull (held);

  peer_test_server_close_peers (f->ts, connected->id);
  PEER_TEST_WAIT_UNTIL (r.done && closed_reason != NULL);
  g_assert_null (r.reply);
  g_assert_error (r.error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_error (closed_reason, PEER_ERROR, PEER_ERROR_DISCONNECTED);

  gone = expect_event (f, "disconnected");
  g_assert_error (gone->error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_cmpstr (gone->error->message, ==, "kicked by test");

  /* A late reply to a peer that is gone is harmless. */
  peer_call_return_value (held, NULL);
  g_clear_error (&r.error);
}

static void
test_client_vanishes_mid_call (Fixture      *f,
                               gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(Event) connected = expect_event (f, "connected");
  g_autoptr(Event) gone = NULL;
  g_autoptr(PeerCall) held = NULL;
  g_autoptr(PeerClient) other = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  AsyncResult r = { 0 };

  peer_client_call (client, TEST_PATH, TEST_IFACE, "Hang", NULL, NULL, -1, NULL, NULL, on_async_reply, &r);
  held = g_async_queue_timeout_pop (f->held_calls, 10 * G_USEC_PER_SEC);
  g_assert_nonnull (held);
  g_assert_true (peer_call_get_connection (held) != NULL);

  peer_client_close (client);
  gone = expect_event (f, "disconnected");
  g_assert_cmpuint (gone->id, ==, connected->id);
  g_assert_true (peer_connection_is_closed (peer_call_get_connection (held)));

  /* Replying now goes nowhere, quietly; the server serves others. */
  peer_call_return_value (held, NULL);
  other = connect_client (f);
  reply = call (other, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 4), &error);
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (r.done);
  g_assert_error (r.error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_clear_error (&r.error);
}

/* Where a PeerConnection was torn down: its weak notify runs in dispose,
 * which must be in the server's main context, owned by whoever runs it. */
typedef struct {
  GMainContext *context;
  GMutex lock;
  GCond cond;
  gboolean disposed;
  gboolean owned_context;
  GThread *thread;
} Teardown;

static void
on_connection_disposed (gpointer  data,
                        GObject  *where_the_object_was)
{
  Teardown *t = data;

  g_mutex_lock (&t->lock);
  t->disposed = TRUE;
  t->owned_context = g_main_context_is_owner (t->context);
  t->thread = g_thread_self ();
  g_cond_signal (&t->cond);
  g_mutex_unlock (&t->lock);
}

static void
teardown_wait (Teardown *t)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;

  g_mutex_lock (&t->lock);
  while (!t->disposed)
    if (!g_cond_wait_until (&t->cond, &t->lock, deadline))
      g_error ("the connection was not torn down within 10 s");
  g_mutex_unlock (&t->lock);
}

static gboolean
do_nothing (gpointer data)
{
  return G_SOURCE_REMOVE;
}

/* Leaves @held the only reference to its PeerConnection: the peer is
 * gone, and the server is done with it. */
static PeerCall *
hold_call_of_vanished_peer (Fixture  *f,
                            Teardown *t)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(Event) connected = expect_event (f, "connected");
  g_autoptr(Event) gone = NULL;
  PeerCall *held;
  AsyncResult r = { 0 };

  peer_client_call (client, TEST_PATH, TEST_IFACE, "Hang", NULL, NULL, -1, NULL, NULL, on_async_reply, &r);
  held = g_async_queue_timeout_pop (f->held_calls, 10 * G_USEC_PER_SEC);
  g_assert_nonnull (held);
  g_mutex_init (&t->lock);
  g_cond_init (&t->cond);
  t->context = f->ts->context;
  g_object_weak_ref (G_OBJECT (peer_call_get_connection (held)), on_connection_disposed, t);

  peer_client_close (client);
  gone = expect_event (f, "disconnected");
  g_assert_cmpuint (gone->id, ==, connected->id);
  PEER_TEST_WAIT_UNTIL (r.done);
  g_clear_error (&r.error);
  /* The server's "closed" handler, which sent the event, has returned. */
  peer_test_server_invoke (f->ts, do_nothing, NULL);
  return held;
}

static gpointer
drop_call_in_thread (gpointer call)
{
  peer_call_return_value (call, NULL);
  peer_call_unref (call);
  return NULL;
}

/* The last reference to a PeerConnection goes on a thread that does not
 * own the server's main context (as a lane's thread or GDBus's worker may
 * drop it): its teardown still happens in that context, owned. */
static void
test_last_reference_off_context (Fixture      *f,
                                 gconstpointer data)
{
  Teardown t = { 0 };
  PeerCall *held = hold_call_of_vanished_peer (f, &t);

  g_thread_join (g_thread_new ("drop-call", drop_call_in_thread, held));
  teardown_wait (&t);
  g_assert_true (t.owned_context);
  g_mutex_clear (&t.lock);
  g_cond_clear (&t.cond);
}

static gboolean
drop_call_in_server (gpointer call)
{
  drop_call_in_thread (call);
  return G_SOURCE_REMOVE;
}

/* Twin: dropped in the server's context, it is torn down there and then,
 * with nothing deferred. */
static void
test_last_reference_in_context (Fixture      *f,
                                gconstpointer data)
{
  Teardown t = { 0 };
  PeerCall *held = hold_call_of_vanished_peer (f, &t);

  peer_test_server_invoke (f->ts, drop_call_in_server, held);
  g_assert_true (t.disposed);
  g_assert_true (t.owned_context);
  g_assert_true (t.thread == f->ts->thread);
  g_mutex_clear (&t.lock);
  g_cond_clear (&t.cond);
}

/* --- properties --------------------------------------------------------- */

typedef struct {
  GPtrArray *changes;                   /* GVariant* (sa{sv}as) */
} Changes;

static void
on_properties_changed (PeerClient *client,
                       const char *object_path,
                       const char *interface_name,
                       const char *signal_name,
                       GVariant   *parameters,
                       gpointer    user_data)
{
  Changes *changes = user_data;

  g_ptr_array_add (changes->changes, g_variant_ref (parameters));
}

static gboolean
has_change (Changes    *changes,
            const char *property,
            GVariant   *value)
{
  for (guint i = 0; i < changes->changes->len; i++)
    {
      g_autoptr(GVariant) dict = g_variant_get_child_value (g_ptr_array_index (changes->changes, i), 1);
      g_autoptr(GVariant) got = g_variant_lookup_value (dict, property, NULL);
      if (got != NULL && g_variant_equal (got, value))
        return TRUE;
    }
  return FALSE;
}

static void
test_properties (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr(PeerClient) writer = connect_client (f);
  g_autoptr(PeerClient) watcher = connect_client (f);
  g_autoptr(GVariant) version = NULL;
  g_autoptr(GVariant) label = NULL;
  g_autoptr(GVariant) all = NULL;
  g_autoptr(GVariant) big = NULL;
  g_autoptr(GVariant) hi = g_variant_ref_sink (g_variant_new_string ("hi"));
  g_autoptr(GError) error = NULL;
  g_autofree char *long_label = g_strnfill (300, 'x');
  Changes changes = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref) };

  peer_client_subscribe_signal (watcher, HELPER_PATH, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_properties_changed, &changes, NULL);
  /* A client is connected as soon as its own handshake is done, a moment
   * before the server has registered it; a round trip makes sure the
   * server knows the watcher before the writer changes anything. */
  {
    g_autoptr(GVariant) pong = call (watcher, HELPER_PATH, "org.freedesktop.DBus.Peer", "Ping", NULL, &error);
    g_assert_no_error (error);
  }

  version = peer_client_get_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Version", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_string (version, NULL), ==, PACKAGE_VERSION);

  all = call (writer, HELPER_PATH, "org.freedesktop.DBus.Properties", "GetAll",
              g_variant_new ("(s)", HELPER_IFACE), &error);
  g_assert_no_error (error);
  {
    g_autoptr(GVariant) dict = g_variant_get_child_value (all, 0);
    g_assert_true (g_variant_lookup (dict, "Version", "&s", NULL));
    g_assert_true (g_variant_lookup (dict, "Peers", "u", NULL));
    g_assert_true (g_variant_lookup (dict, "Label", "&s", NULL));
  }

  g_assert_true (peer_client_set_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Label",
                                                g_variant_new_string ("hi"), NULL, &error));
  g_assert_no_error (error);
  label = peer_client_get_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Label", NULL, &error);
  g_assert_cmpstr (g_variant_get_string (label, NULL), ==, "hi");
  PEER_TEST_WAIT_UNTIL (has_change (&changes, "Label", hi));

  /* Negative twins: too long, read-only, wrong type; nothing changes. */
  g_assert_false (peer_client_set_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Label",
                                                 g_variant_new_string (long_label), NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_false (peer_client_set_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Version",
                                                 g_variant_new_string ("9"), NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (peer_client_set_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Label",
                                                 g_variant_new_uint32 (1), NULL, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  big = peer_client_get_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Label", NULL, &error);
  g_assert_cmpstr (g_variant_get_string (big, NULL), ==, "hi");
  g_clear_pointer (&version, g_variant_unref);
  version = peer_client_get_property_sync (writer, HELPER_PATH, HELPER_IFACE, "Version", NULL, &error);
  g_assert_cmpstr (g_variant_get_string (version, NULL), ==, PACKAGE_VERSION);

  g_ptr_array_unref (changes.changes);
}

static void
test_peers_property (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr(PeerClient) watcher = connect_client (f);
  g_autoptr(PeerClient) second = NULL;
  g_autoptr(GVariant) two = g_variant_ref_sink (g_variant_new_uint32 (2));
  g_autoptr(GVariant) one = g_variant_ref_sink (g_variant_new_uint32 (1));
  Changes changes = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref) };

  peer_client_subscribe_signal (watcher, HELPER_PATH, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_properties_changed, &changes, NULL);
  second = connect_client (f);
  PEER_TEST_WAIT_UNTIL (has_change (&changes, "Peers", two));
  g_ptr_array_set_size (changes.changes, 0);
  peer_client_close (second);
  PEER_TEST_WAIT_UNTIL (has_change (&changes, "Peers", one));
  g_ptr_array_unref (changes.changes);
}

/* --- signals ------------------------------------------------------------ */

typedef struct {
  guint notified;
  guint32 last_id;
  guint pokes;
  guint markers;
} Seen;

static void
on_test_signal (PeerClient *client,
                const char *object_path,
                const char *interface_name,
                const char *signal_name,
                GVariant   *parameters,
                gpointer    user_data)
{
  Seen *seen = user_data;

  if (g_str_equal (signal_name, "Notified"))
    {
      seen->notified++;
      g_variant_get (parameters, "(u&s)", &seen->last_id, NULL);
    }
  else if (g_str_equal (signal_name, "Poke"))
    {
      const char *what;
      g_variant_get (parameters, "(&s)", &what);
      if (g_str_equal (what, "marker"))
        seen->markers++;
      else
        seen->pokes++;
    }
}

typedef struct {
  Fixture *f;
  guint64 target;
} PokeRequest;

static gboolean
poke_in_server (gpointer user_data)
{
  PokeRequest *req = user_data;
  g_autoptr(GPtrArray) peers = peer_server_list_peers (req->f->ts->server);
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < peers->len; i++)
    if (peer_connection_get_id (g_ptr_array_index (peers, i)) == req->target)
      g_assert_true (peer_interface_emit_signal (req->f->test_iface, g_ptr_array_index (peers, i),
                                                 "Poke", g_variant_new ("(s)", "just you"), &error));
  /* Then to everyone: each connection delivers in order, so a peer that
   * sees the marker has seen any unicast meant for it. */
  g_assert_true (peer_interface_emit_signal (req->f->test_iface, NULL, "Poke",
                                             g_variant_new ("(s)", "marker"), &error));
  /* A signal the interface does not have, or with the wrong arguments, is
   * refused. */
  g_assert_false (peer_interface_emit_signal (req->f->test_iface, NULL, "Nope", NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_false (peer_interface_emit_signal (req->f->test_iface, NULL, "Poke",
                                              g_variant_new ("(u)", 1), &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  return G_SOURCE_REMOVE;
}

static void
test_broadcast_and_unicast (Fixture      *f,
                            gconstpointer data)
{
  PeerClient *clients[3];
  Seen seen[3] = { { 0 } };
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  const char *no_actions[] = { NULL };
  guint64 ids[3];
  guint32 id;
  PokeRequest req = { f, 0 };

  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(Event) event = NULL;
      clients[i] = connect_client (f);
      peer_client_subscribe_signal (clients[i], NULL, NULL, NULL, on_test_signal, &seen[i], NULL);
      event = expect_event (f, "connected");
      ids[i] = event->id;
    }

  reply = call (clients[0], HELPER_PATH, HELPER_IFACE, "Notify",
                g_variant_new ("(susss^as@a{sv}i)", "test", 0, "", "summary", "body", no_actions,
                               g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0), -1),
                &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(u)", &id);
  PEER_TEST_WAIT_UNTIL (seen[0].notified == 1 && seen[1].notified == 1 && seen[2].notified == 1);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpuint (seen[i].last_id, ==, id);

  req.target = ids[1];
  peer_test_server_invoke (f->ts, poke_in_server, &req);
  PEER_TEST_WAIT_UNTIL (seen[0].markers == 1 && seen[1].markers == 1 && seen[2].markers == 1);
  g_assert_cmpuint (seen[0].pokes, ==, 0);
  g_assert_cmpuint (seen[1].pokes, ==, 1);
  g_assert_cmpuint (seen[2].pokes, ==, 0);

  for (guint i = 0; i < 3; i++)
    g_object_unref (clients[i]);
}

/* --- the bus handshake -------------------------------------------------- */

static GDBusConnection *
connect_as_bus_client (const char *address,
                       GError    **error)
{
  return g_dbus_connection_new_for_address_sync (address,
                                                 G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                 G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                 NULL, NULL, error);
}

static GVariant *
bus_call (GDBusConnection *connection,
          const char      *method,
          GVariant        *params,
          GError         **error)
{
  return g_dbus_connection_call_sync (connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                      "org.freedesktop.DBus", method, params, NULL,
                                      G_DBUS_CALL_FLAGS_NONE, 5000, NULL, error);
}

static void
test_bus_handshake (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) bus = connect_as_bus_client (f->ts->address, &error);
  g_autoptr(GVariant) owner = NULL;
  g_autoptr(GVariant) has = NULL;
  g_autoptr(GVariant) names = NULL;
  g_autoptr(GVariant) id = NULL;
  g_autoptr(GVariant) uid = NULL;
  g_autoptr(GVariant) again = NULL;
  g_autoptr(GVariant) match = NULL;
  const char *unique;

  g_assert_no_error (error);
  unique = g_dbus_connection_get_unique_name (bus);
  g_assert_true (g_str_has_prefix (unique, ":1."));

  owner = bus_call (bus, "GetNameOwner", g_variant_new ("(s)", "org.libpeer.Helper"), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_type_string (owner), ==, "(s)");
  has = bus_call (bus, "NameHasOwner", g_variant_new ("(s)", ":1.99999"), &error);
  g_assert_no_error (error);
  {
    gboolean owned;
    g_variant_get (has, "(b)", &owned);
    g_assert_false (owned);
  }
  g_clear_pointer (&owner, g_variant_unref);
  owner = bus_call (bus, "GetNameOwner", g_variant_new ("(s)", ":1.99999"), &error);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER);
  g_clear_error (&error);

  names = bus_call (bus, "ListNames", NULL, &error);
  g_assert_no_error (error);
  {
    g_autofree const char **list = NULL;
    g_variant_get (names, "(^a&s)", &list);
    g_assert_true (g_strv_contains (list, "org.freedesktop.DBus"));
    g_assert_true (g_strv_contains (list, unique));
  }
  id = bus_call (bus, "GetId", NULL, &error);
  g_assert_no_error (error);
  {
    const char *guid;
    g_variant_get (id, "(&s)", &guid);
    g_assert_cmpstr (guid, ==, peer_server_get_guid (f->ts->server));
  }
  uid = bus_call (bus, "GetConnectionUnixUser", g_variant_new ("(s)", unique), &error);
  g_assert_no_error (error);
  {
    guint32 u;
    g_variant_get (uid, "(u)", &u);
    g_assert_cmpuint (u, ==, getuid ());
  }
  match = bus_call (bus, "AddMatch", g_variant_new ("(s)", "type='signal'"), &error);
  g_assert_no_error (error);

  again = bus_call (bus, "Hello", NULL, &error);
  g_assert_null (again);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_FAILED);
}

static void
test_bus_handshake_disabled (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *address = g_strdup_printf ("unix:path=%s/socket", dir);
  g_autoptr(GError) error = NULL;
  PeerTestServer *ts = peer_test_server_new (NULL, address, PEER_SERVER_FLAGS_NO_BUS_COMPAT, &error);
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(PeerClient) plain = NULL;
  g_autoptr(GVariant) reply = NULL;

  g_assert_no_error (error);
  bus = connect_as_bus_client (ts->address, &error);
  g_assert_null (bus);
  g_assert_nonnull (error);
  g_clear_error (&error);

  /* Plain peers are served as ever. */
  plain = peer_client_new_sync (ts->address, 5000, NULL, &error);
  g_assert_no_error (error);
  reply = peer_client_call_sync (plain, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 3),
                                 NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_clear_object (&plain);
  peer_test_server_free (ts);
  peer_test_remove_dir (dir);
}

/* --- lifecycle ---------------------------------------------------------- */

static void
test_stop_closes_peers (Fixture      *f,
                        gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) reason = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *socket_path = g_build_filename (f->dir, "socket", NULL);

  g_signal_connect (client, "closed", G_CALLBACK (on_client_closed), &reason);
  reply = call (client, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 3), &error);
  g_assert_no_error (error);

  peer_test_server_free (f->ts);
  f->ts = NULL;
  g_assert_false (g_file_test (socket_path, G_FILE_TEST_EXISTS));
  PEER_TEST_WAIT_UNTIL (reason != NULL);
  g_assert_error (reason, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_true (peer_client_is_closed (client));
}

static gboolean
export_late_in_server (gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  static PeerInterface *late;

  if (late == NULL)
    {
      late = peer_interface_new_for_xml (test_xml, TEST_IFACE, &error);
      g_assert_true (peer_server_export (f->ts->server, "/late", late, &error));
      g_assert_no_error (error);
      /* The same interface object can be at several paths, but at one
       * path only once (tests/test-objects.c serves it at two). */
      g_assert_false (peer_server_export (f->ts->server, "/late", late, &error));
      g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
    }
  else
    {
      peer_server_unexport (f->ts->server, late);
      g_clear_object (&late);
    }
  return G_SOURCE_REMOVE;
}

static void
test_export_while_connected (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  peer_test_server_invoke (f->ts, export_late_in_server, f);
  reply = call (client, "/late", TEST_IFACE, "Unimplemented", NULL, &error);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_assert_nonnull (strstr (error->message, "not implemented"));
  g_clear_error (&error);

  peer_test_server_invoke (f->ts, export_late_in_server, f);
  reply = call (client, "/late", TEST_IFACE, "Unimplemented", NULL, &error);
  g_assert_nonnull (error);
  g_assert_null (strstr (error->message, "not implemented"));
}

/* --- what the bindings use: one handler at a time, property functions
 * of their own (peer_interface_add_method(), _set_property_getter(),
 * _set_property_setter()) ----------------------------------------------- */

static const char bound_xml[] =
  "<node><interface name='org.libpeer.Bound1'>"
  " <method name='Echo'><arg type='s' direction='in'/><arg type='s' direction='out'/></method>"
  " <method name='Other'/>"
  " <property name='Mood' type='s' access='readwrite'/>"
  "</interface></node>";

typedef struct {
  PeerInterface *iface;
  int destroyed[4];                     /* Echo's data, the getter's, the setter's, a refused one */
  gboolean replace;                     /* the second invocation: replace, then unexport */
  PeerServer *server;
} Bound;

/* In the server's thread: the test's thread, waiting in its own context
 * for the count, is woken to look at it. */
static void
count_destroy (gpointer data)
{
  g_atomic_int_inc ((int *) data);
  g_main_context_wakeup (NULL);
}

static void
handle_echo (PeerCall *call,
             gpointer  user_data)
{
  const char *text;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &text);
  peer_call_return_value (call, g_variant_new ("(s)", text));
}

static GVariant *
get_mood (PeerInterface  *iface,
          PeerConnection *caller,
          const char     *object_path,
          const char     *property_name,
          gpointer        user_data,
          GError        **error)
{
  g_assert_nonnull (caller);
  if (g_str_equal (object_path, "/bound/broken"))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED, "No mood at %s", object_path);
      return NULL;
    }
  if (g_str_equal (object_path, "/bound/stored"))
    return NULL;                        /* the stored value */
  return g_variant_new_string (object_path);
}

static gboolean
set_mood (PeerInterface  *iface,
          PeerConnection *caller,
          const char     *object_path,
          const char     *property_name,
          GVariant       *value,
          gpointer        user_data,
          GError        **error)
{
  const char *mood = g_variant_get_string (value, NULL);

  if (g_str_equal (mood, "grumpy"))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "Not %s", mood);
      return FALSE;
    }
  return !g_str_equal (mood, "silent");  /* refused without saying why */
}

static gboolean
bind_in_server (gpointer user_data)
{
  Bound *b = user_data;
  g_autoptr(GError) error = NULL;

  if (!b->replace)
    {
      b->iface = peer_interface_new_for_xml (bound_xml, "org.libpeer.Bound1", &error);
      g_assert_no_error (error);
      g_assert_true (peer_interface_add_method (b->iface, "Echo", PEER_METHOD_FLAGS_NONE, handle_echo,
                                                &b->destroyed[0], count_destroy, &error));
      g_assert_no_error (error);
      /* An unknown method frees the data at once. */
      g_assert_false (peer_interface_add_method (b->iface, "Shout", PEER_METHOD_FLAGS_NONE, handle_echo,
                                                 &b->destroyed[3], count_destroy, &error));
      g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
      g_assert_cmpint (b->destroyed[3], ==, 1);
      g_clear_error (&error);
      peer_interface_set_property_getter (b->iface, get_mood, &b->destroyed[1], count_destroy);
      peer_interface_set_property_setter (b->iface, set_mood, &b->destroyed[2], count_destroy);
      g_assert_true (peer_interface_set_property (b->iface, "Mood", g_variant_new_string ("stored"), &error));
      for (guint i = 0; i < 3; i++)
        {
          const char *paths[] = { "/bound/a", "/bound/broken", "/bound/stored" };
          g_assert_true (peer_server_export (b->server, paths[i], b->iface, &error));
          g_assert_no_error (error);
        }
    }
  else
    {
      /* Replacing a function frees its data, and only its data. */
      peer_interface_set_property_getter (b->iface, NULL, NULL, NULL);
      g_assert_cmpint (b->destroyed[1], ==, 1);
      g_assert_cmpint (b->destroyed[2], ==, 0);
      peer_server_unexport (b->server, b->iface);
      g_clear_object (&b->iface);
    }
  return G_SOURCE_REMOVE;
}

static void
test_bindings_api (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) mood = NULL;
  Bound b = { .server = f->ts->server };

  peer_test_server_invoke (f->ts, bind_in_server, &b);

  reply = call (client, "/bound/a", "org.libpeer.Bound1", "Echo", g_variant_new ("(s)", "hi"), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_type_string (reply), ==, "(s)");
  g_clear_pointer (&reply, g_variant_unref);
  reply = call (client, "/bound/a", "org.libpeer.Bound1", "Other", NULL, &error);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_clear_error (&error);

  /* The getter sees the object; NULL without error serves the stored value. */
  mood = peer_client_get_property_sync (client, "/bound/a", "org.libpeer.Bound1", "Mood", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_string (mood, NULL), ==, "/bound/a");
  g_clear_pointer (&mood, g_variant_unref);
  mood = peer_client_get_property_sync (client, "/bound/stored", "org.libpeer.Bound1", "Mood", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_string (mood, NULL), ==, "stored");
  g_clear_pointer (&mood, g_variant_unref);
  mood = peer_client_get_property_sync (client, "/bound/broken", "org.libpeer.Bound1", "Mood", NULL, &error);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED);
  g_clear_error (&error);

  /* The setter accepts, refuses with its error, or refuses without one. */
  g_assert_true (peer_client_set_property_sync (client, "/bound/stored", "org.libpeer.Bound1", "Mood",
                                                g_variant_new_string ("calm"), NULL, &error));
  g_assert_no_error (error);
  mood = peer_client_get_property_sync (client, "/bound/stored", "org.libpeer.Bound1", "Mood", NULL, &error);
  g_assert_cmpstr (g_variant_get_string (mood, NULL), ==, "calm");
  g_assert_false (peer_client_set_property_sync (client, "/bound/a", "org.libpeer.Bound1", "Mood",
                                                 g_variant_new_string ("grumpy"), NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_false (peer_client_set_property_sync (client, "/bound/a", "org.libpeer.Bound1", "Mood",
                                                 g_variant_new_string ("silent"), NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);
  g_clear_error (&error);

  b.replace = TRUE;
  peer_test_server_invoke (f->ts, bind_in_server, &b);
  /* The last reference goes once GDBus has let go of the registrations. */
  PEER_TEST_WAIT_UNTIL (g_atomic_int_get (&b.destroyed[0]) == 1);
  PEER_TEST_WAIT_UNTIL (g_atomic_int_get (&b.destroyed[2]) == 1);
  g_assert_cmpint (g_atomic_int_get (&b.destroyed[1]), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&b.destroyed[3]), ==, 1);
}

static GVariant *
get_nothing (PeerInterface  *iface,
             PeerConnection *caller,
             const char     *property_name,
             GError        **error,
             gpointer        user_data)
{
  return NULL;
}

/* The C functions share one user_data, freed once, whichever of the
 * bindings' setters replaces them. */
static void
test_shared_property_data (void)
{
  for (guint replace_getter = 0; replace_getter < 2; replace_getter++)
    {
      g_autoptr(GError) error = NULL;
      PeerInterface *iface = peer_interface_new_for_xml (bound_xml, "org.libpeer.Bound1", &error);
      int shared = 0, own = 0;

      g_assert_no_error (error);
      peer_interface_set_property_funcs (iface, get_nothing, NULL, &shared, count_destroy);
      peer_interface_set_property_funcs (iface, get_nothing, NULL, &shared, count_destroy);
      g_assert_cmpint (shared, ==, 1);
      if (replace_getter)
        peer_interface_set_property_getter (iface, get_mood, &own, count_destroy);
      else
        peer_interface_set_property_setter (iface, set_mood, &own, count_destroy);
      g_assert_cmpint (shared, ==, 2);
      g_assert_cmpint (own, ==, 0);
      g_object_unref (iface);
      g_assert_cmpint (shared, ==, 2);
      g_assert_cmpint (own, ==, 1);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
  signal (SIGPIPE, SIG_IGN);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  g_test_add_func ("/peer/server/address/default-is-private", test_default_address);
  g_test_add_func ("/peer/server/address/default-ignores-open-runtime-dir",
                   test_default_address_ignores_open_runtime_dir);
  g_test_add_func ("/peer/server/address/refuses-unsafe", test_refuses_unsafe_addresses);
  g_test_add_func ("/peer/server/address/unsafe-opt-in", test_unsafe_address_opt_in);
  g_test_add_func ("/peer/server/address/socket-mode-follows-policy", test_socket_mode_follows_policy);
  ADD ("/peer/server/address/second-server-refused", test_second_server_refused);
  g_test_add_func ("/peer/server/address/stale-socket-replaced", test_stale_socket_replaced);
  g_test_add_func ("/peer/server/address/not-a-socket-refused", test_not_a_socket_refused);
  ADD ("/peer/server/auth/anonymous-refused", test_auth_anonymous_refused);
  ADD ("/peer/server/auth/external-accepted", test_auth_external_accepted);
  ADD ("/peer/server/auth/handshake-deadline", test_handshake_deadline);
  g_test_add ("/peer/server/auth/refuses-other-uid", Fixture, GINT_TO_POINTER (1),
              fixture_set_up, test_auth_other_uid, fixture_tear_down);
  g_test_add ("/peer/server/auth/admits-allowed-uid", Fixture, GINT_TO_POINTER (2),
              fixture_set_up, test_auth_other_uid, fixture_tear_down);
  ADD ("/peer/server/registry", test_registry);
  ADD ("/peer/server/dispatch/errors-map-both-ways", test_errors_map_both_ways);
  ADD ("/peer/server/dispatch/quick", test_quick);
  ADD ("/peer/server/dispatch/async-handler", test_async_handler);
  ADD ("/peer/server/dispatch/no-reply", test_no_reply);
  ADD ("/peer/server/dispatch/bad-calls-keep-peer", test_bad_calls_keep_peer);
  ADD ("/peer/server/vanish/server-drops-peer-mid-call", test_server_drops_peer_mid_call);
  ADD ("/peer/server/vanish/client-vanishes-mid-call", test_client_vanishes_mid_call);
  ADD ("/peer/server/vanish/last-reference-off-context", test_last_reference_off_context);
  ADD ("/peer/server/vanish/last-reference-in-context", test_last_reference_in_context);
  ADD ("/peer/server/properties/get-set-changed", test_properties);
  ADD ("/peer/server/properties/peers", test_peers_property);
  ADD ("/peer/server/signals/broadcast-and-unicast", test_broadcast_and_unicast);
  ADD ("/peer/server/bus/handshake", test_bus_handshake);
  g_test_add_func ("/peer/server/bus/handshake-disabled", test_bus_handshake_disabled);
  ADD ("/peer/server/lifecycle/stop-closes-peers", test_stop_closes_peers);
  ADD ("/peer/server/lifecycle/export-while-connected", test_export_while_connected);
  ADD ("/peer/server/bindings/add-method-getter-setter", test_bindings_api);
  g_test_add_func ("/peer/server/bindings/shared-property-data", test_shared_property_data);
#undef ADD
  return g_test_run ();
}
