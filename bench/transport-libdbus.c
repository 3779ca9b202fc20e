/* transport-libdbus.c: the reference libdbus peer to peer (built when
 * libdbus-1 is found). The server is a DBusServer driven by poll() on its
 * watches, serving one connection at a time with
 * dbus_connection_read_write_dispatch(); the client is
 * dbus_connection_send_with_reply_and_block(). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <dbus/dbus.h>

#include <gio/gio.h>

#include "bench-transport.h"


static gboolean
set_dbus_error (GError    **error,
                DBusError  *dbus_error,
                const char *what)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "libdbus: %s: %s", what,
               dbus_error_is_set (dbus_error) ? dbus_error->message : "out of memory");
  dbus_error_free (dbus_error);
  return FALSE;
}

static DBusMessage *
reply_echo (DBusMessage *call)
{
  DBusMessage *reply;
  const guint8 *data;
  int size;

  if (!dbus_message_get_args (call, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &data, &size,
                              DBUS_TYPE_INVALID))
    return dbus_message_new_error (call, DBUS_ERROR_INVALID_ARGS, "ay expected");
  reply = dbus_message_new_method_return (call);
  if (reply != NULL &&
      !dbus_message_append_args (reply, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &data, size,
                                 DBUS_TYPE_INVALID))
    g_clear_pointer (&reply, dbus_message_unref);
  return reply;
}

static DBusMessage *
reply_echo_fds (DBusMessage *call)
{
  DBusMessageIter iter, array;
  DBusMessage *reply;
  int fds[BENCH_MAX_FDS];
  guint n_fds = 0;
  gboolean ok = TRUE;

  if (!dbus_message_has_signature (call, "ah"))
    return dbus_message_new_error (call, DBUS_ERROR_INVALID_ARGS, "ah expected");
  dbus_message_iter_init (call, &iter);
  dbus_message_iter_recurse (&iter, &array);
  /* Each fd read from the message is a new one we own. */
  while (dbus_message_iter_get_arg_type (&array) == DBUS_TYPE_UNIX_FD && n_fds < BENCH_MAX_FDS)
    {
      dbus_message_iter_get_basic (&array, &fds[n_fds++]);
      dbus_message_iter_next (&array);
    }
  if (dbus_message_iter_get_arg_type (&array) != DBUS_TYPE_INVALID)
    reply = dbus_message_new_error (call, DBUS_ERROR_LIMITS_EXCEEDED, "too many fds");
  else
    reply = dbus_message_new_method_return (call);

  if (reply != NULL && dbus_message_get_type (reply) == DBUS_MESSAGE_TYPE_METHOD_RETURN)
    {
      dbus_message_iter_init_append (reply, &iter);
      ok = dbus_message_iter_open_container (&iter, DBUS_TYPE_ARRAY, DBUS_TYPE_UNIX_FD_AS_STRING, &array);
      for (guint i = 0; ok && i < n_fds; i++)
        ok = dbus_message_iter_append_basic (&array, DBUS_TYPE_UNIX_FD, &fds[i]);
      ok = ok && dbus_message_iter_close_container (&iter, &array);
    }
  for (guint i = 0; i < n_fds; i++)
    close (fds[i]);
  if (!ok)
    g_clear_pointer (&reply, dbus_message_unref);
  return reply;
}

static DBusHandlerResult
handle_bench_message (DBusConnection *connection,
                      DBusMessage    *message,
                      void           *user_data)
{
  DBusMessage *reply;

  if (dbus_message_is_method_call (message, BENCH_INTERFACE, "Echo"))
    reply = reply_echo (message);
  else if (dbus_message_is_method_call (message, BENCH_INTERFACE, "EchoFds"))
    reply = reply_echo_fds (message);
  else if (dbus_message_is_method_call (message, BENCH_INTERFACE, "Ping"))
    reply = dbus_message_new_method_return (message);
  else
    return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;

  if (reply == NULL)
    return DBUS_HANDLER_RESULT_NEED_MEMORY;
  dbus_connection_send (connection, reply, NULL);
  dbus_message_unref (reply);
  return DBUS_HANDLER_RESULT_HANDLED;
}

static const DBusObjectPathVTable bench_vtable = { .message_function = handle_bench_message };

/* The server: its listening socket is the only watch it has; the
 * connection it accepts is served with blocking I/O of its own. */
