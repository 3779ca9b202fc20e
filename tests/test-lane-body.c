/* test-lane-body.c: lane bodies are read as strictly as the D-Bus path
 * reads a message: a fixed-size value of the wrong length, an array that
 * is not a whole number of its elements, bad padding or a boolean that is
 * not 0 or 1 are refused, on the server's end (the call is answered with
 * InvalidArgs, its handler never runs) and on the client's (the reply is
 * an error). Also the checks themselves, against GLib's idea of normal
 * form, and the decisions of when and how long a lane end spins (not
 * its timing, which a test cannot assert). */
#include "config.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer-client-private.h"
#include "peer-lane-private.h"
#include "peer-test-util.h"

/* --- the checks, without a lane ---------------------------------------------- */

/* Fixed-size types: every number type, booleans, padding inside and at
 * the end, the empty tuple inside another. */
static const char *const fixed_types[] = {
  "(y)", "(b)", "(n)", "(q)", "(i)", "(u)", "(h)", "(x)", "(t)", "(d)",
  "(ii)", "(yi)", "(iy)", "(bu)", "(yyq)", "(i())", "((yy)i)", "(xb)", "(dyn)",
};

/* Tuples of one array of fixed-size elements. */
static const char *const array_types[] = {
  "(ay)", "(an)", "(aq)", "(ai)", "(au)", "(ah)", "(ax)", "(at)", "(ad)",
  "(ab)", "(a(ii))", "(a(yi))", "(a{ii})", "(a(bq))",
};

/* The rest: checked by a walk (numbers, booleans, arrays of them) or by
 * GLib (strings, variants, maybes). */
static const char *const other_types[] = {
  "(ayay)", "(iay)", "(ayi)", "(aiy)", "(uayb)", "(ay(yi)an)", "(aybay)", "(a(yi)ayx)",
  "(s)", "(as)", "(sai)", "(a{sv})", "(v)", "(mi)", "(ayo)",
};

/* @size bytes of @data, at an address @misalign past 8-byte alignment. */
static GBytes *
bytes_at (const guint8 *data,
          gsize         size,
          gsize         misalign)
{
  guint8 *block = g_malloc0 (size + 16);

  if (size > 0)
    memcpy (block + misalign, data, size);
  return g_bytes_new_with_free_func (block + misalign, size, g_free, block);
}

/* Whether the lane takes @data as a value of @type; when it does, the
 * value must be what GLib reads from the same bytes. */
static gboolean
lane_takes (const char   *type,
            const guint8 *data,
            gsize         size,
            gsize         misalign)
{
  LaneType t;
  g_autoptr(GBytes) bytes = bytes_at (data, size, misalign);
  g_autoptr(GVariant) value = NULL;

  _peer_lane_type_init (&t, type);
  value = _peer_lane_type_read (&t, bytes);
  if (value != NULL)
    {
      g_autoptr(GBytes) copy = g_bytes_new (data, size);
      g_autoptr(GVariant) glib = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (type), copy, FALSE));

      g_assert_true (g_variant_is_of_type (value, G_VARIANT_TYPE (type)));
      g_assert_true (g_variant_equal (value, glib));
    }
  _peer_lane_type_clear (&t);
  return value != NULL;
}

/* What GLib says of @data as a value of @type: normal form, and of the
 * type's size if it has one (GLib reads a fixed-size value of another
 * size as zeros, which are in normal form). */
static gboolean
glib_takes (const char   *type,
            const guint8 *data,
            gsize         size)
{
  g_autoptr(GBytes) bytes = g_bytes_new (data, size);
  g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (type), bytes, FALSE));

  return g_variant_get_size (value) == size && g_variant_is_normal_form (value);
}

/* The size of fixed-size @type: GLib's value of it made from no bytes. */
static gsize
fixed_size_of (const char *type)
{
  g_autoptr(GBytes) none = g_bytes_new_static ("", 0);
  g_autoptr(GVariant) value = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE (type), none, FALSE));

  return g_variant_get_size (value);
}

static void
test_fixed_exact (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (fixed_types); i++)
    {
      const char *type = fixed_types[i];
      gsize size = fixed_size_of (type);
      g_autofree guint8 *zeros = g_malloc0 (size);

      g_assert_cmpuint (size, >, 0);
      /* Zeros of the right length are a value, wherever they lie. */
      for (gsize misalign = 0; misalign < 8; misalign++)
        g_assert_true (lane_takes (type, zeros, size, misalign));
    }
  /* And a value that is not zeros. */
  {
    g_autoptr(GVariant) v = g_variant_ref_sink (g_variant_new ("(yibx)", 7, -5, TRUE, G_GINT64_CONSTANT (1) << 40));
    g_assert_true (lane_takes ("(yibx)", g_variant_get_data (v), g_variant_get_size (v), 3));
  }
}

