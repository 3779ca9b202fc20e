/* objects-example.c: what g_dbus_connection_register_subtree(),
 * GDBusInterfaceSkeleton and GDBusObjectManagerServer serve, on every
 * peer at once. The introspection data and the skeleton come from
 * gdbus-codegen (objects-example.xml); the program serves until SIGINT or
 * SIGTERM, like codegen-example.c:
 *
 *   /app                  an ObjectManager listing everything below
 *   /app/disks/sda, sdb   one interface, each object with its own Size
 *   /app/jobs/1, 2        a subtree's children, listed and looked up on demand
 *   /app/actions/compress a GObject's properties
 *   /app/legacy           a gdbus-codegen skeleton, unchanged */
#include <stdio.h>

#include <glib-unix.h>
#include <libpeer.h>

#include "objects-example-gdbus.h"   /* gdbus-codegen, at build time */

static const char *const job_nodes[] = { "1", "2", NULL };

/* Shared by both disks: the call says which one it is for. */
static void
handle_describe (PeerCall *call,
                 gpointer  user_data G_GNUC_UNUSED)
{
  peer_call_return_value (call, g_variant_new ("(s)", peer_call_get_object_path (call)));
}

/* The subtree's children, asked for by each peer as it looks. */
static char **
list_jobs (PeerSubtree    *tree G_GNUC_UNUSED,
           PeerConnection *caller G_GNUC_UNUSED,
           gpointer        user_data G_GNUC_UNUSED)
{
  return g_strdupv ((char **) job_nodes);
}

/* A child's interfaces, or NULL when there is no such child. */
static GPtrArray *
find_job (PeerSubtree    *tree G_GNUC_UNUSED,
          PeerConnection *caller G_GNUC_UNUSED,
          const char     *node,
          gpointer        job_iface)
{
  GPtrArray *interfaces;

  if (!g_strv_contains (job_nodes, node))
    return NULL;
  interfaces = g_ptr_array_new_with_free_func (g_object_unref);
  g_ptr_array_add (interfaces, g_object_ref (job_iface));
  return interfaces;
}

static void
handle_job_cancel (PeerCall *call,
                   gpointer  user_data G_GNUC_UNUSED)
{
  peer_call_return_error (call, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                          "%s cannot be cancelled", peer_call_get_object_path (call));
}

/* GDBus's own signal, as on a bus. */
static gboolean
on_handle_cancel (ExampleJob1           *skeleton,
                  GDBusMethodInvocation *invocation,
                  gpointer               user_data G_GNUC_UNUSED)
{
  example_job1_set_state (skeleton, "cancelled");
  example_job1_complete_cancel (skeleton, invocation);
  return TRUE;
}

static gboolean
on_quit_signal (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_CONTINUE;
}

int
main (void)
{
  static const PeerMethodEntry disk_methods[] = { { "Describe", handle_describe, PEER_METHOD_FLAGS_NONE } };
  static const PeerMethodEntry job_methods[] = { { "Cancel", handle_job_cancel, PEER_METHOD_FLAGS_NONE } };
  g_autoptr(GError) error = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(PeerServer) server = peer_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_autoptr(PeerInterface) disk = peer_interface_new (example_disk1_interface_info ());
  g_autoptr(PeerInterface) job = peer_interface_new (example_job1_interface_info ());
  g_autoptr(PeerSubtree) jobs = NULL;
  g_autoptr(GSimpleAction) compress = g_simple_action_new ("compress", NULL);
  g_autoptr(PeerInterface) action = NULL;
  g_autoptr(ExampleJob1) legacy = example_job1_skeleton_new ();

  if (server == NULL)
    goto failed;

  /* One interface at two paths: shared handlers, a Size each. */
  if (!peer_interface_add_methods (disk, disk_methods, G_N_ELEMENTS (disk_methods), NULL, &error) ||
      !peer_interface_set_object_property (disk, "/app/disks/sda", "Size", g_variant_new_uint64 (1000), &error) ||
      !peer_interface_set_object_property (disk, "/app/disks/sdb", "Size", g_variant_new_uint64 (2000), &error) ||
      !peer_server_export (server, "/app/disks/sda", disk, &error) ||
      !peer_server_export (server, "/app/disks/sdb", disk, &error))
    goto failed;

  /* A subtree: /app/jobs/<node>, found when asked for. */
  if (!peer_interface_add_methods (job, job_methods, G_N_ELEMENTS (job_methods), NULL, &error) ||
      !peer_interface_set_property (job, "State", g_variant_new_string ("running"), &error))
    goto failed;
  jobs = peer_subtree_new (list_jobs, find_job, job, NULL);
  peer_subtree_add_interface (jobs, job);       /* its children's signals reach peers */
  if (!peer_server_export_subtree (server, "/app/jobs", jobs, &error))
    goto failed;

  /* A GObject's properties as the interface's: notify → PropertiesChanged,
   * a peer's Set → g_object_set_property(), type-checked. */
  action = peer_interface_new_for_object (G_OBJECT (compress), example_action1_interface_info (), &error);
  if (action == NULL || !peer_server_export (server, "/app/actions/compress", action, &error))
    goto failed;

  /* gdbus-codegen server code, unchanged: the skeleton on every peer's connection. */
  example_job1_set_state (legacy, "running");
  g_signal_connect (legacy, "handle-cancel", G_CALLBACK (on_handle_cancel), NULL);
  if (!peer_server_export_skeleton (server, "/app/legacy", G_DBUS_INTERFACE_SKELETON (legacy), &error))
    goto failed;

  /* An ObjectManager listing (and announcing) everything below /app. */
  if (!peer_server_add_object_manager (server, "/app", &error))
    goto failed;

  g_unix_signal_add (SIGINT, on_quit_signal, loop);
  g_unix_signal_add (SIGTERM, on_quit_signal, loop);
  peer_server_start (server);
  g_print ("%s\n", peer_server_get_client_address (server));
  fflush (stdout);
  g_main_loop_run (loop);
  peer_server_stop (server);
  return 0;

failed:
  g_printerr ("objects-example: %s\n", error->message);
  return 1;
}
