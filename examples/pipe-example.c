/* pipe-example.c: streaming through a pipe. The application hands its
 * helper the write end of a pipe and reads the output as it comes (a
 * decoder's frames, a log), instead of waiting for one large reply: the
 * bytes go through the pipe, never through the D-Bus socket, and the
 * method call only starts the stream and says how it ended.
 *
 * Cancelling is closing the read end: the helper's next write fails with
 * EPIPE and it stops. The helper's death shows twice: end-of-file on the
 * pipe, and the call failing with the reason PeerHelper knows.
 *
 * One program, both sides: run without arguments it is the application,
 * reading one stream to its end and cancelling a second one; with --twin,
 * the negative twin, its helper dies in the middle of a stream and the
 * application reports it. It starts itself with --helper [--die-after N]
 * as the helper. It exits 0 when everything went as it should. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib-unix.h>
#include <libpeer.h>

#include "example-fds.h"

#define DECODER_PATH  "/org/example/Decoder"
#define DECODER_IFACE "org.example.Decoder1"
/* How long the helper "decodes" each frame: long enough that the frames
 * visibly arrive one by one. */
#define FRAME_MS 20

static const char xml[] =
  "<node><interface name='" DECODER_IFACE "'>"
  "  <method name='Decode'>"
  "    <arg name='sink' type='h' direction='in'/>"
  "    <arg name='frames' type='u' direction='in'/>"
  "    <arg name='written' type='u' direction='out'/>"
  "  </method>"
  "</interface></node>";

/* --- the helper ---------------------------------------------------------- */

#define MAX_FRAMES 1000

typedef struct {
  PeerCall *call;                       /* a reference */
  int       sink;                       /* the pipe's write end: ours */
  guint     frames;
  guint     die_after;                  /* 0: never */
} Stream;

static void
stream_free (Stream *stream)
{
  if (stream->sink >= 0)
    close (stream->sink);
  peer_call_unref (stream->call);
  g_free (stream);
}

/* The decoder, in a worker thread: blocking writes are its back-pressure
 * (a reader that falls behind fills the pipe and holds the writer). */
static void
decode_thread (GTask        *task,
               gpointer      source_object,
               gpointer      task_data,
               GCancellable *cancellable)
{
  Stream *stream = task_data;
  guint written = 0;

  while (written < stream->frames)
    {
      g_autofree char *frame = NULL;
      gsize length, done = 0;

      g_usleep (FRAME_MS * 1000);       /* stands for the work of decoding a frame */
      frame = g_strdup_printf ("frame %u of %u\n", written + 1, stream->frames);
      length = strlen (frame);
      while (done < length)
        {
          ssize_t n = write (stream->sink, frame + done, length - done);

          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            {
              int saved_errno = errno;

              /* EPIPE: the reader closed its end, which is how it cancels. */
              g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                                       "Stopped after %u of %u frames: %s", written, stream->frames,
                                       saved_errno == EPIPE ? "the reader closed the pipe"
                                                            : g_strerror (saved_errno));
              return;
            }
          done += n;
        }
      written++;
      if (written == stream->die_after)
        raise (SIGKILL);                /* stands for a crash */
    }
  /* The reader sees end-of-file once every write end is closed: this one,
   * and the call's own copy, which goes with the call after the reply. */
  close (stream->sink);
  stream->sink = -1;
  g_task_return_int (task, written);
}

static void
on_decoded (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  Stream *stream = g_task_get_task_data (G_TASK (result));
  g_autoptr(GError) error = NULL;
  gssize written = g_task_propagate_int (G_TASK (result), &error);

  if (error != NULL)
    peer_call_take_error (stream->call, g_steal_pointer (&error));
  else
    peer_call_return_value (stream->call, g_variant_new ("(u)", (guint32) written));
}

static void
handle_decode (PeerCall *call,
               gpointer  user_data)
{
  const guint *die_after = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GTask) task = NULL;
  Stream *stream;
  gint32 handle;
  guint32 frames;
  int sink;

  g_variant_get (peer_call_get_parameters (call), "(hu)", &handle, &frames);
  if (frames > MAX_FRAMES)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                              "At most %d frames, not %u", MAX_FRAMES, frames);
      return;
    }
  /* Checks the handle (it came off the wire) and gives us our own copy;
   * the call's copy closes with the call. */
  sink = peer_call_dup_fd (call, handle, &error);
  if (sink < 0)
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }

  stream = g_new0 (Stream, 1);
  stream->call = peer_call_ref (call);
  stream->sink = sink;
  stream->frames = frames;
  stream->die_after = *die_after;
  /* The reply is made in on_decoded(), back in this main context. */
  task = g_task_new (NULL, NULL, on_decoded, NULL);
  g_task_set_task_data (task, stream, (GDestroyNotify) stream_free);
  g_task_run_in_thread (task, decode_thread);
}

