/* peer-router.c: the path every D-Bus message takes through the server.
 *
 * See peer-router-private.h for the steps. Everything here runs in GDBus's
 * worker thread (one thread for every connection of the process) except
 * where a function says otherwise, so the shared tables sit behind one
 * reader-writer lock that the hot path takes for reading only, and the
 * no-monitor case costs one atomic read.
 */
#include "config.h"

#include <string.h>

#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-router-private.h"
#include "peer-validate-private.h"
#include "peer-wire-private.h"

struct _PeerRouter
{
  gatomicrefcount ref_count;
  char *guid;                           /* read-only */
  PeerInterface *driver;                /* set before the first peer, then read-only */
  PeerRouterMonitorCheck monitor_check; /* likewise */
  gpointer monitor_check_data;
  GDestroyNotify monitor_check_destroy;
  guint max_match_rules;                /* atomic */
  gint n_monitors;                      /* atomic: monitors->len */
  guint objects_serial;                 /* atomic: bumped by each change of @objects */

  GRWLock lock;
  /* Protected by @lock */
  GHashTable *objects;                  /* path → GPtrArray of PeerInterface* (owned) */
  GPtrArray *object_order;              /* PeerRouterObject*, owned: export order */
  GHashTable *peers;                    /* unique name → PeerConnection* (owned) */
  GPtrArray *names;                     /* char*, owned */
  GPtrArray *monitors;                  /* PeerConnection*, owned */
};

PeerRouter *
_peer_router_new (const char *guid)
{
  PeerRouter *router = g_new0 (PeerRouter, 1);

  g_atomic_ref_count_init (&router->ref_count);
  router->guid = g_strdup (guid);
  router->max_match_rules = PEER_ROUTER_DEFAULT_MAX_MATCH_RULES;
  g_rw_lock_init (&router->lock);
  router->objects = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify) g_ptr_array_unref);
  router->object_order = g_ptr_array_new_with_free_func ((GDestroyNotify) _peer_router_object_free);
  router->peers = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_object_unref);
  router->names = g_ptr_array_new_with_free_func (g_free);
  router->monitors = g_ptr_array_new_with_free_func (g_object_unref);
  return router;
}

PeerRouter *
_peer_router_ref (PeerRouter *router)
{
  g_atomic_ref_count_inc (&router->ref_count);
  return router;
}

void
_peer_router_unref (PeerRouter *router)
{
  if (router == NULL || !g_atomic_ref_count_dec (&router->ref_count))
    return;
  g_clear_object (&router->driver);
  if (router->monitor_check_destroy != NULL)
    router->monitor_check_destroy (router->monitor_check_data);
  g_hash_table_unref (router->objects);
  g_ptr_array_unref (router->object_order);
  g_hash_table_unref (router->peers);
  g_ptr_array_unref (router->names);
  g_ptr_array_unref (router->monitors);
  g_rw_lock_clear (&router->lock);
  g_free (router->guid);
  g_free (router);
}

const char *
_peer_router_get_guid (PeerRouter *router)
{
  return router->guid;
}

void
_peer_router_set_driver (PeerRouter    *router,
                         PeerInterface *driver)
{
  g_set_object (&router->driver, driver);
}

void
_peer_router_set_monitor_check (PeerRouter            *router,
                                PeerRouterMonitorCheck check,
                                gpointer               user_data,
                                GDestroyNotify         destroy)
{
  if (router->monitor_check_destroy != NULL)
    router->monitor_check_destroy (router->monitor_check_data);
  router->monitor_check = check;
  router->monitor_check_data = user_data;
  router->monitor_check_destroy = destroy;
}

void
_peer_router_set_max_match_rules (PeerRouter *router,
                                  guint       max_rules)
{
  g_atomic_int_set (&router->max_match_rules, max_rules);
}

guint
_peer_router_get_max_match_rules (PeerRouter *router)
{
  return (guint) g_atomic_int_get (&router->max_match_rules);
}

