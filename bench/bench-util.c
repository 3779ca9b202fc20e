/* bench-util.c: what every transport shares: the clock, the reply checks,
 * the pipelined-run bookkeeping, the server-side socket chores and the
 * table of transports this build has. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>

#include "bench-transport.h"
#include "bench-transport-list.h"

G_DEFINE_QUARK (peer-bench-error-quark, bench_error)

static const BenchTransport * const transports[] = { BENCH_TRANSPORT_LIST, NULL };

const BenchTransport * const *
bench_transports_get (void)
{
  return transports;
}

const BenchTransport *
bench_transports_lookup (const char *name)
{
  for (guint i = 0; transports[i] != NULL; i++)
    if (g_str_equal (transports[i]->name, name))
      return transports[i];
  return NULL;
}

gint64
bench_clock_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

gboolean
bench_check_echo (const guint8 *sent,
                  gsize         sent_size,
                  const guint8 *got,
                  gsize         got_size,
                  GError      **error)
{
  if (got_size != sent_size)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: %" G_GSIZE_FORMAT " bytes sent, %" G_GSIZE_FORMAT " came back",
                   sent_size, got_size);
      return FALSE;
    }
  if (sent_size > 0 && memcmp (sent, got, sent_size) != 0)
    {
      gsize i = 0;

      while (sent[i] == got[i])
        i++;
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: byte %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT
                   " is 0x%02x, 0x%02x was sent", i, sent_size, got[i], sent[i]);
      return FALSE;
    }
  return TRUE;
}

gboolean
bench_check_fd (int      sent,
                int      got,
                GError **error)
{
  struct stat a, b;

  if (got < 0 || got == sent)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: fd %d came back for fd %d", got, sent);
      return FALSE;
    }
  if (fstat (sent, &a) != 0 || fstat (got, &b) != 0)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: the fd that came back is not open: %s", g_strerror (errno));
      return FALSE;
    }
  if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: the fd that came back is another file");
      return FALSE;
    }
  return TRUE;
}

gboolean
bench_check_fds (const int *sent,
                 guint      n_sent,
                 const int *got,
                 guint      n_got,
                 GError   **error)
{
  const guint checked[] = { 0, n_sent / 2, n_sent - 1 };

  if (n_got != n_sent)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: %u fds came back for %u", n_got, n_sent);
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (checked) && n_sent > 0; i++)
    if (!bench_check_fd (sent[checked[i]], got[checked[i]], error))
      {
        g_prefix_error (error, "fd %u of %u: ", checked[i] + 1, n_sent);
        return FALSE;
      }
  return TRUE;
}

gboolean
bench_loop_start_call (BenchLoop *loop,
                       guint64   *out_seq,
                       gint64    *out_start_ns)
{
  gint64 now = bench_clock_ns ();

  if (loop->started >= loop->min_calls && now >= loop->deadline_ns)
    return FALSE;
  *out_seq = loop->started++;
  *out_start_ns = now;
  return TRUE;
}

void
bench_loop_fill_payload (guint64 seq,
                         guint8  out[BENCH_LOOP_PAYLOAD])
{
  guint64 le = GUINT64_TO_LE (seq);

  memcpy (out, &le, BENCH_LOOP_PAYLOAD);
}

gboolean
bench_loop_finish_call (BenchLoop    *loop,
                        guint64       seq,
                        gint64        start_ns,
                        const guint8 *reply,
                        gsize         reply_size,
                        GError      **error)
{
  gint64 rtt = bench_clock_ns () - start_ns;
  guint8 expected[BENCH_LOOP_PAYLOAD];

  bench_loop_fill_payload (seq, expected);
  if (!bench_check_echo (expected, sizeof expected, reply, reply_size, error))
    return FALSE;
  loop->completed++;
  if (loop->samples != NULL)
    g_array_append_val (loop->samples, rtt);
  return TRUE;
}

/* Written once before the handlers are installed, read only by them. */
static char signal_socket_path[sizeof ((struct sockaddr_un *) NULL)->sun_path];
static char signal_socket_dir[sizeof signal_socket_path];

char *
bench_server_make_socket_path (GError **error)
{
  g_autofree char *dir = g_dir_make_tmp ("peer-bench-XXXXXX", error);
  g_autofree char *path = NULL;

  if (dir == NULL)
    return NULL;
  path = g_build_filename (dir, "socket", NULL);
  if (strlen (path) >= sizeof signal_socket_path)
    {
      g_rmdir (dir);
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED,
                   "socket path %s is too long (set TMPDIR)", path);
      return NULL;
    }
  return g_steal_pointer (&path);
}

int
bench_server_listen (const char *socket_path,
                     GError    **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd;

  g_strlcpy (addr.sun_path, socket_path, sizeof addr.sun_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 ||
      bind (fd, (struct sockaddr *) &addr, sizeof addr) != 0 ||
      listen (fd, 16) != 0)
    {
      int saved = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot listen on %s: %s", socket_path, g_strerror (saved));
      if (fd >= 0)
        close (fd);
      return -1;
    }
  return fd;
}

gboolean
bench_server_announce (const char *address,
                       GError    **error)
{
  /* peer-bench reads this one line to learn where to connect. */
  if (printf ("%s\n", address) < 0 || fflush (stdout) != 0)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED,
                   "cannot write the address: %s", g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

static void
on_exit_signal (int signum)
{
  /* Only async-signal-safe calls: the servers block in poll() or in a
   * library's own wait, so the handler ends the process itself. */
  if (signal_socket_path[0] != '\0')
    unlink (signal_socket_path);
  if (signal_socket_dir[0] != '\0')
    rmdir (signal_socket_dir);
  _exit (0);
}

void
bench_server_exit_on_signals (const char *socket_path)
{
  g_autofree char *dir = g_path_get_dirname (socket_path);
  struct sigaction action = { .sa_handler = on_exit_signal };

  g_strlcpy (signal_socket_path, socket_path, sizeof signal_socket_path);
  g_strlcpy (signal_socket_dir, dir, sizeof signal_socket_dir);
  sigemptyset (&action.sa_mask);
  sigaddset (&action.sa_mask, SIGINT);
  sigaddset (&action.sa_mask, SIGTERM);
  sigaction (SIGINT, &action, NULL);
  sigaction (SIGTERM, &action, NULL);
}

int
bench_server_listen_and_announce (GError **error)
{
  g_autofree char *path = bench_server_make_socket_path (error);
  g_autofree char *address = NULL;
  int listener;

  if (path == NULL)
    return -1;
  bench_server_exit_on_signals (path);
  listener = bench_server_listen (path, error);
  if (listener < 0)
    return -1;
  address = g_strconcat ("unix:path=", path, NULL);
  if (!bench_server_announce (address, error))
    {
      close (listener);
      return -1;
    }
  return listener;
}
