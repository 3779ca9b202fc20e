/* test-lane.c: the lane: its method table, calls and errors through it,
 * fds and large bodies (in chunks or as blobs), a peer vanishing mid-call,
 * the lane closing with the connection, bad frames, and its limits. */
#include "config.h"

#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer-client-private.h"
#include "peer-lane-private.h"
#include "peer-test-util.h"

#define TEST_PATH "/org/libpeer/LaneTest"
#define TEST_IFACE "org.libpeer.LaneTest1"

static const char test_xml[] =
  "<node><interface name='" TEST_IFACE "'>"
  " <method name='Hang'/>"
  " <method name='Where'><arg name='main' type='b' direction='out'/></method>"
  " <method name='NoHandler'/>"
  " <method name='EchoSafe'>"
  "  <arg name='data' type='ay' direction='in'/>"
  "  <arg name='data' type='ay' direction='out'/>"
  " </method>"
  " <method name='EchoMain'>"
  "  <arg name='data' type='ay' direction='in'/>"
  "  <arg name='data' type='ay' direction='out'/>"
  " </method>"
  " <method name='HangSafe'>"
  "  <arg name='size' type='u' direction='in'/>"
  "  <arg name='data' type='ay' direction='out'/>"
  " </method>"
  "</interface></node>";

/* The payload HangSafe replies with. */
#define STALE_SEED 77

typedef struct {
  PeerTestServer *ts;
  PeerInterface *iface;
  GAsyncQueue *held;            /* PeerCall* from Hang */
  GAsyncQueue *hanging;         /* a token per HangSafe call, as its handler starts */
  GAsyncQueue *release;         /* a token lets one HangSafe handler reply */
  PeerClient *client;
  gsize queue_limit;
} Fixture;

/* Patterned payloads: each byte depends on its offset (not periodically
 * within a chunk's size) and on a seed, so that bytes out of place, from
 * another call or from a stale buffer show. */
static inline guint8
pattern_byte (gsize i,
              guint seed)
{
  return (guint8) (i * 7 + (i >> 8) * 13 + (i >> 16) * 29 + seed * 101);
}

static guint8 *
pattern_new (gsize size,
             guint seed)
{
  guint8 *data = g_malloc (MAX (size, 1));

  for (gsize i = 0; i < size; i++)
    data[i] = pattern_byte (i, seed);
  return data;
}

static GVariant *
pattern_args (gsize size,
              guint seed)
{
  g_autofree guint8 *data = pattern_new (size, seed);

  return g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, size, 1));
}

/* @reply is (ay) with @size bytes of @seed's pattern. */
static void
assert_pattern (GVariant *reply,
                gsize     size,
                guint     seed)
{
  g_autoptr(GVariant) bytes = g_variant_get_child_value (reply, 0);
  gsize n, first_bad;
  const guint8 *back = g_variant_get_fixed_array (bytes, &n, 1);

  g_assert_cmpuint (n, ==, size);
  for (first_bad = 0; first_bad < n; first_bad++)
    if (back[first_bad] != pattern_byte (first_bad, seed))
      break;
  g_assert_cmpuint (first_bad, ==, size);
}

static void
handle_hang (PeerCall *call,
             gpointer  user_data)
{
  Fixture *f = user_data;

  g_async_queue_push (f->held, peer_call_ref (call));
}

static void
handle_where (PeerCall *call,
              gpointer  user_data)
{
  /* Not thread-safe, so it must run in the server's main context. */
  peer_call_return_value (call, g_variant_new ("(b)", g_main_context_is_owner (g_main_context_get_thread_default ())));
}

/* EchoSafe and EchoMain: the bytes back, copied (the reply is not the
 * buffer the call arrived in). */
static void
handle_echo_copy (PeerCall *call,
                  gpointer  user_data)
{
  g_autoptr(GVariant) bytes = g_variant_get_child_value (peer_call_get_parameters (call), 0);
  gsize n;
  const guint8 *data = g_variant_get_fixed_array (bytes, &n, 1);

  peer_call_return_value (call, g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, n, 1)));
}

/* Thread-safe, so on the lane thread: holds it until the test releases
 * the call, then replies there (large replies go in chunks from there). */
static void
handle_hang_safe (PeerCall *call,
                  gpointer  user_data)
{
  Fixture *f = user_data;
  guint32 size;
  gpointer token;

  g_variant_get (peer_call_get_parameters (call), "(u)", &size);
  g_async_queue_push (f->hanging, GUINT_TO_POINTER (1));
  token = g_async_queue_timeout_pop (f->release, 10 * G_USEC_PER_SEC);
  g_assert_nonnull (token);
  peer_call_return_value (call, pattern_args (size, STALE_SEED));
}

/* TEST_IFACE's handlers, called with the Fixture. */
static const PeerMethodEntry test_entries[] = {
  { "Hang", handle_hang, PEER_METHOD_FLAGS_NONE },
  { "Where", handle_where, PEER_METHOD_FLAGS_NONE },
  { "EchoSafe", handle_echo_copy, PEER_METHOD_FLAGS_THREAD_SAFE },
  { "EchoMain", handle_echo_copy, PEER_METHOD_FLAGS_NONE },
  { "HangSafe", handle_hang_safe, PEER_METHOD_FLAGS_THREAD_SAFE },
};

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  f->held = g_async_queue_new_full ((GDestroyNotify) peer_call_unref);
  f->hanging = g_async_queue_new ();
  f->release = g_async_queue_new ();
  f->ts = peer_test_server_start ();
  f->iface = peer_test_export (f->ts, TEST_PATH, test_xml, TEST_IFACE, test_entries, G_N_ELEMENTS (test_entries), f);
  f->client = peer_test_connect (f->ts, TRUE);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_clear_object (&f->client);
  g_async_queue_unref (f->held);
  peer_test_finish (NULL, f->ts, f->iface);
  g_async_queue_unref (f->hanging);
  g_async_queue_unref (f->release);
}

