/* peer-connection-private.h: the server's side of a PeerConnection. */
#pragma once

#include "peer-connection.h"
#include "peer-interface.h"

G_BEGIN_DECLS

typedef struct _PeerRouter PeerRouter;
typedef struct _PeerWireLimits PeerWireLimits;

/* Every message of @connection takes @router's path (peer-router.c). */
PeerConnection *_peer_connection_new         (GDBusConnection *connection,
                                              guint64          id,
                                              PeerRouter      *router);
/* peer-connection-calls.c: registers @iface at @object_path on the
 * peer's GDBus connection, its calls dispatched as PeerCalls. The
 * registration id, or 0 with @error set. Main context. */
guint           _peer_connection_register_calls (PeerConnection *self,
                                                 const char     *object_path,
                                                 PeerInterface  *iface,
                                                 GError        **error);
/* A call GDBus dispatched to @iface at @object_path, found by other means
 * than a registration (a subtree): run as a PeerCall. Main context. */
void            _peer_connection_dispatch_invocation (PeerConnection        *self,
                                                      PeerInterface         *iface,
                                                      const char            *object_path,
                                                      GDBusMethodInvocation *invocation);
gboolean        _peer_connection_export      (PeerConnection  *self,
                                              const char      *object_path,
                                              PeerInterface   *iface,
                                              GError         **error);
void            _peer_connection_unexport    (PeerConnection  *self,
                                              const char      *object_path,
                                              PeerInterface   *iface);

/* What else is served on the connection, kept so that it all goes with
 * the peer: a GDBus subtree registration, or a skeleton exported on it.
 * Main context. */
typedef enum {
  PEER_REGISTRATION_OBJECT,
  PEER_REGISTRATION_SUBTREE,
  PEER_REGISTRATION_SKELETON,
} PeerRegistrationKind;

void            _peer_connection_add_registration (PeerConnection       *self,
                                                   PeerRegistrationKind  kind,
                                                   gpointer              what,
                                                   const char           *path,
                                                   guint                 id);
/* @path NULL: whatever path. TRUE when one was found and released. */
gboolean        _peer_connection_remove_registration (PeerConnection *self,
                                                      gpointer        what,
                                                      const char     *path);
/* A copy of @signal (its sender set) for this peer, if it wants it: see
 * peer-connection.c. @server_names: the server's well-known names, for
 * match rules on the sender. Any thread. */
void            _peer_connection_send_signal (PeerConnection     *self,
                                              GDBusMessage       *signal,
                                              gboolean            unicast,
                                              const char * const *server_names);
/* Called, under the connection's lock, with each signal the peer wants
 * (its sender and destination set) once a sink is set: the sink sends it
 * another way (the lane) and must not wait. Any thread. */
typedef void  (*PeerSignalSink)              (GDBusMessage    *signal,
                                              gpointer         data);
/* Replaces the sink (the old one's @destroy runs); @data's @destroy runs
 * when it is replaced, cleared or the connection finalized. */
void            _peer_connection_set_signal_sink   (PeerConnection *self,
                                                    PeerSignalSink  sink,
                                                    gpointer        data,
                                                    GDestroyNotify  destroy);
/* Clears the sink if its data is still @data. */
void            _peer_connection_clear_signal_sink (PeerConnection *self,
                                                    gpointer        data);
/* TRUE the first time: the peer is bus-style from now on. */
gboolean        _peer_connection_take_hello  (PeerConnection  *self);
gboolean        _peer_connection_said_hello  (PeerConnection  *self);
PeerWireLimits *_peer_connection_get_limits  (PeerConnection  *self);
/* Worker thread, for every incoming message (the signal gate). */
void            _peer_connection_note_incoming (PeerConnection *self,
                                                GDBusMessage   *message);
/* Worker thread: answers @request with method @index of @iface here. */
void            _peer_connection_dispatch    (PeerConnection  *self,
                                              PeerInterface   *iface,
                                              guint            index,
                                              GDBusMessage    *request);
/* Any thread: an error reply from the bus, named after @error. */
void            _peer_connection_send_error_reply (PeerConnection *self,
                                                   GDBusMessage   *request,
                                                   const GError   *error);

/* Match rules (AddMatch, RemoveMatch): G_DBUS_ERROR on bad rules. */
gboolean        _peer_connection_add_match   (PeerConnection  *self,
                                              const char      *rule,
                                              guint            max_rules,
                                              GError         **error);
gboolean        _peer_connection_remove_match (PeerConnection *self,
                                               const char     *rule,
                                               GError        **error);
/* Monitors: see peer-router.c. */
gboolean        _peer_connection_make_monitor (PeerConnection     *self,
                                               const char * const *rules,
                                               guint               max_rules,
                                               GError            **error);
gboolean        _peer_connection_is_monitor  (PeerConnection  *self);
gboolean        _peer_connection_monitor_wants (PeerConnection     *self,
                                                GDBusMessage       *message,
                                                const char         *sender,
                                                const char         *destination,
                                                const char * const *sender_names);
void            _peer_connection_send_monitor_copy (PeerConnection *self,
                                                    GDBusMessage   *message,
                                                    const char     *sender,
                                                    const char     *destination);
void            _peer_connection_open_signal_gate (PeerConnection *self);
/* Any thread; applies to messages read from now on. */
void            _peer_connection_set_limits  (PeerConnection  *self,
                                              guint            max_fds_per_message,
                                              gsize            blob_threshold);

/* Any thread. Calls in flight (a PeerCall alive) share one budget per
 * peer, whichever transport brought them; end_call() after a successful
 * begin_call(). */
void            _peer_connection_set_resource_limits (PeerConnection *self,
                                                      guint           max_calls_in_flight,
                                                      gsize           max_queued_bytes,
                                                      guint           max_message_size);
gboolean        _peer_connection_is_closed   (PeerConnection  *self);
/* How many fds one message of the peer's may carry, now. */
guint           _peer_connection_get_max_fds (PeerConnection *self);
/* The largest message body the peer may send or be sent, now. */
guint           _peer_connection_get_max_message_size (PeerConnection *self);
/* Sends @message (transfer none), counted in the peer's outgoing queue;
 * closes the peer instead when the queue is full. Any thread. */
gboolean        _peer_connection_send_message (PeerConnection *self,
                                               GDBusMessage   *message);

G_END_DECLS
