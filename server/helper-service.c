/* helper-service.c: org.libpeer.Helper1, the example helper, through the
 * skeleton peer-codegen generates from its XML: each handler gets its
 * arguments unpacked and replies with a typed peer_helper1_complete_*().
 *
 * Quick() is the "random data" service and Notify() the notification-style
 * call with a broadcast signal; the properties show stored (Version,
 * Label) and live (Peers) values. OpenFile() and Digest() are the fd
 * services: a file the app may not open itself, handed out from under a
 * root directory, and a hash of whatever the app hands in. StartJob() hands
 * over to job-service.c. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib-unix.h>

#include "peer-protocol-stubs.h"
#include "services.h"

#define QUICK_MAX_BITS 1024
#define LABEL_MAX_BYTES 256
/* A digest holds an fd for as long as its peer keeps the pipe open, but a
 * thread of GIO's pool only while there are bytes to read (see "Digest").
 * Each peer has its own share; the server-wide cap bounds the fds, and
 * takes 64 peers at their full share to reach. */
#define DIGEST_SHARE "running digests"
#define DIGEST_DEFAULT_MAX_PER_PEER 4
#define DIGEST_DEFAULT_MAX_TOTAL 256
#define DIGEST_CHUNK_BYTES (128 * 1024)
/* Bytes one turn in a pool thread may read before it goes to the back of
 * the pool's queue: a peer streaming without end takes its turns among
 * everyone else's tasks (8 MiB is some 20 ms of SHA-256 here). */
#define DIGEST_TURN_BYTES (8 * 1024 * 1024)
/* How long a turn that has read something waits for more. Without it a
 * turn ends each time the reader, faster than its writer, empties the
 * pipe (every 64 KiB or less): 100 MiB from a writer that computes as it
 * writes (test-fd's) took some 25% longer than with a thread that blocks;
 * with it, within the noise of a few per cent. */
#define DIGEST_REFILL_MS 2

/* Shared by the server (object data) and every digest in flight, so that
 * a digest finishing after the server went away still finds it. */
typedef struct {
  PeerServer *server;                   /* not a reference: the server owns us */
  PeerInterface *iface;                 /* not a reference: the server holds it */
  guint32 last_notification_id;
  int root_fd;                          /* O_PATH of the files root, or -1 */
  char *root_path;                      /* its canonical path, or NULL */
  /* Main context only */
  guint n_digests;
  guint max_digests_per_peer;
  guint max_digests;
} Helper;

static void
helper_clear (gpointer data)
{
  Helper *helper = data;

  if (helper->root_fd >= 0)
    close (helper->root_fd);
  g_free (helper->root_path);
}

static void
helper_release (gpointer data)
{
  g_rc_box_release_full (data, helper_clear);
}

char *
peer_helper_random_decimal (guint bits)
{
  /* Little-endian 32-bit limbs; repeated division by 10^9 gives the
   * decimal digits nine at a time. */
  guint32 limbs[QUICK_MAX_BITS / 32];
  guint n = (bits + 31) / 32;
  g_autoptr(GString) digits = g_string_new (NULL);
  gboolean zero;

  g_return_val_if_fail (bits >= 1 && bits <= QUICK_MAX_BITS, NULL);

  for (gsize got = 0; got < n * sizeof (guint32);)
    {
      ssize_t r = getrandom ((guint8 *) limbs + got, n * sizeof (guint32) - got, 0);
      if (r > 0)
        got += r;
      else
        for (guint i = 0; i < n; i++)   /* getrandom() can only fail with EINTR here */
          limbs[i] = g_random_int ();
    }
  if (bits % 32 != 0)
    limbs[n - 1] &= (1u << (bits % 32)) - 1;

  do
    {
      guint64 rem = 0;
      char chunk[10];

      zero = TRUE;
      for (guint i = n; i-- > 0;)
        {
          guint64 cur = (rem << 32) | limbs[i];
          limbs[i] = (guint32) (cur / 1000000000u);
          rem = cur % 1000000000u;
          if (limbs[i] != 0)
            zero = FALSE;
        }
      g_snprintf (chunk, sizeof chunk, zero ? "%u" : "%09u", (guint) rem);
      g_string_prepend (digits, chunk);
    }
  while (!zero);

  return g_string_free (g_steal_pointer (&digits), FALSE);
}

