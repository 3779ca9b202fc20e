/* peer-lane-client-source.c: each context's source on a lane, where
 * the lane's asynchronous calls end.
 *
 * The lane itself (its table, calls by name, synchronous calls, reading
 * and writing frames, the reader thread) is peer-lane-client.c's; what
 * the two files share is in peer-lane-client-private.h.
 *
 * Asynchronous calls end in their callers' main contexts, and are read
 * for there: each context with calls on the lane has a LaneSource, which
 * polls the lane's socket beside the context's other sources while its
 * calls are in flight, reads what has come (every frame there is, for
 * whichever call it answers), and returns its own calls' ends in the
 * same dispatch, in the order read: no thread in between, no wake-up but
 * the socket's. Ends read by another thread (a synchronous caller, or
 * another context's source) are queued on the source, which wakes its
 * context if another thread owns it. The source also ends its calls that time out (one
 * deadline for all of them, not a timeout source each). Calls made while
 * a source returns its calls' ends (a caller calling again from its
 * callback) are written together as the dispatch ends. Once signals come
 * on the lane (_peer_lane_client_set_signal_func()), a reader thread
 * reads it always, and the sources only return what it queues, signals
 * in order with replies.
 */
#include "config.h"

#include "peer-lane-client-private.h"

/* --- a context's source ------------------------------------------------------ */

/* The thread returning ends in a source's dispatch: calls it makes on
 * that source's lane are corked. */
__thread LaneSource *_peer_lane_client_returning_source;

/* @lock held: @source dispatches soon, unless it is about to already.
 * On its context's owner this costs nothing (the context looks before
 * it polls again); from another thread, a wake-up of the context. Not
 * the source's ready time: setting it, and setting it back as the
 * source dispatches, would each wake the context. */
void
_peer_lane_client_source_wake_locked (LaneSource *source)
{
  if (!source->woken)
    {
      source->woken = TRUE;
      if (!g_main_context_is_owner (source->context))
        g_main_context_wakeup (source->context);
    }
}

/* In the caller's context: the asynchronous call's end, once (or a
 * signal's delivery). Its cancellation handler is gone before it is
 * freed, so that it does not run on a freed waiter. */
static void
lane_waiter_return (LaneWaiter *w)
{
  if (w->deliver != NULL)
    {
      w->deliver (w->user_data);
      _peer_lane_client_waiter_free (w);
      return;
    }
  if (w->cancelled_id != 0)
    g_cancellable_disconnect (w->cancellable, w->cancelled_id);
  w->func (g_steal_pointer (&w->reply), g_steal_pointer (&w->fd_list), g_steal_pointer (&w->error),
           w->user_data);
  _peer_lane_client_waiter_free (w);
}

/* @lock held: @w's context's source, made and attached when the context
 * has none yet. */
static GSourceFuncs lane_source_funcs;

static LaneSource *
lane_source_for_locked (PeerLaneClient *lane,
                        GMainContext   *context)
{
  LaneSource *source = lane->last_source;

  if (source != NULL && source->context == context)
    return source;
  for (guint i = 0; i < lane->sources->len; i++)
    {
      source = g_ptr_array_index (lane->sources, i);
      if (source->context == context)
        {
          lane->last_source = source;
          return source;
        }
    }
  source = (LaneSource *) g_source_new (&lane_source_funcs, sizeof (LaneSource));
  source->lane = _peer_lane_client_ref (lane);
  source->context = g_main_context_ref (context);
  source->poll.fd = lane->fd;
  source->poll.events = G_IO_IN;
  source->next_deadline = -1;
  _peer_lane_spin_init (&source->spin);
  g_queue_init (&source->done);
  g_queue_init (&source->timed);
  g_queue_init (&source->returning);
  g_source_set_priority (&source->source, G_PRIORITY_DEFAULT);
  /* A source that may not recurse has its fds taken out of the context
   * while it dispatches and put back after, each a wake-up of the
   * context (a syscall, and another iteration): this one may, and keeps
   * the order of what it returns when it does (@returning). */
  g_source_set_can_recurse (&source->source, TRUE);
  g_source_set_static_name (&source->source, "[libpeer] lane");
  g_source_attach (&source->source, context);
  g_ptr_array_add (lane->sources, source);
  lane->last_source = source;
  return source;
}

/* @lock held: @w's end goes to its source, which returns it with the
 * ends queued before it. */
void
_peer_lane_client_source_push_locked (LaneSource *source,
                                      LaneWaiter *w)
{
  g_queue_push_tail (&source->done, w);
  _peer_lane_client_source_wake_locked (source);
}

