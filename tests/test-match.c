/* test-match.c: match rules, parsed, matched, kept in sets. */
#include "config.h"

#include <string.h>

#include "peer-match-private.h"

/* --- parsing ------------------------------------------------------------ */

typedef struct {
  const char *text;
  const char *canonical;
} GoodRule;

static const GoodRule good_rules[] = {
  { "", "" },
  { "   ", "" },
  { "type='signal'", "type='signal'" },
  { "type=signal", "type='signal'" },
  { "type='method_call'", "type='method_call'" },
  { "type='method_return'", "type='method_return'" },
  { "type='error'", "type='error'" },
  /* The specification's example; already in canonical order. */
  { "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
    "member='Foo',path='/bar/foo',destination=':452345.34',arg2='bar'",
    "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
    "member='Foo',path='/bar/foo',destination=':452345.34',arg2='bar'" },
  { "member='Foo',type='signal'", "type='signal',member='Foo'" },
  { " type ='signal',\tmember\n='Foo'", "type='signal',member='Foo'" },
  { "type='signal',", "type='signal'" },
  { "type='signal',  ", "type='signal'" },
  { "sender=':1.5'", "sender=':1.5'" },
  { "sender='com.example.Name'", "sender='com.example.Name'" },
  { "destination='com.example.Name'", "destination='com.example.Name'" },
  { "path='/'", "path='/'" },
  { "path_namespace='/'", "path_namespace='/'" },
  { "path_namespace='/com/example'", "path_namespace='/com/example'" },
  { "arg0=''", "arg0=''" },
  { "arg0='a b, c'", "arg0='a b, c'" },
  { "arg1='b',arg0='a'", "arg0='a',arg1='b'" },
  { "arg63='x'", "arg63='x'" },
  { "arg01='x'", "arg1='x'" },
  { "arg0path='/aa/bb/'", "arg0path='/aa/bb/'" },
  { "arg5path='/'", "arg5path='/'" },
  { "arg0namespace='com.example'", "arg0namespace='com.example'" },
  { "arg0namespace='com'", "arg0namespace='com'" },
  { "arg0namespace=':1'", "arg0namespace=':1'" },
  /* The specification's two spellings of the same four values. */
  { "arg0=''\\''',arg1='\\',arg2=',',arg3='\\\\'", "arg0=''\\''',arg1='\\',arg2=',',arg3='\\\\'" },
  { "arg0=\\',arg1=\\,arg2=',',arg3=\\\\", "arg0=''\\''',arg1='\\',arg2=',',arg3='\\\\'" },
  { "arg0='it'\\''s'", "arg0='it'\\''s'" },
  { "arg0=it\\'s", "arg0='it'\\''s'" },
  { "arg0='a''b'", "arg0='ab'" },
  /* Outside quotes a backslash escapes an apostrophe and nothing else,
   * read left to right; inside quotes it is itself. */
  { "arg0='a'\\'", "arg0='a'\\'''" },
  { "arg0=\\\\'", "arg0='\\'\\'''" },
  { "arg0='\\'", "arg0='\\'" },
  { "arg0=\\x", "arg0='\\x'" },
  { "arg0=\\", "arg0='\\'" },
  { "arg0=\\,arg1=x", "arg0='\\',arg1='x'" },
  { "arg0='caf\xc3\xa9'", "arg0='caf\xc3\xa9'" },
  { "eavesdrop='true'", "eavesdrop='true'" },
  { "eavesdrop='false'", "" },
  { "eavesdrop='true',eavesdrop='false'", "" },
  { "eavesdrop='true',type='signal',arg3path='/x/',arg0namespace='a.b',path_namespace='/a'",
    "type='signal',path_namespace='/a',arg0namespace='a.b',arg3path='/x/',eavesdrop='true'" },
};

typedef struct {
  const char *text;
  GDBusError code;
  const char *fragment;         /* the message names the problem */
} BadRule;

