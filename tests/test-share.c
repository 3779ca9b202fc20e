/* test-share.c: a peer's shares of a service's pools
 * (peer_connection_take_share() and its pair), on the server's side of a
 * real connection: the limit at N and N+1, pools kept apart, peers kept
 * apart, a closed peer, and threads taking and giving back at once. The
 * services that use shares (Digest, jobs) are tested in test-fd.c and
 * test-job.c. */
#include "config.h"

#include "peer-test-util.h"
#include "services.h"

typedef struct {
  PeerTestServer *ts;
  GAsyncQueue *gone;            /* PeerConnection*, from peer-disconnected */
  PeerClient *client;
  PeerConnection *peer;         /* the server's side of @client */
} Fixture;

typedef struct {
  Fixture *f;
  PeerConnection *found;
} Lookup;

/* The peer connected last: the highest id. */
static gboolean
find_newest_peer (gpointer data)
{
  Lookup *lookup = data;
  g_autoptr(GPtrArray) peers = peer_server_list_peers (lookup->f->ts->server);

  for (guint i = 0; i < peers->len; i++)
    {
      PeerConnection *peer = g_ptr_array_index (peers, i);

      if (lookup->found == NULL || peer_connection_get_id (peer) > peer_connection_get_id (lookup->found))
        lookup->found = peer;
    }
  if (lookup->found != NULL)
    g_object_ref (lookup->found);
  return G_SOURCE_REMOVE;
}

static void
on_peer_disconnected (PeerServer     *server,
                      PeerConnection *peer,
                      GAsyncQueue    *gone)
{
  g_async_queue_push (gone, g_object_ref (peer));
}

static gboolean
watch_disconnections (gpointer data)
{
  Fixture *f = data;

  g_signal_connect (f->ts->server, "peer-disconnected", G_CALLBACK (on_peer_disconnected), f->gone);
  return G_SOURCE_REMOVE;
}

/* A new client and the server's side of it. */
static PeerConnection *
connect_peer (Fixture     *f,
              PeerClient **out_client)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  Lookup lookup = { f, NULL };

  *out_client = peer_client_new_sync (f->ts->address, -1, NULL, &error);
  g_assert_no_error (error);
  /* Answered, so listed. */
  reply = peer_client_call_sync (*out_client, PEER_BENCH_PATH, "org.libpeer.Bench1", "Ping", NULL,
                                 G_VARIANT_TYPE_UNIT, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  peer_test_server_invoke (f->ts, find_newest_peer, &lookup);
  g_assert_nonnull (lookup.found);
  return lookup.found;
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  f->ts = peer_test_server_start ();
  f->gone = g_async_queue_new_full (g_object_unref);
  peer_test_server_invoke (f->ts, watch_disconnections, f);
  f->peer = connect_peer (f, &f->client);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_clear_object (&f->client);
  g_clear_object (&f->peer);
  peer_test_server_free (f->ts);
  g_async_queue_unref (f->gone);
}

static void
test_limit (Fixture      *f,
            gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *expected = g_strdup_printf ("Peer %s has 3 widgets already; the limit per peer is 3",
                                               peer_connection_get_unique_name (f->peer));

  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 0);
  for (guint i = 0; i < 3; i++)
    {
      g_assert_true (peer_connection_take_share (f->peer, "widgets", 3, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 3);
  g_assert_false (peer_connection_take_share (f->peer, "widgets", 3, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_cmpstr (error->message, ==, expected);
  g_clear_error (&error);
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 3);

  /* Given back, taken again; a limit of 0 refuses the first. */
  peer_connection_give_back_share (f->peer, "widgets");
  g_assert_true (peer_connection_take_share (f->peer, "widgets", 3, &error));
  g_assert_false (peer_connection_take_share (f->peer, "gadgets", 0, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_clear_error (&error);

  /* Pools are apart: a full one leaves another untouched. */
  g_assert_true (peer_connection_take_share (f->peer, "gadgets", 1, &error));
  g_assert_cmpuint (peer_connection_get_share (f->peer, "gadgets"), ==, 1);
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 3);
  for (guint i = 0; i < 3; i++)
    peer_connection_give_back_share (f->peer, "widgets");
  peer_connection_give_back_share (f->peer, "gadgets");
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 0);
  g_assert_cmpuint (peer_connection_get_share (f->peer, "gadgets"), ==, 0);
}

/* Each peer has its own share of the same pool. */
static void
test_peers_apart (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) other_client = NULL;
  g_autoptr(PeerConnection) other = connect_peer (f, &other_client);

  g_assert_true (other != f->peer);
  g_assert_true (peer_connection_take_share (f->peer, "widgets", 1, &error));
  g_assert_false (peer_connection_take_share (f->peer, "widgets", 1, NULL));
  g_assert_true (peer_connection_take_share (other, "widgets", 1, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (peer_connection_get_share (other, "widgets"), ==, 1);
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 1);
  peer_connection_give_back_share (other, "widgets");
  peer_connection_give_back_share (f->peer, "widgets");
}

/* A closed peer takes no new share, and still gives back what it held:
 * disconnecting gives nothing back by itself. */
static void
test_closed_peer (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerConnection) gone = NULL;

  g_assert_true (peer_connection_take_share (f->peer, "widgets", 2, &error));
  peer_client_close (f->client);
  gone = g_async_queue_timeout_pop (f->gone, 10 * G_USEC_PER_SEC);
  g_assert_true (gone == f->peer);
  g_assert_true (peer_connection_is_closed (f->peer));
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 1);

  g_assert_false (peer_connection_take_share (f->peer, "widgets", 2, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 1);
  peer_connection_give_back_share (f->peer, "widgets");
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 0);
}

/* Giving back what was never taken is the caller's bug. */
static void
test_give_back_unheld (Fixture      *f,
                       gconstpointer data)
{
  if (g_test_subprocess ())
    {
      peer_connection_give_back_share (f->peer, "widgets");
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*gave back a share of widgets that it does not hold*");
}

/* Threads take and give back at once, on one lock: no share is lost,
 * none is made up, and the limit holds throughout. */
#define N_THREADS 4
#define N_ROUNDS 2000
#define THREAD_LIMIT 3

typedef struct {
  PeerConnection *peer;
  gint over;                    /* atomic: times a thread saw more than the limit */
} Race;

static gpointer
race_thread (gpointer data)
{
  Race *race = data;

  for (guint i = 0; i < N_ROUNDS; i++)
    {
      if (!peer_connection_take_share (race->peer, "widgets", THREAD_LIMIT, NULL))
        continue;
      if (peer_connection_get_share (race->peer, "widgets") > THREAD_LIMIT)
        g_atomic_int_inc (&race->over);
      peer_connection_give_back_share (race->peer, "widgets");
    }
  return NULL;
}

static void
test_threads (Fixture      *f,
              gconstpointer data)
{
  Race race = { f->peer, 0 };
  GThread *threads[N_THREADS];

  for (guint i = 0; i < N_THREADS; i++)
    threads[i] = g_thread_new ("share-race", race_thread, &race);
  for (guint i = 0; i < N_THREADS; i++)
    g_thread_join (threads[i]);
  g_assert_cmpint (g_atomic_int_get (&race.over), ==, 0);
  g_assert_cmpuint (peer_connection_get_share (f->peer, "widgets"), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/peer/connection/share/" path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("limit", test_limit);
  ADD ("peers-apart", test_peers_apart);
  ADD ("closed-peer", test_closed_peer);
  ADD ("give-back-unheld", test_give_back_unheld);
  ADD ("threads", test_threads);
#undef ADD

  return g_test_run ();
}
