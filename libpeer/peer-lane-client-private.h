/* peer-lane-client-private.h: what the two halves of a lane's client end
 * share: peer-lane-client.c (the lane, its table, calls by name,
 * synchronous calls, reading and writing frames, the reader thread) and
 * peer-lane-client-source.c (each context's source: asynchronous calls,
 * their timed waits, corking, deliveries in the caller's context).
 * Nothing else includes it: the lane's interface is peer-lane-private.h's.
 */
#pragma once

#include "peer-lane-private.h"

G_BEGIN_DECLS

typedef struct {
  guint32 id;
  char *object_path;
  char *interface_name;
  char *member;
  LaneType in;
  LaneType out;
  gint stale;                   /* atomic: the server redirected a call to it */
} LaneEntry;

typedef struct _LaneSource LaneSource;

/* A call waiting for its reply. A synchronous caller's lives on its stack;
 * an asynchronous one's is owned by the table until it is taken out, then
 * by its context's source until its end is returned there. A signal's
 * delivery (_peer_lane_client_deliver()) is queued on a source the same
 * way, as a waiter with @deliver set. */
typedef struct {
  guint32 serial;
  const LaneEntry *entry;
  gboolean is_async;
  /* Under the lane's @lock: set once, by whoever takes it out of @pending */
  gboolean done;
  gboolean setting_up;          /* its end waits until the caller has returned */
  GVariant *reply;
  GUnixFDList *fd_list;
  GError *error;

  /* Serialized synchronous calls only (_peer_lane_client_call_serialized()):
   * the arguments' bytes, borrowed, and the reply's, read where they came */
  gboolean serialized;
  gconstpointer data;
  gsize size;
  GBytes *reply_body;

  /* Asynchronous calls and deliveries only */
  LaneSource *source;           /* its context's; borrowed: the lane's outlive it */
  GList link;                   /* in @source's @timed while in flight with a deadline */
  gint64 deadline;              /* monotonic µs; -1: none */
  GCancellable *cancellable;
  gulong cancelled_id;
  PeerLaneReplyFunc func;
  gpointer user_data;
  GDestroyNotify destroy;
  GSourceFunc deliver;          /* a delivery: deliver (user_data), then destroy */
} LaneWaiter;

/* Where a context's asynchronous calls end (see the top of
 * peer-lane-client-source.c).
 * One per context the lane has had calls from, until the lane goes. */
struct _LaneSource
{
  GSource source;
  PeerLaneClient *lane;         /* a reference */
  GMainContext *context;        /* a reference, let go with the lane (not by the source's
                                 * finalize, which may not drop its context's last) */
  GPollFD poll;                 /* the lane's socket */
  gboolean polling;             /* the owner's: @poll is the context's to poll */
  LaneSpin spin;                /* the context's owner only: before it sleeps */
  /* Under the lane's @lock */
  GQueue done;                  /* LaneWaiter*: ends and deliveries to return, in order */
  GQueue timed;                 /* LaneWaiter* in flight with a deadline (their @link) */
  gint64 next_deadline;         /* no deadline in @timed is earlier; -1: none */
  gint n_async;                 /* its calls in flight; atomic reads without the lock */
  gboolean woken;               /* it is to dispatch, or dispatching: it will take @done */
  gboolean blocked;             /* it found the reader's part taken: woken when it is free */
  gboolean corked;              /* the owner's: calls were corked in its dispatch */
  GQueue returning;             /* the owner's: ends being returned now, in order */
};

struct _PeerLaneClient
{
  gatomicrefcount ref_count;    /* its owner's (the PeerClient's) and each source's */
  int fd;
  /* Looked up on every call: by member name first (a short string to
   * hash), then the few entries of that name compared by interface and
   * path. Read-only after creation. */
  GHashTable *by_member;        /* member → GPtrArray of LaneEntry*, borrowed */
  GPtrArray *by_id;             /* LaneEntry*, owned */
  const LaneEntry *last_found;  /* atomic: the last entry has_method() found */
  /* Calls by name (PEER_LANE_TARGET_BY_NAME): their types, (sssv) in,
   * v out; read-only. Unset when the server does not take them. */
  LaneEntry by_name;
  gboolean calls_by_name;
  guint8 call_flags;            /* PEER_LANE_FLAG_REDIRECTABLE, when the server knows it */
  gint closed;                  /* atomic */