static const BadRule bad_rules[] = {
  { "foo='bar'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unknown key 'foo'" },
  { ",type='signal'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unknown key ',type'" },
  { "type", G_DBUS_ERROR_MATCH_RULE_INVALID, "no '='" },
  { "type 'signal'", G_DBUS_ERROR_MATCH_RULE_INVALID, "no '='" },
  { "='signal'", G_DBUS_ERROR_MATCH_RULE_INVALID, "empty key" },
  { "type='signal',type='signal'", G_DBUS_ERROR_MATCH_RULE_INVALID, "'type' appears twice" },
  { "member='A',member='A'", G_DBUS_ERROR_MATCH_RULE_INVALID, "'member' appears twice" },
  { "path='/a',path='/a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "'path' appears twice" },
  { "path='/a',path_namespace='/a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "both path and path_namespace" },
  { "path_namespace='/a',path='/a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "both path and path_namespace" },
  { "type='foo'", G_DBUS_ERROR_MATCH_RULE_INVALID, "message type 'foo'" },
  { "type= 'signal'", G_DBUS_ERROR_MATCH_RULE_INVALID, "message type ' signal'" },
  { "member='Foo' ", G_DBUS_ERROR_MATCH_RULE_INVALID, "member name 'Foo '" },
  { " type ='signal',\tmember\n= 'Foo'", G_DBUS_ERROR_MATCH_RULE_INVALID, "member name" },
  { "arg0='unterminated", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unbalanced" },
  { "arg0=\\\\'x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unbalanced" },  /* \, \', x, then ' */
  { "arg0='a',arg1='", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unbalanced quotation marks in the value of 'arg1'" },
  { "interface='nodots'", G_DBUS_ERROR_MATCH_RULE_INVALID, "interface name 'nodots'" },
  { "interface='a.b-c'", G_DBUS_ERROR_MATCH_RULE_INVALID, "interface name" },
  { "interface=''", G_DBUS_ERROR_MATCH_RULE_INVALID, "interface name ''" },
  { "member='a.b'", G_DBUS_ERROR_MATCH_RULE_INVALID, "member name" },
  { "member='1a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "member name" },
  { "path='/a/'", G_DBUS_ERROR_MATCH_RULE_INVALID, "object path '/a/'" },
  { "path='a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "object path" },
  { "path_namespace='a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "object path for path_namespace" },
  { "path_namespace='/a//b'", G_DBUS_ERROR_MATCH_RULE_INVALID, "path_namespace" },
  { "sender='not a name'", G_DBUS_ERROR_MATCH_RULE_INVALID, "sender name" },
  { "sender='nodots'", G_DBUS_ERROR_MATCH_RULE_INVALID, "sender name" },
  { "destination='1.bad'", G_DBUS_ERROR_MATCH_RULE_INVALID, "destination name" },
  { "eavesdrop='yes'", G_DBUS_ERROR_MATCH_RULE_INVALID, "eavesdrop" },
  { "eavesdrop=''", G_DBUS_ERROR_MATCH_RULE_INVALID, "eavesdrop" },
  { "arg64='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "the limit is 63" },
  { "arg64path='/'", G_DBUS_ERROR_MATCH_RULE_INVALID, "the limit is 63" },
  { "arg99999999999999999999999='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "the limit is 63" },
  { "arg1namespace='a.b'", G_DBUS_ERROR_MATCH_RULE_INVALID, "only arg0namespace" },
  { "arg0namespace=''", G_DBUS_ERROR_MATCH_RULE_INVALID, "arg0namespace" },
  { "arg0namespace='a..b'", G_DBUS_ERROR_MATCH_RULE_INVALID, "arg0namespace" },
  { "arg0namespace='a.'", G_DBUS_ERROR_MATCH_RULE_INVALID, "arg0namespace" },
  { "arg0namespace='1a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "arg0namespace" },
  { "arg='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unknown key 'arg'" },
  { "argx='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unknown key 'argx'" },
  { "arg0foo='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unknown key 'arg0foo'" },
  { "arg-1='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unknown key" },
  { "arg0='a',arg0='a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Argument 0 is matched twice" },
  { "arg0='a',arg0path='/a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Argument 0 is matched twice" },
  { "arg0path='/a',arg0namespace='a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Argument 0 is matched twice" },
  { "arg0='a',arg00='a'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Argument 0 is matched twice" },
  { "arg0='\xff'", G_DBUS_ERROR_MATCH_RULE_INVALID, "UTF-8" },
  /* Whatever the input, the message stays on one line. */
  { "interface='a\nb'", G_DBUS_ERROR_MATCH_RULE_INVALID, "interface name 'a\\nb'" },
  { "fo\x01o='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Unknown key 'fo\\001o'" },
  { "fo\no='x'", G_DBUS_ERROR_MATCH_RULE_INVALID, "Key 'fo' in match rule has no '='" },
};

static void
test_parse_good (gconstpointer data)
{
  const GoodRule *good = data;
  g_autoptr(PeerMatchRule) rule = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *canonical = NULL;

  rule = _peer_match_rule_new (good->text, &error);
  g_assert_no_error (error);
  g_assert_nonnull (rule);
  canonical = _peer_match_rule_to_string (rule);
  g_assert_cmpstr (canonical, ==, good->canonical);
}

/* The canonical form parses back to an equal rule, rendered the same. */
static void
test_parse_round_trip (gconstpointer data)
{
  const GoodRule *good = data;
  g_autoptr(PeerMatchRule) rule = NULL;
  g_autoptr(PeerMatchRule) again = NULL;
  g_autofree char *canonical = NULL;
  g_autofree char *canonical_again = NULL;

  rule = _peer_match_rule_new (good->text, NULL);
  g_assert_nonnull (rule);
  canonical = _peer_match_rule_to_string (rule);
  again = _peer_match_rule_new (canonical, NULL);
  g_assert_nonnull (again);
  g_assert_true (_peer_match_rule_equal (rule, again));
  g_assert_true (_peer_match_rule_equal (again, rule));
  canonical_again = _peer_match_rule_to_string (again);
  g_assert_cmpstr (canonical, ==, canonical_again);
}

static void
test_parse_bad (gconstpointer data)
{
  const BadRule *bad = data;
  PeerMatchRule *rule = NULL;
  g_autoptr(GError) error = NULL;

  rule = _peer_match_rule_new (bad->text, &error);
  g_assert_null (rule);
  g_assert_error (error, G_DBUS_ERROR, (gint) bad->code);
  if (strstr (error->message, bad->fragment) == NULL)
    g_error ("'%s': message '%s' does not mention '%s'", bad->text, error->message, bad->fragment);
  g_assert_null (strchr (error->message, '\n'));
}

/* PEER_MATCH_RULE_MAX_LENGTH bytes are accepted, one more refused. */
static void
test_parse_max_length (void)
{
  g_autoptr(GString) text = g_string_new ("arg0='");
  g_autoptr(PeerMatchRule) rule = NULL;
  PeerMatchRule *refused;
  g_autoptr(GError) error = NULL;

  while (text->len < PEER_MATCH_RULE_MAX_LENGTH - 1)
    g_string_append_c (text, 'x');
  g_string_append_c (text, '\'');
  g_assert_cmpuint (text->len, ==, PEER_MATCH_RULE_MAX_LENGTH);
  rule = _peer_match_rule_new (text->str, &error);
  g_assert_no_error (error);
  g_assert_nonnull (rule);

  g_string_insert_c (text, 6, 'x');
  refused = _peer_match_rule_new (text->str, &error);
  g_assert_null (refused);
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_LIMITS_EXCEEDED);
  g_assert_nonnull (strstr (error->message, "1024"));
}

/* --- equality ------------------------------------------------------------- */

typedef struct {
  const char *a;
  const char *b;
  gboolean equal;
} RulePair;

static const RulePair rule_pairs[] = {
  { "", "", TRUE },
  { "", "type='signal'", FALSE },
  { "type='signal',member='Foo'", "member=Foo,type=signal", TRUE },
  { "type='signal',member='Foo'", "type='signal',member='Bar'", FALSE },
  { "type='signal'", "type='method_call'", FALSE },
  { "arg0='it'\\''s'", "arg0=it\\'s", TRUE },
  { "arg0='it'\\''s'", "arg0='its'", FALSE },
  { " type ='signal'", "type='signal',", TRUE },
  { "eavesdrop='false'", "", TRUE },
  { "eavesdrop='true'", "", FALSE },
  { "arg0='/a'", "arg0path='/a'", FALSE },
  { "arg0='a'", "arg1='a'", FALSE },
  { "arg0='a',arg1='b'", "arg1='b',arg0='a'", TRUE },
  { "arg0='a',arg1='b'", "arg0='a'", FALSE },
  { "arg0='a'", "arg0='a',arg1='b'", FALSE },
  { "arg0='a'", "arg0='ab'", FALSE },
  { "path='/a'", "path_namespace='/a'", FALSE },
  { "sender=':1.5'", "destination=':1.5'", FALSE },
  { "interface='a.b'", "interface='a.b'", TRUE },
  { "interface='a.b'", "interface='a.c'", FALSE },
};

static void
test_equal (gconstpointer data)
{
  const RulePair *pair = data;
  g_autoptr(PeerMatchRule) a = _peer_match_rule_new (pair->a, NULL);
  g_autoptr(PeerMatchRule) b = _peer_match_rule_new (pair->b, NULL);

  g_assert_nonnull (a);
  g_assert_nonnull (b);
  g_assert_cmpint (_peer_match_rule_equal (a, b), ==, pair->equal);
  g_assert_cmpint (_peer_match_rule_equal (b, a), ==, pair->equal);
  g_assert_true (_peer_match_rule_equal (a, a));
}

static void
test_eavesdrop (void)
{
  static const struct {
    const char *text;
    gboolean eavesdrop;
  } cases[] = {
    { "", FALSE },
    { "eavesdrop='true'", TRUE },
    { "eavesdrop='false'", FALSE },
    { "eavesdrop='false',eavesdrop='true'", TRUE },
  };
  g_autoptr(GDBusMessage) call = g_dbus_message_new_method_call (":1.7", "/a", "com.example.Foo", "Do");

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(PeerMatchRule) rule = _peer_match_rule_new (cases[i].text, NULL);

      g_assert_nonnull (rule);
      g_assert_cmpint (_peer_match_rule_get_eavesdrop (rule), ==, cases[i].eavesdrop);
      /* Recorded only: which rules see unicast messages is the caller's. */
      g_assert_true (_peer_match_rule_matches (rule, call, ":1.5", NULL, NULL));
    }
}

/* --- matching ------------------------------------------------------------- */

#define T_SIGNAL G_DBUS_MESSAGE_TYPE_SIGNAL
#define T_CALL   G_DBUS_MESSAGE_TYPE_METHOD_CALL
#define T_RETURN G_DBUS_MESSAGE_TYPE_METHOD_RETURN
#define T_ERROR  G_DBUS_MESSAGE_TYPE_ERROR

/* A message to match. Unset path, interface and member of a signal are
 * "/a", "com.example.Foo" and "Changed"; of a call, "/a", none and "Do". */
typedef struct {
  GDBusMessageType type;
  const char *path;
  const char *interface;
  const char *member;
  const char *sender;
  const char *destination;
  const char *body;             /* GVariant text of a tuple; NULL: no body */
} MessageSpec;

typedef struct {
  const char *name;             /* test path: /peer/match/<name>/<n> */
  const char *rule;
  MessageSpec message;
  gboolean matches;
} MatchCase;

static const MatchCase match_cases[] = {
  { "empty", "", { T_SIGNAL }, TRUE },
  { "empty", "", { T_CALL, .destination = ":1.7", .body = "(1,)" }, TRUE },
  { "empty", "", { T_ERROR }, TRUE },

  { "type", "type='signal'", { T_SIGNAL }, TRUE },
  { "type", "type='signal'", { T_CALL }, FALSE },
  { "type", "type='method_call'", { T_CALL }, TRUE },
  { "type", "type='method_call'", { T_SIGNAL }, FALSE },
  { "type", "type='method_return'", { T_RETURN }, TRUE },
  { "type", "type='method_return'", { T_ERROR }, FALSE },
  { "type", "type='error'", { T_ERROR }, TRUE },
  { "type", "type='error'", { T_RETURN }, FALSE },

  { "interface", "interface='com.example.Foo'", { T_SIGNAL }, TRUE },
  { "interface", "interface='com.example.Foo'", { T_SIGNAL, .interface = "com.example.Bar" }, FALSE },
  { "interface", "interface='com.example.Foo'", { T_CALL, .interface = "com.example.Foo" }, TRUE },
  { "interface", "interface='com.example.Foo'", { T_CALL }, FALSE },      /* no INTERFACE */

  { "member", "member='Changed'", { T_SIGNAL }, TRUE },
  { "member", "member='Changed'", { T_SIGNAL, .member = "Other" }, FALSE },
  { "member", "member='Changed'", { T_RETURN }, FALSE },                  /* no MEMBER */

  { "path", "path='/a'", { T_SIGNAL, .path = "/a" }, TRUE },
  { "path", "path='/a'", { T_SIGNAL, .path = "/a/b" }, FALSE },
  { "path", "path='/a'", { T_SIGNAL, .path = "/" }, FALSE },
  { "path", "path='/a'", { T_RETURN }, FALSE },                          /* no PATH */

  { "path_namespace", "path_namespace='/a'", { T_SIGNAL, .path = "/a" }, TRUE },
  { "path_namespace", "path_namespace='/a'", { T_SIGNAL, .path = "/a/b" }, TRUE },
  { "path_namespace", "path_namespace='/a'", { T_SIGNAL, .path = "/a/b/c" }, TRUE },
  { "path_namespace", "path_namespace='/a'", { T_SIGNAL, .path = "/ab" }, FALSE },
  { "path_namespace", "path_namespace='/a'", { T_SIGNAL, .path = "/" }, FALSE },
  { "path_namespace", "path_namespace='/a'", { T_SIGNAL, .path = "/b/a" }, FALSE },
  { "path_namespace", "path_namespace='/a/b'", { T_SIGNAL, .path = "/a" }, FALSE },
  { "path_namespace", "path_namespace='/'", { T_SIGNAL, .path = "/" }, TRUE },
  { "path_namespace", "path_namespace='/'", { T_SIGNAL, .path = "/x/y" }, TRUE },
  { "path_namespace", "path_namespace='/'", { T_RETURN }, FALSE },        /* no PATH */

  { "sender", "sender=':1.5'", { T_SIGNAL, .sender = ":1.5" }, TRUE },
  { "sender", "sender=':1.5'", { T_SIGNAL, .sender = ":1.50" }, FALSE },
  { "sender", "sender=':1.5'", { T_SIGNAL }, FALSE },

  { "destination", "destination=':1.7'", { T_CALL, .destination = ":1.7" }, TRUE },
  { "destination", "destination=':1.7'", { T_CALL, .destination = ":1.8" }, FALSE },
  { "destination", "destination=':1.7'", { T_SIGNAL }, FALSE },           /* broadcast */
  { "destination", "destination=':1.7'", { T_SIGNAL, .destination = ":1.7" }, TRUE },

  { "arg0", "arg0='x'", { T_SIGNAL, .body = "('x',)" }, TRUE },
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "('y',)" }, FALSE },
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "('xx',)" }, FALSE },
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "('',)" }, FALSE },
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "(5,)" }, FALSE },
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "(<'x'>,)" }, FALSE },        /* a variant */
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "(['x'],)" }, FALSE },
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "()" }, FALSE },
  { "arg0", "arg0='x'", { T_SIGNAL }, FALSE },                            /* no body */
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "('x', 'y')" }, TRUE },
  { "arg0", "arg0='/x'", { T_SIGNAL, .body = "('/x',)" }, TRUE },
  { "arg0", "arg0='/x'", { T_SIGNAL, .body = "(objectpath '/x',)" }, FALSE }, /* STRING only */
  { "arg0", "arg0='x'", { T_SIGNAL, .body = "(signature 'x',)" }, FALSE },
  { "arg0", "arg0=''", { T_SIGNAL, .body = "('',)" }, TRUE },
  { "arg0", "arg0=''", { T_SIGNAL, .body = "('x',)" }, FALSE },
  { "arg0", "arg0='it'\\''s'", { T_SIGNAL, .body = "(\"it's\",)" }, TRUE },
  { "arg0", "arg0='it'\\''s'", { T_SIGNAL, .body = "('its',)" }, FALSE },
  { "arg0", "arg0='caf\xc3\xa9'", { T_SIGNAL, .body = "('caf\xc3\xa9',)" }, TRUE },
  { "arg0", "arg0='caf\xc3\xa9'", { T_SIGNAL, .body = "('cafe',)" }, FALSE },
  { "arg0", "arg0='x'", { T_CALL, .destination = ":1.7", .body = "('x',)" }, TRUE },
  { "arg0", "arg0='x'", { T_ERROR, .body = "('x',)" }, TRUE },

  { "argN", "arg1='b'", { T_SIGNAL, .body = "('a', 'b')" }, TRUE },
  { "argN", "arg1='b'", { T_SIGNAL, .body = "('b', 'a')" }, FALSE },
  { "argN", "arg1='b'", { T_SIGNAL, .body = "('b',)" }, FALSE },
  { "argN", "arg0='x',arg2='z'", { T_SIGNAL, .body = "('x', 1, 'z')" }, TRUE },
  { "argN", "arg0='x',arg2='z'", { T_SIGNAL, .body = "('x', 1, 'y')" }, FALSE },
  { "argN", "arg0='x',arg2='z'", { T_SIGNAL, .body = "('w', 1, 'z')" }, FALSE },
  { "argN", "arg2='z'", { T_SIGNAL, .body = "((1, 'z'), 2, 'z')" }, TRUE },
  { "argN", "arg1='z'", { T_SIGNAL, .body = "((1, 'z'), 2, 'z')" }, FALSE },
  { "argN", "arg63='z'",
    { T_SIGNAL, .body = "(0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                        "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                        "0,1,2,'z')" }, TRUE },
  { "argN", "arg63='z'",
    { T_SIGNAL, .body = "(0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                        "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                        "0,1,'z',3)" }, FALSE },

  /* The specification's example, then its counterparts. */
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa/',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa/bb/',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa/bb/cc/',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa/bb/cc',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa/b',)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa',)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa/bb',)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('',)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "('/aa/bc/',)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "(objectpath '/aa/bb/cc',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "(objectpath '/aa',)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb/'", { T_SIGNAL, .body = "(1,)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb'", { T_SIGNAL, .body = "('/aa/bb',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb'", { T_SIGNAL, .body = "('/aa/',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb'", { T_SIGNAL, .body = "('/aa/bb/cc',)" }, FALSE },
  { "arg0path", "arg0path='/aa/bb'", { T_SIGNAL, .body = "(objectpath '/aa/bb',)" }, TRUE },
  { "arg0path", "arg0path='/aa/bb'", { T_SIGNAL, .body = "(objectpath '/aa/bc',)" }, FALSE },
  { "arg0path", "arg0path=''", { T_SIGNAL, .body = "('',)" }, TRUE },
  { "arg0path", "arg0path=''", { T_SIGNAL, .body = "('/',)" }, FALSE },
  { "arg0path", "arg1path='/x/'", { T_SIGNAL, .body = "('/x/', '/x/y')" }, TRUE },
  { "arg0path", "arg1path='/x/'", { T_SIGNAL, .body = "('/x/y', '/y')" }, FALSE },

  { "arg0namespace", "arg0namespace='com.example.backend1'", { T_SIGNAL, .body = "('com.example.backend1',)" }, TRUE },
  { "arg0namespace", "arg0namespace='com.example.backend1'", { T_SIGNAL, .body = "('com.example.backend1.foo',)" }, TRUE },
  { "arg0namespace", "arg0namespace='com.example.backend1'", { T_SIGNAL, .body = "('com.example.backend1.foo.bar',)" }, TRUE },
  { "arg0namespace", "arg0namespace='com.example.backend1'", { T_SIGNAL, .body = "('com.example.backend1foo',)" }, FALSE },
  { "arg0namespace", "arg0namespace='com.example.backend1'", { T_SIGNAL, .body = "('com.example',)" }, FALSE },
  { "arg0namespace", "arg0namespace='com.example.backend1'", { T_SIGNAL, .body = "('com.example.backend2',)" }, FALSE },
  { "arg0namespace", "arg0namespace='com.example.backend1'", { T_SIGNAL, .body = "(5,)" }, FALSE },
  { "arg0namespace", "arg0namespace='com'", { T_SIGNAL, .body = "('com.example',)" }, TRUE },
  { "arg0namespace", "arg0namespace='com'", { T_SIGNAL, .body = "('org.example',)" }, FALSE },
  { "arg0namespace", "arg0namespace='a.b'", { T_SIGNAL, .body = "(objectpath '/a',)" }, FALSE },

  { "all", "type='signal',sender=':1.5',interface='com.example.Foo',member='Changed',path='/a',arg0='x'",
    { T_SIGNAL, .sender = ":1.5", .body = "('x',)" }, TRUE },
  { "all", "type='signal',sender=':1.5',interface='com.example.Foo',member='Changed',path='/a',arg0='x'",
    { T_SIGNAL, .sender = ":1.5", .member = "Other", .body = "('x',)" }, FALSE },
  { "all", "type='signal',sender=':1.5',interface='com.example.Foo',member='Changed',path='/a',arg0='x'",
    { T_SIGNAL, .sender = ":1.5", .body = "('y',)" }, FALSE },
  { "all", "type='signal',sender=':1.5',interface='com.example.Foo',member='Changed',path='/a',arg0='x'",
    { T_CALL, .sender = ":1.5", .interface = "com.example.Foo", .member = "Changed", .body = "('x',)" }, FALSE },
};

