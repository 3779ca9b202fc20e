/* test-blob.c: PeerBlob on its own, EchoBlob, and `ay` arguments that
 * travel as sealed memfds between libpeer peers (and only between them). */
#include "config.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "peer-blob-private.h"
#include "peer-test-util.h"

#define BENCH_PATH  "/org/libpeer/Bench"
#define BENCH_IFACE "org.libpeer.Bench1"

static guint8
pattern (gsize offset)
{
  return (guint8) (offset * 131 + (offset >> 10) + 7);
}

static gboolean
fill_pattern (guint8  *data,
              gsize    size,
              gpointer user_data,
              GError **error)
{
  for (gsize i = 0; i < size; i++)
    data[i] = pattern (i);
  return TRUE;
}

static void
assert_pattern (const guint8 *data,
                gsize         size)
{
  for (gsize i = 0; i < size; i++)
    if (data[i] != pattern (i))
      g_error ("byte %" G_GSIZE_FORMAT " is %u, not %u", i, data[i], pattern (i));
}

/* The sockets the program started with: between tests, no others. */
static GHashTable *sockets_at_start;

/* The fds open once an earlier test's sockets have closed. */
static guint
settled_fds (void)
{
  peer_test_wait_for_sockets_closed (sockets_at_start);
  return peer_test_count_open_fds ();
}

/* --- PeerBlob alone -------------------------------------------------------- */

static void
test_blob_sealed (void)
{
  guint fds_before = settled_fds ();
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = peer_blob_new_with_writer (100000, fill_pattern, NULL, &error);
  int fd, seals;
  gsize size;
  const guint8 *data;

  g_assert_no_error (error);
  g_assert_cmpuint (peer_blob_get_size (blob), ==, 100000);
  data = peer_blob_get_data (blob, &size);
  g_assert_cmpuint (size, ==, 100000);
  assert_pattern (data, size);

  fd = peer_blob_get_fd (blob);
  seals = fcntl (fd, F_GET_SEALS);
  g_assert_cmpint (seals & (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), ==,
                   F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
  /* What the seals mean to anyone holding the fd. */
  g_assert_cmpint (pwrite (fd, "x", 1, 0), ==, -1);
  g_assert_cmpint (errno, ==, EPERM);
  g_assert_cmpint (ftruncate (fd, 10), ==, -1);
  g_assert_cmpint (ftruncate (fd, 200000), ==, -1);
  g_assert_true (mmap (NULL, 4096, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);

  g_clear_pointer (&blob, peer_blob_unref);
  g_assert_cmpuint (peer_test_count_open_fds (), ==, fds_before);
}

static void
test_blob_from_data_and_bytes (void)
{
  guint fds_before = settled_fds ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GBytes) bytes = NULL;
  const char text[] = "a blob of text";
  PeerBlob *blob = peer_blob_new_from_data (text, sizeof text, &error);
  gconstpointer data;

  g_assert_no_error (error);
  bytes = peer_blob_get_bytes (blob);
  data = peer_blob_get_data (blob, NULL);
  /* Backed by the mapping, not a copy, and alive after the blob. */
  g_assert_true (g_bytes_get_data (bytes, NULL) == data);
  g_assert_nonnull (_peer_blob_lookup_mapping (data, sizeof text));
  peer_blob_unref (blob);           /* the lookup's reference */
  peer_blob_unref (blob);
  g_assert_cmpmem (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes), text, sizeof text);
  g_clear_pointer (&bytes, g_bytes_unref);
  g_assert_null (_peer_blob_lookup_mapping (data, sizeof text));
  g_assert_cmpuint (peer_test_count_open_fds (), ==, fds_before);
}

static void
test_blob_empty (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = peer_blob_new_from_data (NULL, 0, &error);
  g_autoptr(PeerBlob) received = NULL;
  g_autoptr(GBytes) bytes = NULL;

  g_assert_no_error (error);
  g_assert_cmpuint (peer_blob_get_size (blob), ==, 0);
  g_assert_null (peer_blob_get_data (blob, NULL));
  bytes = peer_blob_get_bytes (blob);
  g_assert_cmpuint (g_bytes_get_size (bytes), ==, 0);
  received = peer_blob_new_take_fd (dup (peer_blob_get_fd (blob)), 0, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (peer_blob_get_size (received), ==, 0);
}

static gboolean
failing_writer (guint8  *data,
                gsize    size,
                gpointer user_data,
                GError **error)
{
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "out of ideas");
  return FALSE;
}

