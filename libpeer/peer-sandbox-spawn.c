/* peer-sandbox-spawn.c: starting a helper inside its sandbox.
 *
 * Native (clone3, pivot_root, Landlock and a seccomp filter built with
 * libseccomp), not through bwrap: no setuid binary to depend on or find;
 * one process, so that the PeerHelper's pid, pidfd and PR_SET_PDEATHSIG
 * are the helper's own rather than a launcher's; one fork instead of a
 * fork, an exec of bwrap and its own fork on every (re)start; and the
 * kernel's refusals come back as a GError naming the step, not as text
 * on a launcher's stderr.
 *
 * The parent prepares everything (the mount steps, the Landlock rules, the
 * filter, the uid maps) because the child of a threaded process may only
 * make syscalls until it execs. In order, the child (peer-sandbox-child.c):
 *
 *   1. waits until the parent has written its uid and gid maps (the
 *      parent may map ids the child could not: root to nobody);
 *   2. builds its root on a tmpfs: read-only binds of the profile's
 *      paths, four device nodes, a private /tmp, its own /proc; pivots
 *      into it and drops the old root; makes the root read-only;
 *   3. makes the socketpair (see child_place_fds()), moves its fds into
 *      place (its end of the socket as fd 3, /dev/null as 0) and
 *      keeps its program open as fd N, N being the open-files limit, then
 *      lowers the limit to N: past exec the helper can never hold fd N
 *      again, and the filter allows the one execveat() of fd N, so this
 *      exec is the last;
 *   4. sets its limits, drops every capability, sets no_new_privs,
 *      restricts itself with Landlock, loads the filter, hands the
 *      socket's other end and the filter's listener (refused syscalls)
 *      to the parent and execs.
 *
 * Every failure goes to the parent as (step, errno) over a socket that
 * closes on exec; the parent turns it into a GError.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer-error.h"
#include "peer-sandbox-elf-private.h"
#include "peer-sandbox-plan-private.h"
#include "peer-sandbox-private.h"

/* How long the child may take to set itself up. */
#define SETUP_TIMEOUT_MS 10000

static const char * const step_names[] = {
  "waiting for the parent", "setting its ids", "building its filesystem", "pivoting into its root",
  "moving its fds", "setting its limits", "dropping capabilities", "setting no_new_privs",
  "restricting itself with Landlock", "loading the seccomp filter", "starting the program",
};
G_STATIC_ASSERT (G_N_ELEMENTS (step_names) == STEP_EXEC + 1);

static void
mount_op_clear (MountOp *op)
{
  g_free (op->source);
  g_free (op->target);
}

static void
landlock_rule_clear (LandlockRule *rule)
{
  g_free (rule->path);
}

/* --- the parent: the plan ----------------------------------------------- */

static void
add_op (Plan       *plan,
        OpKind      kind,
        gboolean    is_dir,
        const char *source,
        const char *path)
{
  MountOp op = { kind, is_dir, source ? g_strconcat (kind == OP_SYMLINK ? "" : "/oldroot", source, NULL) : NULL,
                 g_strconcat ("/newroot", path, NULL) };

  g_array_append_val (plan->ops, op);
}

static void
add_rule (Plan       *plan,
          const char *path,
          guint64     access)
{
  LandlockRule rule = { g_strdup (path), access };

  g_array_append_val (plan->rules, rule);
}

/* mkdir -p of @path's parents in the new root, once each. */
static void
add_parent_dirs (Plan       *plan,
                 GHashTable *made,
                 const char *path)
{
  g_autofree char *parent = g_path_get_dirname (path);

  if (g_str_equal (parent, "/") || g_hash_table_contains (made, parent))
    return;
  add_parent_dirs (plan, made, parent);
  add_op (plan, OP_DIR, TRUE, NULL, parent);
  g_hash_table_add (made, g_steal_pointer (&parent));
}

static int
compare_length (gconstpointer a,
                gconstpointer b)
{
  const char *pa = *(const char * const *) a, *pb = *(const char * const *) b;
  size_t la = strlen (pa), lb = strlen (pb);

  return la < lb ? -1 : la > lb ? 1 : strcmp (pa, pb);
}

