/* sandbox-start: what a sandbox costs a helper's start.
 *
 *   sandbox-start [--runs N] [--json FILE] HELPER
 *
 * Starts HELPER (peer-server, or any helper serving org.libpeer.Bench1)
 * N times plainly and N times in the default sandbox, alternating so that
 * both meet the same machine, each until its first Ping is answered, and
 * prints p50/p99 of each and the ratio of the medians. The stop is not
 * counted. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include <libpeer.h>

static int
compare_doubles (gconstpointer a,
                 gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y ? 1 : 0;
}

static double
percentile (GArray *samples,
            double  p)
{
  gsize i = (gsize) (p * (samples->len - 1) + 0.5);

  return g_array_index (samples, double, MIN (i, samples->len - 1));
}

static gboolean
start_once (const char  *helper_path,
            gboolean     sandboxed,
            double      *out_ms,
            GError     **error)
{
  const char *argv[] = { helper_path, NULL };
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(GVariant) reply = NULL;
  gint64 start = g_get_monotonic_time ();

  helper = sandboxed ? peer_helper_new_sandboxed (argv, NULL, NULL, error) : peer_helper_new (argv, NULL, error);
  if (helper != NULL)
    reply = peer_helper_call_sync (helper, "/org/libpeer/Bench", "org.libpeer.Bench1", "Ping", NULL, NULL,
                                   -1, NULL, NULL, NULL, error);
  *out_ms = (double) (g_get_monotonic_time () - start) / 1000.0;
  return reply != NULL;
}

int
main (int   argc,
      char *argv[])
{
  gint runs = 50;
  g_autofree char *json_path = NULL;
  const GOptionEntry options[] = {
    { "runs", 'n', 0, G_OPTION_ARG_INT, &runs, "Starts of each kind (default 50)", "N" },
    { "json", 0, 0, G_OPTION_ARG_FILENAME, &json_path, "Also write the figures to FILE", "FILE" },
    { NULL }
  };
  g_autoptr(GOptionContext) context = g_option_context_new ("HELPER");
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) plain = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) sandboxed = g_array_new (FALSE, FALSE, sizeof (double));
  double plain_p50, sandboxed_p50;

  g_option_context_add_main_entries (context, options, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("sandbox-start: %s\n", error->message);
      return 2;
    }
  if (argc != 2 || runs < 1)
    {
      g_printerr ("sandbox-start: needs HELPER and a positive --runs\n");
      return 2;
    }

  for (gint i = 0; i < runs; i++)
    for (int kind = 0; kind < 2; kind++)
      {
        double ms;

        /* Alternating, the sandboxed one first every other round. */
        gboolean in_sandbox = (kind + i) % 2 == 0;
        if (!start_once (argv[1], in_sandbox, &ms, &error))
          {
            g_printerr ("sandbox-start: %s\n", error->message);
            return 1;
          }
        g_array_append_val (in_sandbox ? sandboxed : plain, ms);
      }
  g_array_sort (plain, compare_doubles);
  g_array_sort (sandboxed, compare_doubles);
  plain_p50 = percentile (plain, 0.5);
  sandboxed_p50 = percentile (sandboxed, 0.5);

  g_print ("%-10s %6s %10s %10s\n", "start", "runs", "p50 ms", "p99 ms");
  g_print ("%-10s %6d %10.2f %10.2f\n", "plain", runs, plain_p50, percentile (plain, 0.99));
  g_print ("%-10s %6d %10.2f %10.2f\n", "sandboxed", runs, sandboxed_p50, percentile (sandboxed, 0.99));
  g_print ("sandboxed/plain (p50): %.2f\n", sandboxed_p50 / plain_p50);
  if (json_path != NULL)
    {
      g_autofree char *json = g_strdup_printf (
        "{\"runs\": %d, \"plain\": {\"p50_ms\": %.3f, \"p99_ms\": %.3f}, "
        "\"sandboxed\": {\"p50_ms\": %.3f, \"p99_ms\": %.3f}, \"ratio_p50\": %.3f}\n",
        runs, plain_p50, percentile (plain, 0.99), sandboxed_p50, percentile (sandboxed, 0.99),
        sandboxed_p50 / plain_p50);
      if (!g_file_set_contents (json_path, json, -1, &error))
        {
          g_printerr ("sandbox-start: %s\n", error->message);
          return 1;
        }
    }
  return 0;
}
