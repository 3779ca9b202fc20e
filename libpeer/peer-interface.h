/* peer-interface.h: one D-Bus interface, served at one or more object paths.
 *
 * A PeerInterface joins introspection data (from XML or a gdbus-codegen
 * `*_interface_info()` function) with the handlers for its methods and the
 * values of its properties. Export it on a PeerServer and every connected
 * peer, present and future, sees it. One interface may be exported at
 * several paths (or served by a #PeerSubtree): its handlers are shared,
 * peer_call_get_object_path() tells them which object was called, and
 * each object can have property values of its own
 * (peer_interface_set_object_property()).
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

/**
 * PeerInterface:
 *
 * One D-Bus interface, served at one or more object paths: introspection
 * data (from XML or a gdbus-codegen `*_interface_info()` function), the
 * handlers of its methods and the values of its properties. Exported on a
 * #PeerServer, every connected peer, present and future, sees it. Its
 * handlers are shared by all the paths it is exported at;
 * peer_call_get_object_path() tells them which object was called.
 */
#define PEER_TYPE_INTERFACE (peer_interface_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerInterface, peer_interface, PEER, INTERFACE, GObject)

/**
 * PeerMethodFunc:
 * @call: (transfer none): the call; take a reference with peer_call_ref()
 *   to reply after returning
 * @user_data: the data given with the method entry
 *
 * A method handler. It runs in the server's main context.
 */
typedef void (*PeerMethodFunc) (PeerCall *call,
                                gpointer  user_data);

/**
 * PeerMethodFlags:
 * @PEER_METHOD_FLAGS_NONE: none
 * @PEER_METHOD_FLAGS_THREAD_SAFE: the handler may run on any thread, and is
 *   then called where the call was read, with no hop to the main context:
 *   on a lane, the lane's thread; on a D-Bus connection, GDBus's worker
 *   thread, which reads and writes every GDBus connection of the process.
 *   Such a handler must not block: reply at once, or take a reference on
 *   the call (peer_call_ref()) and reply later from anywhere.
 *
 * How a method's handler is called.
 */
typedef enum {
  PEER_METHOD_FLAGS_NONE        = 0,
  PEER_METHOD_FLAGS_THREAD_SAFE = 1 << 0,
} PeerMethodFlags;

/**
 * PeerMethodEntry:
 * @name: the method's name, as in the introspection data
 * @handler: its handler
 * @flags: flags
 *
 * One method of a table given to peer_interface_add_methods(). It has
 * exactly these three fields, so that `{ "Greet", handle_greet,
 * PEER_METHOD_FLAGS_NONE }` initializes it without a warning under
 * `-Wextra` (as designated initializers do).
 */
typedef struct {
  const char     *name;
  PeerMethodFunc  handler;
  PeerMethodFlags flags;
} PeerMethodEntry;

/**
 * PeerPropertyGetFunc:
 * @iface: the interface
 * @caller: (transfer none): the peer asking
 * @property_name: the property
 * @error: set when the value cannot be read
 * @user_data: data given to peer_interface_set_property_funcs()
 *
 * Computes a property's value on demand.
 *
 * Returns: (transfer full) (nullable): the value (a floating reference is
 *   sunk), or %NULL with @error set, or %NULL without error to serve the
 *   value stored with peer_interface_set_property()
 */
typedef GVariant *(*PeerPropertyGetFunc) (PeerInterface  *iface,
                                          PeerConnection *caller,
                                          const char     *property_name,
                                          GError        **error,
                                          gpointer        user_data);

/**
 * PeerPropertySetFunc:
 * @iface: the interface
 * @caller: (transfer none): the peer writing
 * @property_name: the property
 * @value: (transfer none): the new value, already type-checked
 * @error: set to refuse
 * @user_data: data given to peer_interface_set_property_funcs()
 *
 * Decides on a peer's write to a writable property. On %TRUE libpeer
 * stores the value and emits PropertiesChanged.
 *
 * Returns: %TRUE to accept
 */
