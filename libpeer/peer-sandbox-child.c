/* peer-sandbox-child.c: the child that becomes a sandboxed helper,
 * between clone3() and exec.
 *
 * It is the child of a threaded process: it makes syscalls only (no
 * allocation, no lock), with what the parent prepared in its Plan (see
 * peer-sandbox-spawn.c for the order of things and why).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "peer-helper.h"
#include "peer-sandbox-plan-private.h"

G_GNUC_NORETURN static void
child_fail (const Plan *plan,
            Step        step,
            int         op,
            int         err)
{
  ChildReport report = { step, op, err };

  (void) !write (plan->sync_fd, &report, sizeof report);
  _exit (127);
}

static int
bind_read_only (const char *target)
{
  struct mount_attr attr = {
    .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
  };

  if (mount_setattr (AT_FDCWD, target, AT_RECURSIVE, &attr, sizeof attr) == 0)
    return 0;
  if (errno != ENOSYS)
    return -1;
  /* Before 5.12: the top mount only. */
  return mount (NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL);
}

static int
child_run_op (const MountOp *op)
{
  int fd;

  switch (op->kind)
    {
    case OP_DIR:
      return mkdir (op->target, 0755) == 0 || errno == EEXIST ? 0 : -1;
    case OP_BIND_RO:
    case OP_BIND_DEV:
      if (op->is_dir)
        {
          if (mkdir (op->target, 0755) != 0 && errno != EEXIST)
            return -1;
        }
      else
        {
          fd = open (op->target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
          if (fd < 0)
            return -1;
          close (fd);
        }
      if (mount (op->source, op->target, NULL, MS_BIND | MS_REC, NULL) != 0)
        return -1;
      return op->kind == OP_BIND_RO ? bind_read_only (op->target) : 0;
    case OP_SYMLINK:
      return symlink (op->source, op->target);
    case OP_TMPFS:
      if (mkdir (op->target, 0755) != 0 && errno != EEXIST)
        return -1;
      return mount ("tmpfs", op->target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m");
    case OP_REBIND_RO:
      if (mount (op->target, op->target, NULL, MS_BIND | MS_REC, NULL) != 0)
        return errno == ENOENT ? 0 : -1;        /* a kernel without it */
      return bind_read_only (op->target);
    case OP_PROC:
      if (mkdir (op->target, 0755) != 0 && errno != EEXIST)
        return -1;
      return mount ("proc", op->target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
  return -1;
}

static void
child_build_root (const Plan *plan)
{
  const MountOp *ops = (const MountOp *) (void *) plan->ops->data;
  struct mount_attr read_only = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV };

  /* Nothing done here may reach the application's namespace. */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
    child_fail (plan, STEP_MOUNT, -1, errno);
  /* A tmpfs over /tmp becomes the root for a moment, with the old root
   * below it at /oldroot (and the old /tmp visible again there); the new
   * root is built in it at /newroot. */
  if (mount ("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=1m") != 0 ||
      mkdir ("/tmp/oldroot", 0700) != 0 || mkdir ("/tmp/newroot", 0755) != 0 ||
      syscall (SYS_pivot_root, "/tmp", "/tmp/oldroot") != 0 || chdir ("/") != 0 ||
      mount ("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0)
    child_fail (plan, STEP_PIVOT, -1, errno);

  for (guint i = 0; i < plan->ops->len; i++)
    if (child_run_op (&ops[i]) != 0)
      child_fail (plan, STEP_MOUNT, (int) i, errno);

  /* Into the new root, with the old one (and the staging tmpfs) gone. */
  if (chdir ("/newroot") != 0 || syscall (SYS_pivot_root, ".", ".") != 0 ||
      umount2 (".", MNT_DETACH) != 0 || chdir ("/") != 0)
    child_fail (plan, STEP_PIVOT, -1, errno);
  if (mount_setattr (AT_FDCWD, "/", 0, &read_only, sizeof read_only) != 0 &&
      (errno != ENOSYS || mount (NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) != 0))
    child_fail (plan, STEP_PIVOT, -1, errno);
}

static void
child_restrict_landlock (const Plan *plan)
{
  const LandlockRule *rules = (const LandlockRule *) (void *) plan->rules->data;
  struct ll_ruleset_attr attr = { 0 };
  size_t attr_size = sizeof attr.handled_access_fs;
  int ruleset;

  attr.handled_access_fs = LL_FS_ALL_V1;
  if (plan->landlock_abi >= 2)
    attr.handled_access_fs |= LL_FS_REFER;
  if (plan->landlock_abi >= 3)
    attr.handled_access_fs |= LL_FS_TRUNCATE;
  if (plan->landlock_abi >= 4)
    {
      /* No TCP at all (the network namespace has none either). */
      attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
      attr_size = offsetof (struct ll_ruleset_attr, scoped);
    }
  if (plan->landlock_abi >= 5)
    attr.handled_access_fs |= LL_FS_IOCTL_DEV;
  if (plan->landlock_abi >= 6)
    {
      attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
      attr_size = sizeof attr;
    }

  ruleset = (int) syscall (SYS_landlock_create_ruleset, &attr, attr_size, 0);
  if (ruleset < 0)
    child_fail (plan, STEP_LANDLOCK, -1, errno);
  for (guint i = 0; i < plan->rules->len; i++)
    {
      struct ll_path_beneath_attr beneath;
      struct stat st;
      int fd = open (rules[i].path, O_PATH | O_CLOEXEC);

      if (fd < 0)
        continue;                       /* not in this view: nothing to allow */
      beneath.allowed_access = rules[i].access & attr.handled_access_fs;
      if (fstat (fd, &st) == 0 && !S_ISDIR (st.st_mode))
        beneath.allowed_access &= LL_FS_FILE_RIGHTS;
      beneath.parent_fd = fd;
      if (syscall (SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &beneath, 0) != 0)
        child_fail (plan, STEP_LANDLOCK, (int) i, errno);
      close (fd);
    }
  if (syscall (SYS_landlock_restrict_self, ruleset, 0) != 0)
    child_fail (plan, STEP_LANDLOCK, -1, errno);
  close (ruleset);
}

static void
child_drop_capabilities (const Plan *plan)
{
  struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct data[2];

  /* The bounding set too: a helper that is root in its namespace gets
   * nothing back when it execs. */
  for (int cap = 0; cap <= 63; cap++)
    if (prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      child_fail (plan, STEP_CAPS, cap, errno);
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    child_fail (plan, STEP_CAPS, -1, errno);
  memset (data, 0, sizeof data);
  if (syscall (SYS_capset, &header, data) != 0)
    child_fail (plan, STEP_CAPS, -1, errno);
}

/* Moves the fds into place: 0 /dev/null, 3 the socket, N the program;
 * closes the rest but the report socket, which closes on exec. */
static void
child_place_fds (Plan *plan)
{
  struct rlimit nofile;
  int pair[2], sock, app_end, devnull, sync_fd, program;

  /* Room above N for the moves. */
  if (getrlimit (RLIMIT_NOFILE, &nofile) != 0)
    child_fail (plan, STEP_FDS, -1, errno);
  nofile.rlim_cur = nofile.rlim_max;
  if (setrlimit (RLIMIT_NOFILE, &nofile) != 0)
    child_fail (plan, STEP_FDS, -1, errno);

  /* The socket is made here, inside the namespaces, so that each end
   * sees the other's credentials (SO_PEERCRED) in its own namespaces: a
   * pair made by the application would carry the application's pid,
   * which the helper's PID namespace cannot name. The other end goes to
   * the application with the listener. */
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    child_fail (plan, STEP_FDS, -1, errno);
  sock = fcntl (pair[1], F_DUPFD_CLOEXEC, plan->exec_fd + 1);
  app_end = fcntl (pair[0], F_DUPFD_CLOEXEC, plan->exec_fd + 1);
  devnull = fcntl (plan->devnull_fd, F_DUPFD_CLOEXEC, plan->exec_fd + 1);
  sync_fd = fcntl (plan->sync_fd, F_DUPFD_CLOEXEC, plan->exec_fd + 1);
  if (sock < 0 || app_end < 0 || devnull < 0 || sync_fd < 0)
    child_fail (plan, STEP_FDS, -1, errno);
  plan->sync_fd = sync_fd;
  plan->app_end = app_end;
  program = open (plan->program, O_PATH | O_CLOEXEC);
  if (program < 0)
    child_fail (plan, STEP_EXEC, -1, errno);
  if (dup2 (devnull, STDIN_FILENO) < 0 || dup2 (sock, PEER_HELPER_CHILD_FD) < 0 ||
      dup3 (program, plan->exec_fd, O_CLOEXEC) < 0)
    child_fail (plan, STEP_FDS, -1, errno);
  /* sock, app_end and devnull are below sync_fd (each move took the
   * lowest free fd above N); all go but N, app_end (until it is sent)
   * and sync_fd. */
  if (syscall (SYS_close_range, PEER_HELPER_CHILD_FD + 1, plan->exec_fd - 1, 0) != 0 ||
      syscall (SYS_close_range, plan->exec_fd + 1, app_end - 1, 0) != 0 ||
      syscall (SYS_close_range, app_end + 1, sync_fd - 1, 0) != 0 ||
      syscall (SYS_close_range, sync_fd + 1, ~0U, 0) != 0)
    child_fail (plan, STEP_FDS, -1, errno);
}

static void
child_send_fds (const Plan *plan,
                int         listener)
{
  ChildReport report = { -1, -1, 0 };
  int fds[2] = { plan->app_end, listener };
  char control[CMSG_SPACE (sizeof fds)];
  struct iovec iov = { &report, sizeof report };
  struct msghdr msg = { 0 };
  struct cmsghdr *cmsg;

  memset (control, 0, sizeof control);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsg = CMSG_FIRSTHDR (&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN (sizeof fds);
  memcpy (CMSG_DATA (cmsg), fds, sizeof fds);
  if (sendmsg (plan->sync_fd, &msg, MSG_NOSIGNAL) != (ssize_t) sizeof report)
    child_fail (plan, STEP_SECCOMP, -1, errno);
  close (listener);
  close (plan->app_end);
}

void
peer_sandbox_child_main (Plan *plan)
{
  struct sigaction dfl = { .sa_handler = SIG_DFL };
  sigset_t none;
  char go;
  int listener;

  /* The parent's handlers are the parent's business. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      sigaction (sig, &dfl, NULL);
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);

  /* Killed when the supervisor thread ends; a parent gone before this
   * call closed its end of the socket, which the read below sees. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (read (plan->sync_fd, &go, 1) != 1)
    _exit (127);

  if (plan->namespaces)
    {
      if (setresgid (plan->gid, plan->gid, plan->gid) != 0)
        child_fail (plan, STEP_IDS, -1, errno);
      /* Refused when the parent was not root ("deny" in setgroups): then
       * the supplementary groups are unmapped anyway. */
      (void) setgroups (0, NULL);
      if (setresuid (plan->uid, plan->uid, plan->uid) != 0)
        child_fail (plan, STEP_IDS, -1, errno);
      child_build_root (plan);
      (void) sethostname ("sandbox", strlen ("sandbox"));
    }
  setpgid (0, 0);

  child_place_fds (plan);

  for (guint i = 0; i < plan->n_limits; i++)
    if (setrlimit (plan->limit_resources[i], &plan->limits[i]) != 0)
      child_fail (plan, STEP_LIMITS, plan->limit_resources[i], errno);

  child_drop_capabilities (plan);
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    child_fail (plan, STEP_NO_NEW_PRIVS, -1, errno);
  if (plan->landlock_abi > 0)
    child_restrict_landlock (plan);

  listener = (int) syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                            &plan->filter);
  if (listener < 0)
    child_fail (plan, STEP_SECCOMP, -1, errno);
  child_send_fds (plan, listener);

  syscall (SYS_execveat, plan->exec_fd, "", plan->argv, plan->envp, AT_EMPTY_PATH);
  child_fail (plan, STEP_EXEC, -1, errno);
}
