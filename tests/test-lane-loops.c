/* test-lane-loops.c: the server's lanes served by a fixed set of loop
 * threads: as many as CPUs however many lanes, none once the last lane is
 * gone, whichever loop is free serving whichever lane is ready, by turns
 * of a few frames (a lane with much to say does not hold another back),
 * the replies of a turn written together in one batch to a client that
 * offered to read batches (and never to one that did not), and a server
 * whose lanes made large calls holding little more memory than one whose
 * lanes made none. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "peer-client-private.h"
#include "peer-lane-private.h"
#include "peer-test-util.h"

#define TEST_PATH "/org/libpeer/LoopsTest"
#define TEST_IFACE "org.libpeer.LoopsTest1"

static const char test_xml[] =
  "<node><interface name='" TEST_IFACE "'>"
  " <method name='Block'/>"
  " <method name='Record'><arg name='who' type='u' direction='in'/></method>"
  "</interface></node>";

typedef struct {
  PeerTestServer *ts;
  PeerInterface *iface;
  GAsyncQueue *blocking;        /* a token as Block starts */
  GAsyncQueue *release;         /* a token lets Block return */
  GMutex lock;
  GArray *order;                /* guint32: who Record heard, in order */
} Fixture;

/* Thread-safe: holds its loop until the test lets go. */
static void
handle_block (PeerCall *call,
              gpointer  user_data)
{
  Fixture *f = user_data;

  g_async_queue_push (f->blocking, GUINT_TO_POINTER (1));
  g_assert_nonnull (g_async_queue_timeout_pop (f->release, 10 * G_USEC_PER_SEC));
  peer_call_return_value (call, NULL);
}

static void
handle_record (PeerCall *call,
               gpointer  user_data)
{
  Fixture *f = user_data;
  guint32 who;

  g_variant_get (peer_call_get_parameters (call), "(u)", &who);
  g_mutex_lock (&f->lock);
  g_array_append_val (f->order, who);
  g_mutex_unlock (&f->lock);
  peer_call_return_value (call, NULL);
}

/* TEST_IFACE's handlers, called with the Fixture. */
static const PeerMethodEntry test_entries[] = {
  { "Block", handle_block, PEER_METHOD_FLAGS_THREAD_SAFE },
  { "Record", handle_record, PEER_METHOD_FLAGS_THREAD_SAFE },
};

/* Threads of @pid (0: this process) named @name; all of them if NULL. */
static guint
count_threads (GPid        pid,
               const char *name)
{
  g_autofree char *dir_path = pid == 0 ? g_strdup ("/proc/self/task") : g_strdup_printf ("/proc/%d/task", pid);
  g_autoptr(GDir) dir = g_dir_open (dir_path, 0, NULL);
  const char *tid;
  guint n = 0;

  g_assert_nonnull (dir);
  while ((tid = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir_path, tid, "comm", NULL);
      g_autofree char *comm = NULL;

      if (!g_file_get_contents (path, &comm, NULL, NULL))
        continue;                       /* gone meanwhile */
      g_strstrip (comm);
      if (name == NULL || g_str_equal (comm, name))
        n++;
    }
  return n;
}

static guint
count_loops (void)
{
  return count_threads (0, "peer-lane-loop");
}

/* A new thread names itself as it starts, a moment after it is made:
 * @n loops are expected by then, and anything else is a failure. */
static guint
count_loops_started (guint n)
{
  guint count = count_loops ();

  for (guint i = 0; count != n && i < 100000; i++)
    {
      g_thread_yield ();
      count = count_loops ();
    }
  return count;
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_mutex_init (&f->lock);
  f->order = g_array_new (FALSE, FALSE, sizeof (guint32));
  f->blocking = g_async_queue_new ();
  f->release = g_async_queue_new ();
  f->ts = peer_test_server_start ();
  f->iface = peer_test_export (f->ts, TEST_PATH, test_xml, TEST_IFACE, test_entries, G_N_ELEMENTS (test_entries), f);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  peer_test_finish (NULL, f->ts, f->iface);
  g_async_queue_unref (f->blocking);
  g_async_queue_unref (f->release);
  g_array_unref (f->order);
  g_mutex_clear (&f->lock);
}

