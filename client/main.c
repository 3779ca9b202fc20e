/* peer-client: talk to a libpeer server (or any D-Bus peer server) from
 * the command line.
 *
 *   peer-client [--address ADDR] COMMAND [ARGS...]
 *   peer-client --spawn -- HELPER [HELPER-ARGS...] [--] COMMAND [ARGS...]
 *
 * Arguments to `call` and `set` are GVariant text; their types come from
 * the server's introspection data, so `42` and `hello` work as they are.
 * Every failure is one line on stderr and a non-zero exit: 1 when the
 * operation failed, 2 for bad usage. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>
#include <libpeer.h>

#define BENCH_PATH  "/org/libpeer/Bench"
#define BENCH_IFACE "org.libpeer.Bench1"
#define HELPER_PATH  "/org/libpeer/Helper"
#define HELPER_IFACE "org.libpeer.Helper1"

#define EXIT_USAGE 2

typedef struct {
  const char *name;
  const char *args;
  const char *summary;
  int (*run) (PeerClient *client, int argc, char **argv);
  /* Checked before connecting: a command line that misses words fails
   * at once, without a connection made for nothing. */
  int min_args;
  const char *needs;            /* what the missing words are */
} Command;

static int
fail (const char *format,
      ...) G_GNUC_PRINTF (1, 2);

static int
fail (const char *format,
      ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("peer-client: %s\n", message);
  return EXIT_FAILURE;
}

static int
usage_error (const char *format,
             ...) G_GNUC_PRINTF (1, 2);

static int
usage_error (const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("peer-client: %s (see peer-client --help)\n", message);
  return EXIT_USAGE;
}

/* Parses a command's own options; argv[0] is the command name. */
static gboolean
parse_command_options (const char         *command,
                       const GOptionEntry *entries,
                       int                *argc,
                       char             ***argv,
                       int                *exit_code)
{
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("peer-client %s", command);

  g_set_prgname (prgname);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      *exit_code = usage_error ("%s: %s", command, error->message);
      return FALSE;
    }
  return TRUE;
}

static gboolean
parse_int (const char *text,
           gint64      min,
           gint64      max,
           gint64     *out)
{
  return g_ascii_string_to_signed (text, 10, min, max, out, NULL);
}

/* --- introspection -------------------------------------------------------- */

static GDBusNodeInfo *
introspect (PeerClient *client,
            const char *object_path,
            GError    **error)
{
  g_autoptr(GVariant) reply = NULL;
  const char *xml;

  reply = peer_client_call_sync (client, object_path, "org.freedesktop.DBus.Introspectable",
                                 "Introspect", NULL, G_VARIANT_TYPE ("(s)"), -1,
                                 NULL, NULL, NULL, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(&s)", &xml);
  return g_dbus_node_info_new_for_xml (xml, error);
}

/* Splits "org.example.Iface.Member" at its last dot. */
static gboolean
split_member (const char *text,
              char      **out_interface,
              char      **out_member)
{
  const char *dot = strrchr (text, '.');

  if (dot == NULL || dot == text || dot[1] == '\0')
    return FALSE;
  *out_interface = g_strndup (text, dot - text);
  *out_member = g_strdup (dot + 1);
  return g_dbus_is_interface_name (*out_interface) && g_dbus_is_member_name (*out_member);
}

/* Text to a value of @type: GVariant text first; for string-like types a
 * bare word is taken literally, so `notify hello` works without quotes.
 * Returns a full (non-floating) reference. */
static GVariant *
parse_value (const char         *text,
             const GVariantType *type,
             GError            **error)
{
  g_autoptr(GError) parse_error = NULL;
  GVariant *value;

  value = g_variant_parse (type, text, NULL, NULL, &parse_error);
  if (value != NULL)
    return value;
  if (g_variant_type_equal (type, G_VARIANT_TYPE_STRING))
    return g_variant_ref_sink (g_variant_new_string (text));
  if (g_variant_type_equal (type, G_VARIANT_TYPE_OBJECT_PATH) && g_variant_is_object_path (text))
    return g_variant_ref_sink (g_variant_new_object_path (text));
  if (g_variant_type_equal (type, G_VARIANT_TYPE_SIGNATURE) && g_variant_is_signature (text))
    return g_variant_ref_sink (g_variant_new_signature (text));
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "'%s' is not a valid %s: %s", text, g_variant_type_peek_string (type),
               parse_error->message);
  return NULL;
}

/* --- commands --------------------------------------------------------------- */

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return (x > y) - (x < y);
}

static double
percentile_us (const gint64 *sorted_ns,
               guint         n,
               double        p)
{
  guint index = (guint) (p / 100.0 * (n - 1) + 0.5);
  return sorted_ns[MIN (index, n - 1)] / 1000.0;
}

static int
cmd_ping (PeerClient *client,
          int         argc,
          char      **argv)
{
  gint64 count = 10;
  g_autofree char *count_text = NULL;
  const GOptionEntry entries[] = {
    { "count", 'c', 0, G_OPTION_ARG_STRING, &count_text, "How many pings (default 10)", "N" },
    { NULL }
  };
  g_autofree gint64 *samples = NULL;
  gint64 total = 0;
  int code;

  if (!parse_command_options ("ping", entries, &argc, &argv, &code))
    return code;
  if (argc > 1)
    return usage_error ("ping: unexpected argument '%s'", argv[1]);
  if (count_text != NULL && !parse_int (count_text, 1, 100000000, &count))
    return usage_error ("ping: --count must be an integer from 1 to 100000000, not '%s'", count_text);

  samples = g_new (gint64, count);
  for (gint64 i = 0; i < count; i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = NULL;
      gint64 start = g_get_monotonic_time ();
      struct timespec t0, t1;

      clock_gettime (CLOCK_MONOTONIC, &t0);
      reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "Ping", NULL,
                                     G_VARIANT_TYPE_UNIT, -1, NULL, NULL, NULL, &error);
      clock_gettime (CLOCK_MONOTONIC, &t1);
      if (reply == NULL)
        return fail ("ping %" G_GINT64_FORMAT ": %s", i + 1, error->message);
      samples[i] = (t1.tv_sec - t0.tv_sec) * G_GINT64_CONSTANT (1000000000) + (t1.tv_nsec - t0.tv_nsec);
      total += samples[i];
      (void) start;
    }

  qsort (samples, count, sizeof (gint64), compare_gint64);
  g_print ("%" G_GINT64_FORMAT " pings: min %.1f µs, p50 %.1f µs, p90 %.1f µs, p99 %.1f µs, "
           "p99.9 %.1f µs, max %.1f µs, mean %.1f µs\n",
           count, samples[0] / 1000.0,
           percentile_us (samples, count, 50), percentile_us (samples, count, 90),
           percentile_us (samples, count, 99), percentile_us (samples, count, 99.9),
           samples[count - 1] / 1000.0, (double) total / count / 1000.0);
  return EXIT_SUCCESS;
}

