/* peer-address.c: a strict parser for D-Bus server addresses.
 *
 * Grammar (D-Bus specification, "Server Addresses"):
 *   address  = transport ':' [ key '=' value { ',' key '=' value } ]
 *   value    = { optionally-escaped byte | '%' hex hex }
 * Everything a caller or a command line passes goes through here, so every
 * error names what is wrong in one line.
 */
#include "config.h"

#include <string.h>

#include "peer-address-private.h"
#include "peer-error.h"

/* A Unix socket path must fit sun_path (108 bytes, NUL included). */
#define PEER_UNIX_PATH_MAX 107

/* Input quoted in an error message, made printable: the message stays one
 * line whatever bytes the input holds. */
static char *
quote_input (const char *text,
             gssize      len)
{
  g_autofree char *copy = len < 0 ? g_strdup (text) : g_strndup (text, len);
  return g_strescape (copy, NULL);
}

static gboolean
is_optionally_escaped (guchar c)
{
  return g_ascii_isalnum (c) || c == '-' || c == '_' || c == '/' || c == '.' || c == '\\' || c == '*';
}

static char *
unescape_value (const char *text,
                gsize       len,
                GError    **error)
{
  g_autoptr(GString) out = g_string_sized_new (len);

  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar) text[i];

      if (c == '%')
        {
          int hi, lo;

          if (i + 2 >= len)
            hi = lo = -1;
          else
            {
              hi = g_ascii_xdigit_value (text[i + 1]);
              lo = g_ascii_xdigit_value (text[i + 2]);
            }
          if (hi < 0 || lo < 0)
            {
              g_autofree char *quoted = quote_input (text + i, MIN (len - i, 3));
              g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                           "Invalid address: bad escape at '%s'", quoted);
              return NULL;
            }
          if (hi == 0 && lo == 0)
            {
              g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                                   "Invalid address: a value contains an escaped NUL byte");
              return NULL;
            }
          g_string_append_c (out, (char) (hi * 16 + lo));
          i += 2;
        }
      else if (is_optionally_escaped (c) || c >= 0x80 || (g_ascii_isprint (c) && c != ',' && c != ';' && c != '=' && c != ':'))
        {
          /* The specification asks writers to escape everything else, but
           * lenient readers (GDBus, libdbus) accept printable bytes too. */
          g_string_append_c (out, (char) c);
        }
      else
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Invalid address: byte 0x%02x must be escaped", c);
          return NULL;
        }
    }

  return g_string_free (g_steal_pointer (&out), FALSE);
}

void
peer_address_free (PeerAddress *address)
{
  if (address == NULL)
    return;
  g_free (address->transport);
  g_free (address->value);
  g_clear_pointer (&address->params, g_hash_table_unref);
  g_free (address);
}

const char *
peer_address_kind_to_string (PeerAddressKind kind)
{
  switch (kind)
    {
    case PEER_ADDRESS_UNIX_PATH:     return "unix:path";
    case PEER_ADDRESS_UNIX_DIR:      return "unix:dir";
    case PEER_ADDRESS_UNIX_TMPDIR:   return "unix:tmpdir";
    case PEER_ADDRESS_UNIX_ABSTRACT: return "unix:abstract";
    case PEER_ADDRESS_TCP:           return "tcp";
    case PEER_ADDRESS_NONCE_TCP:     return "nonce-tcp";
    default:                         return "unknown";
    }
}

gboolean
peer_address_is_private (const PeerAddress *address)
{
  g_return_val_if_fail (address != NULL, FALSE);

  /* unix:tmpdir= makes an abstract socket on Linux with GLib 2.74, so only
   * path-based sockets count as private. */
  return address->kind == PEER_ADDRESS_UNIX_PATH || address->kind == PEER_ADDRESS_UNIX_DIR;
}

