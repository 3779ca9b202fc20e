/* silent-probe: a program that never speaks D-Bus. It waits until a
 * signal ends it (peer-client's handshake timeout stops it), doing
 * nothing meanwhile: test-cli starts it as a helper that never answers
 * on the connection it is handed, so never authenticates. It is ours
 * rather than a system program, whose behaviour the test would depend
 * on, and valgrind may follow it. */
#include <unistd.h>

int
main (void)
{
  for (;;)
    pause ();
}
