/* peer-helper-process.c: a PeerHelper's supervisor: spawning the helper
 * over a socketpair (plainly or in its sandbox), authenticating it,
 * reaping it and saying how it ended, restarting it as the restart policy
 * allows, and stopping it. It publishes the helper's state under @lock,
 * where peer-helper.c (the GObject and its call surface) waits for it,
 * and hands each authenticated connection up to peer-helper.c to be
 * wrapped in the PeerClient that calls go to (peer-helper-private.h).
 *
 * Everything that touches the process (spawning, the handshake, reaping,
 * restarting, stopping) runs in a supervisor thread with its own main
 * context, for two reasons. PR_SET_PDEATHSIG fires when the *thread* that
 * forked the helper ends, so the fork must come from a thread that lives
 * exactly as long as the helper should. And synchronous calls must be able
 * to wait for a (re)start from any thread, including the one whose main
 * context the application runs: the supervisor never needs that context.
 * Waiters block on @cond; the state they wait for is under @lock.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>

#include "peer-error.h"
#include "peer-helper-private.h"
#include "peer-sandbox-private.h"

#define PEER_HELPER_MAX_BACKOFF_MS 30000

static gboolean spawn_helper (PeerHelper *self, GError **error);

/* --- the process -------------------------------------------------------- */

/* In the child, between fork and exec: only async-signal-safe calls. */
static void
child_setup (gpointer user_data)
{
  pid_t parent = GPOINTER_TO_INT (user_data);

  /* Killed when the forking thread (the supervisor) ends, which it does
   * only after the helper is gone, or when the whole application dies. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  /* The application may have died before prctl(): then nothing will. */
  if (getppid () != parent)
    _exit (127);
  /* Its own process group: a Ctrl-C on the terminal is for the
   * application, which decides what its helper does. */
  setpgid (0, 0);
}

static GError *
describe_exit (PeerHelper *self,
               int         wait_status,
               GPid        pid)
{
  g_autofree char *what = g_strdup_printf ("%s, pid %d", self->argv[0], (int) pid);
  g_autofree char *how = NULL;

  /* Killed by the supervisor for the syscall (see on_refusal()). */
  if (self->refused_syscall != NULL)
    return g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                        "helper killed by SIGSYS: syscall %s refused by the sandbox (%s)",
                        self->refused_syscall, what);
  /* A kernel without seccomp's user notification kills it outright. */
  if (self->sandbox != NULL && WIFSIGNALED (wait_status) && WTERMSIG (wait_status) == SIGSYS)
    return g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                        "helper killed by SIGSYS: a syscall refused by the sandbox (%s)", what);
  if (WIFSIGNALED (wait_status))
    how = g_strdup_printf ("killed by signal %d (%s", WTERMSIG (wait_status), g_strsignal (WTERMSIG (wait_status)));
  else
    how = g_strdup_printf ("exited with status %d (", WEXITSTATUS (wait_status));

  if (self->authenticated || (self->stopping && self->handshake_error == NULL))
    return g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED, "helper %s%s%s)",
                        how, WIFSIGNALED (wait_status) ? "; " : "", what);

  /* It never authenticated: say why in words, not in GDBus's. */
  if (self->handshake_timed_out)
    return g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                        "helper did not start: it did not speak D-Bus within %g s (%s)",
                        PEER_HELPER_HANDSHAKE_TIMEOUT_MS / 1000.0, what);
  if (peer_policy_get_n_refused (self->policy) > self->n_refused_before)
    return g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                        "helper did not start: the application's policy refused it (%s)", what);
  /* Stopped by us after its handshake failed, unless it had exited on its
   * own already (a failure status: the handshake saw its end first). */
  if (self->handshake_error != NULL && self->stopped_by_us &&
      !(WIFEXITED (wait_status) && WEXITSTATUS (wait_status) != 0))
    return g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                        "helper did not start: it did not authenticate (%s), and was stopped (%s)",
                        self->handshake_error->message, what);
  return g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                      "helper did not start: the program %s%s%s) before authenticating",
                      how, WIFSIGNALED (wait_status) ? "; " : "", what);
}

static void
signal_process (PeerHelper *self,
                int         sig)
{
  if (self->process == 0)
    return;
  if (self->pidfd >= 0)
    syscall (SYS_pidfd_send_signal, self->pidfd, sig, NULL, 0);
  else
    kill (self->process, sig);
}

