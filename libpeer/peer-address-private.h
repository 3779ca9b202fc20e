/* peer-address-private.h: parsing D-Bus server addresses.
 *
 * libpeer parses addresses itself rather than handing them to GDBusServer
 * unchecked, so it can refuse the ones that are not private (abstract
 * sockets, which any process in the network namespace can reach, and TCP)
 * before anything listens.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  PEER_ADDRESS_UNIX_PATH,
  PEER_ADDRESS_UNIX_DIR,
  PEER_ADDRESS_UNIX_TMPDIR,
  PEER_ADDRESS_UNIX_ABSTRACT,
  PEER_ADDRESS_TCP,
  PEER_ADDRESS_NONCE_TCP,
} PeerAddressKind;

typedef struct {
  PeerAddressKind kind;
  char *transport;        /* "unix", "tcp", "nonce-tcp" */
  char *value;            /* the path, dir, tmpdir or abstract name; NULL for TCP */
  GHashTable *params;     /* every key=value, unescaped */
} PeerAddress;

/* Parses one server address ("unix:path=/run/x/socket"). Lists of
 * addresses (';') are refused: a server listens on exactly one. */
gboolean     peer_address_parse          (const char   *text,
                                          PeerAddress **out_address,
                                          GError      **error);
void         peer_address_free           (PeerAddress  *address);
gboolean     peer_address_is_private     (const PeerAddress *address);
const char  *peer_address_kind_to_string (PeerAddressKind kind);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerAddress, peer_address_free)

G_END_DECLS
