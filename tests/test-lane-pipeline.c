/* test-lane-pipeline.c: many calls in flight on one lane: replies matched
 * by serial whatever their order, synchronous calls beside asynchronous
 * ones and from several threads, cancellation and timeouts mid-flight
 * (late replies dropped with their fds), and a peer closing with calls in
 * flight (each ends with an error, none hangs). Asynchronous calls end in
 * their own context whichever context read their reply; calls made from
 * a reply's callback (written together after it) reach the server in
 * the order made; a callback that runs the loop again gets the ends
 * after its own in order. */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "peer-client-private.h"
#include "peer-lane-private.h"
#include "peer-test-util.h"

#define TEST_PATH "/org/libpeer/PipelineTest"
#define TEST_IFACE "org.libpeer.PipelineTest1"

static const char test_xml[] =
  "<node><interface name='" TEST_IFACE "'>"
  " <method name='Hold'>"
  "  <arg name='n' type='u' direction='in'/>"
  "  <arg name='n' type='u' direction='out'/>"
  " </method>"
  " <method name='HoldFd'>"
  "  <arg name='fd' type='h' direction='out'/>"
  " </method>"
  " <method name='Double'>"
  "  <arg name='n' type='u' direction='in'/>"
  "  <arg name='n' type='u' direction='out'/>"
  " </method>"
  " <method name='Sync'/>"
  " <method name='Note'>"
  "  <arg name='n' type='u' direction='in'/>"
  " </method>"
  "</interface></node>";

typedef struct {
  PeerTestServer *ts;
  PeerInterface *iface;
  GAsyncQueue *held;            /* PeerCall* from Hold and HoldFd */
  PeerClient *client;
  GMutex lock;
  GArray *noted;                /* guint32: what Note heard, in order */
} Fixture;

/* Main context: held until the test answers it, from the test's thread. */
static void
handle_hold (PeerCall *call,
             gpointer  user_data)
{
  Fixture *f = user_data;

  g_async_queue_push (f->held, peer_call_ref (call));
}

static void
handle_double (PeerCall *call,
               gpointer  user_data)
{
  guint32 n;

  g_variant_get (peer_call_get_parameters (call), "(u)", &n);
  peer_call_return_value (call, g_variant_new ("(u)", n * 2));
}

static void
handle_sync (PeerCall *call,
             gpointer  user_data)
{
  peer_call_return_value (call, NULL);
}

/* Thread-safe: on the lane's loop, in the order the lane carried them. */
static void
handle_note (PeerCall *call,
             gpointer  user_data)
{
  Fixture *f = user_data;
  guint32 n;

  g_variant_get (peer_call_get_parameters (call), "(u)", &n);
  g_mutex_lock (&f->lock);
  g_array_append_val (f->noted, n);
  g_mutex_unlock (&f->lock);
  peer_call_return_value (call, NULL);
}

/* TEST_IFACE's handlers, called with the Fixture. */
static const PeerMethodEntry test_entries[] = {
  { "Hold", handle_hold, PEER_METHOD_FLAGS_NONE },
  { "HoldFd", handle_hold, PEER_METHOD_FLAGS_NONE },
  { "Double", handle_double, PEER_METHOD_FLAGS_THREAD_SAFE },
  { "Sync", handle_sync, PEER_METHOD_FLAGS_NONE },
  { "Note", handle_note, PEER_METHOD_FLAGS_THREAD_SAFE },
};

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  f->held = g_async_queue_new_full ((GDestroyNotify) peer_call_unref);
  g_mutex_init (&f->lock);
  f->noted = g_array_new (FALSE, FALSE, sizeof (guint32));
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
  g_array_unref (f->noted);
  g_mutex_clear (&f->lock);
}

static PeerCall *
pop_held (Fixture *f)
{
  PeerCall *call = g_async_queue_timeout_pop (f->held, 10 * G_USEC_PER_SEC);

  g_assert_nonnull (call);
  return call;
}

/* The server's side of earlier calls is done (their fds closed) once a
 * call answered in its main context comes back. */
static void
sync_with_server (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "Sync", NULL,
                                                     G_VARIANT_TYPE_UNIT, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
}

/* --- one asynchronous call's end ----------------------------------------------- */

