/* peer-connection.c: an authenticated peer: its credentials and limits,
 * the signal gate and what it is sent, its match rules and monitor
 * rules, its close, and the shares of services' pools it holds. How its
 * method calls reach handlers and their replies leave is
 * peer-connection-calls.c. */
#include "config.h"

#include <sys/socket.h>

#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-debug-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-match-private.h"
#include "peer-router-private.h"
#include "peer-wire-private.h"

/* Signals wait at a gate until the peer has shown what kind of client it
 * is. A bus client (sd-bus, dbus-next, GDBus with MESSAGE_BUS_CONNECTION)
 * sends Hello first and drops the connection if anything but the Hello
 * reply comes back first, so for those the gate opens after that reply.
 * A peer whose first message is anything else opens it at once; a peer
 * that never speaks (a pure listener) gets its signals after
 * PEER_SIGNAL_GATE_GRACE_MS. Nothing is dropped: held signals are sent in
 * order when the gate opens. */
typedef enum {
  SIGNAL_GATE_SHUT,
  SIGNAL_GATE_SHUT_UNTIL_HELLO_REPLY,
  SIGNAL_GATE_OPEN,
} SignalGate;

#define PEER_SIGNAL_GATE_GRACE_MS 250
/* Bounds what a peer that never finishes Hello can make us hold. */
#define PEER_SIGNAL_GATE_MAX_HELD 1024

struct _PeerConnection
{
  GObject parent_instance;

  GDBusConnection *connection;
  GCredentials *credentials;
  guint64 id;
  char *unique_name;
  uid_t uid;
  gid_t gid;
  pid_t pid;

  /* Main context only */
  GPtrArray *registrations;             /* PeerRegistration*: what is served on the connection */
  gulong closed_handler;
  gboolean torn_down;                   /* the above, and the filter, are gone */
  /* A toggle reference holds us until the main context tears us down */
  gint teardown_pending;                /* atomic */

  GMainContext *context;                /* the server's */
  PeerWireLimits *limits;               /* shared with the router's filter; atomic fields */
  guint router_filter;
  GSource *grace_source;

  /* Set once, before the peer is listed as a monitor; read-only after. */
  PeerMatchSet *monitor_rules;
  gint monitor;                         /* atomic */
  gint hello_done;                      /* atomic; written under @lock */
  gint gate_open;                       /* atomic mirror of @gate == SIGNAL_GATE_OPEN */

  GMutex lock;
  /* Protected by @lock */
  GError *close_reason;
  gint closed;                          /* atomic; written under @lock */
  SignalGate gate;
  GQueue held_signals;                  /* GDBusMessage*, while the gate is shut */
  PeerMatchSet *matches;                /* AddMatch rules; NULL until the first */
  GHashTable *shares;                   /* pool (owned) → count; NULL until the first */
  /* Where the signals this peer wants go instead of its D-Bus
   * connection (its lane, which it asked for them) */
  PeerSignalSink signal_sink;
  gpointer signal_sink_data;
  GDestroyNotify signal_sink_destroy;
};

