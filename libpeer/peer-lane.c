/* peer-lane.c: frames, the server's lane threads and the client's calls.
 *
 * Server: Open() makes a socketpair, keeps one end and starts a thread
 * that reads frames from it. A call to a handler flagged
 * PEER_METHOD_FLAGS_THREAD_SAFE runs right there, on the lane thread, and
 * its reply is written from whatever thread replies: no hop at all. Other
 * handlers are handed to the server's main context (correct, one hop).
 *
 * Client: a synchronous call writes its frame and reads the reply on the
 * caller's own thread: no worker thread, no main context. One call is on
 * a lane at a time (a mutex); a late reply to a call that timed out is
 * recognised by its serial and dropped.
 *
 * Large bodies: in chunks when the writer may wait for its reader (the
 * client, which drops stale replies while it waits; the lane thread,
 * within a send timeout), as sealed memfd blobs otherwise; see
 * peer-lane-private.h for the framing and the notes at write_chunked()
 * and lane_send() for who writes what.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-blob-private.h"
#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-debug-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-lane-private.h"
#include "peer-router-private.h"

#define HEADER_SIZE sizeof (PeerLaneHeader)
#define BUFFER_SIZE (HEADER_SIZE + PEER_LANE_MAX_INLINE)
/* Room for the most fds a frame may carry, plus a blob's. */
#define MAX_CMSG_FDS 253

/* Room for a datagram's SCM_RIGHTS, aligned for struct cmsghdr. */
typedef union {
  struct cmsghdr align;
  char buf[CMSG_SPACE (sizeof (int) * MAX_CMSG_FDS)];
} LaneControl;

/* --- frames -------------------------------------------------------------- */

void
_peer_lane_frame_clear (PeerLaneFrame *frame)
{
  g_clear_pointer (&frame->body, g_bytes_unref);
  g_clear_object (&frame->fd_list);
  g_clear_error (&frame->over_mapped);
}

static void
close_fds (const int *fds,
           guint      n)
{
  for (guint i = 0; i < n; i++)
    close (fds[i]);
}

/* Shared by every empty body. */
static GBytes *
empty_bytes (void)
{
  static GBytes *empty;

  if (g_once_init_enter (&empty))
    g_once_init_leave (&empty, g_bytes_new_static ("", 0));
  return empty;
}

/* --- body buffers ---------------------------------------------------------- */

/* A chunked body is assembled in one buffer, which becomes the GBytes under
 * the value a handler or caller gets. When that value goes, the buffer goes
 * back to its lane's spare slot: the next large frame is received into
 * memory already mapped, not into fresh pages (which this kind of machine
 * faults in at some 2 µs each, a quarter of a millisecond per MiB). */
typedef struct {
  PeerLaneBuffers *owner;       /* owned while the buffer is in use */
  gsize capacity;
  guint8 data[];                /* 16-aligned: malloc's alignment, after 16 bytes */
} BodyBuffer;

G_STATIC_ASSERT (G_STRUCT_OFFSET (BodyBuffer, data) % 16 == 0);

struct _PeerLaneBuffers
{
  gatomicrefcount ref_count;
  BodyBuffer *spare;            /* atomic; holds no reference on the owner */
};

PeerLaneBuffers *
_peer_lane_buffers_new (void)
{
  PeerLaneBuffers *buffers = g_new0 (PeerLaneBuffers, 1);

  g_atomic_ref_count_init (&buffers->ref_count);
  return buffers;
}

void
_peer_lane_buffers_unref (PeerLaneBuffers *buffers)
{
  if (buffers == NULL || !g_atomic_ref_count_dec (&buffers->ref_count))
    return;
  g_free (buffers->spare);
  g_free (buffers);
}

static void
body_buffer_release (gpointer data)
{
  BodyBuffer *buffer = data;
  PeerLaneBuffers *owner = buffer->owner;

  buffer->owner = NULL;
  /* Keeps the newest: it is the size the lane carries lately. */
  g_free (g_atomic_pointer_exchange (&owner->spare, buffer));
  _peer_lane_buffers_unref (owner);
}

/* A buffer of at least @size bytes: the spare one when it fits without
 * wasting more than three quarters of itself, else a new one. */
static BodyBuffer *
body_buffer_take (PeerLaneBuffers *buffers,
                  gsize            size)
{
  BodyBuffer *buffer = g_atomic_pointer_exchange (&buffers->spare, NULL);

  if (buffer != NULL && (buffer->capacity < size || buffer->capacity / 4 > size))
    g_clear_pointer (&buffer, g_free);
  if (buffer == NULL)
    {
      buffer = g_malloc (sizeof (BodyBuffer) + size);
      buffer->capacity = size;
    }
  g_atomic_ref_count_inc (&buffers->ref_count);
  buffer->owner = buffers;
  return buffer;
}

/* --- reading ----------------------------------------------------------------- */

/* The fds of SCM_RIGHTS messages in @msg, at most MAX_CMSG_FDS. */
static guint
collect_fds (struct msghdr *msg,
             int           *fds)
{
  guint n_fds = 0;

  for (struct cmsghdr *c = CMSG_FIRSTHDR (msg); c != NULL; c = CMSG_NXTHDR (msg, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      {
        guint count = (c->cmsg_len - CMSG_LEN (0)) / sizeof (int);

        count = MIN (count, MAX_CMSG_FDS - n_fds);
        memcpy (fds + n_fds, CMSG_DATA (c), count * sizeof (int));
        n_fds += count;
      }
  return n_fds;
}

/* Sets @error for a failed recvmsg(); FALSE without error at end of stream. */
static gboolean
read_failed (int      saved_errno,
             GError **error)
{
  if (saved_errno == ECONNRESET || saved_errno == EPIPE)
    return FALSE;                       /* the peer is gone: end of stream */
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               "Lane read failed: %s", g_strerror (saved_errno));
  return FALSE;
}

#define BAD_FRAME(...) \
  g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, __VA_ARGS__)

/* Reads the chunks of a chunked frame whose first datagram was @header,
 * into @data (NULL: read and dropped, for a body over the limit). */
static gboolean
read_chunks (int                          fd,
             const PeerLaneHeader        *header,
             guint8                      *data,
             guint8                      *scratch,
             const PeerLaneReadOptions   *options,
             GError                     **error)
{
  LaneControl control;
  gsize total = header->body_size, done = 0;

  while (done < total)
    {
      PeerLaneHeader chunk;
      struct iovec iov[2] = {
        { &chunk, HEADER_SIZE },
        { data != NULL ? data + done : scratch, data != NULL ? total - done : MIN (total - done, PEER_LANE_MAX_INLINE) },
      };
      struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2,
                            .msg_control = &control, .msg_controllen = sizeof control };
      int fds[MAX_CMSG_FDS];
      guint n_fds;
      gssize n;

      /* Chunks follow their header at once: they are waited for without
       * a poll, within the socket's receive timeout (if any). */
      /* Dropping: MSG_TRUNC has the kernel say the chunk's whole length,
       * however much of it the scratch buffer held. */
      do
        n = recvmsg (fd, &msg, MSG_CMSG_CLOEXEC | (data == NULL ? MSG_TRUNC : 0));
      while (n < 0 && errno == EINTR);
      if (n < 0)
        return read_failed (errno, error);
      n_fds = collect_fds (&msg, fds);
      close_fds (fds, n_fds);
      if (n == 0)
        return FALSE;

      if ((gsize) n >= HEADER_SIZE && chunk.kind != PEER_LANE_KIND_CHUNK &&
          !(chunk.flags & PEER_LANE_FLAG_CHUNKED) && options->skip_interleaved)
        continue;       /* a whole frame sent meanwhile by another thread: a stale reply */
      if ((gsize) n < HEADER_SIZE || chunk.kind != PEER_LANE_KIND_CHUNK)
        {
          BAD_FRAME ("Lane frame interrupted by another before its last chunk");
          return FALSE;
        }
      if ((msg.msg_flags & MSG_TRUNC) && data != NULL)
        {
          BAD_FRAME ("Lane chunk runs past the end of its frame");
          return FALSE;
        }
      if (n_fds > 0 || (msg.msg_flags & MSG_CTRUNC))
        {
          BAD_FRAME ("Lane chunk carries fds");
          return FALSE;
        }
      if (chunk.serial != header->serial || chunk.target != header->target || chunk.body_size != done ||
          chunk.flags != 0 || chunk.n_fds != 0 || (gsize) n == HEADER_SIZE)
        {
          BAD_FRAME ("Lane chunk out of sequence");
          return FALSE;
        }
      if (data == NULL && (gsize) n - HEADER_SIZE > total - done)
        {
          BAD_FRAME ("Lane chunk runs past the end of its frame");
          return FALSE;
        }
      done += n - HEADER_SIZE;
    }
  return TRUE;
}

gboolean
_peer_lane_read_frame_full (int                         fd,
                            guint8                     *buffer,
                            const PeerLaneReadOptions  *options,
                            PeerLaneFrame              *frame,
                            GError                    **error)
{
  LaneControl control;
  struct iovec iov = { buffer, BUFFER_SIZE };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = &control, .msg_controllen = sizeof control };
  int fds[MAX_CMSG_FDS];
  guint n_fds = 0;
  gssize n;
  PeerLaneHeader header;

  memset (frame, 0, sizeof *frame);
  do
    n = recvmsg (fd, &msg, MSG_CMSG_CLOEXEC | (options->nonblocking ? MSG_DONTWAIT : 0));
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return read_failed (errno, error);
  n_fds = collect_fds (&msg, fds);
  if (n == 0)
    {
      close_fds (fds, n_fds);
      return FALSE;
    }

