/* transport-floor.c: the kernel's limit, for the ratios to mean something.
 *
 * Two processes ping-pong the same bytes over a Unix stream socket with
 * the least framing that still lets a reply be checked: an 8-byte header
 * (kind, length) and the payload, in one write and usually one read each
 * way. The fd cells send their fds in one SCM_RIGHTS message and get them
 * back; the memfd cells copy the same bytes instead. No D-Bus,
 * no GLib main loop: whatever a transport costs above this, it adds.
 *
 * floor-spin is the same with both ends busy-polling for up to
 * FLOOR_SPIN_US before each blocking read, as a lane's ends do (see
 * libpeer/peer-lane-spin.c): the floor for a transport that spins, where
 * the other end is on another CPU and a wake-up costs more than a call.
 * Its memfd cells pass the memfd, as the other transports do. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <gio/gio.h>

#include "bench-transport.h"

typedef enum {
  FLOOR_KIND_BYTES = 1,
  FLOOR_KIND_FD    = 2,
} FloorKind;

typedef struct {
  guint32 kind;     /* FloorKind */
  guint32 length;   /* payload bytes after the header */
} FloorHeader;

G_STATIC_ASSERT (sizeof (FloorHeader) == 8);

typedef struct {
  int     fd;
  guint8 *buffer;        /* replies are read into this */
  gsize   buffer_size;
  gsize   buffered;      /* pipelined replies read but not yet taken */
} FloorClient;

static gboolean
set_errno_error (GError    **error,
                 const char *what)
{
  int saved = errno;

  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
               "%s: %s", what, saved == 0 ? "connection closed" : g_strerror (saved));
  return FALSE;
}

/* sd-bus asks for 8 MiB socket buffers (forcing them when privileged);
 * the floor does the same, or with the default ~200 KiB a 1 MiB message
 * would take several wake-ups and sd-bus would beat the "floor". */
#define FLOOR_SOCKET_BUFFER (8 * 1024 * 1024)

static void
grow_socket_buffers (int sock)
{
  const int options[][2] = { { SO_SNDBUF, SO_SNDBUFFORCE }, { SO_RCVBUF, SO_RCVBUFFORCE } };

  for (guint i = 0; i < G_N_ELEMENTS (options); i++)
    {
      int value = FLOOR_SOCKET_BUFFER;
      int got = 0;
      socklen_t length = sizeof got;

      /* The kernel reports twice what was set; less means it was capped. */
      if (setsockopt (sock, SOL_SOCKET, options[i][0], &value, sizeof value) != 0 ||
          getsockopt (sock, SOL_SOCKET, options[i][0], &got, &length) != 0 ||
          got < value)
        setsockopt (sock, SOL_SOCKET, options[i][1], &value, sizeof value);
    }
}

static gboolean
write_all_iov (int           fd,
               struct iovec *iov,
               int           n_iov,
               GError      **error)
{
  while (n_iov > 0)
    {
      ssize_t n = writev (fd, iov, n_iov);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return set_errno_error (error, "floor: write");
      while (n_iov > 0 && (gsize) n >= iov->iov_len)
        {
          n -= (ssize_t) iov->iov_len;
          iov++;
          n_iov--;
        }
      if (n_iov > 0)
        {
          iov->iov_base = (guint8 *) iov->iov_base + n;
          iov->iov_len -= (gsize) n;
        }
    }
  return TRUE;
}

/* How long each read busy-polls first in floor-spin (0: never, the
 * plain floor): the lane's longest spin. Set once, before any read. */
#define FLOOR_SPIN_US 50
static gint64 floor_spin_ns;

static inline void
floor_cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#else
  __asm__ __volatile__ ("" ::: "memory");
#endif
}

/* Returns when @fd is readable (or broken), or when the spin is spent:
 * one recv(MSG_PEEK | MSG_DONTWAIT) and a few pauses a poll, as a lane
 * spins. */
static void
floor_spin (int fd)
{
  struct timespec ts;
  gint64 end;
  guint8 byte;

  if (floor_spin_ns == 0)
    return;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  end = (gint64) ts.tv_sec * 1000000000 + ts.tv_nsec + floor_spin_ns;
  for (;;)
    {
      if (recv (fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 || (errno != EAGAIN && errno != EINTR))
        return;
      for (guint i = 0; i < 16; i++)
        floor_cpu_relax ();
      clock_gettime (CLOCK_MONOTONIC, &ts);
      if ((gint64) ts.tv_sec * 1000000000 + ts.tv_nsec >= end)
        return;
    }
}

/* Reads at least @want bytes (at most @size) into @buffer at @have;
 * returns the new fill, or -1 with errno set (0 for end of stream). */
static gssize
read_at_least (int     fd,
               guint8 *buffer,
               gsize   size,
               gsize   have,
               gsize   want)
{
  while (have < want)
    {
      ssize_t n;

      floor_spin (fd);
      n = read (fd, buffer + have, size - have);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            errno = 0;
          return -1;
        }
      have += (gsize) n;
    }
  return (gssize) have;
}

