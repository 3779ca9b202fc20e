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

G_END_DECLS
