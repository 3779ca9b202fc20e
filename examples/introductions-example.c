/* introductions-example.c: introductions. A server that two peers trust
 * makes a fresh socketpair and hands each of them one end; from then on
 * the two talk directly, over a connection of their own that no third
 * process can join, and the server is free to leave. (xdg-desktop-portal's
 * OpenPipeWireRemote hands an application a connection to PipeWire this
 * way; a broker can introduce a client to a service.)
 *
 * One program, three roles: run without arguments it is the introducer,
 * which serves on a private socket, starts two peers (itself again, with
 * --peer NAME ADDRESS), introduces them, stops serving as soon as both
 * have their end, and waits for them to finish. The first peer to ask
 * serves on its end (peer_server_new_for_fd()); the other connects on its
 * end and calls it. With --twin, the negative twin, the serving peer dies
 * right after the introduction and the other reports its partner gone,
 * with nobody in between to ask. It exits 0 when everything went as it
 * should. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpeer.h>

#include "example-fds.h"

#define INTRODUCER_PATH  "/org/example/Introducer"
#define INTRODUCER_IFACE "org.example.Introducer1"
#define CHAT_PATH        "/org/example/Chat"
#define CHAT_IFACE       "org.example.Chat1"

static const char introducer_xml[] =
  "<node><interface name='" INTRODUCER_IFACE "'>"
  "  <method name='Join'>"
  "    <arg name='name' type='s' direction='in'/>"
  "    <arg name='socket' type='h' direction='out'/>"
  "    <arg name='partner' type='s' direction='out'/>"
  "    <arg name='serve' type='b' direction='out'/>"
  "  </method>"
  "</interface></node>";

static const char chat_xml[] =
  "<node><interface name='" CHAT_IFACE "'>"
  "  <method name='Say'>"
  "    <arg name='text' type='s' direction='in'/>"
  "    <arg name='answer' type='s' direction='out'/>"
  "  </method>"
  "</interface></node>";

/* --- the introducer ------------------------------------------------------ */

typedef struct {
  PeerCall  *waiting;                   /* the first Join, answered when the second comes */
  char      *serving;                   /* the name of the peer told to serve */
  guint      n_introduced;
  guint      n_gone;                    /* peers that hung up on us */
} Introducer;

static void
handle_join (PeerCall *call,
             gpointer  user_data)
{
  Introducer *introducer = user_data;
  g_autoptr(GUnixFDList) first_fds = NULL;
  g_autoptr(GUnixFDList) second_fds = NULL;
  const char *first_name, *second_name;
  int pair[2];

  if (introducer->n_introduced > 0)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED, "This introducer introduces two peers once");
      return;
    }
  if (introducer->waiting == NULL)
    {
      introducer->waiting = peer_call_ref (call);
      return;
    }

  /* SOCK_STREAM, as D-Bus wants; nobody else holds either end. */
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    {
      int saved_errno = errno;

      peer_call_return_error (call, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                              "socketpair: %s", g_strerror (saved_errno));
      return;
    }
  /* Each list takes its end; once the replies are written we hold
   * neither, and the two peers are the only ones with a say. */
  first_fds = g_unix_fd_list_new_from_array (&pair[0], 1);
  second_fds = g_unix_fd_list_new_from_array (&pair[1], 1);
  g_variant_get (peer_call_get_parameters (introducer->waiting), "(&s)", &first_name);
  g_variant_get (peer_call_get_parameters (call), "(&s)", &second_name);
  g_print ("introducer: introducing %s and %s: each gets one end of a fresh socketpair, "
           "1 fd in each reply\n", first_name, second_name);
  introducer->serving = g_strdup (first_name);
  peer_call_return_value_with_unix_fd_list (introducer->waiting,
                                            g_variant_new ("(hsb)", 0, second_name, TRUE), first_fds);
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(hsb)", 0, first_name, FALSE), second_fds);
  g_clear_pointer (&introducer->waiting, peer_call_unref);
  introducer->n_introduced = 2;
}

static void
on_peer_gone (PeerServer     *server,
              PeerConnection *peer,
              Introducer     *introducer)
{
  /* Peers hang up once they have their end (so the replies were
   * written), or when they fail before. */
  introducer->n_gone++;
}

static gboolean
spawn_peer (const char *self,
            const char *name,
            const char *address,
            gboolean    twin,
            GPid       *out_pid)
{
  const char *argv[] = { self, "--peer", name, address, twin ? "--twin" : NULL, NULL };
  g_autoptr(GError) error = NULL;

  if (!g_spawn_async (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, out_pid, &error))
    {
      g_printerr ("introducer: %s\n", error->message);
      return FALSE;
    }
  return TRUE;
}