static void
test_blob_writer_fails (void)
{
  guint fds_before = settled_fds ();
  g_autoptr(GError) error = NULL;
  PeerBlob *blob = peer_blob_new_with_writer (4096, failing_writer, NULL, &error);

  g_assert_null (blob);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_cmpuint (peer_test_count_open_fds (), ==, fds_before);
}

/* A receiver takes only a memfd sealed against writing, growing and
 * shrinking, of the announced size; whatever it refuses it closes. */
static void
test_blob_receive_checks (void)
{
  guint fds_before = settled_fds ();
  g_autoptr(GError) good_error = NULL;
  g_autoptr(PeerBlob) sealed = peer_blob_new_with_writer (8192, fill_pattern, NULL, &good_error);
  g_autoptr(PeerBlob) received = NULL;
  g_autofree char *dir = peer_test_make_dir ();
  g_autofree char *path = g_build_filename (dir, "file", NULL);
  struct { const char *what; int fd; gssize size; } bad[5];
  int unsealed, partly, file, p[2];

  g_assert_no_error (good_error);
  unsealed = memfd_create ("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  g_assert_cmpint (ftruncate (unsealed, 8192), ==, 0);
  partly = memfd_create ("partly", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  g_assert_cmpint (ftruncate (partly, 8192), ==, 0);
  g_assert_cmpint (fcntl (partly, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), ==, 0);
  g_assert_true (g_file_set_contents (path, "not a memfd", -1, NULL));
  file = open (path, O_RDONLY | O_CLOEXEC);
  g_assert_cmpint (pipe2 (p, O_CLOEXEC), ==, 0);
  close (p[1]);

  bad[0].what = "unsealed memfd", bad[0].fd = unsealed, bad[0].size = -1;
  bad[1].what = "memfd without F_SEAL_WRITE", bad[1].fd = partly, bad[1].size = -1;
  bad[2].what = "regular file", bad[2].fd = file, bad[2].size = -1;
  bad[3].what = "pipe", bad[3].fd = p[0], bad[3].size = -1;
  bad[4].what = "sealed memfd, wrong size", bad[4].fd = dup (peer_blob_get_fd (sealed)), bad[4].size = 8191;
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      PeerBlob *blob = peer_blob_new_take_fd (bad[i].fd, bad[i].size, &error);

      g_test_message ("%s: %s", bad[i].what, error ? error->message : "accepted");
      g_assert_null (blob);
      g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
    }

  /* Twin: the right size, and any size. */
  received = peer_blob_new_take_fd (dup (peer_blob_get_fd (sealed)), 8192, &good_error);
  g_assert_no_error (good_error);
  assert_pattern (peer_blob_get_data (received, NULL), 8192);
  g_clear_pointer (&received, peer_blob_unref);
  received = peer_blob_new_take_fd (dup (peer_blob_get_fd (sealed)), -1, &good_error);
  g_assert_no_error (good_error);
  g_clear_pointer (&received, peer_blob_unref);
  g_clear_pointer (&sealed, peer_blob_unref);

  peer_test_remove_dir (dir);
  g_assert_cmpuint (peer_test_count_open_fds (), ==, fds_before);
}

/* A memfd of 1 MiB, sealed, with only @written bytes at each end written
 * (all of it when @written is 0). */
static int
make_memfd_written_at_ends (gsize size,
                            gsize written)
{
  int fd = memfd_create ("sparse", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  g_autofree guint8 *page = g_malloc (written > 0 ? written : size);

  g_assert_cmpint (fd, >=, 0);
  memset (page, 0x5a, written > 0 ? written : size);
  g_assert_cmpint (ftruncate (fd, size), ==, 0);
  if (written == 0)
    g_assert_cmpint (pwrite (fd, page, size, 0), ==, (gssize) size);
  else
    {
      g_assert_cmpint (pwrite (fd, page, written, 0), ==, (gssize) written);
      g_assert_cmpint (pwrite (fd, page, written, size - written), ==, (gssize) written);
    }
  g_assert_cmpint (fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), ==, 0);
  return fd;
}

/* A blob with holes would make its receiver allocate what was never sent
 * (reading a hole of a shared memfd mapping allocates it). */
static void
test_blob_sparse_refused (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) sparse = peer_blob_new_take_fd (make_memfd_written_at_ends (1024 * 1024, 4096), -1, &error);
  g_autoptr(PeerBlob) whole = NULL;

  g_assert_null (sparse);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_assert_nonnull (strstr (error->message, "holes"));
  g_clear_error (&error);
  /* Twin: every byte written. */
  whole = peer_blob_new_take_fd (make_memfd_written_at_ends (1024 * 1024, 0), -1, &error);
  g_assert_no_error (error);
  g_assert_nonnull (whole);
}

