/* peer-server.c: a PeerServer's lifecycle: its socket, listening, start
 * and stop, and the registry of its peers with their limits. How a
 * connection authenticates and becomes a peer is peer-server-auth.c's,
 * which hands it on to _peer_server_add_peer() (see
 * peer-server-auth-private.h).
 *
 * Why not GDBusServer: on GLib 2.74 it authenticates each connection in a
 * thread of an unbounded GThreadedSocketService with no deadline (a peer
 * that sends nothing holds a thread forever), and the connections it makes
 * belong to the global default main context, so their "closed" signals never
 * reach a server living in another context. PeerServer keeps GDBus's
 * authentication (the same GDBusAuthObserver, through g_dbus_connection_new
 * with G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER, which also negotiates
 * fd passing) but owns the socket: it accepts in its own main context, puts
 * a deadline on every handshake, and creates connections in that context.
 *
 * Owning the socket is also what lets it bound what connecting costs: how
 * many connections may authenticate at once and how many peers may be
 * connected (checked at accept, before a handshake thread is spent), and
 * how many bytes a peer may send before it has authenticated (the stream
 * handed to GDBus, peer-auth-connection.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "peer-address-private.h"
#include "peer-blob.h"
#include "peer-bus-driver-private.h"
#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-helper.h"
#include "peer-interface-private.h"
#include "peer-object-registry-private.h"
#include "peer-policy.h"
#include "peer-router-private.h"
#include "peer-server-auth-private.h"
#include "peer-server-socket-private.h"
#include "peer-lane-private.h"
#include "peer-wire-private.h"

enum { PROP_0, PROP_ADDRESS, PROP_POLICY, PROP_FLAGS, N_PROPS };
static GParamSpec *properties[N_PROPS];

enum { SIGNAL_PEER_CONNECTED, SIGNAL_PEER_DISCONNECTED, SIGNAL_PEER_REFUSED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void peer_server_initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (PeerServer, peer_server, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, peer_server_initable_iface_init))

G_STATIC_ASSERT (PEER_SERVER_DEFAULT_MAX_MATCH_RULES == PEER_ROUTER_DEFAULT_MAX_MATCH_RULES);

/* --- socket set-up ------------------------------------------------------ */

/* peer_server_new_for_fd(): wraps the connected socket a helper was given. */
static gboolean
adopt_socket (PeerServer *self,
              GError    **error)
{
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GError) local_error = NULL;
  int fd = self->adopted_fd;
  struct stat st;

  /* Asked first: GSocket warns (g_warning) about an fd that is not open
   * before it fails. */
  if (fstat (fd, &st) != 0)
    {
      int saved_errno = errno;
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "fd %d is not open: %s", fd, g_strerror (saved_errno));
      self->adopted_fd = -1;            /* nothing to close */
      return FALSE;
    }
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "fd %d is not a socket", fd);
      return FALSE;
    }
  sock = g_socket_new_from_fd (fd, &local_error);
  if (sock == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "fd %d is not a connected socket: %s", fd, local_error->message);
      return FALSE;
    }
  self->adopted_fd = -1;                /* the GSocket owns it now */
  if (g_socket_get_family (sock) != G_SOCKET_FAMILY_UNIX ||
      g_socket_get_socket_type (sock) != G_SOCKET_TYPE_STREAM ||
      !g_socket_is_connected (sock))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "fd %d is not a connected Unix stream socket", fd);
      return FALSE;
    }
  /* Inherited fds come without close-on-exec; the helper's own children
   * must not hold its connection open. */
  fcntl (fd, F_SETFD, fcntl (fd, F_GETFD) | FD_CLOEXEC);
  self->adopted = g_socket_connection_factory_create_connection (sock);
  return TRUE;
}

