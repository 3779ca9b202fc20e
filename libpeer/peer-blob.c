/* peer-blob.c: sealed memfd payloads. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "peer-blob-private.h"
#include "peer-error.h"

/* What a receiver needs before it maps: no write can change the bytes
 * (F_SEAL_WRITE also means no writable mapping exists any more), and the
 * size is fixed, so the mapping can never reach past the end of the file. */
#define PEER_BLOB_REQUIRED_SEALS (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK)

struct _PeerBlob
{
  gint ref_count;                       /* atomic; see peer_blob_unref() */
  int fd;
  gsize size;
  guint8 *data;                         /* read-only mapping; NULL when empty */
};

G_DEFINE_BOXED_TYPE (PeerBlob, peer_blob, peer_blob_ref, peer_blob_unref)

/* Every live mapping, by its address, so that an `ay` backed by a blob's
 * mapping can be sent on as that blob. Weak: a blob leaves the table
 * before it is unmapped. */
static GMutex registry_lock;
static GHashTable *registry;            /* guint8 *data → PeerBlob*, protected by @registry_lock */

static void
register_mapping (PeerBlob *blob)
{
  g_mutex_lock (&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new (NULL, NULL);
  g_hash_table_insert (registry, blob->data, blob);
  g_mutex_unlock (&registry_lock);
}

PeerBlob *
_peer_blob_lookup_mapping (gconstpointer data,
                           gsize         size)
{
  PeerBlob *blob = NULL;

  if (data == NULL)
    return NULL;
  g_mutex_lock (&registry_lock);
  if (registry != NULL)
    blob = g_hash_table_lookup (registry, data);
  if (blob != NULL && blob->size != size)
    blob = NULL;
  /* A blob whose count already reached zero is on its way out: only
   * take a reference while someone else still holds one. */
  while (blob != NULL)
    {
      gint old = g_atomic_int_get (&blob->ref_count);

      if (old == 0)
        blob = NULL;
      else if (g_atomic_int_compare_and_exchange (&blob->ref_count, old, old + 1))
        break;
    }
  g_mutex_unlock (&registry_lock);
  return blob;
}

static void
set_errno_error (GError    **error,
                 int         saved_errno,
                 const char *what)
{
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               "%s: %s", what, g_strerror (saved_errno));
}

/* Takes @fd; maps it read-only unless empty. */
static PeerBlob *
blob_new_mapped (int      fd,
                 gsize    size,
                 GError **error)
{
  PeerBlob *blob;
  void *data = NULL;

  if (size > 0)
    {
      data = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
      if (data == MAP_FAILED)
        {
          set_errno_error (error, errno, "Cannot map a blob");
          close (fd);
          return NULL;
        }
    }

  blob = g_new0 (PeerBlob, 1);
  blob->ref_count = 1;
  blob->fd = fd;
  blob->size = size;
  blob->data = data;
  if (data != NULL)
    register_mapping (blob);
  return blob;
}

/* Copies @data in with write(): the kernel allocates each page and fills
 * it in one go, where a writable mapping would first zero it, then fault
 * it in, then have it overwritten. */
static gboolean
write_into_memfd (int            fd,
                  const guint8  *data,
                  gsize          size,
                  GError       **error)
{
  gsize done = 0;

  while (done < size)
    {
      ssize_t n = pwrite (fd, data + done, MIN (size - done, (gsize) G_MAXSSIZE), (off_t) done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          set_errno_error (error, n < 0 ? errno : ENOSPC, "Cannot fill a blob");
          return FALSE;
        }
      done += (gsize) n;
    }
  return TRUE;
}

/* Makes, fills (from @data, or with @write_func) and seals the memfd;
 * returns it, or -1. */
static int make_sealed_memfd_once (gsize              size,
                                   const guint8      *data,
                                   PeerBlobWriteFunc  write_func,
                                   gpointer           user_data,
                                   gboolean          *busy,
                                   GError           **error);

