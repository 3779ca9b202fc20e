/* codegen-example.c: a server and a client of org.example.Helper1
 * (codegen-example.xml), through what peer-codegen generates from it:
 * a typed handler and reply on the server, a typed call on the client. */
#include <libpeer.h>

#include "example-helper1.h"   /* generated at build time */

static void
handle_quick (PeerCall *call, gint32 bits, gpointer user_data)
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

typedef struct {
  const char *address;
  gboolean done;
} Run;

static gboolean
set_done (gpointer run)
{
  ((Run *) run)->done = TRUE;
  return G_SOURCE_REMOVE;
}

/* The client, in its own thread: its calls block, the server's loop runs. */
static gpointer
client_thread (gpointer run)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = peer_client_new_sync (((Run *) run)->address, 5000, NULL, &error);
  g_autofree char *number = NULL;
  gboolean ok;

  ok = client != NULL &&
       example_helper1_call_quick_sync (client, "/org/example/Helper", 64, &number, NULL, &error);
  if (ok)
    g_print ("Quick (64) = %s\n", number);
  /* And a refusal, which comes back as the server's GError. */
  ok = ok && !example_helper1_call_quick_sync (client, "/org/example/Helper", 0, NULL, NULL, &error) &&
       g_error_matches (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_print ("Quick (0): %s\n", error != NULL ? error->message : "no error");
  g_idle_add (set_done, run);
  return GINT_TO_POINTER (ok);
}

int
main (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = peer_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  g_autoptr(PeerInterface) iface = NULL;
  Run run = { NULL, FALSE };
  GThread *client;
  gboolean ok;

  if (server != NULL)
    iface = example_helper1_export (server, "/org/example/Helper", &handlers, NULL, &error);
  if (iface == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  peer_server_start (server);
  run.address = peer_server_get_client_address (server);
  client = g_thread_new ("client", client_thread, &run);
  while (!run.done)
    g_main_context_iteration (NULL, TRUE);
  ok = GPOINTER_TO_INT (g_thread_join (client));
  peer_server_stop (server);
  return ok ? 0 : 1;
}
