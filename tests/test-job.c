/* test-job.c: org.libpeer.Helper1.StartJob and org.libpeer.Job1: progress,
 * cancelling (by whom), limits, concurrency, owners that vanish, the job
 * objects' life, and `peer-client job`. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "peer-test-util.h"
#include "services.h"

#define JOB_IFACE "org.libpeer.Job1"
/* Long enough that a finished job is still there to be looked at, even
 * under valgrind; tests of its going set a short one. */
#define TEST_LINGER_MS 60000
#define TEST_SHORT_LINGER_MS 50

typedef struct {
  PeerTestServer *ts;
} Fixture;

typedef struct {
  char *path;
  GPtrArray *progress;          /* GVariant* (ds) */
  gboolean finished;
  gboolean success;
  char *message;
} Job;

static gboolean
set_linger (gpointer user_data)
{
  peer_job_service_set_linger (user_data, TEST_LINGER_MS);
  return G_SOURCE_REMOVE;
}

static gboolean
set_short_linger (gpointer user_data)
{
  peer_job_service_set_linger (user_data, TEST_SHORT_LINGER_MS);
  return G_SOURCE_REMOVE;
}

static void
start_server (Fixture    *f,
              PeerPolicy *policy)
{
  g_autoptr(GError) error = NULL;

  f->ts = peer_test_server_new (policy, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_no_error (error);
  peer_test_server_invoke (f->ts, set_linger, f->ts->server);
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  start_server (f, NULL);
}

static void
fixture_set_up_empty (Fixture      *f,
                      gconstpointer data)
{
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  peer_test_server_free (f->ts);
}

static PeerClient *
connect_client (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  PeerClient *client = peer_client_new_sync (f->ts->address, -1, NULL, &error);

  g_assert_no_error (error);
  return client;
}

static void
job_free (Job *job)
{
  g_free (job->path);
  g_ptr_array_unref (job->progress);
  g_free (job->message);
  g_free (job);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Job, job_free)

static void
on_job_signal (PeerClient *client,
               const char *object_path,
               const char *interface_name,
               const char *signal_name,
               GVariant   *parameters,
               gpointer    user_data)
{
  Job *job = user_data;

  if (job->path == NULL || !g_str_equal (object_path, job->path))
    return;
  g_assert_false (job->finished);      /* nothing after Finished */
  if (g_str_equal (signal_name, "Progress"))
    g_ptr_array_add (job->progress, g_variant_ref (parameters));
  else if (g_str_equal (signal_name, "Finished"))
    {
      g_variant_get (parameters, "(bs)", &job->success, &job->message);
      job->finished = TRUE;
    }
}

/* Subscribes first: signals are matched when they arrive, and the job's
 * first ones may come right behind the reply. */
static Job *
start_job_full (PeerClient *client,
                const char *kind,
                guint       steps,
                guint       step_ms,
                guint      *out_subscription,
                GError    **error)
{
  Job *job = g_new0 (Job, 1);
  g_autoptr(GVariant) reply = NULL;

  job->progress = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  *out_subscription = peer_client_subscribe_signal (client, NULL, JOB_IFACE, NULL, on_job_signal, job, NULL);
  reply = peer_client_call_sync (client, PEER_HELPER_PATH, "org.libpeer.Helper1", "StartJob",
                                 g_variant_new ("(suu)", kind, steps, step_ms), G_VARIANT_TYPE ("(o)"),
                                 -1, NULL, NULL, NULL, error);
  if (reply == NULL)
    {
      peer_client_unsubscribe_signal (client, *out_subscription);
      job_free (job);
      return NULL;
    }
  g_variant_get (reply, "(o)", &job->path);
  return job;
}

static char *
dup_state (PeerClient *client,
           const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = peer_client_get_property_sync (client, path, JOB_IFACE, "State", NULL, &error);

  g_assert_no_error (error);
  return g_variant_dup_string (value, NULL);
}

static gboolean
cancel_job (PeerClient *client,
            const char *path,
            GError    **error)
{
  g_autoptr(GVariant) reply = peer_client_call_sync (client, path, JOB_IFACE, "Cancel", NULL,
                                                     G_VARIANT_TYPE_UNIT, -1, NULL, NULL, NULL, error);
  return reply != NULL;
}

/* The names of the live jobs, from introspection. */
static GPtrArray *
list_jobs (PeerClient *client)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GDBusNodeInfo) node = NULL;
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  const char *xml;

  reply = peer_client_call_sync (client, PEER_JOBS_PATH, "org.freedesktop.DBus.Introspectable", "Introspect",
                                 NULL, G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &xml);
  node = g_dbus_node_info_new_for_xml (xml, &error);
  g_assert_no_error (error);
  for (guint i = 0; node->nodes != NULL && node->nodes[i] != NULL; i++)
    g_ptr_array_add (names, g_strdup (node->nodes[i]->path));
  return names;
}