static gboolean
peer_server_initable_init (GInitable     *initable,
                           GCancellable  *cancellable,
                           GError       **error)
{
  PeerServer *self = PEER_SERVER (initable);
  g_autoptr(GSocketAddress) sockaddr = NULL;
  g_autofree char *escaped = NULL;

  if (self->policy == NULL)
    self->policy = peer_policy_new ();
  _peer_server_auth_init (self);

  if (self->adopted_fd >= 0)
    return adopt_socket (self, error);

  if (self->address == NULL)
    {
      self->socket_dir = _peer_server_socket_make_private_dir (error);
      if (self->socket_dir == NULL)
        return FALSE;
      self->socket_path = g_build_filename (self->socket_dir, "socket", NULL);
    }
  else
    {
      g_autoptr(PeerAddress) address = NULL;

      if (!peer_address_parse (self->address, &address, error))
        return FALSE;
      if (!peer_address_is_private (address) &&
          !(self->flags & PEER_SERVER_FLAGS_ALLOW_UNSAFE_ADDRESS))
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_UNSAFE_ADDRESS,
                       "Refusing %s address '%s': only path sockets are private "
                       "(abstract sockets and TCP are reachable by other users)",
                       peer_address_kind_to_string (address->kind), self->address);
          return FALSE;
        }

      switch (address->kind)
        {
        case PEER_ADDRESS_UNIX_PATH:
          self->socket_path = g_strdup (address->value);
          break;
        case PEER_ADDRESS_UNIX_DIR:
          {
            g_autofree char *name = _peer_server_socket_random_name ();
            g_autofree char *file = g_strconcat ("libpeer-", name, NULL);
            self->socket_path = g_build_filename (address->value, file, NULL);
          }
          break;
        case PEER_ADDRESS_UNIX_ABSTRACT:
          sockaddr = g_unix_socket_address_new_with_type (address->value, -1,
                                                          G_UNIX_SOCKET_ADDRESS_ABSTRACT);
          escaped = g_dbus_address_escape_value (address->value);
          self->client_address = g_strconcat ("unix:abstract=", escaped, NULL);
          break;
        case PEER_ADDRESS_UNIX_TMPDIR:
          {
            g_autofree char *name = _peer_server_socket_random_name ();
            g_autofree char *abstract = g_strconcat (address->value, "/libpeer-", name, NULL);
            sockaddr = g_unix_socket_address_new_with_type (abstract, -1,
                                                            G_UNIX_SOCKET_ADDRESS_ABSTRACT);
            escaped = g_dbus_address_escape_value (abstract);
            self->client_address = g_strconcat ("unix:abstract=", escaped, NULL);
          }
          break;
        case PEER_ADDRESS_TCP:
        case PEER_ADDRESS_NONCE_TCP:
        default:
          g_set_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                       "Cannot serve '%s': EXTERNAL authentication needs a Unix socket",
                       self->address);
          return FALSE;
        }
    }

  if (self->socket_path != NULL)
    {
      if (strlen (self->socket_path) >= sizeof (((struct sockaddr_un *) NULL)->sun_path))
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Socket path %s is too long for a Unix socket", self->socket_path);
          return FALSE;
        }
      if (!_peer_server_socket_check_existing (self->socket_path, error))
        return FALSE;
      sockaddr = g_unix_socket_address_new (self->socket_path);
      escaped = g_dbus_address_escape_value (self->socket_path);
      self->client_address = g_strconcat ("unix:path=", escaped, NULL);
    }

  self->listen_socket = _peer_server_socket_listen (sockaddr, self->client_address, self->socket_path,
                                                   peer_policy_admits_other_users (self->policy),
                                                   &self->socket_dev, &self->socket_ino, error);
  return self->listen_socket != NULL;
}

static void
peer_server_initable_iface_init (GInitableIface *iface)
{
  iface->init = peer_server_initable_init;
}

/* --- peers -------------------------------------------------------------- */