static void
test_fixed_short_long (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (fixed_types); i++)
    {
      const char *type = fixed_types[i];
      gsize size = fixed_size_of (type);
      g_autofree guint8 *zeros = g_malloc0 (size + 16);

      for (gsize misalign = 0; misalign < 8; misalign += 3)
        {
          /* Short: a 3-byte (i) is not 0, as GLib would read it. */
          for (gsize n = 0; n < size; n++)
            g_assert_false (lane_takes (type, zeros, n, misalign));
          /* Long. */
          for (gsize n = size + 1; n <= size + 16; n++)
            g_assert_false (lane_takes (type, zeros, n, misalign));
        }
    }
}

/* Each byte of a fixed-size value set to 1, then 2, then 0xff: taken
 * exactly when GLib says the result is in normal form (padding must be
 * zero, a boolean 0 or 1, the empty tuple's byte zero). */
static void
test_fixed_bytes (void)
{
  guint refused = 0;

  for (guint i = 0; i < G_N_ELEMENTS (fixed_types); i++)
    {
      const char *type = fixed_types[i];
      gsize size = fixed_size_of (type);
      g_autofree guint8 *data = g_malloc0 (size);
      static const guint8 values[] = { 1, 2, 0xff };

      for (gsize at = 0; at < size; at++)
        for (guint v = 0; v < G_N_ELEMENTS (values); v++)
          {
            gboolean expected;

            data[at] = values[v];
            expected = glib_takes (type, data, size);
            g_assert_cmpint (lane_takes (type, data, size, 0), ==, expected);
            refused += !expected;
            data[at] = 0;
          }
    }
  /* Padding and booleans were among them. */
  g_assert_cmpuint (refused, >, 0);
}

static void
test_arrays (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (array_types); i++)
    {
      const char *type = array_types[i];
      /* The element's size: that of a tuple of it (a dict entry's as a
       * tuple's). */
      g_autofree char *element_tuple = g_strdup_printf ("(%.*s)", (int) strlen (type) - 3, type + 2);
      gsize element_size;
      g_autofree guint8 *zeros = g_malloc0 (64);

      g_strdelimit (element_tuple, "{", '(');
      g_strdelimit (element_tuple, "}", ')');
      element_size = fixed_size_of (element_tuple);

      for (gsize n = 0; n <= 48; n++)
        for (gsize misalign = 0; misalign < 8; misalign += 5)
          {
            gboolean whole = n % element_size == 0;

            /* Whole elements of zeros are a value; a part of one is not
             * (GLib would read an empty array). */
            g_assert_cmpint (lane_takes (type, zeros, n, misalign), ==, whole);
          }
      /* Elements with bad bytes, when there can be any. */
      {
        guint8 data[48] = { 0 };

        for (gsize at = 0; at < 48; at++)
          {
            data[at] = 2;
            g_assert_cmpint (lane_takes (type, data, 48 - 48 % element_size, 0), ==,
                             glib_takes (type, data, 48 - 48 % element_size));
            data[at] = 0;
          }
      }
    }
}