#define REFUSE(...)                                                     \
  G_STMT_START {                                                        \
    close_fds (fds, n_fds);                                             \
    BAD_FRAME (__VA_ARGS__);                                            \
    return FALSE;                                                       \
  } G_STMT_END

  if ((gsize) n < HEADER_SIZE)
    REFUSE ("Lane frame of %" G_GSSIZE_FORMAT " bytes is shorter than its header", n);
  memcpy (&header, buffer, HEADER_SIZE);
  if (header.kind == PEER_LANE_KIND_CHUNK)
    {
      /* The rest of a frame whose start was dropped (a reply that came
       * while its caller was writing its next call): the caller decides.
       * The datagram may have been longer than the buffer. */
      close_fds (fds, n_fds);
      frame->header = header;
      frame->body = g_bytes_ref (empty_bytes ());
      return TRUE;
    }
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
    REFUSE ("Lane frame too large or with too many fds");
  if (header.kind < PEER_LANE_KIND_CALL || header.kind > PEER_LANE_KIND_ERROR)
    REFUSE ("Lane frame of unknown kind %u", header.kind);
  if (header.flags & ~(PEER_LANE_FLAG_BODY_IN_BLOB | PEER_LANE_FLAG_CHUNKED))
    REFUSE ("Lane frame with unknown flags 0x%x", header.flags);
  if (header.n_fds != n_fds)
    REFUSE ("Lane frame announces %u fds but carries %u", header.n_fds, n_fds);

  if (header.flags & PEER_LANE_FLAG_BODY_IN_BLOB)
    {
      g_autoptr(PeerBlob) blob = NULL;
      g_autoptr(GError) blob_error = NULL;

      if ((gsize) n != HEADER_SIZE || n_fds == 0 || (header.flags & PEER_LANE_FLAG_CHUNKED))
        REFUSE ("Lane frame with a blob body has inline bytes, chunks or no fd");
      if (n_fds - 1 > options->max_fds)
        REFUSE ("Lane frame carries %u fds, more than %u", n_fds - 1, options->max_fds);
      /* Takes the fd, also on failure. */
      blob = peer_blob_new_take_fd (fds[--n_fds], header.body_size, &blob_error);
      if (blob == NULL)
        REFUSE ("Lane frame body: %s", blob_error->message);
      if (options->mapped_in == NULL)
        frame->body = peer_blob_get_bytes (blob);
      else
        {
          /* A well-formed frame the peer's limit does not admit now: its
           * call is answered, the lane goes on. */
          frame->body = _peer_wire_limits_take_blob_bytes (options->mapped_in, blob, &frame->over_mapped);
          if (frame->body == NULL)
            frame->body = g_bytes_ref (empty_bytes ());
        }
    }
  else if (header.flags & PEER_LANE_FLAG_CHUNKED)
    {
      BodyBuffer *body = NULL;
      /* Asked now, not before the wait for this frame: a limit lowered
       * meanwhile applies to it. */
      gsize max_body = options->max_body_func != NULL ? options->max_body_func (options->max_body_data)
                                                      : options->max_body;

      if ((gsize) n != HEADER_SIZE || header.body_size <= PEER_LANE_MAX_INLINE)
        REFUSE ("Lane frame in chunks has inline bytes or is small enough to be inline");
      if (n_fds > options->max_fds)
        REFUSE ("Lane frame carries %u fds, more than %u", n_fds, options->max_fds);
      if (options->buffers == NULL || (header.body_size > max_body && !options->drain_oversized))
        REFUSE ("Lane frame announces %u bytes in chunks, more than %" G_GSIZE_FORMAT,
                header.body_size, options->buffers != NULL ? max_body : 0);
      if (header.body_size <= max_body)
        body = body_buffer_take (options->buffers, header.body_size);
      if (!read_chunks (fd, &header, body != NULL ? body->data : NULL, buffer, options, error))
        {
          if (body != NULL)
            body_buffer_release (body);
          close_fds (fds, n_fds);
          return FALSE;
        }
      if (body != NULL)
        frame->body = g_bytes_new_with_free_func (body->data, header.body_size, body_buffer_release, body);
      else
        frame->oversized = TRUE;
    }
  else
    {
      if (header.body_size != (gsize) n - HEADER_SIZE)
        REFUSE ("Lane frame announces %u body bytes but carries %" G_GSIZE_FORMAT,
                header.body_size, (gsize) n - HEADER_SIZE);
      if (n_fds > options->max_fds)
        REFUSE ("Lane frame carries %u fds, more than %u", n_fds, options->max_fds);
      frame->body = header.body_size > 0 ? g_bytes_new (buffer + HEADER_SIZE, header.body_size)
                                         : g_bytes_ref (empty_bytes ());
    }
#undef REFUSE

  if (n_fds > 0)
    frame->fd_list = g_unix_fd_list_new_from_array (fds, n_fds);  /* takes them */
  frame->header = header;
  return TRUE;
}

gboolean
_peer_lane_read_frame (int            fd,
                       guint8        *buffer,
                       guint          max_fds,
                       gboolean       nonblocking,
                       PeerLaneFrame *frame,
                       GError       **error)
{
  const PeerLaneReadOptions options = { .max_fds = max_fds, .nonblocking = nonblocking };

  return _peer_lane_read_frame_full (fd, buffer, &options, frame, error);
}

/* --- writing ----------------------------------------------------------------- */

/* The serialized bytes of @body. A tuple of one member whose own
 * serialization is the whole tuple's (same size: no padding, no framing)
 * is read from the member: a tuple built in memory around serialized bytes
 * (an `ay` made with g_variant_new_from_data(), say) is then never
 * flattened into a copy. @holder keeps the member alive. */
static gconstpointer
body_data (GVariant  *body,
           gsize      size,
           GVariant **holder)
{
  if (g_variant_n_children (body) == 1)
    {
      GVariant *member = g_variant_get_child_value (body, 0);

      if (g_variant_get_size (member) == size)
        {
          *holder = member;
          return g_variant_get_data (member);
        }
      g_variant_unref (member);
    }
  return g_variant_get_data (body);
}

static gboolean
write_failed (int      saved_errno,
              GError **error)
{
  if (saved_errno == EPIPE || saved_errno == ECONNRESET || saved_errno == ENOTCONN)
    g_set_error_literal (error, PEER_ERROR, PEER_ERROR_DISCONNECTED, "The lane's peer is gone");
  else if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)
    g_set_error_literal (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                         "The lane's peer does not read what it is sent");
  else
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                 "Lane write failed: %s", g_strerror (saved_errno));
  return FALSE;
}

/* How long a call may wait by default, as on the GDBus path. */
#define DEFAULT_TIMEOUT_MS 25000

/* Waits until @fd takes more, dropping whatever arrives meanwhile (stale
 * replies, on a client that is still writing its call: were they left
 * unread, a server writing a long one would wait for us as we wait for
 * it). */
static gboolean
wait_writable_draining (int                         fd,
                        const PeerLaneWriteOptions *options,
                        GError                    **error)
{
  GPollFD fds[2] = { { fd, G_IO_OUT | G_IO_IN, 0 } };
  guint n = 1;
  gboolean ok = TRUE;
  /* None given: the default timeout, counted from the first wait. */
  gint64 deadline = options->deadline >= 0 ? options->deadline
                                           : g_get_monotonic_time () + (gint64) DEFAULT_TIMEOUT_MS * 1000;

  if (g_cancellable_make_pollfd (options->cancellable, &fds[1]))
    n = 2;
  for (;;)
    {
      gint64 left = deadline - g_get_monotonic_time ();
      int r;

      if (left <= 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timeout was reached");
          ok = FALSE;
          break;
        }
      r = g_poll (fds, n, (int) MIN ((left + 999) / 1000, G_MAXINT));
      if (r < 0 && errno == EINTR)
        continue;
      if (g_cancellable_set_error_if_cancelled (options->cancellable, error))
        {
          ok = FALSE;
          break;
        }
      if (fds[0].revents & (G_IO_ERR | G_IO_HUP))
        break;                          /* sendmsg() says what went wrong */
      if (fds[0].revents & G_IO_IN)
        {
          LaneControl control;
          struct iovec iov = { options->drain_buffer, HEADER_SIZE };
          struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                                .msg_control = &control, .msg_controllen = sizeof control };
          int drained[MAX_CMSG_FDS];

          if (recvmsg (fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) > 0)
            close_fds (drained, collect_fds (&msg, drained));
        }
      if (fds[0].revents & G_IO_OUT)
        break;
    }
  if (n == 2)
    g_cancellable_release_fd (options->cancellable);
  return ok;
}

static gboolean
send_datagram (int                         fd,
               struct msghdr              *msg,
               const PeerLaneWriteOptions *options,
               GError                    **error)
{
  gboolean poll_wait = options->wait == PEER_LANE_WAIT_POLL;

  for (;;)
    {
      gssize n = sendmsg (fd, msg, MSG_NOSIGNAL |
                          (options->wait == PEER_LANE_WAIT_BLOCK ? 0 : MSG_DONTWAIT));

      if (n >= 0)
        return TRUE;
      if (errno == EINTR)
        continue;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && poll_wait)
        {
          if (!wait_writable_draining (fd, options, error))
            return FALSE;
          continue;
        }
      return write_failed (errno, error);
    }
}