static int
make_sealed_memfd (gsize              size,
                   const guint8      *data,
                   PeerBlobWriteFunc  write_func,
                   gpointer           user_data,
                   GError           **error)
{
  /* The kernel refuses F_SEAL_WRITE (EBUSY) while it finds a page of the
   * memfd still referenced, after waiting some 150 ms for it; under load
   * peer-bench saw that about once in several thousand 1 MiB blobs. A fresh
   * memfd is then tried, twice at most; a writer is only asked once. */
  for (guint attempt = 0; ; attempt++)
    {
      g_autoptr(GError) local_error = NULL;
      gboolean busy = FALSE;
      int fd = make_sealed_memfd_once (size, data, write_func, user_data, &busy, &local_error);

      if (fd >= 0 || !busy || data == NULL || attempt == 2)
        {
          if (fd < 0)
            g_propagate_error (error, g_steal_pointer (&local_error));
          return fd;
        }
      g_debug ("libpeer: %s; trying a new memfd", local_error->message);
    }
}

static int
make_sealed_memfd_once (gsize              size,
                        const guint8      *data,
                        PeerBlobWriteFunc  write_func,
                        gpointer           user_data,
                        gboolean          *busy,
                        GError           **error)
{
  int fd, saved_errno;

  fd = memfd_create ("libpeer-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    {
      saved_errno = errno;
      if (saved_errno == ENOSYS || saved_errno == EINVAL)
        g_set_error (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                     "Sealed memfds are not available: %s", g_strerror (saved_errno));
      else
        set_errno_error (error, saved_errno, "Cannot create a memfd");
      return -1;
    }
  if (ftruncate (fd, (off_t) size) != 0)
    {
      set_errno_error (error, errno, "Cannot size a blob");
      close (fd);
      return -1;
    }

  if (data != NULL && !write_into_memfd (fd, data, size, error))
    {
      close (fd);
      return -1;
    }
  if (data == NULL && size > 0)
    {
      /* Populated up front: the writer touches every page anyway, and one
       * bulk allocation is cheaper than a fault per page. */
      void *memory = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
      gboolean written;

      if (memory == MAP_FAILED)
        {
          set_errno_error (error, errno, "Cannot map a new blob");
          close (fd);
          return -1;
        }
      written = write_func (memory, size, user_data, error);
      /* F_SEAL_WRITE is refused while a writable mapping exists. */
      munmap (memory, size);
      if (!written)
        {
          if (error != NULL && *error == NULL)
            g_set_error_literal (error, PEER_ERROR, PEER_ERROR_FAILED, "The blob writer failed");
          close (fd);
          return -1;
        }
    }

  if (fcntl (fd, F_ADD_SEALS, PEER_BLOB_REQUIRED_SEALS | F_SEAL_SEAL) != 0)
    {
      *busy = errno == EBUSY;
      set_errno_error (error, errno, "Cannot seal a blob");
      close (fd);
      return -1;
    }
  return fd;
}

PeerBlob *
peer_blob_new_with_writer (gsize              size,
                           PeerBlobWriteFunc  write_func,
                           gpointer           user_data,
                           GError           **error)
{
  int fd;

  g_return_val_if_fail (write_func != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (size > G_MAXINT64)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "A blob of %" G_GSIZE_FORMAT " bytes is too large", size);
      return NULL;
    }
  fd = make_sealed_memfd (size, NULL, write_func, user_data, error);
  if (fd < 0)
    return NULL;
  return blob_new_mapped (fd, size, error);
}

PeerBlob *
peer_blob_new_from_data (gconstpointer data,
                         gsize         size,
                         GError      **error)
{
  int fd;

  g_return_val_if_fail (data != NULL || size == 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (size > G_MAXINT64)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "A blob of %" G_GSIZE_FORMAT " bytes is too large", size);
      return NULL;
    }
  fd = make_sealed_memfd (size, size > 0 ? data : NULL, NULL, NULL, error);
  if (fd < 0)
    return NULL;
  return blob_new_mapped (fd, size, error);
}