typedef gboolean (*PeerPropertySetFunc) (PeerInterface  *iface,
                                         PeerConnection *caller,
                                         const char     *property_name,
                                         GVariant       *value,
                                         GError        **error,
                                         gpointer        user_data);

/**
 * PeerPropertyGetter:
 * @iface: the interface
 * @caller: (transfer none): the peer asking
 * @object_path: the object asked, one of the paths @iface is exported at
 *   or a child of a #PeerSubtree that serves it
 * @property_name: the property
 * @user_data: data given to peer_interface_set_property_getter()
 * @error: set when the value cannot be read
 *
 * #PeerPropertyGetFunc for peer_interface_set_property_getter(), which
 * also tells the object, and takes @error last, where bindings look for
 * it: a Python getter raises GLib.Error.
 *
 * Returns: (transfer full) (nullable): the value (a floating reference is
 *   sunk), or %NULL with @error set, or %NULL without error to serve the
 *   stored value
 */
typedef GVariant *(*PeerPropertyGetter) (PeerInterface  *iface,
                                         PeerConnection *caller,
                                         const char     *object_path,
                                         const char     *property_name,
                                         gpointer        user_data,
                                         GError        **error);

/**
 * PeerPropertySetter:
 * @iface: the interface
 * @caller: (transfer none): the peer writing
 * @object_path: the object written to
 * @property_name: the property
 * @value: (transfer none): the new value, already type-checked
 * @user_data: data given to peer_interface_set_property_setter()
 * @error: set to refuse
 *
 * #PeerPropertySetFunc for peer_interface_set_property_setter(), which
 * also tells the object, and takes @error last, where bindings look for
 * it: a Python setter raises GLib.Error to refuse.
 *
 * Returns: %TRUE to accept (libpeer then stores the value and emits
 *   PropertiesChanged); %FALSE refuses, with @error set (or
 *   PEER_ERROR_PERMISSION_DENIED when it is not)
 */
typedef gboolean (*PeerPropertySetter) (PeerInterface  *iface,
                                        PeerConnection *caller,
                                        const char     *object_path,
                                        const char     *property_name,
                                        GVariant       *value,
                                        gpointer        user_data,
                                        GError        **error);

/**
 * peer_interface_new:
 * @info: (transfer none): introspection data; a reference is taken
 *
 * Returns: (transfer full): a new interface with no handlers
 */
PEER_EXPORT
PeerInterface      *peer_interface_new               (GDBusInterfaceInfo    *info);

/**
 * peer_interface_new_for_xml:
 * @xml: introspection XML with one or more interfaces
 * @interface_name: which interface of @xml to serve
 * @error: set when @xml does not parse or lacks @interface_name
 *
 * Returns: (transfer full) (nullable): a new interface, or %NULL
 */
PEER_EXPORT
PeerInterface      *peer_interface_new_for_xml       (const char            *xml,
                                                      const char            *interface_name,
                                                      GError               **error);

/**
 * peer_interface_add_methods: (skip)
 * @self: an interface, not yet exported
 * @entries: (array length=n_entries): handlers by method name
 * @n_entries: how many
 * @user_data: passed to every handler in @entries
 * @error: set when an entry names a method the interface does not have
 *
 * Methods without a handler answer org.freedesktop.DBus.Error.UnknownMethod.
 * Not in the bindings, which cannot put a function into a #PeerMethodEntry:
 * they call peer_interface_add_method() for each method.
 *
 * Returns: %TRUE when every entry was added
 */
PEER_EXPORT
gboolean            peer_interface_add_methods       (PeerInterface         *self,
                                                      const PeerMethodEntry *entries,
                                                      gsize                  n_entries,
                                                      gpointer               user_data,
                                                      GError               **error);

