/* peer-client-signals.c: a PeerClient's signal subscriptions.
 *
 * Each subscription is GDBus's on the connection; once the client has a
 * lane and a subscription, the server is asked (TakeSignals) to send its
 * signals on the lane instead, in order with its replies, and they are
 * delivered from here to each subscription that matches, in its context.
 * The PeerClient itself, its connecting and its lane's opening are
 * peer-client.c's; its calls are peer-client-calls.c's. What the three
 * share is in peer-client-private.h.
 */
#include "config.h"

#include "peer-client-private.h"
#include "peer-lane-private.h"

/* --- signals ------------------------------------------------------------ */

/* A subscription, delivered by GDBus for signals on the connection and
 * by the lane for signals on it (after TakeSignals). Refcounted: GDBus's
 * hold ends when it is unsubscribed, each lane delivery on its way holds
 * one too, and @user_data goes with the last. */
typedef struct {
  gatomicrefcount ref_count;
  GWeakRef client;                      /* the GDBusConnection may outlive it */
  PeerSignalFunc callback;
  gpointer user_data;
  GDestroyNotify destroy;
  /* For the lane's deliveries; read-only */
  char *object_path;
  char *interface_name;
  char *signal_name;
  GMainContext *context;
  gint active;                          /* atomic: not yet unsubscribed */
  guint id;                             /* GDBus's, under the client's lock */
} Subscription;

static void
subscription_unref (gpointer data)
{
  Subscription *sub = data;

  if (!g_atomic_ref_count_dec (&sub->ref_count))
    return;
  if (sub->destroy != NULL)
    sub->destroy (sub->user_data);
  g_weak_ref_clear (&sub->client);
  g_free (sub->object_path);
  g_free (sub->interface_name);
  g_free (sub->signal_name);
  g_main_context_unref (sub->context);
  g_free (sub);
}

/* GDBus's destroy notify: unsubscribed. */
static void
subscription_end (gpointer data)
{
  Subscription *sub = data;
  g_autoptr(PeerClient) client = g_weak_ref_get (&sub->client);

  g_atomic_int_set (&sub->active, FALSE);
  if (client != NULL)
    {
      g_mutex_lock (&client->lock);
      if (client->lane_subscriptions != NULL)
        g_ptr_array_remove (client->lane_subscriptions, sub);
      g_mutex_unlock (&client->lock);
    }
  subscription_unref (sub);
}

static void
on_signal (GDBusConnection *connection,
           const char      *sender_name,
           const char      *object_path,
           const char      *interface_name,
           const char      *signal_name,
           GVariant        *parameters,
           gpointer         user_data)
{
  Subscription *sub = user_data;
  g_autoptr(PeerClient) client = g_weak_ref_get (&sub->client);

  if (client != NULL)
    sub->callback (client, object_path, interface_name, signal_name, parameters, sub->user_data);
}

/* A signal from the lane, on its way to one subscription's context. */
typedef struct {
  Subscription *sub;                    /* holds the client weakly, as GDBus's deliveries do */
  char *object_path;
  char *interface_name;
  char *signal_name;
  GVariant *parameters;
} LaneSignal;

static void
lane_signal_free (gpointer data)
{
  LaneSignal *ls = data;

  subscription_unref (ls->sub);
  g_free (ls->object_path);
  g_free (ls->interface_name);
  g_free (ls->signal_name);
  g_variant_unref (ls->parameters);
  g_free (ls);
}

/* --- the switch to the lane ---------------------------------------------- */

/* Signals the server sent on the connection before it switched to the
 * lane are delivered by GDBus from idles it attaches to each
 * subscription's context as it reads them; those it sends on the lane
 * after are read by another thread and would be delivered by the lane's
 * own source in the same context, which may run first. So the lane's
 * signals are held until the switch is known to be done: the server
 * answers TakeSignals on the connection after every signal it sent there
 * (peer-connection.c sends both under one lock), and once a filter sees
 * that reply go by on GDBus's worker thread, every earlier signal's idle
 * is attached. Then each context of a subscription gets an idle of its
 * own, behind those: it delivers what the lane held for that context, and
 * from then on the lane delivers there directly. Refcounted: the client,
 * the connection's filter and each such idle hold it. */
