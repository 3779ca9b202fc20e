/* codegen-example.c: a server and a client of org.example.Helper1
 * (codegen-example.xml), through what peer-codegen generates from it:
 * a typed handler and reply on the server, a typed call on the client.
 *
 *   codegen-example            serves: prints its address, then runs until
 *                              SIGINT or SIGTERM
 *   codegen-example ADDRESS    calls that server */
#include <stdio.h>

#include <glib-unix.h>
#include <libpeer.h>

#include "example-helper1.h"   /* generated at build time */

static void
handle_quick (PeerCall *call,
              gint32    bits,
              gpointer  user_data G_GNUC_UNUSED)
{
  g_autofree char *number = NULL;

  if (bits < 1 || bits > 64)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "bits must be between 1 and 64, not %d", bits);
      return;
    }
  number = g_strdup_printf ("%" G_GUINT64_FORMAT,
                            ((guint64) g_random_int () << 32 | g_random_int ()) >> (64 - bits));
  example_helper1_complete_quick (call, number);
}

static const ExampleHelper1Vtable handlers = { .handle_quick = handle_quick };

/* SIGINT (Ctrl-C) or SIGTERM (kill, systemd): leave the main loop, so that
 * the server is stopped, which removes its socket and the socket's private
 * directory. Killed by the signal's default action instead, the process
 * would leave both behind. */
static gboolean
on_quit_signal (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_CONTINUE;
}

static int
serve (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  /* No address: a socket in a fresh 0700 directory under
   * $XDG_RUNTIME_DIR (or /tmp); only our own uid may connect. */
  server = peer_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  if (server != NULL)
    iface = example_helper1_export (server, "/org/example/Helper", &handlers, NULL, &error);
  if (iface == NULL)
    {
      g_printerr ("codegen-example: %s\n", error->message);
      return 1;
    }
  g_unix_signal_add (SIGINT, on_quit_signal, loop);
  g_unix_signal_add (SIGTERM, on_quit_signal, loop);
  peer_server_start (server);
  g_print ("%s\n", peer_server_get_client_address (server));
  fflush (stdout);
  g_main_loop_run (loop);
  peer_server_stop (server);            /* closes every peer, removes the socket */
  return 0;
}

static int
call (const char *address)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autofree char *number = NULL;

  client = peer_client_new_sync (address, 5000, NULL, &error);
  if (client == NULL ||
      !example_helper1_call_quick_sync (client, "/org/example/Helper", 64, &number, NULL, &error))
    {
      g_printerr ("codegen-example: %s\n", error->message);
      return 1;
    }
  g_print ("Quick (64) = %s\n", number);

  /* A refusal comes back as the server's GError. */
  if (example_helper1_call_quick_sync (client, "/org/example/Helper", 0, NULL, NULL, &error) ||
      !g_error_matches (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS))
    {
      g_printerr ("codegen-example: Quick (0) was not refused as InvalidArgs\n");
      return 1;
    }
  g_print ("Quick (0): %s\n", error->message);
  return 0;
}

int
main (int   argc,
      char *argv[])
{
  if (argc > 2)
    {
      g_printerr ("usage: codegen-example [ADDRESS]\n");
      return 2;
    }
  return argc == 2 ? call (argv[1]) : serve ();
}
