/* fuzz-blob-call.c: libFuzzer harness for the blob-wrapped calls libpeer
 * unwraps itself (peer-wire.c): a BlobCall as the server's filter gets it
 * and a wrapped reply as a client gets it, each with fds that are, or are
 * not, sealed memfds of the announced size.
 *
 * Input: one control byte, then the body's serialized GVariant. The
 * control byte picks the fds sent along (bit 0: a sealed memfd of 8
 * bytes, bit 1: an unsealed one, bit 2: a pipe) and whether the body is
 * read as a call (bit 7 clear) or as a reply. GDBus hands libpeer bodies in
 * normal form, so the body is normalised first. */
#include "config.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "peer-blob.h"
#include "peer-error.h"
#include "peer-wire-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static GUnixFDList *
make_fds (guint8 control)
{
  GUnixFDList *fds = g_unix_fd_list_new ();

  if (control & 1)
    {
      g_autoptr(PeerBlob) blob = peer_blob_new_from_data ("12345678", 8, NULL);
      g_assert_nonnull (blob);
      g_assert_cmpint (peer_blob_append_to_fd_list (blob, fds, NULL), >=, 0);
    }
  if (control & 2)
    {
      int fd = memfd_create ("fuzz-unsealed", MFD_CLOEXEC);
      g_assert_cmpint (fd, >=, 0);
      g_assert_cmpint (write (fd, "12345678", 8), ==, 8);
      g_unix_fd_list_append (fds, fd, NULL);
      close (fd);
    }
  if (control & 4)
    {
      int pipe_fds[2];
      g_assert_cmpint (pipe (pipe_fds), ==, 0);
      g_unix_fd_list_append (fds, pipe_fds[0], NULL);
      close (pipe_fds[0]);
      close (pipe_fds[1]);
    }
  return fds;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autoptr(GUnixFDList) fds = NULL;
  g_autoptr(GVariant) raw = NULL;
  g_autoptr(GVariant) body = NULL;
  g_autoptr(GError) error = NULL;
  gpointer copy;
  guint8 control;

  if (size < 1)
    return 0;
  control = data[0];
  fds = make_fds (control);
  copy = g_memdup2 (data + 1, size - 1);
  raw = g_variant_ref_sink (g_variant_new_from_data (G_VARIANT_TYPE ((control & 0x80) ? "(va(uht))" : "(ssva(uht))"),
                                                     copy, size - 1, FALSE, g_free, copy));
  body = g_variant_get_normal_form (raw);

  if (!(control & 0x80))
    {
      g_autoptr(GDBusMessage) message = g_dbus_message_new_method_call (NULL, "/org/example/Fuzz",
                                                                        "org.libpeer.Transport1", "BlobCall");
      g_autoptr(GDBusMessage) call = NULL;

      g_dbus_message_set_body (message, body);
      g_dbus_message_set_unix_fd_list (message, fds);
      call = _peer_wire_unwrap_blob_call (message, NULL, &error);
      if (call == NULL)
        g_assert_nonnull (error);
      else
        {
          GVariant *args = g_dbus_message_get_body (call);
          g_autofree char *text = args != NULL ? g_variant_print (args, FALSE) : NULL;
          g_assert_no_error (error);
          g_assert_nonnull (g_dbus_message_get_member (call));
          (void) text;
        }
    }
  else
    {
      g_autoptr(GDBusMessage) request = g_dbus_message_new_method_call (NULL, "/org/example/Fuzz",
                                                                        "org.example.Fuzz", "Call");
      g_autoptr(GDBusMessage) reply = NULL;
      g_autoptr(GVariant) result = NULL;
      g_autoptr(GUnixFDList) out_fds = NULL;

      g_dbus_message_set_serial (request, 1);
      reply = g_dbus_message_new_method_reply (request);
      g_dbus_message_set_body (reply, body);
      g_dbus_message_set_unix_fd_list (reply, fds);
      result = _peer_wire_finish_blob_call (reply, NULL, &out_fds, &error);
      if (result == NULL)
        g_assert_nonnull (error);
      else
        {
          g_autofree char *text = g_variant_print (result, FALSE);
          g_assert_no_error (error);
          g_assert_true (g_variant_is_of_type (result, G_VARIANT_TYPE_TUPLE));
        }
    }
  return 0;
}
