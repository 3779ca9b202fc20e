/* test-load.c: many well-behaved peers and a few hostile ones at once.
 *
 * 64 peers (threads, each with its own connection and main context) make
 * calls of mixed sizes, some with fds, some asynchronous and pipelined,
 * some over lanes, while hostile peers connect beside them and misbehave
 * in every way test-hostile.c checks one at a time. Every reply to a
 * well-behaved peer must arrive exactly once with the right content, and
 * the process's resident memory (server and clients both) stays bounded.
 *
 * PEER_UNDER_VALGRIND=1 scales it down. PEER_LOAD_LONG=1 (the meson
 * benchmark "hostile-load") runs it longer and reports calls/s and
 * latency percentiles for the well-behaved peers. */
#include "config.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>

#include <libpeer.h>
#include "peer-test-raw.h"
#include "peer-test-util.h"

#define BENCH_PATH  "/org/libpeer/Bench"
#define BENCH_IFACE "org.libpeer.Bench1"

typedef struct {
  guint n_peers;
  guint rounds;                 /* per peer; each round makes CALLS_PER_ROUND calls */
  gboolean long_mode;
} LoadConfig;

#define PIPELINE 8
#define CALLS_PER_ROUND (4 + PIPELINE)

typedef struct {
  const LoadConfig *config;
  const char *address;
  guint index;
  /* Results, read after join */
  guint64 calls;
  guint64 replies;
  GArray *latencies_us;         /* gint64, synchronous calls */
  char *failure;
} Peer;

static gint hostile_stop;
static gint64 hostile_actions;
static gsize rss_peak;          /* atomic: sampled by the peers after each round */

static gsize resident_bytes (void);

static void
sample_memory (void)
{
  gsize now = resident_bytes (), peak;

  do
    peak = (gsize) g_atomic_pointer_get (&rss_peak);
  while (now > peak && !g_atomic_pointer_compare_and_exchange (&rss_peak, (gpointer) peak, (gpointer) now));
}

static GVariant *
payload (guint peer,
         guint round,
         gsize size)
{
  guint8 *data = g_malloc (size);

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (peer * 31 + round * 7 + i);
  return g_variant_new ("(@ay)", g_variant_new_from_data (G_VARIANT_TYPE_BYTESTRING, data, size, TRUE, g_free, data));
}

static gboolean
same_bytes (GVariant *a,
            GVariant *b)
{
  g_autoptr(GVariant) x = g_variant_get_child_value (a, 0);
  g_autoptr(GVariant) y = g_variant_get_child_value (b, 0);
  gsize nx, ny;
  gconstpointer px = g_variant_get_fixed_array (x, &nx, 1);
  gconstpointer py = g_variant_get_fixed_array (y, &ny, 1);

  return nx == ny && (nx == 0 || memcmp (px, py, nx) == 0);
}

typedef struct {
  GVariant *sent;
  guint *pending;
  guint64 *replies;
  char **failure;
} Pending;

static void
on_echo (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Pending *p = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  if (reply == NULL && *p->failure == NULL)
    *p->failure = g_strdup_printf ("async Echo: %s", error->message);
  else if (reply != NULL && !same_bytes (reply, p->sent) && *p->failure == NULL)
    *p->failure = g_strdup ("async Echo: wrong bytes");
  if (reply != NULL)
    (*p->replies)++;
  (*p->pending)--;
  g_variant_unref (p->sent);
  g_free (p);
}

static gboolean
sync_call (Peer       *peer,
           PeerClient *client,
           const char *method,
           GVariant   *args,
           GUnixFDList *fds,
           GUnixFDList **out_fds,
           GVariant  **out_reply)
{
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  GVariant *reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, method, args, NULL, 60000,
                                           fds, out_fds, NULL, &error);
  gint64 took = g_get_monotonic_time () - start;

  peer->calls++;
  if (reply == NULL)
    {
      peer->failure = g_strdup_printf ("%s: %s", method, error->message);
      return FALSE;
    }
  peer->replies++;
  g_array_append_val (peer->latencies_us, took);
  *out_reply = reply;
  return TRUE;
}

/* Lower than the default, so that blobs are part of the load. */
#define BLOB_THRESHOLD (64 * 1024)