/* Thread-safe (org.libpeer.ThreadSafe in the XML): it touches nothing shared. */
static void
handle_quick (PeerCall *call,
              gint32    bits,
              gpointer  user_data)
{
  g_autofree char *number = NULL;

  if (bits < 1 || bits > QUICK_MAX_BITS)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "bits must be between 1 and %d, not %d", QUICK_MAX_BITS, bits);
      return;
    }
  number = peer_helper_random_decimal (bits);
  peer_helper1_complete_quick (call, number);
}

static void
handle_notify (PeerCall   *call,
               const char *app_name,
               guint32     replaces_id,
               const char *app_icon,
               const char *summary,
               const char *body,
               GVariant   *actions,
               GVariant   *hints,
               gint32      expire_timeout,
               gpointer    user_data)
{
  Helper *helper = user_data;
  g_autoptr(GError) error = NULL;
  guint32 id;

  if (expire_timeout < -1)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "expire_timeout must be -1, 0 or positive, not %d", expire_timeout);
      return;
    }
  if (g_variant_n_children (actions) % 2 != 0)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "actions must come in (key, label) pairs");
      return;
    }

  if (replaces_id != 0 && replaces_id <= helper->last_notification_id)
    id = replaces_id;
  else
    {
      id = ++helper->last_notification_id;
      if (id == 0)                      /* 0 means "new"; never hand it out */
        id = ++helper->last_notification_id;
    }

  peer_helper1_complete_notify (call, id);
  if (!peer_helper1_emit_notified (helper->iface, NULL, id, summary, &error))
    g_debug ("Notified not sent: %s", error->message);
}

/* --- OpenFile ------------------------------------------------------------ */

static gboolean
set_open_error (GError    **error,
                int         saved_errno,
                const char *path)
{
  switch (saved_errno)
    {
    case ENOENT:
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_FILE_NOT_FOUND, "No file %s", path);
      break;
    case EXDEV:
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                   "%s leads out of the files root", path);
      break;
    case ELOOP:
    case ENOTDIR:
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                   "%s goes through a symbolic link that is not allowed", path);
      break;
    default:
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                   "Cannot open %s: %s", path, g_strerror (saved_errno));
      break;
    }
  return FALSE;
}

/* Without openat2(): one component at a time, never following a symbolic
 * link (O_NOFOLLOW) and never going up (".." refused). Stricter than
 * openat2's RESOLVE_BENEATH, which follows links that stay inside the root:
 * here every link is refused, so nothing a link points at can be reached,
 * and no race between checking a path and opening it exists. */
static int
open_beneath_by_components (int         root_fd,
                            const char *path,
                            int         flags,
                            GError    **error)
{
  g_auto(GStrv) parts = g_strsplit (path, "/", -1);
  int dir_fd = dup (root_fd);
  guint n = g_strv_length (parts);

  if (dir_fd < 0)
    {
      set_open_error (error, errno, path);
      return -1;
    }
  for (guint i = 0; i < n; i++)
    {
      gboolean last = i + 1 == n;
      const char *part = parts[i];
      int next;

      if (g_str_equal (part, ".."))
        {
          close (dir_fd);
          g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                       "%s leads out of the files root", path);
          return -1;
        }
      if (!last && (part[0] == '\0' || g_str_equal (part, ".")))
        continue;
      if (last && (part[0] == '\0' || g_str_equal (part, ".")))
        {
          close (dir_fd);
          g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED, "%s is not a regular file", path);
          return -1;
        }
      next = last ? openat (dir_fd, part, flags | O_NOFOLLOW)
                  : openat (dir_fd, part, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0)
        {
          int saved_errno = errno;
          close (dir_fd);
          set_open_error (error, saved_errno, path);
          return -1;
        }
      close (dir_fd);
      dir_fd = next;
    }
  return dir_fd;
}

