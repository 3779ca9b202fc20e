/* test-load.c: the soak test: many well-behaved peers, a slow reader and
 * a few hostile peers at once, then the server back where it started.
 *
 * 64 peers (threads, each with its own connection and main context) make
 * calls of mixed sizes over both transports (plain D-Bus, and a lane for
 * every fourth peer): some with fds, some with blobs (PeerBlob, and `ay`
 * values of 1 MiB and more that the client sends as blobs on its own),
 * some asynchronous and pipelined, and jobs whose Finished signal they
 * wait for. Beside them a slow reader (a raw socket read a few KiB at a
 * time, paced by a timer of its own) keeps calls in flight and receives
 * every signal, and hostile peers misbehave in every way test-hostile.c
 * checks one at a time. Every reply to a well-behaved peer must arrive
 * exactly once with the right content; the slow reader must be answered
 * rightly for as long as the server keeps it (its queued-bytes limit may
 * close it: counted, not a failure).
 *
 * The server runs in this process: its resident memory, open fds and
 * threads are taken after a warm-up round and again once every peer has
 * gone and the server has noticed, and must be back near where they were.
 *
 * PEER_UNDER_VALGRIND=1 scales it down. PEER_LOAD_LONG=1 (the meson
 * benchmark "hostile-load", and scripts/soak.sh) runs it longer and
 * prints the figures as a table; PEER_LOAD_SECONDS=N then runs for N
 * seconds rather than a number of rounds. */
#include "config.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>

#include <libpeer.h>
#include "peer-test-raw.h"
#include "peer-test-util.h"
#include "services.h"

#define BENCH_IFACE  "org.libpeer.Bench1"
#define HELPER_IFACE "org.libpeer.Helper1"
#define JOB_IFACE    "org.libpeer.Job1"

typedef struct {
  guint n_peers;
  guint rounds;                 /* per peer; 0: until @seconds have passed */
  guint seconds;
  gboolean long_mode;
  gboolean warm_up;             /* every kind of call in every round */
} LoadConfig;

#define PIPELINE 8

/* Lower than the default for half the peers, so that 64 KiB and 200 KiB
 * payloads travel as blobs for them and inline (chunked on a lane) for
 * the others. */
#define BLOB_THRESHOLD (64 * 1024)
/* One peer-round in this many sends an `ay` of 1 MiB or more, which goes
 * as a blob at any threshold; staggered, so that about four are in flight
 * at once (each holds a few MiB: the bytes, their memfd, the reply's). */
#define BIG_ECHO_EVERY 32
/* Jobs are dear with many peers: each is exported on every connection,
 * and its signals go to every peer (a plain peer gets all the server's
 * signals): with 64 peers connected a job takes 16 ms, against 0.75 ms
 * with one. So a quarter of the peers, both transports, start one every
 * JOB_EVERY rounds, if their last one has finished. */
#define JOB_EVERY 20
#define IS_JOB_PEER(index) ((index) % 8 == 0 || (index) % 8 == 3)
/* Finished jobs go after this, so that a peer has at most its running job
 * and one lingering in the table, far within its share. */
#define JOB_LINGER_MS 1000
/* In a soak (a number of seconds rather than of rounds), a peer starts a
 * round at most this often, as a client with work of its own would call.
 * Calling flat out, the lane peers (a thread each in the client and one
 * in the server) take nearly all the CPU from the D-Bus peers, which share
 * GDBus's one worker thread: 48 D-Bus peers made 43 calls/s beside 16 lane
 * peers (9400 calls/s), where 64 D-Bus peers alone made 1240 calls/s. The
 * D-Bus peers are slower than this pace under load; the lane peers wait. */
#define SOAK_ROUND_MS 250

typedef enum {
  TRANSPORT_DBUS,
  TRANSPORT_LANE,
  N_TRANSPORTS
} Transport;

static const char *const transport_names[] = { "dbus", "lane" };

/* Latencies as a histogram rather than samples, so that a soak of any
 * length holds the same memory: 32 buckets per doubling (3 % wide) from
 * 1 µs to 2^27 µs. */
#define LATENCY_SUB_BITS 5
#define N_LATENCY_BUCKETS (28 << LATENCY_SUB_BITS)

typedef struct {
  guint64 calls;
  guint64 replies;
  guint64 counts[N_LATENCY_BUCKETS];    /* synchronous calls */
  guint64 n_samples;
} TransportStats;

typedef struct {
  const LoadConfig *config;
  const char *address;
  gint64 end_time;              /* monotonic, when config->rounds is 0 */
} LoadRun;

typedef struct {
  const LoadRun *run;
  guint index;
  Transport transport;
  /* Results, read after join */
  guint rounds;
  TransportStats stats;
  guint64 blob_calls;
  guint64 big_echoes;
  guint64 jobs_started;
  guint64 jobs_finished;
  guint64 jobs_failed;          /* "fail" jobs that failed, as asked */
  char *failure;
  /* Own jobs, object path → expected success; in the peer's thread */
  GHashTable *running_jobs;
  GHashTable *finished_jobs;
} Peer;

static gint load_stop;
static gint64 hostile_actions;
static gsize rss_peak;          /* atomic: sampled by the peers after each round */

/* --- the process's resources ------------------------------------------- */

typedef struct {
  gsize rss_kib;
  guint fds;
  guint threads;
  guint pool_threads;           /* of @threads, GLib's thread pools' */
  guint peer_threads;           /* of @threads, libpeer's own (lanes, say) */
  guint sockets;                /* of @fds */
  guint memfds;                 /* of @fds: blobs */
} Resources;

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