/* A random value of @type, for the types the tests use. */
static GVariant *
random_value (const GVariantType *type,
              guint               depth)
{
  const char *s = g_variant_type_peek_string (type);

  if (g_variant_type_is_tuple (type) || g_variant_type_is_dict_entry (type))
    {
      g_autoptr(GPtrArray) members = g_ptr_array_new ();

      for (const GVariantType *m = g_variant_type_first (type); m != NULL; m = g_variant_type_next (m))
        g_ptr_array_add (members, random_value (m, depth + 1));
      if (g_variant_type_is_dict_entry (type))
        return g_variant_new_dict_entry (members->pdata[0], members->pdata[1]);
      return g_variant_new_tuple ((GVariant **) members->pdata, members->len);
    }
  if (g_variant_type_is_array (type))
    {
      GVariantBuilder builder;
      /* Sometimes long enough for 2-byte framing offsets. */
      guint n = g_test_rand_int_range (0, 4) == 0 ? g_test_rand_int_range (0, 120) : g_test_rand_int_range (0, 6);

      g_variant_builder_init (&builder, type);
      for (guint i = 0; i < n; i++)
        g_variant_builder_add_value (&builder, random_value (g_variant_type_element (type), depth + 1));
      return g_variant_builder_end (&builder);
    }
  if (g_variant_type_is_maybe (type))
    return g_variant_new_maybe (g_variant_type_element (type),
                                g_test_rand_bit () ? random_value (g_variant_type_element (type), depth + 1) : NULL);
  switch (s[0])
    {
    case 'b': return g_variant_new_boolean (g_test_rand_bit ());
    case 'y': return g_variant_new_byte (g_test_rand_int ());
    case 'n': return g_variant_new_int16 (g_test_rand_int ());
    case 'q': return g_variant_new_uint16 (g_test_rand_int ());
    case 'i': return g_variant_new_int32 (g_test_rand_int ());
    case 'u': return g_variant_new_uint32 (g_test_rand_int ());
    case 'h': return g_variant_new_handle (g_test_rand_int ());
    case 'x': return g_variant_new_int64 ((gint64) (((guint64) (guint32) g_test_rand_int () << 32) | (guint32) g_test_rand_int ()));
    case 't': return g_variant_new_uint64 (((guint64) (guint32) g_test_rand_int () << 32) | (guint32) g_test_rand_int ());
    case 'd': return g_variant_new_double (g_test_rand_double ());
    case 's':
      {
        char text[8];
        guint n = g_test_rand_int_range (0, sizeof text);

        for (guint i = 0; i < n; i++)
          text[i] = (char) g_test_rand_int_range ('a', 'z' + 1);
        text[n] = '\0';
        return g_variant_new_string (text);
      }
    case 'o': return g_variant_new_object_path (g_test_rand_bit () ? "/" : "/a/b");
    case 'v': return g_variant_new_variant (depth < 3 ? random_value (G_VARIANT_TYPE ("(iay)"), depth + 1)
                                                      : g_variant_new_int32 (1));
    default:
      g_assert_not_reached ();
    }
}

/* Values of every type, serialized by GLib, are taken and read back the
 * same; then mangled (cut short, grown, a byte changed), they are taken
 * exactly when GLib says they are in normal form. */
static void
test_against_glib (void)
{
  const char *const *lists[] = { fixed_types, array_types, other_types };
  const guint lengths[] = { G_N_ELEMENTS (fixed_types), G_N_ELEMENTS (array_types), G_N_ELEMENTS (other_types) };
  guint taken = 0, refused = 0;

  for (guint l = 0; l < G_N_ELEMENTS (lists); l++)
    for (guint i = 0; i < lengths[l]; i++)
      for (guint round = 0; round < 60; round++)
        {
          const char *type = lists[l][i];
          g_autoptr(GVariant) value = g_variant_ref_sink (random_value (G_VARIANT_TYPE (type), 0));
          gsize size = g_variant_get_size (value);
          g_autofree guint8 *data = g_malloc0 (size + 8);
          gsize n = size;

          g_variant_store (value, data);
          g_assert_true (lane_takes (type, data, size, round % 8));
          switch (round % 4)
            {
            case 0:
              if (size == 0)
                continue;
              n = g_test_rand_int_range (0, size);
              break;
            case 1:
              n = size + g_test_rand_int_range (1, 9);
              for (gsize at = size; at < n; at++)
                data[at] = g_test_rand_bit () ? 0 : g_test_rand_int ();
              break;
            default:
              if (size == 0)
                continue;
              data[g_test_rand_int_range (0, size)] = g_test_rand_int_range (0, 4) == 0 ? 0 : g_test_rand_int ();
              break;
            }
          if (glib_takes (type, data, n))
            {
              g_assert_true (lane_takes (type, data, n, 0));
              taken++;
            }
          else
            {
              g_assert_false (lane_takes (type, data, n, 0));
              refused++;
            }
        }
  g_test_message ("mangled: %u taken, %u refused", taken, refused);
  g_assert_cmpuint (taken, >, 0);
  g_assert_cmpuint (refused, >, 0);
}

/* The empty tuple is one zero byte, nothing else. */
static void
test_unit (void)
{
  const guint8 zero[2] = { 0, 0 }, one[1] = { 1 };

  g_assert_true (lane_takes ("()", zero, 1, 0));
  g_assert_true (lane_takes ("()", zero, 1, 5));
  g_assert_false (lane_takes ("()", zero, 0, 0));
  g_assert_false (lane_takes ("()", zero, 2, 0));
  g_assert_false (lane_takes ("()", one, 1, 0));
}

/* --- the server's end ---------------------------------------------------------- */

#define TEST_PATH "/org/libpeer/LaneBodyTest"
#define TEST_IFACE "org.libpeer.LaneBodyTest1"

static const char test_xml[] =
  "<node><interface name='" TEST_IFACE "'>"
  " <method name='SetVolume'>"
  "  <arg name='volume' type='u' direction='in'/>"
  "  <arg name='volume' type='u' direction='out'/>"
  " </method>"
  " <method name='Pair'>"
  "  <arg name='a' type='y' direction='in'/>"
  "  <arg name='b' type='b' direction='in'/>"
  "  <arg name='c' type='i' direction='in'/>"
  " </method>"
  " <method name='Values'>"
  "  <arg name='values' type='ai' direction='in'/>"
  "  <arg name='n' type='u' direction='out'/>"
  " </method>"
  " <method name='Nothing'/>"
  "</interface></node>";