int
peer_helper_open_beneath (int         root_fd,
                          const char *root_path,
                          const char *path,
                          gboolean    use_openat2,
                          GError    **error)
{
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOCTTY: a
   * terminal must not become ours. Both only matter until the type check. */
  const int flags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  static gint have_openat2 = TRUE;
  const char *relative = path;
  struct stat st;
  int fd = -1;

  if (path[0] == '\0')
    {
      g_set_error_literal (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "The path is empty");
      return -1;
    }
  if (path[0] == '/')
    {
      gsize len = strlen (root_path);

      if (strncmp (path, root_path, len) != 0 || (path[len] != '/' && path[len] != '\0'))
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                       "%s is outside the files root", path);
          return -1;
        }
      relative = path + len;
      while (*relative == '/')
        relative++;
      if (*relative == '\0')
        relative = ".";
    }

  if (use_openat2 && g_atomic_int_get (&have_openat2))
    {
      struct open_how how = {
        .flags = (guint64) flags,
        /* BENEATH: no "..", absolute path or symlink may leave the root;
         * NO_MAGICLINKS: no /proc/self/fd/N-style jumps either. */
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
      };

      fd = (int) syscall (SYS_openat2, root_fd, relative, &how, sizeof how);
      if (fd < 0 && (errno == ENOSYS || errno == E2BIG || errno == EPERM))
        {
          /* No openat2() here (or a seccomp filter hides it). */
          g_debug ("openat2() unavailable (%s); opening component by component", g_strerror (errno));
          g_atomic_int_set (&have_openat2, FALSE);
        }
      else if (fd < 0)
        {
          set_open_error (error, errno, path);
          return -1;
        }
    }
  if (fd < 0)
    {
      fd = open_beneath_by_components (root_fd, relative, flags, error);
      if (fd < 0)
        return -1;
    }

  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      close (fd);
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED, "%s is not a regular file", path);
      return -1;
    }
  /* The peer gets an ordinary blocking fd. */
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

static void
handle_open_file (PeerCall   *call,
                  const char *path,
                  gpointer    user_data)
{
  Helper *helper = user_data;
  g_autoptr(GError) error = NULL;
  int fd;

  if (peer_sandbox_is_inside ())
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                              "OpenFile needs paths, and this helper runs in a sandbox that has none of "
                              "yours: pass the file as an fd (Digest)");
      return;
    }
  if (helper->root_fd < 0)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                              "This server has no files root: it opens no files");
      return;
    }
  fd = peer_helper_open_beneath (helper->root_fd, helper->root_path, path, TRUE, &error);
  if (fd < 0)
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  /* The reply sends a duplicate. */
  peer_helper1_complete_open_file (call, fd);
  close (fd);
}

/* --- Digest -------------------------------------------------------------- */

/* A digest reads in turns. A turn runs in a thread of GIO's pool and reads
 * what the fd has, with a poll() before each read so that no read waits
 * on a silent writer; when the fd has nothing more, the digest waits in
 * the server's main context on an fd source, holding no thread. A peer
 * that hands in pipes it never writes to therefore ties up its own share
 * of digests and their fds, not the pool every other task needs. */

typedef enum {
  DIGEST_TURN_DONE,                     /* end of file: the digest is ready */
  DIGEST_TURN_WAIT,                     /* nothing to read now */
  DIGEST_TURN_MORE,                     /* read its budget; more may be there */
} DigestTurn;

typedef struct {
  Helper *helper;                       /* a reference */
  PeerCall *call;                       /* a reference */
  PeerConnection *peer;                 /* not a reference: @call holds it */
  GMainContext *context;                /* the server's, where turns end */
  int fd;                               /* ours */
  GChecksum *checksum;                  /* used by one turn at a time */
  GCancellable *cancellable;            /* cancelled when the peer goes */
  GSource *wait_source;                 /* between turns, while the fd is silent */
  gulong closed_handler;
} Digest;

