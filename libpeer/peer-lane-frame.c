/* peer-lane-frame.c: the lane's wire: frames read and written (inline,
 * in chunks, or with the body in a sealed memfd), the buffers chunked
 * bodies are assembled in, and the log's view of a frame. Method types,
 * and how a body is checked against one, are in peer-lane-type.c; how
 * both ends wait for a frame, in peer-lane-spin.c. The
 * server's lane threads are in peer-lane-loop.c, the client's calls in
 * peer-lane-client.c; see peer-lane-private.h for the framing.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
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
  struct iovec iov = { buffer, PEER_LANE_BUFFER_SIZE };
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
  if (header.kind < PEER_LANE_KIND_CALL || header.kind > PEER_LANE_KIND_BATCH ||
      header.kind == PEER_LANE_KIND_CHUNK)
    REFUSE ("Lane frame of unknown kind %u", header.kind);
  if (header.kind == PEER_LANE_KIND_BATCH &&
      (header.flags != 0 || n_fds != 0 || header.body_size % 8 != 0))
    REFUSE ("Lane batch with flags, fds or a body not in whole 8-byte units");
  if (header.flags & ~(PEER_LANE_FLAG_BODY_IN_BLOB | PEER_LANE_FLAG_CHUNKED | PEER_LANE_FLAG_REDIRECTABLE) ||
      ((header.flags & PEER_LANE_FLAG_REDIRECTABLE) && header.kind != PEER_LANE_KIND_CALL))
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

/* A frame in a batch: its header, and its body padded to 8 bytes. */
#define BATCHED_SIZE(body_size) (HEADER_SIZE + (((gsize) (body_size) + 7) & ~(gsize) 7))
/* Bodies in a batch up to this size are copied out of it. */
#define BATCH_COPIED_BODY 4096

gboolean
_peer_lane_batch_next (const PeerLaneFrame  *batch,
                       gsize                *offset,
                       PeerLaneFrame        *frame,
                       GError              **error)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (batch->body, &size);
  PeerLaneHeader header;

  memset (frame, 0, sizeof *frame);
  if (*offset >= size)
    return FALSE;
  if (size - *offset < HEADER_SIZE)
    {
      BAD_FRAME ("Lane batch ends in the middle of a frame's header");
      return FALSE;
    }
  memcpy (&header, data + *offset, HEADER_SIZE);
  if (header.kind != PEER_LANE_KIND_CALL && header.kind != PEER_LANE_KIND_REPLY &&
      header.kind != PEER_LANE_KIND_ERROR && header.kind != PEER_LANE_KIND_SIGNAL &&
      header.kind != PEER_LANE_KIND_REDIRECT)
    {
      BAD_FRAME ("Lane batch holds a frame of kind %u", header.kind);
      return FALSE;
    }
  if ((header.flags & ~PEER_LANE_FLAG_REDIRECTABLE) != 0 ||
      ((header.flags & PEER_LANE_FLAG_REDIRECTABLE) && header.kind != PEER_LANE_KIND_CALL) ||
      header.n_fds != 0)
    {
      BAD_FRAME ("Lane batch holds a frame with fds, or flags not its own");
      return FALSE;
    }
  if (header.body_size > size - *offset - HEADER_SIZE ||
      BATCHED_SIZE (header.body_size) > size - *offset)
    {
      BAD_FRAME ("Lane batch ends in the middle of a frame's body");
      return FALSE;
    }
  frame->header = header;
  /* Small bodies are copied: a value kept from one (a reply held, a call
   * answered later) holds no more than its own bytes. Larger ones are
   * slices of the batch's body, a copy of its own (8-aligned, as
   * malloc()'s) in which each frame starts on 8 bytes. */
  if (header.body_size == 0)
    frame->body = g_bytes_ref (empty_bytes ());
  else if (header.body_size <= BATCH_COPIED_BODY)
    frame->body = g_bytes_new (data + *offset + HEADER_SIZE, header.body_size);
  else
    frame->body = g_bytes_new_from_bytes (batch->body, *offset + HEADER_SIZE, header.body_size);
  *offset += BATCHED_SIZE (header.body_size);
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
                                           : g_get_monotonic_time () + (gint64) PEER_LANE_DEFAULT_TIMEOUT_MS * 1000;

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
  g_autoptr(GVariant) member = NULL;
  gsize size = body != NULL ? g_variant_get_size (body) : 0;
  gconstpointer data = size > 0 ? body_data (body, size, &member) : NULL;

  return _peer_lane_write_frame_data (fd, kind, serial, target, data, size, fd_list, options, error);
}