static gboolean
parse_unix (PeerAddress *address,
            GError     **error)
{
  static const struct { const char *key; PeerAddressKind kind; } keys[] = {
    { "path", PEER_ADDRESS_UNIX_PATH },
    { "dir", PEER_ADDRESS_UNIX_DIR },
    { "tmpdir", PEER_ADDRESS_UNIX_TMPDIR },
    { "abstract", PEER_ADDRESS_UNIX_ABSTRACT },
  };
  guint found = 0;
  GHashTableIter iter;
  const char *key;

  g_hash_table_iter_init (&iter, address->params);
  while (g_hash_table_iter_next (&iter, (gpointer *) &key, NULL))
    {
      gboolean known = FALSE;

      for (guint i = 0; i < G_N_ELEMENTS (keys); i++)
        if (g_str_equal (key, keys[i].key))
          {
            address->kind = keys[i].kind;
            g_free (address->value);
            address->value = g_strdup (g_hash_table_lookup (address->params, key));
            known = TRUE;
            found++;
          }
      if (!known && !g_str_equal (key, "guid"))
        {
          /* Keys are checked to be [A-Za-z0-9_-] before we get here. */
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Invalid address: unknown key '%s' for the unix transport", key);
          return FALSE;
        }
    }

  if (found != 1)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                           "Invalid address: a unix address needs exactly one of path=, dir=, tmpdir=, abstract=");
      return FALSE;
    }
  if (address->value[0] == '\0')
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Invalid address: %s= is empty", peer_address_kind_to_string (address->kind) + 5);
      return FALSE;
    }
  /* Legal in file names, but a socket path with a newline in it is a
   * mistake or an attack on whoever prints it. */
  for (const char *c = address->value; *c; c++)
    if ((guchar) *c < 0x20 || *c == 0x7f)
      {
        g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                             "Invalid address: control character in the socket name");
        return FALSE;
      }
  if (address->kind == PEER_ADDRESS_UNIX_PATH || address->kind == PEER_ADDRESS_UNIX_ABSTRACT)
    {
      if (strlen (address->value) > PEER_UNIX_PATH_MAX)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Invalid address: socket path is %zu bytes, the limit is %d",
                       strlen (address->value), PEER_UNIX_PATH_MAX);
          return FALSE;
        }
    }
  if ((address->kind == PEER_ADDRESS_UNIX_PATH || address->kind == PEER_ADDRESS_UNIX_DIR) &&
      !g_path_is_absolute (address->value))
    {
      g_autofree char *quoted = quote_input (address->value, -1);
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Invalid address: '%s' is not an absolute path", quoted);
      return FALSE;
    }
  return TRUE;
}

gboolean
peer_address_parse (const char   *text,
                    PeerAddress **out_address,
                    GError      **error)
{
  g_autoptr(PeerAddress) address = NULL;
  const char *colon;
  const char *p;

  g_return_val_if_fail (text != NULL, FALSE);
  g_return_val_if_fail (out_address != NULL, FALSE);

  if (strchr (text, ';') != NULL)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                           "Invalid address: a server listens on one address, not a ';'-separated list");
      return FALSE;
    }

  colon = strchr (text, ':');
  if (colon == NULL || colon == text)
    {
      g_autofree char *quoted = quote_input (text, -1);
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Invalid address '%s': expected TRANSPORT:KEY=VALUE,...", quoted);
      return FALSE;
    }
  for (const char *t = text; t < colon; t++)
    if (!g_ascii_isalnum (*t) && *t != '-' && *t != '_')
      {
        g_autofree char *quoted = quote_input (text, colon - text);
        g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                     "Invalid address: bad character in transport '%s'", quoted);
        return FALSE;
      }

  address = g_new0 (PeerAddress, 1);
  address->transport = g_strndup (text, colon - text);
  address->params = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  for (p = colon + 1; *p != '\0';)
    {
      const char *end = strchr (p, ',');
      const char *eq;
      g_autofree char *key = NULL;
      g_autofree char *value = NULL;

      if (end == NULL)
        end = p + strlen (p);
      eq = memchr (p, '=', end - p);
      if (eq == NULL || eq == p)
        {
          g_autofree char *quoted = quote_input (p, end - p);
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Invalid address: expected KEY=VALUE at '%s'", quoted);
          return FALSE;
        }
      key = g_strndup (p, eq - p);
      for (const char *k = key; *k; k++)
        if (!g_ascii_isalnum (*k) && *k != '-' && *k != '_')
          {
            g_autofree char *quoted = quote_input (key, -1);
            g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                         "Invalid address: bad character in key '%s'", quoted);
            return FALSE;
          }
      value = unescape_value (eq + 1, end - (eq + 1), error);
      if (value == NULL)
        return FALSE;
      if (g_hash_table_contains (address->params, key))
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Invalid address: key '%s' appears twice", key);
          return FALSE;
        }
      g_hash_table_insert (address->params, g_steal_pointer (&key), g_steal_pointer (&value));
      p = *end == ',' ? end + 1 : end;
    }

  if (g_str_equal (address->transport, "unix"))
    {
      if (!parse_unix (address, error))
        return FALSE;
    }
  else if (g_str_equal (address->transport, "tcp"))
    address->kind = PEER_ADDRESS_TCP;
  else if (g_str_equal (address->transport, "nonce-tcp"))
    address->kind = PEER_ADDRESS_NONCE_TCP;
  else
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                   "Unsupported address transport '%s' (libpeer serves unix:path=)", address->transport);
      return FALSE;
    }

  *out_address = g_steal_pointer (&address);
  return TRUE;
}
