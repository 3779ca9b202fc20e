/* test-cli.c: peer-server and peer-client as a user runs them: output,
 * exit statuses, one-line errors, and cleanup of sockets and processes. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer-test-util.h"

typedef struct {
  char *dir;
  char *socket_path;
  char *address;
  PeerTestProcess *server;
} Fixture;

/* The fixture's server is followed under valgrind only where peer-server
 * itself is under test (SERVER_UNDER_TEST as the test's data); where the
 * subject is peer-client, the server's code runs under memcheck in the
 * integration tests' servers already, and following it here (a start and
 * a stop under memcheck per case) took most of the valgrind pass's time. */
static const char SERVER_UNDER_TEST[] = "peer-server";

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *arg = NULL;
  const char *args[] = { NULL, NULL };

  f->dir = peer_test_make_dir ();
  f->socket_path = g_build_filename (f->dir, "socket", NULL);
  arg = g_strconcat ("--address=unix:path=", f->socket_path, NULL);
  args[0] = arg;
  if (data == SERVER_UNDER_TEST)
    f->server = peer_test_spawn_server (args, &error);
  else
    f->server = peer_test_spawn_server_unfollowed (args, &error);
  g_assert_no_error (error);
  f->address = g_strdup (f->server->first_line);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  if (f->server != NULL)
    {
      int status = peer_test_process_stop (f->server, SIGTERM);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 0);
    }
  g_assert_false (g_file_test (f->socket_path, G_FILE_TEST_EXISTS));
  peer_test_remove_dir (f->dir);
  g_free (f->dir);
  g_free (f->socket_path);
  g_free (f->address);
}

/* Runs peer-client against the fixture's server. */
static int
client (Fixture     *f,
        char       **out,
        char       **err,
        const char  *first,
        ...)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  va_list args;

  g_ptr_array_add (argv, (gpointer) peer_test_program ("PEER_CLIENT"));
  if (f != NULL)
    {
      g_ptr_array_add (argv, (gpointer) "--address");
      g_ptr_array_add (argv, f->address);
    }
  va_start (args, first);
  for (const char *a = first; a != NULL; a = va_arg (args, const char *))
    g_ptr_array_add (argv, (gpointer) a);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return peer_test_run ((const char * const *) argv->pdata, out, err);
}

/* A failure is exactly one line on stderr, and never a GLib warning. */
static void
assert_one_line_error (const char *err,
                       const char *fragment)
{
  g_assert_nonnull (err);
  if (strstr (err, fragment) == NULL)
    g_error ("stderr '%s' does not mention '%s'", err, fragment);
  g_assert_true (g_str_has_prefix (err, "peer-"));
  g_assert_nonnull (strchr (err, '\n'));
  g_assert_cmpstr (strchr (err, '\n') + 1, ==, "");
  g_assert_null (strstr (err, "CRITICAL"));
  g_assert_null (strstr (err, "WARNING"));
}

/* --- peer-server ------------------------------------------------------ */

static void
test_server_address_and_cleanup (Fixture      *f,
                                 gconstpointer data)
{
  g_autofree char *expected = g_strconcat ("unix:path=", f->socket_path, NULL);
  struct stat st;
  int status;

  g_assert_cmpstr (f->address, ==, expected);
  g_assert_cmpint (lstat (f->socket_path, &st), ==, 0);
  g_assert_true (S_ISSOCK (st.st_mode));
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);

  status = peer_test_process_stop (f->server, SIGINT);
  f->server = NULL;
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
  g_assert_false (g_file_test (f->socket_path, G_FILE_TEST_EXISTS));
}

static void
test_server_default_address (void)
{
  g_autoptr(GError) error = NULL;
  PeerTestProcess *server = peer_test_spawn_server (NULL, &error);
  g_autofree char *path = NULL;
  g_autofree char *dir = NULL;
  struct stat st;
  int status;

  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (server->first_line, "unix:path="));
  path = g_strdup (server->first_line + strlen ("unix:path="));
  dir = g_path_get_dirname (path);
  g_assert_cmpint (stat (dir, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);

  status = peer_test_process_stop (server, SIGTERM);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
}

