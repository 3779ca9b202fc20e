/* example-fds.h: the examples' self-check, not part of any pattern.
 *
 * Each fd-passing example counts its open fds when it starts and again
 * when it is done, and fails if one was left open: a received fd nobody
 * closed, a pipe end kept by mistake, a mapping's memfd. */
#pragma once

#include <glib.h>

/* Open fds, leaving out eventfds: GLib opens one for each main context it
 * starts (its worker threads', once per process) and keeps it, and no
 * example passes one. Sockets, pipes, memfds and files all count. */
static inline guint
example_count_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;
  guint n = 0;

  if (dir == NULL)
    return 0;
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/fd", name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);

      if (target == NULL || !g_str_equal (target, "anon_inode:[eventfd]"))
        n++;
    }
  return n - 1;                         /* the GDir's own */
}

/* Whether the count is back to @before. Some fds close a moment after
 * their last reference goes (GDBus closes a connection's socket in its
 * worker thread), so this gives them up to two seconds, running the
 * default main context meanwhile, before it calls one a leak. */
static inline gboolean
example_check_fds (const char *who,
                   guint       before)
{
  gint64 deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  guint after;

  while ((after = example_count_fds ()) != before && g_get_monotonic_time () < deadline)
    {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (G_USEC_PER_SEC / 1000);
    }
  if (after != before)
    {
      g_printerr ("%s: fds: %u open before, %u after: %s\n", who, before, after,
                  after > before ? "leaked" : "closed one it did not own");
      return FALSE;
    }
  g_print ("%s: fds: %u open before, %u after: nothing leaked\n", who, before, after);
  return TRUE;
}
