/* peer-test-util.c: shared test helpers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "peer-test-util.h"
#include "services.h"

char *
peer_test_make_dir (void)
{
  g_autofree char *template = g_build_filename (g_get_tmp_dir (), "libpeer-test-XXXXXX", NULL);

  g_assert_nonnull (g_mkdtemp_full (template, 0700));
  return g_steal_pointer (&template);
}

void
peer_test_remove_dir (const char *path)
{
  g_autoptr(GDir) dir = NULL;
  const char *name;

  if (path == NULL)
    return;
  dir = g_dir_open (path, 0, NULL);
  if (dir == NULL)
    {
      g_unlink (path);
      return;
    }
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);
      if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
        peer_test_remove_dir (child);
      else
        g_unlink (child);
    }
  g_rmdir (path);
}

guint
peer_test_count_open_fds (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n - 1;                         /* the GDir's own fd */
}

/* --- waiting ------------------------------------------------------------ */

static gboolean
on_deadline (gpointer user_data)
{
  PeerTestDeadline *deadline = user_data;

  deadline->expired = TRUE;
  return G_SOURCE_REMOVE;
}

/* How much longer a deadline is under valgrind, where the programs a test
 * starts run under valgrind too: a deadline is where a test gives up on
 * an event, never a wait. */
static guint
deadline_scale (void)
{
  return g_strcmp0 (g_getenv ("PEER_UNDER_VALGRIND"), "1") == 0 ? 6 : 1;
}

static gboolean
on_recheck (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Besides the deadline, a tick: a condition on what another thread does
 * (a server's count of its peers, a destroy notify run in the server's
 * thread) changes without an event in this context, and a wait for it
 * would otherwise last until the deadline and pass then, having waited
 * for nothing. */
void
peer_test_deadline_start (PeerTestDeadline *deadline,
                          guint             timeout_ms)
{
  deadline->expired = FALSE;
  deadline->source = g_timeout_source_new (timeout_ms * deadline_scale ());
  g_source_set_callback (deadline->source, on_deadline, deadline, NULL);
  g_source_attach (deadline->source, g_main_context_get_thread_default ());
  deadline->recheck = g_timeout_source_new (20);
  g_source_set_callback (deadline->recheck, on_recheck, NULL, NULL);
  g_source_attach (deadline->recheck, g_main_context_get_thread_default ());
}

void
peer_test_deadline_iterate (PeerTestDeadline *deadline,
                            const char       *what)
{
  if (deadline->expired)
    g_error ("timed out waiting for %s", what);
  g_main_context_iteration (g_main_context_get_thread_default (), TRUE);
}

void
peer_test_deadline_end (PeerTestDeadline *deadline)
{
  g_source_destroy (deadline->source);
  g_clear_pointer (&deadline->source, g_source_unref);
  g_source_destroy (deadline->recheck);
  g_clear_pointer (&deadline->recheck, g_source_unref);
}

/* --- a server in a thread ----------------------------------------------- */

static gpointer
server_thread (gpointer user_data)
{
  PeerTestServer *ts = user_data;
  g_autoptr(GError) error = NULL;

  g_main_context_push_thread_default (ts->context);

  ts->server = peer_server_new (ts->requested_address, ts->policy, ts->flags, NULL, &error);
  if (ts->server != NULL &&
      (!peer_bench_service_export (ts->server, &error) ||
       !peer_helper_service_export (ts->server, &error)))
    g_clear_object (&ts->server);
  if (ts->server != NULL)
    {
      peer_server_start (ts->server);
      ts->address = g_strdup (peer_server_get_client_address (ts->server));
    }

  g_mutex_lock (&ts->lock);
  ts->error = g_steal_pointer (&error);
  ts->ready = TRUE;
  g_cond_signal (&ts->cond);
  g_mutex_unlock (&ts->lock);

  if (ts->server != NULL)
    {
      g_main_loop_run (ts->loop);
      peer_server_stop (ts->server);
      g_clear_object (&ts->server);
      /* Let closing connections finish in this context. */
      while (g_main_context_iteration (ts->context, FALSE))
        ;
    }

  g_main_context_pop_thread_default (ts->context);
  return NULL;
}

PeerTestServer *
peer_test_server_new (PeerPolicy      *policy,
                      const char      *address,
                      PeerServerFlags  flags,
                      GError         **error)
{
  PeerTestServer *ts = g_new0 (PeerTestServer, 1);

  g_mutex_init (&ts->lock);
  g_cond_init (&ts->cond);
  ts->context = g_main_context_new ();
  ts->loop = g_main_loop_new (ts->context, FALSE);
  ts->policy = policy ? g_object_ref (policy) : NULL;
  ts->flags = flags;
  if (address != NULL)
    ts->requested_address = g_strdup (address);
  else
    {
      ts->dir = peer_test_make_dir ();
      ts->requested_address = g_strdup_printf ("unix:path=%s/socket", ts->dir);
    }
  ts->thread = g_thread_new ("test-server", server_thread, ts);

  g_mutex_lock (&ts->lock);
  while (!ts->ready)
    g_cond_wait (&ts->cond, &ts->lock);
  g_mutex_unlock (&ts->lock);

  if (ts->error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&ts->error));
      peer_test_server_free (ts);
      return NULL;
    }
  return ts;
}