static void
test_server_same_path_refused (Fixture      *f,
                               gconstpointer data)
{
  const char *argv[] = { peer_test_program ("PEER_SERVER"), "--address", f->address, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *ping_out = NULL;
  int code;

  code = peer_test_run (argv, &out, &err);
  g_assert_cmpint (code, ==, 1);
  g_assert_cmpstr (out, ==, "");
  assert_one_line_error (err, "already listening");

  /* The first one keeps its socket and serves. */
  code = client (f, &ping_out, NULL, "ping", "--count", "3", NULL);
  g_assert_cmpint (code, ==, 0);
}

static void
test_server_bad_arguments (void)
{
  /* All found in the command line, before serving: exit 2. */
  static const struct { const char *arg; int code; const char *fragment; } cases[] = {
    { "--address=unix:abstract=libpeer-test", 2, "Refusing" },
    { "--address=unix:tmpdir=/tmp", 2, "Refusing" },
    { "--address=tcp:host=127.0.0.1,port=0", 2, "Refusing" },
    { "--address=nonsense", 2, "Invalid address" },
    { "--address=unix:path=relative", 2, "absolute" },
    { "--allow-uid=abc", 2, "peer-server: --allow-uid needs a numeric uid, not 'abc'\n" },
    { "--allow-gid=abc", 2, "peer-server: --allow-gid needs a numeric gid, not 'abc'\n" },
    { "--allow-gid=-1", 2, "--allow-gid needs a numeric gid" },
    /* No GLib warning before the error (assert_one_line_error()). */
    { "--fd=99", 2, "peer-server: fd 99 is not open: Bad file descriptor\n" },
    { "--no-such-option", 2, "Unknown option" },
    { "stray", 2, "unexpected argument" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *argv[] = { peer_test_program ("PEER_SERVER"), cases[i].arg, NULL };
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;

      g_assert_cmpint (peer_test_run (argv, &out, &err), ==, cases[i].code);
      g_assert_cmpstr (out, ==, "");
      assert_one_line_error (err, cases[i].fragment);
    }
}

/* --- peer-client ------------------------------------------------------ */

static void
test_client_ping (Fixture      *f,
                  gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  const char *bad[] = { "0", "-5", "abc", "1e3", "" };

  g_assert_cmpint (client (f, &out, NULL, "ping", "--count", "50", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "50 pings: min "));
  g_assert_nonnull (strstr (out, "p50 "));
  g_assert_nonnull (strstr (out, "p99.9 "));
  /* The same over a lane. */
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (client (f, &out, NULL, "--lane", "ping", "--count", "50", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "50 pings: min "));
  g_assert_cmpint (client (f, NULL, &err, "--lane", "quick", "0", NULL), ==, 1);
  assert_one_line_error (err, "between 1 and 1024");

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_clear_pointer (&err, g_free);
      g_assert_cmpint (client (f, NULL, &err, "ping", "--count", bad[i], NULL), ==, 2);
      assert_one_line_error (err, "--count must be");
    }
}

/* PEER_LANE_SPIN_US sets how long a lane call may poll for its reply:
 * calls behave the same with spinning off, at its longest, and with a
 * value that is not one (ignored, with no output). */
static void
test_client_lane_spin (Fixture      *f,
                       gconstpointer data)
{
  const char *values[] = { "0", "1000", "lots", "-1" };

  for (guint i = 0; i < G_N_ELEMENTS (values); i++)
    {
      g_autofree char *out = NULL;
      g_autofree char *err = NULL;

      g_setenv ("PEER_LANE_SPIN_US", values[i], TRUE);
      g_assert_cmpint (client (f, &out, &err, "--lane", "ping", "--count", "200", NULL), ==, 0);
      g_assert_true (g_str_has_prefix (out, "200 pings: min "));
      g_assert_cmpstr (err, ==, "");
      g_clear_pointer (&err, g_free);
      /* The twin: an error still comes back as the handler's. */
      g_assert_cmpint (client (f, NULL, &err, "--lane", "quick", "0", NULL), ==, 1);
      assert_one_line_error (err, "between 1 and 1024");
    }
  g_unsetenv ("PEER_LANE_SPIN_US");
}

static void
test_client_call (Fixture      *f,
                  gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (client (f, &out, NULL, "call", "/org/libpeer/Helper",
                           "org.libpeer.Helper1.Quick", "8", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "('"));
  g_clear_pointer (&out, g_free);
  /* A string-typed argument needs no quotes. */
  g_assert_cmpint (client (f, &out, NULL, "call", "/org/libpeer/Helper",
                           "org.libpeer.Helper1.Notify", "app", "0", "", "summary", "body",
                           "[]", "{}", "-1", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "(uint32 "));

#define EXPECT_FAIL(code, fragment, ...)                                   \
  G_STMT_START {                                                          \
    g_clear_pointer (&err, g_free);                                       \
    g_assert_cmpint (client (f, NULL, &err, __VA_ARGS__, NULL), ==, code); \
    assert_one_line_error (err, fragment);                                \
  } G_STMT_END

  /* A value of the wrong type: the type in words, not GVariant's parser's. */
  EXPECT_FAIL (2, "peer-client: argument 1 of Quick (bits): 'abc' is not a 32-bit integer "
                  "(from -2147483648 to 2147483647)\n",
               "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Quick", "abc");
  g_assert_null (strstr (err, "keyword"));
  EXPECT_FAIL (2, "'99999999999' is not a 32-bit integer",
               "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Quick", "99999999999");
  EXPECT_FAIL (2, "argument 2 of Notify (replaces_id): 'x' is not an unsigned 32-bit integer (0 to 4294967295)",
               "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Notify", "app", "x", "", "summary", "body",
               "[]", "{}", "-1");
  EXPECT_FAIL (2, "argument 6 of Notify (actions): 'x' is not an array of strings (in GVariant text, like ['a', 'b'])",
               "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Notify", "app", "0", "", "summary", "body",
               "x", "{}", "-1");
  EXPECT_FAIL (2, "argument 7 of Notify (hints): 'x' is not a dictionary from strings to values of any type",
               "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Notify", "app", "0", "", "summary", "body",
               "[]", "x", "-1");
  EXPECT_FAIL (2, "takes 1 argument", "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Quick");
  EXPECT_FAIL (2, "takes 1 argument", "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Quick", "1", "2");
  EXPECT_FAIL (1, "between 1 and 1024", "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Quick", "0");
  EXPECT_FAIL (1, "has no method", "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Nope");
  EXPECT_FAIL (1, "has no interface", "call", "/org/libpeer/Helper", "org.example.Nope.M");
  EXPECT_FAIL (2, "not an object path", "call", "no/slash", "org.libpeer.Helper1.Quick", "8");
  EXPECT_FAIL (2, "not INTERFACE.METHOD", "call", "/org/libpeer/Helper", "Quick", "8");
  EXPECT_FAIL (2, "needs OBJECT_PATH", "call", "/org/libpeer/Helper");
}

static void
test_client_quick (Fixture      *f,
                   gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (client (f, &out, NULL, "quick", "8", NULL), ==, 0);
  g_assert_cmpint (atoi (out), <, 256);
  EXPECT_FAIL (1, "between 1 and 1024", "quick", "0");
  EXPECT_FAIL (1, "between 1 and 1024", "quick", "2000");
  EXPECT_FAIL (2, "quick: BITS must be a 32-bit integer (from -2147483648 to 2147483647), not 'eight'",
               "quick", "eight");
  EXPECT_FAIL (2, "quick: BITS must be a 32-bit integer (from -2147483648 to 2147483647), not '99999999999'",
               "quick", "99999999999");
  EXPECT_FAIL (2, "needs BITS", "quick");
}

static void
test_client_notify (Fixture      *f,
                    gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (client (f, &out, NULL, "notify", "hello", "world", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "signal Notified("));
  g_assert_nonnull (strstr (out, "'hello') received"));
  EXPECT_FAIL (2, "needs SUMMARY", "notify");
}

static void
test_client_properties (Fixture      *f,
                        gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (client (f, &out, NULL, "get", "/org/libpeer/Helper",
                           "org.libpeer.Helper1.Version", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "'" PACKAGE_VERSION "'\n");
  g_assert_cmpint (client (f, NULL, NULL, "set", "/org/libpeer/Helper",
                           "org.libpeer.Helper1.Label", "from the cli", NULL), ==, 0);
  g_clear_pointer (&out, g_free);
  g_assert_cmpint (client (f, &out, NULL, "get", "/org/libpeer/Helper",
                           "org.libpeer.Helper1.Label", NULL), ==, 0);
  g_assert_cmpstr (out, ==, "'from the cli'\n");

  EXPECT_FAIL (1, "cannot set", "set", "/org/libpeer/Helper", "org.libpeer.Helper1.Version", "9");
  EXPECT_FAIL (1, "cannot get", "get", "/org/libpeer/Helper", "org.libpeer.Helper1.Nope");
  EXPECT_FAIL (1, "has no property", "set", "/org/libpeer/Helper", "org.libpeer.Helper1.Nope", "1");
  EXPECT_FAIL (2, "needs OBJECT_PATH", "get", "/org/libpeer/Helper");
}

static void
test_client_introspect (Fixture      *f,
                        gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (client (f, &out, NULL, "introspect", "/org/libpeer/Helper", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "<interface name=\"org.libpeer.Helper1\">"));
  EXPECT_FAIL (2, "not an object path", "introspect", "bad");
}

static void
on_peers_changed (PeerClient *peer,
                  const char *object_path,
                  const char *interface_name,
                  const char *signal_name,
                  GVariant   *parameters,
                  gpointer    user_data)
{
  guint *peers = user_data;
  g_autoptr(GVariant) dict = g_variant_get_child_value (parameters, 1);

  g_variant_lookup (dict, "Peers", "u", peers);
}

static void
test_client_monitor (Fixture      *f,
                     gconstpointer data)
{
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--address", f->address, "monitor", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) me = peer_client_new_sync (f->address, 5000, NULL, &error);
  g_autoptr(GVariant) reply = NULL;
  const char *no_actions[] = { NULL };
  PeerTestProcess *monitor;
  guint peers = 0;
  gboolean seen = FALSE;
  int status;

  g_assert_no_error (error);
  peer_client_subscribe_signal (me, "/org/libpeer/Helper", "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_peers_changed, &peers, NULL);
  monitor = peer_test_spawn (argv, &error);
  g_assert_no_error (error);
  /* The monitor is connected when the server counts two peers. */
  PEER_TEST_WAIT_UNTIL (peers == 2);

  reply = peer_client_call_sync (me, "/org/libpeer/Helper", "org.libpeer.Helper1", "Notify",
                                 g_variant_new ("(susss^as@a{sv}i)", "t", 0, "", "seen by monitor", "",
                                                no_actions, g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0), -1),
                                 NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  while (!seen)
    {
      g_autofree char *line = peer_test_process_read_line (monitor);
      g_assert_nonnull (line);
      seen = strstr (line, "org.libpeer.Helper1.Notified") != NULL &&
             strstr (line, "'seen by monitor'") != NULL;
    }
  status = peer_test_process_stop (monitor, SIGTERM);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 0);
}

/* Sizes are checked against the machine's memory before anything is
 * allocated: one byte more than it has is refused at once, with one line
 * and exit 2; a size that fits runs. Should the check ever go, the files
 * peer-client may grow are capped during the runs, so that blob-echo fails
 * at its memfd's ftruncate() instead of filling the machine's memory. */
static void
test_client_sizes (Fixture      *f,
                   gconstpointer data)
{
  guint64 memory = (guint64) sysconf (_SC_PHYS_PAGES) * (guint64) sysconf (_SC_PAGESIZE);
  g_autofree char *over = g_strdup_printf ("%" G_GUINT64_FORMAT, memory + 1);
  g_autofree char *expected = g_strdup_printf ("blob-echo: %s is more than the ", over);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  struct rlimit saved, capped;
  void (*saved_handler) (int);

  g_assert_cmpint (getrlimit (RLIMIT_FSIZE, &saved), ==, 0);
  capped = saved;
  capped.rlim_cur = MIN (saved.rlim_max, (rlim_t) 256 * 1024 * 1024);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &capped), ==, 0);
  /* Ignored, so that going past the cap is an error, not a core dump. */
  saved_handler = signal (SIGXFSZ, SIG_IGN);

  g_assert_cmpint (client (f, &out, &err, "blob-echo", over, NULL), ==, 2);
  assert_one_line_error (err, expected);
  g_assert_nonnull (strstr (err, "of memory this machine has available"));
  g_assert_cmpstr (out, ==, "");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  /* The positive twin. */
  g_assert_cmpint (client (f, &out, &err, "blob-echo", "4M", NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "4194304 bytes round-tripped as a sealed memfd"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* payload-bench holds four copies, and checks every size before it
   * measures the first: a bad size last means no output at all. */
  g_assert_cmpint (client (f, &out, &err, "payload-bench", "--runs=1", "64K", "1000000G", NULL), ==, 2);
  assert_one_line_error (err, "payload-bench: 1000000G, held 4 times over, is more than the ");
  g_assert_cmpstr (out, ==, "");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  /* Over what one D-Bus message carries; or, on a small machine, over
   * what it can hold four times. */
  g_assert_cmpint (client (f, &out, &err, "payload-bench", "--runs=1", "64K", "129M", NULL), ==, 2);
  assert_one_line_error (err, "payload-bench: 129M");
  g_assert_true (strstr (err, "more than one D-Bus message can carry (128 MiB)") != NULL ||
                 strstr (err, "held 4 times over") != NULL);
  g_assert_cmpstr (out, ==, "");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (client (f, &out, &err, "payload-bench", "--runs=1", "64K", NULL), ==, 0);
  g_assert_nonnull (strstr (out, "EchoBlob (explicit memfd)"));

  signal (SIGXFSZ, saved_handler);
  g_assert_cmpint (setrlimit (RLIMIT_FSIZE, &saved), ==, 0);
}

static void
test_client_usage_errors (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *nowhere = g_strdup_printf ("unix:path=%s/nothing-here", dir);
  g_autofree char *err = NULL;
  Fixture *f = NULL;

  g_unsetenv ("PEER_ADDRESS");
  EXPECT_FAIL (2, "no address", "ping");
  EXPECT_FAIL (2, "no command", "--address", nowhere);
  EXPECT_FAIL (2, "unknown command", "--address", nowhere, "frobnicate");
  EXPECT_FAIL (2, "Invalid address", "--address", "garbage", "ping");
  EXPECT_FAIL (1, "Cannot connect to", "--address", nowhere, "ping");
  EXPECT_FAIL (2, "--timeout must be positive", "--address", nowhere, "--timeout", "0", "ping");
  /* Missing words are found before connecting (nothing listens there),
   * and a whole command line does try to connect. */
  EXPECT_FAIL (2, "open needs PATH", "--address", nowhere, "open");
  EXPECT_FAIL (1, "Cannot connect to", "--address", nowhere, "open", "README");
  EXPECT_FAIL (2, "set needs OBJECT_PATH INTERFACE.PROPERTY VALUE", "--address", nowhere, "set", "/a", "b.c.D");
  EXPECT_FAIL (2, "'b.C' is not INTERFACE.PROPERTY", "--address", nowhere, "set", "/a", "b.C", "1");
  EXPECT_FAIL (1, "Cannot connect to", "--address", nowhere, "set", "/a", "b.c.D", "1");
  EXPECT_FAIL (2, "payload-bench needs SIZE", "--address", nowhere, "payload-bench");
  peer_test_remove_dir (dir);
}

/* The rule, kept by every command: 2 when the command line is wrong,
 * found before anything is asked of the server (here nothing listens, and
 * the error is still the command line's), 1 when the operation failed.
 * The twin of each: the same command with good words gets as far as
 * connecting, and fails there with 1. */
static void
test_client_exit_status_rule (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *nowhere = g_strdup_printf ("unix:path=%s/nothing-here", dir);
  g_autofree char *file = g_build_filename (dir, "file", NULL);
  g_autofree char *missing = g_build_filename (dir, "missing", NULL);
  static const struct { const char *bad[4]; const char *fragment; const char *good[4]; } cases[] = {
    { { "quick", "abc" }, "quick: BITS must be a 32-bit integer", { "quick", "8" } },
    { { "quick", "99999999999" }, "not '99999999999'", { "quick", "-1" } },
    { { "ping", "--count", "0" }, "--count must be", { "ping", "--count", "1" } },
    { { "job", "0" }, "STEPS must be", { "job", "1" } },
    { { "job", "1", "abc" }, "STEP_MS must be", { "job", "1", "0" } },
    { { "blob-echo", "abc" }, "SIZE must be", { "blob-echo", "1K" } },
    { { "payload-bench", "abc" }, "SIZE must be", { "payload-bench", "1K" } },
    { { "introspect", "bad" }, "not an object path", { "introspect", "/" } },
    { { "monitor", "bad" }, "not an object path", { "monitor", "/" } },
    { { "get", "/a", "nodot" }, "not INTERFACE.PROPERTY", { "get", "/a", "b.c.D" } },
    { { "call", "/a", "nodot" }, "not INTERFACE.METHOD", { "call", "/a", "b.c.D" } },
    { { "notify", "a", "b", "c" }, "notify needs SUMMARY", { "notify", "a", "b" } },
    { { "digest", "MISSING" }, "digest: cannot open ", { "digest", "FILE" } },
  };

  g_assert_true (g_file_set_contents (file, "bytes", -1, NULL));
  g_unsetenv ("PEER_ADDRESS");
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    for (int good = 0; good <= 1; good++)
      {
        const char * const *words = good ? cases[i].good : cases[i].bad;
        g_autoptr(GPtrArray) argv = g_ptr_array_new ();
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;

        g_ptr_array_add (argv, (gpointer) peer_test_program ("PEER_CLIENT"));
        g_ptr_array_add (argv, (gpointer) "--address");
        g_ptr_array_add (argv, nowhere);
        for (guint w = 0; w < 4 && words[w] != NULL; w++)
          g_ptr_array_add (argv, (gpointer) (g_str_equal (words[w], "MISSING") ? missing :
                                             g_str_equal (words[w], "FILE") ? file : words[w]));
        g_ptr_array_add (argv, NULL);
        g_assert_cmpint (peer_test_run ((const char * const *) argv->pdata, &out, &err), ==, good ? 1 : 2);
        assert_one_line_error (err, good ? "Cannot connect to" : cases[i].fragment);
        /* Nothing printed before the error (payload-bench's header). */
        g_assert_cmpstr (out, ==, "");
      }
  peer_test_remove_dir (dir);
}

/* Under `meson test --setup valgrind`, which does not follow peer-client
 * into every one of its hundreds of runs in the suite, a set of its
 * commands runs under valgrind here ($PEER_VALGRIND): a leak or a bad
 * read in any of them exits 97, not the status each should have. With
 * --spawn, the helper peer-server is followed too. */
static void
test_client_under_valgrind (Fixture      *f,
                            gconstpointer data)
{
  static const struct { int code; const char *words[8]; } runs[] = {
    { 0, { "ping", "--count", "3" } },
    { 0, { "--lane", "ping", "--count", "3" } },
    { 0, { "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Quick", "8" } },
    { 2, { "call", "/org/libpeer/Helper", "org.libpeer.Helper1.Quick", "abc" } },
    { 0, { "quick", "8" } },
    { 1, { "quick", "0" } },
    { 2, { "quick", "abc" } },
    { 0, { "get", "/org/libpeer/Helper", "org.libpeer.Helper1.Version" } },
    { 0, { "set", "/org/libpeer/Helper", "org.libpeer.Helper1.Label", "valgrind" } },
    { 0, { "introspect", "/org/libpeer/Helper" } },
    { 0, { "notify", "hello" } },
    { 0, { "job", "2", "10" } },
    { 0, { "blob-echo", "1M" } },
    { 0, { "payload-bench", "--runs=1", "4K" } },
    { 0, { "SPAWN", "quick", "8" } },
  };
  const char *command = g_getenv ("PEER_VALGRIND");
  g_auto(GStrv) valgrind = NULL;

  if (command == NULL)
    {
      g_test_skip ("not under `meson test --setup valgrind`");
      return;
    }
  g_assert_true (g_shell_parse_argv (command, NULL, &valgrind, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (runs); i++)
    {
      g_autoptr(GPtrArray) argv = g_ptr_array_new ();
      g_autofree char *out = NULL;        /* not the TAP stream's */
      g_autofree char *err = NULL;
      const char * const *words = runs[i].words;
      int code;

      for (guint v = 0; valgrind[v] != NULL; v++)
        g_ptr_array_add (argv, valgrind[v]);
      g_ptr_array_add (argv, (gpointer) peer_test_program ("PEER_CLIENT"));
      if (g_str_equal (words[0], "SPAWN"))
        {
          g_ptr_array_add (argv, (gpointer) "--spawn");
          g_ptr_array_add (argv, (gpointer) "--");
          g_ptr_array_add (argv, (gpointer) peer_test_program ("PEER_SERVER"));
          words++;
        }
      else
        {
          g_ptr_array_add (argv, (gpointer) "--address");
          g_ptr_array_add (argv, f->address);
        }
      for (guint w = 0; words[w] != NULL; w++)
        g_ptr_array_add (argv, (gpointer) words[w]);
      g_ptr_array_add (argv, NULL);
      code = peer_test_run ((const char * const *) argv->pdata, &out, &err);
      if (code != runs[i].code)
        g_error ("peer-client %s ... under valgrind: exit %d, not %d (97: valgrind found an error, "
                 "reported above); stderr: %s", runs[i].words[0], code, runs[i].code, err);
    }
}

/* --help says the rule, and lines its commands up. */
static void
test_help (void)
{
  const char *client_argv[] = { peer_test_program ("PEER_CLIENT"), "--help", NULL };
  const char *server_argv[] = { peer_test_program ("PEER_SERVER"), "--help", NULL };
  g_autofree char *out = NULL;
  g_autofree char *server_out = NULL;
  g_auto(GStrv) lines = NULL;
  const char *commands;
  int column = -1;
  guint n = 0;

  g_assert_cmpint (peer_test_run (client_argv, &out, NULL), ==, 0);
  g_assert_nonnull (strstr (out, "Exit status: 0 when the command did what it says; 2 when the command line\n"
                                 "is wrong, found before anything is asked of the server"));
  g_assert_nonnull (strstr (out, "1 when the operation\nfailed"));
  /* Every command's summary starts in the same column, payload-bench's too. */
  commands = strstr (out, "Commands:\n");
  g_assert_nonnull (commands);
  lines = g_strsplit (commands + strlen ("Commands:\n"), "\n", -1);
  for (guint i = 0; lines[i] != NULL && lines[i][0] != '\0'; i++, n++)
    {
      const char *summary = NULL;

      /* "  NAME ARGS  SUMMARY": the summary follows the last two spaces. */
      for (const char *p = lines[i] + 2; *p != '\0'; p++)
        if (p[0] != ' ' && p[-1] == ' ' && p[-2] == ' ')
          summary = p;
      g_assert_nonnull (summary);
      if (column < 0)
        column = (int) (summary - lines[i]);
      if ((int) (summary - lines[i]) != column)
        g_error ("command line '%s' is not aligned with the others (column %d)", lines[i], column);
    }
  g_assert_cmpuint (n, >=, 13);
  g_assert_nonnull (strstr (out, "  payload-bench "));

  g_assert_cmpint (peer_test_run (server_argv, &server_out, NULL), ==, 0);
  g_assert_nonnull (strstr (server_out, "Exit status: 0 when stopped by SIGINT or SIGTERM"));
}

/* --spawn says what happened to a helper that never served. */
static void
test_client_spawn_errors (void)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *server_dir = g_path_get_dirname (peer_test_program ("PEER_SERVER"));
  g_autofree char *old_path = g_strdup (g_getenv ("PATH"));
  g_autofree char *with_server = g_strdup_printf ("%s:%s", server_dir, old_path != NULL ? old_path : "/usr/bin:/bin");
  g_autofree char *without_server = NULL;
  g_autofree char *expected = NULL;
  g_autofree char *installed = NULL;
  g_autofree char *silent = g_strdup_printf ("helper %s (pid ", peer_test_program ("SILENT_PROBE"));
  Fixture *f = NULL;

  /* A program that exits before authenticating: its status. */
  EXPECT_FAIL (1, "helper did not start: the program exited with status 1 (false, pid ",
               "--spawn", "--", "false", "quick", "8");
  g_assert_true (g_str_has_suffix (err, ") before authenticating\n"));
  /* One that does not speak D-Bus: how long it was given. */
  EXPECT_FAIL (1, silent, "--timeout", "300", "--spawn", "--", peer_test_program ("SILENT_PROBE"), "--", "quick", "8");
  g_assert_true (g_str_has_suffix (err, ") did not speak D-Bus within 0.3 s\n"));

  /* One that is not in PATH: where it was looked for (2: a word of the
   * command line). The twin: with its directory in PATH, it serves. */
  without_server = g_strdup (g_getenv ("PATH"));
  expected = g_strdup_printf ("peer-client: Cannot start helper peer-server: no program named peer-server in PATH "
                              "(%s); give its path to start one that is elsewhere\n", without_server);
  installed = g_find_program_in_path ("peer-server");
  if (installed == NULL)
    {
      EXPECT_FAIL (2, expected, "--spawn", "--", "peer-server", "quick", "8");
    }
  EXPECT_FAIL (2, "Cannot start helper no-such-libpeer-helper: no program named no-such-libpeer-helper in PATH (",
               "--spawn", "--", "no-such-libpeer-helper", "quick", "8");
  g_setenv ("PATH", with_server, TRUE);
  g_assert_cmpint (client (NULL, &out, NULL, "--spawn", "--", "peer-server", "quick", "8", NULL), ==, 0);
  g_assert_true (g_ascii_isdigit (out[0]));
  if (old_path != NULL)
    g_setenv ("PATH", old_path, TRUE);
  else
    g_unsetenv ("PATH");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
#define ADD_SERVER(path, func) \
  g_test_add (path, Fixture, SERVER_UNDER_TEST, fixture_set_up, func, fixture_tear_down)
  ADD_SERVER ("/peer/cli/server/address-and-cleanup", test_server_address_and_cleanup);
  g_test_add_func ("/peer/cli/server/default-address", test_server_default_address);
  ADD_SERVER ("/peer/cli/server/same-path-refused", test_server_same_path_refused);
  g_test_add_func ("/peer/cli/server/bad-arguments", test_server_bad_arguments);
  ADD ("/peer/cli/client/ping", test_client_ping);
  ADD ("/peer/cli/client/call", test_client_call);
  ADD ("/peer/cli/client/quick", test_client_quick);
  ADD ("/peer/cli/client/notify", test_client_notify);
  ADD ("/peer/cli/client/properties", test_client_properties);
  ADD ("/peer/cli/client/introspect", test_client_introspect);
  ADD ("/peer/cli/client/monitor", test_client_monitor);
  g_test_add_func ("/peer/cli/client/usage-errors", test_client_usage_errors);
  ADD ("/peer/cli/client/lane-spin", test_client_lane_spin);
  ADD ("/peer/cli/client/sizes-the-machine-can-hold", test_client_sizes);
  g_test_add_func ("/peer/cli/client/exit-status-rule", test_client_exit_status_rule);
  ADD ("/peer/cli/client/under-valgrind", test_client_under_valgrind);
  g_test_add_func ("/peer/cli/help", test_help);
  g_test_add_func ("/peer/cli/client/spawn-errors", test_client_spawn_errors);
#undef ADD
#undef ADD_SERVER
  return g_test_run ();
}
