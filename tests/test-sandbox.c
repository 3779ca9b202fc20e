/* test-sandbox: a sandboxed PeerHelper, seen from inside (sandbox-probe
 * tries what the sandbox should refuse, and reports) and from the
 * application; each case against the same helper unsandboxed, its twin.
 * Every case skips, with the reason, when the kernel lacks a part of the
 * sandbox; the last line says how many ran. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "peer-sandbox-elf-private.h"
#include "peer-test-util.h"

#define PROBE_PATH "/org/libpeer/test/Probe"
#define PROBE_IFACE "org.libpeer.test.Probe1"
#define HELPER_PATH "/org/libpeer/Helper"
#define HELPER_IFACE "org.libpeer.Helper1"

static guint n_ran, n_skipped;
static char *why_unavailable;         /* NULL: the sandbox works here */

static gboolean
skip_without_sandbox (void)
{
  if (why_unavailable == NULL)
    {
      n_ran++;
      return FALSE;
    }
  g_test_skip (why_unavailable);
  n_skipped++;
  return TRUE;
}

static const char *
probe_program (void)
{
  static char *path;

  if (path == NULL)
    path = g_test_build_filename (G_TEST_BUILT, "sandbox-probe", NULL);
  return path;
}

static PeerHelper *
start_probe (gboolean     sandboxed,
             PeerSandbox *sandbox)
{
  const char *argv[] = { probe_program (), NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  PeerHelper *helper;

  helper = sandboxed ? peer_helper_new_sandboxed (argv, NULL, sandbox, &error)
                     : peer_helper_new (argv, NULL, &error);
  g_assert_no_error (error);
  client = peer_helper_dup_client (helper, -1, NULL, &error);
  g_assert_no_error (error);
  return helper;
}

/* Runs probe @what with @arg; returns its errno and sets @out_text. */
static int
try_probe (PeerHelper  *helper,
           const char  *what,
           const char  *arg,
           char       **out_text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  gint32 err;
  char *text;

  reply = peer_helper_call_sync (helper, PROBE_PATH, PROBE_IFACE, "Try", g_variant_new ("(ss)", what, arg),
                                 G_VARIANT_TYPE ("(is)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(is)", &err, &text);
  if (out_text != NULL)
    *out_text = text;
  else
    g_free (text);
  return err;
}

/* --- the application's files --------------------------------------------- */

typedef struct {
  char *paths[3];
  char *dir;
} AppFiles;

/* A file in each place of the application's the helper must not see:
 * its /tmp, its working directory, its home. */
static void
app_files_make (AppFiles *files)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *cwd = g_get_current_dir ();

  files->dir = peer_test_make_dir ();
  files->paths[0] = g_build_filename (files->dir, "secret", NULL);
  files->paths[1] = g_build_filename (cwd, "peer-sandbox-secret", NULL);
  files->paths[2] = g_build_filename (g_get_home_dir (), ".peer-sandbox-secret", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (files->paths); i++)
    {
      g_file_set_contents (files->paths[i], "secret", -1, &error);
      g_assert_no_error (error);
    }
}

static void
app_files_clear (AppFiles *files)
{
  for (guint i = 0; i < G_N_ELEMENTS (files->paths); i++)
    {
      g_unlink (files->paths[i]);
      g_free (files->paths[i]);
    }
  peer_test_remove_dir (files->dir);
  g_free (files->dir);
}

static void
check_app_files (gboolean sandboxed)
{
  g_autoptr(PeerHelper) helper = NULL;
  g_autofree char *tmp_copy = NULL;
  AppFiles files;

  if (sandboxed && skip_without_sandbox ())
    return;
  app_files_make (&files);
  helper = start_probe (sandboxed, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (files.paths); i++)
    {
      int err = try_probe (helper, "open", files.paths[i], NULL);

      g_test_message ("open %s: %s", files.paths[i], err ? g_strerror (err) : "opened");
      if (sandboxed)
        g_assert_cmpint (err, !=, 0);
      else
        g_assert_cmpint (err, ==, 0);
    }
  /* Its /tmp is its own: empty. */
  if (sandboxed)
    g_assert_cmpint (try_probe (helper, "open", files.dir, NULL), ==, ENOENT);
  app_files_clear (&files);
}

static void
test_files_refused (void)
{
  check_app_files (TRUE);
}

static void
test_files_plain (void)
{
  n_ran++;
  check_app_files (FALSE);
}

/* A path the application adds is readable, read-only. */
static void
test_files_added_path (void)
{
  g_autoptr(PeerSandbox) sandbox = peer_sandbox_new ();
  g_autoptr(PeerHelper) helper = NULL;
  g_autofree char *text = NULL;
  AppFiles files;

  if (skip_without_sandbox ())
    return;
  app_files_make (&files);
  peer_sandbox_add_path (sandbox, files.dir);
  helper = start_probe (TRUE, sandbox);
  g_assert_cmpint (try_probe (helper, "read", files.paths[0], &text), ==, 0);
  g_assert_cmpstr (text, ==, "secret");
  /* Only what was added. */
  g_assert_cmpint (try_probe (helper, "open", files.paths[2], NULL), !=, 0);
  app_files_clear (&files);
}

/* --- sockets, programs, ptrace ------------------------------------------- */

static void
check_refusals (gboolean sandboxed)
{
  g_autoptr(PeerHelper) helper = NULL;
  g_autofree char *parent = g_strdup_printf ("%d", (int) getpid ());

  if (sandboxed && skip_without_sandbox ())
    return;
  if (!sandboxed)
    n_ran++;
  helper = start_probe (sandboxed, NULL);
  g_assert_cmpint (try_probe (helper, "socket-inet", "", NULL), ==, sandboxed ? EPERM : 0);
  g_assert_cmpint (try_probe (helper, "socket-unix", "", NULL), ==, sandboxed ? EPERM : 0);
  g_assert_cmpint (try_probe (helper, "execve", "/nonexistent/peer-probe", NULL), ==, sandboxed ? EPERM : ENOENT);
  g_assert_cmpint (try_probe (helper, "ptrace", parent, NULL), ==, sandboxed ? EPERM : ESRCH);
  g_assert_cmpint (try_probe (helper, "fork", "", NULL), ==, sandboxed ? EPERM : 0);
  /* The fd its one exec came from (the open-files limit, 256) is one it
   * can never hold again, so that exec stays the last. */
  g_assert_cmpint (try_probe (helper, "dup2", "256", NULL), ==, sandboxed ? EBADF : 0);
  /* And it is still there to say so. */
  g_assert_cmpint (peer_helper_get_n_restarts (helper), ==, 0);
  g_assert_null (peer_helper_dup_exit_reason (helper));
}

static void
test_refusals (void)
{
  check_refusals (TRUE);
}

static void
test_refusals_plain (void)
{
  check_refusals (FALSE);
}

/* --- what the kernel says of it ------------------------------------------ */

static char *
status_field (const char *status,
              const char *name)
{
  g_auto(GStrv) lines = g_strsplit (status, "\n", -1);

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], name) && lines[i][strlen (name)] == ':')
      return g_strstrip (g_strdup (lines[i] + strlen (name) + 1));
  return NULL;
}

