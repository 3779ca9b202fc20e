/* services.h: the objects peer-server serves. */
#pragma once

#include <libpeer.h>

G_BEGIN_DECLS

#define PEER_BENCH_PATH  "/org/libpeer/Bench"
#define PEER_HELPER_PATH "/org/libpeer/Helper"
#define PEER_JOBS_PATH   "/org/libpeer/Helper/jobs"

/* The well-known names the services own (peer_server_add_name()). */
#define PEER_BENCH_NAME  "org.libpeer.Bench"
#define PEER_HELPER_NAME "org.libpeer.Helper"

/* How long a finished job stays visible before it goes. */
#define PEER_JOB_DEFAULT_LINGER_MS 30000

/* org.libpeer.Bench1 at PEER_BENCH_PATH. */
gboolean peer_bench_service_export  (PeerServer *server,
                                     GError    **error);

/* org.libpeer.Helper1 at PEER_HELPER_PATH; keeps its Peers property in
 * step with @server. */
gboolean peer_helper_service_export (PeerServer *server,
                                     GError    **error);

/* Lets OpenFile() open regular files under @root; NULL (the default)
 * opens none. Call after peer_helper_service_export(), in the server's
 * context. */
gboolean peer_helper_service_set_files_root (PeerServer *server,
                                             const char *root,
                                             GError    **error);

/* Digest()'s limits on digests running at once: @max_per_peer for each
 * peer (a share of its PeerConnection, default 4) and @max_total for all
 * peers together (default 256), which must be more than one peer may
 * hold. Applies to digests started from now on; call in the server's
 * context. */
void     peer_helper_service_set_digest_limits (PeerServer *server,
                                                guint       max_per_peer,
                                                guint       max_total);

/* The job service (org.libpeer.Job1 objects under PEER_JOBS_PATH); called
 * by peer_helper_service_export(). */
gboolean peer_job_service_attach    (PeerServer *server,
                                     GError    **error);
/* Helper1.StartJob's handler, with its arguments unpacked; replies to
 * @call. */
void     peer_job_service_start_job (PeerServer *server,
                                     PeerCall   *call,
                                     const char *kind,
                                     guint32     steps,
                                     guint32     step_ms);
/* How long finished jobs stay; applies to jobs that finish from now on.
 * Call in the server's context. */
void     peer_job_service_set_linger (PeerServer *server,
                                      guint       linger_ms);
/* How many jobs, finished ones still lingering included, one peer may
 * have (@max_per_peer, a share of its PeerConnection, default 32) and all
 * peers together (@max_total, default 1024; more than one peer may hold).
 * Apart from these, a peer may have 8 running at once. Applies to jobs
 * started from now on; call in the server's context. */
void     peer_job_service_set_limits (PeerServer *server,
                                      guint       max_per_peer,
                                      guint       max_total);

/* Quick()'s number: uniform in [0, 2^bits), in decimal. Exposed for tests. */
char    *peer_helper_random_decimal (guint       bits);

/* OpenFile()'s resolution: opens @path (relative to @root_fd, or absolute
 * under @root_path) read-only, refusing anything that leaves the root or is
 * not a regular file. @use_openat2 FALSE forces the fallback used where the
 * kernel has no openat2(). Returns a new fd, or -1. Exposed for tests. */
int      peer_helper_open_beneath   (int         root_fd,
                                     const char *root_path,
                                     const char *path,
                                     gboolean    use_openat2,
                                     GError    **error);

G_END_DECLS