enum { SIGNAL_CLOSED, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (PeerConnection, peer_connection, G_TYPE_OBJECT)

/* --- the signal gate ---------------------------------------------------- */

/* Whether @self still wants a held or new signal: a bus-style peer (one
 * that said Hello) gets broadcasts only through its match rules, as on a
 * bus; a plain peer-to-peer one gets them all, as GDBus expects; a
 * monitor only copies. Called with @lock held. */
static gboolean
wants_signal_locked (PeerConnection      *self,
                     GDBusMessage        *signal,
                     const char * const  *server_names)
{
  if (g_atomic_int_get (&self->monitor))
    return FALSE;
  if (g_dbus_message_get_destination (signal) != NULL)
    return TRUE;
  /* A plain peer has no bus: it gets the server's signals, not the bus's
   * word of other peers coming and going. */
  if (!g_atomic_int_get (&self->hello_done))
    return g_strcmp0 (g_dbus_message_get_sender (signal), PEER_ROUTER_BUS_NAME) != 0;
  return self->matches != NULL &&
         _peer_match_set_matches (self->matches, signal, g_dbus_message_get_sender (signal),
                                  NULL, server_names);
}

/* Any thread. */
void
_peer_connection_open_signal_gate (PeerConnection *self)
{
  GDBusMessage *message;

  g_mutex_lock (&self->lock);
  if (self->gate == SIGNAL_GATE_OPEN)
    {
      g_mutex_unlock (&self->lock);
      return;
    }
  self->gate = SIGNAL_GATE_OPEN;
  g_atomic_int_set (&self->gate_open, TRUE);
  /* Sent under the lock so that a signal emitted meanwhile from another
   * thread cannot overtake the held ones. A bus-style peer had no match
   * rule yet when these were emitted: it gets only those meant for it. */
  while ((message = g_queue_pop_head (&self->held_signals)) != NULL)
    {
      if (wants_signal_locked (self, message, NULL))
        _peer_wire_send (self->connection, self->limits, message);
      g_object_unref (message);
    }
  g_mutex_unlock (&self->lock);

  if (self->grace_source != NULL)
    g_source_destroy (self->grace_source);
}

static void
weak_ref_free (gpointer weak_ref)
{
  g_weak_ref_clear (weak_ref);
  g_free (weak_ref);
}

/* Holds the connection weakly: finalize destroys the timer, maybe on
 * another thread than the one dispatching it. */
static gboolean
on_signal_gate_grace (gpointer user_data)
{
  g_autoptr(PeerConnection) self = g_weak_ref_get (user_data);
  gboolean open;

  if (self == NULL)
    return G_SOURCE_REMOVE;
  g_mutex_lock (&self->lock);
  open = self->gate == SIGNAL_GATE_SHUT;
  g_mutex_unlock (&self->lock);
  if (open)
    _peer_connection_open_signal_gate (self);
  return G_SOURCE_REMOVE;
}

/* Worker thread, for every message the peer sends: the first one tells
 * what kind of client it is (see SignalGate). One atomic read after. */
void
_peer_connection_note_incoming (PeerConnection *self,
                                GDBusMessage   *message)
{
  gboolean is_hello;
  SignalGate gate;

  if (g_atomic_int_get (&self->gate_open))
    return;

  g_mutex_lock (&self->lock);
  gate = self->gate;
  is_hello = gate == SIGNAL_GATE_SHUT &&
             g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL &&
             g_strcmp0 (g_dbus_message_get_member (message), "Hello") == 0 &&
             g_strcmp0 (g_dbus_message_get_interface (message), PEER_ROUTER_BUS_NAME) == 0;
  if (is_hello)
    self->gate = SIGNAL_GATE_SHUT_UNTIL_HELLO_REPLY;
  g_mutex_unlock (&self->lock);

  if (gate == SIGNAL_GATE_SHUT && !is_hello)
    _peer_connection_open_signal_gate (self);
}

/* --- match rules and monitors ------------------------------------------- */

gboolean
_peer_connection_add_match (PeerConnection *self,
                            const char     *rule,
                            guint           max_rules,
                            GError        **error)
{
  gboolean ok;

  g_mutex_lock (&self->lock);
  if (self->matches == NULL)
    self->matches = _peer_match_set_new ();
  ok = _peer_match_set_add (self->matches, rule, max_rules, error);
  g_mutex_unlock (&self->lock);
  return ok;
}

gboolean
_peer_connection_remove_match (PeerConnection *self,
                               const char     *rule,
                               GError        **error)
{
  gboolean ok;

  g_mutex_lock (&self->lock);
  if (self->matches == NULL)
    self->matches = _peer_match_set_new ();
  ok = _peer_match_set_remove (self->matches, rule, error);
  g_mutex_unlock (&self->lock);
  return ok;
}

gboolean
_peer_connection_make_monitor (PeerConnection     *self,
                               const char * const *rules,
                               guint               max_rules,
                               GError            **error)
{
  g_autoptr(PeerMatchSet) set = _peer_match_set_new ();

  if (g_atomic_int_get (&self->monitor))
    {
      g_set_error_literal (error, G_DBUS_ERROR, G_DBUS_ERROR_FAILED, "Already a monitor");
      return FALSE;
    }
  /* No rule at all means everything, as dbus-daemon reads it. */
  if (rules == NULL || rules[0] == NULL)
    {
      if (!_peer_match_set_add (set, "", max_rules, error))
        return FALSE;
    }
  for (guint i = 0; rules != NULL && rules[i] != NULL; i++)
    if (!_peer_match_set_add (set, rules[i], max_rules, error))
      return FALSE;

  g_mutex_lock (&self->lock);
  self->monitor_rules = g_steal_pointer (&set);
  /* A monitor is no longer a party to anything: what was held for it
   * as a peer is dropped, and it gets copies only. */
  g_queue_clear_full (&self->held_signals, g_object_unref);
  g_atomic_int_set (&self->monitor, TRUE);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

gboolean
_peer_connection_is_monitor (PeerConnection *self)
{
  return g_atomic_int_get (&self->monitor);
}

gboolean
_peer_connection_monitor_wants (PeerConnection     *self,
                                GDBusMessage       *message,
                                const char         *sender,
                                const char         *destination,
                                const char * const *sender_names)
{
  /* Read-only once @monitor is set, which the router's lock published. */
  return self->monitor_rules != NULL &&
         _peer_match_set_matches (self->monitor_rules, message, sender, destination, sender_names);
}

/* A copy of @message for a monitor, stamped as a bus delivers it, with
 * its original serial. The monitor's own queue limit drops it when it
 * does not keep up: nobody waits for a monitor. */
void
_peer_connection_send_monitor_copy (PeerConnection *self,
                                    GDBusMessage   *message,
                                    const char     *sender,
                                    const char     *destination)
{
  g_autoptr(GDBusMessage) copy = g_dbus_message_copy (message, NULL);

  if (copy == NULL)
    return;
  if (sender != NULL)
    g_dbus_message_set_sender (copy, sender);
  if (destination != NULL)
    g_dbus_message_set_destination (copy, destination);
  if (g_dbus_message_get_unix_fd_list (copy) != NULL && !peer_connection_can_pass_fds (self))
    {
      g_dbus_message_set_unix_fd_list (copy, NULL);
      g_dbus_message_set_num_unix_fds (copy, 0);
    }
  /* A broadcast made once for everyone has no serial of its own yet. */
  _peer_wire_send_full (self->connection, self->limits, copy,
                        g_dbus_message_get_serial (copy) != 0 ? G_DBUS_SEND_MESSAGE_FLAGS_PRESERVE_SERIAL
                                                             : G_DBUS_SEND_MESSAGE_FLAGS_NONE);
}

/* --- the connection ----------------------------------------------------- */

/* One thing served on the connection: an interface at a path (a GDBus
 * object registration), a subtree (a GDBus subtree registration) or a
 * GDBusInterfaceSkeleton exported on it. */
typedef struct {
  PeerRegistrationKind kind;
  gpointer what;                        /* not a reference: the server holds it */
  char *path;
  guint id;
} PeerRegistration;

static void
registration_release (PeerConnection   *self,
                      PeerRegistration *reg)
{
  switch (reg->kind)
    {
    case PEER_REGISTRATION_OBJECT:
      g_dbus_connection_unregister_object (self->connection, reg->id);
      break;
    case PEER_REGISTRATION_SUBTREE:
      g_dbus_connection_unregister_subtree (self->connection, reg->id);
      break;
    case PEER_REGISTRATION_SKELETON:
      g_dbus_interface_skeleton_unexport_from_connection (reg->what, self->connection);
      break;
    default:
      g_assert_not_reached ();
    }
  g_free (reg->path);
  g_free (reg);
}

static void
unregister_all (PeerConnection *self)
{
  g_autoptr(GPtrArray) registrations = g_steal_pointer (&self->registrations);

  self->registrations = g_ptr_array_new ();
  for (guint i = 0; registrations != NULL && i < registrations->len; i++)
    registration_release (self, g_ptr_array_index (registrations, i));
}

void
_peer_connection_add_registration (PeerConnection       *self,
                                   PeerRegistrationKind  kind,
                                   gpointer              what,
                                   const char           *path,
                                   guint                 id)
{
  PeerRegistration *reg = g_new0 (PeerRegistration, 1);

  reg->kind = kind;
  reg->what = what;
  reg->path = g_strdup (path);
  reg->id = id;
  g_ptr_array_add (self->registrations, reg);
}

gboolean
_peer_connection_remove_registration (PeerConnection *self,
                                      gpointer        what,
                                      const char     *path)
{
  for (guint i = 0; i < self->registrations->len; i++)
    {
      PeerRegistration *reg = g_ptr_array_index (self->registrations, i);

      if (reg->what == what && (path == NULL || g_strcmp0 (reg->path, path) == 0))
        {
          g_ptr_array_remove_index (self->registrations, i);
          registration_release (self, reg);
          return TRUE;
        }
    }
  return FALSE;
}

static void
on_dbus_connection_closed (GDBusConnection *connection,
                           gboolean         remote_peer_vanished,
                           GError          *error,
                           PeerConnection  *self)
{
  g_autoptr(GError) reason = NULL;

  g_mutex_lock (&self->lock);
  if (self->closed)
    {
      /* Already seen: see closed_before_watched(). */
      g_mutex_unlock (&self->lock);
      return;
    }
  if (self->close_reason == NULL && _peer_wire_limits_has_overflowed (self->limits))
    self->close_reason = g_error_new (PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                                      "Peer %s does not read what it is sent: more than %"
                                      G_GSIZE_FORMAT " bytes were queued for it", self->unique_name,
                                      _peer_wire_limits_get_max_queued (self->limits));
  if (self->close_reason == NULL)
    {
      if (error != NULL)
        self->close_reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                          "Peer %s disconnected: %s", self->unique_name, error->message);
      else
        self->close_reason = g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                          "Peer %s disconnected", self->unique_name);
    }
  g_atomic_int_set (&self->closed, TRUE);
  reason = g_error_copy (self->close_reason);
  g_mutex_unlock (&self->lock);