/* The fds of one message, in order. */
typedef struct {
  int   fds[BENCH_MAX_FDS];
  guint n_fds;
} FloorFds;

static void
floor_fds_clear (FloorFds *fds)
{
  for (guint i = 0; i < fds->n_fds; i++)
    close (fds->fds[i]);
  fds->n_fds = 0;
}

/* An fd message: the header (length 0), with @n_fds fds attached. */
static gboolean
send_fds (int         sock,
          const int  *fds,
          guint       n_fds,
          GError    **error)
{
  FloorHeader header = { FLOOR_KIND_FD, 0 };
  struct iovec iov = { &header, sizeof header };
  union {
    char buf[CMSG_SPACE (sizeof (int) * BENCH_MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct msghdr msg = {
    .msg_iov = &iov, .msg_iovlen = 1,
    .msg_control = control.buf, .msg_controllen = CMSG_SPACE (sizeof (int) * n_fds),
  };
  struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg);
  ssize_t n;

  g_assert (n_fds >= 1 && n_fds <= BENCH_MAX_FDS);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN (sizeof (int) * n_fds);
  memcpy (CMSG_DATA (cmsg), fds, sizeof (int) * n_fds);
  do
    n = sendmsg (sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != (ssize_t) sizeof header)
    return set_errno_error (error, "floor: sendmsg");
  return TRUE;
}

/* recvmsg() into @buffer, adding the fds that may come with the bytes to
 * @fds (closing any past BENCH_MAX_FDS); returns what recvmsg() returns. */
static gssize
receive_with_fds (int       sock,
                  void     *buffer,
                  gsize     size,
                  int       flags,
                  FloorFds *fds)
{
  union {
    char buf[CMSG_SPACE (sizeof (int) * BENCH_MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = { buffer, size };
  struct msghdr msg = {
    .msg_iov = &iov, .msg_iovlen = 1,
    .msg_control = control.buf, .msg_controllen = sizeof control.buf,
  };
  ssize_t n;

  do
    n = recvmsg (sock, &msg, MSG_CMSG_CLOEXEC | flags);
  while (n < 0 && errno == EINTR);
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg); n >= 0 && cmsg != NULL; cmsg = CMSG_NXTHDR (&msg, cmsg))
    {
      gsize n_fds;

      if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
        continue;
      n_fds = (cmsg->cmsg_len - CMSG_LEN (0)) / sizeof (int);
      for (gsize i = 0; i < n_fds; i++)
        {
          int fd;

          memcpy (&fd, CMSG_DATA (cmsg) + i * sizeof (int), sizeof fd);
          if (fds->n_fds < BENCH_MAX_FDS)
            fds->fds[fds->n_fds++] = fd;
          else
            close (fd);
        }
    }
  return n;
}

/* The server: one connection at a time, each message echoed as it came. */
static gboolean
floor_serve_connection (int      sock,
                        GError **error)
{
  g_autofree guint8 *buffer = NULL;
  gsize size = 64 * 1024;
  gsize have = 0;
  FloorFds fds = { { 0 }, 0 };

  buffer = g_malloc (size);
  for (;;)
    {
      FloorHeader header;
      struct iovec iov;
      gsize total;
      gssize got;

      /* Headers are read with recvmsg(): an fd comes with its header. */
      while (have < sizeof header)
        {
          floor_spin (sock);
          got = receive_with_fds (sock, buffer + have, size - have, 0, &fds);
          if (got < 0)
            {
              floor_fds_clear (&fds);
              return set_errno_error (error, "floor server: recvmsg");
            }
          if (got == 0 && have == 0 && fds.n_fds == 0)
            return TRUE;
          if (got == 0)
            {
              floor_fds_clear (&fds);
              errno = 0;
              return set_errno_error (error, "floor server: truncated message");
            }
          have += (gsize) got;
        }

      memcpy (&header, buffer, sizeof header);
      if (header.kind == FLOOR_KIND_FD && header.length == 0 && fds.n_fds > 0)
        {
          gboolean sent = send_fds (sock, fds.fds, fds.n_fds, error);

          floor_fds_clear (&fds);
          if (!sent)
            return FALSE;
          memmove (buffer, buffer + sizeof header, have - sizeof header);
          have -= sizeof header;
          continue;
        }
      if (header.kind != FLOOR_KIND_BYTES || header.length > BENCH_MAX_PAYLOAD || fds.n_fds > 0)
        {
          floor_fds_clear (&fds);
          g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED,
                       "floor server: bad message (kind %u, length %u)",
                       header.kind, header.length);
          return FALSE;
        }

      total = sizeof header + header.length;
      if (total > size)
        {
          size = total;
          buffer = g_realloc (buffer, size);
        }
      got = read_at_least (sock, buffer, size, have, total);
      if (got < 0)
        return set_errno_error (error, "floor server: read");
      have = (gsize) got;

      iov = (struct iovec) { buffer, total };
      if (!write_all_iov (sock, &iov, 1, error))
        return FALSE;
      /* Pipelined clients may have sent the next message already. */
      memmove (buffer, buffer + total, have - total);
      have -= total;
    }
}

static gboolean
floor_serve_forever (GError **error)
{
  int listener;

  listener = bench_server_listen_and_announce (error);
  if (listener < 0)
    return FALSE;

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      int sock = accept4 (listener, NULL, NULL, SOCK_CLOEXEC);

      if (sock < 0 && (errno == EINTR || errno == ECONNABORTED))
        continue;
      if (sock < 0)
        return set_errno_error (error, "floor server: accept");
      grow_socket_buffers (sock);
      /* One peer failing is no reason to stop serving the next. */
      if (!floor_serve_connection (sock, &local_error))
        g_printerr ("peer-bench-server floor: %s\n", local_error->message);
      close (sock);
    }
}

static int
floor_serve (void)
{
  g_autoptr(GError) error = NULL;

  floor_serve_forever (&error);
  g_printerr ("peer-bench-server floor: %s\n", error->message);
  return 1;
}

static gpointer
floor_connect (const char *address,
               GError    **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  FloorClient *client;
  const char *path;
  int fd;

  if (!g_str_has_prefix (address, "unix:path="))
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED,
                   "floor: unexpected address %s", address);
      return NULL;
    }
  path = address + strlen ("unix:path=");
  if (strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED, "floor: path too long: %s", path);
      return NULL;
    }
  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    {
      set_errno_error (error, "floor: connect");
      if (fd >= 0)
        close (fd);
      return NULL;
    }
  grow_socket_buffers (fd);
  client = g_new0 (FloorClient, 1);
  client->fd = fd;
  client->buffer_size = 64 * 1024;
  client->buffer = g_malloc (client->buffer_size);
  return client;
}

