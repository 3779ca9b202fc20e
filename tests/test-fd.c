/* test-fd.c: fds through calls and replies, the per-message limit, peers
 * without fd passing, OpenFile's root and Digest. Every test counts the
 * process's open fds (client and in-thread server alike) before and after. */
#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>

#include "peer-test-util.h"
#include "services.h"

#define BENCH_PATH   "/org/libpeer/Bench"
#define BENCH_IFACE  "org.libpeer.Bench1"
#define HELPER_PATH  "/org/libpeer/Helper"
#define HELPER_IFACE "org.libpeer.Helper1"

typedef struct {
  char *base;                   /* the test's directory */
  char *root;                   /* base/root: the server's files root */
  PeerTestServer *server;
  PeerClient *client;
  guint baseline_fds;
} Fixture;

static void
write_file (const char *path,
            const char *contents)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_set_contents (path, contents, -1, &error));
  g_assert_no_error (error);
}

typedef struct {
  PeerTestServer *server;
  const char *root;
  guint max_fds;
} ServerSetting;

static gboolean
set_files_root_in_server (gpointer data)
{
  ServerSetting *setting = data;
  g_autoptr(GError) error = NULL;

  g_assert_true (peer_helper_service_set_files_root (setting->server->server, setting->root, &error));
  g_assert_no_error (error);
  return G_SOURCE_REMOVE;
}

static gboolean
set_max_fds_in_server (gpointer data)
{
  ServerSetting *setting = data;

  peer_server_set_max_fds_per_message (setting->server->server, setting->max_fds);
  return G_SOURCE_REMOVE;
}

static void
set_max_fds (Fixture *f,
             guint    max_fds)
{
  ServerSetting setting = { f->server, NULL, max_fds };

  peer_test_server_invoke (f->server, set_max_fds_in_server, &setting);
}

static void
ping (PeerClient *client)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;

  reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "Ping", NULL, G_VARIANT_TYPE_UNIT,
                                 -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (reply);
}

static void
assert_no_fd_leak (Fixture *f)
{
  peer_test_assert_no_fd_leak (f->client, f->baseline_fds);
}

static void
setup (Fixture       *f,
       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;
  ServerSetting setting;

  f->base = peer_test_make_dir ();
  f->root = g_build_filename (f->base, "root", NULL);
  g_assert_cmpint (g_mkdir (f->root, 0700), ==, 0);
  path = g_build_filename (f->root, "sub", NULL);
  g_assert_cmpint (g_mkdir (path, 0700), ==, 0);
  g_clear_pointer (&path, g_free);

  path = g_build_filename (f->root, "hello.txt", NULL);
  write_file (path, "hello from the root\n");
  g_clear_pointer (&path, g_free);
  path = g_build_filename (f->root, "sub", "inner.txt", NULL);
  write_file (path, "inner\n");
  g_clear_pointer (&path, g_free);
  path = g_build_filename (f->base, "outside.txt", NULL);
  write_file (path, "secret outside the root\n");
  g_clear_pointer (&path, g_free);
  path = g_build_filename (f->root, "escape", NULL);
  g_assert_cmpint (symlink ("/etc/passwd", path), ==, 0);
  g_clear_pointer (&path, g_free);
  path = g_build_filename (f->root, "up", NULL);
  g_assert_cmpint (symlink ("../outside.txt", path), ==, 0);
  g_clear_pointer (&path, g_free);
  path = g_build_filename (f->root, "sub", "link-in", NULL);
  g_assert_cmpint (symlink ("../hello.txt", path), ==, 0);
  g_clear_pointer (&path, g_free);
  path = g_build_filename (f->root, "fifo", NULL);
  g_assert_cmpint (mkfifo (path, 0600), ==, 0);

  f->server = peer_test_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_no_error (error);
  setting = (ServerSetting) { f->server, f->root, 0 };
  peer_test_server_invoke (f->server, set_files_root_in_server, &setting);

  f->client = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (peer_client_can_pass_fds (f->client));
  ping (f->client);
  peer_test_ping_async (f->client);       /* what an async call allocates once */
  f->baseline_fds = peer_test_count_open_fds ();
}

static void
teardown (Fixture       *f,
          gconstpointer  data)
{
  if (!g_test_failed ())
    assert_no_fd_leak (f);
  peer_client_close (f->client);
  g_clear_object (&f->client);
  peer_test_server_free (f->server);
  peer_test_remove_dir (f->base);
  g_free (f->root);
  g_free (f->base);
}

/* --- EchoFds -------------------------------------------------------------- */

