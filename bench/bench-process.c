/* bench-process.c: starting, measuring and reaping peer-bench's servers. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bench-process.h"

struct _BenchProcess {
  char     *name;
  GPid      pid;          /* 0 once reaped */
  clockid_t cpu_clock;
  gboolean  has_cpu_clock;
  char     *address;
};

/* The pids the signal handler must reap: written by the main thread,
 * read by the handler, one atomic int each, so no lock is needed. */
static gint tracked_pids[32];

static void
track_pid (GPid pid)
{
  for (guint i = 0; i < G_N_ELEMENTS (tracked_pids); i++)
    if (g_atomic_int_compare_and_exchange (&tracked_pids[i], 0, pid))
      return;
  g_error ("peer-bench: more than %u child processes", (guint) G_N_ELEMENTS (tracked_pids));
}

static void
untrack_pid (GPid pid)
{
  for (guint i = 0; i < G_N_ELEMENTS (tracked_pids); i++)
    g_atomic_int_compare_and_exchange (&tracked_pids[i], pid, 0);
}

static void
on_fatal_signal (int signum)
{
  const struct timespec tick = { 0, 10 * 1000 * 1000 };
  gboolean left = TRUE;

  /* Async-signal-safe calls only: kill, waitpid, nanosleep, write. */
  for (guint i = 0; i < G_N_ELEMENTS (tracked_pids); i++)
    if (g_atomic_int_get (&tracked_pids[i]) > 0)
      kill (g_atomic_int_get (&tracked_pids[i]), SIGTERM);
  for (guint tries = 0; left && tries < 300; tries++)
    {
      left = FALSE;
      for (guint i = 0; i < G_N_ELEMENTS (tracked_pids); i++)
        {
          pid_t pid = g_atomic_int_get (&tracked_pids[i]);

          if (pid <= 0)
            continue;
          if (waitpid (pid, NULL, WNOHANG) == 0)
            left = TRUE;
          else
            g_atomic_int_set (&tracked_pids[i], 0);
        }
      if (left)
        nanosleep (&tick, NULL);
    }
  for (guint i = 0; i < G_N_ELEMENTS (tracked_pids); i++)
    {
      pid_t pid = g_atomic_int_get (&tracked_pids[i]);

      if (pid > 0)
        {
          kill (pid, SIGKILL);
          waitpid (pid, NULL, 0);
        }
    }
  if (isatty (STDERR_FILENO) && write (STDERR_FILENO, "\n", 1) < 0)
    {
      /* Nothing to be done about it. */
    }
  signal (signum, SIG_DFL);
  raise (signum);
}

void
bench_process_install_signal_handlers (void)
{
  struct sigaction action = { .sa_handler = on_fatal_signal };
  const int signals[] = { SIGINT, SIGTERM, SIGHUP };

  sigemptyset (&action.sa_mask);
  for (guint i = 0; i < G_N_ELEMENTS (signals); i++)
    sigaddset (&action.sa_mask, signals[i]);
  for (guint i = 0; i < G_N_ELEMENTS (signals); i++)
    sigaction (signals[i], &action, NULL);
  /* A server that dies mid-write must fail the call, not kill us. */
  signal (SIGPIPE, SIG_IGN);
}

typedef struct {
  int   cpu;
  pid_t parent;
} ChildSetup;

static void
child_setup (gpointer user_data)
{
  const ChildSetup *setup = user_data;
  sigset_t all;

  /* Between fork and exec: async-signal-safe calls only. The child must
   * not inherit our handlers' mask or SIGPIPE being ignored. */
  signal (SIGPIPE, SIG_DFL);
  signal (SIGINT, SIG_DFL);
  signal (SIGTERM, SIG_DFL);
  signal (SIGHUP, SIG_DFL);
  sigfillset (&all);
  sigprocmask (SIG_UNBLOCK, &all, NULL);
  prctl (PR_SET_PDEATHSIG, SIGTERM);
  if (getppid () != setup->parent)
    _exit (1);
  if (setup->cpu >= 0)
    {
      cpu_set_t set;

      /* Before exec, so every thread the server starts inherits it. */
      CPU_ZERO (&set);
      CPU_SET (setup->cpu, &set);
      if (sched_setaffinity (0, sizeof set, &set) != 0)
        _exit (127);
    }
}

/* Spawns @argv; the pid is tracked before this returns. */
static gboolean
spawn_tracked (const char * const *argv,
               int                 cpu,
               int                *stdout_pipe,
               GPid               *out_pid,
               GError            **error)
{
  ChildSetup setup = { cpu, getpid () };
  sigset_t fatal, old;
  gboolean ok;

  /* A Ctrl-C between fork and track_pid() would leave the child behind. */
  sigemptyset (&fatal);
  sigaddset (&fatal, SIGINT);
  sigaddset (&fatal, SIGTERM);
  sigaddset (&fatal, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &fatal, &old);
  ok = g_spawn_async_with_pipes_and_fds (NULL, argv, NULL,
                                         G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDIN_FROM_DEV_NULL,
                                         child_setup, &setup, -1, -1, -1, NULL, NULL, 0,
                                         out_pid, NULL, stdout_pipe, NULL, error);
  if (ok)
    track_pid (*out_pid);
  pthread_sigmask (SIG_SETMASK, &old, NULL);
  return ok;
}

/* Waits up to @timeout_ms (-1: forever) for @pid; returns whether it
 * ended, with its wait status. */
