/* transport-sdbus.c: systemd's sd-bus peer to peer (built when libsystemd
 * is found). The server accepts on a path socket and runs each connection
 * with sd_bus_set_server(); the client is sd_bus_call() on a direct
 * connection, without a bus's Hello. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-id128.h>

#include <gio/gio.h>

#include "bench-transport.h"


static gboolean
set_sd_error (GError    **error,
              int         r,
              const char *what)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (-r),
               "sd-bus: %s: %s", what, g_strerror (-r));
  return FALSE;
}

static gboolean
set_sd_bus_error (GError            **error,
                  const sd_bus_error *bus_error,
                  int                 r,
                  const char         *what)
{
  if (sd_bus_error_is_set (bus_error))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "sd-bus: %s: %s: %s",
                   what, bus_error->name, bus_error->message ? bus_error->message : "");
      return FALSE;
    }
  return set_sd_error (error, r, what);
}

static int
method_ping (sd_bus_message *m,
             void           *userdata,
             sd_bus_error   *ret_error)
{
  return sd_bus_reply_method_return (m, NULL);
}

static int
method_echo (sd_bus_message *m,
             void           *userdata,
             sd_bus_error   *ret_error)
{
  __attribute__((cleanup (sd_bus_message_unrefp))) sd_bus_message *reply = NULL;
  const void *data;
  size_t size;
  int r;

  r = sd_bus_message_read_array (m, 'y', &data, &size);
  if (r < 0)
    return r;
  r = sd_bus_message_new_method_return (m, &reply);
  if (r < 0)
    return r;
  r = sd_bus_message_append_array (reply, 'y', data, size);
  if (r < 0)
    return r;
  return sd_bus_send (NULL, reply, NULL);
}

static int
method_echo_fds (sd_bus_message *m,
                 void           *userdata,
                 sd_bus_error   *ret_error)
{
  __attribute__((cleanup (sd_bus_message_unrefp))) sd_bus_message *reply = NULL;
  int fds[BENCH_MAX_FDS];
  guint n_fds = 0;
  int fd;
  int r;

  /* The fds stay owned by the call; appending them to the reply dups. */
  r = sd_bus_message_enter_container (m, 'a', "h");
  if (r < 0)
    return r;
  while ((r = sd_bus_message_read_basic (m, 'h', &fd)) > 0)
    {
      if (n_fds == BENCH_MAX_FDS)
        return sd_bus_error_setf (ret_error, SD_BUS_ERROR_LIMITS_EXCEEDED,
                                  "more than %d fds", BENCH_MAX_FDS);
      fds[n_fds++] = fd;
    }
  if (r < 0)
    return r;
  r = sd_bus_message_exit_container (m);
  if (r < 0)
    return r;

  r = sd_bus_message_new_method_return (m, &reply);
  if (r >= 0)
    r = sd_bus_message_open_container (reply, 'a', "h");
  for (guint i = 0; r >= 0 && i < n_fds; i++)
    r = sd_bus_message_append_basic (reply, 'h', &fds[i]);
  if (r >= 0)
    r = sd_bus_message_close_container (reply);
  if (r < 0)
    return r;
  return sd_bus_send (NULL, reply, NULL);
}

static const sd_bus_vtable bench_vtable[] = {
  SD_BUS_VTABLE_START (0),
  SD_BUS_METHOD ("Ping", "", "", method_ping, 0),
  SD_BUS_METHOD ("Echo", "ay", "ay", method_echo, 0),
  SD_BUS_METHOD ("EchoFds", "ah", "ah", method_echo_fds, 0),
  SD_BUS_VTABLE_END
};

/* Serves one accepted connection until the peer hangs up. */
static gboolean
sdbus_serve_connection (int          fd,
                        sd_id128_t   id,
                        GError     **error)
{
  __attribute__((cleanup (sd_bus_flush_close_unrefp))) sd_bus *bus = NULL;
  int r;

  r = sd_bus_new (&bus);
  if (r < 0)
    {
      close (fd);
      return set_sd_error (error, r, "sd_bus_new");
    }
  r = sd_bus_set_fd (bus, fd, fd);
  if (r < 0)
    {
      close (fd);
      return set_sd_error (error, r, "sd_bus_set_fd");
    }
  if ((r = sd_bus_set_server (bus, 1, id)) < 0 ||
      (r = sd_bus_negotiate_fds (bus, 1)) < 0 ||
      (r = sd_bus_add_object_vtable (bus, NULL, BENCH_PATH, BENCH_INTERFACE,
                                     bench_vtable, NULL)) < 0 ||
      (r = sd_bus_start (bus)) < 0)
    return set_sd_error (error, r, "starting the connection");

  for (;;)
    {
      r = sd_bus_process (bus, NULL);
      if (r > 0)
        continue;
      if (r == 0)
        r = sd_bus_wait (bus, UINT64_MAX);
      if (r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE)
        return TRUE;
      if (r < 0)
        return set_sd_error (error, r, "serving");
    }
}

