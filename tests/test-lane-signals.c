/* test-lane-signals.c: signals on the lane of a client that subscribed:
 * a signal emitted before a reply arrives before it (over the connection
 * it could be overtaken by the lane's reply), subscriptions filter as on
 * the connection, an unsubscribed callback hears nothing more, and a
 * client with a lane but no subscription keeps its signals on the
 * connection. */
#include "config.h"

#include <string.h>

#include "peer-client-private.h"
#include "peer-lane-private.h"
#include "peer-test-util.h"

#define TEST_PATH "/org/libpeer/SignalsTest"
#define TEST_IFACE "org.libpeer.SignalsTest1"

static const char test_xml[] =
  "<node><interface name='" TEST_IFACE "'>"
  " <method name='EmitThenReply'>"
  "  <arg name='n' type='u' direction='in'/>"
  "  <arg name='n' type='u' direction='out'/>"
  " </method>"
  " <method name='Burst'>"
  "  <arg name='count' type='u' direction='in'/>"
  " </method>"
  " <signal name='Tick'><arg name='n' type='u'/></signal>"
  " <signal name='Other'/>"
  "</interface></node>";

typedef struct {
  PeerTestServer *ts;
  PeerInterface *iface;
  PeerClient *client;
  guint32 next_tick;            /* the server's context only: Burst's and the ticker's */
} Fixture;

/* In the server's context: @count Tick signals, numbered on from the last. */
static void
emit_ticks (Fixture *f,
            guint    count)
{
  for (guint i = 0; i < count; i++)
    {
      g_autoptr(GError) error = NULL;

      g_assert_true (peer_server_emit_signal (f->ts->server, NULL, TEST_PATH, TEST_IFACE, "Tick",
                                              g_variant_new ("(u)", ++f->next_tick), &error));
      g_assert_no_error (error);
    }
}

static void
handle_burst (PeerCall *call,
              gpointer  user_data)
{
  guint32 count;

  g_variant_get (peer_call_get_parameters (call), "(u)", &count);
  emit_ticks (user_data, count);
  peer_call_return_value (call, NULL);
}

/* Thread-safe: on the lane's loop, the signal is written before the
 * reply. */
static void
handle_emit_then_reply (PeerCall *call,
                        gpointer  user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  guint32 n;

  g_variant_get (peer_call_get_parameters (call), "(u)", &n);
  g_assert_true (peer_server_emit_signal (f->ts->server, NULL, TEST_PATH, TEST_IFACE, "Tick",
                                          g_variant_new ("(u)", n), &error));
  g_assert_true (peer_server_emit_signal (f->ts->server, NULL, TEST_PATH, TEST_IFACE, "Other", NULL, &error));
  peer_call_return_value (call, g_variant_new ("(u)", n));
}

/* TEST_IFACE's handlers, called with the Fixture. */
static const PeerMethodEntry test_entries[] = {
  { "EmitThenReply", handle_emit_then_reply, PEER_METHOD_FLAGS_THREAD_SAFE },
  { "Burst", handle_burst, PEER_METHOD_FLAGS_NONE },
};

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  f->ts = peer_test_server_start ();
  f->iface = peer_test_export (f->ts, TEST_PATH, test_xml, TEST_IFACE, test_entries, G_N_ELEMENTS (test_entries), f);
  f->client = peer_test_connect (f->ts, TRUE);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  peer_test_finish (f->client, f->ts, f->iface);
}

/* The client's TakeSignals (sent without waiting as it subscribed) has
 * been handled once a second one, behind it on the connection and handled
 * in the same context, is answered. */
static void
sync_connection (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_sync (f->client, PEER_LANE_PATH, PEER_LANE_INTERFACE,
                                                     "TakeSignals", NULL, G_VARIANT_TYPE_UNIT, -1, NULL, NULL,
                                                     NULL, &error);

  g_assert_no_error (error);
}

typedef struct {
  guint ticks;                  /* Tick signals heard */
  guint others;
  guint last_tick;
  guint replies;
  guint out_of_order;           /* replies whose Tick had not been heard */
  GThread *thread;
} Heard;

static void
on_tick (PeerClient *client,
         const char *object_path,
         const char *interface_name,
         const char *signal_name,
         GVariant   *parameters,
         gpointer    user_data)
{
  Heard *h = user_data;
  guint32 n;

  g_assert_cmpstr (object_path, ==, TEST_PATH);
  g_assert_cmpstr (interface_name, ==, TEST_IFACE);
  g_assert_cmpstr (signal_name, ==, "Tick");
  g_variant_get (parameters, "(u)", &n);
  h->ticks++;
  h->last_tick = n;
  h->thread = g_thread_self ();
}

