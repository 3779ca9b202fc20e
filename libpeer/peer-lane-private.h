/* peer-lane-private.h: the lane, libpeer's fast path for method calls.
 *
 * A lane is a SOCK_SEQPACKET socketpair opened over an authenticated GDBus
 * connection (org.libpeer.Lane1.Open hands the client one end by fd
 * passing, with the table of methods it may call on it) and bound to that
 * connection: same peer, same credentials, closed with it. Calls on a lane
 * skip GDBusMessage and GDBus's worker thread entirely: one frame out, one
 * frame back, each a single sendmsg/recvmsg.
 *
 * A frame is a PeerLaneHeader followed by the body in GVariant's own
 * serialized form (the method's in or out tuple type, known from the
 * table on both sides), all in one datagram. A body over
 * PEER_LANE_MAX_INLINE bytes travels either in chunks (the header alone
 * with the frame's fds, flagged CHUNKED, then CHUNK datagrams that each
 * repeat serial and target and give their offset in body_size) when the
 * writer may wait for the reader and the body is within the receiver's
 * limit, or else as a sealed memfd (PeerBlob), the frame's last fd.
 * Errors carry (ss): the D-Bus error name and message. Both ends are on
 * one machine, so the header is in native byte order.
 *
 * Several small frames written at once (the replies of a server's turn,
 * the calls a client made from its replies' callbacks) travel as one
 * BATCH datagram: one syscall for the writer, and one wake-up for the
 * reader, where one datagram each would wake it (and, on a preemptible
 * kernel, hand it the CPU) once per frame. A server that reads batches
 * says so in Open's limits ("batched-frames"); a client that does (and
 * heard that) sends an empty BATCH first, after which the server may
 * write batches to it.
 *
 * Chunks of one frame are never interleaved with another chunked frame,
 * but a whole one-datagram frame written by another thread may come
 * between them; only a client (for which that is a stale reply) skips it.
 *
 * Frames carry a serial: many calls may be in flight on a lane at once,
 * and replies come back in whatever order the handlers answer.
 *
 * Methods the table does not list are called by name
 * (PEER_LANE_TARGET_BY_NAME, when Open's limits say "calls-by-name"):
 * the server serves them as the peer's GDBus connection would, by the
 * same code, or answers REDIRECT, having run nothing, for what only
 * GDBus answers (peer-lane-dispatch.c says which), and the client sends
 * the call on the connection instead. A table entry unexported since is
 * answered REDIRECT too, and called by name from then on. A server sends
 * REDIRECT only for a CALL flagged REDIRECTABLE, which a client sets
 * once Open said "calls-by-name": a client from before gets none.
 *
 * Threads: the server's lanes are served by a fixed set of loop threads
 * (peer-lane-loop.c), one per CPU the process may use, which exist
 * while any lane does. A server's lane is freed with its last reference
 * on any thread (its loop's, a call's, the main context's): it owns no
 * main-context state, only its fd, and the PeerConnection it holds
 * defers its own teardown to the server's main context. The list of a
 * connection's lanes is main context only; a loop hands its reference
 * back there when the lane ends, and knows which lane it serves by a
 * thread-local mark, never by a thread id. A PeerLaneClient's
 * asynchronous calls are read for and ended by a source in each caller's
 * context (no thread of its own, unless signals come on the lane: then a
 * reader thread, which holds no reference to a call's task or client:
 * see peer-lane-client.c). It is let go by its PeerClient's finalize, on
 * any thread but its own reader thread, which it joins; a source still
 * dispatching holds it until it is done.
 */
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "peer-router-private.h"
#include "peer-wire-private.h"
#include "peer-server.h"
#include "peer-types.h"

G_BEGIN_DECLS

#define PEER_LANE_PATH      "/org/libpeer/Lane"
#define PEER_LANE_INTERFACE "org.libpeer.Lane1"

/* Bodies up to this size travel in the frame; a SEQPACKET datagram must fit
 * the socket buffer, which the kernel caps near 208 KiB by default. */
#define PEER_LANE_MAX_INLINE (128 * 1024)
/* Each end's socket buffers at most, when the kernel grants them. What a
 * lane's sockets can hold counts within the peer's queued-bytes limit, so
 * they are sized from it: all of a peer's lanes together may take half
 * (the kernel doubles each size for its own bookkeeping, and each
 * direction is held in its sender's buffer). Never below what a chunk of
 * PEER_LANE_MAX_INLINE needs. */
