/* peer-call.c: the transport-neutral call object. */
#include "config.h"

#include <string.h>

#include "peer-call-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"

G_DEFINE_BOXED_TYPE (PeerCall, peer_call, peer_call_ref, peer_call_unref)

PeerCall *
_peer_call_new (gpointer                 block,
                const PeerCallTransport *transport,
                gpointer                 transport_data,
                gsize                    transport_size,
                PeerConnection          *connection,
                PeerInterface           *iface,
                gboolean                 borrowed,
                guint                    method_index,
                GVariant                *parameters,
                GUnixFDList             *fd_list)
{
  /* The transport's block follows the call, suitably aligned. */
  gsize call_size = (sizeof (PeerCall) + 15) & ~(gsize) 15;
  PeerCall *call;

  if (block != NULL)
    call = memset (block, 0, call_size + transport_size);
  else
    call = g_malloc0 (call_size + transport_size);

  g_atomic_ref_count_init (&call->ref_count);
  call->transport = transport;
  call->transport_data = transport_size > 0 ? (guint8 *) call + call_size : transport_data;
  call->borrowed = borrowed;
  call->connection = borrowed ? connection : g_object_ref (connection);
  call->iface = borrowed ? iface : g_object_ref (iface);
  call->method_index = method_index;
  call->method_info = _peer_interface_get_method_info (iface, method_index);
  call->parameters = parameters;
  call->fd_list = fd_list != NULL ? g_object_ref (fd_list) : NULL;
  return call;
}

PeerCall *
peer_call_ref (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  g_atomic_ref_count_inc (&call->ref_count);
  return call;
}

static gboolean
claim_reply (PeerCall *call)
{
  if (!g_atomic_int_compare_and_exchange (&call->replied, FALSE, TRUE))
    {
      g_critical ("libpeer: %s.%s was replied to twice",
                  peer_call_get_interface_name (call), peer_call_get_method_name (call));
      return FALSE;
    }
  return TRUE;
}

void
peer_call_unref (PeerCall *call)
{
  if (call == NULL)
    return;
  if (!g_atomic_ref_count_dec (&call->ref_count))
    return;

  if (!g_atomic_int_get (&call->replied))
    {
      g_autofree char *message = g_strdup_printf ("%s.%s finished without replying",
                                                  peer_call_get_interface_name (call),
                                                  peer_call_get_method_name (call));
      g_debug ("libpeer: %s", message);
      call->replied = TRUE;
      call->transport->return_error (call, "org.libpeer.Error.NoReply", message);
    }
  if (call->counted_in != NULL)
    _peer_wire_limits_end_call (call->counted_in);
  g_clear_object (&call->fd_list);
  g_clear_pointer (&call->owned_object_path, g_free);
  g_variant_unref (call->parameters);
  if (!call->borrowed)
    {
      g_object_unref (call->iface);
      g_object_unref (call->connection);
    }
  /* Last: it may drop what kept borrowed objects alive, and keep the
   * block for the transport's next call. */
  if (call->transport->finalize == NULL || !call->transport->finalize (call))
    g_free (call);
}

const char *
peer_call_get_object_path (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  if (call->object_path != NULL)
    return call->object_path;
  return peer_interface_get_object_path (call->iface);
}

void
_peer_call_set_object_path (PeerCall   *call,
                            const char *object_path)
{
  g_free (call->owned_object_path);
  call->object_path = call->owned_object_path = g_strdup (object_path);
}

const char *
peer_call_get_interface_name (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  return peer_interface_get_info (call->iface)->name;
}

const char *
peer_call_get_method_name (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  return call->method_info->name;
}

GVariant *
peer_call_get_parameters (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  return call->parameters;
}

GUnixFDList *
peer_call_get_unix_fd_list (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  return call->fd_list;
}

guint
peer_call_get_n_fds (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, 0);
  return call->fd_list != NULL ? (guint) g_unix_fd_list_get_length (call->fd_list) : 0;
}

int
peer_call_dup_fd (PeerCall *call,
                  gint32    handle,
                  GError  **error)
{
  guint n_fds;

  g_return_val_if_fail (call != NULL, -1);
  g_return_val_if_fail (error == NULL || *error == NULL, -1);

  /* The index came off the wire: g_unix_fd_list_get() would treat a bad
   * one as a programming error. */
  n_fds = peer_call_get_n_fds (call);
  if (handle < 0 || (guint) handle >= n_fds)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "No file descriptor at index %d: the call carries %u", handle, n_fds);
      return -1;
    }
  return g_unix_fd_list_get (call->fd_list, handle, error);
}

PeerConnection *
peer_call_get_connection (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  return call->connection;
}

PeerInterface *
peer_call_get_interface (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, NULL);
  return call->iface;
}

gboolean
peer_call_has_replied (PeerCall *call)
{
  g_return_val_if_fail (call != NULL, FALSE);
  return g_atomic_int_get (&call->replied);
}

void
peer_call_return_value_with_unix_fd_list (PeerCall    *call,
                                          GVariant    *value,
                                          GUnixFDList *fd_list)
{
  g_autoptr(GVariant) owned = NULL;

  g_return_if_fail (call != NULL);

  /* g_variant_ref_sink() takes the value's lock, which a reference to a
   * value that is not floating (the handler's own, or its parameters)
   * does not need. A value is floating only for the code that made it. */
  if (value != NULL)
    owned = g_variant_is_floating (value) ? g_variant_ref_sink (value) : g_variant_ref (value);
  if (!claim_reply (call))
    return;
  call->transport->return_value (call, owned, fd_list);
}

void
peer_call_return_value (PeerCall *call,
                        GVariant *value)
{
  peer_call_return_value_with_unix_fd_list (call, value, NULL);
}

void
peer_call_return_dbus_error (PeerCall   *call,
                             const char *error_name,
                             const char *message)
{
  g_return_if_fail (call != NULL);
  g_return_if_fail (g_dbus_is_error_name (error_name));
  g_return_if_fail (message != NULL);

  if (!claim_reply (call))
    return;
  call->transport->return_error (call, error_name, message);
}

void
peer_call_return_gerror (PeerCall     *call,
                         const GError *error)
{
  g_autofree char *name = NULL;
  g_autoptr(GError) copy = NULL;

  g_return_if_fail (call != NULL);
  g_return_if_fail (error != NULL);

  /* Make sure our own domain maps to org.libpeer.Error.* even when the
   * application never used PEER_ERROR before this call. */
  (void) PEER_ERROR;
  /* A GError that came from a remote D-Bus error keeps the remote name
   * (a handler forwarding another peer's error forwards it unchanged). */
  name = g_dbus_error_get_remote_error (error);
  if (name == NULL)
    name = g_dbus_error_encode_gerror (error);
  /* Its message carries the name too; strip it so it does not travel twice. */
  copy = g_error_copy (error);
  g_dbus_error_strip_remote_error (copy);
  peer_call_return_dbus_error (call, name, copy->message);
}

void
peer_call_take_error (PeerCall *call,
                      GError   *error)
{
  g_return_if_fail (call != NULL);
  g_return_if_fail (error != NULL);

  peer_call_return_gerror (call, error);
  g_error_free (error);
}

void
peer_call_return_error (PeerCall   *call,
                        GQuark      domain,
                        gint        code,
                        const char *format,
                        ...)
{
  g_autoptr(GError) error = NULL;
  va_list args;

  g_return_if_fail (call != NULL);
  g_return_if_fail (format != NULL);

  va_start (args, format);
  error = g_error_new_valist (domain, code, format, args);
  va_end (args);
  peer_call_return_gerror (call, error);
}