static void
test_blob_fd_list_handles (void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = peer_blob_new_from_data ("abc", 3, &error);
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(PeerBlob) back = NULL;
  gint32 handle;

  handle = peer_blob_append_to_fd_list (blob, list, &error);
  g_assert_cmpint (handle, ==, 0);
  back = peer_blob_new_from_fd_list (list, handle, 3, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (peer_blob_get_data (back, NULL), 3, "abc", 3);

  g_assert_null (peer_blob_new_from_fd_list (list, 1, -1, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_null (peer_blob_new_from_fd_list (list, -1, -1, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_clear_error (&error);
  g_assert_null (peer_blob_new_from_fd_list (NULL, 0, -1, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
}

/* --- over the wire ------------------------------------------------------------ */

typedef struct {
  PeerTestServer *server;
  PeerClient *client;
  guint baseline_fds;                   /* with the server and client up */
} Fixture;

static void
on_async_done (GObject      *source,
               GAsyncResult *result,
               gpointer      user_data)
{
  *(GAsyncResult **) user_data = g_object_ref (result);
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

  peer_test_wait_for_sockets_closed (sockets_at_start);
  f->server = peer_test_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, &error);
  g_assert_no_error (error);
  f->client = peer_client_new_sync (f->server->address, -1, NULL, &error);
  g_assert_no_error (error);
  peer_test_ping_async (f->client);
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
  /* Both ends' sockets close in GDBus's worker thread, after this; the
   * next test counts its fds from a settled start. */
  if (!g_test_failed ())
    peer_test_wait_for_sockets_closed (sockets_at_start);
}

typedef struct {
  PeerTestServer *server;
  guint max_size;
} SizeSetting;

static gboolean
set_max_message_size (gpointer user_data)
{
  SizeSetting *s = user_data;

  peer_server_set_max_message_size (s->server->server, s->max_size);
  return G_SOURCE_REMOVE;
}

/* What a client learns of a server before it sends anything large: blob
 * calls, and the limits its messages meet there. */
static void
test_features (Fixture       *f,
               gconstpointer  data)
{
  SizeSetting setting = { f->server, 12345 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) features = NULL;
  gboolean blob_call = FALSE;
  guint32 max_size = 0, max_fds = 0;

  peer_test_server_invoke (f->server, set_max_message_size, &setting);
  reply = peer_client_call_sync (f->client, "/org/libpeer/Transport", "org.libpeer.Transport1", "GetFeatures",
                                 NULL, G_VARIANT_TYPE ("(a{sv})"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  features = g_variant_get_child_value (reply, 0);
  g_assert_true (g_variant_lookup (features, "blob-call", "b", &blob_call));
  g_assert_true (blob_call);
  g_assert_true (g_variant_lookup (features, "max-message-size", "u", &max_size));
  g_assert_cmpuint (max_size, ==, 12345);
  g_assert_true (g_variant_lookup (features, "max-fds-per-message", "u", &max_fds));
  g_assert_cmpuint (max_fds, ==, PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE);
}

static PeerBlob *
echo_blob (PeerClient *client,
           PeerBlob   *blob,
           GError    **error)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out = NULL;
  g_autoptr(GVariant) reply = NULL;
  gint32 handle;

  peer_blob_append_to_fd_list (blob, list, NULL);
  reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "EchoBlob", g_variant_new ("(h)", 0),
                                 G_VARIANT_TYPE ("(h)"), G_MAXINT, list, &out, NULL, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(h)", &handle);
  return peer_blob_new_from_fd_list (out, handle, (gssize) peer_blob_get_size (blob), error);
}

static void
test_echo_blob (Fixture       *f,
                gconstpointer  data)
{
  gsize size = GPOINTER_TO_SIZE (data);
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = peer_blob_new_with_writer (size, fill_pattern, NULL, &error);
  g_autoptr(PeerBlob) back = NULL;
  struct stat a, b;

  g_assert_no_error (error);
  back = echo_blob (f->client, blob, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (peer_blob_get_size (back), ==, size);
  /* The same memfd came back: nothing was copied on the way. */
  g_assert_cmpint (fstat (peer_blob_get_fd (blob), &a), ==, 0);
  g_assert_cmpint (fstat (peer_blob_get_fd (back), &b), ==, 0);
  g_assert_cmpuint (a.st_ino, ==, b.st_ino);
  assert_pattern (peer_blob_get_data (back, NULL), size);
}

/* Negative twin: a memfd that could still change is refused. */
static void
test_echo_blob_unsealed (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  int fd = memfd_create ("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  g_assert_cmpint (ftruncate (fd, 65536), ==, 0);
  g_unix_fd_list_append (list, fd, NULL);
  close (fd);
  reply = peer_client_call_sync (f->client, BENCH_PATH, BENCH_IFACE, "EchoBlob", g_variant_new ("(h)", 0),
                                 G_VARIANT_TYPE ("(h)"), -1, list, NULL, NULL, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
  g_assert_nonnull (strstr (error->message, "sealed"));
}

/* Echo of @size bytes as `ay`; returns the reply's array. */
static GVariant *
echo_bytes (PeerClient *client,
            gsize       size,
            GError    **error)
{
  g_autofree guint8 *data = g_malloc (size);
  g_autoptr(GVariant) reply = NULL;
  GVariant *bytes;

  fill_pattern (data, size, NULL, NULL);
  reply = peer_client_call_sync (client, BENCH_PATH, BENCH_IFACE, "Echo",
                                 g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE,
                                                                                     data, size, 1)),
                                 G_VARIANT_TYPE ("(ay)"), G_MAXINT, NULL, NULL, NULL, error);
  if (reply == NULL)
    return NULL;
  bytes = g_variant_get_child_value (reply, 0);
  g_assert_cmpuint (g_variant_get_size (bytes), ==, size);
  assert_pattern (g_variant_get_data (bytes), size);
  return bytes;
}

/* Whether @bytes is read straight from a blob's mapping. */
static gboolean
is_backed_by_blob (GVariant *bytes)
{
  g_autoptr(PeerBlob) blob = _peer_blob_lookup_mapping (g_variant_get_data (bytes), g_variant_get_size (bytes));

  return blob != NULL;
}

static void
test_auto_blob (Fixture       *f,
                gconstpointer  data)
{
  gsize size = GPOINTER_TO_SIZE (data);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) bytes = echo_bytes (f->client, size, &error);

  g_assert_no_error (error);
  g_assert_true (is_backed_by_blob (bytes));
}

/* Twins: under the threshold, or with the automatic path off, plain `ay`. */
static void
test_auto_blob_not_used (Fixture       *f,
                         gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) small = echo_bytes (f->client, PEER_BLOB_DEFAULT_THRESHOLD - 1, &error);
  g_autoptr(GVariant) at = NULL;
  g_autoptr(GVariant) off = NULL;

  g_assert_no_error (error);
  g_assert_false (is_backed_by_blob (small));
  at = echo_bytes (f->client, PEER_BLOB_DEFAULT_THRESHOLD, &error);
  g_assert_no_error (error);
  g_assert_true (is_backed_by_blob (at));

  peer_client_set_blob_threshold (f->client, 0);
  off = echo_bytes (f->client, 1024 * 1024, &error);
  g_assert_no_error (error);
  g_assert_false (is_backed_by_blob (off));
}

static void
test_auto_blob_async (Fixture       *f,
                      gconstpointer  data)
{
  gsize size = 1024 * 1024;
  g_autofree guint8 *bytes = g_malloc (size);
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) echoed = NULL;
  g_autoptr(GError) error = NULL;

  /* A fresh client: the first call also asks the server about blobs. */
  fill_pattern (bytes, size, NULL, NULL);
  peer_client_call (f->client, BENCH_PATH, BENCH_IFACE, "Echo",
                    g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, bytes, size, 1)),
                    G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, on_async_done, &result);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  reply = peer_client_call_finish (f->client, NULL, result, &error);
  g_assert_no_error (error);
  echoed = g_variant_get_child_value (reply, 0);
  g_assert_true (is_backed_by_blob (echoed));
  assert_pattern (g_variant_get_data (echoed), size);
}

/* What a client does with a call over the server's size limit, once it
 * knows the limit: a large `ay` goes as a blob, and with blobs off it
 * fails before a byte is written (the client's own words, not the
 * server's answer), the connection unharmed. Under the limit, the plain
 * call goes as it is. */
static void
test_client_limits_size (Fixture       *f,
                         gconstpointer  data)
{
  SizeSetting setting = { f->server, 12345 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) bytes = NULL;
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autofree guint8 *data_out = g_malloc0 (80 * 1024);

  peer_test_server_invoke (f->server, set_max_message_size, &setting);
  /* Over the limit, blobs on: the first large call learns the limit and
   * goes as a blob although it is under the blob threshold. */
  bytes = echo_bytes (f->client, 80 * 1024, &error);
  g_assert_no_error (error);
  g_assert_true (is_backed_by_blob (bytes));        /* the reply too */
  g_clear_pointer (&bytes, g_variant_unref);

  /* Blobs off: refused here, with the server's limit in the message. */
  peer_client_set_blob_threshold (f->client, 0);
  bytes = echo_bytes (f->client, 80 * 1024, &error);
  g_assert_null (bytes);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_cmpstr (error->message, ==, "The call's arguments are 81920 bytes; the server takes at most 12345 in a message");
  g_clear_error (&error);
  peer_client_call (f->client, BENCH_PATH, BENCH_IFACE, "Echo",
                    g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, data_out, 80 * 1024, 1)),
                    G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, on_async_done, &result);
  PEER_TEST_WAIT_UNTIL (result != NULL);
  reply = peer_client_call_finish (f->client, NULL, result, &error);
  g_assert_null (reply);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_true (g_str_has_prefix (error->message, "The call's arguments are"));
  g_clear_error (&error);

  /* Under the limit, plain `ay`: it goes, and the connection is as it was. */
  bytes = echo_bytes (f->client, 12000, &error);
  g_assert_no_error (error);
  g_assert_nonnull (bytes);
  g_assert_false (peer_client_is_closed (f->client));
}

/* A call with more fds than the server takes in a message fails before it
 * is sent; one with as many as it takes goes. */
static void
test_client_limits_fds (Fixture       *f,
                        gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *big = g_malloc0 (64 * 1024 + 1);
  g_autoptr(GVariant) probe = NULL;

  for (guint n = PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE; n <= PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE + 1; n++)
    {
      g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
      g_autoptr(GUnixFDList) out = NULL;
      g_autoptr(GVariant) reply = NULL;
      GVariantBuilder handles;

      g_variant_builder_init (&handles, G_VARIANT_TYPE ("ah"));
      for (guint i = 0; i < n; i++)
        g_variant_builder_add (&handles, "h", g_unix_fd_list_append (list, 0, NULL));
      reply = peer_client_call_sync (f->client, BENCH_PATH, BENCH_IFACE, "EchoFds",
                                     g_variant_new ("(ah)", &handles), G_VARIANT_TYPE ("(ah)"), -1,
                                     list, &out, NULL, &error);
      if (n <= PEER_SERVER_DEFAULT_MAX_FDS_PER_MESSAGE)
        {
          g_assert_no_error (error);
          g_assert_cmpint (g_unix_fd_list_get_length (out), ==, (int) n);
        }
      else
        {
          /* The first call over 16 fds asked for the limits; this one is
           * refused by the client, in its own words. */
          g_assert_null (reply);
          g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
          g_assert_true (g_str_has_prefix (error->message, "The call carries 17 file descriptors; the server takes at most 16"));
          g_clear_error (&error);
        }
    }
  g_assert_false (peer_client_is_closed (f->client));
  /* Whatever the limits, a string argument never goes as a blob: past
   * what the server takes it is refused here. */
  memset (big, 'x', 64 * 1024);
  {
    SizeSetting setting = { f->server, 32 * 1024 };

    peer_test_server_invoke (f->server, set_max_message_size, &setting);
  }
  peer_client_set_blob_threshold (f->client, PEER_BLOB_DEFAULT_THRESHOLD);
  probe = peer_client_call_sync (f->client, BENCH_PATH, "org.freedesktop.DBus.Peer", "Ping",
                                 g_variant_new ("(s)", big), NULL, -1, NULL, NULL, NULL, &error);
  g_assert_null (probe);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
}

/* Hand-made blob calls, as a hostile or broken peer would send them. */
static GError *
send_blob_call (Fixture    *f,
                GVariant   *args,
                GVariant   *blobs,
                const int  *fds,
                guint       n_fds,
                const char *interface_name)
{
  g_autoptr(GUnixFDList) list = g_unix_fd_list_new ();
  g_autoptr(GVariant) reply = NULL;
  GError *error = NULL;

  for (guint i = 0; i < n_fds; i++)
    g_unix_fd_list_append (list, fds[i], NULL);
  reply = g_dbus_connection_call_with_unix_fd_list_sync (peer_client_get_connection (f->client), NULL,
                                                         BENCH_PATH, "org.libpeer.Transport1", "BlobCall",
                                                         g_variant_new ("(ssv@a(uht))", interface_name,
                                                                        "Echo", args, blobs),
                                                         NULL, G_DBUS_CALL_FLAGS_NONE, -1, list, NULL,
                                                         NULL, &error);
  if (reply != NULL)
    {
      g_autoptr(GVariant) boxed = NULL;
      g_autoptr(GVariant) inner = NULL;

      g_assert_true (g_variant_is_of_type (reply, G_VARIANT_TYPE ("(va(uht))")));
      g_variant_get (reply, "(v@a(uht))", &inner, &boxed);
      g_assert_true (g_variant_is_of_type (inner, G_VARIANT_TYPE ("(ay)")));
    }
  return error;
}

static GVariant *
parse_blobs (const char *text)
{
  g_autofree char *typed = g_strconcat ("@a(uht) ", text, NULL);

  return g_variant_new_parsed (typed);
}

static void
test_blob_call_checks (Fixture       *f,
                       gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = peer_blob_new_with_writer (100000, fill_pattern, NULL, &error);
  GVariant *empty = g_variant_new_array (G_VARIANT_TYPE_BYTE, NULL, 0);
  int sealed = peer_blob_get_fd (blob);
  int unsealed = memfd_create ("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  /* 8 KiB written of a 1 MiB memfd: the server must not read the holes. */
  int sparse = make_memfd_written_at_ends (1024 * 1024, 4096);
  struct {
    const char *what;
    const char *args;
    const char *blobs;
    int fd;
    const char *iface;
  } bad[] = {
    { "unsealed memfd", NULL, "[(0, 0, 100000)]", unsealed, BENCH_IFACE },
    { "wrong size", NULL, "[(0, 0, 99999)]", sealed, BENCH_IFACE },
    { "handle out of range", NULL, "[(0, 1, 100000)]", sealed, BENCH_IFACE },
    { "index out of range", NULL, "[(1, 0, 100000)]", sealed, BENCH_IFACE },
    { "not a byte array", "(@as [],)", "[(0, 0, 100000)]", sealed, BENCH_IFACE },
    { "more blobs than fds", NULL, "[(0, 0, 100000), (1, 1, 5)]", sealed, BENCH_IFACE },
    { "wrapping the wrapper", NULL, "[(0, 0, 100000)]", sealed, "org.libpeer.Transport1" },
    { "sparse memfd", NULL, "[(0, 0, 1048576)]", sparse, BENCH_IFACE },
  };

  g_assert_no_error (error);
  g_assert_cmpint (ftruncate (unsealed, 100000), ==, 0);
  g_variant_ref_sink (empty);
  /* The test's own three fds stay open throughout. */
  f->baseline_fds += 3;
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      GVariant *args = bad[i].args != NULL ? g_variant_new_parsed (bad[i].args)
                                          : g_variant_new ("(@ay)", empty);
      g_autoptr(GError) call_error = send_blob_call (f, args, parse_blobs (bad[i].blobs),
                                                     &bad[i].fd, 1, bad[i].iface);

      g_test_message ("%s: %s", bad[i].what, call_error ? call_error->message : "accepted");
      g_assert_error (call_error, PEER_ERROR, PEER_ERROR_INVALID_ARGS);
      assert_no_fd_leak (f);
    }

  /* Twin: the same by hand, done right. */
  error = send_blob_call (f, g_variant_new ("(@ay)", empty), g_variant_new_parsed ("@a(uht) [(0, 0, 100000)]"),
                          &sealed, 1, BENCH_IFACE);
  g_assert_no_error (error);
  g_variant_unref (empty);
  close (unsealed);
  close (sparse);
  g_clear_pointer (&blob, peer_blob_unref);
  f->baseline_fds -= 3;
}

/* The blobs count towards the per-message fd limit. */
static gboolean
set_max_fds_to_zero (gpointer data)
{
  peer_server_set_max_fds_per_message (((PeerTestServer *) data)->server, 0);
  return G_SOURCE_REMOVE;
}

typedef struct {
  PeerTestServer *server;
  gsize max_mapped;
  guint max_size;
} MappedSetting;

static gboolean
set_mapped_limits (gpointer user_data)
{
  MappedSetting *s = user_data;

  peer_server_set_max_mapped_bytes (s->server->server, s->max_mapped);
  if (s->max_size > 0)
    peer_server_set_max_message_size (s->server->server, s->max_size);
  return G_SOURCE_REMOVE;
}

/* Blob bytes a peer has the server map count against its limit: a blob
 * within it is taken, one that would pass it is answered, and the peer
 * stays connected. */
static void
test_mapped_limit (Fixture       *f,
                   gconstpointer  data)
{
  MappedSetting setting = { f->server, 1536 * 1024, 0 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) within = NULL;
  g_autoptr(GVariant) over = NULL;

  peer_test_server_invoke (f->server, set_mapped_limits, &setting);
  within = echo_bytes (f->client, 1024 * 1024, &error);
  g_assert_no_error (error);
  g_assert_true (is_backed_by_blob (within));
  over = echo_bytes (f->client, 2 * 1024 * 1024, &error);
  g_assert_null (over);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_assert_false (peer_client_is_closed (f->client));
}

/* The same on a lane, where bodies over the message size go as blobs. */
static void
test_mapped_limit_lane (Fixture       *f,
                        gconstpointer  data)
{
  MappedSetting setting = { f->server, 768 * 1024, 256 * 1024 };
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) within = NULL;
  g_autoptr(GVariant) over = NULL;
  g_autoptr(GVariant) ping = NULL;

  peer_test_server_invoke (f->server, set_mapped_limits, &setting);
  g_assert_true (peer_client_open_lane_sync (f->client, NULL, &error));
  g_assert_no_error (error);
  /* The lane's own fds stay open with it; the Open reply's copies are
   * gone once a later reply is in. */
  peer_test_ping_async (f->client);
  f->baseline_fds = peer_test_count_open_fds ();
  within = echo_bytes (f->client, 512 * 1024, &error);
  g_assert_no_error (error);
  g_clear_pointer (&within, g_variant_unref);
  over = echo_bytes (f->client, 1024 * 1024, &error);
  g_assert_null (over);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
  g_clear_error (&error);
  /* The lane goes on. */
  ping = peer_client_call_sync (f->client, BENCH_PATH, BENCH_IFACE, "Ping", NULL, NULL, -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ping);
}

