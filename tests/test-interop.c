/* test-interop.c: the standard D-Bus tools and libraries, unchanged,
 * against peer-server with no bus running: gdbus, dbus-send, busctl
 * (sd-bus, a bus client), python3-dbus (as a peer and as a bus client),
 * dbus-next (Node and Python, bus clients) and txdbus (Twisted, a bus
 * client). Each has its negative twin: an error from the server arrives
 * under its D-Bus name.
 *
 * Then what makes the server a bus to them: each client gets the signal
 * its call caused (a bus client only when a match rule of its own asks
 * for it); replies carry the sender a bus would give them; and monitors
 * (busctl monitor, dbus-monitor) see every call, reply and signal of the
 * others, unless the server refuses them (--no-monitors).
 *
 * A tool running beside the test is waited for by reading its output up
 * to the line expected, never by sleeping; a check that fails marks the
 * test failed and returns, so that the tool is still stopped by its pid. */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer-test-util.h"

typedef struct {
  char *dir;
  PeerTestProcess *server;
  const char *address;
} Fixture;

static void
fixture_start (Fixture    *f,
               const char *extra_arg)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *arg = NULL;

  f->dir = peer_test_make_dir ();
  arg = g_strdup_printf ("--address=unix:path=%s/socket", f->dir);
  f->server = peer_test_spawn_server ((const char *[]) { arg, extra_arg, NULL }, &error);
  g_assert_no_error (error);
  f->address = f->server->first_line;
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  fixture_start (f, NULL);
}

/* A server that refuses BecomeMonitor to everyone. */
static void
fixture_set_up_no_monitors (Fixture      *f,
                            gconstpointer data)
{
  fixture_start (f, "--no-monitors");
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  int status = peer_test_process_stop (f->server, SIGTERM);

  g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  peer_test_remove_dir (f->dir);
  g_free (f->dir);
}

static gboolean
have_program (const char *name)
{
  g_autofree char *path = g_find_program_in_path (name);
  return path != NULL;
}

/* Fails the test with a one-line summary, which TAP shows beside "not
 * ok", and @details (a tool's output) below it as comments. */
static void G_GNUC_PRINTF (2, 3)
fail_showing (const char *details,
              const char *format,
              ...)
{
  g_autofree char *summary = NULL;
  va_list args;

  va_start (args, format);
  summary = g_strdup_vprintf (format, args);
  va_end (args);
  if (details != NULL && details[0] != '\0')
    g_test_message ("%s", details);
  g_test_fail_printf ("%s", summary);
}

/* Runs a tool; checks its exit status and that stdout (or stderr, for
 * failures) contains @fragment. A mismatch fails the test but returns, so
 * that a test with tools running in the background can stop them. */
static gboolean
run_expect (const char * const *argv,
            int                 expected_code,
            const char         *fragment)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *details = NULL;
  int code = peer_test_run (argv, &out, &err);
  const char *where = expected_code == 0 ? out : err;

  if (code == expected_code && strstr (where, fragment) != NULL)
    return TRUE;
  details = g_strdup_printf ("stdout:\n%s\nstderr:\n%s", out, err);
  fail_showing (details, "%s %s: exit %d (expected %d); wanted '%s' in its %s",
                argv[0], argv[1] ? argv[1] : "", code, expected_code, fragment,
                expected_code == 0 ? "stdout" : "stderr");
  return FALSE;
}

/* `gdbus call` of org.libpeer.Helper1.@method with the NULL-terminated
 * arguments that follow; expects success and @fragment in its output. */
static gboolean G_GNUC_NULL_TERMINATED
gdbus_call (Fixture    *f,
            const char *fragment,
            const char *method,
            ...)
{
  g_autofree char *full_method = g_strconcat ("org.libpeer.Helper1.", method, NULL);
  const char *prefix[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Helper",
                           "--object-path", "/org/libpeer/Helper", "--method", full_method };
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  const char *arg;
  va_list args;

  for (guint i = 0; i < G_N_ELEMENTS (prefix); i++)
    g_ptr_array_add (argv, (gpointer) prefix[i]);
  va_start (args, method);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return run_expect ((const char * const *) argv->pdata, 0, fragment);
}

/* Contains @text as a whole line. */
static gboolean
has_line (const char *out,
          const char *text)
{
  g_auto(GStrv) lines = g_strsplit (out, "\n", -1);

  return g_strv_contains ((const char * const *) lines, text);
}

/* Fails the test, showing everything a client printed, unless it printed
 * @text as a whole line (@whole) or somewhere. */
