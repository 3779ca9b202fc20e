/* peer-client-calls.c: a PeerClient's calls.
 *
 * Synchronous, serialized and asynchronous calls: on the lane when it
 * serves them (by its table or by name), else on the connection, as blob
 * calls when the server takes them, within the limits the server gives
 * (asked once, when they start to matter). The PeerClient itself, its
 * connecting and its lane's opening are peer-client.c's; its signals are
 * peer-client-signals.c's. What the three share is in
 * peer-client-private.h.
 */
#include "config.h"

#include "peer-client-private.h"
#include "peer-error.h"
#include "peer-lane-private.h"
#include "peer-wire-private.h"

/* --- calls -------------------------------------------------------------- */

/* Remote errors come back as the GError the server sent; a closed
 * connection as PEER_ERROR_DISCONNECTED with the reason when it is known. */
void
_peer_client_fix_call_error (PeerClient *self,
                             GError    **error)
{
  if (error == NULL || *error == NULL)
    return;
  if (g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CLOSED))
    {
      g_autoptr(GError) reason = peer_client_dup_close_reason (self);

      g_clear_error (error);
      if (reason != NULL)
        g_propagate_error (error, g_steal_pointer (&reason));
      else
        g_set_error_literal (error, PEER_ERROR, PEER_ERROR_DISCONNECTED,
                             "The peer went away before replying");
      return;
    }
  /* Names that map to a registered domain come back as that domain's
   * GError, message as sent. Unmapped names (G_IO_ERROR_DBUS_ERROR) keep
   * GDBus's prefix: it is the only place the name survives, for
   * g_dbus_error_get_remote_error(). */
  if (!g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_DBUS_ERROR))
    g_dbus_error_strip_remote_error (*error);
}

/* Refused here rather than in GDBus's worker, which would drop the whole
 * connection over it. */
static gboolean
check_can_send_fds (PeerClient  *self,
                    GUnixFDList *fd_list,
                    GError     **error)
{
  if (fd_list == NULL || g_unix_fd_list_get_length (fd_list) == 0 || peer_client_can_pass_fds (self))
    return TRUE;
  g_set_error_literal (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                       "Cannot send file descriptors: the connection did not negotiate fd passing");
  return FALSE;
}

static void
record_features (PeerClient   *self,
                 GVariant     *reply,
                 const GError *error)
{
  /* An answer that never came says nothing about the server: ask again. */
  if (reply == NULL &&
      (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED) ||
       g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CLOSED) ||
       g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT)))
    return;
  guint32 max_message_size, max_fds;

  /* The limits first: a thread that sees blob_calls known reads them. */
  _peer_wire_features_get_limits (reply, &max_message_size, &max_fds);
  g_atomic_int_set (&self->max_message_size, max_message_size);
  g_atomic_int_set (&self->max_fds, max_fds);
  g_atomic_int_set (&self->blob_calls,
                    _peer_wire_features_have_blob_call (reply) ? BLOB_CALLS_YES : BLOB_CALLS_NO);
  g_debug ("libpeer: the server %s blob calls; its limits: %u bytes, %u fds a message",
           g_atomic_int_get (&self->blob_calls) == BLOB_CALLS_YES ? "takes" : "does not take",
           max_message_size, max_fds);
}

/* --- the server's limits, before a byte is written --------------------- */

/* The D-Bus protocol's own limit on a whole message, for a server that
 * does not say what it takes: GDBus at the other end refuses a larger one
 * by closing the connection. */
#define DBUS_MAX_MESSAGE_SIZE (128 * 1024 * 1024)

/* A call this large, or with this many fds, is where a server's limits
 * start to matter (libpeer's defaults are 4 MiB and 16 fds; a server set
 * lower answers what is over with LimitExceeded): the first such call asks
 * the server for its limits, once per connection, so that smaller calls
 * never pay the round trip. */
#define LIMITS_MATTER_SIZE (64 * 1024)
#define LIMITS_MATTER_FDS  16

static gboolean
limits_matter (GVariant    *parameters,
               GUnixFDList *fd_list)
{
  return (parameters != NULL && g_variant_get_size (parameters) >= LIMITS_MATTER_SIZE) ||
         (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > LIMITS_MATTER_FDS);
}

