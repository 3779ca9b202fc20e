/* test-interop.c: the standard D-Bus tools and libraries, unchanged,
 * against peer-server with no bus running: gdbus, dbus-send, busctl
 * (sd-bus, a bus client), python3-dbus (as a peer and as a bus client)
 * and dbus-next (Node, a bus client). Each has its negative twin: an error
 * from the server arrives under its D-Bus name. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer-test-util.h"

typedef struct {
  char *dir;
  PeerTestProcess *server;
  const char *address;
} Fixture;

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *arg = NULL;

  f->dir = peer_test_make_dir ();
  arg = g_strdup_printf ("--address=unix:path=%s/socket", f->dir);
  f->server = peer_test_spawn_server ((const char *[]) { arg, NULL }, &error);
  g_assert_no_error (error);
  f->address = f->server->first_line;
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  int status = peer_test_process_stop (f->server, SIGTERM);

  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  peer_test_remove_dir (f->dir);
  g_free (f->dir);
}

static gboolean
have_program (const char *name)
{
  g_autofree char *path = g_find_program_in_path (name);
  return path != NULL;
}

/* Runs a tool; checks its exit status and that stdout (or stderr, for
 * failures) contains @fragment. */
static void
run_expect (const char * const *argv,
            int                 expected_code,
            const char         *fragment)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int code = peer_test_run (argv, &out, &err);
  const char *where = expected_code == 0 ? out : err;

  if (code != expected_code || strstr (where, fragment) == NULL)
    g_error ("%s: exit %d (expected %d); wanted '%s' in:\nstdout: %s\nstderr: %s",
             argv[0], code, expected_code, fragment, out, err);
}

static void
test_gdbus (Fixture      *f,
            gconstpointer data)
{
  const char *call_ok[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Helper",
                            "--object-path", "/org/libpeer/Helper", "--method",
                            "org.libpeer.Helper1.Quick", "8", NULL };
  const char *call_bad[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Helper",
                             "--object-path", "/org/libpeer/Helper", "--method",
                             "org.libpeer.Helper1.Quick", "0", NULL };
  const char *introspect[] = { "gdbus", "introspect", "--address", f->address, "--dest", "org.libpeer.Helper",
                               "--object-path", "/org/libpeer/Helper", NULL };
  const char *introspect_root[] = { "gdbus", "introspect", "--address", f->address, "--dest",
                                    "org.libpeer.Helper", "--object-path", "/", "--recurse", NULL };
  const char *peer_ping[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Helper",
                              "--object-path", "/org/libpeer/Bench", "--method",
                              "org.freedesktop.DBus.Peer.Ping", NULL };

  if (!have_program ("gdbus"))
    {
      g_test_skip ("gdbus is not installed (package libglib2.0-bin)");
      return;
    }
  run_expect (call_ok, 0, "('");
  run_expect (call_bad, 1, "org.libpeer.Error.InvalidArgs");
  run_expect (introspect, 0, "interface org.libpeer.Helper1");
  run_expect (introspect_root, 0, "node /org/libpeer/Bench");
  run_expect (peer_ping, 0, "()");
}

static void
test_gdbus_monitor (Fixture      *f,
                    gconstpointer data)
{
  const char *argv[] = { "gdbus", "monitor", "--address", f->address, "--dest", "org.libpeer.Helper", NULL };
  const char *notify[] = { peer_test_program ("PEER_CLIENT"), "--address", f->address,
                           "notify", "for gdbus monitor", NULL };
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL;
  PeerTestProcess *monitor;
  gboolean subscribed = FALSE, seen = FALSE;

  if (!have_program ("gdbus"))
    {
      g_test_skip ("gdbus is not installed (package libglib2.0-bin)");
      return;
    }
  monitor = peer_test_spawn (argv, &error);
  g_assert_no_error (error);
  /* It resolves the name through the bus handshake, then subscribes. */
  while (!subscribed)
    {
      g_autofree char *line = peer_test_process_read_line (monitor);
      g_assert_nonnull (line);
      subscribed = strstr (line, "is owned by :1.0") != NULL;
    }
  g_assert_cmpint (peer_test_run (notify, &out, NULL), ==, 0);
  while (!seen)
    {
      g_autofree char *line = peer_test_process_read_line (monitor);
      g_assert_nonnull (line);
      seen = strstr (line, "org.libpeer.Helper1.Notified") != NULL &&
             strstr (line, "'for gdbus monitor'") != NULL;
    }
  peer_test_process_stop (monitor, SIGTERM);
}