static void
expect_output (const char *what,
               const char *out,
               const char *text,
               gboolean    whole)
{
  if (whole ? !has_line (out, text) : strstr (out, text) == NULL)
    fail_showing (out, "%s: wanted %s'%s' in its output", what, whole ? "the line " : "", text);
}

/* --- tools that run beside the test ---------------------------------------- */

/* A tool started in the background, its stdout kept line by line so that a
 * check can look back at what came before a line. */
typedef struct {
  const char *name;
  PeerTestProcess *process;
  GPtrArray *lines;
} Watched;

/* @merge: the tool's stderr goes to the same pipe (through sh, which
 * execs the tool, so the pid stays the tool's). */
static gboolean
watched_start (Watched            *w,
               const char * const *argv,
               gboolean            merge)
{
  g_autoptr(GPtrArray) full = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;

  if (merge)
    {
      g_ptr_array_add (full, (gpointer) "sh");
      g_ptr_array_add (full, (gpointer) "-c");
      g_ptr_array_add (full, (gpointer) "exec \"$@\" 2>&1");
      g_ptr_array_add (full, (gpointer) "sh");
    }
  for (guint i = 0; argv[i] != NULL; i++)
    g_ptr_array_add (full, (gpointer) argv[i]);
  g_ptr_array_add (full, NULL);

  w->name = argv[0];
  w->lines = g_ptr_array_new_with_free_func (g_free);
  w->process = peer_test_spawn ((const char * const *) full->pdata, &error);
  if (w->process == NULL)
    g_test_fail_printf ("cannot start %s: %s", argv[0], error->message);
  return w->process != NULL;
}

/* Stops the tool by its pid. */
static void
watched_stop (Watched *w,
              int      signum)
{
  if (w->process != NULL)
    peer_test_process_stop (w->process, signum);
  w->process = NULL;
  g_clear_pointer (&w->lines, g_ptr_array_unref);
}

/* Finds the first line at index @from or later that contains every one of
 * the NULL-terminated fragments, reading the tool's output as far as
 * needed: 10 s at most, or until the tool exits. Sets *@index to it; on
 * failure marks the test failed, showing the output, and returns FALSE. */