static gboolean
on_kill_timeout (gpointer user_data)
{
  PeerHelper *self = user_data;

  g_debug ("libpeer: helper %s did not exit after SIGTERM; killing it", self->argv[0]);
  signal_process (self, SIGKILL);
  g_clear_pointer (&self->kill_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

/* SIGTERM now, SIGKILL if it is still there after the stop timeout. */
void
_peer_helper_terminate_process (PeerHelper *self)
{
  if (self->process == 0 || self->kill_source != NULL)
    return;
  self->stopped_by_us = TRUE;
  signal_process (self, SIGTERM);
  self->kill_source = g_timeout_source_new (PEER_HELPER_STOP_TIMEOUT_MS);
  g_source_set_callback (self->kill_source, on_kill_timeout, self, NULL);
  g_source_set_static_name (self->kill_source, "[libpeer] helper kill");
  g_source_attach (self->kill_source, self->context);
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static gboolean
on_restart (gpointer user_data)
{
  PeerHelper *self = user_data;
  g_autoptr(GError) error = NULL;
  gint64 now = g_get_monotonic_time ();

  g_clear_pointer (&self->restart_source, g_source_unref);
  g_array_append_val (self->restart_times, now);
  g_mutex_lock (&self->lock);
  self->n_restarts++;
  g_mutex_unlock (&self->lock);

  if (!spawn_helper (self, &error))
    {
      g_debug ("libpeer: cannot restart helper %s: %s", self->argv[0], error->message);
      g_mutex_lock (&self->lock);
      self->state = HELPER_STOPPED;
      g_clear_error (&self->exit_reason);
      self->exit_reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                       "helper could not be restarted: %s", error->message);
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      _peer_helper_emit_exited (self, error);
    }
  return G_SOURCE_REMOVE;
}

/* The delay before the next restart, or -1 when the policy says no more. */
static gint64
next_restart_delay_ms (PeerHelper *self)
{
  gint64 now = g_get_monotonic_time ();
  guint max_restarts, window_ms, backoff_ms, in_window = 0;

  g_mutex_lock (&self->lock);
  max_restarts = self->max_restarts;
  window_ms = self->window_ms;
  backoff_ms = self->backoff_ms;
  g_mutex_unlock (&self->lock);

  for (guint i = 0; i < self->restart_times->len; i++)
    if (now - g_array_index (self->restart_times, gint64, i) < (gint64) window_ms * 1000)
      in_window++;
  if (in_window >= max_restarts)
    return -1;
  return MIN ((gint64) backoff_ms << MIN (in_window, 16), PEER_HELPER_MAX_BACKOFF_MS);
}

static void
on_process_exited (GPid     pid,
                   int      wait_status,
                   gpointer user_data)
{
  PeerHelper *self = user_data;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GError) reason = NULL;
  gint64 delay = -1;

  reason = describe_exit (self, wait_status, pid);
  g_debug ("libpeer: %s", reason->message);
  g_clear_pointer (&self->child_watch, g_source_unref);
  g_spawn_close_pid (pid);
  self->process = 0;
  if (self->pidfd >= 0)
    close (self->pidfd);
  self->pidfd = -1;
  clear_source (&self->refusal_source);
  if (self->notify_fd >= 0)
    close (self->notify_fd);
  self->notify_fd = -1;
  g_clear_pointer (&self->refused_syscall, g_free);

  clear_source (&self->kill_source);
  clear_source (&self->handshake_deadline);
  if (self->handshake_cancellable != NULL)
    g_cancellable_cancel (self->handshake_cancellable);
  g_clear_object (&self->handshake_cancellable);
  g_clear_error (&self->handshake_error);
  if (!self->stopping)
    delay = next_restart_delay_ms (self);

  g_mutex_lock (&self->lock);
  client = g_steal_pointer (&self->client);
  self->pid = 0;
  self->generation++;
  self->state = delay >= 0 ? HELPER_RESTARTING : HELPER_STOPPED;
  if (!self->stopping || self->exit_reason == NULL)
    {
      g_clear_error (&self->exit_reason);
      self->exit_reason = g_error_copy (reason);
    }
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  /* A grandchild may still hold the helper's end open: calls must not
   * wait for it. */
  if (client != NULL)
    peer_client_close (client);
  /* Not while stopping: the helper may be in dispose by then. */
  if (!self->stopping)
    _peer_helper_emit_exited (self, reason);

  if (self->stopping)
    g_main_loop_quit (self->loop);
  else if (delay >= 0)
    {
      g_debug ("libpeer: restarting helper %s in %" G_GINT64_FORMAT " ms", self->argv[0], delay);
      self->restart_source = g_timeout_source_new ((guint) delay);
      g_source_set_callback (self->restart_source, on_restart, self, NULL);
      g_source_set_static_name (self->restart_source, "[libpeer] helper restart");
      g_source_attach (self->restart_source, self->context);
    }
}

static void
on_handshake_done (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GCancellable) cancellable = user_data;
  PeerHelper *self = g_object_get_data (G_OBJECT (cancellable), "peer-helper");
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  PeerClient *client;
  GPid pid;

  connection = g_dbus_connection_new_finish (result, &error);
  self->n_handshakes--;
  /* The handshake of a helper that has exited meanwhile: a restarted one
   * may be authenticating already, and this result is not about it. */
  if (cancellable != self->handshake_cancellable)
    {
      if (connection != NULL)
        g_dbus_connection_close (connection, NULL, NULL, NULL);
      return;
    }
  clear_source (&self->handshake_deadline);
  g_clear_object (&self->handshake_cancellable);
  if (connection == NULL || self->process == 0 || self->stopping)
    {
      if (error != NULL)
        {
          g_debug ("libpeer: helper %s failed the handshake: %s", self->argv[0], error->message);
          g_clear_error (&self->handshake_error);
          self->handshake_error = g_steal_pointer (&error);
        }
      if (connection != NULL)
        g_dbus_connection_close (connection, NULL, NULL, NULL);
      _peer_helper_terminate_process (self);
      return;
    }

  self->authenticated = TRUE;
  client = _peer_helper_open_client (self, connection);

  g_mutex_lock (&self->lock);
  self->client = client;
  self->state = HELPER_RUNNING;
  pid = self->pid;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  g_debug ("libpeer: helper %s (pid %d) is running", self->argv[0], (int) pid);
  _peer_helper_emit_started (self, pid);
}