typedef struct _SignalSwitch {
  gatomicrefcount ref_count;
  GMutex lock;
  /* Protected by @lock */
  guint32 serial;                       /* TakeSignals's; 0 until it is sent */
  gboolean seen;                        /* its reply (or error) went by */
  GHashTable *contexts;                 /* GMainContext* (a ref) of every subscription since */
  GHashTable *held;                     /* GMainContext* (a ref) -> GQueue of LaneSignal*: not yet released */
} SignalSwitch;

static void lane_signal_free (gpointer data);

static void
held_queue_free (gpointer data)
{
  g_queue_free_full (data, lane_signal_free);
}

static SignalSwitch *
signal_switch_new (void)
{
  SignalSwitch *sw = g_new0 (SignalSwitch, 1);

  g_atomic_ref_count_init (&sw->ref_count);
  g_mutex_init (&sw->lock);
  sw->contexts = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) g_main_context_unref, NULL);
  sw->held = g_hash_table_new_full (NULL, NULL, (GDestroyNotify) g_main_context_unref, held_queue_free);
  return sw;
}

static SignalSwitch *
signal_switch_ref (SignalSwitch *sw)
{
  g_atomic_ref_count_inc (&sw->ref_count);
  return sw;
}

static void
signal_switch_unref (gpointer data)
{
  SignalSwitch *sw = data;

  if (!g_atomic_ref_count_dec (&sw->ref_count))
    return;
  g_hash_table_unref (sw->contexts);
  g_hash_table_unref (sw->held);
  g_mutex_clear (&sw->lock);
  g_free (sw);
}

/* A subscription's context, which will need its idle when the switch is
 * seen (GDBus may have signals on their way there). */
static void
signal_switch_add_context (SignalSwitch *sw,
                           GMainContext *context)
{
  g_mutex_lock (&sw->lock);
  if (!sw->seen && !g_hash_table_contains (sw->contexts, context))
    g_hash_table_add (sw->contexts, g_main_context_ref (context));
  g_mutex_unlock (&sw->lock);
}

/* The reader's thread: whether @ls is held (taken) until @context's idle. */
static gboolean
signal_switch_hold (SignalSwitch *sw,
                    GMainContext *context,
                    LaneSignal   *ls);

typedef struct {
  SignalSwitch *sw;
  GMainContext *context;
} SwitchRelease;

static void
switch_release_free (gpointer data)
{
  SwitchRelease *release = data;

  signal_switch_unref (release->sw);
  g_main_context_unref (release->context);
  g_free (release);
}

static gboolean deliver_lane_signal (gpointer data);

/* In @context, behind the idles of the signals GDBus read before the
 * switch: what the lane held for it, in order; then the lane delivers
 * there itself. */
static gboolean
release_held (gpointer data)
{
  SwitchRelease *release = data;
  GQueue *queue = NULL;
  LaneSignal *ls;

  g_mutex_lock (&release->sw->lock);
  g_hash_table_steal_extended (release->sw->held, release->context, NULL, (gpointer *) &queue);
  g_mutex_unlock (&release->sw->lock);
  if (queue == NULL)
    return G_SOURCE_REMOVE;
  g_main_context_unref (release->context);   /* the table's */
  while ((ls = g_queue_pop_head (queue)) != NULL)
    {
      deliver_lane_signal (ls);
      lane_signal_free (ls);
    }
  g_queue_free (queue);
  return G_SOURCE_REMOVE;
}

/* GDBus's worker thread, for every message: the reply to TakeSignals
 * going by ends the switch. */
static GDBusMessage *
signal_switch_filter (GDBusConnection *connection,
                      GDBusMessage    *message,
                      gboolean         incoming,
                      gpointer         data)
{
  SignalSwitch *sw = data;
  GDBusMessageType type = g_dbus_message_get_message_type (message);
  GHashTableIter iter;
  gpointer context;

  if (!incoming || (type != G_DBUS_MESSAGE_TYPE_METHOD_RETURN && type != G_DBUS_MESSAGE_TYPE_ERROR))
    return message;
  g_mutex_lock (&sw->lock);
  if (sw->seen || sw->serial == 0 || g_dbus_message_get_reply_serial (message) != sw->serial)
    {
      g_mutex_unlock (&sw->lock);
      return message;
    }
  sw->seen = TRUE;
  g_hash_table_iter_init (&iter, sw->contexts);
  while (g_hash_table_iter_next (&iter, &context, NULL))
    {
      SwitchRelease *release = g_new0 (SwitchRelease, 1);
      GSource *idle = g_idle_source_new ();

      /* Every context waits for its idle, held signals or not. */
      if (!g_hash_table_contains (sw->held, context))
        g_hash_table_insert (sw->held, g_main_context_ref (context), g_queue_new ());
      release->sw = signal_switch_ref (sw);
      release->context = g_main_context_ref (context);
      /* GDBus's signal idles have the default priority too: this one,
       * attached after them, runs after them. */
      g_source_set_priority (idle, G_PRIORITY_DEFAULT);
      g_source_set_callback (idle, release_held, release, switch_release_free);
      g_source_set_static_name (idle, "[libpeer] lane signals released");
      g_source_attach (idle, context);
      g_source_unref (idle);
    }
  g_hash_table_remove_all (sw->contexts);
  g_mutex_unlock (&sw->lock);
  return message;
}

