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
    self->lane_signals_taken = TRUE;
  g_mutex_unlock (&self->lock);
  if (!wanted)
    return;
  _peer_lane_client_set_signal_func (lane, on_lane_signal, self);
  g_dbus_connection_call (self->connection, NULL, PEER_LANE_PATH, PEER_LANE_INTERFACE, "TakeSignals", NULL,
                          NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL, NULL);
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
