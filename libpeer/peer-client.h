/* peer-client.h: the connecting side.
 *
 * A PeerClient connects to a PeerServer's address (or any D-Bus peer
 * server), authenticates with EXTERNAL, and makes calls, reads and writes
 * properties and receives signals. It tells when the peer goes away and
 * why. PEER_ERROR errors sent by the server come back as the same GError.
 *
 * Threads: a client may be used, and its last reference dropped, on any
 * thread. Nothing it hands to another thread or context keeps a plain
 * pointer to it: GDBus's "closed" handler and signal subscriptions hold
 * it weakly (and strongly while they run), and the thread that reads a
 * lane for asynchronous calls hands each one's end back to the caller's
 * context to be returned there, so a client is never finalized on that
 * thread, which finalize joins.
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

/**
 * PeerClient:
 *
 * The connecting side: connects to a #PeerServer's address (or any D-Bus
 * peer server), authenticates with `EXTERNAL`, and makes calls, reads and
 * writes properties and receives signals. It tells when the peer goes away
 * and why. `PEER_ERROR` errors sent by the server come back as the same
 * #GError. A client may be used, and its last reference dropped, on any
 * thread.
 */
#define PEER_TYPE_CLIENT (peer_client_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerClient, peer_client, PEER, CLIENT, GObject)

/**
 * PeerSignalFunc:
 * @client: the client
 * @object_path: the emitting object
 * @interface_name: the signal's interface
 * @signal_name: the signal
 * @parameters: (transfer none): its arguments
 * @user_data: data given when subscribing
 *
 * Receives a signal a #PeerClient subscribed to, in the thread-default
 * main context of peer_client_subscribe_signal().
 */
typedef void (*PeerSignalFunc) (PeerClient *client,
                                const char *object_path,
                                const char *interface_name,
                                const char *signal_name,
                                GVariant   *parameters,
                                gpointer    user_data);

/**
 * peer_client_new:
 * @address: a D-Bus address, as peer_server_get_client_address() gives
 * @timeout_ms: how long connecting and authenticating may take, or -1 for
 *   the default (25 s)
 * @cancellable: (nullable): a cancellable
 * @callback: called in the current thread-default main context
 * @user_data: data for @callback
 *
 * Connects asynchronously.
 */
PEER_EXPORT
void             peer_client_new                 (const char          *address,
                                                  int                  timeout_ms,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);

/**
 * peer_client_new_finish:
 * @result: the result given to the callback
 * @error: PEER_ERROR_TIMED_OUT, PEER_ERROR_INVALID_ARGS for a bad address,
 *   or the I/O or authentication error
 *
 * Returns: (transfer full) (nullable): the client, or %NULL
 */
PEER_EXPORT
PeerClient      *peer_client_new_finish          (GAsyncResult        *result,
                                                  GError             **error);

/**
 * peer_client_new_sync:
 * @address: a D-Bus address
 * @timeout_ms: how long connecting may take, or -1 for the default (25 s)
 * @cancellable: (nullable): a cancellable
 * @error: as for peer_client_new_finish()
 *
 * Connects, blocking the calling thread. The client's signals are
 * delivered in the thread-default main context of the caller.
 *
 * Returns: (transfer full) (nullable): the client, or %NULL
 */