static int
run_helper (guint die_after)
{
  static const PeerMethodEntry methods[] = { { "Decode", handle_decode, PEER_METHOD_FLAGS_NONE } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  /* A write to a pipe nobody reads must fail with EPIPE, not kill us with
   * SIGPIPE. (GLib's sockets ignore SIGPIPE already; say so anyway.) */
  signal (SIGPIPE, SIG_IGN);

  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  iface = peer_interface_new_for_xml (xml, DECODER_IFACE, &error);
  if (server == NULL || iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), &die_after, &error) ||
      !peer_server_export (server, DECODER_PATH, iface, &error))
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

typedef struct {
  int           source_fd;              /* the pipe's read end, or -1 once closed */
  guint         watch;                  /* its GSource id */
  GString      *pending;                /* bytes after the last complete line */
  guint         frames_seen;
  guint         cancel_after;           /* 0: read to the end */
  GCancellable *cancellable;            /* the "Stop" button */
  gint64        start_us;
  gboolean      replied;
  guint32       written;                /* from the reply */
  GError       *error;                  /* from the reply */
} Reader;

/* Stops reading: the watch goes, and closing the read end is what tells
 * the helper (its next write fails with EPIPE). */
static void
reader_stop (Reader *reader)
{
  g_clear_handle_id (&reader->watch, g_source_remove);
  if (reader->source_fd >= 0)
    close (reader->source_fd);
  reader->source_fd = -1;
}

static void
on_cancelled (GCancellable *cancellable,
              Reader       *reader)
{
  g_print ("app: cancelled after %u frames: closing our end of the pipe\n", reader->frames_seen);
  reader_stop (reader);
}

static gboolean
on_readable (int          fd,
             GIOCondition condition,
             gpointer     user_data)
{
  Reader *reader = user_data;
  char buf[4096];
  char *newline;
  ssize_t n;

  n = read (fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      /* End-of-file: every write end is closed, the helper's included
       * (it finished, or it died). An error ends the stream the same way. */
      reader->watch = 0;
      close (reader->source_fd);
      reader->source_fd = -1;
      return G_SOURCE_REMOVE;
    }
  g_string_append_len (reader->pending, buf, n);
  while ((newline = memchr (reader->pending->str, '\n', reader->pending->len)) != NULL)
    {
      gsize length = newline - reader->pending->str;

      reader->frames_seen++;
      g_print ("app:   %.*s, after %" G_GINT64_FORMAT " ms\n", (int) length, reader->pending->str,
               (g_get_monotonic_time () - reader->start_us) / 1000);
      g_string_erase (reader->pending, 0, length + 1);
      if (reader->frames_seen == reader->cancel_after)
        {
          reader->watch = 0;            /* removed by returning G_SOURCE_REMOVE */
          g_cancellable_cancel (reader->cancellable);
          return G_SOURCE_REMOVE;
        }
    }
  return G_SOURCE_CONTINUE;
}

static void
on_decode_reply (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Reader *reader = user_data;
  g_autoptr(GVariant) reply = NULL;

  reply = peer_helper_call_finish (PEER_HELPER (source), NULL, result, &reader->error);
  if (reply != NULL)
    g_variant_get (reply, "(u)", &reader->written);
  reader->replied = TRUE;
}

/* Starts a stream of @frames frames and reads it until it ends: the pipe
 * reached end-of-file (or we cancelled) and the call came back. Returns
 * how it ended: the helper's error, or NULL. */
