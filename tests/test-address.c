/* test-address.c: the server address parser. */
#include "config.h"

#include "peer-address-private.h"
#include "peer-error.h"

typedef struct {
  const char *text;
  PeerAddressKind kind;
  const char *value;
  gboolean is_private;
} GoodAddress;

static const GoodAddress good_addresses[] = {
  { "unix:path=/run/user/1000/app/socket", PEER_ADDRESS_UNIX_PATH, "/run/user/1000/app/socket", TRUE },
  { "unix:path=/tmp/with%20space", PEER_ADDRESS_UNIX_PATH, "/tmp/with space", TRUE },
  { "unix:path=/tmp/s,guid=0123456789abcdef0123456789abcdef", PEER_ADDRESS_UNIX_PATH, "/tmp/s", TRUE },
  { "unix:dir=/run/app", PEER_ADDRESS_UNIX_DIR, "/run/app", TRUE },
  { "unix:abstract=libpeer", PEER_ADDRESS_UNIX_ABSTRACT, "libpeer", FALSE },
  { "unix:tmpdir=/tmp", PEER_ADDRESS_UNIX_TMPDIR, "/tmp", FALSE },
  { "tcp:host=127.0.0.1,port=4000", PEER_ADDRESS_TCP, NULL, FALSE },
  { "nonce-tcp:host=localhost,port=0", PEER_ADDRESS_NONCE_TCP, NULL, FALSE },
};

typedef struct {
  const char *text;
  PeerError code;
  const char *fragment;          /* the message names the problem */
} BadAddress;

static const BadAddress bad_addresses[] = {
  { "", PEER_ERROR_INVALID_ARGS, "expected TRANSPORT" },
  { "unix", PEER_ERROR_INVALID_ARGS, "expected TRANSPORT" },
  { ":path=/x", PEER_ERROR_INVALID_ARGS, "expected TRANSPORT" },
  { "unix:", PEER_ERROR_INVALID_ARGS, "exactly one" },
  { "unix:path", PEER_ERROR_INVALID_ARGS, "KEY=VALUE" },
  { "unix:=x", PEER_ERROR_INVALID_ARGS, "KEY=VALUE" },
  { "unix:path=", PEER_ERROR_INVALID_ARGS, "empty" },
  { "unix:path=relative/socket", PEER_ERROR_INVALID_ARGS, "absolute" },
  { "unix:path=/a,dir=/b", PEER_ERROR_INVALID_ARGS, "exactly one" },
  { "unix:path=/a,path=/b", PEER_ERROR_INVALID_ARGS, "twice" },
  { "unix:path=/a%", PEER_ERROR_INVALID_ARGS, "escape" },
  { "unix:path=/a%4", PEER_ERROR_INVALID_ARGS, "escape" },
  { "unix:path=/a%zz", PEER_ERROR_INVALID_ARGS, "escape" },
  { "unix:path=/a%00b", PEER_ERROR_INVALID_ARGS, "NUL" },
  { "unix:path=/a\tb", PEER_ERROR_INVALID_ARGS, "escaped" },
  { "unix:bogus=1", PEER_ERROR_INVALID_ARGS, "unknown key" },
  { "unix:pa th=/x", PEER_ERROR_INVALID_ARGS, "bad character" },
  { "unix:path=/a;unix:path=/b", PEER_ERROR_INVALID_ARGS, "one address" },
  { "launchd:env=X", PEER_ERROR_NOT_SUPPORTED, "launchd" },
  { "unix:path=/a%0Ab", PEER_ERROR_INVALID_ARGS, "control character" },
  { "un\nix:path=/a", PEER_ERROR_INVALID_ARGS, "bad character in transport" },
  { "unix:path=/0123456789012345678901234567890123456789012345678901234567890123456789"
    "0123456789012345678901234567890123456789", PEER_ERROR_INVALID_ARGS, "limit" },
};

static void
test_parse_good (gconstpointer data)
{
  const GoodAddress *good = data;
  g_autoptr(PeerAddress) address = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_true (peer_address_parse (good->text, &address, &error));
  g_assert_no_error (error);
  g_assert_cmpint (address->kind, ==, good->kind);
  g_assert_cmpstr (address->value, ==, good->value);
  g_assert_cmpint (peer_address_is_private (address), ==, good->is_private);
}

static void
test_parse_bad (gconstpointer data)
{
  const BadAddress *bad = data;
  PeerAddress *address = NULL;
  g_autoptr(GError) error = NULL;

  g_assert_false (peer_address_parse (bad->text, &address, &error));
  g_assert_null (address);
  g_assert_error (error, PEER_ERROR, (gint) bad->code);
  if (strstr (error->message, bad->fragment) == NULL)
    g_error ("'%s': message '%s' does not mention '%s'", bad->text, error->message, bad->fragment);
  g_assert_null (strchr (error->message, '\n'));
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  for (guint i = 0; i < G_N_ELEMENTS (good_addresses); i++)
    {
      g_autofree char *path = g_strdup_printf ("/peer/address/parse/good/%u", i);
      g_test_add_data_func (path, &good_addresses[i], test_parse_good);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad_addresses); i++)
    {
      g_autofree char *path = g_strdup_printf ("/peer/address/parse/bad/%u", i);
      g_test_add_data_func (path, &bad_addresses[i], test_parse_bad);
    }
  return g_test_run ();
}
