/* test-helper.c: PeerHelper and peer_server_new_for_fd(): spawning a helper
 * over a socketpair, supervision and restarts, no orphans, the CLI's
 * --spawn, and the README's example. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "peer-test-util.h"
#include "services.h"

#define HELPER_PATH  "/org/libpeer/Helper"
#define HELPER_IFACE "org.libpeer.Helper1"

static PeerHelper *
start_helper (GError **error)
{
  const char *argv[] = { peer_test_program ("PEER_SERVER"), NULL };

  return peer_helper_new (argv, NULL, error);
}

static char *
call_quick (PeerHelper *helper,
            GError    **error)
{
  g_autoptr(GVariant) reply = NULL;
  char *number;

  reply = peer_helper_call_sync (helper, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 16),
                                 G_VARIANT_TYPE ("(s)"), 10000, NULL, NULL, NULL, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(s)", &number);
  return number;
}

/* Whether the process behind @pidfd ended within @timeout_ms: the pidfd
 * becomes readable when it exits. */
static gboolean
pidfd_exited (int pidfd,
              int timeout_ms)
{
  struct pollfd pfd = { pidfd, POLLIN, 0 };
  int r;

  while ((r = poll (&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
    ;
  return r == 1;
}

/* --- spawning ----------------------------------------------------------- */

static void
test_spawn_and_call (void)
{
  g_autofree char *tmp = peer_test_make_dir ();
  g_autofree char *old_tmp = g_strdup (g_getenv ("TMPDIR"));
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GVariant) peers = NULL;
  g_autofree char *number = NULL;

  /* The helper's temporary directory is ours: nothing may appear in it. */
  g_setenv ("TMPDIR", tmp, TRUE);
  helper = start_helper (&error);
  g_assert_no_error (error);
  number = call_quick (helper, &error);
  g_assert_no_error (error);
  g_assert_true (g_ascii_isdigit (number[0]));
  g_assert_cmpint (peer_helper_get_pid (helper), >, 0);
  g_assert_cmpuint (peer_helper_get_n_restarts (helper), ==, 0);
  g_assert_null (peer_helper_dup_exit_reason (helper));

  /* The client is the helper's own peer, and the only one. */
  client = peer_helper_dup_client (helper, 0, NULL, &error);
  g_assert_no_error (error);
  peers = peer_client_get_property_sync (client, HELPER_PATH, HELPER_IFACE, "Peers", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_variant_get_uint32 (peers), ==, 1);

  dir = g_dir_open (tmp, 0, &error);
  g_assert_no_error (error);
  g_assert_null (g_dir_read_name (dir));

  if (old_tmp != NULL)
    g_setenv ("TMPDIR", old_tmp, TRUE);
  else
    g_unsetenv ("TMPDIR");
  g_clear_object (&client);
  g_clear_object (&helper);
  peer_test_remove_dir (tmp);
}

static void
test_spawn_missing_program (void)
{
  const char *argv[] = { "/nonexistent/libpeer-helper", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = peer_helper_new (argv, NULL, &error);

  g_assert_null (helper);
  g_assert_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT);
  g_assert_cmpstr (error->message, ==, "Cannot start helper /nonexistent/libpeer-helper: "
                                       "/nonexistent/libpeer-helper: No such file or directory");
}

/* A program that is not a helper: calls fail with how it ended. */
static void
test_not_a_helper (void)
{
  const char *argv[] = { "sh", "-c", "exit 3", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = peer_helper_new (argv, NULL, &error);
  g_autofree char *number = NULL;

  g_assert_no_error (error);
  number = call_quick (helper, &error);
  g_assert_null (number);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_nonnull (strstr (error->message, "helper did not start: the program exited with status 3 (sh, pid "));
  g_assert_true (g_str_has_suffix (error->message, ") before authenticating"));
  g_assert_cmpint (peer_helper_get_pid (helper), ==, 0);
}

/* The application's policy judges the helper: one that refuses our own uid
 * refuses it, and the helper is stopped. */
static void
test_policy_refuses_helper (void)
{
  const char *argv[] = { peer_test_program ("PEER_SERVER"), NULL };
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autofree char *number = NULL;

  peer_policy_set_allow_same_uid (policy, FALSE);
  helper = peer_helper_new (argv, policy, &error);
  g_assert_no_error (error);
  number = call_quick (helper, &error);
  g_assert_null (number);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_nonnull (strstr (error->message, "helper did not start: the application's policy refused it"));
  g_assert_cmpuint (peer_policy_get_n_refused (policy), ==, 1);
}

/* --- supervision -------------------------------------------------------- */

typedef struct {
  GAsyncQueue *sent;            /* member names of outgoing calls */
} Watch;

static GDBusMessage *
watch_outgoing (GDBusConnection *connection,
                GDBusMessage    *message,
                gboolean         incoming,
                gpointer         user_data)
{
  Watch *watch = user_data;

  if (!incoming && g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL)
    g_async_queue_push (watch->sent, g_strdup (g_dbus_message_get_member (message)));
  return message;
}

static void
on_call_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  GError **out_error = user_data;
  g_autoptr(GVariant) reply = peer_helper_call_finish (PEER_HELPER (source), NULL, result, out_error);

  g_assert_null (reply);
  g_assert_nonnull (*out_error);
}

static void
on_exited (PeerHelper   *helper,
           const GError *reason,
           GError      **out_reason)
{
  g_clear_error (out_reason);
  *out_reason = g_error_copy (reason);
}

/* Digest of a pipe nobody writes to stays in flight until the helper
 * dies; SIGKILL it and look at the error. */
static void
test_killed_mid_call (gconstpointer data)
{
  gboolean restart = GPOINTER_TO_INT (data);
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) call_error = NULL;
  g_autoptr(GError) exited = NULL;
  g_autoptr(PeerHelper) helper = start_helper (&error);
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autofree char *member = NULL;
  g_autofree char *number = NULL;
  Watch watch = { g_async_queue_new_full (g_free) };
  GPid first_pid;
  guint filter;
  int pipe_fds[2];

  g_assert_no_error (error);
  if (restart)
    peer_helper_set_restart_policy (helper, 3, 60000, 10);
  g_signal_connect (helper, "exited", G_CALLBACK (on_exited), &exited);
  client = peer_helper_dup_client (helper, 10000, NULL, &error);
  g_assert_no_error (error);
  first_pid = peer_helper_get_pid (helper);
  filter = g_dbus_connection_add_filter (peer_client_get_connection (client), watch_outgoing, &watch, NULL);

  g_assert_cmpint (pipe (pipe_fds), ==, 0);
  g_unix_fd_list_append (fds, pipe_fds[0], &error);
  g_assert_no_error (error);
  close (pipe_fds[0]);
  peer_helper_call (helper, HELPER_PATH, HELPER_IFACE, "Digest", g_variant_new ("(hs)", 0, "sha256"),
                    G_VARIANT_TYPE ("(s)"), G_MAXINT, fds, NULL, on_call_done, &call_error);
  /* Once Digest is on the wire, a call behind it on the same connection
   * returns only after the helper has taken Digest in. */
  member = g_async_queue_timeout_pop (watch.sent, 10 * G_USEC_PER_SEC);
  g_assert_cmpstr (member, ==, "Digest");
  g_dbus_connection_remove_filter (peer_client_get_connection (client), filter);
  number = call_quick (helper, &error);
  g_assert_no_error (error);

  g_assert_cmpint (kill (first_pid, SIGKILL), ==, 0);
  PEER_TEST_WAIT_UNTIL (call_error != NULL);
  g_assert_error (call_error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_nonnull (strstr (call_error->message, "Digest failed: helper killed by signal 9"));
  PEER_TEST_WAIT_UNTIL (exited != NULL);
  g_assert_nonnull (strstr (exited->message, "helper killed by signal 9"));
  close (pipe_fds[1]);

  g_clear_pointer (&number, g_free);
  number = call_quick (helper, &error);
  if (restart)
    {
      /* The next call waits for the restarted helper. */
      g_assert_no_error (error);
      g_assert_nonnull (number);
      g_assert_cmpint (peer_helper_get_pid (helper), >, 0);
      g_assert_cmpint (peer_helper_get_pid (helper), !=, first_pid);
      g_assert_cmpuint (peer_helper_get_n_restarts (helper), ==, 1);
    }
  else
    {
      g_assert_null (number);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
      g_assert_nonnull (strstr (error->message, "helper killed by signal 9"));
      g_assert_cmpint (peer_helper_get_pid (helper), ==, 0);
    }
  g_async_queue_unref (watch.sent);
}

/* Restarts stop once the window's budget is spent. */
static void
test_restart_gives_up (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = start_helper (&error);
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *third = NULL;

  g_autoptr(GError) exited = NULL;

  g_assert_no_error (error);
  peer_helper_set_restart_policy (helper, 1, 60000, 10);
  g_signal_connect (helper, "exited", G_CALLBACK (on_exited), &exited);
  first = call_quick (helper, &error);
  g_assert_no_error (error);
  g_assert_cmpint (kill (peer_helper_get_pid (helper), SIGKILL), ==, 0);
  PEER_TEST_WAIT_UNTIL (exited != NULL);
  second = call_quick (helper, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (peer_helper_get_n_restarts (helper), ==, 1);

  g_clear_error (&exited);
  g_assert_cmpint (kill (peer_helper_get_pid (helper), SIGKILL), ==, 0);
  PEER_TEST_WAIT_UNTIL (exited != NULL);
  third = call_quick (helper, &error);
  g_assert_null (third);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_nonnull (strstr (error->message, "helper killed by signal 9"));
  g_assert_cmpuint (peer_helper_get_n_restarts (helper), ==, 1);
  g_assert_cmpint (peer_helper_get_pid (helper), ==, 0);
}

/* Dropping the PeerHelper stops the helper before it returns. */
static void
test_dispose_stops_helper (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = start_helper (&error);
  g_autofree char *number = NULL;
  GPid pid;
  int pidfd;

  g_assert_no_error (error);
  number = call_quick (helper, &error);
  g_assert_no_error (error);
  pid = peer_helper_get_pid (helper);
  pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  g_assert_cmpint (kill (pid, 0), ==, 0);
  g_clear_object (&helper);
  if (pidfd >= 0)
    {
      g_assert_true (pidfd_exited (pidfd, 0));
      close (pidfd);
    }
  else
    {
      /* No pidfds (valgrind hides them): the helper, our child, has just
       * been reaped, so its pid cannot have been reused yet. */
      g_assert_cmpint (kill (pid, 0), ==, -1);
      g_assert_cmpint (errno, ==, ESRCH);
    }
}

/* Stops racing each other from several threads (dispose last): one
 * joins the supervisor, the others wait for it, and every one of them
 * returns with the helper gone. */
typedef struct {
  PeerHelper *helper;
  int pidfd;
  GPid pid;
  GMutex lock;
  GCond cond;
  gboolean go;
  gboolean gone_after_stop;
} StopRace;

static gpointer
stop_when_told (gpointer user_data)
{
  StopRace *race = user_data;

  g_mutex_lock (&race->lock);
  while (!race->go)
    g_cond_wait (&race->cond, &race->lock);
  g_mutex_unlock (&race->lock);
  peer_helper_stop (race->helper);
  return GINT_TO_POINTER (peer_helper_get_pid (race->helper) == 0 &&
                          (race->pidfd < 0 ? kill (race->pid, 0) == -1 : pidfd_exited (race->pidfd, 0)));
}

static void
test_stops_race (void)
{
  for (guint round = 0; round < 3; round++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *number = NULL;
      StopRace race = { 0 };
      GThread *threads[3];

      race.helper = start_helper (&error);
      g_assert_no_error (error);
      number = call_quick (race.helper, &error);
      g_assert_no_error (error);
      race.pid = peer_helper_get_pid (race.helper);
      race.pidfd = (int) syscall (SYS_pidfd_open, race.pid, 0);
      g_mutex_init (&race.lock);
      g_cond_init (&race.cond);
      for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
        threads[i] = g_thread_new ("stop", stop_when_told, &race);
      g_mutex_lock (&race.lock);
      race.go = TRUE;
      g_cond_broadcast (&race.cond);
      g_mutex_unlock (&race.lock);
      for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
        g_assert_true (g_thread_join (threads[i]));
      g_clear_object (&race.helper);
      if (race.pidfd >= 0)
        close (race.pidfd);
      g_mutex_clear (&race.lock);
      g_cond_clear (&race.cond);
    }
}

/* The last reference dropped on the supervisor thread, from a handler of
 * the helper's PeerClient::closed: the supervisor cannot join itself, so
 * a thread of the PeerHelper's own stops it and finalizes it. */
typedef struct {
  PeerHelper *helper;                   /* the test's reference, the last */
  GThread *supervisor;
  GMutex lock;
  GCond cond;
  gboolean disposed;
  GThread *disposed_on;
} SupervisorDrop;

static void
on_helper_disposed (gpointer  data,
                    GObject  *where_the_object_was)
{
  SupervisorDrop *drop = data;

  g_mutex_lock (&drop->lock);
  drop->disposed = TRUE;
  drop->disposed_on = g_thread_self ();
  g_cond_signal (&drop->cond);
  g_mutex_unlock (&drop->lock);
}

static void
on_closed_drop_helper (PeerClient     *client,
                       const GError   *reason,
                       SupervisorDrop *drop)
{
  g_mutex_lock (&drop->lock);
  drop->supervisor = g_thread_self ();
  g_mutex_unlock (&drop->lock);
  g_clear_object (&drop->helper);
}

static void
test_last_ref_on_supervisor (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  SupervisorDrop drop = { 0 };
  gint64 deadline;
  GPid pid;
  int pidfd;

  g_mutex_init (&drop.lock);
  g_cond_init (&drop.cond);
  drop.helper = start_helper (&error);
  g_assert_no_error (error);
  client = peer_helper_dup_client (drop.helper, -1, NULL, &error);
  g_assert_no_error (error);
  pid = peer_helper_get_pid (drop.helper);
  pidfd = (int) syscall (SYS_pidfd_open, pid, 0);
  g_object_weak_ref (G_OBJECT (drop.helper), on_helper_disposed, &drop);
  g_signal_connect (client, "closed", G_CALLBACK (on_closed_drop_helper), &drop);

  g_assert_cmpint (kill (pid, SIGKILL), ==, 0);
  deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  g_mutex_lock (&drop.lock);
  while (!drop.disposed)
    if (!g_cond_wait_until (&drop.cond, &drop.lock, deadline))
      g_error ("the PeerHelper was not disposed within 10 s");
  g_assert_nonnull (drop.supervisor);
  g_assert_true (drop.disposed_on != drop.supervisor);
  g_assert_true (drop.disposed_on != g_thread_self ());
  g_mutex_unlock (&drop.lock);
  if (pidfd >= 0)
    {
      g_assert_true (pidfd_exited (pidfd, 10000));
      close (pidfd);
    }
  g_signal_handlers_disconnect_by_func (client, on_closed_drop_helper, &drop);
  g_mutex_clear (&drop.lock);
  g_cond_clear (&drop.cond);
}

/* The child of @parent, found through /proc. */
static GPid
find_child (GPid parent)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc", 0, NULL);
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_strdup_printf ("/proc/%s/stat", name);
      g_autofree char *stat = NULL;
      const char *close_paren;
      int ppid;

      if (!g_ascii_isdigit (name[0]) || !g_file_get_contents (path, &stat, NULL, NULL))
        continue;
      close_paren = strrchr (stat, ')');
      if (close_paren != NULL && sscanf (close_paren + 2, "%*c %d", &ppid) == 1 && ppid == parent)
        return (GPid) atoi (name);
    }
  return 0;
}

static void
on_orphan_exited (GPid     pid,
                  int      status,
                  gpointer user_data)
{
  *(int *) user_data = status;
}

/* An application killed with SIGKILL (no chance to clean up) takes its
 * helper with it. We become the subreaper, so that the orphaned helper is
 * reparented to us and can be waited for like a child. */
static void
test_no_orphan (void)
{
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--spawn", "--",
                         peer_test_program ("PEER_SERVER"), "--", "job", "10000", "1000", NULL };
  g_autoptr(GError) error = NULL;
  PeerTestProcess *app;
  g_autofree char *line = NULL;
  int status, helper_status = -1;
  GPid helper;

  g_assert_cmpint (prctl (PR_SET_CHILD_SUBREAPER, 1), ==, 0);
  app = peer_test_spawn (argv, &error);
  g_assert_no_error (error);
  /* The job started: the helper runs and is connected. */
  line = peer_test_process_read_line (app);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "job /org/libpeer/Helper/jobs/"));
  helper = find_child (app->pid);
  g_assert_cmpint (helper, >, 0);
  /* The negative twin: alive while the application is. */
  g_assert_cmpint (kill (helper, 0), ==, 0);

  status = peer_test_process_stop (app, SIGKILL);
  g_assert_true (WIFSIGNALED (status));
  /* Reparented to us by the time the application was reaped. */
  g_child_watch_add (helper, on_orphan_exited, &helper_status);
  PEER_TEST_WAIT_UNTIL (helper_status != -1);
  /* Gone either way the kernel orders a dying application's steps: killed
   * by PR_SET_PDEATHSIG when the forking thread went first, or exited on
   * its own when the closed socket reached it first (the last thread's
   * files are closed before its children are told; under valgrind that
   * order is common). What may not happen is a helper still running. */
  if (WIFSIGNALED (helper_status))
    g_assert_cmpint (WTERMSIG (helper_status), ==, SIGKILL);
  else
    g_assert_true (WIFEXITED (helper_status));
  g_assert_cmpint (kill (helper, 0), ==, -1);
  g_assert_cmpint (prctl (PR_SET_CHILD_SUBREAPER, 0), ==, 0);
}

