/* peer-server-socket-private.h: a PeerServer's socket in the filesystem. */
#pragma once

#include <sys/types.h>

#include <gio/gio.h>

G_BEGIN_DECLS

/* Ten random letters and digits, for an abstract socket's name. (transfer full) */
char     *_peer_server_socket_random_name      (void);
/* A new 0700 directory under $XDG_RUNTIME_DIR (when it is ours and
 * private) or the temporary directory. (transfer full) (nullable) */
char     *_peer_server_socket_make_private_dir (GError        **error);
/* Whether a socket may be made at @path: nothing there, or a stale socket
 * (removed); PEER_ERROR_ADDRESS_IN_USE when a server listens there or
 * @path is not a socket. */
gboolean  _peer_server_socket_check_existing   (const char     *path,
                                                GError        **error);
/* A listening, non-blocking socket bound to @address. A path socket
 * (@socket_path) gets mode 0600, or 0666 when @open_to_others, and its
 * device and inode go to @out_dev and @out_ino so that only it is
 * removed later. (transfer full) (nullable) */
GSocket  *_peer_server_socket_listen           (GSocketAddress *address,
                                                const char     *client_address,
                                                const char     *socket_path,
                                                gboolean        open_to_others,
                                                dev_t          *out_dev,
                                                ino_t          *out_ino,
                                                GError        **error);
/* Removes @socket_path if it is still the socket made (@dev, @ino), and
 * @socket_dir (nullable) if empty. */
void      _peer_server_socket_remove           (const char     *socket_path,
                                                const char     *socket_dir,
                                                dev_t           dev,
                                                ino_t           ino);

G_END_DECLS