/* The largest body the server takes, as it said, or what D-Bus allows. */
static gsize
max_body_size (PeerClient *self)
{
  return MIN ((guint) g_atomic_int_get (&self->max_message_size), DBUS_MAX_MESSAGE_SIZE);
}

/* The blob threshold for a call: the caller's, or, when the call's body is
 * over what the server takes and blobs are on, low enough that its large
 * `ay` arguments go as blobs and what stays in the message fits. */
static gsize
threshold_to_fit (PeerClient *self,
                  GVariant   *parameters,
                  gsize       threshold)
{
  if (threshold != 0 && parameters != NULL && g_variant_get_size (parameters) > max_body_size (self))
    return MIN (threshold, LIMITS_MATTER_SIZE);
  return threshold;
}

/* Refuses, before anything is written, a message the server would refuse
 * (or, past D-Bus's own limit, close the connection over). */
static gboolean
check_within_limits (PeerClient  *self,
                     GVariant    *body,
                     GUnixFDList *fd_list,
                     GError     **error)
{
  guint max_fds = (guint) g_atomic_int_get (&self->max_fds);
  guint n_fds = fd_list != NULL ? (guint) g_unix_fd_list_get_length (fd_list) : 0;
  gsize size = body != NULL ? g_variant_get_size (body) : 0;

  if (size > max_body_size (self))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                   "The call's arguments are %" G_GSIZE_FORMAT " bytes; %s takes at most %" G_GSIZE_FORMAT
                   " in a message",
                   size, (guint) g_atomic_int_get (&self->max_message_size) <= DBUS_MAX_MESSAGE_SIZE ? "the server" : "D-Bus",
                   max_body_size (self));
      return FALSE;
    }
  if (n_fds > max_fds)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                   "The call carries %u file descriptors; the server takes at most %u in a message",
                   n_fds, max_fds);
      return FALSE;
    }
  return TRUE;
}

/* A reply's type, checked as GDBus checks the replies it reads, in its
 * words: a call that went by name over the lane fails the way it would
 * have on the connection. */
static gboolean
check_reply_type (GVariant           *reply,
                  const char         *method_name,
                  const GVariantType *reply_type,
                  GError            **error)
{
  g_autofree char *type_string = NULL;

  if (reply_type == NULL || g_variant_is_of_type (reply, reply_type))
    return TRUE;
  type_string = g_variant_type_dup_string (reply_type);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               g_dgettext ("glib20", "Method “%s” returned type “%s”, but expected “%s”"),
               method_name, g_variant_get_type_string (reply), type_string);
  return FALSE;
}

/* Whether this call would go as a blob call, before knowing whether the
 * server takes them. */
static gboolean
wants_blob_call (PeerClient *self,
                 const char *interface_name,
                 GVariant   *parameters,
                 gsize       threshold)
{
  return g_atomic_int_get (&self->blob_calls) != BLOB_CALLS_NO &&
         _peer_wire_wants_blob_call (interface_name, parameters, threshold) &&
         peer_client_can_pass_fds (self);
}

/* How a call goes on the D-Bus path, decided before anything is written:
 * as a blob call (*@out_message set, (transfer full)) when its large `ay`
 * arguments want one and the server takes them, else as a plain call
 * (*@out_message NULL); either way within the server's limits. FALSE with
 * @error when it cannot go at all. */
static gboolean
prepare_dbus_call (PeerClient    *self,
                   const char    *object_path,
                   const char    *interface_name,
                   const char    *method_name,
                   GVariant      *parameters,
                   GUnixFDList   *fd_list,
                   gsize          threshold,
                   GDBusMessage **out_message,
                   GError       **error)
{
  g_autoptr(GDBusMessage) message = NULL;

  *out_message = NULL;
  threshold = threshold_to_fit (self, parameters, threshold);
  /* A blob call needs both ends: this is where GetFeatures's answer
   * counts. */
  if (!wants_blob_call (self, interface_name, parameters, threshold) ||
      g_atomic_int_get (&self->blob_calls) != BLOB_CALLS_YES)
    return check_within_limits (self, parameters, fd_list, error);

  message = _peer_wire_new_blob_call (object_path, interface_name, method_name, parameters,
                                      fd_list, threshold, error);
  if (message == NULL ||
      !check_within_limits (self, g_dbus_message_get_body (message),
                            g_dbus_message_get_unix_fd_list (message), error))
    return FALSE;
  *out_message = g_steal_pointer (&message);
  return TRUE;
}

