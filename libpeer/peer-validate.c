/* peer-validate.c: the check every incoming message passes before the
 * router, or GLib's dispatch, reads it.
 *
 * GLib 2.74's parser (g_dbus_message_new_from_blob) checks that the
 * required header fields are present, but not their types, their values or
 * the serial: a PATH of type 's' makes g_dbus_message_get_path() return
 * NULL, which GLib's dispatch hands to strrchr(); a serial of 0 makes it
 * print CRITICALs. Like sd-bus (message_parse_fields) and dbus-broker
 * (src/dbus/message.c), libpeer refuses such a message outright. The rules,
 * from the D-Bus specification ("Message Format", "Valid Names"):
 *
 *   - the type is METHOD_CALL, METHOD_RETURN, ERROR or SIGNAL;
 *   - the serial is not 0;
 *   - no header field has code 0 (INVALID); unknown codes are ignored;
 *   - each known header field present has its type: PATH 'o', INTERFACE,
 *     MEMBER, ERROR_NAME, DESTINATION, SENDER 's', REPLY_SERIAL and
 *     NUM_UNIX_FDS 'u', SIGNATURE 'g';
 *   - each type has its required fields: METHOD_CALL PATH and MEMBER,
 *     SIGNAL PATH, INTERFACE and MEMBER, ERROR ERROR_NAME and
 *     REPLY_SERIAL, METHOD_RETURN REPLY_SERIAL;
 *   - INTERFACE is an interface name, MEMBER a member name, ERROR_NAME an
 *     error name, DESTINATION and SENDER bus names, REPLY_SERIAL not 0;
 *   - a METHOD_CALL or SIGNAL uses neither the interface
 *     org.freedesktop.DBus.Local nor the path /org/freedesktop/DBus/Local,
 *     reserved for what an implementation makes up locally;
 *   - the body is the tuple of the SIGNATURE header ("(" signature ")"),
 *     or absent when the signature is absent or empty;
 *   - NUM_UNIX_FDS (0 when absent) is the number of fds that came with the
 *     message.
 *
 * A handle in the body that points past those fds is not refused here:
 * it is a wrong argument of one call, not a broken connection, so the
 * call that reads it (peer_call_dup_fd(), the blob unwrapper) answers
 * InvalidArgs and the peer stays connected.
 *
 * The router calls this on every message, so the checks go from cheapest
 * to dearest and a valid message costs ten hash lookups, a few string
 * scans and no allocation.
 */
#include "config.h"

#include <string.h>

#include <gio/gunixfdlist.h>

#include "peer-error.h"
#include "peer-validate-private.h"

/* Peer strings quoted in an error are cut to this many bytes, and escaped:
 * the message stays one line of ASCII whatever the peer sent. */
#define QUOTE_MAX 64

#define N_KNOWN_FIELDS (G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS + 1)
#define FIELD_BIT(field) (1u << G_DBUS_MESSAGE_HEADER_FIELD_##field)

static const struct {
  const char *name;
  GVariantClass type;
} known_fields[N_KNOWN_FIELDS] = {
  [G_DBUS_MESSAGE_HEADER_FIELD_PATH] =         { "PATH",         G_VARIANT_CLASS_OBJECT_PATH },
  [G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE] =    { "INTERFACE",    G_VARIANT_CLASS_STRING },
  [G_DBUS_MESSAGE_HEADER_FIELD_MEMBER] =       { "MEMBER",       G_VARIANT_CLASS_STRING },
  [G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME] =   { "ERROR_NAME",   G_VARIANT_CLASS_STRING },
  [G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL] = { "REPLY_SERIAL", G_VARIANT_CLASS_UINT32 },
  [G_DBUS_MESSAGE_HEADER_FIELD_DESTINATION] =  { "DESTINATION",  G_VARIANT_CLASS_STRING },
  [G_DBUS_MESSAGE_HEADER_FIELD_SENDER] =       { "SENDER",       G_VARIANT_CLASS_STRING },
  [G_DBUS_MESSAGE_HEADER_FIELD_SIGNATURE] =    { "SIGNATURE",    G_VARIANT_CLASS_SIGNATURE },
  [G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS] = { "NUM_UNIX_FDS", G_VARIANT_CLASS_UINT32 },
};

