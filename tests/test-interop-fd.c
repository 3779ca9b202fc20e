/* test-interop-fd.c: fds and payloads between peer-server and programs that
 * are not libpeer: python3-dbus (libdbus) passing fds as a peer, gdbus
 * sending plain `ay`; and peer-client's fd commands. Each has its negative
 * twin. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

#include "peer-test-util.h"

typedef struct {
  char *dir;
  char *root;
  char *file;                   /* root/data.txt */
  PeerTestProcess *server;
  const char *address;
} Fixture;

static const char file_contents[] = "bytes the helper hands out\n";

static void
setup (Fixture       *f,
       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *address = NULL;
  g_autofree char *root = NULL;

  f->dir = peer_test_make_dir ();
  f->root = g_build_filename (f->dir, "root", NULL);
  g_assert_cmpint (g_mkdir (f->root, 0700), ==, 0);
  f->file = g_build_filename (f->root, "data.txt", NULL);
  g_assert_true (g_file_set_contents (f->file, file_contents, -1, NULL));

  address = g_strdup_printf ("--address=unix:path=%s/socket", f->dir);
  root = g_strdup_printf ("--files-root=%s", f->root);
  f->server = peer_test_spawn_server ((const char *[]) { address, root, NULL }, &error);
  g_assert_no_error (error);
  f->address = f->server->first_line;
}

static void
teardown (Fixture       *f,
          gconstpointer  data)
{
  int status = peer_test_process_stop (f->server, SIGTERM);

  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  peer_test_remove_dir (f->dir);
  g_free (f->file);
  g_free (f->root);
  g_free (f->dir);
}

/* --- python3-dbus ---------------------------------------------------------- */

static gboolean
skip_without_python_dbus (void)
{
  const char *probe[] = { "/usr/bin/python3", "-c", "import dbus", NULL };

  if (peer_test_run (probe, NULL, NULL) == 0)
    return FALSE;
  g_test_skip ("python3-dbus is not installed");
  return TRUE;
}

/* Runs python-fd-client.py and returns its stdout, without the newline. */
static char *
run_python (Fixture    *f,
            const char *mode,
            const char *arg1,
            const char *arg2)
{
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "interop", "python-fd-client.py", NULL);
  const char *argv[] = { "/usr/bin/python3", script, f->address, mode, arg1, arg2, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (peer_test_run (argv, &out, &err) != 0)
    g_error ("python-fd-client.py %s failed:\n%s%s", mode, out, err);
  return g_strstrip (g_steal_pointer (&out));
}

static void
test_python_digest (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *sha256 = NULL;
  g_autofree char *md5 = NULL;
  g_autofree char *unknown = NULL;
  g_autofree char *expected_sha256 = g_compute_checksum_for_string (G_CHECKSUM_SHA256, file_contents, -1);
  g_autofree char *expected_md5 = g_compute_checksum_for_string (G_CHECKSUM_MD5, file_contents, -1);

  if (skip_without_python_dbus ())
    return;
  sha256 = run_python (f, "digest", f->file, "sha256");
  g_assert_cmpstr (sha256, ==, expected_sha256);
  md5 = run_python (f, "digest", f->file, "md5");
  g_assert_cmpstr (md5, ==, expected_md5);
  unknown = run_python (f, "digest", f->file, "crc32");
  g_assert_cmpstr (unknown, ==, "error org.libpeer.Error.InvalidArgs");
}

static void
test_python_digest_pipe (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *out = NULL;
  g_auto(GStrv) hexes = NULL;

  if (skip_without_python_dbus ())
    return;
  out = run_python (f, "digest-pipe", "1048576", NULL);
  hexes = g_strsplit (out, " ", -1);
  g_assert_cmpuint (g_strv_length (hexes), ==, 2);
  g_assert_cmpuint (strlen (hexes[0]), ==, 64);
  g_assert_cmpstr (hexes[0], ==, hexes[1]);
}

static void
test_python_open_file (Fixture       *f,
                       gconstpointer  data)
{
  g_autofree char *contents = NULL;
  g_autofree char *escape = NULL;
  g_autofree char *outside = NULL;

  if (skip_without_python_dbus ())
    return;
  contents = run_python (f, "open", "data.txt", NULL);
  g_assert_cmpstr (contents, ==, "bytes the helper hands out");
  escape = run_python (f, "open", "../socket", NULL);
  g_assert_cmpstr (escape, ==, "error org.libpeer.Error.PermissionDenied");
  outside = run_python (f, "open", "/etc/passwd", NULL);
  g_assert_cmpstr (outside, ==, "error org.libpeer.Error.PermissionDenied");
}

/* A client that is not libpeer sends plain `ay`, of any size up to D-Bus's
 * limits, and gets plain `ay` back: the blob path stays out of its way. */
static void
test_python_plain_bytes (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *big = NULL;

  if (skip_without_python_dbus ())
    return;
  big = run_python (f, "echo", "1048576", NULL);
  g_assert_cmpstr (big, ==, "echo same 1048576");
}

/* --- gdbus ------------------------------------------------------------------ */