static gboolean
sdbus_serve_forever (GError **error)
{
  sd_id128_t id;
  int listener;
  int r;

  r = sd_id128_randomize (&id);
  if (r < 0)
    return set_sd_error (error, r, "sd_id128_randomize");
  listener = bench_server_listen_and_announce (error);
  if (listener < 0)
    return FALSE;

  for (;;)
    {
      g_autoptr(GError) local_error = NULL;
      int fd = accept4 (listener, NULL, NULL, SOCK_CLOEXEC);

      if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
        continue;
      if (fd < 0)
        return set_sd_error (error, -errno, "accept");
      /* One peer failing is no reason to stop serving the next. */
      if (!sdbus_serve_connection (fd, id, &local_error))
        g_printerr ("peer-bench-server sd-bus: %s\n", local_error->message);
    }
}

static int
sdbus_serve (void)
{
  g_autoptr(GError) error = NULL;

  sdbus_serve_forever (&error);
  g_printerr ("peer-bench-server sd-bus: %s\n", error->message);
  return 1;
}

static gpointer
sdbus_connect (const char *address,
               GError    **error)
{
  __attribute__((cleanup (sd_bus_close_unrefp))) sd_bus *bus = NULL;
  int r;

  if ((r = sd_bus_new (&bus)) < 0 ||
      (r = sd_bus_set_address (bus, address)) < 0 ||
      (r = sd_bus_negotiate_fds (bus, 1)) < 0 ||
      (r = sd_bus_start (bus)) < 0)
    {
      set_sd_error (error, r, "connecting");
      return NULL;
    }
  return g_steal_pointer (&bus);
}

static void
sdbus_disconnect (gpointer data)
{
  sd_bus_flush_close_unref (data);
}

static gboolean
sdbus_echo (gpointer      data,
            const guint8 *payload,
            gsize         size,
            GError      **error)
{
  __attribute__((cleanup (sd_bus_message_unrefp))) sd_bus_message *call = NULL;
  __attribute__((cleanup (sd_bus_message_unrefp))) sd_bus_message *reply = NULL;
  __attribute__((cleanup (sd_bus_error_free))) sd_bus_error bus_error = SD_BUS_ERROR_NULL;
  const void *got;
  size_t got_size;
  int r;

  if ((r = sd_bus_message_new_method_call (data, &call, NULL, BENCH_PATH, BENCH_INTERFACE, "Echo")) < 0 ||
      (r = sd_bus_message_append_array (call, 'y', payload, size)) < 0)
    return set_sd_error (error, r, "building Echo");
  r = sd_bus_call (data, call, 0, &bus_error, &reply);
  if (r < 0)
    return set_sd_bus_error (error, &bus_error, r, "Echo");
  r = sd_bus_message_read_array (reply, 'y', &got, &got_size);
  if (r < 0)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: signature %s, ay expected", sd_bus_message_get_signature (reply, TRUE));
      return FALSE;
    }
  return bench_check_echo (payload, size, got, got_size, error);
}

static gboolean
sdbus_echo_fds (gpointer   data,
                const int *fds,
                guint      n_fds,
                int       *out_fd,
                GError   **error)
{
  __attribute__((cleanup (sd_bus_message_unrefp))) sd_bus_message *call = NULL;
  __attribute__((cleanup (sd_bus_message_unrefp))) sd_bus_message *reply = NULL;
  __attribute__((cleanup (sd_bus_error_free))) sd_bus_error bus_error = SD_BUS_ERROR_NULL;
  int got[BENCH_MAX_FDS];
  guint n_got = 0;
  int fd;
  int r;

  /* Appending an fd dups it: the message owns the copies. */
  if ((r = sd_bus_message_new_method_call (data, &call, NULL, BENCH_PATH, BENCH_INTERFACE, "EchoFds")) < 0 ||
      (r = sd_bus_message_open_container (call, 'a', "h")) < 0)
    return set_sd_error (error, r, "building EchoFds");
  for (guint i = 0; i < n_fds; i++)
    if ((r = sd_bus_message_append_basic (call, 'h', &fds[i])) < 0)
      return set_sd_error (error, r, "building EchoFds");
  if ((r = sd_bus_message_close_container (call)) < 0)
    return set_sd_error (error, r, "building EchoFds");
  r = sd_bus_call (data, call, 0, &bus_error, &reply);
  if (r < 0)
    return set_sd_bus_error (error, &bus_error, r, "EchoFds");
  /* The fds that came back belong to the reply, which closes them. */
  r = sd_bus_message_enter_container (reply, 'a', "h");
  while (r >= 0 && (r = sd_bus_message_read_basic (reply, 'h', &fd)) > 0 && n_got < BENCH_MAX_FDS)
    got[n_got++] = fd;
  if (r != 0)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                   "wrong reply: signature %s, at most %d fds in ah expected",
                   sd_bus_message_get_signature (reply, TRUE), BENCH_MAX_FDS);
      return FALSE;
    }
  if (!bench_check_fds (fds, n_fds, got, n_got, error))
    return FALSE;
  if (out_fd != NULL && (*out_fd = fcntl (got[0], F_DUPFD_CLOEXEC, 3)) < 0)
    return set_sd_error (error, -errno, "dup");
  return TRUE;
}