static GDBusMessage *
build_message (const MessageSpec *spec)
{
  const char *path = spec->path != NULL ? spec->path : "/a";
  g_autoptr(GDBusMessage) call = NULL;
  g_autoptr(GDBusMessage) message = NULL;

  switch (spec->type)
    {
    case G_DBUS_MESSAGE_TYPE_SIGNAL:
      message = g_dbus_message_new_signal (path, spec->interface != NULL ? spec->interface : "com.example.Foo",
                                           spec->member != NULL ? spec->member : "Changed");
      if (spec->destination != NULL)
        g_dbus_message_set_destination (message, spec->destination);
      break;
    case G_DBUS_MESSAGE_TYPE_METHOD_CALL:
      message = g_dbus_message_new_method_call (spec->destination, path, spec->interface,
                                                spec->member != NULL ? spec->member : "Do");
      break;
    case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
    case G_DBUS_MESSAGE_TYPE_ERROR:
      call = g_dbus_message_new_method_call (":1.7", "/a", "com.example.Foo", "Do");
      g_dbus_message_set_serial (call, 1);
      if (spec->type == G_DBUS_MESSAGE_TYPE_METHOD_RETURN)
        message = g_dbus_message_new_method_reply (call);
      else
        message = g_dbus_message_new_method_error_literal (call, "com.example.Error.Failed", "failed");
      break;
    case G_DBUS_MESSAGE_TYPE_INVALID:
    default:
      g_assert_not_reached ();
    }

  if (spec->sender != NULL)
    g_dbus_message_set_sender (message, spec->sender);
  if (spec->body != NULL)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GVariant) body = g_variant_parse (NULL, spec->body, NULL, NULL, &error);

      g_assert_no_error (error);
      g_dbus_message_set_body (message, body);
    }
  return g_steal_pointer (&message);
}

