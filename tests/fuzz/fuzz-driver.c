/* fuzz-driver.c: runs a libFuzzer harness over its seed corpus as an
 * ordinary GTest, one test per file, so every fuzzer is exercised by
 * `meson test` even without clang's libFuzzer.
 *
 * Usage: fuzz-X [--tap] CORPUS_DIR... */
#include "config.h"

#include <stdint.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
run_one (gconstpointer user_data)
{
  const char *path = user_data;
  g_autofree char *contents = NULL;
  gsize length;
  g_autoptr(GError) error = NULL;

  g_assert_true (g_file_get_contents (path, &contents, &length, &error));
  g_assert_no_error (error);
  LLVMFuzzerTestOneInput ((const uint8_t *) contents, length);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);

  g_test_init (&argc, &argv, NULL);
  for (int i = 1; i < argc; i++)
    {
      g_autoptr(GDir) dir = g_dir_open (argv[i], 0, NULL);
      const char *name;

      if (dir == NULL)
        g_error ("cannot open corpus directory %s", argv[i]);
      while ((name = g_dir_read_name (dir)) != NULL)
        g_ptr_array_add (paths, g_build_filename (argv[i], name, NULL));
    }
  if (paths->len == 0)
    g_error ("no corpus files given");
  g_ptr_array_sort (paths, (GCompareFunc) g_strcmp0);
  for (guint i = 0; i < paths->len; i++)
    {
      const char *path = g_ptr_array_index (paths, i);
      g_autofree char *base = g_path_get_basename (path);
      g_autofree char *test_path = g_strdup_printf ("/peer/fuzz/corpus/%s", base);
      g_test_add_data_func (test_path, path, run_one);
    }
  return g_test_run ();
}
