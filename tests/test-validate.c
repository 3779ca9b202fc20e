/* test-validate.c: _peer_validate_message(), rule by rule.
 *
 * Each case describes a message (type, serial, header fields as GVariants,
 * body, number of fds) and checks it twice: as D-Bus wire bytes, marshalled
 * here (little-endian) and read by g_dbus_message_new_from_blob() as GDBus's
 * worker reads them; and as a GDBusMessage built field by field in process.
 * Every rule has a malformed case and its well-formed twin, which differs
 * only in the value the rule is about.
 *
 * Some malformed messages never get past GLib's parser (a SIGNATURE that is
 * not of type 'g', a missing required field, a SIGNAL on the reserved path):
 * for those the wire check accepts a refusal from either the parser or the
 * validator, and the built check shows that the validator refuses them on
 * its own.
 */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "peer-error.h"
#include "peer-validate-private.h"

/* ---- messages described field by field ---- */

typedef struct {
  guint8 type;
  guint32 serial;
  GVariant *fields[256];        /* by header field code; NULL when absent */
  GVariant *body;               /* a tuple, or NULL */
  guint n_fds;                  /* fds that come with the message */
} TestMessage;

static void
test_message_free (TestMessage *m)
{
  for (guint i = 0; i < G_N_ELEMENTS (m->fields); i++)
    g_clear_pointer (&m->fields[i], g_variant_unref);
  g_clear_pointer (&m->body, g_variant_unref);
  g_free (m);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestMessage, test_message_free)

/* Sets (or, with NULL, removes) a header field; sinks @value, or takes a
 * reference of its own when it is not floating. */
static void
test_message_set (TestMessage *m,
                  guint8       field,
                  GVariant    *value)
{
  g_clear_pointer (&m->fields[field], g_variant_unref);
  if (value != NULL)
    m->fields[field] = g_variant_ref_sink (value);
}

/* Sets the body and the SIGNATURE field that goes with it. */
static void
test_message_set_body (TestMessage *m,
                       GVariant    *body)
{
  g_autofree char *signature = NULL;
  const char *type = g_variant_get_type_string (body);

  g_clear_pointer (&m->body, g_variant_unref);
  m->body = g_variant_ref_sink (body);
  signature = g_strndup (type + 1, strlen (type) - 2);
  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_SIGNATURE, g_variant_new_signature (signature));
}

/* A complete, valid message of @type. */
static TestMessage *
valid_message (GDBusMessageType type)
{
  TestMessage *m = g_new0 (TestMessage, 1);

  m->type = type;
  m->serial = 7;
  switch (type)
    {
    case G_DBUS_MESSAGE_TYPE_METHOD_CALL:
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_PATH, g_variant_new_object_path ("/org/example/Object"));
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, g_variant_new_string ("org.example.Iface"));
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_MEMBER, g_variant_new_string ("Ping"));
      break;
    case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL, g_variant_new_uint32 (3));
      break;
    case G_DBUS_MESSAGE_TYPE_ERROR:
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME, g_variant_new_string ("org.example.Error.Failed"));
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL, g_variant_new_uint32 (3));
      test_message_set_body (m, g_variant_new ("(s)", "it failed"));
      break;
    case G_DBUS_MESSAGE_TYPE_SIGNAL:
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_PATH, g_variant_new_object_path ("/org/example/Object"));
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, g_variant_new_string ("org.example.Iface"));
      test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_MEMBER, g_variant_new_string ("Changed"));
      break;
    case G_DBUS_MESSAGE_TYPE_INVALID:
    default:
      g_assert_not_reached ();
    }
  return m;
}

/* ---- little-endian D-Bus marshalling ---- */

static void
pad_to (GByteArray *out,
        guint       alignment)
{
  static const guint8 zeros[8] = { 0, };

  g_byte_array_append (out, zeros, (alignment - out->len % alignment) % alignment);
}

static void
put_u32 (GByteArray *out,
         guint32     value)
{
  guint32 le = GUINT32_TO_LE (value);

  pad_to (out, 4);
  g_byte_array_append (out, (const guint8 *) &le, 4);
}

static guint
type_alignment (const GVariantType *type)
{
  switch (g_variant_type_peek_string (type)[0])
    {
    case 'y': case 'g': case 'v':
      return 1;
    case 'n': case 'q':
      return 2;
    case 'x': case 't': case 'd': case '(': case '{':
      return 8;
    default:
      return 4;
    }
}

