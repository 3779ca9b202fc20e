/* test-debug.c: PEER_DEBUG=messages and PEER_CAPTURE / --capture: the log
 * lines, the pcap file as dbus-monitor --pcap writes it, and tshark's
 * reading of it. */
#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer-debug-private.h"
#include "peer-test-util.h"

static void
test_describe (void)
{
  g_autoptr(GDBusMessage) message = g_dbus_message_new_method_call (NULL, "/org/example", "org.example.Thing1",
                                                                    "Frob");
  g_autoptr(GDBusMessage) reply = NULL;
  g_autofree char *line = NULL;
  g_autofree char *long_line = NULL;
  g_autofree char *big = g_strnfill (1000, 'x');

  g_dbus_message_set_serial (message, 7);
  g_dbus_message_set_body (message, g_variant_new ("(su)", "hello", 42));
  line = _peer_debug_describe_message (message, FALSE);
  g_assert_cmpstr (line, ==, "> call serial=7 path=/org/example member=org.example.Thing1.Frob "
                             "signature='su' fds=0 body=('hello', 42)");

  /* A large body is cut, at a character boundary. */
  reply = g_dbus_message_new_method_reply (message);
  g_dbus_message_set_serial (reply, 8);
  g_dbus_message_set_body (reply, g_variant_new ("(s)", big));
  long_line = _peer_debug_describe_message (reply, TRUE);
  g_assert_true (g_str_has_prefix (long_line, "< return serial=8 reply_serial=7 signature='s' fds=0 body=('xxx"));
  g_assert_true (g_str_has_suffix (long_line, "…"));
  g_assert_cmpuint (strlen (strstr (long_line, "body=") + 5), ==, PEER_DEBUG_MAX_BODY_CHARS + strlen ("…"));
  g_assert_true (g_utf8_validate (long_line, -1, NULL));
}

static int
run_with_env (const char * const *argv,
              const char         *name,
              const char         *value,
              char              **out_stdout,
              char              **out_stderr)
{
  g_auto(GStrv) envp = g_get_environ ();
  g_autoptr(GError) error = NULL;
  int status;

  envp = g_environ_unsetenv (envp, "PEER_DEBUG");
  envp = g_environ_unsetenv (envp, "PEER_CAPTURE");
  if (name != NULL)
    envp = g_environ_setenv (envp, name, value, TRUE);
  g_assert_true (g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL,
                               out_stdout, out_stderr, &status, &error));
  g_assert_no_error (error);
  peer_test_strip_valgrind (*out_stderr);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return status;
}

/* Runs @argv with PEER_DEBUG=messages when @enabled: the lines it logged,
 * or, when not @enabled, NULL after checking that it logged none. */
static GStrv
logged_lines (const char * const *argv,
              gboolean            enabled)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  run_with_env (argv, enabled ? "PEER_DEBUG" : NULL, "messages", &out, &err);
  g_assert_cmpstr (out, !=, "");
  if (!enabled)
    {
      g_assert_cmpstr (err, ==, "");
      return NULL;
    }
  return g_strsplit (err, "\n", -1);
}

/* The pid in a line's "libpeer[PID]" prefix. */
static int
line_pid (const char *line)
{
  g_assert_true (g_str_has_prefix (line, "libpeer["));
  return atoi (line + strlen ("libpeer["));
}

/* Both ends of a spawned helper log, one line per message; the server's
 * lines say which peer each message came from or went to, by its unique
 * name and pid (the client's lines, the twin, name nobody: a client has
 * one peer). */
static void
test_messages_log (gconstpointer data)
{
  gboolean enabled = GPOINTER_TO_INT (data);
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--spawn", "--",
                         peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  g_auto(GStrv) lines = logged_lines (argv, enabled);
  gboolean client_sent = FALSE, server_received = FALSE, server_replied = FALSE, client_got_reply = FALSE;
  g_autofree char *peer = NULL;
  int client_pid = 0;

  if (lines == NULL)
    return;
  for (guint i = 0; lines[i] != NULL && client_pid == 0; i++)
    if (strstr (lines[i], " client > call ") != NULL)
      client_pid = line_pid (lines[i]);
  g_assert_cmpint (client_pid, >, 0);
  peer = g_strdup_printf (" server :1.1 pid=%d ", client_pid);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *line = lines[i];

      if (line[0] == '\0')
        continue;
      g_assert_true (g_str_has_prefix (line, "libpeer["));
      if (strstr (line, "] client > call ") != NULL &&
          strstr (line, "member=org.libpeer.Helper1.Quick signature='i' fds=0 body=(8,)") != NULL)
        client_sent = TRUE;
      if (strstr (line, peer) != NULL && strstr (line, "< call ") != NULL &&
          strstr (line, "member=org.libpeer.Helper1.Quick") != NULL)
        server_received = TRUE;
      if (strstr (line, peer) != NULL && strstr (line, "> return ") != NULL)
        server_replied = TRUE;
      if (strstr (line, "] client < return ") != NULL && strstr (line, " reply_serial=") != NULL)
        client_got_reply = TRUE;
      /* Every server line names its peer. */
      if (strstr (line, "] server ") != NULL)
        g_assert_nonnull (strstr (line, peer));
    }
  g_assert_true (client_sent);
  g_assert_true (server_received);
  g_assert_true (server_replied);
  g_assert_true (client_got_reply);
}