static int
cmd_call (PeerClient *client,
          int         argc,
          char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusNodeInfo) node = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariantBuilder) builder = NULL;
  g_autofree char *interface_name = NULL;
  g_autofree char *method_name = NULL;
  g_autofree char *printed = NULL;
  GDBusInterfaceInfo *iface;
  GDBusMethodInfo *method;
  const char *path;
  guint n_args = 0;

  if (argc < 3)
    return usage_error ("call needs OBJECT_PATH INTERFACE.METHOD [ARG...]");
  path = argv[1];
  if (!g_variant_is_object_path (path))
    return usage_error ("'%s' is not an object path", path);
  if (!split_member (argv[2], &interface_name, &method_name))
    return usage_error ("'%s' is not INTERFACE.METHOD", argv[2]);

  node = introspect (client, path, &error);
  if (node == NULL)
    return fail ("cannot introspect %s: %s", path, error->message);
  iface = g_dbus_node_info_lookup_interface (node, interface_name);
  if (iface == NULL)
    return fail ("%s has no interface %s", path, interface_name);
  method = g_dbus_interface_info_lookup_method (iface, method_name);
  if (method == NULL)
    return fail ("%s has no method %s", interface_name, method_name);

  while (method->in_args != NULL && method->in_args[n_args] != NULL)
    n_args++;
  if ((guint) (argc - 3) != n_args)
    {
      g_autoptr(GString) sig = g_string_new (NULL);
      for (guint i = 0; i < n_args; i++)
        g_string_append_printf (sig, "%s%s %s", i ? ", " : "", method->in_args[i]->signature,
                                method->in_args[i]->name ? method->in_args[i]->name : "");
      return usage_error ("%s takes %u argument%s (%s), got %d", method_name, n_args,
                          n_args == 1 ? "" : "s", sig->str, argc - 3);
    }

  builder = g_variant_builder_new (G_VARIANT_TYPE_TUPLE);
  for (guint i = 0; i < n_args; i++)
    {
      const GVariantType *type = G_VARIANT_TYPE (method->in_args[i]->signature);
      g_autoptr(GVariant) value = parse_value (argv[3 + i], type, &error);

      if (value == NULL)
        return usage_error ("argument %u of %s: %s", i + 1, method_name, error->message);
      g_variant_builder_add_value (builder, value);
    }

  reply = peer_client_call_sync (client, path, interface_name, method_name,
                                 g_variant_builder_end (builder), NULL, -1,
                                 NULL, NULL, NULL, &error);
  if (reply == NULL)
    {
      g_autofree char *remote = g_dbus_error_get_remote_error (error);
      return fail ("%s failed: %s%s%s", method_name, remote ? remote : "", remote ? ": " : "",
                   error->message);
    }
  printed = g_variant_print (reply, TRUE);
  g_print ("%s\n", printed);
  return EXIT_SUCCESS;
}

static int
cmd_introspect (PeerClient *client,
                int         argc,
                char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  const char *path = argc > 1 ? argv[1] : "/";
  const char *xml;

  if (argc > 2)
    return usage_error ("introspect takes one OBJECT_PATH");
  if (!g_variant_is_object_path (path))
    return usage_error ("'%s' is not an object path", path);
  reply = peer_client_call_sync (client, path, "org.freedesktop.DBus.Introspectable", "Introspect",
                                 NULL, G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
  if (reply == NULL)
    return fail ("cannot introspect %s: %s", path, error->message);
  g_variant_get (reply, "(&s)", &xml);
  g_print ("%s", xml);
  return EXIT_SUCCESS;
}

/* get/set take OBJECT_PATH INTERFACE.PROPERTY */
static int
parse_property_args (int          argc,
                     char       **argv,
                     int          n_extra,
                     char       **out_interface,
                     char       **out_property)
{
  if (argc != 3 + n_extra)
    return usage_error ("%s needs OBJECT_PATH INTERFACE.PROPERTY%s", argv[0], n_extra ? " VALUE" : "");
  if (!g_variant_is_object_path (argv[1]))
    return usage_error ("'%s' is not an object path", argv[1]);
  if (!split_member (argv[2], out_interface, out_property))
    return usage_error ("'%s' is not INTERFACE.PROPERTY", argv[2]);
  return EXIT_SUCCESS;
}

static int
cmd_get (PeerClient *client,
         int         argc,
         char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = NULL;
  g_autofree char *interface_name = NULL;
  g_autofree char *property_name = NULL;
  g_autofree char *printed = NULL;
  int code;

  if ((code = parse_property_args (argc, argv, 0, &interface_name, &property_name)) != 0)
    return code;
  value = peer_client_get_property_sync (client, argv[1], interface_name, property_name, NULL, &error);
  if (value == NULL)
    return fail ("cannot get %s: %s", argv[2], error->message);
  printed = g_variant_print (value, TRUE);
  g_print ("%s\n", printed);
  return EXIT_SUCCESS;
}

static int
cmd_set (PeerClient *client,
         int         argc,
         char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusNodeInfo) node = NULL;
  g_autofree char *interface_name = NULL;
  g_autofree char *property_name = NULL;
  GDBusInterfaceInfo *iface;
  GDBusPropertyInfo *prop;
  g_autoptr(GVariant) value = NULL;
  int code;

  if ((code = parse_property_args (argc, argv, 1, &interface_name, &property_name)) != 0)
    return code;
  node = introspect (client, argv[1], &error);
  if (node == NULL)
    return fail ("cannot introspect %s: %s", argv[1], error->message);
  iface = g_dbus_node_info_lookup_interface (node, interface_name);
  prop = iface ? g_dbus_interface_info_lookup_property (iface, property_name) : NULL;
  if (prop == NULL)
    return fail ("%s has no property %s", argv[1], argv[2]);
  value = parse_value (argv[3], G_VARIANT_TYPE (prop->signature), &error);
  if (value == NULL)
    return usage_error ("%s", error->message);
  if (!peer_client_set_property_sync (client, argv[1], interface_name, property_name, value, NULL, &error))
    return fail ("cannot set %s: %s", argv[2], error->message);
  return EXIT_SUCCESS;
}

