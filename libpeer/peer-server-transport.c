/* peer-server-transport.c: org.libpeer.Transport1, through which a libpeer
 * client learns that the server speaks libpeer (see peer-wire.c for the
 * blob-wrapped calls it announces). An interface the server exports,
 * above the wire: the wire layer only unwraps. */
#include "config.h"

#include "peer-call.h"
#include "peer-connection-private.h"
#include "peer-interface.h"
#include "peer-server-private.h"
#include "peer-wire-private.h"

static const char wire_xml[] =
  "<node>"
  " <interface name='" PEER_WIRE_INTERFACE "'>"
  "  <method name='GetFeatures'>"
  "   <arg name='features' type='a{sv}' direction='out'/>"
  "  </method>"
  /* Never dispatched: the server's filter unwraps every BlobCall. Listed
   * so that introspection documents the wire protocol. */
  "  <method name='" PEER_WIRE_BLOB_CALL_METHOD "'>"
  "   <arg name='interface' type='s' direction='in'/>"
  "   <arg name='method' type='s' direction='in'/>"
  "   <arg name='args' type='v' direction='in'/>"
  "   <arg name='blobs' type='a(uht)' direction='in'/>"
  "   <arg name='reply' type='v' direction='out'/>"
  "   <arg name='reply_blobs' type='a(uht)' direction='out'/>"
  "  </method>"
  " </interface>"
  "</node>";

static void
handle_get_features (PeerCall *call,
                     gpointer  user_data)
{
  g_auto(GVariantBuilder) features = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE_VARDICT);
  PeerConnection *peer = peer_call_get_connection (call);
  PeerWireLimits *limits = _peer_connection_get_limits (peer);

  /* Blobs need fds: a peer that cannot pass them is told there are none. */
  g_variant_builder_add (&features, "{sv}", "blob-call",
                         g_variant_new_boolean (peer_connection_can_pass_fds (peer)));
  /* The limits this peer's messages meet, so that a client can send what
   * is over them as a blob, or fail before it writes a byte. */
  g_variant_builder_add (&features, "{sv}", "max-message-size",
                         g_variant_new_uint32 (_peer_wire_limits_get_max_message_size (limits)));
  g_variant_builder_add (&features, "{sv}", "max-fds-per-message",
                         g_variant_new_uint32 (_peer_wire_limits_get_max_fds (limits)));
  peer_call_return_value (call, g_variant_new ("(a{sv})", &features));
}

PeerInterface *
_peer_server_transport_interface_new (void)
{
  static const PeerMethodEntry entries[] = {
    { "GetFeatures", handle_get_features, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  g_autoptr(PeerInterface) iface = NULL;

  iface = peer_interface_new_for_xml (wire_xml, PEER_WIRE_INTERFACE, NULL);
  g_assert (iface != NULL);     /* static XML */
  if (!peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), NULL, NULL))
    g_assert_not_reached ();
  return g_steal_pointer (&iface);
}
