/* silent-probe: a program that never speaks D-Bus. It waits until a
 * signal ends it (peer-client's handshake timeout stops it), doing
 * nothing meanwhile: test-cli starts it as a helper that connects but
 * never authenticates. Ours rather than sleep(1), so that the test waits
 * on an event of its own program and valgrind may follow it. */
#include <unistd.h>

int
main (void)
{
  for (;;)
    pause ();
}
