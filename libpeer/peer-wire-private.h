/* peer-wire-private.h: what libpeer adds to plain D-Bus on the wire.
 *
 * The per-message fd checks a server applies in GDBus's worker thread, the
 * org.libpeer.Transport1 interface through which a client learns that the
 * server is libpeer, and the blob-wrapped calls that carry large `ay`
 * arguments as sealed memfds between two libpeer peers. See peer-wire.c
 * for the design of the wrapping.
 */
#pragma once

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "peer-types.h"

G_BEGIN_DECLS

#define PEER_WIRE_PATH      "/org/libpeer/Transport"
#define PEER_WIRE_INTERFACE "org.libpeer.Transport1"

/* The limits of one server connection, shared by the PeerConnection (which
 * sets them from the server's) and the filter that enforces them in
 * GDBus's worker thread. Refcounted so that a filter still running after
 * its removal never sees freed memory. */
typedef struct _PeerWireLimits PeerWireLimits;

PeerWireLimits *_peer_wire_limits_new                (void);
PeerWireLimits *_peer_wire_limits_ref                (PeerWireLimits *limits);
void            _peer_wire_limits_unref              (PeerWireLimits *limits);
void            _peer_wire_limits_set_max_fds        (PeerWireLimits *limits,
                                                      guint           max_fds);
guint           _peer_wire_limits_get_max_fds        (PeerWireLimits *limits);
void            _peer_wire_limits_set_blob_threshold (PeerWireLimits *limits,
                                                      gsize           threshold);
gsize           _peer_wire_limits_get_blob_threshold (PeerWireLimits *limits);

/* A GDBusMessageFilterFunction for a server connection; @user_data is a
 * PeerWireLimits. Refuses messages with too many fds (LimitExceeded) or
 * with fds on a connection that did not negotiate them (NotSupported),
 * closing every fd, and unwraps blob calls into the call they stand for. */
GDBusMessage   *_peer_wire_server_filter             (GDBusConnection *connection,
                                                      GDBusMessage    *message,
                                                      gboolean         incoming,
                                                      gpointer         user_data);

/* org.libpeer.Transport1 at PEER_WIRE_PATH. */
PeerInterface  *_peer_wire_interface_new             (void);

/* Whether an incoming call arrived blob-wrapped, so its reply must be. */
gboolean        _peer_wire_message_is_wrapped        (GDBusMessage    *message);

/* Replies to a wrapped call, large `ay` values as blobs when the peer can
 * receive fds. Consumes @invocation; @value is a full reference or NULL;
 * @fd_list stays the caller's. */
void            _peer_wire_return_wrapped            (GDBusMethodInvocation *invocation,
                                                      GVariant              *value,
                                                      GUnixFDList           *fd_list,
                                                      gsize                  threshold);

/* Client side. */
gboolean        _peer_wire_wants_blob_call           (const char      *interface_name,
                                                      GVariant        *parameters,
                                                      gsize            threshold);
/* Whether a GetFeatures reply announces blob calls. */
gboolean        _peer_wire_features_have_blob_call   (GVariant        *reply);
GDBusMessage   *_peer_wire_new_blob_call             (const char      *object_path,
                                                      const char      *interface_name,
                                                      const char      *method_name,
                                                      GVariant        *parameters,
                                                      GUnixFDList     *fd_list,
                                                      gsize            threshold,
                                                      GError         **error);
/* The reply to a blob call, unwrapped and checked against @reply_type;
 * error replies become their GError (with GDBus's remote prefix). */
GVariant       *_peer_wire_finish_blob_call          (GDBusMessage       *reply,
                                                      const GVariantType *reply_type,
                                                      GUnixFDList       **out_fd_list,
                                                      GError            **error);

G_END_DECLS