static GError *
run_stream (PeerHelper *helper,
            guint       frames,
            guint       cancel_after,
            Reader     *reader)
{
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_autoptr(GError) error = NULL;
  gulong cancelled_id;
  int pipe_fds[2];

  if (!g_unix_open_pipe (pipe_fds, FD_CLOEXEC, &error) ||
      g_unix_fd_list_append (fds, pipe_fds[1], &error) < 0)
    g_error ("pipe: %s", error->message);
  /* The list holds a copy of the write end: ours goes now, or the pipe
   * would never reach end-of-file. The list's copy goes once the call is
   * sent (we drop our reference below; the call keeps one until then). */
  close (pipe_fds[1]);

  *reader = (Reader) { .source_fd = pipe_fds[0], .pending = g_string_new (NULL),
                       .cancel_after = cancel_after, .cancellable = g_cancellable_new (),
                       .start_us = g_get_monotonic_time () };
  cancelled_id = g_cancellable_connect (reader->cancellable, G_CALLBACK (on_cancelled), reader, NULL);
  g_unix_set_fd_nonblocking (reader->source_fd, TRUE, NULL);
  reader->watch = g_unix_fd_add (reader->source_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, reader);

  /* Not given the cancellable: cancelling stops the stream through the
   * pipe, and the reply then says how far the helper got. The timeout is
   * the default 25 s; a stream that may run longer wants G_MAXINT. */
  peer_helper_call (helper, DECODER_PATH, DECODER_IFACE, "Decode", g_variant_new ("(hu)", 0, frames),
                    G_VARIANT_TYPE ("(u)"), -1, fds, NULL, on_decode_reply, reader);
  g_clear_object (&fds);

  while (!reader->replied || reader->source_fd >= 0)
    g_main_context_iteration (NULL, TRUE);

  g_cancellable_disconnect (reader->cancellable, cancelled_id);
  reader_stop (reader);
  g_clear_object (&reader->cancellable);
  g_string_free (g_steal_pointer (&reader->pending), TRUE);
  return g_steal_pointer (&reader->error);
}

/* One stream to its end, one cancelled on the way. */
static gboolean
stream_and_cancel (PeerHelper *helper)
{
  g_autoptr(GError) error = NULL;
  Reader reader;

  g_print ("app: a stream of 5 frames through a pipe; the call carried 1 fd, its write end\n");
  error = run_stream (helper, 5, 0, &reader);
  if (error != NULL || reader.frames_seen != 5 || reader.written != 5)
    {
      g_printerr ("app: the stream ended after %u frames: %s\n", reader.frames_seen,
                  error != NULL ? error->message : "the helper says it wrote fewer");
      return FALSE;
    }
  g_print ("app: end of stream: 5 frames read, and the helper's reply says it wrote 5\n");

  g_print ("app: a stream of 50 frames, cancelled after 3\n");
  error = run_stream (helper, 50, 3, &reader);
  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE))
    {
      g_printerr ("app: the helper did not notice the cancellation: %s\n",
                  error != NULL ? error->message : "it wrote every frame");
      return FALSE;
    }
  g_print ("app: the helper stopped: %s\n", error->message);
  return TRUE;
}

/* The negative twin: the helper dies after frame 3 of 10. */
static gboolean
stream_until_helper_dies (PeerHelper *helper)
{
  g_autoptr(GError) error = NULL;
  Reader reader;

  g_print ("app: a stream of 10 frames from a helper that dies after 3\n");
  error = run_stream (helper, 10, 0, &reader);
  if (!g_error_matches (error, PEER_ERROR, PEER_ERROR_DISCONNECTED) || reader.frames_seen >= 10)
    {
      g_printerr ("app: the helper's death went unnoticed (%u frames): %s\n", reader.frames_seen,
                  error != NULL ? error->message : "the call succeeded");
      return FALSE;
    }
  g_print ("app: the stream broke after %u of 10 frames (end-of-file on the pipe), "
           "and the call says why: %s\n", reader.frames_seen, error->message);
  return TRUE;
}

static int
run_app (const char *self,
         gboolean    twin)
{
  const char *argv[] = { self, "--helper", twin ? "--die-after=3" : NULL, NULL };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = peer_helper_new (argv, NULL, &error);

  if (helper == NULL)
    {
      g_printerr ("app: %s\n", error->message);
      return 1;
    }
  return (twin ? stream_until_helper_dies (helper) : stream_and_cancel (helper)) ? 0 : 1;
}

int
main (int   argc,
      char *argv[])
{
  guint fds_before;
  int status;

  if (argc >= 2 && g_str_equal (argv[1], "--helper"))
    {
      guint64 die_after = 0;

      if (argc == 3 && (!g_str_has_prefix (argv[2], "--die-after=") ||
                        !g_ascii_string_to_unsigned (argv[2] + strlen ("--die-after="), 10, 1,
                                                     MAX_FRAMES, &die_after, NULL)))
        return 2;
      return run_helper ((guint) die_after);
    }
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