typedef struct {
  DBusWatch      *watches[4];
  guint           n_watches;
  DBusConnection *connection;
} LibdbusServer;

static dbus_bool_t
add_watch (DBusWatch *watch,
           void      *data)
{
  LibdbusServer *self = data;

  if (self->n_watches == G_N_ELEMENTS (self->watches))
    return FALSE;
  self->watches[self->n_watches++] = watch;
  return TRUE;
}

static void
remove_watch (DBusWatch *watch,
              void      *data)
{
  LibdbusServer *self = data;

  for (guint i = 0; i < self->n_watches; i++)
    if (self->watches[i] == watch)
      self->watches[i] = self->watches[--self->n_watches];
}

static void
on_new_connection (DBusServer     *server,
                   DBusConnection *connection,
                   void           *data)
{
  LibdbusServer *self = data;

  if (self->connection != NULL ||
      !dbus_connection_register_object_path (connection, BENCH_PATH, &bench_vtable, NULL))
    return;   /* not referenced: libdbus drops it */
  /* libdbus takes 16 fds per message unless told otherwise, and drops a
   * connection that sends more; like the libpeer server, this one takes
   * the kernel's 253, so that the fd cells measure the fds. */
  dbus_connection_set_max_message_unix_fds (connection, BENCH_MAX_FDS);
  self->connection = dbus_connection_ref (connection);
}

static gboolean
libdbus_wait_for_connection (DBusServer    *server,
                             LibdbusServer *self,
                             GError       **error)
{
  while (self->connection == NULL)
    {
      struct pollfd pfds[G_N_ELEMENTS (self->watches)];
      DBusWatch *polled[G_N_ELEMENTS (self->watches)];
      nfds_t n = 0;

      for (guint i = 0; i < self->n_watches; i++)
        if (dbus_watch_get_enabled (self->watches[i]))
          {
            pfds[n] = (struct pollfd) { dbus_watch_get_unix_fd (self->watches[i]), POLLIN, 0 };
            polled[n++] = self->watches[i];
          }
      if (poll (pfds, n, -1) < 0 && errno != EINTR)
        {
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                       "poll: %s", g_strerror (errno));
          return FALSE;
        }
      for (nfds_t i = 0; i < n; i++)
        if (pfds[i].revents != 0)
          dbus_watch_handle (polled[i], DBUS_WATCH_READABLE);
    }
  return TRUE;
}

static gboolean
libdbus_serve_forever (GError **error)
{
  LibdbusServer self = { { NULL }, 0, NULL };
  DBusError dbus_error = DBUS_ERROR_INIT;
  g_autofree char *path = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *address = NULL;
  DBusServer *server;

  path = bench_server_make_socket_path (error);
  if (path == NULL)
    return FALSE;
  bench_server_exit_on_signals (path);
  escaped = dbus_address_escape_value (path);
  address = g_strconcat ("unix:path=", escaped, NULL);
  g_clear_pointer (&escaped, dbus_free);

  server = dbus_server_listen (address, &dbus_error);
  if (server == NULL)
    return set_dbus_error (error, &dbus_error, "dbus_server_listen");
  /* A peer only: EXTERNAL, the same uid (libdbus's default rule). */
  if (!dbus_server_set_watch_functions (server, add_watch, remove_watch, NULL, &self, NULL))
    return set_dbus_error (error, &dbus_error, "watches");
  dbus_server_set_new_connection_function (server, on_new_connection, &self, NULL);
  if (!bench_server_announce (address, error))
    return FALSE;

  for (;;)
    {
      if (!libdbus_wait_for_connection (server, &self, error))
        return FALSE;
      while (dbus_connection_read_write_dispatch (self.connection, -1))
        ;
      dbus_connection_unref (self.connection);
      self.connection = NULL;
    }
}

static int
libdbus_serve (void)
{
  g_autoptr(GError) error = NULL;

  libdbus_serve_forever (&error);
  g_printerr ("peer-bench-server libdbus: %s\n", error->message);
  return 1;
}