typedef struct {
  PeerTestServer *ts;
  PeerInterface *iface;
  PeerClient *client;
  gint handled;                 /* atomic: calls that reached a handler */
} Fixture;

static void
handle_set_volume (PeerCall *call,
                   gpointer  user_data)
{
  Fixture *f = user_data;
  guint32 volume;

  g_atomic_int_inc (&f->handled);
  g_variant_get (peer_call_get_parameters (call), "(u)", &volume);
  peer_call_return_value (call, g_variant_new ("(u)", volume));
}

static void
handle_counted (PeerCall *call,
                gpointer  user_data)
{
  Fixture *f = user_data;

  g_atomic_int_inc (&f->handled);
  peer_call_return_value (call, NULL);
}

static void
handle_values (PeerCall *call,
               gpointer  user_data)
{
  Fixture *f = user_data;
  g_autoptr(GVariant) values = g_variant_get_child_value (peer_call_get_parameters (call), 0);

  g_atomic_int_inc (&f->handled);
  peer_call_return_value (call, g_variant_new ("(u)", (guint32) g_variant_n_children (values)));
}

/* TEST_IFACE's handlers, called with the Fixture. */
static const PeerMethodEntry test_entries[] = {
  { "SetVolume", handle_set_volume, PEER_METHOD_FLAGS_THREAD_SAFE },
  { "Pair", handle_counted, PEER_METHOD_FLAGS_NONE },
  { "Values", handle_values, PEER_METHOD_FLAGS_THREAD_SAFE },
  { "Nothing", handle_counted, PEER_METHOD_FLAGS_THREAD_SAFE },
};

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  f->ts = peer_test_server_start ();
  f->iface = peer_test_export (f->ts, TEST_PATH, test_xml, TEST_IFACE, test_entries, G_N_ELEMENTS (test_entries), f);
  f->client = peer_test_connect (f->ts, TRUE);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  peer_test_finish (f->client, f->ts, f->iface);
}

/* Sends a frame whose body is @size raw bytes. */
static void
send_raw_frame (int           fd,
                PeerLaneKind  kind,
                guint32       serial,
                guint32       target,
                const guint8 *body,
                gsize         size)
{
  PeerLaneHeader header = { serial, target, kind, 0, 0, (guint32) size };
  struct iovec iov[2] = { { &header, sizeof header }, { (gpointer) body, size } };
  struct msghdr msg = { .msg_iov = iov, .msg_iovlen = size > 0 ? 2 : 1 };

  g_assert_cmpint (sendmsg (fd, &msg, MSG_NOSIGNAL), ==, (gssize) (sizeof header + size));
}

/* A raw call of @method with @size bytes of @body, on the lane's own
 * socket; returns the answer's frame. */
