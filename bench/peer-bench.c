/* peer-bench: the round trip of a method call over each transport, beside
 * the floor (the same bytes ping-ponged over a bare Unix socket), in one
 * run and one table.
 *
 * Every server runs in its own process, started, pinned, measured and
 * reaped here (bench-process.c). Every reply is checked; a wrong one ends
 * the run with exit status 1. Cells are measured cell by cell, each
 * transport in turn, so that a noisy neighbour slows every transport of a
 * cell alike rather than one transport entirely. */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <gio/gio.h>
#include <libpeer.h>

#include "bench-process.h"
#include "bench-report.h"
#include "bench-transport.h"

/* Calls per callgrind run for --instructions: N and 2N are run, and the
 * difference divided by N cancels start-up and connection costs. */
#define INSTRUCTION_CALLS 1000

/* However short --seconds, a cell measures at least this many calls and
 * warms up with at least a few. */
#define MIN_CALLS        10
#define MIN_WARMUP_CALLS 3

#define SERVER_START_TIMEOUT_MS 20000
#define SERVER_STOP_TIMEOUT_MS  5000
/* Under callgrind everything is some fifty times slower. */
#define CALLGRIND_TIMEOUT_MS    600000

typedef enum {
  PIN_NONE,
  PIN_SAME,
  PIN_SPLIT,
} PinMode;

typedef struct {
  double    seconds;
  GArray   *sizes;           /* (element-type gsize) */
  GArray   *fd_counts;       /* (element-type guint) */
  GArray   *memfd_sizes;     /* (element-type gsize) */
  guint     cells;           /* the kinds to run: bits of 1 << BenchCellKind */
  GArray   *depths;          /* (element-type guint): the pipelined cells */
  GArray   *client_counts;   /* (element-type guint): the clients cells */
  PinMode   pin;
  char     *json_path;
  char     *svg_path;
  gboolean  instructions;
  char    **transports;      /* (nullable): names to run, besides the floor */
  /* The client half of --instructions, run under callgrind. */
  char     *client_transport;
  char     *client_address;
  guint64   client_calls;
} BenchOptions;

typedef struct {
  const BenchTransport *transport;
  BenchProcess         *server;
  gpointer              client;
} BenchPeer;

static void
bench_peer_free (BenchPeer *peer)
{
  if (peer->client != NULL)
    peer->transport->disconnect (peer->client);
  bench_process_free (peer->server);
  g_free (peer);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchPeer, bench_peer_free)

/* The progress line, on stderr when it is a terminal. */
static gboolean progress_shown;

/* "[done+1/total] transport what", or without the count when total is 0. */
static void
progress_update (guint       done,
                 guint       total,
                 const char *transport,
                 const char *what)
{
  if (!isatty (STDERR_FILENO))
    return;
  if (total > 0)
    fprintf (stderr, "\r\033[K[%u/%u] %s %s", done + 1, total, transport, what);
  else
    fprintf (stderr, "\r\033[K%s %s", transport, what);
  fflush (stderr);
  progress_shown = TRUE;
}

static void
progress_clear (void)
{
  if (!progress_shown)
    return;
  fputs ("\r\033[K", stderr);
  fflush (stderr);
  progress_shown = FALSE;
}

static G_GNUC_PRINTF (1, 2) int
usage_error (const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("peer-bench: %s (see --help)\n", message);
  return 2;
}

/* "4096", "4k", "4KiB", "1M", "1MiB" */
static gboolean
parse_size (const char *text,
            gsize      *out)
{
  g_autofree char *digits = NULL;
  const char *suffix = text;
  guint64 value, unit = 1;

  while (g_ascii_isdigit (*suffix))
    suffix++;
  digits = g_strndup (text, suffix - text);
  if (g_ascii_strcasecmp (suffix, "k") == 0 || g_ascii_strcasecmp (suffix, "kib") == 0)
    unit = 1024;
  else if (g_ascii_strcasecmp (suffix, "m") == 0 || g_ascii_strcasecmp (suffix, "mib") == 0)
    unit = 1024 * 1024;
  else if (*suffix != '\0' && g_ascii_strcasecmp (suffix, "b") != 0)
    return FALSE;
  if (!g_ascii_string_to_unsigned (digits, 10, 0, G_MAXUINT32, &value, NULL))
    return FALSE;
  *out = (gsize) (value * unit);
  return TRUE;
}

/* The largest payload: every transport's default message limit (libdbus
 * has the lowest, 32 MiB) holds it with room for the header. */
#define MAX_SIZE (16u * 1024 * 1024)

static const char * const cell_kind_names[] = {
  [BENCH_CELL_ECHO] = "echo",
  [BENCH_CELL_FD] = "fd",
  [BENCH_CELL_PIPELINE] = "pipeline",
  [BENCH_CELL_MEMFD] = "memfd",
  [BENCH_CELL_CLIENTS] = "clients",
};

/* A comma-separated list of counts from @min to @max, none twice. */
static gboolean
parse_count_list (const char *option,
                  const char *text,
                  guint       min,
                  guint       max,
                  GArray     *out,
                  int        *status)
{
  g_auto(GStrv) items = g_strsplit (text, ",", -1);

  for (guint i = 0; items[i] != NULL; i++)
    {
      const char *item = g_strstrip (items[i]);
      guint64 n;
      guint count;

      if (!g_ascii_string_to_unsigned (item, 10, min, max, &n, NULL))
        {
          *status = usage_error ("%s: '%s' is not a count from %u to %u", option, item, min, max);
          return FALSE;
        }
      count = (guint) n;
      for (guint j = 0; j < out->len; j++)
        if (g_array_index (out, guint, j) == count)
          {
            *status = usage_error ("%s: %s is listed twice", option, item);
            return FALSE;
          }
      g_array_append_val (out, count);
    }
  if (out->len == 0)
    {
      *status = usage_error ("%s needs at least one count", option);
      return FALSE;
    }
  return TRUE;
}