/* --- objects ------------------------------------------------------------ */

static PeerRouterObject *
router_object_new (const char    *path,
                   PeerInterface *iface)
{
  PeerRouterObject *object = g_new (PeerRouterObject, 1);

  object->path = g_strdup (path);
  object->iface = g_object_ref (iface);
  return object;
}

void
_peer_router_object_free (PeerRouterObject *object)
{
  g_free (object->path);
  g_object_unref (object->iface);
  g_free (object);
}

void
_peer_router_add_object (PeerRouter    *router,
                         const char    *object_path,
                         PeerInterface *iface)
{
  GPtrArray *at_path;

  g_rw_lock_writer_lock (&router->lock);
  at_path = g_hash_table_lookup (router->objects, object_path);
  if (at_path == NULL)
    {
      at_path = g_ptr_array_new_with_free_func (g_object_unref);
      g_hash_table_insert (router->objects, g_strdup (object_path), at_path);
    }
  g_ptr_array_add (at_path, g_object_ref (iface));
  g_ptr_array_add (router->object_order, router_object_new (object_path, iface));
  g_atomic_int_inc (&router->objects_serial);
  g_rw_lock_writer_unlock (&router->lock);
}

void
_peer_router_remove_object (PeerRouter    *router,
                            const char    *object_path,
                            PeerInterface *iface)
{
  GPtrArray *at_path;

  g_rw_lock_writer_lock (&router->lock);
  at_path = g_hash_table_lookup (router->objects, object_path);
  if (at_path != NULL && g_ptr_array_remove (at_path, iface) && at_path->len == 0)
    g_hash_table_remove (router->objects, object_path);
  for (guint i = 0; i < router->object_order->len; i++)
    {
      PeerRouterObject *object = g_ptr_array_index (router->object_order, i);

      if (object->iface == iface && g_str_equal (object->path, object_path))
        {
          g_ptr_array_remove_index (router->object_order, i);
          break;
        }
    }
  g_atomic_int_inc (&router->objects_serial);
  g_rw_lock_writer_unlock (&router->lock);
}

guint
_peer_router_get_objects_serial (PeerRouter *router)
{
  return (guint) g_atomic_int_get (&router->objects_serial);
}

GPtrArray *
_peer_router_dup_objects (PeerRouter *router)
{
  GPtrArray *objects;

  g_rw_lock_reader_lock (&router->lock);
  objects = g_ptr_array_new_full (router->object_order->len, (GDestroyNotify) _peer_router_object_free);
  for (guint i = 0; i < router->object_order->len; i++)
    {
      PeerRouterObject *object = g_ptr_array_index (router->object_order, i);

      g_ptr_array_add (objects, router_object_new (object->path, object->iface));
    }
  g_rw_lock_reader_unlock (&router->lock);
  return objects;
}

PeerInterface *
_peer_router_lookup_object (PeerRouter *router,
                            const char *path,
                            const char *interface_name)
{
  PeerInterface *found = NULL;
  GPtrArray *at_path;

  g_rw_lock_reader_lock (&router->lock);
  at_path = g_hash_table_lookup (router->objects, path);
  for (guint i = 0; at_path != NULL && i < at_path->len; i++)
    {
      PeerInterface *iface = g_ptr_array_index (at_path, i);

      if (g_str_equal (peer_interface_get_info (iface)->name, interface_name))
        {
          found = g_object_ref (iface);
          break;
        }
    }
  g_rw_lock_reader_unlock (&router->lock);
  return found;
}

/* --- peers and names ---------------------------------------------------- */

void
_peer_router_add_peer (PeerRouter     *router,
                       PeerConnection *peer)
{
  g_rw_lock_writer_lock (&router->lock);
  g_hash_table_replace (router->peers, (gpointer) peer_connection_get_unique_name (peer),
                        g_object_ref (peer));
  g_rw_lock_writer_unlock (&router->lock);
}