  g_debug ("libpeer: %s closed: %s", self->unique_name, reason->message);
  /* When GDBus itself gives up on a peer (a message it cannot decode), it
   * stops reading but leaves the socket open until the connection is
   * finalized: the peer would never learn it was dropped. Shutting the
   * socket down tells it now; the fd itself stays GDBus's to close. */
  if (G_IS_SOCKET_CONNECTION (g_dbus_connection_get_stream (connection)))
    {
      GSocket *sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (g_dbus_connection_get_stream (connection)));

      if (!g_socket_is_closed (sock))
        shutdown (g_socket_get_fd (sock), SHUT_RDWR);
    }
  unregister_all (self);
  if (self->grace_source != NULL)
    g_source_destroy (self->grace_source);
  g_mutex_lock (&self->lock);
  g_queue_clear_full (&self->held_signals, g_object_unref);
  g_mutex_unlock (&self->lock);
  g_signal_emit (self, signals[SIGNAL_CLOSED], 0, reason);
}

/* A peer that hangs up right after authenticating can have its connection
 * closed before anyone listened: GDBus then emitted "closed" to nobody. */
static gboolean
closed_before_watched (gpointer user_data)
{
  PeerConnection *self = user_data;

  on_dbus_connection_closed (self->connection, TRUE, NULL, self);
  return G_SOURCE_REMOVE;
}

