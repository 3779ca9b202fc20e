/* peer-sandbox-filter.c: the default profile's seccomp filter, and what
 * the supervisor hears of the syscalls it refuses.
 *
 * Three kinds of syscall. What a GLib program serving libpeer needs (its
 * main context and GDBus worker thread, threads, memfds and their seals,
 * fds passed over the socket it inherited, reading what its view of the
 * filesystem holds) is allowed. What such a program may try and must be
 * able to see fail (a new socket, a program started, ptrace, mounts, keys,
 * fork and namespaces, …) fails with EPERM. Anything else is answered by
 * the supervisor (SECCOMP_RET_USER_NOTIF), which learns the syscall's
 * name, refuses it, and kills the helper: a helper that makes a syscall
 * nobody planned for is doing something it was not written to do.
 *
 * The filter is built here, in the application, with libseccomp, and
 * loaded by the sandbox's child just before exec as plain BPF: the child
 * of a threaded process may not allocate. Its one execveat() is of the
 * fd the child holds at a number the helper can never open again (see
 * peer-sandbox-spawn.c); any other program start fails.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <linux/seccomp.h>
#include <seccomp.h>

#include "peer-error.h"
#include "peer-sandbox-private.h"

/* What a GLib program serving libpeer needs. */
static const char * const allowed[] = {
  /* fds and files (the view is the sandbox's) */
  "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
  "preadv2", "pwritev2", "close", "close_range", "lseek", "_llseek", "dup", "dup2", "dup3",
  "fcntl", "fcntl64", "fstat", "fstat64", "newfstatat", "fstatat64", "stat", "stat64",
  "lstat", "lstat64", "statx", "fstatfs", "fstatfs64", "statfs", "statfs64",
  "open", "openat", "openat2", "access", "faccessat", "faccessat2", "readlink",
  "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
  "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
  "ftruncate", "ftruncate64", "truncate", "fallocate", "fsync", "fdatasync",
  "fadvise64", "fadvise64_64", "flock", "umask", "fchmod", "utimensat",
  "pipe", "pipe2", "eventfd", "eventfd2", "memfd_create", "copy_file_range",
  "sendfile", "splice", "tee",
  /* memory */
  "mmap", "mmap2", "munmap", "mprotect", "mremap", "madvise", "brk", "msync", "mincore",
  "membarrier",
  /* threads, time, signals to itself */
  "futex", "futex_waitv", "futex_time64", "set_robust_list", "get_robust_list", "rseq",
  "set_tid_address", "exit", "exit_group", "gettid", "getpid", "getppid", "getpgrp",
  "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
  "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
  "rt_sigsuspend", "sigaltstack", "tgkill", "tkill", "kill", "restart_syscall",
  "clock_gettime", "clock_gettime64", "clock_getres", "clock_nanosleep",
  "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time", "times",
  "sched_yield", "sched_getaffinity", "sched_getattr", "sched_setattr", "sched_getparam",
  "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
  "getpriority", "getrandom", "uname", "sysinfo", "getrlimit", "prlimit64", "setrlimit",
  "getrusage", "arch_prctl", "set_thread_area", "get_thread_area",
  /* the main context and the socket it inherited */
  "poll", "ppoll", "ppoll_time64", "select", "pselect6", "pselect6_time64",
  "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
  "sendmsg", "recvmsg", "sendto", "recvfrom", "sendmmsg", "recvmmsg", "shutdown",
  "getsockopt", "setsockopt", "getsockname", "getpeername",
  /* tightening its own sandbox further */
  "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
#ifdef __SANITIZE_ADDRESS__
  /* AddressSanitizer's runtime, in a build made with it */
  "personality", "mlock", "munlock",
#endif
};

