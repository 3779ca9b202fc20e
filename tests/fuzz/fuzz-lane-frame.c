/* fuzz-lane-frame.c: libFuzzer harness for what a lane server reads from a
 * peer: one datagram through a real SOCK_SEQPACKET socketpair into
 * _peer_lane_read_frame(), then the body read as the argument tuples a
 * table may hold, as the server does. (fds cannot be fuzzed this way; the
 * blob path is reached with none and must refuse.) */
#include "config.h"

#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-error.h"
#include "peer-lane-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const types[] = { "()", "(ay)", "(s)", "(i)", "(a{sv})", "(susssasa{sv}i)", "(ah)", "(ss)" };

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  static guint8 *buffer;
  static int pair[2] = { -1, -1 };
  PeerLaneFrame frame;
  g_autoptr(GError) error = NULL;

  if (size > PEER_LANE_MAX_INLINE + sizeof (PeerLaneHeader))
    return 0;
  if (pair[0] < 0)
    {
      int bufsize = 4 * PEER_LANE_MAX_INLINE;
      g_assert_cmpint (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), ==, 0);
      setsockopt (pair[1], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
      setsockopt (pair[0], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
      buffer = g_malloc (sizeof (PeerLaneHeader) + PEER_LANE_MAX_INLINE);
    }
  if (size == 0)
    return 0;                   /* a zero-length datagram reads as end of stream */
  if (send (pair[1], data, size, MSG_NOSIGNAL) != (gssize) size)
    return 0;

  if (!_peer_lane_read_frame (pair[0], buffer, 16, TRUE, &frame, &error))
    {
      g_assert_nonnull (error);
      g_assert_true (error->domain == PEER_ERROR);
      return 0;
    }
  g_assert_no_error (error);
  g_assert_nonnull (frame.body);
  g_assert_null (frame.fd_list);
  g_assert_cmpuint (g_bytes_get_size (frame.body), ==, frame.header.body_size);
  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    {
      g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (types[i]),
                                                                            frame.body, FALSE));
      if (g_variant_is_normal_form (v))
        {
          g_autofree char *text = g_variant_print (v, FALSE);
          g_assert_nonnull (text);
        }
    }
  _peer_lane_frame_clear (&frame);
  return 0;
}