/* Sends @n fds through EchoFds and returns what came back. */
static GUnixFDList *
echo_fds (PeerClient *client,
          const int  *fds,
          guint       n,
          GError    **error)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_auto(GVariantBuilder) handles = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("ah"));
  g_autoptr(GVariant) out_handles = NULL;

  for (guint i = 0; i < n; i++)
    g_variant_builder_add (&handles, "h", g_unix_fd_list_append (list, fds[i], NULL));
  reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "EchoFds",
                                 g_variant_new ("(ah)", &handles), G_VARIANT_TYPE ("(ah)"),
                                 -1, list, &out, NULL, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(@ah)", &out_handles);
  g_assert_cmpuint (g_variant_n_children (out_handles), ==, n);
  g_assert_cmpint (out != NULL ? g_unix_fd_list_get_length (out) : 0, ==, n);
  for (guint i = 0; i < n; i++)
    {
      gint32 h;
      g_variant_get_child (out_handles, i, "h", &h);
      g_assert_cmpint (h, ==, i);
    }
  return g_steal_pointer (&out);
}

static void
assert_same_file (int a,
                  int b)
{
  struct stat sa, sb;

  g_assert_cmpint (fstat (a, &sa), ==, 0);
  g_assert_cmpint (fstat (b, &sb), ==, 0);
  g_assert_cmpuint (sa.st_dev, ==, sb.st_dev);
  g_assert_cmpuint (sa.st_ino, ==, sb.st_ino);
  g_assert_true (a != b);
}

static void
test_echo_regular_file (Fixture       *f,
                        gconstpointer  data)
{
  g_autofree char *path = g_build_filename (f->root, "hello.txt", NULL);
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GError) error = NULL;
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  char buf[6] = { 0 };

  g_assert_cmpint (fd, >=, 0);
  out = echo_fds (f->client, &fd, 1, &error);
  g_assert_no_error (error);
  assert_same_file (fd, g_unix_fd_list_peek_fds (out, NULL)[0]);
  /* The same open file description: the offset is shared. */
  g_assert_cmpint (read (fd, buf, 5), ==, 5);
  g_assert_cmpint (lseek (g_unix_fd_list_peek_fds (out, NULL)[0], 0, SEEK_CUR), ==, 5);
  close (fd);
}

static void
test_echo_memfd (Fixture       *f,
                 gconstpointer  data)
{
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GError) error = NULL;
  int fd = memfd_create ("test", MFD_CLOEXEC);
  char buf[8] = { 0 };

  g_assert_cmpint (write (fd, "memfd!", 6), ==, 6);
  out = echo_fds (f->client, &fd, 1, &error);
  g_assert_no_error (error);
  assert_same_file (fd, g_unix_fd_list_peek_fds (out, NULL)[0]);
  g_assert_cmpint (pread (g_unix_fd_list_peek_fds (out, NULL)[0], buf, sizeof buf, 0), ==, 6);
  g_assert_cmpstr (buf, ==, "memfd!");
  close (fd);
}

static void
test_echo_pipe (Fixture       *f,
                gconstpointer  data)
{
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GError) error = NULL;
  int p[2];
  char buf[8] = { 0 };

  g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
  out = echo_fds (f->client, &p[0], 1, &error);
  g_assert_no_error (error);
  assert_same_file (p[0], g_unix_fd_list_peek_fds (out, NULL)[0]);
  g_assert_cmpint (write (p[1], "piped", 5), ==, 5);
  g_assert_cmpint (read (g_unix_fd_list_peek_fds (out, NULL)[0], buf, sizeof buf), ==, 5);
  g_assert_cmpstr (buf, ==, "piped");
  close (p[0]);
  close (p[1]);
}

static void
test_echo_socket (Fixture       *f,
                  gconstpointer  data)
{
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GError) error = NULL;
  int sv[2];
  char buf[8] = { 0 };

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  out = echo_fds (f->client, &sv[0], 1, &error);
  g_assert_no_error (error);
  assert_same_file (sv[0], g_unix_fd_list_peek_fds (out, NULL)[0]);
  g_assert_cmpint (write (sv[1], "socket", 6), ==, 6);
  g_assert_cmpint (read (g_unix_fd_list_peek_fds (out, NULL)[0], buf, sizeof buf), ==, 6);
  g_assert_cmpstr (buf, ==, "socket");
  close (sv[0]);
  close (sv[1]);
}

static void
on_async_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  GAsyncResult **out = user_data;

  *out = g_object_ref (result);
}

static void
test_echo_several_async (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *path = g_build_filename (f->root, "hello.txt", NULL);
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  int fds[4], p[2], sv[2];

  g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  fds[0] = open (path, O_RDONLY | O_CLOEXEC);
  fds[1] = memfd_create ("test", MFD_CLOEXEC);
  fds[2] = p[1];
  fds[3] = sv[0];
  for (guint i = 0; i < 4; i++)
    g_unix_fd_list_append (list, fds[i], NULL);

  peer_client_call (f->client, BENCH_PATH, BENCH_IFACE, "EchoFds",
                    g_variant_new_parsed ("([handle 0, 1, 2, 3],)"), G_VARIANT_TYPE ("(ah)"), -1,
                    list, NULL, on_async_done, &result);
  /* The list is ours again as soon as the call is made. */
  g_clear_object (&list);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  reply = peer_client_call_finish (f->client, &out, result, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_unix_fd_list_get_length (out), ==, 4);
  for (guint i = 0; i < 4; i++)
    assert_same_file (fds[i], g_unix_fd_list_peek_fds (out, NULL)[i]);

  for (guint i = 0; i < 4; i++)
    close (fds[i]);
  close (p[0]);
  close (sv[1]);
}