static void
set_fds (struct msghdr *msg,
         void          *control,
         const int     *fds,
         guint          n_fds)
{
  struct cmsghdr *c;

  msg->msg_control = control;
  msg->msg_controllen = CMSG_SPACE (sizeof (int) * n_fds);
  memset (control, 0, msg->msg_controllen);     /* the padding goes out too */
  c = CMSG_FIRSTHDR (msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN (sizeof (int) * n_fds);
  memcpy (CMSG_DATA (c), fds, sizeof (int) * n_fds);
}

/* A header datagram (with the fds), then the body in chunks that each
 * name the frame and their offset in it. */
static gboolean
write_chunked (int                         fd,
               PeerLaneHeader             *header,
               const guint8               *data,
               const int                  *fds,
               guint                       n_fds,
               const PeerLaneWriteOptions *options,
               GError                    **error)
{
  LaneControl control;
  struct iovec iov[2] = { { header, HEADER_SIZE } };
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 1 };
  gsize total = header->body_size;

  header->flags |= PEER_LANE_FLAG_CHUNKED;
  if (n_fds > 0)
    set_fds (&msg, &control, fds, n_fds);
  if (!send_datagram (fd, &msg, options, error))
    return FALSE;

  for (gsize done = 0; done < total; )
    {
      PeerLaneHeader chunk = { header->serial, header->target, PEER_LANE_KIND_CHUNK, 0, 0, (guint32) done };
      gsize length = MIN (total - done, options->chunk_size);
      struct iovec chunk_iov[2] = { { &chunk, HEADER_SIZE }, { (gpointer) (data + done), length } };
      struct msghdr chunk_msg = { .msg_iov = chunk_iov, .msg_iovlen = 2 };

      if (!send_datagram (fd, &chunk_msg, options, error))
        return FALSE;
      done += length;
    }
  return TRUE;
}

gboolean
_peer_lane_write_frame_full (int                          fd,
                             PeerLaneKind                 kind,
                             guint32                      serial,
                             guint32                      target,
                             GVariant                    *body,
                             GUnixFDList                 *fd_list,
                             const PeerLaneWriteOptions  *options,
                             GError                     **error)
{
  LaneControl control;
  PeerLaneHeader header = { serial, target, kind, 0, 0, 0 };
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(GVariant) member = NULL;
  struct iovec iov[2];
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 1 };
  int fds[MAX_CMSG_FDS];
  guint n_fds = 0;
  gsize size = body != NULL ? g_variant_get_size (body) : 0;

  if (fd_list != NULL)
    {
      int length;
      const int *list_fds = g_unix_fd_list_peek_fds (fd_list, &length);

      if ((guint) length > MAX_CMSG_FDS - 1)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                       "%d fds are more than a lane frame carries", length);
          return FALSE;
        }
      memcpy (fds, list_fds, length * sizeof (int));
      n_fds = length;
    }

  iov[0].iov_base = &header;
  iov[0].iov_len = HEADER_SIZE;
  header.body_size = size;
  /* Large, or over the receiver's limit (max_chunked, when set, is it). */
  if (size > PEER_LANE_MAX_INLINE || (options->max_chunked > 0 && size > options->max_chunked))
    {
      gconstpointer data = body_data (body, size, &member);

      /* Bytes that arrived as a blob (an echo, a forwarded payload) leave
       * as the same sealed memfd, uncopied. Others go in chunks when the
       * writer may wait for the reader (copied by the kernel, into a
       * buffer the reader keeps mapped), or are copied into a new blob
       * with pwrite(), cheaper than through a fresh mapping. */
      blob = _peer_blob_lookup_mapping (data, size);
      if (blob == NULL && options->wait != PEER_LANE_WAIT_NONE && options->chunk_size > 0 &&
          size > PEER_LANE_MAX_INLINE && size <= options->max_chunked)
        {
          gboolean ok;

          header.n_fds = n_fds;
          if (options->chunk_lock != NULL)
            g_mutex_lock (options->chunk_lock);
          ok = write_chunked (fd, &header, data, fds, n_fds, options, error);
          if (options->chunk_lock != NULL)
            g_mutex_unlock (options->chunk_lock);
          return ok;
        }
      if (blob == NULL)
        blob = peer_blob_new_from_data (data, size, error);
      if (blob == NULL)
        return FALSE;
      header.flags |= PEER_LANE_FLAG_BODY_IN_BLOB;
      fds[n_fds++] = peer_blob_get_fd (blob);
    }
  else if (size > 0)
    {
      iov[1].iov_base = (gpointer) body_data (body, size, &member);
      iov[1].iov_len = size;
      msg.msg_iovlen = 2;
    }
  header.n_fds = n_fds;
  if (n_fds > 0)
    set_fds (&msg, &control, fds, n_fds);
  return send_datagram (fd, &msg, options, error);
}

gboolean
_peer_lane_write_frame (int           fd,
                        PeerLaneKind  kind,
                        guint32       serial,
                        guint32       target,
                        GVariant     *body,
                        GUnixFDList  *fd_list,
                        gboolean      nonblocking,
                        GError      **error)
{
  const PeerLaneWriteOptions options = {
    .wait = nonblocking ? PEER_LANE_WAIT_NONE : PEER_LANE_WAIT_BLOCK,
  };

  return _peer_lane_write_frame_full (fd, kind, serial, target, body, fd_list, &options, error);
}

/* The largest chunk this end of a lane sends: half its send buffer, so
 * that one chunk is on its way while the next is written, and at most
 * MAX_CHUNK. A receiver on another CPU copies one chunk out while the
 * next is written (as a stream socket's reader does), which a single
 * datagram of a whole large body would not let it do; on one CPU, the
 * switch per chunk costs little against copying it. With MAX_CHUNK, a
 * 1 MiB echo went from 0.93-0.99x the floor's throughput to 1.16-1.77x
 * on two CPUs, and from 1.39x to 1.12-1.25x on one. */
#define MAX_CHUNK (512 * 1024)

static gsize
chunk_size_for (int fd)
{
  int sndbuf = 0;
  socklen_t length = sizeof sndbuf;

  if (getsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &length) != 0 || sndbuf < 64 * 1024)
    return 16 * 1024;
  /* SO_SNDBUF reads back doubled for the kernel's bookkeeping. */
  return MIN ((gsize) sndbuf / 4, MAX_CHUNK) - HEADER_SIZE;
}

/* The empty tuple, made once: calls and replies without arguments are the
 * common case, and each g_variant_new_tuple() or g_variant_new_from_bytes()
 * costs a type-info lookup (a lock, a string copy, a hash) in GLib. */
static GVariant *
unit_variant (void)
{
  static GVariant *unit;

  if (g_once_init_enter (&unit))
    g_once_init_leave (&unit, g_variant_ref_sink (g_variant_new_tuple (NULL, 0)));
  return unit;
}

/* A value of @type kept alive for as long as a method table lives, so that
 * GLib keeps the type's info cached instead of building and freeing it on
 * every call. Never read. */
static GVariant *
type_anchor_new (const GVariantType *type)
{
  g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);

  return g_variant_ref_sink (g_variant_new_from_bytes (type, empty, FALSE));
}

/* For a tuple of one array of fixed-size numbers, `(ay)` above all: the
 * element's size, else 0. Every byte string whose size is a multiple of
 * it is such a tuple in normal form (no framing offsets, no padding, no
 * value that is not allowed), so GLib can be told it is trusted and skip
 * its checks as the value is read. */
static gsize
trusted_element_size (const GVariantType *type)
{
  const char *s = g_variant_type_peek_string (type);

  if (s[0] != '(' || s[1] != 'a' || s[3] != ')')
    return 0;
  switch (s[2])
    {
    case 'y':
      return 1;
    case 'n': case 'q':
      return 2;
    case 'i': case 'u': case 'h':
      return 4;
    case 'x': case 't': case 'd':
      return 8;
    default:
      return 0;
    }
}

/* Error frames carry (ss). */
static GVariant *
error_body (const char *name,
            const char *message)
{
  return g_variant_ref_sink (g_variant_new ("(ss)", name, message));
}

/* Whether every byte string is a normal-form value of tuple @type: its
 * members are numbers (no booleans, which must be 0 or 1) or arrays of
 * numbers. For those GVariant's safe reading is all the checking needed,
 * and g_variant_is_normal_form(), which visits every element of an array
 * one by one (some 25 ms for 1 MiB of `ay`), is skipped. */
static gboolean
type_is_all_numbers (const GVariantType *type)
{
  for (const GVariantType *m = g_variant_type_first (type); m != NULL; m = g_variant_type_next (m))
    {
      const GVariantType *t = g_variant_type_is_array (m) ? g_variant_type_element (m) : m;

      if (!g_variant_type_is_basic (t) || g_variant_type_equal (t, G_VARIANT_TYPE_BOOLEAN) ||
          g_variant_type_equal (t, G_VARIANT_TYPE_STRING) || g_variant_type_equal (t, G_VARIANT_TYPE_OBJECT_PATH) ||
          g_variant_type_equal (t, G_VARIANT_TYPE_SIGNATURE))
        return FALSE;
    }
  return TRUE;
}

/* One direction of a method's traffic (its arguments or its reply), as
 * both ends' method tables keep it: made once, read on every call. */
typedef struct {
  GVariantType *type;
  GVariant *anchor;             /* see type_anchor_new() */
  const char *string;           /* the anchor's type string (GLib's own) */
  gsize length;                 /* its length */
  gboolean is_unit;             /* () */
  gboolean check_normal;        /* see type_is_all_numbers() */
  gsize trusted_element;        /* see trusted_element_size() */
} LaneType;

static void
lane_type_init (LaneType   *t,
                const char *signature)
{
  t->type = g_variant_type_new (signature);
  t->anchor = type_anchor_new (t->type);
  t->string = g_variant_get_type_string (t->anchor);
  t->length = g_variant_type_get_string_length (t->type);
  t->is_unit = g_variant_type_equal (t->type, G_VARIANT_TYPE_UNIT);
  t->check_normal = !type_is_all_numbers (t->type);
  t->trusted_element = trusted_element_size (t->type);
}