/* The registrations, the "closed" handler and the filter belong to the
 * server's main context, where GDBus dispatches them with a plain pointer
 * to us: they go in that context, before we can be finalized. */
static void
teardown_in_context (PeerConnection *self)
{
  if (self->torn_down || self->connection == NULL)
    return;
  self->torn_down = TRUE;
  g_clear_signal_handler (&self->closed_handler, self->connection);
  unregister_all (self);
  if (self->router_filter != 0)
    g_dbus_connection_remove_filter (self->connection, self->router_filter);
  self->router_filter = 0;
  if (!g_dbus_connection_is_closed (self->connection))
    g_dbus_connection_close (self->connection, NULL, NULL, NULL);
}

static void on_last_toggle (gpointer data, GObject *object, gboolean is_last);

static gboolean
teardown_in_idle (gpointer user_data)
{
  PeerConnection *self = user_data;

  teardown_in_context (self);
  g_atomic_int_set (&self->teardown_pending, FALSE);
  /* Most likely the last reference: dispose and finalize follow here. */
  g_object_remove_toggle_ref (G_OBJECT (self), on_last_toggle, NULL);
  return G_SOURCE_REMOVE;
}

/* Any thread: only the toggle reference is left. */
static void
on_last_toggle (gpointer  data,
                GObject  *object,
                gboolean  is_last)
{
  PeerConnection *self = PEER_CONNECTION (object);
  GSource *idle;

  if (!is_last || !g_atomic_int_compare_and_exchange (&self->teardown_pending, FALSE, TRUE))
    return;
  idle = g_idle_source_new ();
  g_source_set_callback (idle, teardown_in_idle, self, NULL);
  g_source_set_static_name (idle, "[libpeer] connection teardown");
  g_source_attach (idle, self->context);
  g_source_unref (idle);
}