/* Negative twin: handles that index no fd of the message. */
static void
test_echo_bad_handle (Fixture       *f,
                      gconstpointer  data)
{
  static const char *bad[] = { "([handle 1],)", "([handle -1],)", "([handle 0, 7],)" };
  int fd = memfd_create ("test", MFD_CLOEXEC);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GUnixFDList) list = g_unix_fd_list_new_from_array ((int[]) { dup (fd) }, 1);
      g_autoptr(GVariant) reply = NULL;
      g_autoptr(GError) error = NULL;

      reply = peer_client_call_sync (f->client, BENCH_PATH, BENCH_IFACE, "EchoFds",
                                     g_variant_new_parsed (bad[i]), G_VARIANT_TYPE ("(ah)"), -1,
                                     list, NULL, NULL, &error);
      g_assert_null (reply);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
    }
  /* And with no fds at all. */
  {
    g_autoptr(GVariant) reply = NULL;
    g_autoptr(GError) error = NULL;

    reply = peer_client_call_sync (f->client, BENCH_PATH, BENCH_IFACE, "EchoFds",
                                   g_variant_new_parsed ("([handle 0],)"), G_VARIANT_TYPE ("(ah)"), -1,
                                   NULL, NULL, NULL, &error);
    g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  }
  close (fd);
}

/* --- the per-message limit ------------------------------------------------ */

static GError *
echo_n_fds (Fixture *f,
            guint    n)
{
  g_autofree int *fds = g_new (int, n);
  g_autoptr(GUnixFDList) out = NULL;
  GError *error = NULL;

  for (guint i = 0; i < n; i++)
    fds[i] = memfd_create ("limit", MFD_CLOEXEC);
  out = echo_fds (f->client, fds, n, &error);
  for (guint i = 0; i < n; i++)
    {
      if (out != NULL)
        assert_same_file (fds[i], g_unix_fd_list_peek_fds (out, NULL)[i]);
      close (fds[i]);
    }
  return error;
}

static void
test_limit_default (Fixture       *f,
                    gconstpointer  data)
{
  g_autoptr(GError) at_limit = NULL;
  g_autoptr(GError) over = NULL;

  at_limit = echo_n_fds (f, PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE);
  g_assert_no_error (at_limit);
  assert_no_fd_leak (f);

  over = echo_n_fds (f, PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE + 1);
  g_assert_error (over, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_nonnull (strstr (over->message, "17"));
  /* Every fd of the refused message is closed, and the peer stays. */
  assert_no_fd_leak (f);
  g_assert_false (peer_client_is_closed (f->client));
}

static void
test_limit_custom (Fixture       *f,
                   gconstpointer  data)
{
  g_autoptr(GError) two = NULL;
  g_autoptr(GError) three = NULL;
  g_autoptr(GError) zero = NULL;
  g_autoptr(GError) one = NULL;

  set_max_fds (f, 2);
  two = echo_n_fds (f, 2);
  g_assert_no_error (two);
  three = echo_n_fds (f, 3);
  g_assert_error (three, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  assert_no_fd_leak (f);

  set_max_fds (f, 0);
  zero = echo_n_fds (f, 0);
  g_assert_no_error (zero);
  one = echo_n_fds (f, 1);
  g_assert_error (one, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  set_max_fds (f, PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE);
}

/* --- peers without fd passing --------------------------------------------- */

/* A peer that cannot pass fds: the SASL handshake done by hand without
 * NEGOTIATE_UNIX_FD (as libdbus does over TCP), then GDBus on the socket
 * without authentication flags, so its capabilities stay empty. */
static PeerClient *
connect_without_fd_passing (const char *address)
{
  g_autoptr(GSocketClient) socket_client = g_socket_client_new ();
  g_autoptr(GSocketAddress) socket_address = NULL;
  g_autoptr(GSocketConnection) stream = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) line = g_string_new (NULL);
  g_autofree char *hello = NULL;
  g_autofree char *uid_hex = NULL;
  GSocket *sock;
  char c;

  g_assert_true (g_str_has_prefix (address, "unix:path="));
  socket_address = g_unix_socket_address_new (address + strlen ("unix:path="));
  stream = g_socket_client_connect (socket_client, G_SOCKET_CONNECTABLE (socket_address), NULL, &error);
  g_assert_no_error (error);
  sock = g_socket_connection_get_socket (stream);

  {
    g_autofree char *uid = g_strdup_printf ("%u", (guint) getuid ());
    GString *hex = g_string_new (NULL);
    for (const char *p = uid; *p != '\0'; p++)
      g_string_append_printf (hex, "%02x", (guint) *p);
    uid_hex = g_string_free (hex, FALSE);
  }
  hello = g_strdup_printf ("%cAUTH EXTERNAL %s\r\n", '\0', uid_hex);
  g_assert_cmpint (g_socket_send (sock, hello, 1 + strlen (hello + 1), NULL, &error), >, 0);
  g_assert_no_error (error);
  /* One byte at a time: nothing after the server's line may be eaten. */
  while (g_socket_receive (sock, &c, 1, NULL, &error) == 1 && c != '\n')
    g_string_append_c (line, c);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (line->str, "OK "));
  g_assert_cmpint (g_socket_send (sock, "BEGIN\r\n", 7, NULL, &error), ==, 7);

  connection = g_dbus_connection_new_sync (G_IO_STREAM (stream), NULL, G_DBUS_CONNECTION_FLAGS_NONE,
                                           NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (g_dbus_connection_get_capabilities (connection) & G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING);
  return peer_client_new_for_connection (connection);
}

static void
test_no_fd_passing_client_refuses (Fixture       *f,
                                   gconstpointer  data)
{
  g_autoptr(PeerClient) client = connect_without_fd_passing (f->server->address);
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) async_error = NULL;
  int fd = memfd_create ("test", MFD_CLOEXEC);

  g_assert_false (peer_client_can_pass_fds (client));
  g_unix_fd_list_append (list, fd, NULL);
  close (fd);

  reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "EchoFds",
                                 g_variant_new_parsed ("([handle 0],)"), NULL, -1,
                                 list, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED);

  peer_client_call (client, BENCH_PATH, BENCH_IFACE, "EchoFds", g_variant_new_parsed ("([handle 0],)"),
                    NULL, -1, list, NULL, on_async_done, &result);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  reply = peer_client_call_finish (client, NULL, result, &async_error);
  g_assert_error (async_error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED);

  /* Twin: the same connection without fds works, and is still open. */
  ping (client);
  g_assert_false (peer_client_is_closed (client));
  g_clear_object (&list);
  peer_client_close (client);
}