/* The same message as it comes off the wire: a body in serialised form,
 * whose children GVariant makes on demand. */
static GDBusMessage *
through_the_wire (GDBusMessage *message)
{
  g_autoptr(GError) error = NULL;
  g_autofree guchar *blob = NULL;
  gsize size = 0;
  GDBusMessage *parsed;

  if (g_dbus_message_get_serial (message) == 0)
    g_dbus_message_set_serial (message, 42);
  blob = g_dbus_message_to_blob (message, &size, G_DBUS_CAPABILITY_FLAGS_NONE, &error);
  g_assert_no_error (error);
  parsed = g_dbus_message_new_from_blob (blob, size, G_DBUS_CAPABILITY_FLAGS_NONE, &error);
  g_assert_no_error (error);
  return parsed;
}

static void
test_match (gconstpointer data)
{
  const MatchCase *c = data;
  g_autoptr(PeerMatchRule) rule = NULL;
  g_autoptr(PeerMatchSet) set = _peer_match_set_new ();
  g_autoptr(GDBusMessage) message = build_message (&c->message);
  g_autoptr(GDBusMessage) parsed = NULL;
  g_autoptr(GError) error = NULL;

  rule = _peer_match_rule_new (c->rule, &error);
  g_assert_no_error (error);
  g_assert_cmpint (_peer_match_rule_matches (rule, message, NULL, NULL, NULL), ==, c->matches);

  /* A set of that one rule agrees; so does one with a rule that never
   * matches before it, which has read the headers and maybe the body. */
  g_assert_true (_peer_match_set_add (set, "type='signal',member='Never',arg0='never'", 10, NULL));
  g_assert_true (_peer_match_set_add (set, c->rule, 10, NULL));
  g_assert_cmpint (_peer_match_set_matches (set, message, NULL, NULL, NULL), ==, c->matches);

  parsed = through_the_wire (message);
  g_assert_cmpint (_peer_match_rule_matches (rule, parsed, NULL, NULL, NULL), ==, c->matches);
  g_assert_cmpint (_peer_match_set_matches (set, parsed, NULL, NULL, NULL), ==, c->matches);
}