/* A last reference dropped on a thread that does not own the server's
 * main context (a lane's thread, GDBus's worker, a thread that answered a
 * call) is handed to that context, unless this thread can take the
 * context meanwhile, as g_main_context_invoke() would. The hand-over is a
 * toggle reference rather than a plain one: its notification comes once
 * the dropping thread is out of g_object_unref(), so the context cannot
 * drop it first and leave that thread to finalize us after all. */
static void
peer_connection_dispose (GObject *object)
{
  PeerConnection *self = PEER_CONNECTION (object);

  if (!g_main_context_acquire (self->context))
    {
      g_object_add_toggle_ref (object, on_last_toggle, NULL);
      return;
    }
  teardown_in_context (self);
  G_OBJECT_CLASS (peer_connection_parent_class)->dispose (object);
  g_main_context_release (self->context);
}

static void
peer_connection_finalize (GObject *object)
{
  PeerConnection *self = PEER_CONNECTION (object);

  if (self->grace_source != NULL)
    {
      g_source_destroy (self->grace_source);
      g_source_unref (self->grace_source);
    }
  g_queue_clear_full (&self->held_signals, g_object_unref);
  if (self->signal_sink_destroy != NULL)
    self->signal_sink_destroy (self->signal_sink_data);
  g_clear_pointer (&self->matches, _peer_match_set_free);
  g_clear_pointer (&self->shares, g_hash_table_unref);
  g_clear_pointer (&self->monitor_rules, _peer_match_set_free);
  g_main_context_unref (self->context);
  g_clear_pointer (&self->limits, _peer_wire_limits_unref);
  g_clear_object (&self->connection);
  g_clear_object (&self->credentials);
  g_clear_error (&self->close_reason);
  g_ptr_array_unref (self->registrations);
  g_free (self->unique_name);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (peer_connection_parent_class)->finalize (object);
}