static void
marshal (GByteArray *out,
         GVariant   *value)
{
  switch (g_variant_classify (value))
    {
    case G_VARIANT_CLASS_BYTE:
      g_byte_array_append (out, (const guint8 *) g_variant_get_data (value), 1);
      break;
    case G_VARIANT_CLASS_BOOLEAN:
      put_u32 (out, g_variant_get_boolean (value));
      break;
    case G_VARIANT_CLASS_INT16:
    case G_VARIANT_CLASS_UINT16:
      {
        guint16 le = GUINT16_TO_LE (*(const guint16 *) g_variant_get_data (value));
        pad_to (out, 2);
        g_byte_array_append (out, (const guint8 *) &le, 2);
      }
      break;
    case G_VARIANT_CLASS_INT32:
    case G_VARIANT_CLASS_UINT32:
    case G_VARIANT_CLASS_HANDLE:
      put_u32 (out, *(const guint32 *) g_variant_get_data (value));
      break;
    case G_VARIANT_CLASS_INT64:
    case G_VARIANT_CLASS_UINT64:
    case G_VARIANT_CLASS_DOUBLE:
      {
        guint64 le = GUINT64_TO_LE (*(const guint64 *) g_variant_get_data (value));
        pad_to (out, 8);
        g_byte_array_append (out, (const guint8 *) &le, 8);
      }
      break;
    case G_VARIANT_CLASS_STRING:
    case G_VARIANT_CLASS_OBJECT_PATH:
      {
        gsize length;
        const char *text = g_variant_get_string (value, &length);
        put_u32 (out, length);
        g_byte_array_append (out, (const guint8 *) text, length + 1);
      }
      break;
    case G_VARIANT_CLASS_SIGNATURE:
      {
        gsize length;
        const char *text = g_variant_get_string (value, &length);
        guint8 byte = length;
        g_byte_array_append (out, &byte, 1);
        g_byte_array_append (out, (const guint8 *) text, length + 1);
      }
      break;
    case G_VARIANT_CLASS_VARIANT:
      {
        g_autoptr(GVariant) child = g_variant_get_variant (value);
        g_autoptr(GVariant) signature = g_variant_ref_sink (g_variant_new_signature (g_variant_get_type_string (child)));
        marshal (out, signature);
        marshal (out, child);
      }
      break;
    case G_VARIANT_CLASS_ARRAY:
      {
        guint length_at, start;
        guint32 length;

        put_u32 (out, 0);
        length_at = out->len - 4;
        pad_to (out, type_alignment (g_variant_type_element (g_variant_get_type (value))));
        start = out->len;
        for (gsize i = 0; i < g_variant_n_children (value); i++)
          {
            g_autoptr(GVariant) child = g_variant_get_child_value (value, i);
            marshal (out, child);
          }
        length = GUINT32_TO_LE (out->len - start);
        memcpy (out->data + length_at, &length, 4);
      }
      break;
    case G_VARIANT_CLASS_TUPLE:
    case G_VARIANT_CLASS_DICT_ENTRY:
      pad_to (out, 8);
      for (gsize i = 0; i < g_variant_n_children (value); i++)
        {
          g_autoptr(GVariant) child = g_variant_get_child_value (value, i);
          marshal (out, child);
        }
      break;
    case G_VARIANT_CLASS_MAYBE:
    default:
      g_assert_not_reached ();
    }
}

/* The wire bytes of @m: the fixed header, the header fields in order of
 * their codes, padding, the body. */