  gsize chunk_size;
  gsize max_chunked;            /* the server's limit on chunked bodies */
  gboolean batches;             /* the server takes BATCH frames (and sends them, once told) */
  gboolean watched;             /* frames are logged or captured */

  /* Held while a frame is written: chunks of one frame are never
   * interleaved with another's, and corked calls go out before any
   * other. Taken before @lock, never after it. */
  GMutex write_lock;
  /* Under @write_lock: calls made while a source returned its calls'
   * ends, written together when it is done (_peer_lane_client_uncork()). */
  GArray *corked;               /* PeerLaneOutFrame: bodies and fd lists held */
  GPtrArray *corked_entries;    /* const LaneEntry*, one for each of @corked (a call
                                 * may end, and its waiter go, before it is written) */

  GMutex lock;
  GCond cond;                   /* something was read, or the reader left */
  /* Protected by @lock */
  guint n_waiting;              /* threads in lane_wait(): a wake-up is a syscall */
  guint32 next_serial;
  GHashTable *pending;          /* serial → LaneWaiter*, the calls in flight */
  gboolean reader_active;       /* a thread holds the reader's part */
  guint n_blocked;              /* sources waiting for the reader's part */
  gboolean stopping;            /* the reader thread is to end */
  GThread *reader_thread;       /* made when signals come on the lane */
  GPtrArray *sources;           /* LaneSource*, one per caller context, held */
  LaneSource *last_source;      /* the one found last */
  PeerLaneSignalFunc signal_func; /* set once; the reader thread reads for it */
  gpointer signal_data;

  /* Only the thread that holds the reader's part touches these */
  guint8 *buffer;
  PeerLaneBuffers *buffers;     /* chunked replies are assembled here */
  LaneSpin spin;                /* for the reply */
};

typedef enum {
  LANE_READ_BLOCK,              /* the socket's own timeout bounds the wait (no poll), after a spin */
  LANE_READ_POLL,               /* until a deadline or a cancellable */
  LANE_READ_NOW,                /* what is there, without waiting */
} LaneReadMode;

/* Table entry @id, or the calls by name's. */
static inline const LaneEntry *
lane_entry (PeerLaneClient *lane,
            guint32         id)
{
  return id == PEER_LANE_TARGET_BY_NAME ? &lane->by_name : g_ptr_array_index (lane->by_id, id);
}

/* The thread returning ends in a source's dispatch (see
 * peer-lane-client-source.c). */
extern __thread LaneSource *_peer_lane_client_returning_source;

/* --- peer-lane-client.c ------------------------------------------------------ */

PeerLaneClient *_peer_lane_client_ref             (PeerLaneClient *lane);
void            _peer_lane_client_unref           (PeerLaneClient *lane);
void            _peer_lane_client_wake_locked     (PeerLaneClient *lane);
void            _peer_lane_client_release_reader_locked (PeerLaneClient *lane);
gboolean        _peer_lane_client_check_call_types (const LaneEntry    *e,
                                                    GVariant           *params,
                                                    const GVariantType *reply_type,
                                                    GError            **error);
void            _peer_lane_client_waiter_free     (LaneWaiter     *w);
void            _peer_lane_client_waiter_finish_locked (PeerLaneClient *lane,
                                                        LaneWaiter     *w,
                                                        GVariant       *reply,
                                                        GUnixFDList    *fd_list,
                                                        GError         *error);
gboolean        _peer_lane_client_end_call_locked (PeerLaneClient *lane,
                                                   LaneWaiter     *w,
                                                   GError         *error);
gboolean        _peer_lane_client_read_one        (PeerLaneClient *lane,
                                                   LaneReadMode    mode,
                                                   gint64          deadline,
                                                   GCancellable   *cancellable,
                                                   GError        **error);
void            _peer_lane_client_uncork          (PeerLaneClient *lane);
gboolean        _peer_lane_client_send_call       (PeerLaneClient  *lane,
                                                   LaneWaiter      *w,
                                                   GVariant        *params,
                                                   GUnixFDList     *fd_list,
                                                   gint64           deadline,
                                                   GCancellable    *cancellable,
                                                   gboolean        *out_reader,
                                                   GError         **error);

/* --- peer-lane-client-source.c ----------------------------------------------- */

void            _peer_lane_client_source_wake_locked (LaneSource *source);
void            _peer_lane_client_source_push_locked (LaneSource *source,
                                                      LaneWaiter *w);

G_END_DECLS