static gboolean
nothing (gpointer data)
{
  return G_SOURCE_REMOVE;
}

/* Until the loops are gone: each lane, once its loop has seen it end, is
 * handed back in the server's context, and the last one ends the loops
 * there. Each round waits for the server's context to run. */
static void
wait_no_loops (Fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (count_loops () != 0)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      /* What holds a client for a moment (the idle that starts its
       * message processing) lets go. */
      while (g_main_context_iteration (NULL, FALSE))
        ;
      peer_test_server_invoke (f->ts, nothing, NULL);
      g_thread_yield ();
    }
}

/* As many loops as CPUs with one lane and with many; none once the lanes
 * are gone. */
static void
test_thread_count (Fixture      *f,
                   gconstpointer data)
{
  guint n_cpus = _peer_lane_n_cpus ();
  g_autoptr(GPtrArray) clients = g_ptr_array_new_with_free_func (g_object_unref);

  wait_no_loops (f);
  g_ptr_array_add (clients, peer_test_connect (f->ts, TRUE));
  g_assert_cmpuint (count_loops_started (n_cpus), ==, n_cpus);
  for (guint i = 0; i < 4 * n_cpus + 3; i++)
    g_ptr_array_add (clients, peer_test_connect (f->ts, TRUE));
  g_assert_cmpuint (count_loops (), ==, n_cpus);
  g_ptr_array_set_size (clients, 0);
  wait_no_loops (f);
}

static void
on_recorded (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  guint *n_done = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  g_assert_no_error (error);
  (*n_done)++;
}

typedef struct {
  PeerClient *client;
  GError *error;
} BlockCall;

static gpointer
block_in_thread (gpointer data)
{
  BlockCall *b = data;
  g_autoptr(GVariant) reply = peer_client_call_sync (b->client, TEST_PATH, TEST_IFACE, "Block", NULL, NULL, -1,
                                                     NULL, NULL, NULL, &b->error);

  return NULL;
}

#define BURST (5 * PEER_LANE_TURN_FRAMES)

/* Every loop held by a Block call, two more lanes with a burst of calls
 * waiting: once one loop is free (the others still held), it serves the
 * two by turns of at most PEER_LANE_TURN_FRAMES frames each, not one
 * lane's burst and then the other's. A lane's own calls keep their order
 * (the twin: nothing is reordered within a lane). */