static gboolean
job_is_listed (PeerClient *client,
               const char *path)
{
  g_autoptr(GPtrArray) names = list_jobs (client);
  const char *base = strrchr (path, '/') + 1;

  for (guint i = 0; i < names->len; i++)
    if (g_str_equal (g_ptr_array_index (names, i), base))
      return TRUE;
  return FALSE;
}

/* The server drops a finished job after its linger time; each check is a
 * round trip to the server, not a sleep. */
static void
wait_until_unlisted (PeerClient *client,
                     const char *path)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (job_is_listed (client, path))
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
}

/* --- progress ----------------------------------------------------------- */

static void
test_progress_order (Fixture      *f,
                     gconstpointer data)
{
  gboolean fails = GPOINTER_TO_INT (data);
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(Job) job = NULL;
  g_autoptr(GVariant) progress = NULL;
  g_autofree char *state = NULL;
  guint sub;

  job = start_job_full (client, fails ? "fail" : "count", 5, 10, &sub, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (job->path, PEER_JOBS_PATH "/"));
  PEER_TEST_WAIT_UNTIL (job->finished);

  /* Every step in order, each a fifth further. */
  g_assert_cmpuint (job->progress->len, ==, fails ? 4 : 5);
  for (guint i = 0; i < job->progress->len; i++)
    {
      g_autofree char *expected = g_strdup_printf ("step %u of 5", i + 1);
      const char *message;
      double fraction;

      g_variant_get (g_ptr_array_index (job->progress, i), "(d&s)", &fraction, &message);
      g_assert_cmpfloat_with_epsilon (fraction, (i + 1) / 5.0, 1e-9);
      g_assert_cmpstr (message, ==, expected);
    }
  state = dup_state (client, job->path);
  progress = peer_client_get_property_sync (client, job->path, JOB_IFACE, "Progress", NULL, &error);
  g_assert_no_error (error);
  if (fails)
    {
      g_assert_false (job->success);
      g_assert_cmpstr (job->message, ==, "failed at step 5 of 5, as asked");
      g_assert_cmpstr (state, ==, "failed");
      g_assert_cmpfloat_with_epsilon (g_variant_get_double (progress), 0.8, 1e-9);
    }
  else
    {
      g_assert_true (job->success);
      g_assert_cmpstr (job->message, ==, "done");
      g_assert_cmpstr (state, ==, "done");
      g_assert_cmpfloat_with_epsilon (g_variant_get_double (progress), 1.0, 1e-9);
    }
  peer_client_unsubscribe_signal (client, sub);
}

static void
test_introspect (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(Job) a = NULL;
  g_autoptr(Job) b = NULL;
  g_autoptr(GPtrArray) names = NULL;
  guint sub_a, sub_b;

  names = list_jobs (client);
  g_assert_cmpuint (names->len, ==, 0);
  g_clear_pointer (&names, g_ptr_array_unref);

  a = start_job_full (client, "count", 1000, 1000, &sub_a, &error);
  g_assert_no_error (error);
  b = start_job_full (client, "count", 1000, 1000, &sub_b, &error);
  g_assert_no_error (error);
  names = list_jobs (client);
  g_assert_cmpuint (names->len, ==, 2);
  g_assert_true (job_is_listed (client, a->path));
  g_assert_true (job_is_listed (client, b->path));

  /* A finished job goes after the linger time; a running one stays. */
  peer_test_server_invoke (f->ts, set_short_linger, f->ts->server);
  g_assert_true (cancel_job (client, a->path, &error));
  g_assert_no_error (error);
  wait_until_unlisted (client, a->path);
  g_assert_true (job_is_listed (client, b->path));
  g_assert_null (peer_client_get_property_sync (client, a->path, JOB_IFACE, "State", NULL, &error));
  g_assert_nonnull (error);
  peer_client_unsubscribe_signal (client, sub_a);
  peer_client_unsubscribe_signal (client, sub_b);
}