typedef struct {
  GMainLoop *loop;
  int exit_code;
  guint32 wanted_id;
  gboolean have_id;
  gboolean seen;
  char *seen_summary;
} Waiter;

static void
print_signal (PeerClient *client,
              const char *object_path,
              const char *interface_name,
              const char *signal_name,
              GVariant   *parameters,
              gpointer    user_data)
{
  g_autofree char *printed = g_variant_print (parameters, TRUE);

  g_print ("%s %s.%s %s\n", object_path, interface_name, signal_name, printed);
  fflush (stdout);
}

static void
on_closed_quit (PeerClient   *client,
                const GError *reason,
                Waiter       *waiter)
{
  g_printerr ("peer-client: %s\n", reason->message);
  waiter->exit_code = EXIT_FAILURE;
  g_main_loop_quit (waiter->loop);
}

static gboolean
on_interrupt (gpointer user_data)
{
  Waiter *waiter = user_data;

  waiter->exit_code = EXIT_SUCCESS;
  g_main_loop_quit (waiter->loop);
  return G_SOURCE_REMOVE;
}

static int
cmd_monitor (PeerClient *client,
             int         argc,
             char      **argv)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Waiter waiter = { loop, EXIT_SUCCESS };
  const char *path = argc > 1 ? argv[1] : NULL;

  if (argc > 2)
    return usage_error ("monitor takes at most one OBJECT_PATH");
  if (path != NULL && !g_variant_is_object_path (path))
    return usage_error ("'%s' is not an object path", path);

  peer_client_subscribe_signal (client, path, NULL, NULL, print_signal, NULL, NULL);
  g_signal_connect (client, "closed", G_CALLBACK (on_closed_quit), &waiter);
  g_unix_signal_add (SIGINT, on_interrupt, &waiter);
  g_unix_signal_add (SIGTERM, on_interrupt, &waiter);
  g_main_loop_run (loop);
  return waiter.exit_code;
}

static int
cmd_quick (PeerClient *client,
           int         argc,
           char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  gint64 bits;
  const char *number;

  if (argc != 2)
    return usage_error ("quick needs BITS");
  if (!parse_int (argv[1], G_MININT32, G_MAXINT32, &bits))
    return usage_error ("quick: BITS must be an integer, not '%s'", argv[1]);
  reply = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "Quick",
                                 g_variant_new ("(i)", (gint32) bits), G_VARIANT_TYPE ("(s)"),
                                 -1, NULL, NULL, NULL, &error);
  if (reply == NULL)
    return fail ("quick: %s", error->message);
  g_variant_get (reply, "(&s)", &number);
  g_print ("%s\n", number);
  return EXIT_SUCCESS;
}

static void
on_notified (PeerClient *client,
             const char *object_path,
             const char *interface_name,
             const char *signal_name,
             GVariant   *parameters,
             gpointer    user_data)
{
  Waiter *waiter = user_data;
  guint32 id;
  const char *summary;

  g_variant_get (parameters, "(u&s)", &id, &summary);
  if (waiter->have_id && id != waiter->wanted_id)
    return;
  if (!waiter->have_id)
    {
      /* The signal can overtake our reading of the reply; keep the first
       * one with our summary until the id is known. */
      g_free (waiter->seen_summary);
      waiter->seen_summary = g_strdup (summary);
      waiter->wanted_id = id;
    }
  waiter->seen = TRUE;
  g_print ("signal Notified(%u, '%s') received\n", id, summary);
  g_main_loop_quit (waiter->loop);
}

static void
on_notify_reply (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Waiter *waiter = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);
  if (reply == NULL)
    {
      g_printerr ("peer-client: notify: %s\n", error->message);
      waiter->exit_code = EXIT_FAILURE;
      g_main_loop_quit (waiter->loop);
      return;
    }
  g_variant_get (reply, "(u)", &waiter->wanted_id);
  waiter->have_id = TRUE;
  g_print ("notification %u sent\n", waiter->wanted_id);
  if (waiter->seen)
    g_main_loop_quit (waiter->loop);
}

static gboolean
on_notify_timeout (gpointer user_data)
{
  Waiter *waiter = user_data;

  g_printerr ("peer-client: notify: no Notified signal within 10 s\n");
  waiter->exit_code = EXIT_FAILURE;
  g_main_loop_quit (waiter->loop);
  return G_SOURCE_REMOVE;
}

static int
cmd_notify (PeerClient *client,
            int         argc,
            char      **argv)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Waiter waiter = { loop, EXIT_SUCCESS };
  const char *no_actions[] = { NULL };
  guint sub, timeout;

  if (argc < 2 || argc > 3)
    return usage_error ("notify needs SUMMARY [BODY]");

  sub = peer_client_subscribe_signal (client, HELPER_PATH, HELPER_IFACE, "Notified",
                                      on_notified, &waiter, NULL);
  peer_client_call (client, HELPER_PATH, HELPER_IFACE, "Notify",
                    g_variant_new ("(susss^as@a{sv}i)", "peer-client", 0, "", argv[1],
                                   argc > 2 ? argv[2] : "", no_actions,
                                   g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0), -1),
                    G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, on_notify_reply, &waiter);
  timeout = g_timeout_add_seconds (10, on_notify_timeout, &waiter);
  g_signal_connect (client, "closed", G_CALLBACK (on_closed_quit), &waiter);

  /* Done when both the reply and our signal are in. */
  while (waiter.exit_code == EXIT_SUCCESS && !(waiter.have_id && waiter.seen))
    g_main_loop_run (loop);

  g_source_remove (timeout);
  peer_client_unsubscribe_signal (client, sub);
  g_free (waiter.seen_summary);
  return waiter.exit_code;
}

/* --- jobs --------------------------------------------------------------------- */

#define JOB_IFACE "org.libpeer.Job1"
#define JOB_BAR_WIDTH 30

typedef struct {
  GMainLoop *loop;
  int exit_code;
  char *path;                   /* the job's, once StartJob replied */
  GPtrArray *early;             /* GVariant* (osv): signals that came before the reply */
  gboolean finished;
  gboolean cancel_wanted;
  gboolean cancel_sent;
  gboolean tty;
  gboolean bar_drawn;
} JobWaiter;