static void
test_no_fd_passing_reply_refused (Fixture       *f,
                                  gconstpointer  data)
{
  g_autoptr(PeerClient) client = connect_without_fd_passing (f->server->address);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) quick = NULL;
  g_autoptr(GError) error = NULL;

  /* A handler replying with fds to a peer that cannot take them: an error
   * reply, not a dropped connection. */
  reply = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "OpenFile",
                                 g_variant_new ("(s)", "hello.txt"), NULL, -1, NULL, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED);

  g_clear_error (&error);
  quick = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "Quick", g_variant_new ("(i)", 8),
                                 G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_false (peer_client_is_closed (client));
  peer_client_close (client);
}

/* --- OpenFile -------------------------------------------------------------- */

typedef enum { OPEN_OK, OPEN_DENIED, OPEN_NOT_FOUND } OpenOutcome;

typedef struct {
  const char *path;             /* "@" stands for the root, "^" for the base */
  OpenOutcome outcome;          /* with openat2 */
  OpenOutcome fallback;         /* component by component */
  const char *contents;
} OpenCase;

static const OpenCase open_cases[] = {
  { "hello.txt", OPEN_OK, OPEN_OK, "hello from the root\n" },
  { "sub/inner.txt", OPEN_OK, OPEN_OK, "inner\n" },
  { "./sub//inner.txt", OPEN_OK, OPEN_OK, "inner\n" },
  { "@/hello.txt", OPEN_OK, OPEN_OK, "hello from the root\n" },
  /* A link that stays inside: followed by openat2, refused by the fallback. */
  { "sub/link-in", OPEN_OK, OPEN_DENIED, "hello from the root\n" },
  { "../outside.txt", OPEN_DENIED, OPEN_DENIED, NULL },
  { "sub/../../outside.txt", OPEN_DENIED, OPEN_DENIED, NULL },
  { "/etc/passwd", OPEN_DENIED, OPEN_DENIED, NULL },
  { "^/outside.txt", OPEN_DENIED, OPEN_DENIED, NULL },
  { "escape", OPEN_DENIED, OPEN_DENIED, NULL },
  { "up", OPEN_DENIED, OPEN_DENIED, NULL },
  { "fifo", OPEN_DENIED, OPEN_DENIED, NULL },
  { "sub", OPEN_DENIED, OPEN_DENIED, NULL },
  { "@", OPEN_DENIED, OPEN_DENIED, NULL },
  { "missing.txt", OPEN_NOT_FOUND, OPEN_NOT_FOUND, NULL },
};

static char *
expand_path (Fixture    *f,
             const char *path)
{
  if (path[0] == '@')
    return g_strconcat (f->root, path + 1, NULL);
  if (path[0] == '^')
    return g_strconcat (f->base, path + 1, NULL);
  return g_strdup (path);
}

