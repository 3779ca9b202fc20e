/* peer-match.c: D-Bus match rules, parsed and matched.
 *
 * Written from the D-Bus specification ("Match Rules"). Where it is silent
 * or loose, dbus-daemon's observable behaviour decides, so a rule that a
 * bus accepts is accepted here too:
 *  - whitespace may come before a key and between a key and its '='; after
 *    the '=', everything up to an unquoted ',' is the value, so
 *    "type= 'signal'" is refused, as dbus-daemon refuses it;
 *  - a trailing ',' is accepted; an empty rule matches everything;
 *  - eavesdrop may be given twice (dbus-monitor's fallback appends one to
 *    the user's rule) and the last one counts; every other key only once,
 *    and argN, argNpath and arg0namespace with the same N count as one key;
 *  - argN's N may have leading zeros (arg01 is arg1);
 *  - sender and destination take any bus name (the specification says a
 *    unique name for destination; dbus-daemon takes well-known ones too).
 * Outside quotes, a backslash is an escape only before an apostrophe, read
 * left to right: "\\'" is a backslash, then an escaped apostrophe, and
 * "\," is a backslash, then the ',' that ends the value. (dbus-daemon
 * takes the character after any backslash literally; the specification's
 * wording is followed here.)
 *
 * Matching reads each header once per message and a body argument only
 * when a rule has a key for it, so a set of rules without argument keys
 * never looks at the body, and nothing is allocated but the argument
 * values a rule asks for.
 */
#include "config.h"

#include <string.h>

#include "peer-match-private.h"

/* The specification's bound on every name. */
#define NAME_MAX_LENGTH 255

typedef enum {
  MATCH_ARG_STRING,     /* argN: equal; STRING arguments only */
  MATCH_ARG_PATH,       /* argNpath: equal or '/'-prefix; STRING or OBJECT_PATH */
  MATCH_ARG_NAMESPACE,  /* arg0namespace: equal or '.'-prefix; STRING only */
} MatchArgKind;

typedef struct {
  char *value;
  gsize len;
  guint8 index;
  guint8 kind;          /* MatchArgKind */
} MatchArg;

struct _PeerMatchRule {
  GDBusMessageType type;        /* G_DBUS_MESSAGE_TYPE_INVALID: any */
  char *sender;                 /* NULL: any, likewise below */
  char *interface;
  char *member;
  char *path;
  gsize path_len;
  gboolean path_is_namespace;
  char *destination;
  gboolean eavesdrop;
  MatchArg *args;               /* by increasing index */
  guint n_args;
};

/* Keys given once at most; arguments are tracked by index instead. */
enum {
  KEY_TYPE        = 1 << 0,
  KEY_SENDER      = 1 << 1,
  KEY_INTERFACE   = 1 << 2,
  KEY_MEMBER      = 1 << 3,
  KEY_PATH        = 1 << 4,
  KEY_DESTINATION = 1 << 5,
};

void
_peer_match_rule_free (PeerMatchRule *rule)
{
  if (rule == NULL)
    return;
  g_free (rule->sender);
  g_free (rule->interface);
  g_free (rule->member);
  g_free (rule->path);
  g_free (rule->destination);
  for (guint i = 0; i < rule->n_args; i++)
    g_free (rule->args[i].value);
  g_free (rule->args);
  g_free (rule);
}

/* --- parsing ------------------------------------------------------------ */

/* Input quoted in an error message, made printable: the message stays one
 * line whatever the rule holds. */
static char *
quote_input (const char *text)
{
  return g_strescape (text, NULL);
}

static gboolean
is_rule_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A bus name that need not contain a '.': what arg0namespace takes. */
static gboolean
is_bus_name_namespace (const char *text)
{
  const char *p = text;
  gboolean unique = FALSE;

  if (*p == '\0' || strlen (text) > NAME_MAX_LENGTH)
    return FALSE;
  if (*p == ':')
    {
      unique = TRUE;
      p++;
    }
  for (;;)
    {
      const char *element = p;

      while (g_ascii_isalnum (*p) || *p == '_' || *p == '-')
        p++;
      if (p == element || (!unique && g_ascii_isdigit (*element)))
        return FALSE;
      if (*p == '\0')
        return TRUE;
      if (*p != '.')
        return FALSE;
      p++;
    }
}