/* Frames a source reads per dispatch at most, before it returns what it
 * read: the context's other sources get their turn. */
#define SOURCE_READ_MAX 64

/* The context's owner: whether the context polls the socket for
 * @source. Not while nothing is in flight for it and another thread
 * reads (its frames would wake the context for nothing), nor once the
 * lane is closed (a socket at its end polls as hung up, whatever the
 * events asked), nor when a thread reads for signals. Changing it costs
 * a wake-up of the context: it changes only when that is so. */
static void
lane_source_set_polling (LaneSource *source,
                         gboolean    polling)
{
  if (polling == source->polling)
    return;
  source->polling = polling;
  source->poll.revents = 0;
  if (polling)
    g_source_add_poll (&source->source, &source->poll);
  else
    g_source_remove_poll (&source->source, &source->poll);
}

/* @source's calls in flight went from none to some, on @context's owner
 * or elsewhere (@lock not held): it polls the socket from now on. */
static void
lane_source_start_polling (PeerLaneClient *lane,
                           LaneSource     *source)
{
  if (g_main_context_acquire (source->context))
    {
      /* Owned here: the context is not polling now. */
      if (g_atomic_pointer_get (&lane->signal_func) == NULL && !g_atomic_int_get (&lane->closed))
        lane_source_set_polling (source, TRUE);
      g_main_context_release (source->context);
      return;
    }
  /* Its owner sees to it as it dispatches. */
  g_mutex_lock (&lane->lock);
  _peer_lane_client_source_wake_locked (source);
  g_mutex_unlock (&lane->lock);
}

/* Before the context polls: whether it is woken, or a deadline passed
 * (else how long until the next). While calls of its are in flight and
 * their replies come fast (the server on another CPU), a short spin
 * catches them without the wake-up (see peer-lane-spin.c). Never on one
 * CPU. */
static gboolean
lane_source_prepare (GSource *base,
                     gint    *timeout)
{
  LaneSource *source = (LaneSource *) base;
  PeerLaneClient *lane = source->lane;
  gboolean woken;
  gint64 deadline;
  gint n_async;

  g_mutex_lock (&lane->lock);
  woken = source->woken;
  deadline = source->next_deadline;
  n_async = source->n_async;
  g_mutex_unlock (&lane->lock);
  *timeout = -1;
  /* Or a callback of its own runs the loop again: the rest of its ends. */
  if (woken || source->returning.head != NULL)
    {
      *timeout = 0;
      return TRUE;
    }
  if (deadline >= 0)
    {
      gint64 left = deadline - g_source_get_time (base);

      if (left <= 0)
        {
          *timeout = 0;
          return TRUE;
        }
      *timeout = (gint) MIN ((left + 999) / 1000, G_MAXINT);
    }
  if (source->polling && n_async > 0)
    _peer_lane_spin_wait (&source->spin, source->poll.fd);
  return FALSE;
}

static gboolean
lane_source_check (GSource *base)
{
  LaneSource *source = (LaneSource *) base;
  PeerLaneClient *lane = source->lane;
  gboolean ready;

  if ((source->polling && (source->poll.revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)) != 0) ||
      source->returning.head != NULL)
    return TRUE;
  g_mutex_lock (&lane->lock);
  ready = source->woken || (source->next_deadline >= 0 && g_source_get_time (base) >= source->next_deadline);
  g_mutex_unlock (&lane->lock);
  return ready;
}

/* @lock held: the calls of @source whose deadline passed end with
 * TIMED_OUT; the next deadline is found. */
static void
lane_source_expire_locked (PeerLaneClient *lane,
                           LaneSource     *source,
                           gint64          now)
{
  gint64 next = -1;
  GList *l = source->timed.head;

  while (l != NULL)
    {
      LaneWaiter *w = l->data;

      l = l->next;
      if (w->deadline <= now)
        _peer_lane_client_end_call_locked (lane, w, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                                                                         "Timeout was reached"));
      else if (next < 0 || w->deadline < next)
        next = w->deadline;
    }
  source->next_deadline = next;
}

/* In the context: reads what came (when the socket is readable and no
 * one else reads), ends the calls whose time is up, and returns the ends
 * queued, in order. */
