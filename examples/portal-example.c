/* portal-example.c: the portal pattern. A helper with access the
 * application lacks checks each request against its policy and hands back
 * a read-only fd, the way xdg-desktop-portal's Documents portal hands a
 * sandboxed application one file, or logind's TakeDevice a device node.
 * The application never opens a path: it asks by name, and reads what the
 * fd gives it.
 *
 * One program, both sides: run without arguments it is the application
 * asking for a document it may read; with --twin, the negative twin, it
 * asks for what the policy refuses (a path out of the documents, a
 * symbolic link, an absolute path). It starts itself with --helper DIR as
 * the helper. It exits 0 when everything went as it should, refusals
 * included. */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/openat2.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libpeer.h>

#include "example-fds.h"

#define DOCUMENTS_PATH  "/org/example/Documents"
#define DOCUMENTS_IFACE "org.example.Documents1"
#define MAX_DOCUMENT_BYTES (64 * 1024)

static const char xml[] =
  "<node><interface name='" DOCUMENTS_IFACE "'>"
  "  <method name='Open'>"
  "    <arg name='name' type='s' direction='in'/>"
  "    <arg name='fd' type='h' direction='out'/>"
  "  </method>"
  "</interface></node>";

/* --- the helper ---------------------------------------------------------- */

/* The policy, all of it: the name resolves beneath the documents directory
 * (no "..", no absolute path, no symbolic link at all: with RESOLVE_BENEATH
 * and RESOLVE_NO_SYMLINKS the kernel checks every component as it opens,
 * so nothing can change between a check and the open), it is a regular
 * file (not a FIFO that would block the reader, not a device), and it is
 * opened read-only. */
static int
open_document (int         root_fd,
               const char *name,
               GError    **error)
{
  struct open_how how = {
    /* O_NONBLOCK, O_NOCTTY: a FIFO must not make us wait for a writer,
     * nor a terminal become ours, before the type check refuses them. */
    .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  struct stat st;
  int fd;

  fd = (int) syscall (SYS_openat2, root_fd, name, &how, sizeof how);
  if (fd < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EXDEV)
        g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                     "%s leads out of the documents", name);
      else if (saved_errno == ELOOP)
        g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                     "%s goes through a symbolic link, which the policy refuses", name);
      else if (saved_errno == ENOENT)
        g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS, "No document %s", name);
      else if (saved_errno == ENOSYS)
        g_set_error_literal (error, PEER_ERROR, PEER_ERROR_NOT_SUPPORTED,
                             "This kernel has no openat2(), which the policy needs");
      else
        g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                     "Cannot open %s: %s", name, g_strerror (saved_errno));
      return -1;
    }
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      close (fd);
      g_set_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED, "%s is not a regular file", name);
      return -1;
    }
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) & ~O_NONBLOCK);    /* an ordinary fd for the reader */
  return fd;
}

static void
handle_open (PeerCall *call,
             gpointer  user_data)
{
  const int *root_fd = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  const char *name;
  int fd;

  g_variant_get (peer_call_get_parameters (call), "(&s)", &name);
  fd = open_document (*root_fd, name, &error);
  if (fd < 0)
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  /* The list takes the fd and closes it once the reply is written; what
   * the message body carries is the fd's index in the list, 0. */
  fds = g_unix_fd_list_new_from_array (&fd, 1);
  peer_call_return_value_with_unix_fd_list (call, g_variant_new ("(h)", 0), fds);
}

/* Serves the documents under @root to the application at the other end of
 * $PEER_FD until it goes away. */