PeerTestServer *
peer_test_server_start (void)
{
  g_autoptr(GError) error = NULL;
  PeerTestServer *ts = peer_test_server_new (NULL, NULL, PEER_SERVER_FLAGS_NONE, &error);

  g_assert_no_error (error);
  return ts;
}

typedef struct {
  PeerTestServer *ts;
  const char *path;
  const char *xml;
  const char *iface_name;
  const PeerMethodEntry *entries;
  gsize n_entries;
  gpointer user_data;
  PeerInterface *iface;
} Export;

static gboolean
export_in_server (gpointer user_data)
{
  Export *e = user_data;
  g_autoptr(GError) error = NULL;

  e->iface = peer_interface_new_for_xml (e->xml, e->iface_name, &error);
  g_assert_no_error (error);
  g_assert_true (peer_interface_add_methods (e->iface, e->entries, e->n_entries, e->user_data, &error));
  g_assert_true (peer_server_export (e->ts->server, e->path, e->iface, &error));
  g_assert_no_error (error);
  return G_SOURCE_REMOVE;
}

PeerInterface *
peer_test_export (PeerTestServer        *ts,
                  const char            *path,
                  const char            *xml,
                  const char            *iface_name,
                  const PeerMethodEntry *entries,
                  gsize                  n_entries,
                  gpointer               user_data)
{
  Export e = { ts, path, xml, iface_name, entries, n_entries, user_data, NULL };

  peer_test_server_invoke (ts, export_in_server, &e);
  return e.iface;
}

PeerClient *
peer_test_connect (PeerTestServer *ts,
                   gboolean        lane)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = peer_client_new_sync (ts->address, 5000, NULL, &error);

  g_assert_no_error (error);
  if (lane)
    {
      g_assert_true (peer_client_open_lane_sync (client, NULL, &error));
      g_assert_no_error (error);
    }
  return g_steal_pointer (&client);
}