/* A comma-separated list of sizes from @min to @max, none twice. */
static gboolean
parse_size_list (const char *option,
                 const char *text,
                 gsize       min,
                 gsize       max,
                 const char *range,
                 GArray     *out,
                 int        *status)
{
  g_auto(GStrv) items = g_strsplit (text, ",", -1);

  for (guint i = 0; items[i] != NULL; i++)
    {
      const char *item = g_strstrip (items[i]);
      gsize size;

      if (!parse_size (item, &size) || size < min || size > max)
        {
          *status = usage_error ("%s: '%s' is not a size from %s", option, item, range);
          return FALSE;
        }
      for (guint j = 0; j < out->len; j++)
        if (g_array_index (out, gsize, j) == size)
          {
            *status = usage_error ("%s: %s is listed twice", option, item);
            return FALSE;
          }
      g_array_append_val (out, size);
    }
  if (out->len == 0)
    {
      *status = usage_error ("%s needs at least one size", option);
      return FALSE;
    }
  return TRUE;
}

static int
parse_options (int           argc,
               char        **argv,
               BenchOptions *options)
{
  g_autofree char *sizes = NULL;
  g_autofree char *fd_counts = NULL;
  g_autofree char *memfd_sizes = NULL;
  g_autofree char *cells = NULL;
  g_autofree char *pin = NULL;
  g_autofree char *transports = NULL;
  g_autofree char *depths = NULL;
  g_autofree char *client_counts = NULL;
  double seconds = 1.0;
  gint64 client_calls = 0;
  const GOptionEntry entries[] = {
    { "seconds", 's', 0, G_OPTION_ARG_DOUBLE, &seconds,
      "Measure each cell for S seconds (default 1), after S/5 of warm-up", "S" },
    { "sizes", 0, 0, G_OPTION_ARG_STRING, &sizes,
      "Echo payload sizes, comma-separated, with optional k/M suffix "
      "(default 0,64,4k,64k,1M)", "LIST" },
    { "fds", 0, 0, G_OPTION_ARG_STRING, &fd_counts,
      "Fds per EchoFds call in the fd cells, comma-separated, 1 to 253 "
      "(default 1,16,253)", "LIST" },
    { "memfd-sizes", 0, 0, G_OPTION_ARG_STRING, &memfd_sizes,
      "Sizes handed over as a sealed memfd in the memfd cells (the floor copies them "
      "instead), comma-separated, up to 64M (default 1M,16M,64M)", "LIST" },
    { "cells", 'c', 0, G_OPTION_ARG_STRING, &cells,
      "Run only these kinds of cell, comma-separated: echo, fd, memfd, pipeline, clients "
      "(default all)", "LIST" },
    { "depth", 'd', 0, G_OPTION_ARG_STRING, &depths,
      "Calls in flight in the pipelined cells, comma-separated, 1 to 1024 (default 1,16)", "LIST" },
    { "clients", 0, 0, G_OPTION_ARG_STRING, &client_counts,
      "Connections calling at once in the clients cells, comma-separated, 1 to 256 "
      "(default 1,4,16,64)", "LIST" },
    { "pin", 'p', 0, G_OPTION_ARG_STRING, &pin,
      "CPU placement: same (client and servers on one CPU), split (on two), "
      "none (the scheduler decides; default)", "MODE" },
    { "transports", 't', 0, G_OPTION_ARG_STRING, &transports,
      "Measure only these transports, comma-separated (the floor is always measured)", "LIST" },
    { "json", 0, 0, G_OPTION_ARG_FILENAME, &options->json_path,
      "Write every cell's summary and the machine description to FILE", "FILE" },
    { "svg", 0, 0, G_OPTION_ARG_FILENAME, &options->svg_path,
      "Draw latency per size and transport, and one CDF, to FILE", "FILE" },
    { "instructions", 0, 0, G_OPTION_ARG_NONE, &options->instructions,
      "Also count instructions per 0 B call, client and server, under callgrind", NULL },
    { "callgrind-client", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &options->client_transport,
      NULL, NULL },
    { "address", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_STRING, &options->client_address, NULL, NULL },
    { "calls", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT64, &client_calls, NULL, NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_auto(GStrv) fd_list = NULL;
  int status;

  g_option_context_set_summary (context,
                                "Measures the round trip of a method call over libpeer, plain GDBus,\n"
                                "sd-bus and libdbus, beside the floor of a bare Unix socket.");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error ("%s", error->message);
  if (argc > 1)
    return usage_error ("unexpected argument '%s'", argv[1]);

  if (!isfinite (seconds) || seconds <= 0 || seconds > 3600)
    return usage_error ("--seconds must be more than 0 and at most 3600, not %g", seconds);
  options->seconds = seconds;
  options->depths = g_array_new (FALSE, FALSE, sizeof (guint));
  if (!parse_count_list ("--depth", depths != NULL ? depths : "1,16", 1, 1024, options->depths, &status))
    return status;
  options->client_counts = g_array_new (FALSE, FALSE, sizeof (guint));
  if (!parse_count_list ("--clients", client_counts != NULL ? client_counts : "1,4,16,64", 1, 256,
                         options->client_counts, &status))
    return status;

  options->sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  if (!parse_size_list ("--sizes", sizes != NULL ? sizes : "0,64,4k,64k,1M", 0, MAX_SIZE,
                        "0 to 16M", options->sizes, &status))
    return status;
  options->memfd_sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  if (!parse_size_list ("--memfd-sizes", memfd_sizes != NULL ? memfd_sizes : "1M,16M,64M",
                        1, BENCH_MAX_PAYLOAD, "1 to 64M", options->memfd_sizes, &status))
    return status;

  options->fd_counts = g_array_new (FALSE, FALSE, sizeof (guint));
  fd_list = g_strsplit (fd_counts != NULL ? fd_counts : "1,16,253", ",", -1);
  for (guint i = 0; fd_list[i] != NULL; i++)
    {
      const char *item = g_strstrip (fd_list[i]);
      guint64 n;
      guint count;

      if (!g_ascii_string_to_unsigned (item, 10, 1, BENCH_MAX_FDS, &n, NULL))
        return usage_error ("--fds: '%s' is not a count from 1 to %d", item, BENCH_MAX_FDS);
      count = (guint) n;
      for (guint j = 0; j < options->fd_counts->len; j++)
        if (g_array_index (options->fd_counts, guint, j) == count)
          return usage_error ("--fds: %s is listed twice", item);
      g_array_append_val (options->fd_counts, count);
    }

  if (cells == NULL)
    options->cells = (1u << G_N_ELEMENTS (cell_kind_names)) - 1;
  else
    {
      g_auto(GStrv) kinds = g_strsplit (cells, ",", -1);

      for (guint i = 0; kinds[i] != NULL; i++)
        {
          const char *kind = g_strstrip (kinds[i]);
          guint k;

          for (k = 0; k < G_N_ELEMENTS (cell_kind_names); k++)
            if (g_str_equal (kind, cell_kind_names[k]))
              break;
          if (k == G_N_ELEMENTS (cell_kind_names))
            return usage_error ("--cells: no kind of cell '%s' (echo, fd, memfd, pipeline, clients)", kind);
          options->cells |= 1u << k;
        }
    }

  if (pin == NULL || g_str_equal (pin, "none"))
    options->pin = PIN_NONE;
  else if (g_str_equal (pin, "same"))
    options->pin = PIN_SAME;
  else if (g_str_equal (pin, "split"))
    options->pin = PIN_SPLIT;
  else
    return usage_error ("--pin must be same, split or none, not '%s'", pin);

  if (transports != NULL)
    {
      options->transports = g_strsplit (transports, ",", -1);
      for (guint i = 0; options->transports[i] != NULL; i++)
        if (bench_transports_lookup (g_strstrip (options->transports[i])) == NULL)
          return usage_error ("--transports: no transport '%s' in this build", options->transports[i]);
    }

  if (options->client_transport != NULL)
    {
      if (bench_transports_lookup (options->client_transport) == NULL ||
          options->client_address == NULL || client_calls <= 0)
        return usage_error ("--callgrind-client needs a transport, --address and --calls");
      options->client_calls = (guint64) client_calls;
    }
  return 0;
}

static void
bench_options_clear (BenchOptions *options)
{
  g_clear_pointer (&options->depths, g_array_unref);
  g_clear_pointer (&options->client_counts, g_array_unref);
  g_clear_pointer (&options->sizes, g_array_unref);
  g_clear_pointer (&options->fd_counts, g_array_unref);
  g_clear_pointer (&options->memfd_sizes, g_array_unref);
  g_clear_pointer (&options->json_path, g_free);
  g_clear_pointer (&options->svg_path, g_free);
  g_clear_pointer (&options->transports, g_strfreev);
  g_clear_pointer (&options->client_transport, g_free);
  g_clear_pointer (&options->client_address, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (BenchOptions, bench_options_clear)

/* "0-1", "0,2-3" */
static char *
format_cpu_set (const cpu_set_t *set)
{
  g_autoptr(GString) text = g_string_new (NULL);

  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
    {
      int last = cpu;

      if (!CPU_ISSET (cpu, set))
        continue;
      while (last + 1 < CPU_SETSIZE && CPU_ISSET (last + 1, set))
        last++;
      if (text->len > 0)
        g_string_append_c (text, ',');
      if (last == cpu)
        g_string_append_printf (text, "%d", cpu);
      else
        g_string_append_printf (text, "%d-%d", cpu, last);
      cpu = last;
    }
  return g_string_free (g_steal_pointer (&text), FALSE);
}

/* Chooses the CPUs, pins this process (before it starts any thread, so
 * that GDBus's worker thread is pinned too) and says where the servers go. */
static gboolean
apply_pinning (PinMode      mode,
               BenchReport *report,
               int         *out_server_cpu,
               GError     **error)
{
  cpu_set_t allowed, client;
  int first = -1, second = -1;

  if (sched_getaffinity (0, sizeof allowed, &allowed) != 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "sched_getaffinity: %s", g_strerror (errno));
      return FALSE;
    }
  for (int cpu = 0; cpu < CPU_SETSIZE && second < 0; cpu++)
    if (CPU_ISSET (cpu, &allowed))
      {
        if (first < 0)
          first = cpu;
        else
          second = cpu;
      }

  *out_server_cpu = -1;
  report->pin = g_strdup (mode == PIN_SAME ? "same" : mode == PIN_SPLIT ? "split" : "none");
  if (mode == PIN_NONE)
    {
      report->client_cpus = format_cpu_set (&allowed);
      report->server_cpus = format_cpu_set (&allowed);
      return TRUE;
    }
  if (mode == PIN_SPLIT && second < 0)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED,
                   "--pin split needs two CPUs; this process may use only CPU %d", first);
      return FALSE;
    }
  *out_server_cpu = mode == PIN_SAME ? first : second;
  CPU_ZERO (&client);
  CPU_SET (first, &client);
  if (sched_setaffinity (0, sizeof client, &client) != 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "sched_setaffinity: %s", g_strerror (errno));
      return FALSE;
    }
  report->client_cpus = g_strdup_printf ("%d", first);
  report->server_cpus = g_strdup_printf ("%d", *out_server_cpu);
  return TRUE;
}