static gboolean
is_beneath (const char *path,
            const char *dir)
{
  size_t n = strlen (dir);

  return strncmp (path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/' || g_str_equal (dir, "/"));
}

/* The read-only view: the system's library and program directories, the
 * helper, what its dynamic linker is told to load, and the profile's
 * own paths. */
static void
plan_view (Plan      *plan,
           GPtrArray *profile_paths)
{
  static const char * const system_paths[] = {
    "/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin", "/etc/ld.so.cache",
  };
  static const char * const devices[] = { "/dev/null", "/dev/zero", "/dev/random", "/dev/urandom" };
  g_autoptr(GPtrArray) wanted = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) binds = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GHashTable) made = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const char *ld_path = g_environ_getenv ((char **) plan->envp, "LD_LIBRARY_PATH");
  const char *preload = g_environ_getenv ((char **) plan->envp, "LD_PRELOAD");

  for (gsize i = 0; i < G_N_ELEMENTS (system_paths); i++)
    {
      struct stat st;
      g_autofree char *target = NULL;

      if (lstat (system_paths[i], &st) != 0)
        continue;
      /* Merged /usr: /lib -> usr/lib stays a link. */
      if (S_ISLNK (st.st_mode) && (target = g_file_read_link (system_paths[i], NULL)) != NULL)
        {
          if (plan->namespaces)
            add_op (plan, OP_SYMLINK, FALSE, target, system_paths[i]);
        }
      else
        g_ptr_array_add (wanted, g_strdup (system_paths[i]));
    }
  g_ptr_array_add (wanted, g_strdup (plan->program));
  peer_sandbox_elf_add_runpath (plan->program, wanted);
  if (ld_path != NULL)
    {
      g_auto(GStrv) dirs = g_strsplit (ld_path, ":", -1);
      for (guint i = 0; dirs[i] != NULL; i++)
        if (g_path_is_absolute (dirs[i]))
          g_ptr_array_add (wanted, g_strdup (dirs[i]));
    }
  if (preload != NULL)
    {
      g_auto(GStrv) files = g_strsplit_set (preload, ": ", -1);
      for (guint i = 0; files[i] != NULL; i++)
        if (g_path_is_absolute (files[i]))
          g_ptr_array_add (wanted, g_strdup (files[i]));
    }
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  /* In a build with a sanitizer, its runtime reads the suppression files
   * its options name before main(): a helper that cannot would end
   * there. */
  {
    static const char * const sanitizer_options[] = { "ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS",
                                                      "TSAN_OPTIONS" };

    for (gsize i = 0; i < G_N_ELEMENTS (sanitizer_options); i++)
      {
        const char *options = g_environ_getenv ((char **) plan->envp, sanitizer_options[i]);
        g_auto(GStrv) words = options != NULL ? g_strsplit_set (options, ": ", -1) : NULL;

        for (guint j = 0; words != NULL && words[j] != NULL; j++)
          if (g_str_has_prefix (words[j], "suppressions=") &&
              g_path_is_absolute (words[j] + strlen ("suppressions=")))
            g_ptr_array_add (wanted, g_strdup (words[j] + strlen ("suppressions=")));
      }
  }
#endif
  for (guint i = 0; i < profile_paths->len; i++)
    g_ptr_array_add (wanted, g_strdup (g_ptr_array_index (profile_paths, i)));

  /* The private /tmp first: a path the application adds may be beneath
   * it. */
  if (plan->namespaces)
    {
      add_op (plan, OP_TMPFS, TRUE, NULL, "/tmp");
      g_hash_table_add (made, g_strdup ("/tmp"));
    }

  /* Real paths, shortest first, none beneath another. */
  for (guint i = 0; i < wanted->len; i++)
    {
      char *real = realpath (g_ptr_array_index (wanted, i), NULL);
      if (real != NULL)
        {
          g_ptr_array_add (binds, g_strdup (real));
          free (real);
        }
    }
  g_ptr_array_sort (binds, compare_length);
  for (guint i = 0; i < binds->len; i++)
    {
      const char *path = g_ptr_array_index (binds, i);
      gboolean covered = FALSE;
      struct stat st;

      for (guint j = 0; j < i && !covered; j++)
        covered = is_beneath (path, g_ptr_array_index (binds, j));
      if (covered || stat (path, &st) != 0)
        continue;
      if (plan->namespaces)
        {
          add_parent_dirs (plan, made, path);
          add_op (plan, OP_BIND_RO, S_ISDIR (st.st_mode), path, path);
          if (S_ISDIR (st.st_mode))
            g_hash_table_add (made, g_strdup (path));
        }
      add_rule (plan, path, LL_FS_READ);
    }

  if (plan->namespaces)
    {
      add_op (plan, OP_DIR, TRUE, NULL, "/dev");
      for (gsize i = 0; i < G_N_ELEMENTS (devices); i++)
        if (access (devices[i], F_OK) == 0)
          add_op (plan, OP_BIND_DEV, FALSE, devices[i], devices[i]);
      add_op (plan, OP_PROC, TRUE, NULL, "/proc");
      /* A helper of an application running as root is root (without
       * capabilities): what uid 0 may write in /proc with no capability
       * at all (sysctls, sysrq) is made read-only, Landlock or not. */
      add_op (plan, OP_REBIND_RO, TRUE, NULL, "/proc/sys");
      add_op (plan, OP_REBIND_RO, FALSE, NULL, "/proc/sysrq-trigger");
      add_rule (plan, "/tmp", ~0ULL);
      add_rule (plan, "/proc", LL_FS_READ_FILE | LL_FS_READ_DIR);
    }
  else
    /* Without a PID namespace, /proc shows the user's other processes:
     * the helper's own directory only (opened by the child: its own). */
    add_rule (plan, "/proc/self", LL_FS_READ_FILE | LL_FS_READ_DIR);
  add_rule (plan, "/dev/null", LL_FS_READ_FILE | LL_FS_WRITE_FILE);
  for (gsize i = 1; i < G_N_ELEMENTS (devices); i++)
    add_rule (plan, devices[i], LL_FS_READ_FILE);
}

