/* peer-lane-loop.c: the loops that serve the server's lanes, and how
 * frames go in and out of a lane.
 *
 * The loop threads share one epoll set, take a ready lane each, and serve
 * it a turn of frames (at most PEER_LANE_TURN_FRAMES, more for the only
 * lane of the process, spinning for its next call when it is alone);
 * the replies and signals written on the loop during a turn are queued
 * and written together as it ends. Writing is here too, for every
 * thread: the lane's queue, its write lock, the batch, and the sizes and
 * timeouts of a lane's socket buffers.
 *
 * What a frame means is not the loop's business: each one it reads goes
 * to _peer_lane_server_handle_frame() (peer-lane-dispatch.c), its only
 * way into dispatch; the replies come back through _peer_lane_loop_send()
 * and _peer_lane_loop_send_observed(). The lane object and its lifetime
 * are in peer-lane-server.c, which gives lanes to the loops with
 * _peer_lane_loop_add().
 */
#include "config.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-lane-private.h"
#include "peer-lane-server-private.h"
#include "peer-server-private.h"

/* --- writing: the queue and the turn's batch --------------------------------- */

/* Lets go of what @frames hold and empties it. Not the array's clear
 * function: GArray calls that through a slower path, on every reply. */
void
_peer_lane_loop_clear_queued (GArray *frames)
{
  for (guint i = 0; i < frames->len; i++)
    {
      QueuedFrame *q = &g_array_index (frames, QueuedFrame, i);

      g_clear_pointer (&q->body, g_variant_unref);
      g_clear_object (&q->fd_list);
    }
  g_array_set_size (frames, 0);
}

/* The lane whose turn this thread (a loop) is serving now, if any: what
 * is written on it from here waits for the turn's end. A thread-local
 * variable, not a GPrivate: read on every reply. */
static __thread LaneServer *current_lane;

/* How the server writes a reply: waiting for the client only on the lane
 * thread (@wait BLOCK: in chunks), never elsewhere (NONE). Either way a
 * body over the peer's message-size limit (as it is now, and as Open told
 * the client) goes as a blob, as a body over PEER_LANE_MAX_INLINE does
 * when it is not chunked. */
static PeerLaneWriteOptions
lane_write_options (LaneServer   *lane,
                    PeerLaneWait  wait)
{
  PeerLaneWriteOptions options = {
    wait, wait == PEER_LANE_WAIT_BLOCK ? lane->chunk_size : 0,
    MIN (lane->max_chunked, _peer_connection_get_max_message_size (lane->connection)),
  };

  options.batch = g_atomic_int_get (&lane->peer_batches);
  return options;
}

/* With @write_lock held: writes what is queued, in order, until nothing
 * is; waiting for the client only as @wait says (a loop's BLOCK). A
 * frame that cannot be written shuts the lane. */
static void
lane_write_queued_locked (LaneServer   *lane,
                          PeerLaneWait  wait)
{
  while (g_atomic_int_get (&lane->n_queued) > 0)
    {
      g_autoptr(GError) error = NULL;
      GArray *batch;

      g_mutex_lock (&lane->queue_lock);
      batch = lane->queued;
      lane->queued = lane->writing;
      lane->writing = batch;
      g_atomic_int_set (&lane->n_queued, 0);
      g_mutex_unlock (&lane->queue_lock);
      if (!g_atomic_int_get (&lane->shut))
        {
          PeerLaneWriteOptions options = lane_write_options (lane, wait);

          if (_peer_lane_write_frames (lane->fd, (const PeerLaneOutFrame *) batch->data, batch->len,
                                       &options, &error) < batch->len)
            {
              g_debug ("libpeer: lane reply to %s failed: %s",
                       peer_connection_get_unique_name (lane->connection), error->message);
              _peer_lane_server_shutdown (lane);
            }
        }
      _peer_lane_loop_clear_queued (batch);
    }
}

/* Writes what is queued, unless another thread holds the lock (it does
 * so itself after releasing it). Never waits for the client. */
static void
lane_flush_queued (LaneServer *lane)
{
  while (g_atomic_int_get (&lane->n_queued) > 0 && g_mutex_trylock (&lane->write_lock))
    {
      lane_write_queued_locked (lane, PEER_LANE_WAIT_NONE);
      g_mutex_unlock (&lane->write_lock);
    }
}

/* On its loop, at the end of a turn: the turn's replies and signals (and
 * whatever others queued meanwhile), waiting for the client if it must. */