#define PEER_LANE_SOCKET_BUFFER (8 * 1024 * 1024)
#define PEER_LANE_MIN_SOCKET_BUFFER (256 * 1024)
/* How long a server's loop waits for a client to take a chunk of a reply
 * before it shuts the lane. */
#define PEER_LANE_SEND_TIMEOUT_MS 10000
/* The most frames a server's loop serves of one lane in a row (a turn)
 * before it serves the other lanes that are ready: their replies are
 * written together as the turn ends. */
#define PEER_LANE_TURN_FRAMES 8
/* Lanes one connection may open: each costs the server an fd and socket
 * buffers (its threads are shared). */
#define PEER_LANE_MAX_PER_CONNECTION 4
/* Lane calls count against the peer's calls in flight, shared with its
 * GDBus connection (peer_server_set_max_calls_in_flight()); this is the
 * default budget. */
#define PEER_LANE_MAX_IN_FLIGHT PEER_SERVER_DEFAULT_MAX_CALLS_IN_FLIGHT

typedef enum {
  PEER_LANE_KIND_CALL = 1,
  PEER_LANE_KIND_REPLY = 2,
  PEER_LANE_KIND_ERROR = 3,
  PEER_LANE_KIND_CHUNK = 4,     /* part of a CHUNKED frame's body */
  PEER_LANE_KIND_SIGNAL = 5,    /* server to client: body (sssv), the path,
                                 * interface, member and arguments */
  PEER_LANE_KIND_REDIRECT = 6,  /* server to client, for call @target: the
                                 * lane does not serve it (nothing ran);
                                 * send it on the D-Bus connection. Body () */
  PEER_LANE_KIND_BATCH = 7,     /* whole frames in one datagram: the body is
                                 * each one's header and inline body, padded
                                 * to 8 bytes; no fds, blobs, chunks or
                                 * batches among them */
} PeerLaneKind;

/* A CALL frame's target for a call by name, to any method the table does
 * not list (Open's limits say "calls-by-name" when the server takes
 * them): body (sssv), the path, interface, member and arguments tuple;
 * its REPLY's body is v, the reply tuple. */
#define PEER_LANE_TARGET_BY_NAME G_MAXUINT32

typedef enum {
  PEER_LANE_FLAG_BODY_IN_BLOB = 1 << 0,
  PEER_LANE_FLAG_CHUNKED      = 1 << 1,
  /* CALL: the client takes a REDIRECT for an answer (it knows calls by
   * name); a server sends none to a client that does not say so. */
  PEER_LANE_FLAG_REDIRECTABLE = 1 << 2,
} PeerLaneFlags;

typedef struct {
  guint32 serial;
  guint32 target;               /* CALL: the method id; REPLY, ERROR: the call's serial */
  guint8 kind;                  /* PeerLaneKind */
  guint8 flags;                 /* PeerLaneFlags */
  guint16 n_fds;                /* the blob's included, last */
  guint32 body_size;            /* the body's size; a CHUNK's: its offset in the body */
} PeerLaneHeader;

G_STATIC_ASSERT (sizeof (PeerLaneHeader) == 16);

/* A frame as received: the header checked against what arrived. */
typedef struct {
  PeerLaneHeader header;
  GBytes *body;                 /* inline bytes or the blob's mapping; never NULL */
  GUnixFDList *fd_list;         /* the frame's other fds; NULL when none */
  gboolean oversized;           /* chunked body over max_body, read and dropped; body NULL */
  GError *over_mapped;          /* a blob body the peer may not have mapped now; body empty */
} PeerLaneFrame;

void      _peer_lane_frame_clear (PeerLaneFrame *frame);

/* Where chunked bodies are assembled: one spare buffer, reused when the
 * value made from the last one is gone. Refcounted (values hold it). */
typedef struct _PeerLaneBuffers PeerLaneBuffers;

PeerLaneBuffers *_peer_lane_buffers_new   (void);
void             _peer_lane_buffers_unref (PeerLaneBuffers *buffers);

typedef struct {
  guint max_fds;                /* besides a blob's */
  gsize max_body;               /* the largest chunked body taken, */
  gsize (*max_body_func) (gpointer data);   /* or, when set, what it says as a frame arrives */
  gpointer max_body_data;
  gboolean drain_oversized;     /* a larger one is read and dropped (else a bad frame) */
  gboolean nonblocking;         /* for the first datagram; chunks are waited for */
  gboolean skip_interleaved;    /* drop whole frames found between chunks */
  PeerLaneBuffers *buffers;     /* NULL: chunked frames are refused */
  PeerWireLimits *mapped_in;    /* blob bodies are counted here (a server's); NULL: not counted */
} PeerLaneReadOptions;

