/* test-error.c: PEER_ERROR maps to org.libpeer.Error.* and back. */
#include "config.h"

#include <libpeer.h>

static const struct {
  PeerError code;
  const char *name;
} names[] = {
  { PEER_ERROR_FAILED, "org.libpeer.Error.Failed" },
  { PEER_ERROR_INVALID_ARGS, "org.libpeer.Error.InvalidArgs" },
  { PEER_ERROR_PERMISSION_DENIED, "org.libpeer.Error.PermissionDenied" },
  { PEER_ERROR_LIMIT_EXCEEDED, "org.libpeer.Error.LimitExceeded" },
  { PEER_ERROR_NOT_SUPPORTED, "org.libpeer.Error.NotSupported" },
  { PEER_ERROR_UNSAFE_ADDRESS, "org.libpeer.Error.UnsafeAddress" },
  { PEER_ERROR_ADDRESS_IN_USE, "org.libpeer.Error.AddressInUse" },
  { PEER_ERROR_DISCONNECTED, "org.libpeer.Error.Disconnected" },
  { PEER_ERROR_TIMED_OUT, "org.libpeer.Error.TimedOut" },
  { PEER_ERROR_NO_REPLY, "org.libpeer.Error.NoReply" },
  { PEER_ERROR_PROTOCOL, "org.libpeer.Error.Protocol" },
};

static void
test_encode (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(GError) error = g_error_new (PEER_ERROR, names[i].code, "message %u", i);
      g_autofree char *name = g_dbus_error_encode_gerror (error);

      g_assert_cmpstr (name, ==, names[i].name);
    }
}

static void
test_decode (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(GError) error = g_dbus_error_new_for_dbus_error (names[i].name, "the message");

      g_assert_error (error, PEER_ERROR, (gint) names[i].code);
      g_assert_true (g_dbus_error_is_remote_error (error));
      g_assert_true (g_dbus_error_strip_remote_error (error));
      g_assert_cmpstr (error->message, ==, "the message");
    }
}

static void
test_decode_foreign (void)
{
  /* A name outside the domain does not become a PEER_ERROR. */
  g_autoptr(GError) error = g_dbus_error_new_for_dbus_error ("org.libpeer.Error.NoSuchThing", "x");
  g_autofree char *remote = g_dbus_error_get_remote_error (error);

  g_assert_false (error->domain == PEER_ERROR);
  g_assert_cmpstr (remote, ==, "org.libpeer.Error.NoSuchThing");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  (void) PEER_ERROR;
  g_test_add_func ("/peer/error/encode", test_encode);
  g_test_add_func ("/peer/error/decode", test_decode);
  g_test_add_func ("/peer/error/decode-foreign-name", test_decode_foreign);
  return g_test_run ();
}
