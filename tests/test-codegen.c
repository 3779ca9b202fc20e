/* test-codegen.c: peer-codegen's generated code for every kind of argument
 * (tests/codegen/org.libpeer.test.Types1.xml): its serialisation is
 * GVariant's byte for byte, its reader refuses what is not, and values
 * round-trip through stubs and skeletons over D-Bus and over a lane, as do
 * errors, properties and signals; a generated client talks to a GDBus
 * server and a GDBus client to a generated skeleton.
 *
 * The generated source is included, not linked, so that its serialiser
 * and reader (static) can be checked directly. */
#include "config.h"

#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "peer-protocol.h"
#include "peer-protocol-stubs.h"
#include "peer-test-util.h"
#include "services.h"
#include "test-types.c"

#define TEST_PATH "/org/libpeer/test/Types"
/* A PeerSubtree whose children, a and b, are served by one Types1 interface. */
#define TREE_PATH "/org/libpeer/test/Tree"

static void
assert_variant_is (GVariant   *value,
                   const char *text)
{
  g_autoptr(GVariant) expected = g_variant_ref_sink (g_variant_new_parsed (text));

  g_assert_true (g_variant_equal (value, expected));
}

/* --- serialisation, without a transport ---------------------------------- */

static void
assert_same_bytes (GVariant *generated,
                   GVariant *reference)
{
  g_autoptr(GVariant) a = g_variant_ref_sink (generated);
  g_autoptr(GVariant) b = g_variant_ref_sink (reference);

  g_assert_cmpstr (g_variant_get_type_string (a), ==, g_variant_get_type_string (b));
  g_assert_cmpmem (g_variant_get_data (a), g_variant_get_size (a), g_variant_get_data (b), g_variant_get_size (b));
  g_assert_true (g_variant_is_normal_form (a));
}

static void
test_serialise_basics (void)
{
  static const struct {
    guint8 y; gboolean b; gint16 n; guint16 q; gint32 i; guint32 u; gint64 x; guint64 t; double d;
    const char *s, *o, *g;
  } cases[] = {
    { 0, FALSE, 0, 0, 0, 0, 0, 0, 0.0, "", "/", "" },
    { 255, TRUE, G_MININT16, G_MAXUINT16, G_MININT32, G_MAXUINT32, G_MININT64, G_MAXUINT64, -1.5,
      "h\xc3\xa9llo", "/org/libpeer/x_1", "a{sv}(ii)" },
    { 7, TRUE, 3, 4, 5, 6, 7, 8, 9.25, "a string long enough to be more than a few bytes", "/a/b", "s" },
  };

  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
    assert_same_bytes (_test_codegen_test_types1_echo_basics_build_in (cases[k].y, cases[k].b, cases[k].n, cases[k].q,
                                                                      cases[k].i, cases[k].u, cases[k].x, cases[k].t,
                                                                      cases[k].d, cases[k].s, cases[k].o, cases[k].g,
                                                                      FALSE, NULL),
                       g_variant_new ("(ybnqiuxtdsog)", cases[k].y, cases[k].b, cases[k].n, cases[k].q, cases[k].i,
                                      cases[k].u, cases[k].x, cases[k].t, cases[k].d, cases[k].s, cases[k].o,
                                      cases[k].g));
  /* Fixed-size members only: padded to the tuple's alignment. */
  assert_same_bytes (_test_codegen_test_types1_echo_fixed_build_in (9, G_MAXINT64, TRUE, FALSE, NULL),
                     g_variant_new ("(yxb)", 9, G_MAXINT64, TRUE));
}

static GVariant *
bytes_variant (const guint8 *data,
               gsize         len)
{
  return g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data, len, 1);
}

/* Framing offsets of 1, 2 and 4 bytes, and the sizes where they change. */
static void
test_serialise_offsets (void)
{
  static const gsize sizes[][2] = {
    { 0, 0 }, { 1, 0 }, { 0, 1 }, { 100, 100 }, { 240, 3 }, { 245, 3 }, { 246, 3 }, { 250, 10 },
    { 65500, 3 }, { 65520, 0 }, { 65530, 1 }, { 70000, 70000 },
  };
  /* The tail starts 3 bytes in: room for its 70000 too. */
  g_autofree guint8 *data = g_malloc (70003);

  for (gsize i = 0; i < 70003; i++)
    data[i] = (guint8) (i * 31 + 7);
  for (gsize k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      const char *name = k % 2 ? "" : "n\xc3\xa4me";

      assert_same_bytes (_test_codegen_test_types1_echo_mixed_build_in (data, sizes[k][0], name, (guint32) k,
                                                                       data + 3, sizes[k][1], FALSE, NULL),
                         g_variant_new ("(@aysu@ay)", bytes_variant (data, sizes[k][0]), name, (guint32) k,
                                          bytes_variant (data + 3, sizes[k][1])));
    }
  /* A lone ay is its bytes, borrowed or copied. */
  assert_same_bytes (_test_codegen_test_types1_echo_bytes_build_in (data, 300, TRUE, NULL),
                     g_variant_new ("(@ay)", bytes_variant (data, 300)));
  assert_same_bytes (_test_codegen_test_types1_echo_bytes_build_in (data, 300, FALSE, NULL),
                     g_variant_new ("(@ay)", bytes_variant (data, 300)));
  assert_same_bytes (_test_codegen_test_types1_echo_bytes_build_in (NULL, 0, FALSE, NULL),
                     g_variant_new ("(@ay)", bytes_variant (NULL, 0)));
}