/* What such a program may try and must see fail: EPERM. */
static const char * const refused[] = {
  "socket", "execve", "ptrace", "process_vm_readv", "process_vm_writev",
  "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
  "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
  "unshare", "setns", "fork", "vfork",
  "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
  "io_uring_setup", "io_uring_enter", "io_uring_register",
  "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "kcmp",
  "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
  "setfsuid", "setfsgid", "capset", "capget",
  "chown", "fchown", "lchown", "fchownat", "mknod", "mknodat", "link", "linkat",
  "symlink", "symlinkat", "name_to_handle_at", "open_by_handle_at",
  "inotify_init", "inotify_init1", "fanotify_init",
#ifndef __SANITIZE_ADDRESS__
  "personality",
#endif
};

/* ioctl() requests and prctl() options a GLib program makes; any other
 * (TIOCSTI among them) goes to the supervisor like an unknown syscall. */
static const unsigned long allowed_ioctls[] = { TCGETS, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX };
static const int allowed_prctls[] = {
  PR_SET_NAME, PR_GET_NAME, PR_GET_NO_NEW_PRIVS, PR_GET_SECCOMP, PR_GET_DUMPABLE,
  PR_CAPBSET_READ, PR_GET_PDEATHSIG,
#ifdef __SANITIZE_ADDRESS__
  PR_SET_VMA, PR_SET_PTRACER,
#endif
};

/* Namespaces: a thread may not make one. */
#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
                         CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | 0x00000080 /* CLONE_NEWTIME */)

static gboolean
add_rule (scmp_filter_ctx   ctx,
          uint32_t          action,
          const char       *name,
          unsigned int      n_args,
          GError          **error,
          ...)
{
  int nr = seccomp_syscall_resolve_name (name);
  struct scmp_arg_cmp args[2];
  va_list ap;
  int rc;

  /* A syscall this architecture does not have. */
  if (nr == __NR_SCMP_ERROR)
    return TRUE;
  va_start (ap, error);
  for (unsigned int i = 0; i < n_args && i < G_N_ELEMENTS (args); i++)
    args[i] = va_arg (ap, struct scmp_arg_cmp);
  va_end (ap);
  rc = seccomp_rule_add_array (ctx, action, nr, n_args, args);
  /* Negative syscall numbers are libseccomp's for syscalls that do not
   * exist here as such (socketcall multiplexers): nothing to add. */
  if (rc != 0 && !(rc == -EDOM || (nr < 0 && rc == -EINVAL)))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED, "seccomp rule for %s: %s", name, g_strerror (-rc));
      return FALSE;
    }
  return TRUE;
}

