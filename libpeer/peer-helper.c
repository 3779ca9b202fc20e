/* peer-helper.c: starting, supervising and calling an application's helper.
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

#include "peer-client.h"
#include "peer-error.h"
#include "peer-helper.h"
#include "peer-policy.h"
#include "peer-sandbox-private.h"

#define PEER_HELPER_DEFAULT_TIMEOUT_MS 25000
#define PEER_HELPER_MAX_BACKOFF_MS 30000
/* How long a failed call waits for the exit status that explains it. */
#define PEER_HELPER_EXIT_WAIT_MS 5000

typedef enum {
  HELPER_STARTING,                      /* spawned, authenticating */
  HELPER_RUNNING,
  HELPER_RESTARTING,                    /* exited, a restart is due */
  HELPER_STOPPED,                       /* for good */
} HelperState;

struct _PeerHelper
{
  GObject parent_instance;

  /* Set at construction, read-only after */
  char **argv;
  PeerPolicy *policy;
  GDBusAuthObserver *observer;
  GMainContext *app_context;
  GMainContext *context;                /* the supervisor's */
  GMainLoop *loop;
  PeerSandbox *sandbox;                 /* NULL: not sandboxed */

  /* Supervisor thread only */
  GPid process;                         /* 0 once reaped */
  int pidfd;                            /* signals go here: it cannot name a reused pid */
  int notify_fd;                        /* a sandboxed helper's refused syscalls come here */
  GSource *refusal_source;
  char *refused_syscall;                /* the one it was killed for */
  GSource *child_watch;
  GCancellable *handshake_cancellable;  /* the current helper's handshake */
  guint n_handshakes;                   /* in flight, a dead helper's included */
  GSource *handshake_deadline;
  GSource *restart_source;
  GSource *kill_source;
  GError *handshake_error;
  /* How the current process's start went, to say how it ended. */
  gboolean authenticated;
  gboolean handshake_timed_out;
  gboolean stopped_by_us;
  guint64 n_refused_before;             /* the policy's count, at the spawn */
  GArray *restart_times;                /* gint64, monotonic µs */
  /* Clients whose connection has not yet reported "closed": held until
   * it has, because that signal is emitted here, and the application may
   * drop its own reference from another thread meanwhile. */
  GPtrArray *open_clients;
  gboolean stopping;
  gint stop_handed_over;                /* atomic: see dispose */

  GMutex lock;
  GCond cond;
  /* Protected by @lock */
  GThread *supervisor;                  /* until the stop that joins it takes it */
  gboolean supervisor_gone;             /* joined (or never started) */
  HelperState state;
  gboolean first_spawn_done;
  GError *spawn_error;
  PeerClient *client;                   /* while RUNNING */
  GPid pid;
  guint64 generation;                   /* +1 at each exit */
  GError *exit_reason;
  guint n_restarts;
  guint max_restarts;
  guint window_ms;
  guint backoff_ms;
};

