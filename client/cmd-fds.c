/* cmd-fds.c: peer-client's commands that pass fds and blobs (open,
 * digest, blob-echo), and payload-bench, which times them against a raw
 * socket. Every size is checked against the machine before anything is
 * allocated. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>
#include <libpeer.h>

#include "peer-client.h"
#include "peer-protocol-stubs.h"

/* --- fds and blobs ------------------------------------------------------------ */

/* "4096", "64K", "1M", "2G" (binary multiples) to a byte count. */
static gboolean
parse_size (const char *text,
            gsize      *out)
{
  guint64 value, multiplier = 1;
  g_autofree char *digits = g_strdup (text);
  gsize len = strlen (digits);

  if (len > 0)
    switch (g_ascii_toupper (digits[len - 1]))
      {
      case 'K': multiplier = G_GUINT64_CONSTANT (1) << 10; digits[--len] = '\0'; break;
      case 'M': multiplier = G_GUINT64_CONSTANT (1) << 20; digits[--len] = '\0'; break;
      case 'G': multiplier = G_GUINT64_CONSTANT (1) << 30; digits[--len] = '\0'; break;
      default: break;
      }
  if (!g_ascii_string_to_unsigned (digits, 10, 0, G_MAXSSIZE / multiplier, &value, NULL))
    return FALSE;
  *out = (gsize) (value * multiplier);
  return TRUE;
}

/* How much memory this machine can give us now without swapping or
 * pushing others out: the kernel's MemAvailable estimate, or the physical
 * memory where there is none. A size past this cannot be held, and trying
 * would run the machine out of memory before failing. */
static guint64
available_memory (void)
{
  g_autofree char *meminfo = NULL;
  long pages = sysconf (_SC_PHYS_PAGES);
  long page_size = sysconf (_SC_PAGESIZE);

  if (g_file_get_contents ("/proc/meminfo", &meminfo, NULL, NULL))
    {
      const char *line = strstr (meminfo, "\nMemAvailable:");
      guint64 kib;

      if (line != NULL && sscanf (line, "\nMemAvailable: %" G_GUINT64_FORMAT " kB", &kib) == 1 &&
          kib <= G_MAXUINT64 / 1024)
        return kib * 1024;
    }
  if (pages <= 0 || page_size <= 0)
    return G_MAXUINT64;
  return (guint64) pages * (guint64) page_size;
}

/* A SIZE of @command that @copies of must fit in memory at once, checked
 * before anything is allocated: FALSE after a one-line error, with
 * @exit_code set for bad input. */
static gboolean
check_size_fits (const char *command,
                 const char *text,
                 gsize       size,
                 guint       copies,
                 int        *exit_code)
{
  guint64 memory = available_memory ();
  g_autofree char *memory_text = NULL;

  if (size <= memory / copies)
    return TRUE;
  memory_text = g_format_size_full (memory, G_FORMAT_SIZE_IEC_UNITS);
  /* No "see --help": the size is well formed, only too large. */
  if (copies == 1)
    g_printerr ("peer-client: %s: %s is more than the %s of memory this machine has available\n",
                command, text, memory_text);
  else
    g_printerr ("peer-client: %s: %s, held %u times over, is more than the %s of memory "
                "this machine has available\n", command, text, copies, memory_text);
  *exit_code = EXIT_USAGE;
  return FALSE;
}

/* The bytes blob-echo and payload-bench send: cheap to make and to check,
 * and different at every offset. */
static guint8
pattern_byte (gsize offset)
{
  guint64 word = (offset / 8 + 1) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);

  return (guint8) (word >> (8 * (offset % 8)));
}

static gboolean
fill_pattern (guint8  *data,
              gsize    size,
              gpointer user_data,
              GError **error)
{
  gsize i = 0;

  for (; i + 8 <= size; i += 8)
    {
      guint64 word = GUINT64_TO_LE ((i / 8 + 1) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));
      memcpy (data + i, &word, 8);
    }
  for (; i < size; i++)
    data[i] = pattern_byte (i);
  return TRUE;
}

/* The offset of the first byte that is not the pattern, or @size. */
static gsize
check_pattern (const guint8 *data,
               gsize         size)
{
  gsize i = 0;

  for (; i + 8 <= size; i += 8)
    {
      guint64 word = GUINT64_TO_LE ((i / 8 + 1) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));
      if (memcmp (data + i, &word, 8) != 0)
        break;
    }
  for (; i < size; i++)
    if (data[i] != pattern_byte (i))
      return i;
  return size;
}

static gboolean
write_all (int           fd,
           const guint8 *data,
           gsize         size)
{
  while (size > 0)
    {
      ssize_t n = write (fd, data, size);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      size -= n;
    }
  return TRUE;
}

