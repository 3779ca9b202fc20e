/* fuzz-lane-frame.c: libFuzzer harness for what a lane end reads from its
 * peer: a sequence of datagrams through a real SOCK_SEQPACKET socketpair
 * into _peer_lane_read_frame_full(), chunked frames included, the frames
 * of a batch read out of it (_peer_lane_batch_next()), each frame's body
 * then read as the argument tuples a table may hold, as the server does. (fds cannot be fuzzed this way; the blob path is reached with none
 * and must refuse.)
 *
 * Input format:
 *
 *   byte 0        the read options:
 *                   bits 0-1  max_body: 0: 64 KiB (every chunked body is
 *                             over it), 1: PEER_LANE_MAX_INLINE + 4 KiB,
 *                             2, 3: 256 KiB
 *                   bit 2     drain_oversized
 *                   bit 3     skip_interleaved
 *                   bits 4-5  both set: no PeerLaneBuffers (chunked frames
 *                             are refused)
 *                   bit 6     each frame's body is kept until the next
 *                             frame is read (the chunk buffer is then still
 *                             in use when the next chunked frame comes)
 *                   bit 7     unused
 *   then datagrams, each a 3-byte little-endian length and that many bytes.
 *   When fewer than 3 bytes are left for a length, or a length runs past
 *   the end, the rest of the input is the last datagram.
 *
 * Zero-length datagrams are skipped (one reads as end of stream), and so is
 * everything after the first MAX_DATAGRAMS or after a datagram the socket
 * does not take (its send buffer full). Then the writing end is shut, so a
 * reader waiting for a missing chunk sees end of stream, and frames are
 * read until the reader returns FALSE. Inputs over MAX_INPUT_SIZE are ignored.
 *
 * tests/fuzz/make-lane-corpus.py writes the seed corpus in this format. */
#include "config.h"

#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-error.h"
#include "peer-lane-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define MAX_INPUT_SIZE (1024 * 1024)
#define MAX_DATAGRAMS  1024
#define HEADER_SIZE    sizeof (PeerLaneHeader)

static const char *const types[] = { "()", "(ay)", "(s)", "(i)", "(a{sv})", "(susssasa{sv}i)", "(ah)", "(ss)" };

static void
check_body (GBytes *body)
{
  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    {
      g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (types[i]),
                                                                            body, FALSE));
      if (g_variant_is_normal_form (v))
        {
          g_autofree char *text = g_variant_print (v, FALSE);
          g_assert_nonnull (text);
        }
    }
}

/* The frames of a BATCH frame, as its reader takes them. */
static void
check_batch (const PeerLaneFrame *batch)
{
  g_autoptr(GError) error = NULL;
  PeerLaneFrame frame;
  gsize offset = 0, previous = 0;

  while (_peer_lane_batch_next (batch, &offset, &frame, &error))
    {
      g_assert_cmpuint (offset, >, previous);
      g_assert_cmpuint (offset % 8, ==, 0);
      g_assert_cmpuint (offset, <=, g_bytes_get_size (batch->body));
      previous = offset;
      g_assert_true (frame.header.kind == PEER_LANE_KIND_CALL || frame.header.kind == PEER_LANE_KIND_REPLY ||
                     frame.header.kind == PEER_LANE_KIND_ERROR || frame.header.kind == PEER_LANE_KIND_SIGNAL ||
                     frame.header.kind == PEER_LANE_KIND_REDIRECT);
      g_assert_cmpuint (frame.header.n_fds, ==, 0);
      g_assert_cmpuint (frame.header.flags & ~PEER_LANE_FLAG_REDIRECTABLE, ==, 0);
      g_assert_null (frame.fd_list);
      g_assert_nonnull (frame.body);
      g_assert_cmpuint (g_bytes_get_size (frame.body), ==, frame.header.body_size);
      check_body (frame.body);
      _peer_lane_frame_clear (&frame);
    }
  if (error != NULL)
    g_assert_true (error->domain == PEER_ERROR);
  g_assert_null (frame.body);
}