typedef enum {
  PEER_LANE_WAIT_NONE,          /* never wait: large bodies go as blobs */
  PEER_LANE_WAIT_BLOCK,         /* block (within the socket's SO_SNDTIMEO) */
  PEER_LANE_WAIT_POLL,          /* poll until @deadline, dropping what arrives */
} PeerLaneWait;

typedef struct {
  PeerLaneWait wait;
  gsize chunk_size;             /* 0: never chunked */
  gsize max_chunked;            /* the receiver's limit: larger bodies go as blobs,
                                 * inline-sized ones too; 0: none */
  gint64 deadline;              /* WAIT_POLL: monotonic time; -1: the default timeout */
  GCancellable *cancellable;    /* WAIT_POLL */
  guint8 *drain_buffer;         /* WAIT_POLL: a header's room */
  GMutex *chunk_lock;           /* held while a frame is written in chunks, if set */
  guint8 flags;                 /* PEER_LANE_FLAG_REDIRECTABLE, or none */
  gboolean batch;               /* the reader takes BATCH frames (_peer_lane_write_frames()) */
} PeerLaneWriteOptions;

gboolean  _peer_lane_read_frame_full  (int                          fd,
                                       guint8                      *buffer,
                                       const PeerLaneReadOptions   *options,
                                       PeerLaneFrame               *frame,
                                       GError                     **error);
gboolean  _peer_lane_write_frame_full (int                          fd,
                                       PeerLaneKind                 kind,
                                       guint32                      serial,
                                       guint32                      target,
                                       GVariant                    *body,
                                       GUnixFDList                 *fd_list,
                                       const PeerLaneWriteOptions  *options,
                                       GError                     **error);
/* The same for a body given as its serialized bytes (@size of them at
 * @data, borrowed until it returns). */
gboolean  _peer_lane_write_frame_data (int                          fd,
                                       PeerLaneKind                 kind,
                                       guint32                      serial,
                                       guint32                      target,
                                       gconstpointer                data,
                                       gsize                        size,
                                       GUnixFDList                 *fd_list,
                                       const PeerLaneWriteOptions  *options,
                                       GError                     **error);

/* A frame to write, for _peer_lane_write_frames(): what
 * _peer_lane_write_frame_full() takes, borrowed. */
typedef struct {
  PeerLaneKind kind;
  guint32 serial;
  guint32 target;
  GVariant *body;               /* (nullable): none */
  GUnixFDList *fd_list;         /* (nullable) */
} PeerLaneOutFrame;

/* Writes @frames in order, as _peer_lane_write_frame_full() would one by
 * one, but each run of frames that go as one datagram with no fds
 * together: in one BATCH datagram when @options say the reader takes
 * them, else in one sendmmsg(). Returns how many were written; when fewer
 * than @n_frames, @error says why the next was not. */
guint     _peer_lane_write_frames     (int                          fd,
                                       const PeerLaneOutFrame      *frames,
                                       guint                        n_frames,
                                       const PeerLaneWriteOptions  *options,
                                       GError                     **error);

/* The frames in a BATCH frame, one by one from *@offset (0 at first):
 * FALSE at the end (no error set) or at a malformed one (error set, and
 * nothing more should be read from the lane). A frame's body is a copy,
 * or (a large one) a slice of the batch's, aligned as GVariant needs. */
gboolean  _peer_lane_batch_next       (const PeerLaneFrame         *batch,
                                       gsize                       *offset,
                                       PeerLaneFrame               *frame,
                                       GError                     **error);

/* Reads one frame. Returns FALSE at end of stream (no error set) or on a
 * malformed frame or I/O error (error set); every fd received with a bad
 * frame is closed. @buffer is PEER_LANE_MAX_INLINE + header bytes. A
 * CHUNK datagram is returned as a frame with an empty body (the rest of a
 * frame whose start was dropped): the caller drops or refuses it. The
 * short forms take no chunked frames and send none. */
gboolean  _peer_lane_read_frame  (int             fd,
                                  guint8         *buffer,
                                  guint           max_fds,
                                  gboolean        nonblocking,
                                  PeerLaneFrame  *frame,
                                  GError        **error);

