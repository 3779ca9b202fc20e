/* peer-server: the example helper daemon.
 *
 * Serves org.libpeer.Bench1 and org.libpeer.Helper1, prints the address
 * clients should use as the first line of standard output, and serves until
 * SIGINT or SIGTERM, when it closes its peers and removes its socket.
 *
 * Started as a helper (`--fd N`, or by a PeerHelper, which sets $PEER_FD),
 * it serves the one peer at the other end of that socket instead, prints
 * nothing, and exits when that peer goes. */
#include "config.h"

#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>

#include <glib-unix.h>

#include "services.h"

static gboolean
on_quit_signal (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_CONTINUE;
}

/* A helper's one peer went away (or was refused): nothing left to serve. */
static void
on_only_peer_gone (PeerServer *server,
                   gpointer    arg,
                   GMainLoop  *loop)
{
  g_main_loop_quit (loop);
}

/* A uid or gid of --allow-uid / --allow-gid (@what: "uid", "gid"). */
static gboolean
parse_id (const char *text,
          const char *what,
          guint32    *out,
          GError    **error)
{
  guint64 value;

  if (!g_ascii_string_to_unsigned (text, 10, 0, G_MAXUINT32 - 1, &value, NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "--allow-%s needs a numeric %s, not '%s'", what, what, text);
      return FALSE;
    }
  *out = (guint32) value;
  return TRUE;
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *address = NULL;
  g_autofree char *files_root = NULL;
  g_auto(GStrv) allow_uids = NULL;
  g_auto(GStrv) allow_gids = NULL;
  gboolean version = FALSE;
  gboolean no_monitors = FALSE;
  gint fd = -1;
  gint job_linger_ms = PEER_JOB_DEFAULT_LINGER_MS;
  const GOptionEntry options[] = {
    { "fd", 0, 0, G_OPTION_ARG_INT, &fd,
      "Serve the peer at the other end of the inherited socket FD (default: $PEER_FD "
      "when set and no --address is given)", "FD" },
    { "job-linger-ms", 0, 0, G_OPTION_ARG_INT, &job_linger_ms,
      "How long finished jobs stay visible (default 30000)", "MS" },
    { "address", 'a', 0, G_OPTION_ARG_STRING, &address,
      "Listen on ADDR (default: a new private socket)", "ADDR" },
    { "allow-uid", 'u', 0, G_OPTION_ARG_STRING_ARRAY, &allow_uids,
      "Also admit peers with this uid (repeatable)", "UID" },
    { "allow-gid", 'g', 0, G_OPTION_ARG_STRING_ARRAY, &allow_gids,
      "Also admit peers with this primary gid (repeatable)", "GID" },
    { "files-root", 0, 0, G_OPTION_ARG_FILENAME, &files_root,
      "Let OpenFile open regular files under DIR (default: none)", "DIR" },
    { "no-monitors", 0, 0, G_OPTION_ARG_NONE, &no_monitors,
      "Refuse BecomeMonitor, even to peers of the server's own uid (default: they may monitor)", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerPolicy) policy = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(GMainLoop) loop = NULL;

  setlocale (LC_ALL, "");
  context = g_option_context_new ("- serve libpeer's example objects");
  g_option_context_add_main_entries (context, options, NULL);
  g_option_context_set_description (context,
    "Prints the address to connect to as its first line, and serves until SIGINT\n"
    "or SIGTERM, when it removes its socket. With --fd (or $PEER_FD) it serves the\n"
    "one peer at the other end of that socket, and exits when that peer goes.\n\n"
    "Exit status: 0 when stopped by SIGINT or SIGTERM (or when its one peer\n"
    "went); 2 when the command line is wrong (an unknown option, a malformed or\n"
    "unsafe address, an fd that is not a connected socket); 1 when it cannot\n"
    "serve (the address is in use, the directory cannot be made).\n");
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("peer-server: %s\n", error->message);
      return 2;
    }
  if (argc > 1)
    {
      g_printerr ("peer-server: unexpected argument '%s'\n", argv[1]);
      return 2;
    }
  if (version)
    {
      g_print ("peer-server %s\n", PACKAGE_VERSION);
      return 0;
    }

  policy = peer_policy_new ();
  if (no_monitors)
    peer_policy_set_allow_same_uid_monitor (policy, FALSE);
  for (guint i = 0; allow_uids != NULL && allow_uids[i] != NULL; i++)
    {
      guint32 uid;
      if (!parse_id (allow_uids[i], "uid", &uid, &error))
        {
          g_printerr ("peer-server: %s\n", error->message);
          return 2;
        }
      peer_policy_allow_uid (policy, (uid_t) uid);
    }
  for (guint i = 0; allow_gids != NULL && allow_gids[i] != NULL; i++)
    {
      guint32 gid;
      if (!parse_id (allow_gids[i], "gid", &gid, &error))
        {
          g_printerr ("peer-server: %s\n", error->message);
          return 2;
        }
      peer_policy_allow_gid (policy, (gid_t) gid);
    }

  if (job_linger_ms < 0)
    {
      g_printerr ("peer-server: --job-linger-ms must not be negative\n");
      return 2;
    }
  if (fd >= 0 && address != NULL)
    {
      g_printerr ("peer-server: --fd and --address exclude each other\n");
      return 2;
    }

  loop = g_main_loop_new (NULL, FALSE);
  if (fd >= 0 || (address == NULL && g_getenv (PEER_HELPER_FD_ENV) != NULL))
    {
      server = peer_server_new_for_fd (fd, policy, PEER_SERVER_FLAGS_NONE, &error);
      if (server != NULL)
        {
          g_signal_connect (server, "peer-disconnected", G_CALLBACK (on_only_peer_gone), loop);
          g_signal_connect (server, "peer-refused", G_CALLBACK (on_only_peer_gone), loop);
        }
    }
  else
    server = peer_server_new (address, policy, PEER_SERVER_FLAGS_NONE, NULL, &error);
  if (server == NULL ||
      !peer_bench_service_export (server, &error) ||
      !peer_helper_service_export (server, &error) ||
      /* In a sandbox no files root is there to open: OpenFile says so. */
      (files_root != NULL && !peer_sandbox_is_inside () &&
       !peer_helper_service_set_files_root (server, files_root, &error)))
    {
      g_printerr ("peer-server: %s\n", error->message);
      /* An address or fd of the command line that is no good is bad
       * usage; one that is busy, or a server that cannot start, is not. */
      return g_error_matches (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS) ||
             g_error_matches (error, PEER_ERROR, PEER_ERROR_UNSAFE_ADDRESS) ? 2 : 1;
    }

  peer_job_service_set_linger (server, (guint) job_linger_ms);
  g_unix_signal_add (SIGINT, on_quit_signal, loop);
  g_unix_signal_add (SIGTERM, on_quit_signal, loop);

  peer_server_start (server);
  /* Whoever started us reads this line to learn where to connect. */
  if (peer_server_get_client_address (server) != NULL)
    printf ("%s\n", peer_server_get_client_address (server));
  if (fflush (stdout) != 0)
    {
      g_printerr ("peer-server: cannot write the address: %s\n", g_strerror (errno));
      return 1;
    }

  g_main_loop_run (loop);

  peer_server_stop (server);
  return 0;
}
