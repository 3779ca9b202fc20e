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

#include "peer-blob.h"
#include "peer-types.h"

G_BEGIN_DECLS

#define PEER_WIRE_PATH      "/org/libpeer/Transport"
#define PEER_WIRE_INTERFACE "org.libpeer.Transport1"
#define PEER_WIRE_BLOB_CALL_METHOD "BlobCall"

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
void            _peer_wire_limits_set_max_message_size (PeerWireLimits *limits,
                                                        guint           max_size);
guint           _peer_wire_limits_get_max_message_size (PeerWireLimits *limits);

/* Calls in flight: a PeerCall alive, whichever transport made it. */
void            _peer_wire_limits_set_max_in_flight  (PeerWireLimits *limits,
                                                      guint           max_calls);
/* FALSE when the peer already has max_in_flight calls alive. */
gboolean        _peer_wire_limits_begin_call         (PeerWireLimits *limits);
void            _peer_wire_limits_end_call           (PeerWireLimits *limits);
guint           _peer_wire_limits_get_in_flight      (PeerWireLimits *limits);
guint           _peer_wire_limits_get_max_in_flight  (PeerWireLimits *limits);

/* The checks both transports (the D-Bus path and the lane) make on what a
 * peer sends, in one place: each refuses with PEER_ERROR_LIMIT_EXCEEDED,
 * which the registered error table (peer-error.c) names on the wire, so
 * neither transport types an error name. Any thread. */
/* A message body (@what: "call", "reply", ...) within the size limit. */
gboolean        _peer_wire_limits_check_body_size    (PeerWireLimits *limits,
                                                      const char     *what,
                                                      gsize           size,
                                                      GError        **error);
/* A message's fds within the limit. */
gboolean        _peer_wire_limits_check_n_fds        (PeerWireLimits *limits,
                                                      guint           n_fds,
                                                      GError        **error);
/* _peer_wire_limits_begin_call(), with the refusal. */
gboolean        _peer_wire_limits_check_begin_call   (PeerWireLimits *limits,
                                                      GError        **error);
/* The D-Bus error name for @error, through the registered tables: what a
 * transport sends for a refusal. (transfer full) */
char           *_peer_wire_error_name                (const GError   *error);

/* The outgoing queue (see peer-wire.c). What GDBus keeps per queued
 * message beside its bytes, and what a call reserves for its reply. */
#define PEER_WIRE_MESSAGE_OVERHEAD  256
#define PEER_WIRE_REPLY_RESERVATION 512
gsize           _peer_wire_message_cost              (GDBusMessage   *message);
gboolean        _peer_wire_limits_charge_queued      (PeerWireLimits *limits,
                                                      gsize           cost);
void            _peer_wire_limits_credit_queued      (PeerWireLimits *limits,
                                                      gsize           cost);
gsize           _peer_wire_limits_get_queued         (PeerWireLimits *limits);
/* Holds @bytes of the peer's quota for something it keeps open (a lane's
 * kernel socket buffers) until released; PEER_ERROR_LIMIT_EXCEEDED, naming
 * @what, when they do not fit. Any thread. */
gboolean        _peer_wire_limits_reserve            (PeerWireLimits *limits,
                                                      gsize           bytes,
                                                      const char     *what,
                                                      GError        **error);
void            _peer_wire_limits_release            (PeerWireLimits *limits,
                                                      gsize           bytes);
void            _peer_wire_limits_set_max_queued     (PeerWireLimits *limits,
                                                      gsize           max_bytes);
gsize           _peer_wire_limits_get_max_queued     (PeerWireLimits *limits);
gboolean        _peer_wire_limits_has_overflowed     (PeerWireLimits *limits);
/* Sends @message (transfer none) on a server connection, counting it in
 * the queue until GDBus has written it; closes the connection instead
 * when the queue would pass its limit. Any thread. */
gboolean        _peer_wire_send                      (GDBusConnection *connection,
                                                      PeerWireLimits  *limits,
                                                      GDBusMessage    *message);
/* The same, with g_dbus_connection_send_message()'s @flags. */
gboolean        _peer_wire_send_full                 (GDBusConnection       *connection,
                                                      PeerWireLimits        *limits,
                                                      GDBusMessage          *message,
                                                      GDBusSendMessageFlags  flags);
/* Moves the queue's accounting from @from to @to, a message that stands
 * in for it (a copy made in a filter). */
void            _peer_wire_move_accounting           (GDBusMessage    *from,
                                                      GDBusMessage    *to);

/* Blob bytes mapped for the peer (see peer-wire.c). Any thread. */
void            _peer_wire_limits_set_max_mapped     (PeerWireLimits *limits,
                                                      gsize           max_bytes);
/* @blob's bytes, counted against the limit until the last value made
 * from them is gone; NULL with PEER_ERROR_LIMIT_EXCEEDED when they would
 * pass it. (transfer full) */
GBytes         *_peer_wire_limits_take_blob_bytes    (PeerWireLimits *limits,
                                                      PeerBlob       *blob,
                                                      GError        **error);

/* A GDBusMessageFilterFunction for a server connection; @user_data is a
 * PeerWireLimits. Counts every message read in the peer's quota (closing
 * the connection past it), refuses messages with a body over the size
 * limit or too many fds (LimitExceeded) or with fds on a connection that
 * did not negotiate them (NotSupported), closing every fd, and unwraps
 * blob calls into the call they stand for. Outgoing, gives back each
 * call's reply reservation as a reply is written. */
GDBusMessage   *_peer_wire_server_filter             (GDBusConnection *connection,
                                                      GDBusMessage    *message,
                                                      gboolean         incoming,
                                                      gpointer         user_data);

/* The call a BlobCall stands for (transfer full), or NULL with @error set;
 * on success the blobs' fds are taken out of @message, on failure every
 * fd is closed or left in @message. The blobs are counted in @limits
 * (nullable). No I/O: the filter's refusal, and the fuzzer, build on it. */
GDBusMessage   *_peer_wire_unwrap_blob_call          (GDBusMessage    *message,
                                                      PeerWireLimits  *limits,
                                                      GError         **error);


/* Whether an incoming call arrived blob-wrapped, so its reply must be. */
gboolean        _peer_wire_message_is_wrapped        (GDBusMessage    *message);

/* Replies to a wrapped call, large `ay` values as blobs when the peer can
 * receive fds, through _peer_wire_send(). Consumes @invocation; @value is
 * a full reference or NULL; @fd_list stays the caller's. */
void            _peer_wire_return_wrapped            (GDBusMethodInvocation *invocation,
                                                      PeerWireLimits        *limits,
                                                      GVariant              *value,
                                                      GUnixFDList           *fd_list);
/* The tuple type of @info's out arguments (transfer full). */
GVariantType   *_peer_wire_method_reply_type         (const GDBusMethodInfo *info);

/* Client side. */
gboolean        _peer_wire_wants_blob_call           (const char      *interface_name,
                                                      GVariant        *parameters,
                                                      gsize            threshold);
/* Whether a GetFeatures reply announces blob calls. */
gboolean        _peer_wire_features_have_blob_call   (GVariant        *reply);
/* The limits a GetFeatures reply announces for this peer's messages: the
 * largest body and the most fds per message, each G_MAXUINT32 when not
 * said. */
void            _peer_wire_features_get_limits       (GVariant        *reply,
                                                      guint32         *max_message_size,
                                                      guint32         *max_fds);
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