static void
raw_call (Fixture       *f,
          const char    *method,
          const guint8  *body,
          gsize          size,
          PeerLaneFrame *answer)
{
  PeerLaneClient *lane = _peer_client_get_lane (f->client);
  int fd = _peer_lane_client_get_fd (lane);
  g_autofree guint8 *buffer = g_malloc (PEER_LANE_BUFFER_SIZE);
  g_autoptr(GError) error = NULL;
  static guint32 serial = 1000;
  guint32 id;

  g_assert_true (_peer_lane_client_has_method (lane, TEST_PATH, TEST_IFACE, method, &id));
  send_raw_frame (fd, PEER_LANE_KIND_CALL, ++serial, id, body, size);
  g_assert_true (_peer_lane_read_frame (fd, buffer, 16, FALSE, answer, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (answer->header.target, ==, serial);
}

/* @answer is an error frame naming @name. */
static void
assert_error_frame (PeerLaneFrame *answer,
                    const char    *name)
{
  g_autoptr(GVariant) body = NULL;
  const char *got, *message;

  g_assert_cmpint (answer->header.kind, ==, PEER_LANE_KIND_ERROR);
  body = g_variant_ref_sink (g_variant_new_from_bytes (G_VARIANT_TYPE ("(ss)"), answer->body, FALSE));
  g_variant_get (body, "(&s&s)", &got, &message);
  g_assert_cmpstr (got, ==, name);
}

/* SetVolume(u) with 3 or 5 bytes (or none) is refused, as the D-Bus path
 * refuses it, and its handler never sees a volume of 0. */
static void
test_server_refuses_wrong_length (Fixture      *f,
                                  gconstpointer data)
{
  const guint8 bytes[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  const gsize sizes[] = { 0, 1, 3, 5, 8 };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      PeerLaneFrame answer;

      raw_call (f, "SetVolume", bytes, sizes[i], &answer);
      assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
      _peer_lane_frame_clear (&answer);
    }
  g_assert_cmpint (g_atomic_int_get (&f->handled), ==, 0);
  /* The lane and the peer stay: a bad body is a bad call, not a broken
   * lane. */
  g_assert_false (peer_client_is_closed (f->client));
  g_assert_false (_peer_lane_client_is_closed (_peer_client_get_lane (f->client)));
}

/* The positive twin: 4 bytes are a volume, and it arrives. */
static void
test_server_takes_right_length (Fixture      *f,
                                gconstpointer data)
{
  guint32 volume = 77;
  PeerLaneFrame answer;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  guint32 back;

  raw_call (f, "SetVolume", (const guint8 *) &volume, sizeof volume, &answer);
  g_assert_cmpint (answer.header.kind, ==, PEER_LANE_KIND_REPLY);
  g_assert_cmpuint (g_bytes_get_size (answer.body), ==, 4);
  memcpy (&back, g_bytes_get_data (answer.body, NULL), 4);
  g_assert_cmpuint (back, ==, 77);
  _peer_lane_frame_clear (&answer);
  g_assert_cmpint (g_atomic_int_get (&f->handled), ==, 1);

  /* And through the client, which checks the reply the same way. */
  reply = peer_client_call_sync (f->client, TEST_PATH, TEST_IFACE, "SetVolume", g_variant_new ("(u)", 5),
                                 G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(u)", &back);
  g_assert_cmpuint (back, ==, 5);
}

/* (ybi): 8 bytes, y at 0, b at 1, padding at 2 and 3, i at 4. Bad
 * padding and a boolean of 2 are refused; the handler (in the main
 * context) is reached only by the good one. */
static void
test_server_padding_and_booleans (Fixture      *f,
                                  gconstpointer data)
{
  const guint8 good[8] = { 9, 1, 0, 0, 1, 2, 3, 4 };
  const guint8 bad_pad[8] = { 9, 1, 0, 7, 1, 2, 3, 4 };
  const guint8 bad_bool[8] = { 9, 2, 0, 0, 1, 2, 3, 4 };
  PeerLaneFrame answer;

  raw_call (f, "Pair", bad_pad, sizeof bad_pad, &answer);
  assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
  _peer_lane_frame_clear (&answer);
  raw_call (f, "Pair", bad_bool, sizeof bad_bool, &answer);
  assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
  _peer_lane_frame_clear (&answer);
  raw_call (f, "Pair", good, 7, &answer);
  assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
  _peer_lane_frame_clear (&answer);
  g_assert_cmpint (g_atomic_int_get (&f->handled), ==, 0);

  raw_call (f, "Pair", good, sizeof good, &answer);
  g_assert_cmpint (answer.header.kind, ==, PEER_LANE_KIND_REPLY);
  _peer_lane_frame_clear (&answer);
  g_assert_cmpint (g_atomic_int_get (&f->handled), ==, 1);
}

/* (ai): a whole number of int32s, or refused (GLib would read an empty
 * array). */
static void
test_server_array_elements (Fixture      *f,
                            gconstpointer data)
{
  const guint8 bytes[16] = { 0 };

  for (gsize n = 0; n <= 16; n++)
    {
      PeerLaneFrame answer;

      raw_call (f, "Values", bytes, n, &answer);
      if (n % 4 == 0)
        {
          guint32 count;

          g_assert_cmpint (answer.header.kind, ==, PEER_LANE_KIND_REPLY);
          memcpy (&count, g_bytes_get_data (answer.body, NULL), 4);
          g_assert_cmpuint (count, ==, n / 4);
        }
      else
        assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
      _peer_lane_frame_clear (&answer);
    }
  g_assert_cmpint (g_atomic_int_get (&f->handled), ==, 5);
}

/* (): one zero byte; an empty body or another byte is refused. */
static void
test_server_unit (Fixture      *f,
                  gconstpointer data)
{
  const guint8 zero[2] = { 0, 0 }, one = 1;
  PeerLaneFrame answer;

  raw_call (f, "Nothing", zero, 0, &answer);
  assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
  _peer_lane_frame_clear (&answer);
  raw_call (f, "Nothing", zero, 2, &answer);
  assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
  _peer_lane_frame_clear (&answer);
  raw_call (f, "Nothing", &one, 1, &answer);
  assert_error_frame (&answer, "org.freedesktop.DBus.Error.InvalidArgs");
  _peer_lane_frame_clear (&answer);
  g_assert_cmpint (g_atomic_int_get (&f->handled), ==, 0);

  raw_call (f, "Nothing", zero, 1, &answer);
  g_assert_cmpint (answer.header.kind, ==, PEER_LANE_KIND_REPLY);
  _peer_lane_frame_clear (&answer);
  g_assert_cmpint (g_atomic_int_get (&f->handled), ==, 1);
}

/* --- the client's end ------------------------------------------------------------ */

/* A client lane whose server is the test: one method, Get() -> (u), on a
 * socketpair. */
typedef struct {
  PeerLaneClient *lane;
  int server_fd;
  GVariant *reply;
  GError *error;
} FakeLane;

static void
fake_lane_init (FakeLane   *fake,
                const char *out_signature)
{
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GVariant) open_reply = NULL;
  g_autoptr(GError) error = NULL;
  GVariantBuilder table;
  int pair[2];
  int handle;

  memset (fake, 0, sizeof *fake);
  g_assert_no_errno (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair));
  handle = g_unix_fd_list_append (fds, pair[1], &error);
  g_assert_no_error (error);
  close (pair[1]);
  fake->server_fd = pair[0];
  g_variant_builder_init (&table, G_VARIANT_TYPE ("a(usssssu)"));
  g_variant_builder_add (&table, "(usssssu)", 0, "/x", "org.example.X", "Get", "()", out_signature, 0);
  open_reply = g_variant_ref_sink (g_variant_new ("(ha(usssssu)@a{sv})", handle, &table,
                                                  g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0)));
  fake->lane = _peer_lane_client_new (open_reply, fds, &error);
  g_assert_no_error (error);
  g_assert_nonnull (fake->lane);
}