static void
test_auto_blob_limit (Fixture       *f,
                      gconstpointer  data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) bytes = NULL;

  peer_test_server_invoke (f->server, set_max_fds_to_zero, f->server);
  bytes = echo_bytes (f->client, 1024 * 1024, &error);
  g_assert_null (bytes);
  g_assert_error (error, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED);
}

/* A plain GDBus server that knows nothing of blobs: the client asks, hears
 * UnknownObject, and sends plain `ay` from then on. */
static void
on_plain_echo (GDBusConnection       *connection,
               const char            *sender,
               const char            *object_path,
               const char            *interface_name,
               const char            *method_name,
               GVariant              *parameters,
               GDBusMethodInvocation *invocation,
               gpointer               user_data)
{
  g_dbus_method_invocation_return_value (invocation, parameters);
}

static void
on_server_connection (GObject      *source,
                      GAsyncResult *result,
                      gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  *(GDBusConnection **) user_data = g_dbus_connection_new_finish (result, &error);
  g_assert_no_error (error);
}

static void
test_auto_blob_plain_server (void)
{
  static const GDBusInterfaceVTable vtable = { on_plain_echo, NULL, NULL, { 0 } };
  g_autoptr(GSocket) server_socket = NULL;
  g_autoptr(GSocket) client_socket = NULL;
  g_autoptr(GSocketConnection) server_stream = NULL;
  g_autoptr(GSocketConnection) client_stream = NULL;
  g_autoptr(GDBusConnection) server = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GDBusNodeInfo) node = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *guid = g_dbus_generate_guid ();
  gsize size = 1024 * 1024;
  g_autofree guint8 *bytes = g_malloc (size);
  int sv[2];

  node = g_dbus_node_info_new_for_xml ("<node><interface name='org.libpeer.Bench1'><method name='Echo'>"
                                       "<arg type='ay' direction='in'/><arg type='ay' direction='out'/>"
                                       "</method></interface></node>", &error);
  g_assert_no_error (error);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  server_socket = g_socket_new_from_fd (sv[0], &error);
  client_socket = g_socket_new_from_fd (sv[1], &error);
  g_assert_no_error (error);
  server_stream = g_socket_connection_factory_create_connection (server_socket);
  client_stream = g_socket_connection_factory_create_connection (client_socket);

  g_dbus_connection_new (G_IO_STREAM (server_stream), guid, G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_SERVER,
                         NULL, NULL, on_server_connection, &server);
  connection = g_dbus_connection_new_sync (G_IO_STREAM (client_stream), NULL,
                                           G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT, NULL, NULL, &error);
  g_assert_no_error (error);
  PEER_TEST_WAIT_UNTIL (server != NULL);
  g_dbus_connection_register_object (server, BENCH_PATH, node->interfaces[0], &vtable, NULL, NULL, &error);
  g_assert_no_error (error);

  client = peer_client_new_for_connection (connection);
  g_assert_true (peer_client_can_pass_fds (client));
  fill_pattern (bytes, size, NULL, NULL);
  /* Async: the plain server answers in this thread's main context. */
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GVariant) echoed = NULL;
      g_autoptr(GAsyncResult) result = NULL;

      g_clear_pointer (&reply, g_variant_unref);
      peer_client_call (client, BENCH_PATH, BENCH_IFACE, "Echo",
                        g_variant_new ("(@ay)", g_variant_new_fixed_array (G_VARIANT_TYPE_BYTE, bytes, size, 1)),
                        G_VARIANT_TYPE ("(ay)"), -1, NULL, NULL, on_async_done, &result);
      PEER_TEST_WAIT_UNTIL (result != NULL);
      reply = peer_client_call_finish (client, NULL, result, &error);
      g_assert_no_error (error);
      echoed = g_variant_get_child_value (reply, 0);
      g_assert_false (is_backed_by_blob (echoed));
      assert_pattern (g_variant_get_data (echoed), size);
    }
  peer_client_close (client);
  g_dbus_connection_close_sync (server, NULL, NULL);
}