static void
describe_machine (BenchReport *report)
{
  g_autofree char *cpuinfo = NULL;
  struct utsname uts;

  report->cpu_model = g_strdup ("unknown CPU");
  if (g_file_get_contents ("/proc/cpuinfo", &cpuinfo, NULL, NULL))
    {
      g_auto(GStrv) lines = g_strsplit (cpuinfo, "\n", -1);

      for (guint i = 0; lines[i] != NULL; i++)
        if (g_str_has_prefix (lines[i], "model name") && strchr (lines[i], ':') != NULL)
          {
            g_free (report->cpu_model);
            report->cpu_model = g_strstrip (g_strdup (strchr (lines[i], ':') + 1));
            break;
          }
    }
  report->n_cpus = (guint) sysconf (_SC_NPROCESSORS_ONLN);
  if (uname (&uts) == 0)
    report->kernel = g_strdup_printf ("%s %s %s", uts.sysname, uts.release, uts.machine);
  else
    report->kernel = g_strdup ("unknown kernel");
  report->glib_version = g_strdup_printf ("%u.%u.%u", glib_major_version,
                                          glib_minor_version, glib_micro_version);
}

static char *
get_self_path (void)
{
  return g_file_read_link ("/proc/self/exe", NULL);
}

/* The command line that runs @transport's server. */
static GPtrArray *
server_argv_new (const BenchTransport *transport)
{
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);

  if (transport->server_path != NULL)
    g_ptr_array_add (argv, g_strdup (transport->server_path));
  else
    {
      g_ptr_array_add (argv, g_strdup (PEER_BENCH_SERVER_PATH));
      g_ptr_array_add (argv, g_strdup (transport->name));
    }
  return argv;
}