/* Sends the datagrams of @data; stops at the first the socket refuses. */
static void
send_datagrams (int           fd,
                const uint8_t *data,
                size_t         size)
{
  guint count = 0;

  while (size > 0 && count < MAX_DATAGRAMS)
    {
      size_t length;

      if (size < 3)
        length = size;
      else
        {
          length = data[0] | (size_t) data[1] << 8 | (size_t) data[2] << 16;
          data += 3;
          size -= 3;
          if (length > size)
            length = size;
        }
      if (length > 0)
        {
          if (send (fd, data, length, MSG_NOSIGNAL | MSG_DONTWAIT) != (gssize) length)
            return;
          count++;
        }
      data += length;
      size -= length;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static guint8 *buffer;
  static const gsize max_bodies[] = {
    64 * 1024, PEER_LANE_MAX_INLINE + 4096, 256 * 1024, 256 * 1024,
  };
  PeerLaneReadOptions options = { .max_fds = 16, .nonblocking = TRUE };
  PeerLaneBuffers *buffers = NULL;
  GBytes *held = NULL;
  gboolean hold;
  int pair[2];
  int bufsize = PEER_LANE_SOCKET_BUFFER;

  if (size == 0 || size > MAX_INPUT_SIZE)
    return 0;
  if (buffer == NULL)
    buffer = g_malloc (HEADER_SIZE + PEER_LANE_MAX_INLINE);

  options.max_body = max_bodies[data[0] & 3];
  options.drain_oversized = (data[0] & 4) != 0;
  options.skip_interleaved = (data[0] & 8) != 0;
  if ((data[0] & 0x30) != 0x30)
    options.buffers = buffers = _peer_lane_buffers_new ();
  hold = (data[0] & 0x40) != 0;

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), ==, 0);
  setsockopt (pair[1], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  setsockopt (pair[0], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
  send_datagrams (pair[1], data + 1, size - 1);
  g_assert_cmpint (shutdown (pair[1], SHUT_WR), ==, 0);

  for (;;)
    {
      PeerLaneFrame frame;
      g_autoptr(GError) error = NULL;

      if (!_peer_lane_read_frame_full (pair[0], buffer, &options, &frame, &error))
        {
          /* End of stream (also in the middle of a chunked frame), a bad
           * frame or an I/O error; nothing is left in the frame. */
          if (error != NULL)
            g_assert_true (error->domain == PEER_ERROR || error->domain == G_IO_ERROR);
          g_assert_null (frame.body);
          g_assert_null (frame.fd_list);
          break;
        }
      g_assert_no_error (error);
      g_assert_null (frame.fd_list);

      if (frame.header.kind == PEER_LANE_KIND_CHUNK)
        {
          /* A stray chunk: an empty body, whatever its header says. */
          g_assert_nonnull (frame.body);
          g_assert_cmpuint (g_bytes_get_size (frame.body), ==, 0);
          g_assert_false (frame.oversized);
        }
      else
        {
          g_assert_cmpuint (frame.header.kind, >=, PEER_LANE_KIND_CALL);
          g_assert_cmpuint (frame.header.kind, <=, PEER_LANE_KIND_BATCH);
          /* No fd, no blob. */
          g_assert_cmpuint (frame.header.n_fds, ==, 0);
          g_assert_cmpuint (frame.header.flags & ~(PEER_LANE_FLAG_CHUNKED | PEER_LANE_FLAG_REDIRECTABLE), ==, 0);
          if (frame.header.kind == PEER_LANE_KIND_BATCH)
            {
              g_assert_cmpuint (frame.header.flags, ==, 0);
              g_assert_cmpuint (frame.header.body_size % 8, ==, 0);
              check_batch (&frame);
            }
          if (frame.header.flags & PEER_LANE_FLAG_CHUNKED)
            {
              g_assert_nonnull (options.buffers);
              g_assert_cmpuint (frame.header.body_size, >, PEER_LANE_MAX_INLINE);
              if (frame.oversized)
                {
                  g_assert_true (options.drain_oversized);
                  g_assert_cmpuint (frame.header.body_size, >, options.max_body);
                  g_assert_null (frame.body);
                }
              else
                g_assert_cmpuint (frame.header.body_size, <=, options.max_body);
            }
          else
            {
              g_assert_false (frame.oversized);
              g_assert_cmpuint (frame.header.body_size, <=, PEER_LANE_MAX_INLINE);
            }
          if (!frame.oversized)
            {
              g_assert_nonnull (frame.body);
              g_assert_cmpuint (g_bytes_get_size (frame.body), ==, frame.header.body_size);
              check_body (frame.body);
            }
        }

      g_clear_pointer (&held, g_bytes_unref);
      if (hold && frame.body != NULL)
        held = g_bytes_ref (frame.body);
      _peer_lane_frame_clear (&frame);
    }

  g_clear_pointer (&held, g_bytes_unref);
  _peer_lane_buffers_unref (buffers);
  close (pair[0]);
  close (pair[1]);
  return 0;
}