static void
plan_limits (Plan          *plan,
             const guint64 *limits)
{
  static const int resources[] = { RLIMIT_AS, RLIMIT_CPU, RLIMIT_FSIZE };
  struct rlimit core = { 0, 0 };

  for (gsize i = 0; i < G_N_ELEMENTS (resources); i++)
    {
      guint64 value = limits[i];

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
      /* AddressSanitizer's and ThreadSanitizer's shadow memory take
       * terabytes of address space. */
      if (resources[i] == RLIMIT_AS)
        {
          g_debug ("libpeer: a build with a sanitizer sets no address-space limit");
          continue;
        }
#endif
      if (value == 0)
        continue;
      plan->limit_resources[plan->n_limits] = resources[i];
      plan->limits[plan->n_limits].rlim_cur = plan->limits[plan->n_limits].rlim_max = (rlim_t) value;
      plan->n_limits++;
    }
  /* No core files: a crash is reported, not dumped. */
  plan->limit_resources[plan->n_limits] = RLIMIT_CORE;
  plan->limits[plan->n_limits++] = core;
}

static int
landlock_abi (void)
{
  int abi = (int) syscall (SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);

  return abi > 0 ? abi : 0;
}

static gboolean
write_file (const char  *path,
            const char  *text,
            GError     **error)
{
  int fd = open (path, O_WRONLY | O_CLOEXEC);
  ssize_t n = -1;
  int saved_errno;

  if (fd >= 0)
    n = write (fd, text, strlen (text));
  saved_errno = errno;
  if (fd >= 0)
    close (fd);
  if (n != (ssize_t) strlen (text))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED, "cannot write %s: %s", path,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

/* The helper keeps the application's uid and gid, the one mapping an
 * unprivileged application may write, and the one with which each side
 * sees the other's credentials (EXTERNAL, the policies) as they are. */
static gboolean
write_id_maps (GPid     pid,
               GError **error)
{
  g_autofree char *uid_map = g_strdup_printf ("/proc/%d/uid_map", (int) pid);
  g_autofree char *gid_map = g_strdup_printf ("/proc/%d/gid_map", (int) pid);
  g_autofree char *setgroups = g_strdup_printf ("/proc/%d/setgroups", (int) pid);
  g_autofree char *uid_line = NULL, *gid_line = NULL;
  uid_t uid = geteuid ();
  gid_t gid = getegid ();

  uid_line = g_strdup_printf ("%u %u 1\n", (unsigned) uid, (unsigned) uid);
  gid_line = g_strdup_printf ("%u %u 1\n", (unsigned) gid, (unsigned) gid);
  if (uid != 0 && !write_file (setgroups, "deny", error))
    return FALSE;
  return write_file (uid_map, uid_line, error) && write_file (gid_map, gid_line, error);
}

/* Reads the child's reports until exec closes the socket. */
static gboolean
wait_for_exec (int       sync_fd,
               GArray   *ops,
               int      *out_app_fd,
               int      *out_listener,
               GError  **error)
{
  for (;;)
    {
      ChildReport report;
      char control[CMSG_SPACE (2 * sizeof (int))];
      struct iovec iov = { &report, sizeof report };
      struct msghdr msg = { 0 };
      struct pollfd pfd = { sync_fd, POLLIN, 0 };
      struct cmsghdr *cmsg;
      ssize_t n;
      int ready;

      ready = poll (&pfd, 1, SETUP_TIMEOUT_MS);
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_TIMED_OUT, "the sandbox was not set up within %d ms",
                       SETUP_TIMEOUT_MS);
          return FALSE;
        }
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      n = recvmsg (sync_fd, &msg, MSG_CMSG_CLOEXEC);
      if (n < 0 && errno == EINTR)
        continue;
      if (n == 0 && *out_app_fd >= 0)
        return TRUE;                    /* exec'd */
      if (n == 0)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED, "the sandbox's setup died");
          return FALSE;
        }
      if (n != (ssize_t) sizeof report)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED, "the sandbox's setup went away");
          return FALSE;
        }
      cmsg = CMSG_FIRSTHDR (&msg);
      if (report.step < 0)
        {
          int fds[2];

          if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS || cmsg->cmsg_len != CMSG_LEN (sizeof fds) ||
              *out_app_fd >= 0)
            {
              g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED, "the sandbox's setup sent no socket");
              return FALSE;
            }
          memcpy (fds, CMSG_DATA (cmsg), sizeof fds);
          *out_app_fd = fds[0];
          *out_listener = fds[1];
          continue;
        }
      if (report.step > STEP_EXEC)
        report.step = STEP_EXEC;
      if (report.step == STEP_MOUNT && report.op >= 0 && (guint) report.op < ops->len)
        {
          const MountOp *op = &g_array_index (ops, MountOp, report.op);
          g_set_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED, "%s (%s): %s", step_names[report.step],
                       op->target + strlen ("/newroot"), g_strerror (report.err));
        }
      else
        g_set_error (error, PEER_ERROR,
                     report.step == STEP_EXEC ? PEER_ERROR_FAILED : PEER_ERROR_NOT_SUPPORTED,
                     "%s: %s", step_names[report.step], g_strerror (report.err));
      return FALSE;
    }
}

