/* transport-gdbus.c: plain GDBus peer to peer, no libpeer.
 *
 * The server is what a GLib programmer writes by hand: a GDBusServer on a
 * path socket that admits EXTERNAL from the same uid and registers the
 * object on every connection; the client calls it with
 * g_dbus_connection_call_sync(). The difference between this row and
 * libpeer's is what libpeer's own layer costs. */
#include "config.h"

#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "bench-gio.h"
#include "bench-transport.h"

/* The interface peer-server serves (protocol/org.libpeer.Bench1.xml),
 * with EchoFds, so that this server can run the fd cell today. */
static const char bench_interface_xml[] =
  "<node>"
  "  <interface name='" BENCH_INTERFACE "'>"
  "    <method name='Ping'/>"
  "    <method name='Echo'>"
  "      <arg name='data' type='ay' direction='in'/>"
  "      <arg name='data' type='ay' direction='out'/>"
  "    </method>"
  "    <method name='EchoFds'>"
  "      <arg name='fds' type='ah' direction='in'/>"
  "      <arg name='fds' type='ah' direction='out'/>"
  "    </method>"
  "  </interface>"
  "</node>";

static void
handle_echo_fds (GDBusMethodInvocation *invocation,
                 GVariant              *parameters)
{
  GUnixFDList *fd_list = g_dbus_message_get_unix_fd_list (g_dbus_method_invocation_get_message (invocation));
  int n_fds = fd_list != NULL ? g_unix_fd_list_get_length (fd_list) : 0;
  g_autoptr(GVariant) handles = g_variant_get_child_value (parameters, 0);
  const gint32 *handle;
  gsize n_handles;

  /* The handles index the fds that came with the call; the reply sends
   * the same list back, so every index must be valid. */
  handle = g_variant_get_fixed_array (handles, &n_handles, sizeof (gint32));
  for (gsize i = 0; i < n_handles; i++)
    if (handle[i] < 0 || handle[i] >= n_fds)
      {
        g_dbus_method_invocation_return_error (invocation, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS,
                                               "handle %d out of range", handle[i]);
        return;
      }
  g_dbus_method_invocation_return_value_with_unix_fd_list (invocation, parameters, fd_list);
}

static void
handle_method_call (GDBusConnection       *connection,
                    const char            *sender,
                    const char            *object_path,
                    const char            *interface_name,
                    const char            *method_name,
                    GVariant              *parameters,
                    GDBusMethodInvocation *invocation,
                    gpointer               user_data)
{
  /* GDBus checked the signature against the interface already. */
  if (g_str_equal (method_name, "Echo"))
    g_dbus_method_invocation_return_value (invocation, parameters);
  else if (g_str_equal (method_name, "EchoFds"))
    handle_echo_fds (invocation, parameters);
  else
    g_dbus_method_invocation_return_value (invocation, NULL);
}

static const GDBusInterfaceVTable bench_vtable = { handle_method_call, NULL, NULL, { 0 } };

static void
on_connection_closed (GDBusConnection *connection,
                      gboolean         remote_peer_vanished,
                      GError          *error,
                      gpointer         user_data)
{
  g_object_unref (connection);
}

static gboolean
on_new_connection (GDBusServer     *server,
                   GDBusConnection *connection,
                   gpointer         user_data)
{
  GDBusInterfaceInfo *info = user_data;
  g_autoptr(GError) error = NULL;

  if (g_dbus_connection_register_object (connection, BENCH_PATH, info, &bench_vtable,
                                         NULL, NULL, &error) == 0)
    {
      g_printerr ("peer-bench-server gdbus: %s\n", error->message);
      return FALSE;
    }
  /* Ours until it closes: the server keeps no reference. */
  g_object_ref (connection);
  g_signal_connect (connection, "closed", G_CALLBACK (on_connection_closed), NULL);
  return TRUE;
}

static gboolean
on_allow_mechanism (GDBusAuthObserver *observer,
                    const char        *mechanism,
                    gpointer           user_data)
{
  return g_str_equal (mechanism, "EXTERNAL");
}

static gboolean
on_authorize_peer (GDBusAuthObserver *observer,
                   GIOStream         *stream,
                   GCredentials      *credentials,
                   gpointer           user_data)
{
  return credentials != NULL &&
         g_credentials_get_unix_user (credentials, NULL) == getuid ();
}