static void
on_peer_closed (PeerConnection *peer,
                const GError   *reason,
                PeerServer     *self)
{
  guint64 id = peer_connection_get_id (peer);
  g_autoptr(PeerConnection) removed = NULL;
  g_autofree guint64 *key = NULL;

  g_mutex_lock (&self->lock);
  g_hash_table_steal_extended (self->peers, &id, (gpointer *) &key, (gpointer *) &removed);
  g_mutex_unlock (&self->lock);

  if (removed != NULL)
    {
      const char *name = peer_connection_get_unique_name (peer);

      _peer_router_remove_peer (self->router, peer);
      g_signal_handlers_disconnect_by_func (peer, on_peer_closed, self);
      if (self->driver != NULL)
        peer_interface_emit_signal (self->driver, NULL, "NameOwnerChanged",
                                    g_variant_new ("(sss)", name, name, ""), NULL);
      g_signal_emit (self, signals[SIGNAL_PEER_DISCONNECTED], 0, peer);
    }
}

void
_peer_server_add_peer (PeerServer      *self,
                       GDBusConnection *connection)
{
  g_autoptr(PeerConnection) peer = NULL;
  guint64 *key;

  peer = _peer_connection_new (connection, ++self->next_peer_id, self->router);
  _peer_connection_set_limits (peer, self->max_fds_per_message, self->blob_threshold);
  _peer_connection_set_resource_limits (peer, self->max_calls_in_flight, self->max_queued_bytes,
                                        self->max_message_size);
  _peer_wire_limits_set_max_mapped (_peer_connection_get_limits (peer), self->max_mapped_bytes);

  {
    g_autoptr(GError) error = NULL;

    if (!_peer_object_registry_add_peer (self->objects, peer, &error))
      {
        g_debug ("libpeer: cannot export on %s: %s", peer_connection_get_unique_name (peer), error->message);
        peer_connection_close (peer, error);
        return;
      }
  }

  key = g_new (guint64, 1);
  *key = peer_connection_get_id (peer);
  g_mutex_lock (&self->lock);
  g_hash_table_insert (self->peers, key, g_object_ref (peer));
  g_mutex_unlock (&self->lock);
  g_signal_connect (peer, "closed", G_CALLBACK (on_peer_closed), self);
  /* As a bus announces a new connection, to whoever watches for it. */
  if (self->driver != NULL)
    peer_interface_emit_signal (self->driver, NULL, "NameOwnerChanged",
                                g_variant_new ("(sss)", peer_connection_get_unique_name (peer), "",
                                               peer_connection_get_unique_name (peer)), NULL);
  _peer_router_add_peer (self->router, peer);

  g_debug ("libpeer: peer %s connected (uid %d, pid %d)", peer_connection_get_unique_name (peer),
           (int) peer_connection_get_uid (peer), (int) peer_connection_get_pid (peer));
  g_signal_emit (self, signals[SIGNAL_PEER_CONNECTED], 0, peer);
  g_dbus_connection_start_message_processing (connection);
}

void
_peer_server_emit_peer_refused (PeerServer   *self,
                                const GError *reason)
{
  g_signal_emit (self, signals[SIGNAL_PEER_REFUSED], 0, reason);
}

/* --- public API --------------------------------------------------------- */

PeerServer *
peer_server_new (const char      *address,
                 PeerPolicy      *policy,
                 PeerServerFlags  flags,
                 GCancellable    *cancellable,
                 GError         **error)
{
  g_return_val_if_fail (policy == NULL || PEER_IS_POLICY (policy), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  return g_initable_new (PEER_TYPE_SERVER, cancellable, error,
                         "address", address,
                         "policy", policy,
                         "flags", flags,
                         NULL);
}

/* The fd named by $PEER_FD, which the environment then forgets, so that
 * the helper's own children do not take it for theirs. */
static int
take_inherited_fd (GError **error)
{
  const char *text = g_getenv (PEER_HELPER_FD_ENV);
  guint64 fd;

  if (text == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "$%s is not set: this program was not started as a helper", PEER_HELPER_FD_ENV);
      return -1;
    }
  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXINT, &fd, NULL) ||
      fcntl ((int) fd, F_GETFD) < 0)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "$%s is '%s', not an open fd", PEER_HELPER_FD_ENV, text);
      return -1;
    }
  g_unsetenv (PEER_HELPER_FD_ENV);
  return (int) fd;
}

