/* peer-client.c: connecting to a peer server, and the PeerClient itself.
 *
 * The GObject: its connecting (peer_client_new(), peer_client_new_sync(),
 * peer_client_new_for_connection()), its lifetime (the connection's
 * "closed", dispose, finalize), its state and the opening of its lane.
 * Calling the server, and the limits calls are checked against, is
 * peer-client-calls.c's; signal subscriptions are peer-client-signals.c's.
 * The instance struct and what the three files share are in
 * peer-client-private.h.
 */
#include "config.h"

#include <string.h>

#include "peer-blob.h"
#include "peer-client.h"
#include "peer-error.h"
#include "peer-client-private.h"
#include "peer-debug-private.h"
#include "peer-lane-private.h"

#define PEER_CLIENT_DEFAULT_TIMEOUT_MS 25000

enum { SIGNAL_CLOSED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (PeerClient, peer_client, G_TYPE_OBJECT)

/* Callbacks GDBus runs in other threads or contexts hold the client
 * weakly, and a strong reference while they run: its last reference may
 * go on any thread meanwhile. */
static GWeakRef *
weak_client_new (PeerClient *self)
{
  GWeakRef *ref = g_new0 (GWeakRef, 1);

  g_weak_ref_init (ref, self);
  return ref;
}

static void
weak_client_free (gpointer  data,
                  GClosure *closure)
{
  g_weak_ref_clear (data);
  g_free (data);
}

/* In the connection's context. */
static void
on_connection_closed (GDBusConnection *connection,
                      gboolean         remote_peer_vanished,
                      GError          *error,
                      GWeakRef        *weak_self)
{
  g_autoptr(PeerClient) self = g_weak_ref_get (weak_self);
  g_autoptr(GError) reason = NULL;
  PeerLaneClient *lane;

  if (self == NULL)
    return;
  g_mutex_lock (&self->lock);
  if (self->close_reason == NULL)
    {
      if (!remote_peer_vanished)
        self->close_reason = g_error_new_literal (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                                  "Connection closed by this side");
      else if (error != NULL)
        self->close_reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                          "The peer went away: %s", error->message);
      else
        self->close_reason = g_error_new_literal (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                                  "The peer went away");
    }
  reason = g_error_copy (self->close_reason);
  g_mutex_unlock (&self->lock);

  g_debug ("libpeer: client connection closed: %s", reason->message);
  /* The lane is bound to the connection: calls waiting on it end now. */
  lane = g_atomic_pointer_get (&self->lane);
  if (lane != NULL)
    _peer_lane_client_shutdown (lane);
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0, reason);
}

static void
peer_client_dispose (GObject *object)
{
  PeerClient *self = PEER_CLIENT (object);

  /* The lane's reader delivers to none of them any more (GDBus ends
   * them as the connection goes). */
  g_mutex_lock (&self->lock);
  g_clear_pointer (&self->lane_subscriptions, g_ptr_array_unref);
  g_mutex_unlock (&self->lock);
  if (self->connection != NULL)
    {
      _peer_client_clear_signal_switch (self, self->connection);
      g_clear_signal_handler (&self->closed_handler, self->connection);
      if (!g_dbus_connection_is_closed (self->connection))
        g_dbus_connection_close (self->connection, NULL, NULL, NULL);
      g_clear_object (&self->connection);
    }

  G_OBJECT_CLASS (peer_client_parent_class)->dispose (object);
}

static void
peer_client_finalize (GObject *object)
{
  PeerClient *self = PEER_CLIENT (object);

  g_clear_error (&self->close_reason);
  /* Every asynchronous lane call holds a reference on us until its end has
   * run in its caller's context: none is in flight here. */
  g_clear_pointer (&self->lane, _peer_lane_client_free);
  g_clear_pointer (&self->lane_subscriptions, g_ptr_array_unref);
  _peer_client_clear_signal_switch (self, NULL);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (peer_client_parent_class)->finalize (object);
}