typedef struct {
  guint32 n;
  gboolean done;
  guint order;                  /* when it ended among its batch */
  guint *n_done;
  GVariant *reply;
  GUnixFDList *fd_list;
  GError *error;
  GThread *thread;
} AsyncCall;

static void
on_call_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  AsyncCall *c = user_data;

  g_assert_false (c->done);
  c->reply = peer_client_call_finish (PEER_CLIENT (source), &c->fd_list, result, &c->error);
  c->done = TRUE;
  c->thread = g_thread_self ();
  if (c->n_done != NULL)
    c->order = (*c->n_done)++;
}

static void
async_call_clear (AsyncCall *c)
{
  g_clear_pointer (&c->reply, g_variant_unref);
  g_clear_object (&c->fd_list);
  g_clear_error (&c->error);
}

static void
call_async (Fixture      *f,
            const char   *method,
            GVariant     *args,
            int           timeout_ms,
            GCancellable *cancellable,
            AsyncCall    *c)
{
  peer_client_call (f->client, TEST_PATH, TEST_IFACE, method, args, NULL, timeout_ms, NULL, cancellable,
                    on_call_done, c);
}

/* --- tests ----------------------------------------------------------------------- */

#define DEPTH 16

/* Sixteen calls in flight at once on the lane (the server holds them all
 * before any is answered), answered in reverse order: each caller gets
 * its own reply, in the caller's thread, in the order they were sent
 * back. */
static void
test_out_of_order (Fixture      *f,
                   gconstpointer data)
{
  AsyncCall calls[DEPTH] = { { 0 } };
  PeerCall *held[DEPTH];
  guint n_done = 0;

  for (guint i = 0; i < DEPTH; i++)
    {
      calls[i].n_done = &n_done;
      call_async (f, "Hold", g_variant_new ("(u)", i), -1, NULL, &calls[i]);
    }
  /* All in the server's hands at once: nothing waits for an earlier
   * reply. */
  for (guint i = 0; i < DEPTH; i++)
    held[i] = pop_held (f);
  g_assert_false (calls[0].done);
  for (guint i = DEPTH; i-- > 0;)
    {
      guint32 n;

      g_variant_get (peer_call_get_parameters (held[i]), "(u)", &n);
      peer_call_return_value (held[i], g_variant_new ("(u)", n + 1000));
      peer_call_unref (held[i]);
    }
  PEER_TEST_WAIT_UNTIL (n_done == DEPTH);
  for (guint i = 0; i < DEPTH; i++)
    {
      guint32 n;

      g_assert_no_error (calls[i].error);
      g_variant_get (calls[i].reply, "(u)", &n);
      g_assert_cmpuint (n, ==, i + 1000);
      g_assert_true (calls[i].thread == g_thread_self ());
      /* The server answered them last to first, and the lane kept that. */
      g_assert_cmpuint (calls[i].order, ==, DEPTH - 1 - i);
      async_call_clear (&calls[i]);
    }
}

/* Twin: errors and replies mixed out of order each reach their own
 * caller, and an error ends only its own call. */
static void
test_out_of_order_errors (Fixture      *f,
                          gconstpointer data)
{
  AsyncCall calls[DEPTH] = { { 0 } };
  guint n_done = 0;

  for (guint i = 0; i < DEPTH; i++)
    {
      calls[i].n_done = &n_done;
      call_async (f, "Hold", g_variant_new ("(u)", i), -1, NULL, &calls[i]);
    }
  for (guint i = 0; i < DEPTH; i++)
    {
      g_autoptr(PeerCall) call = pop_held (f);
      guint32 n;

      g_variant_get (peer_call_get_parameters (call), "(u)", &n);
      if (n % 2 == 0)
        peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "refused %u", n);
      else
        peer_call_return_value (call, g_variant_new ("(u)", n));
    }
  PEER_TEST_WAIT_UNTIL (n_done == DEPTH);
  for (guint i = 0; i < DEPTH; i++)
    {
      if (i % 2 == 0)
        {
          g_autofree char *expected = g_strdup_printf ("refused %u", i);

          g_assert_error (calls[i].error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
          g_assert_cmpstr (calls[i].error->message, ==, expected);
          g_assert_null (calls[i].reply);
        }
      else
        {
          guint32 n;

          g_assert_no_error (calls[i].error);
          g_variant_get (calls[i].reply, "(u)", &n);
          g_assert_cmpuint (n, ==, i);
        }
      async_call_clear (&calls[i]);
    }
  g_assert_true (peer_client_has_lane (f->client));
}