static void
test_dbus_send (Fixture      *f,
                gconstpointer data)
{
  g_autofree char *peer = g_strconcat ("--peer=", f->address, NULL);
  const char *call_ok[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                            "org.libpeer.Helper1.Quick", "int32:8", NULL };
  const char *call_bad[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                             "org.libpeer.Helper1.Quick", "int32:0", NULL };
  const char *get[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                        "org.freedesktop.DBus.Properties.Get", "string:org.libpeer.Helper1",
                        "string:Version", NULL };
  const char *wrong_type[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                               "org.libpeer.Helper1.Quick", "string:8", NULL };

  if (!have_program ("dbus-send"))
    {
      g_test_skip ("dbus-send is not installed (package dbus-bin)");
      return;
    }
  run_expect (call_ok, 0, "string \"");
  run_expect (call_bad, 1, "org.libpeer.Error.InvalidArgs");
  run_expect (get, 0, "string \"" PACKAGE_VERSION "\"");
  run_expect (wrong_type, 1, "org.freedesktop.DBus.Error.InvalidArgs");
}

static void
test_busctl (Fixture      *f,
             gconstpointer data)
{
  g_autofree char *address = g_strconcat ("--address=", f->address, NULL);
  const char *call_ok[] = { "busctl", address, "call", "org.libpeer.Helper", "/org/libpeer/Helper",
                            "org.libpeer.Helper1", "Quick", "i", "8", NULL };
  const char *call_bad[] = { "busctl", address, "call", "org.libpeer.Helper", "/org/libpeer/Helper",
                             "org.libpeer.Helper1", "Quick", "i", "0", NULL };
  const char *get[] = { "busctl", address, "get-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                        "org.libpeer.Helper1", "Version", NULL };
  const char *set[] = { "busctl", address, "set-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                        "org.libpeer.Helper1", "Label", "s", "from busctl", NULL };
  const char *get_label[] = { "busctl", address, "get-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                              "org.libpeer.Helper1", "Label", NULL };
  const char *set_readonly[] = { "busctl", address, "set-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                                 "org.libpeer.Helper1", "Version", "s", "9", NULL };
  const char *introspect[] = { "busctl", address, "introspect", "org.libpeer.Helper",
                               "/org/libpeer/Helper", NULL };

  if (!have_program ("busctl"))
    {
      g_test_skip ("busctl is not installed (package systemd)");
      return;
    }
  run_expect (call_ok, 0, "s \"");
  run_expect (call_bad, 1, "bits must be between 1 and 1024");
  run_expect (get, 0, "s \"" PACKAGE_VERSION "\"");
  run_expect (set, 0, "");
  run_expect (get_label, 0, "s \"from busctl\"");
  run_expect (set_readonly, 1, "");
  run_expect (introspect, 0, ".Quick");
}

static void
test_python (Fixture      *f,
             gconstpointer data)
{
  const char *mode = data;
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "interop", "python-client.py", NULL);
  const char *argv[] = { "/usr/bin/python3", script, f->address, mode, NULL };
  const char *probe[] = { "/usr/bin/python3", "-c", "import dbus", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (peer_test_run (probe, NULL, NULL) != 0)
    {
      g_test_skip ("python3-dbus is not installed");
      return;
    }
  if (peer_test_run (argv, &out, &err) != 0)
    g_error ("python-client.py %s failed:\n%s%s", mode, out, err);
  g_assert_nonnull (strstr (out, "quick "));
  g_assert_nonnull (strstr (out, "error org.libpeer.Error.InvalidArgs bits must be between 1 and 1024, not 0"));
  g_assert_nonnull (strstr (out, "version " PACKAGE_VERSION));
  g_assert_nonnull (strstr (out, "label from python"));
  if (g_str_equal (mode, "bus"))
    g_assert_nonnull (strstr (out, "unique-name :1."));
}

static void
test_node (Fixture      *f,
           gconstpointer data)
{
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  g_autofree char *script = g_build_filename (dir, "client.js", NULL);
  g_autofree char *modules = g_build_filename (dir, "node_modules", "dbus-next", NULL);
  const char *argv[] = { "node", script, f->address, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (!have_program ("node") || !g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("node or dbus-next missing (test.sh installs them: npm ci in tests/interop/node)");
      return;
    }
  if (peer_test_run (argv, &out, &err) != 0)
    g_error ("client.js failed:\n%s%s", out, err);
  g_assert_nonnull (strstr (out, "quick "));
  g_assert_nonnull (strstr (out, "error org.libpeer.Error.InvalidArgs bits must be between 1 and 1024, not 0"));
  g_assert_nonnull (strstr (out, "version " PACKAGE_VERSION));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) g_test_add (path, Fixture, data, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/interop/gdbus", test_gdbus, NULL);
  ADD ("/peer/interop/gdbus-monitor", test_gdbus_monitor, NULL);
  ADD ("/peer/interop/dbus-send", test_dbus_send, NULL);
  ADD ("/peer/interop/busctl", test_busctl, NULL);
  ADD ("/peer/interop/python-dbus/peer", test_python, "peer");
  ADD ("/peer/interop/python-dbus/bus", test_python, "bus");
  ADD ("/peer/interop/node-dbus-next", test_node, NULL);
#undef ADD
  return g_test_run ();
}
