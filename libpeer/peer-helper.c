/* peer-helper.c: an application's helper as a GObject: its public API,
 * its signals, and its call surface (the PeerClient of the running
 * helper, and the calls that wait for a start or a restart and explain a
 * disconnection by the helper's exit).
 *
 * The process itself, from its spawn to its reaping, is the supervisor's
 * (peer-helper-process.c), in a thread of its own: this side only waits
 * on the state it publishes under @lock, wraps the connections it hands
 * up, and asks it to start, terminate and stop the helper
 * (peer-helper-private.h).
 */
#include "config.h"

#include "peer-error.h"
#include "peer-helper-private.h"
#include "peer-sandbox-private.h"

#define PEER_HELPER_DEFAULT_TIMEOUT_MS 25000
/* How long a failed call waits for the exit status that explains it. */
#define PEER_HELPER_EXIT_WAIT_MS 5000

enum { SIGNAL_STARTED, SIGNAL_EXITED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (PeerHelper, peer_helper, G_TYPE_OBJECT)

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

void
_peer_helper_emit_started (PeerHelper *self,
                           GPid        pid)
{
  emit_later (self, signals[SIGNAL_STARTED], pid, NULL);
}

void
_peer_helper_emit_exited (PeerHelper   *self,
                          const GError *reason)
{
  emit_later (self, signals[SIGNAL_EXITED], 0, reason);
}

/* --- the helper's connection -------------------------------------------- */

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
    _peer_helper_terminate_process (self);
  g_signal_handlers_disconnect_by_func (client, on_client_closed, self);
  g_ptr_array_remove_fast (self->open_clients, client);
}

PeerClient *
_peer_helper_open_client (PeerHelper      *self,
                          GDBusConnection *connection)
{
  PeerClient *client;

  client = peer_client_new_for_connection (connection);
  g_signal_connect (client, "closed", G_CALLBACK (on_client_closed), self);
  g_ptr_array_add (self->open_clients, g_object_ref (client));
  g_dbus_connection_start_message_processing (connection);
  return client;
}

gboolean
_peer_helper_has_open_clients (PeerHelper *self)
{
  return self->open_clients->len > 0;
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
  if (!_peer_helper_start_supervisor (self, error))
    return NULL;                        /* the thread has ended; dispose joins it */
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
  g_return_if_fail (PEER_IS_HELPER (self));

  _peer_helper_stop_supervisor (self);
}