static void
assert_fd_contents (int         fd,
                    const char *contents)
{
  char buf[256] = { 0 };

  g_assert_cmpint (read (fd, buf, sizeof buf - 1), ==, strlen (contents));
  g_assert_cmpstr (buf, ==, contents);
}

static void
assert_open_outcome (const GError *error,
                     OpenOutcome   outcome,
                     const char   *path)
{
  g_test_message ("%s: %s", path, error ? error->message : "opened");
  if (outcome == OPEN_OK)
    g_assert_no_error (error);
  else if (outcome == OPEN_DENIED)
    g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);
  else
    g_assert_error (error, G_DBUS_ERROR, G_DBUS_ERROR_FILE_NOT_FOUND);
}

/* Whether this kernel (or valgrind, which does not know the call) lets the
 * server use openat2(); without it the server takes the fallback path. */
static gboolean
have_openat2 (void)
{
  struct open_how how = { .flags = O_PATH | O_CLOEXEC };
  long fd = syscall (SYS_openat2, AT_FDCWD, "/", &how, sizeof how);

  if (fd < 0)
    return FALSE;
  close ((int) fd);
  return TRUE;
}

static void
test_open_file (Fixture       *f,
                gconstpointer  data)
{
  gboolean openat2 = have_openat2 ();

  if (!openat2)
    g_test_message ("no openat2() here: expecting the fallback's answers");
  for (guint i = 0; i < G_N_ELEMENTS (open_cases); i++)
    {
      const OpenCase *c0 = &open_cases[i];
      OpenCase adjusted = *c0;
      const OpenCase *c = &adjusted;

      if (!openat2)
        adjusted.outcome = c0->fallback;
      g_autofree char *path = expand_path (f, c->path);
      g_autoptr(GUnixFDList) out = NULL;
      g_autoptr(GVariant) reply = NULL;
      g_autoptr(GError) error = NULL;

      reply = peer_client_call_sync (f->client, HELPER_PATH, HELPER_IFACE, "OpenFile",
                                     g_variant_new ("(s)", path), G_VARIANT_TYPE ("(h)"), -1,
                                     NULL, &out, NULL, &error);
      assert_open_outcome (error, c->outcome, path);
      if (c->outcome == OPEN_OK)
        {
          int fd = g_unix_fd_list_peek_fds (out, NULL)[0];
          g_assert_cmpint (fcntl (fd, F_GETFL) & O_ACCMODE, ==, O_RDONLY);
          assert_fd_contents (fd, c->contents);
        }
    }
}

static void
test_open_file_fallback (Fixture       *f,
                         gconstpointer  data)
{
  g_autofree char *root_path = realpath (f->root, NULL);
  int root_fd = open (f->root, O_PATH | O_DIRECTORY | O_CLOEXEC);

  for (guint i = 0; i < G_N_ELEMENTS (open_cases); i++)
    {
      const OpenCase *c = &open_cases[i];
      g_autofree char *path = expand_path (f, c->path);
      g_autoptr(GError) error = NULL;
      int fd = peer_helper_open_beneath (root_fd, root_path, path, FALSE, &error);

      assert_open_outcome (error, c->fallback, path);
      g_assert_cmpint (fd >= 0, ==, c->fallback == OPEN_OK);
      if (fd >= 0)
        {
          assert_fd_contents (fd, c->contents);
          close (fd);
        }
    }
  close (root_fd);
}

static void
test_open_file_without_root (Fixture       *f,
                             gconstpointer  data)
{
  ServerSetting setting = { f->server, NULL, 0 };
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;

  peer_test_server_invoke (f->server, set_files_root_in_server, &setting);
  reply = peer_client_call_sync (f->client, HELPER_PATH, HELPER_IFACE, "OpenFile",
                                 g_variant_new ("(s)", "hello.txt"), NULL, -1, NULL, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);

  /* The root holds an fd of the server's, counted in the baseline. */
  setting.root = f->root;
  peer_test_server_invoke (f->server, set_files_root_in_server, &setting);
}

/* --- Digest ----------------------------------------------------------------- */

static char *
digest_fd (PeerClient *client,
           int         fd,
           const char *algorithm,
           GError    **error)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GVariant) reply = NULL;
  char *hex;

  g_unix_fd_list_append (list, fd, NULL);
  reply = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "Digest",
                                 g_variant_new ("(hs)", 0, algorithm), G_VARIANT_TYPE ("(s)"),
                                 G_MAXINT, list, NULL, NULL, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(s)", &hex);
  return hex;
}