static GBytes *
test_message_to_wire (const TestMessage *m)
{
  g_autoptr(GByteArray) body = g_byte_array_new ();
  g_autoptr(GByteArray) out = g_byte_array_new ();
  g_autoptr(GVariant) header = NULL;
  GVariantBuilder fields;

  if (m->body != NULL)
    marshal (body, m->body);
  g_variant_builder_init (&fields, G_VARIANT_TYPE ("a(yv)"));
  for (guint i = 0; i < G_N_ELEMENTS (m->fields); i++)
    if (m->fields[i] != NULL)
      g_variant_builder_add (&fields, "(yv)", (guint8) i, m->fields[i]);
  header = g_variant_ref_sink (g_variant_new ("(yyyyuua(yv))", 'l', m->type, 0, 1,
                                              body->len, m->serial, &fields));
  marshal (out, header);
  pad_to (out, 8);
  g_byte_array_append (out, body->data, body->len);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static GUnixFDList *
make_fds (guint n_fds)
{
  GUnixFDList *fds = g_unix_fd_list_new ();

  for (guint i = 0; i < n_fds; i++)
    {
      int fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
      g_assert_cmpint (fd, >=, 0);
      g_assert_cmpint (g_unix_fd_list_append (fds, fd, NULL), ==, (int) i);
      close (fd);
    }
  return fds;
}

/* As GDBus's worker does: the bytes through the parser, then the fds that
 * came along attached. The worker's g_dbus_message_set_unix_fd_list() also
 * rewrites NUM_UNIX_FDS to the number received; the field as it was on the
 * wire is put back, so that the validator's comparison can be tested. */
static GDBusMessage *
parse_wire (const TestMessage *m,
            GError           **error)
{
  g_autoptr(GBytes) wire = test_message_to_wire (m);
  g_autofree guchar *copy = g_memdup2 (g_bytes_get_data (wire, NULL), g_bytes_get_size (wire));
  g_autoptr(GDBusMessage) message = NULL;
  g_autoptr(GError) local_error = NULL;

  g_assert_cmpint (g_dbus_message_bytes_needed (copy, g_bytes_get_size (wire), &local_error), ==,
                   g_bytes_get_size (wire));
  g_assert_no_error (local_error);
  message = g_dbus_message_new_from_blob (copy, g_bytes_get_size (wire),
                                          G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, error);
  if (message != NULL && m->n_fds > 0)
    {
      g_autoptr(GUnixFDList) fds = make_fds (m->n_fds);
      GVariant *announced = g_dbus_message_get_header (message, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS);

      if (announced != NULL)
        g_variant_ref (announced);
      g_dbus_message_set_unix_fd_list (message, fds);
      g_dbus_message_set_header (message, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS, announced);
      g_clear_pointer (&announced, g_variant_unref);
    }
  return g_steal_pointer (&message);
}

/* The same message built in process, field by field, with no parser in
 * between: GLib's setters for the body and the fds set SIGNATURE and
 * NUM_UNIX_FDS themselves, so every field is set (or cleared) after them. */
static GDBusMessage *
build (const TestMessage *m)
{
  GDBusMessage *message = g_dbus_message_new ();

  g_dbus_message_set_message_type (message, m->type);
  g_dbus_message_set_serial (message, m->serial);
  if (m->body != NULL)
    g_dbus_message_set_body (message, m->body);
  if (m->n_fds > 0)
    {
      g_autoptr(GUnixFDList) fds = make_fds (m->n_fds);
      g_dbus_message_set_unix_fd_list (message, fds);
    }
  for (guint i = 0; i < G_N_ELEMENTS (m->fields); i++)
    g_dbus_message_set_header (message, i, m->fields[i]);
  return message;
}

/* ---- checks ---- */

typedef enum {
  CHECK_WIRE_AND_BUILT,         /* the parser takes it; the validator decides */
  CHECK_PARSER_MAY_REFUSE,      /* on the wire, the parser may refuse it first */
  CHECK_BUILT_ONLY,             /* the parser cannot produce it */
} CheckKind;

static void
assert_validation (GDBusMessage *message,
                   gboolean      malformed,
                   const char   *rule)
{
  g_autoptr(GError) error = NULL;
  gboolean ok = _peer_validate_message (message, &error);

  if (!malformed)
    {
      g_assert_no_error (error);
      g_assert_true (ok);
      return;
    }
  g_assert_false (ok);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL);
  g_assert_null (strchr (error->message, '\n'));
  if (strstr (error->message, rule) == NULL)
    g_error ("\"%s\" does not name the rule \"%s\"", error->message, rule);
}

/* @rule: a fragment of the validator's error message. */
static void
check (const TestMessage *m,
       gboolean           malformed,
       CheckKind          kind,
       const char        *rule)
{
  g_autoptr(GDBusMessage) built = build (m);

  assert_validation (built, malformed, rule);

  if (kind != CHECK_BUILT_ONLY)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GDBusMessage) parsed = parse_wire (m, &error);

      if (parsed == NULL && malformed && kind == CHECK_PARSER_MAY_REFUSE)
        {
          g_test_message ("refused by GLib's parser: %s", error->message);
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
          return;
        }
      g_assert_no_error (error);
      g_assert_nonnull (parsed);
      assert_validation (parsed, malformed, rule);
    }
}

#define MALFORMED(data) GPOINTER_TO_INT (data)

/* ---- message type and serial ---- */

static void
test_message_type (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  /* GLib's parser takes any type but 0, and GLib then ignores the message. */
  if (MALFORMED (data))
    m->type = 5;
  check (m, MALFORMED (data), CHECK_WIRE_AND_BUILT, "type 5 is not");
}

static void
test_message_type_zero (void)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  /* Type 0 (INVALID): GLib's parser refuses it. */
  m->type = 0;
  check (m, TRUE, CHECK_PARSER_MAY_REFUSE, "type 0 is not");
}

static void
test_message_type_high (void)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_SIGNAL);

  m->type = 255;
  check (m, TRUE, CHECK_WIRE_AND_BUILT, "type 255 is not");
}

static void
test_serial (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  /* GLib's parser takes serial 0, and its dispatch then prints CRITICALs. */
  m->serial = MALFORMED (data) ? 0 : 1;
  check (m, MALFORMED (data), CHECK_WIRE_AND_BUILT, "serial is 0");
}