/* --- cancelling --------------------------------------------------------- */

static void
test_cancel_by_owner (Fixture      *f,
                      gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(Job) job = NULL;
  g_autofree char *state = NULL;
  guint sub;

  job = start_job_full (client, "count", 1000, 1000, &sub, &error);
  g_assert_no_error (error);
  state = dup_state (client, job->path);
  g_assert_cmpstr (state, ==, "running");
  g_assert_true (cancel_job (client, job->path, &error));
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (job->finished);
  g_assert_false (job->success);
  g_assert_true (g_str_has_prefix (job->message, "cancelled by :1."));
  g_clear_pointer (&state, g_free);
  state = dup_state (client, job->path);
  g_assert_cmpstr (state, ==, "cancelled");

  /* The negative twin: a job that is over cannot be cancelled. */
  g_assert_false (cancel_job (client, job->path, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  peer_client_unsubscribe_signal (client, sub);
}

static void
run_as_nobody (gpointer user_data)
{
  if (setgroups (0, NULL) != 0 || setgid (65534) != 0 || setuid (65534) != 0)
    _exit (99);
}

static void
test_cancel_other_uid (Fixture      *f,
                       gconstpointer data)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(Job) job = NULL;
  g_autofree char *state = NULL;
  g_autofree char *err = NULL;
  int status;
  guint sub;

  if (getuid () != 0)
    {
      g_test_skip ("needs root to run a client as another uid");
      return;
    }
  /* nobody may connect, and reach the socket through our directory. */
  peer_policy_allow_uid (policy, 65534);
  start_server (f, policy);
  g_assert_cmpint (chmod (f->ts->dir, 0711), ==, 0);
  client = connect_client (f);
  job = start_job_full (client, "count", 1000, 1000, &sub, &error);
  g_assert_no_error (error);

  {
    const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--address", f->ts->address,
                           "call", job->path, JOB_IFACE ".Cancel", NULL };

    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, 0, run_as_nobody, NULL, NULL, &err,
                                 &status, &error));
    g_assert_no_error (error);
  }
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  g_assert_nonnull (strstr (err, "org.libpeer.Error.PermissionDenied"));
  g_assert_nonnull (strstr (err, "uid 65534 may not cancel it"));
  state = dup_state (client, job->path);
  g_assert_cmpstr (state, ==, "running");

  /* The owner still may. */
  g_assert_true (cancel_job (client, job->path, &error));
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (job->finished);
  peer_client_unsubscribe_signal (client, sub);
}

/* --- many jobs ---------------------------------------------------------- */

static void
on_quick_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  gboolean *done = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  g_assert_no_error (error);
  *done = TRUE;
}

static void
test_concurrent (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  Job *jobs[3];
  guint subs[3];
  gboolean quick_done = FALSE;

  for (guint i = 0; i < G_N_ELEMENTS (jobs); i++)
    {
      jobs[i] = start_job_full (client, "count", 5, 300, &subs[i], &error);
      g_assert_no_error (error);
    }
  /* Other calls are answered while the jobs run. */
  peer_client_call (client, PEER_HELPER_PATH, "org.libpeer.Helper1", "Quick", g_variant_new ("(i)", 8),
                    G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, on_quick_done, &quick_done);
  PEER_TEST_WAIT_UNTIL (quick_done);
  g_assert_false (jobs[0]->finished && jobs[1]->finished && jobs[2]->finished);

  PEER_TEST_WAIT_UNTIL (jobs[0]->finished && jobs[1]->finished && jobs[2]->finished);
  for (guint i = 0; i < G_N_ELEMENTS (jobs); i++)
    {
      g_assert_true (jobs[i]->success);
      g_assert_cmpuint (jobs[i]->progress->len, ==, 5);
      peer_client_unsubscribe_signal (client, subs[i]);
      job_free (jobs[i]);
    }
}