static void
show_progress (JobWaiter  *waiter,
               double      fraction,
               const char *message)
{
  if (waiter->tty)
    {
      int filled = (int) (CLAMP (fraction, 0.0, 1.0) * JOB_BAR_WIDTH + 0.5);
      g_autofree char *bar = g_strnfill (filled, '#');
      g_autofree char *rest = g_strnfill (JOB_BAR_WIDTH - filled, '.');

      g_print ("\r[%s%s] %3d%%  %s\033[K", bar, rest, (int) (fraction * 100 + 0.5), message);
      waiter->bar_drawn = TRUE;
    }
  else
    g_print ("progress %3d%% %s\n", (int) (fraction * 100 + 0.5), message);
  fflush (stdout);
}

static void
on_cancel_reply (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  /* A job that finished meanwhile cannot be cancelled; Finished says how
   * it ended either way. */
  if (reply == NULL)
    g_printerr ("peer-client: job: cannot cancel: %s\n", error->message);
}

static void
send_cancel (PeerClient *client,
             JobWaiter  *waiter)
{
  if (waiter->cancel_sent || waiter->path == NULL || waiter->finished)
    return;
  waiter->cancel_sent = TRUE;
  peer_client_call (client, waiter->path, JOB_IFACE, "Cancel", NULL, G_VARIANT_TYPE_UNIT, -1,
                    NULL, NULL, on_cancel_reply, waiter);
}

static void
handle_job_signal (JobWaiter  *waiter,
                   const char *signal_name,
                   GVariant   *parameters)
{
  const char *message;

  if (waiter->finished)
    return;
  if (g_str_equal (signal_name, "Progress") && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(ds)")))
    {
      double fraction;

      g_variant_get (parameters, "(d&s)", &fraction, &message);
      show_progress (waiter, fraction, message);
    }
  else if (g_str_equal (signal_name, "Finished") && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(bs)")))
    {
      gboolean success;

      g_variant_get (parameters, "(b&s)", &success, &message);
      if (waiter->bar_drawn)
        g_print ("\n");
      g_print ("job %s: %s\n", success ? "finished" : "did not finish", message);
      waiter->finished = TRUE;
      waiter->exit_code = success ? EXIT_SUCCESS : EXIT_FAILURE;
      g_main_loop_quit (waiter->loop);
    }
}

static void
on_job_signal (PeerClient *client,
               const char *object_path,
               const char *interface_name,
               const char *signal_name,
               GVariant   *parameters,
               gpointer    user_data)
{
  JobWaiter *waiter = user_data;

  /* Signals can overtake StartJob's reply: keep them until we know which
   * job is ours. */
  if (waiter->path == NULL)
    g_ptr_array_add (waiter->early, g_variant_ref_sink (g_variant_new ("(os@*)", object_path, signal_name,
                                                                       parameters)));
  else if (g_str_equal (object_path, waiter->path))
    handle_job_signal (waiter, signal_name, parameters);
}

static void
on_start_job_reply (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  JobWaiter *waiter = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  if (reply == NULL)
    {
      g_printerr ("peer-client: job: %s\n", error->message);
      waiter->exit_code = EXIT_FAILURE;
      waiter->finished = TRUE;
      g_main_loop_quit (waiter->loop);
      return;
    }
  g_variant_get (reply, "(o)", &waiter->path);
  if (!waiter->tty)
    g_print ("job %s started\n", waiter->path);
  for (guint i = 0; i < waiter->early->len; i++)
    {
      const char *path, *signal_name;
      g_autoptr(GVariant) parameters = NULL;

      g_variant_get (g_ptr_array_index (waiter->early, i), "(&o&s@*)", &path, &signal_name, &parameters);
      if (g_str_equal (path, waiter->path))
        handle_job_signal (waiter, signal_name, parameters);
    }
  g_ptr_array_set_size (waiter->early, 0);
  if (waiter->cancel_wanted)
    send_cancel (PEER_CLIENT (source), waiter);
}

typedef struct {
  PeerClient *client;
  JobWaiter *waiter;
} JobInterrupt;

static gboolean
on_job_interrupt (gpointer user_data)
{
  JobInterrupt *interrupt = user_data;

  /* The job runs on the server: stop it there, and leave once Finished
   * confirms it. */
  if (!interrupt->waiter->cancel_wanted)
    {
      if (interrupt->waiter->bar_drawn)
        g_print ("\n");
      g_printerr ("peer-client: cancelling the job…\n");
    }
  interrupt->waiter->cancel_wanted = TRUE;
  send_cancel (interrupt->client, interrupt->waiter);
  return G_SOURCE_CONTINUE;
}

static void
on_job_closed (PeerClient   *client,
               const GError *reason,
               JobWaiter    *waiter)
{
  g_printerr ("peer-client: job: %s\n", reason->message);
  waiter->exit_code = EXIT_FAILURE;
  waiter->finished = TRUE;
  g_main_loop_quit (waiter->loop);
}

static int
cmd_job (PeerClient *client,
         int         argc,
         char      **argv)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GPtrArray) early = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  JobWaiter waiter = { loop, EXIT_FAILURE, NULL, early };
  JobInterrupt interrupt = { client, &waiter };
  gint64 steps, step_ms = 100;
  guint sub, sigint, sigterm;
  gulong closed;

  if (argc < 2 || argc > 3)
    return usage_error ("job needs STEPS [STEP_MS]");
  if (!parse_int (argv[1], 1, 10000, &steps))
    return usage_error ("job: STEPS must be an integer from 1 to 10000, not '%s'", argv[1]);
  if (argc > 2 && !parse_int (argv[2], 0, 60000, &step_ms))
    return usage_error ("job: STEP_MS must be an integer from 0 to 60000, not '%s'", argv[2]);
  waiter.tty = isatty (STDOUT_FILENO);

  sub = peer_client_subscribe_signal (client, NULL, JOB_IFACE, NULL, on_job_signal, &waiter, NULL);
  closed = g_signal_connect (client, "closed", G_CALLBACK (on_job_closed), &waiter);
  sigint = g_unix_signal_add (SIGINT, on_job_interrupt, &interrupt);
  sigterm = g_unix_signal_add (SIGTERM, on_job_interrupt, &interrupt);
  peer_client_call (client, HELPER_PATH, HELPER_IFACE, "StartJob",
                    g_variant_new ("(suu)", "count", (guint32) steps, (guint32) step_ms),
                    G_VARIANT_TYPE ("(o)"), -1, NULL, NULL, on_start_job_reply, &waiter);
  while (!waiter.finished)
    g_main_loop_run (loop);

  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_signal_handler_disconnect (client, closed);
  peer_client_unsubscribe_signal (client, sub);
  g_free (waiter.path);
  return waiter.exit_code;
}