static gboolean
wait_for_pid (GPid  pid,
              int   timeout_ms,
              int  *out_status)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  /* A pidfd turns readable when the process ends: the wait sleeps until
   * then, not in ticks. Kernels without one fall back to 1 ms ticks. */
  int pidfd = (int) syscall (SYS_pidfd_open, pid, 0);

  for (;;)
    {
      pid_t r = waitpid (pid, out_status, timeout_ms < 0 ? 0 : WNOHANG);

      if (r == 0 && pidfd >= 0)
        {
          struct pollfd pfd = { pidfd, POLLIN, 0 };
          gint64 left = (deadline - g_get_monotonic_time ()) / 1000;

          if (left > 0 && poll (&pfd, 1, (int) MIN (left, G_MAXINT)) >= 0)
            continue;
        }

      if (r == pid || (r < 0 && errno != EINTR))
        {
          if (r < 0)
            *out_status = 0;    /* reaped elsewhere (the signal handler): it is gone */
          if (pidfd >= 0)
            close (pidfd);
          return TRUE;
        }
      if (timeout_ms >= 0 && g_get_monotonic_time () >= deadline)
        {
          if (pidfd >= 0)
            close (pidfd);
          return FALSE;
        }
      if (r == 0 && pidfd < 0)
        g_usleep (1000);
    }
}

/* Waits, escalating to SIGKILL; the pid is reaped and untracked after. */
static gboolean
reap (GPid     pid,
      int      timeout_ms,
      int     *out_status)
{
  gboolean in_time = wait_for_pid (pid, timeout_ms, out_status);

  if (!in_time)
    {
      kill (pid, SIGKILL);
      wait_for_pid (pid, -1, out_status);
    }
  untrack_pid (pid);
  return in_time;
}

static gboolean
check_status (const char *name,
              int         status,
              GError    **error)
{
  g_autoptr(GError) local_error = NULL;

  if (g_spawn_check_wait_status (status, &local_error))
    return TRUE;
  g_set_error (error, G_SPAWN_EXIT_ERROR, local_error->code, "%s: %s", name, local_error->message);
  return FALSE;
}

static char *
read_first_line (BenchProcess *self,
                 int           fd,
                 int           timeout_ms,
                 GError      **error)
{
  g_autoptr(GString) line = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      gint64 left_ms = (deadline - g_get_monotonic_time ()) / 1000;
      char buffer[256];
      ssize_t n;
      char *newline;

      if (left_ms <= 0)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                       "%s printed no address within %d s", self->name, timeout_ms / 1000);
          return NULL;
        }
      n = poll (&pfd, 1, (int) left_ms);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        continue;
      n = read (fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int status;
          /* It closed its stdout, so it is ending: the wait is short. */
          gboolean ended = reap (self->pid, 5000, &status);

          self->pid = 0;
          if (ended && !check_status (self->name, status, error))
            return NULL;
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "%s ended without printing its address", self->name);
          return NULL;
        }
      g_string_append_len (line, buffer, n);
      newline = strchr (line->str, '\n');
      if (newline != NULL)
        {
          *newline = '\0';
          return g_strdup (line->str);
        }
      if (line->len > 4096)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                       "%s printed no address, but a long line", self->name);
          return NULL;
        }
    }
}

BenchProcess *
bench_process_spawn (const char         *name,
                     const char * const *argv,
                     int                 cpu,
                     int                 timeout_ms,
                     GError            **error)
{
  g_autoptr(BenchProcess) self = g_new0 (BenchProcess, 1);
  int out_fd = -1;

  self->name = g_strdup (name);
  if (!spawn_tracked (argv, cpu, &out_fd, &self->pid, error))
    {
      g_prefix_error (error, "%s: ", name);
      return NULL;
    }
  self->address = read_first_line (self, out_fd, timeout_ms, error);
  /* Servers write nothing after their address; a later write would fail
   * with EPIPE, which they do not do. */
  close (out_fd);
  if (self->address == NULL)
    return NULL;
  self->has_cpu_clock = clock_getcpuclockid (self->pid, &self->cpu_clock) == 0;
  return g_steal_pointer (&self);
}

const char *
bench_process_get_address (BenchProcess *self)
{
  return self->address;
}

int
bench_process_get_pid (BenchProcess *self)
{
  return self->pid;
}

gint64
bench_process_get_cpu_ns (BenchProcess *self)
{
  struct timespec ts;

  if (!self->has_cpu_clock || self->pid == 0 || clock_gettime (self->cpu_clock, &ts) != 0)
    return -1;
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

gboolean
bench_process_stop (BenchProcess *self,
                    int           timeout_ms,
                    GError      **error)
{
  int status;
  GPid pid = self->pid;

  if (pid == 0)
    return TRUE;
  self->pid = 0;
  /* Whether it had died already shows in its status: a server killed by
   * anything but our SIGTERM, or exiting non-zero, is an error. */
  kill (pid, SIGTERM);
  if (!reap (pid, timeout_ms, &status))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "%s did not stop within %d s of SIGTERM", self->name, timeout_ms / 1000);
      return FALSE;
    }
  if (WIFSIGNALED (status) && WTERMSIG (status) == SIGTERM)
    return TRUE;
  return check_status (self->name, status, error);
}

void
bench_process_free (BenchProcess *self)
{
  if (self == NULL)
    return;
  bench_process_stop (self, 2000, NULL);
  g_free (self->name);
  g_free (self->address);
  g_free (self);
}

gboolean
bench_process_run (const char         *name,
                   const char * const *argv,
                   int                 timeout_ms,
                   GError            **error)
{
  GPid pid;
  int status;

  if (!spawn_tracked (argv, -1, NULL, &pid, error))
    {
      g_prefix_error (error, "%s: ", name);
      return FALSE;
    }
  if (!reap (pid, timeout_ms, &status))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "%s did not finish within %d s", name, timeout_ms / 1000);
      return FALSE;
    }
  return check_status (name, status, error);
}
