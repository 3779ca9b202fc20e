/* test-readme.c: the README's programs. Each C block of README.md is the
 * whole of a file in examples/, which the build compiles with -Wall
 * -Wextra -Werror (examples/meson.build), so that what a reader copies is
 * what was compiled; and the servers among them run as the README says:
 * they print their address, serve, and remove their socket and its
 * directory when stopped with SIGTERM or SIGINT. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "peer-test-util.h"

/* --- the blocks ---------------------------------------------------------- */

/* The fenced blocks of @readme in @language ("c", "xml"), in order. */
static GPtrArray *
fenced_blocks (const char *readme,
               const char *language)
{
  GPtrArray *blocks = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *fence = g_strdup_printf ("\n```%s\n", language);
  const char *p = readme;

  while ((p = strstr (p, fence)) != NULL)
    {
      const char *start = p + strlen (fence);
      const char *end = strstr (start, "\n```\n");

      g_assert_nonnull (end);
      g_ptr_array_add (blocks, g_strndup (start, end - start + 1));   /* with its last newline */
      p = end + 1;
    }
  return blocks;
}

/* The file a C block says it is: its first line is a comment that starts
 * with the file's name ("/" "* NAME.c: ..."). */
static char *
block_file_name (const char *block)
{
  const char *colon;

  if (!g_str_has_prefix (block, "/* "))
    return NULL;
  colon = strstr (block, ".c: ");
  if (colon == NULL || memchr (block, '\n', colon - block) != NULL)
    return NULL;
  return g_strndup (block + 3, colon + 2 - (block + 3));
}

static char *
read_example (const char *examples_dir,
              const char *name)
{
  g_autofree char *path = g_build_filename (examples_dir, name, NULL);
  char *contents = NULL;

  if (!g_file_get_contents (path, &contents, NULL, NULL))
    return NULL;
  return contents;
}

/* NULL when every C block of @readme is the whole of the example file it
 * names, and every XML block the whole of one of the examples' XML files;
 * otherwise a description of the first block that is not. */
static char *
find_drift (const char *readme,
            const char *examples_dir)
{
  g_autoptr(GPtrArray) c_blocks = fenced_blocks (readme, "c");
  g_autoptr(GPtrArray) xml_blocks = fenced_blocks (readme, "xml");

  for (guint i = 0; i < c_blocks->len; i++)
    {
      const char *block = g_ptr_array_index (c_blocks, i);
      g_autofree char *name = block_file_name (block);
      g_autofree char *file = name != NULL ? read_example (examples_dir, name) : NULL;

      if (name == NULL)
        return g_strdup_printf ("C block %u does not start with its file's name:\n%.200s", i + 1, block);
      if (file == NULL)
        return g_strdup_printf ("C block %u is %s, which is not in examples/", i + 1, name);
      if (!g_str_equal (file, block))
        return g_strdup_printf ("C block %u differs from examples/%s", i + 1, name);
    }
  for (guint i = 0; i < xml_blocks->len; i++)
    {
      const char *block = g_ptr_array_index (xml_blocks, i);
      g_autoptr(GDir) dir = g_dir_open (examples_dir, 0, NULL);
      const char *entry;
      gboolean found = FALSE;

      g_assert_nonnull (dir);
      while (!found && (entry = g_dir_read_name (dir)) != NULL)
        if (g_str_has_suffix (entry, ".xml"))
          {
            g_autofree char *file = read_example (examples_dir, entry);
            found = file != NULL && g_str_equal (file, block);
          }
      if (!found)
        return g_strdup_printf ("XML block %u is not the whole of any examples/*.xml:\n%.200s", i + 1, block);
    }
  return NULL;
}

static char *
read_readme (void)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "..", "README.md", NULL);
  g_autoptr(GError) error = NULL;
  char *readme = NULL;

  g_file_get_contents (path, &readme, NULL, &error);
  g_assert_no_error (error);
  return readme;
}

static void
test_blocks_are_examples (void)
{
  g_autofree char *readme = read_readme ();
  g_autofree char *examples = g_test_build_filename (G_TEST_DIST, "..", "examples", NULL);
  g_autoptr(GPtrArray) c_blocks = fenced_blocks (readme, "c");
  g_autofree char *drift = find_drift (readme, examples);

  if (drift != NULL)
    g_error ("README.md and examples/ drifted apart: %s", drift);
  /* codegen-example.c, objects-example.c, helper-example.c at least. */
  g_assert_cmpuint (c_blocks->len, >=, 3);
}

/* The negative twin: one changed character in a block, a fragment, or a
 * block naming a file that is not there, is found. */