/* A listening server with two peers: each line says which one. */
static void
test_messages_log_two_peers (void)
{
  const char *server_argv[] = { peer_test_program ("PEER_SERVER"), NULL };
  g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "PEER_DEBUG", "messages", TRUE);
  g_auto(GStrv) client_envp = g_environ_unsetenv (g_get_environ (), "PEER_DEBUG");
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) logged = g_string_new (NULL);
  g_autofree char *address = NULL;
  g_autofree char *socket_dir = NULL;
  g_auto(GStrv) lines = NULL;
  PeerTestProcess server = { 0 };
  int err_fd, status;
  GPid clients[2];
  char buf[4096];
  ssize_t n;

  g_assert_true (g_spawn_async_with_pipes (NULL, (char **) server_argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL,
                                           &server.pid, NULL, &server.stdout_fd, &err_fd, &error));
  g_assert_no_error (error);
  address = peer_test_process_read_line (&server);
  g_assert_nonnull (address);
  socket_dir = g_path_get_dirname (address + strlen ("unix:path="));
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      const char *client_argv[] = { peer_test_program ("PEER_CLIENT"), "--address", address, "quick", "8", NULL };

      g_assert_true (g_spawn_async (NULL, (char **) client_argv, client_envp,
                                    G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                                    &clients[i], &error));
      g_assert_no_error (error);
      g_assert_cmpint (waitpid (clients[i], &status, 0), ==, clients[i]);
      g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
  status = peer_test_process_stop (g_memdup2 (&server, sizeof server), SIGTERM);
  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  while ((n = read (err_fd, buf, sizeof buf)) > 0)
    g_string_append_len (logged, buf, n);
  close (err_fd);
  g_string_truncate (logged, strlen (peer_test_strip_valgrind (logged->str)));
  g_assert_false (g_file_test (socket_dir, G_FILE_TEST_EXISTS));

  lines = g_strsplit (logged->str, "\n", -1);
  for (guint i = 0; i < G_N_ELEMENTS (clients); i++)
    {
      g_autofree char *call = g_strdup_printf (" server :1.%u pid=%d < call ", i + 1, (int) clients[i]);
      g_autofree char *reply = g_strdup_printf (" server :1.%u pid=%d > return ", i + 1, (int) clients[i]);
      gboolean called = FALSE, replied = FALSE;

      for (guint l = 0; lines[l] != NULL; l++)
        {
          called |= strstr (lines[l], call) != NULL && strstr (lines[l], "member=org.libpeer.Helper1.Quick") != NULL;
          replied |= strstr (lines[l], reply) != NULL;
        }
      if (!called || !replied)
        g_error ("no call from or reply to peer %u (pid %d) in:\n%s", i + 1, (int) clients[i], logged->str);
    }
}

/* Lane frames are logged as the D-Bus messages they stand for, by both
 * ends, under "client lane" and "server lane"; a refused call too. */