/* Reads the value starting at *@inout up to the unquoted ',' that ends it
 * (consumed) or the end of the text; *@inout is left after it. */
static char *
read_value (const char **inout,
            const char  *key,
            GError     **error)
{
  g_autoptr(GString) value = g_string_new (NULL);
  const char *p = *inout;
  gboolean quoted = FALSE;

  for (; *p != '\0'; p++)
    {
      if (quoted)
        {
          if (*p == '\'')
            quoted = FALSE;
          else
            g_string_append_c (value, *p);
        }
      else if (*p == '\'')
        quoted = TRUE;
      else if (*p == ',')
        {
          p++;
          break;
        }
      else if (*p == '\\' && p[1] == '\'')
        {
          g_string_append_c (value, '\'');
          p++;
        }
      else
        g_string_append_c (value, *p);
    }

  if (quoted)
    {
      g_autofree char *quoted_key = quote_input (key);
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                   "Unbalanced quotation marks in the value of '%s' in match rule", quoted_key);
      return NULL;
    }
  *inout = p;
  return g_string_free (g_steal_pointer (&value), FALSE);
}

static gboolean
set_error_invalid_value (GError    **error,
                         const char *what,
                         const char *value)
{
  g_autofree char *quoted = quote_input (value);
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
               "Invalid %s '%s' in match rule", what, quoted);
  return FALSE;
}

static gboolean
set_error_twice (GError    **error,
                 const char *key)
{
  g_autofree char *quoted = quote_input (key);
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
               "Key '%s' appears twice in match rule", quoted);
  return FALSE;
}

static gboolean
set_error_unknown_key (GError    **error,
                       const char *key)
{
  g_autofree char *quoted = quote_input (key);
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
               "Unknown key '%s' in match rule", quoted);
  return FALSE;
}

static GDBusMessageType
message_type_from_string (const char *text)
{
  if (g_str_equal (text, "signal"))
    return G_DBUS_MESSAGE_TYPE_SIGNAL;
  if (g_str_equal (text, "method_call"))
    return G_DBUS_MESSAGE_TYPE_METHOD_CALL;
  if (g_str_equal (text, "method_return"))
    return G_DBUS_MESSAGE_TYPE_METHOD_RETURN;
  if (g_str_equal (text, "error"))
    return G_DBUS_MESSAGE_TYPE_ERROR;
  return G_DBUS_MESSAGE_TYPE_INVALID;
}

static const char *
message_type_to_string (GDBusMessageType type)
{
  switch (type)
    {
    case G_DBUS_MESSAGE_TYPE_SIGNAL:
      return "signal";
    case G_DBUS_MESSAGE_TYPE_METHOD_CALL:
      return "method_call";
    case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
      return "method_return";
    case G_DBUS_MESSAGE_TYPE_ERROR:
      return "error";
    case G_DBUS_MESSAGE_TYPE_INVALID:
    default:
      return NULL;
    }
}

/* "arg" DIGITS [ "path" | "namespace" ]; anything else is unknown. */
static gboolean
parse_arg_key (const char   *key,
               guint        *out_index,
               MatchArgKind *out_kind,
               GError      **error)
{
  const char *p = key + strlen ("arg");
  guint index = 0;
  MatchArgKind kind;

  if (!g_ascii_isdigit (*p))
    return set_error_unknown_key (error, key);
  /* Capped, not wrapped: any number past the limit is refused below. */
  for (; g_ascii_isdigit (*p); p++)
    index = MIN (index * 10 + (guint) (*p - '0'), 10 * PEER_MATCH_RULE_MAX_ARG);

  if (*p == '\0')
    kind = MATCH_ARG_STRING;
  else if (g_str_equal (p, "path"))
    kind = MATCH_ARG_PATH;
  else if (g_str_equal (p, "namespace"))
    kind = MATCH_ARG_NAMESPACE;
  else
    return set_error_unknown_key (error, key);

  if (index > PEER_MATCH_RULE_MAX_ARG)
    {
      g_autofree char *quoted = quote_input (key);
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                   "Key '%s' in match rule has too high an argument number; the limit is %d",
                   quoted, PEER_MATCH_RULE_MAX_ARG);
      return FALSE;
    }
  if (kind == MATCH_ARG_NAMESPACE && index != 0)
    {
      g_autofree char *quoted = quote_input (key);
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                   "Unknown key '%s' in match rule: only arg0namespace exists", quoted);
      return FALSE;
    }

  *out_index = index;
  *out_kind = kind;
  return TRUE;
}