static void
lane_flush_turn (LaneServer *lane)
{
  if (g_atomic_int_get (&lane->n_queued) == 0)
    return;
  g_mutex_lock (&lane->write_lock);
  lane_write_queued_locked (lane, PEER_LANE_WAIT_BLOCK);
  g_mutex_unlock (&lane->write_lock);
  lane_flush_queued (lane);             /* queued between the last look and the unlock */
}

static void
lane_queue (LaneServer   *lane,
            PeerLaneKind  kind,
            guint32       target,
            GVariant     *body,
            GUnixFDList  *fd_list)
{
  QueuedFrame q = {
    kind, 0, target, g_variant_ref (body), fd_list != NULL ? g_object_ref (fd_list) : NULL,
  };

  g_mutex_lock (&lane->queue_lock);
  g_array_append_val (lane->queued, q);
  g_atomic_int_inc (&lane->n_queued);
  g_mutex_unlock (&lane->queue_lock);
}

/* Any thread: a reply or an error for call @target, observed as
 * @observed (what it stands for on D-Bus; NULL: not observed). */
void
_peer_lane_loop_send_observed (LaneServer   *lane,
                               PeerLaneKind  kind,
                               guint32       target,
                               GVariant     *body,
                               GVariant     *observed,
                               GUnixFDList  *fd_list)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (kind != PEER_LANE_KIND_SIGNAL && observed != NULL &&
      (lane->watched || _peer_router_has_monitors (lane->router)))
    _peer_lane_server_observe_frame (lane, FALSE, kind, 0, target, NULL, NULL, NULL, observed, fd_list);
  if (current_lane == lane)
    {
      /* The lane's loop, in a turn of this lane: written with the turn's
       * other frames as it ends (lane_flush_turn()). */
      lane_queue (lane, kind, target, body, fd_list);
      return;
    }
  if (g_atomic_int_get (&lane->n_queued) == 0 && g_mutex_trylock (&lane->write_lock))
    {
      /* Never waiting: a peer that does not read its replies loses its
       * lane instead of stalling the thread that replies (maybe the main
       * one); what it can make us hold is the socket buffer. */
      PeerLaneWriteOptions options = lane_write_options (lane, PEER_LANE_WAIT_NONE);

      ok = _peer_lane_write_frame_full (lane->fd, kind, 0, target, body, fd_list, &options, &error);
      g_mutex_unlock (&lane->write_lock);
      if (!ok)
        {
          g_debug ("libpeer: lane reply to %s failed: %s",
                   peer_connection_get_unique_name (lane->connection), error->message);
          _peer_lane_server_shutdown (lane);
        }
      lane_flush_queued (lane);
      return;
    }
  /* Behind what is queued, or while another thread writes. */
  lane_queue (lane, kind, target, body, fd_list);
  lane_flush_queued (lane);
}

void
_peer_lane_loop_send (LaneServer   *lane,
                      PeerLaneKind  kind,
                      guint32       target,
                      GVariant     *body,
                      GUnixFDList  *fd_list)
{
  _peer_lane_loop_send_observed (lane, kind, target, body, body, fd_list);
}

/* --- the loops ------------------------------------------------------------- */

/* How long a loop with nothing to do keeps the spare buffer chunked bodies
 * were assembled in: a lane busy with large calls reuses it, an idle one
 * gives the memory back. */
#define LOOP_IDLE_MS 1000
/* Lanes a loop takes at once, each getting a turn: one while other loops
 * could take the rest (each lane that becomes ready goes to whichever
 * loop is free), more for a loop alone. */
#define LOOP_MAX_EVENTS 16
/* A turn: the frames of one lane served in a row, their replies written
 * together at its end (in one batch, one wake-up of the client), at
 * most PEER_LANE_TURN_FRAMES of them, and ending after a frame that
 * brings its bodies to LOOP_TURN_BYTES. The work a lane gets per turn is
 * bounded, so a lane with much to say does not hold the others back; a
 * lane with more is ready again as its turn ends, behind them. The only
 * lane of the process holds no other back: its turns are up to
 * LOOP_ALONE_FRAMES (a pipelining client's calls all read, and answered
 * in one write, and the client woken once for them). */