gboolean
_peer_lane_write_frame_data (int                          fd,
                             PeerLaneKind                 kind,
                             guint32                      serial,
                             guint32                      target,
                             gconstpointer                data,
                             gsize                        size,
                             GUnixFDList                 *fd_list,
                             const PeerLaneWriteOptions  *options,
                             GError                     **error)
{
  LaneControl control;
  PeerLaneHeader header = { serial, target, kind, options->flags, 0, 0 };
  g_autoptr(PeerBlob) blob = NULL;
  struct iovec iov[2];
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 1 };
  int fds[MAX_CMSG_FDS];
  guint n_fds = 0;

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
      iov[1].iov_base = (gpointer) data;
      iov[1].iov_len = size;
      msg.msg_iovlen = 2;
    }
  header.n_fds = n_fds;
  if (n_fds > 0)
    set_fds (&msg, &control, fds, n_fds);
  return send_datagram (fd, &msg, options, error);
}

/* Frames sent together (by one sendmmsg(), or in one batch) at most. */
#define BATCH_MAX 32

/* Whether @f goes as one datagram of its header and inline body, with no
 * fds: the frames _peer_lane_write_frames() sends together. */
static gboolean
frame_is_plain (const PeerLaneOutFrame     *f,
                const PeerLaneWriteOptions *options)
{
  gsize size = f->body != NULL ? g_variant_get_size (f->body) : 0;

  return (f->fd_list == NULL || g_unix_fd_list_get_length (f->fd_list) == 0) &&
         size <= PEER_LANE_MAX_INLINE && (options->max_chunked == 0 || size <= options->max_chunked);
}

/* Sends @n plain frames prepared in @msgs; FALSE with @error when one of
 * them was not sent (*n_sent says how many were). */
static gboolean
send_batch (int                         fd,
            struct mmsghdr             *msgs,
            guint                       n,
            const PeerLaneWriteOptions *options,
            guint                      *n_sent,
            GError                    **error)
{
  *n_sent = 0;
  while (*n_sent < n)
    {
      int r;

      if (n - *n_sent == 1)
        {
          /* One left: sendmsg(), which also waits as the options say. */
          if (!send_datagram (fd, &msgs[*n_sent].msg_hdr, options, error))
            return FALSE;
          (*n_sent)++;
          break;
        }
      r = sendmmsg (fd, msgs + *n_sent, n - *n_sent,
                    MSG_NOSIGNAL | (options->wait == PEER_LANE_WAIT_BLOCK ? 0 : MSG_DONTWAIT));
      if (r > 0)
        {
          *n_sent += r;
          continue;
        }
      if (r < 0 && errno == EINTR)
        continue;
      /* The first of them did not go: sendmsg() says why, or waits for
       * room as the options allow. */
      if (!send_datagram (fd, &msgs[*n_sent].msg_hdr, options, error))
        return FALSE;
      (*n_sent)++;
    }
  return TRUE;
}

/* Sends @n plain frames (n >= 2) as one BATCH datagram. */
static gboolean
send_as_batch (int                         fd,
               const PeerLaneOutFrame     *frames,
               guint                       n,
               const PeerLaneWriteOptions *options,
               GError                    **error)
{
  static const guint8 padding[8];
  PeerLaneHeader batch = { 0, n, PEER_LANE_KIND_BATCH, 0, 0, 0 };
  PeerLaneHeader headers[BATCH_MAX];
  struct iovec iov[1 + 3 * BATCH_MAX];
  GVariant *holders[BATCH_MAX];
  struct msghdr msg = { .msg_iov = iov };
  guint n_iov = 1;
  gsize total = 0;
  gboolean ok;

  for (guint i = 0; i < n; i++)
    {
      const PeerLaneOutFrame *f = &frames[i];
      gsize size = f->body != NULL ? g_variant_get_size (f->body) : 0;

      holders[i] = NULL;
      headers[i] = (PeerLaneHeader) { f->serial, f->target, f->kind, f->kind == PEER_LANE_KIND_CALL ? options->flags : 0,
                                      0, (guint32) size };
      iov[n_iov++] = (struct iovec) { &headers[i], HEADER_SIZE };
      if (size > 0)
        iov[n_iov++] = (struct iovec) { (gpointer) body_data (f->body, size, &holders[i]), size };
      if (size % 8 != 0)
        iov[n_iov++] = (struct iovec) { (gpointer) padding, 8 - size % 8 };
      total += BATCHED_SIZE (size);
    }
  batch.body_size = (guint32) total;
  iov[0] = (struct iovec) { &batch, HEADER_SIZE };
  msg.msg_iovlen = n_iov;
  ok = send_datagram (fd, &msg, options, error);
  for (guint i = 0; i < n; i++)
    g_clear_pointer (&holders[i], g_variant_unref);
  return ok;
}