/* The keys whose value is a name, checked by GLib's validators. */
static const struct {
  const char *key;
  guint bit;
  gsize offset;                         /* of the char * in PeerMatchRule */
  gboolean (*is_valid) (const char *value);
  const char *what;
} name_keys[] = {
  { "sender", KEY_SENDER, G_STRUCT_OFFSET (PeerMatchRule, sender), g_dbus_is_name, "sender name" },
  { "interface", KEY_INTERFACE, G_STRUCT_OFFSET (PeerMatchRule, interface), g_dbus_is_interface_name, "interface name" },
  { "member", KEY_MEMBER, G_STRUCT_OFFSET (PeerMatchRule, member), g_dbus_is_member_name, "member name" },
  { "destination", KEY_DESTINATION, G_STRUCT_OFFSET (PeerMatchRule, destination), g_dbus_is_name, "destination name" },
};

/* Records @key = @value in @rule (taking @value), whose args are still one
 * slot per index. @seen holds the KEY_* given so far. */
static gboolean
apply_key (PeerMatchRule *rule,
           guint         *seen,
           const char    *key,
           char          *value,
           GError       **error)
{
  g_autofree char *owned = value;

  if (g_str_equal (key, "type"))
    {
      if (*seen & KEY_TYPE)
        return set_error_twice (error, key);
      rule->type = message_type_from_string (owned);
      if (rule->type == G_DBUS_MESSAGE_TYPE_INVALID)
        return set_error_invalid_value (error, "message type", owned);
      *seen |= KEY_TYPE;
      return TRUE;
    }

  if (g_str_equal (key, "eavesdrop"))
    {
      if (g_str_equal (owned, "true"))
        rule->eavesdrop = TRUE;
      else if (g_str_equal (owned, "false"))
        rule->eavesdrop = FALSE;
      else
        return set_error_invalid_value (error, "eavesdrop value (not 'true' or 'false')", owned);
      return TRUE;
    }

  if (g_str_has_prefix (key, "arg"))
    {
      guint index;
      MatchArgKind kind;
      MatchArg *arg;

      if (!parse_arg_key (key, &index, &kind, error))
        return FALSE;
      arg = &rule->args[index];
      if (arg->value != NULL)
        {
          g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                       "Argument %u is matched twice in match rule", index);
          return FALSE;
        }
      if (kind == MATCH_ARG_NAMESPACE && !is_bus_name_namespace (owned))
        return set_error_invalid_value (error, "arg0namespace (not a bus name or a prefix of one)", owned);
      arg->len = strlen (owned);
      arg->index = (guint8) index;
      arg->kind = (guint8) kind;
      arg->value = g_steal_pointer (&owned);
      return TRUE;
    }

  if (g_str_equal (key, "path") || g_str_equal (key, "path_namespace"))
    {
      gboolean is_namespace = g_str_equal (key, "path_namespace");

      if (*seen & KEY_PATH)
        {
          if (rule->path_is_namespace == is_namespace)
            return set_error_twice (error, key);
          g_set_error_literal (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                               "Match rule has both path and path_namespace");
          return FALSE;
        }
      if (!g_variant_is_object_path (owned))
        return set_error_invalid_value (error, is_namespace ? "object path for path_namespace" : "object path", owned);
      rule->path_len = strlen (owned);
      rule->path_is_namespace = is_namespace;
      rule->path = g_steal_pointer (&owned);
      *seen |= KEY_PATH;
      return TRUE;
    }

  for (guint i = 0; i < G_N_ELEMENTS (name_keys); i++)
    {
      char **field;

      if (!g_str_equal (key, name_keys[i].key))
        continue;
      if (*seen & name_keys[i].bit)
        return set_error_twice (error, key);
      if (!name_keys[i].is_valid (owned))
        return set_error_invalid_value (error, name_keys[i].what, owned);
      field = G_STRUCT_MEMBER_P (rule, name_keys[i].offset);
      *field = g_steal_pointer (&owned);
      *seen |= name_keys[i].bit;
      return TRUE;
    }

  return set_error_unknown_key (error, key);
}