void
peer_test_finish (PeerClient     *client,
                  PeerTestServer *ts,
                  PeerInterface  *iface)
{
  g_clear_object (&client);
  peer_test_server_free (ts);
  g_clear_object (&iface);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

typedef struct {
  GSourceFunc func;
  gpointer data;
  GMutex lock;
  GCond cond;
  gboolean done;
} Invocation;

static gboolean
run_invocation (gpointer user_data)
{
  Invocation *inv = user_data;

  inv->func (inv->data);
  g_mutex_lock (&inv->lock);
  inv->done = TRUE;
  g_cond_signal (&inv->cond);
  g_mutex_unlock (&inv->lock);
  return G_SOURCE_REMOVE;
}

void
peer_test_server_invoke (PeerTestServer *ts,
                         GSourceFunc     func,
                         gpointer        data)
{
  Invocation inv = { func, data };

  g_mutex_init (&inv.lock);
  g_cond_init (&inv.cond);
  g_main_context_invoke (ts->context, run_invocation, &inv);
  g_mutex_lock (&inv.lock);
  while (!inv.done)
    g_cond_wait (&inv.cond, &inv.lock);
  g_mutex_unlock (&inv.lock);
  g_mutex_clear (&inv.lock);
  g_cond_clear (&inv.cond);
}

typedef struct {
  PeerServer *server;
  guint64 id;
} ClosePeers;

static gboolean
close_peers_in_server (gpointer user_data)
{
  ClosePeers *c = user_data;
  g_autoptr(GPtrArray) peers = peer_server_list_peers (c->server);
  g_autoptr(GError) reason = g_error_new_literal (PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED, "kicked by test");

  for (guint i = 0; i < peers->len; i++)
    if (c->id == 0 || peer_connection_get_id (g_ptr_array_index (peers, i)) == c->id)
      peer_connection_close (g_ptr_array_index (peers, i), reason);
  return G_SOURCE_REMOVE;
}

void
peer_test_server_close_peers (PeerTestServer *ts,
                              guint64         id)
{
  ClosePeers c = { ts->server, id };

  peer_test_server_invoke (ts, close_peers_in_server, &c);
}

typedef struct {
  GHashTable *nodes;
  const char *node;
  gboolean present;
} SetNode;

static gboolean
set_node_in_server (gpointer user_data)
{
  SetNode *s = user_data;

  if (s->present)
    g_hash_table_add (s->nodes, g_strdup (s->node));
  else
    g_hash_table_remove (s->nodes, s->node);
  return G_SOURCE_REMOVE;
}

void
peer_test_server_set_node (PeerTestServer *ts,
                           GHashTable     *nodes,
                           const char     *node,
                           gboolean        present)
{
  SetNode s = { nodes, node, present };

  peer_test_server_invoke (ts, set_node_in_server, &s);
}

static gboolean
quit_loop (gpointer user_data)
{
  g_main_loop_quit (user_data);
  return G_SOURCE_REMOVE;
}

void
peer_test_server_free (PeerTestServer *ts)
{
  if (ts == NULL)
    return;
  g_main_context_invoke (ts->context, quit_loop, ts->loop);
  g_thread_join (ts->thread);
  g_main_loop_unref (ts->loop);
  g_main_context_unref (ts->context);
  g_clear_object (&ts->policy);
  g_clear_error (&ts->error);
  peer_test_remove_dir (ts->dir);
  g_free (ts->dir);
  g_free (ts->address);
  g_free (ts->requested_address);
  g_mutex_clear (&ts->lock);
  g_cond_clear (&ts->cond);
  g_free (ts);
}

/* --- a subtree ---------------------------------------------------------- */

typedef struct {
  GHashTable *nodes;
  PeerInterface *iface;
  gboolean vanishing;
  guint vanishing_lookups;
} Tree;

static char **
tree_enumerate (PeerSubtree    *subtree,
                PeerConnection *caller,
                gpointer        user_data)
{
  Tree *t = user_data;
  g_autofree char **keys = (char **) g_hash_table_get_keys_as_array (t->nodes, NULL);

  return g_strdupv (keys);
}

static GPtrArray *
tree_lookup (PeerSubtree    *subtree,
             PeerConnection *caller,
             const char     *node,
             gpointer        user_data)
{
  Tree *t = user_data;
  GPtrArray *interfaces;

  if (t->vanishing && g_str_equal (node, "vanishing"))
    {
      /* GDBus asks twice (introspect, dispatch) before the call runs. */
      if (++t->vanishing_lookups > 2)
        return NULL;
    }
  else if (!g_hash_table_contains (t->nodes, node))
    return NULL;
  interfaces = g_ptr_array_new_with_free_func (g_object_unref);
  g_ptr_array_add (interfaces, g_object_ref (t->iface));
  return interfaces;
}

static void
tree_free (gpointer data)
{
  Tree *t = data;

  g_hash_table_unref (t->nodes);
  g_object_unref (t->iface);
  g_free (t);
}

PeerSubtree *
peer_test_tree_export (PeerServer     *server,
                       const char     *path,
                       PeerInterface  *iface,
                       gboolean        vanishing,
                       GHashTable    **out_nodes)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *a = g_strconcat (path, "/a", NULL);
  g_autofree char *b = g_strconcat (path, "/b", NULL);
  Tree *t = g_new0 (Tree, 1);
  PeerSubtree *subtree;

  t->nodes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_add (t->nodes, g_strdup ("a"));
  g_hash_table_add (t->nodes, g_strdup ("b"));
  t->iface = g_object_ref (iface);
  t->vanishing = vanishing;
  peer_interface_set_object_property (iface, a, "Name", g_variant_new_string ("child a"), NULL);
  peer_interface_set_object_property (iface, b, "Name", g_variant_new_string ("child b"), NULL);
  subtree = peer_subtree_new (tree_enumerate, tree_lookup, t, tree_free);
  peer_subtree_add_interface (subtree, iface);
  g_assert_true (peer_server_export_subtree (server, path, subtree, &error));
  g_assert_no_error (error);
  *out_nodes = g_hash_table_ref (t->nodes);
  return subtree;
}

/* --- processes ---------------------------------------------------------- */

const char *
peer_test_program (const char *env_name)
{
  const char *path = g_getenv (env_name);

  if (path == NULL)
    g_error ("$%s is not set: run the tests with meson test", env_name);
  return path;
}