enum { SIGNAL_STARTED, SIGNAL_EXITED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (PeerHelper, peer_helper, G_TYPE_OBJECT)

static gboolean spawn_helper (PeerHelper *self, GError **error);

/* --- signals, in the application's context ------------------------------ */

/* Holds the helper weakly: a pending signal must not keep a helper (and
 * its process) alive after the application dropped it. */
typedef struct {
  GWeakRef helper;
  guint signal_id;
  GPid pid;
  GError *reason;
} Emission;

static void
emission_free (Emission *emission)
{
  g_weak_ref_clear (&emission->helper);
  g_clear_error (&emission->reason);
  g_free (emission);
}

static gboolean
emit_in_app_context (gpointer user_data)
{
  Emission *emission = user_data;
  g_autoptr(PeerHelper) helper = g_weak_ref_get (&emission->helper);

  if (helper == NULL)
    return G_SOURCE_REMOVE;
  if (emission->signal_id == signals[SIGNAL_STARTED])
    g_signal_emit (helper, emission->signal_id, 0, (int) emission->pid);
  else
    g_signal_emit (helper, emission->signal_id, 0, emission->reason);
  return G_SOURCE_REMOVE;
}

static void
emit_later (PeerHelper   *self,
            guint         signal_id,
            GPid          pid,
            const GError *reason)
{
  Emission *emission = g_new0 (Emission, 1);
  GSource *idle = g_idle_source_new ();

  g_weak_ref_init (&emission->helper, self);
  emission->signal_id = signal_id;
  emission->pid = pid;
  emission->reason = reason != NULL ? g_error_copy (reason) : NULL;
  g_source_set_callback (idle, emit_in_app_context, emission, (GDestroyNotify) emission_free);
  g_source_set_static_name (idle, "[libpeer] helper signal");
  g_source_attach (idle, self->app_context);
  g_source_unref (idle);
}

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
static void
terminate_process (PeerHelper *self)
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
      emit_later (self, signals[SIGNAL_EXITED], 0, error);
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
    emit_later (self, signals[SIGNAL_EXITED], 0, reason);

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

/* The connection went away while the process may live on (it closed its
 * end, or is dying): it is of no use any more. */
static void
on_client_closed (PeerClient   *client,
                  const GError *reason,
                  PeerHelper   *self)
{
  gboolean current;

  g_debug ("libpeer: helper connection closed: %s", reason->message);
  g_mutex_lock (&self->lock);
  current = client == self->client;
  g_mutex_unlock (&self->lock);
  if (current)
    terminate_process (self);
  g_signal_handlers_disconnect_by_func (client, on_client_closed, self);
  g_ptr_array_remove_fast (self->open_clients, client);
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
      terminate_process (self);
      return;
    }

  self->authenticated = TRUE;
  client = peer_client_new_for_connection (connection);
  g_signal_connect (client, "closed", G_CALLBACK (on_client_closed), self);
  g_ptr_array_add (self->open_clients, g_object_ref (client));
  g_dbus_connection_start_message_processing (connection);

  g_mutex_lock (&self->lock);
  self->client = client;
  self->state = HELPER_RUNNING;
  pid = self->pid;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  g_debug ("libpeer: helper %s (pid %d) is running", self->argv[0], (int) pid);
  emit_later (self, signals[SIGNAL_STARTED], pid, NULL);
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
    terminate_process (self);           /* on_process_exited() quits the loop */
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
  while (self->open_clients->len > 0 || self->n_handshakes > 0)
    g_main_context_iteration (self->context, TRUE);
  /* Whatever the handshake and GDBus left behind, before the context goes. */
  while (g_main_context_iteration (self->context, FALSE))
    ;
  g_main_context_pop_thread_default (self->context);
  return NULL;
}

/* --- GObject ------------------------------------------------------------ */

static void on_last_toggle (gpointer data, GObject *object, gboolean is_last);

static gpointer
stop_in_thread (gpointer helper)
{
  g_object_remove_toggle_ref (helper, on_last_toggle, NULL);   /* the last reference */
  return NULL;
}

/* On the supervisor thread, once the dispose below has returned. */
static void
on_last_toggle (gpointer  data,
                GObject  *object,
                gboolean  is_last)
{
  PeerHelper *self = PEER_HELPER (object);

  if (is_last && g_atomic_int_compare_and_exchange (&self->stop_handed_over, FALSE, TRUE))
    g_thread_unref (g_thread_new ("peer-helper-stop", stop_in_thread, self));
}

static void
peer_helper_dispose (GObject *object)
{
  PeerHelper *self = PEER_HELPER (object);
  gboolean on_supervisor;

  /* The supervisor cannot join itself: a last reference dropped there (a
   * handler of the helper's PeerClient::closed) is handed to a thread of
   * its own, which stops the helper and finalizes it. Through a toggle
   * reference, whose notification comes once this thread is out of
   * g_object_unref(): with a plain one, that thread could drop it first
   * and leave this one to finalize. */
  g_mutex_lock (&self->lock);
  on_supervisor = self->supervisor != NULL && self->supervisor == g_thread_self ();
  g_mutex_unlock (&self->lock);
  if (on_supervisor)
    {
      g_object_add_toggle_ref (object, on_last_toggle, NULL);
      return;
    }

  peer_helper_stop (self);

  G_OBJECT_CLASS (peer_helper_parent_class)->dispose (object);
}