static GVariant *
echo (PeerClient *client,
      gsize       size,
      GError    **error)
{
  g_autofree guint8 *data = g_malloc (size);
  g_autoptr(GVariant) reply = NULL;

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (i * 7 + 3);
  reply = peer_client_call_sync (client, "/org/libpeer/Bench", "org.libpeer.Bench1", "Echo",
                                 g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, size, 1)),
                                 G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, NULL, error);
  if (reply != NULL)
    {
      g_autoptr(GVariant) bytes = g_variant_get_child_value (reply, 0);
      gsize n;
      const guint8 *back = g_variant_get_fixed_array (bytes, &n, 1);

      g_assert_cmpuint (n, ==, size);
      g_assert_true (size == 0 || memcmp (back, data, size) == 0);
    }
  return g_steal_pointer (&reply);
}

/* The server's side of earlier calls is done (their fds closed) once a
 * call answered in the main context comes back: the lane thread takes
 * frames in order, and the main context runs calls in order, each freed
 * before the next is dispatched. The test's process holds both sides, so
 * fd counts need this. */
static void
sync_with_server (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "Where", NULL,
                                                     G_VARIANT_TYPE ("(b)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
test_table (Fixture      *f,
            gconstpointer data)
{
  PeerLaneClient *lane = _peer_client_get_lane (f->client);
  guint32 id;

  g_assert_nonnull (lane);
  g_assert_true (_peer_lane_client_has_method (lane, "/org/libpeer/Bench", "org.libpeer.Bench1", "Echo", &id));
  g_assert_true (_peer_lane_client_has_method (lane, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick", &id));
  g_assert_true (_peer_lane_client_has_method (lane, TEST_PATH, TEST_IFACE, "Hang", &id));
  /* Negative twins: no handler, the bus's and the lane's own methods, a
   * method at another path. */
  g_assert_false (_peer_lane_client_has_method (lane, TEST_PATH, TEST_IFACE, "NoHandler", &id));
  g_assert_false (_peer_lane_client_has_method (lane, "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", &id));
  g_assert_false (_peer_lane_client_has_method (lane, PEER_LANE_PATH, PEER_LANE_INTERFACE, "Open", &id));
  g_assert_false (_peer_lane_client_has_method (lane, "/elsewhere", "org.libpeer.Bench1", "Echo", &id));
}

static void
test_calls (Fixture      *f,
            gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) small = echo (f->client, 64, &error);
  g_autoptr(GVariant) empty = NULL;
  g_autoptr(GVariant) quick = NULL;
  g_autoptr(GVariant) where = NULL;
  g_autoptr(GVariant) props = NULL;
  gboolean in_main;

  g_assert_no_error (error);
  empty = echo (f->client, 0, &error);
  g_assert_no_error (error);
  quick = peer_client_call_sync (f->client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                 g_variant_new ("(i)", 16), G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  where = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "Where", NULL, G_VARIANT_TYPE ("(b)"),
                                 -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (where, "(b)", &in_main);
  g_assert_true (in_main);
  /* What is not in the table goes over GDBus as before. */
  props = peer_client_call_sync (f->client, "/org/libpeer/Helper", "org.freedesktop.DBus.Properties", "GetAll",
                                 g_variant_new ("(s)", "org.libpeer.Helper1"), NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
test_errors (Fixture      *f,
             gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  reply = peer_client_call_sync (f->client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                 g_variant_new ("(i)", 0), NULL, -1, NULL, NULL, NULL, &error);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_assert_cmpstr (error->message, ==, "bits must be between 1 and 1024, not 0");
  g_clear_error (&error);

  reply = peer_client_call_sync (f->client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                 g_variant_new ("(s)", "16"), NULL, -1, NULL, NULL, NULL, &error);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  reply = peer_client_call_sync (f->client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                 g_variant_new ("(i)", 8), G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, NULL, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* The lane is still good. */
  reply = peer_client_call_sync (f->client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                 g_variant_new ("(i)", 8), G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
}

static void
test_large_bodies (Fixture      *f,
                   gconstpointer data)
{
  const gsize sizes[] = { PEER_LANE_MAX_INLINE - 8, PEER_LANE_MAX_INLINE + 1, 1024 * 1024, 16 * 1024 * 1024 };
  g_autoptr(GVariant) warm_up = echo (f->client, 1, NULL);
  guint fds_before;

  sync_with_server (f);
  /* Opening the lane went through a GDBus synchronous call, whose private
   * main context lets its eventfd go a moment after returning: an async
   * GDBus round trip first, as peer_test_assert_no_fd_leak() does. */
  peer_test_ping_async (f->client);
  fds_before = peer_test_count_open_fds ();

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = echo (f->client, sizes[i], &error);
      g_assert_no_error (error);
    }
  sync_with_server (f);
  peer_test_assert_no_fd_leak (f->client, fds_before);
}

static void
test_fds (Fixture      *f,
          gconstpointer data)
{
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) handles = NULL;
  int pipe_fds[2];
  struct stat a, b;
  guint fds_before;
  gint32 h;
  int fd;

  g_assert_cmpint (pipe (pipe_fds), ==, 0);
  g_clear_pointer (&reply, g_variant_unref);
  reply = echo (f->client, 1, NULL);        /* see test_large_bodies() */
  g_clear_pointer (&reply, g_variant_unref);
  sync_with_server (f);
  peer_test_ping_async (f->client);
  fds_before = peer_test_count_open_fds ();
  g_unix_fd_list_append (fds, pipe_fds[0], NULL);
  reply = peer_client_call_sync (f->client, "/org/libpeer/Bench", "org.libpeer.Bench1", "EchoFds",
                                 g_variant_new_parsed ("(@ah [0],)"), G_VARIANT_TYPE ("(ah)"), -1,
                                 fds, &out, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (out);
  handles = g_variant_get_child_value (reply, 0);
  g_assert_cmpuint (g_variant_n_children (handles), ==, 1);
  g_variant_get_child (handles, 0, "h", &h);
  fd = g_unix_fd_list_get (out, h, &error);
  g_assert_no_error (error);
  g_assert_cmpint (fstat (fd, &a), ==, 0);
  g_assert_cmpint (fstat (pipe_fds[0], &b), ==, 0);
  g_assert_true (a.st_ino == b.st_ino && a.st_dev == b.st_dev);
  close (fd);
  g_clear_object (&out);
  g_clear_object (&fds);
  sync_with_server (f);
  peer_test_assert_no_fd_leak (f->client, fds_before);
  close (pipe_fds[0]);
  close (pipe_fds[1]);
}

typedef struct {
  Fixture *f;
  GError *error;
  gboolean done;
} HangCall;

static gpointer
hang_in_thread (gpointer user_data)
{
  HangCall *hc = user_data;
  g_autoptr(GVariant) reply = peer_client_call_sync (hc->f->client, TEST_PATH, TEST_IFACE, "Hang", NULL, NULL,
                                                     -1, NULL, NULL, NULL, &hc->error);
  g_assert_null (reply);
  return NULL;
}

static void
test_peer_vanishes_mid_call (Fixture      *f,
                             gconstpointer data)
{
  HangCall hc = { f };
  GThread *thread = g_thread_new ("hang", hang_in_thread, &hc);
  g_autoptr(PeerCall) held = g_async_queue_timeout_pop (f->held, 10 * G_USEC_PER_SEC);

  g_assert_nonnull (held);
  peer_test_server_close_peers (f->ts, 0);
  g_thread_join (thread);
  g_assert_error (hc.error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_clear_error (&hc.error);
  /* A reply to the vanished peer goes nowhere, quietly. */
  peer_call_return_value (held, NULL);
}

static void
test_closed_with_connection (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  peer_test_server_close_peers (f->ts, 0);
  PEER_TEST_WAIT_UNTIL (peer_client_is_closed (f->client));
  reply = echo (f->client, 16, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_true (_peer_lane_client_is_closed (_peer_client_get_lane (f->client)));
}

static void
on_closed (PeerClient   *client,
           const GError *reason,
           gboolean     *closed)
{
  *closed = TRUE;
}

static void
test_bad_frame_closes_peer (Fixture      *f,
                            gconstpointer data)
{
  int fd = _peer_lane_client_get_fd (_peer_client_get_lane (f->client));
  const char garbage[] = "this is not a lane frame";
  gboolean closed = FALSE;
  gssize n;

  g_signal_connect (f->client, "closed", G_CALLBACK (on_closed), &closed);
  n = send (fd, garbage, sizeof garbage, MSG_NOSIGNAL);
  g_assert_cmpint (n, ==, sizeof garbage);
  /* The server closes the whole connection, not just the lane. */
  PEER_TEST_WAIT_UNTIL (closed);
  g_assert_true (peer_client_is_closed (f->client));
}

static void
test_good_frames_keep_peer (Fixture      *f,
                            gconstpointer data)
{
  /* The positive twin: many well-formed calls, the peer stays. */
  for (guint i = 0; i < 200; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = echo (f->client, i * 13, &error);
      g_assert_no_error (error);
    }
  g_assert_false (peer_client_is_closed (f->client));
  g_assert_cmpuint (peer_server_get_n_peers (f->ts->server), ==, 1);
}

static void
test_lane_limit (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func (g_object_unref);

  /* One is open; up to PEER_LANE_MAX_PER_CONNECTION may be. Their fds are
   * kept: a lane whose client end is closed ends and stops counting. */
  for (guint i = 1; i < PEER_LANE_MAX_PER_CONNECTION; i++)
    {
      GUnixFDList *fds = NULL;
      g_autoptr(GVariant) reply = peer_client_call_sync (f->client, PEER_LANE_PATH, PEER_LANE_INTERFACE, "Open",
                                                         NULL, NULL, -1, NULL, &fds, NULL, &error);
      g_assert_no_error (error);
      g_ptr_array_add (kept, fds);
    }
  {
    g_autoptr(GVariant) reply = peer_client_call_sync (f->client, PEER_LANE_PATH, PEER_LANE_INTERFACE, "Open",
                                                       NULL, NULL, -1, NULL, NULL, NULL, &error);
    g_assert_null (reply);
    g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  }
}

static gboolean
set_queue_limit (gpointer user_data)
{
  Fixture *f = user_data;

  peer_server_set_max_queued_bytes (f->ts->server, f->queue_limit);
  return G_SOURCE_REMOVE;
}

/* What a lane's sockets can hold counts within the peer's quota (and is
 * sized from it): with a small quota, a peer runs out of room for lanes
 * before it runs out of lanes, and the refusal says why; another peer
 * opens its own. */
static void
test_lane_kernel_buffers_counted (Fixture      *f,
                                  gconstpointer data)
{
  g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(PeerClient) other = NULL;
  gboolean refused = FALSE;

  f->queue_limit = 2 * 1024 * 1024;
  peer_test_server_invoke (f->ts, set_queue_limit, f);
  client = peer_test_connect (f->ts, FALSE);
  for (guint i = 0; i < PEER_LANE_MAX_PER_CONNECTION && !refused; i++)
    {
      GUnixFDList *fds = NULL;
      g_autoptr(GVariant) reply = peer_client_call_sync (client, PEER_LANE_PATH, PEER_LANE_INTERFACE, "Open",
                                                         NULL, NULL, -1, NULL, &fds, NULL, &error);
      if (reply != NULL)
        {
          g_ptr_array_add (kept, fds);
          continue;
        }
      g_test_message ("lane %u: %s", i + 1, error->message);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
      g_assert_nonnull (strstr (error->message, "socket buffers"));
      g_clear_error (&error);
      refused = TRUE;
    }
  g_assert_true (refused);
  g_assert_cmpuint (kept->len, >=, 1);
  g_assert_false (peer_client_is_closed (client));

  /* Twin: another peer's quota is its own. */
  other = peer_test_connect (f->ts, TRUE);

  f->queue_limit = PEER_SERVER_DEFAULT_MAX_QUEUED_BYTES;
  peer_test_server_invoke (f->ts, set_queue_limit, f);
}

static gboolean
nothing_in_server (gpointer data)
{
  return G_SOURCE_REMOVE;
}

static void
test_in_flight_limit (Fixture      *f,
                      gconstpointer data)
{
  PeerLaneClient *lane = _peer_client_get_lane (f->client);
  int fd = _peer_lane_client_get_fd (lane);
  g_autofree guint8 *buffer = g_malloc (sizeof (PeerLaneHeader) + PEER_LANE_MAX_INLINE);
  g_autoptr(GVariant) unit = g_variant_ref_sink (g_variant_new_tuple (NULL, 0));
  guint32 id;
  guint errors = 0;
  const guint extra = 6;

  g_assert_true (_peer_lane_client_has_method (lane, TEST_PATH, TEST_IFACE, "Hang", &id));
  /* The Open call, counted too, is over by the time another call made in
   * the main context is answered; that one is freed once the handler that
   * answered it has returned, before anything the context runs next. */
  sync_with_server (f);
  peer_test_server_invoke (f->ts, nothing_in_server, NULL);
  /* Calls that wait in the main context, more than allowed. */
  for (guint i = 0; i < PEER_LANE_MAX_IN_FLIGHT + extra; i++)
    {
      g_autoptr(GError) error = NULL;
      g_assert_true (_peer_lane_write_frame (fd, PEER_LANE_KIND_CALL, i + 1, id, unit, NULL, FALSE, &error));
    }
  while (errors < extra)
    {
      PeerLaneFrame frame, refusal;
      g_autoptr(GError) error = NULL;
      gsize offset = 0;

      /* The refusals of one turn of the server's come in one batch. */
      g_assert_true (_peer_lane_read_frame (fd, buffer, 16, FALSE, &frame, &error));
      if (frame.header.kind != PEER_LANE_KIND_BATCH)
        {
          refusal = frame;
          frame.body = NULL;
          offset = G_MAXSIZE;
        }
      else if (!_peer_lane_batch_next (&frame, &offset, &refusal, &error))
        g_assert_not_reached ();
      do
        {
          g_assert_no_error (error);
          g_assert_cmpint (refusal.header.kind, ==, PEER_LANE_KIND_ERROR);
          g_assert_cmpuint (refusal.header.target, >, PEER_LANE_MAX_IN_FLIGHT);
          errors++;
          _peer_lane_frame_clear (&refusal);
        }
      while (frame.body != NULL && _peer_lane_batch_next (&frame, &offset, &refusal, &error));
      g_assert_no_error (error);
      _peer_lane_frame_clear (&frame);
    }
  /* Exactly the calls over the limit were refused; the rest arrive. */
  for (guint i = 0; i < PEER_LANE_MAX_IN_FLIGHT; i++)
    {
      g_autoptr(PeerCall) held = g_async_queue_timeout_pop (f->held, 10 * G_USEC_PER_SEC);
      g_assert_nonnull (held);
      peer_call_return_value (held, NULL);
    }
  g_assert_cmpint (g_async_queue_length (f->held), ==, 0);
}

typedef struct {
  guint done;
  guint order_errors;
} AsyncEchoes;

typedef struct {
  AsyncEchoes *all;
  guint index;
} AsyncEcho;

static void
on_async_echo (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autofree AsyncEcho *echo = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);
  g_autoptr(GVariant) bytes = NULL;
  gsize n;
  const guint8 *data;

  g_assert_no_error (error);
  bytes = g_variant_get_child_value (reply, 0);
  data = g_variant_get_fixed_array (bytes, &n, 1);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpuint (data[0], ==, echo->index);
  /* One worker runs them in the order they were made. */
  if (echo->index != echo->all->done)
    echo->all->order_errors++;
  echo->all->done++;
}

static void
test_async_calls (Fixture      *f,
                  gconstpointer data)
{
  AsyncEchoes all = { 0 };
  const guint n = 32;

  for (guint i = 0; i < n; i++)
    {
      AsyncEcho *echo = g_new0 (AsyncEcho, 1);
      guint8 byte = i;

      echo->all = &all;
      echo->index = i;
      peer_client_call (f->client, "/org/libpeer/Bench", "org.libpeer.Bench1", "Echo",
                        g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, &byte, 1, 1)),
                        G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, on_async_echo, echo);
    }
  PEER_TEST_WAIT_UNTIL (all.done == n);
  g_assert_cmpuint (all.order_errors, ==, 0);
}

/* Where the client was finalized, and how many of its calls came back. */
typedef struct {
  guint done;
  gboolean disposed;
  GThread *disposed_on;
} LastClientRef;

static void
on_client_disposed (gpointer  data,
                    GObject  *where_the_object_was)
{
  LastClientRef *l = data;

  l->disposed = TRUE;
  l->disposed_on = g_thread_self ();
}

static void
on_echo_counted (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  LastClientRef *l = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  g_assert_no_error (error);
  l->done++;
}

static void
echo_async (PeerClient    *client,
            LastClientRef *l)
{
  guint8 byte = 42;

  peer_client_call (client, "/org/libpeer/Bench", "org.libpeer.Bench1", "Echo",
                    g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, &byte, 1, 1)),
                    G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, on_echo_counted, l);
}

/* The caller lets go of the client while its asynchronous lane calls run:
 * the calls hold it, and the last one to end holds the last reference.
 * The lane worker hands each call back to the caller's context, so the
 * client is finalized there, never on the worker (whose pool it frees),
 * and nothing waits for itself. */
static void
test_async_calls_hold_last_ref (Fixture      *f,
                                gconstpointer data)
{
  g_autoptr(PeerClient) client = g_steal_pointer (&f->client);
  LastClientRef l = { 0 };
  const guint n = 8;

  g_object_weak_ref (G_OBJECT (client), on_client_disposed, &l);
  for (guint i = 0; i < n; i++)
    echo_async (client, &l);
  g_clear_object (&client);
  PEER_TEST_WAIT_UNTIL (l.disposed);
  g_assert_cmpuint (l.done, ==, n);
  g_assert_true (l.disposed_on == g_thread_self ());
}

static gpointer
unref_in_thread (gpointer object)
{
  g_object_unref (object);
  return NULL;
}

/* Twin: dropped on another thread once its calls are done, the client is
 * finalized there, its idle worker let go without a wait. */
static void
test_last_ref_after_async_calls (Fixture      *f,
                                 gconstpointer data)
{
  LastClientRef l = { 0 };
  GThread *thread;

  g_object_weak_ref (G_OBJECT (f->client), on_client_disposed, &l);
  echo_async (f->client, &l);
  PEER_TEST_WAIT_UNTIL (l.done == 1);
  /* What else holds the client for a moment (the idle that starts
   * message processing) lets go. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  thread = g_thread_new ("drop-client", unref_in_thread, g_steal_pointer (&f->client));
  g_thread_join (thread);
  g_assert_true (l.disposed);
  g_assert_true (l.disposed_on == thread);
}

static void
test_timeout_then_recover (Fixture      *f,
                           gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(PeerCall) held = NULL;

  reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "Hang", NULL, NULL, 100,
                                 NULL, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_clear_error (&error);

  /* The late reply to the call that timed out is recognised and dropped:
   * the next call gets its own answer. */
  held = g_async_queue_timeout_pop (f->held, 10 * G_USEC_PER_SEC);
  g_assert_nonnull (held);
  peer_call_return_value (held, NULL);
  reply = echo (f->client, 32, &error);
  g_assert_no_error (error);
}

/* --- chunked bodies -------------------------------------------------------- */

static GVariant *
call_echo (PeerClient *client,
           const char *method,
           gsize       size,
           guint       seed,
           int         timeout_ms,
           GError    **error)
{
  return peer_client_call_sync (client, TEST_PATH, TEST_IFACE, method, pattern_args (size, seed),
                                G_VARIANT_TYPE ("(ay)"), timeout_ms, NULL, NULL, NULL, error);
}

/* Bodies over PEER_LANE_MAX_INLINE up to the server's limit, through a
 * thread-safe handler (call and reply in chunks) and through one in the
 * main context (call in chunks, reply as a blob): the same bytes back
 * either way. */
static void
test_chunked_round_trips (Fixture      *f,
                          gconstpointer data)
{
  const gsize sizes[] = { PEER_LANE_MAX_INLINE, PEER_LANE_MAX_INLINE + 1, 1024 * 1024 + 3,
                          PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) safe = call_echo (f->client, "EchoSafe", sizes[i], i, -1, &error);
      g_autoptr(GVariant) main_context = NULL;

      g_assert_no_error (error);
      assert_pattern (safe, sizes[i], i);
      main_context = call_echo (f->client, "EchoMain", sizes[i], i, -1, &error);
      g_assert_no_error (error);
      assert_pattern (main_context, sizes[i], i);
      g_assert_true (g_variant_equal (safe, main_context));
    }
  g_assert_false (peer_client_is_closed (f->client));
}

/* The buffer a chunked reply is assembled in is reused once the value
 * made from it is gone, and only then: calls of varying sizes, each reply
 * kept while the next calls are made, all still intact at the end. */
static void
test_chunked_buffer_reuse (Fixture      *f,
                           gconstpointer data)
{
  const gsize sizes[] = { 1024 * 1024, 200 * 1024, 1024 * 1024, 900 * 1024, 1024 * 1024 + 3, 300 * 1024,
                          PEER_LANE_MAX_INLINE + 1, 1024 * 1024 };
  GVariant *kept[G_N_ELEMENTS (sizes)] = { NULL };

  for (guint round = 0; round < 2; round++)
    {
      for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
        {
          g_autoptr(GError) error = NULL;
          guint seed = round * G_N_ELEMENTS (sizes) + i;
          g_autoptr(GVariant) reply = call_echo (f->client, "EchoSafe", sizes[i], seed, -1, &error);

          g_assert_no_error (error);
          assert_pattern (reply, sizes[i], seed);
          /* The first round keeps every reply (no buffer may be reused
           * under them); the second lets each go at once (the spare one
           * is reused, whatever its last size). */
          if (round == 0)
            kept[i] = g_steal_pointer (&reply);
        }
      for (guint i = 0; round == 0 && i < G_N_ELEMENTS (sizes); i++)
        assert_pattern (kept[i], sizes[i], i);
    }
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    g_variant_unref (kept[i]);
}

/* A call written on the lane's fd by hand and its reply read the same
 * way, for what only the frames show: how each body traveled. Returns
 * the reply's flags. */
static guint8
raw_echo (Fixture    *f,
          const char *method,
          gsize       size,
          guint       seed)
{
  static guint32 serial = 1000000;      /* far from the client's own */
  PeerLaneClient *lane = _peer_client_get_lane (f->client);
  int fd = _peer_lane_client_get_fd (lane);
  const PeerLaneWriteOptions write_options = {
    PEER_LANE_WAIT_BLOCK, 64 * 1024, PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE,
  };
  PeerLaneBuffers *buffers = _peer_lane_buffers_new ();
  const PeerLaneReadOptions read_options = { .max_fds = 16, .max_body = G_MAXUINT32, .buffers = buffers };
  g_autofree guint8 *buffer = g_malloc (sizeof (PeerLaneHeader) + PEER_LANE_MAX_INLINE);
  g_autoptr(GVariant) args = g_variant_ref_sink (pattern_args (size, seed));
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  PeerLaneFrame frame;
  guint8 flags;
  guint32 id;

  g_assert_true (_peer_lane_client_has_method (lane, TEST_PATH, TEST_IFACE, method, &id));
  serial++;
  g_assert_true (_peer_lane_write_frame_full (fd, PEER_LANE_KIND_CALL, serial, id, args, NULL,
                                              &write_options, &error));
  g_assert_no_error (error);
  g_assert_true (_peer_lane_read_frame_full (fd, buffer, &read_options, &frame, &error));
  g_assert_no_error (error);
  g_assert_cmpint (frame.header.kind, ==, PEER_LANE_KIND_REPLY);
  g_assert_cmpuint (frame.header.target, ==, serial);
  g_assert_null (frame.fd_list);
  reply = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ay)"), frame.body, FALSE));
  assert_pattern (reply, size, seed);
  flags = frame.header.flags;
  _peer_lane_frame_clear (&frame);
  _peer_lane_buffers_unref (buffers);
  return flags;
}

/* Which way replies travel: in the frame up to PEER_LANE_MAX_INLINE; in
 * chunks from the lane thread up to the limit; as a blob from the main
 * context, or over the limit. */
static void
test_chunked_transport (Fixture      *f,
                        gconstpointer data)
{
  const gsize max = PEER_SERVER_DEFAULT_MAX_MESSAGE_SIZE;

  g_assert_cmpuint (raw_echo (f, "EchoSafe", PEER_LANE_MAX_INLINE, 1), ==, 0);
  g_assert_cmpuint (raw_echo (f, "EchoSafe", PEER_LANE_MAX_INLINE + 1, 2), ==, PEER_LANE_FLAG_CHUNKED);
  g_assert_cmpuint (raw_echo (f, "EchoSafe", 1024 * 1024 + 3, 3), ==, PEER_LANE_FLAG_CHUNKED);
  g_assert_cmpuint (raw_echo (f, "EchoSafe", max, 4), ==, PEER_LANE_FLAG_CHUNKED);
  g_assert_cmpuint (raw_echo (f, "EchoSafe", max + 1, 5), ==, PEER_LANE_FLAG_BODY_IN_BLOB);
  g_assert_cmpuint (raw_echo (f, "EchoMain", PEER_LANE_MAX_INLINE, 6), ==, 0);
  g_assert_cmpuint (raw_echo (f, "EchoMain", PEER_LANE_MAX_INLINE + 1, 7), ==, PEER_LANE_FLAG_BODY_IN_BLOB);
  g_assert_cmpuint (raw_echo (f, "EchoMain", 1024 * 1024 + 3, 8), ==, PEER_LANE_FLAG_BODY_IN_BLOB);
  /* The lane and the connection are as good as before. */
  g_assert_false (peer_client_is_closed (f->client));
  g_assert_true (peer_client_has_lane (f->client));
  sync_with_server (f);
}

typedef struct {
  PeerTestServer *ts;
  guint size;
} MaxMessageSize;

static gboolean
set_max_message_size (gpointer user_data)
{
  MaxMessageSize *m = user_data;

  peer_server_set_max_message_size (m->ts->server, m->size);
  return G_SOURCE_REMOVE;
}

/* A limit lowered after the lane opened (the client was told 4 MiB): a
 * chunked call over it is read, dropped and refused; the lane goes on. */
static void
test_chunked_limit (Fixture      *f,
                    gconstpointer data)
{
  const guint limit = 256 * 1024;
  MaxMessageSize m = { f->ts, limit };
  const struct {
    gsize size;
    gboolean ok;
  } calls[] = {
    { 300 * 1024, FALSE },
    { 200 * 1024, TRUE },
    { limit + 1, FALSE },
    { limit, TRUE },
    { 1024 * 1024 + 3, FALSE },
    { PEER_LANE_MAX_INLINE + 1, TRUE },
  };

  /* Before: 300 KiB is fine. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = call_echo (f->client, "EchoSafe", 300 * 1024, 99, -1, &error);

    g_assert_no_error (error);
    assert_pattern (reply, 300 * 1024, 99);
  }
  peer_test_server_invoke (f->ts, set_max_message_size, &m);
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = call_echo (f->client, "EchoSafe", calls[i].size, i, -1, &error);

      g_test_message ("%" G_GSIZE_FORMAT " bytes against %u", calls[i].size, limit);
      if (calls[i].ok)
        {
          g_assert_no_error (error);
          assert_pattern (reply, calls[i].size, i);
        }
      else
        {
          g_assert_null (reply);
          g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
        }
    }
  g_assert_false (peer_client_is_closed (f->client));
  g_assert_true (peer_client_has_lane (f->client));
  g_assert_cmpuint (peer_server_get_n_peers (f->ts->server), ==, 1);
}

/* A thread-safe call times out; its 1 MiB reply, in chunks from the lane
 * thread, is released just before the next large call is written, so it
 * arrives while that call is written or while its reply is awaited
 * (whichever way the race goes): it is dropped, and the next call gets its
 * own bytes. */
static void
test_chunked_stale_reply (Fixture      *f,
                          gconstpointer data)
{
  const gsize stale_size = 1024 * 1024;

  for (guint round = 0; round < 4; round++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = NULL;

      reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "HangSafe",
                                     g_variant_new ("(u)", (guint32) stale_size), G_VARIANT_TYPE ("(ay)"), 100,
                                     NULL, NULL, NULL, &error);
      g_assert_null (reply);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
      g_clear_error (&error);
      g_assert_nonnull (g_async_queue_timeout_pop (f->hanging, 10 * G_USEC_PER_SEC));

      g_async_queue_push (f->release, GUINT_TO_POINTER (1));
      /* Same size as the stale reply: only its content tells them apart. */
      reply = call_echo (f->client, "EchoSafe", stale_size, round, -1, &error);
      g_assert_no_error (error);
      assert_pattern (reply, stale_size, round);
      g_clear_pointer (&reply, g_variant_unref);
      reply = call_echo (f->client, "EchoSafe", 200 * 1024, round + 10, -1, &error);
      g_assert_no_error (error);
      assert_pattern (reply, 200 * 1024, round + 10);
    }
  g_assert_false (peer_client_is_closed (f->client));
  g_assert_true (peer_client_has_lane (f->client));
}

/* --- serialized calls (peer_client_call_serialized_sync()) ------------------- */

/* A client of @f's server: the fixture's, whose calls take the lane, or a
 * new one without a lane, whose calls go over D-Bus. */
static PeerClient *
serialized_client (Fixture *f,
                   gboolean lane)
{
  g_autoptr(GError) error = NULL;
  PeerClient *client;

  if (lane)
    return g_object_ref (f->client);
  client = peer_client_new_sync (f->ts->address, 5000, NULL, &error);
  g_assert_no_error (error);
  return client;
}

/* Quick (i) -> (s) and Echo (ay) -> (ay) made from and read as bytes,
 * small and large (chunked or a blob on the lane), on both paths. */
static void
test_serialized_calls (Fixture      *f,
                       gconstpointer data)
{
  for (guint lane = 0; lane < 2; lane++)
    {
      g_autoptr(PeerClient) client = serialized_client (f, lane);
      static const gsize sizes[] = { 0, 3, 64, 200 * 1024, 3 * 1024 * 1024 };
      g_autoptr(GVariant) args = g_variant_ref_sink (g_variant_new ("(i)", 16));
      g_autoptr(GVariant) back = NULL;
      g_autoptr(GBytes) reply = NULL;
      g_autoptr(GError) error = NULL;
      const char *number;
      guint64 value;

      g_test_message ("%s", lane ? "on the lane" : "on D-Bus");
      reply = peer_client_call_serialized_sync (client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                                G_VARIANT_TYPE ("(i)"), g_variant_get_data (args),
                                                g_variant_get_size (args), G_VARIANT_TYPE ("(s)"), -1, NULL, NULL,
                                                NULL, &error);
      g_assert_no_error (error);
      back = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(s)"), reply, FALSE));
      g_assert_true (g_variant_is_normal_form (back));
      /* A random number of 16 bits. */
      g_variant_get (back, "(&s)", &number);
      g_assert_true (g_ascii_string_to_unsigned (number, 10, 1, G_MAXUINT16, &value, &error));
      g_assert_no_error (error);

      for (guint k = 0; k < G_N_ELEMENTS (sizes); k++)
        {
          g_autofree guint8 *payload = pattern_new (sizes[k], k);
          g_autoptr(GBytes) echoed = NULL;

          echoed = peer_client_call_serialized_sync (client, "/org/libpeer/Bench", "org.libpeer.Bench1", "Echo",
                                                     G_VARIANT_TYPE ("(ay)"), payload, sizes[k],
                                                     G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, NULL, &error);
          g_assert_no_error (error);
          g_assert_cmpuint (g_bytes_get_size (echoed), ==, sizes[k]);
          g_assert_true (sizes[k] == 0 || memcmp (g_bytes_get_data (echoed, NULL), payload, sizes[k]) == 0);
        }
    }
}

/* Its negative twin: what is not a value of the arguments' type in normal
 * form, a reply type that is not the method's, and a handler's error end
 * the call with the same errors on both paths; the lane stays good. */
static void
test_serialized_errors (Fixture      *f,
                        gconstpointer data)
{
  static const struct {
    const char *what;
    const char *in_type;
    const char *body;
    gsize size;
    const char *reply_type;
    GQuark (*domain) (void);
    int code;
  } cases[] = {
    /* GLib would read an (i) of three bytes as 0. */
    { "three bytes for (i)", "(i)", "\x10\0\0", 3, "(s)", g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS },
    { "arguments of another type", "(s)", "hi", 2, "(s)", g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS },
    { "another reply type", "(i)", "\x08\0\0\0", 4, "(u)", g_io_error_quark, G_IO_ERROR_INVALID_ARGUMENT },
    { "the handler's error", "(i)", "\0\0\0\0", 4, "(s)", peer_error_quark, PEER_ERROR_INVALID_ARGS },
  };

  for (guint lane = 0; lane < 2; lane++)
    {
      g_autoptr(PeerClient) client = serialized_client (f, lane);
      g_autoptr(GBytes) reply = NULL;
      g_autoptr(GError) error = NULL;

      for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
        {
          g_test_message ("%s, %s", cases[k].what, lane ? "on the lane" : "on D-Bus");
          reply = peer_client_call_serialized_sync (client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                                    G_VARIANT_TYPE (cases[k].in_type), cases[k].body, cases[k].size,
                                                    G_VARIANT_TYPE (cases[k].reply_type), -1, NULL, NULL, NULL,
                                                    &error);
          g_assert_null (reply);
          g_assert_error (error, cases[k].domain (), cases[k].code);
          g_clear_error (&error);
        }
      /* Still good. */
      reply = peer_client_call_serialized_sync (client, "/org/libpeer/Helper", "org.libpeer.Helper1", "Quick",
                                                G_VARIANT_TYPE ("(i)"), "\x08\0\0\0", 4,
                                                G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
      g_assert_no_error (error);
      g_assert_nonnull (reply);
    }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/lane/table", test_table);
  ADD ("/peer/lane/calls", test_calls);
  ADD ("/peer/lane/errors", test_errors);
  ADD ("/peer/lane/large-bodies", test_large_bodies);
  ADD ("/peer/lane/fds", test_fds);
  ADD ("/peer/lane/peer-vanishes-mid-call", test_peer_vanishes_mid_call);
  ADD ("/peer/lane/closed-with-connection", test_closed_with_connection);
  ADD ("/peer/lane/bad-frame-closes-peer", test_bad_frame_closes_peer);
  ADD ("/peer/lane/good-frames-keep-peer", test_good_frames_keep_peer);
  ADD ("/peer/lane/limit-per-connection", test_lane_limit);
  ADD ("/peer/lane/kernel-buffers-counted", test_lane_kernel_buffers_counted);
  ADD ("/peer/lane/in-flight-limit", test_in_flight_limit);
  ADD ("/peer/lane/timeout-then-recover", test_timeout_then_recover);
  ADD ("/peer/lane/async-calls", test_async_calls);
  ADD ("/peer/lane/async-calls-hold-last-ref", test_async_calls_hold_last_ref);
  ADD ("/peer/lane/last-ref-after-async-calls", test_last_ref_after_async_calls);
  ADD ("/peer/lane/chunked/round-trips", test_chunked_round_trips);
  ADD ("/peer/lane/chunked/buffer-reuse", test_chunked_buffer_reuse);
  ADD ("/peer/lane/chunked/transport", test_chunked_transport);
  ADD ("/peer/lane/chunked/stale-reply", test_chunked_stale_reply);
  ADD ("/peer/lane/chunked/limit", test_chunked_limit);
  ADD ("/peer/lane/serialized/calls", test_serialized_calls);
  ADD ("/peer/lane/serialized/errors", test_serialized_errors);
#undef ADD
  return g_test_run ();
}