/* Field code 0 is INVALID in the specification; an unknown code such as
 * 200 is ignored. */
static void
test_field_code (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  test_message_set (m, MALFORMED (data) ? 0 : 200, g_variant_new_byte (1));
  check (m, MALFORMED (data), CHECK_WIRE_AND_BUILT, "code 0");
}

static void
test_unknown_field_any_type (void)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_SIGNAL);

  test_message_set (m, 10, g_variant_new ("(sa{sv})", "future", NULL));
  test_message_set (m, 255, g_variant_new_object_path ("/x"));
  check (m, FALSE, CHECK_WIRE_AND_BUILT, NULL);
}

/* ---- header field types ---- */

typedef struct {
  const char *test_path;
  guint8 field;
  GDBusMessageType type;        /* a message this field fits */
  const char *good;             /* GVariant text of a right value */
  const char *bad;              /* and of a value of the wrong type */
  const char *rule;
  CheckKind kind;
} FieldTypeCase;

static const FieldTypeCase field_type_cases[] = {
  /* The one that crashes GLib's dispatch: get_path() returns NULL. */
  { "/peer/validate/path-type", G_DBUS_MESSAGE_HEADER_FIELD_PATH, G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    "objectpath '/org/example/Object'", "'/org/example/Object'",
    "The PATH header field has type 's', not 'o'", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/path-type/uint32", G_DBUS_MESSAGE_HEADER_FIELD_PATH, G_DBUS_MESSAGE_TYPE_SIGNAL,
    "objectpath '/org/example/Object'", "uint32 1",
    "The PATH header field has type 'u', not 'o'", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/interface-type", G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    "'org.example.Iface'", "objectpath '/org/example/Iface'",
    "The INTERFACE header field has type 'o', not 's'", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/member-type", G_DBUS_MESSAGE_HEADER_FIELD_MEMBER, G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    "'Ping'", "signature 's'",
    "The MEMBER header field has type 'g', not 's'", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/error-name-type", G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME, G_DBUS_MESSAGE_TYPE_ERROR,
    "'org.example.Error.Failed'", "objectpath '/org/example/Error'",
    "The ERROR_NAME header field has type 'o', not 's'", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/reply-serial-type", G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL, G_DBUS_MESSAGE_TYPE_METHOD_RETURN,
    "uint32 3", "int32 3",
    "The REPLY_SERIAL header field has type 'i', not 'u'", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/destination-type", G_DBUS_MESSAGE_HEADER_FIELD_DESTINATION, G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    "':1.42'", "uint32 42",
    "The DESTINATION header field has type 'u', not 's'", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/sender-type", G_DBUS_MESSAGE_HEADER_FIELD_SENDER, G_DBUS_MESSAGE_TYPE_SIGNAL,
    "'org.example.Sender'", "objectpath '/org/example/Sender'",
    "The SENDER header field has type 'o', not 's'", CHECK_WIRE_AND_BUILT },
  /* GLib's parser refuses a SIGNATURE that is not of type 'g'. */
  { "/peer/validate/signature-type", G_DBUS_MESSAGE_HEADER_FIELD_SIGNATURE, G_DBUS_MESSAGE_TYPE_METHOD_RETURN,
    "signature ''", "''",
    "The SIGNATURE header field has type 's', not 'g'", CHECK_PARSER_MAY_REFUSE },
  { "/peer/validate/num-unix-fds-type", G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS, G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    "uint32 0", "'0'",
    "The NUM_UNIX_FDS header field has type 's', not 'u'", CHECK_WIRE_AND_BUILT },
};

static void
test_field_type (const FieldTypeCase *c,
                 gboolean             malformed)
{
  g_autoptr(TestMessage) m = valid_message (c->type);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) value = g_variant_parse (NULL, malformed ? c->bad : c->good, NULL, NULL, &error);

  g_assert_no_error (error);
  test_message_set (m, c->field, value);
  check (m, malformed, c->kind, c->rule);

  if (c->field == G_DBUS_MESSAGE_HEADER_FIELD_PATH && malformed)
    {
      g_autoptr(GDBusMessage) parsed = parse_wire (m, &error);

      /* Why this rule matters: GLib takes the message, without a path. */
      g_assert_no_error (error);
      g_assert_null (g_dbus_message_get_path (parsed));
    }
}

static void
test_field_type_malformed (gconstpointer data)
{
  test_field_type (data, TRUE);
}

static void
test_field_type_twin (gconstpointer data)
{
  test_field_type (data, FALSE);
}

/* ---- required fields ---- */

typedef struct {
  const char *test_path;
  GDBusMessageType type;
  guint8 field;
  const char *rule;
} RequiredCase;

/* GLib's parser checks that each of these is present (of whatever type),
 * so on the wire it refuses them before the validator. */