/* A synchronous call is answered while asynchronous ones are held. */
static void
test_sync_beside_async (Fixture      *f,
                        gconstpointer data)
{
  AsyncCall calls[4] = { { 0 } };
  guint n_done = 0;

  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      calls[i].n_done = &n_done;
      call_async (f, "Hold", g_variant_new ("(u)", i), -1, NULL, &calls[i]);
    }
  for (guint i = 0; i < 100; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "Double",
                                                         g_variant_new ("(u)", i), G_VARIANT_TYPE ("(u)"),
                                                         -1, NULL, NULL, NULL, &error);
      guint32 n;

      g_assert_no_error (error);
      g_variant_get (reply, "(u)", &n);
      g_assert_cmpuint (n, ==, i * 2);
    }
  g_assert_cmpuint (n_done, ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      g_autoptr(PeerCall) call = pop_held (f);
      guint32 n;

      g_variant_get (peer_call_get_parameters (call), "(u)", &n);
      peer_call_return_value (call, g_variant_new ("(u)", n));
    }
  PEER_TEST_WAIT_UNTIL (n_done == G_N_ELEMENTS (calls));
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      guint32 n;

      g_assert_no_error (calls[i].error);
      g_variant_get (calls[i].reply, "(u)", &n);
      g_assert_cmpuint (n, ==, i);
      async_call_clear (&calls[i]);
    }
}

typedef struct {
  Fixture *f;
  guint base;
  guint n_bad;
} Caller;

static gpointer
call_many_in_thread (gpointer data)
{
  Caller *c = data;

  for (guint i = 0; i < 300; i++)
    {
      g_autoptr(GError) error = NULL;
      guint32 arg = c->base + i, n = 0;
      g_autoptr(GVariant) reply = peer_client_call_sync (c->f->client, TEST_PATH, TEST_IFACE, "Double",
                                                         g_variant_new ("(u)", arg), G_VARIANT_TYPE ("(u)"),
                                                         -1, NULL, NULL, NULL, &error);

      if (reply != NULL)
        g_variant_get (reply, "(u)", &n);
      if (error != NULL || n != arg * 2)
        c->n_bad++;
    }
  return NULL;
}

static void
on_double_done (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  guint *n_done = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  g_assert_no_error (error);
  (*n_done)++;
}

/* Four threads calling synchronously and the main thread asynchronously,
 * all on one lane at once: every reply is its own call's. */
static void
test_threads (Fixture      *f,
              gconstpointer data)
{
  Caller callers[4];
  GThread *threads[4];
  guint n_done = 0;

  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      callers[i] = (Caller) { f, (i + 1) * 100000, 0 };
      threads[i] = g_thread_new ("caller", call_many_in_thread, &callers[i]);
    }
  for (guint i = 0; i < 300; i++)
    peer_client_call (f->client, TEST_PATH, TEST_IFACE, "Double", g_variant_new ("(u)", i),
                      G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, on_double_done, &n_done);
  PEER_TEST_WAIT_UNTIL (n_done == 300);
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    {
      g_thread_join (threads[i]);
      g_assert_cmpuint (callers[i].n_bad, ==, 0);
    }
}

/* Cancelled while the server holds it: the caller hears at once; the late
 * reply, which carries an fd, is dropped and its fd closed; the lane goes
 * on. */