static void
test_limit (Fixture      *f,
            gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(PeerClient) other = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) jobs = g_ptr_array_new_with_free_func ((GDestroyNotify) job_free);
  g_autoptr(GArray) subs = g_array_new (FALSE, FALSE, sizeof (guint));
  Job *job;
  guint sub;

  for (guint i = 0; i < 8; i++)
    {
      job = start_job_full (client, "count", 1000, 1000, &sub, &error);
      g_assert_no_error (error);
      g_ptr_array_add (jobs, job);
      g_array_append_val (subs, sub);
    }
  job = start_job_full (client, "count", 1000, 1000, &sub, &error);
  g_assert_null (job);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_clear_error (&error);

  /* The limit is per peer: another one may start jobs. */
  job = start_job_full (other, "count", 1000, 1000, &sub, &error);
  g_assert_no_error (error);
  peer_client_unsubscribe_signal (other, sub);
  job_free (job);

  /* Once one of ours is over, there is room again. */
  g_assert_true (cancel_job (client, ((Job *) g_ptr_array_index (jobs, 0))->path, &error));
  g_assert_no_error (error);
  job = start_job_full (client, "count", 1000, 1000, &sub, &error);
  g_assert_no_error (error);
  g_ptr_array_add (jobs, job);
  g_array_append_val (subs, sub);

  for (guint i = 0; i < subs->len; i++)
    peer_client_unsubscribe_signal (client, g_array_index (subs, guint, i));
}

static void
test_invalid_args (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr(PeerClient) client = connect_client (f);
  g_autoptr(GError) error = NULL;
  Job *job;
  guint sub;

  job = start_job_full (client, "bogus", 5, 10, &sub, &error);
  g_assert_null (job);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  job = start_job_full (client, "count", 0, 10, &sub, &error);
  g_assert_null (job);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  job = start_job_full (client, "count", 5, 600000, &sub, &error);
  g_assert_null (job);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
}

/* A job whose owner disconnects is cancelled; other peers see it end. */
static void
test_owner_vanishes (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr(PeerClient) owner = connect_client (f);
  g_autoptr(PeerClient) watcher = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(Job) job = NULL;
  g_autoptr(Job) seen = g_new0 (Job, 1);
  g_autofree char *state = NULL;
  guint sub, watch_sub;

  seen->progress = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  job = start_job_full (owner, "count", 1000, 1000, &sub, &error);
  g_assert_no_error (error);
  seen->path = g_strdup (job->path);
  watch_sub = peer_client_subscribe_signal (watcher, job->path, JOB_IFACE, NULL, on_job_signal, seen, NULL);
  /* A round trip, so that the subscription is in place before anything. */
  state = dup_state (watcher, job->path);
  g_assert_cmpstr (state, ==, "running");

  peer_client_unsubscribe_signal (owner, sub);
  g_clear_object (&owner);
  PEER_TEST_WAIT_UNTIL (seen->finished);
  g_assert_false (seen->success);
  g_assert_cmpstr (seen->message, ==, "its owner disconnected");
  g_clear_pointer (&state, g_free);
  state = dup_state (watcher, job->path);
  g_assert_cmpstr (state, ==, "cancelled");
  peer_client_unsubscribe_signal (watcher, watch_sub);
}

/* --- each peer's share -------------------------------------------------- */

/* peer-server's default. */
#define JOB_MAX_PER_PEER 32

/* Starts a job of one step and waits for it to finish: it stays in the
 * table for the linger time, held against its owner's share. */
static char *
start_short_job (PeerClient *client,
                 GError    **error)
{
  g_autoptr(Job) job = NULL;
  guint sub;

  job = start_job_full (client, "count", 1, 0, &sub, error);
  if (job == NULL)
    return NULL;
  PEER_TEST_WAIT_UNTIL (job->finished);
  peer_client_unsubscribe_signal (client, sub);
  return g_steal_pointer (&job->path);
}

/* The server's side of the one peer connected so far, and its shares. */
typedef struct {
  PeerServer *server;
  PeerConnection *peer;
  const char *pool;
  guint share;
} ShareQuery;