/* @sender replaces the SENDER header, which a peer can write as it likes;
 * @sender_names are the well-known names the sender owns. */
static void
test_sender (void)
{
  g_autoptr(GDBusMessage) signal = g_dbus_message_new_signal ("/a", "com.example.Foo", "Changed");
  g_autoptr(PeerMatchRule) by_unique = _peer_match_rule_new ("sender=':1.5'", NULL);
  g_autoptr(PeerMatchRule) by_forged = _peer_match_rule_new ("sender=':1.9'", NULL);
  g_autoptr(PeerMatchRule) by_name = _peer_match_rule_new ("sender='com.example.Name'", NULL);
  const char * const owned[] = { "com.example.Other", "com.example.Name", NULL };
  const char * const others[] = { "com.example.Other", NULL };
  const char * const none[] = { NULL };

  g_dbus_message_set_sender (signal, ":1.9");

  g_assert_true (_peer_match_rule_matches (by_unique, signal, ":1.5", NULL, NULL));
  g_assert_false (_peer_match_rule_matches (by_unique, signal, ":1.6", NULL, NULL));
  g_assert_false (_peer_match_rule_matches (by_forged, signal, ":1.5", NULL, NULL));
  g_assert_true (_peer_match_rule_matches (by_forged, signal, NULL, NULL, NULL));

  g_assert_true (_peer_match_rule_matches (by_name, signal, ":1.5", NULL, owned));
  g_assert_false (_peer_match_rule_matches (by_name, signal, ":1.5", NULL, others));
  g_assert_false (_peer_match_rule_matches (by_name, signal, ":1.5", NULL, none));
  g_assert_false (_peer_match_rule_matches (by_name, signal, ":1.5", NULL, NULL));
  /* The unique name still matches when the sender owns names. */
  g_assert_true (_peer_match_rule_matches (by_unique, signal, ":1.5", NULL, owned));
}