static gboolean
lane_source_dispatch (GSource     *base,
                      GSourceFunc  callback,
                      gpointer     data)
{
  LaneSource *source = (LaneSource *) base;
  PeerLaneClient *lane = source->lane;
  gboolean readable = source->polling && (source->poll.revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)) != 0;
  gpointer outer;
  gboolean reading = FALSE;
  guint in_flight = 0;
  GQueue batch = G_QUEUE_INIT;
  LaneWaiter *w;

  source->poll.revents = 0;

  g_mutex_lock (&lane->lock);
  source->woken = TRUE;         /* what is queued meanwhile is taken below */
  if (source->next_deadline >= 0 && g_get_monotonic_time () >= source->next_deadline)
    lane_source_expire_locked (lane, source, g_get_monotonic_time ());
  if (lane->signal_func != NULL)
    lane_source_set_polling (source, FALSE);    /* the reader thread reads */
  else if (readable || (!source->polling && source->n_async > 0))
    {
      if (!lane->reader_active)
        {
          lane->reader_active = reading = TRUE;
          in_flight = g_hash_table_size (lane->pending);
          lane_source_set_polling (source, TRUE);
        }
      else if (!source->blocked)
        {
          /* Not while another thread reads: it is woken when it is done
           * (until then, its frames would wake it for nothing). */
          source->blocked = TRUE;
          lane->n_blocked++;
          lane_source_set_polling (source, FALSE);
        }
    }
  g_mutex_unlock (&lane->lock);

  if (reading)
    {
      guint n = 0;

      /* Whatever is there, for whichever call it answers: no more replies
       * than calls in flight can have come (a reply to one that ended
       * early is left for the next time), so with one call in flight its
       * reply is read without a read that finds nothing after it. */
      for (;;)
        {
          g_autoptr(GError) error = NULL;

          if (!_peer_lane_client_read_one (lane, LANE_READ_NOW, -1, NULL, &error) || ++n >= MAX (in_flight, 1) ||
              n == SOURCE_READ_MAX || g_atomic_int_get (&lane->closed))
            break;
        }
      g_mutex_lock (&lane->lock);
      _peer_lane_client_release_reader_locked (lane);
      g_mutex_unlock (&lane->lock);
    }

  g_mutex_lock (&lane->lock);
  batch = source->done;
  g_queue_init (&source->done);
  source->woken = FALSE;
  /* Behind what an outer dispatch of this source (a callback's own
   * loop) has yet to return. */
  if (source->returning.tail == NULL)
    source->returning = batch;
  else if (batch.head != NULL)
    {
      source->returning.tail->next = batch.head;
      batch.head->prev = source->returning.tail;
      source->returning.tail = batch.tail;
      source->returning.length += batch.length;
    }
  if (g_atomic_int_get (&lane->closed))
    lane_source_set_polling (source, FALSE);
  g_mutex_unlock (&lane->lock);

  /* The calls their callbacks make go out together after the last. */
  outer = _peer_lane_client_returning_source;
  _peer_lane_client_returning_source = source;
  while ((w = g_queue_pop_head (&source->returning)) != NULL)
    lane_waiter_return (w);
  _peer_lane_client_returning_source = outer;
  if (source->corked)
    {
      source->corked = FALSE;
      _peer_lane_client_uncork (lane);
    }
  return G_SOURCE_CONTINUE;
}

static void
lane_source_finalize (GSource *base)
{
  LaneSource *source = (LaneSource *) base;

  /* Only deliveries can be left (calls hold the lane's owner), and
   * _peer_lane_client_free() took them: nothing is queued. */
  g_queue_clear_full (&source->done, (GDestroyNotify) _peer_lane_client_waiter_free);
  g_queue_clear_full (&source->returning, (GDestroyNotify) _peer_lane_client_waiter_free);
  _peer_lane_client_unref (source->lane);
}

static GSourceFuncs lane_source_funcs = {
  lane_source_prepare,
  lane_source_check,
  lane_source_dispatch,
  lane_source_finalize,
  NULL, NULL,
};

/* --- asynchronous calls ------------------------------------------------------ */

/* Any thread: the caller's cancellable. */
static void
on_async_cancelled (GCancellable *cancellable,
                    gpointer      data)
{
  LaneWaiter *w = data;
  PeerLaneClient *lane = w->source->lane;

  g_mutex_lock (&lane->lock);
  _peer_lane_client_end_call_locked (lane, w, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                                                   "Operation was cancelled"));
  g_mutex_unlock (&lane->lock);
}

/* @lock held: an asynchronous call that ended before it was in flight
 * (refused at once, or not sent) goes to its source all the same. */