/* Writes one frame: @body (a serialized GVariant) inline, or as a sealed
 * memfd when larger than PEER_LANE_MAX_INLINE; @fd_list's fds are sent
 * (duplicates stay with the caller). */
gboolean  _peer_lane_write_frame (int             fd,
                                  PeerLaneKind    kind,
                                  guint32         serial,
                                  guint32         target,
                                  GVariant       *body,
                                  GUnixFDList    *fd_list,
                                  gboolean        nonblocking,
                                  GError        **error);

/* --- server side --------------------------------------------------------- */

/* org.libpeer.Lane1 at PEER_LANE_PATH, exported by every PeerServer
 * (held weakly: calls by name find its objects through it). */
PeerInterface *_peer_lane_interface_new (PeerRouter *router,
                                         PeerServer *server);

/* Whether calls by name to @interface_name may take a lane at all: not
 * the bus driver's, introspection's, org.freedesktop.DBus.Peer's, the
 * wire's or the lane's own (Properties and ObjectManager may). Both
 * ends ask it. */
gboolean  _peer_lane_serves_interface (const char *interface_name);

/* --- client side --------------------------------------------------------- */

typedef struct _PeerLaneClient PeerLaneClient;

/* From the reply to Open: the fd and the method table. */
PeerLaneClient *_peer_lane_client_new        (GVariant        *open_reply,
                                              GUnixFDList     *fd_list,
                                              GError         **error);
void            _peer_lane_client_free       (PeerLaneClient  *lane);
/* Whether @lane's table lists the method (and the server has not said
 * the entry is stale); cheap, called on every call. */
gboolean        _peer_lane_client_has_method (PeerLaneClient  *lane,
                                              const char      *object_path,
                                              const char      *interface_name,
                                              const char      *method_name,
                                              guint32         *out_id);
guint           _peer_lane_client_get_n_methods (PeerLaneClient *lane);
/* @parameters: (transfer none) (nullable), not floating. */
GVariant       *_peer_lane_client_call       (PeerLaneClient     *lane,
                                              guint32             id,
                                              GVariant           *parameters,
                                              const GVariantType *reply_type,
                                              int                 timeout_ms,
                                              GUnixFDList        *fd_list,
                                              GUnixFDList       **out_fd_list,
                                              GCancellable       *cancellable,
                                              GError            **error);
/* The same call with its arguments as the serialized bytes of a value of
 * @parameters_type (@size of them at @data, borrowed until it returns),
 * and its reply as the bytes of a value of the method's reply type in
 * normal form (transfer full), read where they arrived. */
GBytes         *_peer_lane_client_call_serialized (PeerLaneClient     *lane,
                                                   guint32             id,
                                                   const GVariantType *parameters_type,
                                                   gconstpointer       data,
                                                   gsize               size,
                                                   const GVariantType *reply_type,
                                                   int                 timeout_ms,
                                                   GUnixFDList        *fd_list,
                                                   GUnixFDList       **out_fd_list,
                                                   GCancellable       *cancellable,
                                                   GError            **error);
/* An asynchronous lane call's end, in the caller's context: exactly one of
 * @reply and @error is set; all three are (transfer full). */
typedef void (*PeerLaneReplyFunc) (GVariant    *reply,
                                   GUnixFDList *fd_list,
                                   GError      *error,
                                   gpointer     user_data);
/* Sends the call and returns; @func runs once in @context (NULL: the
 * thread-default one), always from that context's loop, never from
 * within this function, then @destroy. Calls in flight may be many, from
 * any thread, beside synchronous ones; replies are matched by serial,
 * and read by @context's loop itself while it runs (see
 * peer-lane-client-source.c). A call made from the callback of another's end is
 * written when that context is done returning ends, with the others made
 * then. @cancellable ends the call at once with G_IO_ERROR_CANCELLED; its
 * late reply is dropped with its fds. @parameters: (transfer none)
 * (nullable), not floating. */
void            _peer_lane_client_call_async (PeerLaneClient     *lane,
                                              guint32             id,
                                              GVariant           *parameters,
                                              const GVariantType *reply_type,
                                              int                 timeout_ms,
                                              GUnixFDList        *fd_list,
                                              GCancellable       *cancellable,
                                              GMainContext       *context,
                                              PeerLaneReplyFunc   func,
                                              gpointer            user_data,
                                              GDestroyNotify      destroy);
