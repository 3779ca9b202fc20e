/* peer-lane-server-private.h: what the server's lane files share:
 * peer-lane-server.c (the lane object, its lifetime, Open and
 * TakeSignals), peer-lane-loop.c (the loops, and each lane's reading and
 * writing) and peer-lane-dispatch.c (calls made PeerCalls, and their
 * replies). See peer-lane-server.c for the whole, and
 * peer-lane-private.h for what the rest of the library sees.
 */
#pragma once

#include <glib.h>

#include "peer-lane-private.h"
#include "peer-wire-private.h"

G_BEGIN_DECLS

typedef struct {
  PeerInterface *iface;
  char *object_path;            /* an interface may be at several paths */
  guint method_index;
  gboolean thread_safe;
  LaneType in;
  LaneType out;
  /* Atomic: the router's objects serial when @iface was last seen
   * exported at @object_path (see lane_method_is_current(),
   * peer-lane-dispatch.c). */
  guint validated;
} LaneMethod;

/* Owned by references: its loop's (while it is watched), the connection's
 * list of lanes (main context), and each call in progress. The fd is closed with the
 * last reference, never before: a reply written from another thread must
 * not reach a reused fd number. */
typedef struct {
  gatomicrefcount ref_count;
  guint64 id;                   /* for its connection's list, which may outlive it */
  int fd;
  PeerConnection *connection;
  PeerRouter *router;           /* for monitors' copies */
  GWeakRef server;              /* PeerServer: calls by name find its objects */
  GMainContext *context;
  GPtrArray *methods;           /* LaneMethod*, indexed by id; read-only */
  gint shut;                    /* atomic */
  LaneSpin spin;                /* its loop's, for the next frame */
  gsize chunk_size;
  gsize max_chunked;            /* what the client was told it may receive in chunks */
  gsize kernel_reserved;        /* the sockets' buffers, held in the peer's quota */

  /* What is written, in order. Frames are queued in @queued and written
   * by whoever holds @write_lock: a loop serving this lane queues the
   * replies and signals of its turn and writes them together at the
   * turn's end (in one batch, the client woken once), waiting for
   * the client if it must (large replies in chunks); other threads
   * write at once when nothing is queued and the lock is free, and
   * never wait: when the lock is held, they queue and whoever holds it
   * writes what they queued after releasing it. */
  GMutex write_lock;
  GMutex queue_lock;
  GArray *queued;               /* QueuedFrame, under queue_lock */
  GArray *writing;              /* QueuedFrame, under write_lock: being written */
  gint n_queued;                /* atomic: @queued's length */
  gint peer_batches;            /* atomic: the client takes BATCH frames (it sent one) */
  /* Atomic: counted as a loop arms the lane for the next turn, read as a
   * loop takes it. Loops hand a lane on to each other through the kernel
   * (the epoll set), which ThreadSanitizer does not see as a hand-off:
   * this is the one it sees. */
  gint turns;
  guint lone_turns;             /* its loop's: turns in a row that found one frame */
  gboolean watched;             /* frames are logged or captured */
  /* A finished call's block, for its loop's next call: a call
   * costs no allocation in the steady state. Atomic: calls finish on
   * any thread. */
  gpointer spare_call;
} LaneServer;

/* A frame waiting to be written: its body and fds held. */
typedef PeerLaneOutFrame QueuedFrame;

/* peer-lane-server.c: the lane's references (the fd is closed with the
 * last), its shutdown (any thread: its loop sees the end of stream and
 * lets it go), a frame seen by the log, the capture and monitors, and
 * the lane taken off its connection's list as it ends. */
LaneServer *_peer_lane_server_ref           (LaneServer   *lane);
void        _peer_lane_server_unref         (LaneServer   *lane);
void        _peer_lane_server_shutdown      (LaneServer   *lane);
void        _peer_lane_server_observe_frame (LaneServer   *lane,
                                             gboolean      incoming,
                                             PeerLaneKind  kind,
                                             guint32       serial,
                                             guint32       target,
                                             const char   *path,
                                             const char   *interface_name,
                                             const char   *member,
                                             GVariant     *body,
                                             GUnixFDList  *fd_list);
void        _peer_lane_server_unlist        (LaneServer   *lane);

/* peer-lane-loop.c: a lane given to the loops (main context), its
 * sockets readied for them (in Open), its frames written (any thread: a
 * reply or error for call @target, observed as @observed, NULL: not
 * observed), and queued frames let go of. */
gboolean    _peer_lane_loop_add             (LaneServer      *lane,
                                             GError         **error);
gboolean    _peer_lane_loop_prepare_socket  (const int        pair[2],
                                             PeerWireLimits  *ledger,
                                             gsize           *out_kernel_bytes,
                                             GError         **error);
void        _peer_lane_loop_send_observed   (LaneServer      *lane,
                                             PeerLaneKind     kind,
                                             guint32          target,
                                             GVariant        *body,
                                             GVariant        *observed,
                                             GUnixFDList     *fd_list);
void        _peer_lane_loop_send            (LaneServer      *lane,
                                             PeerLaneKind     kind,
                                             guint32          target,
                                             GVariant        *body,
                                             GUnixFDList     *fd_list);
void        _peer_lane_loop_clear_queued    (GArray          *frames);

/* peer-lane-dispatch.c: on its loop, in a turn of @lane, a frame read
 * from it; the loop's one way into dispatch. Returns FALSE when the frame
 * breaks the protocol. */
gboolean    _peer_lane_server_handle_frame  (LaneServer      *lane,
                                             PeerLaneFrame   *frame);

G_END_DECLS
