/* fuzz-message.c: libFuzzer harness for _peer_validate_message(), on
 * messages as GDBus's worker hands them to the router's filter: a byte
 * stream cut with g_dbus_message_bytes_needed(), each message read by
 * g_dbus_message_new_from_blob() and given the fds that came with it.
 *
 * Where the validator lets a message through, the harness reads it as the
 * router and GLib's dispatch would, and asserts what the validator
 * promises: the fields its type needs are there, of their types, with
 * valid names; the body matches the signature; and GLib serialises it back to a message that passes too.
 * Where it refuses, the error is a one-line PEER_ERROR_PROTOCOL.
 *
 * Input format:
 *
 *   byte 0   bits 0-1  the number of fds (0-3) that come with every message
 *            bit 2     keep NUM_UNIX_FDS as it was on the wire; clear, the
 *                      fds are attached as GDBus's worker does, which sets
 *                      NUM_UNIX_FDS to their number (it never attaches an
 *                      empty list)
 *            bits 3-7  unused
 *   then D-Bus messages, back to back, as on a connection.
 *
 * Messages are read until fewer than 16 bytes are left, a message runs past
 * the end (or claims fewer than 16 bytes), GLib's parser refuses one (GDBus
 * would close the connection), or MAX_MESSAGES were read. Inputs over MAX_INPUT_SIZE are ignored.
 *
 * tests/fuzz/make-message-corpus.py writes the seed corpus in this format. */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <gio/gunixfdlist.h>

#include "peer-error.h"
#include "peer-validate-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define MAX_INPUT_SIZE (1024 * 1024)
#define MAX_MESSAGES   64
#define CORE_HEADER    16

/* fds are only counted and compared, never read: one list of each size,
 * shared by every message, is enough. */
static GUnixFDList *
fd_list_of (guint n_fds)
{
  static GUnixFDList *lists[4];

  if (lists[n_fds] == NULL)
    {
      lists[n_fds] = g_unix_fd_list_new ();
      for (guint i = 0; i < n_fds; i++)
        {
          int fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
          g_assert_cmpint (fd, >=, 0);
          g_assert_cmpint (g_unix_fd_list_append (lists[n_fds], fd, NULL), ==, (int) i);
          close (fd);
        }
    }
  return lists[n_fds];
}

/* What the validator promises of a message it let through. */
static void
assert_valid (GDBusMessage *message)
{
  GDBusMessageType type = g_dbus_message_get_message_type (message);
  const char *path = g_dbus_message_get_path (message);
  const char *interface = g_dbus_message_get_interface (message);
  const char *member = g_dbus_message_get_member (message);
  const char *error_name = g_dbus_message_get_error_name (message);
  const char *destination = g_dbus_message_get_destination (message);
  const char *sender = g_dbus_message_get_sender (message);
  const char *signature = g_dbus_message_get_signature (message);
  GVariant *body = g_dbus_message_get_body (message);
  GUnixFDList *fds = g_dbus_message_get_unix_fd_list (message);
  guint32 n_fds = fds != NULL ? (guint32) g_unix_fd_list_get_length (fds) : 0;

  g_assert_cmpuint (g_dbus_message_get_serial (message), !=, 0);
  g_assert_null (g_dbus_message_get_header (message, G_DBUS_MESSAGE_HEADER_FIELD_INVALID));

  /* A field present is of its type: the typed getter finds it. */
  for (guint field = G_DBUS_MESSAGE_HEADER_FIELD_PATH; field <= G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS; field++)
    {
      static const char types[] = "\0osssussgu";
      GVariant *value = g_dbus_message_get_header (message, field);

      if (value != NULL)
        g_assert_cmpint (g_variant_classify (value), ==, types[field]);
    }

  switch (type)
    {
    case G_DBUS_MESSAGE_TYPE_METHOD_CALL:
    case G_DBUS_MESSAGE_TYPE_SIGNAL:
      g_assert_nonnull (path);
      g_assert_true (g_variant_is_object_path (path));
      g_assert_cmpstr (path, !=, "/org/freedesktop/DBus/Local");
      g_assert_nonnull (member);
      if (type == G_DBUS_MESSAGE_TYPE_SIGNAL)
        g_assert_nonnull (interface);
      g_assert_cmpstr (interface, !=, "org.freedesktop.DBus.Local");
      /* What GLib's dispatch does with the path. */
      g_assert_nonnull (strrchr (path, '/'));
      break;
    case G_DBUS_MESSAGE_TYPE_ERROR:
      g_assert_nonnull (error_name);
      g_assert_cmpuint (g_dbus_message_get_reply_serial (message), !=, 0);
      {
        g_autoptr(GError) error = NULL;
        g_assert_true (g_dbus_message_to_gerror (message, &error));
        g_assert_nonnull (error);
      }
      break;
    case G_DBUS_MESSAGE_TYPE_METHOD_RETURN:
      g_assert_cmpuint (g_dbus_message_get_reply_serial (message), !=, 0);
      break;
    case G_DBUS_MESSAGE_TYPE_INVALID:
    default:
      g_assert_not_reached ();
    }
  if (interface != NULL)
    g_assert_true (g_dbus_is_interface_name (interface));
  if (member != NULL)
    g_assert_true (g_dbus_is_member_name (member));
  if (error_name != NULL)
    g_assert_true (g_dbus_is_error_name (error_name));
  if (destination != NULL)
    g_assert_true (g_dbus_is_name (destination));
  if (sender != NULL)
    g_assert_true (g_dbus_is_name (sender));

  g_assert_nonnull (signature);
  if (body == NULL)
    g_assert_cmpstr (signature, ==, "");
  else
    {
      g_autofree char *tuple = g_strdup_printf ("(%s)", signature);
      g_assert_cmpstr (g_variant_get_type_string (body), ==, tuple);
      (void) g_dbus_message_get_arg0 (message);
    }
  g_assert_cmpuint (g_dbus_message_get_num_unix_fds (message), ==, n_fds);
}