/* Counts this process's threads by name; @names (optional) gets them. */
static void
count_threads (Resources *r,
               GString   *names)
{
  g_autoptr(GDir) tasks = g_dir_open ("/proc/self/task", 0, NULL);
  const char *tid;

  g_assert_nonnull (tasks);
  r->threads = r->pool_threads = r->peer_threads = 0;
  while ((tid = g_dir_read_name (tasks)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/task", tid, "comm", NULL);
      g_autofree char *comm = NULL;

      if (!g_file_get_contents (path, &comm, NULL, NULL))
        continue;                       /* gone meanwhile */
      g_strstrip (comm);
      r->threads++;
      /* GLib names its pools' threads "pool-<program>"; "pool-spawner"
       * makes them and stays. */
      if (g_str_has_prefix (comm, "pool-") && !g_str_equal (comm, "pool-spawner"))
        r->pool_threads++;
      else if (g_str_has_prefix (comm, "peer-"))
        r->peer_threads++;
      if (names != NULL)
        g_string_append_printf (names, " %s", comm);
    }
}

/* Counts this process's fds that are sockets or memfds. */
static void
count_fd_kinds (Resources *r)
{
  g_autoptr(GDir) fds = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;

  g_assert_nonnull (fds);
  r->sockets = r->memfds = 0;
  while ((name = g_dir_read_name (fds)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/fd", name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);

      if (target != NULL && g_str_has_prefix (target, "socket:"))
        r->sockets++;
      else if (target != NULL && g_str_has_prefix (target, "/memfd:"))
        r->memfds++;
    }
}

static Resources
measure_resources (void)
{
  Resources r = { resident_bytes () / 1024, peer_test_count_open_fds () };

  count_threads (&r, NULL);
  count_fd_kinds (&r);
  return r;
}

static void
sample_memory (void)
{
  gsize now = resident_bytes (), peak;

  do
    peak = (gsize) g_atomic_pointer_get (&rss_peak);
  while (now > peak && !g_atomic_pointer_compare_and_exchange (&rss_peak, (gpointer) peak, (gpointer) now));
}

/* --- latencies ------------------------------------------------------------ */

static guint
latency_bucket (gint64 us)
{
  guint64 v = (guint64) MAX (us, 1);
  guint e = g_bit_storage (v) - 1;      /* 2^e <= v < 2^(e+1) */
  guint sub = e >= LATENCY_SUB_BITS ? (guint) (v >> (e - LATENCY_SUB_BITS))
                                    : (guint) (v << (LATENCY_SUB_BITS - e));

  sub &= (1 << LATENCY_SUB_BITS) - 1;
  return MIN ((e << LATENCY_SUB_BITS) + sub, N_LATENCY_BUCKETS - 1);
}

/* The bucket's lower bound, in µs. */
static gint64
latency_bucket_value (guint bucket)
{
  guint e = bucket >> LATENCY_SUB_BITS;
  guint64 mantissa = (1 << LATENCY_SUB_BITS) + (bucket & ((1 << LATENCY_SUB_BITS) - 1));

  return (gint64) ((mantissa << e) >> LATENCY_SUB_BITS);
}

static gint64
latency_percentile (const TransportStats *stats,
                    double                fraction)
{
  guint64 rank = (guint64) (stats->n_samples * fraction), seen = 0;

  for (guint b = 0; b < N_LATENCY_BUCKETS; b++)
    {
      seen += stats->counts[b];
      if (seen > rank)
        return latency_bucket_value (b);
    }
  return 0;
}

static void
stats_add (TransportStats       *into,
           const TransportStats *from)
{
  into->calls += from->calls;
  into->replies += from->replies;
  into->n_samples += from->n_samples;
  for (guint b = 0; b < N_LATENCY_BUCKETS; b++)
    into->counts[b] += from->counts[b];
}

/* --- payloads ------------------------------------------------------------- */

static void
fill_pattern (guint8 *data,
              gsize   size,
              guint   seed)
{
  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (seed + i);
}

static GVariant *
payload (guint peer,
         guint round,
         gsize size)
{
  guint8 *data = g_malloc (size);

  fill_pattern (data, size, peer * 31 + round * 7);
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

static gboolean
write_blob (guint8  *data,
            gsize    size,
            gpointer user_data,
            GError **error)
{
  fill_pattern (data, size, GPOINTER_TO_UINT (user_data));
  return TRUE;
}

/* --- well-behaved peers ---------------------------------------------------- */

typedef struct {
  GVariant *sent;
  guint *pending;
  Peer *peer;
} Pending;

static void
set_failure (Peer *peer,
             char *failure)
{
  if (peer->failure == NULL)
    peer->failure = failure;
  else
    g_free (failure);
}

static void
on_echo (GObject      *source,
         GAsyncResult *result,
         gpointer      user_data)
{
  Pending *p = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  if (reply == NULL)
    set_failure (p->peer, g_strdup_printf ("async Echo: %s", error->message));
  else if (!same_bytes (reply, p->sent))
    set_failure (p->peer, g_strdup ("async Echo: wrong bytes"));
  else
    p->peer->stats.replies++;
  (*p->pending)--;
  g_variant_unref (p->sent);
  g_free (p);
}

/* Counts a reply only when the caller has checked it (peer->stats.replies). */
static gboolean
sync_call (Peer         *peer,
           PeerClient   *client,
           const char   *path,
           const char   *iface,
           const char   *method,
           GVariant     *args,
           GUnixFDList  *fds,
           GUnixFDList **out_fds,
           GVariant    **out_reply)
{
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  GVariant *reply = peer_client_call_sync (client, path, iface, method, args, NULL, 60000,
                                           fds, out_fds, NULL, &error);
  gint64 took = g_get_monotonic_time () - start;

  peer->stats.calls++;
  if (reply == NULL)
    {
      set_failure (peer, g_strdup_printf ("%s: %s", method, error->message));
      return FALSE;
    }
  peer->stats.counts[latency_bucket (took)]++;
  peer->stats.n_samples++;
  *out_reply = reply;
  return TRUE;
}

static gboolean
bench_call (Peer        *peer,
            PeerClient  *client,
            const char  *method,
            GVariant    *args,
            GUnixFDList *fds,
            GUnixFDList **out_fds,
            GVariant   **out_reply)
{
  return sync_call (peer, client, PEER_BENCH_PATH, BENCH_IFACE, method, args, fds, out_fds, out_reply);
}

static gboolean
check (Peer       *peer,
       gboolean    ok,
       const char *what)
{
  if (ok)
    peer->stats.replies++;
  else
    set_failure (peer, g_strdup (what));
  return ok;
}

/* Every job's Finished goes to every peer: a peer keeps what concerns its
 * own. */
static void
on_job_finished (PeerClient *client,
                 const char *object_path,
                 const char *interface_name,
                 const char *signal_name,
                 GVariant   *parameters,
                 gpointer    user_data)
{
  Peer *peer = user_data;
  char *path;
  gpointer expected;
  gboolean success;
  const char *message;

  if (!g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(bs)")))
    {
      set_failure (peer, g_strdup_printf ("Finished from %s has type %s", object_path,
                                          g_variant_get_type_string (parameters)));
      return;
    }
  if (g_hash_table_contains (peer->finished_jobs, object_path))
    {
      set_failure (peer, g_strdup_printf ("Finished twice from %s", object_path));
      return;
    }
  if (!g_hash_table_steal_extended (peer->running_jobs, object_path, (gpointer *) &path, &expected))
    return;                             /* another peer's */
  g_hash_table_add (peer->finished_jobs, path);
  g_variant_get (parameters, "(b&s)", &success, &message);
  if (success != GPOINTER_TO_INT (expected))
    set_failure (peer, g_strdup_printf ("job %s: Finished(%d, '%s'), expected %d", object_path, success, message,
                                        GPOINTER_TO_INT (expected)));
  peer->jobs_finished++;
  if (!success)
    peer->jobs_failed++;
}

static void
start_job (Peer       *peer,
           PeerClient *client,
           guint       round)
{
  /* Half fail at their last step, as asked: a failure must be reported
   * as one, as much as a success. */
  gboolean succeeds = (peer->index + round / JOB_EVERY) % 2 != 0;
  guint steps = 1 + round % 3;
  g_autoptr(GVariant) reply = NULL;
  const char *path;

  if (!sync_call (peer, client, PEER_HELPER_PATH, HELPER_IFACE, "StartJob",
                  g_variant_new ("(suu)", succeeds ? "count" : "fail", steps, 10), NULL, NULL, &reply))
    return;
  if (!check (peer, g_variant_is_of_type (reply, G_VARIANT_TYPE ("(o)")), "StartJob: not an object path"))
    return;
  g_variant_get (reply, "(&o)", &path);
  /* Its Finished cannot have been dispatched yet: this thread has not
   * iterated its context since the call. */
  g_hash_table_insert (peer->running_jobs, g_strdup (path), GINT_TO_POINTER (succeeds));
  peer->jobs_started++;
}

typedef struct {
  gboolean returned;            /* the close's task */
  gboolean emitted;             /* GDBusConnection::closed */
} Closing;

static void
on_close_returned (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  Closing *closing = user_data;

  g_dbus_connection_close_finish (G_DBUS_CONNECTION (source), result, NULL);
  closing->returned = TRUE;
}

static void
on_close_emitted (GDBusConnection *connection,
                  gboolean         remote_peer_vanished,
                  GError          *error,
                  gpointer         user_data)
{
  Closing *closing = user_data;

  closing->emitted = TRUE;
}

/* A PeerClient dropped while its connection is open closes it with
 * g_dbus_connection_close() and no callback, and GDBus emits "closed" in
 * the context the connection was made in: both come back to this thread's
 * context some time later, each holding the connection, which holds the
 * context. If the thread has ended by then, the three are never freed
 * (an eventfd and the connection's buffers per peer). Closing here, and
 * waiting for both, keeps the soak's figures about the server. */
static void
close_and_wait (PeerClient *client)
{
  GDBusConnection *connection = peer_client_get_connection (client);
  Closing closing = { FALSE, FALSE };
  gulong handler;

  if (g_dbus_connection_is_closed (connection))
    return;
  handler = g_signal_connect (connection, "closed", G_CALLBACK (on_close_emitted), &closing);
  g_dbus_connection_close (connection, NULL, on_close_returned, &closing);
  PEER_TEST_WAIT_UNTIL (closing.returned && closing.emitted);
  g_signal_handler_disconnect (connection, handler);
}

static gboolean
on_paced (gpointer user_data)
{
  *(gboolean *) user_data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Lets @until (monotonic) come, handling what arrives meanwhile. */
static void
pace (GMainContext *context,
      gint64        until)
{
  gint64 now = g_get_monotonic_time ();
  gboolean due = FALSE;
  GSource *timer;

  if (now >= until)
    return;
  timer = g_timeout_source_new ((guint) ((until - now) / 1000) + 1);
  g_source_set_callback (timer, on_paced, &due, NULL);
  g_source_attach (timer, context);
  while (!due)
    g_main_context_iteration (context, TRUE);
  g_source_unref (timer);
}

static gboolean
more_rounds (Peer  *peer,
             guint  round)
{
  const LoadConfig *config = peer->run->config;

  if (config->rounds > 0)
    return round < config->rounds;
  return g_get_monotonic_time () < peer->run->end_time;
}

/* Whether @peer does, in @round, what is done every @every rounds: each
 * peer at its own offset, so that the peers take turns, and every peer at
 * least once even in a run shorter than @every rounds. */
static gboolean
is_due (Peer  *peer,
        guint  round,
        guint  every)
{
  const LoadConfig *config = peer->run->config;
  guint offset = peer->index % MIN (every, config->rounds > 0 ? config->rounds : every);

  return config->warm_up || (round >= offset && (round - offset) % every == 0);
}

static gpointer
peer_thread (gpointer user_data)
{
  Peer *peer = user_data;
  static const gsize sizes[] = { 0, 100, 4096, 64 * 1024, 200 * 1024 };
  static const gsize blob_sizes[] = { 1, 4096, 65536 + 17, 256 * 1024 };
  g_autoptr(GMainContext) context = g_main_context_new ();
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GError) error = NULL;
  guint finished_id = 0;

  g_main_context_push_thread_default (context);
  peer->running_jobs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  peer->finished_jobs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  client = peer_client_new_sync (peer->run->address, 60000, NULL, &error);
  if (client == NULL)
    {
      set_failure (peer, g_strdup_printf ("connect: %s", error->message));
      goto out;
    }
  if ((peer->index / 4) % 2 == 0)
    peer_client_set_blob_threshold (client, BLOB_THRESHOLD);
  if (peer->transport == TRANSPORT_LANE && !peer_client_open_lane_sync (client, NULL, &error))
    {
      set_failure (peer, g_strdup_printf ("lane: %s", error->message));
      goto out;
    }
  finished_id = peer_client_subscribe_signal (client, NULL, JOB_IFACE, "Finished", on_job_finished, peer, NULL);

  for (guint round = 0; peer->failure == NULL && more_rounds (peer, round); round++)
    {
      gint64 round_start = g_get_monotonic_time ();
      g_autoptr(GVariant) reply = NULL;
      g_autoptr(GVariant) sent = g_variant_ref_sink (payload (peer->index, round, sizes[round % G_N_ELEMENTS (sizes)]));
      guint pending = 0;

      /* Ping and Echo, synchronous (over the lane for every fourth peer). */
      if (!bench_call (peer, client, "Ping", NULL, NULL, NULL, &reply))
        break;
      check (peer, g_variant_is_of_type (reply, G_VARIANT_TYPE_UNIT), "Ping: a reply with arguments");
      g_clear_pointer (&reply, g_variant_unref);
      if (!bench_call (peer, client, "Echo", sent, NULL, NULL, &reply))
        break;
      check (peer, same_bytes (reply, sent), "Echo: wrong bytes");
      g_clear_pointer (&reply, g_variant_unref);

      /* A fd and back: the same pipe. */
      {
        int pipe_fds[2];
        g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
        g_autoptr(GUnixFDList) out_fds = NULL;
        struct stat a, b;

        g_assert_cmpint (pipe2 (pipe_fds, O_CLOEXEC), ==, 0);
        g_unix_fd_list_append (fds, pipe_fds[0], NULL);
        if (bench_call (peer, client, "EchoFds", g_variant_new_parsed ("([@h 0],)"), fds, &out_fds, &reply))
          {
            check (peer, out_fds != NULL && g_unix_fd_list_get_length (out_fds) == 1 &&
                         fstat (g_unix_fd_list_peek_fds (out_fds, NULL)[0], &a) == 0 &&
                         fstat (pipe_fds[0], &b) == 0 && a.st_ino == b.st_ino,
                   "EchoFds: not the same pipe");
            g_clear_pointer (&reply, g_variant_unref);
          }
        close (pipe_fds[0]);
        close (pipe_fds[1]);
        if (peer->failure != NULL)
          break;
      }

      /* A sealed memfd and back, read byte for byte. */
      {
        gsize size = blob_sizes[(peer->index + round) % G_N_ELEMENTS (blob_sizes)];
        guint seed = peer->index * 13 + round;
        g_autoptr(PeerBlob) blob = peer_blob_new_with_writer (size, write_blob, GUINT_TO_POINTER (seed), &error);
        g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
        g_autoptr(GUnixFDList) out_fds = NULL;
        g_autoptr(PeerBlob) returned = NULL;
        g_autofree guint8 *expected = g_malloc (size);
        gint32 handle;

        g_assert_no_error (error);
        handle = peer_blob_append_to_fd_list (blob, fds, &error);
        g_assert_no_error (error);
        peer->blob_calls++;
        if (!bench_call (peer, client, "EchoBlob", g_variant_new ("(h)", handle), fds, &out_fds, &reply))
          break;
        handle = -1;
        if (g_variant_is_of_type (reply, G_VARIANT_TYPE ("(h)")))
          g_variant_get (reply, "(h)", &handle);
        g_clear_pointer (&reply, g_variant_unref);
        returned = peer_blob_new_from_fd_list (out_fds, handle, size, &error);
        if (returned == NULL)
          {
            set_failure (peer, g_strdup_printf ("EchoBlob: %s", error->message));
            break;
          }
        fill_pattern (expected, size, seed);
        if (!check (peer, memcmp (peer_blob_get_data (returned, NULL), expected, size) == 0, "EchoBlob: wrong bytes"))
          break;
      }

      /* An `ay` of 1 MiB or more: a blob however the threshold is set. */
      if (is_due (peer, round, BIG_ECHO_EVERY))
        {
          g_autoptr(GVariant) big = g_variant_ref_sink (payload (peer->index, round,
                                                                 PEER_BLOB_DEFAULT_THRESHOLD + (peer->index * 4099) % 65536));

          peer->big_echoes++;
          if (!bench_call (peer, client, "Echo", big, NULL, NULL, &reply))
            break;
          check (peer, same_bytes (reply, big), "Echo of 1 MiB: wrong bytes");
          g_clear_pointer (&reply, g_variant_unref);
        }

      /* A call to the helper. */
      if (!sync_call (peer, client, PEER_HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 64), NULL, NULL, &reply))
        break;
      {
        const char *number = NULL;

        if (g_variant_is_of_type (reply, G_VARIANT_TYPE ("(s)")))
          g_variant_get (reply, "(&s)", &number);
        check (peer, number != NULL && g_ascii_string_to_unsigned (number, 10, 0, G_MAXUINT64, NULL, NULL),
               "Quick: not a 64-bit number");
        g_clear_pointer (&reply, g_variant_unref);
      }

      /* A job, when the last one is done. */
      if (IS_JOB_PEER (peer->index) && is_due (peer, round, JOB_EVERY) &&
          g_hash_table_size (peer->running_jobs) == 0)
        start_job (peer, client, round);

      /* Pipelined: PIPELINE calls in flight, then wait for all. */
      for (guint i = 0; i < PIPELINE; i++)
        {
          Pending *p = g_new0 (Pending, 1);

          p->sent = g_variant_ref_sink (payload (peer->index, round * PIPELINE + i, 64 + i * 512));
          p->pending = &pending;
          p->peer = peer;
          pending++;
          peer->stats.calls++;
          peer_client_call (client, PEER_BENCH_PATH, BENCH_IFACE, "Echo", p->sent, NULL, 60000, NULL, NULL,
                            on_echo, p);
        }
      while (pending > 0)
        g_main_context_iteration (context, TRUE);
      peer->rounds++;
      sample_memory ();
      if (peer->run->config->rounds == 0)
        pace (context, round_start + SOAK_ROUND_MS * 1000);
    }

  /* The jobs still running end on their own; their Finished is awaited. */
  if (peer->failure == NULL)
    PEER_TEST_WAIT_UNTIL (g_hash_table_size (peer->running_jobs) == 0 || peer->failure != NULL);
  /* Calls did not fall back to D-Bus: the lane is still there. */
  if (peer->failure == NULL && peer->transport == TRANSPORT_LANE && !peer_client_has_lane (client))
    set_failure (peer, g_strdup ("the lane closed"));

out:
  if (finished_id != 0)
    peer_client_unsubscribe_signal (client, finished_id);
  if (client != NULL)
    close_and_wait (client);
  g_clear_object (&client);
  while (g_main_context_iteration (context, FALSE))
    ;
  g_clear_pointer (&peer->running_jobs, g_hash_table_unref);
  g_clear_pointer (&peer->finished_jobs, g_hash_table_unref);
  g_main_context_pop_thread_default (context);
  return NULL;
}

/* --- the slow reader ------------------------------------------------------- */

/* Keeps SLOW_WINDOW Echo calls of SLOW_ECHO_SIZE in flight over a raw
 * connection, and reads SLOW_READ_BYTES every SLOW_TICK_MS (400 KiB/s, a
 * few calls a second): the replies it has asked for are more than its
 * socket holds (about 200 KiB), so the server keeps the rest queued for
 * it, with every signal of every job on top, within its queued-bytes
 * limit or, past it, closing the connection; it then connects again.
 * The timer paces its own reading; it waits for nothing the other side
 * does. */
#define SLOW_WINDOW 12
#define SLOW_ECHO_SIZE (64 * 1024)
#define SLOW_READ_BYTES (4 * 1024)
#define SLOW_TICK_MS 10
#define SLOW_SEED 1000

typedef struct {
  const char *socket_path;
  int fd;
  GByteArray *in;
  GHashTable *pending;          /* serials in flight */
  guint32 next_serial;
  gboolean done;
  /* Results, read after join */
  guint64 calls;
  guint64 replies;
  guint64 signals;
  guint64 connections;
  guint64 disconnects;
  guint64 lost;                 /* calls in flight when the server closed it */
  guint64 unanswered;           /* calls in flight when it stopped */
  char *failure;
} SlowReader;

static void
slow_reader_fail (SlowReader *r,
                  char       *failure)
{
  if (r->failure == NULL)
    r->failure = failure;
  else
    g_free (failure);
}

static void
slow_reader_closed (SlowReader *r)
{
  r->disconnects++;
  r->lost += g_hash_table_size (r->pending);
  g_hash_table_remove_all (r->pending);
  g_byte_array_set_size (r->in, 0);
  close (r->fd);
  r->fd = -1;
}

static void
slow_reader_take_message (SlowReader   *r,
                          GDBusMessage *message)
{
  guint32 serial = g_dbus_message_get_reply_serial (message);

  switch (g_dbus_message_get_message_type (message))
    {
    case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
      {
        g_autoptr(GVariant) expected = g_variant_ref_sink (payload (SLOW_SEED, serial, SLOW_ECHO_SIZE));
        GVariant *body = g_dbus_message_get_body (message);

        if (!g_hash_table_remove (r->pending, GUINT_TO_POINTER (serial)))
          slow_reader_fail (r, g_strdup_printf ("slow reader: a reply to %u, which is not in flight", serial));
        else if (body == NULL || !g_variant_is_of_type (body, G_VARIANT_TYPE ("(ay)")) || !same_bytes (body, expected))
          slow_reader_fail (r, g_strdup_printf ("slow reader: wrong reply to %u", serial));
        else
          r->replies++;
      }
      break;
    case G_DBUS_MESSAGE_TYPE_SIGNAL:
      r->signals++;
      break;
    default:
      slow_reader_fail (r, g_strdup_printf ("slow reader: %s to %u",
                                            g_dbus_message_get_error_name (message), serial));
      break;
    }
}

static void
slow_reader_parse (SlowReader *r)
{
  while (r->in->len >= 16)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GDBusMessage) message = NULL;
      gssize needed = g_dbus_message_bytes_needed (r->in->data, 16, &error);

      if (needed < 0)
        {
          slow_reader_fail (r, g_strdup_printf ("slow reader: %s", error->message));
          return;
        }
      if (r->in->len < (gsize) needed)
        return;
      message = g_dbus_message_new_from_blob (r->in->data, needed, G_DBUS_CAPABILITY_FLAGS_NONE, &error);
      g_byte_array_remove_range (r->in, 0, needed);
      if (message == NULL)
        slow_reader_fail (r, g_strdup_printf ("slow reader: %s", error->message));
      else
        slow_reader_take_message (r, message);
    }
}

static gboolean
slow_reader_tick (gpointer user_data)
{
  SlowReader *r = user_data;
  guint8 buf[SLOW_READ_BYTES];
  gssize n;

  if (g_atomic_int_get (&load_stop) || r->failure != NULL)
    {
      r->done = TRUE;
      return G_SOURCE_REMOVE;
    }
  if (r->fd < 0)
    {
      /* Refused (a handshake limit, say): tried again next tick. */
      r->fd = raw_try_connect_authenticated_path (r->socket_path, FALSE);
      if (r->fd < 0)
        return G_SOURCE_CONTINUE;
      r->connections++;
      r->next_serial = 1;
    }
  while (g_hash_table_size (r->pending) < SLOW_WINDOW)
    {
      guint32 serial = r->next_serial++;
      g_autoptr(GDBusMessage) call = new_call (PEER_BENCH_PATH, BENCH_IFACE, "Echo",
                                               payload (SLOW_SEED, serial, SLOW_ECHO_SIZE), serial);
      gsize size;
      g_autofree guchar *blob = to_blob (call, &size);

      r->calls++;
      g_hash_table_add (r->pending, GUINT_TO_POINTER (serial));
      if (!raw_try_send (r->fd, blob, size))
        {
          slow_reader_closed (r);
          return G_SOURCE_CONTINUE;
        }
    }

  n = recv (r->fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n > 0)
    {
      g_byte_array_append (r->in, buf, n);
      slow_reader_parse (r);
    }
  else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
    slow_reader_closed (r);
  return G_SOURCE_CONTINUE;
}

static gpointer
slow_reader_thread (gpointer user_data)
{
  SlowReader *r = user_data;
  g_autoptr(GMainContext) context = g_main_context_new ();
  GSource *tick = g_timeout_source_new (SLOW_TICK_MS);

  r->fd = -1;
  r->in = g_byte_array_new ();
  r->pending = g_hash_table_new (NULL, NULL);
  g_source_set_callback (tick, slow_reader_tick, r, NULL);
  g_source_attach (tick, context);
  while (!r->done)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (tick);
  g_source_unref (tick);

  r->unanswered = g_hash_table_size (r->pending);
  if (r->fd >= 0)
    close (r->fd);
  g_byte_array_unref (r->in);
  g_hash_table_unref (r->pending);
  return NULL;
}

/* --- hostile peers -------------------------------------------------------- */

#define N_HOSTILE_KINDS 7

static void
hostile_once (const char *socket_path,
              guint       what)
{
  int fd;

  switch (what % N_HOSTILE_KINDS)
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
        g_autoptr(GDBusMessage) call = new_call (PEER_BENCH_PATH, BENCH_IFACE, "Echo", payload (0, 0, 32 * 1024), 1);
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
        g_autoptr(GDBusMessage) call = new_call (PEER_BENCH_PATH, BENCH_IFACE, "Ping", NULL, 1);
        gsize size;
        g_autofree guchar *blob = to_blob (call, &size);

        fd = raw_try_connect_authenticated_path (socket_path, FALSE);
        if (fd >= 0)
          raw_try_send (fd, blob, size / 2);
      }
      break;
    default:                    /* a big reply nobody will read */
      {
        g_autoptr(GDBusMessage) call = new_call (PEER_BENCH_PATH, BENCH_IFACE, "Echo", payload (0, 0, 256 * 1024), 1);

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

  while (!g_atomic_int_get (&load_stop))
    hostile_once (socket_path, what++);
  return NULL;
}

/* --- the run --------------------------------------------------------------- */

static gboolean
set_limits (gpointer user_data)
{
  PeerServer *server = user_data;

  /* Small enough that the flooding peers are closed quickly, and the slow
   * reader when it falls behind. */
  peer_server_set_max_queued_bytes (server, 2 * 1024 * 1024);
  peer_server_set_handshake_timeout (server, 2000);
  /* All 64 peers connect at the same moment, beside the hostile ones. */
  peer_server_set_max_handshakes (server, 128);
  /* Replies to calls that came with blobs go as blobs from 64 KiB. */
  peer_server_set_blob_threshold (server, BLOB_THRESHOLD);
  peer_job_service_set_linger (server, JOB_LINGER_MS);
  return G_SOURCE_REMOVE;
}

typedef struct {
  Peer *peers;
  guint n_peers;
  SlowReader slow;
  gint64 elapsed_us;
} RunResult;

/* Runs the peers (and, unless warming up, the slow reader and the hostile
 * peers beside them) to their end. */
static void
run_peers (const LoadConfig *config,
           PeerTestServer   *ts,
           RunResult        *result)
{
  const char *socket_path = ts->address + strlen ("unix:path=");
  LoadRun run = { config, ts->address, 0 };
  g_autofree GThread **threads = g_new0 (GThread *, config->n_peers);
  GThread *hostile[4] = { NULL };
  GThread *slow = NULL;
  gint64 start;

  *result = (RunResult) { NULL };
  result->peers = g_new0 (Peer, config->n_peers);
  result->n_peers = config->n_peers;
  result->slow.socket_path = socket_path;
  g_atomic_int_set (&load_stop, FALSE);

  start = g_get_monotonic_time ();
  run.end_time = start + (gint64) config->seconds * G_USEC_PER_SEC;
  if (!config->warm_up)
    {
      for (guint i = 0; i < G_N_ELEMENTS (hostile); i++)
        hostile[i] = g_thread_new ("hostile", hostile_thread, (gpointer) socket_path);
      slow = g_thread_new ("slow-reader", slow_reader_thread, &result->slow);
    }
  for (guint i = 0; i < config->n_peers; i++)
    {
      result->peers[i].run = &run;
      result->peers[i].index = i;
      result->peers[i].transport = i % 4 == 0 ? TRANSPORT_LANE : TRANSPORT_DBUS;
      threads[i] = g_thread_new ("peer", peer_thread, &result->peers[i]);
    }
  for (guint i = 0; i < config->n_peers; i++)
    g_thread_join (threads[i]);
  result->elapsed_us = g_get_monotonic_time () - start;
  g_atomic_int_set (&load_stop, TRUE);
  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++)
    if (hostile[i] != NULL)
      g_thread_join (hostile[i]);
  if (slow != NULL)
    g_thread_join (slow);

  for (guint i = 0; i < config->n_peers; i++)
    if (result->peers[i].failure != NULL)
      g_error ("peer %u: %s", i, result->peers[i].failure);
  if (result->slow.failure != NULL)
    g_error ("%s", result->slow.failure);
}