#define LOOP_TURN_BYTES (256 * 1024)
#define LOOP_ALONE_FRAMES 64
/* A lane whose last LOOP_LONE_TURNS turns each found one frame (a client
 * that calls once at a time) gets turns of one frame, without a read that
 * finds nothing after it: its reply goes at once, a syscall earlier.
 * Every LOOP_PROBE_EVERY-th of them reads on, so that a client that
 * began to pipeline gets long turns again. */
#define LOOP_LONE_TURNS 4
#define LOOP_PROBE_EVERY 16
/* How long a loop waits for the rest of a chunked frame once its header
 * came: the client writes them in a row, and a client that stops midway
 * must not hold the other lanes of its loop for long. */
#define LOOP_CHUNK_TIMEOUT_MS 2000

/* What the loops share: one epoll set with every lane in it, each armed
 * for one loop at a time (EPOLLONESHOT: the loop that takes a ready lane
 * has it alone for its turn, and arms it again after), so that whichever
 * loop is free serves whichever lane is ready, in the order they became
 * ready. Lanes given to loops for good would share them as unevenly as
 * they happened to be given out: with four clients on two loops, one
 * loop's lane served alone as fast as its client calls, the other
 * three's taking turns on the other loop. */
typedef struct {
  gatomicrefcount ref_count;    /* each loop's */
  int epoll_fd;
  int wake_fd;                  /* an eventfd, always readable once written: the loops are to end */
  /* EPOLLIN, and EPOLLONESHOT with more than one loop: one loop alone
   * need not arm a lane again after each turn. */
  guint32 lane_events;
} LaneLoopSet;

typedef struct {
  LaneLoopSet *set;             /* a reference */
  /* Only the loop's thread touches these */
  guint8 *buffer;               /* a frame's header and inline body */
  PeerLaneBuffers *buffers;     /* chunked calls are assembled here */
} LaneLoop;

/* The loops exist while some lane does (any server's in the process):
 * made with the first, ended with the last, so that a process with no
 * lanes has no threads or fds for them. A loop that is told to end frees
 * itself as its thread ends (the last lane may end on a loop's thread,
 * which cannot wait for itself), and the last of them the set. */
static GMutex loops_lock;
/* Protected by @loops_lock */
static LaneLoopSet *loop_set;
static guint n_loops;
static guint n_lanes_total;     /* lanes given to the loops, not yet handed back; atomic reads */

static void lane_loops_release (void);

static void
lane_loop_set_unref (LaneLoopSet *set)
{
  if (!g_atomic_ref_count_dec (&set->ref_count))
    return;
  close (set->epoll_fd);
  close (set->wake_fd);
  g_free (set);
}

/* The limit applies to connected peers as soon as it changes. */
static gsize
lane_max_body (gpointer connection)
{
  return _peer_connection_get_max_message_size (connection);
}

/* On its loop: the lane is done (end of stream, a bad frame, shut). */
static void
lane_end (LaneLoop   *loop,
          LaneServer *lane,
          GError     *error)
{
  epoll_ctl (loop->set->epoll_fd, EPOLL_CTL_DEL, lane->fd, NULL);
  if (error != NULL && !g_atomic_int_get (&lane->shut))
    {
      /* A peer that breaks the lane protocol is broken or hostile; the
       * GDBus connection carries the same credentials, so it goes too. */
      g_autoptr(GError) reason = g_error_new (PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                                              "Bad lane frame: %s", error->message);
      g_debug ("libpeer: closing %s: %s", peer_connection_get_unique_name (lane->connection),
               reason->message);
      peer_connection_close (lane->connection, reason);
    }
  _peer_lane_server_shutdown (lane);
  /* Signals go back to the connection (if it still takes any). */
  _peer_connection_clear_signal_sink (lane->connection, lane);
  /* The connection's list, main context only, lets go of it there. */
  _peer_lane_server_unlist (lane);
  /* The loop's reference goes here: a lane holds nothing that must go in
   * the main context (its connection defers its own teardown there). */
  _peer_lane_server_unref (lane);
  /* The last lane ends the loops. */
  lane_loops_release ();
}

typedef enum {
  SERVE_NONE,                   /* nothing to read */
  SERVE_DONE,                   /* a frame read and handled */
  SERVE_END,                    /* the lane is done: *error says why, if it broke */
} ServeResult;

/* On its loop, in a turn of @lane: one frame of it (or a batch of them),
 * if there is one; *@out_frames and *@out_size say how many and how
 * large. */