static const struct {
  const char *name;
  guint required;
} known_types[] = {
  [G_DBUS_MESSAGE_TYPE_METHOD_CALL] =   { "METHOD_CALL",   FIELD_BIT (PATH) | FIELD_BIT (MEMBER) },
  [G_DBUS_MESSAGE_TYPE_METHOD_RETURN] = { "METHOD_RETURN", FIELD_BIT (REPLY_SERIAL) },
  [G_DBUS_MESSAGE_TYPE_ERROR] =         { "ERROR",         FIELD_BIT (ERROR_NAME) | FIELD_BIT (REPLY_SERIAL) },
  [G_DBUS_MESSAGE_TYPE_SIGNAL] =        { "SIGNAL",        FIELD_BIT (PATH) | FIELD_BIT (INTERFACE) | FIELD_BIT (MEMBER) },
};

#define LOCAL_PATH      "/org/freedesktop/DBus/Local"
#define LOCAL_INTERFACE "org.freedesktop.DBus.Local"

static char *
quote (const char *text)
{
  g_autofree char *cut = g_strndup (text, QUOTE_MAX);
  g_autofree char *escaped = g_strescape (cut, NULL);

  return g_strdup_printf ("'%s'%s", escaped, strnlen (text, QUOTE_MAX + 1) > QUOTE_MAX ? "..." : "");
}

static gboolean
refuse_name (GDBusMessageHeaderField   field,
             const char               *value,
             const char               *what,
             GError                  **error)
{
  g_autofree char *quoted = quote (value);

  g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
               "The %s header field %s is not a valid %s",
               known_fields[field].name, quoted, what);
  return FALSE;
}

/* The body against the SIGNATURE header, then the fds against
 * NUM_UNIX_FDS. */
static gboolean
validate_body (GDBusMessage  *message,
               GVariant      *signature_field,
               GVariant      *num_unix_fds_field,
               GError       **error)
{
  GVariant *body = g_dbus_message_get_body (message);
  GUnixFDList *fd_list = g_dbus_message_get_unix_fd_list (message);
  const char *signature = "";
  gsize signature_length = 0;
  guint32 n_fds = fd_list != NULL ? (guint32) g_unix_fd_list_get_length (fd_list) : 0;
  guint32 announced = num_unix_fds_field != NULL ? g_variant_get_uint32 (num_unix_fds_field) : 0;

  if (signature_field != NULL)
    signature = g_variant_get_string (signature_field, &signature_length);

  if (body == NULL)
    {
      if (signature_length > 0)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                       "The SIGNATURE header field is '%s' but the message has no body", signature);
          return FALSE;
        }
    }
  else
    {
      const char *body_type = g_variant_get_type_string (body);

      if (signature_field == NULL)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                       "The message has a body of type '%s' but no SIGNATURE header field", body_type);
          return FALSE;
        }
      /* body_type == "(" signature ")", without building that string. */
      if (body_type[0] != '(' || strncmp (body_type + 1, signature, signature_length) != 0
          || body_type[signature_length + 1] != ')' || body_type[signature_length + 2] != '\0')
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                       "The body has type '%s', not '(%s)' as the SIGNATURE header field says",
                       body_type, signature);
          return FALSE;
        }
    }

  if (announced != n_fds)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                   "The NUM_UNIX_FDS header field announces %u fds but %u came with the message",
                   announced, n_fds);
      return FALSE;
    }
  return TRUE;
}