/* The client's lane, if any: one whose connection is closed is shut down
 * first (the lane lives no longer than the connection, even in the
 * moment before the connection's "closed" signal is delivered). */
static PeerLaneClient *
live_lane (PeerClient *self)
{
  PeerLaneClient *lane = g_atomic_pointer_get (&self->lane);

  if (lane != NULL && g_dbus_connection_is_closed (self->connection))
    _peer_lane_client_shutdown (lane);
  return lane;
}

GVariant *
peer_client_call_sync (PeerClient          *self,
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
  g_autoptr(GVariant) owned = NULL;
  g_autoptr(GDBusMessage) message = NULL;
  GError *local_error = NULL;
  GVariant *reply = NULL;
  PeerLaneClient *lane;
  guint32 lane_id;
  gsize threshold;

  g_return_val_if_fail (PEER_IS_CLIENT (self), NULL);
  g_return_val_if_fail (object_path != NULL && method_name != NULL, NULL);
  g_return_val_if_fail (fd_list == NULL || G_IS_UNIX_FD_LIST (fd_list), NULL);

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  /* g_variant_ref_sink() without its lock: the caller owns a floating
   * value, so nobody else sinks it meanwhile. */
  if (parameters != NULL)
    owned = g_variant_is_floating (parameters) ? g_variant_take_ref (parameters) : g_variant_ref (parameters);
  if (!check_can_send_fds (self, fd_list, error))
    return NULL;

  lane = live_lane (self);
  /* Names that match the lane's table exactly are valid: the name checks
   * below (a few hundred instructions a call) are for the other paths. */
  if (lane != NULL && _peer_lane_client_has_method (lane, object_path, interface_name, method_name, &lane_id))
    {
      reply = _peer_lane_client_call (lane, lane_id, owned, reply_type, timeout_ms, fd_list, out_fd_list,
                                      cancellable, &local_error);
      if (reply != NULL || !g_error_matches (local_error, PEER_LANE_ERROR, PEER_LANE_ERROR_NOT_SERVED))
        {
          if (reply == NULL)
            g_propagate_error (error, local_error);
          return reply;
        }
      /* Unexported since the lane opened: by name, or on the connection. */
      g_clear_error (&local_error);
    }

  g_return_val_if_fail (g_variant_is_object_path (object_path), NULL);
  g_return_val_if_fail (interface_name == NULL || g_dbus_is_interface_name (interface_name), NULL);
  g_return_val_if_fail (g_dbus_is_member_name (method_name), NULL);

  /* The rest of what the lane serves, by name; what it does not serve
   * (nothing of it ran then) goes on the connection. */
  if (lane != NULL && _peer_lane_client_serves_by_name (lane, interface_name))
    {
      reply = _peer_lane_client_call_by_name (lane, object_path, interface_name, method_name, owned, timeout_ms,
                                              fd_list, out_fd_list, cancellable, &local_error);
      if (reply != NULL && !check_reply_type (reply, method_name, reply_type, &local_error))
        {
          g_clear_pointer (&reply, g_variant_unref);
          if (out_fd_list != NULL)
            g_clear_object (out_fd_list);
        }
      if (reply != NULL || !g_error_matches (local_error, PEER_LANE_ERROR, PEER_LANE_ERROR_NOT_SERVED))
        {
          if (reply == NULL)
            g_propagate_error (error, local_error);
          return reply;
        }
      g_clear_error (&local_error);
    }
  _peer_client_ensure_processing (self);

  threshold = (gsize) g_atomic_pointer_get (&self->blob_threshold);
  if (g_atomic_int_get (&self->blob_calls) == BLOB_CALLS_UNKNOWN &&
      (wants_blob_call (self, interface_name, owned, threshold) || limits_matter (owned, fd_list)))
    {
      g_autoptr(GVariant) features = NULL;
      g_autoptr(GError) features_error = NULL;

      features = g_dbus_connection_call_sync (self->connection, NULL, PEER_WIRE_PATH,
                                              PEER_WIRE_INTERFACE, "GetFeatures", NULL,
                                              G_VARIANT_TYPE ("(a{sv})"), G_DBUS_CALL_FLAGS_NONE,
                                              timeout_ms, cancellable, &features_error);
      record_features (self, features, features_error);
    }
  if (prepare_dbus_call (self, object_path, interface_name, method_name, owned, fd_list, threshold,
                         &message, &local_error))
    {
      if (message != NULL)
        {
          g_autoptr(GDBusMessage) reply_message = NULL;

          reply_message = g_dbus_connection_send_message_with_reply_sync (self->connection, message,
                                                                          G_DBUS_SEND_MESSAGE_FLAGS_NONE,
                                                                          timeout_ms, NULL, cancellable,
                                                                          &local_error);
          if (reply_message != NULL)
            reply = _peer_wire_finish_blob_call (reply_message, reply_type, out_fd_list, &local_error);
        }
      else
        reply = g_dbus_connection_call_with_unix_fd_list_sync (self->connection, NULL, object_path,
                                                               interface_name, method_name, owned,
                                                               reply_type, G_DBUS_CALL_FLAGS_NONE,
                                                               timeout_ms, fd_list, out_fd_list,
                                                               cancellable, &local_error);
    }
  if (reply == NULL)
    {
      _peer_client_fix_call_error (self, &local_error);
      g_propagate_error (error, local_error);
    }
  return reply;
}