static const RequiredCase required_cases[] = {
  { "/peer/validate/required/method-call-path", G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    G_DBUS_MESSAGE_HEADER_FIELD_PATH, "The METHOD_CALL message has no PATH header field" },
  { "/peer/validate/required/method-call-member", G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    G_DBUS_MESSAGE_HEADER_FIELD_MEMBER, "The METHOD_CALL message has no MEMBER header field" },
  { "/peer/validate/required/signal-path", G_DBUS_MESSAGE_TYPE_SIGNAL,
    G_DBUS_MESSAGE_HEADER_FIELD_PATH, "The SIGNAL message has no PATH header field" },
  { "/peer/validate/required/signal-interface", G_DBUS_MESSAGE_TYPE_SIGNAL,
    G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, "The SIGNAL message has no INTERFACE header field" },
  { "/peer/validate/required/signal-member", G_DBUS_MESSAGE_TYPE_SIGNAL,
    G_DBUS_MESSAGE_HEADER_FIELD_MEMBER, "The SIGNAL message has no MEMBER header field" },
  { "/peer/validate/required/error-error-name", G_DBUS_MESSAGE_TYPE_ERROR,
    G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME, "The ERROR message has no ERROR_NAME header field" },
  { "/peer/validate/required/error-reply-serial", G_DBUS_MESSAGE_TYPE_ERROR,
    G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL, "The ERROR message has no REPLY_SERIAL header field" },
  { "/peer/validate/required/method-return-reply-serial", G_DBUS_MESSAGE_TYPE_METHOD_RETURN,
    G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL, "The METHOD_RETURN message has no REPLY_SERIAL header field" },
};

static void
test_required (const RequiredCase *c,
               gboolean            malformed)
{
  g_autoptr(TestMessage) m = valid_message (c->type);

  if (malformed)
    test_message_set (m, c->field, NULL);
  check (m, malformed, CHECK_PARSER_MAY_REFUSE, c->rule);
}

static void
test_required_malformed (gconstpointer data)
{
  test_required (data, TRUE);
}

static void
test_required_twin (gconstpointer data)
{
  test_required (data, FALSE);
}

/* A METHOD_CALL needs no INTERFACE. */
static void
test_method_call_without_interface (void)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, NULL);
  check (m, FALSE, CHECK_WIRE_AND_BUILT, NULL);
}

/* ---- names and values ---- */

typedef struct {
  const char *test_path;
  GDBusMessageType type;
  guint8 field;
  const char *good;
  const char *bad;
  const char *rule;
} NameCase;

static const NameCase name_cases[] = {
  { "/peer/validate/interface-name", G_DBUS_MESSAGE_TYPE_METHOD_CALL, G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE,
    "org.example.Iface", "org..example", "not a valid interface name" },
  { "/peer/validate/interface-name/one-element", G_DBUS_MESSAGE_TYPE_SIGNAL, G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE,
    "org.example", "example", "not a valid interface name" },
  { "/peer/validate/interface-name/digit", G_DBUS_MESSAGE_TYPE_METHOD_CALL, G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE,
    "org.example.v2", "org.example.2", "not a valid interface name" },
  { "/peer/validate/member-name", G_DBUS_MESSAGE_TYPE_METHOD_CALL, G_DBUS_MESSAGE_HEADER_FIELD_MEMBER,
    "Ping_2", "Ping.Pong", "not a valid member name" },
  { "/peer/validate/member-name/empty", G_DBUS_MESSAGE_TYPE_SIGNAL, G_DBUS_MESSAGE_HEADER_FIELD_MEMBER,
    "C", "", "not a valid member name" },
  { "/peer/validate/member-name/digit", G_DBUS_MESSAGE_TYPE_METHOD_CALL, G_DBUS_MESSAGE_HEADER_FIELD_MEMBER,
    "P1", "1P", "not a valid member name" },
  { "/peer/validate/error-name", G_DBUS_MESSAGE_TYPE_ERROR, G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME,
    "org.example.Error.Failed", "Failed", "not a valid error name" },
  { "/peer/validate/error-name/dash", G_DBUS_MESSAGE_TYPE_ERROR, G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME,
    "org.example_x.Failed", "org.example-x.Failed", "not a valid error name" },
  { "/peer/validate/destination-name", G_DBUS_MESSAGE_TYPE_METHOD_CALL, G_DBUS_MESSAGE_HEADER_FIELD_DESTINATION,
    "org.example-x.Service", "org..example", "not a valid bus name" },
  { "/peer/validate/destination-name/unique", G_DBUS_MESSAGE_TYPE_METHOD_CALL, G_DBUS_MESSAGE_HEADER_FIELD_DESTINATION,
    ":1.42", ":", "not a valid bus name" },
  { "/peer/validate/sender-name", G_DBUS_MESSAGE_TYPE_SIGNAL, G_DBUS_MESSAGE_HEADER_FIELD_SENDER,
    ":1.7", "1.7", "not a valid bus name" },
  { "/peer/validate/sender-name/well-known", G_DBUS_MESSAGE_TYPE_METHOD_RETURN, G_DBUS_MESSAGE_HEADER_FIELD_SENDER,
    "org.example.Sender", "org.example.Sender.", "not a valid bus name" },
};

