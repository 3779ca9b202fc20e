/* peer-router-private.h: the server's message router.
 *
 * Every message a peer sends on its D-Bus connection passes through one
 * GDBus filter, in GDBus's worker thread, before GLib reads it:
 *
 *   1. validate (peer-validate.c): a malformed message closes the peer;
 *   2. the wire's limits and blob unwrapping (peer-wire.c);
 *   3. copies to monitors, honest destinations, the bus driver
 *      (org.freedesktop.DBus, answered at any object path);
 *   4. dispatch: a method whose handler is thread-safe is answered right
 *      there; the rest go on to GDBus, which hops once to the server's
 *      main context.
 *
 * On the way out: GDBus's own replies to a bus-style peer are stamped
 * with the server's unique name, every message is copied to monitors, and
 * broadcast signals reach a bus-style peer only through its match rules.
 *
 * The router also keeps what the bus driver answers from: the peers by
 * unique name, the server's well-known names, the monitors and the
 * objects thread-safe dispatch looks up.
 */
#pragma once

#include <gio/gio.h>

#include "peer-connection.h"
#include "peer-interface.h"

G_BEGIN_DECLS

/* The unique name the server answers for itself, and the bus's name. */
#define PEER_ROUTER_SERVER_NAME ":1.0"
#define PEER_ROUTER_BUS_NAME    "org.freedesktop.DBus"
#define PEER_ROUTER_BUS_PATH    "/org/freedesktop/DBus"
#define PEER_ROUTER_MONITORING_INTERFACE "org.freedesktop.DBus.Monitoring"

typedef struct _PeerRouter PeerRouter;

/* AddMatch rules per peer, unless peer_server_set_max_match_rules() says
 * otherwise: dbus-daemon's default for a session bus. */
#define PEER_ROUTER_DEFAULT_MAX_MATCH_RULES 512

/* Whether a peer with @uid may become a monitor. Any thread. */
typedef gboolean (*PeerRouterMonitorCheck) (uid_t    uid,
                                            gpointer user_data);

PeerRouter     *_peer_router_new              (const char      *guid);
PeerRouter     *_peer_router_ref              (PeerRouter      *router);
void            _peer_router_unref            (PeerRouter      *router);
const char     *_peer_router_get_guid         (PeerRouter      *router);

/* Main context, before the first peer: the interface answered as
 * org.freedesktop.DBus at any path (NULL: none), and who may monitor. */
void            _peer_router_set_driver       (PeerRouter      *router,
                                               PeerInterface   *driver);
void            _peer_router_set_monitor_check (PeerRouter            *router,
                                                PeerRouterMonitorCheck check,
                                                gpointer               user_data,
                                                GDestroyNotify         destroy);

/* Objects that worker-thread dispatch (and the lane's table) looks up:
 * one interface at one path. Main context. */
typedef struct {
  char *path;
  PeerInterface *iface;
} PeerRouterObject;

void            _peer_router_object_free      (PeerRouterObject *object);
void            _peer_router_add_object       (PeerRouter      *router,
                                               const char      *object_path,
                                               PeerInterface   *iface);
void            _peer_router_remove_object    (PeerRouter      *router,
                                               const char      *object_path,
                                               PeerInterface   *iface);
/* (transfer full) (element-type PeerRouterObject) every static export,
 * in export order. */
GPtrArray      *_peer_router_dup_objects      (PeerRouter      *router);
/* (transfer full) (nullable) the interface named @interface_name
 * exported at @path. Any thread. */
PeerInterface  *_peer_router_lookup_object    (PeerRouter      *router,
                                               const char      *path,
                                               const char      *interface_name);
/* Changes with every export and unexport: a table made from
 * _peer_router_dup_objects() is as it was while this stays the same.
 * One atomic read; any thread. */
guint           _peer_router_get_objects_serial (PeerRouter    *router);

/* Peers. Main context; lookups from any thread. */
void            _peer_router_add_peer         (PeerRouter      *router,
                                               PeerConnection  *peer);
void            _peer_router_remove_peer      (PeerRouter      *router,
                                               PeerConnection  *peer);
/* (transfer full) (nullable) */
PeerConnection *_peer_router_lookup_peer      (PeerRouter      *router,
                                               const char      *unique_name);
/* (transfer full) */
GPtrArray      *_peer_router_dup_peers        (PeerRouter      *router);

/* The server's well-known names. Any thread. */
gboolean        _peer_router_add_name         (PeerRouter      *router,
                                               const char      *name,
                                               GError         **error);
gboolean        _peer_router_remove_name      (PeerRouter      *router,
                                               const char      *name);
/* Whether @name is the server: its unique name or one of its names. */
gboolean        _peer_router_is_server_name   (PeerRouter      *router,
                                               const char      *name);
/* (transfer full) NULL-terminated */
char          **_peer_router_dup_names        (PeerRouter      *router);

void            _peer_router_set_max_match_rules (PeerRouter   *router,
                                                  guint         max_rules);
guint           _peer_router_get_max_match_rules (PeerRouter   *router);

/* Monitors (org.freedesktop.DBus.Monitoring.BecomeMonitor). @rules as
 * in AddMatch; none means everything. Any thread. */
gboolean        _peer_router_become_monitor   (PeerRouter         *router,
                                               PeerConnection     *peer,
                                               const char * const *rules,
                                               GError            **error);
/* One atomic read: whether anyone monitors. */
gboolean        _peer_router_has_monitors     (PeerRouter      *router);
/* Sends each monitor whose rules match a copy of @message, with @sender
 * and @destination (nullable) stamped as a bus would. @origin is the peer
 * the message came from or goes to (never copied to itself). Any thread;
 * a monitor that does not keep up is dropped, never waited for. */
void            _peer_router_copy_to_monitors (PeerRouter      *router,
                                               GDBusMessage    *message,
                                               const char      *sender,
                                               const char      *destination,
                                               PeerConnection  *origin);

/* A signal from the server: to @destination alone, or to every peer
 * whose match rules want it (every plain peer-to-peer peer, which never
 * said Hello, gets every broadcast). Any thread. */
gboolean        _peer_router_emit_signal      (PeerRouter      *router,
                                               PeerConnection  *destination,
                                               const char      *object_path,
                                               const char      *interface_name,
                                               const char      *signal_name,
                                               GVariant        *parameters,
                                               GError         **error);

/* The filter, in GDBus's worker thread. @user_data from
 * _peer_router_link_new(), freed with _peer_router_link_free(). */
gpointer        _peer_router_link_new         (PeerRouter      *router,
                                               PeerConnection  *peer);
void            _peer_router_link_free        (gpointer         link);
GDBusMessage   *_peer_router_filter           (GDBusConnection *connection,
                                               GDBusMessage    *message,
                                               gboolean         incoming,
                                               gpointer         user_data);

G_END_DECLS