static void
test_lane_log (gconstpointer data)
{
  gboolean enabled = GPOINTER_TO_INT (data);
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--lane", "--spawn", "--",
                         peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  const char *refused_argv[] = { peer_test_program ("PEER_CLIENT"), "--lane", "--spawn", "--",
                                 peer_test_program ("PEER_SERVER"), "quick", "0", NULL };
  const char *expected[] = {
    " client lane > call serial=1 path=/org/libpeer/Helper member=org.libpeer.Helper1.Quick signature='i' fds=0 body=(8,)",
    " server lane :1.1 pid=CLIENT < call serial=1 path=/org/libpeer/Helper member=org.libpeer.Helper1.Quick signature='i' fds=0 body=(8,)",
    " server lane :1.1 pid=CLIENT > return serial=1 reply_serial=1 signature='s' fds=0 body=('",
    " client lane < return serial=1 reply_serial=1 signature='s' fds=0 body=('",
  };
  g_auto(GStrv) lines = logged_lines (argv, enabled);
  g_auto(GStrv) refused_lines = NULL;
  gboolean refused_logged = FALSE;
  g_auto(GStrv) envp = g_get_environ ();
  g_autofree char *refused_err = NULL;
  g_autofree char *all = NULL;
  g_autofree char *pid_text = NULL;
  int status, client_pid = 0;

  if (lines == NULL)
    return;
  all = g_strjoinv ("\n", lines);
  for (guint i = 0; lines[i] != NULL && client_pid == 0; i++)
    if (strstr (lines[i], " client lane > call ") != NULL)
      client_pid = line_pid (lines[i]);
  pid_text = g_strdup_printf ("%d", client_pid);
  for (guint e = 0; e < G_N_ELEMENTS (expected); e++)
    {
      g_autoptr(GString) wanted = g_string_new (expected[e]);
      gboolean found = FALSE;

      /* The server's lane lines name the peer too. */
      g_string_replace (wanted, "CLIENT", pid_text, 0);
      for (guint i = 0; lines[i] != NULL && !found; i++)
        found = g_str_has_prefix (lines[i], "libpeer[") && strstr (lines[i], wanted->str) != NULL;
      if (!found)
        g_error ("no log line with \"%s\" in:\n%s", wanted->str, all);
    }

  /* The handler's error, both ways, with its name and message. */
  envp = g_environ_unsetenv (envp, "PEER_CAPTURE");
  envp = g_environ_setenv (envp, "PEER_DEBUG", "messages", TRUE);
  g_assert_true (g_spawn_sync (NULL, (char **) refused_argv, envp, G_SPAWN_DEFAULT, NULL, NULL,
                               NULL, &refused_err, &status, NULL));
  peer_test_strip_valgrind (refused_err);
  g_assert_false (g_spawn_check_wait_status (status, NULL));
  refused_lines = g_strsplit (refused_err, "\n", -1);
  for (guint i = 0; refused_lines[i] != NULL; i++)
    if (strstr (refused_lines[i], " client lane < error serial=1 reply_serial=1 "
                                  "error=org.libpeer.Error.InvalidArgs signature='s'") != NULL)
      refused_logged = TRUE;
  g_assert_true (refused_logged);
}

typedef struct {
  guint32 magic;
  guint16 version_major;
  guint16 version_minor;
  gint32 thiszone;
  guint32 sigfigs;
  guint32 snaplen;
  guint32 linktype;
} PcapHeader;