static gboolean
on_handshake_deadline (gpointer user_data)
{
  PeerHelper *self = user_data;

  g_clear_error (&self->handshake_error);
  g_set_error (&self->handshake_error, PEER_ERROR, PEER_ERROR_TIMED_OUT,
               "no handshake within %d ms", PEER_HELPER_HANDSHAKE_TIMEOUT_MS);
  self->handshake_timed_out = TRUE;
  g_clear_pointer (&self->handshake_deadline, g_source_unref);
  if (self->handshake_cancellable != NULL)
    g_cancellable_cancel (self->handshake_cancellable);
  return G_SOURCE_REMOVE;
}

/* A sandboxed helper made a syscall its filter leaves to us: it dies,
 * and its exit is reported with the syscall's name. It is pid 1 of its
 * PID namespace, which a SIGSYS from outside would not kill, so it is
 * SIGKILL that ends it. */
static gboolean
on_refusal (int          fd,
            GIOCondition condition,
            gpointer     user_data)
{
  PeerHelper *self = user_data;
  g_autofree char *name = NULL;

  guint64 id;

  if (condition & G_IO_IN)
    name = peer_sandbox_filter_receive (fd, &id);
  if (name != NULL)
    {
      g_debug ("libpeer: helper %s made syscall %s, which the sandbox refuses; killing it", self->argv[0], name);
      if (self->refused_syscall == NULL)
        self->refused_syscall = g_steal_pointer (&name);
      /* Killed before the syscall is answered, so that the helper never
       * runs on past it. */
      signal_process (self, SIGKILL);
      peer_sandbox_filter_refuse (fd, id);
      return G_SOURCE_CONTINUE;
    }
  /* Nothing more can come: the helper is gone. */
  g_clear_pointer (&self->refusal_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

static void
watch_refusals (PeerHelper *self,
                int         notify_fd)
{
  self->refusal_source = g_unix_fd_source_new (notify_fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
  g_source_set_callback (self->refusal_source, (GSourceFunc) (void (*) (void)) on_refusal, self, NULL);
  g_source_set_static_name (self->refusal_source, "[libpeer] sandbox refusals");
  self->notify_fd = notify_fd;
  g_source_attach (self->refusal_source, self->context);
}

/* Starts the helper plainly: its end of a socketpair as its fd 3, ours
 * in @app_fd. */
static gboolean
start_plain (PeerHelper  *self,
             char       **envp,
             GPid        *pid,
             int         *app_fd,
             GError     **error)
{
  const int target_fds[1] = { PEER_HELPER_CHILD_FD };
  int sv[2];

  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "socketpair: %s", g_strerror (saved_errno));
      return FALSE;
    }
  /* The helper's end becomes its fd 3 (the fork happens in this thread:
   * see the top of the file); ours is closed right after, or the
   * helper's death would not show as end-of-file. Standard input is
   * /dev/null. */
  if (!g_spawn_async_with_pipes_and_fds (NULL, (const char * const *) self->argv, (const char * const *) envp,
                                         G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                         child_setup, GINT_TO_POINTER (getpid ()), -1, -1, -1,
                                         &sv[1], target_fds, 1, pid, NULL, NULL, NULL, error))
    {
      close (sv[0]);
      close (sv[1]);
      g_prefix_error (error, "Cannot start helper %s: ", self->argv[0]);
      return FALSE;
    }
  close (sv[1]);
  /* Not reaped before the child watch is dispatched here, so this is our
   * child; a kernel without pidfds gets plain kill(). */
  self->pidfd = (int) syscall (SYS_pidfd_open, *pid, 0);
  *app_fd = sv[0];
  return TRUE;
}

/* Starts the helper in its sandbox, which makes the socketpair itself
 * (see peer-sandbox-spawn.c) and hands over a pidfd and the filter's
 * listener. */
static gboolean
start_sandboxed (PeerHelper  *self,
                 char       **envp,
                 GPid        *pid,
                 int         *app_fd,
                 GError     **error)
{
  PeerSandboxProcess process;

  if (!peer_sandbox_spawn (self->sandbox, (const char * const *) self->argv, (const char * const *) envp,
                           &process, error))
    return FALSE;
  *pid = process.pid;
  *app_fd = process.app_fd;
  self->pidfd = process.pidfd;
  if (process.notify_fd >= 0)
    watch_refusals (self, process.notify_fd);
  return TRUE;
}

/* Whether the program can be started, asked before anything is forked:
 * the error says where it was looked for, where the exec's own would not
 * ("Failed to execute child process"). */
static gboolean
check_program (const char  *program,
               GError     **error)
{
  g_autofree char *found = NULL;
  int saved_errno;

  if (strchr (program, '/') != NULL)
    {
      if (access (program, X_OK) == 0)
        return TRUE;
      saved_errno = errno;
      g_set_error (error, G_SPAWN_ERROR, saved_errno == ENOENT ? G_SPAWN_ERROR_NOENT : G_SPAWN_ERROR_ACCES,
                   "%s: %s", program, g_strerror (saved_errno));
      return FALSE;
    }
  found = g_find_program_in_path (program);
  if (found != NULL)
    return TRUE;
  g_set_error (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT,
               "no program named %s in PATH (%s); give its path to start one that is elsewhere",
               program, g_getenv ("PATH") != NULL ? g_getenv ("PATH") : "not set, so /bin:/usr/bin");
  return FALSE;
}

/* Supervisor thread. */
static gboolean
spawn_helper (PeerHelper *self,
              GError    **error)
{
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GSocketConnection) stream = NULL;
  g_autofree char *guid = NULL;
  g_autofree char *fd_text = g_strdup_printf ("%d", PEER_HELPER_CHILD_FD);
  g_auto(GStrv) envp = g_get_environ ();
  int app_fd;
  GPid pid;

  if (!check_program (self->argv[0], error))
    {
      g_prefix_error (error, "Cannot start helper %s: ", self->argv[0]);
      return FALSE;
    }
  self->authenticated = FALSE;
  self->handshake_timed_out = FALSE;
  self->stopped_by_us = FALSE;
  self->n_refused_before = peer_policy_get_n_refused (self->policy);
  envp = g_environ_setenv (envp, PEER_HELPER_FD_ENV, fd_text, TRUE);
  envp = g_environ_unsetenv (envp, "PEER_CAPTURE");
  if (self->sandbox != NULL)
    envp = g_environ_setenv (envp, PEER_SANDBOX_ENV, "1", TRUE);
  if (self->sandbox != NULL ? !start_sandboxed (self, envp, &pid, &app_fd, error)
                            : !start_plain (self, envp, &pid, &app_fd, error))
    return FALSE;
  self->process = pid;

  sock = g_socket_new_from_fd (app_fd, error);
  if (sock == NULL)
    {
      close (app_fd);
      signal_process (self, SIGKILL);
    }
  else
    stream = g_socket_connection_factory_create_connection (sock);

  g_mutex_lock (&self->lock);
  self->state = HELPER_STARTING;
  self->pid = pid;
  g_mutex_unlock (&self->lock);
  /* The exit status comes back in this (the supervisor's) context. */
  self->child_watch = g_child_watch_source_new (pid);
  g_source_set_callback (self->child_watch, (GSourceFunc) (void (*) (void)) on_process_exited, self, NULL);
  g_source_set_static_name (self->child_watch, "[libpeer] helper exit");
  g_source_attach (self->child_watch, self->context);
  if (stream == NULL)
    return TRUE;                        /* reported as its exit */

  self->handshake_cancellable = g_cancellable_new ();
  /* Not a reference: the supervisor waits for every handshake to finish. */
  g_object_set_data (G_OBJECT (self->handshake_cancellable), "peer-helper", self);
  self->handshake_deadline = g_timeout_source_new (PEER_HELPER_HANDSHAKE_TIMEOUT_MS);
  g_source_set_callback (self->handshake_deadline, on_handshake_deadline, self, NULL);
  g_source_set_static_name (self->handshake_deadline, "[libpeer] helper handshake deadline");
  g_source_attach (self->handshake_deadline, self->context);
  guid = g_dbus_generate_guid ();
  /* We are the authenticating side: the policy judges the helper. */
  g_dbus_connection_new (G_IO_STREAM (stream), guid,
                         G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER |
                         G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                         self->observer, self->handshake_cancellable, on_handshake_done,
                         g_object_ref (self->handshake_cancellable));
  self->n_handshakes++;
  return TRUE;
}