/**
 * peer_interface_add_method:
 * @self: an interface, not yet exported
 * @method_name: a method of the interface
 * @flags: flags
 * @handler: (scope notified) (closure user_data) (destroy destroy): the
 *   method's handler
 * @user_data: data for @handler
 * @destroy: (nullable): frees @user_data when @self is finalized, when
 *   another handler replaces this one, or at once when this fails
 * @error: set to PEER_ERROR_INVALID_ARGS when the interface has no method
 *   @method_name
 *
 * Sets the handler of one method, with data of its own: what
 * peer_interface_add_methods() does for many, and how the bindings
 * (Python, GJS) set handlers.
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean            peer_interface_add_method        (PeerInterface         *self,
                                                      const char            *method_name,
                                                      PeerMethodFlags        flags,
                                                      PeerMethodFunc         handler,
                                                      gpointer               user_data,
                                                      GDestroyNotify         destroy,
                                                      GError               **error);

/**
 * peer_interface_set_property_funcs: (skip)
 * @self: an interface
 * @get_func: (nullable): computes values on demand
 * @set_func: (nullable): judges writes; without it writes to a
 *   `readwrite` property are accepted as they are
 * @user_data: data for both
 * @destroy: (nullable): frees @user_data
 *
 * Sets both property functions at once, replacing those set before.
 * Not in the bindings, where two functions cannot share one @user_data
 * and a function's #GError must come last: they call
 * peer_interface_set_property_getter() and
 * peer_interface_set_property_setter().
 */
PEER_EXPORT
void                peer_interface_set_property_funcs (PeerInterface       *self,
                                                       PeerPropertyGetFunc  get_func,
                                                       PeerPropertySetFunc  set_func,
                                                       gpointer             user_data,
                                                       GDestroyNotify       destroy);

/**
 * peer_interface_set_property_getter:
 * @self: an interface
 * @getter: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   computes values on demand, or %NULL to serve stored values only
 * @user_data: data for @getter
 * @destroy: (nullable): frees @user_data when replaced or when @self dies
 *
 * Sets the function that computes property values, replacing the one set
 * before (by this or by peer_interface_set_property_funcs(), whose
 * functions share their data: both are then unset).
 */
PEER_EXPORT
void                peer_interface_set_property_getter (PeerInterface      *self,
                                                        PeerPropertyGetter  getter,
                                                        gpointer            user_data,
                                                        GDestroyNotify      destroy);

/**
 * peer_interface_set_property_setter:
 * @self: an interface
 * @setter: (nullable) (scope notified) (closure user_data) (destroy destroy):
 *   judges peers' writes, or %NULL to accept them as they are
 * @user_data: data for @setter
 * @destroy: (nullable): frees @user_data when replaced or when @self dies
 *
 * Sets the function that judges writes, replacing the one set before (by
 * this or by peer_interface_set_property_funcs(), whose functions share
 * their data: both are then unset).
 */
PEER_EXPORT
void                peer_interface_set_property_setter (PeerInterface      *self,
                                                        PeerPropertySetter  setter,
                                                        gpointer            user_data,
                                                        GDestroyNotify      destroy);

/**
 * peer_interface_set_property:
 * @self: an interface
 * @property_name: a property of the interface
 * @value: the value (a floating reference is sunk)
 * @error: set when the property does not exist or @value has the wrong type
 *
 * Stores a property's shared value: the value of every object of @self
 * that has no value of its own for it. When it changed and @self is
 * exported, every peer gets org.freedesktop.DBus.Properties.PropertiesChanged
 * (as the property's EmitsChangedSignal annotation says) from each path
 * @self is exported at whose object shares the value. Thread-safe.
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean            peer_interface_set_property      (PeerInterface  *self,
                                                      const char     *property_name,
                                                      GVariant       *value,
                                                      GError        **error);

/**
 * peer_interface_set_object_property:
 * @self: an interface
 * @object_path: one object of @self: a path it is exported at, or a child
 *   of a #PeerSubtree that serves it
 * @property_name: a property of the interface
 * @value: the value (a floating reference is sunk)
 * @error: set when the path is invalid, the property does not exist or
 *   @value has the wrong type
 *
 * Stores the value of one object alone. From the first such value on, the
 * object keeps peers' writes to itself too, and reads the shared value
 * (peer_interface_set_property()) only for properties it never set. When
 * the value changed and @self is exported or served by an exported
 * subtree, every peer gets PropertiesChanged from @object_path.
 * Thread-safe.
 *
 * Returns: %TRUE on success
 */