/* --- fds and blobs ------------------------------------------------------------ */

/* "4096", "64K", "1M", "2G" (binary multiples) to a byte count. */
static gboolean
parse_size (const char *text,
            gsize      *out)
{
  guint64 value, multiplier = 1;
  g_autofree char *digits = g_strdup (text);
  gsize len = strlen (digits);

  if (len > 0)
    switch (g_ascii_toupper (digits[len - 1]))
      {
      case 'K': multiplier = G_GUINT64_CONSTANT (1) << 10; digits[--len] = '\0'; break;
      case 'M': multiplier = G_GUINT64_CONSTANT (1) << 20; digits[--len] = '\0'; break;
      case 'G': multiplier = G_GUINT64_CONSTANT (1) << 30; digits[--len] = '\0'; break;
      default: break;
      }
  if (!g_ascii_string_to_unsigned (digits, 10, 0, G_MAXSSIZE / multiplier, &value, NULL))
    return FALSE;
  *out = (gsize) (value * multiplier);
  return TRUE;
}

/* How much memory this machine can give us now without swapping or
 * pushing others out: the kernel's MemAvailable estimate, or the physical
 * memory where there is none. A size past this cannot be held, and trying
 * would run the machine out of memory before failing. */
static guint64
available_memory (void)
{
  g_autofree char *meminfo = NULL;
  long pages = sysconf (_SC_PHYS_PAGES);
  long page_size = sysconf (_SC_PAGESIZE);

  if (g_file_get_contents ("/proc/meminfo", &meminfo, NULL, NULL))
    {
      const char *line = strstr (meminfo, "\nMemAvailable:");
      guint64 kib;

      if (line != NULL && sscanf (line, "\nMemAvailable: %" G_GUINT64_FORMAT " kB", &kib) == 1 &&
          kib <= G_MAXUINT64 / 1024)
        return kib * 1024;
    }
  if (pages <= 0 || page_size <= 0)
    return G_MAXUINT64;
  return (guint64) pages * (guint64) page_size;
}

/* A SIZE of @command that @copies of must fit in memory at once, checked
 * before anything is allocated: FALSE after a one-line error, with
 * @exit_code set for bad input. */
static gboolean
check_size_fits (const char *command,
                 const char *text,
                 gsize       size,
                 guint       copies,
                 int        *exit_code)
{
  guint64 memory = available_memory ();
  g_autofree char *memory_text = NULL;

  if (size <= memory / copies)
    return TRUE;
  memory_text = g_format_size_full (memory, G_FORMAT_SIZE_IEC_UNITS);
  /* No "see --help": the size is well formed, only too large. */
  if (copies == 1)
    g_printerr ("peer-client: %s: %s is more than the %s of memory this machine has available\n",
                command, text, memory_text);
  else
    g_printerr ("peer-client: %s: %s, held %u times over, is more than the %s of memory "
                "this machine has available\n", command, text, copies, memory_text);
  *exit_code = EXIT_USAGE;
  return FALSE;
}

/* The bytes blob-echo and payload-bench send: cheap to make and to check,
 * and different at every offset. */
static guint8
pattern_byte (gsize offset)
{
  guint64 word = (offset / 8 + 1) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15);

  return (guint8) (word >> (8 * (offset % 8)));
}

static gboolean
fill_pattern (guint8  *data,
              gsize    size,
              gpointer user_data,
              GError **error)
{
  gsize i = 0;

  for (; i + 8 <= size; i += 8)
    {
      guint64 word = GUINT64_TO_LE ((i / 8 + 1) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));
      memcpy (data + i, &word, 8);
    }
  for (; i < size; i++)
    data[i] = pattern_byte (i);
  return TRUE;
}

/* The offset of the first byte that is not the pattern, or @size. */
static gsize
check_pattern (const guint8 *data,
               gsize         size)
{
  gsize i = 0;

  for (; i + 8 <= size; i += 8)
    {
      guint64 word = GUINT64_TO_LE ((i / 8 + 1) * G_GUINT64_CONSTANT (0x9E3779B97F4A7C15));
      if (memcmp (data + i, &word, 8) != 0)
        break;
    }
  for (; i < size; i++)
    if (data[i] != pattern_byte (i))
      return i;
  return size;
}

static gboolean
write_all (int           fd,
           const guint8 *data,
           gsize         size)
{
  while (size > 0)
    {
      ssize_t n = write (fd, data, size);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
      data += n;
      size -= n;
    }
  return TRUE;
}

/* The fd at @handle of a reply, checked: the index came off the wire. */
static int
dup_reply_fd (GUnixFDList *fds,
              gint32       handle,
              GError     **error)
{
  if (fds == NULL || handle < 0 || handle >= g_unix_fd_list_get_length (fds))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the reply names fd %d but carries %d", handle,
                   fds != NULL ? g_unix_fd_list_get_length (fds) : 0);
      return -1;
    }
  return g_unix_fd_list_get (fds, handle, error);
}

static int
cmd_open (PeerClient *client,
          int         argc,
          char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  g_autofree guint8 *buf = NULL;
  gint32 handle;
  int fd;

  if (argc != 2)
    return usage_error ("open needs PATH");
  reply = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "OpenFile",
                                 g_variant_new ("(s)", argv[1]), G_VARIANT_TYPE ("(h)"),
                                 -1, NULL, &fds, NULL, &error);
  if (reply == NULL)
    return fail ("open %s: %s", argv[1], error->message);
  g_variant_get (reply, "(h)", &handle);
  fd = dup_reply_fd (fds, handle, &error);
  if (fd < 0)
    return fail ("open %s: %s", argv[1], error->message);

  buf = g_malloc (64 * 1024);
  for (;;)
    {
      ssize_t n = read (fd, buf, 64 * 1024);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int saved_errno = errno;
          close (fd);
          return fail ("open %s: cannot read: %s", argv[1], g_strerror (saved_errno));
        }
      if (n == 0)
        break;
      if (!write_all (STDOUT_FILENO, buf, n))
        {
          int saved_errno = errno;
          close (fd);
          return fail ("open %s: cannot write to standard output: %s", argv[1], g_strerror (saved_errno));
        }
    }
  close (fd);
  return EXIT_SUCCESS;
}