static void
test_cancel_mid_flight (Fixture      *f,
                        gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(PeerCall) held = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  AsyncCall c = { 0 };
  guint baseline;
  int pipe_fds[2];

  sync_with_server (f);
  peer_test_ping_async (f->client);
  baseline = peer_test_count_open_fds ();
  call_async (f, "HoldFd", NULL, -1, cancellable, &c);
  held = pop_held (f);
  g_cancellable_cancel (cancellable);
  PEER_TEST_WAIT_UNTIL (c.done);
  g_assert_error (c.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_null (c.reply);
  async_call_clear (&c);

  g_assert_cmpint (pipe (pipe_fds), ==, 0);
  g_assert_cmpint (g_unix_fd_list_append (fds, pipe_fds[0], NULL), ==, 0);
  close (pipe_fds[0]);
  close (pipe_fds[1]);
  peer_call_return_value_with_unix_fd_list (held, g_variant_new ("(h)", 0), fds);
  g_clear_pointer (&held, peer_call_unref);
  g_clear_object (&fds);
  sync_with_server (f);
  /* Nothing of the late reply is left on either side. At most: what the
   * previous test's connections had open may finish closing meanwhile. */
  {
    PeerTestDeadline deadline;
    guint n;

    peer_test_deadline_start (&deadline, 5000);
    do
      {
        peer_test_ping_async (f->client);
        n = peer_test_count_open_fds ();
      }
    while (n > baseline && !deadline.expired);
    peer_test_deadline_end (&deadline);
    g_assert_cmpuint (n, <=, baseline);
  }
  g_assert_true (peer_client_has_lane (f->client));
}

/* Twin: not cancelled, the same call gets its fd. */
static void
test_fd_reply_kept (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(PeerCall) held = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  AsyncCall c = { 0 };
  int pipe_fds[2];

  call_async (f, "HoldFd", NULL, -1, cancellable, &c);
  held = pop_held (f);
  g_assert_cmpint (pipe (pipe_fds), ==, 0);
  g_assert_cmpint (g_unix_fd_list_append (fds, pipe_fds[0], NULL), ==, 0);
  close (pipe_fds[0]);
  close (pipe_fds[1]);
  peer_call_return_value_with_unix_fd_list (held, g_variant_new ("(h)", 0), fds);
  PEER_TEST_WAIT_UNTIL (c.done);
  g_assert_no_error (c.error);
  g_assert_nonnull (c.fd_list);
  g_assert_cmpint (g_unix_fd_list_get_length (c.fd_list), ==, 1);
  async_call_clear (&c);
}

typedef struct {
  Fixture *f;
  GCancellable *cancellable;
  GError *error;
} SyncHold;

static gpointer
sync_hold_in_thread (gpointer data)
{
  SyncHold *s = data;
  g_autoptr(GVariant) reply = peer_client_call_sync (s->f->client, TEST_PATH, TEST_IFACE, "Hold",
                                                     g_variant_new ("(u)", 7), G_VARIANT_TYPE ("(u)"), -1,
                                                     NULL, NULL, s->cancellable, &s->error);

  g_assert_null (reply);
  return NULL;
}

/* A synchronous call cancelled from another thread, while an asynchronous
 * call is held beside it: it ends at once, the other is untouched. */
static void
test_cancel_sync_mid_flight (Fixture      *f,
                             gconstpointer data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  SyncHold s = { f, cancellable };
  AsyncCall c = { 0 };
  g_autoptr(PeerCall) held_sync = NULL;
  g_autoptr(PeerCall) held_async = NULL;
  GThread *thread;

  call_async (f, "Hold", g_variant_new ("(u)", 1), -1, NULL, &c);
  held_async = pop_held (f);
  thread = g_thread_new ("sync-hold", sync_hold_in_thread, &s);
  held_sync = pop_held (f);
  g_cancellable_cancel (cancellable);
  g_thread_join (thread);
  g_assert_error (s.error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&s.error);
  peer_call_return_value (held_sync, g_variant_new ("(u)", 7));
  g_assert_false (c.done);
  peer_call_return_value (held_async, g_variant_new ("(u)", 1));
  PEER_TEST_WAIT_UNTIL (c.done);
  g_assert_no_error (c.error);
  async_call_clear (&c);
}

/* An asynchronous call times out; its late reply is dropped and the next
 * call gets its own. */
static void
test_async_timeout (Fixture      *f,
                    gconstpointer data)
{
  g_autoptr(PeerCall) held = NULL;
  AsyncCall c = { 0 }, next = { 0 };
  guint32 n;

  call_async (f, "Hold", g_variant_new ("(u)", 1), 100, NULL, &c);
  held = pop_held (f);
  PEER_TEST_WAIT_UNTIL (c.done);
  g_assert_error (c.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  async_call_clear (&c);
  peer_call_return_value (held, g_variant_new ("(u)", 1));
  call_async (f, "Double", g_variant_new ("(u)", 21), -1, NULL, &next);
  PEER_TEST_WAIT_UNTIL (next.done);
  g_assert_no_error (next.error);
  g_variant_get (next.reply, "(u)", &n);
  g_assert_cmpuint (n, ==, 42);
  async_call_clear (&next);
}

/* The server drops the peer while it has eight asynchronous calls and a
 * synchronous one in flight: every one ends with DISCONNECTED, none
 * hangs. */
static void
test_peer_closes_with_calls_in_flight (Fixture      *f,
                                       gconstpointer data)
{
  AsyncCall calls[8] = { { 0 } };
  SyncHold s = { f, NULL };
  PeerCall *held[G_N_ELEMENTS (calls) + 1];
  guint n_done = 0;
  GThread *thread;

  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      calls[i].n_done = &n_done;
      call_async (f, "Hold", g_variant_new ("(u)", i), -1, NULL, &calls[i]);
    }
  thread = g_thread_new ("sync-hold", sync_hold_in_thread, &s);
  for (guint i = 0; i < G_N_ELEMENTS (held); i++)
    held[i] = pop_held (f);
  peer_test_server_close_peers (f->ts, 0);
  g_thread_join (thread);
  g_assert_error (s.error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_clear_error (&s.error);
  PEER_TEST_WAIT_UNTIL (n_done == G_N_ELEMENTS (calls));
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      g_assert_error (calls[i].error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
      async_call_clear (&calls[i]);
    }
  /* Replies to the vanished peer go nowhere, quietly. */
  for (guint i = 0; i < G_N_ELEMENTS (held); i++)
    {
      peer_call_return_value (held[i], g_variant_new ("(u)", 0));
      peer_call_unref (held[i]);
    }
}

/* Twin: a call made once the lane is gone fails at once, the same way. */
static void
test_call_after_close (Fixture      *f,
                       gconstpointer data)
{
  AsyncCall c = { 0 };

  peer_test_server_close_peers (f->ts, 0);
  PEER_TEST_WAIT_UNTIL (peer_client_is_closed (f->client));
  call_async (f, "Double", g_variant_new ("(u)", 1), -1, NULL, &c);
  PEER_TEST_WAIT_UNTIL (c.done);
  g_assert_error (c.error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  async_call_clear (&c);
}

/* --- ends in their own contexts, calls made from callbacks ---------------------------------- */

typedef struct {
  Fixture *f;
  GMainContext *context;
  AsyncCall call;
  gboolean called;              /* its call is in flight */
  gboolean go;                  /* it may run its context now */
  GMutex lock;
  GCond cond;
} OtherContext;

static gpointer
call_from_other_context (gpointer data)
{
  OtherContext *o = data;

  g_main_context_push_thread_default (o->context);
  call_async (o->f, "Double", g_variant_new ("(u)", 7), -1, NULL, &o->call);
  g_mutex_lock (&o->lock);
  o->called = TRUE;
  g_cond_broadcast (&o->cond);
  /* Not running its context meanwhile: the reply is read by the main
   * context's source, and waits for this one. */
  while (!o->go)
    g_cond_wait (&o->cond, &o->lock);
  g_mutex_unlock (&o->lock);
  PEER_TEST_WAIT_UNTIL (o->call.done);
  g_main_context_pop_thread_default (o->context);
  return NULL;
}

/* A thread's context that is not running has a call in flight while the
 * main context makes and finishes its own: the main context reads
 * whatever comes, its own ends return there, and the other's waits for
 * its own context, where it ends, in its thread. */
static void
test_ends_in_own_context (Fixture      *f,
                          gconstpointer data)
{
  OtherContext o = { f, g_main_context_new () };
  AsyncCall calls[4] = { { 0 } };
  guint n_done = 0;
  GThread *thread;
  guint32 n;

  g_mutex_init (&o.lock);
  g_cond_init (&o.cond);
  thread = g_thread_new ("other-context", call_from_other_context, &o);
  g_mutex_lock (&o.lock);
  while (!o.called)
    g_cond_wait (&o.cond, &o.lock);
  g_mutex_unlock (&o.lock);
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      calls[i].n_done = &n_done;
      call_async (f, "Double", g_variant_new ("(u)", i), -1, NULL, &calls[i]);
    }
  PEER_TEST_WAIT_UNTIL (n_done == G_N_ELEMENTS (calls));
  for (guint i = 0; i < G_N_ELEMENTS (calls); i++)
    {
      g_assert_no_error (calls[i].error);
      g_variant_get (calls[i].reply, "(u)", &n);
      g_assert_cmpuint (n, ==, 2 * i);
      g_assert_true (calls[i].thread == g_thread_self ());
      async_call_clear (&calls[i]);
    }
  /* Its reply came before the last of ours, and is still not its. */
  g_assert_false (o.call.done);

  g_mutex_lock (&o.lock);
  o.go = TRUE;
  g_cond_broadcast (&o.cond);
  g_mutex_unlock (&o.lock);
  g_thread_join (thread);
  g_assert_no_error (o.call.error);
  g_variant_get (o.call.reply, "(u)", &n);
  g_assert_cmpuint (n, ==, 14);
  g_assert_true (o.call.thread == thread);
  async_call_clear (&o.call);
  g_main_context_unref (o.context);
  g_cond_clear (&o.cond);
  g_mutex_clear (&o.lock);
}

typedef struct {
  Fixture *f;
  AsyncCall notes[3];
  guint n_done;
  gboolean called;
} FromCallback;

static void
on_note_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  AsyncCall *c = user_data;

  on_call_done (source, result, user_data);
  g_assert_no_error (c->error);
}

/* In a reply's callback: asynchronous calls (written together once the
 * callbacks are done), a synchronous one between them (which goes after
 * those made before it, not before), and one more. */
static void
on_first_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  FromCallback *fc = user_data;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, NULL);
  g_autoptr(GVariant) sync_reply = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_nonnull (reply);
  for (guint i = 0; i < 2; i++)
    {
      fc->notes[i].n_done = &fc->n_done;
      peer_client_call (fc->f->client, TEST_PATH, TEST_IFACE, "Note", g_variant_new ("(u)", i + 1), NULL, -1,
                        NULL, NULL, on_note_done, &fc->notes[i]);
    }
  sync_reply = peer_client_call_sync (fc->f->client, TEST_PATH, TEST_IFACE, "Note", g_variant_new ("(u)", 3),
                                      NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  fc->notes[2].n_done = &fc->n_done;
  peer_client_call (fc->f->client, TEST_PATH, TEST_IFACE, "Note", g_variant_new ("(u)", 4), NULL, -1,
                    NULL, NULL, on_note_done, &fc->notes[2]);
  fc->called = TRUE;
}