static void
peer_connection_class_init (PeerConnectionClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = peer_connection_dispose;
  object_class->finalize = peer_connection_finalize;

  /**
   * PeerConnection::closed:
   * @self: the connection
   * @reason: (transfer none): why it closed
   *
   * Emitted once, in the server's main context, when the peer is gone.
   */
  signals[SIGNAL_CLOSED] =
    g_signal_new ("closed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
peer_connection_init (PeerConnection *self)
{
  g_mutex_init (&self->lock);
  self->context = g_main_context_ref_thread_default ();
  self->registrations = g_ptr_array_new ();
  self->limits = _peer_wire_limits_new ();
  self->uid = (uid_t) -1;
  self->gid = (gid_t) -1;
  self->pid = -1;
}

PeerConnection *
_peer_connection_new (GDBusConnection *connection,
                      guint64          id,
                      PeerRouter      *router)
{
  PeerConnection *self = g_object_new (PEER_TYPE_CONNECTION, NULL);
  GCredentials *credentials = g_dbus_connection_get_peer_credentials (connection);
  g_autoptr(GCredentials) from_socket = NULL;
  GIOStream *stream = g_dbus_connection_get_stream (connection);
  GWeakRef *weak_self;

  /* GDBus keeps credentials only on the authenticating server's side; a
   * server that adopted a connected socket (peer_server_new_for_fd())
   * authenticated as the client, so ask the kernel (SO_PEERCRED). */
  if (credentials == NULL && G_IS_SOCKET_CONNECTION (stream))
    {
      from_socket = g_socket_get_credentials (g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream)), NULL);
      credentials = from_socket;
    }

  self->connection = g_object_ref (connection);
  self->id = id;
  self->unique_name = g_strdup_printf (":1.%" G_GUINT64_FORMAT, id);
  if (credentials != NULL)
    {
      self->credentials = g_object_ref (credentials);
      self->uid = g_credentials_get_unix_user (credentials, NULL);
      self->pid = g_credentials_get_unix_pid (credentials, NULL);
#ifdef __linux__
      {
        const struct ucred *ucred = g_credentials_get_native (credentials, G_CREDENTIALS_TYPE_LINUX_UCRED);
        if (ucred != NULL)
          self->gid = ucred->gid;
      }
#endif
    }
  else
    self->credentials = g_credentials_new ();

  g_dbus_connection_set_exit_on_close (connection, FALSE);
  self->closed_handler = g_signal_connect (connection, "closed",
                                           G_CALLBACK (on_dbus_connection_closed), self);
  if (g_dbus_connection_is_closed (connection))
    {
      /* Later, once the server is listening to this peer. */
      GSource *idle = g_idle_source_new ();

      g_source_set_callback (idle, closed_before_watched, g_object_ref (self), g_object_unref);
      g_source_set_static_name (idle, "[libpeer] closed before watched");
      g_source_attach (idle, self->context);
      g_source_unref (idle);
    }

  /* Ahead of every other filter, so that PEER_DEBUG and PEER_CAPTURE show
   * messages as they came off the wire. */
  _peer_debug_watch_peer (connection, self->unique_name, self->pid);

  /* Then every message takes the router's path (peer-router.c), in
   * GDBus's worker thread. The filter is removed in dispose, because GLib
   * 2.74 does not call a filter's destroy notify when the connection is
   * finalized; GDBus may be running it just then, so it holds only a weak
   * reference, and runs only while it can take a strong one. */
  self->router_filter = g_dbus_connection_add_filter (connection, _peer_router_filter,
                                                      _peer_router_link_new (router, self),
                                                      _peer_router_link_free);
  self->grace_source = g_timeout_source_new (PEER_SIGNAL_GATE_GRACE_MS);
  weak_self = g_new0 (GWeakRef, 1);
  g_weak_ref_init (weak_self, self);
  g_source_set_callback (self->grace_source, on_signal_gate_grace, weak_self, weak_ref_free);
  g_source_set_static_name (self->grace_source, "[libpeer] signal gate grace");
  g_source_attach (self->grace_source, self->context);
  return self;
}

gboolean
_peer_connection_export (PeerConnection *self,
                         const char     *object_path,
                         PeerInterface  *iface,
                         GError        **error)
{
  guint id = _peer_connection_register_calls (self, object_path, iface, error);

  if (id == 0)
    return FALSE;
  _peer_connection_add_registration (self, PEER_REGISTRATION_OBJECT, iface, object_path, id);
  return TRUE;
}

void
_peer_connection_unexport (PeerConnection *self,
                           const char     *object_path,
                           PeerInterface  *iface)
{
  _peer_connection_remove_registration (self, iface, object_path);
}

/* Any thread: a copy of @signal (sender set, destination unset) to this
 * peer, when it wants it: to one peer (@unicast) always, as a bus
 * delivers signals addressed to a connection; a broadcast through the
 * peer's match rules, when it said Hello. */
void
_peer_connection_send_signal (PeerConnection     *self,
                              GDBusMessage       *signal,
                              gboolean            unicast,
                              const char * const *server_names)
{
  g_autoptr(GDBusMessage) message = NULL;

  if (g_atomic_int_get (&self->monitor))
    return;

  g_mutex_lock (&self->lock);
  if (!unicast && self->gate == SIGNAL_GATE_OPEN && !wants_signal_locked (self, signal, server_names))
    {
      g_mutex_unlock (&self->lock);
      return;
    }
  message = g_dbus_message_copy (signal, NULL);
  if (unicast)
    g_dbus_message_set_destination (message, self->unique_name);
  if (self->gate != SIGNAL_GATE_OPEN)
    {
      if (self->held_signals.length >= PEER_SIGNAL_GATE_MAX_HELD)
        {
          g_mutex_unlock (&self->lock);
          g_debug ("libpeer: %s never finished its handshake; closing", self->unique_name);
          g_autoptr(GError) reason = g_error_new (PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                                                  "More than %d signals held before Hello finished",
                                                  PEER_SIGNAL_GATE_MAX_HELD);
          peer_connection_close (self, reason);
          return;
        }
      g_queue_push_tail (&self->held_signals, g_steal_pointer (&message));
      g_mutex_unlock (&self->lock);
      return;
    }
  /* Sent under the lock: see the signal gate. Its order with the replies
   * the sink carries is the order of the writes. */
  if (self->signal_sink != NULL)
    self->signal_sink (message, self->signal_sink_data);
  else
    _peer_wire_send (self->connection, self->limits, message);
  g_mutex_unlock (&self->lock);
}