PEER_EXPORT
gboolean            peer_interface_set_object_property (PeerInterface  *self,
                                                        const char     *object_path,
                                                        const char     *property_name,
                                                        GVariant       *value,
                                                        GError        **error);

/**
 * peer_interface_forget_object:
 * @self: an interface
 * @object_path: an object given values with peer_interface_set_object_property()
 *
 * Drops the object's own values (when the object goes for good), so
 * that it reads the shared ones again. Emits nothing. Thread-safe.
 */
PEER_EXPORT
void                peer_interface_forget_object     (PeerInterface  *self,
                                                      const char     *object_path);

/**
 * peer_interface_dup_property:
 * @self: an interface
 * @property_name: a property
 *
 * Returns: (transfer full) (nullable): the stored shared value, or %NULL
 */
PEER_EXPORT
GVariant           *peer_interface_dup_property      (PeerInterface  *self,
                                                      const char     *property_name);

/**
 * peer_interface_dup_object_property:
 * @self: an interface
 * @object_path: (nullable): an object, or %NULL for the shared value
 * @property_name: a property
 *
 * Returns: (transfer full) (nullable): the object's own value, else the
 *   shared one, or %NULL
 */
PEER_EXPORT
GVariant           *peer_interface_dup_object_property (PeerInterface  *self,
                                                        const char     *object_path,
                                                        const char     *property_name);

/**
 * peer_interface_emit_signal:
 * @self: an exported interface
 * @destination: (nullable): one peer, or %NULL for every connected peer
 * @signal_name: a signal of the interface
 * @parameters: (nullable): its arguments as a tuple (a floating reference
 *   is sunk)
 * @error: set when the signal does not exist, the arguments do not match
 *   its signature, or @self is not exported
 *
 * Emits the signal from every path @self is exported at. Thread-safe.
 *
 * Returns: %TRUE when the signal was queued for sending
 */
PEER_EXPORT
gboolean            peer_interface_emit_signal       (PeerInterface  *self,
                                                      PeerConnection *destination,
                                                      const char     *signal_name,
                                                      GVariant       *parameters,
                                                      GError        **error);

/**
 * peer_interface_emit_object_signal:
 * @self: an interface exported, or served by an exported #PeerSubtree
 * @object_path: the emitting object
 * @destination: (nullable): one peer, or %NULL for every connected peer
 * @signal_name: a signal of the interface
 * @parameters: (nullable): its arguments as a tuple (a floating reference
 *   is sunk)
 * @error: as for peer_interface_emit_signal()
 *
 * Emits the signal from one object of @self. Thread-safe.
 *
 * Returns: %TRUE when the signal was queued for sending
 */
PEER_EXPORT
gboolean            peer_interface_emit_object_signal (PeerInterface  *self,
                                                       const char     *object_path,
                                                       PeerConnection *destination,
                                                       const char     *signal_name,
                                                       GVariant       *parameters,
                                                       GError        **error);

/**
 * peer_interface_get_info:
 * @self: an interface
 *
 * Returns: (transfer none): its introspection data
 */
PEER_EXPORT
GDBusInterfaceInfo *peer_interface_get_info          (PeerInterface  *self);

/**
 * peer_interface_get_object_path:
 * @self: an interface
 *
 * Returns: (transfer none) (nullable): the first path it is exported at
 *   (valid until unexported from there), or %NULL
 */
PEER_EXPORT
const char         *peer_interface_get_object_path   (PeerInterface  *self);

/**
 * peer_interface_dup_object_paths:
 * @self: an interface
 *
 * Returns: (transfer full) (array zero-terminated=1): every path it is
 *   exported at, in export order (children of subtrees not included)
 */
PEER_EXPORT
char              **peer_interface_dup_object_paths  (PeerInterface  *self);

G_END_DECLS