static void
check_status (gboolean sandboxed)
{
  g_autoptr(PeerHelper) helper = NULL;
  g_autofree char *status = NULL, *nnp = NULL, *seccomp = NULL;

  if (sandboxed && skip_without_sandbox ())
    return;
  if (!sandboxed)
    n_ran++;
  helper = start_probe (sandboxed, NULL);
  g_assert_cmpint (try_probe (helper, "read", "/proc/self/status", &status), ==, 0);
  nnp = status_field (status, "NoNewPrivs");
  seccomp = status_field (status, "Seccomp");
  g_assert_cmpstr (nnp, ==, sandboxed ? "1" : "0");
  g_assert_cmpstr (seccomp, ==, sandboxed ? "2" : "0");
}

static void
test_status (void)
{
  check_status (TRUE);
}

static void
test_status_plain (void)
{
  check_status (FALSE);
}

static void
check_namespaces (gboolean sandboxed)
{
  static const char * const kinds[] = { "net", "mnt", "pid", "ipc", "uts", "user" };
  g_autoptr(PeerHelper) helper = NULL;

  if (sandboxed && skip_without_sandbox ())
    return;
  if (!sandboxed)
    n_ran++;
  helper = start_probe (sandboxed, NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (kinds); i++)
    {
      g_autofree char *path = g_strdup_printf ("/proc/self/ns/%s", kinds[i]);
      g_autofree char *ours = g_file_read_link (path, NULL);
      g_autofree char *theirs = NULL;

      g_assert_cmpint (try_probe (helper, "readlink", path, &theirs), ==, 0);
      g_test_message ("%s: ours %s, the helper's %s", kinds[i], ours, theirs);
      if (sandboxed)
        g_assert_cmpstr (ours, !=, theirs);
      else
        g_assert_cmpstr (ours, ==, theirs);
    }
}