static void
lane_finish_unsent_locked (PeerLaneClient *lane,
                           LaneWaiter     *w,
                           GError         *error)
{
  g_atomic_int_inc (&w->source->n_async);   /* as if it had been in flight */
  _peer_lane_client_waiter_finish_locked (lane, w, NULL, NULL, error);
}

void
_peer_lane_client_call_async (PeerLaneClient     *lane,
                              guint32             id,
                              GVariant           *parameters,
                              const GVariantType *reply_type,
                              int                 timeout_ms,
                              GUnixFDList        *fd_list,
                              GCancellable       *cancellable,
                              GMainContext       *context,
                              PeerLaneReplyFunc   func,
                              gpointer            user_data,
                              GDestroyNotify      destroy)
{
  LaneWaiter *w = g_new0 (LaneWaiter, 1);
  GVariant *params = parameters != NULL ? parameters : _peer_lane_unit_variant ();
  GError *error = NULL;
  gboolean reader, was_idle;
  LaneSource *source;

  w->entry = lane_entry (lane, id);
  w->is_async = TRUE;
  w->deadline = -1;
  w->cancellable = cancellable != NULL ? g_object_ref (cancellable) : NULL;
  w->func = func;
  w->user_data = user_data;
  w->destroy = destroy;

  g_mutex_lock (&lane->lock);
  if (context == NULL)
    context = g_main_context_get_thread_default ();
  if (context == NULL)
    context = g_main_context_default ();
  source = w->source = lane_source_for_locked (lane, context);
  g_mutex_unlock (&lane->lock);

  if (!_peer_lane_client_check_call_types (w->entry, params, reply_type, &error) ||
      g_cancellable_set_error_if_cancelled (cancellable, &error))
    {
      g_mutex_lock (&lane->lock);
      lane_finish_unsent_locked (lane, w, error);
      g_mutex_unlock (&lane->lock);
      return;
    }

  /* Until this function is done with @w, its end only marks it done (a
   * reader on another thread may get its reply at once, and its context
   * may be another thread's). */
  w->setting_up = TRUE;
  was_idle = g_atomic_int_get (&source->n_async) == 0;
  if (!_peer_lane_client_send_call (lane, w, params, fd_list, -1, NULL, &reader, &error))
    {
      g_mutex_lock (&lane->lock);
      w->setting_up = FALSE;
      lane_finish_unsent_locked (lane, w, error);
      g_mutex_unlock (&lane->lock);
      return;
    }
  /* A cancellable cancelled already ends it right here, through the
   * same path as a later cancellation. */
  if (cancellable != NULL)
    w->cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (on_async_cancelled), w, NULL);
  /* Its context reads for it from now on (unless a thread reads for
   * signals); the first call of a burst sees to it. */
  if (was_idle && g_atomic_pointer_get (&lane->signal_func) == NULL)
    lane_source_start_polling (lane, source);

  g_mutex_lock (&lane->lock);
  w->setting_up = FALSE;
  if (w->done)
    {
      /* Ended meanwhile: its end goes to the context now. */
      _peer_lane_client_source_push_locked (source, w);
      g_atomic_int_add (&source->n_async, -1);
    }
  else if (timeout_ms != G_MAXINT)
    {
      /* Its source ends it when its time is up. */
      w->deadline = g_get_monotonic_time () +
                    (gint64) (timeout_ms < 0 ? PEER_LANE_DEFAULT_TIMEOUT_MS : timeout_ms) * 1000;
      w->link.data = w;
      g_queue_push_tail_link (&source->timed, &w->link);
      if (source->next_deadline < 0 || w->deadline < source->next_deadline)
        {
          /* Its context computes its poll's timeout again. */
          source->next_deadline = w->deadline;
          if (!g_main_context_is_owner (source->context))
            g_main_context_wakeup (source->context);
        }
    }
  g_mutex_unlock (&lane->lock);
}

/* --- signals ----------------------------------------------------------------- */

void
_peer_lane_client_deliver (PeerLaneClient *lane,
                           GMainContext   *context,
                           GSourceFunc     func,
                           gpointer        data,
                           GDestroyNotify  destroy)
{
  LaneWaiter *w = g_new0 (LaneWaiter, 1);

  /* Behind the replies already on their way to @context, before those
   * read after it: one queue for both. */
  w->deliver = func;
  w->user_data = data;
  w->destroy = destroy;
  g_mutex_lock (&lane->lock);
  w->source = lane_source_for_locked (lane, context);
  _peer_lane_client_source_push_locked (w->source, w);
  g_mutex_unlock (&lane->lock);
}