/* Calls made in a reply's callback reach the server in the order they
 * were made, asynchronous and synchronous alike, and each is answered. */
static void
test_calls_from_callback_in_order (Fixture      *f,
                                   gconstpointer data)
{
  FromCallback fc = { f };
  static const guint32 expected[] = { 1, 2, 3, 4 };

  peer_client_call (f->client, TEST_PATH, TEST_IFACE, "Double", g_variant_new ("(u)", 1), NULL, -1, NULL,
                    NULL, on_first_done, &fc);
  PEER_TEST_WAIT_UNTIL (fc.called && fc.n_done == G_N_ELEMENTS (fc.notes));
  g_mutex_lock (&f->lock);
  g_assert_cmpmem (f->noted->data, f->noted->len * sizeof (guint32), expected, sizeof expected);
  g_mutex_unlock (&f->lock);
  for (guint i = 0; i < G_N_ELEMENTS (fc.notes); i++)
    async_call_clear (&fc.notes[i]);
}

typedef struct _Nested Nested;

typedef struct {
  AsyncCall call;               /* first: on_call_done() takes it */
  Nested *nested;
} NestedCall;

struct _Nested {
  NestedCall calls[DEPTH];
  guint n_done;
  guint nested_at;              /* which call's callback ran the loop again */
};