static void
test_name (const NameCase *c,
           gboolean        malformed)
{
  g_autoptr(TestMessage) m = valid_message (c->type);

  test_message_set (m, c->field, g_variant_new_string (malformed ? c->bad : c->good));
  check (m, malformed, CHECK_WIRE_AND_BUILT, c->rule);
}

static void
test_name_malformed (gconstpointer data)
{
  test_name (data, TRUE);
}

static void
test_name_twin (gconstpointer data)
{
  test_name (data, FALSE);
}

/* A name of 255+ bytes of garbage: the error quotes only a short,
 * escaped part of it and stays one line. */
static void
test_name_quoted (void)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);
  g_autoptr(GDBusMessage) built = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *garbage = g_strnfill (300, 'x');

  garbage[1] = '\n';
  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, g_variant_new_string (garbage));
  check (m, TRUE, CHECK_WIRE_AND_BUILT, "not a valid interface name");
  built = build (m);
  g_assert_false (_peer_validate_message (built, &error));
  g_assert_cmpuint (strlen (error->message), <, 200);
  g_assert_nonnull (strstr (error->message, "'x\\nxxx"));
}

static void
test_reply_serial (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_ERROR);

  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL, g_variant_new_uint32 (MALFORMED (data) ? 0 : 1));
  check (m, MALFORMED (data), CHECK_WIRE_AND_BUILT, "REPLY_SERIAL header field is 0");
}

/* ---- reserved names ---- */

typedef struct {
  const char *test_path;
  GDBusMessageType type;
  guint8 field;
  const char *good;
  const char *bad;
  const char *rule;
  CheckKind kind;
} ReservedCase;

static const ReservedCase reserved_cases[] = {
  { "/peer/validate/reserved/method-call-path", G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    G_DBUS_MESSAGE_HEADER_FIELD_PATH, "/org/freedesktop/DBus", "/org/freedesktop/DBus/Local",
    "reserved path", CHECK_WIRE_AND_BUILT },
  { "/peer/validate/reserved/method-call-interface", G_DBUS_MESSAGE_TYPE_METHOD_CALL,
    G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, "org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Local",
    "reserved interface", CHECK_WIRE_AND_BUILT },
  /* GLib's parser refuses a SIGNAL on the reserved path or interface. */
  { "/peer/validate/reserved/signal-path", G_DBUS_MESSAGE_TYPE_SIGNAL,
    G_DBUS_MESSAGE_HEADER_FIELD_PATH, "/org/freedesktop/DBus/Local/Child", "/org/freedesktop/DBus/Local",
    "reserved path", CHECK_PARSER_MAY_REFUSE },
  { "/peer/validate/reserved/signal-interface", G_DBUS_MESSAGE_TYPE_SIGNAL,
    G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, "org.freedesktop.DBus.LocalX", "org.freedesktop.DBus.Local",
    "reserved interface", CHECK_PARSER_MAY_REFUSE },
};

static void
test_reserved (const ReservedCase *c,
               gboolean            malformed)
{
  g_autoptr(TestMessage) m = valid_message (c->type);
  const char *value = malformed ? c->bad : c->good;

  test_message_set (m, c->field, c->field == G_DBUS_MESSAGE_HEADER_FIELD_PATH
                                 ? g_variant_new_object_path (value) : g_variant_new_string (value));
  check (m, malformed, c->kind, c->rule);
}

static void
test_reserved_malformed (gconstpointer data)
{
  test_reserved (data, TRUE);
}

static void
test_reserved_twin (gconstpointer data)
{
  test_reserved (data, FALSE);
}

/* Only calls and signals are held to the reserved names. */
static void
test_reserved_path_on_return (void)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_RETURN);

  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_PATH, g_variant_new_object_path ("/org/freedesktop/DBus/Local"));
  check (m, FALSE, CHECK_WIRE_AND_BUILT, NULL);
}

/* ---- body and signature ---- */

/* GLib's parser refuses a non-empty signature with no body. */
static void
test_signature_without_body (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_RETURN);

  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_SIGNATURE, g_variant_new_signature (MALFORMED (data) ? "s" : ""));
  check (m, MALFORMED (data), CHECK_PARSER_MAY_REFUSE, "is 's' but the message has no body");
}