static void
peer_client_class_init (PeerClientClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = peer_client_dispose;
  object_class->finalize = peer_client_finalize;

  /* Registers org.libpeer.Error.* so remote errors map back to PEER_ERROR. */
  (void) PEER_ERROR;

  /**
   * PeerClient::closed:
   * @self: the client
   * @reason: (transfer none): why, in PEER_ERROR_DISCONNECTED
   *
   * Emitted once, in the main context the client was created in.
   */
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
peer_client_init (PeerClient *self)
{
  g_mutex_init (&self->lock);
  self->blob_threshold = PEER_BLOB_DEFAULT_THRESHOLD;
  self->max_message_size = G_MAXUINT;
  self->max_fds = G_MAXUINT;
}

PeerClient *
peer_client_new_for_connection (GDBusConnection *connection)
{
  PeerClient *self;

  g_return_val_if_fail (G_IS_DBUS_CONNECTION (connection), NULL);

  self = g_object_new (PEER_TYPE_CLIENT, NULL);
  self->connection = g_object_ref (connection);
  _peer_debug_watch_connection (connection, "client");
  g_dbus_connection_set_exit_on_close (connection, FALSE);
  self->closed_handler = g_signal_connect_data (connection, "closed", G_CALLBACK (on_connection_closed),
                                                weak_client_new (self), weak_client_free, 0);
  self->processing_started = TRUE;
  return self;
}

void
_peer_client_ensure_processing (PeerClient *self)
{
  if (g_atomic_int_compare_and_exchange (&self->processing_started, FALSE, TRUE))
    g_dbus_connection_start_message_processing (self->connection);
}

static gboolean
on_start_processing_idle (gpointer user_data)
{
  _peer_client_ensure_processing (user_data);
  return G_SOURCE_REMOVE;
}

/* Wraps a connection libpeer created frozen. */
static PeerClient *
peer_client_new_frozen (GDBusConnection *connection)
{
  PeerClient *self = peer_client_new_for_connection (connection);
  GSource *idle;

  self->processing_started = FALSE;
  idle = g_idle_source_new ();
  g_source_set_callback (idle, on_start_processing_idle, g_object_ref (self), g_object_unref);
  g_source_set_static_name (idle, "[libpeer] start message processing");
  g_source_attach (idle, g_main_context_get_thread_default ());
  g_source_unref (idle);
  return self;
}

static gboolean
check_address (const char *address,
               GError    **error)
{
  g_autoptr(GError) local_error = NULL;

  if (address == NULL || address[0] == '\0' || !g_dbus_is_supported_address (address, &local_error))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "Invalid address '%s': %s",
                   address ? address : "(null)",
                   local_error ? local_error->message : "no address");
      return FALSE;
    }
  return TRUE;
}

/* Turns GDBus's connect errors into one line that names the address. */
static void
prefix_connect_error (GError    **error,
                      const char *address,
                      gboolean    timed_out,
                      int         timeout_ms)
{
  if (error == NULL || *error == NULL)
    return;
  if (timed_out)
    {
      g_clear_error (error);
      g_set_error (error, PEER_ERROR, PEER_ERROR_TIMED_OUT,
                   "Timed out after %d ms connecting to %s", timeout_ms, address);
    }
  else if (!g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      /* GDBus's words for "the server hung up during authentication",
       * which is what a server does to a peer its policy refuses. */
      if (strstr ((*error)->message, "Unexpected lack of content") != NULL)
        {
          g_clear_error (error);
          g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                       "Cannot connect to %s: the server closed the connection during "
                       "authentication (not allowed by its policy?)", address);
        }
      else
        g_prefix_error (error, "Cannot connect to %s: ", address);
    }
}

/* --- async connect ------------------------------------------------------ */

typedef struct {
  char *address;
  int timeout_ms;
  GCancellable *cancellable;            /* ours: the caller's or the timeout cancel it */
  gulong parent_handler;
  GCancellable *parent;
  GSource *timeout;
  gboolean timed_out;
} ConnectData;

static void
connect_data_free (ConnectData *data)
{
  if (data->parent != NULL)
    {
      g_cancellable_disconnect (data->parent, data->parent_handler);
      g_object_unref (data->parent);
    }
  if (data->timeout != NULL)
    {
      g_source_destroy (data->timeout);
      g_source_unref (data->timeout);
    }
  g_object_unref (data->cancellable);
  g_free (data->address);
  g_free (data);
}

static gboolean
on_connect_timeout (gpointer user_data)
{
  ConnectData *data = user_data;

  data->timed_out = TRUE;
  g_cancellable_cancel (data->cancellable);
  return G_SOURCE_REMOVE;
}