static int
run_helper (const char *root)
{
  static const PeerMethodEntry methods[] = { { "Open", handle_open, PEER_METHOD_FLAGS_NONE } };
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerServer) server = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  int root_fd;

  /* O_PATH: a handle on the directory to resolve names beneath, not a
   * directory the helper reads. */
  root_fd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0)
    {
      g_printerr ("helper: %s: %s\n", root, g_strerror (errno));
      return 1;
    }
  server = peer_server_new_for_fd (-1, NULL, PEER_SERVER_FLAGS_NONE, &error);
  iface = peer_interface_new_for_xml (xml, DOCUMENTS_IFACE, &error);
  if (server == NULL || iface == NULL ||
      !peer_interface_add_methods (iface, methods, G_N_ELEMENTS (methods), &root_fd, &error) ||
      !peer_server_export (server, DOCUMENTS_PATH, iface, &error))
    {
      g_printerr ("helper: %s\n", error->message);
      close (root_fd);
      return 1;
    }
  g_signal_connect_swapped (server, "peer-disconnected", G_CALLBACK (g_main_loop_quit), loop);
  g_signal_connect_swapped (server, "peer-refused", G_CALLBACK (g_main_loop_quit), loop);
  peer_server_start (server);
  g_main_loop_run (loop);
  close (root_fd);
  return 0;
}

/* --- the application ----------------------------------------------------- */

typedef struct {
  PeerHelper *helper;
  const char *documents;                /* where they are: the helper's secret, really */
  gboolean    twin;
  gboolean    ok;
} App;

/* Takes from the calling thread the right to open any file for reading by
 * path, as a sandbox takes it from a whole application (Landlock, Linux
 * 5.13 on; threads started before are not affected). FALSE when Landlock
 * is not available (an older or differently configured kernel, or
 * valgrind, which does not know the calls). */
static gboolean
sandbox_this_thread (void)
{
  struct landlock_ruleset_attr attr = { .handled_access_fs = LANDLOCK_ACCESS_FS_READ_FILE };
  gboolean locked;
  int ruleset;

  ruleset = (int) syscall (SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
  if (ruleset < 0)
    return FALSE;
  /* Reading is handled and no rule allows it anywhere. */
  locked = prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           syscall (SYS_landlock_restrict_self, ruleset, 0) == 0;
  close (ruleset);
  return locked;
}

/* Asks the helper for @name. Returns the fd that came back (ours to
 * close), or -1 with @error set (the helper's refusal comes back as the
 * very GError it replied with). */
static int
ask_for_document (PeerHelper *helper,
                  const char *name,
                  GError    **error)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GUnixFDList) fds = NULL;
  gint32 handle;

  reply = peer_helper_call_sync (helper, DOCUMENTS_PATH, DOCUMENTS_IFACE, "Open",
                                 g_variant_new ("(s)", name), G_VARIANT_TYPE ("(h)"), -1,
                                 NULL, &fds, NULL, error);
  if (reply == NULL)
    return -1;
  /* The handle is an index into the fds that came with the reply. It came
   * off the wire: checked, not trusted. */
  g_variant_get (reply, "(h)", &handle);
  if (fds == NULL || handle < 0 || handle >= g_unix_fd_list_get_length (fds))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_PROTOCOL, "The reply names fd %d but carries %d",
                   handle, fds != NULL ? g_unix_fd_list_get_length (fds) : 0);
      return -1;
    }
  /* A duplicate: unreffing the list closes the fds it holds. */
  return g_unix_fd_list_get (fds, handle, error);
}

static gboolean
read_document (int      fd,
               GString *text)
{
  char buf[4096];
  ssize_t n;

  while ((n = read (fd, buf, sizeof buf)) != 0)
    {
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 || text->len + n > MAX_DOCUMENT_BYTES)
        return FALSE;
      g_string_append_len (text, buf, n);
    }
  return TRUE;
}

static gboolean
read_granted_document (PeerHelper *helper)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GString) text = g_string_new (NULL);
  int fd = ask_for_document (helper, "report.txt", &error);
  gboolean read_only;

  if (fd < 0)
    {
      g_printerr ("app: report.txt: %s\n", error->message);
      return FALSE;
    }
  g_print ("app: asked for report.txt; fd %d came back: 1 fd crossed the socket "
           "(its index, 0, in the reply), not the document's bytes\n", fd);

  /* What the helper promised: the fd reads and does not write. */
  read_only = (fcntl (fd, F_GETFL) & O_ACCMODE) == O_RDONLY &&
              write (fd, "x", 1) < 0 && errno == EBADF;
  if (!read_only || !read_document (fd, text))
    {
      g_printerr ("app: fd %d is not the read-only document it should be\n", fd);
      close (fd);
      return FALSE;
    }
  close (fd);
  g_print ("app: fd %d is read-only (write() fails: %s)\n", fd, g_strerror (EBADF));
  g_print ("app: report.txt (%" G_GSIZE_FORMAT " bytes) says: %s", text->len, text->str);
  return TRUE;
}