void
_peer_router_remove_peer (PeerRouter     *router,
                          PeerConnection *peer)
{
  g_autoptr(PeerConnection) removed = NULL;
  g_autoptr(PeerConnection) monitor = NULL;
  guint index;

  g_rw_lock_writer_lock (&router->lock);
  if (g_hash_table_lookup (router->peers, peer_connection_get_unique_name (peer)) == peer)
    g_hash_table_steal_extended (router->peers, peer_connection_get_unique_name (peer),
                                 NULL, (gpointer *) &removed);
  if (g_ptr_array_find (router->monitors, peer, &index))
    {
      monitor = g_ptr_array_steal_index (router->monitors, index);
      g_atomic_int_set (&router->n_monitors, router->monitors->len);
    }
  g_rw_lock_writer_unlock (&router->lock);
}

PeerConnection *
_peer_router_lookup_peer (PeerRouter *router,
                          const char *unique_name)
{
  PeerConnection *peer;

  g_rw_lock_reader_lock (&router->lock);
  peer = g_hash_table_lookup (router->peers, unique_name);
  if (peer != NULL)
    g_object_ref (peer);
  g_rw_lock_reader_unlock (&router->lock);
  return peer;
}

GPtrArray *
_peer_router_dup_peers (PeerRouter *router)
{
  GPtrArray *peers;
  GHashTableIter iter;
  gpointer value;

  g_rw_lock_reader_lock (&router->lock);
  peers = g_ptr_array_new_full (g_hash_table_size (router->peers), g_object_unref);
  g_hash_table_iter_init (&iter, router->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (peers, g_object_ref (value));
  g_rw_lock_reader_unlock (&router->lock);
  return peers;
}

static gboolean
names_contain (GPtrArray  *names,
               const char *name)
{
  for (guint i = 0; i < names->len; i++)
    if (g_str_equal (g_ptr_array_index (names, i), name))
      return TRUE;
  return FALSE;
}

gboolean
_peer_router_add_name (PeerRouter *router,
                       const char *name,
                       GError    **error)
{
  gboolean added = FALSE;

  if (name == NULL || !g_dbus_is_name (name) || g_dbus_is_unique_name (name) ||
      g_str_equal (name, PEER_ROUTER_BUS_NAME))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "'%s' is not a well-known bus name the server can own", name ? name : "(null)");
      return FALSE;
    }
  g_rw_lock_writer_lock (&router->lock);
  if (!names_contain (router->names, name))
    {
      g_ptr_array_add (router->names, g_strdup (name));
      added = TRUE;
    }
  g_rw_lock_writer_unlock (&router->lock);
  if (added && router->driver != NULL)
    peer_interface_emit_signal (router->driver, NULL, "NameOwnerChanged",
                                g_variant_new ("(sss)", name, "", PEER_ROUTER_SERVER_NAME), NULL);
  return TRUE;
}

gboolean
_peer_router_remove_name (PeerRouter *router,
                          const char *name)
{
  gboolean removed = FALSE;

  g_rw_lock_writer_lock (&router->lock);
  for (guint i = 0; i < router->names->len; i++)
    if (g_str_equal (g_ptr_array_index (router->names, i), name))
      {
        g_ptr_array_remove_index (router->names, i);
        removed = TRUE;
        break;
      }
  g_rw_lock_writer_unlock (&router->lock);
  if (removed && router->driver != NULL)
    peer_interface_emit_signal (router->driver, NULL, "NameOwnerChanged",
                                g_variant_new ("(sss)", name, PEER_ROUTER_SERVER_NAME, ""), NULL);
  return removed;
}

gboolean
_peer_router_is_server_name (PeerRouter *router,
                             const char *name)
{
  gboolean found;

  if (g_str_equal (name, PEER_ROUTER_SERVER_NAME))
    return TRUE;
  g_rw_lock_reader_lock (&router->lock);
  found = names_contain (router->names, name);
  g_rw_lock_reader_unlock (&router->lock);
  return found;
}