int
main (int   argc,
      char *argv[])
{
  int status;

  g_test_init (&argc, &argv, NULL);
  sockets_at_start = peer_test_list_open_sockets ();

  g_test_add_func ("/peer/blob/unit/sealed", test_blob_sealed);
  g_test_add_func ("/peer/blob/unit/from-data-and-bytes", test_blob_from_data_and_bytes);
  g_test_add_func ("/peer/blob/unit/empty", test_blob_empty);
  g_test_add_func ("/peer/blob/unit/writer-fails", test_blob_writer_fails);
  g_test_add_func ("/peer/blob/unit/receive-checks", test_blob_receive_checks);
  g_test_add_func ("/peer/blob/unit/fd-list-handles", test_blob_fd_list_handles);
  g_test_add_func ("/peer/blob/unit/sparse-refused", test_blob_sparse_refused);
  g_test_add ("/peer/blob/echo/1mib", Fixture, GSIZE_TO_POINTER (1024 * 1024), setup, test_echo_blob, teardown);
  g_test_add ("/peer/blob/echo/256mib", Fixture, GSIZE_TO_POINTER (256 * 1024 * 1024), setup,
              test_echo_blob, teardown);
  g_test_add ("/peer/blob/echo/unsealed", Fixture, NULL, setup, test_echo_blob_unsealed, teardown);
  g_test_add ("/peer/blob/auto/1mib", Fixture, GSIZE_TO_POINTER (1024 * 1024), setup, test_auto_blob, teardown);
  /* Past D-Bus's 128 MiB message limit. */
  g_test_add ("/peer/blob/auto/200mib", Fixture, GSIZE_TO_POINTER (200 * 1024 * 1024), setup,
              test_auto_blob, teardown);
  g_test_add ("/peer/blob/auto/not-used", Fixture, NULL, setup, test_auto_blob_not_used, teardown);
  g_test_add ("/peer/blob/auto/async", Fixture, NULL, setup, test_auto_blob_async, teardown);
  g_test_add ("/peer/blob/auto/blob-call-checks", Fixture, NULL, setup, test_blob_call_checks, teardown);
  g_test_add ("/peer/blob/auto/fd-limit", Fixture, NULL, setup, test_auto_blob_limit, teardown);
  g_test_add ("/peer/blob/features", Fixture, NULL, setup, test_features, teardown);
  g_test_add ("/peer/blob/limits/client-size", Fixture, NULL, setup, test_client_limits_size, teardown);
  g_test_add ("/peer/blob/limits/client-fds", Fixture, NULL, setup, test_client_limits_fds, teardown);
  g_test_add ("/peer/blob/limits/mapped", Fixture, NULL, setup, test_mapped_limit, teardown);
  g_test_add ("/peer/blob/limits/mapped-lane", Fixture, NULL, setup, test_mapped_limit_lane, teardown);
  g_test_add_func ("/peer/blob/auto/plain-server", test_auto_blob_plain_server);

  status = g_test_run ();
  g_hash_table_unref (sockets_at_start);
  return status;
}