/* Whatever GVariant serialised, the reader reads back. */
static void
test_read_valid (void)
{
  g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_new ("(@aysu@ay)", bytes_variant ((const guint8 *) "abc", 3),
                                                             "n\xc3\xa4me", 42, bytes_variant (NULL, 0)));
  g_autoptr(GVariant) b = g_variant_ref_sink (g_variant_new ("(ybnqiuxtdsog)", 1, TRUE, -2, 3, -4, 5, (gint64) -6,
                                                             (guint64) 7, 8.5, "s", "/o", "g"));
  g_autoptr(GError) error = NULL;
  const guint8 *head, *tail;
  gsize head_len, tail_len;
  const char *name, *s, *o, *g;
  guint32 n;
  guint8 y;
  gboolean bb;
  gint16 nn;
  guint16 q;
  gint32 i;
  guint32 u;
  gint64 x;
  guint64 t;
  double d;

  g_assert_true (_test_codegen_test_types1_echo_mixed_read_in (v, &head, &head_len, &name, &n, &tail, &tail_len, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (head, head_len, "abc", 3);
  g_assert_cmpstr (name, ==, "n\xc3\xa4me");
  g_assert_cmpuint (n, ==, 42);
  g_assert_cmpuint (tail_len, ==, 0);

  g_assert_true (_test_codegen_test_types1_echo_basics_read_in (b, &y, &bb, &nn, &q, &i, &u, &x, &t, &d, &s, &o, &g, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (y, ==, 1);
  g_assert_true (bb);
  g_assert_cmpint (nn, ==, -2);
  g_assert_cmpuint (q, ==, 3);
  g_assert_cmpint (i, ==, -4);
  g_assert_cmpuint (u, ==, 5);
  g_assert_cmpint (x, ==, -6);
  g_assert_cmpuint (t, ==, 7);
  g_assert_cmpfloat (d, ==, 8.5);
  g_assert_cmpstr (s, ==, "s");
  g_assert_cmpstr (o, ==, "/o");
  g_assert_cmpstr (g, ==, "g");
}

/* The twin: bytes a peer made up are refused, never read out of bounds. */
static void
test_read_invalid (void)
{
  static const struct {
    const char *what;
    const char *type;
    const char *data;
    gsize size;
  } cases[] = {
    /* (aysuay): head "ab", name "x", u, tail; offsets at the end. */
    { "offset past the end", "(aysuay)", "ab" "x\0" "\0\0\0\0" "\x09\x02", 10 },
    { "offsets backwards", "(aysuay)", "ab" "x\0" "\0\0\0\0" "\x02\x03", 10 },
    { "string without its NUL", "(aysuay)", "ab" "xy" "\0\0\0\0" "\x04\x02", 10 },
    { "string with a NUL inside", "(aysuay)", "ab" "\0\0" "\0\0\0\0" "\x04\x02", 10 },
    { "string not UTF-8", "(aysuay)", "ab" "\xff\0" "\0\0\0\0" "\x04\x02", 10 },
    { "too short for its offsets", "(aysuay)", "\x09", 1 },
  };

  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_new_from_data (G_VARIANT_TYPE (cases[k].type), cases[k].data,
                                                                           cases[k].size, FALSE, NULL, NULL));
      g_autoptr(GError) error = NULL;
      gboolean ok;

      g_test_message ("%s", cases[k].what);
      {
        const guint8 *head, *tail;
        gsize head_len, tail_len;
        const char *name;
        guint32 n;

        ok = _test_codegen_test_types1_echo_mixed_read_in (v, &head, &head_len, &name, &n, &tail, &tail_len, &error);
      }
      g_assert_false (ok);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
    }
}

/* A fixed-size tuple of the wrong size (GVariant itself replaces one with
 * zeros before anyone reads it, so the reader is asked directly). */
static void
test_read_invalid_fixed (void)
{
  static const _test_codegen_Member members[] = { { 1, 1 }, { 8, 8 }, { 1, 1 } };
  static const guint8 zeros[24] = { 0, };
  gsize start[3], end[3];

  g_assert_true (_test_codegen_tuple_split (zeros, 24, members, 3, start, end));
  g_assert_cmpuint (start[1], ==, 8);
  g_assert_cmpuint (end[2], ==, 17);
  g_assert_false (_test_codegen_tuple_split (zeros, 3, members, 3, start, end));
  g_assert_false (_test_codegen_tuple_split (zeros, 23, members, 3, start, end));
}

/* Object paths and signatures are checked as such when read. */
static void
test_read_invalid_path (void)
{
  g_autoptr(GVariant) good = g_variant_ref_sink (g_variant_new ("(ybnqiuxtdsog)", 1, TRUE, -2, 3, -4, 5, (gint64) -6,
                                                                (guint64) 7, 8.5, "s", "/o", "g"));
  g_autofree guint8 *bytes = g_memdup2 (g_variant_get_data (good), g_variant_get_size (good));
  g_autoptr(GVariant) bad = NULL;
  g_autoptr(GError) error = NULL;
  guint8 *slash = memchr (bytes, '/', g_variant_get_size (good));
  const char *s, *o, *g;
  guint8 y;
  gboolean bb;
  gint16 nn;
  guint16 q;
  gint32 i;
  guint32 u;
  gint64 x;
  guint64 t;
  double d;

  g_assert_nonnull (slash);
  *slash = 'z';                 /* "zo": not an object path */
  bad = g_variant_ref_sink (g_variant_new_from_data (G_VARIANT_TYPE ("(ybnqiuxtdsog)"), bytes,
                                                     g_variant_get_size (good), FALSE, NULL, NULL));
  g_assert_false (_test_codegen_test_types1_echo_basics_read_in (bad, &y, &bb, &nn, &q, &i, &u, &x, &t, &d, &s, &o, &g, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
}

/* --- the server: a generated skeleton ------------------------------------ */

typedef struct {
  PeerTestServer *ts;
  PeerInterface *iface;
  PeerClient *client;
  gboolean lane;
  GDBusConnection *gdbus;       /* a plain GDBus client, for the interop tests */
  PeerInterface *tree_iface;    /* the children of the subtree at TREE_PATH */
  PeerSubtree *subtree;
  /* What the write hooks accepted last (set in the server's thread). */
  gint last_count;
  gint last_blob_len;
} Fixture;

static void
handle_echo_basics (PeerCall *call, guint8 y, gboolean b, gint16 n, guint16 q, gint32 i, guint32 u, gint64 x,
                    guint64 t, double d, const char *s, const char *o, const char *g, gpointer user_data)
{
  test_types1_complete_echo_basics (call, y, b, n, q, i, u, x, t, d, s, o, g);
}

static void
handle_echo_fixed (PeerCall *call, guint8 y, gint64 x, gboolean b, gpointer user_data)
{
  test_types1_complete_echo_fixed (call, y, x, b);
}

static void
handle_echo_bytes (PeerCall *call, const guint8 *data, gsize data_len, gpointer user_data)
{
  test_types1_complete_echo_bytes (call, data, data_len);
}

static void
handle_echo_mixed (PeerCall *call, const guint8 *head, gsize head_len, const char *name, guint32 n,
                   const guint8 *tail, gsize tail_len, gpointer user_data)
{
  test_types1_complete_echo_mixed (call, head, head_len, name, n, tail, tail_len);
}

static void
handle_echo_containers (PeerCall *call, GVariant *strings, GVariant *dict, GVariant *record, GVariant *any,
                        GVariant *ints, const char *label, GVariant *forced, gpointer user_data)
{
  test_types1_complete_echo_containers (call, strings, dict, record, any, ints, label, forced);
}

static void
handle_echo_fd (PeerCall *call, int fd, const char *tag, gpointer user_data)
{
  struct stat st;

  /* The call's own fd, open while the handler runs. */
  g_assert_cmpint (fstat (fd, &st), ==, 0);
  test_types1_complete_echo_fd (call, fd, tag);
}

static void
handle_echo_fd_array (PeerCall *call, GVariant *fds, gpointer user_data)
{
  test_types1_complete_echo_fd_array (call, fds, peer_call_get_unix_fd_list (call));
}

static void
handle_fail (PeerCall *call, gint32 code, const char *dbus_name, gpointer user_data)
{
  if (*dbus_name != '\0')
    peer_call_return_dbus_error (call, dbus_name, "it failed");
  else
    peer_call_return_error (call, PEER_ERROR, code, "it failed");
}

/* At TEST_PATH, from every path the interface is exported at; at a child
 * of the subtree, from that child alone. */
static void
handle_emit (PeerCall *call, const char *s, guint32 u, gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariantDict) dict = g_variant_dict_new (NULL);
  const char *path = peer_call_get_object_path (call);

  g_variant_dict_insert (dict, "u", "u", u);
  if (g_str_equal (path, TEST_PATH))
    {
      g_assert_true (test_types1_emit_basics (f->iface, NULL, s, u, (const guint8 *) s, strlen (s), &error));
      g_assert_no_error (error);
      g_assert_true (test_types1_emit_containers (f->iface, NULL, g_variant_dict_end (dict), s, &error));
      g_assert_no_error (error);
    }
  else
    {
      g_assert_true (peer_call_get_interface (call) == f->tree_iface);
      g_assert_true (g_str_has_prefix (path, TREE_PATH "/"));
      g_assert_true (test_types1_emit_object_basics (f->tree_iface, path, NULL, s, u, (const guint8 *) s, strlen (s),
                                                     &error));
      g_assert_no_error (error);
      g_assert_true (test_types1_emit_object_containers (f->tree_iface, path, NULL, g_variant_dict_end (dict), s,
                                                         &error));
      g_assert_no_error (error);
    }
  test_types1_complete_emit (call);
}

static void
handle_nothing (PeerCall *call, gpointer user_data)
{
  test_types1_complete_nothing (call);
}

/* The write hooks: each gets the value unpacked, and refuses some. */
static gboolean
write_count (PeerInterface *iface, PeerConnection *caller, guint32 value, GError **error, gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_true (PEER_IS_INTERFACE (iface));
  g_assert_true (PEER_IS_CONNECTION (caller));
  /* As the table's documentation says. */
  g_assert_true (g_main_context_is_owner (f->ts->context));
  if (value > 1000)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "Count %u is more than 1000", value);
      return FALSE;
    }
  g_atomic_int_set (&f->last_count, (gint) value);
  return TRUE;
}