static BenchPeer *
bench_peer_start (const BenchTransport *transport,
                  int                   server_cpu,
                  GError              **error)
{
  g_autoptr(BenchPeer) peer = g_new0 (BenchPeer, 1);
  g_autoptr(GPtrArray) argv = server_argv_new (transport);
  g_autofree char *name = g_strdup_printf ("the %s server", transport->name);

  g_ptr_array_add (argv, NULL);
  peer->transport = transport;
  peer->server = bench_process_spawn (name, (const char * const *) argv->pdata,
                                      server_cpu, SERVER_START_TIMEOUT_MS, error);
  if (peer->server == NULL)
    return NULL;
  peer->client = transport->connect (bench_process_get_address (peer->server), error);
  if (peer->client == NULL)
    {
      g_prefix_error (error, "%s: connecting to %s: ", transport->name,
                      bench_process_get_address (peer->server));
      return NULL;
    }
  return g_steal_pointer (&peer);
}

static gboolean
bench_peer_stop (BenchPeer *peer,
                 GError   **error)
{
  g_clear_pointer (&peer->client, peer->transport->disconnect);
  return bench_process_stop (peer->server, SERVER_STOP_TIMEOUT_MS, error);
}

/* A deterministic payload, so that a run can be repeated byte for byte. */
static guint8 *
payload_new (gsize size)
{
  guint8 *data = g_malloc (MAX (size, 8));
  guint64 state = 0x9e3779b97f4a7c15u;

  for (gsize i = 0; i < size; i++)
    {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      data[i] = (guint8) state;
    }
  return data;
}

/* The call number in the payload's first bytes: a reply to another call
 * (a stale or duplicated one) differs from what this call sent. */
static void
payload_stamp (guint8  *data,
               gsize    size,
               guint64  seq)
{
  guint64 le = GUINT64_TO_LE (seq);

  memcpy (data, &le, MIN (size, sizeof le));
}

static void
close_fds (const int *fds,
           guint      n_fds)
{
  for (guint i = 0; i < n_fds; i++)
    close (fds[i]);
}

static gint64
process_cpu_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

/* One memfd hand-off of @payload: written into a new sealed memfd (the
 * sender's one copy), its fd sent to the server and back, the returned fd
 * checked for its seals and size and mapped read-only (peer_blob_new_take_fd(),
 * what a careful receiver does), every byte compared. */
static gboolean
memfd_round_trip (BenchPeer     *peer,
                  const guint8  *payload,
                  gsize          size,
                  GError       **error)
{
  g_autoptr(PeerBlob) blob = peer_blob_new_from_data (payload, size, error);
  g_autoptr(PeerBlob) back = NULL;
  gconstpointer data;
  gsize back_size;
  int fd, got = -1;

  if (blob == NULL)
    return FALSE;
  fd = peer_blob_get_fd (blob);
  if (!peer->transport->echo_fds (peer->client, &fd, 1, &got, error))
    return FALSE;
  back = peer_blob_new_take_fd (got, (gssize) size, error);
  if (back == NULL)
    {
      g_prefix_error (error, "wrong reply: ");
      return FALSE;
    }
  data = peer_blob_get_data (back, &back_size);
  return bench_check_echo (payload, size, data, back_size, error);
}

/* One phase (warm-up or measurement) of one cell: calls until @loop ends. */
static gboolean
run_phase (BenchPeer       *peer,
           const BenchCell *cell,
           guint8          *payload,
           const int       *fds,
           BenchLoop       *loop,
           GError         **error)
{
  const BenchTransport *transport = peer->transport;
  gboolean copy = bench_cell_floor_copies (cell) && g_str_equal (transport->name, "floor");
  guint64 seq;
  gint64 start;

  if (cell->kind == BENCH_CELL_PIPELINE)
    return transport->pipeline (peer->client, cell->depth, loop, error);

  while (bench_loop_start_call (loop, &seq, &start))
    {
      gboolean ok;

      if (cell->kind == BENCH_CELL_FD)
        ok = transport->echo_fds (peer->client, fds, cell->n_fds, NULL, error);
      else if (cell->kind == BENCH_CELL_MEMFD && !copy)
        {
          payload_stamp (payload, cell->size, seq);
          ok = memfd_round_trip (peer, payload, cell->size, error);
        }
      else
        {
          payload_stamp (payload, cell->size, seq);
          ok = transport->echo (peer->client, payload, cell->size, error);
        }
      if (!ok)
        return FALSE;
      loop->completed++;
      if (loop->samples != NULL)
        {
          gint64 rtt = bench_clock_ns () - start;

          g_array_append_val (loop->samples, rtt);
        }
    }
  return TRUE;
}