/* Calls by name, to methods the table does not list (see
 * PEER_LANE_TARGET_BY_NAME): whether @lane's server takes them for
 * @interface_name, and the calls, whose replies are the reply tuples
 * (their types unchecked: the caller checks them). As the calls by id
 * above otherwise. */
gboolean        _peer_lane_client_serves_by_name (PeerLaneClient *lane,
                                                  const char     *interface_name);
GVariant       *_peer_lane_client_call_by_name   (PeerLaneClient     *lane,
                                                  const char         *object_path,
                                                  const char         *interface_name,
                                                  const char         *method_name,
                                                  GVariant           *parameters,
                                                  int                 timeout_ms,
                                                  GUnixFDList        *fd_list,
                                                  GUnixFDList       **out_fd_list,
                                                  GCancellable       *cancellable,
                                                  GError            **error);
void            _peer_lane_client_call_by_name_async (PeerLaneClient     *lane,
                                                      const char         *object_path,
                                                      const char         *interface_name,
                                                      const char         *method_name,
                                                      GVariant           *parameters,
                                                      int                 timeout_ms,
                                                      GUnixFDList        *fd_list,
                                                      GCancellable       *cancellable,
                                                      GMainContext       *context,
                                                      PeerLaneReplyFunc   func,
                                                      gpointer            user_data,
                                                      GDestroyNotify      destroy);
/* The names of table entry @id. */
void            _peer_lane_client_get_method_names (PeerLaneClient  *lane,
                                                    guint32          id,
                                                    const char     **out_path,
                                                    const char     **out_interface,
                                                    const char     **out_member);
/* A call the server answered PEER_LANE_KIND_REDIRECT ends with this
 * error: nothing of it ran, and it is to be sent on the D-Bus
 * connection (a table entry's, first by name: its entry is stale). */
#define PEER_LANE_ERROR (_peer_lane_error_quark ())
GQuark          _peer_lane_error_quark       (void);
typedef enum {
  PEER_LANE_ERROR_NOT_SERVED,
} PeerLaneError;

/* Signals on the lane (after org.libpeer.Lane1.TakeSignals): @func runs
 * on the thread reading the lane, for each, and hands what it does on to
 * a context with _peer_lane_client_deliver(), in order with the replies
 * read before the signal. Set once; from then on a thread reads the lane
 * always. */
typedef void (*PeerLaneSignalFunc) (PeerLaneClient *lane,
                                    const char     *object_path,
                                    const char     *interface_name,
                                    const char     *signal_name,
                                    GVariant       *parameters,
                                    gpointer        data);
void            _peer_lane_client_set_signal_func (PeerLaneClient     *lane,
                                                   PeerLaneSignalFunc  func,
                                                   gpointer            data);
/* From a PeerLaneSignalFunc: @func(@data) in @context, then @destroy
 * (also when @context goes undispatched): after the replies read before
 * it, before those read after. */
void            _peer_lane_client_deliver    (PeerLaneClient     *lane,
                                              GMainContext       *context,
                                              GSourceFunc         func,
                                              gpointer            data,
                                              GDestroyNotify      destroy);
/* Shuts the socket; calls in flight fail with PEER_ERROR_DISCONNECTED. */
void            _peer_lane_client_shutdown   (PeerLaneClient  *lane);
gboolean        _peer_lane_client_is_closed  (PeerLaneClient  *lane);
/* For tests that speak the lane protocol by hand. */
int             _peer_lane_client_get_fd     (PeerLaneClient  *lane);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerLaneClient, _peer_lane_client_free)

/* --- shared by peer-lane-frame.c, -server.c and -client.c ------------------ */

/* A frame's header and the most a datagram holds inline. */
#define PEER_LANE_BUFFER_SIZE (sizeof (PeerLaneHeader) + PEER_LANE_MAX_INLINE)
/* How long a call may wait by default, as on the GDBus path. */
#define PEER_LANE_DEFAULT_TIMEOUT_MS 25000

/* How a received body is checked against its type: see peer-lane-type.c. */
typedef enum {
  LANE_CHECK_UNIT,              /* (): one zero byte */
  LANE_CHECK_SIZE,              /* fixed-size, every byte free: its length */
  LANE_CHECK_ELEMENTS,          /* one array of such elements: a whole number of them */
  LANE_CHECK_PLAN,              /* numbers, booleans, arrays of them: a walk */
  LANE_CHECK_GLIB,              /* the rest: g_variant_is_normal_form() */
} LaneCheck;