static void
on_nested_done (GObject      *source,
                GAsyncResult *result,
                gpointer      user_data)
{
  NestedCall *c = user_data;
  Nested *nested = c->nested;
  guint order = nested->n_done;

  on_call_done (source, result, &c->call);
  if (order == 0)
    {
      /* The first: the rest end in a loop run from here, in order. */
      nested->nested_at = c->call.n;
      PEER_TEST_WAIT_UNTIL (nested->n_done == DEPTH);
    }
}

/* The first end's callback runs the loop until the others have ended:
 * they end in there, after it and in the order the server answered
 * them, as they would after it. */
static void
test_nested_loop_keeps_order (Fixture      *f,
                              gconstpointer data)
{
  Nested nested = { 0 };
  PeerCall *held[DEPTH];

  for (guint i = 0; i < DEPTH; i++)
    {
      nested.calls[i].nested = &nested;
      nested.calls[i].call.n = i;
      nested.calls[i].call.n_done = &nested.n_done;
      peer_client_call (f->client, TEST_PATH, TEST_IFACE, "Hold", g_variant_new ("(u)", i), NULL, -1, NULL,
                        NULL, on_nested_done, &nested.calls[i]);
    }
  for (guint i = 0; i < DEPTH; i++)
    held[i] = pop_held (f);
  /* Answered in one go, last to first. */
  for (guint i = DEPTH; i-- > 0;)
    {
      guint32 n;

      g_variant_get (peer_call_get_parameters (held[i]), "(u)", &n);
      peer_call_return_value (held[i], g_variant_new ("(u)", n));
      peer_call_unref (held[i]);
    }
  PEER_TEST_WAIT_UNTIL (nested.n_done == DEPTH);
  g_assert_cmpuint (nested.nested_at, ==, DEPTH - 1);
  for (guint i = 0; i < DEPTH; i++)
    {
      g_assert_no_error (nested.calls[i].call.error);
      g_assert_cmpuint (nested.calls[i].call.order, ==, DEPTH - 1 - i);
      async_call_clear (&nested.calls[i].call);
    }
}

