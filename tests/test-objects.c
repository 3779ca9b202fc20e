/* test-objects.c: objects as GDBus serves them, through libpeer: subtrees,
 * one interface at two paths, a GObject's properties, a gdbus-codegen
 * skeleton, and ObjectManagers (read by GDBusObjectManagerClient and by
 * busctl).
 *
 * Every test runs twice: from a plain PeerClient, and from one with a
 * lane open (calls the lane serves take it; the rest its D-Bus
 * connection). The server runs in its own thread (PeerTestServer), where
 * the test's objects are made and changed through
 * peer_test_server_invoke().
 */
#include "config.h"

#include <signal.h>
#include <string.h>

#include "peer-protocol.h"
#include "peer-test-util.h"
#include "services.h"

#define THING_IFACE  "org.libpeer.Test.Thing1"
#define GTHING_IFACE "org.libpeer.Test.GThing1"
#define TREE_PATH    "/test/tree"

static const char test_xml[] =
  "<node>"
  "  <interface name='" THING_IFACE "'>"
  "    <method name='Who'><arg name='path' type='o' direction='out'/></method>"
  "    <property name='Name' type='s' access='readwrite'/>"
  "    <signal name='Poked'><arg name='what' type='s'/></signal>"
  "  </interface>"
  "  <interface name='" GTHING_IFACE "'>"
  "    <property name='Label' type='s' access='readwrite'/>"
  "    <property name='Count' type='i' access='read'/>"
  "    <property name='Level' type='d' access='readwrite'/>"
  "  </interface>"
  "  <interface name='org.libpeer.Test.Mismatch1'>"
  "    <property name='Count' type='s' access='read'/>"
  "  </interface>"
  "</node>";

/* --- a GObject to export ------------------------------------------------ */

#define TEST_TYPE_THING (test_thing_get_type ())
G_DECLARE_FINAL_TYPE (TestThing, test_thing, TEST, THING, GObject)

struct _TestThing
{
  GObject parent_instance;
  char *label;
  int count;
  double level;
};

enum { PROP_0, PROP_LABEL, PROP_COUNT, PROP_LEVEL, N_PROPS };
static GParamSpec *thing_props[N_PROPS];

G_DEFINE_FINAL_TYPE (TestThing, test_thing, G_TYPE_OBJECT)

