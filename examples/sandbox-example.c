/* sandbox-example.c: a thumbnailer for untrusted images, in a sandboxed
 * helper. The application opens the image itself and hands the helper
 * the fd; the helper, which can open none of the user's files, make no
 * socket and start no program, parses it (binary PGM or PPM, the Netpbm
 * formats) and returns a grey thumbnail of at most 32x32 as a sealed
 * memfd. A parser bug the image triggers costs a helper, not the
 * application.
 *
 * The same program is both sides: run without arguments it is the
 * application (it makes a sample image, thumbnails it, and checks the
 * result), with --helper it is the helper. --twin hands the helper a
 * truncated image instead: the helper refuses it with an error and lives
 * on. Either run exits 0 when everything went as it should, 77 (skipped)
 * where the kernel allows no sandbox at all. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libpeer.h>

#define THUMB_PATH "/org/example/Thumbnailer"
#define THUMB_IFACE "org.example.Thumbnailer1"
#define THUMB_MAX 32
/* What the helper reads at most: an untrusted file may claim anything. */
#define INPUT_MAX (64 << 20)
#define SIDE_MAX 16384

static const char xml[] =
  "<node><interface name='" THUMB_IFACE "'>"
  "  <method name='Thumbnail'>"
  "    <arg name='image' type='h' direction='in'/>"
  "    <arg name='width' type='u' direction='out'/>"
  "    <arg name='height' type='u' direction='out'/>"
  "    <arg name='pixels' type='h' direction='out'/>"
  "  </method>"
  "</interface></node>";

/* --- the helper ------------------------------------------------------------ */

typedef struct {
  const guint8 *data;
  gsize size;
  gsize at;
} Reader;

/* A header number: whitespace and # comments before it. */
static gboolean
read_number (Reader *r,
             guint  *out)
{
  guint64 value = 0;
  gboolean any = FALSE;

  for (;;)
    {
      while (r->at < r->size && g_ascii_isspace (r->data[r->at]))
        r->at++;
      if (r->at < r->size && r->data[r->at] == '#')
        while (r->at < r->size && r->data[r->at] != '\n')
          r->at++;
      else
        break;
    }
  while (r->at < r->size && g_ascii_isdigit (r->data[r->at]) && value <= G_MAXUINT32)
    {
      value = value * 10 + (guint) (r->data[r->at++] - '0');
      any = TRUE;
    }
  if (!any || value > G_MAXUINT32)
    return FALSE;
  *out = (guint) value;
  return TRUE;
}

typedef struct {
  const guint8 *pixels;
  guint width, height, channels;
  guint thumb_width, thumb_height;
} Image;

/* Each thumbnail pixel is the mean of the box of image pixels it covers. */
static gboolean
write_thumbnail (guint8    *out,
                 gsize      size,
                 gpointer   user_data,
                 GError   **error)
{
  const Image *image = user_data;

  for (guint ty = 0; ty < image->thumb_height; ty++)
    for (guint tx = 0; tx < image->thumb_width; tx++)
      {
        guint y0 = ty * image->height / image->thumb_height, y1 = (ty + 1) * image->height / image->thumb_height;
        guint x0 = tx * image->width / image->thumb_width, x1 = (tx + 1) * image->width / image->thumb_width;
        guint64 sum = 0, n = 0;

        for (guint y = y0; y < MAX (y1, y0 + 1); y++)
          for (guint x = x0; x < MAX (x1, x0 + 1); x++)
            for (guint c = 0; c < image->channels; c++)
              {
                sum += image->pixels[((gsize) y * image->width + x) * image->channels + c];
                n++;
              }
        out[(gsize) ty * image->thumb_width + tx] = (guint8) (sum / n);
      }
  return TRUE;
}

static void
handle_thumbnail (PeerCall *call,
                  gpointer  user_data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GByteArray) input = g_byte_array_new ();
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(GUnixFDList) out_fds = g_unix_fd_list_new ();
  GUnixFDList *fds = peer_call_get_unix_fd_list (call);
  Reader r = { 0 };
  Image image = { 0 };
  guint maxval;
  gint32 handle;
  char magic[3] = { 0 };
  int fd;

  g_variant_get (peer_call_get_parameters (call), "(h)", &handle);
  fd = fds != NULL ? g_unix_fd_list_get (fds, handle, NULL) : -1;
  if (fd < 0)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "no image fd");
      return;
    }
  for (;;)
    {
      guint8 chunk[65536];
      ssize_t n = read (fd, chunk, sizeof chunk);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0 || input->len + (gsize) n > INPUT_MAX)
        break;
      g_byte_array_append (input, chunk, (guint) n);
    }
  close (fd);

  r.data = input->data;
  r.size = input->len;
  if (r.size >= 2)
    memcpy (magic, r.data, 2);
  r.at = 2;
  image.channels = g_str_equal (magic, "P5") ? 1 : g_str_equal (magic, "P6") ? 3 : 0;
  if (image.channels == 0 || !read_number (&r, &image.width) || !read_number (&r, &image.height) ||
      !read_number (&r, &maxval) || r.at >= r.size || !g_ascii_isspace (r.data[r.at]))
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "not a binary PGM or PPM image");
      return;
    }
  r.at++;
  if (image.width == 0 || image.height == 0 || image.width > SIDE_MAX || image.height > SIDE_MAX ||
      maxval == 0 || maxval > 255 ||
      r.size - r.at < (gsize) image.width * image.height * image.channels)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "a %ux%u image with maxval %u does not fit in %" G_GSIZE_FORMAT " bytes",
                              image.width, image.height, maxval, r.size);
      return;
    }
  image.pixels = r.data + r.at;
  image.thumb_width = MIN (image.width, THUMB_MAX);
  image.thumb_height = MIN (image.height, THUMB_MAX);

  blob = peer_blob_new_with_writer ((gsize) image.thumb_width * image.thumb_height, write_thumbnail, &image, &error);
  if (blob == NULL || (handle = peer_blob_append_to_fd_list (blob, out_fds, &error)) < 0)
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(uuh)", image.thumb_width, image.thumb_height, handle),
                                   out_fds);
}