/* --- the clients cells --------------------------------------------------- */

/* One connection of a clients cell, calling from its own thread. */
typedef struct {
  const BenchTransport *transport;
  gpointer client;
  gint64 deadline_ns;
  guint64 min_calls;
  guint64 calls;
  GArray *samples;              /* (element-type gint64) */
  GError *error;
} ClientsCaller;

static gpointer
clients_caller_thread (gpointer data)
{
  ClientsCaller *c = data;
  guint8 payload[BENCH_LOOP_PAYLOAD] = { 0 };

  while (bench_clock_ns () < c->deadline_ns || c->calls < c->min_calls)
    {
      gint64 start = bench_clock_ns (), rtt;

      payload_stamp (payload, sizeof payload, c->calls);
      if (!c->transport->echo (c->client, payload, sizeof payload, &c->error))
        break;
      c->calls++;
      rtt = bench_clock_ns () - start;
      if (c->samples != NULL)
        g_array_append_val (c->samples, rtt);
    }
  return NULL;
}

/* Every caller for @seconds (at least @min_calls each); FALSE with the
 * first error. The callers' samples go to @samples when it is set. */
static gboolean
clients_run_phase (ClientsCaller  *callers,
                   guint           n,
                   double          seconds,
                   guint64         min_calls,
                   GArray         *samples,
                   GError        **error)
{
  g_autofree GThread **threads = g_new0 (GThread *, n);
  gint64 deadline = bench_clock_ns () + (gint64) (seconds * 1e9);
  gboolean ok = TRUE;

  for (guint i = 0; i < n; i++)
    {
      callers[i].deadline_ns = deadline;
      callers[i].min_calls = min_calls;
      callers[i].calls = 0;
      callers[i].samples = samples != NULL ? g_array_new (FALSE, FALSE, sizeof (gint64)) : NULL;
      threads[i] = g_thread_new ("bench-caller", clients_caller_thread, &callers[i]);
    }
  for (guint i = 0; i < n; i++)
    {
      g_thread_join (threads[i]);
      if (callers[i].error != NULL && ok)
        {
          g_propagate_error (error, g_steal_pointer (&callers[i].error));
          ok = FALSE;
        }
      g_clear_error (&callers[i].error);
      if (callers[i].samples != NULL)
        {
          g_array_append_vals (samples, callers[i].samples->data, callers[i].samples->len);
          g_array_unref (callers[i].samples);
        }
    }
  return ok;
}

/* @n_clients connections to @peer's server, each calling Echo of 8 bytes
 * from its own thread, one call at a time: the aggregate throughput and
 * how evenly the server shared itself (the most calls one connection
 * made over the fewest). */
static BenchResult *
run_clients_cell (BenchPeer          *peer,
                  const BenchCell    *cell,
                  const BenchOptions *options,
                  GError            **error)
{
  g_autoptr(BenchResult) result = g_new0 (BenchResult, 1);
  g_autoptr(GArray) samples = g_array_sized_new (FALSE, FALSE, sizeof (gint64), 4096);
  g_autofree ClientsCaller *callers = g_new0 (ClientsCaller, cell->n_clients);
  g_autoptr(GError) local_error = NULL;
  gint64 t0, t1, client0, client1, server0, server1;
  guint64 total = 0, most = 0, fewest = G_MAXUINT64;
  guint n_connected = 0;
  gboolean ok;

  result->transport = g_strdup (peer->transport->name);
  if (peer->transport->get_version != NULL)
    result->version = g_strdup (peer->transport->get_version ());
  result->cell = *cell;
  result->ratio = NAN;
  if (!peer->transport->serves_many)
    {
      result->unavailable = g_strdup ("its server serves one connection at a time");
      return g_steal_pointer (&result);
    }

  for (; n_connected < cell->n_clients; n_connected++)
    {
      callers[n_connected].transport = peer->transport;
      callers[n_connected].client = peer->transport->connect (bench_process_get_address (peer->server),
                                                              &local_error);
      if (callers[n_connected].client == NULL)
        break;
    }
  ok = n_connected == cell->n_clients;
  if (ok)
    ok = clients_run_phase (callers, n_connected, options->seconds / 5, 1, NULL, &local_error);
  if (ok)
    {
      server0 = bench_process_get_cpu_ns (peer->server);
      client0 = process_cpu_ns ();
      t0 = bench_clock_ns ();
      ok = clients_run_phase (callers, n_connected, options->seconds,
                              MAX (1, MIN_CALLS / cell->n_clients), samples, &local_error);
      t1 = bench_clock_ns ();
      client1 = process_cpu_ns ();
      server1 = bench_process_get_cpu_ns (peer->server);
    }
  for (guint i = 0; i < n_connected; i++)
    {
      total += callers[i].calls;
      most = MAX (most, callers[i].calls);
      fewest = MIN (fewest, callers[i].calls);
      peer->transport->disconnect (callers[i].client);
    }
  if (!ok)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }

  result->available = TRUE;
  bench_summary_compute_latency (&result->summary, samples);
  result->summary.seconds = (double) (t1 - t0) / 1e9;
  result->summary.calls_per_s = total / result->summary.seconds;
  result->summary.client_cpu_us = (double) (client1 - client0) / 1000 / total;
  result->summary.server_cpu_us = server0 >= 0 && server1 >= 0 ? (double) (server1 - server0) / 1000 / total : NAN;
  result->summary.fairness = fewest > 0 ? (double) most / fewest : INFINITY;
  return g_steal_pointer (&result);
}