PEER_EXPORT
PeerClient      *peer_client_new_sync            (const char          *address,
                                                  int                  timeout_ms,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

/**
 * peer_client_new_for_connection:
 * @connection: (transfer none): an open peer-to-peer GDBus connection
 *
 * Returns: (transfer full): a client using @connection
 */
PEER_EXPORT
PeerClient      *peer_client_new_for_connection  (GDBusConnection     *connection);

/**
 * peer_client_call_sync:
 * @self: a client
 * @object_path: the object
 * @interface_name: its interface
 * @method_name: the method
 * @parameters: (nullable): arguments as a tuple (a floating reference is sunk)
 * @reply_type: (nullable): the expected reply type, checked when given
 * @timeout_ms: -1 for the default (25 s), G_MAXINT for none
 * @fd_list: (nullable) (transfer none): fds to send; `h` arguments index
 *   into it. The caller keeps ownership of the list and its fds; the
 *   message gets its own duplicates or a reference to the list.
 * @out_fd_list: (out) (optional) (nullable) (transfer full): fds that came
 *   with the reply; the caller owns the list and closes them by unreffing
 *   it. When %NULL, such fds are closed at once.
 * @cancellable: (nullable): a cancellable
 * @error: the remote error (PEER_ERROR codes come back as themselves),
 *   PEER_ERROR_DISCONNECTED when the peer went away, or
 *   PEER_ERROR_NOT_SUPPORTED when @fd_list holds fds and the connection
 *   did not negotiate fd passing, PEER_ERROR_LIMIT_EXCEEDED when the call
 *   is over the server's limits (nothing is sent then)
 *
 * Calls and waits. A top-level `ay` argument of at least the blob
 * threshold (see peer_client_set_blob_threshold()) travels as a sealed
 * memfd when the server is libpeer; the handler sees the same `ay`.
 *
 * The first call of 64 KiB or more, or with more than 16 fds, asks a
 * libpeer server for the limits its messages meet (the largest body, the
 * most fds in one message; once per connection). From then on, a call
 * over the size limit sends its large `ay` arguments as blobs whatever the
 * threshold, and one that still does not fit, or carries too many fds,
 * fails with PEER_ERROR_LIMIT_EXCEEDED before a byte is written. Before
 * the client knows, or against another server, D-Bus's own 128 MiB is the
 * limit, and a smaller call over a limit the server set lower is answered
 * by the server with the same error.
 *
 * Returns: (transfer full) (nullable): the reply tuple, or %NULL
 */
PEER_EXPORT
GVariant        *peer_client_call_sync           (PeerClient          *self,
                                                  const char          *object_path,
                                                  const char          *interface_name,
                                                  const char          *method_name,
                                                  GVariant            *parameters,
                                                  const GVariantType  *reply_type,
                                                  int                  timeout_ms,
                                                  GUnixFDList         *fd_list,
                                                  GUnixFDList        **out_fd_list,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

/**
 * peer_client_call_serialized_sync:
 * @self: a client
 * @object_path: the object
 * @interface_name: its interface
 * @method_name: the method
 * @parameters_type: the arguments' type, a definite tuple type
 * @parameters_data: (array length=parameters_size) (element-type guint8) (transfer none):
 *   the arguments as the serialized bytes of a value of @parameters_type in
 *   normal form (what g_variant_get_data() gives for a value in normal
 *   form); borrowed until the call returns, not copied on a lane
 * @parameters_size: their size
 * @reply_type: the reply's type, a definite tuple type: a reply of any
 *   other type is an error
 * @timeout_ms: as for peer_client_call_sync()
 * @fd_list: (nullable) (transfer none): as for peer_client_call_sync()
 * @out_fd_list: (out) (optional) (nullable) (transfer full): as for
 *   peer_client_call_sync()
 * @cancellable: (nullable): a cancellable
 * @error: as for peer_client_call_sync(); arguments that are not a value
 *   of @parameters_type in normal form are G_DBUS_ERROR_INVALID_ARGS (said
 *   by the server on a lane)
 *
 * peer_client_call_sync() for code that writes and reads GVariant's
 * serialization itself, as peer-codegen's synchronous stubs do: on a lane
 * the arguments are written from @parameters_data as they are and the
 * reply is handed back as the bytes that arrived, checked (normal form,
 * @reply_type) but never made into a #GVariant, which saves the two values
 * a call would otherwise make and free. Elsewhere the call is made as
 * peer_client_call_sync() makes it, and the reply's serialization is
 * returned the same way.
 *
 * Returns: (transfer full) (nullable): the reply as the serialized bytes of
 *   a value of @reply_type in normal form (g_variant_new_from_bytes() reads
 *   it as a value; the bytes need not be aligned), or %NULL with @error set
 */
PEER_EXPORT
GBytes          *peer_client_call_serialized_sync (PeerClient         *self,
                                                   const char         *object_path,
                                                   const char         *interface_name,
                                                   const char         *method_name,
                                                   const GVariantType *parameters_type,
                                                   gconstpointer       parameters_data,
                                                   gsize               parameters_size,
                                                   const GVariantType *reply_type,
                                                   int                 timeout_ms,
                                                   GUnixFDList        *fd_list,
                                                   GUnixFDList       **out_fd_list,
                                                   GCancellable       *cancellable,
                                                   GError            **error);

/**
 * peer_client_call:
 * @self: a client
 * @object_path: the object
 * @interface_name: its interface
 * @method_name: the method
 * @parameters: (nullable): arguments (a floating reference is sunk)
 * @reply_type: (nullable): the expected reply type
 * @timeout_ms: -1 for the default, G_MAXINT for none
 * @fd_list: (nullable) (transfer none): fds to send; a reference is taken
 *   until the call is sent. The caller keeps ownership of the list and its
 *   fds (and must not steal them out of it meanwhile).
 * @cancellable: (nullable): a cancellable
 * @callback: called in the current thread-default main context
 * @user_data: data for @callback
 *
 * Calls asynchronously; finish with peer_client_call_finish(). Fds and
 * blobs as for peer_client_call_sync(). A reply that nobody finishes (the
 * call was cancelled, or the result is dropped) has its fds closed.
 */
PEER_EXPORT
void             peer_client_call                (PeerClient          *self,
                                                  const char          *object_path,
                                                  const char          *interface_name,
                                                  const char          *method_name,
                                                  GVariant            *parameters,
                                                  const GVariantType  *reply_type,
                                                  int                  timeout_ms,
                                                  GUnixFDList         *fd_list,
                                                  GCancellable        *cancellable,
                                                  GAsyncReadyCallback  callback,
                                                  gpointer             user_data);

/**
 * peer_client_call_finish:
 * @self: a client
 * @out_fd_list: (out) (optional) (nullable) (transfer full): fds that came
 *   with the reply; the caller owns the list (when %NULL, they are closed)
 * @result: the result
 * @error: as for peer_client_call_sync()
 *
 * Returns: (transfer full) (nullable): the reply tuple, or %NULL
 */
PEER_EXPORT
GVariant        *peer_client_call_finish         (PeerClient          *self,
                                                  GUnixFDList        **out_fd_list,
                                                  GAsyncResult        *result,
                                                  GError             **error);

/**
 * peer_client_get_property_sync:
 * @self: a client
 * @object_path: the object
 * @interface_name: the property's interface
 * @property_name: the property
 * @cancellable: (nullable): a cancellable
 * @error: set on failure
 *
 * org.freedesktop.DBus.Properties.Get, over the lane when the client has
 * one (see peer_client_open_lane_sync()).
 *
 * Returns: (transfer full) (nullable): the value (unwrapped from its
 *   variant), or %NULL
 */
PEER_EXPORT
GVariant        *peer_client_get_property_sync   (PeerClient          *self,
                                                  const char          *object_path,
                                                  const char          *interface_name,
                                                  const char          *property_name,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

/**
 * peer_client_set_property_sync:
 * @self: a client
 * @object_path: the object
 * @interface_name: the property's interface
 * @property_name: the property
 * @value: the value (a floating reference is sunk)
 * @cancellable: (nullable): a cancellable
 * @error: set on failure
 *
 * Returns: %TRUE when the server accepted the value
 */
PEER_EXPORT
gboolean         peer_client_set_property_sync   (PeerClient          *self,
                                                  const char          *object_path,
                                                  const char          *interface_name,
                                                  const char          *property_name,
                                                  GVariant            *value,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

/**
 * peer_client_subscribe_signal:
 * @self: a client
 * @object_path: (nullable): only from this object, or %NULL for any
 * @interface_name: (nullable): only this interface, or %NULL for any
 * @signal_name: (nullable): only this signal, or %NULL for any
 * @callback: called in the thread-default main context of this call
 * @user_data: (closure): data for @callback
 * @destroy: (nullable): frees @user_data after unsubscribing
 *
 * Returns: a subscription id for peer_client_unsubscribe_signal()
 */
PEER_EXPORT
guint            peer_client_subscribe_signal    (PeerClient          *self,
                                                  const char          *object_path,
                                                  const char          *interface_name,
                                                  const char          *signal_name,
                                                  PeerSignalFunc       callback,
                                                  gpointer             user_data,
                                                  GDestroyNotify       destroy);

/**
 * peer_client_unsubscribe_signal:
 * @self: a client
 * @subscription_id: an id from peer_client_subscribe_signal()
 */
PEER_EXPORT
void             peer_client_unsubscribe_signal  (PeerClient          *self,
                                                  guint                subscription_id);

/**
 * peer_client_get_connection:
 * @self: a client
 *
 * Returns: (transfer none): the underlying GDBus connection
 */
PEER_EXPORT
GDBusConnection *peer_client_get_connection      (PeerClient          *self);

/**
 * peer_client_get_dbus_connection:
 * @self: a client
 *
 * The underlying GDBus connection, ready for GDBus's own client code:
 * gdbus-codegen proxies, GDBusProxy and GDBusObjectManagerClient (with a
 * %NULL name: no bus runs). Unlike peer_client_get_connection(), it makes
 * sure the connection processes messages, so that a synchronous call
 * made on it at once (g_dbus_object_manager_client_new_sync()) is
 * answered.
 *
 * Returns: (transfer none): the connection
 */
PEER_EXPORT
GDBusConnection *peer_client_get_dbus_connection (PeerClient          *self);

/**
 * peer_client_can_pass_fds:
 * @self: a client
 *
 * Returns: whether the connection negotiated fd passing
 */
PEER_EXPORT
gboolean         peer_client_can_pass_fds        (PeerClient          *self);

/**
 * peer_client_set_blob_threshold:
 * @self: a client
 * @threshold: the size from which a top-level `ay` argument travels as a
 *   sealed memfd, or 0 to always send the bytes in the message (default
 *   %PEER_BLOB_DEFAULT_THRESHOLD)
 *
 * Blobs go only to a libpeer server that said it takes them; the client
 * asks once, the first time a call has such an argument. Other servers,
 * and calls with smaller arguments, get plain D-Bus. Thread-safe.
 */
PEER_EXPORT
void             peer_client_set_blob_threshold  (PeerClient          *self,
                                                  gsize                threshold);

/**
 * peer_client_is_closed:
 * @self: a client
 *
 * Returns: whether the connection is closed
 */
PEER_EXPORT
gboolean         peer_client_is_closed           (PeerClient          *self);

/**
 * peer_client_dup_close_reason:
 * @self: a client
 *
 * Returns: (transfer full) (nullable): why the connection closed
 *   (PEER_ERROR_DISCONNECTED), or %NULL while open
 */
PEER_EXPORT
GError          *peer_client_dup_close_reason    (PeerClient          *self);

/**
 * peer_client_close:
 * @self: a client
 *
 * Closes the connection; calls in flight fail with PEER_ERROR_DISCONNECTED.
 */
PEER_EXPORT
void             peer_client_close               (PeerClient          *self);

/**
 * peer_client_open_lane_sync:
 * @self: a client
 * @cancellable: (nullable): a cancellable
 * @error: PEER_ERROR_NOT_SUPPORTED without fd passing or when the server
 *   is not libpeer, PEER_ERROR_LIMIT_EXCEEDED when the server allows no
 *   more lanes on this connection
 *
 * Opens a lane: a second channel to a libpeer server, bound to this
 * connection, that carries method calls without GDBus's message objects
 * and worker thread. From then on peer_client_call_sync() and
 * peer_client_call() send every call to a method in the server's lane
 * table (the methods with handlers of the objects exported when the lane
 * opened) over it, transparently, and the rest by name: the methods of
 * objects exported since, of a subtree's children and of ObjectManagers,
 * and property Get, Set and GetAll (org.freedesktop.DBus.Properties, so
 * peer_client_get_property_sync(), peer_client_set_property_sync() and
 * peer-codegen's property accessors too). What the server's GDBus answers
 * by itself (an unknown object, interface, method or property, a refused
 * access or type) and a gdbus-codegen skeleton's methods the lane hands
 * back unrun, and the call goes on the D-Bus connection instead: the
 * answer, an error included, is the one a client without a lane gets.
 * Introspection, org.freedesktop.DBus.Peer and the bus driver's calls
 * stay on the D-Bus connection. Once the client has a lane and a signal
 * subscription, the server sends the signals it wants (PropertiesChanged
 * included) over the lane too, in order with the lane's replies: a signal
 * emitted before a reply is delivered before the asynchronous call's
 * callback runs (a synchronous call returns as soon as its reply is read,
 * its signals queued by then in their subscribers' contexts). A property
 * Set that changes a value emits its PropertiesChanged before the reply.
 *
 * Calls on a lane are pipelined: any number may be in flight at once,
 * from any thread, synchronous and asynchronous alike, each matched to its
 * reply by serial, whatever order the server answers them in. A
 * synchronous call reads the lane on its own thread when no other thread
 * is reading it; an asynchronous call's reply is read by a thread the
 * lane starts with the first one and returned in the caller's
 * thread-default main context, as on the D-Bus connection. Cancelling a
 * call ends it at once with G_IO_ERROR_CANCELLED; its late reply is
 * dropped, with any fds it carried. The lane closes when the connection
 * closes, and every call then in flight ends with
 * PEER_ERROR_DISCONNECTED. Opening a second time does nothing.
 *
 * Returns: %TRUE when a lane is open
 */
PEER_EXPORT
gboolean         peer_client_open_lane_sync      (PeerClient          *self,
                                                  GCancellable        *cancellable,
                                                  GError             **error);

/**
 * peer_client_has_lane:
 * @self: a client
 *
 * Returns: whether a lane is open and usable
 */
PEER_EXPORT
gboolean         peer_client_has_lane            (PeerClient          *self);

G_END_DECLS