static gboolean
write_blob (PeerInterface *iface, PeerConnection *caller, const guint8 *value, gsize value_len, GError **error,
            gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_true (value != NULL || value_len == 0);
  if (value_len > 16)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "Blob of %" G_GSIZE_FORMAT " bytes is more than 16",
                   value_len);
      return FALSE;
    }
  for (gsize i = 0; i < value_len; i++)
    g_assert_cmpuint (value[i], ==, i);
  g_atomic_int_set (&f->last_blob_len, (gint) value_len);
  return TRUE;
}

static gboolean
write_dict (PeerInterface *iface, PeerConnection *caller, GVariant *value, GError **error, gpointer user_data)
{
  g_autoptr(GVariant) forbidden = NULL;

  g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE_VARDICT));
  forbidden = g_variant_lookup_value (value, "forbidden", NULL);
  if (forbidden != NULL)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED, "Dict may not hold 'forbidden'");
      return FALSE;
    }
  return TRUE;
}

static const TestTypes1Vtable vtable = {
  .handle_echo_basics = handle_echo_basics,
  .handle_echo_fixed = handle_echo_fixed,
  .handle_echo_bytes = handle_echo_bytes,
  .handle_echo_mixed = handle_echo_mixed,
  .handle_echo_containers = handle_echo_containers,
  .handle_echo_fd = handle_echo_fd,
  .handle_echo_fd_array = handle_echo_fd_array,
  .handle_fail = handle_fail,
  .handle_emit = handle_emit,
  .handle_nothing = handle_nothing,
  .write_count = write_count,
  .write_blob = write_blob,
  .write_dict = write_dict,
};

static gboolean
export_types (gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;

  f->iface = test_types1_export (f->ts->server, TEST_PATH, &vtable, f, &error);
  g_assert_no_error (error);
  g_assert_true (test_types1_set_name (f->iface, "types", &error));
  g_assert_true (test_types1_set_count (f->iface, 0, &error));
  g_assert_true (test_types1_set_blob (f->iface, NULL, 0, &error));
  g_assert_true (test_types1_set_dict (f->iface, g_variant_new ("a{sv}", NULL), &error));
  g_assert_no_error (error);
  return G_SOURCE_REMOVE;
}

static void
fixture_set_up (Fixture       *f,
                gconstpointer  data)
{
  f->lane = GPOINTER_TO_INT (data);
  f->ts = peer_test_server_start ();
  peer_test_server_invoke (f->ts, export_types, f);
  f->client = peer_test_connect (f->ts, f->lane);
}

static gboolean
unexport_types (gpointer user_data)
{
  Fixture *f = user_data;

  peer_server_unexport (f->ts->server, f->iface);
  g_clear_object (&f->iface);
  if (f->subtree != NULL)
    {
      peer_server_unexport_subtree (f->ts->server, f->subtree);
      g_clear_object (&f->subtree);
      g_clear_object (&f->tree_iface);
    }
  return G_SOURCE_REMOVE;
}

static void
fixture_tear_down (Fixture       *f,
                   gconstpointer  data)
{
  if (f->gdbus != NULL)
    {
      g_dbus_connection_close_sync (f->gdbus, NULL, NULL);
      g_clear_object (&f->gdbus);
    }
  peer_client_close (f->client);
  g_clear_object (&f->client);
  peer_test_server_invoke (f->ts, unexport_types, f);
  peer_test_server_free (f->ts);
}

/* --- round trips --------------------------------------------------------- */