static void digest_start_turn (Digest *digest);

/* Main context: replies, and gives back what the digest held. */
static void
digest_finish (Digest *digest,
               char   *hex,
               GError *error)
{
  g_autofree char *owned_hex = hex;

  if (digest->wait_source != NULL)
    {
      g_source_destroy (digest->wait_source);
      g_clear_pointer (&digest->wait_source, g_source_unref);
    }
  g_clear_signal_handler (&digest->closed_handler, digest->peer);
  if (error != NULL)
    peer_call_take_error (digest->call, error);
  else
    peer_helper1_complete_digest (digest->call, hex);
  close (digest->fd);
  digest->helper->n_digests--;
  peer_connection_give_back_share (digest->peer, DIGEST_SHARE);

  g_checksum_free (digest->checksum);
  g_object_unref (digest->cancellable);
  g_main_context_unref (digest->context);
  peer_call_unref (digest->call);
  helper_release (digest->helper);
  g_free (digest);
}

static void
digest_turn_thread (GTask        *task,
                    gpointer      source_object,
                    gpointer      task_data,
                    GCancellable *cancellable)
{
  Digest *digest = task_data;
  g_autofree guint8 *buf = g_malloc (DIGEST_CHUNK_BYTES);
  gsize turn_bytes = 0;

  while (turn_bytes < DIGEST_TURN_BYTES)
    {
      struct pollfd pfd = { digest->fd, POLLIN, 0 };
      ssize_t n;

      if (g_task_return_error_if_cancelled (task))
        return;
      /* A stream that flows is read on in this turn: its writer gets a
       * moment to refill the pipe before the turn gives the thread back. */
      n = poll (&pfd, 1, turn_bytes > 0 ? DIGEST_REFILL_MS : 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n == 0)
        {
          g_task_return_int (task, DIGEST_TURN_WAIT);
          return;
        }
      /* POLLHUP or POLLERR: read() says which (end of file, or the error). */
      n = read (digest->fd, buf, DIGEST_CHUNK_BYTES);
      if (n > 0)
        {
          g_checksum_update (digest->checksum, buf, n);
          turn_bytes += n;
        }
      else if (n == 0)
        {
          g_task_return_int (task, DIGEST_TURN_DONE);
          return;
        }
      else if (errno != EINTR && errno != EAGAIN)
        {
          int saved_errno = errno;
          g_task_return_new_error (task, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                                   "Cannot read the fd: %s", g_strerror (saved_errno));
          return;
        }
    }
  g_task_return_int (task, DIGEST_TURN_MORE);
}

static gboolean
on_digest_readable (int          fd,
                    GIOCondition condition,
                    gpointer     user_data)
{
  Digest *digest = user_data;

  g_clear_pointer (&digest->wait_source, g_source_unref);
  digest_start_turn (digest);
  return G_SOURCE_REMOVE;
}

static void
on_digest_turn_done (GObject      *source,
                     GAsyncResult *result,
                     gpointer      user_data)
{
  Digest *digest = user_data;
  g_autoptr(GError) error = NULL;
  gssize turn;

  /* A turn that ends after the peer went comes back cancelled, whatever
   * it found: GTask checks the cancellable first. */
  turn = g_task_propagate_int (G_TASK (result), &error);
  if (error != NULL)
    digest_finish (digest, NULL, g_steal_pointer (&error));
  else if (turn == DIGEST_TURN_DONE)
    digest_finish (digest, g_strdup (g_checksum_get_string (digest->checksum)), NULL);
  else if (turn == DIGEST_TURN_MORE)
    digest_start_turn (digest);
  else
    {
      digest->wait_source = g_unix_fd_source_new (digest->fd, G_IO_IN | G_IO_HUP | G_IO_ERR);
      g_source_set_callback (digest->wait_source, G_SOURCE_FUNC (on_digest_readable), digest, NULL);
      g_source_set_static_name (digest->wait_source, "[peer-server] digest waits");
      g_source_attach (digest->wait_source, digest->context);
    }
}