static void
reap (GPid pid)
{
  while (waitpid (pid, NULL, __WALL) < 0 && errno == EINTR)
    ;
}

static gboolean
namespace_refused (int err)
{
  /* EPERM: not allowed (a policy, or no CAP_SYS_ADMIN); ENOSPC/EUSERS:
   * user.max_*_namespaces is 0; EINVAL: a kernel built without one. */
  return err == EPERM || err == ENOSPC || err == EUSERS || err == EINVAL || err == EACCES;
}

gboolean
peer_sandbox_spawn (PeerSandbox         *self,
                    const char * const  *argv,
                    const char * const  *envp,
                    PeerSandboxProcess  *out,
                    GError             **error)
{
  g_autoptr(GPtrArray) profile_paths = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GBytes) filter = NULL;
  g_autofree char *found = NULL;
  g_auto(GStrv) env = g_strdupv ((char **) envp);
  guint64 limits[PEER_SANDBOX_LIMIT_OPEN_FILES + 1];
  PeerSandboxFlags flags;
  struct rlimit nofile;
  Plan plan = { 0 };
  struct clone_args args = { 0 };
  int sync_pair[2] = { -1, -1 };
  int pidfd = -1, listener = -1, app_fd = -1, saved_errno;
  gboolean ok = FALSE;
  char *real;
  long pid;

  peer_sandbox_snapshot (self, profile_paths, limits, &flags);
  out->pid = 0;
  out->pidfd = -1;
  out->notify_fd = -1;
  out->app_fd = -1;

  found = strchr (argv[0], '/') != NULL ? g_strdup (argv[0]) : g_find_program_in_path (argv[0]);
  real = found != NULL ? realpath (found, NULL) : NULL;
  if (real == NULL)
    {
      g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT, "%s: no such program", argv[0]);
      return FALSE;
    }
  plan.program = g_strdup (real);
  free (real);

  /* N, the fd the program is exec'd from: the open-files limit, which
   * must leave room for it. */
  plan.exec_fd = (int) (limits[PEER_SANDBOX_LIMIT_OPEN_FILES] != 0 ? limits[PEER_SANDBOX_LIMIT_OPEN_FILES] : 1024);
  if (getrlimit (RLIMIT_NOFILE, &nofile) != 0 ||
      (nofile.rlim_max != RLIM_INFINITY && (rlim_t) plan.exec_fd + 8 >= nofile.rlim_max) ||
      limits[PEER_SANDBOX_LIMIT_OPEN_FILES] > G_MAXINT / 2 || plan.exec_fd < 16)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "the sandbox's open-files limit (%d) must be from 16 to below the application's own (%lu)",
                   plan.exec_fd, (unsigned long) nofile.rlim_max);
      g_free (plan.program);
      return FALSE;
    }
  plan.limit_resources[0] = RLIMIT_NOFILE;
  plan.limits[0].rlim_cur = plan.limits[0].rlim_max = (rlim_t) plan.exec_fd;
  plan.n_limits = 1;
  plan_limits (&plan, limits);

  filter = peer_sandbox_dup_filter (self, plan.exec_fd, error);
  if (filter == NULL)
    {
      g_free (plan.program);
      return FALSE;
    }
  plan.filter.len = (unsigned short) (g_bytes_get_size (filter) / sizeof (struct sock_filter));
  plan.filter.filter = (struct sock_filter *) g_bytes_get_data (filter, NULL);