static char **
dup_names_locked (PeerRouter *router)
{
  char **names = g_new0 (char *, router->names->len + 1);

  for (guint i = 0; i < router->names->len; i++)
    names[i] = g_strdup (g_ptr_array_index (router->names, i));
  return names;
}

char **
_peer_router_dup_names (PeerRouter *router)
{
  char **names;

  g_rw_lock_reader_lock (&router->lock);
  names = dup_names_locked (router);
  g_rw_lock_reader_unlock (&router->lock);
  return names;
}

/* --- monitors ----------------------------------------------------------- */

gboolean
_peer_router_become_monitor (PeerRouter         *router,
                             PeerConnection     *peer,
                             const char * const *rules,
                             GError            **error)
{
  uid_t uid = peer_connection_get_uid (peer);

  if (router->monitor_check == NULL || !router->monitor_check (uid, router->monitor_check_data))
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED,
                   "Uid %d may not monitor this server", (int) uid);
      return FALSE;
    }
  if (!_peer_connection_make_monitor (peer, rules, _peer_router_get_max_match_rules (router), error))
    return FALSE;

  g_rw_lock_writer_lock (&router->lock);
  if (!g_ptr_array_find (router->monitors, peer, NULL) &&
      g_hash_table_lookup (router->peers, peer_connection_get_unique_name (peer)) == peer)
    {
      g_ptr_array_add (router->monitors, g_object_ref (peer));
      g_atomic_int_set (&router->n_monitors, router->monitors->len);
    }
  g_rw_lock_writer_unlock (&router->lock);
  return TRUE;
}

gboolean
_peer_router_has_monitors (PeerRouter *router)
{
  return g_atomic_int_get (&router->n_monitors) > 0;
}

void
_peer_router_copy_to_monitors (PeerRouter     *router,
                               GDBusMessage   *message,
                               const char     *sender,
                               const char     *destination,
                               PeerConnection *origin)
{
  g_autoptr(GPtrArray) monitors = NULL;
  g_auto(GStrv) names = NULL;
  /* The server's names, for rules on sender='org.example.Name'. */
  gboolean from_server = sender != NULL && g_str_equal (sender, PEER_ROUTER_SERVER_NAME);

  if (!_peer_router_has_monitors (router))
    return;

  g_rw_lock_reader_lock (&router->lock);
  monitors = g_ptr_array_new_full (router->monitors->len, g_object_unref);
  for (guint i = 0; i < router->monitors->len; i++)
    if (g_ptr_array_index (router->monitors, i) != origin)
      g_ptr_array_add (monitors, g_object_ref (g_ptr_array_index (router->monitors, i)));
  if (from_server)
    names = dup_names_locked (router);
  g_rw_lock_reader_unlock (&router->lock);

  for (guint i = 0; i < monitors->len; i++)
    {
      PeerConnection *monitor = g_ptr_array_index (monitors, i);

      if (_peer_connection_monitor_wants (monitor, message, sender, destination,
                                          (const char * const *) names))
        _peer_connection_send_monitor_copy (monitor, message, sender, destination);
    }
}

/* --- signals ------------------------------------------------------------ */