static void
peer_helper_finalize (GObject *object)
{
  PeerHelper *self = PEER_HELPER (object);

  g_strfreev (self->argv);
  g_clear_object (&self->policy);
  g_clear_object (&self->observer);
  g_clear_object (&self->sandbox);
  g_main_loop_unref (self->loop);
  g_main_context_unref (self->context);
  g_main_context_unref (self->app_context);
  g_array_unref (self->restart_times);
  g_ptr_array_unref (self->open_clients);
  g_clear_error (&self->handshake_error);
  g_clear_error (&self->spawn_error);
  g_clear_error (&self->exit_reason);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);

  G_OBJECT_CLASS (peer_helper_parent_class)->finalize (object);
}

static void
peer_helper_class_init (PeerHelperClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = peer_helper_dispose;
  object_class->finalize = peer_helper_finalize;

  /**
   * PeerHelper::started:
   * @self: the helper
   * @pid: the new helper's pid
   *
   * A helper (the first, or a restarted one) authenticated and takes
   * calls.
   */
  signals[SIGNAL_STARTED] =
    g_signal_new ("started", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT);
  /**
   * PeerHelper::exited:
   * @self: the helper
   * @reason: (transfer none): why, as peer_helper_dup_exit_reason() says
   *
   * A helper process ended (or could not be restarted), other than by
   * peer_helper_stop().
   */
  signals[SIGNAL_EXITED] =
    g_signal_new ("exited", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
peer_helper_init (PeerHelper *self)
{
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->app_context = g_main_context_ref_thread_default ();
  self->context = g_main_context_new ();
  self->loop = g_main_loop_new (self->context, FALSE);
  self->restart_times = g_array_new (FALSE, FALSE, sizeof (gint64));
  self->pidfd = -1;
  self->notify_fd = -1;
  self->open_clients = g_ptr_array_new_with_free_func (g_object_unref);
  self->supervisor_gone = TRUE;
}

/* --- public API --------------------------------------------------------- */

static PeerHelper *
helper_new (const char * const  *argv,
            PeerPolicy          *policy,
            PeerSandbox         *sandbox,
            GError             **error)
{
  g_autoptr(PeerHelper) self = NULL;

  /* Registers org.libpeer.Error.* for the helper's errors. */
  (void) PEER_ERROR;

  self = g_object_new (PEER_TYPE_HELPER, NULL);
  self->argv = g_strdupv ((char **) argv);
  self->sandbox = sandbox != NULL ? g_object_ref (sandbox) : NULL;
  self->policy = policy != NULL ? g_object_ref (policy) : peer_policy_new ();
  self->observer = peer_policy_create_auth_observer (self->policy);
  g_mutex_lock (&self->lock);
  self->supervisor = g_thread_new ("peer-helper", supervisor_thread, self);
  self->supervisor_gone = FALSE;
  while (!self->first_spawn_done)
    g_cond_wait (&self->cond, &self->lock);
  if (self->spawn_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&self->spawn_error));
      g_mutex_unlock (&self->lock);
      return NULL;                      /* the thread has ended; dispose joins it */
    }
  g_mutex_unlock (&self->lock);
  return g_steal_pointer (&self);
}