static void
test_round_robin (Fixture      *f,
                  gconstpointer data)
{
  guint n_cpus = _peer_lane_n_cpus ();
  g_autoptr(GPtrArray) clients = g_ptr_array_new_with_free_func (g_object_unref);
  g_autofree BlockCall *blocks = g_new0 (BlockCall, n_cpus);
  g_autofree GThread **threads = g_new0 (GThread *, n_cpus);
  PeerClient *first, *second;
  guint n_done = 0, longest_run = 0, run = 0;
  guint next[2] = { 0, 0 };

  wait_no_loops (f);
  for (guint i = 0; i < n_cpus + 2; i++)
    g_ptr_array_add (clients, peer_test_connect (f->ts, TRUE));
  /* Each loop is in a turn of its own lane, held there. */
  for (guint i = 0; i < n_cpus; i++)
    {
      blocks[i].client = g_ptr_array_index (clients, i);
      threads[i] = g_thread_new ("block", block_in_thread, &blocks[i]);
      g_assert_nonnull (g_async_queue_timeout_pop (f->blocking, 10 * G_USEC_PER_SEC));
    }
  first = g_ptr_array_index (clients, n_cpus);
  second = g_ptr_array_index (clients, n_cpus + 1);
  for (guint i = 0; i < BURST; i++)
    {
      peer_client_call (first, TEST_PATH, TEST_IFACE, "Record", g_variant_new ("(u)", i), NULL, -1, NULL,
                        NULL, on_recorded, &n_done);
      peer_client_call (second, TEST_PATH, TEST_IFACE, "Record", g_variant_new ("(u)", 1000 + i), NULL, -1,
                        NULL, NULL, on_recorded, &n_done);
    }
  /* Both lanes' calls are all written (their clients' sockets hold
   * them) but none is heard while the loops are held. */
  g_mutex_lock (&f->lock);
  g_assert_cmpuint (f->order->len, ==, 0);
  g_mutex_unlock (&f->lock);

  /* One loop free: it alone serves both. */
  g_async_queue_push (f->release, GUINT_TO_POINTER (1));
  PEER_TEST_WAIT_UNTIL (n_done == 2 * BURST);
  for (guint i = 1; i < n_cpus; i++)
    g_async_queue_push (f->release, GUINT_TO_POINTER (1));
  for (guint i = 0; i < n_cpus; i++)
    {
      g_thread_join (threads[i]);
      g_assert_no_error (blocks[i].error);
    }

  g_assert_cmpuint (f->order->len, ==, 2 * BURST);
  for (guint i = 0; i < f->order->len; i++)
    {
      guint32 who = g_array_index (f->order, guint32, i);
      guint lane = who >= 1000;

      /* Within a lane, in the order sent. */
      g_assert_cmpuint (who % 1000, ==, next[lane]);
      next[lane]++;
      if (i > 0 && (g_array_index (f->order, guint32, i - 1) >= 1000) == lane)
        run++;
      else
        run = 1;
      longest_run = MAX (longest_run, run);
    }
  /* A turn each in turn; the loop may take them either way round, so two
   * turns of one lane may meet at the edge. */
  g_test_message ("longest run of one lane: %u of %u", longest_run, 2 * BURST);
  g_assert_cmpuint (longest_run, <=, 2 * PEER_LANE_TURN_FRAMES);
  g_assert_cmpuint (longest_run, <, BURST);
}

/* --- batches ----------------------------------------------------------------------- */

/* A lane opened by hand: Open's fd, and the table id of Record. */
static int
raw_lane_open (PeerClient *client,
               guint32    *out_record)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariantIter) iter = NULL;
  g_autoptr(GVariant) limits = NULL;
  gboolean batches = FALSE;
  const char *path, *iface, *member, *in_sig, *out_sig;
  guint32 id, flags;
  gint32 handle;
  int fd;

  reply = peer_client_call_sync (client, PEER_LANE_PATH, PEER_LANE_INTERFACE, "Open", NULL,
                                 G_VARIANT_TYPE ("(ha(usssssu)a{sv})"), -1, NULL, &fd_list, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(ha(usssssu)@a{sv})", &handle, &iter, &limits);
  g_assert_true (g_variant_lookup (limits, "batched-frames", "b", &batches));
  g_assert_true (batches);
  *out_record = G_MAXUINT32;
  while (g_variant_iter_next (iter, "(u&s&s&s&s&su)", &id, &path, &iface, &member, &in_sig, &out_sig, &flags))
    if (g_str_equal (path, TEST_PATH) && g_str_equal (member, "Record"))
      *out_record = id;
  g_assert_cmpuint (*out_record, !=, G_MAXUINT32);
  fd = g_unix_fd_list_get (fd_list, handle, &error);
  g_assert_no_error (error);
  return fd;
}

/* Reads a datagram of @fd; TRUE when it is a batch, its frames' kinds
 * and targets in @kinds and @targets. */