gboolean
_peer_router_emit_signal (PeerRouter     *router,
                          PeerConnection *destination,
                          const char     *object_path,
                          const char     *interface_name,
                          const char     *signal_name,
                          GVariant       *parameters,
                          GError        **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autoptr(GDBusMessage) signal = NULL;
  g_autoptr(GPtrArray) peers = NULL;
  g_auto(GStrv) names = NULL;
  const char *sender;

  if (parameters != NULL)
    owned = g_variant_ref_sink (parameters);
  if (object_path == NULL || !g_variant_is_object_path (object_path) ||
      interface_name == NULL || !g_dbus_is_interface_name (interface_name) ||
      signal_name == NULL || !g_dbus_is_member_name (signal_name) ||
      (owned != NULL && !g_variant_is_of_type (owned, G_VARIANT_TYPE_TUPLE)))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Invalid signal %s %s.%s", object_path ? object_path : "(null)",
                   interface_name ? interface_name : "(null)", signal_name ? signal_name : "(null)");
      return FALSE;
    }

  /* As a bus stamps it: the bus's own signals come from the bus. */
  sender = g_str_equal (interface_name, PEER_ROUTER_BUS_NAME) ? PEER_ROUTER_BUS_NAME : PEER_ROUTER_SERVER_NAME;
  signal = g_dbus_message_new_signal (object_path, interface_name, signal_name);
  if (owned != NULL)
    g_dbus_message_set_body (signal, owned);
  g_dbus_message_set_sender (signal, sender);

  if (destination != NULL)
    {
      /* Unicast: delivered whatever the peer's match rules say. */
      _peer_connection_send_signal (destination, signal, TRUE, NULL);
      return TRUE;
    }

  /* A broadcast reaches monitors once, whoever else it reaches. */
  if (_peer_router_has_monitors (router))
    _peer_router_copy_to_monitors (router, signal, sender, NULL, NULL);

  /* The server's names stand for it alone: the bus's own signals do
   * not match a rule on sender='org.example.App'. */
  if (g_str_equal (sender, PEER_ROUTER_SERVER_NAME))
    {
      g_rw_lock_reader_lock (&router->lock);
      names = dup_names_locked (router);
      g_rw_lock_reader_unlock (&router->lock);
    }
  peers = _peer_router_dup_peers (router);
  for (guint i = 0; i < peers->len; i++)
    _peer_connection_send_signal (g_ptr_array_index (peers, i), signal, FALSE,
                                  (const char * const *) names);
  return TRUE;
}

/* --- the filter --------------------------------------------------------- */

typedef struct {
  PeerRouter *router;                   /* owned */
  GWeakRef peer;                        /* PeerConnection */
} RouterLink;

gpointer
_peer_router_link_new (PeerRouter     *router,
                       PeerConnection *peer)
{
  RouterLink *link = g_new0 (RouterLink, 1);

  link->router = _peer_router_ref (router);
  g_weak_ref_init (&link->peer, peer);
  return link;
}

void
_peer_router_link_free (gpointer data)
{
  RouterLink *link = data;

  g_weak_ref_clear (&link->peer);
  _peer_router_unref (link->router);
  g_free (link);
}

static void
close_peer (PeerConnection *peer,
            GError         *error)
{
  g_autoptr(GError) reason = g_error_new (error->domain, error->code, "Peer %s: %s",
                                          peer_connection_get_unique_name (peer), error->message);

  g_debug ("libpeer: closing %s", reason->message);
  peer_connection_close (peer, reason);
}

/* A method call to a name that is not the server's: as a bus answers it.
 * Peers of a private server do not reach each other. */
static gboolean
refuse_destination (PeerRouter     *router,
                    PeerConnection *peer,
                    GDBusMessage   *message,
                    const char     *destination)
{
  g_autoptr(GError) error = NULL;

  if (g_str_equal (destination, PEER_ROUTER_BUS_NAME) ||
      _peer_router_is_server_name (router, destination))
    return FALSE;

  if (g_dbus_is_unique_name (destination))
    {
      g_autoptr(PeerConnection) other = _peer_router_lookup_peer (router, destination);

      if (other != NULL)
        error = g_error_new (G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED,
                             "Peers of this private server do not exchange messages: "
                             "only %s answers", PEER_ROUTER_SERVER_NAME);
      else
        error = g_error_new (G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER,
                             "Name \"%s\" does not exist", destination);
    }
  else
    error = g_error_new (G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN,
                         "The name %s was not provided by any .service files", destination);
  _peer_connection_send_error_reply (peer, message, error);
  return TRUE;
}