PeerTestProcess *
peer_test_spawn (const char * const *argv,
                 GError            **error)
{
  PeerTestProcess *process = g_new0 (PeerTestProcess, 1);

  if (!g_spawn_async_with_pipes (NULL, (char **) argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_SEARCH_PATH,
                                 NULL, NULL, &process->pid, NULL, &process->stdout_fd, NULL, error))
    {
      g_free (process);
      return NULL;
    }
  return process;
}

char *
peer_test_process_read_line (PeerTestProcess *process)
{
  GString *line = g_string_new (NULL);
  gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC * deadline_scale ();

  for (;;)
    {
      struct pollfd pfd = { process->stdout_fd, POLLIN, 0 };
      gint64 left = (end - g_get_monotonic_time ()) / 1000;
      char c;
      ssize_t r;

      if (left <= 0 || poll (&pfd, 1, (int) left) <= 0)
        break;
      r = read (process->stdout_fd, &c, 1);
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        break;
      if (c == '\n')
        return g_string_free (line, FALSE);
      g_string_append_c (line, c);
    }
  g_string_free (line, TRUE);
  return NULL;
}

static PeerTestProcess *
spawn_server (const char * const *args,
              gboolean            followed,
              GError            **error)
{
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  PeerTestProcess *process;

  if (!followed && g_strcmp0 (g_getenv ("PEER_UNDER_VALGRIND"), "1") == 0)
    {
      /* timeout(1) passes the SIGTERM that stops the server on to it and
       * exits with its status. */
      g_ptr_array_add (argv, (gpointer) "timeout");
      g_ptr_array_add (argv, (gpointer) "600");
    }
  g_ptr_array_add (argv, (gpointer) peer_test_program ("PEER_SERVER"));
  for (guint i = 0; args != NULL && args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);

  process = peer_test_spawn ((const char * const *) argv->pdata, error);
  if (process == NULL)
    return NULL;
  process->first_line = peer_test_process_read_line (process);
  if (process->first_line == NULL || !g_str_has_prefix (process->first_line, "unix:"))
    {
      int status = peer_test_process_stop (process, SIGKILL);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "peer-server did not print an address (wait status %d)", status);
      return NULL;
    }
  return process;
}

PeerTestProcess *
peer_test_spawn_server (const char * const *args,
                        GError            **error)
{
  return spawn_server (args, TRUE, error);
}

PeerTestProcess *
peer_test_spawn_server_unfollowed (const char * const *args,
                                   GError            **error)
{
  return spawn_server (args, FALSE, error);
}

int
peer_test_process_stop (PeerTestProcess *process,
                        int              signum)
{
  int status = 0;

  if (signum != 0)
    kill (process->pid, signum);
  while (waitpid (process->pid, &status, 0) < 0 && errno == EINTR)
    ;
  g_spawn_close_pid (process->pid);
  if (process->stdout_fd >= 0)
    close (process->stdout_fd);
  g_free (process->first_line);
  g_free (process);
  return status;
}

static gboolean
is_valgrind_line (const char *line)
{
  char mark = line[0];
  const char *p = line + 2;

  if ((mark != '=' && mark != '-') || line[1] != mark || !g_ascii_isdigit (*p))
    return FALSE;
  while (g_ascii_isdigit (*p))
    p++;
  return p[0] == mark && p[1] == mark;
}

char *
peer_test_strip_valgrind (char *text)
{
  char *read = text, *write = text;

  if (text == NULL)
    return NULL;
  while (*read != '\0')
    {
      char *end = strchr (read, '\n');
      gsize length = end != NULL ? (gsize) (end - read + 1) : strlen (read);

      if (is_valgrind_line (read))
        g_printerr ("%.*s", (int) length, read);
      else
        {
          memmove (write, read, length);
          write += length;
        }
      read += length;
    }
  *write = '\0';
  return text;
}

int
peer_test_run (const char * const *argv,
               char              **out_stdout,
               char              **out_stderr)
{
  g_autoptr(GPtrArray) full = g_ptr_array_new ();
  g_autoptr(GError) error = NULL;
  int status = 0;

  /* A hung tool must not hang the suite. */
  g_ptr_array_add (full, (gpointer) "timeout");
  g_ptr_array_add (full, (gpointer) "-k5");
  g_ptr_array_add (full, (gpointer) "60");
  for (guint i = 0; argv[i] != NULL; i++)
    g_ptr_array_add (full, (gpointer) argv[i]);
  g_ptr_array_add (full, NULL);

  if (!g_spawn_sync (NULL, (char **) full->pdata, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                     out_stdout, out_stderr, &status, &error))
    g_error ("cannot run %s: %s", argv[0], error->message);
  if (out_stderr != NULL)
    peer_test_strip_valgrind (*out_stderr);
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  return -1;
}