static void
test_namespaces (void)
{
  check_namespaces (TRUE);
}

static void
test_namespaces_plain (void)
{
  check_namespaces (FALSE);
}

/* --- a syscall nobody planned for ---------------------------------------- */

static void
on_exited (PeerHelper   *helper,
           const GError *reason,
           GError      **out)
{
  g_clear_error (out);
  *out = g_error_copy (reason);
}

static void
test_forbidden_syscall (void)
{
  const char *argv[] = { probe_program (), NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) reason = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(GVariant) reply = NULL;

  if (skip_without_sandbox ())
    return;
  helper = peer_helper_new_sandboxed (argv, NULL, NULL, &error);
  g_assert_no_error (error);
  g_signal_connect (helper, "exited", G_CALLBACK (on_exited), &reason);
  reply = peer_helper_call_sync (helper, PROBE_PATH, PROBE_IFACE, "Try", g_variant_new ("(ss)", "forbidden", ""),
                                 NULL, -1, NULL, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_test_message ("%s", error->message);
  if (strstr (error->message, "helper killed by SIGSYS: a syscall refused") != NULL)
    {
      /* Killed, but nobody was told which syscall. */
      g_test_skip ("no seccomp user notification in this kernel (before Linux 5.0): the syscall has no name");
      n_ran--;
      n_skipped++;
      return;
    }
  g_assert_nonnull (strstr (error->message, "helper killed by SIGSYS: syscall syslog refused by the sandbox"));
  PEER_TEST_WAIT_UNTIL (reason != NULL);
  g_assert_nonnull (strstr (reason->message, "syslog"));
}

/* The same syscall, unsandboxed: it runs, and the helper lives. */
static void
test_forbidden_syscall_plain (void)
{
  g_autoptr(PeerHelper) helper = NULL;
  int err;

  n_ran++;
  helper = start_probe (FALSE, NULL);
  err = try_probe (helper, "forbidden", "", NULL);
  g_test_message ("syslog: %s", err ? g_strerror (err) : "ran");
  /* Whatever the kernel answered (root gets the size, others may get
   * EPERM from dmesg_restrict), an answer came. */
  g_assert_cmpint (err, >=, 0);
  g_assert_null (peer_helper_dup_exit_reason (helper));
}

/* --- limits ------------------------------------------------------------- */

static void
on_started (PeerHelper *helper,
            int         pid,
            guint      *n_started)
{
  (*n_started)++;
}

static void
check_address_space (gboolean past_limit)
{
  const char *argv[] = { probe_program (), NULL };
  g_autoptr(PeerSandbox) sandbox = peer_sandbox_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autofree char *size = g_strdup_printf ("%" G_GUINT64_FORMAT, (guint64) (past_limit ? 768 : 64) << 20);
  guint n_started = 0;

  if (skip_without_sandbox ())
    return;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  g_test_skip ("a sanitizer's shadow memory needs terabytes of address space: no RLIMIT_AS in this build");
  n_ran--;
  n_skipped++;
  return;
#endif
  peer_sandbox_set_limit (sandbox, PEER_SANDBOX_LIMIT_ADDRESS_SPACE, 512 << 20);
  g_assert_cmpuint (peer_sandbox_get_limit (sandbox, PEER_SANDBOX_LIMIT_ADDRESS_SPACE), ==, 512 << 20);
  helper = peer_helper_new_sandboxed (argv, NULL, sandbox, &error);
  g_assert_no_error (error);
  peer_helper_set_restart_policy (helper, 1, 60000, 0);
  g_signal_connect (helper, "started", G_CALLBACK (on_started), &n_started);
  reply = peer_helper_call_sync (helper, PROBE_PATH, PROBE_IFACE, "Try", g_variant_new ("(ss)", "allocate", size),
                                 G_VARIANT_TYPE ("(is)"), -1, NULL, NULL, NULL, &error);
  if (!past_limit)
    {
      g_assert_no_error (error);
      g_assert_cmpuint (peer_helper_get_n_restarts (helper), ==, 0);
      return;
    }
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_test_message ("%s", error->message);
  /* The application carries on: the helper is started again, as its
   * policy says, and works. */
  PEER_TEST_WAIT_UNTIL (n_started == 2);
  g_assert_cmpuint (peer_helper_get_n_restarts (helper), ==, 1);
  g_assert_cmpint (try_probe (helper, "open", "/dev/null", NULL), ==, 0);
}

static void
test_address_space (void)
{
  check_address_space (TRUE);
}

static void
test_address_space_within (void)
{
  check_address_space (FALSE);
}

/* The open-files limit holds the exec fd's number: it must leave room. */
static void
test_open_files_limit_refused (void)
{
  const char *argv[] = { probe_program (), NULL };
  g_autoptr(PeerSandbox) sandbox = peer_sandbox_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;

  n_ran++;
  peer_sandbox_set_limit (sandbox, PEER_SANDBOX_LIMIT_OPEN_FILES, G_MAXUINT32);
  helper = peer_helper_new_sandboxed (argv, NULL, sandbox, &error);
  g_assert_null (helper);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_assert_nonnull (strstr (error->message, "open-files limit"));
}

static void
test_open_files_limit (void)
{
  g_autoptr(PeerSandbox) sandbox = peer_sandbox_new ();
  g_autoptr(PeerHelper) helper = NULL;
  g_autofree char *limits = NULL;

  if (skip_without_sandbox ())
    return;
  peer_sandbox_set_limit (sandbox, PEER_SANDBOX_LIMIT_OPEN_FILES, 64);
  helper = start_probe (TRUE, sandbox);
  g_assert_cmpint (try_probe (helper, "read", "/proc/self/limits", &limits), ==, 0);
  g_assert_true (g_regex_match_simple ("Max open files +64 +64", limits, 0, 0));
}

static void
test_missing_program (void)
{
  const char *argv[] = { "/nonexistent/peer-helper", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;

  n_ran++;
  helper = peer_helper_new_sandboxed (argv, NULL, NULL, &error);
  g_assert_null (helper);
  g_assert_nonnull (error);
  g_test_message ("%s", error->message);
}

/* --- an application that is not root -------------------------------------- */

/* The tests run as root here; the path an ordinary user's application
 * takes (it may only map its own uid) runs as nobody, through setpriv. */
static void
test_unprivileged (void)
{
  g_autofree char *setpriv = g_find_program_in_path ("setpriv");
  const char *argv[] = { setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                         peer_test_program ("PEER_CLIENT"), "--spawn", "--sandbox", "--",
                         peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status;

  if (skip_without_sandbox ())
    return;
  if (getuid () != 0 || setpriv == NULL || access (peer_test_program ("PEER_SERVER"), R_OK) != 0)
    {
      g_test_skip (getuid () != 0 ? "already unprivileged: every other case runs that way"
                                  : "no setpriv (util-linux) to run as nobody");
      n_ran--;
      n_skipped++;
      return;
    }
  status = peer_test_run (argv, &out, &err);
  g_test_message ("as nobody: status %d, %s%s", status, out, err);
  if (status != 0 && strstr (err, "Permission denied") != NULL)
    {
      /* The build tree is not readable by nobody. */
      g_test_skip ("nobody cannot read the build tree");
      n_ran--;
      n_skipped++;
      return;
    }
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpuint (strlen (out), >, 0);
}

/* --- a kernel that refuses the namespaces ---------------------------------- */

static gboolean
write_proc (const char *path,
            const char *text)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  gboolean ok = fd >= 0 && write (fd, text, strlen (text)) == (ssize_t) strlen (text);

  if (fd >= 0)
    close (fd);
  return ok;
}

/* In a user namespace of this (single-threaded) process whose
 * user.max_user_namespaces is 0, the kernel refuses the sandbox's own, as
 * where unprivileged user namespaces are disabled. Only syscalls: it also
 * runs in a forked child of the test, to see whether it can. */
static const char *
forbid_user_namespaces (void)
{
  char uid_map[64], gid_map[64];

  g_snprintf (uid_map, sizeof uid_map, "%u %u 1", (unsigned) getuid (), (unsigned) getuid ());
  g_snprintf (gid_map, sizeof gid_map, "%u %u 1", (unsigned) getgid (), (unsigned) getgid ());
  if (unshare (CLONE_NEWUSER) != 0)
    return "the test cannot make a user namespace of its own";
  if ((getuid () != 0 && !write_proc ("/proc/self/setgroups", "deny")) ||
      !write_proc ("/proc/self/uid_map", uid_map) || !write_proc ("/proc/self/gid_map", gid_map) ||
      !write_proc ("/proc/sys/user/max_user_namespaces", "0"))
    return "the test cannot limit user namespaces in its own";
  return NULL;
}

static void
refused_namespaces_inside (void)
{
  const char *argv[] = { probe_program (), NULL };
  g_autoptr(PeerSandbox) sandbox = peer_sandbox_new ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(PeerClient) client = NULL;
  const char *why = forbid_user_namespaces ();
  g_autofree char *status = NULL, *nnp = NULL, *seccomp = NULL, *theirs = NULL;
  g_autofree char *ours = g_file_read_link ("/proc/self/ns/net", NULL);
  AppFiles files;

  g_assert_null (why);
  /* By default: a clear error. */
  helper = peer_helper_new_sandboxed (argv, NULL, sandbox, &error);
  g_assert_null (helper);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED);
  g_assert_nonnull (strstr (error->message, "namespaces"));
  g_printerr ("%s\n", error->message);
  g_clear_error (&error);

  /* The application's choice: what the kernel allows. */
  peer_sandbox_set_flags (sandbox, PEER_SANDBOX_FLAGS_BEST_EFFORT);
  helper = peer_helper_new_sandboxed (argv, NULL, sandbox, &error);
  g_assert_no_error (error);
  client = peer_helper_dup_client (helper, -1, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (try_probe (helper, "read", "/proc/self/status", &status), ==, 0);
  nnp = status_field (status, "NoNewPrivs");
  seccomp = status_field (status, "Seccomp");
  g_assert_cmpstr (nnp, ==, "1");
  g_assert_cmpstr (seccomp, ==, "2");
  g_assert_cmpint (try_probe (helper, "socket-inet", "", NULL), ==, EPERM);
  g_assert_cmpint (try_probe (helper, "readlink", "/proc/self/ns/net", &theirs), ==, 0);
  g_assert_cmpstr (ours, ==, theirs);
  /* No mount namespace: Landlock alone keeps the files away, where the
   * kernel has it. */
  app_files_make (&files);
  if (syscall (SYS_landlock_create_ruleset, NULL, 0, 1 /* the ABI version */) > 0)
    g_assert_cmpint (try_probe (helper, "open", files.paths[0], NULL), ==, EACCES);
  else
    g_test_message ("no Landlock in this kernel: the helper sees the application's files");
  app_files_clear (&files);
}

static void
test_refused_namespaces (void)
{
  int status;
  pid_t pid;

  if (skip_without_sandbox ())
    return;
  if (g_test_subprocess ())
    {
      refused_namespaces_inside ();
      return;
    }
  /* Whether this kernel lets the test do it at all. */
  pid = fork ();
  if (pid == 0)
    _exit (forbid_user_namespaces () == NULL ? 0 : 1);
  g_assert_cmpint (pid, >, 0);
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    {
      g_test_skip ("the test cannot limit user namespaces in one of its own");
      n_ran--;
      n_skipped++;
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*the kernel refuses the sandbox's namespaces*");
}

/* --- the helper's libraries ---------------------------------------------- */

/* An uninstalled helper finds libpeer through its RUNPATH, which the
 * sandbox reads to show it; a file that is not ELF names nothing. */
static void
test_runpath (void)
{
  g_autoptr(GPtrArray) dirs = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *script = g_build_filename (dir, "helper.sh", NULL);
  gboolean found = FALSE;

  n_ran++;
  peer_sandbox_elf_add_runpath (probe_program (), dirs);
  for (guint i = 0; i < dirs->len; i++)
    {
      g_autofree char *lib = g_build_filename (g_ptr_array_index (dirs, i), "libpeer-1.so.0", NULL);
      g_test_message ("RUNPATH: %s", (char *) g_ptr_array_index (dirs, i));
      found |= g_file_test (lib, G_FILE_TEST_EXISTS);
    }
  g_assert_true (found);

  g_ptr_array_set_size (dirs, 0);
  g_assert_true (g_file_set_contents (script, "#!/bin/sh\nexit 0\n", -1, NULL));
  peer_sandbox_elf_add_runpath (script, dirs);
  g_assert_cmpuint (dirs->len, ==, 0);
  peer_sandbox_elf_add_runpath ("/nonexistent/helper", dirs);
  g_assert_cmpuint (dirs->len, ==, 0);
  peer_test_remove_dir (dir);
}

/* --- work by fd, results as blobs: peer-server in the sandbox ------------ */

static PeerHelper *
start_server (void)
{
  const char *argv[] = { peer_test_program ("PEER_SERVER"), NULL };
  g_autoptr(GError) error = NULL;
  PeerHelper *helper = peer_helper_new_sandboxed (argv, NULL, NULL, &error);

  g_assert_no_error (error);
  return helper;
}

static void
test_work_by_fd (void)
{
  static const char data[] = "untrusted input, handed over by fd\n";
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out_fds = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(PeerBlob) echoed = NULL;
  g_autofree char *expected = g_compute_checksum_for_string (G_CHECKSUM_SHA256, data, -1);
  g_autofree char *dir = NULL, *path = NULL;
  const char *hex;
  gint32 handle;
  int fd;

  if (skip_without_sandbox ())
    return;
  dir = peer_test_make_dir ();
  path = g_build_filename (dir, "input", NULL);
  g_file_set_contents (path, data, -1, &error);
  g_assert_no_error (error);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (fd, >=, 0);
  g_unix_fd_list_append (fds, fd, &error);
  g_assert_no_error (error);
  close (fd);

  helper = start_server ();
  reply = peer_helper_call_sync (helper, HELPER_PATH, HELPER_IFACE, "Digest", g_variant_new ("(hs)", 0, "sha256"),
                                 G_VARIANT_TYPE ("(s)"), -1, fds, NULL, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &hex);
  g_assert_cmpstr (hex, ==, expected);
  g_clear_pointer (&reply, g_variant_unref);
  g_clear_object (&fds);

  /* A result as a sealed memfd. */
  blob = peer_blob_new_from_data (data, sizeof data, &error);
  g_assert_no_error (error);
  fds = g_unix_fd_list_new ();
  handle = peer_blob_append_to_fd_list (blob, fds, &error);
  g_assert_no_error (error);
  reply = peer_helper_call_sync (helper, "/org/libpeer/Bench", "org.libpeer.Bench1", "EchoBlob",
                                 g_variant_new ("(h)", handle), G_VARIANT_TYPE ("(h)"), -1, fds, &out_fds,
                                 NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(h)", &handle);
  echoed = peer_blob_new_from_fd_list (out_fds, handle, sizeof data, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (peer_blob_get_data (echoed, NULL), sizeof data, data, sizeof data);

  peer_test_remove_dir (dir);
}

/* Its twin: what needs a path is refused inside, with a clear error. */
static void
test_open_refused (void)
{
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  if (skip_without_sandbox ())
    return;
  helper = start_server ();
  reply = peer_helper_call_sync (helper, HELPER_PATH, HELPER_IFACE, "OpenFile", g_variant_new ("(s)", "x"),
                                 NULL, -1, NULL, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED);
  g_assert_nonnull (strstr (error->message, "sandbox"));
}

/* --- peer-client --spawn --sandbox ----------------------------------------- */

static void
test_cli (void)
{
  const char *quick[] = { peer_test_program ("PEER_CLIENT"), "--spawn", "--sandbox", "--",
                          peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  const char *open_file[] = { peer_test_program ("PEER_CLIENT"), "--spawn", "--sandbox", "--",
                              peer_test_program ("PEER_SERVER"), "open", "/etc/passwd", NULL };
  g_autofree char *out = NULL, *err = NULL;

  if (skip_without_sandbox ())
    return;
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *input = g_build_filename (dir, "input", NULL);
  const char *by_fd[][6] = {
    { "ping", "--count", "3", NULL },
    { "job", "3", "0", NULL },
    { "digest", input, NULL },
  };

  g_assert_cmpint (peer_test_run (quick, &out, &err), ==, 0);
  g_assert_cmpuint (strlen (out), >, 0);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  /* Every command that hands the helper its input by fd works. */
  g_assert_true (g_file_set_contents (input, "input", -1, NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (by_fd); i++)
    {
      g_autoptr(GPtrArray) argv = g_ptr_array_new ();

      g_ptr_array_add (argv, (char *) peer_test_program ("PEER_CLIENT"));
      g_ptr_array_add (argv, "--spawn");
      g_ptr_array_add (argv, "--sandbox");
      g_ptr_array_add (argv, "--");
      g_ptr_array_add (argv, (char *) peer_test_program ("PEER_SERVER"));
      for (guint j = 0; by_fd[i][j] != NULL; j++)
        g_ptr_array_add (argv, (char *) by_fd[i][j]);
      g_ptr_array_add (argv, NULL);
      g_assert_cmpint (peer_test_run ((const char * const *) argv->pdata, &out, &err), ==, 0);
      g_test_message ("%s: %s", by_fd[i][0], out);
      g_clear_pointer (&out, g_free);
      g_clear_pointer (&err, g_free);
    }
  peer_test_remove_dir (dir);

  /* --sandbox alone is a usage error, in one line. */
  {
    const char *alone[] = { peer_test_program ("PEER_CLIENT"), "--sandbox", "quick", "8", NULL };

    g_assert_cmpint (peer_test_run (alone, &out, &err), ==, 2);
    g_assert_nonnull (strstr (err, "--sandbox needs --spawn"));
    g_assert_cmpint (strchr (err, '\n') - err, ==, (int) strlen (err) - 1);
    g_clear_pointer (&out, g_free);
    g_clear_pointer (&err, g_free);
  }

  /* The twin: open needs paths, which the sandbox has none of. */
  g_assert_cmpint (peer_test_run (open_file, &out, &err), ==, 1);
  g_test_message ("%s", err);
  g_assert_nonnull (strstr (err, "sandbox"));
  g_assert_null (strchr (err, '\n') == NULL ? NULL : strchr (strchr (err, '\n') + 1, '\n'));
}

/* --- how much of the sandbox this kernel has ------------------------------ */

static void
probe_kernel (void)
{
  const char *argv[] = { probe_program (), NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(PeerClient) client = NULL;

  if (g_getenv ("PEER_UNDER_VALGRIND") != NULL)
    {
      /* The child between clone and exec runs under valgrind too. */
      why_unavailable = g_strdup ("valgrind knows neither seccomp() (libseccomp cannot probe the kernel) "
                                  "nor clone3() and Landlock, which the sandbox's setup makes");
      return;
    }
  /* Only the kernel's refusal, which the start reports at once, is a
   * reason to skip: a sandboxed helper that starts and then dies (a
   * sanitizer's runtime that cannot read its files, a syscall the filter
   * forgot) is what the tests are for, and fails them. */
  helper = peer_helper_new_sandboxed (argv, NULL, NULL, &error);
  if (helper == NULL && g_error_matches (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED))
    why_unavailable = g_strdup_printf ("this kernel does not allow the sandbox: %s", error->message);
  g_clear_error (&error);
  if (helper != NULL)
    client = peer_helper_dup_client (helper, -1, NULL, &error);
  if (client == NULL && why_unavailable == NULL)
    g_printerr ("the sandboxed helper did not start: %s\n", error != NULL ? error->message : "no error");
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  /* A subprocess of refused-namespaces must stay single-threaded. */
  if (!g_test_subprocess ())
    probe_kernel ();

  g_test_add_func ("/peer/sandbox/files/refused", test_files_refused);
  g_test_add_func ("/peer/sandbox/files/plain", test_files_plain);
  g_test_add_func ("/peer/sandbox/files/added-path", test_files_added_path);
  g_test_add_func ("/peer/sandbox/refusals/sandboxed", test_refusals);
  g_test_add_func ("/peer/sandbox/refusals/plain", test_refusals_plain);
  g_test_add_func ("/peer/sandbox/status/sandboxed", test_status);
  g_test_add_func ("/peer/sandbox/status/plain", test_status_plain);
  g_test_add_func ("/peer/sandbox/namespaces/sandboxed", test_namespaces);
  g_test_add_func ("/peer/sandbox/namespaces/plain", test_namespaces_plain);
  g_test_add_func ("/peer/sandbox/syscall/killed-and-named", test_forbidden_syscall);
  g_test_add_func ("/peer/sandbox/syscall/plain", test_forbidden_syscall_plain);
  g_test_add_func ("/peer/sandbox/limits/address-space", test_address_space);
  g_test_add_func ("/peer/sandbox/limits/address-space-within", test_address_space_within);
  g_test_add_func ("/peer/sandbox/limits/open-files", test_open_files_limit);
  g_test_add_func ("/peer/sandbox/limits/open-files-refused", test_open_files_limit_refused);
  g_test_add_func ("/peer/sandbox/start/missing-program", test_missing_program);
  g_test_add_func ("/peer/sandbox/start/unprivileged", test_unprivileged);
  g_test_add_func ("/peer/sandbox/start/runpath", test_runpath);
  g_test_add_func ("/peer/sandbox/start/refused-namespaces", test_refused_namespaces);
  g_test_add_func ("/peer/sandbox/server/work-by-fd", test_work_by_fd);
  g_test_add_func ("/peer/sandbox/server/open-refused", test_open_refused);
  g_test_add_func ("/peer/sandbox/cli", test_cli);

  status = g_test_run ();
  if (why_unavailable != NULL)
    g_print ("# sandbox unavailable: %s\n", why_unavailable);
  g_print ("# sandbox: %u tests ran, %u skipped\n", n_ran, n_skipped);
  g_free (why_unavailable);
  return status;
}