guint
_peer_lane_write_frames (int                          fd,
                         const PeerLaneOutFrame      *frames,
                         guint                        n_frames,
                         const PeerLaneWriteOptions  *options,
                         GError                     **error)
{
  PeerLaneHeader headers[BATCH_MAX];
  struct iovec iovs[BATCH_MAX][2];
  struct mmsghdr msgs[BATCH_MAX];
  GVariant *holders[BATCH_MAX];
  guint done = 0;

  /* One (a reply to a call made one at a time): as it goes alone. */
  if (n_frames == 1)
    return _peer_lane_write_frame_full (fd, frames[0].kind, frames[0].serial, frames[0].target, frames[0].body,
                                        frames[0].fd_list, options, error) ? 1 : 0;
  while (done < n_frames)
    {
      guint n = 0, n_sent = 0;
      gboolean ok;

      if (options->batch)
        {
          gsize total = 0;

          /* A run of plain frames, at most BATCH_MAX and what a datagram
           * holds: one datagram. */
          while (done + n < n_frames && n < BATCH_MAX && frame_is_plain (&frames[done + n], options))
            {
              const PeerLaneOutFrame *f = &frames[done + n];
              gsize size = BATCHED_SIZE (f->body != NULL ? g_variant_get_size (f->body) : 0);

              if (total + size > PEER_LANE_MAX_INLINE)
                break;
              total += size;
              n++;
            }
          if (n >= 2)
            {
              if (!send_as_batch (fd, frames + done, n, options, error))
                return done;
              done += n;
              continue;
            }
          n = 0;
        }
      /* A run of plain frames, at most BATCH_MAX: one syscall. */
      while (done + n < n_frames && n < BATCH_MAX && frame_is_plain (&frames[done + n], options))
        {
          const PeerLaneOutFrame *f = &frames[done + n];
          gsize size = f->body != NULL ? g_variant_get_size (f->body) : 0;

          holders[n] = NULL;
          headers[n] = (PeerLaneHeader) { f->serial, f->target, f->kind,
                                          f->kind == PEER_LANE_KIND_CALL ? options->flags : 0, 0, (guint32) size };
          iovs[n][0] = (struct iovec) { &headers[n], HEADER_SIZE };
          memset (&msgs[n], 0, sizeof msgs[n]);
          msgs[n].msg_hdr.msg_iov = iovs[n];
          msgs[n].msg_hdr.msg_iovlen = 1;
          if (size > 0)
            {
              iovs[n][1] = (struct iovec) { (gpointer) body_data (f->body, size, &holders[n]), size };
              msgs[n].msg_hdr.msg_iovlen = 2;
            }
          n++;
        }
      if (n > 0)
        {
          ok = send_batch (fd, msgs, n, options, &n_sent, error);
          for (guint i = 0; i < n; i++)
            g_clear_pointer (&holders[i], g_variant_unref);
          done += n_sent;
          if (!ok)
            return done;
          continue;
        }
      /* One that is not: as it would go alone (chunks, a blob, fds). */
      if (!_peer_lane_write_frame_full (fd, frames[done].kind, frames[done].serial, frames[done].target,
                                        frames[done].body, frames[done].fd_list, options, error))
        return done;
      done++;
    }
  return done;
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

gsize
_peer_lane_chunk_size_for (int fd)
{
  int sndbuf = 0;
  socklen_t length = sizeof sndbuf;

  if (getsockopt (fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &length) != 0 || sndbuf < 64 * 1024)
    return 16 * 1024;
  /* SO_SNDBUF reads back doubled for the kernel's bookkeeping. */
  return MIN ((gsize) sndbuf / 4, MAX_CHUNK) - HEADER_SIZE;
}

/* Error frames carry (ss). */
GVariant *
_peer_lane_error_body (const char *name,
                       const char *message)
{
  return g_variant_ref_sink (g_variant_new ("(ss)", name, message));
}

/* --- the log and the capture -------------------------------------------------- */

/* Logs and captures a frame (PEER_DEBUG=messages, PEER_CAPTURE) as the
 * D-Bus message it stands for: a call with its path, interface and
 * member from the method table; a reply or error answering @target (a
 * lane reply has no serial of its own: it is given its call's). Only
 * called when _peer_debug_lanes_watched() said so at the lane's opening. */
GDBusMessage *
_peer_lane_frame_to_message (PeerLaneKind  kind,
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

void
_peer_lane_debug_frame (const char   *side,
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
  g_autoptr(GDBusMessage) message = _peer_lane_frame_to_message (kind, serial, target, path, interface_name,
                                                                 member, body, fd_list);

  _peer_debug_lane_message (message, incoming, side);
}