static gboolean
read_replies (int     fd,
              guint8 *buffer,
              GArray *kinds,
              GArray *targets)
{
  g_autoptr(GError) error = NULL;
  PeerLaneFrame frame, one;
  gsize offset = 0;
  gboolean batched;

  g_assert_true (_peer_lane_read_frame (fd, buffer, 0, FALSE, &frame, &error));
  g_assert_no_error (error);
  batched = frame.header.kind == PEER_LANE_KIND_BATCH;
  if (!batched)
    {
      guint kind = frame.header.kind;

      g_array_append_val (kinds, kind);
      g_array_append_val (targets, frame.header.target);
    }
  while (batched && _peer_lane_batch_next (&frame, &offset, &one, &error))
    {
      guint kind = one.header.kind;

      g_array_append_val (kinds, kind);
      g_array_append_val (targets, one.header.target);
      _peer_lane_frame_clear (&one);
    }
  g_assert_no_error (error);
  _peer_lane_frame_clear (&frame);
  return batched;
}

#define N_BATCHED 3

/* A client that did not offer batches gets a datagram a reply, however
 * many replies one turn of the server's wrote; once it sends a batch (of
 * three calls, read and served in one turn), the turn's replies come in
 * one batch, in the order of the calls. */
static void
test_batches_when_offered (Fixture      *f,
                           gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = peer_test_connect (f->ts, FALSE);
  g_autofree guint8 *buffer = g_malloc (sizeof (PeerLaneHeader) + PEER_LANE_MAX_INLINE);
  g_autoptr(GArray) kinds = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr(GArray) targets = g_array_new (FALSE, FALSE, sizeof (guint32));
  guint32 record;
  int fd;

  fd = raw_lane_open (client, &record);

  /* Three calls, three datagrams, written at once: three replies, none
   * in a batch. */
  for (guint i = 0; i < N_BATCHED; i++)
    {
      g_autoptr(GVariant) args = g_variant_ref_sink (g_variant_new ("(u)", i));

      g_assert_true (_peer_lane_write_frame (fd, PEER_LANE_KIND_CALL, i + 1, record, args, NULL, FALSE, &error));
      g_assert_no_error (error);
    }
  while (kinds->len < N_BATCHED)
    g_assert_false (read_replies (fd, buffer, kinds, targets));

  /* The same three in one batch: their replies in one. */
  {
    PeerLaneOutFrame frames[N_BATCHED];
    PeerLaneWriteOptions options = { PEER_LANE_WAIT_BLOCK, .batch = TRUE };

    for (guint i = 0; i < N_BATCHED; i++)
      frames[i] = (PeerLaneOutFrame) {
        PEER_LANE_KIND_CALL, 10 + i, record, g_variant_ref_sink (g_variant_new ("(u)", 10 + i)), NULL,
      };
    g_assert_cmpuint (_peer_lane_write_frames (fd, frames, N_BATCHED, &options, &error), ==, N_BATCHED);
    g_assert_no_error (error);
    for (guint i = 0; i < N_BATCHED; i++)
      g_variant_unref (frames[i].body);
  }
  g_array_set_size (kinds, 0);
  g_array_set_size (targets, 0);
  g_assert_true (read_replies (fd, buffer, kinds, targets));
  g_assert_cmpuint (kinds->len, ==, N_BATCHED);
  for (guint i = 0; i < N_BATCHED; i++)
    {
      g_assert_cmpuint (g_array_index (kinds, guint, i), ==, PEER_LANE_KIND_REPLY);
      g_assert_cmpuint (g_array_index (targets, guint32, i), ==, 10 + i);
    }
  g_mutex_lock (&f->lock);
  g_assert_cmpuint (f->order->len, ==, 2 * N_BATCHED);
  for (guint i = 0; i < N_BATCHED; i++)
    g_assert_cmpuint (g_array_index (f->order, guint32, N_BATCHED + i), ==, 10 + i);
  g_mutex_unlock (&f->lock);
  close (fd);
}

/* --- a server process with many lanes -------------------------------------------- */