static ServeResult
lane_serve_one (LaneLoop    *loop,
                LaneServer  *lane,
                guint       *out_frames,
                gsize       *out_size,
                GError     **error)
{
  /* Up to the most any limit allows; the peer's limit, which may change,
   * is applied to each call (_peer_lane_server_handle_frame()). */
  PeerLaneReadOptions options = {
    .max_fds = PEER_SERVER_MAX_FDS_PER_MESSAGE,
    .drain_oversized = TRUE,
    .nonblocking = TRUE,
    .buffers = loop->buffers,
    .max_body_func = lane_max_body,
    .max_body_data = lane->connection,
    .mapped_in = _peer_connection_get_limits (lane->connection),
  };
  g_autoptr(GError) read_error = NULL;
  PeerLaneFrame frame;
  gboolean ok;

  if (!_peer_lane_read_frame_full (lane->fd, loop->buffer, &options, &frame, &read_error))
    {
      if (g_error_matches (read_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        return SERVE_NONE;
      if (read_error != NULL)             /* else the end of the stream */
        g_propagate_error (error, g_steal_pointer (&read_error));
      return SERVE_END;
    }
  if (_peer_connection_is_closed (lane->connection))
    {
      /* The connection went first; its "closed" handler will shut this
       * lane, but nothing more is served meanwhile. */
      _peer_lane_frame_clear (&frame);
      return SERVE_END;
    }
  *out_size = frame.header.body_size;
  if (frame.header.kind == PEER_LANE_KIND_BATCH)
    {
      PeerLaneFrame call;
      gsize offset = 0;

      /* The client takes batches too (an empty one says so). */
      g_atomic_int_set (&lane->peer_batches, TRUE);
      ok = TRUE;
      *out_frames = 0;
      while (ok && _peer_lane_batch_next (&frame, &offset, &call, error))
        {
          ok = _peer_lane_server_handle_frame (lane, &call);
          _peer_lane_frame_clear (&call);
          (*out_frames)++;
        }
      _peer_lane_frame_clear (&frame);
      if (error != NULL && *error != NULL)
        return SERVE_END;
    }
  else
    {
      ok = _peer_lane_server_handle_frame (lane, &frame);
      _peer_lane_frame_clear (&frame);
      *out_frames = 1;
    }
  if (!ok)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                           "Sent a lane frame only a server sends");
      return SERVE_END;
    }
  return SERVE_DONE;
}

/* On its loop: a turn of @lane. Returns FALSE when the lane ended (it is
 * gone), and in *out_drained whether the turn read all there was. */
static gboolean
lane_serve_turn (LaneLoop   *loop,
                 LaneServer *lane,
                 gboolean   *out_drained)
{
  g_autoptr(GError) error = NULL;
  ServeResult result = SERVE_NONE;
  gsize bytes = 0;
  guint served = 0;
  guint max_frames = g_atomic_int_get (&n_lanes_total) == 1 ? LOOP_ALONE_FRAMES : PEER_LANE_TURN_FRAMES;
  gboolean probe = lane->lone_turns < LOOP_LONE_TURNS || lane->lone_turns % LOOP_PROBE_EVERY == 0;

  if (!probe)
    max_frames = 1;

  /* Replies and signals written on this thread for this lane meanwhile
   * are queued, and written at the end of the turn. */
  current_lane = lane;
  while (served < max_frames && bytes < LOOP_TURN_BYTES)
    {
      guint frames = 0;
      gsize size = 0;

      result = lane_serve_one (loop, lane, &frames, &size, &error);
      if (result != SERVE_DONE)
        break;
      served += MAX (frames, 1);        /* an empty batch counts as one */
      bytes += size;
    }
  current_lane = NULL;
  lane_flush_turn (lane);
  if (result == SERVE_END)
    {
      lane_end (loop, lane, error);
      return FALSE;
    }
  if (served == 1 && (result == SERVE_NONE || !probe))
    lane->lone_turns++;
  else
    lane->lone_turns = 0;
  *out_drained = result == SERVE_NONE || !probe;
  return TRUE;
}

/* After a lane's turn: ready again, the loops take it again. Nothing of
 * it is touched once it is armed: another loop may have it at once (and
 * end it). */
static void
lane_rearm (LaneLoop   *loop,
            LaneServer *lane)
{
  struct epoll_event event = { .events = loop->set->lane_events, .data.ptr = lane };
  int fd = lane->fd;

  if (!(event.events & EPOLLONESHOT))
    return;                     /* armed still */
  g_atomic_int_inc (&lane->turns);
  if (epoll_ctl (loop->set->epoll_fd, EPOLL_CTL_MOD, fd, &event) != 0)
    g_debug ("libpeer: lane loop: epoll_ctl(): %s", g_strerror (errno));
}

