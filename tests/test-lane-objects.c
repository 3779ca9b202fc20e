/* test-lane-objects.c: what a lane client reaches beyond the table Open
 * hands over, and that it reaches it over the lane: Properties Get, Set
 * and GetAll, a subtree's children (peer-server's jobs among them), an
 * interface exported after Open and one unexported since, and a
 * gdbus-codegen skeleton exported after Open.
 *
 * Every call is made twice, from a client with a lane and from a plain
 * one, and both answers must be the same, error for error (domain, code
 * and message). Each client's D-Bus connection records the calls it
 * sends and the signals it receives, so that a case tells which
 * transport carried it: a call the lane served never shows there. What
 * GDBus answers by itself (an unknown property or interface, a refused
 * access or type, a child gone) and a skeleton's methods go on the
 * connection, by design (see peer-lane-dispatch.c): those cases check that
 * they did, and that the caller saw nothing of it.
 *
 * The ordering guaranteed: a Set over the lane that changes a value
 * emits PropertiesChanged before its reply is written, on the lane of a
 * client that takes its signals there, so the subscriber's callback runs
 * before an asynchronous Set's callback, and is queued to its context by
 * the time a synchronous Set returns (dispatched without waiting). */
#include "config.h"

#include <string.h>

#include "peer-client-private.h"
#include "peer-lane-private.h"
#include "peer-protocol.h"
#include "peer-test-util.h"
#include "services.h"

#define PROPERTIES   "org.freedesktop.DBus.Properties"
#define PROPS_IFACE  "org.libpeer.Test.Props1"
#define THING_IFACE  "org.libpeer.Test.Thing1"
#define PROPS_PATH   "/test/props"
#define GONE_PATH    "/test/gone"
#define LATE_PATH    "/test/late"
#define SKELETON_PATH "/test/skeleton"
#define TREE_PATH    "/test/tree"

static const char test_xml[] =
  "<node>"
  "  <interface name='" PROPS_IFACE "'>"
  "    <method name='Where'><arg name='main' type='b' direction='out'/></method>"
  "    <method name='WhereSafe'><arg name='main' type='b' direction='out'/></method>"
  "    <property name='Name' type='s' access='readwrite'/>"
  "    <property name='Count' type='i' access='read'/>"
  "    <property name='Secret' type='s' access='write'/>"
  "  </interface>"
  "  <interface name='" THING_IFACE "'>"
  "    <method name='Who'><arg name='path' type='o' direction='out'/></method>"
  "    <property name='Name' type='s' access='readwrite'/>"
  "  </interface>"
  "</node>";

/* --- the server's side (its thread only) ---------------------------------- */

typedef struct {
  PeerServer *server;
  GMainContext *context;
  PeerInterface *props;                 /* at PROPS_PATH, before Open */
  PeerInterface *gone;                  /* at GONE_PATH before Open, unexported after */
  PeerInterface *late;                  /* at LATE_PATH, after Open */
  PeerInterface *thing;                 /* the tree's children */
  PeerSubtree *tree;
  GHashTable *nodes;                    /* the tree's children */
  PeerProtoJob1 *skeleton;              /* at SKELETON_PATH, after Open */
  guint cancels;
} Objects;

static void
handle_where (PeerCall *call,
              gpointer  user_data)
{
  Objects *o = user_data;

  peer_call_return_value (call, g_variant_new ("(b)", g_main_context_is_owner (o->context)));
}

static void
handle_who (PeerCall *call,
            gpointer  user_data)
{
  peer_call_return_value (call, g_variant_new ("(o)", peer_call_get_object_path (call)));
}

/* Takes every write but one name, which it refuses in its own words. */
static gboolean
set_props (PeerInterface  *iface,
           PeerConnection *caller,
           const char     *property_name,
           GVariant       *value,
           GError        **error,
           gpointer        user_data)
{
  if (g_str_equal (property_name, "Name") && g_str_equal (g_variant_get_string (value, NULL), "forbidden"))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED, "Not that name");
      return FALSE;
    }
  return TRUE;
}

static PeerInterface *
props_new (Objects *o)
{
  static const PeerMethodEntry entries[] = {
    { "Where", handle_where, PEER_METHOD_FLAGS_NONE },
    { "WhereSafe", handle_where, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  g_autoptr(GError) error = NULL;
  PeerInterface *iface = peer_interface_new_for_xml (test_xml, PROPS_IFACE, &error);

  g_assert_no_error (error);
  g_assert_true (peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), o, &error));
  peer_interface_set_property_funcs (iface, NULL, set_props, NULL, NULL);
  g_assert_true (peer_interface_set_property (iface, "Name", g_variant_new_string ("first"), &error));
  g_assert_true (peer_interface_set_property (iface, "Count", g_variant_new_int32 (3), &error));
  return iface;
}

static gboolean
on_handle_cancel (PeerProtoJob1         *skeleton,
                  GDBusMethodInvocation *invocation,
                  gpointer               user_data)
{
  Objects *o = user_data;

  o->cancels++;
  peer_proto_job1_set_state (skeleton, "cancelled");
  peer_proto_job1_complete_cancel (skeleton, invocation);
  return TRUE;
}

static gboolean
set_up_objects (gpointer user_data)
{
  Objects *o = user_data;
  static const PeerMethodEntry thing_entries[] = {
    { "Who", handle_who, PEER_METHOD_FLAGS_NONE },
  };
  g_autoptr(GError) error = NULL;

  o->context = g_main_context_ref_thread_default ();
  o->props = props_new (o);
  g_assert_true (peer_server_export (o->server, PROPS_PATH, o->props, &error));
  o->gone = props_new (o);
  g_assert_true (peer_server_export (o->server, GONE_PATH, o->gone, &error));

  o->thing = peer_interface_new_for_xml (test_xml, THING_IFACE, &error);
  g_assert_no_error (error);
  g_assert_true (peer_interface_add_methods (o->thing, thing_entries, G_N_ELEMENTS (thing_entries), o, &error));
  o->tree = peer_test_tree_export (o->server, TREE_PATH, o->thing, FALSE, &o->nodes);
  return G_SOURCE_REMOVE;
}

static gboolean
tear_down_objects (gpointer user_data)
{
  Objects *o = user_data;

  peer_server_unexport (o->server, o->props);
  peer_server_unexport (o->server, o->gone);
  if (o->late != NULL)
    peer_server_unexport (o->server, o->late);
  g_assert_true (peer_server_unexport_subtree (o->server, o->tree));
  if (o->skeleton != NULL)
    peer_server_unexport_skeleton (o->server, G_DBUS_INTERFACE_SKELETON (o->skeleton));
  g_clear_object (&o->props);
  g_clear_object (&o->gone);
  g_clear_object (&o->late);
  g_clear_object (&o->thing);
  g_clear_object (&o->tree);
  g_clear_object (&o->skeleton);
  g_clear_pointer (&o->nodes, g_hash_table_unref);
  g_clear_pointer (&o->context, g_main_context_unref);
  return G_SOURCE_REMOVE;
}

