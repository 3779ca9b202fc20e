/* peer-sandbox.c: PeerSandbox, a profile: the paths a sandboxed helper may
 * read, its limits, and what to do when the kernel refuses a part.
 * Starting a helper in it is peer-sandbox-spawn.c; its seccomp filter is
 * peer-sandbox-filter.c. */
#include "config.h"

#include <string.h>

#include "peer-sandbox-private.h"

#define MiB (G_GUINT64_CONSTANT (1) << 20)

struct _PeerSandbox
{
  GObject parent_instance;

  GMutex lock;
  /* Protected by @lock */
  GPtrArray *paths;                     /* char*: added read-only */
  guint64 limits[PEER_SANDBOX_LIMIT_OPEN_FILES + 1];
  PeerSandboxFlags flags;
  GBytes *filter;                       /* built for @filter_exec_fd; NULL until needed */
  int filter_exec_fd;
};

G_DEFINE_FINAL_TYPE (PeerSandbox, peer_sandbox, G_TYPE_OBJECT)

static void
peer_sandbox_finalize (GObject *object)
{
  PeerSandbox *self = PEER_SANDBOX (object);

  g_ptr_array_unref (self->paths);
  g_clear_pointer (&self->filter, g_bytes_unref);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (peer_sandbox_parent_class)->finalize (object);
}

static void
peer_sandbox_class_init (PeerSandboxClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = peer_sandbox_finalize;
}

static void
peer_sandbox_init (PeerSandbox *self)
{
  g_mutex_init (&self->lock);
  self->paths = g_ptr_array_new_with_free_func (g_free);
  /* Enough for a GLib program with a handful of threads (each reserves a
   * stack and a malloc arena of 64 MiB) and a decoded image or two. */
  self->limits[PEER_SANDBOX_LIMIT_ADDRESS_SPACE] = 1024 * MiB;
  /* Over the helper's life: a restart begins a new count. */
  self->limits[PEER_SANDBOX_LIMIT_CPU_SECONDS] = 300;
  self->limits[PEER_SANDBOX_LIMIT_FILE_SIZE] = 1024 * MiB;
  self->limits[PEER_SANDBOX_LIMIT_OPEN_FILES] = 256;
}

PeerSandbox *
peer_sandbox_new (void)
{
  return g_object_new (PEER_TYPE_SANDBOX, NULL);
}

void
peer_sandbox_add_path (PeerSandbox *self,
                       const char  *path)
{
  g_return_if_fail (PEER_IS_SANDBOX (self));
  g_return_if_fail (path != NULL && g_path_is_absolute (path));

  g_mutex_lock (&self->lock);
  g_ptr_array_add (self->paths, g_strdup (path));
  g_mutex_unlock (&self->lock);
}

void
peer_sandbox_set_limit (PeerSandbox      *self,
                        PeerSandboxLimit  limit,
                        guint64           value)
{
  g_return_if_fail (PEER_IS_SANDBOX (self));
  g_return_if_fail (limit <= PEER_SANDBOX_LIMIT_OPEN_FILES);

  g_mutex_lock (&self->lock);
  self->limits[limit] = value;
  g_mutex_unlock (&self->lock);
}

guint64
peer_sandbox_get_limit (PeerSandbox      *self,
                        PeerSandboxLimit  limit)
{
  guint64 value;

  g_return_val_if_fail (PEER_IS_SANDBOX (self), 0);
  g_return_val_if_fail (limit <= PEER_SANDBOX_LIMIT_OPEN_FILES, 0);

  g_mutex_lock (&self->lock);
  value = self->limits[limit];
  g_mutex_unlock (&self->lock);
  return value;
}

void
peer_sandbox_set_flags (PeerSandbox      *self,
                        PeerSandboxFlags  flags)
{
  g_return_if_fail (PEER_IS_SANDBOX (self));

  g_mutex_lock (&self->lock);
  self->flags = flags;
  g_mutex_unlock (&self->lock);
}

gboolean
peer_sandbox_is_inside (void)
{
  return g_strcmp0 (g_getenv (PEER_SANDBOX_ENV), "1") == 0;
}

/* For peer-sandbox-spawn.c: a consistent copy of the profile. */
void
peer_sandbox_snapshot (PeerSandbox       *self,
                       GPtrArray         *out_paths,
                       guint64           *out_limits,
                       PeerSandboxFlags  *out_flags)
{
  g_mutex_lock (&self->lock);
  for (guint i = 0; i < self->paths->len; i++)
    g_ptr_array_add (out_paths, g_strdup (g_ptr_array_index (self->paths, i)));
  memcpy (out_limits, self->limits, sizeof self->limits);
  *out_flags = self->flags;
  g_mutex_unlock (&self->lock);
}

/* The filter, built once per profile (libseccomp takes milliseconds, as
 * long as the rest of a start) and again only when the open-files limit,
 * which it names, changes. */
GBytes *
peer_sandbox_dup_filter (PeerSandbox  *self,
                         int           exec_fd,
                         GError      **error)
{
  GBytes *filter;

  g_mutex_lock (&self->lock);
  if (self->filter == NULL || self->filter_exec_fd != exec_fd)
    {
      g_clear_pointer (&self->filter, g_bytes_unref);
      self->filter = peer_sandbox_filter_build (exec_fd, error);
      self->filter_exec_fd = exec_fd;
    }
  filter = self->filter != NULL ? g_bytes_ref (self->filter) : NULL;
  g_mutex_unlock (&self->lock);
  return filter;
}

/* The default profile, one per process: nobody else holds it, so it never
 * changes, and its filter is built once. */
PeerSandbox *
peer_sandbox_dup_default (void)
{
  static PeerSandbox *default_profile;

  if (g_once_init_enter (&default_profile))
    g_once_init_leave (&default_profile, peer_sandbox_new ());
  return g_object_ref (default_profile);
}
