/* transport-libpeer.c: peer-server's org.libpeer.Bench1 through PeerClient,
 * the API libpeer users call. The server is a PeerServer serving
 * peer-server's own Bench1 service (server/bench-service.c), set up as
 * peer-server sets up its own, with one difference: it takes the kernel's
 * 253 fds per message instead of libpeer's default 16, so that the fd
 * cells measure what the fds cost rather than the default refusing them
 * (the libdbus server raises its own default of 16 the same way).
 *
 * Two transports: "libpeer" (the GDBus path) and "libpeer-lane" (the same
 * client with a lane open, so the same calls take libpeer's fast path).
 *
 * Calls go through the stubs peer-codegen generates from Bench1's XML
 * (peer_bench1_call_*), as a user's would: what is measured is what a
 * user writes. */
#include "config.h"

#include <glib-unix.h>
#include <libpeer.h>

#include "bench-gio.h"
#include "bench-transport.h"
#include "peer-protocol-stubs.h"
#include "services.h"

G_STATIC_ASSERT (PEER_SERVER_MAX_FDS_PER_MESSAGE >= BENCH_MAX_FDS);

static gboolean
on_quit_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

static int
libpeer_serve (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  server = peer_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  if (server == NULL || !peer_bench_service_export (server, &error))
    {
      g_printerr ("peer-bench-server libpeer: %s\n", error->message);
      return 1;
    }
  peer_server_set_max_fds_per_message (server, BENCH_MAX_FDS);
  g_unix_signal_add (SIGINT, on_quit_signal, loop);
  g_unix_signal_add (SIGTERM, on_quit_signal, loop);
  peer_server_start (server);
  if (!bench_server_announce (peer_server_get_client_address (server), &error))
    {
      g_printerr ("peer-bench-server libpeer: %s\n", error->message);
      return 1;
    }
  g_main_loop_run (loop);
  peer_server_stop (server);
  return 0;
}

typedef struct {
  PeerClient *client;
  GVariant   *fd_handles;         /* ah, for as many fds as the last call */
  gboolean    has_echo_fds;
} LibpeerClient;

/* Whether the server has @method: it is asked, not assumed, so that the
 * benchmark runs against older and newer services alike. */
static gboolean
server_has_method (PeerClient *client,
                   const char *method,
                   GError    **error)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GDBusNodeInfo) node = NULL;
  const char *xml;
  GDBusInterfaceInfo *info;

  reply = peer_client_call_sync (client, BENCH_PATH, "org.freedesktop.DBus.Introspectable",
                                 "Introspect", NULL, G_VARIANT_TYPE ("(s)"), -1,
                                 NULL, NULL, NULL, error);
  if (reply == NULL)
    return FALSE;
  g_variant_get (reply, "(&s)", &xml);
  node = g_dbus_node_info_new_for_xml (xml, error);
  if (node == NULL)
    return FALSE;
  info = g_dbus_node_info_lookup_interface (node, BENCH_INTERFACE);
  return info != NULL && g_dbus_interface_info_lookup_method (info, method) != NULL;
}

static gpointer
connect_client (const char *address,
                gboolean    lane,
                GError    **error)
{
  g_autoptr(PeerClient) peer = peer_client_new_sync (address, -1, NULL, error);
  g_autoptr(GError) local_error = NULL;
  LibpeerClient *client;

  if (peer == NULL)
    return NULL;
  if (lane && !peer_client_open_lane_sync (peer, NULL, error))
    return NULL;
  client = g_new0 (LibpeerClient, 1);
  client->has_echo_fds = server_has_method (peer, "EchoFds", &local_error);
  if (local_error != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local_error),
                                  "cannot introspect the server: ");
      g_free (client);
      return NULL;
    }
  client->client = g_steal_pointer (&peer);
  return client;
}

static gpointer
libpeer_connect (const char *address,
                 GError    **error)
{
  return connect_client (address, FALSE, error);
}

static gpointer
libpeer_lane_connect (const char *address,
                      GError    **error)
{
  return connect_client (address, TRUE, error);
}

static void
libpeer_disconnect (gpointer data)
{
  LibpeerClient *client = data;

  peer_client_close (client->client);
  g_object_unref (client->client);
  g_clear_pointer (&client->fd_handles, g_variant_unref);
  g_free (client);
}

static gboolean
libpeer_echo (gpointer      data,
              const guint8 *payload,
              gsize         size,
              GError      **error)
{
  LibpeerClient *client = data;
  g_autoptr(GBytes) back = NULL;

  if (!peer_bench1_call_echo_sync (client->client, BENCH_PATH, payload, size, &back, NULL, error))
    return FALSE;
  return bench_check_echo (payload, size, g_bytes_get_data (back, NULL), g_bytes_get_size (back), error);
}

