/* helper-example.c: an application that starts its own helper process and
 * calls it over a private socketpair. The same program is both sides: run
 * without arguments it is the application, and it starts itself with
 * --helper as the helper. */
#include <libpeer.h>

static const char xml[] =
  "<node><interface name='org.example.Greeter1'>"
  "  <method name='Greet'>"
  "    <arg name='name' type='s' direction='in'/>"
  "    <arg name='greeting' type='s' direction='out'/>"
  "  </method>"
  "</interface></node>";

static void
handle_greet (PeerCall *call,
              gpointer  user_data G_GNUC_UNUSED)
{
  const char *name;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &name);
  peer_call_return_value (call, g_variant_new ("(s)", name[0] ? name : "nobody"));
}

/* The helper: serve on the socket the application handed us ($PEER_FD)
 * until the application goes away. */
static int
run_helper (void)
{
  static const PeerMethodEntry methods[] = { { "Greet", handle_greet, PEER_METHOD_FLAGS_NONE } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  iface = peer_interface_new_for_xml (xml, "org.example.Greeter1", &error);
  if (server == NULL || iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), NULL, &error) ||
      !peer_server_export (server, "/org/example/Greeter", iface, &error))
    {
      g_printerr ("helper: %s\n", error->message);
      return 1;
    }
  g_signal_connect_swapped (server, "peer-disconnected", G_CALLBACK (g_main_loop_quit), loop);
  g_signal_connect_swapped (server, "peer-refused", G_CALLBACK (g_main_loop_quit), loop);
  peer_server_start (server);
  g_main_loop_run (loop);
  return 0;
}

/* The application: start the helper, call it, and stop it. */
static int
run_app (const char *self)
{
  const char *argv[] = { self, "--helper", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(GVariant) reply = NULL;
  const char *greeting;

  helper = peer_helper_new (argv, NULL, &error);
  if (helper != NULL)
    reply = peer_helper_call_sync (helper, "/org/example/Greeter", "org.example.Greeter1", "Greet",
                                   g_variant_new ("(s)", "world"), G_VARIANT_TYPE ("(s)"), -1,
                                   NULL, NULL, NULL, &error);
  if (reply == NULL)
    {
      g_printerr ("app: %s\n", error->message);
      return 1;
    }
  g_variant_get (reply, "(&s)", &greeting);
  g_print ("hello, %s\n", greeting);
  return 0;                             /* disposing the PeerHelper stops the helper */
}

int
main (int   argc,
      char *argv[])
{
  if (argc > 1 && g_str_equal (argv[1], "--helper"))
    return run_helper ();
  return run_app (argv[0]);
}
