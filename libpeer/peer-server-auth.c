/* peer-server-auth.c: how a connection becomes a PeerServer's peer. The
 * connection limits are checked as soon as it is accepted; the handshake
 * runs GDBus's authentication with the policy's GDBusAuthObserver, under
 * a deadline and over a stream that bounds what the peer may send first;
 * the process at the other end of an adopted socket is judged by its
 * credentials instead; refusals are counted and signalled. What passes is
 * handed on to peer-server.c, which keeps the peer registry and the
 * server's lifecycle (see peer-server-auth-private.h); why the server
 * authenticates itself rather than through GDBusServer is said at the top
 * of peer-server.c.
 */
#include "config.h"

#include "peer-auth-connection-private.h"
#include "peer-error.h"
#include "peer-policy.h"
#include "peer-router-private.h"
#include "peer-server-auth-private.h"

typedef struct {
  PeerServer *server;                   /* NULL once the server is gone */
  GSocketConnection *stream;
  GCancellable *cancellable;
  GSource *deadline;
  guint timeout_ms;
  gboolean timed_out;
} Handshake;

/* --- the policy --------------------------------------------------------- */

/* Who may become a monitor: the policy's call (it locks its own lists). */
static gboolean
may_monitor (uid_t    uid,
             gpointer user_data)
{
  return peer_policy_may_monitor (user_data, uid);
}

void
_peer_server_auth_init (PeerServer *self)
{
  _peer_router_set_monitor_check (self->router, may_monitor, g_object_ref (self->policy), g_object_unref);
  self->observer = peer_policy_create_auth_observer (self->policy);
}

/* --- handshakes --------------------------------------------------------- */

static void
handshake_free (Handshake *hs)
{
  if (hs->deadline != NULL)
    {
      g_source_destroy (hs->deadline);
      g_source_unref (hs->deadline);
    }
  g_object_unref (hs->cancellable);
  g_object_unref (hs->stream);
  g_free (hs);
}

static void
count_refused (PeerServer *self)
{
  g_mutex_lock (&self->lock);
  self->n_refused++;
  g_mutex_unlock (&self->lock);
}

static void
on_handshake_done (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Handshake *hs = user_data;
  PeerServer *self = hs->server;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) connection = NULL;

  connection = g_dbus_connection_new_finish (result, &error);
  if (connection == NULL && hs->timed_out)
    {
      g_clear_error (&error);
      g_set_error (&error, PEER_ERROR, PEER_ERROR_TIMED_OUT,
                   "Peer did not authenticate within %u ms", hs->timeout_ms);
    }
  if (self != NULL)
    g_ptr_array_remove_fast (self->handshakes, hs);

  if (connection == NULL || self == NULL || self->stopped)
    {
      g_debug ("libpeer: handshake failed: %s", error != NULL ? error->message : "server stopped");
      if (self != NULL && error != NULL)
        {
          count_refused (self);
          _peer_server_emit_peer_refused (self, error);
        }
      if (connection != NULL)
        g_dbus_connection_close (connection, NULL, NULL, NULL);
      /* GDBus leaves the stream open when authentication fails. */
      g_io_stream_close (G_IO_STREAM (hs->stream), NULL, NULL);
      handshake_free (hs);
      return;
    }

  handshake_free (hs);
  /* Others may have finished authenticating since this one was accepted. */
  if (peer_server_get_n_peers (self) >= self->max_peers)
    {
      g_autoptr(GError) refusal = g_error_new (PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                                               "%u peers are connected, the most allowed", self->max_peers);

      g_debug ("libpeer: refusing an authenticated connection: %s", refusal->message);
      g_dbus_connection_close (connection, NULL, NULL, NULL);
      count_refused (self);
      _peer_server_emit_peer_refused (self, refusal);
      return;
    }
  _peer_server_add_peer (self, connection);
}

static gboolean
on_handshake_deadline (gpointer user_data)
{
  Handshake *hs = user_data;

  g_debug ("libpeer: closing a connection that did not authenticate in time");
  hs->timed_out = TRUE;
  g_cancellable_cancel (hs->cancellable);
  g_clear_pointer (&hs->deadline, g_source_unref);
  return G_SOURCE_REMOVE;
}

static void
start_handshake (PeerServer *self,
                 GSocket    *sock)
{
  Handshake *hs = g_new0 (Handshake, 1);

  hs->server = self;
  /* Bounds what the peer may send before BEGIN; see peer-auth-connection.c. */
  hs->stream = G_SOCKET_CONNECTION (_peer_auth_connection_new (sock, PEER_SERVER_HANDSHAKE_MAX_BYTES));
  hs->cancellable = g_cancellable_new ();
  hs->timeout_ms = self->handshake_timeout_ms;
  hs->deadline = g_timeout_source_new (self->handshake_timeout_ms);
  g_source_set_callback (hs->deadline, on_handshake_deadline, hs, NULL);
  g_source_set_static_name (hs->deadline, "[libpeer] handshake deadline");
  g_source_attach (hs->deadline, self->context);
  g_ptr_array_add (self->handshakes, hs);

  /* Authentication runs in a GIO worker thread; the connection is created
   * in, and belongs to, this (the server's) main context. */
  g_dbus_connection_new (G_IO_STREAM (hs->stream), self->guid,
                         G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER |
                         G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                         self->observer, hs->cancellable, on_handshake_done, hs);
}

