/* leak-probe: a program that leaks one block when asked (--leak) and
 * exits 0 either way. test-helper starts it to show that, under `meson
 * test --setup valgrind`, a definite leak in a program a test starts
 * changes that program's exit status (97), which the test sees. */
#include <glib.h>

/* volatile, so that the compiler keeps the allocation and the store that
 * loses it. */
static char *volatile kept;

int
main (int   argc,
      char *argv[])
{
  if (argc > 1 && g_str_equal (argv[1], "--leak"))
    {
      kept = g_strdup ("lost on purpose");
      kept = NULL;
    }
  return 0;
}
