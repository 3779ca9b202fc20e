/* peer-connection-private.h: the server's side of a PeerConnection. */
#pragma once

#include "peer-connection.h"
#include "peer-interface.h"

G_BEGIN_DECLS

PeerConnection *_peer_connection_new         (GDBusConnection *connection,
                                              guint64          id);
gboolean        _peer_connection_export      (PeerConnection  *self,
                                              PeerInterface   *iface,
                                              GError         **error);
void            _peer_connection_unexport    (PeerConnection  *self,
                                              PeerInterface   *iface);
void            _peer_connection_send_signal (PeerConnection  *self,
                                              const char      *object_path,
                                              const char      *interface_name,
                                              const char      *signal_name,
                                              GVariant        *parameters);
gboolean        _peer_connection_take_hello  (PeerConnection  *self);
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
gboolean        _peer_connection_begin_call  (PeerConnection  *self);
void            _peer_connection_end_call    (PeerConnection  *self);
guint           _peer_connection_get_max_calls_in_flight (PeerConnection *self);
/* How many fds one message of the peer's may carry, now. */
guint           _peer_connection_get_max_fds (PeerConnection *self);
/* The largest message body the peer may send or be sent, now. */
guint           _peer_connection_get_max_message_size (PeerConnection *self);
/* Sends @message (transfer none), counted in the peer's outgoing queue;
 * closes the peer instead when the queue is full. Any thread. */
gboolean        _peer_connection_send_message (PeerConnection *self,
                                               GDBusMessage   *message);

G_END_DECLS