PeerHelper *
peer_helper_new (const char * const  *argv,
                 PeerPolicy          *policy,
                 GError             **error)
{
  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (policy == NULL || PEER_IS_POLICY (policy), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return helper_new (argv, policy, NULL, error);
}

PeerHelper *
peer_helper_new_sandboxed (const char * const  *argv,
                           PeerPolicy          *policy,
                           PeerSandbox         *sandbox,
                           GError             **error)
{
  g_autoptr(PeerSandbox) profile = NULL;

  g_return_val_if_fail (argv != NULL && argv[0] != NULL, NULL);
  g_return_val_if_fail (policy == NULL || PEER_IS_POLICY (policy), NULL);
  g_return_val_if_fail (sandbox == NULL || PEER_IS_SANDBOX (sandbox), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  profile = sandbox != NULL ? g_object_ref (sandbox) : peer_sandbox_dup_default ();
  return helper_new (argv, policy, profile, error);
}

void
peer_helper_set_restart_policy (PeerHelper *self,
                                guint       max_restarts,
                                guint       window_ms,
                                guint       backoff_ms)
{
  g_return_if_fail (PEER_IS_HELPER (self));

  g_mutex_lock (&self->lock);
  self->max_restarts = max_restarts;
  self->window_ms = window_ms;
  self->backoff_ms = backoff_ms;
  g_mutex_unlock (&self->lock);
}

static gint64
deadline_for (int timeout_ms)
{
  if (timeout_ms == G_MAXINT)
    return G_MAXINT64;
  if (timeout_ms < 0)
    timeout_ms = PEER_HELPER_DEFAULT_TIMEOUT_MS;
  return g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
}

static void
on_wait_cancelled (GCancellable *cancellable,
                   PeerHelper   *self)
{
  g_mutex_lock (&self->lock);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* The running helper's client and its generation, waiting until @deadline. */
static PeerClient *
wait_for_client (PeerHelper   *self,
                 gint64        deadline,
                 GCancellable *cancellable,
                 guint64      *out_generation,
                 GError      **error)
{
  PeerClient *client = NULL;
  gulong handler = 0;
  gint64 start = g_get_monotonic_time ();

  if (cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (on_wait_cancelled), self, NULL);

  g_mutex_lock (&self->lock);
  for (;;)
    {
      if (self->state == HELPER_RUNNING)
        {
          client = g_object_ref (self->client);
          *out_generation = self->generation;
          break;
        }
      if (self->state == HELPER_STOPPED)
        {
          if (self->exit_reason != NULL)
            g_propagate_error (error, g_error_copy (self->exit_reason));
          else
            g_set_error_literal (error, PEER_ERROR, PEER_ERROR_DISCONNECTED, "helper is not running");
          break;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        break;
      if (!g_cond_wait_until (&self->cond, &self->lock, deadline) &&
          self->state != HELPER_RUNNING && self->state != HELPER_STOPPED)
        {
          double waited_s = (deadline - start) / (double) G_USEC_PER_SEC;

          if (self->state == HELPER_STARTING)
            g_set_error (error, PEER_ERROR, PEER_ERROR_TIMED_OUT,
                         "helper %s (pid %d) did not speak D-Bus within %.3g s", self->argv[0], (int) self->pid,
                         waited_s);
          else
            g_set_error (error, PEER_ERROR, PEER_ERROR_TIMED_OUT,
                         "helper %s exited and was not restarted within %.3g s", self->argv[0], waited_s);
          break;
        }
    }
  g_mutex_unlock (&self->lock);

  if (cancellable != NULL)
    g_cancellable_disconnect (cancellable, handler);
  return client;
}

PeerClient *
peer_helper_dup_client (PeerHelper   *self,
                        int           timeout_ms,
                        GCancellable *cancellable,
                        GError      **error)
{
  guint64 generation;

  g_return_val_if_fail (PEER_IS_HELPER (self), NULL);
  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);

  return wait_for_client (self, timeout_ms == 0 ? 0 : deadline_for (timeout_ms), cancellable,
                          &generation, error);
}

/* A call failed because the connection closed: the helper is dying or
 * dead. Replaces the error with the exit reason once it is known. */
static void
explain_disconnection (PeerHelper *self,
                       guint64     generation,
                       const char *method_name,
                       GError    **error)
{
  gint64 deadline = g_get_monotonic_time () + PEER_HELPER_EXIT_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  g_autoptr(GError) reason = NULL;

  g_mutex_lock (&self->lock);
  while (self->generation == generation)
    if (!g_cond_wait_until (&self->cond, &self->lock, deadline))
      break;
  if (self->generation != generation && self->exit_reason != NULL)
    reason = g_error_copy (self->exit_reason);
  g_mutex_unlock (&self->lock);

  if (reason != NULL)
    {
      g_clear_error (error);
      g_set_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED, "%s failed: %s", method_name, reason->message);
    }
}

GVariant *
peer_helper_call_sync (PeerHelper          *self,
                       const char          *object_path,
                       const char          *interface_name,
                       const char          *method_name,
                       GVariant            *parameters,
                       const GVariantType  *reply_type,
                       int                  timeout_ms,
                       GUnixFDList         *fd_list,
                       GUnixFDList        **out_fd_list,
                       GCancellable        *cancellable,
                       GError             **error)
{
  g_autoptr(GVariant) owned = parameters != NULL ? g_variant_ref_sink (parameters) : NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GError) local_error = NULL;
  gint64 deadline = deadline_for (timeout_ms);
  guint64 generation;
  GVariant *reply;
  int remaining_ms;

  g_return_val_if_fail (PEER_IS_HELPER (self), NULL);
  g_return_val_if_fail (method_name != NULL, NULL);

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  client = wait_for_client (self, deadline, cancellable, &generation, error);
  if (client == NULL)
    return NULL;

  if (deadline == G_MAXINT64)
    remaining_ms = G_MAXINT;
  else
    remaining_ms = (int) CLAMP ((deadline - g_get_monotonic_time ()) / G_TIME_SPAN_MILLISECOND, 1, G_MAXINT - 1);
  reply = peer_client_call_sync (client, object_path, interface_name, method_name, owned, reply_type,
                                 remaining_ms, fd_list, out_fd_list, cancellable, &local_error);
  if (reply == NULL && g_error_matches (local_error, PEER_ERROR, PEER_ERROR_DISCONNECTED))
    explain_disconnection (self, generation, method_name, &local_error);
  if (reply == NULL)
    g_propagate_error (error, g_steal_pointer (&local_error));
  return reply;
}

typedef struct {
  char *object_path;
  char *interface_name;
  char *method_name;
  GVariant *parameters;
  GVariantType *reply_type;
  int timeout_ms;
  GUnixFDList *fd_list;
  GVariant *reply;
  GUnixFDList *out_fd_list;
  guint64 generation;           /* of the client a direct call went to */
  GError *disconnected;         /* its error, to be explained */
} HelperCall;

static void
helper_call_free (HelperCall *call)
{
  g_free (call->object_path);
  g_free (call->interface_name);
  g_free (call->method_name);
  g_clear_pointer (&call->parameters, g_variant_unref);
  g_clear_pointer (&call->reply_type, g_variant_type_free);
  g_clear_object (&call->fd_list);
  g_clear_pointer (&call->reply, g_variant_unref);
  g_clear_object (&call->out_fd_list);
  g_clear_error (&call->disconnected);
  g_free (call);
}

/* A direct call's peer went away: waiting for the helper's exit reason
 * (explain_disconnection()) blocks, so it is done in a worker thread. */
static void
explain_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  HelperCall *call = task_data;
  GError *error = g_steal_pointer (&call->disconnected);

  explain_disconnection (source_object, call->generation, call->method_name, &error);
  g_task_return_error (task, error);
}

