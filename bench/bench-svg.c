/* bench-svg.c: the chart of a run, as hand-written SVG text.
 *
 * Panels one above the other: the round trip per payload size for each
 * transport (p50 joined by a line, a bar up to p99, log scale); the
 * distribution (CDF) of round trips for one size; and, when the run had
 * them, the fd cells (calls carrying 1 to 253 fds) beside the memfd cells
 * (a sealed memfd handed over, against the floor copying the same bytes),
 * drawn like the first; and the pipelined and clients cells (calls in
 * flight on one connection, connections calling at once), the same way. Axes are labelled and every transport has the
 * same colour in every panel. */
#include "config.h"

#include <math.h>

#include "bench-report.h"
#include "bench-transport.h"

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

/* Cells are matched on what they measure; the echo cells' depth of 1 is
 * not part of it. */
static const BenchResult *
find_result (BenchReport     *report,
             const char      *transport,
             const BenchCell *cell)
{
  for (guint i = 0; i < report->results->len; i++)
    {
      const BenchResult *result = report->results->pdata[i];

      if (result->available && result->cell.kind == cell->kind && result->cell.size == cell->size &&
          result->cell.n_fds == cell->n_fds && result->cell.n_clients == cell->n_clients &&
          (cell->kind != BENCH_CELL_PIPELINE || result->cell.depth == cell->depth) &&
          g_str_equal (result->transport, transport))
        return result;
    }
  return NULL;
}

/* (transfer full) (element-type BenchCell): the echo cells, by size. */
static GArray *
list_echo_cells (BenchReport *report)
{
  GArray *cells = g_array_new (FALSE, FALSE, sizeof (BenchCell));

  for (guint s = 0; s < report->sizes->len; s++)
    {
      BenchCell cell = { BENCH_CELL_ECHO, g_array_index (report->sizes, gsize, s), 1, 0 };

      g_array_append_val (cells, cell);
    }
  return cells;
}

/* (transfer full) (element-type BenchCell): the fd cells, then the memfd cells. */
static GArray *
list_fd_cells (BenchReport *report)
{
  GArray *cells = g_array_new (FALSE, FALSE, sizeof (BenchCell));

  for (guint i = 0; i < report->fd_counts->len; i++)
    {
      BenchCell cell = { BENCH_CELL_FD, 0, 1, g_array_index (report->fd_counts, guint, i) };

      g_array_append_val (cells, cell);
    }
  for (guint i = 0; i < report->memfd_sizes->len; i++)
    {
      BenchCell cell = { BENCH_CELL_MEMFD, g_array_index (report->memfd_sizes, gsize, i), 1, 1 };

      g_array_append_val (cells, cell);
    }
  return cells;
}

/* (transfer full) (element-type BenchCell): the pipelined cells, then the
 * clients cells. */