/* @destination is the recipient's unique name; the DESTINATION header as
 * sent (a well-known name) matches too. */
static void
test_destination (void)
{
  g_autoptr(GDBusMessage) call = g_dbus_message_new_method_call ("com.example.Name", "/a", NULL, "Do");
  g_autoptr(GDBusMessage) signal = g_dbus_message_new_signal ("/a", "com.example.Foo", "Changed");
  g_autoptr(PeerMatchRule) by_unique = _peer_match_rule_new ("destination=':1.7'", NULL);
  g_autoptr(PeerMatchRule) by_name = _peer_match_rule_new ("destination='com.example.Name'", NULL);

  g_assert_true (_peer_match_rule_matches (by_unique, call, NULL, ":1.7", NULL));
  g_assert_false (_peer_match_rule_matches (by_unique, call, NULL, ":1.8", NULL));
  g_assert_false (_peer_match_rule_matches (by_unique, call, NULL, NULL, NULL));
  g_assert_true (_peer_match_rule_matches (by_name, call, NULL, ":1.7", NULL));
  g_assert_true (_peer_match_rule_matches (by_name, call, NULL, NULL, NULL));

  /* A broadcast stamped with no destination matches no destination key. */
  g_assert_false (_peer_match_rule_matches (by_unique, signal, NULL, NULL, NULL));
  g_assert_true (_peer_match_rule_matches (by_unique, signal, NULL, ":1.7", NULL));
}