static void
fake_lane_clear (FakeLane *fake)
{
  g_clear_pointer (&fake->lane, _peer_lane_client_free);
  close (fake->server_fd);
  g_clear_pointer (&fake->reply, g_variant_unref);
  g_clear_error (&fake->error);
}

static gpointer
fake_call_thread (gpointer data)
{
  FakeLane *fake = data;

  fake->reply = _peer_lane_client_call (fake->lane, 0, NULL, NULL, 5000, NULL, NULL, NULL, &fake->error);
  return NULL;
}

/* Calls Get() and answers it with @size bytes of @body; the call's
 * result is in @fake. */
static void
fake_call (FakeLane     *fake,
           const guint8 *body,
           gsize         size)
{
  g_autofree guint8 *buffer = g_malloc (PEER_LANE_BUFFER_SIZE);
  g_autoptr(GError) error = NULL;
  GThread *thread = g_thread_new ("fake-call", fake_call_thread, fake);
  PeerLaneFrame call;

  g_assert_true (_peer_lane_read_frame (fake->server_fd, buffer, 0, FALSE, &call, &error));
  g_assert_no_error (error);
  g_assert_cmpint (call.header.kind, ==, PEER_LANE_KIND_CALL);
  send_raw_frame (fake->server_fd, PEER_LANE_KIND_REPLY, 0, call.header.serial, body, size);
  _peer_lane_frame_clear (&call);
  g_thread_join (thread);
}