GBytes *
peer_client_call_serialized_sync (PeerClient         *self,
                                  const char         *object_path,
                                  const char         *interface_name,
                                  const char         *method_name,
                                  const GVariantType *parameters_type,
                                  gconstpointer       parameters_data,
                                  gsize               parameters_size,
                                  const GVariantType *reply_type,
                                  int                 timeout_ms,
                                  GUnixFDList        *fd_list,
                                  GUnixFDList       **out_fd_list,
                                  GCancellable       *cancellable,
                                  GError            **error)
{
  g_autoptr(GVariant) parameters = NULL;
  g_autoptr(GVariant) reply = NULL;
  PeerLaneClient *lane;
  guint32 lane_id;

  g_return_val_if_fail (PEER_IS_CLIENT (self), NULL);
  g_return_val_if_fail (object_path != NULL && method_name != NULL, NULL);
  g_return_val_if_fail (parameters_type != NULL && g_variant_type_is_definite (parameters_type) &&
                        g_variant_type_is_tuple (parameters_type), NULL);
  g_return_val_if_fail (parameters_data != NULL || parameters_size == 0, NULL);
  g_return_val_if_fail (reply_type != NULL && g_variant_type_is_definite (reply_type) &&
                        g_variant_type_is_tuple (reply_type), NULL);
  g_return_val_if_fail (fd_list == NULL || G_IS_UNIX_FD_LIST (fd_list), NULL);

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  lane = live_lane (self);
  if (lane != NULL && _peer_lane_client_has_method (lane, object_path, interface_name, method_name, &lane_id))
    {
      GError *local_error = NULL;
      GBytes *body;

      if (!check_can_send_fds (self, fd_list, error))
        return NULL;
      body = _peer_lane_client_call_serialized (lane, lane_id, parameters_type, parameters_data, parameters_size,
                                                reply_type, timeout_ms, fd_list, out_fd_list, cancellable,
                                                &local_error);
      if (body != NULL || !g_error_matches (local_error, PEER_LANE_ERROR, PEER_LANE_ERROR_NOT_SERVED))
        {
          if (body == NULL)
            g_propagate_error (error, local_error);
          return body;
        }
      /* Unexported since the lane opened: as a value, by name or on the
       * connection. */
      g_clear_error (&local_error);
    }

  /* GLib would read bytes that are not in normal form as some other
   * value and send that: refused, as the server refuses them on a lane. */
  parameters = g_variant_ref_sink (g_variant_new_from_data (parameters_type, parameters_data, parameters_size,
                                                            FALSE, NULL, NULL));
  if (!g_variant_is_normal_form (parameters))
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                   "The arguments of %s are not a value of type '%s' in normal form", method_name,
                   g_variant_type_peek_string (parameters_type));
      return NULL;
    }
  reply = peer_client_call_sync (self, object_path, interface_name, method_name, parameters, reply_type,
                                 timeout_ms, fd_list, out_fd_list, cancellable, error);
  if (reply == NULL)
    return NULL;
  return g_variant_get_data_as_bytes (reply);
}