GBytes *
peer_sandbox_filter_build (int      exec_fd,
                           GError **error)
{
  scmp_filter_ctx ctx;
  uint32_t eperm = SCMP_ACT_ERRNO (EPERM);
  g_autoptr(GByteArray) program = NULL;
  int memfd = -1, rc;
  off_t size;

  /* Anything else goes to the supervisor; a kernel without user
   * notification (before 5.0) kills the helper outright. */
  ctx = seccomp_init (SCMP_ACT_NOTIFY);
  if (ctx == NULL)
    ctx = seccomp_init (SCMP_ACT_KILL_PROCESS);
  if (ctx == NULL)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED, "seccomp: cannot make a filter");
      return NULL;
    }
  seccomp_attr_set (ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  /* The child loads it itself, as raw BPF; no_new_privs is set by then. */
  seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 0);

  for (gsize i = 0; i < G_N_ELEMENTS (allowed); i++)
    if (!add_rule (ctx, SCMP_ACT_ALLOW, allowed[i], 0, error))
      goto fail;
  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++)
    if (!add_rule (ctx, eperm, refused[i], 0, error))
      goto fail;

  /* Threads only: no fork, no namespaces. clone3()'s flags are behind a
   * pointer the filter cannot read: ENOSYS makes glibc use clone(). */
  if (!add_rule (ctx, SCMP_ACT_ALLOW, "clone", 1, error,
                 SCMP_A0 (SCMP_CMP_MASKED_EQ, CLONE_THREAD | NAMESPACE_FLAGS, CLONE_THREAD)) ||
      !add_rule (ctx, eperm, "clone", 1, error, SCMP_A0 (SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0)) ||
      !add_rule (ctx, SCMP_ACT_ERRNO (ENOSYS), "clone3", 0, error))
    goto fail;
  /* A thread that asks for a namespace falls to the supervisor (and so
   * dies): no GLib program asks for one. */

  /* The one program start: the helper itself, by its fd. */
  if (!add_rule (ctx, SCMP_ACT_ALLOW, "execveat", 2, error,
                 SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) exec_fd),
                 SCMP_A4 (SCMP_CMP_EQ, AT_EMPTY_PATH)) ||
      !add_rule (ctx, eperm, "execveat", 1, error, SCMP_A0 (SCMP_CMP_NE, (scmp_datum_t) exec_fd)) ||
      !add_rule (ctx, eperm, "execveat", 1, error, SCMP_A4 (SCMP_CMP_NE, AT_EMPTY_PATH)))
    goto fail;

  /* socketpair(AF_UNIX) makes nothing anybody else can reach: the lane
   * needs it. */
  if (!add_rule (ctx, SCMP_ACT_ALLOW, "socketpair", 1, error, SCMP_A0 (SCMP_CMP_EQ, AF_UNIX)) ||
      !add_rule (ctx, eperm, "socketpair", 1, error, SCMP_A0 (SCMP_CMP_NE, AF_UNIX)))
    goto fail;

  for (gsize i = 0; i < G_N_ELEMENTS (allowed_ioctls); i++)
    if (!add_rule (ctx, SCMP_ACT_ALLOW, "ioctl", 1, error,
                   SCMP_A1 (SCMP_CMP_MASKED_EQ, 0xffffffffu, allowed_ioctls[i])))
      goto fail;
  for (gsize i = 0; i < G_N_ELEMENTS (allowed_prctls); i++)
    if (!add_rule (ctx, SCMP_ACT_ALLOW, "prctl", 1, error,
                   SCMP_A0 (SCMP_CMP_EQ, (scmp_datum_t) allowed_prctls[i])))
      goto fail;
  memfd = memfd_create ("libpeer-seccomp", MFD_CLOEXEC);
  if (memfd < 0 || (rc = seccomp_export_bpf (ctx, memfd)) != 0)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED, "seccomp: cannot export the filter: %s",
                   g_strerror (memfd < 0 ? errno : -rc));
      goto fail;
    }
  size = lseek (memfd, 0, SEEK_END);
  program = g_byte_array_sized_new ((guint) MAX (size, 0));
  g_byte_array_set_size (program, (guint) MAX (size, 0));
  if (size <= 0 || pread (memfd, program->data, (size_t) size, 0) != size)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_FAILED, "seccomp: cannot read the filter back");
      goto fail;
    }
  close (memfd);
  seccomp_release (ctx);
  return g_byte_array_free_to_bytes (g_steal_pointer (&program));

fail:
  if (memfd >= 0)
    close (memfd);
  seccomp_release (ctx);
  return NULL;
}

char *
peer_sandbox_filter_receive (int      notify_fd,
                             guint64 *out_id)
{
  struct seccomp_notif request;
  char *name, *copy;

  /* The kernel wants the request zeroed. */
  memset (&request, 0, sizeof request);
  if (ioctl (notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &request) != 0)
    return NULL;
  *out_id = request.id;

  /* libseccomp's string is malloc()'s. */
  name = seccomp_syscall_resolve_num_arch (request.data.arch, request.data.nr);
  copy = name != NULL ? g_strdup (name) : g_strdup_printf ("%d", request.data.nr);
  free (name);
  return copy;
}

void
peer_sandbox_filter_refuse (int     notify_fd,
                            guint64 id)
{
  struct seccomp_notif_resp response;

  memset (&response, 0, sizeof response);
  response.id = id;
  response.error = -EPERM;
  /* Fails when the helper is gone already: nothing to answer. */
  (void) ioctl (notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &response);
}