static void
on_other (PeerClient *client,
          const char *object_path,
          const char *interface_name,
          const char *signal_name,
          GVariant   *parameters,
          gpointer    user_data)
{
  Heard *h = user_data;

  g_assert_cmpstr (signal_name, ==, "Other");
  h->others++;
}

static void
on_reply (GObject      *source,
          GAsyncResult *result,
          gpointer      user_data)
{
  Heard *h = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);
  guint32 n;

  g_assert_no_error (error);
  g_variant_get (reply, "(u)", &n);
  /* Its Tick, emitted before the reply, was heard first. */
  if (h->ticks == 0 || h->last_tick < n)
    h->out_of_order++;
  h->replies++;
}

#define N_CALLS 50

/* Each call's handler emits Tick(n) and then replies n, on the lane's
 * loop: with the signals on the lane, every reply finds its Tick heard. */
static void
test_signal_before_reply (Fixture      *f,
                          gconstpointer data)
{
  Heard h = { 0 };
  guint id = peer_client_subscribe_signal (f->client, TEST_PATH, TEST_IFACE, "Tick", on_tick, &h, NULL);

  sync_connection (f);
  for (guint i = 0; i < N_CALLS; i++)
    peer_client_call (f->client, TEST_PATH, TEST_IFACE, "EmitThenReply", g_variant_new ("(u)", i + 1),
                      G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, on_reply, &h);
  PEER_TEST_WAIT_UNTIL (h.replies == N_CALLS);
  g_assert_cmpuint (h.out_of_order, ==, 0);
  PEER_TEST_WAIT_UNTIL (h.ticks == N_CALLS);
  g_assert_true (h.thread == g_thread_self ());
  peer_client_unsubscribe_signal (f->client, id);
}

/* Subscriptions filter by member as on the connection; after
 * unsubscribing, a callback hears nothing more (its twin, still
 * subscribed, does). */
static void
test_filter_and_unsubscribe (Fixture      *f,
                             gconstpointer data)
{
  Heard ticks = { 0 }, others = { 0 };
  guint tick_id = peer_client_subscribe_signal (f->client, TEST_PATH, TEST_IFACE, "Tick", on_tick, &ticks, NULL);
  guint other_id = peer_client_subscribe_signal (f->client, NULL, TEST_IFACE, "Other", on_other, &others, NULL);
  Heard replies = { 0 };

  sync_connection (f);
  peer_client_call (f->client, TEST_PATH, TEST_IFACE, "EmitThenReply", g_variant_new ("(u)", 1),
                    G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, on_reply, &replies);
  PEER_TEST_WAIT_UNTIL (replies.replies == 1 && ticks.ticks == 1 && others.others == 1);

  peer_client_unsubscribe_signal (f->client, tick_id);
  replies = (Heard) { 0 };
  replies.ticks = 1;
  replies.last_tick = G_MAXUINT;        /* this callback checks no order */
  peer_client_call (f->client, TEST_PATH, TEST_IFACE, "EmitThenReply", g_variant_new ("(u)", 2),
                    G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, on_reply, &replies);
  PEER_TEST_WAIT_UNTIL (replies.replies == 1 && others.others == 2);
  /* Other came after Tick, in order: Tick would have been heard by now. */
  g_assert_cmpuint (ticks.ticks, ==, 1);
  peer_client_unsubscribe_signal (f->client, other_id);
}

/* Twin: a client with a lane and no subscription leaves signals on the
 * connection (nothing reads the lane for them), and its first
 * subscription there hears them all the same. */