typedef struct {
  GVariant *reply;
  GUnixFDList *fd_list;
} CallResult;

static void
call_result_free (CallResult *result)
{
  g_clear_pointer (&result->reply, g_variant_unref);
  g_clear_object (&result->fd_list);
  g_free (result);
}

/* An async call, kept while the server is asked about blob calls. */
typedef struct {
  char *object_path;
  char *interface_name;
  char *method_name;
  GVariant *parameters;                 /* nullable; dropped once sent */
  GVariantType *reply_type;             /* nullable */
  int timeout_ms;
  GUnixFDList *fd_list;                 /* nullable; the caller's, referenced until sent */
  gsize threshold;
} PendingCall;

static void
pending_call_free (PendingCall *pending)
{
  g_free (pending->object_path);
  g_free (pending->interface_name);
  g_free (pending->method_name);
  g_clear_pointer (&pending->parameters, g_variant_unref);
  g_clear_pointer (&pending->reply_type, g_variant_type_free);
  g_clear_object (&pending->fd_list);
  g_free (pending);
}

static void
on_call_done (GObject      *source,
              GAsyncResult *res,
              gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  PeerClient *self = g_task_get_source_object (task);
  CallResult *result = g_new0 (CallResult, 1);
  GError *error = NULL;

  result->reply = g_dbus_connection_call_with_unix_fd_list_finish (G_DBUS_CONNECTION (source),
                                                                   &result->fd_list, res, &error);
  if (result->reply == NULL)
    {
      call_result_free (result);
      _peer_client_fix_call_error (self, &error);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, result, (GDestroyNotify) call_result_free);
}

static void
on_blob_call_done (GObject      *source,
                   GAsyncResult *res,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  PeerClient *self = g_task_get_source_object (task);
  PendingCall *pending = g_task_get_task_data (task);
  g_autoptr(GDBusMessage) reply_message = NULL;
  CallResult *result = g_new0 (CallResult, 1);
  GError *error = NULL;

  reply_message = g_dbus_connection_send_message_with_reply_finish (G_DBUS_CONNECTION (source),
                                                                    res, &error);
  if (reply_message != NULL)
    result->reply = _peer_wire_finish_blob_call (reply_message, pending->reply_type,
                                                 &result->fd_list, &error);
  if (result->reply == NULL)
    {
      call_result_free (result);
      _peer_client_fix_call_error (self, &error);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, result, (GDestroyNotify) call_result_free);
}

/* Sends @task's call, as a blob call when the server takes them. */
static void
send_pending_call (PeerClient *self,
                   GTask      *task)
{
  PendingCall *pending = g_task_get_task_data (task);
  g_autoptr(GDBusMessage) message = NULL;
  GError *error = NULL;

  if (!prepare_dbus_call (self, pending->object_path, pending->interface_name, pending->method_name,
                          pending->parameters, pending->fd_list, pending->threshold, &message, &error))
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }
  if (message != NULL)
    g_dbus_connection_send_message_with_reply (self->connection, message,
                                               G_DBUS_SEND_MESSAGE_FLAGS_NONE,
                                               pending->timeout_ms, NULL,
                                               g_task_get_cancellable (task),
                                               on_blob_call_done, task);
  else
    g_dbus_connection_call_with_unix_fd_list (self->connection, NULL, pending->object_path,
                                              pending->interface_name, pending->method_name,
                                              pending->parameters, pending->reply_type,
                                              G_DBUS_CALL_FLAGS_NONE, pending->timeout_ms,
                                              pending->fd_list, g_task_get_cancellable (task),
                                              on_call_done, task);
  /* The message has what it needs: the caller's fds and a payload that
   * may be large must not live on until the result is finished. */
  g_clear_object (&pending->fd_list);
  g_clear_pointer (&pending->parameters, g_variant_unref);
}

static void
on_features_for_call (GObject      *source,
                      GAsyncResult *res,
                      gpointer      user_data)
{
  GTask *task = user_data;
  PeerClient *self = g_task_get_source_object (task);
  g_autoptr(GVariant) features = NULL;
  g_autoptr(GError) error = NULL;

  features = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), res, &error);
  record_features (self, features, error);
  if (g_task_return_error_if_cancelled (task))
    {
      g_object_unref (task);
      return;
    }
  send_pending_call (self, task);
}

