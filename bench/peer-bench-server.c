/* peer-bench-server: the server side of every transport peer-bench
 * measures (libpeer's is peer-server's own Bench1 service, with the fd
 * limit raised: see transport-libpeer.c). peer-bench starts it as
 * `peer-bench-server TRANSPORT`; it prints its address and serves until
 * SIGTERM. */
#include "config.h"

#include "bench-transport.h"

int
main (int   argc,
      char *argv[])
{
  const BenchTransport *transport;

  if (argc != 2)
    {
      g_printerr ("usage: peer-bench-server TRANSPORT\n");
      return 2;
    }
  transport = bench_transports_lookup (argv[1]);
  if (transport == NULL || transport->serve == NULL)
    {
      g_printerr ("peer-bench-server: no server for '%s' in this build\n", argv[1]);
      return 2;
    }
  return transport->serve ();
}
