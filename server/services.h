/* services.h: the objects peer-server serves. */
#pragma once

#include <libpeer.h>

G_BEGIN_DECLS

#define PEER_BENCH_PATH  "/org/libpeer/Bench"
#define PEER_HELPER_PATH "/org/libpeer/Helper"

/* org.libpeer.Bench1 at PEER_BENCH_PATH. */
gboolean peer_bench_service_export  (PeerServer *server,
                                     GError    **error);

/* org.libpeer.Helper1 at PEER_HELPER_PATH; keeps its Peers property in
 * step with @server. */
gboolean peer_helper_service_export (PeerServer *server,
                                     GError    **error);

/* Quick()'s number: uniform in [0, 2^bits), in decimal. Exposed for tests. */
char    *peer_helper_random_decimal (guint       bits);

G_END_DECLS