/* --- the helper's side -------------------------------------------------- */

static void
test_server_for_fd_refuses_bad_fds (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  int pipe_fds[2];

  g_assert_cmpint (pipe (pipe_fds), ==, 0);
  close (pipe_fds[1]);
  server = peer_server_new_for_fd (pipe_fds[0], NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_null (server);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_assert_cmpint (fcntl (pipe_fds[0], F_GETFD), ==, -1);      /* owned, so closed */
  g_clear_error (&error);

  g_unsetenv (PEER_HELPER_FD_ENV);
  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_null (server);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  g_setenv (PEER_HELPER_FD_ENV, "12345", TRUE);
  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_null (server);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_unsetenv (PEER_HELPER_FD_ENV);
}

static void
on_app_connection (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  GDBusConnection **out = user_data;
  g_autoptr(GError) error = NULL;

  *out = g_dbus_connection_new_finish (result, &error);
  g_assert_no_error (error);
}

static void
on_refused (PeerServer   *server,
            const GError *reason,
            gboolean     *refused)
{
  *refused = TRUE;
}

/* In-process, over a socketpair: the helper's policy sees the other end's
 * credentials too, and a refused one gets nothing. */
static void
test_server_for_fd_policy (gconstpointer data)
{
  gboolean allowed = GPOINTER_TO_INT (data);
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GSocketConnection) stream = NULL;
  gboolean refused = FALSE;
  int sv[2];

  peer_policy_set_allow_same_uid (policy, allowed);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  server = peer_server_new_for_fd (sv[1], policy, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_no_error (error);
  g_assert_null (peer_server_get_client_address (server));
  g_assert_true (peer_bench_service_export (server, &error));
  g_signal_connect (server, "peer-refused", G_CALLBACK (on_refused), &refused);
  peer_server_start (server);

  sock = g_socket_new_from_fd (sv[0], &error);
  g_assert_no_error (error);
  stream = g_socket_connection_factory_create_connection (sock);
  if (allowed)
    {
      g_autoptr(GDBusConnection) connection = NULL;
      g_autoptr(GDBusAuthObserver) observer = peer_policy_create_auth_observer (policy);
      g_autoptr(GPtrArray) peers = NULL;
      g_autofree char *guid = g_dbus_generate_guid ();

      /* The application's side: the authenticating server. */
      g_dbus_connection_new (G_IO_STREAM (stream), guid, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER,
                             observer, NULL, on_app_connection, &connection);
      PEER_TEST_WAIT_UNTIL (connection != NULL && peer_server_get_n_peers (server) == 1);
      g_assert_false (refused);
      /* Credentials from the kernel, although this side authenticated as
       * the client. */
      peers = peer_server_list_peers (server);
      g_assert_cmpint (peer_connection_get_uid (g_ptr_array_index (peers, 0)), ==, getuid ());
      g_assert_cmpint (peer_connection_get_pid (g_ptr_array_index (peers, 0)), ==, getpid ());

      g_dbus_connection_close_sync (connection, NULL, &error);
      g_assert_no_error (error);
      PEER_TEST_WAIT_UNTIL (peer_server_get_n_peers (server) == 0);
    }
  else
    {
      PEER_TEST_WAIT_UNTIL (refused);
      g_assert_cmpuint (peer_server_get_n_peers (server), ==, 0);
      g_assert_cmpuint (peer_server_get_n_refused (server), ==, 1);
    }
}

/* --- the command line and the README ------------------------------------ */

static void
test_cli_spawn (void)
{
  const char *ok[] = { peer_test_program ("PEER_CLIENT"), "--spawn", "--",
                       peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  const char *bad[] = { peer_test_program ("PEER_CLIENT"), "--spawn", "--", "false", "quick", "8", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  guint64 value;
  int status;

  g_assert_cmpint (peer_test_run (ok, &out, &err), ==, 0);
  g_strstrip (out);
  g_assert_true (g_ascii_string_to_unsigned (out, 10, 0, 255, &value, NULL));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  status = peer_test_run (bad, &out, &err);
  g_test_message ("peer-client said: %s", err);
  g_assert_cmpint (status, ==, 1);
  g_assert_nonnull (strstr (err, "helper did not start: the program exited with status 1 (false, pid "));
}

/* Under `meson test --setup valgrind` (PEER_UNDER_VALGRIND=1) the
 * programs a test starts run under valgrind too, and a definite leak in
 * one makes it exit 97: the test that checks its status fails, with
 * valgrind's report in the test's log. The twin: the same program without
 * the leak exits 0. Outside valgrind both exit 0, which is checked too. */
static void
test_child_leak_fails_under_valgrind (void)
{
  const char *leaking[] = { peer_test_program ("LEAK_PROBE"), "--leak", NULL };
  const char *clean[] = { peer_test_program ("LEAK_PROBE"), NULL };
  gboolean under_valgrind = g_strcmp0 (g_getenv ("PEER_UNDER_VALGRIND"), "1") == 0;
  g_autoptr(GError) error = NULL;
  PeerTestProcess *process;
  int status;

  process = peer_test_spawn (leaking, &error);
  g_assert_no_error (error);
  status = peer_test_process_stop (process, 0);
#ifdef __SANITIZE_ADDRESS__
  /* In a build with AddressSanitizer, LeakSanitizer looks at the probe
   * too: the leak ends it with an error (an abort, or its exit code). */
  g_assert_false (WIFEXITED (status) && WEXITSTATUS (status) == 0);
#else
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, under_valgrind ? 97 : 0);
#endif

  process = peer_test_spawn (clean, &error);
  g_assert_no_error (error);
  status = peer_test_process_stop (process, 0);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  if (!under_valgrind)
    g_test_message ("not under valgrind: the leak was not looked for");
}

static void
test_readme_example (void)
{
  g_autofree char *readme_path = g_test_build_filename (G_TEST_DIST, "..", "README.md", NULL);
  g_autofree char *example_path = g_test_build_filename (G_TEST_DIST, "..", "examples",
                                                         "helper-example.c", NULL);
  g_autofree char *readme = NULL;
  g_autofree char *example = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (readme_path, &readme, NULL, &error);
  g_assert_no_error (error);
  g_file_get_contents (example_path, &example, NULL, &error);
  g_assert_no_error (error);
  /* The README shows the very code that is built and run. */
  g_assert_nonnull (strstr (readme, example));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/peer/helper/spawn/call", test_spawn_and_call);
  g_test_add_func ("/peer/helper/spawn/missing-program", test_spawn_missing_program);
  g_test_add_func ("/peer/helper/spawn/not-a-helper", test_not_a_helper);
  g_test_add_func ("/peer/helper/spawn/policy-refuses-helper", test_policy_refuses_helper);
  g_test_add_data_func ("/peer/helper/supervise/killed-mid-call/restarts", GINT_TO_POINTER (TRUE),
                        test_killed_mid_call);
  g_test_add_data_func ("/peer/helper/supervise/killed-mid-call/no-restart", GINT_TO_POINTER (FALSE),
                        test_killed_mid_call);
  g_test_add_func ("/peer/helper/supervise/restart-gives-up", test_restart_gives_up);
  g_test_add_func ("/peer/helper/supervise/dispose-stops-helper", test_dispose_stops_helper);
  g_test_add_func ("/peer/helper/supervise/stops-race", test_stops_race);
  g_test_add_func ("/peer/helper/supervise/last-ref-on-supervisor", test_last_ref_on_supervisor);
  g_test_add_func ("/peer/helper/supervise/no-orphan", test_no_orphan);
  g_test_add_func ("/peer/helper/server-for-fd/refuses-bad-fds", test_server_for_fd_refuses_bad_fds);
  g_test_add_data_func ("/peer/helper/server-for-fd/policy/admits", GINT_TO_POINTER (TRUE),
                        test_server_for_fd_policy);
  g_test_add_data_func ("/peer/helper/server-for-fd/policy/refuses", GINT_TO_POINTER (FALSE),
                        test_server_for_fd_policy);
  g_test_add_func ("/peer/helper/cli/spawn", test_cli_spawn);
  g_test_add_func ("/peer/helper/readme-example", test_readme_example);
  g_test_add_func ("/peer/helper/valgrind/child-leak-fails", test_child_leak_fails_under_valgrind);

  return g_test_run ();
}