/* Reads the capture back: the header, then each record a whole message. */
static GPtrArray *
read_capture (const char *path)
{
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *members = g_ptr_array_new_with_free_func (g_free);
  PcapHeader header;
  gsize length, offset;

  g_file_get_contents (path, &contents, &length, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (length, >=, sizeof header);
  memcpy (&header, contents, sizeof header);
  g_assert_cmphex (header.magic, ==, 0xa1b2c3d4);
  g_assert_cmpuint (header.version_major, ==, 2);
  g_assert_cmpuint (header.version_minor, ==, 4);
  g_assert_cmpuint (header.linktype, ==, 231);
  g_assert_cmpuint (header.snaplen, ==, PEER_DEBUG_PCAP_SNAPLEN);

  for (offset = sizeof header; offset < length;)
    {
      g_autoptr(GDBusMessage) message = NULL;
      guint32 record[4];

      g_assert_cmpuint (length - offset, >=, sizeof record);
      memcpy (record, contents + offset, sizeof record);
      offset += sizeof record;
      g_assert_cmpuint (record[2], ==, record[3]);
      g_assert_cmpuint (length - offset, >=, record[2]);
      message = g_dbus_message_new_from_blob ((guchar *) contents + offset, record[2],
                                              G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
      g_assert_no_error (error);
      g_ptr_array_add (members, g_strdup (g_dbus_message_get_member (message)));
      offset += record[2];
    }
  return members;
}

static gboolean
has_string (GPtrArray  *strings,
            const char *wanted)
{
  for (guint i = 0; i < strings->len; i++)
    if (g_strcmp0 (g_ptr_array_index (strings, i), wanted) == 0)
      return TRUE;
  return FALSE;
}

/* --capture FILE: the application's end records both directions. */
static void
test_capture (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *path = g_build_filename (dir, "capture.pcap", NULL);
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--capture", path, "--spawn", "--",
                         peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *tshark = g_find_program_in_path ("tshark");
  g_autoptr(GPtrArray) members = NULL;

  run_with_env (argv, NULL, NULL, &out, &err);
  members = read_capture (path);
  /* The call, its reply (no member), and the PropertiesChanged for Peers. */
  g_assert_cmpuint (members->len, >=, 2);
  g_assert_true (has_string (members, "Quick"));
  g_assert_true (has_string (members, NULL));

  if (tshark == NULL)
    g_test_message ("tshark is not installed: not checking how Wireshark decodes the capture");
  else
    {
      const char *tshark_argv[] = { tshark, "-r", path, "-T", "fields", "-e", "dbus.member", NULL };
      g_autofree char *decoded = NULL;
      g_autofree char *tshark_err = NULL;
      g_auto(GStrv) lines = NULL;

      g_assert_cmpint (peer_test_run (tshark_argv, &decoded, &tshark_err), ==, 0);
      lines = g_strsplit (decoded, "\n", -1);
      g_assert_true (g_strv_contains ((const char * const *) lines, "Quick"));
      g_assert_true (g_strv_contains ((const char * const *) lines, "PropertiesChanged"));
    }
  peer_test_remove_dir (dir);
}

/* With a lane, its frames are in the capture too, as D-Bus messages. */
static void
test_lane_capture (void)
{
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *path = g_build_filename (dir, "capture.pcap", NULL);
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--capture", path, "--lane", "--spawn", "--",
                         peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  const char *plain_argv[] = { peer_test_program ("PEER_CLIENT"), "--capture", path, "--spawn", "--",
                               peer_test_program ("PEER_SERVER"), "ping", "--count", "1", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autoptr(GPtrArray) members = NULL;

  run_with_env (argv, NULL, NULL, &out, &err);
  members = read_capture (path);
  /* Open (GDBus), then the lane's Quick and its reply. */
  g_assert_true (has_string (members, "Open"));
  g_assert_true (has_string (members, "Quick"));
  g_assert_true (has_string (members, NULL));
  g_clear_pointer (&members, g_ptr_array_unref);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* The twin: without a lane there is no Open and Quick is not called. */
  run_with_env (plain_argv, NULL, NULL, &out, &err);
  members = read_capture (path);
  g_assert_false (has_string (members, "Open"));
  g_assert_false (has_string (members, "Quick"));
  g_assert_true (has_string (members, "Ping"));
  peer_test_remove_dir (dir);
}

/* A capture that cannot be written is an error of peer-client's command
 * line, found before it starts anything: one line with the reason, exit
 * 2, whether it came from PEER_CAPTURE or --capture. The twin: a writable
 * one runs (test_capture()), and so does the same call with none. */
static void
test_capture_unwritable (void)
{
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--spawn", "--",
                         peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  const char *option_argv[] = { peer_test_program ("PEER_CLIENT"), "--capture", "/nonexistent/libpeer/capture.pcap",
                                "--spawn", "--", peer_test_program ("PEER_SERVER"), "quick", "8", NULL };
  g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "PEER_CAPTURE", "/nonexistent/libpeer/capture.pcap", TRUE);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, NULL));
  peer_test_strip_valgrind (err);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 2);
  g_assert_cmpstr (out, ==, "");
  g_assert_cmpstr (err, ==, "peer-client: PEER_CAPTURE: cannot write the capture to "
                            "/nonexistent/libpeer/capture.pcap: No such file or directory\n");
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  envp = g_environ_unsetenv (envp, "PEER_CAPTURE");
  g_assert_true (g_spawn_sync (NULL, (char **) option_argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                               NULL));
  peer_test_strip_valgrind (err);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 2);
  g_assert_cmpstr (out, ==, "");
  g_assert_cmpstr (err, ==, "peer-client: --capture: cannot write the capture to "
                            "/nonexistent/libpeer/capture.pcap: No such file or directory\n");
  g_assert_false (g_file_test ("/nonexistent/libpeer", G_FILE_TEST_EXISTS));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* The same command with no capture runs. */
  run_with_env (argv, NULL, NULL, &out, &err);
  g_assert_cmpstr (err, ==, "");
  g_assert_true (g_ascii_isdigit (out[0]));
}

static void
test_tshark_present (void)
{
  g_autofree char *tshark = g_find_program_in_path ("tshark");

  if (tshark == NULL)
    g_test_skip ("tshark is not installed (apt-get install tshark): the capture is checked "
                 "only by reading it back");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/peer/debug/describe", test_describe);
  g_test_add_data_func ("/peer/debug/messages/logged", GINT_TO_POINTER (TRUE), test_messages_log);
  g_test_add_data_func ("/peer/debug/messages/silent-by-default", GINT_TO_POINTER (FALSE), test_messages_log);
  g_test_add_func ("/peer/debug/messages/two-peers", test_messages_log_two_peers);
  g_test_add_func ("/peer/debug/capture/pcap", test_capture);
  g_test_add_data_func ("/peer/debug/lane/logged", GINT_TO_POINTER (TRUE), test_lane_log);
  g_test_add_data_func ("/peer/debug/lane/silent-by-default", GINT_TO_POINTER (FALSE), test_lane_log);
  g_test_add_func ("/peer/debug/lane/capture", test_lane_capture);
  g_test_add_func ("/peer/debug/capture/unwritable", test_capture_unwritable);
  g_test_add_func ("/peer/debug/capture/tshark", test_tshark_present);

  return g_test_run ();
}