/* --- sets ----------------------------------------------------------------- */

static void
test_set_matches (void)
{
  g_autoptr(PeerMatchSet) set = _peer_match_set_new ();
  g_autoptr(GDBusMessage) changed = g_dbus_message_new_signal ("/a", "com.example.Foo", "Changed");
  g_autoptr(GDBusMessage) removed = g_dbus_message_new_signal ("/a", "com.example.Foo", "Removed");
  g_autoptr(GDBusMessage) other = g_dbus_message_new_signal ("/a", "com.example.Foo", "Other");

  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, 0);
  g_assert_false (_peer_match_set_matches (set, changed, ":1.5", NULL, NULL));

  g_assert_true (_peer_match_set_add (set, "member='Changed'", 10, NULL));
  g_assert_true (_peer_match_set_add (set, "member='Removed'", 10, NULL));
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, 2);
  g_assert_true (_peer_match_set_matches (set, changed, ":1.5", NULL, NULL));
  g_assert_true (_peer_match_set_matches (set, removed, ":1.5", NULL, NULL));
  g_assert_false (_peer_match_set_matches (set, other, ":1.5", NULL, NULL));

  g_assert_true (_peer_match_set_remove (set, "member='Changed'", NULL));
  g_assert_false (_peer_match_set_matches (set, changed, ":1.5", NULL, NULL));
  g_assert_true (_peer_match_set_matches (set, removed, ":1.5", NULL, NULL));
}

/* Duplicates are kept and counted; RemoveMatch takes away one of them,
 * found by meaning, not by text. */
