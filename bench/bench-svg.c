/* bench-svg.c: the chart of a run, as hand-written SVG text.
 *
 * Two panels, one above the other: the round trip per payload size for
 * each transport (p50 joined by a line, a bar up to p99, log scale), and
 * the distribution (CDF) of round trips for one size. Axes are labelled
 * and every transport has the same colour in both panels. */
#include "config.h"

#include <math.h>

#include "bench-report.h"

#define WIDTH        920
#define PANEL_HEIGHT 430
#define LEFT         80     /* room for the y labels */
#define RIGHT        170    /* room for the legend */
#define TOP          50
#define BOTTOM       60     /* room for the x labels */

typedef struct {
  double x0, x1, y0, y1;    /* the plot area in SVG units */
} Area;

static const char *
transport_colour (guint index)
{
  static const char * const colours[] = {
    "#555555", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  };

  return colours[index % G_N_ELEMENTS (colours)];
}

/* The transports in the order they first appear in the results. */
static GPtrArray *
list_transports (BenchReport *report)
{
  GPtrArray *names = g_ptr_array_new ();

  for (guint i = 0; i < report->results->len; i++)
    {
      const BenchResult *result = report->results->pdata[i];

      if (!g_ptr_array_find_with_equal_func (names, result->transport, g_str_equal, NULL))
        g_ptr_array_add (names, result->transport);
    }
  return names;
}

static const BenchResult *
find_result (BenchReport   *report,
             const char    *transport,
             BenchCellKind  kind,
             gsize          size)
{
  for (guint i = 0; i < report->results->len; i++)
    {
      const BenchResult *result = report->results->pdata[i];

      if (result->available && result->cell.kind == kind && result->cell.size == size &&
          g_str_equal (result->transport, transport))
        return result;
    }
  return NULL;
}

static double
log_y (const Area *area,
       double      lo,
       double      hi,
       double      value)
{
  return area->y1 - (log10 (value) - lo) / (hi - lo) * (area->y1 - area->y0);
}

static double
log_x (const Area *area,
       double      lo,
       double      hi,
       double      value)
{
  return area->x0 + (log10 (value) - lo) / (hi - lo) * (area->x1 - area->x0);
}

static char *
format_time_label (double us)
{
  if (us >= 1000000)
    return g_strdup_printf ("%g s", us / 1000000);
  if (us >= 1000)
    return g_strdup_printf ("%g ms", us / 1000);
  return g_strdup_printf ("%g µs", us);
}

static void
draw_frame (GString    *svg,
            const Area *area,
            const char *title,
            const char *x_label,
            const char *y_label)
{
  double mid_x = (area->x0 + area->x1) / 2, mid_y = (area->y0 + area->y1) / 2;

  g_string_append_printf (svg,
                          "  <text x=\"%.1f\" y=\"%.1f\" class=\"title\">%s</text>\n"
                          "  <rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n"
                          "  <text x=\"%.1f\" y=\"%.1f\" class=\"axis\" text-anchor=\"middle\">%s</text>\n"
                          "  <text transform=\"translate(%.1f %.1f) rotate(-90)\" class=\"axis\" "
                          "text-anchor=\"middle\">%s</text>\n",
                          area->x0, area->y0 - 20, title,
                          area->x0, area->y0, area->x1 - area->x0, area->y1 - area->y0,
                          mid_x, area->y1 + 42, x_label,
                          area->x0 - 58, mid_y, y_label);
}

/* Decade lines and labels on a log axis, with lighter lines at 2 and 5. */
static void
draw_log_grid (GString    *svg,
               const Area *area,
               double      lo,
               double      hi,
               gboolean    vertical_axis)
{
  for (int decade = (int) lo; decade <= (int) hi; decade++)
    for (int step = 1; step <= 5; step += (step == 1 ? 1 : 3))
      {
        double value = step * pow (10, decade);
        double v = log10 (value);
        g_autofree char *label = NULL;

        if (v < lo - 1e-9 || v > hi + 1e-9)
          continue;
        if (vertical_axis)
          {
            double y = log_y (area, lo, hi, value);

            g_string_append_printf (svg, "  <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>\n",
                                    area->x0, y, area->x1, y, step == 1 ? "grid" : "minor");
            if (step != 1)
              continue;
            label = format_time_label (value);
            g_string_append_printf (svg, "  <text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%s</text>\n",
                                    area->x0 - 6, y + 4, label);
          }
        else
          {
            double x = log_x (area, lo, hi, value);

            g_string_append_printf (svg, "  <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>\n",
                                    x, area->y0, x, area->y1, step == 1 ? "grid" : "minor");
            if (step != 1)
              continue;
            label = format_time_label (value);
            g_string_append_printf (svg, "  <text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%s</text>\n",
                                    x, area->y1 + 18, label);
          }
      }
}