static void
on_direct_call_done (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  GTask *task = user_data;
  HelperCall *call = g_task_get_task_data (task);
  GError *error = NULL;

  call->reply = peer_client_call_finish (PEER_CLIENT (source), &call->out_fd_list, result, &error);
  if (call->reply != NULL)
    g_task_return_boolean (task, TRUE);
  else if (g_error_matches (error, PEER_ERROR, PEER_ERROR_DISCONNECTED))
    {
      call->disconnected = error;
      g_task_run_in_thread (task, explain_thread);
    }
  else
    g_task_return_error (task, error);
  g_object_unref (task);
}

/* Waiting for a restart blocks, so an asynchronous call waits in a worker
 * thread of GIO's, never in the caller's main context. */
static void
helper_call_thread (GTask        *task,
                    gpointer      source_object,
                    gpointer      task_data,
                    GCancellable *cancellable)
{
  HelperCall *call = task_data;
  GError *error = NULL;

  call->reply = peer_helper_call_sync (source_object, call->object_path, call->interface_name,
                                       call->method_name, call->parameters,
                                       call->reply_type, call->timeout_ms, call->fd_list,
                                       &call->out_fd_list, cancellable, &error);
  g_clear_object (&call->fd_list);
  if (call->reply == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

void
peer_helper_call (PeerHelper          *self,
                  const char          *object_path,
                  const char          *interface_name,
                  const char          *method_name,
                  GVariant            *parameters,
                  const GVariantType  *reply_type,
                  int                  timeout_ms,
                  GUnixFDList         *fd_list,
                  GCancellable        *cancellable,
                  GAsyncReadyCallback  callback,
                  gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(PeerClient) client = NULL;
  HelperCall *call;

  g_return_if_fail (PEER_IS_HELPER (self));
  g_return_if_fail (object_path != NULL && method_name != NULL);

  call = g_new0 (HelperCall, 1);
  call->object_path = g_strdup (object_path);
  call->interface_name = g_strdup (interface_name);
  call->method_name = g_strdup (method_name);
  call->parameters = parameters != NULL ? g_variant_ref_sink (parameters) : NULL;
  call->reply_type = reply_type != NULL ? g_variant_type_copy (reply_type) : NULL;
  call->timeout_ms = timeout_ms;
  call->fd_list = fd_list != NULL ? g_object_ref (fd_list) : NULL;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_helper_call);
  g_task_set_task_data (task, call, (GDestroyNotify) helper_call_free);

  /* The helper runs (the common case): straight to its client's own
   * asynchronous call, with no thread. Only waiting for a start or a
   * restart, which blocks, takes a worker thread. */
  g_mutex_lock (&self->lock);
  if (self->state == HELPER_RUNNING)
    {
      client = g_object_ref (self->client);
      call->generation = self->generation;
    }
  g_mutex_unlock (&self->lock);
  if (client != NULL)
    {
      peer_client_call (client, object_path, interface_name, method_name, call->parameters, reply_type,
                        timeout_ms, call->fd_list, cancellable, on_direct_call_done, g_object_ref (task));
      g_clear_object (&call->fd_list);
      return;
    }
  g_task_run_in_thread (task, helper_call_thread);
}

GVariant *
peer_helper_call_finish (PeerHelper    *self,
                         GUnixFDList  **out_fd_list,
                         GAsyncResult  *result,
                         GError       **error)
{
  HelperCall *call;

  g_return_val_if_fail (PEER_IS_HELPER (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  if (!g_task_propagate_boolean (G_TASK (result), error))
    return NULL;
  call = g_task_get_task_data (G_TASK (result));
  if (out_fd_list != NULL)
    *out_fd_list = g_steal_pointer (&call->out_fd_list);
  return g_steal_pointer (&call->reply);
}

GPid
peer_helper_get_pid (PeerHelper *self)
{
  GPid pid;

  g_return_val_if_fail (PEER_IS_HELPER (self), 0);

  g_mutex_lock (&self->lock);
  pid = self->pid;
  g_mutex_unlock (&self->lock);
  return pid;
}

guint
peer_helper_get_n_restarts (PeerHelper *self)
{
  guint n;

  g_return_val_if_fail (PEER_IS_HELPER (self), 0);

  g_mutex_lock (&self->lock);
  n = self->n_restarts;
  g_mutex_unlock (&self->lock);
  return n;
}

GError *
peer_helper_dup_exit_reason (PeerHelper *self)
{
  GError *reason;

  g_return_val_if_fail (PEER_IS_HELPER (self), NULL);

  g_mutex_lock (&self->lock);
  reason = self->exit_reason != NULL ? g_error_copy (self->exit_reason) : NULL;
  g_mutex_unlock (&self->lock);
  return reason;
}

void
peer_helper_stop (PeerHelper *self)
{
  GThread *supervisor;

  g_return_if_fail (PEER_IS_HELPER (self));

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