static gpointer
libdbus_connect (const char *address,
                 GError    **error)
{
  DBusError dbus_error = DBUS_ERROR_INIT;
  DBusConnection *connection;
  DBusMessage *ping, *reply;

  connection = dbus_connection_open_private (address, &dbus_error);
  if (connection == NULL)
    {
      set_dbus_error (error, &dbus_error, "connecting");
      return NULL;
    }
  dbus_connection_set_exit_on_disconnect (connection, FALSE);
  dbus_connection_set_max_message_unix_fds (connection, BENCH_MAX_FDS);   /* as the server's */

  /* Authentication, and with it fd passing, is settled on the first call. */
  ping = dbus_message_new_method_call (NULL, BENCH_PATH, BENCH_INTERFACE, "Ping");
  reply = dbus_connection_send_with_reply_and_block (connection, ping, -1, &dbus_error);
  dbus_message_unref (ping);
  if (reply == NULL)
    {
      set_dbus_error (error, &dbus_error, "Ping");
      dbus_connection_close (connection);
      dbus_connection_unref (connection);
      return NULL;
    }
  dbus_message_unref (reply);
  return connection;
}

static void
libdbus_disconnect (gpointer data)
{
  dbus_connection_close (data);
  dbus_connection_unref (data);
}

/* Sends @call and returns the reply, or NULL with @error. */
static DBusMessage *
libdbus_call (DBusConnection *connection,
              DBusMessage    *call,
              GError        **error)
{
  DBusError dbus_error = DBUS_ERROR_INIT;
  DBusMessage *reply;

  reply = dbus_connection_send_with_reply_and_block (connection, call, -1, &dbus_error);
  if (reply == NULL)
    set_dbus_error (error, &dbus_error, dbus_message_get_member (call));
  dbus_message_unref (call);
  return reply;
}

static gboolean
libdbus_echo (gpointer      data,
              const guint8 *payload,
              gsize         size,
              GError      **error)
{
  DBusMessage *call, *reply;
  const guint8 *got;
  int got_size;
  int sent_size = (int) size;
  gboolean ok;

  call = dbus_message_new_method_call (NULL, BENCH_PATH, BENCH_INTERFACE, "Echo");
  if (call == NULL ||
      !dbus_message_append_args (call, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &payload, sent_size,
                                 DBUS_TYPE_INVALID))
    g_error ("libdbus: out of memory");
  reply = libdbus_call (data, call, error);
  if (reply == NULL)
    return FALSE;
  if (!dbus_message_get_args (reply, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &got, &got_size,
                              DBUS_TYPE_INVALID))
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: signature %s, ay expected", dbus_message_get_signature (reply));
      ok = FALSE;
    }
  else
    ok = bench_check_echo (payload, size, got, (gsize) got_size, error);
  dbus_message_unref (reply);
  return ok;
}

static gboolean
libdbus_echo_fds (gpointer   data,
                  const int *fds,
                  guint      n_fds,
                  int       *out_fd,
                  GError   **error)
{
  DBusMessage *call, *reply;
  DBusMessageIter iter, array;
  int got[BENCH_MAX_FDS];
  guint n_got = 0;
  gboolean ok;

  if (!dbus_connection_can_send_type (data, DBUS_TYPE_UNIX_FD))
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_UNSUPPORTED,
                   "libdbus: fd passing was not negotiated");
      return FALSE;
    }
  call = dbus_message_new_method_call (NULL, BENCH_PATH, BENCH_INTERFACE, "EchoFds");
  if (call == NULL)
    g_error ("libdbus: out of memory");
  /* Appending an fd dups it: the message owns the copies. */
  dbus_message_iter_init_append (call, &iter);
  ok = dbus_message_iter_open_container (&iter, DBUS_TYPE_ARRAY, DBUS_TYPE_UNIX_FD_AS_STRING, &array);
  for (guint i = 0; ok && i < n_fds; i++)
    ok = dbus_message_iter_append_basic (&array, DBUS_TYPE_UNIX_FD, &fds[i]);
  if (!ok || !dbus_message_iter_close_container (&iter, &array))
    g_error ("libdbus: out of memory");
  reply = libdbus_call (data, call, error);
  if (reply == NULL)
    return FALSE;

  ok = dbus_message_has_signature (reply, "ah");
  if (ok)
    {
      dbus_message_iter_init (reply, &iter);
      dbus_message_iter_recurse (&iter, &array);
      /* Each fd read is a new one we own. */
      while (dbus_message_iter_get_arg_type (&array) == DBUS_TYPE_UNIX_FD && n_got < BENCH_MAX_FDS)
        {
          dbus_message_iter_get_basic (&array, &got[n_got++]);
          dbus_message_iter_next (&array);
        }
      ok = dbus_message_iter_get_arg_type (&array) == DBUS_TYPE_INVALID;
    }
  if (!ok)
    g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                 "wrong reply: signature %s, at most %d fds in ah expected",
                 dbus_message_get_signature (reply), BENCH_MAX_FDS);
  else
    ok = bench_check_fds (fds, n_fds, got, n_got, error);
  if (ok && out_fd != NULL)
    {
      *out_fd = got[0];
      got[0] = -1;
    }
  for (guint i = 0; i < n_got; i++)
    if (got[i] >= 0)
      close (got[i]);
  dbus_message_unref (reply);
  return ok;
}