static void
lane_type_clear (LaneType *t)
{
  g_variant_unref (t->anchor);
  g_variant_type_free (t->type);
}

/* Whether @value is of type @t: the anchor shares GLib's type info with
 * every value of its type, so the common case is a pointer comparison
 * rather than a walk over two type strings. */
static inline gboolean
lane_type_is_of (const LaneType *t,
                 GVariant       *value)
{
  return g_variant_get_type_string (value) == t->string || g_variant_is_of_type (value, t->type);
}

/* A received body as a value of @t. The empty tuple, whose only normal
 * form is one zero byte, is the shared unit_variant(). Not checked for
 * normal form (the caller does, when t->check_normal). (transfer full) */
static GVariant *
lane_type_read (const LaneType *t,
                GBytes         *body)
{
  gsize size = g_bytes_get_size (body);

  if (t->is_unit && size == 1 && *(const guint8 *) g_bytes_get_data (body, NULL) == 0)
    return g_variant_ref (unit_variant ());
  /* Not g_variant_ref_sink(), which takes the value's lock. */
  return g_variant_take_ref (g_variant_new_from_bytes (t->type, body,
                                                       t->trusted_element > 0 && size % t->trusted_element == 0));
}

/* --- the log and the capture -------------------------------------------------- */

/* Logs and captures a frame (PEER_DEBUG=messages, PEER_CAPTURE) as the
 * D-Bus message it stands for: a call with its path, interface and
 * member from the method table; a reply or error answering @target (a
 * lane reply has no serial of its own: it is given its call's). Only
 * called when _peer_debug_lanes_watched() said so at the lane's opening. */
static GDBusMessage *
frame_to_message (PeerLaneKind  kind,
                  guint32       serial,
                  guint32       target,
                  const char   *path,
                  const char   *interface_name,
                  const char   *member,
                  GVariant     *body,
                  GUnixFDList  *fd_list)
{
  GDBusMessage *message;

  if (kind == PEER_LANE_KIND_CALL)
    {
      message = g_dbus_message_new_method_call (NULL, path, interface_name, member);
      g_dbus_message_set_serial (message, serial);
    }
  else
    {
      message = g_dbus_message_new ();
      g_dbus_message_set_flags (message, G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED);
      g_dbus_message_set_serial (message, target);
      g_dbus_message_set_reply_serial (message, target);
      if (kind == PEER_LANE_KIND_REPLY)
        g_dbus_message_set_message_type (message, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
      else
        {
          const char *name = "org.libpeer.Error.Failed", *text = "";

          g_dbus_message_set_message_type (message, G_DBUS_MESSAGE_TYPE_ERROR);
          if (body != NULL && g_variant_is_of_type (body, G_VARIANT_TYPE ("(ss)")))
            g_variant_get (body, "(&s&s)", &name, &text);
          g_dbus_message_set_error_name (message, g_dbus_is_error_name (name) ? name : "org.libpeer.Error.Failed");
          g_dbus_message_set_body (message, g_variant_new ("(s)", text));
          body = NULL;
        }
    }
  if (body != NULL && g_variant_n_children (body) > 0)
    g_dbus_message_set_body (message, body);
  if (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > 0)
    g_dbus_message_set_num_unix_fds (message, g_unix_fd_list_get_length (fd_list));
  return message;
}

static void
debug_frame (const char   *side,
             gboolean      incoming,
             PeerLaneKind  kind,
             guint32       serial,
             guint32       target,
             const char   *path,
             const char   *interface_name,
             const char   *member,
             GVariant     *body,
             GUnixFDList  *fd_list)
{
  g_autoptr(GDBusMessage) message = frame_to_message (kind, serial, target, path, interface_name,
                                                      member, body, fd_list);

  _peer_debug_lane_message (message, incoming, side);
}

/* --- spin-then-sleep --------------------------------------------------------- */

/* A frame that comes within some tens of microseconds is waited for by
 * polling the socket, not by sleeping in recvmsg(): when the peer runs on
 * another CPU, being woken costs more than a whole call (20-25 µs on a
 * shared VM, against a round trip of 15). Both ends do it: a client for
 * its reply, a server's lane thread for the next call.
 *
 * The budget follows the traffic: twice the last wait that a spin caught,
 * at most the configured maximum. Spinning stops, until SPIN_PROBE_EVERY
 * waits later, when a spin catches nothing (the peer is slower than
 * spinning is worth) or catches the frame before polling twice (the peer
 * shares our CPU, and ran when we yielded, which sleeping in recvmsg()
 * also lets it do, for less). So an idle end burns at most one budget
 * after its last frame, and on one CPU nothing: there it never spins. */
#define SPIN_MAX_US 50
#define SPIN_MIN_US 10
#define SPIN_PROBE_EVERY 64

typedef struct {
  gint64 max;                   /* µs; 0: never spins */
  gint64 budget;                /* µs; 0: not spinning for now */
  guint unspun;                 /* waits since spinning stopped */
} LaneSpin;

/* The most a wait spins, in µs: $PEER_LANE_SPIN_US (0 turns spinning
 * off, for a machine where CPU time matters more than latency), else
 * SPIN_MAX_US. Read once. */
static gint64
spin_max_us (void)
{
  static gsize value;

  if (g_once_init_enter (&value))
    {
      const char *text = g_getenv ("PEER_LANE_SPIN_US");
      guint64 us = SPIN_MAX_US;

      if (text != NULL && !g_ascii_string_to_unsigned (text, 10, 0, 1000, &us, NULL))
        {
          g_debug ("libpeer: PEER_LANE_SPIN_US=%s is not a number of µs from 0 to 1000; using %d",
                   text, SPIN_MAX_US);
          us = SPIN_MAX_US;
        }
      /* Stored plus one: g_once_init_leave() takes no zero. */
      g_once_init_leave (&value, (gsize) us + 1);
    }
  return (gint64) value - 1;
}

static void
lane_spin_init (LaneSpin *spin)
{
  spin->max = g_get_num_processors () > 1 ? spin_max_us () : 0;
  spin->budget = spin->max;
  spin->unspun = 0;
}

/* Before a blocking read of @fd: returns when a frame (or the end of the
 * stream) is there, or when the budget is spent. */
static void
lane_spin_wait (LaneSpin *spin,
                int       fd)
{
  gint64 start, now, end;
  gboolean ready = FALSE;
  guint yields = 0;

  if (spin->max == 0)
    return;
  if (spin->budget == 0)
    {
      if (++spin->unspun < SPIN_PROBE_EVERY)
        return;
      spin->unspun = 0;
      spin->budget = spin->max;
    }
  start = g_get_monotonic_time ();
  end = start + spin->budget;
  do
    {
      guint8 byte;

      /* Readable, at end of stream, or broken: the read says which. */
      if (recv (fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 || (errno != EAGAIN && errno != EINTR))
        ready = TRUE;
      else
        {
          sched_yield ();       /* a peer on this CPU runs now, not after our spin */
          yields++;
        }
      now = g_get_monotonic_time ();
    }
  while (!ready && now < end);

  if (ready && yields >= 2)
    spin->budget = CLAMP (2 * (now - start), MIN (SPIN_MIN_US, spin->max), spin->max);
  else
    spin->budget = 0;
}

/* --- server: a lane -------------------------------------------------------- */

typedef struct {
  PeerInterface *iface;
  guint method_index;
  gboolean thread_safe;
  LaneType in;
  LaneType out;
} LaneMethod;

static void
lane_method_free (LaneMethod *m)
{
  lane_type_clear (&m->in);
  lane_type_clear (&m->out);
  g_object_unref (m->iface);
  g_free (m);
}

/* Owned by references: the lane thread's, the connection's list of lanes
 * (main context), and each call in progress. The fd is closed with the
 * last reference, never before: a reply written from another thread must
 * not reach a reused fd number. */
typedef struct {
  gatomicrefcount ref_count;
  int fd;
  PeerConnection *connection;
  PeerRouter *router;           /* for monitors' copies */
  GMainContext *context;
  GPtrArray *methods;           /* LaneMethod*, indexed by id; read-only */
  gint shut;                    /* atomic */
  PeerLaneBuffers *buffers;     /* chunked calls are assembled here */
  gsize chunk_size;
  gsize max_chunked;            /* what the client was told it may receive in chunks */
  gsize kernel_reserved;        /* the sockets' buffers, held in the peer's quota */

  /* Only the lane thread writes chunked frames, holding @write_lock
   * throughout (it may wait for the client). Other threads write
   * one-datagram frames, never waiting: with the lock when they get it at
   * once, else through @queued, which whoever holds the lock empties
   * after releasing it. The lane thread's own one-datagram frames need no
   * lock: nothing else can be between chunks when it writes them. */
  GMutex write_lock;
  GMutex queue_lock;
  GQueue queued;                /* QueuedFrame*, under queue_lock */
  gint n_queued;                /* atomic: the queue's length */
  gboolean watched;             /* frames are logged or captured */
  /* A finished call's block, for the lane thread's next call: a call
   * costs no allocation in the steady state. Atomic: calls finish on
   * any thread. */
  gpointer spare_call;
} LaneServer;

typedef struct {
  PeerLaneKind kind;
  guint32 target;
  GVariant *body;
  GUnixFDList *fd_list;
} QueuedFrame;

static void
queued_frame_free (QueuedFrame *q)
{
  g_variant_unref (q->body);
  g_clear_object (&q->fd_list);
  g_free (q);
}

/* The lane whose thread this is, if any. Not the thread's id: a thread
 * made after the lane thread ended may be given the same one, and take
 * itself for the lane thread. */
static GPrivate current_lane;

static LaneServer *
lane_server_ref (LaneServer *lane)
{
  g_atomic_ref_count_inc (&lane->ref_count);
  return lane;
}

static void
lane_server_unref (LaneServer *lane)
{
  if (!g_atomic_ref_count_dec (&lane->ref_count))
    return;
  close (lane->fd);
  _peer_wire_limits_release (_peer_connection_get_limits (lane->connection), lane->kernel_reserved);
  g_queue_clear_full (&lane->queued, (GDestroyNotify) queued_frame_free);
  g_mutex_clear (&lane->write_lock);
  g_mutex_clear (&lane->queue_lock);
  _peer_lane_buffers_unref (lane->buffers);
  g_ptr_array_unref (lane->methods);
  g_main_context_unref (lane->context);
  g_object_unref (lane->connection);
  _peer_router_unref (lane->router);
  g_free (lane->spare_call);
  g_free (lane);
}

/* Any thread. Wakes the lane thread out of recvmsg() with end of stream. */
static void
lane_server_shutdown (LaneServer *lane)
{
  if (g_atomic_int_compare_and_exchange (&lane->shut, FALSE, TRUE))
    shutdown (lane->fd, SHUT_RDWR);
}

typedef struct {
  LaneServer *lane;
  const LaneMethod *method;     /* lives as long as lane->methods */
  guint32 serial;
} LaneCall;

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

  return options;
}

/* Writes what other threads queued, unless another thread holds the lock
 * (it does so itself after releasing it). */
static void
lane_flush_queued (LaneServer *lane)
{
  while (g_atomic_int_get (&lane->n_queued) > 0 && g_mutex_trylock (&lane->write_lock))
    {
      for (;;)
        {
          g_autoptr(GError) error = NULL;
          QueuedFrame *q;

          g_mutex_lock (&lane->queue_lock);
          q = g_queue_pop_head (&lane->queued);
          if (q != NULL)
            g_atomic_int_add (&lane->n_queued, -1);
          g_mutex_unlock (&lane->queue_lock);
          if (q == NULL)
            break;
          PeerLaneWriteOptions options = lane_write_options (lane, PEER_LANE_WAIT_NONE);

          if (!_peer_lane_write_frame_full (lane->fd, q->kind, 0, q->target, q->body, q->fd_list,
                                            &options, &error))
            {
              g_debug ("libpeer: lane reply to %s failed: %s",
                       peer_connection_get_unique_name (lane->connection), error->message);
              lane_server_shutdown (lane);
            }
          queued_frame_free (q);
        }
      g_mutex_unlock (&lane->write_lock);
    }
}

/* Any thread: the log, the capture and monitors see a frame as the D-Bus
 * message it stands for, between the peer and the server's unique name,
 * as they see the peer's messages on its D-Bus connection. */
static void
lane_observe_frame (LaneServer   *lane,
                    gboolean      incoming,
                    PeerLaneKind  kind,
                    guint32       serial,
                    guint32       target,
                    const char   *path,
                    const char   *interface_name,
                    const char   *member,
                    GVariant     *body,
                    GUnixFDList  *fd_list)
{
  g_autoptr(GDBusMessage) message = frame_to_message (kind, serial, target, path, interface_name,
                                                      member, body, NULL);
  const char *peer_name = peer_connection_get_unique_name (lane->connection);

  if (lane->watched)
    {
      if (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > 0)
        g_dbus_message_set_num_unix_fds (message, g_unix_fd_list_get_length (fd_list));
      _peer_debug_lane_message (message, incoming, "server lane");
    }
  if (_peer_router_has_monitors (lane->router))
    {
      /* A monitor gets the fds too, as on the D-Bus connection. */
      g_dbus_message_set_num_unix_fds (message, 0);
      if (fd_list != NULL && g_unix_fd_list_get_length (fd_list) > 0)
        g_dbus_message_set_unix_fd_list (message, fd_list);
      _peer_router_copy_to_monitors (lane->router, message,
                                     incoming ? peer_name : PEER_ROUTER_SERVER_NAME,
                                     incoming ? PEER_ROUTER_SERVER_NAME : peer_name,
                                     lane->connection);
    }
}

/* Any thread: a reply or an error for call @target. */
static void
lane_send (LaneServer   *lane,
           PeerLaneKind  kind,
           guint32       target,
           GVariant     *body,
           GUnixFDList  *fd_list)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (lane->watched || _peer_router_has_monitors (lane->router))
    lane_observe_frame (lane, FALSE, kind, 0, target, NULL, NULL, NULL, body, fd_list);
  if (g_private_get (&current_lane) == lane)
    {
      /* The lane thread may wait for the client (who, in a call, reads),
       * within the socket's send timeout; it is the only one that does.
       * It holds the lock only to write in chunks: no other thread's
       * chunks can be in progress, and a one-datagram frame cannot come
       * between another's (the common case takes no lock). */
      PeerLaneWriteOptions options = lane_write_options (lane, PEER_LANE_WAIT_BLOCK);

      options.chunk_lock = &lane->write_lock;
      ok = _peer_lane_write_frame_full (lane->fd, kind, 0, target, body, fd_list, &options, &error);
      lane_flush_queued (lane);         /* what others queued behind the chunks, if any */
    }
  else if (g_mutex_trylock (&lane->write_lock))
    {
      /* Never waiting: a peer that does not read its replies loses its
       * lane instead of stalling the thread that replies (maybe the main
       * one); what it can make us hold is the socket buffer. */
      PeerLaneWriteOptions options = lane_write_options (lane, PEER_LANE_WAIT_NONE);

      ok = _peer_lane_write_frame_full (lane->fd, kind, 0, target, body, fd_list, &options, &error);
      g_mutex_unlock (&lane->write_lock);
      lane_flush_queued (lane);
    }
  else
    {
      /* The lane thread is writing a chunked frame: it sends this after. */
      QueuedFrame *q = g_new0 (QueuedFrame, 1);

      q->kind = kind;
      q->target = target;
      q->body = g_variant_ref (body);
      q->fd_list = fd_list != NULL ? g_object_ref (fd_list) : NULL;
      g_mutex_lock (&lane->queue_lock);
      g_queue_push_tail (&lane->queued, q);
      g_atomic_int_inc (&lane->n_queued);
      g_mutex_unlock (&lane->queue_lock);
      lane_flush_queued (lane);
      return;
    }
  if (!ok)
    {
      g_debug ("libpeer: lane reply to %s failed: %s",
               peer_connection_get_unique_name (lane->connection), error->message);
      lane_server_shutdown (lane);
    }
}

