/* peer-validate-private.h: the strict check of an incoming D-Bus message.
 *
 * GLib's parser leaves header field types, names and the serial unchecked,
 * and GLib's own dispatch then trusts them; the message router calls this
 * on every message before anything else reads it. See peer-validate.c for
 * the rules.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Returns TRUE when @message may be handed on; FALSE with @error set
 * (domain PEER_ERROR, code PEER_ERROR_PROTOCOL, one-line message naming the
 * rule broken, e.g. "The PATH header field has type 's', not 'o'")
 * otherwise. Any thread; reads @message only. */
gboolean _peer_validate_message (GDBusMessage  *message,
                                 GError       **error);

G_END_DECLS