static gpointer
peer_thread (gpointer user_data)
{
  Peer *peer = user_data;
  static const gsize sizes[] = { 0, 100, 4096, 64 * 1024, 200 * 1024 };
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (context);
  client = peer_client_new_sync (peer->address, 60000, NULL, &error);
  if (client == NULL)
    {
      peer->failure = g_strdup_printf ("connect: %s", error->message);
      goto out;
    }
  peer_client_set_blob_threshold (client, BLOB_THRESHOLD);
  if (peer->index % 4 == 0 && !peer_client_open_lane_sync (client, NULL, &error))
    {
      peer->failure = g_strdup_printf ("lane: %s", error->message);
      goto out;
    }

  for (guint round = 0; round < peer->config->rounds && peer->failure == NULL; round++)
    {
      g_autoptr(GVariant) reply = NULL;
      g_autoptr(GVariant) sent = g_variant_ref_sink (payload (peer->index, round, sizes[round % G_N_ELEMENTS (sizes)]));
      guint pending = 0;

      /* Ping and Echo, synchronous (over the lane for every fourth peer). */
      if (!sync_call (peer, client, "Ping", NULL, NULL, NULL, &reply))
        break;
      g_clear_pointer (&reply, g_variant_unref);
      if (!sync_call (peer, client, "Echo", sent, NULL, NULL, &reply))
        break;
      if (!same_bytes (reply, sent))
        peer->failure = g_strdup ("Echo: wrong bytes");
      g_clear_pointer (&reply, g_variant_unref);

      /* A fd and back: the same pipe. */
      {
        int pipe_fds[2];
        g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
        g_autoptr(GUnixFDList) out_fds = NULL;
        struct stat a, b;

        g_assert_cmpint (pipe2 (pipe_fds, O_CLOEXEC), ==, 0);
        g_unix_fd_list_append (fds, pipe_fds[0], NULL);
        if (sync_call (peer, client, "EchoFds", g_variant_new_parsed ("([@h 0],)"), fds, &out_fds, &reply))
          {
            if (out_fds == NULL || g_unix_fd_list_get_length (out_fds) != 1 ||
                fstat (g_unix_fd_list_peek_fds (out_fds, NULL)[0], &a) != 0 || fstat (pipe_fds[0], &b) != 0 ||
                a.st_ino != b.st_ino)
              peer->failure = g_strdup ("EchoFds: not the same pipe");
            g_clear_pointer (&reply, g_variant_unref);
          }
        close (pipe_fds[0]);
        close (pipe_fds[1]);
      }

      /* A Quick-sized call to the helper, over GDBus even with a lane. */
      if (!sync_call (peer, client, "Ping", NULL, NULL, NULL, &reply))
        break;
      g_clear_pointer (&reply, g_variant_unref);

      /* Pipelined: PIPELINE calls in flight, then wait for all. */
      for (guint i = 0; i < PIPELINE; i++)
        {
          Pending *p = g_new0 (Pending, 1);

          p->sent = g_variant_ref_sink (payload (peer->index, round * PIPELINE + i, 64 + i * 512));
          p->pending = &pending;
          p->replies = &peer->replies;
          p->failure = &peer->failure;
          pending++;
          peer->calls++;
          peer_client_call (client, BENCH_PATH, BENCH_IFACE, "Echo", p->sent, NULL, 60000, NULL, NULL,
                            on_echo, p);
        }
      while (pending > 0)
        g_main_context_iteration (context, TRUE);
      sample_memory ();
    }

out:
  g_clear_object (&client);
  while (g_main_context_iteration (context, FALSE))
    ;
  g_main_context_pop_thread_default (context);
  return NULL;
}

/* --- hostile peers -------------------------------------------------------- */