static void
test_client_refuses_bad_replies (void)
{
  const guint8 bytes[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  const gsize sizes[] = { 0, 3, 5, 8 };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      FakeLane fake;

      fake_lane_init (&fake, "(u)");
      fake_call (&fake, bytes, sizes[i]);
      g_assert_null (fake.reply);
      g_assert_error (fake.error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
      fake_lane_clear (&fake);
    }
  {
    FakeLane fake;

    /* (ai) of 6 bytes. */
    fake_lane_init (&fake, "(ai)");
    fake_call (&fake, bytes, 6);
    g_assert_error (fake.error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
    fake_lane_clear (&fake);
  }
}

/* The positive twin: replies of the right shape are taken. */
static void
test_client_takes_good_replies (void)
{
  const guint8 bytes[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  FakeLane fake;
  guint32 value;

  fake_lane_init (&fake, "(u)");
  fake_call (&fake, bytes, 4);
  g_assert_no_error (fake.error);
  g_variant_get (fake.reply, "(u)", &value);
  g_assert_cmpuint (value, ==, 0x04030201);
  fake_lane_clear (&fake);

  fake_lane_init (&fake, "(ai)");
  fake_call (&fake, bytes, 8);
  g_assert_no_error (fake.error);
  g_assert_cmpuint (g_variant_n_children (fake.reply), ==, 1);
  {
    g_autoptr(GVariant) values = g_variant_get_child_value (fake.reply, 0);
    g_assert_cmpuint (g_variant_n_children (values), ==, 2);
  }
  fake_lane_clear (&fake);
}

/* --- when a lane end spins ------------------------------------------------------ */

static void
set_cpus (cpu_set_t *set,
          int        first,
          int        second)
{
  CPU_ZERO (set);
  CPU_SET (first, set);
  if (second >= 0)
    CPU_SET (second, set);
}

/* One CPU between both ends: no spin, whatever the machine has. Two: the
 * configured spin, also when each end is pinned to its own CPU. */
static void
test_spin_cpus (void)
{
  cpu_set_t zero, one, both;

  set_cpus (&zero, 0, -1);
  set_cpus (&one, 1, -1);
  set_cpus (&both, 0, 1);
  g_assert_cmpint (_peer_lane_spin_max_for (&zero, NULL, 50), ==, 0);
  g_assert_cmpint (_peer_lane_spin_max_for (&zero, &zero, 50), ==, 0);
  g_assert_cmpint (_peer_lane_spin_max_for (&zero, &one, 50), ==, 50);
  g_assert_cmpint (_peer_lane_spin_max_for (&both, NULL, 50), ==, 50);
  g_assert_cmpint (_peer_lane_spin_max_for (&one, &both, 50), ==, 50);
  /* Turned off ($PEER_LANE_SPIN_US=0). */
  g_assert_cmpint (_peer_lane_spin_max_for (&both, &both, 0), ==, 0);
}

/* The budget follows the replies: twice their recent time, never below
 * the minimum for fast ones (a fast reply once stopped spinning for 64
 * waits), back to the maximum after a miss, off only after several
 * misses in a row, and on again when probing catches one. */
static void
test_spin_budget (void)
{
  LaneSpin spin;
  const gint64 max = 50000;
  guint waits;

  _peer_lane_spin_init (&spin);
  spin.max = spin.budget = max;

  for (guint i = 0; i < 100; i++)
    _peer_lane_spin_record (&spin, TRUE, 500);
  g_assert_cmpint (spin.budget, >, 0);
  g_assert_cmpint (spin.budget, <, max);

  for (guint i = 0; i < 100; i++)
    _peer_lane_spin_record (&spin, TRUE, 20000);
  g_assert_cmpint (spin.budget, >=, 2 * 19000);
  g_assert_cmpint (spin.budget, <=, max);

  /* One late reply: the next wait spins at the maximum. */
  _peer_lane_spin_record (&spin, FALSE, 40000);
  g_assert_cmpint (spin.budget, ==, max);
  _peer_lane_spin_record (&spin, TRUE, 20000);
  g_assert_cmpint (spin.budget, >, 0);

  /* A peer slower than spinning is worth: off. */
  for (guint i = 0; i < 8 && spin.budget > 0; i++)
    _peer_lane_spin_record (&spin, FALSE, max);
  g_assert_cmpint (spin.budget, ==, 0);

  /* Off, a wait returns at once (the socket is never looked at), until
   * one probes again at the maximum. */
  for (waits = 0; spin.budget == 0 && waits < 1000; waits++)
    _peer_lane_spin_wait (&spin, -1);
  g_assert_cmpuint (waits, <, 1000);
  g_assert_cmpint (spin.budget, ==, max);
}

/* While more threads of the process wait for frames than may spin, a
 * wait does not spin (it returns at once, and learns nothing: no miss is
 * counted); with none waiting, the same wait spins its budget out on an
 * empty socket and counts the miss. */
static void
test_spin_waiters (void)
{
  guint n = _peer_lane_n_cpus () + 1;
  LaneSpin spin;
  int pair[2];

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair));
  _peer_lane_spin_init (&spin);
  spin.max = spin.budget = 20000;

  for (guint i = 0; i < n; i++)
    _peer_lane_wait_begin ();
  g_assert_false (_peer_lane_spin_wait (&spin, pair[0]));
  for (guint i = 0; i < n; i++)
    _peer_lane_wait_end ();
  g_assert_cmpuint (spin.misses, ==, 0);
  g_assert_cmpint (spin.budget, ==, 20000);

  g_assert_false (_peer_lane_spin_wait (&spin, pair[0]));
  g_assert_cmpuint (spin.misses, ==, 1);
  close (pair[0]);
  close (pair[1]);
}

typedef struct {
  pid_t peer;                   /* 0: none given */
  int cpu;
  LaneSpin spin;
} SpinDecision;

/* In a thread of its own, pinned to @d->cpu: the test's thread keeps its
 * CPUs. A wait on a socket with a frame already there decides, and
 * returns at once. */
static gpointer
spin_decide_thread (gpointer data)
{
  SpinDecision *d = data;
  cpu_set_t set;
  int pair[2];
  const char frame = 1;

  set_cpus (&set, d->cpu, -1);
  g_assert_no_errno (sched_setaffinity (0, sizeof set, &set));
  g_assert_no_errno (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair));
  g_assert_cmpint (send (pair[1], &frame, 1, 0), ==, 1);
  _peer_lane_spin_init_for_peer (&d->spin, d->peer);
  g_assert_cmpint (d->spin.max, <, 0);
  _peer_lane_spin_wait (&d->spin, pair[0]);
  close (pair[0]);
  close (pair[1]);
  return NULL;
}