/* A call with a short timeout made after one with the default: it ends
 * on time, the other goes on and gets its reply. */
static void
test_shorter_timeout_after_longer (Fixture      *f,
                                   gconstpointer data)
{
  g_autoptr(PeerCall) first = NULL;
  g_autoptr(PeerCall) second = NULL;
  AsyncCall longer = { 0 }, shorter = { 0 };
  guint32 n;

  call_async (f, "Hold", g_variant_new ("(u)", 1), -1, NULL, &longer);
  first = pop_held (f);
  call_async (f, "Hold", g_variant_new ("(u)", 2), 100, NULL, &shorter);
  second = pop_held (f);
  PEER_TEST_WAIT_UNTIL (shorter.done);
  g_assert_error (shorter.error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_assert_false (longer.done);
  peer_call_return_value (first, g_variant_new ("(u)", 1));
  peer_call_return_value (second, g_variant_new ("(u)", 2));
  PEER_TEST_WAIT_UNTIL (longer.done);
  g_assert_no_error (longer.error);
  g_variant_get (longer.reply, "(u)", &n);
  g_assert_cmpuint (n, ==, 1);
  async_call_clear (&longer);
  async_call_clear (&shorter);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/lane/pipeline/out-of-order", test_out_of_order);
  ADD ("/peer/lane/pipeline/out-of-order-errors", test_out_of_order_errors);
  ADD ("/peer/lane/pipeline/sync-beside-async", test_sync_beside_async);
  ADD ("/peer/lane/pipeline/threads", test_threads);
  ADD ("/peer/lane/pipeline/cancel-mid-flight", test_cancel_mid_flight);
  ADD ("/peer/lane/pipeline/fd-reply-kept", test_fd_reply_kept);
  ADD ("/peer/lane/pipeline/cancel-sync-mid-flight", test_cancel_sync_mid_flight);
  ADD ("/peer/lane/pipeline/async-timeout", test_async_timeout);
  ADD ("/peer/lane/pipeline/peer-closes-with-calls-in-flight", test_peer_closes_with_calls_in_flight);
  ADD ("/peer/lane/pipeline/call-after-close", test_call_after_close);
  ADD ("/peer/lane/pipeline/ends-in-own-context", test_ends_in_own_context);
  ADD ("/peer/lane/pipeline/calls-from-callback-in-order", test_calls_from_callback_in_order);
  ADD ("/peer/lane/pipeline/nested-loop-keeps-order", test_nested_loop_keeps_order);
  ADD ("/peer/lane/pipeline/shorter-timeout-after-longer", test_shorter_timeout_after_longer);
#undef ADD
  return g_test_run ();
}