static void
test_no_subscription_no_lane_signals (Fixture      *f,
                                      gconstpointer data)
{
  Heard h = { 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  guint id;

  reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "EmitThenReply", g_variant_new ("(u)", 1),
                                 G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  id = peer_client_subscribe_signal (f->client, TEST_PATH, TEST_IFACE, "Tick", on_tick, &h, NULL);
  g_clear_pointer (&reply, g_variant_unref);
  reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "EmitThenReply", g_variant_new ("(u)", 2),
                                 G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (h.ticks >= 1 && h.last_tick == 2);
  peer_client_unsubscribe_signal (f->client, id);
}

/* --- the switch itself ------------------------------------------------------ */

/* Bursts of Tick(n), n counting up, from the server's context, while a
 * client subscribes: the signals sent on the connection before the
 * switch and those on the lane after it arrive in order. */
#define BURST 20
#define TICKS_AFTER_SWITCH 400

typedef struct {
  Fixture *f;
  GSource *source;
} Ticker;

static gboolean
on_ticker (gpointer data)
{
  Ticker *t = data;

  emit_ticks (t->f, BURST);
  return G_SOURCE_CONTINUE;
}

static gboolean
start_ticker (gpointer data)
{
  Ticker *t = data;

  t->source = g_timeout_source_new (1);
  g_source_set_callback (t->source, on_ticker, t, NULL);
  g_source_attach (t->source, t->f->ts->context);
  return G_SOURCE_REMOVE;
}

static gboolean
stop_ticker (gpointer data)
{
  Ticker *t = data;

  g_source_destroy (t->source);
  g_clear_pointer (&t->source, g_source_unref);
  return G_SOURCE_REMOVE;
}

typedef struct {
  guint heard;
  guint32 first;
  guint32 last;
  guint out_of_order;           /* a Tick not one more than the one before */
} Sequence;

static void
on_sequenced_tick (PeerClient *client,
                   const char *object_path,
                   const char *interface_name,
                   const char *signal_name,
                   GVariant   *parameters,
                   gpointer    user_data)
{
  Sequence *seq = user_data;
  guint32 n;

  g_variant_get (parameters, "(u)", &n);
  if (seq->heard == 0)
    seq->first = n;
  else if (n != seq->last + 1)
    {
      g_test_message ("Tick %u after %u", n, seq->last);
      seq->out_of_order++;
    }
  seq->last = n;
  seq->heard++;
}

static void
run_switch (Fixture *f,
            gboolean lane)
{
  Ticker t = { .f = f };
  Sequence seq = { 0 };
  g_autoptr(PeerClient) plain = NULL;
  PeerClient *client = f->client;
  guint id;

  if (!lane)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = NULL;

      /* A call first, as the lane's client opened its lane: a peer that
       * has said nothing gets its signals only after a grace period. */
      client = plain = peer_test_connect (f->ts, FALSE);
      reply = peer_client_call_sync (client, TEST_PATH, TEST_IFACE, "EmitThenReply", g_variant_new ("(u)", 0),
                                     G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, NULL, &error);
      g_assert_no_error (error);
    }
  peer_test_server_invoke (f->ts, start_ticker, &t);
  id = peer_client_subscribe_signal (client, TEST_PATH, TEST_IFACE, "Tick", on_sequenced_tick, &seq, NULL);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) reply = NULL;

    /* Without running this context, where the signals are delivered:
     * once the server has switched (its reply to a second TakeSignals,
     * behind the first, is back), the Ticks it sent on the connection
     * before are waiting here in GDBus's idles; a burst on the lane
     * after them, read before Burst's reply, waits in the lane's source,
     * which was made first. Delivered by whichever runs first, the burst
     * would overtake them. */
    if (lane)
      sync_connection (f);
    reply = peer_client_call_sync (client, TEST_PATH, TEST_IFACE, "Burst", g_variant_new ("(u)", BURST),
                                   NULL, -1, NULL, NULL, NULL, &error);
    g_assert_no_error (error);
  }
  PEER_TEST_WAIT_UNTIL (seq.heard >= TICKS_AFTER_SWITCH);
  peer_test_server_invoke (f->ts, stop_ticker, &t);
  peer_client_unsubscribe_signal (client, id);
  g_assert_cmpuint (seq.out_of_order, ==, 0);
  g_assert_cmpuint (seq.last - seq.first + 1, ==, seq.heard);
  /* The lane's client took its signals on the lane meanwhile. */
  if (lane)
    g_assert_true (f->client->lane_signals_taken);
}

static void
test_switch_keeps_order (Fixture      *f,
                         gconstpointer data)
{
  run_switch (f, TRUE);
}

/* Twin: the same flow without a lane, where nothing switches. */
static void
test_no_switch_same_order (Fixture      *f,
                           gconstpointer data)
{
  run_switch (f, FALSE);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/lane/signals/signal-before-reply", test_signal_before_reply);
  ADD ("/peer/lane/signals/filter-and-unsubscribe", test_filter_and_unsubscribe);
  ADD ("/peer/lane/signals/no-subscription", test_no_subscription_no_lane_signals);
  ADD ("/peer/lane/signals/switch-keeps-order", test_switch_keeps_order);
  ADD ("/peer/lane/signals/no-switch-same-order", test_no_switch_same_order);
#undef ADD
  return g_test_run ();
}