/* (transfer none): handles 0 to @n_fds - 1, made again only when @n_fds
 * changes. */
static GVariant *
echo_fds_handles (LibpeerClient *client,
                  guint          n_fds)
{
  g_autofree gint32 *handles = NULL;

  if (client->fd_handles != NULL && g_variant_n_children (client->fd_handles) == n_fds)
    return client->fd_handles;
  handles = g_new (gint32, n_fds);
  for (guint i = 0; i < n_fds; i++)
    handles[i] = (gint32) i;
  g_clear_pointer (&client->fd_handles, g_variant_unref);
  client->fd_handles = g_variant_ref_sink (g_variant_new_fixed_array (G_VARIANT_TYPE_HANDLE, handles, n_fds,
                                                                      sizeof (gint32)));
  return client->fd_handles;
}

static gboolean
libpeer_echo_fds (gpointer   data,
                  const int *fds,
                  guint      n_fds,
                  int       *out_fd,
                  GError   **error)
{
  LibpeerClient *client = data;
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GUnixFDList) out_fd_list = NULL;
  g_autoptr(GVariant) handles = NULL;
  g_autoptr(GError) local_error = NULL;

  if (!client->has_echo_fds)
    {
      g_set_error (error, BENCH_ERROR, BENCH_ERROR_UNSUPPORTED,
                   "the server has no %s.EchoFds", BENCH_INTERFACE);
      return FALSE;
    }
  fd_list = bench_gio_fd_list_new (fds, n_fds, error);
  if (fd_list == NULL)
    return FALSE;
  if (!peer_bench1_call_echo_fds_sync (client->client, BENCH_PATH, echo_fds_handles (client, n_fds), fd_list,
                                       &handles, &out_fd_list, NULL, &local_error))
    {
      /* A server's limit on fds per message (peer_server_set_max_fds_per_message())
       * makes the cell n/a, not a failed run. */
      if (g_error_matches (local_error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED))
        {
          g_set_error (error, BENCH_ERROR, BENCH_ERROR_UNSUPPORTED, "the server refuses %u fds: %s",
                       n_fds, local_error->message);
          return FALSE;
        }
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  return bench_gio_check_echo_fd_handles (handles, out_fd_list, fds, n_fds, out_fd, error);
}

/* The pipeline is shared with the GDBus transport, in GVariants: the
 * asynchronous stub takes the bytes (and copies them, as it must: the call
 * outlives this function), and its result goes back as the (ay) it is. */
static void
libpeer_call_echo (gpointer             data,
                   GVariant            *parameters,
                   GAsyncReadyCallback  callback,
                   gpointer             user_data)
{
  LibpeerClient *client = data;
  g_autoptr(GVariant) owned = g_variant_ref_sink (parameters);

  peer_bench1_call_echo (client->client, BENCH_PATH, g_variant_get_data (owned), g_variant_get_size (owned),
                         NULL, callback, user_data);
}

static GVariant *
libpeer_finish_echo (gpointer       data,
                     GAsyncResult  *result,
                     GError       **error)
{
  LibpeerClient *client = data;
  g_autoptr(GBytes) back = NULL;

  if (!peer_bench1_call_echo_finish (client->client, &back, result, error))
    return NULL;
  return g_variant_ref_sink (g_variant_new_from_bytes (BENCH_ECHO_TYPE, back, TRUE));
}

static gboolean
libpeer_pipeline (gpointer   data,
                  guint      depth,
                  BenchLoop *loop,
                  GError   **error)
{
  return bench_gio_pipeline (data, libpeer_call_echo, libpeer_finish_echo, depth, loop, error);
}

static const char *
libpeer_get_version (void)
{
  return "libpeer " PACKAGE_VERSION;
}

const BenchTransport bench_transport_libpeer = {
  .name = "libpeer",
  .get_version = libpeer_get_version,
  .serve = libpeer_serve,
  .connect = libpeer_connect,
  .echo = libpeer_echo,
  .echo_fds = libpeer_echo_fds,
  .pipeline = libpeer_pipeline,
  .serves_many = TRUE,
  .disconnect = libpeer_disconnect,
};

const BenchTransport bench_transport_libpeer_lane = {
  .name = "libpeer-lane",
  .get_version = libpeer_get_version,
  .serve = libpeer_serve,
  .connect = libpeer_lane_connect,
  .echo = libpeer_echo,
  .echo_fds = libpeer_echo_fds,
  .pipeline = libpeer_pipeline,
  .serves_many = TRUE,
  .disconnect = libpeer_disconnect,
};