static void
lane_call_send (PeerCall     *call,
                PeerLaneKind  kind,
                GVariant     *body,
                GUnixFDList  *fd_list)
{
  LaneCall *lc = call->transport_data;

  lane_send (lc->lane, kind, lc->serial, body, fd_list);
}

static void
lane_return_error (PeerCall   *call,
                   const char *error_name,
                   const char *message)
{
  g_autoptr(GVariant) body = error_body (error_name, message);

  lane_call_send (call, PEER_LANE_KIND_ERROR, body, NULL);
}

static void
lane_return_value (PeerCall    *call,
                   GVariant    *value,
                   GUnixFDList *fd_list)
{
  LaneCall *lc = call->transport_data;
  g_autoptr(GVariant) unit = NULL;

  if (value == NULL)
    value = unit = g_variant_ref (unit_variant ());
  if (!lane_type_is_of (&lc->method->out, value))
    {
      /* A handler bug; GDBus answers the same way on its path. */
      g_autofree char *message = g_strdup_printf ("%s returned '%s', not '%s'",
                                                  peer_call_get_method_name (call),
                                                  g_variant_get_type_string (value),
                                                  lc->method->out.string);
      g_debug ("libpeer: %s", message);
      lane_return_error (call, "org.libpeer.Error.Failed", message);
      return;
    }
  lane_call_send (call, PEER_LANE_KIND_REPLY, value, fd_list);
}

static gboolean
lane_finalize (PeerCall *call)
{
  LaneServer *lane = ((LaneCall *) call->transport_data)->lane;
  /* Nothing of @call is touched once it is the spare: the lane thread may
   * be building its next call in it already. */
  gboolean kept = g_atomic_pointer_compare_and_exchange (&lane->spare_call, NULL, call);

  /* What kept the call's borrowed connection and interface alive (and,
   * when it is the last reference, what frees the spare). */
  lane_server_unref (lane);
  return kept;
}

static const PeerCallTransport lane_transport = {
  lane_return_value,
  lane_return_error,
  lane_finalize,
};

static gboolean
dispatch_in_main_context (gpointer user_data)
{
  PeerCall *call = user_data;

  _peer_interface_dispatch (call->iface, call);
  peer_call_unref (call);
  return G_SOURCE_REMOVE;
}

/* Answers a call with an error before it becomes a PeerCall. */
static void
lane_refuse (LaneServer *lane,
             guint32     serial,
             const char *name,
             const char *message)
{
  g_autoptr(GVariant) body = error_body (name, message);

  lane_send (lane, PEER_LANE_KIND_ERROR, serial, body, NULL);
}

