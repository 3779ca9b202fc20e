/* peer-server-socket.c: where a PeerServer listens: a fresh 0700
 * directory for the default address, a stale socket told from a live one,
 * the socket's mode set from the policy, and only our own socket removed
 * when we stop. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "peer-error.h"
#include "peer-server-socket-private.h"

char *
_peer_server_socket_random_name (void)
{
  static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  char buf[11];

  for (guint i = 0; i < sizeof buf - 1; i++)
    buf[i] = chars[g_random_int_range (0, sizeof chars - 1)];
  buf[sizeof buf - 1] = '\0';
  return g_strdup (buf);
}

/* The directory for the default address: $XDG_RUNTIME_DIR when it is a
 * directory that belongs to us and nobody else can enter, else /tmp. The
 * new directory itself is always 0700. */
char *
_peer_server_socket_make_private_dir (GError **error)
{
  const char *runtime = g_getenv ("XDG_RUNTIME_DIR");
  g_autofree char *template = NULL;
  struct stat st;

  if (runtime == NULL || !g_path_is_absolute (runtime) || stat (runtime, &st) != 0 ||
      !S_ISDIR (st.st_mode) || st.st_uid != getuid () || (st.st_mode & 0077) != 0)
    runtime = g_get_tmp_dir ();

  template = g_build_filename (runtime, "libpeer-XXXXXX", NULL);
  if (g_mkdtemp_full (template, 0700) == NULL)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Cannot create a private directory in %s: %s", runtime, g_strerror (saved_errno));
      return NULL;
    }
  return g_steal_pointer (&template);
}

/* A socket file at @path: replace it when nothing listens (a server died),
 * refuse when something does, refuse anything that is not a socket. */
gboolean
_peer_server_socket_check_existing (const char *path,
                                    GError    **error)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct stat st;
  int fd, r;

  if (lstat (path, &st) != 0)
    {
      if (errno == ENOENT)
        return TRUE;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "Cannot check %s: %s", path, g_strerror (errno));
      return FALSE;
    }
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_ADDRESS_IN_USE,
                   "%s exists and is not a socket", path);
      return FALSE;
    }

  g_strlcpy (sun.sun_path, path, sizeof sun.sun_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "socket(): %s", g_strerror (errno));
      return FALSE;
    }
  r = connect (fd, (struct sockaddr *) &sun, sizeof sun);
  int saved_errno = errno;
  close (fd);
  if (r == 0)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_ADDRESS_IN_USE,
                   "Another server is already listening on %s", path);
      return FALSE;
    }
  if (saved_errno != ECONNREFUSED)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_ADDRESS_IN_USE,
                   "Cannot tell whether a server listens on %s: %s", path, g_strerror (saved_errno));
      return FALSE;
    }
  g_debug ("libpeer: replacing stale socket %s", path);
  if (unlink (path) != 0 && errno != ENOENT)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "Cannot remove stale socket %s: %s", path, g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

GSocket *
_peer_server_socket_listen (GSocketAddress *address,
                            const char     *client_address,
                            const char     *socket_path,
                            gboolean        open_to_others,
                            dev_t          *out_dev,
                            ino_t          *out_ino,
                            GError        **error)
{
  g_autoptr(GSocket) sock = NULL;
  g_autoptr(GError) local_error = NULL;

  sock = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, error);
  if (sock == NULL)
    return NULL;
  if (!g_socket_bind (sock, address, FALSE, &local_error))
    {
      if (g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE))
        g_set_error (error, PEER_ERROR, PEER_ERROR_ADDRESS_IN_USE,
                     "Another server is already listening on %s", client_address);
      else
        g_set_error (error, local_error->domain, local_error->code,
                     "Cannot listen on %s: %s", client_address, local_error->message);
      return NULL;
    }

  if (socket_path != NULL)
    {
      struct stat st;
      /* Connecting needs write permission on the socket file. When only our
       * own uid may connect, nobody else gets it; when the policy admits
       * others, the file is open and authentication decides. */
      mode_t mode = open_to_others ? 0666 : 0600;

      if (chmod (socket_path, mode) != 0 || lstat (socket_path, &st) != 0)
        {
          int saved_errno = errno;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                       "Cannot set the mode of %s: %s", socket_path, g_strerror (saved_errno));
          unlink (socket_path);
          return NULL;
        }
      *out_dev = st.st_dev;
      *out_ino = st.st_ino;
    }

  g_socket_set_listen_backlog (sock, SOMAXCONN);
  if (!g_socket_listen (sock, error))
    {
      if (socket_path != NULL)
        unlink (socket_path);
      return NULL;
    }
  g_socket_set_blocking (sock, FALSE);
  return g_steal_pointer (&sock);
}

void
_peer_server_socket_remove (const char *socket_path,
                            const char *socket_dir,
                            dev_t       dev,
                            ino_t       ino)
{
  struct stat st;

  /* Only our own socket: a server started later on the same path after we
   * were declared stale must keep its socket. */
  if (socket_path != NULL && lstat (socket_path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
    unlink (socket_path);
  if (socket_dir != NULL)
    g_rmdir (socket_dir);
}