static void
digest_start_turn (Digest *digest)
{
  g_autoptr(GTask) task = g_task_new (NULL, digest->cancellable, on_digest_turn_done, digest);

  g_task_set_source_tag (task, digest_start_turn);
  g_task_set_task_data (task, digest, NULL);
  g_task_run_in_thread (task, digest_turn_thread);
}

static void
on_digest_peer_closed (PeerConnection *peer,
                       const GError   *reason,
                       Digest         *digest)
{
  g_cancellable_cancel (digest->cancellable);
  /* Between turns nothing else would notice; in a turn, its end does. */
  if (digest->wait_source != NULL)
    digest_finish (digest, NULL, g_error_copy (reason));
}

static gboolean
parse_checksum_type (const char    *name,
                     GChecksumType *out)
{
  static const struct { const char *name; GChecksumType type; } types[] = {
    { "md5", G_CHECKSUM_MD5 },
    { "sha1", G_CHECKSUM_SHA1 },
    { "sha256", G_CHECKSUM_SHA256 },
    { "sha384", G_CHECKSUM_SHA384 },
    { "sha512", G_CHECKSUM_SHA512 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    if (g_str_equal (name, types[i].name))
      {
        *out = types[i].type;
        return TRUE;
      }
  return FALSE;
}

/* @call_fd is the call's own (the skeleton checked that the handle indexes
 * one); the digest reads a duplicate, which it closes when it is done. */
static void
handle_digest (PeerCall   *call,
               int         call_fd,
               const char *algorithm,
               gpointer    user_data)
{
  Helper *helper = user_data;
  PeerConnection *peer = peer_call_get_connection (call);
  g_autoptr(GError) error = NULL;
  GChecksumType type;
  Digest *digest;
  int fd;

  if (!parse_checksum_type (algorithm, &type))
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "Unknown algorithm '%s' (md5, sha1, sha256, sha384 or sha512)", algorithm);
      return;
    }
  /* The peer's own share first: a peer at its limit learns about its
   * limit, whatever the others do. */
  if (!peer_connection_take_share (peer, DIGEST_SHARE, helper->max_digests_per_peer, &error))
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  if (helper->n_digests >= helper->max_digests)
    {
      peer_connection_give_back_share (peer, DIGEST_SHARE);
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                              "The server has %u digests running already, the most it runs for "
                              "all peers together", helper->max_digests);
      return;
    }
  fd = fcntl (call_fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0)
    {
      int saved_errno = errno;

      peer_connection_give_back_share (peer, DIGEST_SHARE);
      peer_call_return_error (call, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                              "Cannot duplicate the fd: %s", g_strerror (saved_errno));
      return;
    }

  digest = g_new0 (Digest, 1);
  digest->helper = g_rc_box_acquire (helper);
  digest->call = peer_call_ref (call);
  digest->peer = peer;
  digest->context = g_main_context_ref_thread_default ();
  digest->fd = fd;
  digest->checksum = g_checksum_new (type);
  digest->cancellable = g_cancellable_new ();
  /* The share was taken here, in the main context: "closed" is still to
   * come (see peer_connection_take_share()). */
  digest->closed_handler = g_signal_connect (peer, "closed", G_CALLBACK (on_digest_peer_closed), digest);
  helper->n_digests++;
  digest_start_turn (digest);
}

void
peer_helper_service_set_digest_limits (PeerServer *server,
                                       guint       max_per_peer,
                                       guint       max_total)
{
  Helper *helper = g_object_get_data (G_OBJECT (server), "peer-helper-service");

  g_return_if_fail (helper != NULL);
  g_return_if_fail (max_per_peer >= 1 && max_total > max_per_peer);

  helper->max_digests_per_peer = max_per_peer;
  helper->max_digests = max_total;
}