/* GLib's parser refuses a body without a signature. */
static void
test_body_without_signature (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  test_message_set_body (m, g_variant_new ("(s)", "hello"));
  if (MALFORMED (data))
    test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_SIGNATURE, NULL);
  check (m, MALFORMED (data), CHECK_PARSER_MAY_REFUSE, "has a body of type '(s)' but no SIGNATURE");
}

typedef struct {
  const char *test_path;
  const char *body;             /* GVariant text */
  const char *signature;        /* the SIGNATURE field of the malformed case */
  const char *rule;
} MismatchCase;

/* GLib's parser reads the body by the signature, so the two always agree
 * in a parsed message: these are built in process only. */
static const MismatchCase mismatch_cases[] = {
  { "/peer/validate/body-type", "('hello',)", "i", "The body has type '(s)', not '(i)'" },
  { "/peer/validate/body-type/longer-body", "('a', 'b')", "s", "The body has type '(ss)', not '(s)'" },
  { "/peer/validate/body-type/longer-signature", "('a',)", "ss", "The body has type '(s)', not '(ss)'" },
  { "/peer/validate/body-type/empty-signature", "('a',)", "", "The body has type '(s)', not '()'" },
  { "/peer/validate/body-type/nested", "([(1, 'x')],)", "a(is)i", "The body has type '(a(is))', not '(a(is)i)'" },
};

static void
test_body_type (const MismatchCase *c,
                gboolean            malformed)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) body = g_variant_parse (NULL, c->body, NULL, NULL, &error);

  g_assert_no_error (error);
  test_message_set_body (m, body);
  if (malformed)
    test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_SIGNATURE, g_variant_new_signature (c->signature));
  check (m, malformed, malformed ? CHECK_BUILT_ONLY : CHECK_WIRE_AND_BUILT, c->rule);
}

static void
test_body_type_malformed (gconstpointer data)
{
  test_body_type (data, TRUE);
}

static void
test_body_type_twin (gconstpointer data)
{
  test_body_type (data, FALSE);
}

/* An empty tuple with an empty signature: GLib's parser leaves the body
 * NULL, a built message keeps "()"; both are fine. */
static void
test_body_empty_tuple (void)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  test_message_set_body (m, g_variant_new ("()"));
  check (m, FALSE, CHECK_WIRE_AND_BUILT, NULL);
}

/* ---- fds and handles ---- */

/* NUM_UNIX_FDS 2 with no fds: the case GDBus's worker passes on as is. */
static void
test_unix_fds_none_came (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS, g_variant_new_uint32 (2));
  test_message_set_body (m, g_variant_new ("(hh)", 0, 1));
  m->n_fds = MALFORMED (data) ? 0 : 2;
  check (m, MALFORMED (data), CHECK_WIRE_AND_BUILT, "announces 2 fds but 0 came");
}

static void
test_unix_fds_more_came (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS, g_variant_new_uint32 (MALFORMED (data) ? 1 : 2));
  test_message_set_body (m, g_variant_new ("(h)", 0));
  m->n_fds = 2;
  check (m, MALFORMED (data), CHECK_WIRE_AND_BUILT, "announces 1 fds but 2 came");
}

/* fds with no NUM_UNIX_FDS field at all. */
static void
test_unix_fds_unannounced (gconstpointer data)
{
  g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);

  if (!MALFORMED (data))
    test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS, g_variant_new_uint32 (1));
  m->n_fds = 1;
  check (m, MALFORMED (data), CHECK_WIRE_AND_BUILT, "announces 0 fds but 1 came");
}

/* A handle past the message's fds is a wrong argument to one call, which
 * the call answers (InvalidArgs from peer_call_dup_fd()), not a broken
 * connection: validation lets it through, whatever hides it. */
static void
test_handle_out_of_range_left_to_call (void)
{
  static const struct { const char *body; guint n_fds; } cases[] = {
    { "(handle 1,)", 1 },
    { "(handle 0,)", 0 },
    { "({'fd': <handle 7>, 'n': <1>},)", 1 },
    { "(handle 0,)", 1 },                 /* and in range, of course */
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(TestMessage) m = valid_message (G_DBUS_MESSAGE_TYPE_METHOD_CALL);
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) body = g_variant_parse (NULL, cases[i].body, NULL, NULL, &error);

      g_assert_no_error (error);
      test_message_set_body (m, body);
      if (cases[i].n_fds > 0)
        test_message_set (m, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS, g_variant_new_uint32 (cases[i].n_fds));
      m->n_fds = cases[i].n_fds;
      check (m, FALSE, CHECK_WIRE_AND_BUILT, NULL);
    }
}

/* ---- messages GLib makes itself ---- */