/* Prints "HEX  NAME" like sha256sum, so the two can be compared directly. */
static int
cmd_digest (PeerClient *client,
            int         argc,
            char      **argv)
{
  g_autofree char *algorithm = NULL;
  const GOptionEntry entries[] = {
    { "algorithm", 'A', 0, G_OPTION_ARG_STRING, &algorithm,
      "md5, sha1, sha256 (default), sha384 or sha512", "ALG" },
    { NULL }
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  const char *name, *hex;
  int fd, code;

  if (!parse_command_options ("digest", entries, &argc, &argv, &code))
    return code;
  if (argc != 2)
    return usage_error ("digest needs FILE, or - for standard input");
  name = argv[1];
  if (g_str_equal (name, "-"))
    fd = dup (STDIN_FILENO);
  else
    fd = open (name, O_RDONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return fail ("digest: cannot open %s: %s", name, g_strerror (errno));
  if (g_unix_fd_list_append (fds, fd, &error) < 0)
    {
      close (fd);
      return fail ("digest: %s", error->message);
    }
  close (fd);

  /* No timeout: the server reads until the end, however long the writer
   * of a pipe takes. */
  reply = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "Digest",
                                 g_variant_new ("(hs)", 0, algorithm ? algorithm : "sha256"),
                                 G_VARIANT_TYPE ("(s)"), G_MAXINT, fds, NULL, NULL, &error);
  if (reply == NULL)
    return fail ("digest %s: %s", name, error->message);
  g_variant_get (reply, "(&s)", &hex);
  g_print ("%s  %s\n", hex, name);
  return EXIT_SUCCESS;
}

static double
elapsed_ms (gint64 start_us)
{
  return (g_get_monotonic_time () - start_us) / 1000.0;
}

static int
cmd_blob_echo (PeerClient *client,
               int         argc,
               char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(PeerBlob) echoed = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out_fds = NULL;
  gconstpointer data;
  gint64 start;
  gsize size, bad;
  gint32 handle;
  int code;

  if (argc != 2)
    return usage_error ("blob-echo needs SIZE");
  if (!parse_size (argv[1], &size))
    return usage_error ("blob-echo: SIZE must be a byte count with an optional K, M or G suffix, not '%s'",
                        argv[1]);
  /* One copy: the blob that comes back maps the same pages. */
  if (!check_size_fits ("blob-echo", argv[1], size, 1, &code))
    return code;

  start = g_get_monotonic_time ();
  blob = peer_blob_new_with_writer (size, fill_pattern, NULL, &error);
  if (blob == NULL || peer_blob_append_to_fd_list (blob, fds, &error) < 0)
    return fail ("blob-echo: %s", error->message);
  reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "EchoBlob",
                                 g_variant_new ("(h)", 0), G_VARIANT_TYPE ("(h)"), -1,
                                 fds, &out_fds, NULL, &error);
  if (reply == NULL)
    return fail ("blob-echo: %s", error->message);
  g_variant_get (reply, "(h)", &handle);
  echoed = peer_blob_new_from_fd_list (out_fds, handle, (gssize) size, &error);
  if (echoed == NULL)
    return fail ("blob-echo: the blob that came back: %s", error->message);
  data = peer_blob_get_data (echoed, NULL);
  bad = check_pattern (data, size);
  if (bad != size)
    return fail ("blob-echo: byte %" G_GSIZE_FORMAT " came back changed", bad);
  g_print ("%" G_GSIZE_FORMAT " bytes round-tripped as a sealed memfd and verified in %.1f ms\n",
           size, elapsed_ms (start));
  return EXIT_SUCCESS;
}

/* The D-Bus specification's largest message, header included, and room
 * enough for an Echo's header and the array's length. */
#define DBUS_MAX_MESSAGE_BYTES (128 * 1024 * 1024)
#define DBUS_MESSAGE_OVERHEAD_BYTES 4096

/* payload-bench: one round trip of the same bytes four ways, each timed from
 * "the bytes are in our buffer" to "the echoed bytes were all read back". */

typedef struct {
  const char *name;
  double *ms;
} Series;