/* Sends @task's call (its data a PendingCall) on the connection, as a
 * blob call when the server takes them; asks the server first when that
 * is not known yet and matters. In the thread-default context the task
 * returns in. */
static void
start_dbus_call (PeerClient *self,
                 GTask      *task)
{
  PendingCall *pending = g_task_get_task_data (task);

  _peer_client_ensure_processing (self);
  if (g_atomic_int_get (&self->blob_calls) == BLOB_CALLS_UNKNOWN &&
      (wants_blob_call (self, pending->interface_name, pending->parameters, pending->threshold) ||
       limits_matter (pending->parameters, pending->fd_list)))
    {
      g_dbus_connection_call (self->connection, NULL, PEER_WIRE_PATH, PEER_WIRE_INTERFACE,
                              "GetFeatures", NULL, G_VARIANT_TYPE ("(a{sv})"),
                              G_DBUS_CALL_FLAGS_NONE, pending->timeout_ms, g_task_get_cancellable (task),
                              on_features_for_call, task);
      return;
    }
  send_pending_call (self, task);
}

/* An asynchronous call on the lane: what it takes to make it again, by
 * name or on the connection, when the server does not serve it there. */
typedef struct {
  GTask *task;                          /* owned */
  guint32 lane_id;                      /* the table's, or PEER_LANE_TARGET_BY_NAME */
  GVariant *parameters;                 /* nullable */
  /* A copy of the caller's fds (nullable): once the call is sent, the
   * caller may take its own out of the list. */
  GUnixFDList *fd_list;
  GVariantType *reply_type;             /* nullable */
  int timeout_ms;
  char *object_path;                    /* by name; NULL for a table call */
  char *interface_name;
  char *method_name;
} LaneAttempt;

static void
lane_attempt_free (LaneAttempt *attempt)
{
  g_clear_object (&attempt->task);
  g_clear_pointer (&attempt->parameters, g_variant_unref);
  g_clear_object (&attempt->fd_list);
  g_clear_pointer (&attempt->reply_type, g_variant_type_free);
  g_free (attempt->object_path);
  g_free (attempt->interface_name);
  g_free (attempt->method_name);
  g_free (attempt);
}

static void lane_attempt_send (PeerLaneClient *lane,
                               LaneAttempt    *attempt);

/* In the caller's context: a lane call's end returns its task, unless the
 * server did not serve it there: then it is made by name (a table entry
 * unexported since) or on the connection. */
static void
on_lane_attempt_done (GVariant    *reply,
                      GUnixFDList *fd_list,
                      GError      *error,
                      gpointer     user_data)
{
  LaneAttempt *attempt = user_data;
  GTask *task = attempt->task;
  PeerClient *self = g_task_get_source_object (task);
  CallResult *result;

  if (g_error_matches (error, PEER_LANE_ERROR, PEER_LANE_ERROR_NOT_SERVED))
    {
      PeerLaneClient *lane = _peer_client_get_lane (self);
      GMainContext *context = g_task_get_context (task);
      PendingCall *pending;

      g_clear_error (&error);
      if (attempt->object_path == NULL)
        {
          const char *path, *iface, *member;

          _peer_lane_client_get_method_names (lane, attempt->lane_id, &path, &iface, &member);
          attempt->object_path = g_strdup (path);
          attempt->interface_name = g_strdup (iface);
          attempt->method_name = g_strdup (member);
          if (_peer_lane_client_serves_by_name (lane, attempt->interface_name))
            {
              attempt->lane_id = PEER_LANE_TARGET_BY_NAME;
              lane_attempt_send (lane, attempt);
              return;
            }
        }
      /* On the connection, its answer returned in the task's context. */
      pending = g_new0 (PendingCall, 1);
      pending->object_path = g_steal_pointer (&attempt->object_path);
      pending->interface_name = g_steal_pointer (&attempt->interface_name);
      pending->method_name = g_steal_pointer (&attempt->method_name);
      pending->parameters = g_steal_pointer (&attempt->parameters);
      pending->reply_type = g_steal_pointer (&attempt->reply_type);
      pending->timeout_ms = attempt->timeout_ms;
      pending->fd_list = g_steal_pointer (&attempt->fd_list);
      pending->threshold = (gsize) g_atomic_pointer_get (&self->blob_threshold);
      g_task_set_task_data (task, pending, (GDestroyNotify) pending_call_free);
      g_main_context_push_thread_default (context);
      start_dbus_call (self, g_steal_pointer (&attempt->task));
      g_main_context_pop_thread_default (context);
      lane_attempt_free (attempt);
      return;
    }

  if (reply != NULL && attempt->object_path != NULL &&
      !check_reply_type (reply, attempt->method_name, attempt->reply_type, &error))
    {
      g_clear_pointer (&reply, g_variant_unref);
      g_clear_object (&fd_list);
    }
  if (error != NULL)
    g_task_return_error (task, error);
  else
    {
      result = g_new0 (CallResult, 1);
      result->reply = reply;
      result->fd_list = fd_list;
      g_task_return_pointer (task, result, (GDestroyNotify) call_result_free);
    }
  lane_attempt_free (attempt);
}

