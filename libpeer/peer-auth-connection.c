/* peer-auth-connection.c: a GUnixConnection whose input stream is bounded.
 *
 * GDBus on GLib 2.74 reads the authentication conversation a line at a
 * time into a string that grows until a newline comes, so a peer that
 * sends megabytes without one makes the server hold them all (GLib bounds
 * this only from 2.89). The handshake deadline limits the time, not the
 * bytes: a local socket carries gigabytes in five seconds.
 *
 * The bound sits in the stream GDBus reads the conversation from. Why
 * this shape: GDBus needs a GUnixConnection underneath, for the peer's
 * credentials during authentication and for SCM_RIGHTS afterwards, so a
 * wrapper GIOStream around the socket connection would cost both; and a
 * check of our own before GDBus reads cannot see what its buffered reader
 * has already taken. A subclass keeps the GUnixConnection and replaces
 * only g_io_stream_get_input_stream(), which GDBus uses for the
 * conversation alone: once authenticated, its worker reads the GSocket
 * directly (to receive fds), and it writes through the untouched output
 * stream. So the bound costs nothing after BEGIN, and the stream type
 * does not appear anywhere else.
 *
 * The counting stream (BoundedInputStream) is a private helper of this
 * type and lives here with it.
 */
#include "config.h"

#include "peer-auth-connection-private.h"

/* --- the bounded input stream ------------------------------------------ */

#define TYPE_BOUNDED_INPUT_STREAM (bounded_input_stream_get_type ())
G_DECLARE_FINAL_TYPE (BoundedInputStream, bounded_input_stream, BOUNDED, INPUT_STREAM, GInputStream)

struct _BoundedInputStream
{
  GInputStream parent_instance;
  GInputStream *base;           /* the socket connection's own */
  gsize max_bytes;
  gsize n_read;                 /* only GDBus's authentication thread reads */
};

G_DEFINE_FINAL_TYPE (BoundedInputStream, bounded_input_stream, G_TYPE_INPUT_STREAM)

static gssize
bounded_input_stream_read (GInputStream  *stream,
                           void          *buffer,
                           gsize          count,
                           GCancellable  *cancellable,
                           GError       **error)
{
  BoundedInputStream *self = BOUNDED_INPUT_STREAM (stream);
  gssize n;

  if (self->n_read >= self->max_bytes)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_MESSAGE_TOO_LARGE,
                   "More than %" G_GSIZE_FORMAT " bytes sent before authenticating", self->max_bytes);
      return -1;
    }
  /* Never past the bound: what GDBus buffers stays within it too. */
  n = g_input_stream_read (self->base, buffer, MIN (count, self->max_bytes - self->n_read),
                           cancellable, error);
  if (n > 0)
    self->n_read += n;
  return n;
}

static gboolean
bounded_input_stream_close (GInputStream  *stream,
                            GCancellable  *cancellable,
                            GError       **error)
{
  /* The socket belongs to the connection, which closes it. */
  return TRUE;
}

static void
bounded_input_stream_finalize (GObject *object)
{
  BoundedInputStream *self = BOUNDED_INPUT_STREAM (object);

  g_object_unref (self->base);
  G_OBJECT_CLASS (bounded_input_stream_parent_class)->finalize (object);
}

static void
bounded_input_stream_class_init (BoundedInputStreamClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = bounded_input_stream_finalize;
  G_INPUT_STREAM_CLASS (klass)->read_fn = bounded_input_stream_read;
  G_INPUT_STREAM_CLASS (klass)->close_fn = bounded_input_stream_close;
}

static void
bounded_input_stream_init (BoundedInputStream *self)
{
}

/* --- the connection ------------------------------------------------------- */

struct _PeerAuthConnection
{
  GUnixConnection parent_instance;
  gsize max_bytes;
  GMutex lock;
  GInputStream *input;          /* protected by @lock; made on first use */
};

G_DEFINE_FINAL_TYPE (PeerAuthConnection, _peer_auth_connection, G_TYPE_UNIX_CONNECTION)

static GInputStream *
peer_auth_connection_get_input_stream (GIOStream *stream)
{
  PeerAuthConnection *self = PEER_AUTH_CONNECTION (stream);
  GInputStream *input;

  g_mutex_lock (&self->lock);
  if (self->input == NULL)
    {
      BoundedInputStream *bounded = g_object_new (TYPE_BOUNDED_INPUT_STREAM, NULL);
      GIOStreamClass *parent = G_IO_STREAM_CLASS (_peer_auth_connection_parent_class);

      bounded->base = g_object_ref (parent->get_input_stream (stream));
      bounded->max_bytes = self->max_bytes;
      self->input = G_INPUT_STREAM (bounded);
    }
  input = self->input;
  g_mutex_unlock (&self->lock);
  return input;
}

static void
peer_auth_connection_finalize (GObject *object)
{
  PeerAuthConnection *self = PEER_AUTH_CONNECTION (object);

  g_clear_object (&self->input);
  g_mutex_clear (&self->lock);
  G_OBJECT_CLASS (_peer_auth_connection_parent_class)->finalize (object);
}

static void
_peer_auth_connection_class_init (PeerAuthConnectionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = peer_auth_connection_finalize;
  G_IO_STREAM_CLASS (klass)->get_input_stream = peer_auth_connection_get_input_stream;
}

static void
_peer_auth_connection_init (PeerAuthConnection *self)
{
  g_mutex_init (&self->lock);
}

GIOStream *
_peer_auth_connection_new (GSocket *socket,
                           gsize    max_bytes)
{
  PeerAuthConnection *self = g_object_new (PEER_TYPE_AUTH_CONNECTION, "socket", socket, NULL);

  self->max_bytes = max_bytes;
  return G_IO_STREAM (self);
}
