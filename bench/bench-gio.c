/* bench-gio.c: calls and reply checks for the GDBus-based transports. */
#include "config.h"

#include "bench-gio.h"

GVariant *
bench_gio_echo_parameters (const guint8 *data,
                           gsize         size)
{
  /* Trusted and not copied: what a careful caller does with a buffer it
   * keeps; serialising the message is the copy every transport makes.
   * The tuple is made from the bytes directly: a tuple's last member has
   * no framing offset, so (ay) is serialised exactly as its ay is, and
   * one value is built instead of two (GVariant's type lookup, a lock and
   * a hash, is most of what building a value costs). */
  return g_variant_new_from_data (BENCH_ECHO_TYPE, data, size, TRUE, NULL, NULL);
}

gboolean
bench_gio_check_echo (GVariant     *reply,
                      const guint8 *data,
                      gsize         size,
                      GError      **error)
{
  /* The caller asked for (ay) as the reply type, which GDBus and libpeer
   * both enforce; a comparison of type strings is the cheap check that
   * they did. The bytes are read as the arguments were made: (ay) is
   * serialised exactly as its ay. An idiomatic g_variant_get_child_value()
   * and g_variant_get_fixed_array() would read the same bytes for some
   * 1.8k more instructions of GLib 2.74's (its checks of the offsets and
   * a second value), the same for every GIO transport: not the transport's
   * cost, which is what is measured here. */
  if (!g_str_equal (g_variant_get_type_string (reply), "(ay)"))
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: type %s, (ay) expected", g_variant_get_type_string (reply));
      return FALSE;
    }
  return bench_check_echo (data, size, g_variant_get_data (reply), g_variant_get_size (reply), error);
}

GUnixFDList *
bench_gio_fd_list_new (const int *fds,
                       guint      n_fds,
                       GError   **error)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();

  /* Copies, as every GIO caller makes them: the list closes its own. */
  for (guint i = 0; i < n_fds; i++)
    if (g_unix_fd_list_append (list, fds[i], error) < 0)
      return NULL;
  return g_steal_pointer (&list);
}

GVariant *
bench_gio_echo_fds_parameters (GVariant **cache,
                               guint      n_fds)
{
  g_autofree gint32 *handles = NULL;
  GVariant *array;

  /* An (ah) is serialised as its handles, four bytes each. */
  if (*cache != NULL && g_variant_get_size (*cache) == n_fds * sizeof (gint32))
    return *cache;
  handles = g_new (gint32, n_fds);
  for (guint i = 0; i < n_fds; i++)
    handles[i] = (gint32) i;
  array = g_variant_new_fixed_array (G_VARIANT_TYPE_HANDLE, handles, n_fds, sizeof (gint32));
  g_clear_pointer (cache, g_variant_unref);
  *cache = g_variant_ref_sink (g_variant_new_tuple (&array, 1));
  return *cache;
}

gboolean
bench_gio_check_echo_fds (GVariant    *reply,
                          GUnixFDList *fd_list,
                          const int   *fds,
                          guint        n_fds,
                          int         *out_fd,
                          GError     **error)
{
  g_autoptr(GVariant) handles = NULL;

  if (!g_variant_is_of_type (reply, G_VARIANT_TYPE ("(ah)")))
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: type %s, (ah) expected", g_variant_get_type_string (reply));
      return FALSE;
    }
  handles = g_variant_get_child_value (reply, 0);
  return bench_gio_check_echo_fd_handles (handles, fd_list, fds, n_fds, out_fd, error);
}