static void
test_digest_file_and_memfd (Fixture       *f,
                            gconstpointer  data)
{
  static const struct { const char *name; GChecksumType type; } algorithms[] = {
    { "md5", G_CHECKSUM_MD5 }, { "sha1", G_CHECKSUM_SHA1 }, { "sha256", G_CHECKSUM_SHA256 },
    { "sha384", G_CHECKSUM_SHA384 }, { "sha512", G_CHECKSUM_SHA512 },
  };
  g_autofree char *path = g_build_filename (f->root, "hello.txt", NULL);
  const char *text = "hello from the root\n";
  int memfd = memfd_create ("digest", MFD_CLOEXEC);

  g_assert_cmpint (write (memfd, text, strlen (text)), ==, strlen (text));
  for (guint i = 0; i < G_N_ELEMENTS (algorithms); i++)
    {
      g_autofree char *expected = g_compute_checksum_for_string (algorithms[i].type, text, -1);
      g_autofree char *from_file = NULL;
      g_autofree char *from_memfd = NULL;
      g_autoptr(GError) error = NULL;
      int fd = open (path, O_RDONLY | O_CLOEXEC);

      from_file = digest_fd (f->client, fd, algorithms[i].name, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (from_file, ==, expected);
      close (fd);

      /* The server reads from the shared offset: rewind first. */
      lseek (memfd, 0, SEEK_SET);
      from_memfd = digest_fd (f->client, memfd, algorithms[i].name, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (from_memfd, ==, expected);
    }
  close (memfd);
}

typedef struct {
  int fd;
  gsize size;
  GChecksum *checksum;
} PipeWriter;

static gpointer
pipe_writer_thread (gpointer data)
{
  PipeWriter *w = data;
  g_autofree guint8 *chunk = g_malloc (64 * 1024);
  gsize written = 0;

  while (written < w->size)
    {
      gsize n = MIN (w->size - written, 64 * 1024);

      for (gsize i = 0; i < n; i++)
        chunk[i] = (guint8) ((written + i) * 7 + ((written + i) >> 12));
      g_checksum_update (w->checksum, chunk, n);
      for (gsize off = 0; off < n;)
        {
          ssize_t r = write (w->fd, chunk + off, n - off);
          g_assert_cmpint (r, >, 0);
          off += r;
        }
      written += n;
    }
  close (w->fd);
  return NULL;
}

static void
test_digest_pipe_100mib (Fixture       *f,
                         gconstpointer  data)
{
  PipeWriter writer = { -1, 100 * 1024 * 1024, g_checksum_new (G_CHECKSUM_SHA256) };
  g_autofree char *hex = NULL;
  g_autoptr(GError) error = NULL;
  GThread *thread;
  int p[2];

  g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
  writer.fd = p[1];
  thread = g_thread_new ("pipe-writer", pipe_writer_thread, &writer);
  hex = digest_fd (f->client, p[0], "sha256", &error);
  close (p[0]);
  g_thread_join (thread);
  g_assert_no_error (error);
  g_assert_cmpstr (hex, ==, g_checksum_get_string (writer.checksum));
  g_checksum_free (writer.checksum);
}

/* Negative twins: a name that is no algorithm, an fd that is not there. */
static void
test_digest_refused (Fixture       *f,
                     gconstpointer  data)
{
  g_autofree char *hex = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) handle_error = NULL;
  int fd = memfd_create ("digest", MFD_CLOEXEC);

  hex = digest_fd (f->client, fd, "sha3-1024", &error);
  g_assert_null (hex);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_assert_nonnull (strstr (error->message, "sha3-1024"));
  close (fd);

  reply = peer_client_call_sync (f->client, HELPER_PATH, HELPER_IFACE, "Digest",
                                 g_variant_new ("(hs)", 3, "sha256"), NULL, -1, NULL, NULL, NULL,
                                 &handle_error);
  g_assert_error (handle_error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
}

static void
test_digest_peer_vanishes (Fixture       *f,
                           gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) call_error = NULL;
  struct pollfd pfd;
  int p[2];

  g_assert_no_error (error);
  g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
  g_unix_fd_list_append (list, p[0], NULL);
  close (p[0]);
  g_assert_cmpint (write (p[1], "half a stream", 13), ==, 13);
  peer_client_call (client, HELPER_PATH, HELPER_IFACE, "Digest", g_variant_new ("(hs)", 0, "sha256"),
                    G_VARIANT_TYPE ("(s)"), G_MAXINT, list, NULL, on_async_done, &result);
  g_clear_object (&list);
  /* The server has the read end once the call went through; a Ping on
   * the same connection is answered after Digest was dispatched. */
  ping (client);
  peer_client_close (client);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  reply = peer_client_call_finish (client, NULL, result, &call_error);
  g_assert_error (call_error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
  g_clear_object (&result);

  /* The server cancels the digest: every copy of the read end closes,
   * which the write end sees as POLLERR. An event, not a sleep. */
  pfd = (struct pollfd) { p[1], 0, 0 };
  g_assert_cmpint (poll (&pfd, 1, 10000), ==, 1);
  g_assert_true (pfd.revents & POLLERR);
  close (p[1]);
}

/* --- Digest: each peer's share ------------------------------------------------ */

/* peer-server's defaults. */
#define DIGEST_MAX_PER_PEER 4
#define SHA256_OF_NOTHING "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Starts a Digest of a fresh pipe whose write end is returned, never
 * written to: the digest runs until the write end closes. */
static int
start_silent_digest (PeerClient    *client,
                     GAsyncResult **result)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  int p[2];

  g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
  g_unix_fd_list_append (list, p[0], NULL);
  close (p[0]);
  peer_client_call (client, HELPER_PATH, HELPER_IFACE, "Digest", g_variant_new ("(hs)", 0, "sha256"),
                    G_VARIANT_TYPE ("(s)"), G_MAXINT, list, NULL, on_async_done, result);
  return p[1];
}

/* A Digest of a silent pipe that is expected to be refused at once: a
 * timeout, not a hang, if it runs instead. */
static void
assert_digest_refused (PeerClient *client,
                       const char *fragment)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  int p[2];

  g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
  g_unix_fd_list_append (list, p[0], NULL);
  close (p[0]);
  reply = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "Digest",
                                 g_variant_new ("(hs)", 0, "sha256"), G_VARIANT_TYPE ("(s)"),
                                 10000, list, NULL, NULL, &error);
  close (p[1]);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  if (strstr (error->message, fragment) == NULL)
    g_error ("'%s' does not say '%s'", error->message, fragment);
}