#ifdef __SANITIZE_ADDRESS__
  {
    /* LeakSanitizer's check at exit stops the process's threads with
     * ptrace() from a forked tracer, both of which the sandbox refuses:
     * in a build with AddressSanitizer, a sandboxed helper leaves it out
     * (the unsandboxed tests check the helpers for leaks). */
    const char *options = g_environ_getenv (env, "ASAN_OPTIONS");
    g_autofree char *value = g_strconcat (options != NULL ? options : "", options != NULL ? ":" : "",
                                          "detect_leaks=0", NULL);
    env = g_environ_setenv (env, "ASAN_OPTIONS", value, TRUE);
  }
#endif
  plan.argv = argv;
  plan.envp = (const char * const *) env;
  plan.uid = geteuid ();
  plan.gid = getegid ();
  plan.landlock_abi = landlock_abi ();
  plan.devnull_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  plan.ops = g_array_new (FALSE, TRUE, sizeof (MountOp));
  g_array_set_clear_func (plan.ops, (GDestroyNotify) mount_op_clear);
  plan.rules = g_array_new (FALSE, TRUE, sizeof (LandlockRule));
  g_array_set_clear_func (plan.rules, (GDestroyNotify) landlock_rule_clear);
  if (plan.devnull_fd < 0 || socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sync_pair) != 0)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "cannot prepare the sandbox: %s",
                   g_strerror (saved_errno));
      goto out;
    }
  plan.sync_fd = sync_pair[1];

  args.flags = CLONE_PIDFD | CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
               CLONE_NEWIPC | CLONE_NEWUTS;
  args.pidfd = (guint64) (guintptr) &pidfd;
  args.exit_signal = SIGCHLD;
  plan.namespaces = TRUE;
  plan_view (&plan, profile_paths);

  pid = syscall (SYS_clone3, &args, sizeof args);
  saved_errno = errno;
  if (pid < 0 && namespace_refused (saved_errno) && (flags & PEER_SANDBOX_FLAGS_BEST_EFFORT))
    {
      g_debug ("libpeer: the kernel refuses the sandbox's namespaces (%s); running %s without them",
               g_strerror (saved_errno), argv[0]);
      g_array_set_size (plan.ops, 0);
      g_array_set_size (plan.rules, 0);
      plan.namespaces = FALSE;
      plan_view (&plan, profile_paths);
      args.flags = CLONE_PIDFD;
      pid = syscall (SYS_clone3, &args, sizeof args);
      saved_errno = errno;
    }
  if (pid == 0)
    peer_sandbox_child_main (&plan);
  if (pid < 0)
    {
      if (namespace_refused (saved_errno) && plan.namespaces)
        g_set_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                     "the kernel refuses the sandbox's namespaces (%s): unprivileged user namespaces "
                     "may be disabled", g_strerror (saved_errno));
      else
        g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_FORK, "clone3: %s", g_strerror (saved_errno));
      goto out;
    }
  close (sync_pair[1]);
  sync_pair[1] = -1;

  if ((plan.namespaces && !write_id_maps ((GPid) pid, error)) ||
      write (sync_pair[0], "g", 1) != 1 ||
      !wait_for_exec (sync_pair[0], plan.ops, &app_fd, &listener, error))
    {
      syscall (SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
      reap ((GPid) pid);
      if (listener >= 0)
        close (listener);
      if (app_fd >= 0)
        close (app_fd);
      close (pidfd);
      goto out;
    }

  out->pid = (GPid) pid;
  out->pidfd = pidfd;
  out->notify_fd = listener;
  out->app_fd = app_fd;
  ok = TRUE;

out:
  if (!ok)
    g_prefix_error (error, "Cannot start helper %s in its sandbox: ", argv[0]);
  for (int i = 0; i < 2; i++)
    if (sync_pair[i] >= 0)
      close (sync_pair[i]);
  if (plan.devnull_fd >= 0)
    close (plan.devnull_fd);
  g_array_unref (plan.ops);
  g_array_unref (plan.rules);
  g_free (plan.program);
  return ok;
}