static gpointer
lane_loop_thread (gpointer data)
{
  LaneLoop *loop = data;
  struct epoll_event events[LOOP_MAX_EVENTS];
  gboolean spare_held = FALSE;

  for (;;)
    {
      int n = epoll_wait (loop->set->epoll_fd, events, (loop->set->lane_events & EPOLLONESHOT) ? 1 : LOOP_MAX_EVENTS,
                          spare_held ? LOOP_IDLE_MS : -1);

      if (n < 0)
        {
          if (errno != EINTR)
            g_debug ("libpeer: lane loop: epoll_wait(): %s", g_strerror (errno));
          continue;
        }
      if (n == 0)
        {
          /* Idle: whatever a large call left in the spare buffer goes
           * (values made from it still hold it until they go). */
          _peer_lane_buffers_unref (loop->buffers);
          loop->buffers = _peer_lane_buffers_new ();
          spare_held = FALSE;
          continue;
        }
      for (int i = 0; i < n; i++)
        if (events[i].data.ptr == NULL)
          {
            /* The last lane is gone; the lanes taken with it were too. */
            goto out;
          }
      /* A turn for each lane taken; a lane with more is armed again
       * after its turn, behind the others that are ready. */
      for (int i = 0; i < n; i++)
        {
          LaneServer *lane = events[i].data.ptr;
          gboolean drained = FALSE, ended = FALSE;

          (void) g_atomic_int_get (&lane->turns);       /* after the loop that armed it */

          for (;;)
            {
              if (!lane_serve_turn (loop, lane, &drained))
                {
                  ended = TRUE;
                  break;
                }
              /* The only lane of the process: its client calling again
               * at once is caught without a wake-up, and served without
               * an epoll_wait(). Not with others: the client that calls
               * again fastest (one spinning itself) would be served first
               * every time, the others behind it; and CPU time spent
               * spinning is theirs. */
              if (!drained || n != 1 || g_atomic_int_get (&n_lanes_total) != 1 ||
                  !_peer_lane_spin_wait (&lane->spin, lane->fd))
                break;
            }
          if (!ended)
            lane_rearm (loop, lane);
        }
      spare_held = TRUE;
    }
out:
  /* Whoever told it to end did so under the lock: taken once, so that
   * the eventfd (which TSan does not see as a hand-off) is not the only
   * order between that and the frees below. */
  g_mutex_lock (&loops_lock);
  g_mutex_unlock (&loops_lock);
  _peer_lane_buffers_unref (loop->buffers);
  g_free (loop->buffer);
  lane_loop_set_unref (loop->set);
  g_free (loop);
  return NULL;
}