static BenchResult *
run_cell (BenchPeer          *peer,
          const BenchCell    *cell,
          const BenchOptions *options,
          gboolean            keep_cdf,
          GError            **error)
{
  g_autoptr(BenchResult) result = g_new0 (BenchResult, 1);
  g_autofree guint8 *payload = payload_new (cell->size);
  g_autoptr(GArray) samples = g_array_sized_new (FALSE, FALSE, sizeof (gint64), 4096);
  g_autoptr(GError) local_error = NULL;
  const gint64 second = G_GINT64_CONSTANT (1000000000);
  BenchLoop loop = { 0 };
  gint64 t0, t1, client0, client1, server0, server1;
  g_autofree int *fds = g_new (int, MAX (cell->n_fds, 1));
  guint n_open = 0;
  gboolean ok;

  if (cell->kind == BENCH_CELL_CLIENTS)
    return run_clients_cell (peer, cell, options, error);
  result->transport = g_strdup (peer->transport->name);
  if (peer->transport->get_version != NULL)
    result->version = g_strdup (peer->transport->get_version ());
  result->cell = *cell;
  result->ratio = NAN;
  result->summary.fairness = NAN;

  /* Distinct files, so that the reply's check sees their order. */
  for (; cell->kind == BENCH_CELL_FD && n_open < cell->n_fds; n_open++)
    {
      fds[n_open] = memfd_create ("peer-bench", MFD_CLOEXEC);
      if (fds[n_open] < 0)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                       "memfd_create: %s", g_strerror (errno));
          close_fds (fds, n_open);
          return NULL;
        }
    }

  loop.deadline_ns = bench_clock_ns () + (gint64) (options->seconds / 5 * second);
  loop.min_calls = MIN_WARMUP_CALLS;
  ok = run_phase (peer, cell, payload, fds, &loop, &local_error);
  if (!ok && g_error_matches (local_error, BENCH_ERROR, BENCH_ERROR_UNSUPPORTED))
    {
      result->unavailable = g_strdup (local_error->message);
      close_fds (fds, n_open);
      return g_steal_pointer (&result);
    }

  if (ok)
    {
      loop = (BenchLoop) { 0 };
      loop.samples = samples;
      loop.min_calls = MIN_CALLS;
      server0 = bench_process_get_cpu_ns (peer->server);
      client0 = process_cpu_ns ();
      t0 = bench_clock_ns ();
      loop.deadline_ns = t0 + (gint64) (options->seconds * second);
      ok = run_phase (peer, cell, payload, fds, &loop, &local_error);
      t1 = bench_clock_ns ();
      client1 = process_cpu_ns ();
      server1 = bench_process_get_cpu_ns (peer->server);
    }
  close_fds (fds, n_open);
  if (!ok)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return NULL;
    }

  result->available = TRUE;
  bench_summary_compute_latency (&result->summary, samples);
  result->summary.seconds = (double) (t1 - t0) / second;
  result->summary.calls_per_s = loop.completed / result->summary.seconds;
  result->summary.client_cpu_us = (double) (client1 - client0) / 1000 / loop.completed;
  result->summary.server_cpu_us = server0 >= 0 && server1 >= 0
                                    ? (double) (server1 - server0) / 1000 / loop.completed
                                    : NAN;
  if (keep_cdf)
    result->cdf = bench_quantiles (samples, BENCH_CDF_POINTS);
  return g_steal_pointer (&result);
}

static GArray *
list_cells (const BenchOptions *options)
{
  GArray *cells = g_array_new (FALSE, FALSE, sizeof (BenchCell));
  BenchCell cell;

  for (guint i = 0; (options->cells & (1u << BENCH_CELL_ECHO)) && i < options->sizes->len; i++)
    {
      cell = (BenchCell) { BENCH_CELL_ECHO, g_array_index (options->sizes, gsize, i), 1, 0 };
      g_array_append_val (cells, cell);
    }
  for (guint i = 0; (options->cells & (1u << BENCH_CELL_FD)) && i < options->fd_counts->len; i++)
    {
      cell = (BenchCell) { BENCH_CELL_FD, 0, 1, g_array_index (options->fd_counts, guint, i) };
      g_array_append_val (cells, cell);
    }
  for (guint i = 0; (options->cells & (1u << BENCH_CELL_MEMFD)) && i < options->memfd_sizes->len; i++)
    {
      cell = (BenchCell) { BENCH_CELL_MEMFD, g_array_index (options->memfd_sizes, gsize, i), 1, 1 };
      g_array_append_val (cells, cell);
    }
  for (guint i = 0; (options->cells & (1u << BENCH_CELL_PIPELINE)) && i < options->depths->len; i++)
    {
      cell = (BenchCell) { BENCH_CELL_PIPELINE, BENCH_LOOP_PAYLOAD, g_array_index (options->depths, guint, i), 0 };
      g_array_append_val (cells, cell);
    }
  for (guint i = 0; (options->cells & (1u << BENCH_CELL_CLIENTS)) && i < options->client_counts->len; i++)
    {
      cell = (BenchCell) { BENCH_CELL_CLIENTS, BENCH_LOOP_PAYLOAD, 1, 0,
                           g_array_index (options->client_counts, guint, i) };
      g_array_append_val (cells, cell);
    }
  return cells;
}

static gboolean
transport_selected (const BenchOptions   *options,
                    const BenchTransport *transport)
{
  return options->transports == NULL || g_str_equal (transport->name, "floor") ||
         g_strv_contains ((const char * const *) options->transports, transport->name);
}

