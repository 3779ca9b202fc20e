/* cmd-dbus.c: peer-client's commands for any D-Bus peer server: ping,
 * call, introspect, get, set and monitor. Arguments to call and set are
 * GVariant text, typed from the server's introspection data. */
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

#include "peer-client.h"
#include "peer-protocol-stubs.h"

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

/* A type in words, for errors: the noun with no article ("32-bit
 * integer", "array of strings", "dictionary from strings to values of
 * any type"), and for basic types the range or form a value has. */
static char *
type_noun (const GVariantType *type)
{
  static const struct { char code; const char *noun; } basic[] = {
    { 'b', "boolean" }, { 'y', "byte" }, { 'n', "16-bit integer" }, { 'q', "unsigned 16-bit integer" },
    { 'i', "32-bit integer" }, { 'u', "unsigned 32-bit integer" }, { 'x', "64-bit integer" },
    { 't', "unsigned 64-bit integer" }, { 'h', "fd index" }, { 'd', "number" }, { 's', "string" },
    { 'o', "object path" }, { 'g', "type signature" }, { 'v', "value of any type" },
  };
  const char *code = g_variant_type_peek_string (type);

  for (guint i = 0; i < G_N_ELEMENTS (basic); i++)
    if (code[0] == basic[i].code)
      return g_strdup (basic[i].noun);
  if (g_variant_type_equal (type, G_VARIANT_TYPE_BYTESTRING))
    return g_strdup ("byte array");
  if (g_variant_type_is_dict_entry (type) || (g_variant_type_is_array (type) &&
                                               g_variant_type_is_dict_entry (g_variant_type_element (type))))
    {
      const GVariantType *entry = g_variant_type_is_array (type) ? g_variant_type_element (type) : type;
      g_autofree char *key = type_noun (g_variant_type_key (entry));
      g_autofree char *value = type_noun (g_variant_type_value (entry));
      char *plural_key = g_str_has_suffix (key, "y") && !g_str_has_suffix (key, "ey")
                         ? g_strdup_printf ("%.*sies", (int) strlen (key) - 1, key) : g_strdup_printf ("%ss", key);
      char *result = g_strdup_printf ("dictionary from %s to %s", plural_key,
                                      g_str_has_prefix (value, "value of") ? "values of any type" : value);
      g_free (plural_key);
      return result;
    }
  if (g_variant_type_is_array (type))
    {
      g_autofree char *element = type_noun (g_variant_type_element (type));
      const char *space = strchr (element, ' ');
      g_autofree char *head = space != NULL ? g_strndup (element, space - element) : g_strdup (element);
      const char *rest = space != NULL ? space : "";

      /* The plural is the head word's: "arrays of", "dictionaries from". */
      if (g_str_has_suffix (head, "y") && !g_str_has_suffix (head, "ey"))
        return g_strdup_printf ("array of %.*sies%s", (int) strlen (head) - 1, head, rest);
      if (g_str_equal (head, "value"))
        return g_strdup ("array of values of any type");
      return g_strdup_printf ("array of %ss%s", head, rest);
    }
  if (g_variant_type_is_tuple (type))
    {
      g_autoptr(GString) s = g_string_new ("tuple of (");

      for (const GVariantType *item = g_variant_type_first (type); item != NULL; item = g_variant_type_next (item))
        {
          g_autofree char *noun = type_noun (item);
          g_string_append_printf (s, "%s%s", item == g_variant_type_first (type) ? "" : ", ", noun);
        }
      g_string_append_c (s, ')');
      return g_string_free (g_steal_pointer (&s), FALSE);
    }
  if (g_variant_type_is_maybe (type))
    {
      g_autofree char *element = type_noun (g_variant_type_element (type));
      return g_strdup_printf ("optional %s", element);
    }
  return g_strdup_printf ("value of type %s", code);
}

/* "a 32-bit integer (from -2147483648 to 2147483647)", "an array of
 * strings (like ['a', 'b'])". */