static gsize
resident_kib (GPid pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/statm", pid);
  g_autofree char *statm = NULL;
  g_auto(GStrv) fields = NULL;

  g_assert_true (g_file_get_contents (path, &statm, NULL, NULL));
  fields = g_strsplit (statm, " ", 0);
  return (gsize) g_ascii_strtoull (fields[1], NULL, 10) * (gsize) sysconf (_SC_PAGESIZE) / 1024;
}

#define N_LANES 64

/* ThreadSanitizer runs a thread of its own in every process. */
#if defined(__SANITIZE_THREAD__)
# define SANITIZER_THREADS 1
#else
# define SANITIZER_THREADS 0
#endif

static void
echo_mib (PeerClient *client)
{
  gsize size = 1024 * 1024;
  g_autofree guint8 *data = g_malloc0 (size);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  reply = peer_client_call_sync (client, "/org/libpeer/Bench", "org.libpeer.Bench1", "Echo",
                                 g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data,
                                                                                    size, 1)),
                                 G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
}

/* peer-server with 64 lanes: its threads do not grow with them (at most
 * one per CPU and the few GLib and GDBus keep), and after a 1 MiB call on
 * every lane it holds at most twice what it held with the lanes idle (the
 * twin: before any call). */
static void
test_many_lanes_process (void)
{
  g_autoptr(GError) error = NULL;
  PeerTestProcess *server = peer_test_spawn_server (NULL, &error);
  g_autoptr(GPtrArray) clients = g_ptr_array_new_with_free_func (g_object_unref);
  gsize idle_kib, after_kib;
  guint threads, loop_threads;

  g_assert_no_error (error);
  for (guint i = 0; i < N_LANES; i++)
    {
      g_autoptr(PeerClient) client = peer_client_new_sync (server->first_line, 5000, NULL, &error);

      g_assert_no_error (error);
      g_assert_true (peer_client_open_lane_sync (client, NULL, &error));
      g_assert_no_error (error);
      g_ptr_array_add (clients, g_steal_pointer (&client));
    }
  /* Each lane has answered a call: all are served. */
  for (guint i = 0; i < N_LANES; i++)
    {
      g_autoptr(GVariant) reply = peer_client_call_sync (g_ptr_array_index (clients, i), "/org/libpeer/Bench",
                                                         "org.libpeer.Bench1", "Ping", NULL, NULL, -1, NULL,
                                                         NULL, NULL, &error);
      g_assert_no_error (error);
    }
  threads = count_threads (server->pid, NULL);
  loop_threads = count_threads (server->pid, "peer-lane-loop");
  idle_kib = resident_kib (server->pid);
  for (guint i = 0; i < N_LANES; i++)
    echo_mib (g_ptr_array_index (clients, i));
  after_kib = resident_kib (server->pid);

  /* Measured first, checked once the server is stopped: a failed check
   * leaves no process behind. */
  g_ptr_array_set_size (clients, 0);
  peer_test_process_stop (server, SIGTERM);

  g_test_message ("peer-server: %u threads with %u lanes, %u CPUs", threads, N_LANES, _peer_lane_n_cpus ());
  g_test_message ("peer-server RSS: %" G_GSIZE_FORMAT " KiB idle, %" G_GSIZE_FORMAT
                  " KiB after a 1 MiB call on each of %u lanes", idle_kib, after_kib, N_LANES);
  g_assert_cmpuint (loop_threads, ==, _peer_lane_n_cpus ());
  g_assert_cmpuint (threads, <=, _peer_lane_n_cpus () + 4 + SANITIZER_THREADS);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  /* Under a sanitizer, freed memory sits in its quarantine or shadow: only
   * the figures are printed. */
  g_assert_cmpuint (after_kib, <=, 2 * idle_kib);
#endif
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/lane/loops/thread-count", test_thread_count);
  ADD ("/peer/lane/loops/round-robin", test_round_robin);
  ADD ("/peer/lane/loops/batches-when-offered", test_batches_when_offered);
#undef ADD
  g_test_add_func ("/peer/lane/loops/many-lanes-process", test_many_lanes_process);
  return g_test_run ();
}
