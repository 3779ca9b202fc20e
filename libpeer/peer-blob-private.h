/* peer-blob-private.h: what the wire code needs of PeerBlob. */
#pragma once

#include "peer-blob.h"

G_BEGIN_DECLS

/* The live blob whose mapping starts at @data and is @size bytes long, so
 * that bytes which arrived as a blob leave as the same memfd, uncopied.
 * Returns a new reference, or NULL. */
PeerBlob *_peer_blob_lookup_mapping (gconstpointer data,
                                     gsize         size);

G_END_DECLS