PeerMatchRule *
_peer_match_rule_new (const char  *text,
                      GError     **error)
{
  g_autoptr(PeerMatchRule) rule = NULL;
  const char *p = text;
  guint seen = 0;
  guint n_args = 0;

  g_return_val_if_fail (text != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  /* strnlen: a peer's rule may be megabytes long; no need to count it all. */
  if (strnlen (text, PEER_MATCH_RULE_MAX_LENGTH + 1) > PEER_MATCH_RULE_MAX_LENGTH)
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_LIMITS_EXCEEDED,
                   "Match rule is longer than %d bytes", PEER_MATCH_RULE_MAX_LENGTH);
      return NULL;
    }
  if (!g_utf8_validate (text, -1, NULL))
    {
      g_set_error_literal (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                           "Match rule is not valid UTF-8");
      return NULL;
    }

  rule = g_new0 (PeerMatchRule, 1);
  rule->type = G_DBUS_MESSAGE_TYPE_INVALID;
  /* One slot per possible index while parsing, compacted at the end. */
  rule->n_args = PEER_MATCH_RULE_MAX_ARG + 1;
  rule->args = g_new0 (MatchArg, rule->n_args);

  for (;;)
    {
      g_autofree char *key = NULL;
      const char *key_start;
      char *value;

      while (is_rule_space (*p))
        p++;
      if (*p == '\0')
        break;

      key_start = p;
      while (*p != '\0' && *p != '=' && !is_rule_space (*p))
        p++;
      key = g_strndup (key_start, (gsize) (p - key_start));
      while (is_rule_space (*p))
        p++;

      if (*p != '=')
        {
          g_autofree char *quoted = quote_input (key);
          g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                       "Key '%s' in match rule has no '=' after it", quoted);
          return NULL;
        }
      if (*key == '\0')
        {
          g_set_error_literal (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_INVALID,
                               "Match rule has an empty key before '='");
          return NULL;
        }
      p++;

      value = read_value (&p, key, error);
      if (value == NULL)
        return NULL;
      if (!apply_key (rule, &seen, key, value, error))
        return NULL;
    }

  for (guint i = 0; i < rule->n_args; i++)
    if (rule->args[i].value != NULL)
      rule->args[n_args++] = rule->args[i];
  rule->n_args = n_args;
  if (n_args == 0)
    g_clear_pointer (&rule->args, g_free);
  else
    rule->args = g_renew (MatchArg, rule->args, n_args);

  return g_steal_pointer (&rule);
}

gboolean
_peer_match_rule_get_eavesdrop (const PeerMatchRule *rule)
{
  g_return_val_if_fail (rule != NULL, FALSE);

  return rule->eavesdrop;
}

gboolean
_peer_match_rule_equal (const PeerMatchRule *a,
                        const PeerMatchRule *b)
{
  g_return_val_if_fail (a != NULL, FALSE);
  g_return_val_if_fail (b != NULL, FALSE);

  if (a->type != b->type ||
      a->eavesdrop != b->eavesdrop ||
      a->path_is_namespace != b->path_is_namespace ||
      a->n_args != b->n_args ||
      g_strcmp0 (a->sender, b->sender) != 0 ||
      g_strcmp0 (a->interface, b->interface) != 0 ||
      g_strcmp0 (a->member, b->member) != 0 ||
      g_strcmp0 (a->path, b->path) != 0 ||
      g_strcmp0 (a->destination, b->destination) != 0)
    return FALSE;

  for (guint i = 0; i < a->n_args; i++)
    {
      const MatchArg *x = &a->args[i];
      const MatchArg *y = &b->args[i];

      if (x->index != y->index || x->kind != y->kind || x->len != y->len ||
          memcmp (x->value, y->value, x->len) != 0)
        return FALSE;
    }
  return TRUE;
}