/* GLib serialises the message back, and it parses and passes again. */
static void
assert_round_trip (GDBusMessage *message)
{
  g_autoptr(GDBusMessage) again = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree guchar *blob = NULL;
  GUnixFDList *fds = g_dbus_message_get_unix_fd_list (message);
  gsize size;

  blob = g_dbus_message_to_blob (message, &size, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
  g_assert_no_error (error);
  again = g_dbus_message_new_from_blob (blob, size, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
  g_assert_no_error (error);
  if (fds != NULL)
    g_dbus_message_set_unix_fd_list (again, fds);
  g_assert_true (_peer_validate_message (again, &error));
  g_assert_no_error (error);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  guint n_fds;
  gboolean keep_wire_count;

  if (size == 0 || size > MAX_INPUT_SIZE)
    return 0;
  n_fds = data[0] & 3;
  keep_wire_count = (data[0] & 4) != 0;
  data++;
  size--;

  for (guint count = 0; count < MAX_MESSAGES && size >= CORE_HEADER; count++)
    {
      g_autoptr(GDBusMessage) message = NULL;
      g_autoptr(GError) error = NULL;
      g_autofree guchar *blob = NULL;
      gssize needed;

      /* Copied: GLib reads the core header as aligned guint32s, and its
       * parser wants a writable buffer. */
      blob = g_memdup2 (data, CORE_HEADER);
      needed = g_dbus_message_bytes_needed (blob, CORE_HEADER, &error);
      if (needed < 0)
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
          break;
        }
      g_assert_no_error (error);
      /* GLib 2.74 adds the header length in 32 bits: a length near 4 GiB
       * wraps to a total under 16 (GLib issue #3933, fixed upstream), and
       * the worker's next read then fails. */
      if ((gsize) needed < CORE_HEADER || (gsize) needed > size)
        break;
      g_free (blob);
      blob = g_memdup2 (data, needed);
      data += needed;
      size -= needed;

      message = g_dbus_message_new_from_blob (blob, needed, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
      if (message == NULL)
        {
          g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
          break;
        }
      g_assert_no_error (error);

      if (n_fds > 0)
        {
          GVariant *announced = g_dbus_message_get_header (message, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS);
          g_autoptr(GVariant) wire_count = announced != NULL ? g_variant_ref (announced) : NULL;

          g_dbus_message_set_unix_fd_list (message, fd_list_of (n_fds));
          if (keep_wire_count)
            g_dbus_message_set_header (message, G_DBUS_MESSAGE_HEADER_FIELD_NUM_UNIX_FDS, wire_count);
        }

      if (_peer_validate_message (message, &error))
        {
          g_assert_no_error (error);
          assert_valid (message);
          assert_round_trip (message);
        }
      else
        {
          g_assert_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL);
          g_assert_null (strchr (error->message, '\n'));
        }
    }
  return 0;
}