static GArray *
list_load_cells (BenchReport *report)
{
  GArray *cells = g_array_new (FALSE, FALSE, sizeof (BenchCell));

  for (guint i = 0; i < report->depths->len; i++)
    {
      BenchCell cell = { BENCH_CELL_PIPELINE, BENCH_LOOP_PAYLOAD, g_array_index (report->depths, guint, i), 0, 0 };

      g_array_append_val (cells, cell);
    }
  for (guint i = 0; i < report->client_counts->len; i++)
    {
      BenchCell cell = { BENCH_CELL_CLIENTS, BENCH_LOOP_PAYLOAD, 1, 0,
                         g_array_index (report->client_counts, guint, i) };

      g_array_append_val (cells, cell);
    }
  return cells;
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

/* One column per cell of @cells, each transport's p50 joined by a line
 * with a bar up to p99, on a log scale. */
static void
draw_cells_panel (GString     *svg,
                  BenchReport *report,
                  GPtrArray   *names,
                  GArray      *cells,
                  double       top,
                  const char  *title,
                  const char  *x_label)
{
  Area area = { LEFT, WIDTH - RIGHT, top + TOP, top + PANEL_HEIGHT - BOTTOM };
  guint n_cells = cells->len;
  double lowest = INFINITY, highest = 0, lo, hi;
  double column = (area.x1 - area.x0) / MAX (n_cells, 1);

  for (guint t = 0; t < names->len; t++)
    for (guint c = 0; c < n_cells; c++)
      {
        const BenchResult *result = find_result (report, names->pdata[t], &g_array_index (cells, BenchCell, c));

        if (result == NULL)
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

  draw_frame (svg, &area, title, x_label, "round trip (log scale)");
  draw_log_grid (svg, &area, lo, hi, TRUE);
  for (guint c = 0; c < n_cells; c++)
    {
      g_autofree char *label = bench_cell_label (&g_array_index (cells, BenchCell, c));

      g_string_append_printf (svg, "  <text x=\"%.1f\" y=\"%.1f\" class=\"tick\" text-anchor=\"middle\">%s</text>\n",
                              area.x0 + (c + 0.5) * column, area.y1 + 18, label);
    }

  for (guint t = 0; t < names->len; t++)
    {
      /* Each transport's bars sit a little apart so that none hides another. */
      double offset = ((double) t - (names->len - 1) / 2.0) * MIN (8.0, column / (names->len + 1));
      g_autoptr(GString) points = g_string_new (NULL);
      g_autoptr(GString) marks = g_string_new (NULL);

      for (guint c = 0; c < n_cells; c++)
        {
          const BenchCell *cell = &g_array_index (cells, BenchCell, c);
          const BenchCell *previous = c > 0 ? &g_array_index (cells, BenchCell, c - 1) : NULL;
          const BenchResult *result = find_result (report, names->pdata[t], cell);
          double x = area.x0 + (c + 0.5) * column + offset;
          double y50, y99;

          if (result == NULL || !(result->summary.p50_us > 0))
            continue;
          /* A line joins cells of one kind only: an fd count and a memfd
           * size are not one axis. */
          if (previous != NULL && previous->kind != cell->kind && points->len > 0)
            {
              g_string_append_printf (svg, "  <polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                                      points->str, transport_colour (t));
              g_string_truncate (points, 0);
            }
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
  BenchCell cell = { BENCH_CELL_ECHO, report->cdf_size, 1, 0 };
  g_autofree char *label = bench_cell_label (&cell);

  for (guint t = 0; t < names->len; t++)
    {
      const BenchResult *result = find_result (report, names->pdata[t], &cell);

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
      const BenchResult *result = find_result (report, names->pdata[t], &cell);
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
  g_autoptr(GArray) echo_cells = list_echo_cells (report);
  g_autoptr(GArray) fd_cells = list_fd_cells (report);
  g_autoptr(GArray) load_cells = list_load_cells (report);
  g_autofree char *subtitle = NULL;
  /* Panels only for what the run measured (--cells), the echo cells'
   * two at least: an empty chart says so. */
  gboolean echo_panels = echo_cells->len > 0 || (fd_cells->len == 0 && load_cells->len == 0);
  const int height = ((echo_panels ? 2 : 0) + (fd_cells->len > 0 ? 1 : 0) + (load_cells->len > 0 ? 1 : 0)) *
                     PANEL_HEIGHT + 40;

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
  if (echo_panels)
    {
      draw_cells_panel (svg, report, names, echo_cells, 0,
                        "Round trip by payload size: p50 (line), p50 to p99 (bar)", "payload size");
      draw_cdf_panel (svg, report, names, PANEL_HEIGHT);
    }
  if (fd_cells->len > 0)
    draw_cells_panel (svg, report, names, fd_cells, echo_panels ? 2 * PANEL_HEIGHT : 0,
                      "Passing fds: n fds per call; a sealed memfd against the floor copying the bytes",
                      "fds per call, then bytes handed over as a memfd (the floor copies them)");
  if (load_cells->len > 0)
    draw_cells_panel (svg, report, names, load_cells,
                      ((echo_panels ? 2 : 0) + (fd_cells->len > 0 ? 1 : 0)) * PANEL_HEIGHT,
                      "Under load: calls in flight on one connection; connections calling at once",
                      "depth (calls in flight), then clients (connections, one thread each)");
  g_string_append (svg, "</svg>\n");

  return g_file_set_contents (path, svg->str, (gssize) svg->len, error);
}