/* --- what each client's D-Bus connection carried ------------------------- */

typedef struct {
  GMutex lock;
  GPtrArray *seen;                      /* "INTERFACE.MEMBER" of calls sent, "signal PATH INTERFACE.MEMBER" received */
  GDBusConnection *connection;
  guint filter;
} Traffic;

/* GDBus's worker thread. */
static GDBusMessage *
record_traffic (GDBusConnection *connection,
                GDBusMessage    *message,
                gboolean         incoming,
                gpointer         user_data)
{
  Traffic *t = user_data;
  GDBusMessageType type = g_dbus_message_get_message_type (message);

  if ((!incoming && type == G_DBUS_MESSAGE_TYPE_METHOD_CALL) || (incoming && type == G_DBUS_MESSAGE_TYPE_SIGNAL))
    {
      g_mutex_lock (&t->lock);
      if (incoming)
        g_ptr_array_add (t->seen, g_strdup_printf ("signal %s %s.%s", g_dbus_message_get_path (message),
                                                   g_dbus_message_get_interface (message),
                                                   g_dbus_message_get_member (message)));
      else
        g_ptr_array_add (t->seen, g_strdup_printf ("%s.%s", g_dbus_message_get_interface (message),
                                                   g_dbus_message_get_member (message)));
      g_mutex_unlock (&t->lock);
    }
  return message;
}

static void
traffic_start (Traffic    *t,
               PeerClient *client)
{
  g_mutex_init (&t->lock);
  t->seen = g_ptr_array_new_with_free_func (g_free);
  t->connection = g_object_ref (peer_client_get_connection (client));
  t->filter = g_dbus_connection_add_filter (t->connection, record_traffic, t, NULL);
}

static void
traffic_stop (Traffic *t)
{
  /* Closed first: then the worker runs the filter no more. */
  g_dbus_connection_close_sync (t->connection, NULL, NULL);
  g_dbus_connection_remove_filter (t->connection, t->filter);
  g_clear_object (&t->connection);
  g_ptr_array_unref (t->seen);
  g_mutex_clear (&t->lock);
}

/* How many times @what went over the connection. */
static guint
carried (Traffic    *t,
         const char *what)
{
  guint n = 0;

  g_mutex_lock (&t->lock);
  for (guint i = 0; i < t->seen->len; i++)
    if (g_str_equal (g_ptr_array_index (t->seen, i), what))
      n++;
  g_mutex_unlock (&t->lock);
  return n;
}

/* --- fixture -------------------------------------------------------------- */

typedef struct {
  PeerTestServer *ts;
  Objects objects;
  PeerClient *lane;                     /* with a lane open */
  PeerClient *plain;
  Traffic lane_traffic;
  Traffic plain_traffic;
} Fixture;

static PeerClient *
client_new (Fixture *f,
            Traffic *traffic)
{
  g_autoptr(GError) error = NULL;
  PeerClient *client = peer_test_connect (f->ts, FALSE);
  g_autoptr(GVariant) reply = NULL;

  traffic_start (traffic, client);
  /* Once a call is answered the server has taken the peer in. */
  reply = peer_client_call_sync (client, PEER_BENCH_PATH, "org.libpeer.Bench1", "Ping", NULL, NULL, 5000, NULL,
                                 NULL, NULL, &error);
  g_assert_no_error (error);
  return client;
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->ts = peer_test_server_start ();
  f->objects.server = f->ts->server;
  peer_test_server_invoke (f->ts, set_up_objects, &f->objects);
  f->plain = client_new (f, &f->plain_traffic);
  f->lane = client_new (f, &f->lane_traffic);
  g_assert_true (peer_client_open_lane_sync (f->lane, NULL, &error));
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  traffic_stop (&f->lane_traffic);
  traffic_stop (&f->plain_traffic);
  g_clear_object (&f->lane);
  g_clear_object (&f->plain);
  peer_test_server_invoke (f->ts, tear_down_objects, &f->objects);
  peer_test_finish (NULL, f->ts, NULL);
}

/* --- calls from both clients --------------------------------------------- */

static void
assert_same_error (const GError *plain,
                   const GError *lane)
{
  g_assert_nonnull (plain);
  g_assert_nonnull (lane);
  g_assert_cmpstr (g_quark_to_string (lane->domain), ==, g_quark_to_string (plain->domain));
  g_assert_cmpint (lane->code, ==, plain->code);
  g_assert_cmpstr (lane->message, ==, plain->message);
}

/* The same call from the plain client, then from the lane client: the
 * lane client's answer, after checking that it is the plain client's.
 * @params: (nullable) sunk. */
static GVariant *
call_both (Fixture    *f,
           const char *path,
           const char *iface,
           const char *member,
           GVariant   *params,
           const char *reply_type,
           GError    **error)
{
  g_autoptr(GVariant) owned = params != NULL ? g_variant_ref_sink (params) : NULL;
  const GVariantType *type = reply_type != NULL ? G_VARIANT_TYPE (reply_type) : NULL;
  g_autoptr(GError) plain_error = NULL;
  g_autoptr(GVariant) plain = peer_client_call_sync (f->plain, path, iface, member, owned, type, 5000, NULL, NULL,
                                                     NULL, &plain_error);
  GVariant *lane = peer_client_call_sync (f->lane, path, iface, member, owned, type, 5000, NULL, NULL, NULL,
                                          error);

  if (plain == NULL)
    assert_same_error (plain_error, *error);
  else
    {
      g_assert_no_error (*error);
      g_assert_true (g_variant_equal (plain, lane));
    }
  return lane;
}

static GVariant *
get_both (Fixture    *f,
          const char *path,
          const char *iface,
          const char *property,
          GError    **error)
{
  g_autoptr(GVariant) reply = call_both (f, path, PROPERTIES, "Get", g_variant_new ("(ss)", iface, property),
                                         "(v)", error);
  GVariant *value = NULL;

  if (reply != NULL)
    g_variant_get (reply, "(v)", &value);
  return value;
}

/* --- properties ----------------------------------------------------------- */

