/* bench-service.c: org.libpeer.Bench1, the calls benchmarks measure.
 *
 * Handlers are trivial and thread-safe on purpose: what a benchmark sees
 * is the transport's cost, not the handler's. */
#include "config.h"

#include <unistd.h>

#include "peer-protocol.h"
#include "services.h"

static void
handle_ping (PeerCall *call,
             gpointer  user_data)
{
  peer_call_return_value (call, NULL);
}

static void
handle_echo (PeerCall *call,
             gpointer  user_data)
{
  /* The arguments tuple is exactly the reply tuple: no copy. Not an extra
   * reference: the reply sinks a floating value and refs any other one. */
  peer_call_return_value (call, peer_call_get_parameters (call));
}

static void
handle_echo_fds (PeerCall *call,
                 gpointer  user_data)
{
  g_autoptr(GVariant) handles = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_auto(GVariantBuilder) reply = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("ah"));
  gsize n;

  g_variant_get (peer_call_get_parameters (call), "(@ah)", &handles);
  n = g_variant_n_children (handles);
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      gint32 handle;
      int fd;

      g_variant_get_child (handles, i, "h", &handle);
      fd = peer_call_dup_fd (call, handle, &error);
      if (fd < 0)
        {
          peer_call_take_error (call, g_steal_pointer (&error));
          return;
        }
      /* append() keeps its own duplicate. */
      g_variant_builder_add (&reply, "h", g_unix_fd_list_append (fds, fd, NULL));
      close (fd);
    }
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(ah)", &reply), fds);
}

static void
handle_echo_blob (PeerCall *call,
                  gpointer  user_data)
{
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GError) error = NULL;
  gint32 handle;

  /* Checked as a blob (sealed, mapped) before it goes back, so that an
   * unsealed memfd is refused here too. */
  g_variant_get (peer_call_get_parameters (call), "(h)", &handle);
  blob = peer_blob_new_from_fd_list (peer_call_get_unix_fd_list (call), handle, -1, &error);
  if (blob == NULL || peer_blob_append_to_fd_list (blob, fds, &error) < 0)
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(h)", 0), fds);
}

gboolean
peer_bench_service_export (PeerServer *server,
                           GError    **error)
{
  static const PeerMethodEntry entries[] = {
    { "Ping", handle_ping, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "Echo", handle_echo, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "EchoFds", handle_echo_fds, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "EchoBlob", handle_echo_blob, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  g_autoptr(PeerInterface) iface = peer_interface_new (peer_proto_bench1_interface_info ());

  return peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), NULL, error) &&
         peer_server_export (server, PEER_BENCH_PATH, iface, error) &&
         peer_server_add_name (server, PEER_BENCH_NAME, error);
}