gboolean
_peer_validate_message (GDBusMessage  *message,
                        GError       **error)
{
  GVariant *fields[N_KNOWN_FIELDS] = { NULL, };
  GDBusMessageType type;
  guint missing = 0;
  const char *path = NULL;
  const char *interface = NULL;
  const char *string;

  g_return_val_if_fail (G_IS_DBUS_MESSAGE (message), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  type = g_dbus_message_get_message_type (message);
  if (type < G_DBUS_MESSAGE_TYPE_METHOD_CALL || type > G_DBUS_MESSAGE_TYPE_SIGNAL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                   "The message type %u is not METHOD_CALL, METHOD_RETURN, ERROR or SIGNAL", (guint) type);
      return FALSE;
    }
  if (g_dbus_message_get_serial (message) == 0)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_PROTOCOL, "The message serial is 0");
      return FALSE;
    }
  if (g_dbus_message_get_header (message, G_DBUS_MESSAGE_HEADER_FIELD_INVALID) != NULL)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                           "The message has a header field with code 0 (INVALID)");
      return FALSE;
    }

  for (guint field = G_DBUS_MESSAGE_HEADER_FIELD_PATH; field < N_KNOWN_FIELDS; field++)
    {
      GVariant *value = g_dbus_message_get_header (message, field);

      if (value == NULL)
        {
          missing |= 1u << field;
          continue;
        }
      if (g_variant_classify (value) != known_fields[field].type)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                       "The %s header field has type '%s', not '%c'",
                       known_fields[field].name, g_variant_get_type_string (value),
                       (char) known_fields[field].type);
          return FALSE;
        }
      fields[field] = value;
    }

  missing &= known_types[type].required;
  if (missing != 0)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                   "The %s message has no %s header field",
                   known_types[type].name, known_fields[g_bit_nth_lsf (missing, -1)].name);
      return FALSE;
    }

  if (fields[G_DBUS_MESSAGE_HEADER_FIELD_PATH] != NULL)
    path = g_variant_get_string (fields[G_DBUS_MESSAGE_HEADER_FIELD_PATH], NULL);
  if (fields[G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE] != NULL)
    {
      interface = g_variant_get_string (fields[G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE], NULL);
      if (!g_dbus_is_interface_name (interface))
        return refuse_name (G_DBUS_MESSAGE_HEADER_FIELD_INTERFACE, interface, "interface name", error);
    }
  if (fields[G_DBUS_MESSAGE_HEADER_FIELD_MEMBER] != NULL)
    {
      string = g_variant_get_string (fields[G_DBUS_MESSAGE_HEADER_FIELD_MEMBER], NULL);
      if (!g_dbus_is_member_name (string))
        return refuse_name (G_DBUS_MESSAGE_HEADER_FIELD_MEMBER, string, "member name", error);
    }
  if (fields[G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME] != NULL)
    {
      string = g_variant_get_string (fields[G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME], NULL);
      if (!g_dbus_is_error_name (string))
        return refuse_name (G_DBUS_MESSAGE_HEADER_FIELD_ERROR_NAME, string, "error name", error);
    }
  if (fields[G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL] != NULL
      && g_variant_get_uint32 (fields[G_DBUS_MESSAGE_HEADER_FIELD_REPLY_SERIAL]) == 0)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_PROTOCOL, "The REPLY_SERIAL header field is 0");
      return FALSE;
    }
  if (fields[G_DBUS_MESSAGE_HEADER_FIELD_DESTINATION] != NULL)
    {
      string = g_variant_get_string (fields[G_DBUS_MESSAGE_HEADER_FIELD_DESTINATION], NULL);
      if (!g_dbus_is_name (string))
        return refuse_name (G_DBUS_MESSAGE_HEADER_FIELD_DESTINATION, string, "bus name", error);
    }
  if (fields[G_DBUS_MESSAGE_HEADER_FIELD_SENDER] != NULL)
    {
      string = g_variant_get_string (fields[G_DBUS_MESSAGE_HEADER_FIELD_SENDER], NULL);
      if (!g_dbus_is_name (string))
        return refuse_name (G_DBUS_MESSAGE_HEADER_FIELD_SENDER, string, "bus name", error);
    }

  if (type == G_DBUS_MESSAGE_TYPE_METHOD_CALL || type == G_DBUS_MESSAGE_TYPE_SIGNAL)
    {
      if (strcmp (path, LOCAL_PATH) == 0)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                       "The %s message uses the reserved path " LOCAL_PATH, known_types[type].name);
          return FALSE;
        }
      if (g_strcmp0 (interface, LOCAL_INTERFACE) == 0)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL,
                       "The %s message uses the reserved interface " LOCAL_INTERFACE, known_types[type].name);
          return FALSE;
        }
    }

  return validate_body (message,
                        fields[G_DBUS_MESSAGE_HEADER_FIELD_SIGNATURE],
                        fields[G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS],
                        error);
}
