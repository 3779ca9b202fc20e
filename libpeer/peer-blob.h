/* peer-blob.h: a large immutable byte buffer that travels as a sealed memfd.
 *
 * The sender writes the bytes once into a memfd and seals it against
 * writing, growing and shrinking; only the fd crosses the socket. The
 * receiver checks the seals before it maps the memory read-only, so the
 * bytes it reads cannot change under it and the mapping cannot shrink away
 * (which would turn a read into SIGBUS). Nothing is copied on the way, and
 * a blob is not bound by D-Bus's 128 MiB message limit.
 *
 * A PeerBlob is immutable and thread-safe. It owns one fd and, unless it is
 * empty, one read-only mapping; both go when the last reference does (the
 * GBytes from peer_blob_get_bytes() holds a reference).
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include <gio/gunixfdlist.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

/**
 * PEER_BLOB_DEFAULT_THRESHOLD:
 *
 * The size from which an `ay` argument travels as a blob on its own when
 * both peers are libpeer (see peer_client_set_blob_threshold()): 1 MiB.
 * Below it, a blob costs more than it saves: writing the bytes into a
 * fresh memfd's new pages, then mapping them. Measured on a 2-CPU machine
 * (Echo, p50, client and server on one CPU), against the same call
 * inline: 1.7x at 64 KiB, 1.2-1.7x at 128-256 KiB, 1.1x at 512 KiB,
 * 0.9-1.2x at 1 MiB, 0.7x at 2 MiB; past that the blob wins by far
 * (64 MiB: 50 ms against 350 ms).
 */
#define PEER_BLOB_DEFAULT_THRESHOLD (1024 * 1024)

/**
 * PeerBlob:
 *
 * A large immutable byte buffer that travels as a sealed memfd: only the
 * fd crosses the socket, and the receiver checks the seals before it maps
 * the memory read-only, so the bytes cannot change under it. Immutable
 * and thread-safe.
 */
#define PEER_TYPE_BLOB (peer_blob_get_type ())

PEER_EXPORT
GType      peer_blob_get_type          (void) G_GNUC_CONST;

/**
 * PeerBlobWriteFunc:
 * @data: (array length=size): the blob's memory, writable, zero-filled
 * @size: its size
 * @user_data: data given to peer_blob_new_with_writer()
 * @error: set to give up
 *
 * Fills a new blob in place. @data is only valid during the call.
 *
 * Returns: %TRUE when the blob is complete
 */
typedef gboolean (*PeerBlobWriteFunc) (guint8  *data,
                                       gsize    size,
                                       gpointer user_data,
                                       GError **error);

/**
 * peer_blob_new_with_writer: (skip)
 * @size: the blob's size in bytes
 * @write_func: (scope call) (closure user_data): fills the memory
 * @user_data: data for @write_func
 * @error: set when the memfd cannot be made (PEER_ERROR_NOT_SUPPORTED
 *   without memfd sealing, a G_IO_ERROR otherwise) or @write_func failed
 *
 * Makes a memfd of @size bytes, lets @write_func write it directly (no
 * intermediate buffer), then seals it. Not in the bindings, whose
 * functions would write to a copy: they use peer_blob_new_from_data().
 *
 * Returns: (transfer full) (nullable): the blob, or %NULL
 */
PEER_EXPORT
PeerBlob  *peer_blob_new_with_writer   (gsize              size,
                                        PeerBlobWriteFunc  write_func,
                                        gpointer           user_data,
                                        GError           **error);

/**
 * peer_blob_new_from_data:
 * @data: (array length=size) (element-type guint8) (nullable): the bytes;
 *   %NULL only when @size is 0
 * @size: how many
 * @error: as for peer_blob_new_with_writer()
 *
 * Copies @data into a new sealed blob: the one copy the sender makes.
 *
 * Returns: (transfer full) (nullable): the blob, or %NULL
 */