typedef struct _LaneTypePlan LaneTypePlan;

/* One direction of a method's traffic (its arguments or its reply), as
 * both ends' method tables keep it: made once, read on every call. */
typedef struct {
  GVariantType *type;
  GVariant *anchor;             /* see type_anchor_new() */
  const char *string;           /* the anchor's type string (GLib's own) */
  gsize length;                 /* its length */
  LaneCheck check;
  gsize size;                   /* SIZE: the value's; ELEMENTS: an element's */
  LaneTypePlan *plan;           /* PLAN */
} LaneType;

void      _peer_lane_type_init  (LaneType           *t,
                                 const char         *signature);
void      _peer_lane_type_clear (LaneType           *t);
/* (transfer full) (nullable) @body read as a value of @t's type, or NULL
 * when it is not one in normal form, which the D-Bus path would refuse
 * too: see peer-lane-type.c. */
GVariant *_peer_lane_type_read  (const LaneType     *t,
                                 GBytes             *body);
/* Whether @body is a value of @t's type in normal form, checked where it
 * lies (what _peer_lane_type_read() checks, without making the value). */
gboolean  _peer_lane_type_check (const LaneType     *t,
                                 GBytes             *body);

static inline gboolean
_peer_lane_type_is_of (const LaneType *t,
                       GVariant       *value)
{
  return g_variant_get_type_string (value) == t->string || g_variant_is_of_type (value, t->type);
}

/* The empty tuple, made once. (transfer none) */
GVariant *_peer_lane_unit_variant (void);
/* An error frame's body, (ss). (transfer full) */
GVariant *_peer_lane_error_body (const char *name,
                                            const char *message);
/* The largest chunk this end of a lane sends on @fd. */
gsize     _peer_lane_chunk_size_for (int fd);

/* A frame as the D-Bus message it stands for (transfer full), and the
 * same logged and captured for @side. */
GDBusMessage *_peer_lane_frame_to_message (PeerLaneKind  kind,
                                                      guint32       serial,
                                                      guint32       target,
                                                      const char   *path,
                                                      const char   *interface_name,
                                                      const char   *member,
                                                      GVariant     *body,
                                                      GUnixFDList  *fd_list);
void      _peer_lane_debug_frame (const char   *side,
                                             gboolean      incoming,
                                             PeerLaneKind  kind,
                                             guint32       serial,
                                             guint32       target,
                                             const char   *path,
                                             const char   *interface_name,
                                             const char   *member,
                                             GVariant     *body,
                                             GUnixFDList  *fd_list);

/* Spin-then-sleep: see peer-lane-spin.c. */
typedef struct {
  gint64 max;                   /* ns; 0: never spins; -1: decided at the first wait */
  gint64 budget;                /* ns the next wait spins; 0: not spinning for now */
  gint64 average;               /* ns a spin took to catch a frame, lately */
  guint misses;                 /* spins in a row that caught nothing */
  guint unspun;                 /* waits since spinning stopped */
  pid_t peer_pid;               /* 0: the socket's credentials say */
} LaneSpin;

/* Before the first wait. With a peer's pid (a server knows its client's
 * from the connection), or without (the lane socket's credentials name
 * its creator: right for a client). */
void      _peer_lane_spin_init          (LaneSpin *spin);
void      _peer_lane_spin_init_for_peer (LaneSpin *spin,
                                         pid_t     peer_pid);
/* TRUE when a frame is there (or the end of the stream), FALSE when the
 * spin gave up or did not spin. */
gboolean  _peer_lane_spin_wait          (LaneSpin *spin,
                                         int       fd);
/* The CPUs this process may run on (its main thread's mask, which
 * `taskset` sets for every thread), not the machine's: a server's loops
 * are as many. */
guint     _peer_lane_n_cpus             (void);
/* Around a thread's whole wait for a frame (spin and blocking read): no
 * thread spins while more threads of the process wait than it may spin. */
void      _peer_lane_wait_begin         (void);
void      _peer_lane_wait_end           (void);
/* For tests: the maximum spin for CPU masks (@peers NULL: unknown), and
 * a wait's outcome applied to @spin's budget. */
gint64    _peer_lane_spin_max_for       (const cpu_set_t *ours,
                                         const cpu_set_t *peers,
                                         gint64           max_us);
void      _peer_lane_spin_record        (LaneSpin *spin,
                                         gboolean  caught,
                                         gint64    waited_ns);

G_END_DECLS
