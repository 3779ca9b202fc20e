/* peer-error.c: the PEER_ERROR domain and its D-Bus error names. */
#include "config.h"

#include <gio/gio.h>

#include "peer-error.h"

static const GDBusErrorEntry peer_error_entries[] = {
  { PEER_ERROR_FAILED,            "org.libpeer.Error.Failed" },
  { PEER_ERROR_INVALID_ARGS,      "org.libpeer.Error.InvalidArgs" },
  { PEER_ERROR_PERMISSION_DENIED, "org.libpeer.Error.PermissionDenied" },
  { PEER_ERROR_LIMIT_EXCEEDED,    "org.libpeer.Error.LimitExceeded" },
  { PEER_ERROR_NOT_SUPPORTED,     "org.libpeer.Error.NotSupported" },
  { PEER_ERROR_UNSAFE_ADDRESS,    "org.libpeer.Error.UnsafeAddress" },
  { PEER_ERROR_ADDRESS_IN_USE,    "org.libpeer.Error.AddressInUse" },
  { PEER_ERROR_DISCONNECTED,      "org.libpeer.Error.Disconnected" },
  { PEER_ERROR_TIMED_OUT,         "org.libpeer.Error.TimedOut" },
  { PEER_ERROR_NO_REPLY,          "org.libpeer.Error.NoReply" },
  { PEER_ERROR_PROTOCOL,          "org.libpeer.Error.Protocol" },
};

/* One entry per code, in order: a new code without a name fails the build. */
G_STATIC_ASSERT (G_N_ELEMENTS (peer_error_entries) == PEER_ERROR_PROTOCOL + 1);

GQuark
peer_error_quark (void)
{
  static gsize quark = 0;

  g_dbus_error_register_error_domain ("peer-error-quark",
                                      &quark,
                                      peer_error_entries,
                                      G_N_ELEMENTS (peer_error_entries));
  return (GQuark) quark;
}