static void
draw_legend (GString    *svg,
             const Area *area,
             GPtrArray  *names)
{
  double x = area->x1 + 20;

  for (guint t = 0; t < names->len; t++)
    {
      double y = area->y0 + 14 + t * 22;
      g_autofree char *name = g_markup_escape_text (names->pdata[t], -1);

      g_string_append_printf (svg,
                              "  <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n"
                              "  <text x=\"%.1f\" y=\"%.1f\" class=\"legend\">%s</text>\n",
                              x, y, x + 24, y, transport_colour (t), x + 32, y + 4, name);
    }
}

static void
draw_latency_panel (GString     *svg,
                    BenchReport *report,
                    GPtrArray   *names,
                    double       top)
{
  Area area = { LEFT, WIDTH - RIGHT, top + TOP, top + PANEL_HEIGHT - BOTTOM };
  guint n_sizes = report->sizes->len;
  double lowest = INFINITY, highest = 0, lo, hi;
  double column = (area.x1 - area.x0) / MAX (n_sizes, 1);

  for (guint i = 0; i < report->results->len; i++)
    {
      const BenchResult *result = report->results->pdata[i];

      if (!result->available || result->cell.kind != BENCH_CELL_ECHO)
        continue;
      lowest = MIN (lowest, result->summary.p50_us);
      highest = MAX (highest, result->summary.p99_us);
    }
  if (!(highest > 0))
    {
      /* Nothing to draw: an empty decade rather than a division by zero. */
      lowest = 1;
      highest = 10;
    }
  lo = floor (log10 (MAX (lowest, 0.01)));
  hi = ceil (log10 (highest));
  if (hi <= lo)
    hi = lo + 1;

  draw_frame (svg, &area, "Round trip by payload size: p50 (line), p50 to p99 (bar)",
              "payload size", "round trip (log scale)");
  draw_log_grid (svg, &area, lo, hi, TRUE);
  for (guint s = 0; s < n_sizes; s++)
    {
      BenchCell cell = { BENCH_CELL_ECHO, g_array_index (report->sizes, gsize, s), 0 };
      g_autofree char *label = bench_cell_label (&cell);

      g_string_append_printf (svg, "  <text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%s</text>\n",
                              area.x0 + (s + 0.5) * column, area.y1 + 18, label);
    }

  for (guint t = 0; t < names->len; t++)
    {
      /* Each transport's bars sit a little apart so that none hides another. */
      double offset = ((double) t - (names->len - 1) / 2.0) * MIN (8.0, column / (names->len + 1));
      g_autoptr(GString) points = g_string_new (NULL);
      g_autoptr(GString) marks = g_string_new (NULL);

      for (guint s = 0; s < n_sizes; s++)
        {
          const BenchResult *result = find_result (report, names->pdata[t], BENCH_CELL_ECHO,
                                                   g_array_index (report->sizes, gsize, s));
          double x = area.x0 + (s + 0.5) * column + offset;
          double y50, y99;

          if (result == NULL || !(result->summary.p50_us > 0))
            continue;
          y50 = log_y (&area, lo, hi, result->summary.p50_us);
          y99 = log_y (&area, lo, hi, result->summary.p99_us);
          g_string_append_printf (points, "%.1f,%.1f ", x, y50);
          g_string_append_printf (marks,
                                  "    <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\" opacity=\"0.6\"/>\n"
                                  "    <circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"/>\n",
                                  x, y50, x, y99, x, y50);
        }
      g_string_append_printf (svg,
                              "  <g stroke=\"%1$s\" fill=\"%1$s\">\n"
                              "    <polyline points=\"%2$s\" fill=\"none\" stroke-width=\"2\"/>\n"
                              "%3$s  </g>\n",
                              transport_colour (t), points->str, marks->str);
    }
  draw_legend (svg, &area, names);
}