/* Step 3: the call answered in this thread, when its handler allows.
 * Returns FALSE to hand the message on to GDBus. */
static gboolean
dispatch_here (PeerRouter     *router,
               PeerConnection *peer,
               GDBusMessage   *message)
{
  const char *interface_name = g_dbus_message_get_interface (message);
  const char *member = g_dbus_message_get_member (message);
  g_autoptr(PeerInterface) iface = NULL;
  GDBusMethodInfo *info;
  PeerMethodFlags flags;
  guint index;

  if (interface_name == NULL)
    {
      /* Only the bus is addressed by name without an interface. */
      const char *destination = g_dbus_message_get_destination (message);

      if (destination == NULL || !g_str_equal (destination, PEER_ROUTER_BUS_NAME) || router->driver == NULL)
        return FALSE;
      iface = g_object_ref (router->driver);
    }
  else if (router->driver != NULL && g_str_equal (interface_name, PEER_ROUTER_BUS_NAME))
    iface = g_object_ref (router->driver);   /* at any path, as dbus-daemon does */
  else
    iface = _peer_router_lookup_object (router, g_dbus_message_get_path (message), interface_name);
  if (iface == NULL)
    return FALSE;

  info = g_dbus_interface_info_lookup_method (peer_interface_get_info (iface), member);
  if (info == NULL || !_peer_interface_lookup_method (iface, info, &index) ||
      !_peer_interface_get_method_handler (iface, index, &flags) ||
      !(flags & PEER_METHOD_FLAGS_THREAD_SAFE))
    {
      if (iface == router->driver && info == NULL)
        {
          g_autoptr(GError) error = g_error_new (G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                                 "%s does not understand message %s",
                                                 PEER_ROUTER_BUS_NAME, member);
          _peer_connection_send_error_reply (peer, message, error);
          return TRUE;
        }
      return FALSE;
    }
  /* A blob call's reply is wrapped by GDBus's path; GDBus also answers
   * wrong argument types, in its own words. */
  if (_peer_wire_message_is_wrapped (message) ||
      !_peer_interface_check_arguments (iface, index, g_dbus_message_get_body (message)))
    return FALSE;

  _peer_connection_dispatch (peer, iface, index, message);
  return TRUE;
}

static GDBusMessage *
route_incoming (RouterLink      *link,
                PeerConnection  *peer,
                GDBusConnection *connection,
                GDBusMessage    *message)
{
  PeerRouter *router = link->router;
  g_autoptr(GError) error = NULL;
  const char *destination;

  /* 1. Nothing else reads a message before it is known to be well formed. */
  if (!_peer_validate_message (message, &error))
    {
      close_peer (peer, error);
      g_object_unref (message);
      return NULL;
    }
  if (_peer_connection_is_monitor (peer))
    {
      error = g_error_new_literal (PEER_ERROR, PEER_ERROR_PROTOCOL,
                                   "a monitor sent a message; monitors only listen");
      close_peer (peer, error);
      g_object_unref (message);
      return NULL;
    }

  /* 2. Limits, fds and blob unwrapping. */
  message = _peer_wire_server_filter (connection, message, TRUE, _peer_connection_get_limits (peer));
  if (message == NULL)
    return NULL;
  _peer_connection_note_incoming (peer, message);

  destination = g_dbus_message_get_destination (message);
  if (_peer_router_has_monitors (router))
    _peer_router_copy_to_monitors (router, message, peer_connection_get_unique_name (peer),
                                   destination, peer);

  if (g_dbus_message_get_message_type (message) != G_DBUS_MESSAGE_TYPE_METHOD_CALL)
    return message;

  /* 3. Honest names, then the bus driver and thread-safe handlers. */
  if ((destination != NULL && refuse_destination (router, peer, message, destination)) ||
      dispatch_here (router, peer, message))
    {
      g_object_unref (message);
      return NULL;
    }
  return message;
}