/* The negative twin: each of these must come back refused, and no fd with it. */
static gboolean
ask_for_refused_documents (PeerHelper *helper)
{
  static const char * const names[] = { "../secret.txt", "escape.txt", "/etc/passwd" };
  gboolean ok = TRUE;

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autoptr(GError) error = NULL;
      int fd = ask_for_document (helper, names[i], &error);

      if (fd >= 0)
        {
          g_printerr ("app: %s: the helper handed it out (fd %d)\n", names[i], fd);
          close (fd);
          ok = FALSE;
        }
      else if (g_error_matches (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED))
        g_print ("app: %s: refused, no fd came back: %s\n", names[i], error->message);
      else
        {
          g_printerr ("app: %s: failed, but not refused: %s\n", names[i], error->message);
          ok = FALSE;
        }
    }
  return ok;
}

/* The application proper, in a thread of its own so that it can be
 * sandboxed without the rest of the program (which cleans up the files). */
static gpointer
run_sandboxed_app (gpointer data)
{
  App *app = data;
  g_autofree char *path = g_build_filename (app->documents, "report.txt", NULL);
  gboolean sandboxed = sandbox_this_thread ();
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd >= 0)
    {
      close (fd);
      if (sandboxed)
        {
          g_printerr ("app: the sandbox let this thread open %s\n", path);
          return NULL;
        }
      g_print ("app: (Landlock is not available here, so this thread could open %s itself; "
               "the pattern is the same)\n", path);
    }
  else
    g_print ("app: sandboxed: opening %s ourselves fails: %s\n", path, g_strerror (errno));

  app->ok = app->twin ? ask_for_refused_documents (app->helper) : read_granted_document (app->helper);
  return NULL;
}

static void
write_file (const char *path,
            const char *contents)
{
  g_autoptr(GError) error = NULL;

  if (!g_file_set_contents (path, contents, -1, &error))
    g_error ("%s", error->message);
}

static int
run_app (const char *self,
         gboolean    twin)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *base = g_dir_make_tmp ("portal-example-XXXXXX", &error);
  g_autofree char *documents = NULL;
  g_autofree char *report = NULL, *secret = NULL, *escape = NULL;
  App app = { NULL, NULL, twin, FALSE };

  if (base == NULL)
    {
      g_printerr ("app: %s\n", error->message);
      return 1;
    }
  /* base/documents/report.txt, which the policy allows; base/secret.txt,
   * outside the documents; documents/escape.txt, a link to it. */
  documents = g_build_filename (base, "documents", NULL);
  report = g_build_filename (documents, "report.txt", NULL);
  secret = g_build_filename (base, "secret.txt", NULL);
  escape = g_build_filename (documents, "escape.txt", NULL);
  g_mkdir (documents, 0700);
  write_file (report, "Quarterly report: all systems nominal.\n");
  write_file (secret, "Not for the application.\n");
  if (symlink ("../secret.txt", escape) != 0)
    g_error ("symlink: %s", g_strerror (errno));

  {
    const char *argv[] = { self, "--helper", documents, NULL };

    app.helper = peer_helper_new (argv, NULL, &error);
  }
  if (app.helper == NULL)
    g_printerr ("app: %s\n", error->message);
  else
    {
      app.documents = documents;
      g_thread_join (g_thread_new ("sandboxed-app", run_sandboxed_app, &app));
      g_clear_object (&app.helper);     /* stops the helper */
    }

  g_unlink (escape);
  g_unlink (report);
  g_unlink (secret);
  g_rmdir (documents);
  g_rmdir (base);
  return app.ok ? 0 : 1;
}

int
main (int   argc,
      char *argv[])
{
  guint fds_before;
  int status;

  if (argc == 3 && g_str_equal (argv[1], "--helper"))
    return run_helper (argv[2]);
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