static void
on_parent_cancelled (GCancellable *parent,
                     GCancellable *ours)
{
  g_cancellable_cancel (ours);
}

static void
on_connected (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  ConnectData *data = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) connection = NULL;

  connection = g_dbus_connection_new_for_address_finish (result, &error);
  if (connection == NULL)
    {
      prefix_connect_error (&error, data->address, data->timed_out, data->timeout_ms);
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  g_task_return_pointer (task, peer_client_new_frozen (connection), g_object_unref);
}

void
peer_client_new (const char          *address,
                 int                  timeout_ms,
                 GCancellable        *cancellable,
                 GAsyncReadyCallback  callback,
                 gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GError) error = NULL;
  ConnectData *data;

  g_return_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable));

  task = g_task_new (NULL, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_client_new);
  if (!check_address (address, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  data = g_new0 (ConnectData, 1);
  data->address = g_strdup (address);
  data->timeout_ms = timeout_ms < 0 ? PEER_CLIENT_DEFAULT_TIMEOUT_MS : timeout_ms;
  data->cancellable = g_cancellable_new ();
  if (cancellable != NULL)
    {
      data->parent = g_object_ref (cancellable);
      data->parent_handler = g_cancellable_connect (cancellable, G_CALLBACK (on_parent_cancelled),
                                                    data->cancellable, NULL);
    }
  data->timeout = g_timeout_source_new (data->timeout_ms);
  g_source_set_callback (data->timeout, on_connect_timeout, data, NULL);
  g_source_set_static_name (data->timeout, "[libpeer] connect timeout");
  g_source_attach (data->timeout, g_main_context_get_thread_default ());
  g_task_set_task_data (task, data, (GDestroyNotify) connect_data_free);

  g_dbus_connection_new_for_address (address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                     G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                                     NULL, data->cancellable, on_connected,
                                     g_steal_pointer (&task));
}

PeerClient *
peer_client_new_finish (GAsyncResult *result,
                        GError      **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* --- sync connect ------------------------------------------------------- */

/* The sync path builds the GDBusConnection in the calling thread so that it
 * belongs to the caller's main context (where "closed" is delivered); the
 * deadline is a small thread that cancels the handshake. */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean done;
  gboolean fired;
  gint64 deadline;
  GCancellable *cancellable;
} Deadline;

static gpointer
deadline_thread (gpointer user_data)
{
  Deadline *d = user_data;

  g_mutex_lock (&d->lock);
  while (!d->done)
    if (!g_cond_wait_until (&d->cond, &d->lock, d->deadline))
      {
        if (!d->done)
          {
            d->fired = TRUE;
            g_cancellable_cancel (d->cancellable);
          }
        break;
      }
  g_mutex_unlock (&d->lock);
  return NULL;
}

PeerClient *
peer_client_new_sync (const char   *address,
                      int           timeout_ms,
                      GCancellable *cancellable,
                      GError      **error)
{
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GCancellable) ours = g_cancellable_new ();
  Deadline d = { 0 };
  GThread *thread;
  gulong handler = 0;

  g_return_val_if_fail (cancellable == NULL || G_IS_CANCELLABLE (cancellable), NULL);

  if (!check_address (address, error))
    return NULL;
  if (timeout_ms < 0)
    timeout_ms = PEER_CLIENT_DEFAULT_TIMEOUT_MS;

  g_mutex_init (&d.lock);
  g_cond_init (&d.cond);
  d.cancellable = ours;
  d.deadline = g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
  if (cancellable != NULL)
    handler = g_cancellable_connect (cancellable, G_CALLBACK (on_parent_cancelled), ours, NULL);
  thread = g_thread_new ("peer-connect-deadline", deadline_thread, &d);

  connection = g_dbus_connection_new_for_address_sync (address,
                                                       G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                       G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                                                       NULL, ours, &local_error);

  g_mutex_lock (&d.lock);
  d.done = TRUE;
  g_cond_signal (&d.cond);
  g_mutex_unlock (&d.lock);
  g_thread_join (thread);
  if (cancellable != NULL)
    g_cancellable_disconnect (cancellable, handler);
  g_mutex_clear (&d.lock);
  g_cond_clear (&d.cond);

  if (connection == NULL)
    {
      prefix_connect_error (&local_error, address, d.fired, timeout_ms);
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }
  return peer_client_new_frozen (connection);
}

