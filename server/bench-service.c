/* bench-service.c: org.libpeer.Bench1, the calls benchmarks measure.
 *
 * Handlers are trivial and thread-safe on purpose: what a benchmark sees
 * is the transport's cost, not the handler's. */
#include "config.h"

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
  /* The arguments tuple is exactly the reply tuple: no copy. */
  peer_call_return_value (call, g_variant_ref (peer_call_get_parameters (call)));
}

gboolean
peer_bench_service_export (PeerServer *server,
                           GError    **error)
{
  static const PeerMethodEntry entries[] = {
    { "Ping", handle_ping, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "Echo", handle_echo, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  g_autoptr(PeerInterface) iface = peer_interface_new (peer_proto_bench1_interface_info ());

  return peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), NULL, error) &&
         peer_server_export (server, PEER_BENCH_PATH, iface, error);
}