static gint64
spin_decision (pid_t peer,
               int   cpu)
{
  SpinDecision d = { peer, cpu, { 0 } };

  g_thread_join (g_thread_new ("spin-decide", spin_decide_thread, &d));
  return d.spin.max;
}

/* Pinned to one CPU, with a peer that is this process (or the socket's
 * creator, this process too): no spin. With a peer pinned to another
 * CPU: a spin. */
static void
test_spin_affinity (void)
{
  cpu_set_t allowed, other;
  int cpus[2] = { -1, -1 };
  g_autoptr(GSubprocess) peer = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *spin_env = g_strdup (g_getenv ("PEER_LANE_SPIN_US"));

  g_assert_no_errno (sched_getaffinity (0, sizeof allowed, &allowed));
  for (int cpu = 0, n = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
    if (CPU_ISSET (cpu, &allowed))
      cpus[n++] = cpu;

  g_assert_cmpint (spin_decision (0, cpus[0]), ==, 0);
  g_assert_cmpint (spin_decision (getpid (), cpus[0]), ==, 0);
  if (cpus[1] < 0)
    {
      g_test_skip ("one CPU: no peer can be elsewhere");
      return;
    }
  if (spin_env != NULL && g_strcmp0 (spin_env, "0") == 0)
    {
      g_test_skip ("PEER_LANE_SPIN_US=0 turns spinning off");
      return;
    }

  /* A peer process pinned to the other CPU: cat, waiting on its stdin
   * until the test closes it. */
  peer = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE, &error, "cat", NULL);
  g_assert_no_error (error);
  set_cpus (&other, cpus[1], -1);
  g_assert_no_errno (sched_setaffinity (atoi (g_subprocess_get_identifier (peer)), sizeof other, &other));
  g_assert_cmpint (spin_decision (atoi (g_subprocess_get_identifier (peer)), cpus[0]), >, 0);
  /* Twin: the same peer on this CPU. */
  set_cpus (&other, cpus[0], -1);
  g_assert_no_errno (sched_setaffinity (atoi (g_subprocess_get_identifier (peer)), sizeof other, &other));
  g_assert_cmpint (spin_decision (atoi (g_subprocess_get_identifier (peer)), cpus[0]), ==, 0);

  g_output_stream_close (g_subprocess_get_stdin_pipe (peer), NULL, NULL);
  g_assert_true (g_subprocess_wait_check (peer, NULL, &error));
  g_assert_no_error (error);
}

int
main (int    argc,
      char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/peer/lane-body/check/fixed-exact", test_fixed_exact);
  g_test_add_func ("/peer/lane-body/check/fixed-short-long", test_fixed_short_long);
  g_test_add_func ("/peer/lane-body/check/fixed-bytes", test_fixed_bytes);
  g_test_add_func ("/peer/lane-body/check/arrays", test_arrays);
  g_test_add_func ("/peer/lane-body/check/unit", test_unit);
  g_test_add_func ("/peer/lane-body/check/against-glib", test_against_glib);
#define ADD(path, func) g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/peer/lane-body/server/refuses-wrong-length", test_server_refuses_wrong_length);
  ADD ("/peer/lane-body/server/takes-right-length", test_server_takes_right_length);
  ADD ("/peer/lane-body/server/padding-and-booleans", test_server_padding_and_booleans);
  ADD ("/peer/lane-body/server/array-elements", test_server_array_elements);
  ADD ("/peer/lane-body/server/unit", test_server_unit);
#undef ADD
  g_test_add_func ("/peer/lane-body/client/refuses-bad-replies", test_client_refuses_bad_replies);
  g_test_add_func ("/peer/lane-body/client/takes-good-replies", test_client_takes_good_replies);
  g_test_add_func ("/peer/lane-body/spin/cpus", test_spin_cpus);
  g_test_add_func ("/peer/lane-body/spin/budget", test_spin_budget);
  g_test_add_func ("/peer/lane-body/spin/waiters", test_spin_waiters);
  g_test_add_func ("/peer/lane-body/spin/affinity", test_spin_affinity);
  return g_test_run ();
}