PeerServer *
peer_server_new_for_fd (int               fd,
                        PeerPolicy       *policy,
                        PeerServerFlags   flags,
                        GError          **error)
{
  g_autoptr(PeerServer) self = NULL;

  g_return_val_if_fail (policy == NULL || PEER_IS_POLICY (policy), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (fd < 0)
    fd = take_inherited_fd (error);
  if (fd < 0)
    return NULL;
  self = g_object_new (PEER_TYPE_SERVER, "policy", policy, "flags", flags, NULL);
  self->adopted_fd = fd;
  if (!g_initable_init (G_INITABLE (self), NULL, error))
    return NULL;
  return g_steal_pointer (&self);
}

void
peer_server_start (PeerServer *self)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  g_return_if_fail (self->listen_socket != NULL || self->adopted != NULL);
  g_return_if_fail (!self->stopped);

  if (self->started)
    return;
  self->started = TRUE;
  if (self->adopted != NULL)
    {
      _peer_server_start_adopted_handshake (self);
      return;
    }
  self->accept_source = g_socket_create_source (self->listen_socket, G_IO_IN, NULL);
  g_source_set_callback (self->accept_source, (GSourceFunc) (void (*) (void)) _peer_server_on_incoming, self, NULL);
  g_source_set_static_name (self->accept_source, "[libpeer] accept");
  g_source_attach (self->accept_source, self->context);
}

static void
remove_socket_file (PeerServer *self)
{
  _peer_server_socket_remove (self->socket_path, self->socket_dir, self->socket_dev, self->socket_ino);
}

void
peer_server_stop (PeerServer *self)
{
  g_autoptr(GPtrArray) peers = NULL;
  g_autoptr(GError) reason = NULL;

  g_return_if_fail (PEER_IS_SERVER (self));

  if (self->stopped || (self->listen_socket == NULL && self->adopted == NULL))
    return;
  self->stopped = TRUE;

  if (self->accept_source != NULL)
    {
      g_source_destroy (self->accept_source);
      g_clear_pointer (&self->accept_source, g_source_unref);
    }
  if (self->listen_socket != NULL)
    g_socket_close (self->listen_socket, NULL);
  else if (!self->started)
    g_io_stream_close (G_IO_STREAM (self->adopted), NULL, NULL);    /* the other end sees EOF */
  remove_socket_file (self);

  _peer_server_cancel_handshakes (self);

  reason = g_error_new_literal (PEER_ERROR, PEER_ERROR_DISCONNECTED, "Server stopped");
  peers = peer_server_list_peers (self);
  for (guint i = 0; i < peers->len; i++)
    peer_connection_close (g_ptr_array_index (peers, i), reason);
}

const char *
peer_server_get_client_address (PeerServer *self)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), NULL);
  return self->client_address;
}

const char *
peer_server_get_socket_path (PeerServer *self)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), NULL);
  return self->socket_path;
}

const char *
peer_server_get_guid (PeerServer *self)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), NULL);
  return self->guid;
}

PeerPolicy *
peer_server_get_policy (PeerServer *self)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), NULL);
  return self->policy;
}

void
peer_server_set_handshake_timeout (PeerServer *self,
                                   guint       timeout_ms)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  g_return_if_fail (timeout_ms > 0);
  self->handshake_timeout_ms = timeout_ms;
}

static void
update_peer_limits (PeerServer *self)
{
  g_autoptr(GPtrArray) peers = peer_server_list_peers (self);

  for (guint i = 0; i < peers->len; i++)
    {
      _peer_connection_set_limits (g_ptr_array_index (peers, i), self->max_fds_per_message,
                                   self->blob_threshold);
      _peer_connection_set_resource_limits (g_ptr_array_index (peers, i), self->max_calls_in_flight,
                                            self->max_queued_bytes, self->max_message_size);
      _peer_wire_limits_set_max_mapped (_peer_connection_get_limits (g_ptr_array_index (peers, i)),
                                        self->max_mapped_bytes);
    }
}