static gboolean
run_benchmark (const BenchOptions *options,
               BenchReport        *report,
               int                 server_cpu,
               GError            **error)
{
  const BenchTransport * const *transports = bench_transports_get ();
  g_autoptr(GPtrArray) peers = g_ptr_array_new_with_free_func ((GDestroyNotify) bench_peer_free);
  g_autoptr(GArray) cells = list_cells (options);
  guint done = 0;

  for (guint i = 0; transports[i] != NULL; i++)
    {
      BenchPeer *peer;

      if (!transport_selected (options, transports[i]))
        continue;
      progress_update (0, 0, transports[i]->name, "starting");
      peer = bench_peer_start (transports[i], server_cpu, error);
      if (peer == NULL)
        return FALSE;
      g_ptr_array_add (peers, peer);
    }

  for (guint c = 0; c < cells->len; c++)
    {
      const BenchCell *cell = &g_array_index (cells, BenchCell, c);
      g_autofree char *label = bench_cell_label (cell);

      for (guint p = 0; p < peers->len; p++)
        {
          BenchPeer *peer = peers->pdata[p];
          BenchResult *result;

          progress_update (done++, cells->len * peers->len, peer->transport->name, label);
          result = run_cell (peer, cell, options,
                             cell->kind == BENCH_CELL_ECHO && cell->size == report->cdf_size,
                             error);
          if (result == NULL)
            {
              g_prefix_error (error, "%s, %s: ", peer->transport->name, label);
              return FALSE;
            }
          g_ptr_array_add (report->results, result);
        }
    }

  /* A server that crashed or failed to exit cleanly fails the run too. */
  for (guint p = 0; p < peers->len; p++)
    if (!bench_peer_stop (peers->pdata[p], error))
      return FALSE;
  return TRUE;
}

/* The "summary:" line of a callgrind output file: instructions executed. */
static gboolean
read_callgrind_total (const char *path,
                      guint64    *out,
                      GError    **error)
{
  g_autofree char *contents = NULL;
  g_auto(GStrv) lines = NULL;

  if (!g_file_get_contents (path, &contents, NULL, error))
    return FALSE;
  lines = g_strsplit (contents, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "summary:") || g_str_has_prefix (lines[i], "totals:"))
      {
        const char *number = strchr (lines[i], ':') + 1;
        char *end;

        *out = g_ascii_strtoull (number, &end, 10);
        if (end != number)
          return TRUE;
      }
  g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED, "no instruction total in %s", path);
  return FALSE;
}

/* Runs @calls 0 B calls with both sides under callgrind; returns the
 * instructions each side executed. */
static gboolean
count_instructions (const BenchTransport *transport,
                    const char           *valgrind,
                    const char           *directory,
                    guint64               calls,
                    guint64              *out_client,
                    guint64              *out_server,
                    GError              **error)
{
  g_autofree char *self_path = get_self_path ();
  g_autofree char *server_out = g_strdup_printf ("%s/%s-server-%" G_GUINT64_FORMAT ".out",
                                                 directory, transport->name, calls);
  g_autofree char *client_out = g_strdup_printf ("%s/%s-client-%" G_GUINT64_FORMAT ".out",
                                                 directory, transport->name, calls);
  g_autofree char *server_name = g_strdup_printf ("the %s server under callgrind", transport->name);
  g_autofree char *client_name = g_strdup_printf ("the %s client under callgrind", transport->name);
  g_autofree char *calls_arg = g_strdup_printf ("--calls=%" G_GUINT64_FORMAT, calls);
  g_autofree char *address_arg = NULL;
  g_autoptr(GPtrArray) server_argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) server_command = server_argv_new (transport);
  g_autoptr(BenchProcess) server = NULL;
  g_autofree char *server_out_arg = g_strconcat ("--callgrind-out-file=", server_out, NULL);
  g_autofree char *client_out_arg = g_strconcat ("--callgrind-out-file=", client_out, NULL);
  g_autofree char *transport_arg = g_strconcat ("--callgrind-client=", transport->name, NULL);

  if (self_path == NULL)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED, "cannot find peer-bench's own path");
      return FALSE;
    }
  g_ptr_array_add (server_argv, g_strdup (valgrind));
  g_ptr_array_add (server_argv, g_strdup ("--tool=callgrind"));
  g_ptr_array_add (server_argv, g_strdup ("-q"));
  g_ptr_array_add (server_argv, g_strdup (server_out_arg));
  for (guint i = 0; i < server_command->len; i++)
    g_ptr_array_add (server_argv, g_strdup (server_command->pdata[i]));
  g_ptr_array_add (server_argv, NULL);

  server = bench_process_spawn (server_name, (const char * const *) server_argv->pdata, -1,
                                CALLGRIND_TIMEOUT_MS, error);
  if (server == NULL)
    return FALSE;
  address_arg = g_strconcat ("--address=", bench_process_get_address (server), NULL);
  {
    const char * const client_argv[] = {
      valgrind, "--tool=callgrind", "-q", client_out_arg, self_path,
      transport_arg, address_arg, calls_arg, NULL
    };

    if (!bench_process_run (client_name, client_argv, CALLGRIND_TIMEOUT_MS, error))
      return FALSE;
  }
  return bench_process_stop (server, CALLGRIND_TIMEOUT_MS, error) &&
         read_callgrind_total (client_out, out_client, error) &&
         read_callgrind_total (server_out, out_server, error);
}