void
_peer_connection_set_signal_sink (PeerConnection *self,
                                  PeerSignalSink  sink,
                                  gpointer        data,
                                  GDestroyNotify  destroy)
{
  gpointer old_data;
  GDestroyNotify old_destroy;

  g_mutex_lock (&self->lock);
  old_data = self->signal_sink_data;
  old_destroy = self->signal_sink_destroy;
  self->signal_sink = sink;
  self->signal_sink_data = data;
  self->signal_sink_destroy = destroy;
  g_mutex_unlock (&self->lock);
  if (old_destroy != NULL)
    old_destroy (old_data);
}

void
_peer_connection_clear_signal_sink (PeerConnection *self,
                                    gpointer        data)
{
  GDestroyNotify destroy = NULL;

  g_mutex_lock (&self->lock);
  if (self->signal_sink_data == data && self->signal_sink != NULL)
    {
      destroy = self->signal_sink_destroy;
      self->signal_sink = NULL;
      self->signal_sink_data = NULL;
      self->signal_sink_destroy = NULL;
    }
  g_mutex_unlock (&self->lock);
  if (destroy != NULL)
    destroy (data);
}

gboolean
_peer_connection_take_hello (PeerConnection *self)
{
  gboolean first;

  g_mutex_lock (&self->lock);
  first = !g_atomic_int_get (&self->hello_done);
  g_atomic_int_set (&self->hello_done, TRUE);
  g_mutex_unlock (&self->lock);
  return first;
}

gboolean
_peer_connection_said_hello (PeerConnection *self)
{
  return g_atomic_int_get (&self->hello_done);
}

PeerWireLimits *
_peer_connection_get_limits (PeerConnection *self)
{
  return self->limits;
}

guint64
peer_connection_get_id (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), 0);
  return self->id;
}

const char *
peer_connection_get_unique_name (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), NULL);
  return self->unique_name;
}

GCredentials *
peer_connection_get_credentials (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), NULL);
  return self->credentials;
}

uid_t
peer_connection_get_uid (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), (uid_t) -1);
  return self->uid;
}

gid_t
peer_connection_get_gid (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), (gid_t) -1);
  return self->gid;
}

pid_t
peer_connection_get_pid (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), -1);
  return self->pid;
}

GDBusConnection *
peer_connection_get_dbus_connection (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), NULL);
  return self->connection;
}

gboolean
peer_connection_is_closed (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), TRUE);

  return _peer_connection_is_closed (self);
}

/* Any thread, on every lane frame: one atomic read, no lock. */
gboolean
_peer_connection_is_closed (PeerConnection *self)
{
  return g_atomic_int_get (&self->closed);
}

GError *
peer_connection_dup_close_reason (PeerConnection *self)
{
  GError *reason;

  g_return_val_if_fail (PEER_IS_CONNECTION (self), NULL);

  g_mutex_lock (&self->lock);
  reason = self->close_reason != NULL ? g_error_copy (self->close_reason) : NULL;
  g_mutex_unlock (&self->lock);
  return reason;
}

void
peer_connection_close (PeerConnection *self,
                       const GError   *reason)
{
  g_return_if_fail (PEER_IS_CONNECTION (self));

  g_mutex_lock (&self->lock);
  if (self->close_reason == NULL)
    self->close_reason = reason != NULL
      ? g_error_copy (reason)
      : g_error_new (PEER_ERROR, PEER_ERROR_DISCONNECTED, "Closed by the server");
  g_mutex_unlock (&self->lock);

  g_dbus_connection_close (self->connection, NULL, NULL, NULL);
}