typedef struct {
  PeerServer *server;
  GError *reason;
} Refusal;

static void
refusal_free (Refusal *refusal)
{
  g_object_unref (refusal->server);
  g_error_free (refusal->reason);
  g_free (refusal);
}

static gboolean
emit_refused (gpointer user_data)
{
  Refusal *refusal = user_data;

  if (!refusal->server->stopped)
    _peer_server_emit_peer_refused (refusal->server, refusal->reason);
  return G_SOURCE_REMOVE;
}

/* The adopted socket's other end is the process that made the socketpair.
 * GDBus authenticates us as the client here, so no auth observer runs:
 * the policy judges the kernel's credentials for the socket instead,
 * before anything is said. */
void
_peer_server_start_adopted_handshake (PeerServer *self)
{
  GSocket *sock = g_socket_connection_get_socket (self->adopted);
  g_autoptr(GCredentials) credentials = NULL;
  g_autoptr(GError) error = NULL;
  Handshake *hs;

  credentials = g_socket_get_credentials (sock, &error);
  if (credentials == NULL || !peer_policy_check_credentials (self->policy, credentials, &error))
    {
      Refusal *refusal = g_new0 (Refusal, 1);
      GSource *idle = g_idle_source_new ();

      g_debug ("libpeer: refusing the process at the other end of the socket: %s", error->message);
      count_refused (self);
      g_io_stream_close (G_IO_STREAM (self->adopted), NULL, NULL);
      /* Later, so that a caller that runs its main loop after
       * peer_server_start() sees the signal. */
      refusal->server = g_object_ref (self);
      refusal->reason = g_steal_pointer (&error);
      g_source_set_callback (idle, emit_refused, refusal, (GDestroyNotify) refusal_free);
      g_source_set_static_name (idle, "[libpeer] adopted socket refused");
      g_source_attach (idle, self->context);
      g_source_unref (idle);
      return;
    }

  hs = g_new0 (Handshake, 1);
  hs->server = self;
  hs->stream = g_object_ref (self->adopted);
  hs->cancellable = g_cancellable_new ();
  hs->timeout_ms = self->handshake_timeout_ms;
  hs->deadline = g_timeout_source_new (self->handshake_timeout_ms);
  g_source_set_callback (hs->deadline, on_handshake_deadline, hs, NULL);
  g_source_set_static_name (hs->deadline, "[libpeer] handshake deadline");
  g_source_attach (hs->deadline, self->context);
  g_ptr_array_add (self->handshakes, hs);

  g_dbus_connection_new (G_IO_STREAM (hs->stream), NULL,
                         G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                         G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                         NULL, hs->cancellable, on_handshake_done, hs);
}

/* Connection limits, checked as soon as a connection is accepted: one over
 * is closed at once, before it costs a handshake thread. */
static gboolean
admit_connection (PeerServer *self,
                  GSocket    *client)
{
  g_autoptr(GError) refusal = NULL;
  guint n_peers = peer_server_get_n_peers (self);

  if (self->handshakes->len >= self->max_handshakes)
    refusal = g_error_new (PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                           "%u connections are authenticating, the most allowed", self->max_handshakes);
  else if (n_peers >= self->max_peers)
    refusal = g_error_new (PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                           "%u peers are connected, the most allowed", self->max_peers);
  if (refusal == NULL)
    return TRUE;

  g_debug ("libpeer: refusing a connection: %s", refusal->message);
  g_socket_close (client, NULL);
  count_refused (self);
  _peer_server_emit_peer_refused (self, refusal);
  return FALSE;
}

gboolean
_peer_server_on_incoming (GSocket      *sock,
                          GIOCondition  condition,
                          gpointer      user_data)
{
  PeerServer *self = user_data;

  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GSocket) client = g_socket_accept (sock, NULL, &error);

      if (client == NULL)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            g_debug ("libpeer: accept failed: %s", error->message);
          break;
        }
      if (!admit_connection (self, client))
        continue;
      start_handshake (self, client);
    }
  return G_SOURCE_CONTINUE;
}

/* The server stops: what is still authenticating will not become a peer. */
void
_peer_server_cancel_handshakes (PeerServer *self)
{
  for (guint i = 0; i < self->handshakes->len; i++)
    {
      Handshake *hs = g_ptr_array_index (self->handshakes, i);
      hs->server = NULL;
      g_cancellable_cancel (hs->cancellable);
    }
  g_ptr_array_set_size (self->handshakes, 0);
}
