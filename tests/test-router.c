/* test-router.c: the path every message takes through the server, as
 * bus-style and plain peers see it: senders stamped on what the server
 * sends, the bus driver at any path with honest names, match rules,
 * monitors, validation that closes only the offender, and thread-safe
 * handlers answered in GDBus's worker thread. */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "peer-test-raw.h"
#include "peer-test-util.h"

#define BENCH_PATH  "/org/libpeer/Bench"
#define BENCH_IFACE "org.libpeer.Bench1"
#define BUS_NAME    "org.freedesktop.DBus"
#define BUS_PATH    "/org/freedesktop/DBus"

typedef struct {
  PeerTestServer *server;
  PeerPolicy *policy;
} Fixture;

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->server = peer_test_server_new (f->policy, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_no_error (error);
}

static void
fixture_set_up_no_monitors (Fixture      *f,
                            gconstpointer data)
{
  f->policy = peer_policy_new ();
  peer_policy_set_allow_same_uid_monitor (f->policy, FALSE);
  fixture_set_up (f, data);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  peer_test_server_free (f->server);
  g_clear_object (&f->policy);
}

/* --- connections that record what they receive ---------------------------- */

typedef struct {
  GDBusConnection *connection;
  GAsyncQueue *received;                /* GDBusMessage*, incoming */
  guint filter;
  gint monitoring;                      /* atomic: eat what comes in */
} Recorder;

static GDBusMessage *
record_message (GDBusConnection *connection,
                GDBusMessage    *message,
                gboolean         incoming,
                gpointer         user_data)
{
  Recorder *r = user_data;

  if (!incoming)
    return message;
  g_async_queue_push (r->received, g_object_ref (message));
  /* A monitor only listens: GDBus would answer the calls it is shown
   * (UnknownMethod), and a monitor that sends is disconnected. */
  if (g_atomic_int_get (&r->monitoring) &&
      g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL)
    {
      g_object_unref (message);
      return NULL;
    }
  return message;
}

static Recorder *
recorder_new (Fixture  *f,
              gboolean  bus_style)
{
  g_autoptr(GError) error = NULL;
  Recorder *r = g_new0 (Recorder, 1);
  GDBusConnectionFlags flags = G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT;

  /* GDBus says Hello itself for a bus connection, and then cannot delay
   * processing: the recorder misses only the Hello reply's aftermath. */
  if (bus_style)
    flags |= G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION;
  else
    flags |= G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING;
  r->received = g_async_queue_new_full (g_object_unref);
  r->connection = g_dbus_connection_new_for_address_sync (f->server->address,
                                                          flags,
                                                          NULL, NULL, &error);
  g_assert_no_error (error);
  r->filter = g_dbus_connection_add_filter (r->connection, record_message, r, NULL);
  if (!bus_style)
    g_dbus_connection_start_message_processing (r->connection);
  return r;
}

static void
recorder_free (Recorder *r)
{
  /* Closed first: then the worker runs the filter no more. */
  g_dbus_connection_close_sync (r->connection, NULL, NULL);
  g_dbus_connection_remove_filter (r->connection, r->filter);
  g_object_unref (r->connection);
  g_async_queue_unref (r->received);
  g_free (r);
}

/* The next message received that is a signal named @member (others are
 * skipped, and returned in order through @skipped when not NULL). */
static GDBusMessage *
recorder_wait_signal (Recorder   *r,
                      const char *member,
                      GPtrArray  *skipped)
{
  for (;;)
    {
      GDBusMessage *message = g_async_queue_timeout_pop (r->received, 10 * G_USEC_PER_SEC);

      if (message == NULL)
        g_error ("timed out waiting for signal %s", member);
      if (g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_SIGNAL &&
          g_strcmp0 (g_dbus_message_get_member (message), member) == 0)
        return message;
      if (skipped != NULL)
        g_ptr_array_add (skipped, message);
      else
        g_object_unref (message);
    }
}

static GDBusMessage *
call_message (GDBusConnection *connection,
              const char      *destination,
              const char      *path,
              const char      *iface,
              const char      *member,
              GVariant        *body)
{
  g_autoptr(GDBusMessage) call = g_dbus_message_new_method_call (destination, path, iface, member);
  g_autoptr(GError) error = NULL;
  GDBusMessage *reply;

  if (body != NULL)
    g_dbus_message_set_body (call, body);
  reply = g_dbus_connection_send_message_with_reply_sync (connection, call, G_DBUS_SEND_MESSAGE_FLAGS_NONE,
                                                          10000, NULL, NULL, &error);
  g_assert_no_error (error);
  return reply;
}