typedef struct {
  dbus_uint32_t serial;
  guint64       seq;
  gint64        start_ns;
} LibdbusCall;

static void
libdbus_pipeline_send (DBusConnection *connection,
                       LibdbusCall    *call)
{
  guint8 payload[BENCH_LOOP_PAYLOAD];
  const guint8 *data = payload;
  DBusMessage *m;

  bench_loop_fill_payload (call->seq, payload);
  m = dbus_message_new_method_call (NULL, BENCH_PATH, BENCH_INTERFACE, "Echo");
  if (m == NULL ||
      !dbus_message_append_args (m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &data, (int) sizeof payload,
                                 DBUS_TYPE_INVALID) ||
      !dbus_connection_send (connection, m, &call->serial))
    g_error ("libdbus: out of memory");
  dbus_message_unref (m);
}

static gboolean
libdbus_pipeline (gpointer   data,
                  guint      depth,
                  BenchLoop *loop,
                  GError   **error)
{
  DBusConnection *connection = data;
  g_autofree LibdbusCall *calls = g_new0 (LibdbusCall, depth);
  guint in_flight = 0;

  /* No handlers on this connection: replies are popped off the incoming
   * queue and matched to their calls by serial. */
  while (in_flight < depth &&
         bench_loop_start_call (loop, &calls[in_flight].seq, &calls[in_flight].start_ns))
    libdbus_pipeline_send (connection, &calls[in_flight++]);

  while (in_flight > 0)
    {
      DBusMessage *reply = dbus_connection_pop_message (connection);
      dbus_uint32_t serial;
      const guint8 *got;
      int got_size;
      guint i;
      gboolean ok;

      if (reply == NULL)
        {
          if (!dbus_connection_read_write (connection, -1))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_CLOSED, "libdbus: disconnected");
              return FALSE;
            }
          continue;
        }
      serial = dbus_message_get_reply_serial (reply);
      for (i = 0; i < in_flight && calls[i].serial != serial; i++)
        ;
      if (i == in_flight || dbus_message_get_type (reply) != DBUS_MESSAGE_TYPE_METHOD_RETURN ||
          !dbus_message_get_args (reply, NULL, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &got, &got_size,
                                  DBUS_TYPE_INVALID))
        {
          g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                       "wrong reply: %s %s to serial %u",
                       dbus_message_type_to_string (dbus_message_get_type (reply)),
                       dbus_message_get_error_name (reply) ? dbus_message_get_error_name (reply)
                                                           : dbus_message_get_signature (reply),
                       serial);
          dbus_message_unref (reply);
          return FALSE;
        }
      ok = bench_loop_finish_call (loop, calls[i].seq, calls[i].start_ns, got, (gsize) got_size, error);
      dbus_message_unref (reply);
      if (!ok)
        return FALSE;

      if (bench_loop_start_call (loop, &calls[i].seq, &calls[i].start_ns))
        libdbus_pipeline_send (connection, &calls[i]);
      else
        calls[i] = calls[--in_flight];
    }
  return TRUE;
}

static const char *
libdbus_get_version (void)
{
  static char version[32];
  int major, minor, micro;

  if (version[0] == '\0')
    {
      dbus_get_version (&major, &minor, &micro);
      g_snprintf (version, sizeof version, "libdbus %d.%d.%d", major, minor, micro);
    }
  return version;
}

const BenchTransport bench_transport_libdbus = {
  .name = "libdbus",
  .get_version = libdbus_get_version,
  .serve = libdbus_serve,
  .connect = libdbus_connect,
  .echo = libdbus_echo,
  .echo_fds = libdbus_echo_fds,
  .pipeline = libdbus_pipeline,
  .disconnect = libdbus_disconnect,
};