static void
test_gdbus_plain_bytes (Fixture       *f,
                        gconstpointer  data)
{
  const char *echo[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Bench",
                         "--object-path", "/org/libpeer/Bench", "--method", "org.libpeer.Bench1.Echo",
                         "[byte 1, 2, 3]", NULL };
  g_autofree char *peer = g_strdup_printf ("--peer=%s", f->address);
  const char *send[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Bench",
                         "org.libpeer.Bench1.Echo", "array:byte:1,2,3", NULL };
  /* gdbus passes its own fd 0 for "0": whatever it is, not a sealed memfd. */
  const char *not_a_blob[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Bench",
                               "--object-path", "/org/libpeer/Bench", "--method",
                               "org.libpeer.Bench1.EchoBlob", "0", NULL };
  g_autofree char *out = NULL;
  g_autofree char *sent = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (peer_test_run (echo, &out, NULL), ==, 0);
  g_assert_cmpstr (g_strstrip (out), ==, "([byte 0x01, 0x02, 0x03],)");
  g_assert_cmpint (peer_test_run (send, &sent, NULL), ==, 0);
  g_assert_nonnull (strstr (sent, "01 02 03"));
  g_assert_cmpint (peer_test_run (not_a_blob, NULL, &err), !=, 0);
  g_assert_nonnull (strstr (err, "org.libpeer.Error.InvalidArgs"));
}

/* --- peer-client's commands ---------------------------------------------------- */

static int
run_client (Fixture     *f,
            const char **args,
            char       **out,
            char       **err)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();

  g_ptr_array_add (argv, (gpointer) peer_test_program ("PEER_CLIENT"));
  g_ptr_array_add (argv, (gpointer) "--address");
  g_ptr_array_add (argv, (gpointer) f->address);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  return peer_test_run ((const char * const *) argv->pdata, out, err);
}

static void
assert_one_line_error (const char *err,
                       const char *fragment)
{
  g_assert_true (g_str_has_prefix (err, "peer-client: "));
  g_assert_nonnull (strstr (err, fragment));
  /* One line: the only newline ends it. */
  g_assert_true (strchr (err, '\n') == err + strlen (err) - 1);
}

static void
test_cli_digest (Fixture       *f,
                 gconstpointer  data)
{
  const char *sha256sum[] = { "sha256sum", f->file, NULL };
  g_autofree char *expected = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *shell = NULL;
  g_autofree char *from_stdin = NULL;
  g_autofree char *missing = g_build_filename (f->dir, "missing", NULL);
  g_autofree char *expected_stdin = NULL;

  g_assert_cmpint (peer_test_run (sha256sum, &expected, NULL), ==, 0);
  g_assert_cmpint (run_client (f, (const char *[]) { "digest", f->file, NULL }, &out, NULL), ==, 0);
  g_assert_cmpstr (out, ==, expected);

  /* Standard input, through a shell redirect: "HEX  -" like sha256sum. */
  shell = g_strdup_printf ("'%s' --address '%s' digest - < '%s'", peer_test_program ("PEER_CLIENT"),
                           f->address, f->file);
  g_assert_cmpint (peer_test_run ((const char *[]) { "sh", "-c", shell, NULL }, &from_stdin, NULL), ==, 0);
  expected_stdin = g_strdup_printf ("%.64s  -\n", expected);
  g_assert_cmpstr (from_stdin, ==, expected_stdin);

  /* Twins: a file that is not there (2: the command line is wrong, found
   * before anything is sent), no file at all (2), a bad algorithm (1: the
   * server refused it). */
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_client (f, (const char *[]) { "digest", missing, NULL }, NULL, &err), ==, 2);
  assert_one_line_error (err, "cannot open");
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_client (f, (const char *[]) { "digest", NULL }, NULL, &err), ==, 2);
  assert_one_line_error (err, "digest needs FILE");
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_client (f, (const char *[]) { "digest", "--algorithm=crc32", f->file, NULL },
                               NULL, &err), ==, 1);
  assert_one_line_error (err, "crc32");
}

static void
test_cli_open (Fixture       *f,
               gconstpointer  data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (run_client (f, (const char *[]) { "open", "data.txt", NULL }, &out, NULL), ==, 0);
  g_assert_cmpstr (out, ==, file_contents);
  g_assert_cmpint (run_client (f, (const char *[]) { "open", "../socket", NULL }, NULL, &err), ==, 1);
  assert_one_line_error (err, "files root");
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_client (f, (const char *[]) { "open", NULL }, NULL, &err), ==, 2);
  assert_one_line_error (err, "open needs PATH");
}

static void
test_cli_blob_echo (Fixture       *f,
                    gconstpointer  data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *bench = NULL;

  g_assert_cmpint (run_client (f, (const char *[]) { "blob-echo", "4M", NULL }, &out, NULL), ==, 0);
  g_assert_true (g_str_has_prefix (out, "4194304 bytes round-tripped as a sealed memfd and verified in "));
  g_assert_cmpint (run_client (f, (const char *[]) { "blob-echo", "12Q", NULL }, NULL, &err), ==, 2);
  assert_one_line_error (err, "'12Q'");
  g_clear_pointer (&err, g_free);
  g_assert_cmpint (run_client (f, (const char *[]) { "blob-echo", "-5", NULL }, NULL, &err), ==, 2);

  /* The measurement command, once and tiny, so that it cannot rot. */
  g_assert_cmpint (run_client (f, (const char *[]) { "payload-bench", "--runs=1", "64K", NULL }, &bench, NULL),
                   ==, 0);
  g_assert_nonnull (strstr (bench, "EchoBlob (explicit memfd)"));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add ("/peer/interop-fd/" path, Fixture, NULL, setup, func, teardown)
  ADD ("python-dbus/digest", test_python_digest);
  ADD ("python-dbus/digest-pipe", test_python_digest_pipe);
  ADD ("python-dbus/open-file", test_python_open_file);
  ADD ("python-dbus/plain-bytes", test_python_plain_bytes);
  ADD ("gdbus-dbus-send/plain-bytes", test_gdbus_plain_bytes);
  ADD ("cli/digest", test_cli_digest);
  ADD ("cli/open", test_cli_open);
  ADD ("cli/blob-echo", test_cli_blob_echo);
#undef ADD

  return g_test_run ();
}