static gboolean
find_only_peer (gpointer data)
{
  ShareQuery *query = data;
  g_autoptr(GPtrArray) peers = peer_server_list_peers (query->server);

  g_assert_cmpuint (peers->len, ==, 1);
  query->peer = g_object_ref (g_ptr_array_index (peers, 0));
  return G_SOURCE_REMOVE;
}

static gboolean
get_share (gpointer data)
{
  ShareQuery *query = data;

  query->share = peer_connection_get_share (query->peer, query->pool);
  return G_SOURCE_REMOVE;
}

static guint
server_share (Fixture    *f,
              ShareQuery *query,
              const char *pool)
{
  query->pool = pool;
  peer_test_server_invoke (f->ts, get_share, query);
  return query->share;
}

/* StartJob("count", 1, 0) in a loop: the peer fills its own share of the
 * table (N jobs; the N+1st is refused) and another peer still starts
 * jobs. A job that goes gives its share back; a peer that disconnects
 * gives all of its back, and a new one gets a full share. */
static void
test_share_per_peer (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr(PeerClient) looper = connect_client (f);
  g_autoptr(PeerClient) other = NULL;
  g_autoptr(PeerClient) newcomer = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(Job) running = NULL;
  g_autofree char *path = NULL;
  g_autofree char *last = NULL;
  ShareQuery query = { f->ts->server, NULL, NULL, 0 };
  gint64 deadline;
  guint sub;

  for (guint i = 0; i < JOB_MAX_PER_PEER - 1; i++)
    {
      g_free (start_short_job (looper, &error));
      g_assert_no_error (error);
    }
  /* Listed by now: the server has answered it. */
  peer_test_server_invoke (f->ts, find_only_peer, &query);
  /* The Nth runs on, to be cancelled below. */
  running = start_job_full (looper, "count", 1000, 1000, &sub, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (server_share (f, &query, "jobs"), ==, JOB_MAX_PER_PEER);
  g_assert_cmpuint (server_share (f, &query, "running jobs"), ==, 1);
  path = start_short_job (looper, &error);
  g_assert_null (path);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_nonnull (strstr (error->message, "has 32 jobs already; the limit per peer is 32"));
  g_clear_error (&error);

  /* The other peers are unharmed. */
  other = connect_client (f);
  path = start_short_job (other, &error);
  g_assert_no_error (error);
  g_clear_pointer (&path, g_free);

  /* A job that goes gives its share back: once, so one more may start. */
  peer_test_server_invoke (f->ts, set_short_linger, f->ts->server);
  g_assert_true (cancel_job (looper, running->path, &error));
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (running->finished);
  g_assert_cmpuint (server_share (f, &query, "running jobs"), ==, 0);
  wait_until_unlisted (looper, running->path);
  g_assert_cmpuint (server_share (f, &query, "jobs"), ==, JOB_MAX_PER_PEER - 1);
  peer_test_server_invoke (f->ts, set_linger, f->ts->server);
  last = start_short_job (looper, &error);
  g_assert_no_error (error);
  path = start_short_job (looper, &error);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_clear_error (&error);

  /* Disconnecting gives every share back; its jobs linger on. */
  peer_client_unsubscribe_signal (looper, sub);
  g_clear_object (&looper);
  newcomer = connect_client (f);
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (server_share (f, &query, "jobs") != 0)
    {
      /* Each round trip gives the server the chance to see it go. */
      g_autofree char *state = dup_state (newcomer, last);
      g_assert_cmpstr (state, ==, "done");
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    }
  g_assert_cmpuint (server_share (f, &query, "running jobs"), ==, 0);
  g_assert_true (job_is_listed (newcomer, last));
  for (guint i = 0; i < JOB_MAX_PER_PEER; i++)
    {
      g_free (start_short_job (newcomer, &error));
      g_assert_no_error (error);
    }
  path = start_short_job (newcomer, &error);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_nonnull (strstr (error->message, "has 32 jobs already"));
  g_object_unref (query.peer);
}

typedef struct {
  PeerServer *server;
  guint max_per_peer;
  guint max_total;
} JobLimits;

static gboolean
set_job_limits (gpointer data)
{
  JobLimits *limits = data;

  peer_job_service_set_limits (limits->server, limits->max_per_peer, limits->max_total);
  return G_SOURCE_REMOVE;
}

/* The server-wide table at N and N+1, with shares of 2 and room for 3:
 * it takes two peers to fill it, and a job that goes makes room. */
static void
test_share_server_wide (Fixture      *f,
                        gconstpointer data)
{
  JobLimits limits = { f->ts->server, 2, 3 };
  g_autoptr(PeerClient) a = connect_client (f);
  g_autoptr(PeerClient) b = connect_client (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(Job) running = NULL;
  char *path;
  guint sub;

  peer_test_server_invoke (f->ts, set_job_limits, &limits);
  running = start_job_full (a, "count", 1000, 1000, &sub, &error);
  g_assert_no_error (error);
  g_free (start_short_job (a, &error));
  g_assert_no_error (error);
  path = start_short_job (a, &error);
  g_assert_null (path);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_nonnull (strstr (error->message, "has 2 jobs already; the limit per peer is 2"));
  g_clear_error (&error);

  g_free (start_short_job (b, &error));
  g_assert_no_error (error);
  path = start_short_job (b, &error);
  g_assert_null (path);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_nonnull (strstr (error->message, "The server has 3 jobs already"));
  g_clear_error (&error);

  /* a's running job, cancelled with a short linger, goes and makes room. */
  peer_test_server_invoke (f->ts, set_short_linger, f->ts->server);
  g_assert_true (cancel_job (a, running->path, &error));
  g_assert_no_error (error);
  wait_until_unlisted (b, running->path);
  g_free (start_short_job (b, &error));
  g_assert_no_error (error);
  peer_client_unsubscribe_signal (a, sub);
}

/* --- peer-client job ---------------------------------------------------- */

static void
test_cli_job (Fixture      *f,
              gconstpointer data)
{
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--address", f->ts->address,
                         "job", "3", "10", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  g_assert_cmpint (peer_test_run (argv, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "progress  33% step 1 of 3\n"));
  g_assert_nonnull (strstr (out, "progress 100% step 3 of 3\n"));
  g_assert_true (g_str_has_suffix (out, "job finished: done\n"));
}

/* Ctrl-C cancels the job on the server, and the client leaves only when
 * Finished confirms it. */
static void
test_cli_job_interrupt (Fixture      *f,
                        gconstpointer data)
{
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--address", f->ts->address,
                         "job", "1000", "50", NULL };
  g_autoptr(GError) error = NULL;
  PeerTestProcess *process = peer_test_spawn (argv, &error);
  g_autofree char *line = NULL;
  int status;

  g_assert_no_error (error);
  line = peer_test_process_read_line (process);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "job " PEER_JOBS_PATH "/"));
  g_assert_cmpint (kill (process->pid, SIGINT), ==, 0);
  for (;;)
    {
      g_free (line);
      line = peer_test_process_read_line (process);
      g_assert_nonnull (line);
      if (!g_str_has_prefix (line, "progress"))
        break;
    }
  g_assert_true (g_str_has_prefix (line, "job did not finish: cancelled by :1."));
  status = peer_test_process_stop (process, 0);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) \
  g_test_add ("/peer/job/" path, Fixture, data, fixture_set_up, func, fixture_tear_down)
  ADD ("progress/in-order", test_progress_order, GINT_TO_POINTER (FALSE));
  ADD ("progress/fails", test_progress_order, GINT_TO_POINTER (TRUE));
  ADD ("introspect-lists-live-jobs", test_introspect, NULL);
  ADD ("cancel/by-owner", test_cancel_by_owner, NULL);
  ADD ("concurrent", test_concurrent, NULL);
  ADD ("limit-per-peer", test_limit, NULL);
  ADD ("share/per-peer", test_share_per_peer, NULL);
  ADD ("share/server-wide", test_share_server_wide, NULL);
  ADD ("invalid-args", test_invalid_args, NULL);
  ADD ("owner-vanishes", test_owner_vanishes, NULL);
  ADD ("cli/progress", test_cli_job, NULL);
  ADD ("cli/interrupt-cancels", test_cli_job_interrupt, NULL);
#undef ADD
  g_test_add ("/peer/job/cancel/other-uid-refused", Fixture, NULL, fixture_set_up_empty,
              test_cancel_other_uid, fixture_tear_down);

  return g_test_run ();
}