static gboolean
signal_switch_hold (SignalSwitch *sw,
                    GMainContext *context,
                    LaneSignal   *ls)
{
  GQueue *queue;

  g_mutex_lock (&sw->lock);
  queue = g_hash_table_lookup (sw->held, context);
  if (queue == NULL && !sw->seen)
    {
      queue = g_queue_new ();
      g_hash_table_insert (sw->held, g_main_context_ref (context), queue);
    }
  if (queue != NULL)
    g_queue_push_tail (queue, ls);
  g_mutex_unlock (&sw->lock);
  return queue != NULL;
}

void
_peer_client_clear_signal_switch (PeerClient      *self,
                                  GDBusConnection *connection)
{
  if (connection != NULL)
    {
      if (self->signal_switch_filter != 0)
        g_dbus_connection_remove_filter (connection, self->signal_switch_filter);
      self->signal_switch_filter = 0;
      return;
    }
  g_clear_pointer (&self->signal_switch, signal_switch_unref);
}

/* In the subscription's context. */
static gboolean
deliver_lane_signal (gpointer data)
{
  LaneSignal *ls = data;
  g_autoptr(PeerClient) client = g_weak_ref_get (&ls->sub->client);

  if (client != NULL && g_atomic_int_get (&ls->sub->active))
    ls->sub->callback (client, ls->object_path, ls->interface_name, ls->signal_name, ls->parameters,
                       ls->sub->user_data);
  return G_SOURCE_REMOVE;
}

/* On the thread reading the lane: each subscription that matches gets
 * the signal in its context, in order with the replies read before it.
 * @data, the client, is not yet finalized: the lane (and its reader) go
 * in its finalize, and its dispose empties the list first. */
static void
on_lane_signal (PeerLaneClient *lane,
                const char     *object_path,
                const char     *interface_name,
                const char     *signal_name,
                GVariant       *parameters,
                gpointer        data)
{
  PeerClient *self = data;

  g_mutex_lock (&self->lock);
  for (guint i = 0; self->lane_subscriptions != NULL && i < self->lane_subscriptions->len; i++)
    {
      Subscription *sub = g_ptr_array_index (self->lane_subscriptions, i);
      LaneSignal *ls;

      if ((sub->object_path != NULL && !g_str_equal (sub->object_path, object_path)) ||
          (sub->interface_name != NULL && !g_str_equal (sub->interface_name, interface_name)) ||
          (sub->signal_name != NULL && !g_str_equal (sub->signal_name, signal_name)))
        continue;
      ls = g_new0 (LaneSignal, 1);
      g_atomic_ref_count_inc (&sub->ref_count);
      ls->sub = sub;
      ls->object_path = g_strdup (object_path);
      ls->interface_name = g_strdup (interface_name);
      ls->signal_name = g_strdup (signal_name);
      ls->parameters = g_variant_ref (parameters);
      if (self->signal_switch == NULL || !signal_switch_hold (self->signal_switch, sub->context, ls))
        _peer_lane_client_deliver (lane, sub->context, deliver_lane_signal, ls, lane_signal_free);
    }
  g_mutex_unlock (&self->lock);
}

/* Once there is a lane and a subscription: the server sends signals on
 * the lane, in order with its replies, instead of the connection. Any
 * thread; asked once, without waiting (until the server switches,
 * signals keep coming on the connection, each one way or the other). */