/* Returns FALSE when the frame breaks the protocol. */
static gboolean
lane_handle_frame (LaneServer    *lane,
                   PeerLaneFrame *frame)
{
  const PeerLaneHeader *h = &frame->header;
  const LaneMethod *m;
  GVariant *parameters;
  LaneCall *lc;
  PeerCall *call;

  if (h->kind != PEER_LANE_KIND_CALL)
    return FALSE;
  /* Over the limit: a chunked body arrives oversized (read and dropped),
   * an inline one is measured here; a blob's does not count. */
  if (frame->over_mapped != NULL)
    {
      lane_refuse (lane, h->serial, "org.libpeer.Error.LimitExceeded", frame->over_mapped->message);
      return TRUE;
    }
  if (frame->oversized ||
      (!(h->flags & PEER_LANE_FLAG_BODY_IN_BLOB) &&
       h->body_size > _peer_connection_get_max_message_size (lane->connection)))
    {
      g_autofree char *message = g_strdup_printf ("The call's %u bytes are over the limit of %u",
                                                  h->body_size,
                                                  _peer_connection_get_max_message_size (lane->connection));
      lane_refuse (lane, h->serial, "org.libpeer.Error.LimitExceeded", message);
      return TRUE;
    }
  /* As on the GDBus path: refused, and the fds are closed with the frame. */
  if (frame->fd_list != NULL &&
      (guint) g_unix_fd_list_get_length (frame->fd_list) > _peer_connection_get_max_fds (lane->connection))
    {
      g_autofree char *message = g_strdup_printf ("The call carries %d fds, more than %u",
                                                  g_unix_fd_list_get_length (frame->fd_list),
                                                  _peer_connection_get_max_fds (lane->connection));
      lane_refuse (lane, h->serial, "org.libpeer.Error.LimitExceeded", message);
      return TRUE;
    }
  if (h->target >= lane->methods->len)
    {
      lane_refuse (lane, h->serial, "org.freedesktop.DBus.Error.UnknownMethod", "No method has that lane id");
      return TRUE;
    }
  m = g_ptr_array_index (lane->methods, h->target);

  /* Untrusted bytes: g_variant_new_from_bytes() reads any of them safely,
   * and the normal-form check refuses what GDBus's parser would. */
  parameters = lane_type_read (&m->in, frame->body);
  if (m->in.check_normal && !g_variant_is_normal_form (parameters))
    {
      g_variant_unref (parameters);
      lane_refuse (lane, h->serial, "org.freedesktop.DBus.Error.InvalidArgs",
                   "Arguments are not in normal form for their type");
      return TRUE;
    }

  if (lane->watched || _peer_router_has_monitors (lane->router))
    lane_observe_frame (lane, TRUE, PEER_LANE_KIND_CALL, h->serial, 0, peer_interface_get_object_path (m->iface),
                 peer_interface_get_info (m->iface)->name,
                 _peer_interface_get_method_info (m->iface, m->method_index)->name, parameters, frame->fd_list);

  /* The peer's one budget: a lane is no way around the limit on its
   * GDBus connection, and a thread-safe call counts while it runs. */
  if (!_peer_wire_limits_begin_call (_peer_connection_get_limits (lane->connection)))
    {
      g_autofree char *message = g_strdup_printf ("More than %u calls in progress",
                                                  _peer_wire_limits_get_max_in_flight (_peer_connection_get_limits (lane->connection)));
      g_variant_unref (parameters);
      lane_refuse (lane, h->serial, "org.libpeer.Error.LimitExceeded", message);
      return TRUE;
    }

  /* The call borrows the connection and the interface: the lane reference
   * it holds keeps both alive (lane->connection, lane->methods). */
  call = _peer_call_new (g_atomic_pointer_exchange (&lane->spare_call, NULL),
                         &lane_transport, NULL, sizeof (LaneCall), lane->connection, m->iface, TRUE,
                         m->method_index, parameters, frame->fd_list);
  call->counted_in = _peer_connection_get_limits (lane->connection);
  lc = call->transport_data;
  lc->lane = lane_server_ref (lane);
  lc->method = m;
  lc->serial = h->serial;

  if (m->thread_safe)
    {
      /* The fast path: handled and answered on this thread. */
      _peer_interface_dispatch (m->iface, call);
      peer_call_unref (call);
      return TRUE;
    }

  g_main_context_invoke_full (lane->context, G_PRIORITY_DEFAULT, dispatch_in_main_context, call, NULL);
  return TRUE;
}

/* The lanes of one connection, as qdata on it; main context only. */
static GQuark
lanes_quark (void)
{
  return g_quark_from_static_string ("peer-lanes");
}

static gboolean
lane_ended_in_main_context (gpointer user_data)
{
  LaneServer *lane = user_data;
  GPtrArray *lanes = g_object_get_qdata (G_OBJECT (lane->connection), lanes_quark ());

  if (lanes != NULL)
    g_ptr_array_remove (lanes, lane);
  lane_server_unref (lane);
  return G_SOURCE_REMOVE;
}

/* The limit applies to connected peers as soon as it changes. */
static gsize
lane_max_body (gpointer connection)
{
  return _peer_connection_get_max_message_size (connection);
}

static gpointer
lane_thread (gpointer user_data)
{
  LaneServer *lane = user_data;
  g_autofree guint8 *buffer = g_malloc (BUFFER_SIZE);
  g_autoptr(GError) error = NULL;
  /* Up to the most any limit allows; the peer's limit, which may change,
   * is applied to each call (lane_handle_frame()). */
  PeerLaneReadOptions options = {
    .max_fds = PEER_SERVER_MAX_FDS_PER_MESSAGE,
    .drain_oversized = TRUE,
    .buffers = lane->buffers,
    .max_body_func = lane_max_body,
    .max_body_data = lane->connection,
    .mapped_in = _peer_connection_get_limits (lane->connection),
  };
  LaneSpin spin;

  lane_spin_init (&spin);
  g_private_set (&current_lane, lane);
  for (;;)
    {
      PeerLaneFrame frame;
      gboolean ok;

      /* A client calling again at once is caught without a wake-up. */
      lane_spin_wait (&spin, lane->fd);
      if (!_peer_lane_read_frame_full (lane->fd, buffer, &options, &frame, &error))
        break;
      if (_peer_connection_is_closed (lane->connection))
        {
          /* The connection went first; its "closed" handler will shut
           * this lane, but nothing more is served meanwhile. */
          _peer_lane_frame_clear (&frame);
          break;
        }
      ok = lane_handle_frame (lane, &frame);
      _peer_lane_frame_clear (&frame);
      if (!ok)
        {
          g_set_error_literal (&error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                               "Sent a lane frame only a server sends");
          break;
        }
    }

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
  lane_server_shutdown (lane);
  g_private_set (&current_lane, NULL);
  /* Hands this thread's reference to the main context, which also drops
   * the connection's. */
  g_main_context_invoke (lane->context, lane_ended_in_main_context, lane);
  return NULL;
}

static void
shut_lanes (gpointer data)
{
  GPtrArray *lanes = data;

  for (guint i = 0; i < lanes->len; i++)
    lane_server_shutdown (g_ptr_array_index (lanes, i));
  g_ptr_array_unref (lanes);
}

static void
on_lane_connection_closed (PeerConnection *connection,
                           const GError   *reason,
                           gpointer        user_data)
{
  /* Drops the list: every lane is shut, and freed once its thread and its
   * calls are done. */
  g_object_set_qdata (G_OBJECT (connection), lanes_quark (), NULL);
}

/* Builds the method table: every method with a handler in every interface
 * the server exports, except the bus's and the lane's own. */
static GPtrArray *
build_method_table (PeerRouter      *router,
                    GVariantBuilder *description)
{
  g_autoptr(GPtrArray) exports = _peer_router_dup_objects (router);
  GPtrArray *methods = g_ptr_array_new_with_free_func ((GDestroyNotify) lane_method_free);

  for (guint i = 0; i < exports->len; i++)
    {
      PeerInterface *iface = g_ptr_array_index (exports, i);
      GDBusInterfaceInfo *info = peer_interface_get_info (iface);

      if (g_str_equal (info->name, PEER_LANE_INTERFACE) || g_str_has_prefix (info->name, PEER_ROUTER_BUS_NAME))
        continue;
      for (guint j = 0; info->methods != NULL && info->methods[j] != NULL; j++)
        {
          GDBusMethodInfo *method = info->methods[j];
          g_autoptr(GString) in_sig = g_string_new ("(");
          g_autoptr(GString) out_sig = g_string_new ("(");
          PeerMethodFlags flags;
          LaneMethod *m;

          if (!_peer_interface_get_method_handler (iface, j, &flags))
            continue;
          for (guint k = 0; method->in_args != NULL && method->in_args[k] != NULL; k++)
            g_string_append (in_sig, method->in_args[k]->signature);
          for (guint k = 0; method->out_args != NULL && method->out_args[k] != NULL; k++)
            g_string_append (out_sig, method->out_args[k]->signature);
          g_string_append_c (in_sig, ')');
          g_string_append_c (out_sig, ')');

          m = g_new0 (LaneMethod, 1);
          m->iface = g_object_ref (iface);
          m->method_index = j;
          m->thread_safe = (flags & PEER_METHOD_FLAGS_THREAD_SAFE) != 0;
          lane_type_init (&m->in, in_sig->str);
          lane_type_init (&m->out, out_sig->str);
          g_variant_builder_add (description, "(usssssu)", methods->len,
                                 peer_interface_get_object_path (iface), info->name, method->name,
                                 in_sig->str, out_sig->str, (guint32) flags);
          g_ptr_array_add (methods, m);
        }
    }
  return methods;
}