static gboolean
stop_in_supervisor (gpointer user_data)
{
  PeerHelper *self = user_data;
  g_autoptr(PeerClient) client = NULL;

  self->stopping = TRUE;
  clear_source (&self->restart_source);
  g_mutex_lock (&self->lock);
  client = g_steal_pointer (&self->client);
  if (self->state != HELPER_STOPPED)
    {
      g_clear_error (&self->exit_reason);
      self->exit_reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                       "helper %s was stopped by the application", self->argv[0]);
    }
  self->state = HELPER_STOPPED;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  if (client != NULL)
    peer_client_close (client);
  if (self->process != 0)
    _peer_helper_terminate_process (self); /* on_process_exited() quits the loop */
  else
    g_main_loop_quit (self->loop);
  return G_SOURCE_REMOVE;
}

static gpointer
supervisor_thread (gpointer user_data)
{
  PeerHelper *self = user_data;
  g_autoptr(GError) error = NULL;
  gboolean spawned;

  g_main_context_push_thread_default (self->context);
  spawned = spawn_helper (self, &error);

  g_mutex_lock (&self->lock);
  self->first_spawn_done = TRUE;
  if (!spawned)
    {
      self->state = HELPER_STOPPED;
      self->spawn_error = g_steal_pointer (&error);
    }
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);

  if (spawned)
    g_main_loop_run (self->loop);
  /* Every client was closed and any handshake cancelled: wait for them
   * to say so, since their callbacks come here. */
  while (_peer_helper_has_open_clients (self) || self->n_handshakes > 0)
    g_main_context_iteration (self->context, TRUE);
  /* Whatever the handshake and GDBus left behind, before the context goes. */
  while (g_main_context_iteration (self->context, FALSE))
    ;
  g_main_context_pop_thread_default (self->context);
  return NULL;
}