static void
test_properties (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) name = get_both (f, PROPS_PATH, PROPS_IFACE, "Name", &error);
  g_autoptr(GVariant) count = get_both (f, PROPS_PATH, PROPS_IFACE, "Count", &error);
  g_autoptr(GVariant) all = NULL;
  g_autoptr(GVariant) renamed = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) via_api = NULL;
  g_autoptr(GVariant) dict = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_string (name, NULL), ==, "first");
  g_assert_cmpint (g_variant_get_int32 (count), ==, 3);

  /* GetAll: the readable ones (Secret is write-only). */
  all = call_both (f, PROPS_PATH, PROPERTIES, "GetAll", g_variant_new ("(s)", PROPS_IFACE), "(a{sv})", &error);
  g_assert_no_error (error);
  dict = g_variant_get_child_value (all, 0);
  g_assert_cmpuint (g_variant_n_children (dict), ==, 2);
  g_assert_true (g_variant_lookup (dict, "Name", "&s", NULL));
  g_assert_false (g_variant_lookup (dict, "Secret", "&s", NULL));

  /* Set, and the value read back; the write-only one takes writes. */
  g_assert_true (peer_client_set_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Name",
                                                g_variant_new_string ("from the lane"), NULL, &error));
  g_assert_no_error (error);
  renamed = get_both (f, PROPS_PATH, PROPS_IFACE, "Name", &error);
  g_assert_cmpstr (g_variant_get_string (renamed, NULL), ==, "from the lane");
  g_assert_true (peer_client_set_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Secret",
                                                g_variant_new_string ("psst"), NULL, &error));
  g_assert_no_error (error);
  via_api = peer_client_get_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Count", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_variant_get_int32 (via_api), ==, 3);

  /* All of it over the lane: the lane client's connection carried none. */
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".GetAll"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Set"), ==, 0);
  /* Its twin went on the connection. */
  g_assert_cmpuint (carried (&f->plain_traffic, PROPERTIES ".Get"), ==, 3);
  g_assert_cmpuint (carried (&f->plain_traffic, PROPERTIES ".GetAll"), ==, 1);

  /* Asked for the wrong reply type: refused as GDBus refuses it. */
  reply = call_both (f, PROPS_PATH, PROPERTIES, "Get", g_variant_new ("(ss)", PROPS_IFACE, "Name"), "(s)",
                     &error);
  g_assert_null (reply);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);
}