PEER_EXPORT
PeerBlob  *peer_blob_new_from_data     (gconstpointer      data,
                                        gsize              size,
                                        GError           **error);

/**
 * peer_blob_new_take_fd:
 * @fd: an fd received from a peer; the blob owns it from this call on,
 *   and it is closed on failure too
 * @expected_size: the size the blob must have, or -1 for any
 * @error: PEER_ERROR_INVALID_ARGS when @fd is not a memfd sealed against
 *   writing, growing and shrinking, or its size is not @expected_size
 *
 * Checks the seals of a received memfd, then maps it read-only.
 *
 * Returns: (transfer full) (nullable): the blob, or %NULL
 */
PEER_EXPORT
PeerBlob  *peer_blob_new_take_fd       (int                fd,
                                        gssize             expected_size,
                                        GError           **error);

/**
 * peer_blob_new_from_fd_list:
 * @fd_list: (nullable) (transfer none): the fds that came with a message
 * @handle: an `h` value from that message, not yet trusted
 * @expected_size: as for peer_blob_new_take_fd()
 * @error: PEER_ERROR_INVALID_ARGS when @handle indexes no fd of @fd_list,
 *   or as for peer_blob_new_take_fd()
 *
 * Makes a blob of a duplicate of fd @handle; @fd_list keeps its own.
 *
 * Returns: (transfer full) (nullable): the blob, or %NULL
 */
PEER_EXPORT
PeerBlob  *peer_blob_new_from_fd_list  (GUnixFDList       *fd_list,
                                        gint32             handle,
                                        gssize             expected_size,
                                        GError           **error);

/**
 * peer_blob_ref:
 * @blob: a blob
 *
 * Thread-safe.
 *
 * Returns: (transfer full): @blob
 */
PEER_EXPORT
PeerBlob  *peer_blob_ref               (PeerBlob          *blob);

/**
 * peer_blob_unref:
 * @blob: (nullable) (transfer full): a blob
 *
 * The last reference closes the fd and unmaps the memory. Thread-safe.
 */
PEER_EXPORT
void       peer_blob_unref             (PeerBlob          *blob);

/**
 * peer_blob_get_size:
 * @blob: a blob
 *
 * Returns: the blob's size in bytes
 */
PEER_EXPORT
gsize      peer_blob_get_size          (PeerBlob          *blob);

/**
 * peer_blob_get_fd:
 * @blob: a blob
 *
 * Returns: the sealed memfd; the blob owns and closes it
 */
PEER_EXPORT
int        peer_blob_get_fd            (PeerBlob          *blob);

/**
 * peer_blob_append_to_fd_list:
 * @blob: a blob
 * @fd_list: (transfer none): the fds of a message being built
 * @error: set when the fd cannot be duplicated
 *
 * Appends a duplicate of the blob's fd (the list owns the duplicate).
 *
 * Returns: the `h` value to send, or -1 with @error set
 */
PEER_EXPORT
gint32     peer_blob_append_to_fd_list (PeerBlob          *blob,
                                        GUnixFDList       *fd_list,
                                        GError           **error);

/**
 * peer_blob_get_bytes:
 * @blob: a blob
 *
 * The bytes, read straight from the read-only mapping: no copy. The
 * GBytes keeps the blob alive.
 *
 * Returns: (transfer full): the bytes
 */
PEER_EXPORT
GBytes    *peer_blob_get_bytes         (PeerBlob          *blob);

/**
 * peer_blob_get_data:
 * @blob: a blob
 * @size: (out) (optional): its size
 *
 * Returns: (transfer none) (array length=size) (element-type guint8) (nullable): the mapped
 *   bytes, valid while @blob lives; %NULL for an empty blob
 */
PEER_EXPORT
gconstpointer peer_blob_get_data       (PeerBlob          *blob,
                                        gsize             *size);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PeerBlob, peer_blob_unref)

G_END_DECLS
