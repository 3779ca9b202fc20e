/* jobs-example.c: GDBus's own GDBusObjectManagerClient following
 * peer-server's jobs, over a libpeer connection.
 *
 * It starts peer-server as its helper (the path is its first argument, or
 * `peer-server` in PATH), starts a job, and watches it come (object-added,
 * with its State), make progress (PropertiesChanged on its proxy) and go
 * (object-removed), through the ObjectManager at /org/libpeer/Helper.
 *
 * With --twin, its negative twin: a job the server refuses (an unknown
 * kind) makes no object come at all. Either way it exits 0 when all went
 * as it should.
 */
#include <libpeer.h>

typedef struct {
  GMainLoop *loop;
  char *job_path;                       /* the job started, once known */
  gboolean added;
  gboolean removed;
  double progress;
  char *final_state;
} Follow;

static void
on_object_added (GDBusObjectManager *manager,
                 GDBusObject        *object,
                 Follow             *follow)
{
  g_autoptr(GDBusInterface) job = g_dbus_object_get_interface (object, "org.libpeer.Job1");
  g_autoptr(GVariant) state = job != NULL ? g_dbus_proxy_get_cached_property (G_DBUS_PROXY (job), "State") : NULL;

  g_print ("added %s (State %s)\n", g_dbus_object_get_object_path (object),
           state != NULL ? g_variant_get_string (state, NULL) : "?");
  follow->added = TRUE;
}

static void
on_properties_changed (GDBusObjectManagerClient *manager,
                       GDBusObjectProxy         *object,
                       GDBusProxy               *proxy,
                       GVariant                 *changed,
                       const char * const       *invalidated,
                       Follow                   *follow)
{
  g_autoptr(GVariant) state = NULL;

  if (g_variant_lookup (changed, "Progress", "d", &follow->progress))
    g_print ("%s: %.0f%%\n", g_dbus_object_get_object_path (G_DBUS_OBJECT (object)), follow->progress * 100);
  state = g_variant_lookup_value (changed, "State", G_VARIANT_TYPE_STRING);
  if (state != NULL)
    {
      g_free (follow->final_state);
      follow->final_state = g_variant_dup_string (state, NULL);
    }
}

static void
on_object_removed (GDBusObjectManager *manager,
                   GDBusObject        *object,
                   Follow             *follow)
{
  g_print ("removed %s\n", g_dbus_object_get_object_path (object));
  if (g_strcmp0 (g_dbus_object_get_object_path (object), follow->job_path) == 0)
    {
      follow->removed = TRUE;
      g_main_loop_quit (follow->loop);
    }
}

int
main (int   argc,
      char *argv[])
{
  gboolean twin = argc > 1 && g_str_equal (argv[argc - 1], "--twin");
  const char *server = argc > 1 && !g_str_equal (argv[1], "--twin") ? argv[1] : "peer-server";
  /* Finished jobs go 50 ms after they finish. */
  const char *helper_argv[] = { server, "--job-linger-ms=50", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GDBusObjectManager) manager = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Follow follow = { loop, NULL, FALSE, FALSE, 0.0, NULL };
  int status;

  helper = peer_helper_new (helper_argv, NULL, &error);
  if (helper != NULL)
    client = peer_helper_dup_client (helper, -1, NULL, &error);
  /* A NULL name: no bus runs, the other end of the connection answers. */
  if (client != NULL)
    manager = g_dbus_object_manager_client_new_sync (peer_client_get_dbus_connection (client),
                                                     G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_NONE, NULL,
                                                     "/org/libpeer/Helper", NULL, NULL, NULL, NULL, &error);
  if (manager == NULL)
    {
      g_printerr ("jobs-example: %s\n", error->message);
      return 1;
    }
  g_signal_connect (manager, "object-added", G_CALLBACK (on_object_added), &follow);
  g_signal_connect (manager, "object-removed", G_CALLBACK (on_object_removed), &follow);
  g_signal_connect (manager, "interface-proxy-properties-changed", G_CALLBACK (on_properties_changed), &follow);

  reply = peer_client_call_sync (client, "/org/libpeer/Helper", "org.libpeer.Helper1", "StartJob",
                                 g_variant_new ("(suu)", twin ? "no such kind" : "count", 4, 20),
                                 G_VARIANT_TYPE ("(o)"), -1, NULL, NULL, NULL, &error);
  if (twin)
    {
      g_autoptr(GList) objects = NULL;

      /* Refused, and nothing was announced: the list is still empty once
       * a later call has been answered. */
      g_print ("refused: %s\n", error != NULL ? error->message : "(not refused)");
      g_clear_pointer (&reply, g_variant_unref);
      reply = peer_client_call_sync (client, "/org/libpeer/Helper", "org.freedesktop.DBus.Peer", "Ping",
                                     NULL, NULL, -1, NULL, NULL, NULL, NULL);
      while (g_main_context_iteration (NULL, FALSE))
        ;
      objects = g_dbus_object_manager_get_objects (manager);
      status = error != NULL && objects == NULL && !follow.added ? 0 : 1;
      g_list_free_full (g_steal_pointer (&objects), g_object_unref);
      return status;
    }
  if (reply == NULL)
    {
      g_printerr ("jobs-example: %s\n", error->message);
      return 1;
    }
  g_variant_get (reply, "(o)", &follow.job_path);
  g_print ("started %s\n", follow.job_path);
  g_main_loop_run (loop);

  status = follow.added && follow.removed && follow.progress == 1.0 &&
           g_strcmp0 (follow.final_state, "done") == 0 ? 0 : 1;
  g_free (follow.job_path);
  g_free (follow.final_state);
  return status;                        /* disposing the PeerHelper stops peer-server */
}