static void
floor_disconnect (gpointer data)
{
  FloorClient *client = data;

  close (client->fd);
  g_free (client->buffer);
  g_free (client);
}

static gboolean
floor_echo (gpointer      data,
            const guint8 *payload,
            gsize         size,
            GError      **error)
{
  FloorClient *client = data;
  FloorHeader header = { FLOOR_KIND_BYTES, (guint32) size };
  struct iovec iov[2] = { { &header, sizeof header }, { (guint8 *) payload, size } };
  gsize total = sizeof header + size;
  gssize got;

  if (total > client->buffer_size)
    {
      client->buffer_size = total;
      client->buffer = g_realloc (client->buffer, total);
    }
  if (!write_all_iov (client->fd, iov, size > 0 ? 2 : 1, error))
    return FALSE;

  got = read_at_least (client->fd, client->buffer, total, 0, sizeof header);
  if (got < 0)
    return set_errno_error (error, "floor: read");
  memcpy (&header, client->buffer, sizeof header);
  if (header.kind != FLOOR_KIND_BYTES || header.length != size)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: header says kind %u, %u bytes; %" G_GSIZE_FORMAT " were sent",
                   header.kind, header.length, size);
      return FALSE;
    }
  if (read_at_least (client->fd, client->buffer, total, (gsize) got, total) < 0)
    return set_errno_error (error, "floor: read");
  return bench_check_echo (payload, size, client->buffer + sizeof header, size, error);
}