static void
lane_attempt_send (PeerLaneClient *lane,
                   LaneAttempt    *attempt)
{
  GCancellable *cancellable = g_task_get_cancellable (attempt->task);
  GMainContext *context = g_task_get_context (attempt->task);

  if (attempt->lane_id != PEER_LANE_TARGET_BY_NAME)
    _peer_lane_client_call_async (lane, attempt->lane_id, attempt->parameters, attempt->reply_type,
                                  attempt->timeout_ms, attempt->fd_list, cancellable, context,
                                  on_lane_attempt_done, attempt, NULL);
  else
    _peer_lane_client_call_by_name_async (lane, attempt->object_path, attempt->interface_name,
                                          attempt->method_name, attempt->parameters, attempt->timeout_ms,
                                          attempt->fd_list, cancellable, context, on_lane_attempt_done,
                                          attempt, NULL);
}

/* A copy of @fd_list's fds, or NULL when it has none. */
static GUnixFDList *
dup_fd_list (GUnixFDList  *fd_list,
             GError      **error)
{
  const int *fds;
  int n_fds;
  GUnixFDList *copy;

  if (fd_list == NULL || g_unix_fd_list_get_length (fd_list) == 0)
    return NULL;
  fds = g_unix_fd_list_peek_fds (fd_list, &n_fds);
  copy = g_unix_fd_list_new ();
  for (int i = 0; i < n_fds; i++)
    if (g_unix_fd_list_append (copy, fds[i], error) < 0)
      {
        g_object_unref (copy);
        return NULL;
      }
  return copy;
}