/* Why @fd cannot be a blob, or TRUE with its size. */
static gboolean
check_sealed_memfd (int      fd,
                    gssize   expected_size,
                    gsize   *out_size,
                    GError **error)
{
  struct stat st;
  int seals;

  if (fstat (fd, &st) != 0)
    {
      set_errno_error (error, errno, "Cannot inspect a blob's fd");
      return FALSE;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                           "A blob must be a memfd, not a special file");
      return FALSE;
    }
  seals = fcntl (fd, F_GET_SEALS);
  if (seals < 0)
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                           "A blob must be a sealed memfd; this fd cannot be sealed");
      return FALSE;
    }
  if ((seals & PEER_BLOB_REQUIRED_SEALS) != PEER_BLOB_REQUIRED_SEALS)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "A blob must be sealed against writing, growing and shrinking "
                   "(seals 0x%x, need 0x%x)", (guint) seals, (guint) PEER_BLOB_REQUIRED_SEALS);
      return FALSE;
    }
  if (st.st_size < 0 || (guint64) st.st_size > G_MAXSIZE ||
      (expected_size >= 0 && st.st_size != (off_t) expected_size))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "A blob of %" G_GINT64_FORMAT " bytes where %" G_GSSIZE_FORMAT " were announced",
                   (gint64) st.st_size, expected_size);
      return FALSE;
    }
  /* Every page must hold what the sender wrote. Reading a hole of a
   * shared memfd mapping allocates the page, in the reader's name: 8 KiB
   * written into a 64 MiB memfd would become 64 MiB of the receiver's
   * memory (and its normal-form check would read all of it). st_blocks
   * counts the pages in memory and in swap, 512-byte units; any hole
   * leaves it short of the size. */
  if ((guint64) st.st_blocks * 512 < (guint64) st.st_size)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "A blob of %" G_GINT64_FORMAT " bytes has holes (%" G_GUINT64_FORMAT
                   " bytes written): every byte must be written before it is sealed",
                   (gint64) st.st_size, (guint64) st.st_blocks * 512);
      return FALSE;
    }
  *out_size = (gsize) st.st_size;
  return TRUE;
}

PeerBlob *
peer_blob_new_take_fd (int      fd,
                       gssize   expected_size,
                       GError **error)
{
  gsize size;

  g_return_val_if_fail (fd >= 0, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_sealed_memfd (fd, expected_size, &size, error))
    {
      close (fd);
      return NULL;
    }
  return blob_new_mapped (fd, size, error);
}

PeerBlob *
peer_blob_new_from_fd_list (GUnixFDList *fd_list,
                            gint32       handle,
                            gssize       expected_size,
                            GError     **error)
{
  int n_fds = fd_list != NULL ? g_unix_fd_list_get_length (fd_list) : 0;
  int fd;

  g_return_val_if_fail (fd_list == NULL || G_IS_UNIX_FD_LIST (fd_list), NULL);

  if (handle < 0 || handle >= n_fds)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "No fd at index %d: the message carries %d", handle, n_fds);
      return NULL;
    }
  fd = g_unix_fd_list_get (fd_list, handle, error);
  if (fd < 0)
    return NULL;
  return peer_blob_new_take_fd (fd, expected_size, error);
}

PeerBlob *
peer_blob_ref (PeerBlob *blob)
{
  g_return_val_if_fail (blob != NULL, NULL);
  g_atomic_int_inc (&blob->ref_count);
  return blob;
}

void
peer_blob_unref (PeerBlob *blob)
{
  if (blob == NULL)
    return;
  if (!g_atomic_int_dec_and_test (&blob->ref_count))
    return;

  if (blob->data != NULL)
    {
      /* Out of the table before the address can be reused. */
      g_mutex_lock (&registry_lock);
      g_hash_table_remove (registry, blob->data);
      g_mutex_unlock (&registry_lock);
      munmap (blob->data, blob->size);
    }
  close (blob->fd);
  g_free (blob);
}

gsize
peer_blob_get_size (PeerBlob *blob)
{
  g_return_val_if_fail (blob != NULL, 0);
  return blob->size;
}

int
peer_blob_get_fd (PeerBlob *blob)
{
  g_return_val_if_fail (blob != NULL, -1);
  return blob->fd;
}

gint32
peer_blob_append_to_fd_list (PeerBlob    *blob,
                             GUnixFDList *fd_list,
                             GError     **error)
{
  g_return_val_if_fail (blob != NULL, -1);
  g_return_val_if_fail (G_IS_UNIX_FD_LIST (fd_list), -1);

  return g_unix_fd_list_append (fd_list, blob->fd, error);
}

GBytes *
peer_blob_get_bytes (PeerBlob *blob)
{
  g_return_val_if_fail (blob != NULL, NULL);

  if (blob->data == NULL)
    return g_bytes_new (NULL, 0);
  return g_bytes_new_with_free_func (blob->data, blob->size,
                                     (GDestroyNotify) peer_blob_unref, peer_blob_ref (blob));
}

gconstpointer
peer_blob_get_data (PeerBlob *blob,
                    gsize    *size)
{
  g_return_val_if_fail (blob != NULL, NULL);

  if (size != NULL)
    *size = blob->size;
  return blob->data;
}