typedef struct {
  sd_bus    *bus;
  BenchLoop *loop;
  guint      in_flight;
  GError    *error;
} SdbusPipeline;

typedef struct {
  SdbusPipeline *pipeline;
  guint64        seq;
  gint64         start_ns;
} SdbusCall;

static gboolean sdbus_pipeline_start_call (SdbusPipeline *self);

static int
on_pipeline_reply (sd_bus_message *reply,
                   void           *userdata,
                   sd_bus_error   *ret_error)
{
  g_autofree SdbusCall *call = userdata;
  SdbusPipeline *self = call->pipeline;
  const sd_bus_error *bus_error = sd_bus_message_get_error (reply);
  const void *got;
  size_t got_size;

  self->in_flight--;
  if (self->error != NULL)
    return 0;
  if (bus_error != NULL)
    set_sd_bus_error (&self->error, bus_error, -EIO, "Echo");
  else if (sd_bus_message_read_array (reply, 'y', &got, &got_size) < 0)
    g_set_error (&self->error, BENCH_ERROR, BENCH_ERROR_WRONG_REPLY,
                 "wrong reply: signature %s, ay expected", sd_bus_message_get_signature (reply, TRUE));
  else if (bench_loop_finish_call (self->loop, call->seq, call->start_ns, got, got_size, &self->error))
    sdbus_pipeline_start_call (self);
  return 0;
}

static gboolean
sdbus_pipeline_start_call (SdbusPipeline *self)
{
  __attribute__((cleanup (sd_bus_message_unrefp))) sd_bus_message *m = NULL;
  guint8 payload[BENCH_LOOP_PAYLOAD];
  SdbusCall *call = g_new (SdbusCall, 1);
  int r;

  call->pipeline = self;
  if (!bench_loop_start_call (self->loop, &call->seq, &call->start_ns))
    {
      g_free (call);
      return FALSE;
    }
  bench_loop_fill_payload (call->seq, payload);
  if ((r = sd_bus_message_new_method_call (self->bus, &m, NULL, BENCH_PATH, BENCH_INTERFACE, "Echo")) < 0 ||
      (r = sd_bus_message_append_array (m, 'y', payload, sizeof payload)) < 0 ||
      (r = sd_bus_call_async (self->bus, NULL, m, on_pipeline_reply, call, 0)) < 0)
    {
      g_free (call);
      set_sd_error (&self->error, r, "Echo");
      return FALSE;
    }
  self->in_flight++;
  return TRUE;
}

static gboolean
sdbus_pipeline (gpointer   data,
                guint      depth,
                BenchLoop *loop,
                GError   **error)
{
  SdbusPipeline self = { data, loop, 0, NULL };

  while (self.in_flight < depth && sdbus_pipeline_start_call (&self))
    ;
  while (self.in_flight > 0)
    {
      int r = sd_bus_process (self.bus, NULL);

      if (r == 0)
        r = sd_bus_wait (self.bus, UINT64_MAX);
      if (r < 0)
        {
          /* The calls still pending are failed by sd-bus on close. */
          g_clear_error (&self.error);
          set_sd_error (&self.error, r, "waiting for replies");
          break;
        }
    }
  if (self.error != NULL)
    {
      g_propagate_error (error, self.error);
      return FALSE;
    }
  return TRUE;
}

static const char *
sdbus_get_version (void)
{
  return "libsystemd " BENCH_LIBSYSTEMD_VERSION;
}

const BenchTransport bench_transport_sdbus = {
  .name = "sd-bus",
  .get_version = sdbus_get_version,
  .serve = sdbus_serve,
  .connect = sdbus_connect,
  .echo = sdbus_echo,
  .echo_fds = sdbus_echo_fds,
  .pipeline = sdbus_pipeline,
  .disconnect = sdbus_disconnect,
};