static void
run_result_clear (RunResult *result)
{
  g_clear_pointer (&result->peers, g_free);
}

static gboolean
on_settle_tick (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* GLib keeps threads it may reuse: a non-exclusive pool's idle thread
 * waits half a second for more work in its pool (GTask's, which the
 * handshakes use; each lane's call worker), then in GLib's global pool,
 * whose idle threads are stopped here. This many may still be in their
 * half second, or running a last task. */
#define POOL_THREAD_SLACK 2

/* Settled: no peer left, no connection's socket (only @idle's: the
 * server's listening socket), no blob, no thread of libpeer's (a lane's,
 * say), GLib's pools near empty; and once @start is known, as many fds
 * and other threads as then. */
static gboolean
is_settled (PeerTestServer  *ts,
            const Resources *idle,
            const Resources *start)
{
  Resources now;

  if (peer_server_get_n_peers (ts->server) != 0)
    return FALSE;
  g_thread_pool_stop_unused_threads ();
  now = measure_resources ();
  if (now.sockets > idle->sockets || now.memfds > 0 || now.peer_threads > 0 ||
      now.pool_threads > POOL_THREAD_SLACK)
    return FALSE;
  /* The waiting context's own wakeup fd is one more. */
  return start == NULL || (now.fds == start->fds + 1 &&
                           now.threads - now.pool_threads <= start->threads - start->pool_threads);
}

/* What the fds and threads are, when they are not what they should be. */
static void
log_fds_and_threads (void)
{
  g_autoptr(GDir) fds = g_dir_open ("/proc/self/fd", 0, NULL);
  g_autoptr(GString) names = g_string_new (NULL);
  Resources r;
  const char *name;

  while (fds != NULL && (name = g_dir_read_name (fds)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/fd", name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);

      g_test_message ("fd %s: %s", name, target != NULL ? target : "?");
    }
  count_threads (&r, names);
  g_test_message ("threads:%s", names->str);
}

/* Waits until every peer has gone and the server has noticed, and the
 * process is settled (is_settled(): @idle is what it had before any
 * connection, @start what it had after the warm-up, or NULL). Connections
 * finish closing in GDBus's worker thread, and idle threads leave GLib's
 * pools, telling nobody: the condition is looked at again every 10 ms, up
 * to a deadline; past it, the caller's assertions say what is left.
 * Returns how long it took. */
static gint64
wait_until_settled (PeerTestServer  *ts,
                    const Resources *idle,
                    const Resources *start)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  GSource *tick = g_timeout_source_new (10);
  gint64 begin = g_get_monotonic_time ();
  PeerTestDeadline deadline;

  g_main_context_push_thread_default (context);
  g_source_set_callback (tick, on_settle_tick, NULL, NULL);
  g_source_attach (tick, context);
  peer_test_deadline_start (&deadline, 10000);
  while (!deadline.expired && !is_settled (ts, idle, start))
    g_main_context_iteration (context, TRUE);
  peer_test_deadline_end (&deadline);
  g_source_destroy (tick);
  g_source_unref (tick);
  if (!is_settled (ts, idle, start))
    {
      g_test_message ("not settled after 10 s: %u peers", peer_server_get_n_peers (ts->server));
      log_fds_and_threads ();
    }
  g_main_context_pop_thread_default (context);
  return g_get_monotonic_time () - begin;
}

typedef struct {
  TransportStats by_transport[N_TRANSPORTS];
  guint peers_on[N_TRANSPORTS];
  guint rounds_min[N_TRANSPORTS];       /* of a peer: who was starved */
  guint rounds_max[N_TRANSPORTS];
  guint64 calls;
  guint64 replies;
  guint64 blob_calls;
  guint64 big_echoes;
  guint64 jobs_started;
  guint64 jobs_finished;
  guint64 jobs_failed;
} Totals;

typedef struct {
  Resources start;
  Resources end;
  gsize peak_kib;
  gsize end_trimmed_kib;        /* after malloc_trim() */
  gint64 settle_us;
} Figures;

static void
report (const LoadConfig *config,
        const RunResult  *result,
        const Totals     *t,
        const Figures    *f)
{
  double seconds = result->elapsed_us / 1e6;
  const SlowReader *slow = &result->slow;

  g_test_message ("%u peers, %.1f s: %" G_GUINT64_FORMAT " calls, %" G_GUINT64_FORMAT " replies checked, lost %"
                  G_GUINT64_FORMAT "; %" G_GUINT64_FORMAT " EchoBlob, %" G_GUINT64_FORMAT " Echo of 1 MiB+, %"
                  G_GUINT64_FORMAT " jobs (%" G_GUINT64_FORMAT " finished, %" G_GUINT64_FORMAT " failed as asked)",
                  result->n_peers, seconds, t->calls, t->replies, t->calls - t->replies, t->blob_calls,
                  t->big_echoes, t->jobs_started, t->jobs_finished, t->jobs_failed);
  for (guint i = 0; i < N_TRANSPORTS; i++)
    g_test_message ("%s: %u peers, %u-%u rounds each, %" G_GUINT64_FORMAT " calls, %.0f calls/s; sync p50 %"
                    G_GINT64_FORMAT " us, p99 %" G_GINT64_FORMAT " us, p99.9 %" G_GINT64_FORMAT " us",
                    transport_names[i], t->peers_on[i], t->rounds_min[i], t->rounds_max[i],
                    t->by_transport[i].calls, t->by_transport[i].calls / seconds,
                    latency_percentile (&t->by_transport[i], 0.5), latency_percentile (&t->by_transport[i], 0.99),
                    latency_percentile (&t->by_transport[i], 0.999));
  g_test_message ("slow reader: %" G_GUINT64_FORMAT " calls, %" G_GUINT64_FORMAT " replies, %" G_GUINT64_FORMAT
                  " signals read, %" G_GUINT64_FORMAT " connections, %" G_GUINT64_FORMAT " disconnects (%"
                  G_GUINT64_FORMAT " calls lost with them, %" G_GUINT64_FORMAT " in flight at the end); %"
                  G_GINT64_FORMAT " hostile connections",
                  slow->calls, slow->replies, slow->signals, slow->connections, slow->disconnects, slow->lost,
                  slow->unanswered, g_atomic_pointer_get (&hostile_actions));
  g_test_message ("server (whole process): RSS %" G_GSIZE_FORMAT " KiB at start, peak %" G_GSIZE_FORMAT " KiB, %"
                  G_GSIZE_FORMAT " KiB at end (%" G_GSIZE_FORMAT " KiB after malloc_trim); fds %u -> %u; "
                  "threads %u -> %u (GLib's pools %u -> %u); settled %" G_GINT64_FORMAT " ms after the last peer",
                  f->start.rss_kib, f->peak_kib, f->end.rss_kib, f->end_trimmed_kib, f->start.fds, f->end.fds,
                  f->start.threads, f->end.threads, f->start.pool_threads, f->end.pool_threads,
                  f->settle_us / 1000);
  if (!config->long_mode)
    return;

  g_print ("\nsoak: %u peers (%u on lanes), %.1f s, a slow reader and 4 hostile threads beside\n\n",
           result->n_peers, t->peers_on[TRANSPORT_LANE], seconds);
  g_print ("%-12s %10s %10s %10s\n", "process", "start", "peak", "end");
  g_print ("%-12s %10" G_GSIZE_FORMAT " %10" G_GSIZE_FORMAT " %10" G_GSIZE_FORMAT "   (%" G_GSIZE_FORMAT
           " after malloc_trim)\n", "RSS KiB", f->start.rss_kib, f->peak_kib, f->end.rss_kib, f->end_trimmed_kib);
  g_print ("%-12s %10u %10s %10u\n", "fds", f->start.fds, "", f->end.fds);
  g_print ("%-12s %10u %10s %10u   (of which GLib's pools: %u, %u)\n", "threads", f->start.threads, "",
           f->end.threads, f->start.pool_threads, f->end.pool_threads);
  g_print ("%-12s %10.1f s after the last peer left\n\n", "settled", f->settle_us / 1e6);
  g_print ("%-12s %6s %13s %12s %10s %9s %9s %9s\n", "transport", "peers", "rounds/peer", "calls", "calls/s",
           "p50 us", "p99 us", "p99.9 us");
  for (guint i = 0; i < N_TRANSPORTS; i++)
    g_print ("%-12s %6u %6u-%-6u %12" G_GUINT64_FORMAT " %10.0f %9" G_GINT64_FORMAT " %9" G_GINT64_FORMAT " %9"
             G_GINT64_FORMAT "\n", transport_names[i], t->peers_on[i], t->rounds_min[i], t->rounds_max[i],
             t->by_transport[i].calls,
             t->by_transport[i].calls / seconds, latency_percentile (&t->by_transport[i], 0.5),
             latency_percentile (&t->by_transport[i], 0.99), latency_percentile (&t->by_transport[i], 0.999));
  g_print ("%-12s %6u %13s %12" G_GUINT64_FORMAT " %10.0f   (%" G_GUINT64_FORMAT " lost or wrong)\n\n", "all",
           result->n_peers, "", t->calls, t->calls / seconds, t->calls - t->replies);
  g_print ("%-12s %" G_GUINT64_FORMAT " EchoBlob, %" G_GUINT64_FORMAT " Echo of 1 MiB+\n", "blobs",
           t->blob_calls, t->big_echoes);
  g_print ("%-12s %" G_GUINT64_FORMAT " started, %" G_GUINT64_FORMAT " finished, %" G_GUINT64_FORMAT
           " of them failed as asked\n", "jobs", t->jobs_started, t->jobs_finished, t->jobs_failed);
  g_print ("%-12s %" G_GUINT64_FORMAT " calls, %" G_GUINT64_FORMAT " replies, %" G_GUINT64_FORMAT " signals, %"
           G_GUINT64_FORMAT " disconnects (%" G_GUINT64_FORMAT " calls lost with them, %" G_GUINT64_FORMAT
           " in flight at the end)\n", "slow reader",
           slow->calls, slow->replies, slow->signals, slow->disconnects, slow->lost, slow->unanswered);
  g_print ("%-12s %" G_GINT64_FORMAT " connections\n", "hostile", g_atomic_pointer_get (&hostile_actions));
}

static void
test_load (gconstpointer data)
{
  const LoadConfig *config = data;
  /* Peers 0-4: a lane and plain D-Bus, both blob thresholds. */
  const LoadConfig warm_up = { 5, 1, 0, FALSE, TRUE };
  g_autoptr(GError) error = NULL;
  PeerTestServer *ts = peer_test_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, &error);
  RunResult result = { NULL };
  g_autofree Totals *t = g_new0 (Totals, 1);
  Resources idle;               /* before any connection */
  Figures f;

  g_assert_no_error (error);
  peer_test_server_invoke (ts, set_limits, ts->server);
  idle = measure_resources ();

  /* Warm-up: GLib's, GDBus's and libpeer's one-time allocations and
   * threads (the GDBus worker, GTask's pool, the lane code's types), and
   * each kind of hostile connection once. */
  run_peers (&warm_up, ts, &result);
  run_result_clear (&result);
  for (guint i = 0; i < N_HOSTILE_KINDS; i++)
    hostile_once (ts->address + strlen ("unix:path="), i);
  wait_until_settled (ts, &idle, NULL);
  malloc_trim (0);
  f.start = measure_resources ();
  g_atomic_pointer_set (&rss_peak, f.start.rss_kib * 1024);
  g_atomic_pointer_set (&hostile_actions, 0);

  run_peers (config, ts, &result);
  sample_memory ();
  f.peak_kib = (gsize) g_atomic_pointer_get (&rss_peak) / 1024;

  for (guint i = 0; i < result.n_peers; i++)
    {
      const Peer *peer = &result.peers[i];

      g_assert_cmpuint (peer->stats.replies, ==, peer->stats.calls);
      g_assert_cmpuint (peer->jobs_finished, ==, peer->jobs_started);
      if (config->rounds > 0)
        g_assert_cmpuint (peer->rounds, ==, config->rounds);
      stats_add (&t->by_transport[peer->transport], &peer->stats);
      if (t->peers_on[peer->transport]++ == 0)
        t->rounds_min[peer->transport] = peer->rounds;
      t->rounds_min[peer->transport] = MIN (t->rounds_min[peer->transport], peer->rounds);
      t->rounds_max[peer->transport] = MAX (t->rounds_max[peer->transport], peer->rounds);
      t->calls += peer->stats.calls;
      t->replies += peer->stats.replies;
      t->blob_calls += peer->blob_calls;
      t->big_echoes += peer->big_echoes;
      t->jobs_started += peer->jobs_started;
      t->jobs_finished += peer->jobs_finished;
      t->jobs_failed += peer->jobs_failed;
    }

  f.settle_us = wait_until_settled (ts, &idle, &f.start);
  f.end = measure_resources ();
  malloc_trim (0);
  f.end_trimmed_kib = resident_bytes () / 1024;
  report (config, &result, t, &f);

  g_assert_cmpuint (t->replies, ==, t->calls);
  for (guint i = 0; i < N_TRANSPORTS; i++)
    g_assert_cmpuint (t->by_transport[i].calls, >, 0);
  g_assert_cmpuint (t->blob_calls, >, 0);
  g_assert_cmpuint (t->big_echoes, >, 0);
  g_assert_cmpuint (t->jobs_failed, >, 0);
  g_assert_cmpuint (t->jobs_finished, >, t->jobs_failed);
  /* The slow reader was served, however often it was closed. */
  g_assert_cmpuint (result.slow.replies, >, 0);
  g_assert_cmpuint (result.slow.replies + result.slow.lost + result.slow.unanswered, ==, result.slow.calls);

  /* Back where it started. */
  g_assert_cmpuint (peer_server_get_n_peers (ts->server), ==, 0);
  g_assert_cmpuint (f.end.fds, ==, f.start.fds);
  g_assert_cmpuint (f.end.peer_threads, ==, 0);
  g_assert_cmpuint (f.end.threads - f.end.pool_threads, <=, f.start.threads - f.start.pool_threads);
  g_assert_cmpuint (f.end.pool_threads, <=, POOL_THREAD_SLACK);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  /* Under a sanitizer or valgrind, freed memory sits in a quarantine or
   * the tool's own heap: only the figures are printed. */
  if (g_strcmp0 (g_getenv ("PEER_UNDER_VALGRIND"), "1") != 0)
    {
      /* Server and 64 clients in one process: their stacks, their buffers,
       * GDBus's per-connection state, the hostile peers' queues (2 MiB each
       * at most), the blobs in flight. Measured at 65-80 MiB over the start
       * in the suite, 100 MiB in soaks of 30-120 s. */
      const gsize peak_bound_kib = 320 * 1024;
      /* What the process holds once every peer has gone, over what it held
       * after the warm-up, once malloc has given its free pages back
       * (malloc_trim): what is left in the arenas of 64 threads between
       * live chunks, and GSlice's magazines (8 MiB of it: G_SLICE=
       * always-malloc takes them away). Measured at 19-31 MiB, the same
       * in the suite (13 s) and in soaks of 30-120 s: it does not grow
       * with time. Before the trim, free memory adds 14-46 MiB more. */
      const gsize growth_bound_kib = 48 * 1024;

      g_assert_cmpuint (f.peak_kib, <, f.start.rss_kib + peak_bound_kib);
      g_assert_cmpuint (f.end_trimmed_kib, <, f.start.rss_kib + growth_bound_kib);
    }
#endif
  run_result_clear (&result);
  peer_test_server_free (ts);
}

int
main (int   argc,
      char *argv[])
{
  static LoadConfig config = { 64, 40, 0, FALSE, FALSE };
  const char *seconds = g_getenv ("PEER_LOAD_SECONDS");

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
      if (seconds != NULL)
        {
          guint64 n;

          if (!g_ascii_string_to_unsigned (seconds, 10, 1, 24 * 3600, &n, NULL))
            g_error ("PEER_LOAD_SECONDS must be a number of seconds, not '%s'", seconds);
          config.rounds = 0;
          config.seconds = (guint) n;
        }
    }
  g_test_add_data_func ("/peer/load/soak", &config, test_load);
  return g_test_run ();
}