static gboolean G_GNUC_NULL_TERMINATED
watched_wait (Watched *w,
              guint    from,
              guint   *index,
              ...)
{
  g_autoptr(GPtrArray) fragments = g_ptr_array_new ();
  gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  const char *fragment;
  va_list args;

  va_start (args, index);
  while ((fragment = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (fragments, (gpointer) fragment);
  va_end (args);
  g_ptr_array_add (fragments, NULL);

  for (guint i = from;; i++)
    {
      gboolean all = TRUE;

      while (i >= w->lines->len)
        {
          char *line = g_get_monotonic_time () < end ? peer_test_process_read_line (w->process) : NULL;

          if (line == NULL)
            {
              g_autofree char *wanted = g_strjoinv ("' and '", (char **) fragments->pdata);
              g_autofree char *seen = NULL;

              g_ptr_array_add (w->lines, NULL);
              seen = g_strjoinv ("\n", (char **) w->lines->pdata);
              g_ptr_array_remove_index (w->lines, w->lines->len - 1);
              fail_showing (seen, "%s printed no line with '%s' (from line %u) within 10 s",
                            w->name, wanted, from);
              return FALSE;
            }
          g_ptr_array_add (w->lines, line);
        }
      for (guint k = 0; fragments->pdata[k] != NULL && all; k++)
        all = strstr (g_ptr_array_index (w->lines, i), fragments->pdata[k]) != NULL;
      if (all)
        {
          *index = i;
          return TRUE;
        }
    }
}

static const char *
watched_line (Watched *w,
              guint    index)
{
  return index < w->lines->len ? g_ptr_array_index (w->lines, index) : "";
}

/* Marks the test failed unless no line in [@from, @to) contains @fragment. */
static gboolean
watched_expect_none (Watched    *w,
                     guint       from,
                     guint       to,
                     const char *fragment)
{
  for (guint i = from; i < to; i++)
    if (strstr (watched_line (w, i), fragment) != NULL)
      {
        g_test_fail_printf ("%s printed '%s', which it should not have seen, in line %u: %s",
                            w->name, fragment, i, watched_line (w, i));
        return FALSE;
      }
  return TRUE;
}

/* The value after @key in @line, up to the next space, ';' or the end:
 * "serial=7" → "7". NULL when @key is not there. */
static char *
field_value (const char *line,
             const char *key)
{
  const char *start = strstr (line, key);

  if (start == NULL)
    return NULL;
  start += strlen (key);
  return g_strndup (start, strcspn (start, " ;"));
}

static gboolean
expect_field (Watched    *w,
              guint       index,
              const char *key,
              const char *expected)
{
  g_autofree char *value = field_value (watched_line (w, index), key);

  if (g_strcmp0 (value, expected) == 0)
    return TRUE;
  g_test_fail_printf ("%s line %u: wanted %s%s in: %s", w->name, index, key, expected, watched_line (w, index));
  return FALSE;
}

/* --- the tests -------------------------------------------------------------- */

static void
test_gdbus (Fixture      *f,
            gconstpointer data)
{
  const char *call_ok[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Helper",
                            "--object-path", "/org/libpeer/Helper", "--method",
                            "org.libpeer.Helper1.Quick", "8", NULL };
  const char *call_bad[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Helper",
                             "--object-path", "/org/libpeer/Helper", "--method",
                             "org.libpeer.Helper1.Quick", "0", NULL };
  const char *introspect[] = { "gdbus", "introspect", "--address", f->address, "--dest", "org.libpeer.Helper",
                               "--object-path", "/org/libpeer/Helper", NULL };
  const char *introspect_root[] = { "gdbus", "introspect", "--address", f->address, "--dest",
                                    "org.libpeer.Helper", "--object-path", "/", "--recurse", NULL };
  const char *peer_ping[] = { "gdbus", "call", "--address", f->address, "--dest", "org.libpeer.Helper",
                              "--object-path", "/org/libpeer/Bench", "--method",
                              "org.freedesktop.DBus.Peer.Ping", NULL };

  if (!have_program ("gdbus"))
    {
      g_test_skip ("gdbus is not installed (package libglib2.0-bin)");
      return;
    }
  run_expect (call_ok, 0, "('");
  run_expect (call_bad, 1, "org.libpeer.Error.InvalidArgs");
  run_expect (introspect, 0, "interface org.libpeer.Helper1");
  run_expect (introspect_root, 0, "node /org/libpeer/Bench");
  run_expect (peer_ping, 0, "()");
}

/* GLib 2.74's `gdbus monitor` is no monitor: handle_monitor() in
 * gio/gdbus-tool.c watches the --dest name and, when it has an owner,
 * subscribes to that owner's signals with g_dbus_connection_signal_subscribe
 * (an AddMatch); it never calls BecomeMonitor. So it shows the Notified
 * signal, and, the negative twin, never the Quick call made before it. */
static gboolean
gdbus_monitor_checks (Fixture *f,
                      Watched *w)
{
  guint attached, seen;

  /* Printed by the callback that subscribes right after printing it: its
   * AddMatch is on its way before a new client can connect, say Hello and
   * call Quick, all of which come before the signal. */
  return watched_wait (w, 0, &attached, "The name org.libpeer.Helper is owned by :1.0", NULL) &&
         gdbus_call (f, "('", "Quick", "13", NULL) &&
         gdbus_call (f, "(uint32 ", "Notify", "gdbus", "0", "", "for gdbus monitor", "", "[]", "{}", "0", NULL) &&
         watched_wait (w, attached, &seen, "/org/libpeer/Helper: org.libpeer.Helper1.Notified (uint32 ",
                       "'for gdbus monitor'", NULL) &&
         watched_expect_none (w, attached, seen, "Quick");
}

static void
test_monitor_gdbus (Fixture      *f,
                    gconstpointer data)
{
  const char *argv[] = { "gdbus", "monitor", "--address", f->address, "--dest", "org.libpeer.Helper", NULL };
  Watched w = { 0 };

  if (!have_program ("gdbus"))
    {
      g_test_skip ("gdbus is not installed (package libglib2.0-bin)");
      return;
    }
  if (watched_start (&w, argv, FALSE))
    gdbus_monitor_checks (f, &w);
  watched_stop (&w, SIGTERM);
}

/* dbus-monitor (libdbus): BecomeMonitor, then every message prints as a
 * header line ("method call time=… sender=:1.2 -> destination=… serial=3
 * path=…; interface=…; member=Quick") and its arguments below it. */
static gboolean
dbus_monitor_checks (Fixture *f,
                     Watched *w)
{
  g_autofree char *bus = g_strconcat ("--bus=", f->address, NULL);
  const char *emit[] = { "dbus-send", bus, "--type=signal", "/org/libpeer/Test",
                         "org.libpeer.Test1.Hi", "string:from dbus-send", NULL };
  g_autofree char *caller = NULL;
  g_autofree char *serial = NULL;
  g_autofree char *emitter = NULL;
  guint attached, call, reply, signal, arg;

  /* The server sends its NameLost (its unique name is gone, as from a
   * bus) after it made it a monitor. */
  if (!watched_wait (w, 0, &attached, "member=NameLost", NULL) ||
      !gdbus_call (f, "('", "Quick", "13", NULL) ||
      !watched_wait (w, attached, &call, "method call", "interface=org.libpeer.Helper1; member=Quick", NULL))
    return FALSE;
  caller = field_value (watched_line (w, call), "sender=");
  serial = field_value (watched_line (w, call), " serial=");
  if (caller == NULL || !g_str_has_prefix (caller, ":1.") || g_str_equal (caller, ":1.0") || serial == NULL)
    {
      g_test_fail_printf ("the Quick call carries no caller's sender: %s", watched_line (w, call));
      return FALSE;
    }
  /* Its reply: from :1.0 to the caller, answering that serial. */
  for (guint from = call + 1;; from = reply + 1)
    {
      g_autofree char *answers = NULL;
      g_autofree char *to = NULL;

      if (!watched_wait (w, from, &reply, "method return", NULL))
        return FALSE;
      answers = field_value (watched_line (w, reply), "reply_serial=");
      to = field_value (watched_line (w, reply), "destination=");
      if (g_strcmp0 (answers, serial) == 0 && g_strcmp0 (to, caller) == 0)
        break;
    }
  if (!expect_field (w, reply, "sender=", ":1.0"))
    return FALSE;

  if (!gdbus_call (f, "(uint32 ", "Notify", "gdbus", "0", "", "for dbus-monitor", "", "[]", "{}", "0", NULL) ||
      !watched_wait (w, reply, &signal, "signal", "path=/org/libpeer/Helper; interface=org.libpeer.Helper1; "
                     "member=Notified", NULL) ||
      !expect_field (w, signal, "sender=", ":1.0") ||
      !watched_wait (w, signal, &arg, "string \"for dbus-monitor\"", NULL))
    return FALSE;
  /* A broadcast (no destination); its arguments: uint32 id, the summary. */
  if (strstr (watched_line (w, signal), " -> destination=(null destination) ") == NULL || arg != signal + 2)
    {
      g_test_fail_printf ("dbus-monitor: not the broadcast Notified wanted: %s / %s",
                          watched_line (w, signal), watched_line (w, arg));
      return FALSE;
    }

  /* A signal from a peer: the server passes it to no one else, but a
   * monitor sees every message, with its sender's unique name. */
  if (!run_expect (emit, 0, "") ||
      !watched_wait (w, arg, &signal, "signal", "interface=org.libpeer.Test1; member=Hi", NULL))
    return FALSE;
  emitter = field_value (watched_line (w, signal), "sender=");
  if (emitter == NULL || !g_str_has_prefix (emitter, ":1.") || g_str_equal (emitter, ":1.0"))
    {
      g_test_fail_printf ("a peer's signal carries no unique name: %s", watched_line (w, signal));
      return FALSE;
    }
  return TRUE;
}

static void
test_monitor_dbus_monitor (Fixture      *f,
                           gconstpointer data)
{
  const char *argv[] = { "dbus-monitor", "--address", f->address, NULL };
  Watched w = { 0 };

  if (!have_program ("dbus-monitor") || !have_program ("gdbus"))
    {
      g_test_skip ("dbus-monitor or gdbus is not installed (packages dbus-bin, libglib2.0-bin)");
      return;
    }
  if (watched_start (&w, argv, FALSE))
    dbus_monitor_checks (f, &w);
  watched_stop (&w, SIGTERM);
}

/* busctl (sd-bus): BecomeMonitor, then each message as a header line
 * ("‣ Type=method_call … Cookie=3 …"), a line of addresses ("  Sender=:1.2
 * Destination=… Member=Quick") and its body. */
static gboolean
busctl_monitor_checks (Fixture *f,
                       Watched *w)
{
  g_autofree char *address = g_strconcat ("--address=", f->address, NULL);
  const char *notify[] = { "busctl", address, "call", "org.libpeer.Helper", "/org/libpeer/Helper",
                           "org.libpeer.Helper1", "Notify", "susssasa{sv}i",
                           "busctl", "0", "", "from busctl", "", "0", "0", "0", NULL };
  g_autofree char *caller = NULL;
  g_autofree char *cookie = NULL;
  guint attached, call, reply, addresses, signal, arg;

  /* On stderr, once BecomeMonitor has returned: the server makes a peer
   * a monitor before it answers. */
  if (!watched_wait (w, 0, &attached, "Monitoring bus message stream.", NULL) ||
      !gdbus_call (f, "('", "Quick", "13", NULL) ||
      !watched_wait (w, attached, &call, "Interface=org.libpeer.Helper1", "Member=Quick", NULL))
    return FALSE;
  caller = field_value (watched_line (w, call), "Sender=");
  cookie = field_value (watched_line (w, call - 1), " Cookie=");
  if (caller == NULL || !g_str_has_prefix (caller, ":1.") || g_str_equal (caller, ":1.0") ||
      strstr (watched_line (w, call - 1), "Type=method_call") == NULL || cookie == NULL)
    {
      g_test_fail_printf ("the Quick call carries no caller's sender or cookie: %s / %s",
                          watched_line (w, call - 1), watched_line (w, call));
      return FALSE;
    }
  /* Its reply: from :1.0 to the caller, answering that cookie. */
  for (guint from = call + 1;; from = reply + 1)
    {
      g_autofree char *answers = NULL;
      g_autofree char *to = NULL;

      if (!watched_wait (w, from, &reply, "Type=method_return", NULL) ||
          !watched_wait (w, reply + 1, &addresses, "Sender=", NULL))
        return FALSE;
      answers = field_value (watched_line (w, reply), "ReplyCookie=");
      to = field_value (watched_line (w, addresses), "Destination=");
      if (g_strcmp0 (answers, cookie) == 0 && g_strcmp0 (to, caller) == 0)
        break;
    }
  if (addresses != reply + 1 || !expect_field (w, addresses, "Sender=", ":1.0"))
    {
      g_test_fail_printf ("busctl: the reply to Quick is not from :1.0: %s / %s",
                          watched_line (w, reply), watched_line (w, reply + 1));
      return FALSE;
    }

  if (!gdbus_call (f, "(uint32 ", "Notify", "gdbus", "0", "", "for busctl monitor", "", "[]", "{}", "0", NULL) ||
      !watched_wait (w, reply, &signal, "Path=/org/libpeer/Helper", "Interface=org.libpeer.Helper1",
                     "Member=Notified", NULL) ||
      !expect_field (w, signal, "Sender=", ":1.0") ||
      !watched_wait (w, signal, &arg, "STRING \"for busctl monitor\";", NULL))
    return FALSE;
  /* Its body follows its addresses: UniqueName=, MESSAGE "us" {, the id. */
  if (arg - signal > 4)
    {
      g_test_fail_printf ("busctl: the summary is not Notified's: line %u after line %u", arg, signal);
      return FALSE;
    }

  /* busctl as the caller too: it cannot receive the signal it causes
   * (it subscribes to nothing), its monitor shows it. */
  return run_expect (notify, 0, "u ") &&
         watched_wait (w, arg, &signal, "Member=Notified", "Sender=:1.0", NULL) &&
         watched_wait (w, signal, &arg, "STRING \"from busctl\";", NULL);
}

static void
test_monitor_busctl (Fixture      *f,
                     gconstpointer data)
{
  g_autofree char *address = g_strconcat ("--address=", f->address, NULL);
  const char *argv[] = { "busctl", address, "monitor", NULL };
  Watched w = { 0 };

  if (!have_program ("busctl") || !have_program ("gdbus"))
    {
      g_test_skip ("busctl or gdbus is not installed (packages systemd, libglib2.0-bin)");
      return;
    }
  if (watched_start (&w, argv, TRUE))
    busctl_monitor_checks (f, &w);
  watched_stop (&w, SIGTERM);
}

/* Negative twin: on a server started with --no-monitors, BecomeMonitor is
 * refused and busctl, which has no other way, gives up. */
static void
test_monitor_refused_busctl (Fixture      *f,
                             gconstpointer data)
{
  g_autofree char *address = g_strconcat ("--address=", f->address, NULL);
  /* Bounded: a monitor wrongly accepted would run until killed. Under
   * valgrind the server is followed too, and answers slower. */
  const char *limit = g_strcmp0 (g_getenv ("PEER_UNDER_VALGRIND"), "1") == 0 ? "30" : "5";
  const char *argv[] = { "timeout", limit, "busctl", address, "monitor", NULL };

  if (!have_program ("busctl"))
    {
      g_test_skip ("busctl is not installed (package systemd)");
      return;
    }
  run_expect (argv, 1, "Access denied");
}

/* dbus-monitor, refused, falls back to the old way: AddMatch rules with
 * eavesdrop=true. Those bring it the broadcast signals any client may
 * subscribe to, and nothing of what passes between other peers and the
 * server. */
static gboolean
dbus_monitor_refused_checks (Fixture *f,
                             Watched *w)
{
  guint refused, attached, signal;

  /* NameAcquired is dispatched by its main loop, which starts after its
   * AddMatch calls have been answered. */
  return watched_wait (w, 0, &refused, "org.freedesktop.DBus.Error.AccessDenied", NULL) &&
         watched_wait (w, refused, &attached, "member=NameAcquired", NULL) &&
         gdbus_call (f, "('", "Quick", "13", NULL) &&
         gdbus_call (f, "(uint32 ", "Notify", "gdbus", "0", "", "for an eavesdropper", "", "[]", "{}", "0",
                     NULL) &&
         watched_wait (w, attached, &signal, "member=Notified", NULL) &&
         watched_wait (w, signal, &signal, "string \"for an eavesdropper\"", NULL) &&
         watched_expect_none (w, attached, signal, "method call") &&
         watched_expect_none (w, attached, signal, "method return");
}

static void
test_monitor_refused_dbus_monitor (Fixture      *f,
                                   gconstpointer data)
{
  const char *argv[] = { "dbus-monitor", "--address", f->address, NULL };
  Watched w = { 0 };

  if (!have_program ("dbus-monitor") || !have_program ("gdbus"))
    {
      g_test_skip ("dbus-monitor or gdbus is not installed (packages dbus-bin, libglib2.0-bin)");
      return;
    }
  if (watched_start (&w, argv, TRUE))
    dbus_monitor_refused_checks (f, &w);
  watched_stop (&w, SIGTERM);
}

static void
test_dbus_send (Fixture      *f,
                gconstpointer data)
{
  g_autofree char *peer = g_strconcat ("--peer=", f->address, NULL);
  const char *call_ok[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                            "org.libpeer.Helper1.Quick", "int32:8", NULL };
  const char *call_bad[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                             "org.libpeer.Helper1.Quick", "int32:0", NULL };
  const char *get[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                        "org.freedesktop.DBus.Properties.Get", "string:org.libpeer.Helper1",
                        "string:Version", NULL };
  const char *wrong_type[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                               "org.libpeer.Helper1.Quick", "string:8", NULL };

  if (!have_program ("dbus-send"))
    {
      g_test_skip ("dbus-send is not installed (package dbus-bin)");
      return;
    }
  run_expect (call_ok, 0, "string \"");
  run_expect (call_bad, 1, "org.libpeer.Error.InvalidArgs");
  run_expect (get, 0, "string \"" PACKAGE_VERSION "\"");
  run_expect (wrong_type, 1, "org.freedesktop.DBus.Error.InvalidArgs");
}

/* dbus-send --bus= says Hello first, so the server's replies must be
 * addressed as a bus addresses them: from the name's owner :1.0 (whether
 * the libpeer handler built the reply or GDBus did, as for Properties.Get),
 * or from org.freedesktop.DBus for the bus driver's, and to the caller's
 * unique name. The negative twin, a plain peer (--peer=), said no Hello
 * and has no name to be addressed by.
 *
 * Notify is out of dbus-send's reach (it builds no empty container and no
 * variant in a dict, and Notify takes an empty a{sv}), and it never
 * receives signals: the dbus-monitor test watches the signal it sends. */
static void
test_dbus_send_senders (Fixture      *f,
                        gconstpointer data)
{
  g_autofree char *bus = g_strconcat ("--bus=", f->address, NULL);
  g_autofree char *peer = g_strconcat ("--peer=", f->address, NULL);
  const char *quick[] = { "dbus-send", bus, "--print-reply", "--dest=org.libpeer.Helper", "/org/libpeer/Helper",
                          "org.libpeer.Helper1.Quick", "int32:8", NULL };
  const char *get[] = { "dbus-send", bus, "--print-reply", "--dest=org.libpeer.Helper", "/org/libpeer/Helper",
                        "org.freedesktop.DBus.Properties.Get", "string:org.libpeer.Helper1",
                        "string:Version", NULL };
  const char *owner[] = { "dbus-send", bus, "--print-reply", "--dest=org.freedesktop.DBus",
                          "/org/freedesktop/DBus", "org.freedesktop.DBus.GetNameOwner",
                          "string:org.libpeer.Helper", NULL };
  const char *peer_quick[] = { "dbus-send", peer, "--print-reply", "/org/libpeer/Helper",
                               "org.libpeer.Helper1.Quick", "int32:8", NULL };

  if (!have_program ("dbus-send"))
    {
      g_test_skip ("dbus-send is not installed (package dbus-bin)");
      return;
    }
  run_expect (quick, 0, " sender=:1.0 -> destination=:1.");
  run_expect (get, 0, " sender=:1.0 -> destination=:1.");
  run_expect (owner, 0, " sender=org.freedesktop.DBus -> destination=:1.");
  run_expect (owner, 0, "string \":1.0\"");
  run_expect (peer_quick, 0, " -> destination=(null destination) ");
}

static void
test_busctl (Fixture      *f,
             gconstpointer data)
{
  g_autofree char *address = g_strconcat ("--address=", f->address, NULL);
  const char *call_ok[] = { "busctl", address, "call", "org.libpeer.Helper", "/org/libpeer/Helper",
                            "org.libpeer.Helper1", "Quick", "i", "8", NULL };
  const char *call_bad[] = { "busctl", address, "call", "org.libpeer.Helper", "/org/libpeer/Helper",
                             "org.libpeer.Helper1", "Quick", "i", "0", NULL };
  const char *get[] = { "busctl", address, "get-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                        "org.libpeer.Helper1", "Version", NULL };
  const char *set[] = { "busctl", address, "set-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                        "org.libpeer.Helper1", "Label", "s", "from busctl", NULL };
  const char *get_label[] = { "busctl", address, "get-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                              "org.libpeer.Helper1", "Label", NULL };
  const char *set_readonly[] = { "busctl", address, "set-property", "org.libpeer.Helper", "/org/libpeer/Helper",
                                 "org.libpeer.Helper1", "Version", "s", "9", NULL };
  const char *introspect[] = { "busctl", address, "introspect", "org.libpeer.Helper",
                               "/org/libpeer/Helper", NULL };

  if (!have_program ("busctl"))
    {
      g_test_skip ("busctl is not installed (package systemd)");
      return;
    }
  run_expect (call_ok, 0, "s \"");
  run_expect (call_bad, 1, "bits must be between 1 and 1024");
  run_expect (get, 0, "s \"" PACKAGE_VERSION "\"");
  run_expect (set, 0, "");
  run_expect (get_label, 0, "s \"from busctl\"");
  run_expect (set_readonly, 1, "");
  run_expect (introspect, 0, ".Quick");
}

static void
test_python (Fixture      *f,
             gconstpointer data)
{
  const char *mode = data;
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "interop", "python-client.py", NULL);
  const char *argv[] = { "/usr/bin/python3", script, f->address, mode, NULL };
  const char *probe[] = { "/usr/bin/python3", "-c", "import dbus, gi", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *summary = NULL;

  if (peer_test_run (probe, NULL, NULL) != 0)
    {
      g_test_skip ("python3-dbus or python3-gi is not installed");
      return;
    }
  if (peer_test_run (argv, &out, &err) != 0)
    g_error ("python-client.py %s failed:\n%s%s", mode, out, err);
  g_assert_nonnull (strstr (out, "quick "));
  g_assert_nonnull (strstr (out, "error org.libpeer.Error.InvalidArgs bits must be between 1 and 1024, not 0"));
  g_assert_nonnull (strstr (out, "version " PACKAGE_VERSION));
  g_assert_nonnull (strstr (out, "label from python"));
  /* The signal after the call (the script checks its id and waits for it). */
  summary = g_strconcat (" from python-dbus ", mode, NULL);
  expect_output ("python-client.py", out, "notified ", FALSE);
  expect_output ("python-client.py", out, summary, FALSE);
  if (g_str_equal (mode, "bus"))
    {
      g_assert_nonnull (strstr (out, "unique-name :1."));
      /* Negative twin: a bus client that subscribed to nothing. */
      expect_output ("python-client.py", out, "unsubscribed-saw: ", TRUE);
    }
}

/* dbus-next for Python: a proxy gets Notified after its Notify call; then
 * three connections with different match rules get what their rules say
 * and nothing else (see the script's header). */
static void
test_python_dbus_next (Fixture      *f,
                       gconstpointer data)
{
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "interop", "python-dbus-next-client.py", NULL);
  const char *argv[] = { "/usr/bin/python3", script, f->address, NULL };
  const char *probe[] = { "/usr/bin/python3", "-c", "import dbus_next", NULL };
  const char *what = "python-dbus-next-client.py";
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (peer_test_run (probe, NULL, NULL) != 0)
    {
      g_test_skip ("python3-dbus-next is not installed");
      return;
    }
  if (peer_test_run (argv, &out, &err) != 0)
    g_error ("%s failed:\n%s%s", what, out, err);
  expect_output (what, out, "unique-name :1.", FALSE);
  expect_output (what, out, "quick ", FALSE);
  expect_output (what, out, "error org.libpeer.Error.InvalidArgs bits must be between 1 and 1024, not 0", TRUE);
  expect_output (what, out, "version " PACKAGE_VERSION, TRUE);
  expect_output (what, out, " from dbus-next python", FALSE);
  /* sender='org.libpeer.Helper': the server's signals, not the bus's. */
  expect_output (what, out, "all-saw: PropertiesChanged(Label) Notified(match rules)", TRUE);
  /* member='Notified': not the PropertiesChanged sent before it. */
  expect_output (what, out, "member-saw: Notified(match rules)", TRUE);
  /* No rule: no broadcast at all. */
  expect_output (what, out, "none-saw: ", TRUE);
}

/* txdbus (Twisted): Hello at object path "/Hello", a proxy built by
 * introspection, Quick and its error, and Notified after a Notify call
 * through the proxy's AddMatch (see the script's header). */
static void
test_txdbus (Fixture      *f,
             gconstpointer data)
{
  g_autofree char *script = g_test_build_filename (G_TEST_DIST, "interop", "txdbus-client.py", NULL);
  const char *argv[] = { "/usr/bin/python3", script, f->address, NULL };
  const char *probe[] = { "/usr/bin/python3", "-c", "import txdbus.client", NULL };
  const char *what = "txdbus-client.py";
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (peer_test_run (probe, NULL, NULL) != 0)
    {
      g_test_skip ("python3-txdbus is not installed");
      return;
    }
  if (peer_test_run (argv, &out, &err) != 0)
    g_error ("%s failed:\n%s%s", what, out, err);
  expect_output (what, out, "unique-name :1.", FALSE);
  expect_output (what, out, "quick ", FALSE);
  expect_output (what, out, "error org.libpeer.Error.InvalidArgs bits must be between 1 and 1024, not 0", TRUE);
  /* The script checks that the signal carries the id Notify returned. */
  expect_output (what, out, "notified ", FALSE);
  expect_output (what, out, " from txdbus", FALSE);
}

static void
test_node (Fixture      *f,
           gconstpointer data)
{
  g_autofree char *dir = g_test_build_filename (G_TEST_DIST, "interop", "node", NULL);
  g_autofree char *script = g_build_filename (dir, "client.js", NULL);
  g_autofree char *modules = g_build_filename (dir, "node_modules", "dbus-next", NULL);
  const char *argv[] = { "node", script, f->address, NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;

  if (!have_program ("node") || !g_file_test (modules, G_FILE_TEST_IS_DIR))
    {
      g_test_skip ("node or dbus-next missing (test.sh installs them: npm ci in tests/interop/node)");
      return;
    }
  if (peer_test_run (argv, &out, &err) != 0)
    g_error ("client.js failed:\n%s%s", out, err);
  g_assert_nonnull (strstr (out, "quick "));
  g_assert_nonnull (strstr (out, "error org.libpeer.Error.InvalidArgs bits must be between 1 and 1024, not 0"));
  g_assert_nonnull (strstr (out, "version " PACKAGE_VERSION));
  /* The signal after the call, through the proxy's AddMatch; and the
   * negative twin, a connection that subscribed to nothing. */
  expect_output ("client.js", out, " from dbus-next node", FALSE);
  expect_output ("client.js", out, "unsubscribed-saw: ", TRUE);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func, data) g_test_add (path, Fixture, data, fixture_set_up, func, fixture_tear_down)
#define ADD_NO_MONITORS(path, func) \
  g_test_add (path, Fixture, NULL, fixture_set_up_no_monitors, func, fixture_tear_down)
  ADD ("/peer/interop/gdbus", test_gdbus, NULL);
  ADD ("/peer/interop/dbus-send", test_dbus_send, NULL);
  ADD ("/peer/interop/dbus-send/senders", test_dbus_send_senders, NULL);
  ADD ("/peer/interop/busctl", test_busctl, NULL);
  ADD ("/peer/interop/python-dbus/peer", test_python, "peer");
  ADD ("/peer/interop/python-dbus/bus", test_python, "bus");
  ADD ("/peer/interop/python-dbus-next", test_python_dbus_next, NULL);
  ADD ("/peer/interop/node-dbus-next", test_node, NULL);
  ADD ("/peer/interop/txdbus", test_txdbus, NULL);
  ADD ("/peer/interop/monitor/gdbus", test_monitor_gdbus, NULL);
  ADD ("/peer/interop/monitor/dbus-monitor", test_monitor_dbus_monitor, NULL);
  ADD ("/peer/interop/monitor/busctl", test_monitor_busctl, NULL);
  ADD_NO_MONITORS ("/peer/interop/monitor/refused/busctl", test_monitor_refused_busctl);
  ADD_NO_MONITORS ("/peer/interop/monitor/refused/dbus-monitor", test_monitor_refused_dbus_monitor);
#undef ADD_NO_MONITORS
#undef ADD
  return g_test_run ();
}