static void
hostile_once (const char *socket_path,
              guint       what)
{
  int fd;

  switch (what % 7)
    {
    case 0:                     /* garbage before authenticating */
      fd = raw_connect_path (socket_path);
      raw_try_send (fd, "\0GARBAGE\r\n", 10);
      raw_wait_closed (fd, 10000);
      break;
    case 1:                     /* an AUTH line without end */
      {
        char junk[16384];
        memset (junk, 'A', sizeof junk);
        fd = raw_connect_path (socket_path);
        raw_try_send (fd, "\0AUTH ", 6);
        for (guint i = 0; i < 64 && raw_try_send (fd, junk, sizeof junk); i++)
          ;
        raw_wait_closed (fd, 10000);
      }
      break;
    case 2:                     /* garbage after BEGIN */
      fd = raw_try_connect_authenticated_path (socket_path, TRUE);
      if (fd >= 0 && raw_try_send (fd, "not D-Bus at all, not at all\r\n", 30))
        raw_wait_closed (fd, 10000);
      break;
    case 3:                     /* a huge header, then hang up */
      {
        guchar header[16] = { 'l', G_DBUS_MESSAGE_TYPE_METHOD_CALL, 0, 1 };
        guint32 body_len = 100 * 1024 * 1024, serial = 1;
        memcpy (header + 4, &body_len, 4);
        memcpy (header + 8, &serial, 4);
        fd = raw_try_connect_authenticated_path (socket_path, FALSE);
        if (fd >= 0)
          raw_try_send (fd, header, sizeof header);
      }
      break;
    case 4:                     /* calls without reading the replies */
      {
        g_autoptr(GDBusMessage) call = new_call (BENCH_PATH, BENCH_IFACE, "Echo", payload (0, 0, 32 * 1024), 1);
        gsize size;
        g_autofree guchar *blob = to_blob (call, &size);

        fd = raw_try_connect_authenticated_path (socket_path, FALSE);
        for (guint32 serial = 1; fd >= 0 && serial < 4096; serial++)
          {
            memcpy (blob + 8, &serial, 4);
            if (!raw_try_send (fd, blob, size))
              break;
          }
      }
      break;
    case 5:                     /* half a message, then hang up */
      {
        g_autoptr(GDBusMessage) call = new_call (BENCH_PATH, BENCH_IFACE, "Ping", NULL, 1);
        gsize size;
        g_autofree guchar *blob = to_blob (call, &size);

        fd = raw_try_connect_authenticated_path (socket_path, FALSE);
        if (fd >= 0)
          raw_try_send (fd, blob, size / 2);
      }
      break;
    default:                    /* a big reply nobody will read */
      {
        g_autoptr(GDBusMessage) call = new_call (BENCH_PATH, BENCH_IFACE, "Echo", payload (0, 0, 256 * 1024), 1);

        fd = raw_try_connect_authenticated_path (socket_path, FALSE);
        if (fd >= 0)
          {
            gsize size;
            g_autofree guchar *blob = to_blob (call, &size);
            raw_try_send (fd, blob, size);
          }
      }
      break;
    }
  if (fd >= 0)
    close (fd);
  g_atomic_pointer_add (&hostile_actions, 1);
}

static gpointer
hostile_thread (gpointer user_data)
{
  const char *socket_path = user_data;
  guint what = g_random_int ();

  while (!g_atomic_int_get (&hostile_stop))
    hostile_once (socket_path, what++);
  return NULL;
}

/* --- the run --------------------------------------------------------------- */

static gsize
resident_bytes (void)
{
  g_autofree char *statm = NULL;
  g_auto(GStrv) fields = NULL;

  if (!g_file_get_contents ("/proc/self/statm", &statm, NULL, NULL))
    return 0;
  fields = g_strsplit (statm, " ", 0);
  return (gsize) g_ascii_strtoull (fields[1], NULL, 10) * (gsize) sysconf (_SC_PAGESIZE);
}

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static gboolean
limit_queue (gpointer user_data)
{
  PeerServer *server = user_data;

  /* Small enough that the flooding peers are closed quickly. */
  peer_server_set_max_queued_bytes (server, 2 * 1024 * 1024);
  peer_server_set_handshake_timeout (server, 2000);
  /* All 64 peers connect at the same moment, beside the hostile ones. */
  peer_server_set_max_handshakes (server, 128);
  /* The 64 KiB and 200 KiB payloads go as blobs, under load too. */
  peer_server_set_blob_threshold (server, BLOB_THRESHOLD);
  return G_SOURCE_REMOVE;
}