void
peer_server_set_max_fds_per_message (PeerServer *self,
                                     guint       max_fds)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  g_return_if_fail (max_fds <= PEER_SERVER_MAX_FDS_PER_MESSAGE);

  self->max_fds_per_message = max_fds;
  update_peer_limits (self);
}

void
peer_server_set_blob_threshold (PeerServer *self,
                                gsize       threshold)
{
  g_return_if_fail (PEER_IS_SERVER (self));

  self->blob_threshold = threshold;
  update_peer_limits (self);
}

void
peer_server_set_max_peers (PeerServer *self,
                           guint       max_peers)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  g_return_if_fail (max_peers > 0);
  self->max_peers = max_peers;
}

void
peer_server_set_max_handshakes (PeerServer *self,
                                guint       max_handshakes)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  g_return_if_fail (max_handshakes > 0);
  self->max_handshakes = max_handshakes;
}

void
peer_server_set_max_calls_in_flight (PeerServer *self,
                                     guint       max_calls)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  g_return_if_fail (max_calls > 0);
  self->max_calls_in_flight = max_calls;
  update_peer_limits (self);
}

void
peer_server_set_max_queued_bytes (PeerServer *self,
                                  gsize       max_bytes)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  self->max_queued_bytes = max_bytes;
  update_peer_limits (self);
}

void
peer_server_set_max_message_size (PeerServer *self,
                                   guint       max_size)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  self->max_message_size = max_size;
  update_peer_limits (self);
}

gboolean
peer_server_export (PeerServer    *self,
                    const char    *object_path,
                    PeerInterface *iface,
                    GError       **error)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (PEER_IS_INTERFACE (iface), FALSE);
  g_return_val_if_fail (self->objects != NULL, FALSE);

  return _peer_object_registry_export (self->objects, object_path, iface, FALSE, error);
}

void
peer_server_unexport (PeerServer    *self,
                      PeerInterface *iface)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  g_return_if_fail (PEER_IS_INTERFACE (iface));

  if (self->objects != NULL)
    _peer_object_registry_unexport (self->objects, NULL, iface);
}

PeerObjectRegistry *
_peer_server_get_object_registry (PeerServer *self)
{
  return self->objects;
}

gboolean
peer_server_emit_signal (PeerServer     *self,
                         PeerConnection *destination,
                         const char     *object_path,
                         const char     *interface_name,
                         const char     *signal_name,
                         GVariant       *parameters,
                         GError        **error)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (destination == NULL || PEER_IS_CONNECTION (destination), FALSE);

  return _peer_router_emit_signal (self->router, destination, object_path, interface_name,
                                   signal_name, parameters, error);
}

gboolean
peer_server_add_name (PeerServer  *self,
                      const char  *name,
                      GError     **error)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);

  return _peer_router_add_name (self->router, name, error);
}

gboolean
peer_server_remove_name (PeerServer *self,
                         const char *name)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (name != NULL, FALSE);

  return _peer_router_remove_name (self->router, name);
}

char **
peer_server_dup_names (PeerServer *self)
{
  g_return_val_if_fail (PEER_IS_SERVER (self), NULL);

  return _peer_router_dup_names (self->router);
}

void
peer_server_set_max_mapped_bytes (PeerServer *self,
                                  gsize       max_bytes)
{
  g_return_if_fail (PEER_IS_SERVER (self));
  self->max_mapped_bytes = max_bytes;
  update_peer_limits (self);
}

void
peer_server_set_max_match_rules (PeerServer *self,
                                 guint       max_rules)
{
  g_return_if_fail (PEER_IS_SERVER (self));

  _peer_router_set_max_match_rules (self->router, max_rules);
}