static char *
describe_type (const GVariantType *type)
{
  static const struct { char code; const char *hint; } hints[] = {
    { 'b', "true or false" }, { 'y', "0 to 255" }, { 'n', "from -32768 to 32767" }, { 'q', "0 to 65535" },
    { 'i', "from -2147483648 to 2147483647" }, { 'u', "0 to 4294967295" },
    { 'x', "from -9223372036854775808 to 9223372036854775807" }, { 't', "0 to 18446744073709551615" },
    { 'h', "0 and up" }, { 'd', "like 1.5" }, { 'o', "like /org/example/Thing" }, { 'g', "like a{sv}" },
    { 'v', "in GVariant text, like <42> or <'text'>" },
  };
  const char *code = g_variant_type_peek_string (type);
  g_autofree char *noun = type_noun (type);
  const char *article = strchr ("aeiou", noun[0]) != NULL ? "an" : "a";
  const char *hint = NULL;

  if (g_variant_type_is_basic (type) || g_variant_type_is_variant (type))
    for (guint i = 0; i < G_N_ELEMENTS (hints); i++)
      if (code[0] == hints[i].code)
        hint = hints[i].hint;
  if (hint == NULL && g_variant_type_equal (type, G_VARIANT_TYPE_BYTESTRING))
    hint = "like b'text' or [1, 2]";
  else if (hint == NULL && g_variant_type_is_array (type) && g_variant_type_is_dict_entry (g_variant_type_element (type)))
    hint = "in GVariant text, like {'key': <1>}";
  else if (hint == NULL && g_variant_type_is_array (type))
    hint = strchr ("sog", g_variant_type_peek_string (g_variant_type_element (type))[0]) != NULL
           ? "in GVariant text, like ['a', 'b']" : "in GVariant text, like [1, 2]";
  else if (hint == NULL && g_variant_type_is_tuple (type))
    hint = "in GVariant text, like (1, 'a')";
  return hint != NULL ? g_strdup_printf ("%s %s (%s)", article, noun, hint) : g_strdup_printf ("%s %s", article, noun);
}

/* Text to a value of @type: GVariant text first; for string-like types a
 * bare word is taken literally, so `notify hello` works without quotes.
 * Returns a full (non-floating) reference; the error names the type in
 * words, not in GVariant's parser's. */
static GVariant *
parse_value (const char         *text,
             const GVariantType *type,
             GError            **error)
{
  g_autofree char *expected = NULL;
  GVariant *value;

  value = g_variant_parse (type, text, NULL, NULL, NULL);
  if (value != NULL)
    return value;
  if (g_variant_type_equal (type, G_VARIANT_TYPE_STRING))
    return g_variant_ref_sink (g_variant_new_string (text));
  if (g_variant_type_equal (type, G_VARIANT_TYPE_OBJECT_PATH) && g_variant_is_object_path (text))
    return g_variant_ref_sink (g_variant_new_object_path (text));
  if (g_variant_type_equal (type, G_VARIANT_TYPE_SIGNATURE) && g_variant_is_signature (text))
    return g_variant_ref_sink (g_variant_new_signature (text));
  expected = describe_type (type);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "'%s' is not %s", text, expected);
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

int
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
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */

  samples = g_new (gint64, count);
  for (gint64 i = 0; i < count; i++)
    {
      g_autoptr(GError) error = NULL;
      gboolean ok;
      gint64 start = g_get_monotonic_time ();
      struct timespec t0, t1;

      clock_gettime (CLOCK_MONOTONIC, &t0);
      ok = peer_bench1_call_ping_sync (client, BENCH_PATH, NULL, &error);
      clock_gettime (CLOCK_MONOTONIC, &t1);
      if (!ok)
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

int
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
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */

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
        {
          const char *name = method->in_args[i]->name;
          return bad_input ("argument %u of %s%s%s%s: %s", i + 1, method_name, name != NULL ? " (" : "",
                            name != NULL ? name : "", name != NULL ? ")" : "", error->message);
        }
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

int
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
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */
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

int
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
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */
  value = peer_client_get_property_sync (client, argv[1], interface_name, property_name, NULL, &error);
  if (value == NULL)
    return fail ("cannot get %s: %s", argv[2], error->message);
  printed = g_variant_print (value, TRUE);
  g_print ("%s\n", printed);
  return EXIT_SUCCESS;
}

int
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
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */
  node = introspect (client, argv[1], &error);
  if (node == NULL)
    return fail ("cannot introspect %s: %s", argv[1], error->message);
  iface = g_dbus_node_info_lookup_interface (node, interface_name);
  prop = iface ? g_dbus_interface_info_lookup_property (iface, property_name) : NULL;
  if (prop == NULL)
    return fail ("%s has no property %s", argv[1], argv[2]);
  value = parse_value (argv[3], G_VARIANT_TYPE (prop->signature), &error);
  if (value == NULL)
    return bad_input ("%s: %s", argv[2], error->message);
  if (!peer_client_set_property_sync (client, argv[1], interface_name, property_name, value, NULL, &error))
    return fail ("cannot set %s: %s", argv[2], error->message);
  return EXIT_SUCCESS;
}

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

int
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
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */

  peer_client_subscribe_signal (client, path, NULL, NULL, print_signal, NULL, NULL);
  g_signal_connect (client, "closed", G_CALLBACK (on_closed_quit), &waiter);
  g_unix_signal_add (SIGINT, on_interrupt, &waiter);
  g_unix_signal_add (SIGTERM, on_interrupt, &waiter);
  g_main_loop_run (loop);
  return waiter.exit_code;
}