/* --- StartJob ------------------------------------------------------------ */

static void
handle_start_job (PeerCall   *call,
                  const char *kind,
                  guint32     steps,
                  guint32     step_ms,
                  gpointer    user_data)
{
  Helper *helper = user_data;

  peer_job_service_start_job (helper->server, call, kind, steps, step_ms);
}

/* --- properties ---------------------------------------------------------- */

static gboolean
write_label (PeerInterface  *iface,
             PeerConnection *caller,
             const char     *value,
             GError        **error,
             gpointer        user_data)
{
  gsize len = strlen (value);

  if (len > LABEL_MAX_BYTES)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Label is limited to %d bytes, got %" G_GSIZE_FORMAT, LABEL_MAX_BYTES, len);
      return FALSE;
    }
  return TRUE;
}

static void
update_peers (Helper *helper)
{
  peer_helper1_set_peers (helper->iface, peer_server_get_n_peers (helper->server), NULL);
}

static void
on_peers_changed (PeerServer     *server,
                  PeerConnection *peer,
                  Helper         *helper)
{
  update_peers (helper);
}

gboolean
peer_helper_service_export (PeerServer *server,
                            GError    **error)
{
  static const PeerHelper1Vtable vtable = {
    .handle_quick = handle_quick,
    .handle_notify = handle_notify,
    .handle_open_file = handle_open_file,
    .handle_digest = handle_digest,
    .handle_start_job = handle_start_job,
    .write_label = write_label,
  };
  g_autoptr(PeerInterface) iface = NULL;
  Helper *helper = g_rc_box_new0 (Helper);

  helper->server = server;
  helper->root_fd = -1;
  helper->max_digests_per_peer = DIGEST_DEFAULT_MAX_PER_PEER;
  helper->max_digests = DIGEST_DEFAULT_MAX_TOTAL;
  /* Released with the server; digests in flight hold their own reference. */
  g_object_set_data_full (G_OBJECT (server), "peer-helper-service", helper, helper_release);

  /* Its values are set before it is exported: peers see them from the start. */
  iface = peer_helper1_interface_new (&vtable, helper, error);
  if (iface == NULL || !peer_job_service_attach (server, error))
    return FALSE;
  helper->iface = iface;
  peer_helper1_set_version (iface, PACKAGE_VERSION, NULL);
  peer_helper1_set_label (iface, "", NULL);
  update_peers (helper);

  g_signal_connect (server, "peer-connected", G_CALLBACK (on_peers_changed), helper);
  g_signal_connect (server, "peer-disconnected", G_CALLBACK (on_peers_changed), helper);
  /* Bus-style clients address it by the name it owns. */
  return peer_server_export (server, PEER_HELPER_PATH, iface, error) &&
         peer_server_add_name (server, PEER_HELPER_NAME, error);
}

gboolean
peer_helper_service_set_files_root (PeerServer *server,
                                    const char *root,
                                    GError    **error)
{
  Helper *helper = g_object_get_data (G_OBJECT (server), "peer-helper-service");
  g_autofree char *canonical = NULL;
  int fd;

  g_return_val_if_fail (helper != NULL, FALSE);

  if (root == NULL)
    {
      if (helper->root_fd >= 0)
        close (helper->root_fd);
      helper->root_fd = -1;
      g_clear_pointer (&helper->root_path, g_free);
      return TRUE;
    }
  canonical = realpath (root, NULL);
  if (canonical == NULL)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Files root %s: %s", root, g_strerror (saved_errno));
      return FALSE;
    }
  fd = open (canonical, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    {
      int saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Files root %s: %s", root, g_strerror (saved_errno));
      return FALSE;
    }
  if (helper->root_fd >= 0)
    close (helper->root_fd);
  helper->root_fd = fd;
  g_free (helper->root_path);
  helper->root_path = g_steal_pointer (&canonical);
  return TRUE;
}