static void
test_basics (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *s = NULL, *o = NULL, *g = NULL;
  guint8 y;
  gboolean b;
  gint16 n;
  guint16 q;
  gint32 i;
  guint32 u;
  gint64 x;
  guint64 t;
  double d;

  g_assert_true (test_types1_call_echo_basics_sync (f->client, TEST_PATH, 255, TRUE, G_MININT16, G_MAXUINT16,
                                                    G_MININT32, G_MAXUINT32, G_MININT64, G_MAXUINT64, -0.125,
                                                    "h\xc3\xa9llo", "/a/b_c", "a{sv}", &y, &b, &n, &q, &i, &u, &x,
                                                    &t, &d, &s, &o, &g, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (y, ==, 255);
  g_assert_true (b);
  g_assert_cmpint (n, ==, G_MININT16);
  g_assert_cmpuint (q, ==, G_MAXUINT16);
  g_assert_cmpint (i, ==, G_MININT32);
  g_assert_cmpuint (u, ==, G_MAXUINT32);
  g_assert_cmpint (x, ==, G_MININT64);
  g_assert_cmpuint (t, ==, G_MAXUINT64);
  g_assert_cmpfloat (d, ==, -0.125);
  g_assert_cmpstr (s, ==, "h\xc3\xa9llo");
  g_assert_cmpstr (o, ==, "/a/b_c");
  g_assert_cmpstr (g, ==, "a{sv}");

  /* Out values are optional. */
  g_assert_true (test_types1_call_echo_basics_sync (f->client, TEST_PATH, 0, FALSE, 0, 0, 0, 0, 0, 0, 0, "", "/", "",
                                                    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                                    NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_call_echo_fixed_sync (f->client, TEST_PATH, 3, G_MAXINT64, TRUE, &y, &x, &b, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (y, ==, 3);
  g_assert_cmpint (x, ==, G_MAXINT64);
  g_assert_true (b);
  g_assert_true (test_types1_call_nothing_sync (f->client, TEST_PATH, NULL, &error));
  g_assert_no_error (error);
}

/* The twin: a call to an object that is not there fails as a plain call
 * does, and sets no out value. */
static void
test_basics_no_object (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) plain_error = NULL;
  g_autoptr(GVariant) plain = NULL;
  guint32 u = 77;

  g_assert_false (test_types1_call_echo_fixed_sync (f->client, "/nowhere", 3, 4, TRUE, NULL, NULL, NULL, NULL, &error));
  plain = peer_client_call_sync (f->client, "/nowhere", TEST_TYPES1_INTERFACE_NAME, "EchoFixed",
                                 g_variant_new ("(yxb)", 3, (gint64) 4, TRUE), NULL, -1, NULL, NULL, NULL, &plain_error);
  g_assert_null (plain);
  g_assert_nonnull (error);
  g_assert_error (error, plain_error->domain, plain_error->code);
  g_assert_cmpstr (error->message, ==, plain_error->message);
  g_clear_error (&error);
  g_assert_false (test_types1_get_count_sync (f->client, "/nowhere", &u, NULL, &error));
  g_assert_nonnull (error);
  g_assert_cmpuint (u, ==, 77);
}

static guint8 *
pattern_new (gsize size,
             guint seed)
{
  guint8 *data = g_malloc (MAX (size, 1));

  for (gsize i = 0; i < size; i++)
    data[i] = (guint8) (i * 7 + (i >> 8) * 13 + seed * 101);
  return data;
}

static void
test_bytes (Fixture       *f,
            gconstpointer  data)
{
  /* Up to well over the blob threshold and the lane's frame. */
  static const gsize sizes[] = { 0, 1, 255, 256, 4096, 70000, 1 << 20, (4 << 20) + 3 };

  for (gsize k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      g_autofree guint8 *in = pattern_new (sizes[k], (guint) k);
      g_autoptr(GBytes) out = NULL;
      g_autoptr(GError) error = NULL;

      g_assert_true (test_types1_call_echo_bytes_sync (f->client, TEST_PATH, in, sizes[k], &out, NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out), in, sizes[k]);
    }
}

static void
test_mixed (Fixture       *f,
            gconstpointer  data)
{
  static const gsize sizes[][2] = { { 0, 0 }, { 3, 250 }, { 250, 3 }, { 65530, 2 }, { 70000, 300000 } };

  for (gsize k = 0; k < G_N_ELEMENTS (sizes); k++)
    {
      g_autofree guint8 *head = pattern_new (sizes[k][0], 1);
      g_autofree guint8 *tail = pattern_new (sizes[k][1], 2);
      g_autoptr(GBytes) out_head = NULL, out_tail = NULL;
      g_autofree char *name = NULL;
      g_autoptr(GError) error = NULL;
      guint32 n;

      g_assert_true (test_types1_call_echo_mixed_sync (f->client, TEST_PATH, head, sizes[k][0], "\xe2\x82\xac", (guint32) k,
                                                       tail, sizes[k][1], &out_head, &name, &n, &out_tail, NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpmem (g_bytes_get_data (out_head, NULL), g_bytes_get_size (out_head), head, sizes[k][0]);
      g_assert_cmpmem (g_bytes_get_data (out_tail, NULL), g_bytes_get_size (out_tail), tail, sizes[k][1]);
      g_assert_cmpstr (name, ==, "\xe2\x82\xac");
      g_assert_cmpuint (n, ==, k);
    }
}

static void
test_containers (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) strings = NULL, dict = NULL, record = NULL, any = NULL, ints = NULL, forced = NULL;
  g_autoptr(GVariant) in_strings = g_variant_ref_sink (g_variant_new_parsed ("['a', '', 'ccc']"));
  g_autoptr(GVariant) in_dict = g_variant_ref_sink (g_variant_new_parsed ("{'k': <int32 1>, 'l': <('x', [byte 0x01])>}"));
  g_autoptr(GVariant) in_record = g_variant_ref_sink (g_variant_new_parsed ("(int32 -1, 'r', 2.5)"));
  g_autoptr(GVariant) in_any = g_variant_ref_sink (g_variant_new_parsed ("<@a{sv} {'nested': <uint64 9>}>"));
  g_autoptr(GVariant) in_ints = g_variant_ref_sink (g_variant_new_parsed ("[int32 1, 2, 3]"));
  g_autoptr(GVariant) in_forced = g_variant_ref_sink (g_variant_new_parsed ("[byte 0x00, 0xff]"));
  g_autofree char *label = NULL;

  g_assert_true (test_types1_call_echo_containers_sync (f->client, TEST_PATH, in_strings, in_dict, in_record, in_any,
                                                        in_ints, "lbl", in_forced, &strings, &dict, &record, &any,
                                                        &ints, &label, &forced, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_variant_equal (strings, in_strings));
  g_assert_true (g_variant_equal (dict, in_dict));
  g_assert_true (g_variant_equal (record, in_record));
  g_assert_true (g_variant_equal (any, in_any));
  g_assert_true (g_variant_equal (ints, in_ints));
  g_assert_true (g_variant_equal (forced, in_forced));
  g_assert_cmpstr (label, ==, "lbl");
}

static void
test_fd (Fixture       *f,
         gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tag = NULL;
  struct stat a, b;
  int fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  int back = -1;

  g_assert_cmpint (fd, >=, 0);
  g_assert_true (test_types1_call_echo_fd_sync (f->client, TEST_PATH, fd, "t", &back, &tag, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (back, >=, 0);
  g_assert_cmpint (back, !=, fd);
  g_assert_cmpint (fstat (fd, &a), ==, 0);
  g_assert_cmpint (fstat (back, &b), ==, 0);
  g_assert_true (a.st_dev == b.st_dev && a.st_ino == b.st_ino);
  g_assert_cmpstr (tag, ==, "t");
  close (back);
  close (fd);
}

/* The twin: a bad fd is refused before anything is sent, and a handle a
 * peer sends that indexes no fd is refused by the skeleton. */
static void
test_fd_bad (Fixture       *f,
             gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  int back = -1;

  g_assert_false (test_types1_call_echo_fd_sync (f->client, TEST_PATH, 9999, "t", &back, NULL, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_cmpint (back, ==, -1);
  g_clear_error (&error);
  reply = peer_client_call_sync (f->client, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "EchoFd",
                                 g_variant_new ("(hs)", 5, "t"), NULL, -1, NULL, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
}

static void
test_fd_array (Fixture       *f,
               gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out_list = NULL;
  g_autoptr(GVariant) handles = NULL;
  int fds[2];

  g_assert_true (g_unix_open_pipe (fds, FD_CLOEXEC, NULL));
  g_assert_cmpint (g_unix_fd_list_append (list, fds[0], NULL), ==, 0);
  g_assert_cmpint (g_unix_fd_list_append (list, fds[1], NULL), ==, 1);
  close (fds[0]);
  close (fds[1]);
  g_assert_true (test_types1_call_echo_fd_array_sync (f->client, TEST_PATH, g_variant_new_parsed ("[handle 1, 0]"), list,
                                                      &handles, &out_list, NULL, &error));
  g_assert_no_error (error);
  assert_variant_is (handles, "[handle 1, 0]");
  g_assert_nonnull (out_list);
  g_assert_cmpint (g_unix_fd_list_get_length (out_list), ==, 2);
}

/* Errors come back as the GError a plain call gets. */
static void
test_errors (Fixture       *f,
             gconstpointer  data)
{
  static const struct { gint32 code; const char *name; } cases[] = {
    { PEER_ERROR_LIMIT_EXCEEDED, "" },
    { PEER_ERROR_PERMISSION_DENIED, "" },
    { 0, "org.freedesktop.DBus.Error.FileNotFound" },
    { 0, "com.example.Error.Odd" },
  };

  for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GError) plain_error = NULL;
      g_autoptr(GVariant) plain = NULL;
      g_autofree char *remote = NULL, *plain_remote = NULL;

      g_assert_false (test_types1_call_fail_sync (f->client, TEST_PATH, cases[k].code, cases[k].name, NULL, &error));
      plain = peer_client_call_sync (f->client, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "Fail",
                                     g_variant_new ("(is)", cases[k].code, cases[k].name), NULL, -1, NULL, NULL,
                                     NULL, &plain_error);
      g_assert_nonnull (error);
      g_assert_nonnull (plain_error);
      g_assert_error (error, plain_error->domain, plain_error->code);
      g_assert_cmpstr (error->message, ==, plain_error->message);
      if (*cases[k].name == '\0')
        g_assert_error (error, PEER_ERROR, cases[k].code);
      remote = g_dbus_error_get_remote_error (error);
      plain_remote = g_dbus_error_get_remote_error (plain_error);
      g_assert_cmpstr (remote, ==, plain_remote);
    }
}

typedef struct {
  gboolean done;
  GError *error;
  GBytes *bytes;
  gint32 i;
  char *s;
} AsyncResult;

static void
on_echo_bytes (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  AsyncResult *r = user_data;

  test_types1_call_echo_bytes_finish (PEER_CLIENT (source), &r->bytes, result, &r->error);
  r->done = TRUE;
}

static void
on_echo_fd (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  AsyncResult *r = user_data;

  test_types1_call_echo_fd_finish (PEER_CLIENT (source), &r->i, &r->s, result, &r->error);
  r->done = TRUE;
}

static void
test_async (Fixture       *f,
            gconstpointer  data)
{
  AsyncResult r = { 0, };
  AsyncResult bad = { 0, };
  guint8 *in = pattern_new (1000, 3);

  test_types1_call_echo_bytes (f->client, TEST_PATH, in, 1000, NULL, on_echo_bytes, &r);
  /* The arguments were copied: the caller's buffer may go at once. */
  g_free (in);
  in = pattern_new (1000, 3);
  PEER_TEST_WAIT_UNTIL (r.done);
  g_assert_no_error (r.error);
  g_assert_cmpmem (g_bytes_get_data (r.bytes, NULL), g_bytes_get_size (r.bytes), in, 1000);
  g_bytes_unref (r.bytes);
  g_free (in);

  /* The twin: an fd that cannot be sent fails in the callback. */
  bad.i = -1;
  test_types1_call_echo_fd (f->client, TEST_PATH, 9999, "t", NULL, on_echo_fd, &bad);
  PEER_TEST_WAIT_UNTIL (bad.done);
  g_assert_error (bad.error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_cmpint (bad.i, ==, -1);
  g_assert_null (bad.s);
  g_clear_error (&bad.error);
}

static void
test_properties (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GVariant) dict = NULL;
  guint32 count = 0;

  g_assert_true (test_types1_get_name_sync (f->client, TEST_PATH, &name, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (name, ==, "types");
  g_assert_true (test_types1_set_count_sync (f->client, TEST_PATH, 41, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_get_count_sync (f->client, TEST_PATH, &count, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count, ==, 41);
  g_assert_cmpint (g_atomic_int_get (&f->last_count), ==, 41);
  g_assert_true (test_types1_set_blob_sync (f->client, TEST_PATH, (const guint8 *) "\0\1\2", 3, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_get_blob_sync (f->client, TEST_PATH, &blob, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (blob, NULL), g_bytes_get_size (blob), "\0\1\2", 3);
  g_assert_true (test_types1_set_dict_sync (f->client, TEST_PATH, g_variant_new_parsed ("{'a': <1>}"), NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_get_dict_sync (f->client, TEST_PATH, &dict, NULL, &error));
  g_assert_no_error (error);
  assert_variant_is (dict, "{'a': <1>}");
}

/* The twin: what a write hook refuses is not stored, and the peer gets its
 * error; a plain write (by hand) meets the same hook. */
static void
test_properties_refused (Fixture       *f,
                         gconstpointer  data)
{
  static const guint8 bytes[17] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) blob = NULL;
  g_autoptr(GVariant) dict = NULL;
  guint32 count = 0;

  g_assert_true (test_types1_set_count_sync (f->client, TEST_PATH, 1000, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_atomic_int_get (&f->last_count), ==, 1000);
  g_assert_false (test_types1_set_count_sync (f->client, TEST_PATH, 1001, NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_assert_cmpstr (error->message, ==, "Count 1001 is more than 1000");
  g_clear_error (&error);
  g_assert_false (peer_client_set_property_sync (f->client, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "Count",
                                                 g_variant_new_uint32 (G_MAXUINT32), NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_true (test_types1_get_count_sync (f->client, TEST_PATH, &count, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count, ==, 1000);
  g_assert_cmpint (g_atomic_int_get (&f->last_count), ==, 1000);

  g_assert_true (test_types1_set_blob_sync (f->client, TEST_PATH, bytes, 16, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_atomic_int_get (&f->last_blob_len), ==, 16);
  g_assert_false (test_types1_set_blob_sync (f->client, TEST_PATH, bytes, 17, NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_true (test_types1_get_blob_sync (f->client, TEST_PATH, &blob, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (blob, NULL), g_bytes_get_size (blob), bytes, 16);

  g_assert_false (test_types1_set_dict_sync (f->client, TEST_PATH, g_variant_new_parsed ("{'forbidden': <1>}"), NULL,
                                             &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);
  g_clear_error (&error);
  g_assert_true (test_types1_get_dict_sync (f->client, TEST_PATH, &dict, NULL, &error));
  g_assert_no_error (error);
  assert_variant_is (dict, "@a{sv} {}");
}

/* The twin: a read-only property cannot be written (by hand: there is no
 * generated setter for it), and its value is unchanged. */
static void
test_properties_read_only (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name = NULL;

  g_assert_false (peer_client_set_property_sync (f->client, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "Name",
                                                 g_variant_new_string ("other"), NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_true (test_types1_get_name_sync (f->client, TEST_PATH, &name, NULL, &error));
  g_assert_cmpstr (name, ==, "types");
}

typedef struct {
  guint n_basics;
  guint n_containers;
  char *s;
  guint32 u;
  GBytes *data;
  GVariant *dict;
} Signals;

static void
on_basics (PeerClient *client, const char *object_path, const char *s, guint32 u, const guint8 *data,
           gsize data_len, gpointer user_data)
{
  Signals *sig = user_data;

  g_assert_cmpstr (object_path, ==, TEST_PATH);
  sig->n_basics++;
  g_free (sig->s);
  sig->s = g_strdup (s);
  sig->u = u;
  g_clear_pointer (&sig->data, g_bytes_unref);
  sig->data = g_bytes_new (data, data_len);
}

static void
on_containers (PeerClient *client, const char *object_path, GVariant *dict, const char *s, gpointer user_data)
{
  Signals *sig = user_data;

  sig->n_containers++;
  g_clear_pointer (&sig->dict, g_variant_unref);
  sig->dict = g_variant_ref (dict);
}

static void
test_signals (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  Signals sig = { 0, };
  guint basics = test_types1_subscribe_basics (f->client, TEST_PATH, on_basics, &sig, NULL);
  guint containers = test_types1_subscribe_containers (f->client, NULL, on_containers, &sig, NULL);

  g_assert_true (test_types1_call_emit_sync (f->client, TEST_PATH, "sig\xc3\xa9", 12, NULL, &error));
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (sig.n_basics == 1 && sig.n_containers == 1);
  g_assert_cmpstr (sig.s, ==, "sig\xc3\xa9");
  g_assert_cmpuint (sig.u, ==, 12);
  g_assert_cmpmem (g_bytes_get_data (sig.data, NULL), g_bytes_get_size (sig.data), "sig\xc3\xa9", 5);
  assert_variant_is (sig.dict, "{'u': <uint32 12>}");

  peer_client_unsubscribe_signal (f->client, basics);
  peer_client_unsubscribe_signal (f->client, containers);
  g_free (sig.s);
  g_bytes_unref (sig.data);
  g_variant_unref (sig.dict);
}

static gboolean
emit_wrong_basics (gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;

  /* Unchecked: a peer may send anything under that name. */
  g_assert_true (peer_server_emit_signal (f->ts->server, NULL, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "Basics",
                                          g_variant_new ("(i)", 5), &error));
  g_assert_true (test_types1_emit_basics (f->iface, NULL, "after", 1, NULL, 0, &error));
  g_assert_no_error (error);
  return G_SOURCE_REMOVE;
}

/* The twin: a signal of the wrong type is dropped, and the next one, in
 * order behind it, comes through. */
static void
test_signals_wrong_type (Fixture       *f,
                         gconstpointer  data)
{
  Signals sig = { 0, };
  guint basics = test_types1_subscribe_basics (f->client, TEST_PATH, on_basics, &sig, NULL);
  g_autoptr(GError) error = NULL;

  /* A call behind the subscription: the server has its match rule when it
   * answers. */
  g_assert_true (test_types1_call_nothing_sync (f->client, TEST_PATH, NULL, &error));
  g_assert_no_error (error);
  peer_test_server_invoke (f->ts, emit_wrong_basics, f);
  PEER_TEST_WAIT_UNTIL (sig.n_basics > 0);
  g_assert_cmpuint (sig.n_basics, ==, 1);
  g_assert_cmpstr (sig.s, ==, "after");
  peer_client_unsubscribe_signal (f->client, basics);
  g_free (sig.s);
  g_bytes_unref (sig.data);
}

/* --- the children of a subtree ------------------------------------------ */

static char **
enumerate_tree (PeerSubtree    *subtree,
                PeerConnection *caller,
                gpointer        user_data)
{
  static const char *const nodes[] = { "a", "b", NULL };

  return g_strdupv ((char **) nodes);
}

static GPtrArray *
lookup_tree (PeerSubtree    *subtree,
             PeerConnection *caller,
             const char     *node,
             gpointer        user_data)
{
  Fixture *f = user_data;
  GPtrArray *interfaces;

  if (!g_str_equal (node, "a") && !g_str_equal (node, "b"))
    return NULL;
  interfaces = g_ptr_array_new_with_free_func (g_object_unref);
  g_ptr_array_add (interfaces, g_object_ref (f->tree_iface));
  return interfaces;
}

static gboolean
export_tree (gpointer user_data)
{
  Fixture *f = user_data;
  g_autoptr(GError) error = NULL;

  /* The generated interface, not exported at a path of its own: the
   * subtree's lookup hands it out. */
  f->tree_iface = test_types1_interface_new (&vtable, f, &error);
  g_assert_no_error (error);
  f->subtree = peer_subtree_new (enumerate_tree, lookup_tree, f, NULL);
  peer_subtree_add_interface (f->subtree, f->tree_iface);
  g_assert_true (peer_server_export_subtree (f->ts->server, TREE_PATH, f->subtree, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_set_object_name (f->tree_iface, TREE_PATH "/a", "alpha", &error));
  g_assert_true (test_types1_set_object_name (f->tree_iface, TREE_PATH "/b", "beta", &error));
  g_assert_true (test_types1_set_object_count (f->tree_iface, TREE_PATH "/a", 1, &error));
  g_assert_true (test_types1_set_object_count (f->tree_iface, TREE_PATH "/b", 2, &error));
  g_assert_no_error (error);

  /* The twins: a path that is none is refused, by the setter and by the
   * emitter alike. */
  g_assert_false (test_types1_set_object_name (f->tree_iface, "not/a/path", "x", &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_false (test_types1_emit_object_basics (f->tree_iface, "not/a/path", NULL, "x", 0, NULL, 0, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  return G_SOURCE_REMOVE;
}

typedef struct {
  guint n;
  guint n_from_b;
  char *path;
  char *s;
} TreeSignals;

static void
on_tree_basics (PeerClient *client, const char *object_path, const char *s, guint32 u, const guint8 *data,
                gsize data_len, gpointer user_data)
{
  TreeSignals *sig = user_data;

  sig->n++;
  if (g_str_equal (object_path, TREE_PATH "/b"))
    sig->n_from_b++;
  g_free (sig->path);
  sig->path = g_strdup (object_path);
  g_free (sig->s);
  sig->s = g_strdup (s);
  g_assert_cmpmem (data, data_len, s, strlen (s));
}

/* The generated skeleton serves a subtree's children: calls reach its
 * handlers with the child's path, each child has values of its own, and
 * signals come from the one child that emits them. */
static void
test_subtree (Fixture       *f,
              gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *name_a = NULL, *name_b = NULL;
  TreeSignals from_b = { 0, }, from_any = { 0, };
  guint sub_b, sub_any;
  guint32 count = 0;
  guint8 y;
  gint64 x;
  gboolean b;

  peer_test_server_invoke (f->ts, export_tree, f);

  g_assert_true (test_types1_call_echo_fixed_sync (f->client, TREE_PATH "/a", 7, -8, TRUE, &y, &x, &b, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (y, ==, 7);
  g_assert_cmpint (x, ==, -8);
  g_assert_true (test_types1_get_name_sync (f->client, TREE_PATH "/a", &name_a, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_get_name_sync (f->client, TREE_PATH "/b", &name_b, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (name_a, ==, "alpha");
  g_assert_cmpstr (name_b, ==, "beta");

  /* A child keeps a peer's write to itself, through the same hook. */
  g_assert_true (test_types1_set_count_sync (f->client, TREE_PATH "/a", 10, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_atomic_int_get (&f->last_count), ==, 10);
  g_assert_false (test_types1_set_count_sync (f->client, TREE_PATH "/b", 5000, NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_true (test_types1_get_count_sync (f->client, TREE_PATH "/a", &count, NULL, &error));
  g_assert_cmpuint (count, ==, 10);
  g_assert_true (test_types1_get_count_sync (f->client, TREE_PATH "/b", &count, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count, ==, 2);

  sub_b = test_types1_subscribe_basics (f->client, TREE_PATH "/b", on_tree_basics, &from_b, NULL);
  sub_any = test_types1_subscribe_basics (f->client, NULL, on_tree_basics, &from_any, NULL);
  /* A call behind the subscriptions: the server has their rules. */
  g_assert_true (test_types1_call_nothing_sync (f->client, TEST_PATH, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_call_emit_sync (f->client, TREE_PATH "/a", "from a", 1, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (test_types1_call_emit_sync (f->client, TREE_PATH "/b", "from b", 2, NULL, &error));
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (from_any.n == 2 && from_b.n == 1);
  /* a's and b's, in either order: a lane client's first subscription
   * moves its signals to the lane, and until the server has switched a
   * signal on the connection and one on the lane are not ordered. */
  g_assert_cmpuint (from_any.n_from_b, ==, 1);
  g_assert_cmpstr (from_b.path, ==, TREE_PATH "/b");
  g_assert_cmpstr (from_b.s, ==, "from b");
  /* The twin: a's signal went to the subscriber of every path alone. */
  g_assert_true (test_types1_call_nothing_sync (f->client, TEST_PATH, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (from_b.n, ==, 1);
  peer_client_unsubscribe_signal (f->client, sub_b);
  peer_client_unsubscribe_signal (f->client, sub_any);
  g_free (from_b.path);
  g_free (from_b.s);
  g_free (from_any.path);
  g_free (from_any.s);
}

/* The twin: a node the lookup does not find is no object, through the
 * stubs as through a plain call. */
static void
test_subtree_no_child (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) plain_error = NULL;
  g_autoptr(GVariant) plain = NULL;
  g_autofree char *name = NULL;

  peer_test_server_invoke (f->ts, export_tree, f);
  g_assert_false (test_types1_call_nothing_sync (f->client, TREE_PATH "/c", NULL, &error));
  plain = peer_client_call_sync (f->client, TREE_PATH "/c", TEST_TYPES1_INTERFACE_NAME, "Nothing", NULL, NULL, -1,
                                 NULL, NULL, NULL, &plain_error);
  g_assert_null (plain);
  /* GDBus's answer for a subtree node without the interface. */
  g_assert_error (plain_error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD);
  g_assert_error (error, plain_error->domain, plain_error->code);
  g_assert_cmpstr (error->message, ==, plain_error->message);
  g_clear_error (&error);
  g_assert_false (test_types1_get_name_sync (f->client, TREE_PATH "/c", &name, NULL, &error));
  g_assert_nonnull (error);
  g_assert_null (name);
}

/* --- against GDBus ------------------------------------------------------- */

/* A GDBus client, written as one is by hand, against the skeleton. */
static void
test_gdbus_client (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) in = NULL;
  g_autofree guint8 *bytes = pattern_new (300, 5);

  f->gdbus = g_dbus_connection_new_for_address_sync (f->ts->address, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT,
                                                     NULL, NULL, &error);
  g_assert_no_error (error);
  in = g_variant_ref_sink (g_variant_new ("(ybnqiuxtdsog)", 1, TRUE, -2, 3, -4, 5, (gint64) -6, (guint64) 7, 8.5,
                                          "s", "/o", "g"));
  reply = g_dbus_connection_call_sync (f->gdbus, NULL, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "EchoBasics", in,
                                       G_VARIANT_TYPE ("(ybnqiuxtdsog)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_variant_equal (reply, in));
  g_clear_pointer (&reply, g_variant_unref);
  g_clear_pointer (&in, g_variant_unref);

  in = g_variant_ref_sink (g_variant_new ("(@aysu@ay)", bytes_variant (bytes, 300), "x", 9, bytes_variant (bytes, 7)));
  reply = g_dbus_connection_call_sync (f->gdbus, NULL, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "EchoMixed", in,
                                       G_VARIANT_TYPE ("(aysuay)"), G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_variant_equal (reply, in));
  g_clear_pointer (&reply, g_variant_unref);

  /* The twin: a GDBus client's wrong arguments get GDBus's answer. */
  reply = g_dbus_connection_call_sync (f->gdbus, NULL, TEST_PATH, TEST_TYPES1_INTERFACE_NAME, "EchoMixed",
                                       g_variant_new ("(s)", "x"), NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_INVALID_ARGS);
}

/* A GDBus server, written by hand, that echoes: the generated client
 * against it. */
typedef struct {
  GSocket *socket;
  GMainContext *context;
  GMainLoop *loop;
  GDBusConnection *connection;
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean ready;
} EchoServer;

static void
gdbus_method_call (GDBusConnection       *connection,
                   const char            *sender,
                   const char            *object_path,
                   const char            *interface_name,
                   const char            *method_name,
                   GVariant              *parameters,
                   GDBusMethodInvocation *invocation,
                   gpointer               user_data)
{
  if (g_str_equal (method_name, "Fail"))
    g_dbus_method_invocation_return_error_literal (invocation, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED, "too many");
  else if (g_str_equal (method_name, "EchoBytes"))
    {
      /* Not what the method returns, which only a hand-made reply can be. */
      g_autoptr(GDBusMessage) reply = g_dbus_message_new_method_reply (g_dbus_method_invocation_get_message (invocation));

      g_dbus_message_set_body (reply, g_variant_new ("(s)", "not bytes"));
      g_dbus_connection_send_message (connection, reply, G_DBUS_SEND_MESSAGE_FLAGS_NONE, NULL, NULL);
      g_object_unref (invocation);
    }
  else
    g_dbus_method_invocation_return_value (invocation, parameters);
}

static gpointer
gdbus_server_thread (gpointer user_data)
{
  EchoServer *s = user_data;
  static const GDBusInterfaceVTable vt = { gdbus_method_call, NULL, NULL, { NULL } };
  g_autoptr(GDBusNodeInfo) node = NULL;
  g_autoptr(GSocketConnection) stream = NULL;
  g_autofree char *guid = g_dbus_generate_guid ();
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (s->context);
  stream = g_socket_connection_factory_create_connection (s->socket);
  s->connection = g_dbus_connection_new_sync (G_IO_STREAM (stream), guid,
                                              G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER |
                                              G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_REQUIRE_SAME_USER,
                                              NULL, NULL, &error);
  g_assert_no_error (error);
  node = g_dbus_node_info_new_for_xml (_test_codegen_test_types1_xml, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_dbus_connection_register_object (s->connection, TEST_PATH, node->interfaces[0], &vt, NULL, NULL,
                                                       &error), >, 0);
  g_mutex_lock (&s->lock);
  s->ready = TRUE;
  g_cond_signal (&s->cond);
  g_mutex_unlock (&s->lock);
  g_main_loop_run (s->loop);
  g_dbus_connection_close_sync (s->connection, NULL, NULL);
  g_clear_object (&s->connection);
  while (g_main_context_iteration (s->context, FALSE))
    ;
  g_main_context_pop_thread_default (s->context);
  return NULL;
}

static gboolean
quit_loop (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

static void
test_gdbus_server (void)
{
  EchoServer s = { 0, };
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) client_socket = NULL;
  g_autoptr(GSocketConnection) client_stream = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GBytes) out = NULL;
  g_autofree char *name = NULL;
  g_autofree guint8 *bytes = pattern_new (70000, 9);
  int sv[2];
  guint32 n;

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  s.socket = g_socket_new_from_fd (sv[0], &error);
  g_assert_no_error (error);
  client_socket = g_socket_new_from_fd (sv[1], &error);
  g_assert_no_error (error);
  s.context = g_main_context_new ();
  s.loop = g_main_loop_new (s.context, FALSE);
  g_mutex_init (&s.lock);
  g_cond_init (&s.cond);
  s.thread = g_thread_new ("gdbus-server", gdbus_server_thread, &s);
  client_stream = g_socket_connection_factory_create_connection (client_socket);
  connection = g_dbus_connection_new_sync (G_IO_STREAM (client_stream), NULL,
                                           G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL, NULL, &error);
  g_assert_no_error (error);
  g_mutex_lock (&s.lock);
  while (!s.ready)
    g_cond_wait (&s.cond, &s.lock);
  g_mutex_unlock (&s.lock);
  client = peer_client_new_for_connection (connection);

  g_assert_true (test_types1_call_echo_mixed_sync (client, TEST_PATH, bytes, 70000, "gd", 3, bytes, 5, &out, &name, &n,
                                                   NULL, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (out, NULL), g_bytes_get_size (out), bytes, 70000);
  g_assert_cmpstr (name, ==, "gd");
  g_assert_cmpuint (n, ==, 3);
  /* The twin: GDBus's error, as the same GError. */
  g_assert_false (test_types1_call_fail_sync (client, TEST_PATH, 0, "", NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_cmpstr (error->message, ==, "too many");
  g_clear_error (&error);
  /* And a reply of the wrong type is an error, with no out value set. */
  g_clear_pointer (&out, g_bytes_unref);
  g_assert_false (test_types1_call_echo_bytes_sync (client, TEST_PATH, bytes, 3, &out, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_null (out);

  peer_client_close (client);
  g_main_context_invoke (s.context, quit_loop, s.loop);
  g_thread_join (s.thread);
  g_main_loop_unref (s.loop);
  g_main_context_unref (s.context);
  g_object_unref (s.socket);
  g_mutex_clear (&s.lock);
  g_cond_clear (&s.cond);
}

/* peer-server's objects, served through peer-codegen's skeletons,
 * introspect as they did through gdbus-codegen's interface data, byte for
 * byte; the twin: the same XML as GDBus's parser reads it does not. */
static void
assert_introspects_as (PeerClient         *client,
                       const char         *path,
                       GDBusInterfaceInfo *expected)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GString) compact = g_string_new (NULL);
  g_autoptr(GString) parsed = g_string_new (NULL);
  g_autoptr(GDBusNodeInfo) reparsed = NULL;
  g_autofree char *source = NULL;
  g_autofree char *file = NULL;
  g_autofree char *xml_path = NULL;
  const char *served;

  reply = peer_client_call_sync (client, path, "org.freedesktop.DBus.Introspectable", "Introspect", NULL,
                                 G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &served);
  g_dbus_interface_info_generate_xml (expected, 2, compact);
  g_assert_nonnull (strstr (served, compact->str));

  file = g_strconcat (expected->name, ".xml", NULL);
  xml_path = g_test_build_filename (G_TEST_DIST, "..", "protocol", file, NULL);
  g_file_get_contents (xml_path, &source, NULL, &error);
  g_assert_no_error (error);
  reparsed = g_dbus_node_info_new_for_xml (source, &error);
  g_assert_no_error (error);
  g_dbus_interface_info_generate_xml (g_dbus_node_info_lookup_interface (reparsed, expected->name), 2, parsed);
  g_assert_cmpstr (parsed->str, !=, compact->str);
  g_assert_null (strstr (served, parsed->str));
}

static void
test_protocol_introspection (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autofree char *job = NULL;
  PeerTestServer *ts = peer_test_server_start ();

  client = peer_test_connect (ts, FALSE);
  assert_introspects_as (client, PEER_BENCH_PATH, peer_proto_bench1_interface_info ());
  assert_introspects_as (client, PEER_HELPER_PATH, peer_proto_helper1_interface_info ());
  /* A job: a child of the subtree the skeleton serves. */
  g_assert_true (peer_helper1_call_start_job_sync (client, PEER_HELPER_PATH, "count", 1, 60000, &job, NULL, &error));
  g_assert_no_error (error);
  assert_introspects_as (client, job, peer_proto_job1_interface_info ());
  peer_client_close (client);
  peer_test_server_free (ts);
}

/* The README shows the very example that is built and run. */
static void
test_readme_example (void)
{
  g_autofree char *readme_path = g_test_build_filename (G_TEST_DIST, "..", "README.md", NULL);
  g_autofree char *example_path = g_test_build_filename (G_TEST_DIST, "..", "examples", "codegen-example.c", NULL);
  g_autofree char *xml_path = g_test_build_filename (G_TEST_DIST, "..", "examples", "codegen-example.xml", NULL);
  g_autofree char *readme = NULL, *example = NULL, *xml = NULL;
  g_autoptr(GError) error = NULL;

  g_file_get_contents (readme_path, &readme, NULL, &error);
  g_assert_no_error (error);
  g_file_get_contents (example_path, &example, NULL, &error);
  g_assert_no_error (error);
  g_file_get_contents (xml_path, &xml, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (readme, example));
  g_assert_nonnull (strstr (readme, xml));
}

int
main (int    argc,
      char **argv)
{
  static const struct { const char *name; gboolean lane; } transports[] = { { "dbus", FALSE }, { "lane", TRUE } };
  static const struct {
    const char *name;
    void (*func) (Fixture *, gconstpointer);
  } cases[] = {
    { "basics", test_basics },
    { "basics/no-object", test_basics_no_object },
    { "bytes", test_bytes },
    { "mixed", test_mixed },
    { "containers", test_containers },
    { "fd", test_fd },
    { "fd/bad", test_fd_bad },
    { "fd-array", test_fd_array },
    { "errors", test_errors },
    { "async", test_async },
    { "properties", test_properties },
    { "properties/read-only", test_properties_read_only },
    { "properties/refused", test_properties_refused },
    { "signals", test_signals },
    { "signals/wrong-type", test_signals_wrong_type },
    { "gdbus-client", test_gdbus_client },
    { "subtree", test_subtree },
    { "subtree/no-child", test_subtree_no_child },
  };

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/codegen/serialise/basics", test_serialise_basics);
  g_test_add_func ("/codegen/serialise/offsets", test_serialise_offsets);
  g_test_add_func ("/codegen/read/valid", test_read_valid);
  g_test_add_func ("/codegen/read/invalid", test_read_invalid);
  g_test_add_func ("/codegen/read/invalid-path", test_read_invalid_path);
  g_test_add_func ("/codegen/read/invalid-fixed", test_read_invalid_fixed);
  g_test_add_func ("/codegen/gdbus-server", test_gdbus_server);
  g_test_add_func ("/codegen/readme-example", test_readme_example);
  g_test_add_func ("/codegen/protocol-introspection", test_protocol_introspection);
  for (gsize t = 0; t < G_N_ELEMENTS (transports); t++)
    for (gsize k = 0; k < G_N_ELEMENTS (cases); k++)
      {
        g_autofree char *path = g_strdup_printf ("/codegen/%s/%s", transports[t].name, cases[k].name);

        g_test_add (path, Fixture, GINT_TO_POINTER (transports[t].lane), fixture_set_up, cases[k].func,
                    fixture_tear_down);
      }
  return g_test_run ();
}