/* Each refusal is the very error a plain client gets. */
static void
test_properties_refused (Fixture      *f,
                         gconstpointer data)
{
  static const struct {
    const char *member;
    const char *iface;
    const char *property;
    const char *value;                  /* GVariant text for Set; NULL: Get or GetAll */
    GQuark (*domain) (void);
    int code;
    gboolean gdbus_answers;             /* GDBus's own words, from the connection */
  } cases[] = {
    /* Read-only, and the write-only one read. */
    { "Set", PROPS_IFACE, "Count", "<7>", g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    { "Get", PROPS_IFACE, "Secret", NULL, g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    /* The wrong type. */
    { "Set", PROPS_IFACE, "Name", "<int32 7>", g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    /* No such property. */
    { "Get", PROPS_IFACE, "Nope", NULL, g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    { "Set", PROPS_IFACE, "Nope", "<'x'>", g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    /* No such interface, there. */
    { "Get", "org.libpeer.Test.Nope1", "Name", NULL, g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    { "GetAll", "org.libpeer.Test.Nope1", NULL, NULL, g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    { "Get", THING_IFACE, "Name", NULL, g_dbus_error_quark, G_DBUS_ERROR_INVALID_ARGS, TRUE },
    /* The interface's own refusal: served on the lane. */
    { "Set", PROPS_IFACE, "Name", "<'forbidden'>", peer_error_quark, PEER_ERROR_PERMISSION_DENIED, FALSE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *what = g_strconcat (PROPERTIES ".", cases[i].member, NULL);
      guint before = carried (&f->lane_traffic, what);
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) reply = NULL;
      GVariant *params;

      g_test_message ("%s %s.%s", cases[i].member, cases[i].iface, cases[i].property ? cases[i].property : "");
      if (cases[i].value != NULL)
        params = g_variant_new ("(ss@v)", cases[i].iface, cases[i].property,
                                g_variant_new_parsed (cases[i].value));
      else if (cases[i].property != NULL)
        params = g_variant_new ("(ss)", cases[i].iface, cases[i].property);
      else
        params = g_variant_new ("(s)", cases[i].iface);
      reply = call_both (f, PROPS_PATH, PROPERTIES, cases[i].member, params, NULL, &error);
      g_assert_null (reply);
      g_assert_error (error, cases[i].domain (), cases[i].code);
      g_assert_cmpuint (carried (&f->lane_traffic, what), ==, before + (cases[i].gdbus_answers ? 1 : 0));
    }

  /* The positive twins: each of those, right, over the lane. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) name = NULL;

    g_assert_true (peer_client_set_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Name",
                                                  g_variant_new_string ("allowed"), NULL, &error));
    g_assert_no_error (error);
    name = peer_client_get_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Name", NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (g_variant_get_string (name, NULL), ==, "allowed");
    g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 4);
  }

  /* No object at all there. */
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(GVariant) missing = get_both (f, "/test/nowhere", PROPS_IFACE, "Name", &error);

    g_assert_null (missing);
    g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  }
}

/* --- PropertiesChanged and the Set's reply ------------------------------- */

typedef struct {
  guint changes;                        /* PropertiesChanged of PROPS_IFACE heard */
  char *last_name;
  guint replies;
  guint changes_at_reply;
} Heard;

static void
on_changed (PeerClient *client,
            const char *object_path,
            const char *interface_name,
            const char *signal_name,
            GVariant   *parameters,
            gpointer    user_data)
{
  Heard *h = user_data;
  g_autoptr(GVariant) changed = NULL;
  const char *iface, *name;

  g_variant_get (parameters, "(&s@a{sv}@as)", &iface, &changed, NULL);
  if (!g_str_equal (iface, PROPS_IFACE))
    return;
  h->changes++;
  if (g_variant_lookup (changed, "Name", "&s", &name))
    {
      g_free (h->last_name);
      h->last_name = g_strdup (name);
    }
}

static void
on_set_done (GObject      *source,
             GAsyncResult *result,
             gpointer      user_data)
{
  Heard *h = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  g_assert_no_error (error);
  h->changes_at_reply = h->changes;
  h->replies++;
}

/* The client's TakeSignals (sent without waiting as it subscribed) has
 * been handled once a second one, behind it on the connection, is
 * answered. */
static void
sync_take_signals (Fixture *f)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_sync (f->lane, PEER_LANE_PATH, PEER_LANE_INTERFACE,
                                                     "TakeSignals", NULL, G_VARIANT_TYPE_UNIT, -1, NULL, NULL,
                                                     NULL, &error);

  g_assert_no_error (error);
}

static void
test_properties_changed_order (Fixture      *f,
                               gconstpointer data)
{
  Heard h = { 0 };
  g_autoptr(GError) error = NULL;
  guint id = peer_client_subscribe_signal (f->lane, PROPS_PATH, PROPERTIES, "PropertiesChanged", on_changed, &h,
                                           NULL);

  sync_take_signals (f);

  /* Asynchronous: the subscriber hears the change before the Set's
   * callback runs. */
  for (guint i = 0; i < 10; i++)
    {
      g_autofree char *value = g_strdup_printf ("async %u", i);

      peer_client_call (f->lane, PROPS_PATH, PROPERTIES, "Set",
                        g_variant_new ("(ssv)", PROPS_IFACE, "Name", g_variant_new_string (value)),
                        G_VARIANT_TYPE_UNIT, -1, NULL, NULL, on_set_done, &h);
      PEER_TEST_WAIT_UNTIL (h.replies == i + 1);
      g_assert_cmpuint (h.changes_at_reply, ==, i + 1);
      g_assert_cmpstr (h.last_name, ==, value);
    }

  /* Synchronous: queued to the subscriber's context by the time the Set
   * returns, so dispatched without waiting for anything. */
  g_assert_true (peer_client_set_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Name",
                                                g_variant_new_string ("sync"), NULL, &error));
  g_assert_no_error (error);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (h.changes, ==, 11);
  g_assert_cmpstr (h.last_name, ==, "sync");

  /* The twin: a Set that changes nothing announces nothing. */
  g_assert_true (peer_client_set_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Name",
                                                g_variant_new_string ("sync"), NULL, &error));
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (h.changes, ==, 11);

  /* Sets and signals both on the lane. */
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Set"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, "signal " PROPS_PATH " " PROPERTIES ".PropertiesChanged"), ==, 0);
  /* The plain client saw every change, on its connection. */
  PEER_TEST_WAIT_UNTIL (carried (&f->plain_traffic, "signal " PROPS_PATH " " PROPERTIES ".PropertiesChanged") == 11);

  peer_client_unsubscribe_signal (f->lane, id);
  g_free (h.last_name);
}

/* --- subtrees ------------------------------------------------------------- */

static char *
who_both (Fixture    *f,
          const char *path,
          GError    **error)
{
  g_autoptr(GVariant) reply = call_both (f, path, THING_IFACE, "Who", NULL, "(o)", error);
  char *who = NULL;

  if (reply != NULL)
    g_variant_get (reply, "(o)", &who);
  return who;
}

static void
test_subtree (Fixture      *f,
              gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *a = who_both (f, TREE_PATH "/a", &error);
  g_autoptr(GVariant) name_b = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (a, ==, TREE_PATH "/a");
  /* Each child's own value, written and read over the lane. */
  g_assert_true (peer_client_set_property_sync (f->lane, TREE_PATH "/b", THING_IFACE, "Name",
                                                g_variant_new_string ("b, renamed"), NULL, &error));
  g_assert_no_error (error);
  name_b = get_both (f, TREE_PATH "/b", THING_IFACE, "Name", &error);
  g_assert_cmpstr (g_variant_get_string (name_b, NULL), ==, "b, renamed");
  g_assert_cmpuint (carried (&f->lane_traffic, THING_IFACE ".Who"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Set"), ==, 0);
  g_assert_cmpuint (carried (&f->plain_traffic, THING_IFACE ".Who"), ==, 1);

  /* The subtree's own path has no interfaces; a child of a child is no
   * child: both as GDBus says. */
  g_assert_null (who_both (f, TREE_PATH, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_clear_error (&error);
  g_assert_null (who_both (f, TREE_PATH "/a/deeper", &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
}

/* Listed, then gone before the call: the same error either way. */
static void
test_subtree_child_gone (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) listed = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *gone = NULL;
  g_autoptr(GVariant) gone_name = NULL;
  const char *xml;

  peer_test_server_set_node (f->ts, f->objects.nodes, "c", TRUE);
  listed = call_both (f, TREE_PATH, "org.freedesktop.DBus.Introspectable", "Introspect", NULL, "(s)", &error);
  g_assert_no_error (error);
  g_variant_get (listed, "(&s)", &xml);
  g_assert_nonnull (strstr (xml, "<node name=\"c\"/>"));
  answer = who_both (f, TREE_PATH "/c", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (answer, ==, TREE_PATH "/c");
  g_assert_cmpuint (carried (&f->lane_traffic, THING_IFACE ".Who"), ==, 0);

  peer_test_server_set_node (f->ts, f->objects.nodes, "c", FALSE);
  gone = who_both (f, TREE_PATH "/c", &error);
  g_assert_null (gone);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_clear_error (&error);
  gone_name = get_both (f, TREE_PATH "/c", THING_IFACE, "Name", &error);
  g_assert_null (gone_name);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  /* GDBus's answers: the lane handed both calls on. */
  g_assert_cmpuint (carried (&f->lane_traffic, THING_IFACE ".Who"), ==, 1);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 1);
}

/* --- peer-server's jobs --------------------------------------------------- */

typedef struct {
  GPtrArray *removed;                   /* paths InterfacesRemoved named */
} JobEvents;

static void
on_interfaces_removed (PeerClient *client,
                       const char *object_path,
                       const char *interface_name,
                       const char *signal_name,
                       GVariant   *parameters,
                       gpointer    user_data)
{
  JobEvents *events = user_data;
  const char *path;

  g_variant_get (parameters, "(&o@as)", &path, NULL);
  g_ptr_array_add (events->removed, g_strdup (path));
}

/* Jobs that finish from now on go soon after. */
static gboolean
shorten_linger (gpointer user_data)
{
  Objects *o = user_data;

  peer_job_service_set_linger (o->server, 50);
  return G_SOURCE_REMOVE;
}

static char *
start_job (PeerClient *client,
           guint       steps,
           guint       step_ms)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_sync (client, PEER_HELPER_PATH, "org.libpeer.Helper1", "StartJob",
                                                     g_variant_new ("(suu)", "count", steps, step_ms),
                                                     G_VARIANT_TYPE ("(o)"), 5000, NULL, NULL, NULL, &error);
  char *path;

  g_assert_no_error (error);
  g_variant_get (reply, "(o)", &path);
  return path;
}

static void
test_jobs (Fixture      *f,
           gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = start_job (f->lane, 1000, 1000);
  g_autofree char *quick = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) state = NULL;
  g_autoptr(GVariant) again = NULL;
  JobEvents events = { g_ptr_array_new_with_free_func (g_free) };
  guint id;

  /* A child's method and property, over the lane. */
  reply = peer_client_call_sync (f->lane, path, "org.libpeer.Job1", "Cancel", NULL, G_VARIANT_TYPE_UNIT, 5000,
                                 NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  state = get_both (f, path, "org.libpeer.Job1", "State", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "cancelled");
  g_assert_cmpuint (carried (&f->lane_traffic, "org.libpeer.Job1.Cancel"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);
  /* The handler's own refusal, from the lane: already cancelled. */
  again = call_both (f, path, "org.libpeer.Job1", "Cancel", NULL, "()", &error);
  g_assert_null (again);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_cmpuint (carried (&f->lane_traffic, "org.libpeer.Job1.Cancel"), ==, 0);

  /* A job that finished and went: as GDBus says on the connection. */
  id = peer_client_subscribe_signal (f->plain, PEER_HELPER_PATH, "org.freedesktop.DBus.ObjectManager",
                                     "InterfacesRemoved", on_interfaces_removed, &events, NULL);
  {
    g_autoptr(GVariant) sync = peer_client_call_sync (f->plain, PEER_BENCH_PATH, "org.libpeer.Bench1", "Ping",
                                                      NULL, NULL, 5000, NULL, NULL, NULL, &error);
    g_assert_no_error (error);
  }
  peer_test_server_invoke (f->ts, shorten_linger, &f->objects);
  quick = start_job (f->plain, 1, 0);
  PEER_TEST_WAIT_UNTIL (g_ptr_array_find_with_equal_func (events.removed, quick, g_str_equal, NULL));
  g_clear_pointer (&reply, g_variant_unref);
  reply = call_both (f, quick, "org.libpeer.Job1", "Cancel", NULL, "()", &error);
  g_assert_null (reply);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_assert_cmpuint (carried (&f->lane_traffic, "org.libpeer.Job1.Cancel"), ==, 1);

  peer_client_unsubscribe_signal (f->plain, id);
  g_ptr_array_unref (events.removed);
}

/* --- exported after Open, unexported since -------------------------------- */

static gboolean
export_late (gpointer user_data)
{
  Objects *o = user_data;
  g_autoptr(GError) error = NULL;

  o->late = props_new (o);
  g_assert_true (peer_server_export (o->server, LATE_PATH, o->late, &error));
  return G_SOURCE_REMOVE;
}

static gboolean
unexport_gone (gpointer user_data)
{
  Objects *o = user_data;

  peer_server_unexport (o->server, o->gone);
  return G_SOURCE_REMOVE;
}

/* Exported again at its path, as another PeerInterface. */
static gboolean
export_gone_again (gpointer user_data)
{
  Objects *o = user_data;
  g_autoptr(GError) error = NULL;

  g_clear_object (&o->gone);
  o->gone = props_new (o);
  g_assert_true (peer_server_export (o->server, GONE_PATH, o->gone, &error));
  return G_SOURCE_REMOVE;
}

static gboolean
where (Fixture    *f,
       PeerClient *client,
       const char *path,
       const char *method)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_sync (client, path, PROPS_IFACE, method, NULL,
                                                     G_VARIANT_TYPE ("(b)"), 5000, NULL, NULL, NULL, &error);
  gboolean main;

  g_assert_no_error (error);
  g_variant_get (reply, "(b)", &main);
  return main;
}

static void
test_exported_after_open (Fixture      *f,
                          gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) name = NULL;
  guint32 id;

  g_assert_false (_peer_lane_client_has_method (_peer_client_get_lane (f->lane), LATE_PATH, PROPS_IFACE, "Where",
                                                &id));
  peer_test_server_invoke (f->ts, export_late, &f->objects);
  /* A thread-safe handler on the lane's thread, the other in the main
   * context, as for the table's methods. */
  g_assert_true (where (f, f->lane, LATE_PATH, "Where"));
  g_assert_false (where (f, f->lane, LATE_PATH, "WhereSafe"));
  name = get_both (f, LATE_PATH, PROPS_IFACE, "Name", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_string (name, NULL), ==, "first");
  g_assert_cmpuint (carried (&f->lane_traffic, PROPS_IFACE ".Where"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPS_IFACE ".WhereSafe"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);
  /* No such method there: GDBus's answer. */
  g_assert_null (call_both (f, LATE_PATH, PROPS_IFACE, "Nope", NULL, NULL, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_clear_error (&error);
  /* Wrong arguments: GDBus's answer too. */
  g_assert_null (call_both (f, LATE_PATH, PROPS_IFACE, "Where", g_variant_new ("(u)", 1), NULL, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS);
}

static void
test_unexported_after_open (Fixture      *f,
                            gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  guint32 id;

  /* In the table, and served from it. */
  g_assert_true (_peer_lane_client_has_method (_peer_client_get_lane (f->lane), GONE_PATH, PROPS_IFACE, "Where",
                                               &id));
  g_assert_true (where (f, f->lane, GONE_PATH, "Where"));

  /* Gone: as on the connection, not the stale entry's handler. */
  peer_test_server_invoke (f->ts, unexport_gone, &f->objects);
  g_assert_null (call_both (f, GONE_PATH, PROPS_IFACE, "Where", NULL, "(b)", &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_clear_error (&error);
  /* The entry is stale from then on: by name. */
  g_assert_false (_peer_lane_client_has_method (_peer_client_get_lane (f->lane), GONE_PATH, PROPS_IFACE, "Where",
                                                &id));

  /* Back, as another interface: served again, by name, over the lane. */
  peer_test_server_invoke (f->ts, export_gone_again, &f->objects);
  g_assert_true (where (f, f->lane, GONE_PATH, "Where"));
  g_assert_cmpuint (carried (&f->lane_traffic, PROPS_IFACE ".Where"), ==, 1);
}

/* Asynchronous calls take the same ways: by name, on the connection when
 * the lane hands them on, and a stale entry's by name. */
typedef struct {
  guint done;
  GVariant *reply;
  GError *error;
} Async;

static void
on_async_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  Async *a = user_data;

  a->reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &a->error);
  a->done++;
}

static void
async_call (Fixture    *f,
            const char *path,
            const char *iface,
            const char *member,
            GVariant   *params,
            const char *reply_type,
            Async      *a)
{
  g_clear_pointer (&a->reply, g_variant_unref);
  g_clear_error (&a->error);
  a->done = 0;
  peer_client_call (f->lane, path, iface, member, params, reply_type ? G_VARIANT_TYPE (reply_type) : NULL, -1,
                    NULL, NULL, on_async_done, a);
  PEER_TEST_WAIT_UNTIL (a->done == 1);
}

static void
test_async (Fixture      *f,
            gconstpointer data)
{
  Async a = { 0 };
  g_autoptr(GError) plain_error = NULL;
  g_autoptr(GVariant) plain = NULL;

  async_call (f, TREE_PATH "/a", THING_IFACE, "Who", NULL, "(o)", &a);
  g_assert_no_error (a.error);
  g_assert_cmpstr (g_variant_get_type_string (a.reply), ==, "(o)");
  async_call (f, PROPS_PATH, PROPERTIES, "Get", g_variant_new ("(ss)", PROPS_IFACE, "Count"), "(v)", &a);
  g_assert_no_error (a.error);
  g_assert_cmpuint (carried (&f->lane_traffic, THING_IFACE ".Who"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);

  /* Refused by GDBus, on the connection: the same error. */
  plain = peer_client_call_sync (f->plain, PROPS_PATH, PROPERTIES, "Get", g_variant_new ("(ss)", PROPS_IFACE, "Nope"),
                                 G_VARIANT_TYPE ("(v)"), -1, NULL, NULL, NULL, &plain_error);
  async_call (f, PROPS_PATH, PROPERTIES, "Get", g_variant_new ("(ss)", PROPS_IFACE, "Nope"), "(v)", &a);
  assert_same_error (plain_error, a.error);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 1);
  /* The wrong reply type, in GDBus's words. */
  g_clear_error (&plain_error);
  g_clear_pointer (&plain, g_variant_unref);
  plain = peer_client_call_sync (f->plain, TREE_PATH "/a", THING_IFACE, "Who", NULL, G_VARIANT_TYPE ("(s)"), -1, NULL,
                                 NULL, NULL, &plain_error);
  async_call (f, TREE_PATH "/a", THING_IFACE, "Who", NULL, "(s)", &a);
  assert_same_error (plain_error, a.error);

  /* A stale entry: by name, then on the connection. */
  peer_test_server_invoke (f->ts, unexport_gone, &f->objects);
  async_call (f, GONE_PATH, PROPS_IFACE, "Where", NULL, "(b)", &a);
  g_assert_error (a.error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  peer_test_server_invoke (f->ts, export_gone_again, &f->objects);
  async_call (f, GONE_PATH, PROPS_IFACE, "Where", NULL, "(b)", &a);
  g_assert_no_error (a.error);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPS_IFACE ".Where"), ==, 1);

  g_clear_pointer (&a.reply, g_variant_unref);
  g_clear_error (&a.error);
}

/* --- a skeleton exported after Open --------------------------------------- */

static gboolean
export_skeleton (gpointer user_data)
{
  Objects *o = user_data;
  g_autoptr(GError) error = NULL;

  o->skeleton = peer_proto_job1_skeleton_new ();
  peer_proto_job1_set_state (o->skeleton, "running");
  peer_proto_job1_set_progress (o->skeleton, 0.5);
  g_signal_connect (o->skeleton, "handle-cancel", G_CALLBACK (on_handle_cancel), o);
  g_assert_true (peer_server_export_skeleton (o->server, SKELETON_PATH, G_DBUS_INTERFACE_SKELETON (o->skeleton),
                                              &error));
  return G_SOURCE_REMOVE;
}

static gboolean
read_cancels (gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_cmpuint (f->objects.cancels, ==, 2);
  return G_SOURCE_REMOVE;
}

static void
test_skeleton_after_open (Fixture      *f,
                          gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) state = NULL;
  g_autoptr(GVariant) all = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) cancelled = NULL;
  Async a = { 0 };
  double progress;

  peer_test_server_invoke (f->ts, export_skeleton, &f->objects);

  /* Its properties, through its own getters, over the lane. */
  state = get_both (f, SKELETON_PATH, "org.libpeer.Job1", "State", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (g_variant_get_string (state, NULL), ==, "running");
  all = call_both (f, SKELETON_PATH, PROPERTIES, "GetAll", g_variant_new ("(s)", "org.libpeer.Job1"),
                   "(a{sv})", &error);
  g_assert_no_error (error);
  {
    g_autoptr(GVariant) dict = g_variant_get_child_value (all, 0);

    g_assert_true (g_variant_lookup (dict, "Progress", "d", &progress));
  }
  g_assert_cmpfloat (progress, ==, 0.5);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".GetAll"), ==, 0);
  /* Read-only, refused as GDBus refuses it. */
  g_assert_false (peer_client_set_property_sync (f->lane, SKELETON_PATH, "org.libpeer.Job1", "State",
                                                 g_variant_new_string ("done"), NULL, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS);
  g_clear_error (&error);

  /* Its methods take a GDBusMethodInvocation: on the connection, which
   * the caller never notices. */
  reply = peer_client_call_sync (f->lane, SKELETON_PATH, "org.libpeer.Job1", "Cancel", NULL, G_VARIANT_TYPE_UNIT,
                                 5000, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  async_call (f, SKELETON_PATH, "org.libpeer.Job1", "Cancel", NULL, "()", &a);
  g_assert_no_error (a.error);
  g_assert_cmpuint (carried (&f->lane_traffic, "org.libpeer.Job1.Cancel"), ==, 2);
  peer_test_server_invoke (f->ts, read_cancels, f);
  cancelled = get_both (f, SKELETON_PATH, "org.libpeer.Job1", "State", &error);
  g_assert_cmpstr (g_variant_get_string (cancelled, NULL), ==, "cancelled");
  g_clear_pointer (&a.reply, g_variant_unref);
}

/* --- the frames ------------------------------------------------------------ */

/* A CALL frame written on the lane's fd by hand, and the frame that
 * answers it read the same way (no other call is in flight, and no
 * thread reads the lane). @body: sunk. */
static void
raw_call (Fixture       *f,
          guint32        target,
          guint8         flags,
          GVariant      *body,
          PeerLaneFrame *frame)
{
  static guint32 serial = 1000000;      /* far from the client's own */
  PeerLaneClient *lane = _peer_client_get_lane (f->lane);
  int fd = _peer_lane_client_get_fd (lane);
  const PeerLaneWriteOptions write_options = { PEER_LANE_WAIT_BLOCK, .flags = flags };
  PeerLaneBuffers *buffers = _peer_lane_buffers_new ();
  const PeerLaneReadOptions read_options = { .max_fds = 16, .max_body = G_MAXUINT32, .buffers = buffers };
  g_autofree guint8 *buffer = g_malloc (sizeof (PeerLaneHeader) + PEER_LANE_MAX_INLINE);
  g_autoptr(GVariant) owned = g_variant_ref_sink (body);
  g_autoptr(GError) error = NULL;

  serial++;
  g_assert_true (_peer_lane_write_frame_full (fd, PEER_LANE_KIND_CALL, serial, target, owned, NULL,
                                              &write_options, &error));
  g_assert_no_error (error);
  g_assert_true (_peer_lane_read_frame_full (fd, buffer, &read_options, frame, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (frame->header.target, ==, serial);
  _peer_lane_buffers_unref (buffers);
}

static void
assert_error_frame (PeerLaneFrame *frame,
                    const char    *name)
{
  g_autoptr(GVariant) body = NULL;
  const char *sent;

  g_assert_cmpint (frame->header.kind, ==, PEER_LANE_KIND_ERROR);
  body = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ss)"), frame->body, FALSE));
  g_variant_get (body, "(&s&s)", &sent, NULL);
  g_assert_cmpstr (sent, ==, name);
  _peer_lane_frame_clear (frame);
}

static GVariant *
by_name (const char *path,
         const char *iface,
         const char *member,
         GVariant   *args)
{
  return g_variant_new ("(sssv)", path, iface, member, args);
}

/* What the frames say: a REPLY of v for a call by name, REDIRECT for what
 * the lane does not serve, and neither for a client that does not say it
 * takes them (one from before calls by name: its table calls are served
 * as before, even a stale entry's). */
static void
test_frames (Fixture      *f,
             gconstpointer data)
{
  PeerLaneClient *lane = _peer_client_get_lane (f->lane);
  PeerLaneFrame frame;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) tuple = NULL;
  g_autoptr(GVariant) value = NULL;
  guint32 id;

  /* Served: the reply tuple, in a variant. */
  raw_call (f, PEER_LANE_TARGET_BY_NAME, PEER_LANE_FLAG_REDIRECTABLE,
            by_name (PROPS_PATH, PROPERTIES, "Get", g_variant_new ("(ss)", PROPS_IFACE, "Count")), &frame);
  g_assert_cmpint (frame.header.kind, ==, PEER_LANE_KIND_REPLY);
  reply = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE_VARIANT, frame.body, FALSE));
  tuple = g_variant_get_variant (reply);
  g_variant_get (tuple, "(v)", &value);
  g_assert_cmpint (g_variant_get_int32 (value), ==, 3);
  _peer_lane_frame_clear (&frame);

  /* Not served: REDIRECT, with nothing in it. */
  raw_call (f, PEER_LANE_TARGET_BY_NAME, PEER_LANE_FLAG_REDIRECTABLE,
            by_name ("/test/nowhere", PROPS_IFACE, "Where", g_variant_new ("()")), &frame);
  g_assert_cmpint (frame.header.kind, ==, PEER_LANE_KIND_REDIRECT);
  g_assert_null (frame.fd_list);
  _peer_lane_frame_clear (&frame);
  raw_call (f, PEER_LANE_TARGET_BY_NAME, PEER_LANE_FLAG_REDIRECTABLE,
            by_name (PEER_LANE_PATH, PEER_LANE_INTERFACE, "Open", g_variant_new ("()")), &frame);
  g_assert_cmpint (frame.header.kind, ==, PEER_LANE_KIND_REDIRECT);
  _peer_lane_frame_clear (&frame);

  /* What the D-Bus path's validation refuses. */
  raw_call (f, PEER_LANE_TARGET_BY_NAME, PEER_LANE_FLAG_REDIRECTABLE,
            by_name ("not/a/path", PROPS_IFACE, "Where", g_variant_new ("()")), &frame);
  assert_error_frame (&frame, "org.freedesktop.DBus.Error.InvalidArgs");
  raw_call (f, PEER_LANE_TARGET_BY_NAME, PEER_LANE_FLAG_REDIRECTABLE,
            by_name (PROPS_PATH, PROPS_IFACE, "Where", g_variant_new_uint32 (1)), &frame);
  assert_error_frame (&frame, "org.freedesktop.DBus.Error.InvalidArgs");

  /* A client that does not take REDIRECT: no calls by name... */
  raw_call (f, PEER_LANE_TARGET_BY_NAME, 0,
            by_name (PROPS_PATH, PROPERTIES, "Get", g_variant_new ("(ss)", PROPS_IFACE, "Count")), &frame);
  assert_error_frame (&frame, "org.freedesktop.DBus.Error.UnknownMethod");

  /* ...and a stale entry served as before; REDIRECT for one that does. */
  g_assert_true (_peer_lane_client_has_method (lane, GONE_PATH, PROPS_IFACE, "Where", &id));
  peer_test_server_invoke (f->ts, unexport_gone, &f->objects);
  raw_call (f, id, 0, g_variant_new ("()"), &frame);
  g_assert_cmpint (frame.header.kind, ==, PEER_LANE_KIND_REPLY);
  _peer_lane_frame_clear (&frame);
  raw_call (f, id, PEER_LANE_FLAG_REDIRECTABLE, g_variant_new ("()"), &frame);
  g_assert_cmpint (frame.header.kind, ==, PEER_LANE_KIND_REDIRECT);
  _peer_lane_frame_clear (&frame);

  /* The lane is as good as before. */
  g_assert_true (peer_client_has_lane (f->lane));
  g_assert_true (where (f, f->lane, PROPS_PATH, "Where"));
}

/* --- monitors, the log and the capture ------------------------------------- */

typedef struct {
  GDBusConnection *connection;
  GAsyncQueue *received;                /* GDBusMessage* */
  guint filter;
} Monitor;

static GDBusMessage *
monitor_record (GDBusConnection *connection,
                GDBusMessage    *message,
                gboolean         incoming,
                gpointer         user_data)
{
  Monitor *m = user_data;

  if (!incoming)
    return message;
  g_async_queue_push (m->received, g_object_ref (message));
  /* A monitor only listens: GDBus would answer the calls it is shown. */
  if (g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL)
    {
      g_object_unref (message);
      return NULL;
    }
  return message;
}

static void
test_monitor (Fixture      *f,
              gconstpointer data)
{
  Monitor m = { NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GDBusMessage) seen_call = NULL;
  g_autoptr(GDBusMessage) seen_reply = NULL;
  g_autoptr(GDBusMessage) seen_who = NULL;
  const char *no_rules[] = { NULL };
  const char *iface, *property;

  m.received = g_async_queue_new_full (g_object_unref);
  m.connection = g_dbus_connection_new_for_address_sync (f->ts->address,
                                                         G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
                                                         G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
                                                         NULL, NULL, &error);
  g_assert_no_error (error);
  m.filter = g_dbus_connection_add_filter (m.connection, monitor_record, &m, NULL);
  reply = g_dbus_connection_call_sync (m.connection, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus.Monitoring", "BecomeMonitor",
                                       g_variant_new ("(^asu)", no_rules, 0), NULL, G_DBUS_CALL_FLAGS_NONE,
                                       10000, NULL, &error);
  g_assert_no_error (error);

  value = peer_client_get_property_sync (f->lane, PROPS_PATH, PROPS_IFACE, "Count", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (carried (&f->lane_traffic, PROPERTIES ".Get"), ==, 0);

  /* The call by name and its reply, as the D-Bus messages they stand for. */
  seen_call = peer_test_wait_message (m.received, G_DBUS_MESSAGE_TYPE_METHOD_CALL, "Get", 0);
  g_assert_cmpstr (g_dbus_message_get_path (seen_call), ==, PROPS_PATH);
  g_assert_cmpstr (g_dbus_message_get_interface (seen_call), ==, PROPERTIES);
  g_variant_get (g_dbus_message_get_body (seen_call), "(&s&s)", &iface, &property);
  g_assert_cmpstr (iface, ==, PROPS_IFACE);
  g_assert_cmpstr (property, ==, "Count");
  seen_reply = peer_test_wait_message (m.received, G_DBUS_MESSAGE_TYPE_METHOD_RETURN, NULL,
                                       g_dbus_message_get_serial (seen_call));
  g_assert_cmpstr (g_dbus_message_get_signature (seen_reply), ==, "v");
  g_assert_cmpstr (g_dbus_message_get_sender (seen_reply), ==, ":1.0");

  /* A subtree child's call too. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = peer_client_call_sync (f->lane, TREE_PATH "/a", THING_IFACE, "Who", NULL, G_VARIANT_TYPE ("(o)"), 5000,
                                 NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  seen_who = peer_test_wait_message (m.received, G_DBUS_MESSAGE_TYPE_METHOD_CALL, "Who", 0);
  g_assert_cmpstr (g_dbus_message_get_path (seen_who), ==, TREE_PATH "/a");

  g_dbus_connection_close_sync (m.connection, NULL, NULL);
  g_dbus_connection_remove_filter (m.connection, m.filter);
  g_object_unref (m.connection);
  g_async_queue_unref (m.received);
}

/* The members of the messages in a pcap capture, as test-debug.c reads them. */
static GPtrArray *
read_capture_members (const char *path)
{
  g_autofree char *contents = NULL;
  g_autoptr(GError) error = NULL;
  GPtrArray *members = g_ptr_array_new_with_free_func (g_free);
  gsize length, offset;

  g_file_get_contents (path, &contents, &length, &error);
  g_assert_no_error (error);
  for (offset = 24; offset < length;)
    {
      g_autoptr(GDBusMessage) message = NULL;
      guint32 record[4];

      g_assert_cmpuint (length - offset, >=, sizeof record);
      memcpy (record, contents + offset, sizeof record);
      offset += sizeof record;
      g_assert_cmpuint (length - offset, >=, record[2]);
      message = g_dbus_message_new_from_blob ((guchar *) contents + offset, record[2],
                                              G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
      g_assert_no_error (error);
      if (g_dbus_message_get_message_type (message) == G_DBUS_MESSAGE_TYPE_METHOD_CALL)
        g_ptr_array_add (members, g_strdup_printf ("%s.%s", g_dbus_message_get_interface (message),
                                                   g_dbus_message_get_member (message)));
      offset += record[2];
    }
  return members;
}

/* peer-client's get over a lane, with PEER_DEBUG=messages: both ends log
 * the call by name and its reply as the D-Bus messages they stand for;
 * with --capture, the capture has it too. */
static void
test_log (void)
{
  const char *argv[] = { peer_test_program ("PEER_CLIENT"), "--lane", "--spawn", "--",
                         peer_test_program ("PEER_SERVER"), "get", PEER_HELPER_PATH, "org.libpeer.Helper1.Version",
                         NULL };
  /* The server's lines name the peer between the two parts. */
  const char *expected[][2] = {
    { " client lane > call serial=", "" },
    { " server lane :", " < call serial=" },
    { " server lane :", " > return serial=" },
    { " client lane < return serial=", "" },
  };
  g_auto(GStrv) envp = g_environ_setenv (g_get_environ (), "PEER_DEBUG", "messages", TRUE);
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_auto(GStrv) lines = NULL;
  g_autoptr(GError) error = NULL;
  int status;

  envp = g_environ_unsetenv (envp, "PEER_CAPTURE");
  g_assert_true (g_spawn_sync (NULL, (char **) argv, envp, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                               &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  lines = g_strsplit (err, "\n", -1);
  for (guint e = 0; e < G_N_ELEMENTS (expected); e++)
    {
      gboolean found = FALSE;

      for (guint i = 0; lines[i] != NULL && !found; i++)
        found = strstr (lines[i], expected[e][0]) != NULL && strstr (lines[i], expected[e][1]) != NULL &&
                (e >= 2 ? strstr (lines[i], "signature='v'") != NULL
                        : strstr (lines[i], "path=" PEER_HELPER_PATH " member=" PROPERTIES ".Get signature='ss'")
                          != NULL);
      if (!found)
        g_error ("no log line with \"%s…%s\" for the Get in:\n%s", expected[e][0], expected[e][1], err);
    }
  /* Not on the connection. */
  for (guint i = 0; lines[i] != NULL; i++)
    if (strstr (lines[i], " client > call serial=") != NULL && strstr (lines[i], PROPERTIES ".Get ") != NULL)
      g_error ("the Get went on the connection: %s", lines[i]);

  {
    g_autofree char *dir = peer_test_make_dir ();
    g_autofree char *path = g_build_filename (dir, "capture.pcap", NULL);
    const char *capture_argv[] = { peer_test_program ("PEER_CLIENT"), "--capture", path, "--lane", "--spawn", "--",
                                   peer_test_program ("PEER_SERVER"), "get", PEER_HELPER_PATH,
                                   "org.libpeer.Helper1.Version", NULL };
    g_auto(GStrv) plain_envp = g_environ_unsetenv (g_get_environ (), "PEER_DEBUG");
    g_autofree char *capture_out = NULL;
    g_autoptr(GPtrArray) members = NULL;

    plain_envp = g_environ_unsetenv (plain_envp, "PEER_CAPTURE");
    g_assert_true (g_spawn_sync (NULL, (char **) capture_argv, plain_envp, G_SPAWN_DEFAULT, NULL, NULL,
                                 &capture_out, NULL, &status, &error));
    g_assert_no_error (error);
    g_assert_true (g_spawn_check_wait_status (status, NULL));
    members = read_capture_members (path);
    /* The lane's Open on the connection, the Get on the lane. */
    g_assert_true (g_ptr_array_find_with_equal_func (members, PEER_LANE_INTERFACE ".Open", g_str_equal, NULL));
    g_assert_true (g_ptr_array_find_with_equal_func (members, PROPERTIES ".Get", g_str_equal, NULL));
    peer_test_remove_dir (dir);
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/lane-objects/properties", test_properties);
  ADD ("/peer/lane-objects/properties/refused", test_properties_refused);
  ADD ("/peer/lane-objects/properties/changed-before-reply", test_properties_changed_order);
  ADD ("/peer/lane-objects/subtree", test_subtree);
  ADD ("/peer/lane-objects/subtree/child-gone", test_subtree_child_gone);
  ADD ("/peer/lane-objects/jobs", test_jobs);
  ADD ("/peer/lane-objects/exported-after-open", test_exported_after_open);
  ADD ("/peer/lane-objects/unexported-after-open", test_unexported_after_open);
  ADD ("/peer/lane-objects/async", test_async);
  ADD ("/peer/lane-objects/skeleton-after-open", test_skeleton_after_open);
  ADD ("/peer/lane-objects/monitor", test_monitor);
  ADD ("/peer/lane-objects/frames", test_frames);
#undef ADD
  g_test_add_func ("/peer/lane-objects/log", test_log);
  return g_test_run ();
}