/* A signal GDBus sends by itself on the peer's connection: a
 * GDBusInterfaceSkeleton exported there (peer_server_export_skeleton())
 * emits on each connection it is exported on. It leaves the way the
 * server's own signals do: stamped, through the signal gate and, for a
 * bus-style peer, its match rules, counted in the peer's queue; a monitor
 * gets none. Returns NULL: what GDBus was about to write is dropped. */
static GDBusMessage *
reroute_signal (PeerRouter     *router,
                PeerConnection *peer,
                GDBusMessage   *message)
{
  g_autoptr(GDBusMessage) signal = NULL;
  g_auto(GStrv) names = NULL;

  if (!_peer_connection_is_monitor (peer) && (signal = g_dbus_message_copy (message, NULL)) != NULL)
    {
      g_dbus_message_set_sender (signal, PEER_ROUTER_SERVER_NAME);
      names = _peer_router_dup_names (router);
      _peer_connection_send_signal (peer, signal, g_dbus_message_get_destination (signal) != NULL,
                                    (const char * const *) names);
    }
  g_object_unref (message);
  return NULL;
}

static GDBusMessage *
route_outgoing (RouterLink      *link,
                PeerConnection  *peer,
                GDBusConnection *connection,
                GDBusMessage    *message)
{
  PeerRouter *router = link->router;
  GDBusMessageType type;

  message = _peer_wire_server_filter (connection, message, FALSE, _peer_connection_get_limits (peer));
  if (message == NULL)
    return message;
  type = g_dbus_message_get_message_type (message);
  if (type == G_DBUS_MESSAGE_TYPE_SIGNAL && g_dbus_message_get_sender (message) == NULL)
    return reroute_signal (router, peer, message);
  if (_peer_connection_is_monitor (peer))
    return message;

  /* GDBus's own replies (Introspect, Properties, Peer, its errors) carry
   * no sender; a bus-style client expects the one it called. A copy,
   * since a message being sent is locked: off the hot path, which builds
   * its replies stamped. */
  if (g_dbus_message_get_sender (message) == NULL && _peer_connection_said_hello (peer))
    {
      GDBusMessage *stamped = g_dbus_message_copy (message, NULL);

      if (stamped != NULL)
        {
          g_dbus_message_set_sender (stamped, PEER_ROUTER_SERVER_NAME);
          if (type != G_DBUS_MESSAGE_TYPE_SIGNAL)
            g_dbus_message_set_destination (stamped, peer_connection_get_unique_name (peer));
          /* The queue's accounting stays with the message GDBus holds. */
          _peer_wire_move_accounting (message, stamped);
          g_object_unref (message);
          message = stamped;
        }
    }

  /* Broadcast signals reached the monitors once, when emitted. */
  if (_peer_router_has_monitors (router) &&
      !(type == G_DBUS_MESSAGE_TYPE_SIGNAL && g_dbus_message_get_destination (message) == NULL))
    _peer_router_copy_to_monitors (router, message,
                                   g_dbus_message_get_sender (message) != NULL
                                   ? g_dbus_message_get_sender (message) : PEER_ROUTER_SERVER_NAME,
                                   peer_connection_get_unique_name (peer), peer);
  return message;
}

GDBusMessage *
_peer_router_filter (GDBusConnection *connection,
                     GDBusMessage    *message,
                     gboolean         incoming,
                     gpointer         user_data)
{
  RouterLink *link = user_data;
  g_autoptr(PeerConnection) peer = g_weak_ref_get (&link->peer);

  if (peer == NULL)
    {
      /* Being finalized: nothing more is handed on. */
      if (incoming)
        {
          g_object_unref (message);
          return NULL;
        }
      return message;
    }
  return incoming ? route_incoming (link, peer, connection, message)
                  : route_outgoing (link, peer, connection, message);
}