/* --- starting and stopping the supervisor ------------------------------- */

gboolean
_peer_helper_start_supervisor (PeerHelper  *self,
                               GError     **error)
{
  g_mutex_lock (&self->lock);
  self->supervisor = g_thread_new ("peer-helper", supervisor_thread, self);
  self->supervisor_gone = FALSE;
  while (!self->first_spawn_done)
    g_cond_wait (&self->cond, &self->lock);
  if (self->spawn_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&self->spawn_error));
      g_mutex_unlock (&self->lock);
      return FALSE;
    }
  g_mutex_unlock (&self->lock);
  return TRUE;
}

void
_peer_helper_stop_supervisor (PeerHelper *self)
{
  GThread *supervisor;

  /* One caller (a stop, or dispose) takes the supervisor and joins it;
   * any other waits for that, so that each returns with the helper gone. */
  g_mutex_lock (&self->lock);
  supervisor = g_steal_pointer (&self->supervisor);
  while (supervisor == NULL && !self->supervisor_gone)
    g_cond_wait (&self->cond, &self->lock);
  g_mutex_unlock (&self->lock);
  if (supervisor == NULL)
    return;

  /* Runs in the supervisor thread (a thread that ended after a failed
   * spawn stopped everything already); the join returns once the helper
   * has been reaped. */
  g_main_context_invoke (self->context, stop_in_supervisor, self);
  g_thread_join (supervisor);

  g_mutex_lock (&self->lock);
  self->supervisor_gone = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}