static void
test_thing_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  TestThing *self = TEST_THING (object);

  switch (prop_id)
    {
    case PROP_LABEL: g_value_set_string (value, self->label); break;
    case PROP_COUNT: g_value_set_int (value, self->count); break;
    case PROP_LEVEL: g_value_set_double (value, self->level); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
test_thing_set_property (GObject      *object,
                         guint         prop_id,
                         const GValue *value,
                         GParamSpec   *pspec)
{
  TestThing *self = TEST_THING (object);

  switch (prop_id)
    {
    case PROP_LABEL:
      g_free (self->label);
      self->label = g_value_dup_string (value);
      break;
    case PROP_COUNT: self->count = g_value_get_int (value); break;
    case PROP_LEVEL: self->level = g_value_get_double (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
test_thing_finalize (GObject *object)
{
  g_free (TEST_THING (object)->label);
  G_OBJECT_CLASS (test_thing_parent_class)->finalize (object);
}

static void
test_thing_class_init (TestThingClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = test_thing_get_property;
  object_class->set_property = test_thing_set_property;
  object_class->finalize = test_thing_finalize;
  thing_props[PROP_LABEL] = g_param_spec_string ("label", NULL, NULL, "", G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  /* Written by the program only: read-only on D-Bus. */
  thing_props[PROP_COUNT] = g_param_spec_int ("count", NULL, NULL, 0, 1000, 0,
                                              G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  thing_props[PROP_LEVEL] = g_param_spec_double ("level", NULL, NULL, 0.0, 1.0, 0.0,
                                                 G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, thing_props);
}

static void
test_thing_init (TestThing *self)
{
  self->label = g_strdup ("");
}

/* --- the server's side -------------------------------------------------- */

/* Everything below is touched in the server's thread only. */
typedef struct {
  PeerServer *server;
  PeerInterface *thing;                 /* at /test/one, /test/two and the tree's children */
  PeerSubtree *tree;
  GHashTable *nodes;                    /* the tree's children; "vanishing" is found twice, then gone */
  TestThing *gobject;
  PeerInterface *gthing;
  PeerProtoJob1 *skeleton;
  guint cancels;
  gboolean refuse_cancel;
  PeerInterface *extra;                 /* exported and unexported by tests */
} Objects;

typedef struct {
  PeerTestServer *ts;
  Objects objects;
  PeerClient *client;
  gboolean lane;
} Fixture;

static void
handle_who (PeerCall *call,
            gpointer  user_data)
{
  peer_call_return_value (call, g_variant_new ("(o)", peer_call_get_object_path (call)));
}

static gboolean
on_handle_cancel (PeerProtoJob1         *skeleton,
                  GDBusMethodInvocation *invocation,
                  gpointer               user_data)
{
  Objects *o = user_data;

  if (o->refuse_cancel)
    {
      g_dbus_method_invocation_return_error (invocation, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED,
                                             "Not this one");
      return TRUE;
    }
  o->cancels++;
  peer_proto_job1_set_state (skeleton, "cancelled");
  peer_proto_job1_emit_finished (skeleton, FALSE, "cancelled by the test");
  peer_proto_job1_complete_cancel (skeleton, invocation);
  return TRUE;
}

static gboolean
set_up_objects (gpointer user_data)
{
  Fixture *f = user_data;
  Objects *o = &f->objects;
  static const PeerMethodEntry entries[] = {
    { "Who", handle_who, PEER_METHOD_FLAGS_THREAD_SAFE },
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml (test_xml, &error);

  g_assert_no_error (error);
  o->server = f->ts->server;
  o->thing = peer_interface_new (g_dbus_node_info_lookup_interface (node, THING_IFACE));
  g_assert_true (peer_interface_add_methods (o->thing, entries, G_N_ELEMENTS (entries), NULL, &error));
  peer_interface_set_property (o->thing, "Name", g_variant_new_string ("shared"), NULL);
  g_assert_true (peer_interface_set_object_property (o->thing, "/test/one", "Name", g_variant_new_string ("one"), &error));
  g_assert_true (peer_interface_set_object_property (o->thing, "/test/two", "Name", g_variant_new_string ("two"), &error));
  g_assert_true (peer_server_export (o->server, "/test/one", o->thing, &error));
  g_assert_true (peer_server_export (o->server, "/test/two", o->thing, &error));
  g_assert_no_error (error);

  o->tree = peer_test_tree_export (o->server, TREE_PATH, o->thing, TRUE, &o->nodes);

  o->gobject = g_object_new (TEST_TYPE_THING, "label", "first", "count", 1, NULL);
  o->gthing = peer_interface_new_for_object (G_OBJECT (o->gobject),
                                             g_dbus_node_info_lookup_interface (node, GTHING_IFACE), &error);
  g_assert_no_error (error);
  g_assert_true (peer_server_export (o->server, "/test/gthing", o->gthing, &error));

  o->skeleton = peer_proto_job1_skeleton_new ();
  peer_proto_job1_set_state (o->skeleton, "running");
  peer_proto_job1_set_progress (o->skeleton, 0.25);
  g_signal_connect (o->skeleton, "handle-cancel", G_CALLBACK (on_handle_cancel), o);
  g_assert_true (peer_server_export_skeleton (o->server, "/test/skeleton", G_DBUS_INTERFACE_SKELETON (o->skeleton),
                                              &error));

  g_assert_true (peer_server_add_object_manager (o->server, "/test", &error));
  g_assert_no_error (error);
  /* Jobs go soon after they finish. */
  peer_job_service_set_linger (o->server, 50);
  return G_SOURCE_REMOVE;
}

static gboolean
tear_down_objects (gpointer user_data)
{
  Objects *o = user_data;

  peer_server_unexport (o->server, o->thing);
  g_assert_true (peer_server_unexport_subtree (o->server, o->tree));
  peer_server_unexport (o->server, o->gthing);
  g_assert_true (peer_server_unexport_skeleton (o->server, G_DBUS_INTERFACE_SKELETON (o->skeleton)));
  if (o->extra != NULL)
    peer_server_unexport (o->server, o->extra);
  g_assert_true (peer_server_remove_object_manager (o->server, "/test"));
  g_assert_false (peer_server_remove_object_manager (o->server, "/test"));
  g_clear_object (&o->thing);
  g_clear_object (&o->tree);
  g_clear_object (&o->gthing);
  g_clear_object (&o->gobject);
  g_clear_object (&o->skeleton);
  g_clear_object (&o->extra);
  g_clear_pointer (&o->nodes, g_hash_table_unref);
  return G_SOURCE_REMOVE;
}

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  f->lane = GPOINTER_TO_INT (data);
  f->ts = peer_test_server_start ();
  /* Before the lane opens: its table lists what is exported then. */
  peer_test_server_invoke (f->ts, set_up_objects, f);
  f->client = peer_test_connect (f->ts, FALSE);
  /* Once a call is answered the server has taken the peer in: what it
   * emits from now on reaches this client. */
  {
    g_autoptr(GVariant) reply = peer_client_call_sync (f->client, "/test/one", THING_IFACE, "Who", NULL,
                                                       G_VARIANT_TYPE ("(o)"), 5000, NULL, NULL, NULL, &error);
    g_assert_no_error (error);
  }
  if (f->lane)
    {
      g_assert_true (peer_client_open_lane_sync (f->client, NULL, &error));
      g_assert_no_error (error);
    }
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_clear_object (&f->client);
  peer_test_server_invoke (f->ts, tear_down_objects, &f->objects);
  peer_test_server_free (f->ts);
}

/* --- the client's side -------------------------------------------------- */

static GVariant *
call (Fixture    *f,
      const char *path,
      const char *iface,
      const char *method,
      GVariant   *params,
      const char *reply_type,
      GError    **error)
{
  return peer_client_call_sync (f->client, path, iface, method, params,
                                reply_type != NULL ? G_VARIANT_TYPE (reply_type) : NULL,
                                5000, NULL, NULL, NULL, error);
}

static char *
get_string (Fixture    *f,
            const char *path,
            const char *iface,
            const char *property,
            GError    **error)
{
  g_autoptr(GVariant) reply = call (f, path, "org.freedesktop.DBus.Properties", "Get",
                                    g_variant_new ("(ss)", iface, property), "(v)", error);
  g_autoptr(GVariant) value = NULL;

  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(v)", &value);
  return g_variant_dup_string (value, NULL);
}

static gboolean
set_property (Fixture    *f,
              const char *path,
              const char *iface,
              const char *property,
              GVariant   *value,
              GError    **error)
{
  g_autoptr(GVariant) reply = call (f, path, "org.freedesktop.DBus.Properties", "Set",
                                    g_variant_new ("(ssv)", iface, property, value), "()", error);
  return reply != NULL;
}

static char *
introspect (Fixture    *f,
            const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = call (f, path, "org.freedesktop.DBus.Introspectable", "Introspect", NULL,
                                    "(s)", &error);
  char *xml;

  g_assert_no_error (error);
  g_variant_get (reply, "(s)", &xml);
  return xml;
}

static char *
who (Fixture    *f,
     const char *path,
     GError    **error)
{
  g_autoptr(GVariant) reply = call (f, path, THING_IFACE, "Who", NULL, "(o)", error);
  char *result = NULL;

  if (reply != NULL)
    g_variant_get (reply, "(o)", &result);
  return result;
}

/* Signals the client's connection receives, in the test's context. */
typedef struct {
  GPtrArray *paths;
  GPtrArray *bodies;
  guint id;
  GDBusConnection *connection;
} Watch;

static void
on_signal (GDBusConnection *connection,
           const char      *sender,
           const char      *object_path,
           const char      *interface_name,
           const char      *signal_name,
           GVariant        *parameters,
           gpointer         user_data)
{
  Watch *w = user_data;

  g_ptr_array_add (w->paths, g_strdup (object_path));
  g_ptr_array_add (w->bodies, g_variant_ref (parameters));
}

/* @arg0: (nullable) PropertiesChanged's interface, to leave out others'. */
static void
watch_start (Watch      *w,
             Fixture    *f,
             const char *interface_name,
             const char *member,
             const char *arg0)
{
  w->paths = g_ptr_array_new_with_free_func (g_free);
  w->bodies = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  w->connection = peer_client_get_dbus_connection (f->client);
  w->id = g_dbus_connection_signal_subscribe (w->connection, NULL, interface_name, member, NULL, arg0,
                                              G_DBUS_SIGNAL_FLAGS_NONE, on_signal, w, NULL);
}

static void
watch_stop (Watch *w)
{
  g_dbus_connection_signal_unsubscribe (w->connection, w->id);
  g_ptr_array_unref (w->paths);
  g_ptr_array_unref (w->bodies);
}

/* --- subtrees ------------------------------------------------------------ */

static void
test_subtree_introspect (Fixture      *f,
                         gconstpointer data)
{
  g_autofree char *root = introspect (f, TREE_PATH);
  g_autofree char *child = introspect (f, TREE_PATH "/a");
  g_autofree char *missing = introspect (f, TREE_PATH "/zz");

  g_assert_nonnull (strstr (root, "<node name=\"a\"/>"));
  g_assert_nonnull (strstr (root, "<node name=\"b\"/>"));
  /* Found by lookup, never listed. */
  g_assert_null (strstr (root, "vanishing"));
  g_assert_nonnull (strstr (child, THING_IFACE));
  g_assert_null (strstr (missing, THING_IFACE));
}

static void
test_subtree_call (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *a = who (f, TREE_PATH "/a", &error);
  g_autofree char *name_a = NULL;
  g_autofree char *name_b = NULL;
  g_autofree char *missing = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (a, ==, TREE_PATH "/a");
  name_a = get_string (f, TREE_PATH "/a", THING_IFACE, "Name", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (name_a, ==, "child a");

  /* A write to one child is that child's. */
  g_assert_true (set_property (f, TREE_PATH "/b", THING_IFACE, "Name", g_variant_new_string ("renamed"), &error));
  name_b = get_string (f, TREE_PATH "/b", THING_IFACE, "Name", &error);
  g_assert_cmpstr (name_b, ==, "renamed");
  g_clear_pointer (&name_a, g_free);
  name_a = get_string (f, TREE_PATH "/a", THING_IFACE, "Name", &error);
  g_assert_cmpstr (name_a, ==, "child a");

  /* No such child. */
  missing = who (f, TREE_PATH "/zz", &error);
  g_assert_null (missing);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
}

static void
test_subtree_child_gone (Fixture      *f,
                         gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *listed = NULL;
  g_autofree char *answer = NULL;
  g_autofree char *gone = NULL;
  g_autofree char *vanished = NULL;

  peer_test_server_set_node (f->ts, f->objects.nodes, "c", TRUE);
  listed = introspect (f, TREE_PATH);
  g_assert_nonnull (strstr (listed, "<node name=\"c\"/>"));
  answer = who (f, TREE_PATH "/c", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (answer, ==, TREE_PATH "/c");

  /* Listed, then gone before the call. */
  peer_test_server_set_node (f->ts, f->objects.nodes, "c", FALSE);
  gone = who (f, TREE_PATH "/c", &error);
  g_assert_null (gone);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_clear_error (&error);

  /* Gone after GDBus found it for the call, before its handler ran. A
   * lane finds the child and runs its handler in one step of the
   * server's main context: there is no such moment there (and a child
   * gone before the call is answered as above, by GDBus itself). */
  if (f->lane)
    return;
  vanished = who (f, TREE_PATH "/vanishing", &error);
  g_assert_null (vanished);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT);
}

/* --- one interface at two paths ------------------------------------------ */

static gboolean
rename_two (gpointer user_data)
{
  Objects *o = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (peer_interface_set_object_property (o->thing, "/test/two", "Name",
                                                     g_variant_new_string ("two, renamed"), &error));
  g_assert_true (peer_interface_emit_object_signal (o->thing, "/test/two", NULL, "Poked",
                                                    g_variant_new ("(s)", "two"), &error));
  /* Its negative twins: a path at once, a type, a signal's arguments. */
  g_assert_false (peer_server_export (o->server, "/test/two", o->thing, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_false (peer_interface_set_object_property (o->thing, "/test/two", "Name",
                                                      g_variant_new_int32 (2), &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_false (peer_interface_emit_object_signal (o->thing, "/test/two", NULL, "Poked",
                                                     g_variant_new ("(i)", 2), &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  return G_SOURCE_REMOVE;
}

static void
test_two_paths (Fixture      *f,
                gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *one = who (f, "/test/one", &error);
  g_autofree char *two = who (f, "/test/two", &error);
  g_autofree char *name_one = get_string (f, "/test/one", THING_IFACE, "Name", &error);
  g_autofree char *name_two = get_string (f, "/test/two", THING_IFACE, "Name", &error);
  Watch changed, poked;

  g_assert_no_error (error);
  g_assert_cmpstr (one, ==, "/test/one");
  g_assert_cmpstr (two, ==, "/test/two");
  g_assert_cmpstr (name_one, ==, "one");
  g_assert_cmpstr (name_two, ==, "two");

  watch_start (&changed, f, "org.freedesktop.DBus.Properties", "PropertiesChanged", THING_IFACE);
  watch_start (&poked, f, THING_IFACE, "Poked", NULL);
  peer_test_server_invoke (f->ts, rename_two, &f->objects);
  PEER_TEST_WAIT_UNTIL (changed.paths->len >= 1 && poked.paths->len >= 1);
  /* From /test/two alone. */
  g_assert_cmpuint (changed.paths->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (changed.paths, 0), ==, "/test/two");
  g_assert_cmpstr (g_ptr_array_index (poked.paths, 0), ==, "/test/two");
  g_clear_pointer (&name_one, g_free);
  name_one = get_string (f, "/test/one", THING_IFACE, "Name", &error);
  g_assert_cmpstr (name_one, ==, "one");
  g_clear_pointer (&name_two, g_free);
  name_two = get_string (f, "/test/two", THING_IFACE, "Name", &error);
  g_assert_cmpstr (name_two, ==, "two, renamed");
  watch_stop (&changed);
  watch_stop (&poked);
}

/* --- a GObject ----------------------------------------------------------- */

static gboolean
bump_count (gpointer user_data)
{
  Objects *o = user_data;

  g_object_set (o->gobject, "count", 7, NULL);
  return G_SOURCE_REMOVE;
}

static void
test_gobject_notify (Fixture      *f,
                     gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) changed_props = NULL;
  g_autoptr(GVariant) value = NULL;
  const char *iface;
  Watch changed;

  watch_start (&changed, f, "org.freedesktop.DBus.Properties", "PropertiesChanged", GTHING_IFACE);
  peer_test_server_invoke (f->ts, bump_count, &f->objects);
  PEER_TEST_WAIT_UNTIL (changed.paths->len >= 1);
  g_assert_cmpstr (g_ptr_array_index (changed.paths, 0), ==, "/test/gthing");
  g_variant_get (g_ptr_array_index (changed.bodies, 0), "(&s@a{sv}@as)", &iface, &changed_props, NULL);
  g_assert_cmpstr (iface, ==, GTHING_IFACE);
  g_assert_true (g_variant_lookup (changed_props, "Count", "i", NULL));
  watch_stop (&changed);

  reply = call (f, "/test/gthing", "org.freedesktop.DBus.Properties", "Get",
                g_variant_new ("(ss)", GTHING_IFACE, "Count"), "(v)", &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(v)", &value);
  g_assert_cmpint (g_variant_get_int32 (value), ==, 7);
}

typedef struct {
  Objects *o;
  char *label;
  int count;
  double level;
} ThingState;

static gboolean
read_thing (gpointer user_data)
{
  ThingState *state = user_data;

  g_object_get (state->o->gobject, "label", &state->label, "count", &state->count, "level", &state->level, NULL);
  return G_SOURCE_REMOVE;
}

static void
test_gobject_set (Fixture      *f,
                  gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *label = NULL;
  ThingState state = { &f->objects, NULL, 0, 0.0 };

  g_assert_true (set_property (f, "/test/gthing", GTHING_IFACE, "Label", g_variant_new_string ("from a peer"), &error));
  g_assert_true (set_property (f, "/test/gthing", GTHING_IFACE, "Level", g_variant_new_double (0.5), &error));
  g_assert_no_error (error);
  peer_test_server_invoke (f->ts, read_thing, &state);
  g_assert_cmpstr (state.label, ==, "from a peer");
  g_assert_cmpfloat (state.level, ==, 0.5);
  g_free (state.label);
  /* What peers read is the object's, through its notify. */
  label = get_string (f, "/test/gthing", GTHING_IFACE, "Label", &error);
  g_assert_cmpstr (label, ==, "from a peer");
}

static void
test_gobject_set_refused (Fixture      *f,
                          gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  ThingState state = { &f->objects, NULL, 0, 0.0 };

  /* Read-only, the wrong type, out of the GObject's range. */
  g_assert_false (set_property (f, "/test/gthing", GTHING_IFACE, "Count", g_variant_new_int32 (9), &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (set_property (f, "/test/gthing", GTHING_IFACE, "Label", g_variant_new_int32 (9), &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_false (set_property (f, "/test/gthing", GTHING_IFACE, "Level", g_variant_new_double (2.0), &error));
  g_assert_nonnull (error);

  peer_test_server_invoke (f->ts, read_thing, &state);
  g_assert_cmpstr (state.label, ==, "first");
  g_assert_cmpint (state.count, ==, 1);
  g_assert_cmpfloat (state.level, ==, 0.0);
  g_free (state.label);
}

static void
test_gobject_mismatch (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml (test_xml, &error);
  g_autoptr(TestThing) thing = g_object_new (TEST_TYPE_THING, NULL);
  g_autoptr(PeerInterface) iface = NULL;

  g_assert_no_error (error);
  iface = peer_interface_new_for_object (G_OBJECT (thing), g_dbus_node_info_lookup_interface (node, "org.libpeer.Test.Mismatch1"),
                                         &error);
  g_assert_null (iface);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  /* Its positive twin: the matching interface binds. */
  iface = peer_interface_new_for_object (G_OBJECT (thing), g_dbus_node_info_lookup_interface (node, GTHING_IFACE),
                                         &error);
  g_assert_no_error (error);
  g_assert_true (peer_interface_get_object (iface) == G_OBJECT (thing));
}

/* --- a gdbus-codegen skeleton --------------------------------------------- */

static gboolean
finish_skeleton (gpointer user_data)
{
  Objects *o = user_data;

  peer_proto_job1_set_progress (o->skeleton, 1.0);
  return G_SOURCE_REMOVE;
}

static gboolean
refuse_cancels (gpointer user_data)
{
  Objects *o = user_data;

  o->refuse_cancel = TRUE;
  return G_SOURCE_REMOVE;
}

static void
on_finished (PeerProtoJob1 *proxy,
             gboolean       success,
             const char    *message,
             gpointer       user_data)
{
  *(char **) user_data = g_strdup (message);
}

static void
test_skeleton (Fixture      *f,
               gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerProtoJob1) proxy = NULL;
  g_autofree char *finished = NULL;

  proxy = peer_proto_job1_proxy_new_sync (peer_client_get_dbus_connection (f->client), G_DBUS_PROXY_FLAGS_NONE,
                                          NULL, "/test/skeleton", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (peer_proto_job1_get_state (proxy), ==, "running");
  g_assert_cmpfloat (peer_proto_job1_get_progress (proxy), ==, 0.25);

  g_signal_connect (proxy, "finished", G_CALLBACK (on_finished), &finished);
  g_assert_true (peer_proto_job1_call_cancel_sync (proxy, NULL, &error));
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (finished != NULL && g_strcmp0 (peer_proto_job1_get_state (proxy), "cancelled") == 0);
  g_assert_cmpstr (finished, ==, "cancelled by the test");

  peer_test_server_invoke (f->ts, finish_skeleton, &f->objects);
  PEER_TEST_WAIT_UNTIL (peer_proto_job1_get_progress (proxy) == 1.0);

  /* Its negative twin: the handler's error reaches the proxy. */
  peer_test_server_invoke (f->ts, refuse_cancels, &f->objects);
  g_assert_false (peer_proto_job1_call_cancel_sync (proxy, NULL, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_ACCESS_DENIED);
}

/* --- ObjectManager ------------------------------------------------------- */

typedef struct {
  GPtrArray *added;                     /* paths */
  GPtrArray *removed;
} ManagerEvents;

static void
on_object_added (GDBusObjectManager *manager,
                 GDBusObject        *object,
                 gpointer            user_data)
{
  ManagerEvents *events = user_data;

  g_ptr_array_add (events->added, g_strdup (g_dbus_object_get_object_path (object)));
}

static void
on_object_removed (GDBusObjectManager *manager,
                   GDBusObject        *object,
                   gpointer            user_data)
{
  ManagerEvents *events = user_data;

  g_ptr_array_add (events->removed, g_strdup (g_dbus_object_get_object_path (object)));
}

static GDBusObjectManager *
manager_new (Fixture       *f,
             const char    *path,
             ManagerEvents *events)
{
  g_autoptr(GError) error = NULL;
  GDBusObjectManager *manager;

  manager = g_dbus_object_manager_client_new_sync (peer_client_get_dbus_connection (f->client),
                                                   G_DBUS_OBJECT_MANAGER_CLIENT_FLAGS_NONE, NULL, path,
                                                   NULL, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  events->added = g_ptr_array_new_with_free_func (g_free);
  events->removed = g_ptr_array_new_with_free_func (g_free);
  g_signal_connect (manager, "object-added", G_CALLBACK (on_object_added), events);
  g_signal_connect (manager, "object-removed", G_CALLBACK (on_object_removed), events);
  return manager;
}

static void
manager_events_clear (ManagerEvents *events)
{
  g_ptr_array_unref (events->added);
  g_ptr_array_unref (events->removed);
}

static char *
dup_property_string (GDBusObjectManager *manager,
                     const char         *path,
                     const char         *iface,
                     const char         *property)
{
  g_autoptr(GDBusInterface) proxy = g_dbus_object_manager_get_interface (manager, path, iface);
  g_autoptr(GVariant) value = NULL;

  if (proxy == NULL)
    return NULL;
  value = g_dbus_proxy_get_cached_property (G_DBUS_PROXY (proxy), property);
  return value != NULL ? g_variant_dup_string (value, NULL) : NULL;
}

static gboolean
add_extra (gpointer user_data)
{
  Objects *o = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusNodeInfo) node = g_dbus_node_info_new_for_xml (test_xml, &error);

  o->extra = peer_interface_new (g_dbus_node_info_lookup_interface (node, THING_IFACE));
  peer_interface_set_property (o->extra, "Name", g_variant_new_string ("extra"), NULL);
  g_assert_true (peer_server_export (o->server, "/test/extra", o->extra, &error));
  /* Outside the manager's path: not announced. */
  g_assert_true (peer_server_export (o->server, "/elsewhere", o->extra, &error));
  g_hash_table_add (o->nodes, g_strdup ("d"));
  peer_interface_set_object_property (o->thing, TREE_PATH "/d", "Name", g_variant_new_string ("child d"), NULL);
  peer_subtree_object_added (o->tree, "d");
  return G_SOURCE_REMOVE;
}

static gboolean
remove_extra (gpointer user_data)
{
  Objects *o = user_data;

  g_assert_true (peer_server_unexport_path (o->server, "/test/extra", o->extra));
  g_assert_false (peer_server_unexport_path (o->server, "/test/extra", o->extra));
  peer_subtree_object_removed (o->tree, "d", NULL);
  g_hash_table_remove (o->nodes, "d");
  peer_interface_forget_object (o->thing, TREE_PATH "/d");
  return G_SOURCE_REMOVE;
}

static void
test_manager (Fixture      *f,
              gconstpointer data)
{
  ManagerEvents events;
  g_autoptr(GDBusObjectManager) manager = manager_new (f, "/test", &events);
  g_autolist(GDBusObject) objects = g_dbus_object_manager_get_objects (manager);
  g_autofree char *name_one = dup_property_string (manager, "/test/one", THING_IFACE, "Name");
  g_autofree char *name_a = dup_property_string (manager, TREE_PATH "/a", THING_IFACE, "Name");
  g_autofree char *state = dup_property_string (manager, "/test/skeleton", "org.libpeer.Job1", "State");
  g_autofree char *label = dup_property_string (manager, "/test/gthing", GTHING_IFACE, "Label");
  g_autofree char *name_d = NULL;
  g_autoptr(GDBusObject) builtin = g_dbus_object_manager_get_object (manager, "/org/freedesktop/DBus");

  /* one, two, gthing, skeleton, tree/a, tree/b */
  g_assert_cmpuint (g_list_length (objects), ==, 6);
  g_assert_cmpstr (name_one, ==, "one");
  g_assert_cmpstr (name_a, ==, "child a");
  g_assert_cmpstr (state, ==, "running");
  g_assert_cmpstr (label, ==, "first");
  g_assert_null (builtin);

  peer_test_server_invoke (f->ts, add_extra, &f->objects);
  PEER_TEST_WAIT_UNTIL (events.added->len >= 2);
  g_assert_cmpuint (events.added->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (events.added, 0), ==, "/test/extra");
  g_assert_cmpstr (g_ptr_array_index (events.added, 1), ==, TREE_PATH "/d");
  name_d = dup_property_string (manager, TREE_PATH "/d", THING_IFACE, "Name");
  g_assert_cmpstr (name_d, ==, "child d");

  peer_test_server_invoke (f->ts, remove_extra, &f->objects);
  PEER_TEST_WAIT_UNTIL (events.removed->len >= 2);
  g_assert_cmpstr (g_ptr_array_index (events.removed, 0), ==, "/test/extra");
  g_assert_cmpstr (g_ptr_array_index (events.removed, 1), ==, TREE_PATH "/d");
  manager_events_clear (&events);
}

static void
test_manager_none (Fixture      *f,
                   gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = call (f, "/no_manager", "org.freedesktop.DBus.ObjectManager",
                                    "GetManagedObjects", NULL, "(a{oa{sa{sv}}})", &error);

  g_assert_null (reply);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
}

static void
test_manager_jobs (Fixture      *f,
                   gconstpointer data)
{
  ManagerEvents events;
  g_autoptr(GDBusObjectManager) manager = manager_new (f, PEER_HELPER_PATH, &events);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autofree char *state = NULL;
  const char *path;

  reply = call (f, PEER_HELPER_PATH, "org.libpeer.Helper1", "StartJob",
                g_variant_new ("(suu)", "count", 2, 20), "(o)", &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&o)", &path);
  PEER_TEST_WAIT_UNTIL (events.added->len >= 1);
  g_assert_cmpstr (g_ptr_array_index (events.added, 0), ==, path);
  state = dup_property_string (manager, path, "org.libpeer.Job1", "State");
  g_assert_nonnull (state);
  /* It finishes, lingers, and goes. */
  PEER_TEST_WAIT_UNTIL (events.removed->len >= 1);
  g_assert_cmpstr (g_ptr_array_index (events.removed, 0), ==, path);
  g_assert_null (g_dbus_object_manager_get_object (manager, path));
  manager_events_clear (&events);
}

/* --- busctl -------------------------------------------------------------- */

static void
test_busctl (Fixture      *f,
             gconstpointer data)
{
  g_autofree char *address = g_strconcat ("--address=", f->ts->address, NULL);
  const char *managed[] = { "busctl", address, "call", "org.freedesktop.DBus", "/test",
                            "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL };
  const char *unmanaged[] = { "busctl", address, "call", "org.freedesktop.DBus", "/nowhere",
                              "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", NULL };
  const char *tree[] = { "busctl", address, "introspect", "org.freedesktop.DBus", TREE_PATH "/a", NULL };
  const char *walk[] = { "busctl", address, "tree", "org.freedesktop.DBus", NULL };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *path = g_find_program_in_path ("busctl");

  if (path == NULL)
    {
      g_test_skip ("busctl is not installed (package systemd)");
      return;
    }
  g_assert_cmpint (peer_test_run (managed, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, "\"" TREE_PATH "/a\""));
  g_assert_nonnull (strstr (out, "\"child a\""));
  g_assert_nonnull (strstr (out, "\"/test/skeleton\""));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (peer_test_run (tree, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, THING_IFACE));
  g_assert_nonnull (strstr (out, "\"child a\""));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  g_assert_cmpint (peer_test_run (unmanaged, &out, &err), !=, 0);
  g_assert_nonnull (strstr (err, "/nowhere"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* The subtree's children in the tree busctl walks by introspection. */
  g_assert_cmpint (peer_test_run (walk, &out, &err), ==, 0);
  g_assert_nonnull (strstr (out, TREE_PATH "/a"));
  g_assert_nonnull (strstr (out, TREE_PATH "/b"));
  g_assert_null (strstr (out, TREE_PATH "/vanishing"));
}

/* Reads @process's lines until one holds @fragment; FALSE (the test
 * marked failed) when it ends or stays silent for 10 s first. */
static gboolean
read_until (PeerTestProcess *process,
            const char      *fragment)
{
  for (;;)
    {
      g_autofree char *line = peer_test_process_read_line (process);

      if (line == NULL)
        {
          g_test_fail_printf ("busctl monitor printed no line with '%s'", fragment);
          return FALSE;
        }
      if (strstr (line, fragment) != NULL)
        return TRUE;
    }
}

/* busctl monitor (a monitor, which the server copies every broadcast to)
 * sees InterfacesAdded and InterfacesRemoved with the objects' paths. */
static void
test_busctl_signals (Fixture      *f,
                     gconstpointer data)
{
  g_autofree char *address = g_strconcat ("--address=", f->ts->address, NULL);
  const char *argv[] = { "sh", "-c", "exec \"$@\" 2>&1", "sh", "busctl", address, "monitor", NULL };
  g_autofree char *path = g_find_program_in_path ("busctl");
  g_autoptr(GError) error = NULL;
  PeerTestProcess *monitor;

  if (path == NULL)
    {
      g_test_skip ("busctl is not installed (package systemd)");
      return;
    }
  monitor = peer_test_spawn (argv, &error);
  g_assert_no_error (error);
  /* Printed once BecomeMonitor has returned. */
  if (read_until (monitor, "Monitoring bus message stream."))
    {
      peer_test_server_invoke (f->ts, add_extra, &f->objects);
      if (read_until (monitor, "Member=InterfacesAdded") && read_until (monitor, "\"/test/extra\"") &&
          read_until (monitor, "Member=InterfacesAdded") && read_until (monitor, "\"" TREE_PATH "/d\""))
        {
          peer_test_server_invoke (f->ts, remove_extra, &f->objects);
          if (read_until (monitor, "Member=InterfacesRemoved"))
            read_until (monitor, "\"/test/extra\"");
        }
    }
  peer_test_process_stop (monitor, SIGTERM);
}

/* --- lanes ---------------------------------------------------------------- */

/* Who is thread-safe: from a lane client it runs on the lane, at each
 * path it is exported at, and each call knows its path. A subtree's child
 * is not in the lane's table: its calls go by name (test-lane-objects.c
 * has the rest). */
static void
test_lane_paths (Fixture      *f,
                 gconstpointer data)
{
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < 50; i++)
    {
      g_autofree char *one = who (f, "/test/one", &error);
      g_autofree char *two = who (f, "/test/two", &error);
      g_autofree char *child = who (f, TREE_PATH "/b", &error);

      g_assert_no_error (error);
      g_assert_cmpstr (one, ==, "/test/one");
      g_assert_cmpstr (two, ==, "/test/two");
      g_assert_cmpstr (child, ==, TREE_PATH "/b");
    }
  g_assert_null (who (f, "/test/three", &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
}

int
main (int   argc,
      char *argv[])
{
  static const struct {
    const char *name;
    void (*func) (Fixture *, gconstpointer);
  } cases[] = {
    { "subtree/introspect", test_subtree_introspect },
    { "subtree/call", test_subtree_call },
    { "subtree/child-gone", test_subtree_child_gone },
    { "two-paths", test_two_paths },
    { "gobject/notify", test_gobject_notify },
    { "gobject/set", test_gobject_set },
    { "gobject/set-refused", test_gobject_set_refused },
    { "skeleton", test_skeleton },
    { "manager/gdbus", test_manager },
    { "manager/none", test_manager_none },
    { "manager/jobs", test_manager_jobs },
    { "manager/busctl", test_busctl },
    { "manager/busctl-signals", test_busctl_signals },
    { "lane-paths", test_lane_paths },
  };

  g_test_init (&argc, &argv, NULL);
  for (guint lane = 0; lane < 2; lane++)
    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autofree char *path = g_strdup_printf ("/peer/objects/%s/%s", lane ? "lane" : "plain", cases[i].name);

        g_test_add (path, Fixture, GINT_TO_POINTER (lane), fixture_set_up, cases[i].func, fixture_tear_down);
      }
  g_test_add_func ("/peer/objects/gobject/mismatch", test_gobject_mismatch);
  return g_test_run ();
}