static GVariant *
driver_call (GDBusConnection *connection,
             const char      *member,
             GVariant        *args,
             GError         **error)
{
  return g_dbus_connection_call_sync (connection, BUS_NAME, BUS_PATH, BUS_NAME, member, args,
                                      NULL, G_DBUS_CALL_FLAGS_NONE, 10000, NULL, error);
}

typedef struct {
  PeerTestServer *server;
  PeerConnection *destination;          /* NULL: broadcast */
  const char *path;
  const char *member;
  const char *arg0;
} Emission;

static gboolean
emit_in_server (gpointer user_data)
{
  Emission *e = user_data;
  g_autoptr(GError) error = NULL;

  peer_server_emit_signal (e->server->server, e->destination, e->path, "org.example.Test1", e->member,
                           g_variant_new ("(s)", e->arg0), &error);
  g_assert_no_error (error);
  return G_SOURCE_REMOVE;
}

static void
emit (Fixture    *f,
      const char *path,
      const char *member,
      const char *arg0)
{
  Emission e = { f->server, NULL, path, member, arg0 };

  peer_test_server_invoke (f->server, emit_in_server, &e);
}

/* --- senders ------------------------------------------------------------ */

static void
test_sender_stamped (Fixture      *f,
                     gconstpointer data)
{
  Recorder *bus = recorder_new (f, TRUE);
  Recorder *plain = recorder_new (f, FALSE);
  const char *unique = g_dbus_connection_get_unique_name (bus->connection);
  g_autoptr(GDBusMessage) reply = NULL;
  g_autoptr(GDBusMessage) error_reply = NULL;
  g_autoptr(GDBusMessage) introspected = NULL;
  g_autoptr(GDBusMessage) driver = NULL;
  g_autoptr(GDBusMessage) plain_reply = NULL;

  g_assert_nonnull (unique);
  /* A handler's reply, an error, GDBus's own reply: all from the server. */
  reply = call_message (bus->connection, "org.libpeer.Bench", BENCH_PATH, BENCH_IFACE, "Ping", NULL);
  g_assert_cmpint (g_dbus_message_get_message_type (reply), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
  g_assert_cmpstr (g_dbus_message_get_sender (reply), ==, ":1.0");
  g_assert_cmpstr (g_dbus_message_get_destination (reply), ==, unique);
  error_reply = call_message (bus->connection, "org.libpeer.Helper", "/org/libpeer/Helper",
                              "org.libpeer.Helper1", "Quick", g_variant_new ("(i)", 0));
  g_assert_cmpint (g_dbus_message_get_message_type (error_reply), ==, G_DBUS_MESSAGE_TYPE_ERROR);
  g_assert_cmpstr (g_dbus_message_get_sender (error_reply), ==, ":1.0");
  introspected = call_message (bus->connection, "org.libpeer.Bench", BENCH_PATH,
                               "org.freedesktop.DBus.Introspectable", "Introspect", NULL);
  g_assert_cmpint (g_dbus_message_get_message_type (introspected), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
  g_assert_cmpstr (g_dbus_message_get_sender (introspected), ==, ":1.0");
  /* Twin: the bus answers for itself. */
  driver = call_message (bus->connection, BUS_NAME, BUS_PATH, BUS_NAME, "GetId", NULL);
  g_assert_cmpstr (g_dbus_message_get_sender (driver), ==, BUS_NAME);
  /* Twin: a plain peer-to-peer one gets what GDBus would send it. */
  plain_reply = call_message (plain->connection, NULL, BENCH_PATH, BENCH_IFACE, "Ping", NULL);
  g_assert_cmpint (g_dbus_message_get_message_type (plain_reply), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
  g_assert_null (g_dbus_message_get_sender (plain_reply));
  g_assert_null (g_dbus_message_get_destination (plain_reply));

  recorder_free (bus);
  recorder_free (plain);
}

/* --- the driver and names ------------------------------------------------ */

static void
test_driver_any_path (Fixture      *f,
                      gconstpointer data)
{
  Recorder *plain = recorder_new (f, FALSE);
  g_autoptr(GDBusMessage) hello = NULL;
  g_autoptr(GDBusMessage) unknown = NULL;
  g_autoptr(GDBusMessage) elsewhere = NULL;
  const char *name;

  /* txdbus calls Hello at "/Hello"; dbus-daemon answers it anywhere. */
  hello = call_message (plain->connection, BUS_NAME, "/Hello", BUS_NAME, "Hello", NULL);
  g_assert_cmpint (g_dbus_message_get_message_type (hello), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
  g_variant_get (g_dbus_message_get_body (hello), "(&s)", &name);
  g_assert_true (g_str_has_prefix (name, ":1."));
  /* Twins: an unknown driver method, and another interface at that path. */
  unknown = call_message (plain->connection, BUS_NAME, "/Hello", BUS_NAME, "NoSuchMethod", NULL);
  g_assert_cmpstr (g_dbus_message_get_error_name (unknown), ==, "org.freedesktop.DBus.Error.UnknownMethod");
  elsewhere = call_message (plain->connection, NULL, "/Hello", BENCH_IFACE, "Ping", NULL);
  g_assert_cmpint (g_dbus_message_get_message_type (elsewhere), ==, G_DBUS_MESSAGE_TYPE_ERROR);

  recorder_free (plain);
}

static gboolean
variant_is (GVariant   *value,
            const char *text)
{
  g_autofree char *printed = g_variant_print (value, FALSE);

  return g_str_equal (printed, text);
}

static gboolean
strv_has (GVariant   *names,
          const char *name)
{
  g_autofree const char **strv = g_variant_get_strv (names, NULL);

  return g_strv_contains (strv, name);
}

static void
test_names_honest (Fixture      *f,
                   gconstpointer data)
{
  Recorder *bus = recorder_new (f, TRUE);
  GDBusConnection *c = bus->connection;
  g_autoptr(GVariant) names = NULL;
  g_autoptr(GVariant) list = NULL;
  g_autoptr(GVariant) has = NULL;
  g_autoptr(GVariant) has_not = NULL;
  g_autoptr(GVariant) owner = NULL;
  g_autoptr(GVariant) uid = NULL;
  g_autoptr(GVariant) failed = NULL;
  g_autoptr(GDBusMessage) unknown_dest = NULL;
  g_autoptr(GDBusMessage) unknown_unique = NULL;
  g_autoptr(GError) error = NULL;
  guint32 uid_value;

  list = driver_call (c, "ListNames", NULL, &error);
  g_assert_no_error (error);
  names = g_variant_get_child_value (list, 0);
  g_assert_true (strv_has (names, "org.libpeer.Helper"));
  g_assert_true (strv_has (names, BUS_NAME));
  g_assert_true (strv_has (names, ":1.0"));
  g_assert_true (strv_has (names, g_dbus_connection_get_unique_name (c)));
  g_assert_false (strv_has (names, "com.whatever.Anything"));

  has = driver_call (c, "NameHasOwner", g_variant_new ("(s)", "org.libpeer.Helper"), &error);
  g_assert_no_error (error);
  g_assert_true (variant_is (has, "(true,)"));
  has_not = driver_call (c, "NameHasOwner", g_variant_new ("(s)", "com.whatever.Anything"), &error);
  g_assert_no_error (error);
  g_assert_true (variant_is (has_not, "(false,)"));

  owner = driver_call (c, "GetNameOwner", g_variant_new ("(s)", "org.libpeer.Helper"), &error);
  g_assert_no_error (error);
  g_assert_true (variant_is (owner, "(':1.0',)"));
  failed = driver_call (c, "GetNameOwner", g_variant_new ("(s)", "com.whatever.Anything"), &error);
  g_assert_null (failed);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER);
  g_clear_error (&error);

  uid = driver_call (c, "GetConnectionUnixUser", g_variant_new ("(s)", g_dbus_connection_get_unique_name (c)), &error);
  g_assert_no_error (error);
  g_assert_true (g_variant_is_of_type (uid, G_VARIANT_TYPE ("(u)")));
  g_variant_get (uid, "(u)", &uid_value);
  g_assert_cmpuint (uid_value, ==, getuid ());
  g_assert_null (driver_call (c, "GetConnectionUnixUser", g_variant_new ("(s)", ":1.999"), &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER);
  g_clear_error (&error);

  /* Peers own no names; calls to names nobody owns fail as on a bus. */
  g_assert_null (driver_call (c, "RequestName", g_variant_new ("(su)", "org.example.Mine", 0), &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED);
  g_clear_error (&error);
  unknown_dest = call_message (c, "com.whatever.Anything", BENCH_PATH, BENCH_IFACE, "Ping", NULL);
  g_assert_cmpstr (g_dbus_message_get_error_name (unknown_dest), ==, "org.freedesktop.DBus.Error.ServiceUnknown");
  unknown_unique = call_message (c, ":1.999", BENCH_PATH, BENCH_IFACE, "Ping", NULL);
  g_assert_cmpstr (g_dbus_message_get_error_name (unknown_unique), ==, "org.freedesktop.DBus.Error.NameHasNoOwner");

  recorder_free (bus);
}

/* --- match rules -------------------------------------------------------- */

static void
add_match (Recorder   *r,
           const char *rule)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = driver_call (r->connection, "AddMatch", g_variant_new ("(s)", rule), &error);

  g_assert_no_error (error);
}

static void
test_match_routes_signals (Fixture      *f,
                           gconstpointer data)
{
  Recorder *subscribed = recorder_new (f, TRUE);
  Recorder *unsubscribed = recorder_new (f, TRUE);
  Recorder *plain = recorder_new (f, FALSE);
  g_autoptr(GPtrArray) skipped = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr(GDBusMessage) got = NULL;
  g_autoptr(GDBusMessage) plain_first = NULL;
  g_autoptr(GDBusMessage) last = NULL;
  const char *arg0;

  /* A plain peer must have spoken before it is sent anything. */
  g_object_unref (call_message (plain->connection, NULL, BENCH_PATH, BENCH_IFACE, "Ping", NULL));
  /* A peer coming is the bus's news (NameOwnerChanged), for bus-style
   * peers that asked; a plain peer has no bus. */
  recorder_free (recorder_new (f, TRUE));
  add_match (subscribed, "type='signal',interface='org.example.Test1',member='Wanted',arg0='yes',"
                         "path_namespace='/org/example'");
  add_match (unsubscribed, "type='signal',member='Last'");

  emit (f, "/org/example/a", "Unwanted", "yes");
  emit (f, "/org/example/a", "Wanted", "no");
  emit (f, "/org/exampleX", "Wanted", "yes");
  emit (f, "/org/example/a/b", "Wanted", "yes");
  emit (f, "/", "Last", "");

  /* Only the signal its rule describes, with nothing before it. */
  got = recorder_wait_signal (subscribed, "Wanted", skipped);
  g_variant_get (g_dbus_message_get_body (got), "(&s)", &arg0);
  g_assert_cmpstr (arg0, ==, "yes");
  g_assert_cmpstr (g_dbus_message_get_path (got), ==, "/org/example/a/b");
  g_assert_cmpstr (g_dbus_message_get_sender (got), ==, ":1.0");
  /* (NameAcquired, addressed to it, came before.) */
  for (guint i = 0; i < skipped->len; i++)
    g_assert_cmpstr (g_dbus_message_get_interface (g_ptr_array_index (skipped, i)), !=, "org.example.Test1");

  /* A bus-style peer that did not ask gets none of them... */
  g_ptr_array_set_size (skipped, 0);
  last = recorder_wait_signal (unsubscribed, "Last", skipped);
  for (guint i = 0; i < skipped->len; i++)
    g_assert_cmpstr (g_dbus_message_get_member (g_ptr_array_index (skipped, i)), !=, "Wanted");
  /* ...and a plain peer, which cannot ask, gets all of them. */
  g_ptr_array_set_size (skipped, 0);
  plain_first = recorder_wait_signal (plain, "Unwanted", skipped);
  for (guint i = 0; i < skipped->len; i++)
    g_assert_cmpstr (g_dbus_message_get_member (g_ptr_array_index (skipped, i)), !=, "NameOwnerChanged");
  g_object_unref (recorder_wait_signal (plain, "Wanted", NULL));
  g_object_unref (recorder_wait_signal (plain, "Wanted", NULL));
  g_object_unref (recorder_wait_signal (plain, "Wanted", NULL));
  g_object_unref (recorder_wait_signal (plain, "Last", NULL));

  recorder_free (subscribed);
  recorder_free (unsubscribed);
  recorder_free (plain);
}

typedef struct {
  PeerTestServer *server;
  guint max;
} MaxRules;

static gboolean
set_max_rules (gpointer user_data)
{
  MaxRules *m = user_data;

  peer_server_set_max_match_rules (m->server->server, m->max);
  return G_SOURCE_REMOVE;
}

static void
test_match_limit (Fixture      *f,
                  gconstpointer data)
{
  Recorder *bus = recorder_new (f, TRUE);
  MaxRules m = { f->server, 3 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) removed = NULL;

  peer_test_server_invoke (f->server, set_max_rules, &m);
  /* Bad rules and unknown ones, in the bus's words. */
  g_assert_null (driver_call (bus->connection, "AddMatch", g_variant_new ("(s)", "member='unterminated"), &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID);
  g_clear_error (&error);
  g_assert_null (driver_call (bus->connection, "RemoveMatch", g_variant_new ("(s)", "member='Z'"), &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_NOT_FOUND);
  g_clear_error (&error);
  add_match (bus, "member='A'");
  add_match (bus, "member='B'");
  add_match (bus, "member='A'");         /* duplicates count, as on dbus-daemon */
  g_assert_null (driver_call (bus->connection, "AddMatch", g_variant_new ("(s)", "member='C'"), &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_LIMITS_EXCEEDED);
  g_clear_error (&error);

  /* Twin: a rule removed makes room again. */
  removed = driver_call (bus->connection, "RemoveMatch", g_variant_new ("(s)", "member='A'"), &error);
  g_assert_no_error (error);
  g_assert_nonnull (removed);
  add_match (bus, "member='C'");


  recorder_free (bus);
}

/* --- monitors ----------------------------------------------------------- */

static Recorder *
monitor_new (Fixture *f)
{
  Recorder *monitor = recorder_new (f, TRUE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  const char *no_rules[] = { NULL };

  g_atomic_int_set (&monitor->monitoring, TRUE);
  reply = g_dbus_connection_call_sync (monitor->connection, BUS_NAME, BUS_PATH,
                                       "org.freedesktop.DBus.Monitoring", "BecomeMonitor",
                                       g_variant_new ("(^asu)", no_rules, 0), NULL,
                                       G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
  g_assert_no_error (error);
  /* As dbus-daemon: the monitor's name is gone. */
  g_object_unref (recorder_wait_signal (monitor, "NameLost", NULL));
  return monitor;
}

static void
test_monitor_sees_others (Fixture      *f,
                          gconstpointer data)
{
  Recorder *monitor = monitor_new (f);
  Recorder *other = recorder_new (f, TRUE);
  const char *other_name = g_dbus_connection_get_unique_name (other->connection);
  g_autoptr(GDBusMessage) call = g_dbus_message_new_method_call ("org.libpeer.Bench", BENCH_PATH, BENCH_IFACE, "Ping");
  g_autoptr(GDBusMessage) reply = NULL;
  g_autoptr(GDBusMessage) seen_call = NULL;
  g_autoptr(GDBusMessage) seen_reply = NULL;
  g_autoptr(GDBusMessage) seen_signal = NULL;
  g_autoptr(GError) error = NULL;
  guint32 serial;

  reply = g_dbus_connection_send_message_with_reply_sync (other->connection, call, G_DBUS_SEND_MESSAGE_FLAGS_NONE,
                                                          10000, &serial, NULL, &error);
  g_assert_no_error (error);
  emit (f, "/org/example", "Broadcast", "x");

  seen_call = peer_test_wait_message (monitor->received, G_DBUS_MESSAGE_TYPE_METHOD_CALL, "Ping", 0);
  g_assert_cmpstr (g_dbus_message_get_sender (seen_call), ==, other_name);
  g_assert_cmpuint (g_dbus_message_get_serial (seen_call), ==, serial);
  seen_reply = peer_test_wait_message (monitor->received, G_DBUS_MESSAGE_TYPE_METHOD_RETURN, NULL, serial);
  g_assert_cmpstr (g_dbus_message_get_sender (seen_reply), ==, ":1.0");
  g_assert_cmpstr (g_dbus_message_get_destination (seen_reply), ==, other_name);
  /* Nobody subscribed to it: a monitor sees it all the same. */
  seen_signal = peer_test_wait_message (monitor->received, G_DBUS_MESSAGE_TYPE_SIGNAL, "Broadcast", 0);
  g_assert_cmpstr (g_dbus_message_get_sender (seen_signal), ==, ":1.0");

  recorder_free (other);
  recorder_free (monitor);
}

static void
test_monitor_sees_lane (Fixture      *f,
                        gconstpointer data)
{
  Recorder *monitor = monitor_new (f);
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GDBusMessage) seen_call = NULL;
  g_autoptr(GDBusMessage) seen_reply = NULL;

  g_assert_no_error (error);
  g_assert_true (peer_client_open_lane_sync (client, NULL, &error));
  g_assert_no_error (error);
  reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "Echo",
                                 g_variant_new_parsed ("(b'lane',)"), G_VARIANT_TYPE ("(ay)"),
                                 -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);

  /* The frame, as the D-Bus messages it stands for. */
  seen_call = peer_test_wait_message (monitor->received, G_DBUS_MESSAGE_TYPE_METHOD_CALL, "Echo", 0);
  /* A plain peer was never told its name, but has one. */
  g_assert_true (g_str_has_prefix (g_dbus_message_get_sender (seen_call), ":1."));
  g_assert_cmpstr (g_dbus_message_get_sender (seen_call), !=, ":1.0");
  seen_reply = peer_test_wait_message (monitor->received, G_DBUS_MESSAGE_TYPE_METHOD_RETURN, NULL,
                                       g_dbus_message_get_serial (seen_call));
  g_assert_cmpstr (g_dbus_message_get_sender (seen_reply), ==, ":1.0");

  recorder_free (monitor);
}

static void
test_monitor_refused (Fixture      *f,
                      gconstpointer data)
{
  Recorder *would_be = recorder_new (f, TRUE);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GDBusMessage) still = NULL;
  const char *no_rules[] = { NULL };

  reply = g_dbus_connection_call_sync (would_be->connection, BUS_NAME, BUS_PATH,
                                       "org.freedesktop.DBus.Monitoring", "BecomeMonitor",
                                       g_variant_new ("(^asu)", no_rules, 0), NULL,
                                       G_DBUS_CALL_FLAGS_NONE, 10000, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED);
  /* Still an ordinary peer. */
  still = call_message (would_be->connection, "org.libpeer.Bench", BENCH_PATH, BENCH_IFACE, "Ping", NULL);
  g_assert_cmpint (g_dbus_message_get_message_type (still), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);

  recorder_free (would_be);
}

typedef struct {
  PeerTestServer *server;
  gsize max_queued;
  guint disconnected;
  char *last_reason;
} Watch;

static void
on_peer_disconnected (PeerServer     *server,
                      PeerConnection *peer,
                      Watch          *watch)
{
  g_autoptr(GError) reason = peer_connection_dup_close_reason (peer);

  g_free (watch->last_reason);
  watch->last_reason = g_strdup (reason != NULL ? reason->message : "");
  g_atomic_int_inc (&watch->disconnected);
  /* The test's thread waits in its own main context. */
  g_main_context_wakeup (NULL);
}

static gboolean
watch_server (gpointer user_data)
{
  Watch *watch = user_data;

  if (watch->max_queued > 0)
    peer_server_set_max_queued_bytes (watch->server->server, watch->max_queued);
  g_signal_connect (watch->server->server, "peer-disconnected", G_CALLBACK (on_peer_disconnected), watch);
  return G_SOURCE_REMOVE;
}

static gboolean
unwatch_server (gpointer user_data)
{
  Watch *watch = user_data;

  g_signal_handlers_disconnect_by_func (watch->server->server, on_peer_disconnected, watch);
  return G_SOURCE_REMOVE;
}

static void
test_monitor_slow_dropped (Fixture      *f,
                           gconstpointer data)
{
  Watch watch = { f->server, 256 * 1024, 0, NULL };
  g_autofree char *socket_path = g_strdup (strstr (f->server->address, "path=") + 5);
  int raw;
  guint32 serial = 1;
  g_autoptr(GDBusMessage) hello = new_call (BUS_PATH, BUS_NAME, "Hello", NULL, serial++);
  g_autoptr(GDBusMessage) become = NULL;
  g_autoptr(GDBusMessage) become_reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) busy = NULL;
  g_autofree guint8 *bytes = g_malloc0 (64 * 1024);
  g_autoptr(GVariant) still = NULL;
  const char *no_rules[] = { NULL };

  *strchrnul (socket_path, ',') = '\0';
  peer_test_server_invoke (f->server, watch_server, &watch);

  /* A monitor that never reads after it attached. */
  raw = raw_connect_authenticated_path (socket_path, FALSE);
  raw_send_message (raw, hello);
  become = new_call (BUS_PATH, "org.freedesktop.DBus.Monitoring", "BecomeMonitor",
                     g_variant_new ("(^asu)", no_rules, 0), serial);
  g_dbus_message_set_destination (become, BUS_NAME);
  raw_send_message (raw, become);
  become_reply = raw_read_reply (raw, serial);
  g_assert_nonnull (become_reply);
  g_assert_cmpint (g_dbus_message_get_message_type (become_reply), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);

  /* A busy peer carries on while the monitor falls behind and is dropped. */
  busy = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; g_atomic_int_get (&watch.disconnected) == 0; i++)
    {
      g_autoptr(GVariant) reply = NULL;

      g_assert_cmpuint (i, <, 10000);
      reply = peer_client_call_sync (busy, BENCH_PATH, BENCH_IFACE, "Echo",
                                     g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, bytes,
                                                                                        64 * 1024, 1)),
                                     G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, NULL, &error);
      g_assert_no_error (error);
    }
  g_assert_true (raw_wait_closed (raw, 10000));
  g_assert_nonnull (strstr (watch.last_reason, "does not read"));
  /* The busy peer is still served. */
  still = peer_client_call_sync (busy, BENCH_PATH, BENCH_IFACE, "Ping", NULL, NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (still);

  peer_test_server_invoke (f->server, unwatch_server, &watch);
  g_free (watch.last_reason);
  close (raw);
}

/* --- validation --------------------------------------------------------- */

/* A Ping whose PATH header field is typed 's', not 'o': GLib 2.74's own
 * dispatch would crash on it. Same bytes, one signature byte changed. */
static guchar *
ping_with_string_path (guint32  serial,
                       gboolean corrupt,
                       gsize   *size)
{
  g_autoptr(GDBusMessage) ping = new_call (BENCH_PATH, BENCH_IFACE, "Ping", NULL, serial);
  guchar *blob = to_blob (ping, size);
  static const guchar field[] = { 1, 1, 'o', 0 };

  for (gsize i = 16; corrupt && i + sizeof field <= *size; i++)
    if (memcmp (blob + i, field, sizeof field) == 0)
      {
        blob[i + 2] = 's';
        return blob;
      }
  g_assert_false (corrupt);
  return blob;
}

static void
check_offender_closed (Fixture      *f,
                       const guchar *blob,
                       gsize         size,
                       const char   *reason_fragment)
{
  Watch watch = { f->server, 0, 0, NULL };
  g_autofree char *socket_path = g_strdup (strstr (f->server->address, "path=") + 5);
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) good = NULL;
  g_autoptr(GVariant) before = NULL;
  g_autoptr(GVariant) after = NULL;
  int raw;

  *strchrnul (socket_path, ',') = '\0';
  peer_test_server_invoke (f->server, watch_server, &watch);
  good = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_assert_no_error (error);
  before = peer_client_call_sync (good, BENCH_PATH, BENCH_IFACE, "Ping", NULL, NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);

  raw = raw_connect_authenticated_path (socket_path, FALSE);
  raw_send (raw, blob, size);
  g_assert_true (raw_wait_closed (raw, 10000));
  close (raw);
  PEER_TEST_WAIT_UNTIL (g_atomic_int_get (&watch.disconnected) > 0);
  g_test_message ("close reason: %s", watch.last_reason);
  g_assert_nonnull (strstr (watch.last_reason, reason_fragment));

  /* The server lives, and the good peer lost nothing. */
  after = peer_client_call_sync (good, BENCH_PATH, BENCH_IFACE, "Ping", NULL, NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  peer_test_server_invoke (f->server, unwatch_server, &watch);
  g_free (watch.last_reason);
}

static void
test_validate_path_type (Fixture      *f,
                         gconstpointer data)
{
  gsize size;
  g_autofree guchar *blob = ping_with_string_path (1, TRUE, &size);

  check_offender_closed (f, blob, size, "PATH");
}

static void
test_validate_path_type_twin (Fixture      *f,
                              gconstpointer data)
{
  g_autofree char *socket_path = g_strdup (strstr (f->server->address, "path=") + 5);
  gsize size;
  g_autofree guchar *blob = ping_with_string_path (7, FALSE, &size);
  g_autoptr(GDBusMessage) reply = NULL;
  int raw;

  *strchrnul (socket_path, ',') = '\0';
  raw = raw_connect_authenticated_path (socket_path, FALSE);
  raw_send (raw, blob, size);
  reply = raw_read_reply (raw, 7);
  g_assert_nonnull (reply);
  g_assert_cmpint (g_dbus_message_get_message_type (reply), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
  close (raw);
}

static void
test_validate_serial_zero (Fixture      *f,
                           gconstpointer data)
{
  g_autoptr(GDBusMessage) ping = new_call (BENCH_PATH, BENCH_IFACE, "Ping", NULL, 1);
  gsize size;
  g_autofree guchar *blob = to_blob (ping, &size);

  /* The serial is the header's third word. */
  memset (blob + 8, 0, 4);
  check_offender_closed (f, blob, size, "serial");
}

static void
test_validate_interface_name (Fixture      *f,
                              gconstpointer data)
{
  g_autoptr(GDBusMessage) ping = new_call (BENCH_PATH, BENCH_IFACE, "Ping", NULL, 1);
  gsize size;
  g_autofree guchar *blob = to_blob (ping, &size);
  guchar *at = memmem (blob, size, BENCH_IFACE, strlen (BENCH_IFACE));

  /* Same length, one character no interface name may hold. */
  g_assert_nonnull (at);
  at[strlen ("org.libpeer")] = '-';
  check_offender_closed (f, blob, size, "INTERFACE");
}

static void
test_validate_reserved_local (Fixture      *f,
                              gconstpointer data)
{
  /* Only an implementation makes up messages on .Local; from a peer
   * they would fake a disconnection. */
  g_autoptr(GDBusMessage) call = new_call ("/org/freedesktop/DBus/Local", "org.freedesktop.DBus.Local",
                                           "Disconnected", NULL, 1);
  gsize size;
  g_autofree guchar *blob = to_blob (call, &size);

  check_offender_closed (f, blob, size, "Local");
}

static void
test_monitor_that_sends_is_closed (Fixture      *f,
                                   gconstpointer data)
{
  Watch watch = { f->server, 0, 0, NULL };
  Recorder *monitor = NULL;
  g_autoptr(GDBusMessage) call = g_dbus_message_new_method_call ("org.libpeer.Bench", BENCH_PATH, BENCH_IFACE, "Ping");
  g_autoptr(GError) error = NULL;

  peer_test_server_invoke (f->server, watch_server, &watch);
  monitor = monitor_new (f);
  g_dbus_message_set_flags (call, G_DBUS_MESSAGE_FLAGS_NO_REPLY_EXPECTED);
  g_assert_true (g_dbus_connection_send_message (monitor->connection, call, G_DBUS_SEND_MESSAGE_FLAGS_NONE,
                                                 NULL, &error));
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (g_atomic_int_get (&watch.disconnected) > 0);
  g_assert_nonnull (strstr (watch.last_reason, "monitors only listen"));

  peer_test_server_invoke (f->server, unwatch_server, &watch);
  g_free (watch.last_reason);
  recorder_free (monitor);
}

/* --- dispatch ----------------------------------------------------------- */

typedef struct {
  GThread *thread;
} Seen;

static void
handle_where (PeerCall *call,
              gpointer  user_data)
{
  Seen *seen = user_data;

  seen->thread = g_thread_self ();
  peer_call_return_value (call, NULL);
}

typedef struct {
  PeerTestServer *server;
  Seen safe;
  Seen unsafe;
  PeerInterface *iface;
} Where;

static gboolean
export_where (gpointer user_data)
{
  Where *w = user_data;
  static const char xml[] =
    "<node><interface name='org.example.Where1'>"
    "<method name='Safe'/><method name='Unsafe'/>"
    "</interface></node>";
  PeerMethodEntry entries[] = {
    { "Safe", handle_where, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  PeerMethodEntry unsafe_entries[] = {
    { "Unsafe", handle_where, PEER_METHOD_FLAGS_NONE },
  };
  g_autoptr(GError) error = NULL;

  w->iface = peer_interface_new_for_xml (xml, "org.example.Where1", &error);
  g_assert_no_error (error);
  g_assert_true (peer_interface_add_methods (w->iface, entries, 1, &w->safe, &error));
  g_assert_true (peer_interface_add_methods (w->iface, unsafe_entries, 1, &w->unsafe, &error));
  g_assert_true (peer_server_export (w->server->server, "/org/example/Where", w->iface, &error));
  return G_SOURCE_REMOVE;
}

static gboolean
unexport_where (gpointer user_data)
{
  Where *w = user_data;

  peer_server_unexport (w->server->server, w->iface);
  g_clear_object (&w->iface);
  return G_SOURCE_REMOVE;
}

static void
test_dispatch_thread (Fixture      *f,
                      gconstpointer data)
{
  Where w = { f->server, { NULL }, { NULL }, NULL };
  Recorder *plain = NULL;
  g_autoptr(GDBusMessage) safe = NULL;
  g_autoptr(GDBusMessage) unsafe = NULL;

  peer_test_server_invoke (f->server, export_where, &w);
  plain = recorder_new (f, FALSE);
  safe = call_message (plain->connection, NULL, "/org/example/Where", "org.example.Where1", "Safe", NULL);
  unsafe = call_message (plain->connection, NULL, "/org/example/Where", "org.example.Where1", "Unsafe", NULL);
  g_assert_cmpint (g_dbus_message_get_message_type (safe), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
  g_assert_cmpint (g_dbus_message_get_message_type (unsafe), ==, G_DBUS_MESSAGE_TYPE_METHOD_RETURN);
  /* A thread-safe handler runs where the message was read, without the
   * hop; the rest in the server's own thread. */
  g_assert_true (w.unsafe.thread == f->server->thread);
  g_assert_true (w.safe.thread != f->server->thread);
  g_assert_nonnull (w.safe.thread);

  recorder_free (plain);
  peer_test_server_invoke (f->server, unexport_where, &w);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/router/sender/stamped", test_sender_stamped);
  ADD ("/peer/router/driver/any-path", test_driver_any_path);
  ADD ("/peer/router/names/honest", test_names_honest);
  ADD ("/peer/router/match/routes-signals", test_match_routes_signals);
  ADD ("/peer/router/match/limit", test_match_limit);
  ADD ("/peer/router/monitor/sees-others", test_monitor_sees_others);
  ADD ("/peer/router/monitor/sees-lane", test_monitor_sees_lane);
  ADD ("/peer/router/monitor/slow-is-dropped", test_monitor_slow_dropped);
  g_test_add ("/peer/router/monitor/refused-by-policy", Fixture, NULL, fixture_set_up_no_monitors,
              test_monitor_refused, fixture_tear_down);
  ADD ("/peer/router/validate/path-type", test_validate_path_type);
  ADD ("/peer/router/validate/path-type/valid-twin", test_validate_path_type_twin);
  ADD ("/peer/router/validate/serial-zero", test_validate_serial_zero);
  ADD ("/peer/router/validate/interface-name", test_validate_interface_name);
  ADD ("/peer/router/validate/reserved-local", test_validate_reserved_local);
  ADD ("/peer/router/monitor/sending-is-closed", test_monitor_that_sends_is_closed);
  ADD ("/peer/router/dispatch/thread", test_dispatch_thread);
#undef ADD

  return g_test_run ();
}