static gboolean
floor_echo_fds (gpointer   data,
                const int *fds,
                guint      n_fds,
                int       *out_fd,
                GError   **error)
{
  FloorClient *client = data;
  FloorHeader header;
  FloorFds got = { { 0 }, 0 };
  gssize n;
  gboolean ok;

  if (!send_fds (client->fd, fds, n_fds, error))
    return FALSE;
  floor_spin (client->fd);
  n = receive_with_fds (client->fd, &header, sizeof header, MSG_WAITALL, &got);
  if (n != (gssize) sizeof header)
    {
      if (n >= 0)
        errno = 0;
      ok = set_errno_error (error, "floor: recvmsg");
    }
  else if (header.kind != FLOOR_KIND_FD || header.length != 0)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: kind %u, %u bytes to an fd message",
                   header.kind, header.length);
      ok = FALSE;
    }
  else
    ok = bench_check_fds (fds, n_fds, got.fds, got.n_fds, error);
  if (ok && out_fd != NULL)
    {
      /* Moved out of the list, which closes the rest. */
      *out_fd = got.fds[0];
      got.fds[0] = got.fds[--got.n_fds];
    }
  floor_fds_clear (&got);
  return ok;
}

static gboolean
floor_send_loop_call (FloorClient *client,
                      guint64      seq,
                      GError     **error)
{
  struct {
    FloorHeader header;
    guint8      payload[BENCH_LOOP_PAYLOAD];
  } message = { { FLOOR_KIND_BYTES, BENCH_LOOP_PAYLOAD }, { 0 } };
  struct iovec iov = { &message, sizeof message };

  G_STATIC_ASSERT (sizeof message == sizeof (FloorHeader) + BENCH_LOOP_PAYLOAD);
  bench_loop_fill_payload (seq, message.payload);
  return write_all_iov (client->fd, &iov, 1, error);
}

static gboolean
floor_pipeline (gpointer   data,
                guint      depth,
                BenchLoop *loop,
                GError   **error)
{
  const gsize message_size = sizeof (FloorHeader) + BENCH_LOOP_PAYLOAD;
  FloorClient *client = data;
  /* The server answers in order, so the calls in flight are a ring. */
  g_autofree guint64 *seqs = g_new (guint64, depth);
  g_autofree gint64 *starts = g_new (gint64, depth);
  guint head = 0, in_flight = 0;

  client->buffered = 0;
  for (;;)
    {
      gsize offset = 0;
      gssize got;

      while (in_flight < depth)
        {
          guint slot = (head + in_flight) % depth;

          if (!bench_loop_start_call (loop, &seqs[slot], &starts[slot]))
            break;
          if (!floor_send_loop_call (client, seqs[slot], error))
            return FALSE;
          in_flight++;
        }
      if (in_flight == 0)
        return TRUE;

      got = read_at_least (client->fd, client->buffer, client->buffer_size,
                           client->buffered, message_size);
      if (got < 0)
        return set_errno_error (error, "floor: read");
      client->buffered = (gsize) got;

      while (in_flight > 0 && client->buffered - offset >= message_size)
        {
          FloorHeader header;

          memcpy (&header, client->buffer + offset, sizeof header);
          if (header.kind != FLOOR_KIND_BYTES || header.length != BENCH_LOOP_PAYLOAD)
            {
              g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                           "wrong reply: header says kind %u, %u bytes", header.kind, header.length);
              return FALSE;
            }
          if (!bench_loop_finish_call (loop, seqs[head], starts[head],
                                       client->buffer + offset + sizeof header,
                                       BENCH_LOOP_PAYLOAD, error))
            return FALSE;
          offset += message_size;
          head = (head + 1) % depth;
          in_flight--;
        }
      memmove (client->buffer, client->buffer + offset, client->buffered - offset);
      client->buffered -= offset;
    }
}

static const char *
floor_get_version (void)
{
  static char version[80];
  struct utsname uts;

  if (version[0] == '\0' && uname (&uts) == 0)
    g_snprintf (version, sizeof version, "%s %s", uts.sysname, uts.release);
  return version;
}

const BenchTransport bench_transport_floor = {
  .name = "floor",
  .get_version = floor_get_version,
  .serve = floor_serve,
  .connect = floor_connect,
  .echo = floor_echo,
  .echo_fds = floor_echo_fds,
  .pipeline = floor_pipeline,
  .disconnect = floor_disconnect,
};

static int
floor_spin_serve (void)
{
  floor_spin_ns = FLOOR_SPIN_US * 1000;
  return floor_serve ();
}

static gpointer
floor_spin_connect (const char *address,
                    GError    **error)
{
  floor_spin_ns = FLOOR_SPIN_US * 1000;
  return floor_connect (address, error);
}

const BenchTransport bench_transport_floor_spin = {
  .name = "floor-spin",
  .get_version = floor_get_version,
  .serve = floor_spin_serve,
  .connect = floor_spin_connect,
  .echo = floor_echo,
  .echo_fds = floor_echo_fds,
  .pipeline = floor_pipeline,
  .disconnect = floor_disconnect,
};