/* Ends a silent digest by closing its writer; it hashes nothing. */
static void
end_silent_digest (PeerClient    *client,
                   int            writer,
                   GAsyncResult **result)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  const char *hex;

  close (writer);
  PEER_TEST_WAIT_UNTIL (*result != NULL);
  reply = peer_client_call_finish (client, NULL, *result, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &hex);
  g_assert_cmpstr (hex, ==, SHA256_OF_NOTHING);
  g_clear_object (result);
}

static gboolean
noop_in_server (gpointer data)
{
  return G_SOURCE_REMOVE;
}

/* @client is closed with digests in flight: each call ends with the
 * connection, and the server closes each read end (the writer sees
 * POLLERR, an event) and, in the same step, gives the share back. */
static void
assert_digests_end_with_peer (PeerTestServer *server,
                              PeerClient     *client,
                              int            *writers,
                              GAsyncResult  **results,
                              guint           n)
{
  peer_client_close (client);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(GVariant) reply = NULL;
      g_autoptr(GError) error = NULL;
      struct pollfd pfd = { writers[i], 0, 0 };

      PEER_TEST_WAIT_UNTIL (results[i] != NULL);
      reply = peer_client_call_finish (client, NULL, results[i], &error);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_DISCONNECTED);
      g_clear_object (&results[i]);
      g_assert_cmpint (poll (&pfd, 1, 10000), ==, 1);
      g_assert_true (pfd.revents & POLLERR);
      close (writers[i]);
    }
  /* The step that closed the last fd is over once this has run. */
  peer_test_server_invoke (server, noop_in_server, NULL);
}

/* One peer holds all the digests it may, on pipes it never writes to: its
 * next one is refused, while another peer's runs. A digest that ends gives
 * its share back; so does a peer that goes with its digests running. */
static void
test_digest_share_per_peer (Fixture       *f,
                            gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) hog = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_autoptr(PeerClient) newcomer = NULL;
  GAsyncResult *results[DIGEST_MAX_PER_PEER] = { NULL };
  int writers[DIGEST_MAX_PER_PEER];
  g_autofree char *hex = NULL;
  g_autofree char *expected = g_compute_checksum_for_string (G_CHECKSUM_SHA256, "other peer", -1);
  int memfd = memfd_create ("digest", MFD_CLOEXEC);

  g_assert_no_error (error);
  /* N run; N+1 is refused, and its message counts the N. */
  for (guint i = 0; i < DIGEST_MAX_PER_PEER; i++)
    writers[i] = start_silent_digest (hog, &results[i]);
  assert_digest_refused (hog, "has 4 running digests already; the limit per peer is 4");

  /* The other peer is unharmed. */
  g_assert_cmpint (write (memfd, "other peer", 10), ==, 10);
  lseek (memfd, 0, SEEK_SET);
  hex = digest_fd (f->client, memfd, "sha256", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (hex, ==, expected);
  close (memfd);

  /* A digest that ends gives its share back: one more runs, not two. */
  end_silent_digest (hog, writers[0], &results[0]);
  writers[0] = start_silent_digest (hog, &results[0]);
  assert_digest_refused (hog, "has 4 running digests already");

  /* Going with all four running gives all four back; a new peer gets
   * a full share. */
  assert_digests_end_with_peer (f->server, hog, writers, results, DIGEST_MAX_PER_PEER);
  newcomer = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < DIGEST_MAX_PER_PEER; i++)
    writers[i] = start_silent_digest (newcomer, &results[i]);
  assert_digest_refused (newcomer, "has 4 running digests already");
  for (guint i = 0; i < DIGEST_MAX_PER_PEER; i++)
    end_silent_digest (newcomer, writers[i], &results[i]);
  peer_client_close (newcomer);
}

typedef struct {
  PeerServer *server;
  guint max_per_peer;
  guint max_total;
} DigestLimits;