static int
compare_double (gconstpointer a,
                gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* A child that sends back whatever it reads, until end of file; only
 * read(), write() and _exit() after fork(). */
static pid_t
spawn_echo_child (int sock,
                  int other,
                  int cpu)
{
  pid_t pid = fork ();

  if (pid != 0)
    return pid;
  close (other);
  if (cpu >= 0)
    {
      cpu_set_t set;
      CPU_ZERO (&set);
      CPU_SET (cpu, &set);
      sched_setaffinity (0, sizeof set, &set);
    }
  {
    static guint8 buf[256 * 1024];
    for (;;)
      {
        ssize_t n = read (sock, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
          continue;
        if (n <= 0 || !write_all (sock, buf, n))
          _exit (0);
      }
  }
}

/* Writes @size bytes and reads them back at the same time (the socket
 * buffers are far smaller than the payload). */
static gboolean
raw_round_trip (int           sock,
                const guint8 *data,
                guint8       *back,
                gsize         size)
{
  gsize sent = 0, received = 0;

  while (received < size)
    {
      struct pollfd pfd = { sock, POLLIN | (sent < size ? POLLOUT : 0), 0 };

      if (poll (&pfd, 1, 10000) <= 0)
        return FALSE;
      if ((pfd.revents & POLLOUT) && sent < size)
        {
          ssize_t n = send (sock, data + sent, MIN (size - sent, 1 << 20), MSG_DONTWAIT);
          if (n > 0)
            sent += n;
          else if (n < 0 && errno != EAGAIN && errno != EINTR)
            return FALSE;
        }
      if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
        {
          ssize_t n = recv (sock, back + received, size - received, MSG_DONTWAIT);
          if (n > 0)
            received += n;
          else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            return FALSE;
        }
    }
  return TRUE;
}

static int
cmd_payload_bench (PeerClient *client,
                   int         argc,
                   char      **argv)
{
  g_autofree char *runs_text = NULL;
  gint echo_cpu = -1;
  const GOptionEntry entries[] = {
    { "runs", 'n', 0, G_OPTION_ARG_STRING, &runs_text, "Round trips per method and size (default 7)", "N" },
    { "echo-cpu", 0, 0, G_OPTION_ARG_INT, &echo_cpu, "Pin the raw-socket echo process to CPU", "CPU" },
    { NULL }
  };
  gint64 runs = 7;
  g_autofree gsize *sizes = NULL;
  int code;

  if (!parse_command_options ("payload-bench", entries, &argc, &argv, &code))
    return code;
  if (argc < 2)
    return usage_error ("payload-bench needs SIZE...");
  if (runs_text != NULL && !parse_int (runs_text, 1, 10000, &runs))
    return usage_error ("payload-bench: --runs must be an integer from 1 to 10000, not '%s'", runs_text);
  /* Every size before the first run: a bad one at the end of the line
   * must not come after minutes of measuring. Four copies are held at
   * once: the bytes, the buffer they come back into, the message out and
   * its reply. */
  sizes = g_new0 (gsize, argc);
  for (int a = 1; a < argc; a++)
    {
      if (!parse_size (argv[a], &sizes[a]) || sizes[a] == 0)
        return usage_error ("payload-bench: SIZE must be a positive byte count with an optional "
                            "K, M or G suffix, not '%s'", argv[a]);
      if (!check_size_fits ("payload-bench", argv[a], sizes[a], 4, &code))
        return code;
      /* Every D-Bus peer refuses a larger message; GDBus warns and drops
       * the connection. */
      if (sizes[a] > DBUS_MAX_MESSAGE_BYTES - DBUS_MESSAGE_OVERHEAD_BYTES)
        {
          g_printerr ("peer-client: payload-bench: %s is more than one D-Bus message can carry "
                      "(128 MiB), which Echo, plain ay needs\n", argv[a]);
          return EXIT_USAGE;
        }
    }

  g_print ("%-10s %-28s %10s %10s %10s %9s\n", "size", "method", "min ms", "median ms", "max ms", "GB/s");
  for (int a = 1; a < argc; a++)
    {
      g_autofree guint8 *data = NULL;
      g_autofree guint8 *back = NULL;
      double samples[4][10000];
      static const char *names[4] = {
        "raw unix socket (floor)", "Echo, plain ay", "Echo, ay as blob (auto)", "EchoBlob (explicit memfd)",
      };
      int sv[2];
      pid_t child;
      gsize size = sizes[a];

      data = g_malloc (size);
      back = g_malloc (size);
      fill_pattern (data, size, NULL, NULL);
      memset (back, 0, size);           /* no page faults inside the timed region */

      if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return fail ("payload-bench: socketpair: %s", g_strerror (errno));
      child = spawn_echo_child (sv[1], sv[0], echo_cpu);
      close (sv[1]);
      if (child < 0)
        return fail ("payload-bench: fork: %s", g_strerror (errno));

      for (gint64 r = 0; r < runs; r++)
        for (int m = 0; m < 4; m++)
          {
            g_autoptr(GError) error = NULL;
            g_autoptr(GVariant) reply = NULL;
            g_autoptr(GVariant) bytes = NULL;
            g_autoptr(GUnixFDList) fds = NULL;
            g_autoptr(GUnixFDList) out_fds = NULL;
            g_autoptr(PeerBlob) blob = NULL;
            g_autoptr(PeerBlob) echoed = NULL;
            const guint8 *result = NULL;
            gsize result_size = 0;
            gint64 start = g_get_monotonic_time ();
            gint32 handle;

            switch (m)
              {
              case 0:
                if (!raw_round_trip (sv[0], data, back, size))
                  return fail ("payload-bench: raw socket round trip failed");
                result = back;
                result_size = size;
                break;
              case 1:
              case 2:
                peer_client_set_blob_threshold (client, m == 1 ? 0 : PEER_BLOB_DEFAULT_THRESHOLD);
                reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "Echo",
                                               g_variant_new ("(@ay)",
                                                              g_variant_new_from_data (G_VARIANT_TYPE_BYTESTRING,
                                                                                       data, size, TRUE, NULL, NULL)),
                                               G_VARIANT_TYPE ("(ay)"), G_MAXINT, NULL, NULL, NULL, &error);
                if (reply == NULL)
                  return fail ("payload-bench: Echo of %s: %s", argv[a], error->message);
                bytes = g_variant_get_child_value (reply, 0);
                result = g_variant_get_fixed_array (bytes, &result_size, 1);
                break;
              default:
                fds = g_unix_fd_list_new ();
                blob = peer_blob_new_from_data (data, size, &error);
                if (blob == NULL || peer_blob_append_to_fd_list (blob, fds, &error) < 0)
                  return fail ("payload-bench: %s", error->message);
                reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "EchoBlob",
                                               g_variant_new ("(h)", 0), G_VARIANT_TYPE ("(h)"), G_MAXINT,
                                               fds, &out_fds, NULL, &error);
                if (reply == NULL)
                  return fail ("payload-bench: EchoBlob of %s: %s", argv[a], error->message);
                g_variant_get (reply, "(h)", &handle);
                echoed = peer_blob_new_from_fd_list (out_fds, handle, (gssize) size, &error);
                if (echoed == NULL)
                  return fail ("payload-bench: %s", error->message);
                result = peer_blob_get_data (echoed, &result_size);
                break;
              }
            if (result_size != size || memcmp (result, data, size) != 0)
              return fail ("payload-bench: %s of %s came back changed", names[m], argv[a]);
            samples[m][r] = elapsed_ms (start);
          }

      close (sv[0]);
      waitpid (child, NULL, 0);
      peer_client_set_blob_threshold (client, PEER_BLOB_DEFAULT_THRESHOLD);

      for (int m = 0; m < 4; m++)
        {
          double median;

          qsort (samples[m], runs, sizeof (double), compare_double);
          median = runs % 2 ? samples[m][runs / 2] : (samples[m][runs / 2 - 1] + samples[m][runs / 2]) / 2;
          g_print ("%-10s %-28s %10.2f %10.2f %10.2f %9.2f\n", argv[a], names[m], samples[m][0], median,
                   samples[m][runs - 1], size / (median / 1000.0) / 1e9);
        }
    }
  g_print ("Each round trip: from the bytes in our buffer to the echoed bytes all compared\n"
           "with memcmp. GB/s: one-way payload size over the median round trip.\n");
  return EXIT_SUCCESS;
}