static void
append_pair (GString    *out,
             const char *key,
             const char *value)
{
  if (out->len > 0)
    g_string_append_c (out, ',');
  g_string_append (out, key);
  g_string_append (out, "='");
  /* No apostrophe can be written inside quotes: close, escape, reopen. */
  for (const char *p = value; *p != '\0'; p++)
    {
      if (*p == '\'')
        g_string_append (out, "'\\''");
      else
        g_string_append_c (out, *p);
    }
  g_string_append_c (out, '\'');
}

char *
_peer_match_rule_to_string (const PeerMatchRule *rule)
{
  static const char * const arg_suffix[] = {
    [MATCH_ARG_STRING] = "",
    [MATCH_ARG_PATH] = "path",
    [MATCH_ARG_NAMESPACE] = "namespace",
  };
  g_autoptr(GString) out = g_string_new (NULL);

  g_return_val_if_fail (rule != NULL, NULL);

  if (rule->type != G_DBUS_MESSAGE_TYPE_INVALID)
    append_pair (out, "type", message_type_to_string (rule->type));
  if (rule->sender != NULL)
    append_pair (out, "sender", rule->sender);
  if (rule->interface != NULL)
    append_pair (out, "interface", rule->interface);
  if (rule->member != NULL)
    append_pair (out, "member", rule->member);
  if (rule->path != NULL)
    append_pair (out, rule->path_is_namespace ? "path_namespace" : "path", rule->path);
  if (rule->destination != NULL)
    append_pair (out, "destination", rule->destination);
  for (guint i = 0; i < rule->n_args; i++)
    {
      char key[sizeof "arg63namespace"];

      g_snprintf (key, sizeof key, "arg%u%s", rule->args[i].index, arg_suffix[rule->args[i].kind]);
      append_pair (out, key, rule->args[i].value);
    }
  if (rule->eavesdrop)
    append_pair (out, "eavesdrop", "true");

  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* --- matching ----------------------------------------------------------- */

/* What the rules of one match look at, read once for all of them. */
typedef struct {
  GDBusMessage *message;
  GDBusMessageType type;
  const char *interface;
  const char *member;
  const char *path;
  const char *sender;                   /* stamped, or the header */
  const char *destination;              /* stamped, or the header */
  const char *header_destination;
  const char * const *sender_names;

  /* The body's arguments, read when a rule first asks for one. */
  gboolean args_read;
  GVariant *body;
  guint n_args;                         /* at most PEER_MATCH_RULE_MAX_ARG + 1 */
  char arg_types[PEER_MATCH_RULE_MAX_ARG + 1];
  GVariant *arg_values[PEER_MATCH_RULE_MAX_ARG + 1];
} MatchContext;

static void
match_context_init (MatchContext       *ctx,
                    GDBusMessage       *message,
                    const char         *sender,
                    const char         *destination,
                    const char * const *sender_names)
{
  ctx->message = message;
  ctx->type = g_dbus_message_get_message_type (message);
  ctx->interface = g_dbus_message_get_interface (message);
  ctx->member = g_dbus_message_get_member (message);
  ctx->path = g_dbus_message_get_path (message);
  ctx->sender = sender != NULL ? sender : g_dbus_message_get_sender (message);
  ctx->header_destination = g_dbus_message_get_destination (message);
  ctx->destination = destination != NULL ? destination : ctx->header_destination;
  ctx->sender_names = sender_names;
  ctx->args_read = FALSE;
}

static void
match_context_clear (MatchContext *ctx)
{
  if (!ctx->args_read)
    return;
  for (guint i = 0; i < ctx->n_args; i++)
    g_clear_pointer (&ctx->arg_values[i], g_variant_unref);
}

/* The argument types come from the body's type string, which costs no
 * allocation; only the values a rule compares are taken out. */
static void
match_context_read_arg_types (MatchContext *ctx)
{
  ctx->args_read = TRUE;
  ctx->n_args = 0;
  ctx->body = g_dbus_message_get_body (ctx->message);
  if (ctx->body == NULL || !g_variant_is_of_type (ctx->body, G_VARIANT_TYPE_TUPLE))
    return;

  for (const GVariantType *t = g_variant_type_first (g_variant_get_type (ctx->body));
       t != NULL && ctx->n_args < G_N_ELEMENTS (ctx->arg_types);
       t = g_variant_type_next (t))
    {
      ctx->arg_types[ctx->n_args] = g_variant_type_peek_string (t)[0];
      ctx->arg_values[ctx->n_args] = NULL;
      ctx->n_args++;
    }
}

/* The argument at @index if it is a STRING (or, with @object_path_too, an
 * OBJECT_PATH); NULL if there is none such. */
static const char *
match_context_get_arg (MatchContext *ctx,
                       guint         index,
                       gboolean      object_path_too,
                       gsize        *out_len)
{
  char type;

  if (!ctx->args_read)
    match_context_read_arg_types (ctx);
  if (index >= ctx->n_args)
    return NULL;

  type = ctx->arg_types[index];
  if (type != 's' && !(object_path_too && type == 'o'))
    return NULL;

  /* Kept until the match ends: a string borrowed from a child of a body
   * not yet serialised lives only as long as that child. */
  if (ctx->arg_values[index] == NULL)
    ctx->arg_values[index] = g_variant_get_child_value (ctx->body, index);
  return g_variant_get_string (ctx->arg_values[index], out_len);
}

/* The specification's argNpath: equal, or one of the two ends with '/'
 * and is a prefix of the other. */
static gboolean
arg_path_matches (const char *actual,
                  gsize       actual_len,
                  const char *expected,
                  gsize       expected_len)
{
  if (actual_len == expected_len)
    return memcmp (actual, expected, actual_len) == 0;
  if (expected_len < actual_len)
    return expected_len > 0 && expected[expected_len - 1] == '/' &&
           memcmp (actual, expected, expected_len) == 0;
  return actual_len > 0 && actual[actual_len - 1] == '/' &&
         memcmp (actual, expected, actual_len) == 0;
}

static gboolean
arg_matches (const MatchArg *arg,
             MatchContext   *ctx)
{
  gsize len = 0;
  const char *actual = match_context_get_arg (ctx, arg->index, arg->kind == MATCH_ARG_PATH, &len);

  if (actual == NULL)
    return FALSE;

  if (arg->kind == MATCH_ARG_PATH)
    return arg_path_matches (actual, len, arg->value, arg->len);
  if (arg->kind == MATCH_ARG_NAMESPACE)
    /* "a.b" holds "a.b" and "a.b.c", not "a.bc". */
    return len >= arg->len && memcmp (actual, arg->value, arg->len) == 0 &&
           (len == arg->len || actual[arg->len] == '.');
  return len == arg->len && memcmp (actual, arg->value, len) == 0;
}

static gboolean
path_matches (const PeerMatchRule *rule,
              const char          *path)
{
  if (path == NULL)
    return FALSE;
  if (!rule->path_is_namespace)
    return strcmp (path, rule->path) == 0;
  /* "/" is the one object path ending in '/': it holds every path. */
  if (rule->path_len == 1)
    return TRUE;
  return strncmp (path, rule->path, rule->path_len) == 0 &&
         (path[rule->path_len] == '\0' || path[rule->path_len] == '/');
}

static gboolean
sender_matches (const char         *rule_sender,
                const MatchContext *ctx)
{
  if (ctx->sender != NULL && strcmp (rule_sender, ctx->sender) == 0)
    return TRUE;
  for (guint i = 0; ctx->sender_names != NULL && ctx->sender_names[i] != NULL; i++)
    if (strcmp (rule_sender, ctx->sender_names[i]) == 0)
      return TRUE;
  return FALSE;
}

/* Cheapest keys first; the body last. */
static gboolean
rule_matches_context (const PeerMatchRule *rule,
                      MatchContext        *ctx)
{
  if (rule->type != G_DBUS_MESSAGE_TYPE_INVALID && rule->type != ctx->type)
    return FALSE;
  if (rule->member != NULL && g_strcmp0 (rule->member, ctx->member) != 0)
    return FALSE;
  if (rule->interface != NULL && g_strcmp0 (rule->interface, ctx->interface) != 0)
    return FALSE;
  if (rule->path != NULL && !path_matches (rule, ctx->path))
    return FALSE;
  if (rule->sender != NULL && !sender_matches (rule->sender, ctx))
    return FALSE;
  if (rule->destination != NULL &&
      g_strcmp0 (rule->destination, ctx->destination) != 0 &&
      g_strcmp0 (rule->destination, ctx->header_destination) != 0)
    return FALSE;
  for (guint i = 0; i < rule->n_args; i++)
    if (!arg_matches (&rule->args[i], ctx))
      return FALSE;
  return TRUE;
}

gboolean
_peer_match_rule_matches (const PeerMatchRule *rule,
                          GDBusMessage        *message,
                          const char          *sender,
                          const char          *destination,
                          const char * const  *sender_names)
{
  MatchContext ctx;
  gboolean matches;

  g_return_val_if_fail (rule != NULL, FALSE);
  g_return_val_if_fail (G_IS_DBUS_MESSAGE (message), FALSE);

  match_context_init (&ctx, message, sender, destination, sender_names);
  matches = rule_matches_context (rule, &ctx);
  match_context_clear (&ctx);
  return matches;
}

/* --- sets ----------------------------------------------------------------- */

struct _PeerMatchSet {
  GPtrArray *rules;             /* (element-type PeerMatchRule) (owned) */
};

PeerMatchSet *
_peer_match_set_new (void)
{
  PeerMatchSet *set = g_new0 (PeerMatchSet, 1);

  set->rules = g_ptr_array_new_with_free_func ((GDestroyNotify) _peer_match_rule_free);
  return set;
}

void
_peer_match_set_free (PeerMatchSet *set)
{
  if (set == NULL)
    return;
  g_ptr_array_unref (set->rules);
  g_free (set);
}

gboolean
_peer_match_set_add (PeerMatchSet *set,
                     const char   *text,
                     guint         max_rules,
                     GError      **error)
{
  PeerMatchRule *rule;

  g_return_val_if_fail (set != NULL, FALSE);
  g_return_val_if_fail (text != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* Before parsing: a peer at its limit costs nothing more. */
  if (set->rules->len >= max_rules)
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_LIMITS_EXCEEDED,
                   "Connection has %u match rules already; the limit is %u",
                   set->rules->len, max_rules);
      return FALSE;
    }

  rule = _peer_match_rule_new (text, error);
  if (rule == NULL)
    return FALSE;
  g_ptr_array_add (set->rules, rule);
  return TRUE;
}