static gboolean
measure_instructions (const BenchOptions *options,
                      BenchReport        *report,
                      GError            **error)
{
  const BenchTransport * const *transports = bench_transports_get ();
  g_autofree char *valgrind = g_find_program_in_path ("valgrind");
  g_autofree char *directory = NULL;
  gboolean ok = TRUE;

  if (valgrind == NULL)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_FAILED,
                   "--instructions needs valgrind (apt-get install valgrind)");
      return FALSE;
    }
  directory = g_dir_make_tmp ("peer-bench-callgrind-XXXXXX", error);
  if (directory == NULL)
    return FALSE;

  for (guint i = 0; ok && transports[i] != NULL; i++)
    {
      guint64 client[2], server[2];
      BenchInstructions *ins;

      if (!transport_selected (options, transports[i]))
        continue;
      progress_update (0, 0, transports[i]->name, "under callgrind");
      ok = count_instructions (transports[i], valgrind, directory, INSTRUCTION_CALLS,
                               &client[0], &server[0], error) &&
           count_instructions (transports[i], valgrind, directory, 2 * INSTRUCTION_CALLS,
                               &client[1], &server[1], error);
      if (!ok)
        break;
      ins = g_new0 (BenchInstructions, 1);
      ins->transport = g_strdup (transports[i]->name);
      ins->calls = INSTRUCTION_CALLS;
      ins->client_per_call = ((double) client[1] - (double) client[0]) / INSTRUCTION_CALLS;
      ins->server_per_call = ((double) server[1] - (double) server[0]) / INSTRUCTION_CALLS;
      g_ptr_array_add (report->instructions, ins);
    }

  {
    g_autoptr(GDir) dir = g_dir_open (directory, 0, NULL);
    const char *name;

    while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *path = g_build_filename (directory, name, NULL);

        g_unlink (path);
      }
    g_rmdir (directory);
  }
  return ok;
}

/* The client half of --instructions: exactly N 0 B calls, nothing else. */
static int
run_callgrind_client (const BenchOptions *options)
{
  const BenchTransport *transport = bench_transports_lookup (options->client_transport);
  g_autoptr(GError) error = NULL;
  guint8 payload[8] = { 0 };
  gpointer client;

  client = transport->connect (options->client_address, &error);
  if (client == NULL)
    {
      g_printerr ("peer-bench: %s: %s\n", transport->name, error->message);
      return 1;
    }
  /* With one --depth: N pipelined calls at that depth instead, as the
   * pipelined cells make them (for profiling those by hand). */
  if (options->depths->len == 1)
    {
      BenchLoop loop = { .deadline_ns = 0, .min_calls = options->client_calls };

      if (!transport->pipeline (client, g_array_index (options->depths, guint, 0), &loop, &error))
        {
          g_printerr ("peer-bench: %s: %s\n", transport->name, error->message);
          transport->disconnect (client);
          return 1;
        }
      transport->disconnect (client);
      return 0;
    }
  for (guint64 i = 0; i < options->client_calls; i++)
    if (!transport->echo (client, payload, 0, &error))
      {
        g_printerr ("peer-bench: %s: %s\n", transport->name, error->message);
        transport->disconnect (client);
        return 1;
      }
  transport->disconnect (client);
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  g_auto(BenchOptions) options = { 0 };
  g_autoptr(BenchReport) report = NULL;
  g_autoptr(GError) error = NULL;
  int server_cpu;
  int status;

  /* Messages in the user's language and charset, numbers always with a
   * dot: the SVG and JSON writers print them with printf. */
  setlocale (LC_ALL, "");
  setlocale (LC_NUMERIC, "C");
  status = parse_options (argc, argv, &options);
  if (status != 0)
    return status;
  if (options.client_transport != NULL)
    return run_callgrind_client (&options);

  bench_process_install_signal_handlers ();
  report = bench_report_new ();
  if (!apply_pinning (options.pin, report, &server_cpu, &error))
    {
      g_printerr ("peer-bench: %s\n", error->message);
      return 2;
    }
  describe_machine (report);
  report->seconds = options.seconds;
  if (options.cells & (1u << BENCH_CELL_ECHO))
    g_array_append_vals (report->sizes, options.sizes->data, options.sizes->len);
  if (options.cells & (1u << BENCH_CELL_FD))
    g_array_append_vals (report->fd_counts, options.fd_counts->data, options.fd_counts->len);
  if (options.cells & (1u << BENCH_CELL_MEMFD))
    g_array_append_vals (report->memfd_sizes, options.memfd_sizes->data, options.memfd_sizes->len);
  if (options.cells & (1u << BENCH_CELL_PIPELINE))
    g_array_append_vals (report->depths, options.depths->data, options.depths->len);
  for (guint i = 0; i < report->depths->len; i++)
    report->depth = MAX (report->depth, g_array_index (report->depths, guint, i));
  if (options.cells & (1u << BENCH_CELL_CLIENTS))
    g_array_append_vals (report->client_counts, options.client_counts->data, options.client_counts->len);
  /* The CDF is drawn for the first size asked for: 0 B by default. */
  report->cdf_size = g_array_index (options.sizes, gsize, 0);

  bench_report_print_header (report, stdout);
  fflush (stdout);
  if (!run_benchmark (&options, report, server_cpu, &error))
    {
      progress_clear ();
      g_printerr ("peer-bench: %s\n", error->message);
      return 1;
    }
  progress_clear ();
  bench_report_compute_ratios (report);
  bench_report_print_table (report, stdout);
  fflush (stdout);

  if (options.instructions)
    {
      if (!measure_instructions (&options, report, &error))
        {
          progress_clear ();
          g_printerr ("peer-bench: %s\n", error->message);
          return 1;
        }
      progress_clear ();
      bench_report_print_instructions (report, stdout);
    }

  if ((options.json_path != NULL && !bench_report_write_json (report, options.json_path, &error)) ||
      (options.svg_path != NULL && !bench_report_write_svg (report, options.svg_path, &error)))
    {
      g_printerr ("peer-bench: %s\n", error->message);
      return 1;
    }
  return 0;
}