static const Command commands[] = {
  { "ping", "[--count N]", "round-trip statistics of org.libpeer.Bench1.Ping", cmd_ping },
  { "call", "OBJECT_PATH INTERFACE.METHOD [ARG...]", "call a method (arguments in GVariant text)", cmd_call,
    2, "OBJECT_PATH INTERFACE.METHOD [ARG...]" },
  { "introspect", "[OBJECT_PATH]", "print an object's introspection XML", cmd_introspect },
  { "get", "OBJECT_PATH INTERFACE.PROPERTY", "print a property", cmd_get, 2, "OBJECT_PATH INTERFACE.PROPERTY" },
  { "set", "OBJECT_PATH INTERFACE.PROPERTY VALUE", "set a property", cmd_set,
    3, "OBJECT_PATH INTERFACE.PROPERTY VALUE" },
  { "monitor", "[OBJECT_PATH]", "print signals as they come, until Ctrl-C", cmd_monitor },
  { "quick", "BITS", "a random number of BITS bits from the helper", cmd_quick, 1, "BITS" },
  { "notify", "SUMMARY [BODY]", "send a notification and wait for its Notified signal", cmd_notify,
    1, "SUMMARY [BODY]" },
  { "job", "STEPS [STEP_MS]", "run a job on the helper and show its progress; Ctrl-C cancels it", cmd_job,
    1, "STEPS [STEP_MS]" },
  { "open", "PATH", "print a file the helper opens under its files root", cmd_open, 1, "PATH" },
  { "digest", "[--algorithm ALG] FILE|-", "hash a file or standard input, passed as an fd", cmd_digest,
    1, "FILE, or - for standard input" },
  { "blob-echo", "SIZE", "round-trip SIZE bytes (K/M/G) as a sealed memfd and check them", cmd_blob_echo,
    1, "SIZE" },
  { "payload-bench", "[--runs N] SIZE...", "time Echo, EchoBlob and a raw socket", cmd_payload_bench,
    1, "SIZE..." },
};

static char *
describe_commands (void)
{
  GString *s = g_string_new ("Commands:\n");

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    g_string_append_printf (s, "  %-10s %-40s %s\n", commands[i].name, commands[i].args,
                            commands[i].summary);
  g_string_append (s, "\nThe address comes from --address or $PEER_ADDRESS. With --spawn, the\n"
                     "words after -- up to the next -- (or up to the first command name) are the\n"
                     "helper's command line: peer-client --spawn -- peer-server quick 8");
  return g_string_free (s, FALSE);
}

static const Command *
find_command (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (name, commands[i].name))
      return &commands[i];
  return NULL;
}

/* --spawn's arguments: HELPER [ARGS...], then an optional "--", then the
 * command. Returns the index of the command in @argv, or -1. */
static int
split_spawn_args (int         argc,
                  char      **argv,
                  GPtrArray  *helper_argv)
{
  int i = 1, first = -1;

  if (i < argc && g_str_equal (argv[i], "--"))
    i++;
  for (; i < argc && first < 0; i++)
    {
      if (g_str_equal (argv[i], "--"))
        first = i + 1;
      else if (helper_argv->len > 0 && find_command (argv[i]) != NULL)
        first = i;
      else
        g_ptr_array_add (helper_argv, argv[i]);
    }
  if (first < 0)
    first = argc;
  g_ptr_array_add (helper_argv, NULL);
  return helper_argv->len > 1 ? first : -1;
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *address = NULL;
  int timeout_ms = 10000;
  gboolean use_lane = FALSE;
  gboolean spawn = FALSE;
  g_autofree char *capture = NULL;
  const GOptionEntry options[] = {
    { "spawn", 's', 0, G_OPTION_ARG_NONE, &spawn,
      "Start a helper (the words after --) over a socketpair and talk to it", NULL },
    { "capture", 0, 0, G_OPTION_ARG_FILENAME, &capture,
      "Write every message to FILE in pcap format, as PEER_CAPTURE=FILE does", "FILE" },
    { "address", 'a', 0, G_OPTION_ARG_STRING, &address, "The server's D-Bus address", "ADDR" },
    { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout_ms, "Connect timeout in ms (default 10000)", "MS" },
    { "lane", 'l', 0, G_OPTION_ARG_NONE, &use_lane,
      "Open a lane: synchronous calls to the server's methods take libpeer's fast path", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GPtrArray) helper_argv = g_ptr_array_new ();
  g_autofree char *description = NULL;
  const Command *command = NULL;

  setlocale (LC_ALL, "");
  context = g_option_context_new ("COMMAND [ARGS...]");
  g_option_context_add_main_entries (context, options, NULL);
  description = describe_commands ();
  g_option_context_set_description (context, description);
  /* Options after the command belong to the command. */
  g_option_context_set_strict_posix (context, TRUE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error ("%s", error->message);
  if (spawn)
    {
      int first = split_spawn_args (argc, argv, helper_argv);

      if (first < 0)
        return usage_error ("--spawn needs -- HELPER [ARGS...] [--] COMMAND [ARGS...]");
      if (address != NULL)
        return usage_error ("--spawn and --address exclude each other");
      /* The command's words, as if they came first. */
      argv[first - 1] = argv[0];
      argv += first - 1;
      argc -= first - 1;
    }
  if (argc < 2)
    return usage_error ("no command given");
  command = find_command (argv[1]);
  if (command == NULL)
    return usage_error ("unknown command '%s'", argv[1]);
  if (argc - 2 < command->min_args)
    return usage_error ("%s needs %s", command->name, command->needs);
  if (timeout_ms <= 0)
    return usage_error ("--timeout must be positive");
  /* Read by libpeer when the first connection is made. */
  if (capture != NULL)
    g_setenv ("PEER_CAPTURE", capture, TRUE);

  if (spawn)
    {
      helper = peer_helper_new ((const char * const *) helper_argv->pdata, NULL, &error);
      if (helper != NULL)
        client = peer_helper_dup_client (helper, timeout_ms, NULL, &error);
      if (client == NULL)
        return fail ("%s", error->message);
    }
  else
    {
      if (address == NULL)
        address = g_strdup (g_getenv ("PEER_ADDRESS"));
      if (address == NULL || address[0] == '\0')
        return usage_error ("no address: pass --address ADDR or set PEER_ADDRESS");
      client = peer_client_new_sync (address, timeout_ms, NULL, &error);
    }
  if (client == NULL && g_error_matches (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS))
    return usage_error ("%s", error->message);
  if (client == NULL)
    return fail ("%s", error->message);
  if (use_lane && !peer_client_open_lane_sync (client, NULL, &error))
    return fail ("%s", error->message);

  return command->run (client, argc - 1, argv + 1);
}