static void
test_set_remove (void)
{
  g_autoptr(PeerMatchSet) set = _peer_match_set_new ();
  g_autoptr(GDBusMessage) signal = g_dbus_message_new_signal ("/a", "com.example.Foo", "Changed");
  g_autoptr(GError) error = NULL;

  g_assert_true (_peer_match_set_add (set, "type='signal',member='Changed'", 10, NULL));
  g_assert_true (_peer_match_set_add (set, "member=Changed,type=signal", 10, NULL));
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, 2);

  /* Not equal: a narrower rule, another member. */
  g_assert_false (_peer_match_set_remove (set, "type='signal',member='Changed',path='/a'", &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_NOT_FOUND);
  g_assert_null (strchr (error->message, '\n'));
  g_clear_error (&error);
  g_assert_false (_peer_match_set_remove (set, "type='signal'", &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (_peer_match_set_remove (set, "type='bogus'", &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID);
  g_clear_error (&error);
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, 2);

  g_assert_true (_peer_match_set_remove (set, " member ='Changed', type='signal',", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, 1);
  g_assert_true (_peer_match_set_matches (set, signal, ":1.5", NULL, NULL));

  g_assert_true (_peer_match_set_remove (set, "type='signal',member='Changed'", &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, 0);
  g_assert_false (_peer_match_set_matches (set, signal, ":1.5", NULL, NULL));

  g_assert_false (_peer_match_set_remove (set, "type='signal',member='Changed'", &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_NOT_FOUND);
}

static void
test_limit (void)
{
  const guint max_rules = 4;
  g_autoptr(PeerMatchSet) set = _peer_match_set_new ();
  g_autoptr(PeerMatchSet) none = _peer_match_set_new ();
  g_autoptr(GError) error = NULL;

  for (guint i = 0; i < max_rules; i++)
    {
      g_autofree char *rule = g_strdup_printf ("arg0='%u'", i);

      g_assert_true (_peer_match_set_add (set, rule, max_rules, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, max_rules);

  g_assert_false (_peer_match_set_add (set, "arg0='one more'", max_rules, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_LIMITS_EXCEEDED);
  g_assert_cmpstr (error->message, ==, "Connection has 4 match rules already; the limit is 4");
  g_clear_error (&error);
  /* Duplicates count too. */
  g_assert_false (_peer_match_set_add (set, "arg0='0'", max_rules, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_LIMITS_EXCEEDED);
  g_clear_error (&error);
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, max_rules);

  /* A limit raised since applies to the next add. */
  g_assert_true (_peer_match_set_add (set, "arg0='4'", max_rules + 1, &error));
  g_assert_no_error (error);
  g_assert_true (_peer_match_set_remove (set, "arg0='4'", NULL));

  /* Room again after a remove. */
  g_assert_true (_peer_match_set_remove (set, "arg0='2'", NULL));
  g_assert_true (_peer_match_set_add (set, "arg0='one more'", max_rules, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, max_rules);

  /* A refused rule takes no room. */
  g_assert_true (_peer_match_set_remove (set, "arg0='one more'", NULL));
  g_assert_false (_peer_match_set_add (set, "arg0='x", max_rules, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID);
  g_clear_error (&error);
  g_assert_cmpuint (_peer_match_set_get_n_rules (set), ==, max_rules - 1);

  g_assert_false (_peer_match_set_add (none, "", 0, &error));
  g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_LIMITS_EXCEEDED);
  g_assert_cmpuint (_peer_match_set_get_n_rules (none), ==, 0);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GHashTable) counts = g_hash_table_new (g_str_hash, g_str_equal);

  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (good_rules); i++)
    {
      g_autofree char *path = NULL;

      path = g_strdup_printf ("/peer/match/parse/good/%u", i);
      g_test_add_data_func (path, &good_rules[i], test_parse_good);
      g_clear_pointer (&path, g_free);
      path = g_strdup_printf ("/peer/match/parse/round-trip/%u", i);
      g_test_add_data_func (path, &good_rules[i], test_parse_round_trip);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad_rules); i++)
    {
      g_autofree char *path = g_strdup_printf ("/peer/match/parse/bad/%u", i);
      g_test_add_data_func (path, &bad_rules[i], test_parse_bad);
    }
  g_test_add_func ("/peer/match/parse/max-length", test_parse_max_length);

  for (guint i = 0; i < G_N_ELEMENTS (rule_pairs); i++)
    {
      g_autofree char *path = g_strdup_printf ("/peer/match/equal/%u", i);
      g_test_add_data_func (path, &rule_pairs[i], test_equal);
    }
  g_test_add_func ("/peer/match/eavesdrop", test_eavesdrop);

  for (guint i = 0; i < G_N_ELEMENTS (match_cases); i++)
    {
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (counts, match_cases[i].name));
      g_autofree char *path = g_strdup_printf ("/peer/match/%s/%u", match_cases[i].name, n);

      g_hash_table_insert (counts, (gpointer) match_cases[i].name, GUINT_TO_POINTER (n + 1));
      g_test_add_data_func (path, &match_cases[i], test_match);
    }
  g_test_add_func ("/peer/match/sender/names", test_sender);
  g_test_add_func ("/peer/match/destination/stamped", test_destination);

  g_test_add_func ("/peer/match/set/matches", test_set_matches);
  g_test_add_func ("/peer/match/set/remove", test_set_remove);
  g_test_add_func ("/peer/match/limit", test_limit);

  return g_test_run ();
}