/* --- shares of the services' pools ------------------------------------- */

gboolean
peer_connection_take_share (PeerConnection *self,
                            const char     *pool,
                            guint           max_per_peer,
                            GError        **error)
{
  guint held;

  g_return_val_if_fail (PEER_IS_CONNECTION (self), FALSE);
  g_return_val_if_fail (pool != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  g_mutex_lock (&self->lock);
  /* Under the lock, as the close handler sets it: see the header. */
  if (self->closed)
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED,
                   "Peer %s disconnected", self->unique_name);
      return FALSE;
    }
  if (self->shares == NULL)
    self->shares = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  held = GPOINTER_TO_UINT (g_hash_table_lookup (self->shares, pool));
  if (held >= max_per_peer)
    {
      g_mutex_unlock (&self->lock);
      g_debug ("libpeer: %s is refused one more of %s: it holds %u", self->unique_name, pool, held);
      g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                   "Peer %s has %u %s already; the limit per peer is %u",
                   self->unique_name, held, pool, max_per_peer);
      return FALSE;
    }
  g_hash_table_insert (self->shares, g_strdup (pool), GUINT_TO_POINTER (held + 1));
  g_mutex_unlock (&self->lock);
  return TRUE;
}

void
peer_connection_give_back_share (PeerConnection *self,
                                 const char     *pool)
{
  guint held = 0;

  g_return_if_fail (PEER_IS_CONNECTION (self));
  g_return_if_fail (pool != NULL);

  g_mutex_lock (&self->lock);
  if (self->shares != NULL)
    held = GPOINTER_TO_UINT (g_hash_table_lookup (self->shares, pool));
  /* An empty pool leaves no entry: the table holds only what is held. */
  if (held > 1)
    g_hash_table_insert (self->shares, g_strdup (pool), GUINT_TO_POINTER (held - 1));
  else if (held == 1)
    g_hash_table_remove (self->shares, pool);
  g_mutex_unlock (&self->lock);

  if (held == 0)
    g_critical ("libpeer: %s gave back a share of %s that it does not hold",
                self->unique_name, pool);
}

guint
peer_connection_get_share (PeerConnection *self,
                           const char     *pool)
{
  guint held = 0;

  g_return_val_if_fail (PEER_IS_CONNECTION (self), 0);
  g_return_val_if_fail (pool != NULL, 0);

  g_mutex_lock (&self->lock);
  if (self->shares != NULL)
    held = GPOINTER_TO_UINT (g_hash_table_lookup (self->shares, pool));
  g_mutex_unlock (&self->lock);
  return held;
}

void
_peer_connection_set_limits (PeerConnection *self,
                             guint           max_fds_per_message,
                             gsize           blob_threshold)
{
  _peer_wire_limits_set_max_fds (self->limits, max_fds_per_message);
  _peer_wire_limits_set_blob_threshold (self->limits, blob_threshold);
}

void
_peer_connection_set_resource_limits (PeerConnection *self,
                                      guint           max_calls_in_flight,
                                      gsize           max_queued_bytes,
                                      guint           max_message_size)
{
  _peer_wire_limits_set_max_in_flight (self->limits, max_calls_in_flight);
  _peer_wire_limits_set_max_queued (self->limits, max_queued_bytes);
  _peer_wire_limits_set_max_message_size (self->limits, max_message_size);
}

guint
_peer_connection_get_max_fds (PeerConnection *self)
{
  return _peer_wire_limits_get_max_fds (self->limits);
}

guint
_peer_connection_get_max_message_size (PeerConnection *self)
{
  return _peer_wire_limits_get_max_message_size (self->limits);
}

gboolean
_peer_connection_send_message (PeerConnection *self,
                               GDBusMessage   *message)
{
  return _peer_wire_send (self->connection, self->limits, message);
}

gboolean
peer_connection_can_pass_fds (PeerConnection *self)
{
  g_return_val_if_fail (PEER_IS_CONNECTION (self), FALSE);
  return (g_dbus_connection_get_capabilities (self->connection) &
          G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING) != 0;
}