static void
handle_open (PeerCall *call,
             gpointer  user_data)
{
  PeerRouter *router = user_data;
  PeerConnection *connection = peer_call_get_connection (call);
  GDBusConnection *dbus = peer_connection_get_dbus_connection (connection);
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GError) error = NULL;
  GVariantBuilder description;
  GPtrArray *lanes;
  LaneServer *lane;
  GThread *thread;
  GVariantDict limits;
  PeerWireLimits *ledger = _peer_connection_get_limits (connection);
  gsize buffer_size, kernel_bytes = 0;
  int pair[2];

  if (!(g_dbus_connection_get_capabilities (dbus) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING))
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                              "A lane is handed over by fd passing, which this connection did not negotiate");
      return;
    }
  lanes = g_object_get_qdata (G_OBJECT (connection), lanes_quark ());
  if (lanes != NULL && lanes->len >= PEER_LANE_MAX_PER_CONNECTION)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                              "A connection may have %d lanes open", PEER_LANE_MAX_PER_CONNECTION);
      return;
    }
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0)
    {
      int saved_errno = errno;
      peer_call_return_error (call, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                              "socketpair(): %s", g_strerror (saved_errno));
      return;
    }
  /* Room for large chunks, forced when this process may (CAP_NET_ADMIN),
   * else capped by the kernel at wmem_max (some 208 KiB), which still
   * holds an inline frame. Each end sends chunks of half its own buffer
   * (chunk_size_for()). What the buffers can hold is the peer's to fill,
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
  /* The lane thread waits this long for a client to take a chunk. */
  {
    struct timeval tv = { PEER_LANE_SEND_TIMEOUT_MS / 1000, (PEER_LANE_SEND_TIMEOUT_MS % 1000) * 1000 };
    setsockopt (pair[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }

  for (int i = 0; i < 2; i++)
    {
      int granted = 0;
      socklen_t length = sizeof granted;

      if (getsockopt (pair[i], SOL_SOCKET, SO_SNDBUF, &granted, &length) == 0 && granted > 0)
        kernel_bytes += (gsize) granted;
    }
  if (!_peer_wire_limits_reserve (ledger, kernel_bytes, "A lane's socket buffers", &error))
    {
      close (pair[0]);
      close (pair[1]);
      peer_call_return_gerror (call, error);
      return;
    }

  fd_list = g_unix_fd_list_new_from_array (&pair[1], 1);   /* takes it */

  lane = g_new0 (LaneServer, 1);
  lane->kernel_reserved = kernel_bytes;
  g_atomic_ref_count_init (&lane->ref_count);
  lane->fd = pair[0];
  lane->connection = g_object_ref (connection);
  lane->router = _peer_router_ref (router);
  lane->context = g_main_context_ref_thread_default ();
  lane->buffers = _peer_lane_buffers_new ();
  lane->watched = _peer_debug_lanes_watched ();
  lane->chunk_size = chunk_size_for (pair[0]);
  lane->max_chunked = _peer_connection_get_max_message_size (connection);
  g_mutex_init (&lane->write_lock);
  g_mutex_init (&lane->queue_lock);
  g_queue_init (&lane->queued);
  g_variant_builder_init (&description, G_VARIANT_TYPE ("a(usssssu)"));
  lane->methods = build_method_table (router, &description);

  if (lanes == NULL)
    {
      lanes = g_ptr_array_new_with_free_func ((GDestroyNotify) lane_server_unref);
      g_object_set_qdata_full (G_OBJECT (connection), lanes_quark (), lanes, shut_lanes);
      g_signal_connect (connection, "closed", G_CALLBACK (on_lane_connection_closed), NULL);
    }
  g_ptr_array_add (lanes, lane_server_ref (lane));     /* the connection's reference */

  thread = g_thread_try_new ("peer-lane", lane_thread, lane, &error);   /* the thread's reference */
  if (thread == NULL)
    {
      g_ptr_array_remove (lanes, lane);
      lane_server_unref (lane);
      g_variant_builder_clear (&description);
      peer_call_return_gerror (call, error);
      return;
    }
  g_thread_unref (thread);

  g_debug ("libpeer: lane opened for %s with %u methods", peer_connection_get_unique_name (connection),
           lane->methods->len);
  g_variant_dict_init (&limits, NULL);
  g_variant_dict_insert (&limits, "max-chunked-body", "u", (guint32) lane->max_chunked);
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(ha(usssssu)@a{sv})", 0, &description,
                                                                 g_variant_dict_end (&limits)),
                                            fd_list);
}

static const char lane_xml[] =
  "<node>"
  " <interface name='" PEER_LANE_INTERFACE "'>"
  "  <method name='Open'>"
  "   <arg name='lane' type='h' direction='out'/>"
  "   <arg name='methods' type='a(usssssu)' direction='out'/>"
  "   <arg name='limits' type='a{sv}' direction='out'/>"
  "  </method>"
  " </interface>"
  "</node>";

PeerInterface *
_peer_lane_interface_new (PeerRouter *router)
{
  const PeerMethodEntry entries[] = {
    { "Open", handle_open, PEER_METHOD_FLAGS_NONE },
  };
  g_autoptr(GError) error = NULL;
  PeerInterface *iface = peer_interface_new_for_xml (lane_xml, PEER_LANE_INTERFACE, &error);

  g_assert_no_error (error);    /* static XML */
  /* The router outlives the interface (it is unbound first). */
  peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), router, &error);
  g_assert_no_error (error);
  return iface;
}

/* --- client ------------------------------------------------------------------ */

typedef struct {
  guint32 id;
  char *object_path;
  char *interface_name;
  char *member;
  LaneType in;
  LaneType out;
} LaneEntry;

static void
lane_entry_free (LaneEntry *e)
{
  lane_type_clear (&e->in);
  lane_type_clear (&e->out);
  g_free (e->object_path);
  g_free (e->interface_name);
  g_free (e->member);
  g_free (e);
}

struct _PeerLaneClient
{
  int fd;
  /* Looked up on every call: by member name first (a short string to
   * hash), then the few entries of that name compared by interface and
   * path. Read-only after creation. */
  GHashTable *by_member;        /* member → GPtrArray of LaneEntry*, borrowed */
  GPtrArray *by_id;             /* LaneEntry*, owned */
  const LaneEntry *last_found;  /* atomic: the last entry has_method() found */
  gint closed;                  /* atomic */

  gsize chunk_size;
  gsize max_chunked;            /* the server's limit on chunked bodies */
  PeerLaneBuffers *buffers;     /* chunked replies are assembled here */
  gboolean watched;             /* frames are logged or captured */

  GMutex lock;                  /* one call on the lane at a time */
  /* Protected by @lock */
  guint32 next_serial;
  guint8 *buffer;
  LaneSpin spin;                /* for the reply */
};

