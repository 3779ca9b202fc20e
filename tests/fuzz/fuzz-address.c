/* fuzz-address.c: libFuzzer harness for the server address parser, the
 * first thing that reads text a user or a configuration file controls. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "peer-address-private.h"
#include "peer-error.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data,
                        size_t         size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  PeerAddress *address = NULL;
  GError *error = NULL;

  if (peer_address_parse (text, &address, &error))
    {
      g_assert_no_error (error);
      g_assert_nonnull (address);
      g_assert_nonnull (address->transport);
      if (g_str_equal (address->transport, "unix"))
        {
          g_assert_nonnull (address->value);
          g_assert_true (address->value[0] != '\0');
        }
      if (peer_address_is_private (address))
        g_assert_true (g_path_is_absolute (address->value));
      peer_address_free (address);
    }
  else
    {
      g_assert_null (address);
      g_assert_nonnull (error);
      /* Errors are one line, whatever the input. */
      g_assert_null (strchr (error->message, '\n'));
      g_error_free (error);
    }
  return 0;
}