static void
assert_round_trip_valid (GDBusMessage *message)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusMessage) parsed = NULL;
  g_autofree guchar *blob = NULL;
  gsize size;

  g_dbus_message_set_serial (message, 41);
  blob = g_dbus_message_to_blob (message, &size, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
  g_assert_no_error (error);
  parsed = g_dbus_message_new_from_blob (blob, size, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
  g_assert_no_error (error);
  g_assert_true (_peer_validate_message (parsed, &error));
  g_assert_no_error (error);
}

static void
test_glib_messages (void)
{
  g_autoptr(GDBusMessage) call = g_dbus_message_new_method_call (":1.1", "/org/example/Object",
                                                                 "org.example.Iface", "Ping");
  g_autoptr(GDBusMessage) signal = g_dbus_message_new_signal ("/org/example/Object", "org.example.Iface", "Changed");
  g_autoptr(GDBusMessage) reply = NULL;
  g_autoptr(GDBusMessage) error_reply = NULL;

  g_dbus_message_set_body (call, g_variant_new ("(sa{sv}ay)", "x", NULL, NULL));
  g_dbus_message_set_serial (call, 40);
  reply = g_dbus_message_new_method_reply (call);
  error_reply = g_dbus_message_new_method_error (call, "org.example.Error.Failed", "it %s", "failed");

  assert_round_trip_valid (call);
  assert_round_trip_valid (signal);
  assert_round_trip_valid (reply);
  assert_round_trip_valid (error_reply);
}

#define add_twins(path, data, malformed_func, twin_func) \
  G_STMT_START { \
    g_autofree char *twin_path = g_strconcat ((path), "/valid-twin", NULL); \
    g_test_add_data_func ((path), (data), (malformed_func)); \
    g_test_add_data_func (twin_path, (data), (twin_func)); \
  } G_STMT_END

#define add_flag_twins(path, func) \
  G_STMT_START { \
    g_test_add_data_func (path, GINT_TO_POINTER (TRUE), (func)); \
    g_test_add_data_func (path "/valid-twin", GINT_TO_POINTER (FALSE), (func)); \
  } G_STMT_END

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  add_flag_twins ("/peer/validate/message-type", test_message_type);
  g_test_add_func ("/peer/validate/message-type/zero", test_message_type_zero);
  g_test_add_func ("/peer/validate/message-type/255", test_message_type_high);
  add_flag_twins ("/peer/validate/serial", test_serial);
  add_flag_twins ("/peer/validate/field-code-zero", test_field_code);
  g_test_add_func ("/peer/validate/field-code-zero/unknown-of-any-type", test_unknown_field_any_type);

  for (guint i = 0; i < G_N_ELEMENTS (field_type_cases); i++)
    add_twins (field_type_cases[i].test_path, &field_type_cases[i],
               test_field_type_malformed, test_field_type_twin);
  for (guint i = 0; i < G_N_ELEMENTS (required_cases); i++)
    add_twins (required_cases[i].test_path, &required_cases[i],
               test_required_malformed, test_required_twin);
  g_test_add_func ("/peer/validate/required/method-call-interface-optional", test_method_call_without_interface);

  for (guint i = 0; i < G_N_ELEMENTS (name_cases); i++)
    add_twins (name_cases[i].test_path, &name_cases[i], test_name_malformed, test_name_twin);
  g_test_add_func ("/peer/validate/interface-name/quoted", test_name_quoted);
  add_flag_twins ("/peer/validate/reply-serial", test_reply_serial);

  for (guint i = 0; i < G_N_ELEMENTS (reserved_cases); i++)
    add_twins (reserved_cases[i].test_path, &reserved_cases[i],
               test_reserved_malformed, test_reserved_twin);
  g_test_add_func ("/peer/validate/reserved/path-on-method-return", test_reserved_path_on_return);

  add_flag_twins ("/peer/validate/signature-without-body", test_signature_without_body);
  add_flag_twins ("/peer/validate/body-without-signature", test_body_without_signature);
  for (guint i = 0; i < G_N_ELEMENTS (mismatch_cases); i++)
    add_twins (mismatch_cases[i].test_path, &mismatch_cases[i],
               test_body_type_malformed, test_body_type_twin);
  g_test_add_func ("/peer/validate/body-type/empty-tuple", test_body_empty_tuple);

  add_flag_twins ("/peer/validate/unix-fds/none-came", test_unix_fds_none_came);
  add_flag_twins ("/peer/validate/unix-fds/more-came", test_unix_fds_more_came);
  add_flag_twins ("/peer/validate/unix-fds/unannounced", test_unix_fds_unannounced);
  g_test_add_func ("/peer/validate/handle-out-of-range/left-to-the-call",
                   test_handle_out_of_range_left_to_call);

  g_test_add_func ("/peer/validate/glib-messages", test_glib_messages);

  return g_test_run ();
}