/* Tells every loop (none has a lane) to end; @loops_lock held. */
static void
lane_loops_stop_locked (void)
{
  guint64 one = 1;

  while (write (loop_set->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
    ;
  lane_loop_set_unref (loop_set);
  loop_set = NULL;
  n_loops = 0;
  g_atomic_int_set (&n_lanes_total, 0);
}

/* Main context, for each lane it gives the loops; @loops_lock held. */
static gboolean
lane_loops_start_locked (GError **error)
{
  struct epoll_event wake = { .events = EPOLLIN, .data.ptr = NULL };
  LaneLoopSet *set;

  if (n_lanes_total > 0)
    {
      g_atomic_int_inc (&n_lanes_total);
      return TRUE;
    }
  set = g_new0 (LaneLoopSet, 1);
  g_atomic_ref_count_init (&set->ref_count);    /* the loops' creator's, until they are made */
  set->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
  set->wake_fd = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (set->epoll_fd < 0 || set->wake_fd < 0 ||
      epoll_ctl (set->epoll_fd, EPOLL_CTL_ADD, set->wake_fd, &wake) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "Lane loop: %s",
                   g_strerror (saved_errno));
      if (set->epoll_fd >= 0)
        close (set->epoll_fd);
      if (set->wake_fd >= 0)
        close (set->wake_fd);
      g_free (set);
      return FALSE;
    }
  loop_set = set;
  n_loops = _peer_lane_n_cpus ();
  set->lane_events = EPOLLIN | (n_loops > 1 ? EPOLLONESHOT : 0);
  for (guint i = 0; i < n_loops; i++)
    {
      LaneLoop *loop = g_new0 (LaneLoop, 1);

      g_atomic_ref_count_inc (&set->ref_count);
      loop->set = set;
      loop->buffer = g_malloc (PEER_LANE_BUFFER_SIZE);
      loop->buffers = _peer_lane_buffers_new ();
      g_thread_unref (g_thread_new ("peer-lane-loop", lane_loop_thread, loop));
    }
  g_atomic_int_set (&n_lanes_total, 1);
  return TRUE;
}

/* For each lane handed back (or not given after all); any thread, a
 * loop's included. */
static void
lane_loops_release (void)
{
  g_mutex_lock (&loops_lock);
  if (g_atomic_int_dec_and_test (&n_lanes_total))
    lane_loops_stop_locked ();
  g_mutex_unlock (&loops_lock);
}

/* Main context: gives @lane (and a reference to it) to the loops, until
 * lane_end(). */
gboolean
_peer_lane_loop_add (LaneServer  *lane,
                     GError     **error)
{
  struct epoll_event event = { .data.ptr = lane };

  g_mutex_lock (&loops_lock);
  if (!lane_loops_start_locked (error))
    {
      g_mutex_unlock (&loops_lock);
      return FALSE;
    }
  event.events = loop_set->lane_events;
  _peer_lane_server_ref (lane);
  g_atomic_int_inc (&lane->turns);
  if (epoll_ctl (loop_set->epoll_fd, EPOLL_CTL_ADD, lane->fd, &event) != 0)
    {
      int saved_errno = errno;

      g_mutex_unlock (&loops_lock);
      _peer_lane_server_unref (lane);
      lane_loops_release ();
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "epoll_ctl(): %s",
                   g_strerror (saved_errno));
      return FALSE;
    }
  g_mutex_unlock (&loops_lock);
  return TRUE;
}

/* Main context, in Open: the buffers and timeouts of a new lane's
 * sockets (@pair[0] the server's end, which the loops serve); what the
 * buffers can hold is reserved in @ledger, and *@out_kernel_bytes says
 * how much. FALSE when the peer's quota has no room for it. */
gboolean
_peer_lane_loop_prepare_socket (const int        pair[2],
                                PeerWireLimits  *ledger,
                                gsize           *out_kernel_bytes,
                                GError         **error)
{
  gsize buffer_size, kernel_bytes = 0;

  /* Room for large chunks, forced when this process may (CAP_NET_ADMIN),
   * else capped by the kernel at wmem_max (some 208 KiB), which still
   * holds an inline frame. Each end sends chunks of half its own buffer
   * (_peer_lane_chunk_size_for()). What the buffers can hold is the peer's to fill,
   * so it is sized from, and held in, the peer's quota. */
  buffer_size = CLAMP (_peer_wire_limits_get_max_queued (ledger) / (8 * PEER_LANE_MAX_PER_CONNECTION),
                       PEER_LANE_MIN_SOCKET_BUFFER, PEER_LANE_SOCKET_BUFFER);
  for (int i = 0; i < 2; i++)
    {
      int size = (int) buffer_size;

      if (setsockopt (pair[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        setsockopt (pair[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
      if (setsockopt (pair[i], SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt (pair[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
  /* A loop waits this long for a client to take a chunk, and this long
   * for the next chunk of a call. */
  {
    struct timeval tv = { PEER_LANE_SEND_TIMEOUT_MS / 1000, (PEER_LANE_SEND_TIMEOUT_MS % 1000) * 1000 };
    struct timeval chunk_tv = { LOOP_CHUNK_TIMEOUT_MS / 1000, (LOOP_CHUNK_TIMEOUT_MS % 1000) * 1000 };

    setsockopt (pair[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt (pair[0], SOL_SOCKET, SO_RCVTIMEO, &chunk_tv, sizeof chunk_tv);
  }

  for (int i = 0; i < 2; i++)
    {
      int granted = 0;
      socklen_t length = sizeof granted;

      if (getsockopt (pair[i], SOL_SOCKET, SO_SNDBUF, &granted, &length) == 0 && granted > 0)
        kernel_bytes += (gsize) granted;
    }
  if (!_peer_wire_limits_reserve (ledger, kernel_bytes, "A lane's socket buffers", error))
    return FALSE;
  *out_kernel_bytes = kernel_bytes;
  return TRUE;
}
