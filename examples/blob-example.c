/* blob-example.c: zero-copy buffers. The helper renders (or decodes) into
 * a memfd, seals it against writing, growing and shrinking, and hands the
 * application the fd; the application checks the seals, then maps the
 * memory read-only, the way glycin's sandboxed loaders hand over textures.
 * Nothing is copied on the way: what crosses the socket is one fd.
 *
 * The seal check is the receiver's to do, and PeerBlob does it: without
 * F_SEAL_WRITE the sender could change the pixels after the application
 * checked them, and without F_SEAL_SHRINK it could truncate the memfd
 * while the application reads, which kills the reader with SIGBUS.
 *
 * One program, both sides: run without arguments it is the application;
 * with --twin, the negative twin, its helper forgets the seals and the
 * application refuses the buffer. It starts itself with --helper
 * [--no-seals] as the helper. It exits 0 when everything went as it
 * should, the refusal included. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libpeer.h>

#include "example-fds.h"

#define RENDERER_PATH  "/org/example/Renderer"
#define RENDERER_IFACE "org.example.Renderer1"
#define MAX_SIDE 8192
#define BYTES_PER_PIXEL 4               /* RGBA, 8 bits each */

static const char xml[] =
  "<node><interface name='" RENDERER_IFACE "'>"
  "  <method name='Render'>"
  "    <arg name='width' type='u' direction='in'/>"
  "    <arg name='height' type='u' direction='in'/>"
  "    <arg name='pixels' type='h' direction='out'/>"
  "    <arg name='stride' type='u' direction='out'/>"
  "  </method>"
  "</interface></node>";

/* The picture: a gradient, red across and green down. Both sides compute
 * it, so that the application can check what it got. */
static guint32
pixel_at (guint x,
          guint y,
          guint width,
          guint height)
{
  guint8 rgba[4] = { (guint8) (x * 255 / MAX (width - 1, 1)), (guint8) (y * 255 / MAX (height - 1, 1)), 0x80, 0xff };
  guint32 pixel;

  memcpy (&pixel, rgba, sizeof pixel);
  return pixel;
}

/* --- the helper ---------------------------------------------------------- */

typedef struct {
  guint width, height, stride;
} Geometry;

/* Draws straight into the memfd's pages: no intermediate buffer. */
static gboolean
render (guint8  *data,
        gsize    size,
        gpointer user_data,
        GError **error)
{
  const Geometry *g = user_data;

  for (guint y = 0; y < g->height; y++)
    for (guint x = 0; x < g->width; x++)
      {
        guint32 pixel = pixel_at (x, y, g->width, g->height);

        memcpy (data + (gsize) y * g->stride + (gsize) x * BYTES_PER_PIXEL, &pixel, sizeof pixel);
      }
  return TRUE;
}

/* What a buggy (or hostile) helper sends: the same pixels in a memfd it
 * can still write to, grow and shrink. */
static int
render_unsealed (const Geometry *g,
                 GError        **error)
{
  gsize size = (gsize) g->stride * g->height;
  guint8 *data;
  int fd;

  fd = memfd_create ("unsealed-pixels", MFD_CLOEXEC);
  if (fd < 0 || ftruncate (fd, (off_t) size) != 0 ||
      (data = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "memfd: %s", g_strerror (errno));
      if (fd >= 0)
        close (fd);
      return -1;
    }
  render (data, size, (gpointer) g, NULL);
  munmap (data, size);
  return fd;
}

static void
handle_render (PeerCall *call,
               gpointer  user_data)
{
  const gboolean *seal = user_data;
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(GError) error = NULL;
  Geometry g;

  g_variant_get (peer_call_get_parameters (call), "(uu)", &g.width, &g.height);
  if (g.width < 1 || g.width > MAX_SIDE || g.height < 1 || g.height > MAX_SIDE)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "Width and height must be from 1 to %d, not %ux%u", MAX_SIDE, g.width, g.height);
      return;
    }
  g.stride = g.width * BYTES_PER_PIXEL;

  if (*seal)
    {
      /* A memfd of the right size, filled by render(), then sealed. The
       * list gets its own copy of the fd; the blob keeps its own. */
      blob = peer_blob_new_with_writer ((gsize) g.stride * g.height, render, &g, &error);
      if (blob == NULL || peer_blob_append_to_fd_list (blob, fds, &error) < 0)
        {
          peer_call_take_error (call, g_steal_pointer (&error));
          return;
        }
    }
  else
    {
      int fd = render_unsealed (&g, &error);

      if (fd < 0 || g_unix_fd_list_append (fds, fd, &error) < 0)
        {
          if (fd >= 0)
            close (fd);
          peer_call_take_error (call, g_steal_pointer (&error));
          return;
        }
      close (fd);
    }
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(hu)", 0, g.stride), fds);
}

static int
run_helper (gboolean seal)
{
  static const PeerMethodEntry methods[] = { { "Render", handle_render, PEER_METHOD_FLAGS_NONE } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  iface = peer_interface_new_for_xml (xml, RENDERER_IFACE, &error);
  if (server == NULL || iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), &seal, &error) ||
      !peer_server_export (server, RENDERER_PATH, iface, &error))
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