static void
draw_cdf_panel (GString     *svg,
                BenchReport *report,
                GPtrArray   *names,
                double       top)
{
  Area area = { LEFT, WIDTH - RIGHT, top + TOP, top + PANEL_HEIGHT - BOTTOM };
  /* The axis ends at the slowest p99.9: the last 0.1 % would squash the rest. */
  const guint last = BENCH_CDF_POINTS - 2;
  double lowest = INFINITY, highest = 0, lo, hi;
  g_autofree char *title = NULL;
  BenchCell cell = { BENCH_CELL_ECHO, report->cdf_size, 0 };
  g_autofree char *label = bench_cell_label (&cell);

  for (guint t = 0; t < names->len; t++)
    {
      const BenchResult *result = find_result (report, names->pdata[t], BENCH_CELL_ECHO, report->cdf_size);

      if (result == NULL || result->cdf == NULL || result->cdf->len != BENCH_CDF_POINTS)
        continue;
      lowest = MIN (lowest, g_array_index (result->cdf, double, 0));
      highest = MAX (highest, g_array_index (result->cdf, double, last));
    }
  if (!(highest > 0))
    {
      /* Nothing to draw: an empty decade rather than a division by zero. */
      lowest = 1;
      highest = 10;
    }
  lo = floor (log10 (MAX (lowest, 0.01)));
  hi = ceil (log10 (highest));
  if (hi <= lo)
    hi = lo + 1;

  title = g_strdup_printf ("Distribution of round trips, %s Echo (CDF, up to p99.9)", label);
  draw_frame (svg, &area, title, "round trip (log scale)", "fraction of calls at or under");
  draw_log_grid (svg, &area, lo, hi, FALSE);
  for (guint i = 0; i <= 4; i++)
    {
      double y = area.y1 - i / 4.0 * (area.y1 - area.y0);

      g_string_append_printf (svg,
                              "  <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>\n"
                              "  <text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"end\">%.2f</text>\n",
                              area.x0, y, area.x1, y, area.x0 - 6, y + 4, i / 4.0);
    }

  for (guint t = 0; t < names->len; t++)
    {
      const BenchResult *result = find_result (report, names->pdata[t], BENCH_CELL_ECHO, report->cdf_size);
      g_autoptr(GString) points = g_string_new (NULL);

      if (result == NULL || result->cdf == NULL || result->cdf->len != BENCH_CDF_POINTS)
        continue;
      for (guint i = 0; i <= last; i++)
        {
          double us = g_array_index (result->cdf, double, i);
          double q = (double) i / (BENCH_CDF_POINTS - 1);

          g_string_append_printf (points, "%.1f,%.1f ",
                                  log_x (&area, lo, hi, MAX (us, pow (10, lo))),
                                  area.y1 - q * (area.y1 - area.y0));
        }
      g_string_append_printf (svg, "  <polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                              points->str, transport_colour (t));
    }
  draw_legend (svg, &area, names);
}

gboolean
bench_report_write_svg (BenchReport *report,
                        const char  *path,
                        GError     **error)
{
  g_autoptr(GString) svg = g_string_new (NULL);
  g_autoptr(GPtrArray) names = list_transports (report);
  g_autofree char *subtitle = NULL;
  const int height = 2 * PANEL_HEIGHT + 40;

  subtitle = g_markup_printf_escaped ("peer-bench %s · %s, %u CPUs, %s · pin %s · %.2f s per cell",
                                      PACKAGE_VERSION, report->cpu_model, report->n_cpus,
                                      report->kernel, report->pin, report->seconds);
  g_string_append_printf (svg,
                          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                          "viewBox=\"0 0 %d %d\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
                          "  <style>\n"
                          "    .title { font-size: 15px; font-weight: bold; fill: #222; }\n"
                          "    .axis { font-size: 13px; fill: #222; }\n"
                          "    .tick { font-size: 11px; fill: #444; }\n"
                          "    .legend { font-size: 13px; fill: #222; }\n"
                          "    .note { font-size: 11px; fill: #666; }\n"
                          "    .frame { fill: none; stroke: #888; }\n"
                          "    .grid { stroke: #ccc; stroke-width: 1; }\n"
                          "    .minor { stroke: #eee; stroke-width: 1; }\n"
                          "  </style>\n"
                          "  <rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                          "  <text x=\"%d\" y=\"%d\" class=\"note\">%s</text>\n",
                          WIDTH, height, WIDTH, height, LEFT, height - 12, subtitle);
  draw_latency_panel (svg, report, names, 0);
  draw_cdf_panel (svg, report, names, PANEL_HEIGHT);
  g_string_append (svg, "</svg>\n");

  return g_file_set_contents (path, svg->str, (gssize) svg->len, error);
}