GPtrArray *
peer_server_list_peers (PeerServer *self)
{
  GPtrArray *peers;
  GHashTableIter iter;
  gpointer value;

  g_return_val_if_fail (PEER_IS_SERVER (self), NULL);

  g_mutex_lock (&self->lock);
  peers = g_ptr_array_new_full (g_hash_table_size (self->peers), g_object_unref);
  g_hash_table_iter_init (&iter, self->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (peers, g_object_ref (value));
  g_mutex_unlock (&self->lock);
  return peers;
}

guint
peer_server_get_n_peers (PeerServer *self)
{
  guint n;

  g_return_val_if_fail (PEER_IS_SERVER (self), 0);

  g_mutex_lock (&self->lock);
  n = g_hash_table_size (self->peers);
  g_mutex_unlock (&self->lock);
  return n;
}

guint64
peer_server_get_n_refused (PeerServer *self)
{
  guint64 n;

  g_return_val_if_fail (PEER_IS_SERVER (self), 0);

  g_mutex_lock (&self->lock);
  n = self->n_refused;
  g_mutex_unlock (&self->lock);
  return n;
}

/* --- GObject ------------------------------------------------------------ */

static void
add_builtin (PeerServer    *self,
             PeerInterface *iface,
             const char    *object_path)
{
  if (!_peer_object_registry_export (self->objects, object_path, iface, TRUE, NULL))
    g_assert_not_reached ();
}

static void
peer_server_constructed (GObject *object)
{
  PeerServer *self = PEER_SERVER (object);

  G_OBJECT_CLASS (peer_server_parent_class)->constructed (object);

  if (!(self->flags & PEER_SERVER_FLAGS_NO_BUS_COMPAT))
    {
      self->driver = _peer_bus_driver_new (self->router);
      add_builtin (self, self->driver, PEER_ROUTER_BUS_PATH);
      _peer_router_set_driver (self->router, self->driver);
      self->monitoring = _peer_bus_driver_new_monitoring (self->router);
      add_builtin (self, self->monitoring, PEER_ROUTER_BUS_PATH);
    }

  /* How libpeer clients learn that this server speaks libpeer. */
  self->wire = _peer_server_transport_interface_new ();
  add_builtin (self, self->wire, PEER_WIRE_PATH);

  self->lane = _peer_lane_interface_new (self->router, self);
  add_builtin (self, self->lane, PEER_LANE_PATH);
}

static void
peer_server_dispose (GObject *object)
{
  PeerServer *self = PEER_SERVER (object);

  g_autoptr(GPtrArray) peers = NULL;

  peer_server_stop (self);
  /* The peers close asynchronously; their "closed" must not reach a
   * server that is going away. */
  peers = peer_server_list_peers (self);
  for (guint i = 0; i < peers->len; i++)
    g_signal_handlers_disconnect_by_func (g_ptr_array_index (peers, i), on_peer_closed, self);
  g_mutex_lock (&self->lock);
  g_hash_table_remove_all (self->peers);
  g_mutex_unlock (&self->lock);
  /* Unbinding drops each interface's reference on the router, so the
   * router (and the driver it holds) goes with the last peer's filter. */
  g_clear_pointer (&self->objects, _peer_object_registry_free);
  /* The router keeps its driver until it goes itself: a filter may still
   * be running in GDBus's worker thread. */
  g_clear_object (&self->driver);
  g_clear_object (&self->monitoring);
  g_clear_object (&self->wire);
  g_clear_object (&self->lane);

  G_OBJECT_CLASS (peer_server_parent_class)->dispose (object);
}

static void
peer_server_finalize (GObject *object)
{
  PeerServer *self = PEER_SERVER (object);

  if (self->listen_socket != NULL && !self->stopped)
    remove_socket_file (self);
  else if (self->listen_socket == NULL && self->socket_dir != NULL)
    g_rmdir (self->socket_dir);      /* init failed after making the directory */
  g_clear_object (&self->listen_socket);
  g_clear_object (&self->adopted);
  if (self->adopted_fd >= 0)
    close (self->adopted_fd);
  g_hash_table_unref (self->peers);
  g_ptr_array_unref (self->handshakes);
  _peer_router_unref (self->router);
  g_clear_object (&self->observer);
  g_clear_object (&self->policy);
  g_main_context_unref (self->context);
  g_free (self->address);
  g_free (self->guid);
  g_free (self->socket_path);
  g_free (self->socket_dir);
  g_free (self->client_address);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (peer_server_parent_class)->finalize (object);
}

static void
peer_server_set_gproperty (GObject      *object,
                           guint         prop_id,
                           const GValue *value,
                           GParamSpec   *pspec)
{
  PeerServer *self = PEER_SERVER (object);

  switch (prop_id)
    {
    case PROP_ADDRESS:
      self->address = g_value_dup_string (value);
      break;
    case PROP_POLICY:
      self->policy = g_value_dup_object (value);
      break;
    case PROP_FLAGS:
      self->flags = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
peer_server_get_gproperty (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  PeerServer *self = PEER_SERVER (object);

  switch (prop_id)
    {
    case PROP_ADDRESS:
      g_value_set_string (value, self->address);
      break;
    case PROP_POLICY:
      g_value_set_object (value, self->policy);
      break;
    case PROP_FLAGS:
      g_value_set_uint (value, self->flags);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
peer_server_class_init (PeerServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = peer_server_constructed;
  object_class->dispose = peer_server_dispose;
  object_class->finalize = peer_server_finalize;
  object_class->set_property = peer_server_set_gproperty;
  object_class->get_property = peer_server_get_gproperty;

  properties[PROP_ADDRESS] =
    g_param_spec_string ("address", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_POLICY] =
    g_param_spec_object ("policy", NULL, NULL, PEER_TYPE_POLICY,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_FLAGS] =
    g_param_spec_uint ("flags", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * PeerServer::peer-connected:
   * @self: the server
   * @peer: (transfer none): the peer that authenticated
   *
   * Emitted in the server's main context when a peer passed
   * authentication and the policy.
   */
  signals[SIGNAL_PEER_CONNECTED] =
    g_signal_new ("peer-connected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, PEER_TYPE_CONNECTION);
  /**
   * PeerServer::peer-disconnected:
   * @self: the server
   * @peer: (transfer none): the peer that left; see
   *   peer_connection_dup_close_reason()
   *
   * Emitted in the server's main context when a connected peer is gone.
   */
  signals[SIGNAL_PEER_DISCONNECTED] =
    g_signal_new ("peer-disconnected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, PEER_TYPE_CONNECTION);
  /**
   * PeerServer::peer-refused:
   * @self: the server
   * @reason: (transfer none): why: the policy, a mechanism other than
   *   EXTERNAL, a malformed or oversized handshake, the handshake
   *   deadline, or a connection limit (PEER_ERROR_LIMIT_EXCEEDED)
   *
   * Emitted when a connection is closed before it became a peer.
   */
  signals[SIGNAL_PEER_REFUSED] =
    g_signal_new ("peer-refused", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
peer_server_init (PeerServer *self)
{
  g_mutex_init (&self->lock);
  self->context = g_main_context_ref_thread_default ();
  self->guid = g_dbus_generate_guid ();
  self->router = _peer_router_new (self->guid);
  self->peers = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_object_unref);
  self->handshakes = g_ptr_array_new ();
  self->objects = _peer_object_registry_new (self->router);
  self->handshake_timeout_ms = PEER_SERVER_DEFAULT_HANDSHAKE_TIMEOUT_MS;
  self->adopted_fd = -1;
  self->max_fds_per_message = PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE;
  self->blob_threshold = PEER_BLOB_DEFAULT_THRESHOLD;
  self->max_peers = PEER_SERVER_DEFAULT_MAX_PEERS;
  self->max_handshakes = PEER_SERVER_DEFAULT_MAX_HANDSHAKES;
  self->max_calls_in_flight = PEER_SERVER_DEFAULT_MAX_CALLS_IN_FLIGHT;
  self->max_queued_bytes = PEER_SERVER_DEFAULT_MAX_QUEUED_BYTES;
  self->max_mapped_bytes = PEER_SERVER_DEFAULT_MAX_MAPPED_BYTES;
  self->max_message_size = PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE;
}

