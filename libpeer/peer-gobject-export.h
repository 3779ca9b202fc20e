/* peer-gobject-export.h: a GObject's properties served as a D-Bus
 * interface's properties. */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include "peer-export.h"
#include "peer-interface.h"

G_BEGIN_DECLS

/**
 * peer_interface_new_for_object:
 * @object: (transfer none): the object whose properties to serve; the
 *   interface holds a reference
 * @info: (transfer none): introspection data; each of its properties is
 *   bound to the GObject property of the same name, or of its name in
 *   GObject style (`LastError` → `last-error`)
 * @error: set to PEER_ERROR_INVALID_ARGS when a D-Bus property has no
 *   GObject property, their types do not match, or a readable (writable)
 *   D-Bus property is bound to one that is not readable (writable)
 *
 * An interface whose properties are @object's, kept in sync both ways
 * as g_object_bind_property() would: a `notify` of a bound property
 * becomes PropertiesChanged to every peer (emitted from whichever thread
 * notifies; the interface takes the new value at once), and a peer's Set
 * of a writable one becomes g_object_set_property() in the server's main
 * context, after GDBus has checked its type (Set of a read-only property,
 * or with the wrong type, is refused before). Types: b y n q i u x t d s
 * o g, `as`, enums as `i`, flags as `u`, and #GVariant properties of the
 * D-Bus signature. Add method handlers as to any interface, then export
 * it with peer_server_export().
 *
 * Returns: (transfer full) (nullable): the interface, or %NULL
 */
PEER_EXPORT
PeerInterface *peer_interface_new_for_object (GObject            *object,
                                              GDBusInterfaceInfo *info,
                                              GError            **error);

/**
 * peer_interface_get_object:
 * @self: an interface
 *
 * Returns: (transfer none) (nullable): the object given to
 *   peer_interface_new_for_object(), or %NULL
 */
PEER_EXPORT
GObject       *peer_interface_get_object     (PeerInterface      *self);

G_END_DECLS