void
_peer_client_take_lane_signals (PeerClient *self)
{
  PeerLaneClient *lane = g_atomic_pointer_get (&self->lane);
  gboolean wanted;

  if (lane == NULL)
    return;
  g_mutex_lock (&self->lock);
  wanted = self->lane_subscriptions != NULL && self->lane_subscriptions->len > 0 && !self->lane_signals_taken;
  if (wanted)
    {
      self->lane_signals_taken = TRUE;
      self->signal_switch = signal_switch_new ();
    }
  g_mutex_unlock (&self->lock);
  if (!wanted)
    return;
  {
    g_autoptr(GDBusMessage) message = g_dbus_message_new_method_call (NULL, PEER_LANE_PATH, PEER_LANE_INTERFACE,
                                                                     "TakeSignals");
    SignalSwitch *sw = self->signal_switch;
    guint32 serial = 0;

    /* The contexts subscribed so far; later ones are added as they come. */
    g_mutex_lock (&self->lock);
    for (guint i = 0; self->lane_subscriptions != NULL && i < self->lane_subscriptions->len; i++)
      signal_switch_add_context (sw, ((Subscription *) g_ptr_array_index (self->lane_subscriptions, i))->context);
    g_mutex_unlock (&self->lock);
    _peer_lane_client_set_signal_func (lane, on_lane_signal, self);
    self->signal_switch_filter = g_dbus_connection_add_filter (self->connection, signal_switch_filter,
                                                               signal_switch_ref (sw), signal_switch_unref);
    /* Under the switch's lock until its serial is known: the filter waits
     * for it (it takes nothing GDBus holds as it sends). */
    g_mutex_lock (&sw->lock);
    if (!g_dbus_connection_send_message (self->connection, message, G_DBUS_SEND_MESSAGE_FLAGS_NONE, &serial, NULL))
      sw->seen = TRUE;                  /* closed: no signal comes any more, nor any reply */
    sw->serial = serial;
    g_mutex_unlock (&sw->lock);
  }
}

guint
peer_client_subscribe_signal (PeerClient     *self,
                              const char     *object_path,
                              const char     *interface_name,
                              const char     *signal_name,
                              PeerSignalFunc  callback,
                              gpointer        user_data,
                              GDestroyNotify  destroy)
{
  Subscription *sub;
  guint id;

  g_return_val_if_fail (PEER_IS_CLIENT (self), 0);
  g_return_val_if_fail (callback != NULL, 0);

  sub = g_new0 (Subscription, 1);
  g_atomic_ref_count_init (&sub->ref_count);
  g_weak_ref_init (&sub->client, self);
  sub->callback = callback;
  sub->user_data = user_data;
  sub->destroy = destroy;
  sub->object_path = g_strdup (object_path);
  sub->interface_name = g_strdup (interface_name);
  sub->signal_name = g_strdup (signal_name);
  sub->context = g_main_context_ref_thread_default ();
  sub->active = TRUE;
  g_mutex_lock (&self->lock);
  if (self->lane_subscriptions == NULL)
    self->lane_subscriptions = g_ptr_array_new ();
  g_ptr_array_add (self->lane_subscriptions, sub);
  if (self->signal_switch != NULL)
    signal_switch_add_context (self->signal_switch, sub->context);
  g_mutex_unlock (&self->lock);
  id = g_dbus_connection_signal_subscribe (self->connection, NULL, interface_name, signal_name,
                                           object_path, NULL, G_DBUS_SIGNAL_FLAGS_NONE,
                                           on_signal, sub, subscription_end);
  g_mutex_lock (&self->lock);
  sub->id = id;
  g_mutex_unlock (&self->lock);
  _peer_client_take_lane_signals (self);
  return id;
}

void
peer_client_unsubscribe_signal (PeerClient *self,
                                guint       subscription_id)
{
  g_return_if_fail (PEER_IS_CLIENT (self));
  /* The lane delivers nothing more to it from now on, as GDBus does not
   * (whose own end of it, subscription_end(), comes later, from an idle
   * of its own). */
  g_mutex_lock (&self->lock);
  for (guint i = 0; self->lane_subscriptions != NULL && i < self->lane_subscriptions->len; i++)
    {
      Subscription *sub = g_ptr_array_index (self->lane_subscriptions, i);

      if (sub->id == subscription_id)
        {
          g_atomic_int_set (&sub->active, FALSE);
          g_ptr_array_remove_index (self->lane_subscriptions, i);
          break;
        }
    }
  g_mutex_unlock (&self->lock);
  g_dbus_connection_signal_unsubscribe (self->connection, subscription_id);
}