/* Waits for @pid, however long the conversation takes. */
static int
wait_for_peer (GPid pid)
{
  int status;

  while (waitpid (pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return status;
}

static int
run_introducer (const char *self,
                gboolean    twin)
{
  static const PeerMethodEntry methods[] = { { "Join", handle_join, PEER_METHOD_FLAGS_NONE } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  Introducer introducer = { NULL, NULL, 0, 0 };
  GPid alice = 0, bob = 0;
  int alice_status, bob_status, server_status, caller_status;
  gboolean ok;

  /* A private socket in a fresh 0700 directory; only our uid gets in. */
  server = peer_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, NULL, &error);
  iface = peer_interface_new_for_xml (introducer_xml, INTRODUCER_IFACE, &error);
  if (server == NULL || iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), &introducer, &error) ||
      !peer_server_export (server, INTRODUCER_PATH, iface, &error))
    {
      g_printerr ("introducer: %s\n", error->message);
      return 1;
    }
  g_signal_connect (server, "peer-disconnected", G_CALLBACK (on_peer_gone), &introducer);
  peer_server_start (server);

  if (!spawn_peer (self, "alice", peer_server_get_client_address (server), twin, &alice) ||
      !spawn_peer (self, "bob", peer_server_get_client_address (server), twin, &bob))
    {
      if (alice != 0)
        {
          kill (alice, SIGKILL);
          wait_for_peer (alice);
        }
      return 1;
    }

  while (introducer.n_gone < 2)
    g_main_context_iteration (NULL, TRUE);
  /* Both have their end: the introducer has no part in what follows. */
  g_clear_pointer (&introducer.waiting, peer_call_unref);     /* a partner that never came */
  peer_server_stop (server);
  g_clear_object (&server);
  g_print ("introducer: left (server stopped, its socket removed) while they talk on\n");

  alice_status = wait_for_peer (alice);
  bob_status = wait_for_peer (bob);
  if (introducer.serving == NULL)
    {
      g_printerr ("introducer: the peers never both came\n");
      return 1;
    }
  server_status = g_str_equal (introducer.serving, "alice") ? alice_status : bob_status;
  caller_status = g_str_equal (introducer.serving, "alice") ? bob_status : alice_status;
  g_free (introducer.serving);
  /* The twin's serving peer dies on purpose; the other must have noticed
   * and said so. */
  ok = WIFEXITED (caller_status) && WEXITSTATUS (caller_status) == 0 &&
       (twin ? WIFSIGNALED (server_status) && WTERMSIG (server_status) == SIGKILL
             : WIFEXITED (server_status) && WEXITSTATUS (server_status) == 0);
  if (!ok)
    g_printerr ("introducer: the peers did not end as they should (wait statuses %d and %d)\n",
                server_status, caller_status);
  return ok ? 0 : 1;
}

/* --- the peers ----------------------------------------------------------- */

static void
handle_say (PeerCall *call,
            gpointer  user_data)
{
  const char *name = user_data;
  const char *text;
  g_autofree char *answer = NULL;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &text);
  answer = g_strdup_printf ("%s heard \"%s\"", name, text);
  peer_call_return_value (call, g_variant_new ("(s)", answer));
}

/* Serves the chat on our end until the partner hangs up. Our end
 * authenticates as the D-Bus client, as a helper's does. */
static int
serve_partner (const char *name,
               int         fd)
{
  static const PeerMethodEntry methods[] = { { "Say", handle_say, PEER_METHOD_FLAGS_NONE } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  server = peer_server_new_for_fd (fd, NULL, PEER_SERVER_FLAGS_NONE, &error);
  iface = peer_interface_new_for_xml (chat_xml, CHAT_IFACE, &error);
  if (server == NULL || iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), (gpointer) name, &error) ||
      !peer_server_export (server, CHAT_PATH, iface, &error))
    {
      g_printerr ("%s: %s\n", name, error->message);
      return 1;
    }
  g_signal_connect_swapped (server, "peer-disconnected", G_CALLBACK (g_main_loop_quit), loop);
  g_signal_connect_swapped (server, "peer-refused", G_CALLBACK (g_main_loop_quit), loop);
  peer_server_start (server);
  g_main_loop_run (loop);
  return 0;
}

/* Connects on our end as the authenticating side, as PeerHelper does: the
 * policy (our own uid only) judges the kernel's word on who is at the
 * other end, not the introducer's. */