static void
test_drift_is_found (void)
{
  g_autofree char *readme = read_readme ();
  g_autofree char *examples = g_test_build_filename (G_TEST_DIST, "..", "examples", NULL);
  g_autoptr(GString) changed = g_string_new (readme);
  g_autofree char *with_fragment = g_strconcat (readme, "\n```c\npeer_server_start (server);\n```\n", NULL);
  g_autofree char *with_stranger = g_strconcat (readme, "\n```c\n/* nowhere.c: nothing */\n```\n", NULL);
  g_autofree char *drift = NULL;
  const char *in_block = strstr (readme, "static const ExampleHelper1Vtable handlers");

  g_assert_nonnull (in_block);
  g_string_overwrite (changed, in_block - readme, "Static");
  drift = find_drift (changed->str, examples);
  g_assert_nonnull (drift);
  g_assert_nonnull (strstr (drift, "differs from examples/codegen-example.c"));
  g_clear_pointer (&drift, g_free);

  drift = find_drift (with_fragment, examples);
  g_assert_nonnull (drift);
  g_assert_nonnull (strstr (drift, "does not start with its file's name"));
  g_clear_pointer (&drift, g_free);

  drift = find_drift (with_stranger, examples);
  g_assert_nonnull (drift);
  g_assert_nonnull (strstr (drift, "nowhere.c, which is not in examples/"));
}

/* --- the servers --------------------------------------------------------- */

typedef struct {
  PeerTestProcess *server;
  char *address;
  char *socket_path;
  char *socket_dir;
} Example;

/* Starts a README server and checks what the README says of its socket: a
 * fresh 0700 directory, ours alone. */
static void
example_start (Example    *example,
               const char *env_name)
{
  const char *argv[] = { peer_test_program (env_name), NULL };
  g_autoptr(GError) error = NULL;
  struct stat st;

  example->server = peer_test_spawn (argv, &error);
  g_assert_no_error (error);
  example->address = peer_test_process_read_line (example->server);
  g_assert_nonnull (example->address);
  g_assert_true (g_str_has_prefix (example->address, "unix:path="));
  example->socket_path = g_strdup (example->address + strlen ("unix:path="));
  example->socket_dir = g_path_get_dirname (example->socket_path);
  g_assert_cmpint (lstat (example->socket_dir, &st), ==, 0);
  g_assert_true (S_ISDIR (st.st_mode));
  g_assert_cmpint (st.st_mode & 0777, ==, 0700);
  g_assert_cmpint (lstat (example->socket_path, &st), ==, 0);
  g_assert_true (S_ISSOCK (st.st_mode));
}

/* Stops it with @signum. SIGTERM and SIGINT: it exits 0 and its socket
 * and directory are gone. SIGKILL, the twin, leaves both behind, which
 * shows that the check sees a leftover; the test removes it. */
static void
example_stop (Example *example,
              int      signum)
{
  int status = peer_test_process_stop (example->server, signum);

  if (signum == SIGKILL)
    {
      g_assert_true (WIFSIGNALED (status));
      g_assert_true (g_file_test (example->socket_path, G_FILE_TEST_EXISTS));
      g_assert_true (g_file_test (example->socket_dir, G_FILE_TEST_IS_DIR));
      peer_test_remove_dir (example->socket_dir);
    }
  else
    {
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 0);
      g_assert_false (g_file_test (example->socket_path, G_FILE_TEST_EXISTS));
      g_assert_false (g_file_test (example->socket_dir, G_FILE_TEST_EXISTS));
    }
  g_free (example->address);
  g_free (example->socket_path);
  g_free (example->socket_dir);
}

/* codegen-example serves; codegen-example ADDRESS calls it. */
static void
test_codegen_example (gconstpointer data)
{
  int signum = GPOINTER_TO_INT (data);
  Example example;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *nowhere = NULL;

  example_start (&example, "CODEGEN_EXAMPLE");
  {
    const char *argv[] = { peer_test_program ("CODEGEN_EXAMPLE"), example.address, NULL };

    g_assert_cmpint (peer_test_run (argv, &out, &err), ==, 0);
    g_assert_true (g_str_has_prefix (out, "Quick (64) = "));
    g_assert_nonnull (strstr (out, "\nQuick (0): bits must be between 1 and 64, not 0\n"));
    g_assert_cmpstr (err, ==, "");
  }
  nowhere = g_strdup (example.address);
  example_stop (&example, signum);

  /* The client's twin: no server there any more. */
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  if (signum != SIGKILL)
    {
      const char *argv[] = { peer_test_program ("CODEGEN_EXAMPLE"), nowhere, NULL };

      g_assert_cmpint (peer_test_run (argv, &out, &err), ==, 1);
      g_assert_true (g_str_has_prefix (err, "codegen-example: Cannot connect"));
    }
}

