/* sandbox-probe: a helper for test-sandbox that tries, when asked, each
 * thing a sandbox should refuse, and says how it went.
 *
 * org.libpeer.test.Probe1.Try(s what, s arg) -> (i errno, s text): errno
 * 0 when it worked; text is what was read, for the readers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpeer.h>

#define PROBE_PATH "/org/libpeer/test/Probe"
#define PROBE_IFACE "org.libpeer.test.Probe1"

static const char xml[] =
  "<node><interface name='" PROBE_IFACE "'>"
  "  <method name='Try'>"
  "    <arg name='what' type='s' direction='in'/>"
  "    <arg name='arg' type='s' direction='in'/>"
  "    <arg name='errno' type='i' direction='out'/>"
  "    <arg name='text' type='s' direction='out'/>"
  "  </method>"
  "</interface></node>";

static int
result_of (long rc)
{
  return rc < 0 ? errno : 0;
}

static void
handle_try (PeerCall *call,
            gpointer  user_data)
{
  const char *what, *arg;
  g_autofree char *text = NULL;
  int err = 0;
  long rc;

  g_variant_get (peer_call_get_parameters (call), "(&s&s)", &what, &arg);
  errno = 0;
  if (g_str_equal (what, "open"))
    {
      rc = open (arg, O_RDONLY | O_CLOEXEC);
      err = result_of (rc);
      if (rc >= 0)
        close ((int) rc);
    }
  else if (g_str_equal (what, "socket-inet") || g_str_equal (what, "socket-unix"))
    {
      rc = socket (g_str_equal (what, "socket-inet") ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      err = result_of (rc);
      if (rc >= 0)
        close ((int) rc);
    }
  else if (g_str_equal (what, "execve"))
    {
      char *argv[] = { (char *) arg, NULL };
      /* A path that does not exist: unsandboxed it fails with ENOENT,
       * and the probe goes on. */
      err = result_of (execve (arg, argv, environ));
    }
  else if (g_str_equal (what, "ptrace"))
    /* Not an attach: unsandboxed, peeking at a process one does not
     * trace fails with ESRCH and stops nothing. */
    err = result_of (ptrace (PTRACE_PEEKDATA, (pid_t) atoi (arg), NULL, NULL));
  else if (g_str_equal (what, "read"))
    {
      if (!g_file_get_contents (arg, &text, NULL, NULL))
        err = errno != 0 ? errno : EIO;
    }
  else if (g_str_equal (what, "readlink"))
    {
      text = g_file_read_link (arg, NULL);
      if (text == NULL)
        err = errno != 0 ? errno : EIO;
    }
  else if (g_str_equal (what, "dup2"))
    {
      int target = atoi (arg);

      err = result_of (dup2 (STDERR_FILENO, target));
      if (err == 0)
        close (target);
    }
  else if (g_str_equal (what, "fork"))
    {
      pid_t pid = fork ();

      err = result_of (pid);
      if (pid == 0)
        _exit (0);
      if (pid > 0)
        waitpid (pid, NULL, 0);
    }
  else if (g_str_equal (what, "forbidden"))
    /* syslog(SYSLOG_ACTION_SIZE_BUFFER): harmless, and nothing a GLib
     * program needs. */
    err = result_of (syscall (SYS_syslog, 10, NULL, 0));
  else if (g_str_equal (what, "allocate"))
    {
      gsize size = (gsize) g_ascii_strtoull (arg, NULL, 10);
      char *memory = malloc (size);

      if (memory == NULL)
        /* What a helper out of memory does. */
        abort ();
      memset (memory, 1, size);
      text = g_strdup_printf ("%d", memory[size / 2]);
      free (memory);
    }
  else
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "unknown probe '%s'", what);
      return;
    }
  peer_call_return_value (call, g_variant_new ("(is)", err, text != NULL ? text : ""));
}

int
main (int   argc,
      char *argv[])
{
  static const PeerMethodEntry methods[] = { { "Try", handle_try } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  iface = server != NULL ? peer_interface_new_for_xml (xml, PROBE_IFACE, &error) : NULL;
  if (iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), NULL, &error) ||
      !peer_server_export (server, PROBE_PATH, iface, &error))
    {
      g_printerr ("sandbox-probe: %s\n", error->message);
      return 1;
    }
  g_signal_connect_swapped (server, "peer-disconnected", G_CALLBACK (g_main_loop_quit), loop);
  g_signal_connect_swapped (server, "peer-refused", G_CALLBACK (g_main_loop_quit), loop);
  peer_server_start (server);
  g_main_loop_run (loop);
  return 0;
}