int
cmd_open (PeerClient *client,
          int         argc,
          char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *buf = NULL;
  int fd = -1;

  if (argc != 2)
    return usage_error ("open needs PATH");
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */
  /* The generated stub checks the handle against the fds that came. */
  if (!peer_helper1_call_open_file_sync (client, HELPER_PATH, argv[1], &fd, NULL, &error))
    return fail ("open %s: %s", argv[1], error->message);

  buf = g_malloc (64 * 1024);
  for (;;)
    {
      ssize_t n = read (fd, buf, 64 * 1024);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved_errno = errno;
          close (fd);
          return fail ("open %s: cannot read: %s", argv[1], g_strerror (saved_errno));
        }
      if (n == 0)
        break;
      if (!write_all (STDOUT_FILENO, buf, n))
        {
          int saved_errno = errno;
          close (fd);
          return fail ("open %s: cannot write to standard output: %s", argv[1], g_strerror (saved_errno));
        }
    }
  close (fd);
  return EXIT_SUCCESS;
}

/* Prints "HEX  NAME" like sha256sum, so the two can be compared directly. */
int
cmd_digest (PeerClient *client,
            int         argc,
            char      **argv)
{
  g_autofree char *algorithm = NULL;
  const GOptionEntry entries[] = {
    { "algorithm", 'A', 0, G_OPTION_ARG_STRING, &algorithm,
      "md5, sha1, sha256 (default), sha384 or sha512", "ALG" },
    { NULL }
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *hex = NULL;
  const char *name;
  gboolean ok;
  int fd, code;

  if (!parse_command_options ("digest", entries, &argc, &argv, &code))
    return code;
  if (argc != 2)
    return usage_error ("digest needs FILE, or - for standard input");
  name = argv[1];
  if (client == NULL)
    {
      struct stat st;

      /* Opened for real once connected; a FIFO's writer would see a
       * first, checking open come and go. */
      if (g_str_equal (name, "-"))
        return EXIT_SUCCESS;
      if (stat (name, &st) != 0 || access (name, R_OK) != 0)
        return bad_input ("digest: cannot open %s: %s", name, g_strerror (errno));
      if (S_ISDIR (st.st_mode))
        return bad_input ("digest: %s is a directory", name);
      return EXIT_SUCCESS;          /* checked only */
    }
  if (g_str_equal (name, "-"))
    fd = dup (STDIN_FILENO);
  else
    fd = open (name, O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return fail ("digest: cannot open %s: %s", name, g_strerror (errno));

  /* No timeout (org.libpeer.Timeout in the XML): the server reads until
   * the end, however long the writer of a pipe takes. The stub sends a
   * duplicate of @fd. */
  ok = peer_helper1_call_digest_sync (client, HELPER_PATH, fd, algorithm ? algorithm : "sha256", &hex, NULL, &error);
  close (fd);
  if (!ok)
    return fail ("digest %s: %s", name, error->message);
  g_print ("%s  %s\n", hex, name);
  return EXIT_SUCCESS;
}

static double
elapsed_ms (gint64 start_us)
{
  return (g_get_monotonic_time () - start_us) / 1000.0;
}

int
cmd_blob_echo (PeerClient *client,
               int         argc,
               char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(PeerBlob) echoed = NULL;
  gconstpointer data;
  gint64 start;
  gsize size, bad;
  int echoed_fd = -1;
  int code;

  if (argc != 2)
    return usage_error ("blob-echo needs SIZE");
  if (!parse_size (argv[1], &size))
    return usage_error ("blob-echo: SIZE must be a byte count with an optional K, M or G suffix, not '%s'",
                        argv[1]);
  /* One copy: the blob that comes back maps the same pages. */
  if (!check_size_fits ("blob-echo", argv[1], size, 1, &code))
    return code;
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */

  start = g_get_monotonic_time ();
  blob = peer_blob_new_with_writer (size, fill_pattern, NULL, &error);
  if (blob == NULL)
    return fail ("blob-echo: %s", error->message);
  /* The stub sends a duplicate of the blob's fd and hands back the one
   * that came back, which the blob takes. */
  if (!peer_bench1_call_echo_blob_sync (client, BENCH_PATH, peer_blob_get_fd (blob), &echoed_fd, NULL, &error))
    return fail ("blob-echo: %s", error->message);
  echoed = peer_blob_new_take_fd (echoed_fd, (gssize) size, &error);
  if (echoed == NULL)
    return fail ("blob-echo: the blob that came back: %s", error->message);
  data = peer_blob_get_data (echoed, NULL);
  bad = check_pattern (data, size);
  if (bad != size)
    return fail ("blob-echo: byte %" G_GSIZE_FORMAT " came back changed", bad);
  g_print ("%" G_GSIZE_FORMAT " bytes round-tripped as a sealed memfd and verified in %.1f ms\n",
           size, elapsed_ms (start));
  return EXIT_SUCCESS;
}

/* The D-Bus specification's largest message, header included, and room
 * enough for an Echo's header and the array's length. */
#define DBUS_MAX_MESSAGE_BYTES (128 * 1024 * 1024)
#define DBUS_MESSAGE_OVERHEAD_BYTES 4096

/* payload-bench: one round trip of the same bytes four ways, each timed from
 * "the bytes are in our buffer" to "the echoed bytes were all read back". */

typedef struct {
  const char *name;
  double *ms;
} Series;

static int
compare_double (gconstpointer a,
                gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* A child that sends back whatever it reads, until end of file; only
 * read(), write() and _exit() after fork(). */
static pid_t
spawn_echo_child (int sock,
                  int other,
                  int cpu)
{
  pid_t pid = fork ();

  if (pid != 0)
    return pid;
  close (other);
  if (cpu >= 0)
    {
      cpu_set_t set;
      CPU_ZERO (&set);
      CPU_SET (cpu, &set);
      sched_setaffinity (0, sizeof set, &set);
    }
  {
    static guint8 buf[256 * 1024];
    for (;;)
      {
        ssize_t n = read (sock, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
          continue;
        if (n <= 0 || !write_all (sock, buf, n))
          _exit (0);
      }
  }
}

/* Writes @size bytes and reads them back at the same time (the socket
 * buffers are far smaller than the payload). */
static gboolean
raw_round_trip (int           sock,
                const guint8 *data,
                guint8       *back,
                gsize         size)
{
  gsize sent = 0, received = 0;

  while (received < size)
    {
      struct pollfd pfd = { sock, POLLIN | (sent < size ? POLLOUT : 0), 0 };

      if (poll (&pfd, 1, 10000) <= 0)
        return FALSE;
      if ((pfd.revents & POLLOUT) && sent < size)
        {
          ssize_t n = send (sock, data + sent, MIN (size - sent, 1 << 20), MSG_DONTWAIT);
          if (n > 0)
            sent += n;
          else if (n < 0 && errno != EAGAIN && errno != EINTR)
            return FALSE;
        }
      if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
        {
          ssize_t n = recv (sock, back + received, size - received, MSG_DONTWAIT);
          if (n > 0)
            received += n;
          else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            return FALSE;
        }
    }
  return TRUE;
}

int
cmd_payload_bench (PeerClient *client,
                   int         argc,
                   char      **argv)
{
  g_autofree char *runs_text = NULL;
  gint echo_cpu = -1;
  const GOptionEntry entries[] = {
    { "runs", 'n', 0, G_OPTION_ARG_STRING, &runs_text, "Round trips per method and size (default 7)", "N" },
    { "echo-cpu", 0, 0, G_OPTION_ARG_INT, &echo_cpu, "Pin the raw-socket echo process to CPU", "CPU" },
    { NULL }
  };
  gint64 runs = 7;
  g_autofree gsize *sizes = NULL;
  int code;

  if (!parse_command_options ("payload-bench", entries, &argc, &argv, &code))
    return code;
  if (argc < 2)
    return usage_error ("payload-bench needs SIZE...");
  if (runs_text != NULL && !parse_int (runs_text, 1, 10000, &runs))
    return usage_error ("payload-bench: --runs must be an integer from 1 to 10000, not '%s'", runs_text);
  /* Every size before the first run: a bad one at the end of the line
   * must not come after minutes of measuring. Four copies are held at
   * once: the bytes, the buffer they come back into, the message out and
   * its reply. */
  sizes = g_new0 (gsize, argc);
  for (int a = 1; a < argc; a++)
    {
      if (!parse_size (argv[a], &sizes[a]) || sizes[a] == 0)
        return usage_error ("payload-bench: SIZE must be a positive byte count with an optional "
                            "K, M or G suffix, not '%s'", argv[a]);
      if (!check_size_fits ("payload-bench", argv[a], sizes[a], 4, &code))
        return code;
      /* Every D-Bus peer refuses a larger message; GDBus warns and drops
       * the connection. */
      if (sizes[a] > DBUS_MAX_MESSAGE_BYTES - DBUS_MESSAGE_OVERHEAD_BYTES)
        {
          g_printerr ("peer-client: payload-bench: %s is more than one D-Bus message can carry "
                      "(128 MiB), which Echo, plain ay needs\n", argv[a]);
          return EXIT_USAGE;
        }
    }
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */

  g_print ("%-10s %-28s %10s %10s %10s %9s\n", "size", "method", "min ms", "median ms", "max ms", "GB/s");
  for (int a = 1; a < argc; a++)
    {
      g_autofree guint8 *data = NULL;
      g_autofree guint8 *back = NULL;
      double samples[4][10000];
      static const char *names[4] = {
        "raw unix socket (floor)", "Echo, plain ay", "Echo, ay as blob (auto)", "EchoBlob (explicit memfd)",
      };
      int sv[2];
      pid_t child;
      gsize size = sizes[a];

      data = g_malloc (size);
      back = g_malloc (size);
      fill_pattern (data, size, NULL, NULL);
      memset (back, 0, size);           /* no page faults inside the timed region */

      if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return fail ("payload-bench: socketpair: %s", g_strerror (errno));
      child = spawn_echo_child (sv[1], sv[0], echo_cpu);
      close (sv[1]);
      if (child < 0)
        return fail ("payload-bench: fork: %s", g_strerror (errno));

      for (gint64 r = 0; r < runs; r++)
        for (int m = 0; m < 4; m++)
          {
            g_autoptr(GError) error = NULL;
            g_autoptr(GVariant) reply = NULL;
            g_autoptr(GVariant) bytes = NULL;
            g_autoptr(GUnixFDList) fds = NULL;
            g_autoptr(GUnixFDList) out_fds = NULL;
            g_autoptr(PeerBlob) blob = NULL;
            g_autoptr(PeerBlob) echoed = NULL;
            const guint8 *result = NULL;
            gsize result_size = 0;
            gint64 start = g_get_monotonic_time ();
            gint32 handle;

            switch (m)
              {
              case 0:
                if (!raw_round_trip (sv[0], data, back, size))
                  return fail ("payload-bench: raw socket round trip failed");
                result = back;
                result_size = size;
                break;
              case 1:
              case 2:
                peer_client_set_blob_threshold (client, m == 1 ? 0 : PEER_BLOB_DEFAULT_THRESHOLD);
                reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "Echo",
                                               g_variant_new ("(@ay)",
                                                              g_variant_new_from_data (G_VARIANT_TYPE_BYTESTRING,
                                                                                       data, size, TRUE, NULL, NULL)),
                                               G_VARIANT_TYPE ("(ay)"), G_MAXINT, NULL, NULL, NULL, &error);
                if (reply == NULL)
                  return fail ("payload-bench: Echo of %s: %s", argv[a], error->message);
                bytes = g_variant_get_child_value (reply, 0);
                result = g_variant_get_fixed_array (bytes, &result_size, 1);
                break;
              default:
                fds = g_unix_fd_list_new ();
                blob = peer_blob_new_from_data (data, size, &error);
                if (blob == NULL || peer_blob_append_to_fd_list (blob, fds, &error) < 0)
                  return fail ("payload-bench: %s", error->message);
                reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "EchoBlob",
                                               g_variant_new ("(h)", 0), G_VARIANT_TYPE ("(h)"), G_MAXINT,
                                               fds, &out_fds, NULL, &error);
                if (reply == NULL)
                  return fail ("payload-bench: EchoBlob of %s: %s", argv[a], error->message);
                g_variant_get (reply, "(h)", &handle);
                echoed = peer_blob_new_from_fd_list (out_fds, handle, (gssize) size, &error);
                if (echoed == NULL)
                  return fail ("payload-bench: %s", error->message);
                result = peer_blob_get_data (echoed, &result_size);
                break;
              }
            if (result_size != size || memcmp (result, data, size) != 0)
              return fail ("payload-bench: %s of %s came back changed", names[m], argv[a]);
            samples[m][r] = elapsed_ms (start);
          }

      close (sv[0]);
      waitpid (child, NULL, 0);
      peer_client_set_blob_threshold (client, PEER_BLOB_DEFAULT_THRESHOLD);

      for (int m = 0; m < 4; m++)
        {
          double median;

          qsort (samples[m], runs, sizeof (double), compare_double);
          median = runs % 2 ? samples[m][runs / 2] : (samples[m][runs / 2 - 1] + samples[m][runs / 2]) / 2;
          g_print ("%-10s %-28s %10.2f %10.2f %10.2f %9.2f\n", argv[a], names[m], samples[m][0], median,
                   samples[m][runs - 1], size / (median / 1000.0) / 1e9);
        }
    }
  g_print ("Each round trip: from the bytes in our buffer to the echoed bytes all compared\n"
           "with memcmp. GB/s: one-way payload size over the median round trip.\n");
  return EXIT_SUCCESS;
}