gboolean
bench_gio_check_echo_fd_handles (GVariant    *handles,
                                 GUnixFDList *fd_list,
                                 const int   *fds,
                                 guint        n_fds,
                                 int         *out_fd,
                                 GError     **error)
{
  const gint32 *handle;
  const int *got = NULL;
  gsize n_handles;
  int n_got = 0;

  /* The list keeps its fds; the caller's unref closes them. */
  if (fd_list != NULL)
    got = g_unix_fd_list_peek_fds (fd_list, &n_got);
  handle = g_variant_get_fixed_array (handles, &n_handles, sizeof (gint32));
  /* The echo sends the fds back in order: handle i is fd i. */
  for (gsize i = 0; i < n_handles; i++)
    if (handle[i] != (gint32) i)
      {
        g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                     "wrong reply: handle %" G_GSIZE_FORMAT " is %d", i, handle[i]);
        return FALSE;
      }
  if (n_handles != (gsize) n_got)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: %" G_GSIZE_FORMAT " handles and %d fds", n_handles, n_got);
      return FALSE;
    }
  if (!bench_check_fds (fds, n_fds, got, (guint) n_got, error))
    return FALSE;
  if (out_fd != NULL)
    {
      *out_fd = g_unix_fd_list_get (fd_list, 0, error);
      return *out_fd >= 0;
    }
  return TRUE;
}

typedef struct {
  gpointer            client;
  BenchGioCallFunc    call;
  BenchGioFinishFunc  finish;
  BenchLoop          *loop;
  guint               in_flight;
  GError             *error;
} Pipeline;

typedef struct {
  Pipeline *pipeline;
  guint64   seq;
  gint64    start_ns;
  guint8    payload[BENCH_LOOP_PAYLOAD];
} PipelineCall;

static void pipeline_start_calls (Pipeline *self, guint depth);

static void
on_pipeline_reply (GObject      *source,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autofree PipelineCall *call = user_data;
  Pipeline *self = call->pipeline;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) bytes = NULL;
  g_autoptr(GError) local_error = NULL;
  const guint8 *got;
  gsize got_size;

  self->in_flight--;
  reply = self->finish (self->client, result, &local_error);
  if (self->error != NULL)
    return;
  if (reply == NULL)
    {
      self->error = g_steal_pointer (&local_error);
      return;
    }
  if (!g_variant_is_of_type (reply, BENCH_ECHO_TYPE))
    {
      g_set_error (&self->error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: type %s, (ay) expected", g_variant_get_type_string (reply));
      return;
    }
  bytes = g_variant_get_child_value (reply, 0);
  got = g_variant_get_fixed_array (bytes, &got_size, 1);
  if (!bench_loop_finish_call (self->loop, call->seq, call->start_ns, got, got_size, &self->error))
    return;
  pipeline_start_calls (self, self->in_flight + 1);
}

static void
pipeline_start_calls (Pipeline *self,
                      guint     depth)
{
  while (self->in_flight < depth)
    {
      PipelineCall *call = g_new (PipelineCall, 1);

      call->pipeline = self;
      if (!bench_loop_start_call (self->loop, &call->seq, &call->start_ns))
        {
          g_free (call);
          return;
        }
      bench_loop_fill_payload (call->seq, call->payload);
      self->in_flight++;
      /* The payload lives in @call, which the callback frees. */
      self->call (self->client, bench_gio_echo_parameters (call->payload, sizeof call->payload),
                  on_pipeline_reply, call);
    }
}

gboolean
bench_gio_pipeline (gpointer            client,
                    BenchGioCallFunc    call,
                    BenchGioFinishFunc  finish,
                    guint               depth,
                    BenchLoop          *loop,
                    GError            **error)
{
  g_autoptr(GMainContext) context = g_main_context_new ();
  Pipeline self = { client, call, finish, loop, 0, NULL };

  /* Replies are delivered in the thread-default context of the call. */
  g_main_context_push_thread_default (context);
  pipeline_start_calls (&self, depth);
  while (self.in_flight > 0)
    g_main_context_iteration (context, TRUE);
  g_main_context_pop_thread_default (context);

  if (self.error != NULL)
    {
      g_propagate_error (error, self.error);
      return FALSE;
    }
  return TRUE;
}