static int
run_helper (void)
{
  static const PeerMethodEntry methods[] = { { "Thumbnail", handle_thumbnail } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  iface = server != NULL ? peer_interface_new_for_xml (xml, THUMB_IFACE, &error) : NULL;
  if (iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), NULL, &error) ||
      !peer_server_export (server, THUMB_PATH, iface, &error))
    {
      g_printerr ("helper: %s\n", error->message);
      return 1;
    }
  g_signal_connect_swapped (server, "peer-disconnected", G_CALLBACK (g_main_loop_quit), loop);
  g_signal_connect_swapped (server, "peer-refused", G_CALLBACK (g_main_loop_quit), loop);
  peer_server_start (server);
  g_main_loop_run (loop);
  return 0;
}

/* --- the application ----------------------------------------------------- */

/* A 300x200 colour gradient, as the untrusted file a user downloaded. */
static char *
make_sample (const char *dir,
             gboolean    truncated,
             GError    **error)
{
  g_autoptr(GString) image = g_string_new ("P6\n# a sample\n300 200\n255\n");
  char *path = g_build_filename (dir, "sample.ppm", NULL);

  for (guint y = 0; y < 200; y++)
    for (guint x = 0; x < 300; x++)
      {
        g_string_append_c (image, (char) (x * 255 / 299));
        g_string_append_c (image, (char) (y * 255 / 199));
        g_string_append_c (image, (char) 128);
      }
  if (truncated)
    g_string_truncate (image, image->len / 2);
  if (!g_file_set_contents (path, image->str, (gssize) image->len, error))
    g_clear_pointer (&path, g_free);
  return path;
}

static int
run_app (const char *self,
         gboolean    twin)
{
  const char *argv[] = { self, "--helper", NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerSandbox) sandbox = peer_sandbox_new ();
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GUnixFDList) out_fds = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(PeerBlob) thumbnail = NULL;
  g_autofree char *dir = g_dir_make_tmp ("sandbox-example-XXXXXX", &error);
  g_autofree char *path = NULL;
  const guint8 *pixels;
  guint width, height;
  gint32 handle;
  int fd, status = 1;

  if (dir == NULL || (path = make_sample (dir, twin, &error)) == NULL)
    goto out;
  /* The application opens the file: the helper could not. */
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || g_unix_fd_list_append (fds, fd, &error) < 0)
    goto out;
  close (fd);

  /* Where the kernel refuses namespaces, this application prefers a
   * helper with the rest of the sandbox (seccomp, limits, Landlock) to no
   * thumbnails at all. */
  peer_sandbox_set_flags (sandbox, PEER_SANDBOX_FLAGS_BEST_EFFORT);
  peer_sandbox_set_limit (sandbox, PEER_SANDBOX_LIMIT_CPU_SECONDS, 10);
  helper = peer_helper_new_sandboxed (argv, NULL, sandbox, &error);
  if (helper == NULL && g_error_matches (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED))
    {
      /* Not even seccomp (under valgrind, for one): meson's "skipped". */
      g_print ("no sandbox here: %s\n", error->message);
      g_clear_error (&error);
      status = 77;
      goto out;
    }
  if (helper == NULL)
    goto out;
  reply = peer_helper_call_sync (helper, THUMB_PATH, THUMB_IFACE, "Thumbnail", g_variant_new ("(h)", 0),
                                 G_VARIANT_TYPE ("(uuh)"), -1, fds, &out_fds, NULL, &error);
  if (twin)
    {
      /* Refused, and the helper is still there to refuse the next one. */
      g_autoptr(PeerClient) still_there = peer_helper_dup_client (helper, 0, NULL, NULL);

      if (reply == NULL && g_error_matches (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS) &&
          peer_helper_get_n_restarts (helper) == 0 && still_there != NULL)
        {
          g_print ("truncated image refused: %s\n", error->message);
          g_clear_error (&error);
          status = 0;
        }
      goto out;
    }
  if (reply == NULL)
    goto out;
  g_variant_get (reply, "(uuh)", &width, &height, &handle);
  /* Sealed, of exactly the size the reply says: it cannot change under us. */
  thumbnail = peer_blob_new_from_fd_list (out_fds, handle, (gssize) width * height, &error);
  if (thumbnail == NULL)
    goto out;
  pixels = peer_blob_get_data (thumbnail, NULL);
  g_print ("thumbnail %ux%u, corners %u %u %u %u\n", width, height, pixels[0], pixels[width - 1],
           pixels[(height - 1) * width], pixels[height * width - 1]);
  /* The gradient's corners: red and green run 0..255, blue is 128. */
  if (width == 32 && height == 32 && pixels[0] < pixels[width * height - 1])
    status = 0;

out:
  if (error != NULL)
    g_printerr ("app: %s\n", error->message);
  else if (status != 0 && status != 77)
    g_printerr ("app: the thumbnail is not what it should be\n");
  if (path != NULL)
    g_unlink (path);
  if (dir != NULL)
    g_rmdir (dir);
  return status;
}

int
main (int   argc,
      char *argv[])
{
  if (argc > 1 && g_str_equal (argv[1], "--helper"))
    return run_helper ();
  return run_app (argv[0], argc > 1 && g_str_equal (argv[1], "--twin"));
}