void
peer_client_call (PeerClient          *self,
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
  g_autoptr(GError) error = NULL;
  PendingCall *pending;
  PeerLaneClient *lane;
  guint32 lane_id;

  g_return_if_fail (PEER_IS_CLIENT (self));
  g_return_if_fail (object_path != NULL && g_variant_is_object_path (object_path));
  g_return_if_fail (interface_name == NULL || g_dbus_is_interface_name (interface_name));
  g_return_if_fail (method_name != NULL && g_dbus_is_member_name (method_name));
  g_return_if_fail (fd_list == NULL || G_IS_UNIX_FD_LIST (fd_list));

  lane = g_atomic_pointer_get (&self->lane);
  if (lane != NULL && !g_dbus_connection_is_closed (self->connection))
    {
      gboolean in_table = _peer_lane_client_has_method (lane, object_path, interface_name, method_name, &lane_id);

      if (in_table || _peer_lane_client_serves_by_name (lane, interface_name))
        {
          LaneAttempt *attempt;

          /* The lane needs none of what a GDBus call keeps while it waits. */
          task = g_task_new (self, cancellable, callback, user_data);
          g_task_set_source_tag (task, peer_client_call);
          if (!check_can_send_fds (self, fd_list, &error))
            {
              g_task_return_error (task, g_steal_pointer (&error));
              return;
            }
          attempt = g_new0 (LaneAttempt, 1);
          attempt->fd_list = dup_fd_list (fd_list, &error);
          if (error != NULL)
            {
              g_task_return_error (task, g_steal_pointer (&error));
              lane_attempt_free (attempt);
              return;
            }
          /* The call takes our reference to the task, and returns it in
           * the task's context. */
          attempt->task = g_steal_pointer (&task);
          attempt->lane_id = in_table ? lane_id : PEER_LANE_TARGET_BY_NAME;
          attempt->parameters = parameters != NULL ? g_variant_ref_sink (parameters) : NULL;
          attempt->reply_type = reply_type != NULL ? g_variant_type_copy (reply_type) : NULL;
          attempt->timeout_ms = timeout_ms;
          if (!in_table)
            {
              attempt->object_path = g_strdup (object_path);
              attempt->interface_name = g_strdup (interface_name);
              attempt->method_name = g_strdup (method_name);
            }
          lane_attempt_send (lane, attempt);
          return;
        }
    }

  pending = g_new0 (PendingCall, 1);
  pending->object_path = g_strdup (object_path);
  pending->interface_name = g_strdup (interface_name);
  pending->method_name = g_strdup (method_name);
  pending->parameters = parameters != NULL ? g_variant_ref_sink (parameters) : NULL;
  pending->reply_type = reply_type != NULL ? g_variant_type_copy (reply_type) : NULL;
  pending->timeout_ms = timeout_ms;
  pending->fd_list = fd_list != NULL ? g_object_ref (fd_list) : NULL;
  pending->threshold = (gsize) g_atomic_pointer_get (&self->blob_threshold);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, peer_client_call);
  g_task_set_task_data (task, pending, (GDestroyNotify) pending_call_free);
  if (!check_can_send_fds (self, fd_list, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  start_dbus_call (self, g_steal_pointer (&task));
}

GVariant *
peer_client_call_finish (PeerClient    *self,
                         GUnixFDList  **out_fd_list,
                         GAsyncResult  *result,
                         GError       **error)
{
  CallResult *call_result;
  GVariant *reply;

  g_return_val_if_fail (PEER_IS_CLIENT (self), NULL);
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  call_result = g_task_propagate_pointer (G_TASK (result), error);
  if (call_result == NULL)
    return NULL;
  reply = g_steal_pointer (&call_result->reply);
  if (out_fd_list != NULL)
    *out_fd_list = g_steal_pointer (&call_result->fd_list);
  call_result_free (call_result);
  return reply;
}

GVariant *
peer_client_get_property_sync (PeerClient   *self,
                               const char   *object_path,
                               const char   *interface_name,
                               const char   *property_name,
                               GCancellable *cancellable,
                               GError      **error)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) boxed = NULL;
  GVariant *args[2];

  g_return_val_if_fail (interface_name != NULL && property_name != NULL, NULL);

  /* Built and read without format strings, which GLib parses each time. */
  args[0] = g_variant_new_string (interface_name);
  args[1] = g_variant_new_string (property_name);
  reply = peer_client_call_sync (self, object_path, "org.freedesktop.DBus.Properties", "Get",
                                 g_variant_new_tuple (args, 2), (const GVariantType *) "(v)", -1, NULL, NULL,
                                 cancellable, error);
  if (reply == NULL)
    return NULL;
  boxed = g_variant_get_child_value (reply, 0);
  return g_variant_get_variant (boxed);
}

gboolean
peer_client_set_property_sync (PeerClient   *self,
                               const char   *object_path,
                               const char   *interface_name,
                               const char   *property_name,
                               GVariant     *value,
                               GCancellable *cancellable,
                               GError      **error)
{
  g_autoptr(GVariant) reply = NULL;
  GVariant *args[3];

  g_return_val_if_fail (interface_name != NULL && property_name != NULL && value != NULL, FALSE);

  args[0] = g_variant_new_string (interface_name);
  args[1] = g_variant_new_string (property_name);
  args[2] = g_variant_new_variant (value);
  reply = peer_client_call_sync (self, object_path, "org.freedesktop.DBus.Properties", "Set",
                                 g_variant_new_tuple (args, 3), G_VARIANT_TYPE_UNIT, -1, NULL, NULL, cancellable,
                                 error);
  return reply != NULL;
}

/* --- state -------------------------------------------------------------- */

void
peer_client_set_blob_threshold (PeerClient *self,
                                gsize       threshold)
{
  g_return_if_fail (PEER_IS_CLIENT (self));
  g_atomic_pointer_set (&self->blob_threshold, threshold);
}