PeerLaneClient *
_peer_lane_client_new (GVariant     *open_reply,
                       GUnixFDList  *fd_list,
                       GError      **error)
{
  g_autoptr(PeerLaneClient) lane = g_new0 (PeerLaneClient, 1);
  g_autoptr(GVariantIter) iter = NULL;
  g_autoptr(GVariant) limits = NULL;
  guint32 max_chunked = 0;
  gint32 handle;
  guint32 id, flags;
  const char *path, *iface, *member, *in_sig, *out_sig;

  lane->fd = -1;
  g_mutex_init (&lane->lock);
  lane->by_member = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  lane->by_id = g_ptr_array_new_with_free_func ((GDestroyNotify) lane_entry_free);
  lane->buffer = g_malloc (BUFFER_SIZE);
  lane->buffers = _peer_lane_buffers_new ();

  g_variant_get (open_reply, "(ha(usssssu)@a{sv})", &handle, &iter, &limits);
  /* Absent: no chunks either way, blobs only. */
  g_variant_lookup (limits, "max-chunked-body", "u", &max_chunked);
  lane->max_chunked = max_chunked;
  if (fd_list == NULL || handle < 0 || handle >= g_unix_fd_list_get_length (fd_list))
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "The server sent no lane fd");
      return NULL;
    }
  lane->fd = g_unix_fd_list_get (fd_list, handle, error);
  if (lane->fd < 0)
    return NULL;
  lane->chunk_size = chunk_size_for (lane->fd);
  lane->watched = _peer_debug_lanes_watched ();
  lane_spin_init (&lane->spin);

  while (g_variant_iter_next (iter, "(u&s&s&s&s&su)", &id, &path, &iface, &member, &in_sig, &out_sig, &flags))
    {
      LaneEntry *e;

      if (id != lane->by_id->len ||
          !g_variant_type_string_is_valid (in_sig) || !g_variant_type_string_is_valid (out_sig) ||
          !g_variant_type_is_tuple (G_VARIANT_TYPE (in_sig)) || !g_variant_type_is_tuple (G_VARIANT_TYPE (out_sig)))
        {
          g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "The server sent a bad lane table");
          return NULL;
        }
      GPtrArray *same_name;

      e = g_new0 (LaneEntry, 1);
      e->id = id;
      e->object_path = g_strdup (path);
      e->interface_name = g_strdup (iface);
      e->member = g_strdup (member);
      lane_type_init (&e->in, in_sig);
      lane_type_init (&e->out, out_sig);
      g_ptr_array_add (lane->by_id, e);
      same_name = g_hash_table_lookup (lane->by_member, member);
      if (same_name == NULL)
        {
          same_name = g_ptr_array_new ();
          g_hash_table_insert (lane->by_member, g_strdup (member), same_name);
        }
      g_ptr_array_add (same_name, e);
    }

  /* The default timeout costs no poll() per call: the socket waits by
   * itself. Calls with another timeout or a cancellable poll. */
  {
    struct timeval tv = { DEFAULT_TIMEOUT_MS / 1000, (DEFAULT_TIMEOUT_MS % 1000) * 1000 };
    setsockopt (lane->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  return g_steal_pointer (&lane);
}

void
_peer_lane_client_free (PeerLaneClient *lane)
{
  if (lane == NULL)
    return;
  if (lane->fd >= 0)
    close (lane->fd);
  g_hash_table_unref (lane->by_member);
  g_ptr_array_unref (lane->by_id);
  _peer_lane_buffers_unref (lane->buffers);
  g_free (lane->buffer);
  g_mutex_clear (&lane->lock);
  g_free (lane);
}

guint
_peer_lane_client_get_n_methods (PeerLaneClient *lane)
{
  return lane->by_id->len;
}

gboolean
_peer_lane_client_has_method (PeerLaneClient *lane,
                              const char     *object_path,
                              const char     *interface_name,
                              const char     *method_name,
                              guint32        *out_id)
{
  const LaneEntry *last;
  GPtrArray *same_name;

  if (interface_name == NULL || g_atomic_int_get (&lane->closed))
    return FALSE;
  /* A caller usually repeats its method: three short comparisons instead
   * of hashing the name. Compared by content, never by address. */
  last = g_atomic_pointer_get (&lane->last_found);
  if (last != NULL && strcmp (last->member, method_name) == 0 &&
      strcmp (last->interface_name, interface_name) == 0 && strcmp (last->object_path, object_path) == 0)
    {
      *out_id = last->id;
      return TRUE;
    }
  same_name = g_hash_table_lookup (lane->by_member, method_name);
  for (guint i = 0; same_name != NULL && i < same_name->len; i++)
    {
      const LaneEntry *e = g_ptr_array_index (same_name, i);

      if (strcmp (e->interface_name, interface_name) == 0 && strcmp (e->object_path, object_path) == 0)
        {
          g_atomic_pointer_set (&lane->last_found, e);
          *out_id = e->id;
          return TRUE;
        }
    }
  return FALSE;
}

void
_peer_lane_client_shutdown (PeerLaneClient *lane)
{
  if (g_atomic_int_compare_and_exchange (&lane->closed, FALSE, TRUE))
    shutdown (lane->fd, SHUT_RDWR);
}

int
_peer_lane_client_get_fd (PeerLaneClient *lane)
{
  return lane->fd;
}

gboolean
_peer_lane_client_is_closed (PeerLaneClient *lane)
{
  return g_atomic_int_get (&lane->closed);
}

/* Whether two types are the same, compared character by character: type
 * strings are prefix-free, so the walk ends at the first difference or at
 * the end of @known and never reads past the end of @other. Cheaper than
 * g_variant_type_equal(), which measures both strings first. */
static gboolean
type_string_equal (const char         *known,
                   gsize               length,
                   const GVariantType *other)
{
  const char *a = known;
  const char *b = g_variant_type_peek_string (other);

  for (gsize i = 0; i < length; i++)
    if (a[i] != b[i])
      return FALSE;
  return TRUE;
}

/* Waits until @fd is readable; FALSE with @error on timeout or cancel. */
static gboolean
wait_readable (int           fd,
               gint64        deadline,
               GCancellable *cancellable,
               GError      **error)
{
  GPollFD fds[2] = { { fd, G_IO_IN, 0 } };
  guint n = 1;

  if (g_cancellable_make_pollfd (cancellable, &fds[1]))
    n = 2;
  for (;;)
    {
      int timeout = -1, r;

      if (deadline >= 0)
        {
          gint64 left = deadline - g_get_monotonic_time ();
          timeout = left <= 0 ? 0 : (int) MIN ((left + 999) / 1000, G_MAXINT);
        }
      r = g_poll (fds, n, timeout);
      if (r < 0 && errno == EINTR)
        continue;
      if (n == 2)
        g_cancellable_release_fd (cancellable);
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      if (r == 0)
        {
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timeout was reached");
          return FALSE;
        }
      return TRUE;
    }
}

GVariant *
_peer_lane_client_call (PeerLaneClient     *lane,
                        guint32             id,
                        GVariant           *parameters,
                        const GVariantType *reply_type,
                        int                 timeout_ms,
                        GUnixFDList        *fd_list,
                        GUnixFDList       **out_fd_list,
                        GCancellable       *cancellable,
                        GError            **error)
{
  const LaneEntry *e = g_ptr_array_index (lane->by_id, id);
  GVariant *params = parameters != NULL ? parameters : unit_variant ();
  g_autoptr(GMutexLocker) locker = NULL;
  PeerLaneReadOptions read_options = {
    .max_fds = G_MAXUINT16,
    .max_body = lane->max_chunked,
    .skip_interleaved = TRUE,
    .buffers = lane->buffers,
  };
  gboolean write_ok;
  gint64 deadline;
  guint32 serial;

  if (out_fd_list != NULL)
    *out_fd_list = NULL;
  /* The checks GDBus makes, with its answers. */
  if (!lane_type_is_of (&e->in, params))
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                   "Type of message, '%s', does not match expected type '%s'",
                   g_variant_get_type_string (params), e->in.string);
      return NULL;
    }
  if (reply_type != NULL && !type_string_equal (e->out.string, e->out.length, reply_type) &&
      !g_variant_type_is_subtype_of (e->out.type, reply_type))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Method returns type '%s', but expected '%s'",
                   e->out.string, g_variant_type_peek_string (reply_type));
      return NULL;
    }

  /* -1: the default, which the socket's SO_RCVTIMEO enforces. */
  if (timeout_ms < 0 && cancellable == NULL)
    deadline = -2;
  else if (timeout_ms == G_MAXINT)
    deadline = -1;
  else
    deadline = g_get_monotonic_time () + (gint64) (timeout_ms < 0 ? DEFAULT_TIMEOUT_MS : timeout_ms) * 1000;

  locker = g_mutex_locker_new (&lane->lock);
  serial = ++lane->next_serial;
  {
    /* While the call is written, whatever arrives (only stale replies can)
     * is dropped: a server writing a long one waits for us to read. With
     * no deadline of the call's own, the write has the default timeout. */
    PeerLaneWriteOptions options = {
      PEER_LANE_WAIT_POLL, lane->chunk_size, lane->max_chunked,
      deadline >= 0 ? deadline : -1, cancellable, lane->buffer,
    };

    write_ok = _peer_lane_write_frame_full (lane->fd, PEER_LANE_KIND_CALL, serial, id, params, fd_list,
                                            &options, error);
  }
  if (!write_ok)
    {
      if (g_error_matches (*error, PEER_ERROR, PEER_ERROR_DISCONNECTED))
        _peer_lane_client_shutdown (lane);
      return NULL;
    }
  if (lane->watched)
    debug_frame ("client lane", FALSE, PEER_LANE_KIND_CALL, serial, 0, e->object_path, e->interface_name,
                 e->member, params, fd_list);
  lane_spin_wait (&lane->spin, lane->fd);

  for (;;)
    {
      PeerLaneFrame frame;
      g_autoptr(GError) read_error = NULL;
      GVariant *reply;

      if (deadline != -2 && !wait_readable (lane->fd, deadline, cancellable, error))
        return NULL;
      read_options.nonblocking = deadline != -2;
      if (!_peer_lane_read_frame_full (lane->fd, lane->buffer, &read_options, &frame, &read_error))
        {
          if (g_error_matches (read_error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
            {
              if (deadline != -2)
                continue;               /* woken for nothing: wait again */
              g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "Timeout was reached");
              return NULL;
            }
          _peer_lane_client_shutdown (lane);
          if (read_error != NULL)
            g_set_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED, "Lane broken: %s", read_error->message);
          else
            g_set_error_literal (error, PEER_ERROR, PEER_ERROR_DISCONNECTED,
                                 "The peer went away before replying");
          return NULL;
        }
      if (frame.header.target != serial || frame.header.kind == PEER_LANE_KIND_CALL ||
          frame.header.kind == PEER_LANE_KIND_CHUNK)
        {
          /* A reply to a call that timed out earlier (or the rest of one
           * dropped while this call was written), or noise: dropped with
           * its fds. */
          _peer_lane_frame_clear (&frame);
          continue;
        }

      if (frame.header.kind == PEER_LANE_KIND_ERROR)
        {
          g_autoptr(GVariant) body = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ss)"),
                                                                                 frame.body, FALSE));
          const char *name, *message;
          GError *remote;

          if (lane->watched)
            debug_frame ("client lane", TRUE, PEER_LANE_KIND_ERROR, 0, serial, NULL, NULL, NULL, body,
                         frame.fd_list);

          g_variant_get (body, "(&s&s)", &name, &message);
          if (!g_dbus_is_error_name (name))
            name = "org.libpeer.Error.Failed";
          remote = g_dbus_error_new_for_dbus_error (name, message);
          /* As on the GDBus path: mapped names lose GDBus's prefix. */
          if (!g_error_matches (remote, G_IO_ERROR, G_IO_ERROR_DBUS_ERROR))
            g_dbus_error_strip_remote_error (remote);
          g_propagate_error (error, remote);
          _peer_lane_frame_clear (&frame);
          return NULL;
        }

      reply = lane_type_read (&e->out, frame.body);
      if (e->out.check_normal && !g_variant_is_normal_form (reply))
        {
          g_variant_unref (reply);
          _peer_lane_frame_clear (&frame);
          g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                               "The server's reply is not in normal form");
          return NULL;
        }
      if (lane->watched)
        debug_frame ("client lane", TRUE, PEER_LANE_KIND_REPLY, 0, serial, NULL, NULL, NULL, reply,
                     frame.fd_list);
      if (out_fd_list != NULL)
        *out_fd_list = g_steal_pointer (&frame.fd_list);
      _peer_lane_frame_clear (&frame);
      return reply;
    }
}