gboolean
_peer_match_set_remove (PeerMatchSet *set,
                        const char   *text,
                        GError      **error)
{
  g_autoptr(PeerMatchRule) rule = NULL;
  g_autofree char *quoted = NULL;

  g_return_val_if_fail (set != NULL, FALSE);
  g_return_val_if_fail (text != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  rule = _peer_match_rule_new (text, error);
  if (rule == NULL)
    return FALSE;

  /* Newest first: an add undone by a remove is usually the last one. */
  for (guint i = set->rules->len; i > 0; i--)
    {
      if (_peer_match_rule_equal (g_ptr_array_index (set->rules, i - 1), rule))
        {
          g_ptr_array_remove_index (set->rules, i - 1);
          return TRUE;
        }
    }

  quoted = quote_input (text);
  g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_MATCH_RULE_NOT_FOUND,
               "No match rule \"%s\" to remove", quoted);
  return FALSE;
}

gboolean
_peer_match_set_matches (PeerMatchSet       *set,
                         GDBusMessage       *message,
                         const char         *sender,
                         const char         *destination,
                         const char * const *sender_names)
{
  MatchContext ctx;
  gboolean matches = FALSE;

  g_return_val_if_fail (set != NULL, FALSE);
  g_return_val_if_fail (G_IS_DBUS_MESSAGE (message), FALSE);

  if (set->rules->len == 0)
    return FALSE;

  match_context_init (&ctx, message, sender, destination, sender_names);
  for (guint i = 0; i < set->rules->len && !matches; i++)
    matches = rule_matches_context (g_ptr_array_index (set->rules, i), &ctx);
  match_context_clear (&ctx);
  return matches;
}

guint
_peer_match_set_get_n_rules (PeerMatchSet *set)
{
  g_return_val_if_fail (set != NULL, 0);

  return set->rules->len;
}