static gboolean
set_digest_limits_in_server (gpointer data)
{
  DigestLimits *limits = data;

  peer_helper_service_set_digest_limits (limits->server, limits->max_per_peer, limits->max_total);
  return G_SOURCE_REMOVE;
}

/* The server-wide cap, at N and N+1, with shares of 2 and a cap of 3: it
 * takes two peers to reach it, and a peer that goes frees its part. */
static void
test_digest_share_server_wide (Fixture       *f,
                               gconstpointer  data)
{
  DigestLimits limits = { f->server->server, 2, 3 };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) a = NULL;
  g_autoptr(PeerClient) b = NULL;
  GAsyncResult *a_results[2] = { NULL }, *b_results[2] = { NULL };
  int a_writers[2], b_writers[2];
  g_autofree char *hex = NULL;
  int memfd = memfd_create ("digest", MFD_CLOEXEC);

  peer_test_server_invoke (f->server, set_digest_limits_in_server, &limits);
  a = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_assert_no_error (error);
  b = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < 2; i++)
    a_writers[i] = start_silent_digest (a, &a_results[i]);
  assert_digest_refused (a, "has 2 running digests already; the limit per peer is 2");
  b_writers[0] = start_silent_digest (b, &b_results[0]);
  assert_digest_refused (b, "The server has 3 digests running already");
  hex = digest_fd (f->client, memfd, "sha256", &error);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_clear_error (&error);

  assert_digests_end_with_peer (f->server, a, a_writers, a_results, 2);
  b_writers[1] = start_silent_digest (b, &b_results[1]);
  assert_digest_refused (b, "has 2 running digests already");
  hex = digest_fd (f->client, memfd, "sha256", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (hex, ==, SHA256_OF_NOTHING);
  close (memfd);
  for (guint i = 0; i < 2; i++)
    end_silent_digest (b, b_writers[i], &b_results[i]);
  peer_client_close (b);
}

/* --- replies nobody waits for ------------------------------------------------ */

static void
test_reply_nobody_waits (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GCancellable) cancellable = g_cancellable_new ();
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  int fd = memfd_create ("orphan", MFD_CLOEXEC);

  g_unix_fd_list_append (list, fd, NULL);
  close (fd);
  peer_client_call (f->client, BENCH_PATH, BENCH_IFACE, "EchoFds", g_variant_new_parsed ("([handle 0],)"),
                    G_VARIANT_TYPE ("(ah)"), -1, list, cancellable, on_async_done, &result);
  g_clear_object (&list);
  g_cancellable_cancel (cancellable);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  reply = peer_client_call_finish (f->client, NULL, result, &error);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  /* The reply still comes, with an fd; nobody takes it, and it is closed
   * (assert_no_fd_leak's Ping is answered after it). */
  assert_no_fd_leak (f);

  /* Twin: a finished call whose fds the caller does not ask for. */
  {
    g_autoptr(GUnixFDList) again = g_unix_fd_list_new ();
    g_autoptr(GVariant) plain = NULL;

    fd = memfd_create ("ignored", MFD_CLOEXEC);
    g_unix_fd_list_append (again, fd, NULL);
    close (fd);
    plain = peer_client_call_sync (f->client, BENCH_PATH, BENCH_IFACE, "EchoFds",
                                   g_variant_new_parsed ("([handle 0],)"), G_VARIANT_TYPE ("(ah)"), -1,
                                   again, NULL, NULL, &error);
    g_assert_nonnull (plain);
  }
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) g_test_add ("/peer/fd/" path, Fixture, NULL, setup, func, teardown)
  ADD ("echo/regular-file", test_echo_regular_file);
  ADD ("echo/memfd", test_echo_memfd);
  ADD ("echo/pipe", test_echo_pipe);
  ADD ("echo/socket", test_echo_socket);
  ADD ("echo/several-async", test_echo_several_async);
  ADD ("echo/bad-handle", test_echo_bad_handle);
  ADD ("limit/default", test_limit_default);
  ADD ("limit/custom", test_limit_custom);
  ADD ("no-fd-passing/client-refuses", test_no_fd_passing_client_refuses);
  ADD ("no-fd-passing/reply-refused", test_no_fd_passing_reply_refused);
  ADD ("open-file/openat2", test_open_file);
  ADD ("open-file/fallback", test_open_file_fallback);
  ADD ("open-file/without-root", test_open_file_without_root);
  ADD ("digest/file-and-memfd", test_digest_file_and_memfd);
  ADD ("digest/pipe-100mib", test_digest_pipe_100mib);
  ADD ("digest/refused", test_digest_refused);
  ADD ("digest/peer-vanishes", test_digest_peer_vanishes);
  ADD ("digest/share/per-peer", test_digest_share_per_peer);
  ADD ("digest/share/server-wide", test_digest_share_server_wide);
  ADD ("reply/nobody-waits", test_reply_nobody_waits);
#undef ADD

  return g_test_run ();
}