static gboolean
gdbus_serve_forever (GError **error)
{
  g_autoptr(GDBusNodeInfo) node = NULL;
  g_autoptr(GDBusAuthObserver) observer = NULL;
  g_autoptr(GDBusServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_autofree char *guid = g_dbus_generate_guid ();
  g_autofree char *path = NULL;
  g_autofree char *escaped = NULL;
  g_autofree char *address = NULL;

  node = g_dbus_node_info_new_for_xml (bench_interface_xml, error);
  if (node == NULL)
    return FALSE;
  path = bench_server_make_socket_path (error);
  if (path == NULL)
    return FALSE;
  bench_server_exit_on_signals (path);

  escaped = g_dbus_address_escape_value (path);
  address = g_strconcat ("unix:path=", escaped, NULL);
  observer = g_dbus_auth_observer_new ();
  g_signal_connect (observer, "allow-mechanism", G_CALLBACK (on_allow_mechanism), NULL);
  g_signal_connect (observer, "authorize-authenticated-peer", G_CALLBACK (on_authorize_peer), NULL);
  server = g_dbus_server_new_sync (address, G_DBUS_SERVER_FLAGS_NONE, guid, observer, NULL, error);
  if (server == NULL)
    return FALSE;
  g_signal_connect (server, "new-connection", G_CALLBACK (on_new_connection),
                    node->interfaces[0]);
  g_dbus_server_start (server);
  if (!bench_server_announce (g_dbus_server_get_client_address (server), error))
    return FALSE;

  /* Until SIGTERM, whose handler ends the process. */
  loop = g_main_loop_new (NULL, FALSE);
  g_main_loop_run (loop);
  return TRUE;
}

static int
gdbus_serve (void)
{
  g_autoptr(GError) error = NULL;

  if (gdbus_serve_forever (&error))
    return 0;
  g_printerr ("peer-bench-server gdbus: %s\n", error->message);
  return 1;
}

typedef struct {
  GDBusConnection *connection;
  GVariant        *fd_parameters;
} GdbusClient;

static gpointer
gdbus_connect (const char *address,
               GError    **error)
{
  GDBusConnection *connection;
  GdbusClient *client;

  connection = g_dbus_connection_new_for_address_sync (address,
                                                       G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
                                                       NULL, NULL, error);
  if (connection == NULL)
    return NULL;
  client = g_new0 (GdbusClient, 1);
  client->connection = connection;
  return client;
}

static void
gdbus_disconnect (gpointer data)
{
  GdbusClient *client = data;

  g_dbus_connection_close_sync (client->connection, NULL, NULL);
  g_object_unref (client->connection);
  g_clear_pointer (&client->fd_parameters, g_variant_unref);
  g_free (client);
}

static gboolean
gdbus_echo (gpointer      data,
            const guint8 *payload,
            gsize         size,
            GError      **error)
{
  GdbusClient *client = data;
  g_autoptr(GVariant) reply = NULL;

  reply = g_dbus_connection_call_sync (client->connection, NULL, BENCH_PATH, BENCH_INTERFACE, "Echo",
                                       bench_gio_echo_parameters (payload, size),
                                       BENCH_ECHO_TYPE, G_DBUS_CALL_FLAGS_NONE, -1,
                                       NULL, error);
  return reply != NULL && bench_gio_check_echo (reply, payload, size, error);
}

static gboolean
gdbus_echo_fds (gpointer   data,
                const int *fds,
                guint      n_fds,
                int       *out_fd,
                GError   **error)
{
  GdbusClient *client = data;
  g_autoptr(GUnixFDList) fd_list = NULL;
  g_autoptr(GUnixFDList) out_fd_list = NULL;
  g_autoptr(GVariant) reply = NULL;

  fd_list = bench_gio_fd_list_new (fds, n_fds, error);
  if (fd_list == NULL)
    return FALSE;
  reply = g_dbus_connection_call_with_unix_fd_list_sync (client->connection, NULL, BENCH_PATH,
                                                         BENCH_INTERFACE, "EchoFds",
                                                         bench_gio_echo_fds_parameters (&client->fd_parameters, n_fds),
                                                         G_VARIANT_TYPE ("(ah)"),
                                                         G_DBUS_CALL_FLAGS_NONE, -1,
                                                         fd_list, &out_fd_list, NULL, error);
  return reply != NULL && bench_gio_check_echo_fds (reply, out_fd_list, fds, n_fds, out_fd, error);
}

static void
gdbus_call_echo (gpointer             data,
                 GVariant            *parameters,
                 GAsyncReadyCallback  callback,
                 gpointer             user_data)
{
  GdbusClient *client = data;

  g_dbus_connection_call (client->connection, NULL, BENCH_PATH, BENCH_INTERFACE, "Echo",
                          parameters, BENCH_ECHO_TYPE, G_DBUS_CALL_FLAGS_NONE, -1,
                          NULL, callback, user_data);
}

static GVariant *
gdbus_finish_echo (gpointer       data,
                   GAsyncResult  *result,
                   GError       **error)
{
  GdbusClient *client = data;

  return g_dbus_connection_call_finish (client->connection, result, error);
}

static gboolean
gdbus_pipeline (gpointer   data,
                guint      depth,
                BenchLoop *loop,
                GError   **error)
{
  return bench_gio_pipeline (data, gdbus_call_echo, gdbus_finish_echo, depth, loop, error);
}

static const char *
gdbus_get_version (void)
{
  static char version[32];

  if (version[0] == '\0')
    g_snprintf (version, sizeof version, "GLib %u.%u.%u",
                glib_major_version, glib_minor_version, glib_micro_version);
  return version;
}

const BenchTransport bench_transport_gdbus = {
  .name = "gdbus",
  .get_version = gdbus_get_version,
  .serve = gdbus_serve,
  .connect = gdbus_connect,
  .echo = gdbus_echo,
  .echo_fds = gdbus_echo_fds,
  .pipeline = gdbus_pipeline,
  .serves_many = TRUE,
  .disconnect = gdbus_disconnect,
};