/* --- fd accounting ------------------------------------------------------ */

static void
on_ping_done (GObject      *source,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);
  g_assert_no_error (error);
  *(gboolean *) user_data = TRUE;
}

void
peer_test_ping_async (PeerClient *client)
{
  gboolean done = FALSE;

  peer_client_call (client, PEER_BENCH_PATH, "org.libpeer.Bench1", "Ping", NULL, G_VARIANT_TYPE_UNIT,
                    -1, NULL, NULL, on_ping_done, &done);
  PEER_TEST_WAIT_UNTIL (done);
}

/* The sockets open now (a server's, its peers', a client's), by their
 * inode as /proc names them ("socket:[1234]"): a set to free with
 * g_hash_table_unref(). */
GHashTable *
peer_test_list_open_sockets (void)
{
  g_autoptr(GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  GHashTable *sockets = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const char *name;

  g_assert_nonnull (dir);
  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *link = g_strconcat ("/proc/self/fd/", name, NULL);
      char *target = g_file_read_link (link, NULL);

      if (target != NULL && g_str_has_prefix (target, "socket:"))
        g_hash_table_add (sockets, target);
      else
        g_free (target);
    }
  return sockets;
}

static gboolean
only_sockets_in (GHashTable *kept)
{
  g_autoptr(GHashTable) now = peer_test_list_open_sockets ();
  GHashTableIter iter;
  gpointer socket;

  g_hash_table_iter_init (&iter, now);
  while (g_hash_table_iter_next (&iter, &socket, NULL))
    if (!g_hash_table_contains (kept, socket))
      return FALSE;
  return TRUE;
}

static gboolean
on_recount (gpointer user_data)
{
  return G_SOURCE_REMOVE;
}

/* GDBus closes a connection's socket in its worker thread, after the
 * connection's owner has let go of it, and no signal says when: a test
 * whose server and client are gone waits here, checking every
 * millisecond, until no socket is open but those in @kept (what was open
 * before it started), so that the next test does not count them as its
 * own. (The fds GLib opens once, its contexts' eventfds, stay open for
 * good and are not waited for.) */
void
peer_test_wait_for_sockets_closed (GHashTable *kept)
{
  PeerTestDeadline deadline;

  peer_test_deadline_start (&deadline, 5000);
  while (!only_sockets_in (kept))
    {
      g_autoptr(GSource) tick = g_timeout_source_new (1);

      if (deadline.expired)
        g_error ("timed out waiting for the test's sockets to close");
      g_source_set_callback (tick, on_recount, NULL, NULL);
      g_source_attach (tick, g_main_context_get_thread_default ());
      g_main_context_iteration (g_main_context_get_thread_default (), TRUE);
      g_source_destroy (tick);
    }
  peer_test_deadline_end (&deadline);
}

void
peer_test_assert_no_fd_leak (PeerClient *client,
                             guint       baseline)
{
  PeerTestDeadline deadline;
  guint n;

  peer_test_deadline_start (&deadline, 5000);
  do
    {
      peer_test_ping_async (client);
      n = peer_test_count_open_fds ();
    }
  while (n > baseline && !deadline.expired);
  peer_test_deadline_end (&deadline);
  /* Fewer is no leak: an fd counted in the baseline may still have been
   * on its way out (a sent message's copy of an fd, closed when GDBus's
   * worker lets go of the message). */
  g_assert_cmpuint (n, <=, baseline);
}

GDBusMessage *
peer_test_wait_message (GAsyncQueue      *received,
                        GDBusMessageType  type,
                        const char       *member,
                        guint32           reply_serial)
{
  for (;;)
    {
      g_autoptr(GDBusMessage) message = g_async_queue_timeout_pop (received, 10 * G_USEC_PER_SEC);

      if (message == NULL)
        g_error ("the monitor saw no %s (%u)", member ? member : "reply", reply_serial);
      if (g_dbus_message_get_message_type (message) == type &&
          (member == NULL || g_strcmp0 (g_dbus_message_get_member (message), member) == 0) &&
          (reply_serial == 0 || g_dbus_message_get_reply_serial (message) == reply_serial))
        return g_steal_pointer (&message);
    }
}