static GVariant *
get_property (PeerClient *client,
              const char *path,
              const char *iface,
              const char *name)
{
  g_autoptr(GError) error = NULL;
  GVariant *value = peer_client_get_property_sync (client, path, iface, name, NULL, &error);

  g_assert_no_error (error);
  return value;
}

/* objects-example: each kind of object answers as the README says. */
static void
test_objects_example (void)
{
  static const char *const paths[] = {
    "/app/disks/sda", "/app/disks/sdb", "/app/jobs/1", "/app/jobs/2", "/app/actions/compress", "/app/legacy",
  };
  Example example;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GVariant) managed = NULL;
  g_autoptr(GVariant) objects = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) value = NULL;
  const char *text;

  example_start (&example, "OBJECTS_EXAMPLE");
  client = peer_client_new_sync (example.address, 5000, NULL, &error);
  g_assert_no_error (error);

  managed = peer_client_call_sync (client, "/app", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                                   NULL, G_VARIANT_TYPE ("(a{oa{sa{sv}}})"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  objects = g_variant_get_child_value (managed, 0);
  g_assert_cmpuint (g_variant_n_children (objects), ==, G_N_ELEMENTS (paths));
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autoptr(GVariant) interfaces = g_variant_lookup_value (objects, paths[i], NULL);
      g_assert_nonnull (interfaces);
    }

  /* One interface at two paths: shared handler, a Size each. */
  reply = peer_client_call_sync (client, "/app/disks/sdb", "org.example.Disk1", "Describe", NULL,
                                 G_VARIANT_TYPE ("(s)"), -1, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_variant_get (reply, "(&s)", &text);
  g_assert_cmpstr (text, ==, "/app/disks/sdb");
  value = get_property (client, "/app/disks/sda", "org.example.Disk1", "Size");
  g_assert_cmpuint (g_variant_get_uint64 (value), ==, 1000);
  g_clear_pointer (&value, g_variant_unref);
  value = get_property (client, "/app/disks/sdb", "org.example.Disk1", "Size");
  g_assert_cmpuint (g_variant_get_uint64 (value), ==, 2000);
  g_clear_pointer (&value, g_variant_unref);

  /* The subtree: a child that is there answers, one that is not does not. */
  value = get_property (client, "/app/jobs/2", "org.example.Job1", "State");
  g_assert_cmpstr (g_variant_get_string (value, NULL), ==, "running");
  g_clear_pointer (&value, g_variant_unref);
  g_assert_null (peer_client_call_sync (client, "/app/jobs/2", "org.example.Job1", "Cancel", NULL, NULL, -1,
                                        NULL, NULL, NULL, &error));
  g_assert_error (error, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED);
  g_clear_error (&error);
  g_assert_null (peer_client_get_property_sync (client, "/app/jobs/3", "org.example.Job1", "State", NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  /* The GObject: a peer's Set reaches the GSimpleAction. */
  value = get_property (client, "/app/actions/compress", "org.example.Action1", "Enabled");
  g_assert_true (g_variant_get_boolean (value));
  g_clear_pointer (&value, g_variant_unref);
  g_assert_true (peer_client_set_property_sync (client, "/app/actions/compress", "org.example.Action1", "Enabled",
                                                g_variant_new_boolean (FALSE), NULL, &error));
  g_assert_no_error (error);
  value = get_property (client, "/app/actions/compress", "org.example.Action1", "Enabled");
  g_assert_false (g_variant_get_boolean (value));
  g_clear_pointer (&value, g_variant_unref);

  /* The skeleton: GDBus's handle-cancel. */
  g_clear_pointer (&reply, g_variant_unref);
  reply = peer_client_call_sync (client, "/app/legacy", "org.example.Job1", "Cancel", NULL, NULL, -1,
                                 NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  value = get_property (client, "/app/legacy", "org.example.Job1", "State");
  g_assert_cmpstr (g_variant_get_string (value, NULL), ==, "cancelled");

  g_clear_object (&client);
  example_stop (&example, SIGTERM);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/readme/blocks-are-examples", test_blocks_are_examples);
  g_test_add_func ("/readme/blocks-are-examples/drift-found", test_drift_is_found);
  g_test_add_data_func ("/readme/codegen-example/sigterm", GINT_TO_POINTER (SIGTERM), test_codegen_example);
  g_test_add_data_func ("/readme/codegen-example/sigint", GINT_TO_POINTER (SIGINT), test_codegen_example);
  g_test_add_data_func ("/readme/codegen-example/sigkill-leaves-socket", GINT_TO_POINTER (SIGKILL),
                        test_codegen_example);
  g_test_add_func ("/readme/objects-example", test_objects_example);

  return g_test_run ();
}