static PeerClient *
connect_to_partner (int      fd,
                    GError **error)
{
  g_autoptr(PeerPolicy) policy = peer_policy_new ();
  g_autoptr(GDBusAuthObserver) observer = peer_policy_create_auth_observer (policy);
  g_autoptr(GSocket) sock = g_socket_new_from_fd (fd, error);
  g_autoptr(GSocketConnection) stream = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autofree char *guid = g_dbus_generate_guid ();

  if (sock == NULL)
    {
      close (fd);
      return NULL;
    }
  stream = g_socket_connection_factory_create_connection (sock);
  connection = g_dbus_connection_new_sync (G_IO_STREAM (stream), guid,
                                           G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER,
                                           observer, NULL, error);
  if (connection == NULL)
    {
      g_prefix_error (error, "The handshake failed: ");
      return NULL;
    }
  return peer_client_new_for_connection (connection);
}

static int
talk_to_partner (const char *name,
                 int         fd,
                 const char *partner,
                 gboolean    twin)
{
  static const char * const lines[] = { "hello", "just us now", "goodbye" };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = connect_to_partner (fd, &error);

  for (guint i = 0; client != NULL && i < G_N_ELEMENTS (lines); i++)
    {
      g_autoptr(GVariant) reply = NULL;
      const char *answer;

      reply = peer_client_call_sync (client, CHAT_PATH, CHAT_IFACE, "Say", g_variant_new ("(s)", lines[i]),
                                     G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
      if (reply == NULL)
        break;
      g_variant_get (reply, "(&s)", &answer);
      g_print ("%s: said \"%s\" to %s directly: %s\n", name, lines[i], partner, answer);
    }
  if (client != NULL)
    peer_client_close (client);
  if (error == NULL)
    return 0;
  if (twin)
    {
      /* Nobody in between: the failure is the news that the partner left. */
      g_print ("%s: %s is gone, and no introducer is needed to tell: %s\n", name, partner, error->message);
      return 0;
    }
  g_printerr ("%s: %s\n", name, error->message);
  return 1;
}

static int
run_peer (const char *name,
          const char *address,
          gboolean    twin)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) introducer = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  g_autofree char *partner = NULL;
  gboolean serve;
  gint32 handle;
  int fd = -1;

  introducer = peer_client_new_sync (address, -1, NULL, &error);
  if (introducer != NULL)
    reply = peer_client_call_sync (introducer, INTRODUCER_PATH, INTRODUCER_IFACE, "Join",
                                   g_variant_new ("(s)", name), G_VARIANT_TYPE ("(hsb)"), -1,
                                   NULL, &fds, NULL, &error);
  if (reply != NULL)
    {
      g_variant_get (reply, "(hsb)", &handle, &partner, &serve);
      /* The handle came off the wire: checked against what came. */
      if (fds != NULL && handle >= 0 && handle < g_unix_fd_list_get_length (fds))
        fd = g_unix_fd_list_get (fds, handle, &error);
      else
        g_set_error (&error, PEER_ERROR, PEER_ERROR_PROTOCOL, "No fd came with the introduction");
    }
  g_clear_object (&fds);
  /* We have our end: the introducer is of no more use. */
  if (introducer != NULL)
    peer_client_close (introducer);
  if (fd < 0)
    {
      g_printerr ("%s: %s\n", name, error->message);
      return 1;
    }

  g_print ("%s: introduced to %s; %s on our end of the socketpair (fd %d)\n", name, partner,
           serve ? "serving" : "calling", fd);
  if (serve && twin)
    raise (SIGKILL);                    /* stands for a crash */
  return serve ? serve_partner (name, fd) : talk_to_partner (name, fd, partner, twin);
}

int
main (int   argc,
      char *argv[])
{
  gboolean twin = argc > 1 && g_str_equal (argv[argc - 1], "--twin");
  guint fds_before;
  int status;

  /* Three processes write to the same output: a line at a time. */
  setvbuf (stdout, NULL, _IOLBF, 0);

  if (argc >= 4 && g_str_equal (argv[1], "--peer"))
    return run_peer (argv[2], argv[3], twin);
  if (argc > 2 || (argc == 2 && !twin))
    {
      g_printerr ("usage: %s [--twin]\n", argv[0]);
      return 2;
    }

  fds_before = example_count_fds ();
  status = run_introducer (argv[0], twin);
  if (!example_check_fds ("introducer", fds_before))
    status = 1;
  return status;
}