/* --- state -------------------------------------------------------------- */

GDBusConnection *
peer_client_get_connection (PeerClient *self)
{
  g_return_val_if_fail (PEER_IS_CLIENT (self), NULL);
  return self->connection;
}

GDBusConnection *
peer_client_get_dbus_connection (PeerClient *self)
{
  g_return_val_if_fail (PEER_IS_CLIENT (self), NULL);
  _peer_client_ensure_processing (self);
  return self->connection;
}

gboolean
peer_client_is_closed (PeerClient *self)
{
  g_return_val_if_fail (PEER_IS_CLIENT (self), TRUE);
  return g_dbus_connection_is_closed (self->connection);
}

GError *
peer_client_dup_close_reason (PeerClient *self)
{
  GError *reason;

  g_return_val_if_fail (PEER_IS_CLIENT (self), NULL);

  g_mutex_lock (&self->lock);
  reason = self->close_reason != NULL ? g_error_copy (self->close_reason) : NULL;
  g_mutex_unlock (&self->lock);
  return reason;
}

void
peer_client_close (PeerClient *self)
{
  g_return_if_fail (PEER_IS_CLIENT (self));

  g_mutex_lock (&self->lock);
  if (self->close_reason == NULL)
    self->close_reason = g_error_new_literal (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                              "Connection closed by this side");
  g_mutex_unlock (&self->lock);
  g_dbus_connection_close (self->connection, NULL, NULL, NULL);
}

gboolean
peer_client_can_pass_fds (PeerClient *self)
{
  g_return_val_if_fail (PEER_IS_CLIENT (self), FALSE);
  return (g_dbus_connection_get_capabilities (self->connection) &
          G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING) != 0;
}

/* --- the lane ----------------------------------------------------------- */

gboolean
peer_client_open_lane_sync (PeerClient   *self,
                            GCancellable *cancellable,
                            GError      **error)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GError) local_error = NULL;
  PeerLaneClient *lane;

  g_return_val_if_fail (PEER_IS_CLIENT (self), FALSE);

  if (g_atomic_pointer_get (&self->lane) != NULL)
    return TRUE;
  if (!(g_dbus_connection_get_capabilities (self->connection) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING))
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                           "A lane needs fd passing, which this connection did not negotiate");
      return FALSE;
    }

  _peer_client_ensure_processing (self);
  reply = g_dbus_connection_call_with_unix_fd_list_sync (self->connection, NULL, PEER_LANE_PATH,
                                                         PEER_LANE_INTERFACE, "Open", NULL,
                                                         G_VARIANT_TYPE ("(ha(usssssu)a{sv})"),
                                                         G_DBUS_CALL_FLAGS_NONE, -1, NULL, &fd_list,
                                                         cancellable, &local_error);
  if (reply == NULL)
    {
      _peer_client_fix_call_error (self, &local_error);
      g_propagate_prefixed_error (error, g_steal_pointer (&local_error), "Cannot open a lane: ");
      return FALSE;
    }
  lane = _peer_lane_client_new (reply, fd_list, error);
  if (lane == NULL)
    return FALSE;
  if (!g_atomic_pointer_compare_and_exchange (&self->lane, NULL, lane))
    {
      /* Another thread opened one first. */
      _peer_lane_client_free (lane);
      return TRUE;
    }
  if (g_dbus_connection_is_closed (self->connection))
    _peer_lane_client_shutdown (lane);
  g_debug ("libpeer: lane open with %u methods", _peer_lane_client_get_n_methods (self->lane));
  _peer_client_take_lane_signals (self);
  return TRUE;
}

gboolean
peer_client_has_lane (PeerClient *self)
{
  PeerLaneClient *lane;

  g_return_val_if_fail (PEER_IS_CLIENT (self), FALSE);

  lane = g_atomic_pointer_get (&self->lane);
  return lane != NULL && !_peer_lane_client_is_closed (lane);
}

PeerLaneClient *
_peer_client_get_lane (PeerClient *self)
{
  return g_atomic_pointer_get (&self->lane);
}