static void
test_load (gconstpointer data)
{
  const LoadConfig *config = data;
  g_autoptr(GError) error = NULL;
  PeerTestServer *ts = peer_test_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_autofree Peer *peers = g_new0 (Peer, config->n_peers);
  g_autofree GThread **threads = g_new0 (GThread *, config->n_peers);
  g_autoptr(GArray) latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  const char *socket_path;
  GThread *hostile[4];
  guint64 calls = 0, replies = 0;
  gsize baseline, peak;
  gint64 start, elapsed;
  /* Server and 64 clients in one process: their stacks, their buffers,
   * GDBus's per-connection state, the hostile peers' queues (2 MiB each
   * at most). Measured at about 100 MiB over the baseline. */
  const gsize bound = 320 * 1024 * 1024;

  g_assert_no_error (error);
  peer_test_server_invoke (ts, limit_queue, ts->server);
  socket_path = ts->address + strlen ("unix:path=");
  baseline = resident_bytes ();
  g_atomic_pointer_set (&rss_peak, baseline);
  g_atomic_int_set (&hostile_stop, FALSE);

  start = g_get_monotonic_time ();
  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++)
    hostile[i] = g_thread_new ("hostile", hostile_thread, (gpointer) socket_path);
  for (guint i = 0; i < config->n_peers; i++)
    {
      peers[i].config = config;
      peers[i].address = ts->address;
      peers[i].index = i;
      peers[i].latencies_us = g_array_new (FALSE, FALSE, sizeof (gint64));
      threads[i] = g_thread_new ("peer", peer_thread, &peers[i]);
    }
  for (guint i = 0; i < config->n_peers; i++)
    g_thread_join (threads[i]);
  elapsed = g_get_monotonic_time () - start;
  g_atomic_int_set (&hostile_stop, TRUE);
  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++)
    g_thread_join (hostile[i]);
  sample_memory ();
  peak = (gsize) g_atomic_pointer_get (&rss_peak);

  for (guint i = 0; i < config->n_peers; i++)
    {
      if (peers[i].failure != NULL)
        g_error ("peer %u: %s", i, peers[i].failure);
      calls += peers[i].calls;
      replies += peers[i].replies;
      g_array_append_vals (latencies, peers[i].latencies_us->data, peers[i].latencies_us->len);
      g_array_unref (peers[i].latencies_us);
    }
  g_array_sort (latencies, compare_gint64);

  g_test_message ("%u peers, %" G_GUINT64_FORMAT " calls, %" G_GUINT64_FORMAT " replies, lost %" G_GUINT64_FORMAT
                  ", %" G_GINT64_FORMAT " hostile connections, %.1f s: %.0f calls/s; sync p50 %" G_GINT64_FORMAT
                  " µs, p99 %" G_GINT64_FORMAT " µs; RSS baseline %" G_GSIZE_FORMAT " MiB, peak +%" G_GSSIZE_FORMAT " MiB",
                  config->n_peers, calls, replies, calls - replies, g_atomic_pointer_get (&hostile_actions),
                  elapsed / 1e6, calls / (elapsed / 1e6),
                  g_array_index (latencies, gint64, latencies->len / 2),
                  g_array_index (latencies, gint64, latencies->len * 99 / 100),
                  baseline >> 20, ((gssize) peak - (gssize) baseline) >> 20);
  if (config->long_mode)
    g_print ("hostile-load: %u peers, %" G_GUINT64_FORMAT " calls, %.0f calls/s, p50 %" G_GINT64_FORMAT " µs, p99 %"
             G_GINT64_FORMAT " µs, p99.9 %" G_GINT64_FORMAT " µs, %" G_GINT64_FORMAT " hostile connections, RSS peak +%"
             G_GSSIZE_FORMAT " MiB\n",
             config->n_peers, calls, calls / (elapsed / 1e6),
             g_array_index (latencies, gint64, latencies->len / 2),
             g_array_index (latencies, gint64, latencies->len * 99 / 100),
             g_array_index (latencies, gint64, latencies->len * 999 / 1000),
             g_atomic_pointer_get (&hostile_actions), ((gssize) peak - (gssize) baseline) >> 20);

  g_assert_cmpuint (calls, ==, (guint64) config->n_peers * config->rounds * CALLS_PER_ROUND);
  g_assert_cmpuint (replies, ==, calls);
  g_assert_cmpint ((gssize) peak - (gssize) baseline, <, (gssize) bound);
  peer_test_server_free (ts);
}

int
main (int   argc,
      char *argv[])
{
  static LoadConfig config = { 64, 40, FALSE };

  g_test_init (&argc, &argv, NULL);
  /* meson test sets MALLOC_PERTURB_, which writes every allocation: GDBus's
   * up-front allocation for an announced body would then be touched, which
   * no production allocator does. Memory is measured as deployed. */
  mallopt (M_PERTURB, 0);
  /* The hostile peers make GDBus warn (undecodable messages). */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
#if defined(__SANITIZE_ADDRESS__)
  /* Everything, GDBus's one worker thread for all 128 connection ends
   * included, runs several times slower. */
  config.n_peers = 16;
  config.rounds = 10;
#endif
  if (g_strcmp0 (g_getenv ("PEER_UNDER_VALGRIND"), "1") == 0)
    {
      config.n_peers = 8;
      config.rounds = 4;
    }
  if (g_strcmp0 (g_getenv ("PEER_LOAD_LONG"), "1") == 0)
    {
      config.rounds = 1000;
      config.long_mode = TRUE;
    }
  g_test_add_data_func ("/peer/load/hostile", &config, test_load);
  return g_test_run ();
}