/* Asks for a @width x @height picture. Returns it mapped read-only, or
 * NULL with @error set: the helper's error, or the refusal of a buffer
 * that is not sealed or not the size the geometry says. */
static PeerBlob *
render_picture (PeerHelper *helper,
                guint       width,
                guint       height,
                guint      *out_stride,
                int        *out_fd_number,
                GError    **error)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  gint32 handle;
  guint32 stride;

  reply = peer_helper_call_sync (helper, RENDERER_PATH, RENDERER_IFACE, "Render",
                                 g_variant_new ("(uu)", width, height), G_VARIANT_TYPE ("(hu)"), -1,
                                 NULL, &fds, NULL, error);
  if (reply == NULL)
    return NULL;
  g_variant_get (reply, "(hu)", &handle, &stride);
  /* The stride came off the wire: it must fit the geometry we asked for. */
  if (stride < width * BYTES_PER_PIXEL || stride > MAX_SIDE * BYTES_PER_PIXEL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL, "A stride of %u for a width of %u", stride, width);
      return NULL;
    }
  *out_stride = stride;
  *out_fd_number = fds != NULL && handle >= 0 && handle < g_unix_fd_list_get_length (fds)
                     ? g_unix_fd_list_peek_fds (fds, NULL)[handle] : -1;
  /* Checks the handle against the fds that came, then the seals and the
   * size (which must be what the geometry says), then maps read-only. */
  return peer_blob_new_from_fd_list (fds, handle, (gssize) stride * height, error);
}

static gboolean
show_picture (PeerHelper *helper)
{
  const guint width = 1024, height = 768;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = NULL;
  const guint8 *pixels;
  guint stride, wrong = 0;
  int fd_number = -1;
  int seals;

  blob = render_picture (helper, width, height, &stride, &fd_number, &error);
  if (blob == NULL)
    {
      g_printerr ("app: %s\n", error->message);
      return FALSE;
    }
  pixels = peer_blob_get_data (blob, NULL);
  seals = fcntl (peer_blob_get_fd (blob), F_GET_SEALS);
  g_print ("app: a %ux%u picture came as fd %d: 1 fd crossed the socket, not the %" G_GSIZE_FORMAT
           " bytes\n", width, height, fd_number, peer_blob_get_size (blob));
  g_print ("app: its seals:%s%s%s%s; mapped read-only at %p, nothing copied\n",
           seals & F_SEAL_WRITE ? " write" : "", seals & F_SEAL_GROW ? " grow" : "",
           seals & F_SEAL_SHRINK ? " shrink" : "", seals & F_SEAL_SEAL ? " seal" : "", (void *) pixels);

  for (guint y = 0; y < height; y++)
    for (guint x = 0; x < width; x++)
      {
        guint32 pixel = pixel_at (x, y, width, height);

        if (memcmp (pixels + (gsize) y * stride + (gsize) x * BYTES_PER_PIXEL, &pixel, sizeof pixel) != 0)
          wrong++;
      }
  if (wrong > 0)
    {
      g_printerr ("app: %u pixels are not what the helper should have drawn\n", wrong);
      return FALSE;
    }
  g_print ("app: every pixel checked, read straight from the helper's pages\n");
  return TRUE;                          /* the blob's unref unmaps and closes it */
}

/* The negative twin: the helper sends pixels it can still change. */
static gboolean
refuse_unsealed_picture (PeerHelper *helper)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerBlob) blob = NULL;
  guint stride;
  int fd_number = -1;

  blob = render_picture (helper, 640, 480, &stride, &fd_number, &error);
  if (blob != NULL)
    {
      g_printerr ("app: an unsealed buffer was accepted\n");
      return FALSE;
    }
  if (!g_error_matches (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS))
    {
      g_printerr ("app: failed, but not for the seals: %s\n", error->message);
      return FALSE;
    }
  g_print ("app: refused the helper's buffer (fd %d, closed unmapped): %s\n", fd_number, error->message);
  return TRUE;
}

static int
run_app (const char *self,
         gboolean    twin)
{
  const char *argv[] = { self, "--helper", twin ? "--no-seals" : NULL, NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = peer_helper_new (argv, NULL, &error);

  if (helper == NULL)
    {
      g_printerr ("app: %s\n", error->message);
      return 1;
    }
  return (twin ? refuse_unsealed_picture (helper) : show_picture (helper)) ? 0 : 1;
}

int
main (int   argc,
      char *argv[])
{
  guint fds_before;
  int status;

  if (argc >= 2 && g_str_equal (argv[1], "--helper"))
    return run_helper (!(argc == 3 && g_str_equal (argv[2], "--no-seals")));
  if (argc > 2 || (argc == 2 && !g_str_equal (argv[1], "--twin")))
    {
      g_printerr ("usage: %s [--twin]\n", argv[0]);
      return 2;
    }

  fds_before = example_count_fds ();
  status = run_app (argv[0], argc == 2);
  if (!example_check_fds ("app", fds_before))
    status = 1;
  return status;
}
