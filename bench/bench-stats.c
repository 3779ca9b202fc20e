/* bench-stats.c: percentiles from per-call samples. */
#include "config.h"

#include <math.h>

#include "bench-report.h"

static int
compare_gint64 (gconstpointer a,
                gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample that at least @q of them are at or
 * under. With few samples the high percentiles are the maximum, which is
 * what they are. */
static double
quantile_us (GArray *sorted,
             double  q)
{
  gsize n = sorted->len;
  gsize rank = (gsize) ceil (q * (double) n);

  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return (double) g_array_index (sorted, gint64, rank - 1) / 1000.0;
}

void
bench_summary_compute_latency (BenchSummary *summary,
                               GArray       *samples)
{
  double total = 0;

  summary->calls = samples->len;
  if (samples->len == 0)
    {
      summary->min_us = summary->p50_us = summary->p99_us = NAN;
      summary->p999_us = summary->max_us = summary->mean_us = NAN;
      return;
    }
  g_array_sort (samples, compare_gint64);
  for (guint i = 0; i < samples->len; i++)
    total += (double) g_array_index (samples, gint64, i);
  summary->mean_us = total / samples->len / 1000.0;
  summary->min_us = quantile_us (samples, 0);
  summary->p50_us = quantile_us (samples, 0.5);
  summary->p99_us = quantile_us (samples, 0.99);
  summary->p999_us = quantile_us (samples, 0.999);
  summary->max_us = quantile_us (samples, 1);
}

GArray *
bench_quantiles (GArray *sorted_samples,
                 guint   n_points)
{
  GArray *points = g_array_sized_new (FALSE, FALSE, sizeof (double), n_points);

  g_return_val_if_fail (n_points >= 2, points);
  if (sorted_samples->len == 0)
    return points;
  for (guint i = 0; i < n_points; i++)
    {
      double q = (double) i / (n_points - 1);
      double us = quantile_us (sorted_samples, q);

      g_array_append_val (points, us);
    }
  return points;
}
