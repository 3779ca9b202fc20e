/* bench-svg.c: the chart of a run, as hand-written SVG text.
 *
 * It has to stand on its own, read by someone who has not seen the README:
 * a key at the top says what is measured (the round trip of a call; lower
 * is better), what the floor is, and what each transport is, libpeer's
 * two paths apart. Then panels one above the other: the round trip per
 * payload size for each transport (p50 joined by a line, a bar up to p99,
 * log scale); the distribution (CDF) of round trips for one size; and,
 * when the run had them, the fd cells (calls carrying 1 to 253 fds) beside
 * the memfd cells (a sealed memfd handed over, against the floor copying
 * the same bytes), drawn like the first; and the pipelined and clients
 * cells (calls in flight on one connection, connections calling at once),
 * the same way. Each panel says in a line what it shows. Every transport
 * has the same colour, dash and marker shape everywhere, so that lines on
 * top of each other stay apart, and each line is named at its end. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "bench-report.h"
#include "bench-transport.h"

#define WIDTH        920
#define PANEL_HEIGHT 450
#define LEFT         80     /* room for the y labels */
#define RIGHT        170    /* room for the lines' names */
#define TOP          80     /* room for the title and its note */
#define BOTTOM       60     /* room for the x labels */
#define KEY_LINE     17     /* one line of the key */
#define LABEL_GAP    14     /* the least distance between two end labels */

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

/* Colour alone does not part two lines drawn on top of each other (GDBus
 * and libpeer's standard path cost nearly the same): each transport has
 * its dash pattern and marker shape too. */
static const char *
transport_dash (guint index)
{
  static const char * const dashes[] = { "none", "7 3", "2 3", "9 3 2 3", "14 3", "5 2", "1 3" };

  return dashes[index % G_N_ELEMENTS (dashes)];
}

typedef enum { MARK_CIRCLE, MARK_SQUARE, MARK_TRIANGLE, MARK_DIAMOND, MARK_DOWN, MARK_CROSS, MARK_STAR } Mark;

static void
draw_marker (GString *svg,
             guint    index,
             double   x,
             double   y)
{
  const double r = 4.0;

  switch ((Mark) (index % 7))
    {
    case MARK_CIRCLE:
      g_string_append_printf (svg, "    <circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\"/>\n", x, y, r);
      break;
    case MARK_SQUARE:
      g_string_append_printf (svg, "    <rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n",
                              x - r, y - r, 2 * r, 2 * r);
      break;
    case MARK_TRIANGLE:
      g_string_append_printf (svg, "    <path d=\"M%.1f,%.1f L%.1f,%.1f L%.1f,%.1f Z\"/>\n",
                              x, y - r - 1, x + r + 0.5, y + r, x - r - 0.5, y + r);
      break;
    case MARK_DIAMOND:
      g_string_append_printf (svg, "    <path d=\"M%.1f,%.1f L%.1f,%.1f L%.1f,%.1f L%.1f,%.1f Z\"/>\n",
                              x, y - r - 1, x + r + 1, y, x, y + r + 1, x - r - 1, y);
      break;
    case MARK_DOWN:
      g_string_append_printf (svg, "    <path d=\"M%.1f,%.1f L%.1f,%.1f L%.1f,%.1f Z\"/>\n",
                              x, y + r + 1, x + r + 0.5, y - r, x - r - 0.5, y - r);
      break;
    case MARK_CROSS:
      g_string_append_printf (svg, "    <path d=\"M%.1f,%.1f L%.1f,%.1f M%.1f,%.1f L%.1f,%.1f\" "
                              "stroke-width=\"2.5\" fill=\"none\"/>\n",
                              x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r);
      break;
    case MARK_STAR:
    default:
      g_string_append_printf (svg, "    <path d=\"M%.1f,%.1f L%.1f,%.1f M%.1f,%.1f L%.1f,%.1f\" "
                              "stroke-width=\"2.5\" fill=\"none\"/>\n",
                              x - r - 1, y, x + r + 1, y, x, y - r - 1, x, y + r + 1);
      break;
    }
}

/* What each transport is, in a line: the key says it, so that the chart
 * needs no README. */
static const char *
transport_description (const char *name)
{
  static const struct { const char *name; const char *description; } descriptions[] = {
    { "floor", "a bare Unix socket: two processes send the same bytes back and forth, no IPC library. "
               "The least a round trip can take here" },
    { "floor-spin", "the floor, each end busy-polling up to 50 µs before it sleeps, as a lane does: "
                    "the floor for a transport that spins" },
    { "gdbus", "GLib's GDBus, peer to peer (no bus daemon)" },
    { "libpeer", "libpeer's standard path: D-Bus messages over GDBus, checked and dispatched by libpeer's "
                 "router; every D-Bus tool works with it" },
    { "libpeer-lane", "libpeer's fast path: a private socket per client (opened by one D-Bus call), one "
                      "frame out and one back per call, no D-Bus message; same handlers and errors" },
    { "sd-bus", "systemd's sd-bus, peer to peer" },
    { "libdbus", "the reference libdbus, peer to peer" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (descriptions); i++)
    if (g_str_equal (name, descriptions[i].name))
      return descriptions[i].description;
  return "";
}

/* The sample of a transport's style: a dashed line with its marker. */
static void
draw_swatch (GString *svg,
             guint    index,
             double   x,
             double   y)
{
  g_string_append_printf (svg,
                          "  <g stroke=\"%1$s\" fill=\"%1$s\">\n"
                          "    <line x1=\"%2$.1f\" y1=\"%3$.1f\" x2=\"%4$.1f\" y2=\"%3$.1f\" "
                          "stroke-width=\"2\" stroke-dasharray=\"%5$s\"/>\n",
                          transport_colour (index), x, y, x + 30, transport_dash (index));
  draw_marker (svg, index, x + 15, y);
  g_string_append (svg, "  </g>\n");
}

/* @text cut into lines of at most @width characters, at spaces.
 * (transfer full) (element-type utf8) */
static GPtrArray *
wrap_text (const char *text,
           guint       width)
{
  GPtrArray *lines = g_ptr_array_new_with_free_func (g_free);
  g_auto(GStrv) words = g_strsplit (text, " ", -1);
  g_autoptr(GString) line = g_string_new (NULL);

  for (guint i = 0; words[i] != NULL; i++)
    {
      if (line->len > 0 && g_utf8_strlen (line->str, -1) + 1 + g_utf8_strlen (words[i], -1) > width)
        {
          g_ptr_array_add (lines, g_strdup (line->str));
          g_string_truncate (line, 0);
        }
      if (line->len > 0)
        g_string_append_c (line, ' ');
      g_string_append (line, words[i]);
    }
  if (line->len > 0)
    g_ptr_array_add (lines, g_strdup (line->str));
  return lines;
}

/* A note of several lines at @x, @y (its first line's baseline); returns
 * the baseline after it. */
static double
draw_wrapped (GString    *svg,
              double      x,
              double      y,
              const char *class_name,
              const char *text,
              guint       width,
              double      line_height)
{
  g_autoptr(GPtrArray) lines = wrap_text (text, width);

  for (guint i = 0; i < lines->len; i++, y += line_height)
    {
      g_autofree char *escaped = g_markup_escape_text (lines->pdata[i], -1);

      g_string_append_printf (svg, "  <text x=\"%.1f\" y=\"%.1f\" class=\"%s\">%s</text>\n", x, y, class_name, escaped);
    }
  return y;
}

#define KEY_WIDTH   128     /* characters in a line of the key */
#define NOTE_WIDTH  132     /* characters in a line of a panel's note */

static guint
key_lines (const char *name)
{
  g_autofree char *line = g_strdup_printf ("%s: %s", name, transport_description (name));
  g_autoptr(GPtrArray) lines = wrap_text (line, KEY_WIDTH);

  return lines->len;
}

/* The key: what is measured, which way is better, and each transport. */
static double
key_height (GPtrArray *names)
{
  guint n = 0;

  for (guint t = 0; t < names->len; t++)
    n += key_lines (names->pdata[t]);
  return 90 + n * KEY_LINE;
}

static void
draw_key (GString   *svg,
          GPtrArray *names,
          double     seconds)
{
  double y = 26;

  g_string_append_printf (svg,
                          "  <text x=\"%d\" y=\"%.1f\" class=\"heading\">peer-bench: the round trip of a method call "
                          "and its reply, client and server on one machine</text>\n",
                          LEFT - 60, y);
  y += 20;
  g_string_append_printf (svg,
                          "  <text x=\"%d\" y=\"%.1f\" class=\"explain\"><tspan font-weight=\"bold\">Lower is "
                          "better</tspan>: every time on this chart is one call's round trip (in the CDF, further left "
                          "is better). Time axes are logarithmic: one grid line is 10×.</text>\n",
                          LEFT - 60, y);
  y += 16;
  g_string_append_printf (svg,
                          "  <text x=\"%d\" y=\"%.1f\" class=\"explain\">Each cell ran for %.2g s; a point is "
                          "the median (p50) of its calls, the bar above it reaches p99 (one call in a hundred was "
                          "slower).</text>\n",
                          LEFT - 60, y, seconds);
  y += 22;
  for (guint t = 0; t < names->len; t++)
    {
      g_autofree char *line = g_strdup_printf ("%s: %s", (char *) names->pdata[t],
                                               transport_description (names->pdata[t]));
      g_autoptr(GPtrArray) lines = wrap_text (line, KEY_WIDTH);

      draw_swatch (svg, t, LEFT - 60, y - 4);
      for (guint l = 0; l < lines->len; l++, y += KEY_LINE)
        {
          const char *text = lines->pdata[l];
          g_autofree char *name = g_markup_escape_text (names->pdata[t], -1);
          g_autofree char *rest = NULL;

          /* The name in bold, on the first line. */
          if (l == 0)
            {
              rest = g_markup_escape_text (text + strlen (names->pdata[t]), -1);
              g_string_append_printf (svg,
                                      "  <text x=\"%d\" y=\"%.1f\" class=\"explain\"><tspan font-weight=\"bold\" "
                                      "class=\"key-name\">%s</tspan>%s</text>\n",
                                      LEFT - 22, y, name, rest);
            }
          else
            {
              rest = g_markup_escape_text (text, -1);
              g_string_append_printf (svg, "  <text x=\"%d\" y=\"%.1f\" class=\"explain\">%s</text>\n",
                                      LEFT - 6, y, rest);
            }
        }
    }
}

/* Names each line that reaches the last column at the right of @area,
 * beside the y of its last point, pushed apart where they would overlap,
 * with a thin line back to the point; a line that stops short is named
 * beside its last point. @xs, @ys hold each transport's last point (NAN:
 * none); @last_x is where the last column's points start. */
static void
draw_end_labels (GString      *svg,
                 const Area   *area,
                 GPtrArray    *names,
                 const double *xs,
                 const double *ys,
                 double        last_x)
{
  g_autofree guint *order = g_new (guint, names->len);
  g_autofree double *placed = g_new (double, names->len);
  guint n = 0;

  g_autofree guint *short_lines = g_new (guint, names->len);
  guint n_short = 0;

  for (guint t = 0; t < names->len; t++)
    {
      if (isnan (ys[t]))
        continue;
      if (xs[t] >= last_x)
        order[n++] = t;
      else
        short_lines[n_short++] = t;
    }
  /* Those that stop short, top to bottom, each a row below the one above
   * when they stop in the same column. */
  for (guint i = 1; i < n_short; i++)
    for (guint j = i; j > 0 && ys[short_lines[j]] < ys[short_lines[j - 1]]; j--)
      {
        guint swap = short_lines[j];
        short_lines[j] = short_lines[j - 1];
        short_lines[j - 1] = swap;
      }
  for (guint i = 0; i < n_short; i++)
    {
      guint t = short_lines[i];
      g_autofree char *name = g_markup_escape_text (names->pdata[t], -1);
      double y = ys[t] - 8;

      placed[i] = y;
      for (guint k = 0; k < i; k++)
        if (fabs (xs[short_lines[k]] - xs[t]) < 40 && placed[i] < placed[k] + LABEL_GAP)
          placed[i] = placed[k] + LABEL_GAP;
      g_string_append_printf (svg, "  <text x=\"%.1f\" y=\"%.1f\" class=\"end-label\" fill=\"%s\">%s</text>\n",
                              xs[t] + 8, placed[i], transport_colour (t), name);
    }
  /* Top to bottom, each at least LABEL_GAP below the one above. */
  for (guint i = 1; i < n; i++)
    for (guint j = i; j > 0 && ys[order[j]] < ys[order[j - 1]]; j--)
      {
        guint swap = order[j];
        order[j] = order[j - 1];
        order[j - 1] = swap;
      }
  for (guint i = 0; i < n; i++)
    placed[i] = i == 0 ? MAX (ys[order[0]], area->y0 + 6) : MAX (ys[order[i]], placed[i - 1] + LABEL_GAP);
  /* Past the bottom: the whole column moves up. */
  if (n > 0 && placed[n - 1] > area->y1 - 2)
    {
      double shift = placed[n - 1] - (area->y1 - 2);

      for (guint i = 0; i < n; i++)
        placed[i] -= shift;
      for (guint i = 1; i < n; i++)
        placed[i] = MAX (placed[i], placed[i - 1] + LABEL_GAP);
    }
  for (guint i = 0; i < n; i++)
    {
      guint t = order[i];
      g_autofree char *name = g_markup_escape_text (names->pdata[t], -1);

      g_string_append_printf (svg,
                              "  <polyline points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"none\" stroke=\"%s\" "
                              "stroke-width=\"0.8\" opacity=\"0.7\"/>\n"
                              "  <text x=\"%.1f\" y=\"%.1f\" class=\"end-label\" fill=\"%s\">%s</text>\n",
                              xs[t] + 5, ys[t], area->x1 + 6, placed[i], area->x1 + 12, placed[i],
                              transport_colour (t), area->x1 + 14, placed[i] + 4, transport_colour (t), name);
    }
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
            const char *note,
            const char *x_label,
            const char *y_label)
{
  double mid_x = (area->x0 + area->x1) / 2, mid_y = (area->y0 + area->y1) / 2;

  draw_wrapped (svg, area->x0, area->y0 - 24, "panel-note", note, NOTE_WIDTH, 13);
  g_string_append_printf (svg,
                          "  <text x=\"%.1f\" y=\"%.1f\" class=\"title\">%s</text>\n"
                          "  <rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n"
                          "  <text x=\"%.1f\" y=\"%.1f\" class=\"axis\" text-anchor=\"middle\">%s</text>\n"
                          "  <text transform=\"translate(%.1f %.1f) rotate(-90)\" class=\"axis\" "
                          "text-anchor=\"middle\">%s</text>\n",
                          area->x0, area->y0 - 42, title,
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

/* One column per cell of @cells, each transport's p50 joined by a line
 * with a bar up to p99, on a log scale. */
static void
draw_cells_panel (GString     *svg,
                  BenchReport *report,
                  GPtrArray   *names,
                  GArray      *cells,
                  double       top,
                  const char  *title,
                  const char  *note,
                  const char  *x_label)
{
  Area area = { LEFT, WIDTH - RIGHT, top + TOP, top + PANEL_HEIGHT - BOTTOM };
  g_autofree double *end_x = g_new (double, names->len);
  g_autofree double *end_y = g_new (double, names->len);
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

  draw_frame (svg, &area, title, note, x_label, "round trip, lower is better (log scale)");
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

      end_x[t] = end_y[t] = NAN;
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
              g_string_append_printf (svg, "  <polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" "
                                      "stroke-dasharray=\"%s\" class=\"transport-line\"/>\n",
                                      points->str, transport_colour (t), transport_dash (t));
              g_string_truncate (points, 0);
            }
          y50 = log_y (&area, lo, hi, result->summary.p50_us);
          y99 = log_y (&area, lo, hi, result->summary.p99_us);
          g_string_append_printf (points, "%.1f,%.1f ", x, y50);
          g_string_append_printf (marks,
                                  "    <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"2\" opacity=\"0.5\"/>\n",
                                  x, y50, x, y99);
          draw_marker (marks, t, x, y50);
          end_x[t] = x;
          end_y[t] = y50;
        }
      g_string_append_printf (svg,
                              "  <g stroke=\"%1$s\" fill=\"%1$s\">\n"
                              "    <polyline points=\"%2$s\" fill=\"none\" stroke-width=\"2\" stroke-dasharray=\"%4$s\" "
                              "class=\"transport-line\"/>\n"
                              "%3$s  </g>\n",
                              transport_colour (t), points->str, marks->str, transport_dash (t));
    }
  draw_end_labels (svg, &area, names, end_x, end_y, area.x0 + (n_cells - 1) * column);
}

/* The CDF's curves are named beside their medians, which all sit at
 * 0.5: in order of speed, each on the first row below the 0.5 line that
 * its name does not share with a name still running on from the left. */
static void
draw_cdf_labels (GString      *svg,
                 const Area   *area,
                 GPtrArray    *names,
                 const double *xs,
                 const double *ys)
{
  g_autofree guint *order = g_new (guint, names->len);
  double row_end[16];
  guint n = 0;

  for (guint r = 0; r < G_N_ELEMENTS (row_end); r++)
    row_end[r] = -INFINITY;
  for (guint t = 0; t < names->len; t++)
    if (!isnan (xs[t]))
      order[n++] = t;
  for (guint i = 1; i < n; i++)
    for (guint j = i; j > 0 && xs[order[j]] < xs[order[j - 1]]; j--)
      {
        guint swap = order[j];
        order[j] = order[j - 1];
        order[j - 1] = swap;
      }
  for (guint i = 0; i < n; i++)
    {
      guint t = order[i], row = 0;
      g_autofree char *name = g_markup_escape_text (names->pdata[t], -1);
      double x = xs[t] + 6, y;

      while (row + 1 < G_N_ELEMENTS (row_end) && row_end[row] > x)
        row++;
      y = ys[t] + 18 + row * LABEL_GAP;
      /* About 7 units a character at this size. */
      row_end[row] = x + 7.0 * strlen (names->pdata[t]) + 6;
      g_string_append_printf (svg,
                              "  <line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                              "stroke-width=\"0.8\" opacity=\"0.7\"/>\n"
                              "  <text x=\"%.1f\" y=\"%.1f\" class=\"end-label\" fill=\"%s\">%s</text>\n",
                              xs[t], ys[t] + 5, x, y - 4, transport_colour (t), x, y, transport_colour (t), name);
    }
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
  g_autofree double *end_x = g_new (double, names->len);
  g_autofree double *end_y = g_new (double, names->len);

  for (guint t = 0; t < names->len; t++)
    end_x[t] = end_y[t] = NAN;

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
  draw_frame (svg, &area, title,
              "How many calls (up the side) took at most this long (along the bottom): a curve further left "
              "and steeper is faster and steadier. Marks at p50 and p99.",
              "round trip, further left is better (log scale)", "fraction of calls at or under");
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
      g_string_append_printf (svg, "  <g stroke=\"%1$s\" fill=\"%1$s\">\n"
                              "    <polyline points=\"%2$s\" fill=\"none\" stroke-width=\"2\" stroke-dasharray=\"%3$s\" "
                              "class=\"transport-line\"/>\n",
                              transport_colour (t), points->str, transport_dash (t));
      /* The same marks as elsewhere, at p50 and p99, name the curve
       * where colours cross. */
      for (guint m = 0; m < 2; m++)
        {
          guint i = m == 0 ? (BENCH_CDF_POINTS - 1) / 2 : (guint) ((BENCH_CDF_POINTS - 1) * 0.99);
          double us = g_array_index (result->cdf, double, i);
          double q = (double) i / (BENCH_CDF_POINTS - 1);

          draw_marker (svg, t, log_x (&area, lo, hi, MAX (us, pow (10, lo))), area.y1 - q * (area.y1 - area.y0));
        }
      g_string_append (svg, "  </g>\n");
      /* Named at the right, level with its median. */
      end_x[t] = log_x (&area, lo, hi, MAX (g_array_index (result->cdf, double, (BENCH_CDF_POINTS - 1) / 2), pow (10, lo)));
      end_y[t] = area.y1 - 0.5 * (area.y1 - area.y0);
    }
  draw_cdf_labels (svg, &area, names, end_x, end_y);
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
  const double key = key_height (names);
  const int height = (int) key + ((echo_panels ? 2 : 0) + (fd_cells->len > 0 ? 1 : 0) + (load_cells->len > 0 ? 1 : 0)) *
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
                          "    .heading { font-size: 17px; font-weight: bold; fill: #111; }\n"
                          "    .explain { font-size: 12px; fill: #222; }\n"
                          "    .panel-note { font-size: 11.5px; fill: #444; }\n"
                          "    .end-label { font-size: 12px; font-weight: bold; }\n"
                          "    .frame { fill: none; stroke: #888; }\n"
                          "    .grid { stroke: #ccc; stroke-width: 1; }\n"
                          "    .minor { stroke: #eee; stroke-width: 1; }\n"
                          "  </style>\n"
                          "  <rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                          "  <text x=\"%d\" y=\"%d\" class=\"note\">%s</text>\n",
                          WIDTH, height, WIDTH, height, LEFT, height - 12, subtitle);
  draw_key (svg, names, report->seconds);
  if (echo_panels)
    {
      draw_cells_panel (svg, report, names, echo_cells, key,
                        "Round trip by payload size: p50 (marks on the line), p50 to p99 (bar)",
                        "Echo: the call carries that many bytes and the reply brings them back.",
                        "payload size, each way");
      draw_cdf_panel (svg, report, names, key + PANEL_HEIGHT);
    }
  if (fd_cells->len > 0)
    draw_cells_panel (svg, report, names, fd_cells, key + (echo_panels ? 2 * PANEL_HEIGHT : 0),
                      "Passing fds: n fds per call; a sealed memfd against the floor copying the bytes",
                      "n fds: each call carries n fds and its reply n back (253 is the kernel's most; a missing "
                      "mark: the transport cannot). memfd: the bytes go as a sealed memfd, mapped and checked.",
                      "fds per call, then bytes handed over as a memfd (the floor copies them)");
  if (load_cells->len > 0)
    draw_cells_panel (svg, report, names, load_cells,
                      key + ((echo_panels ? 2 : 0) + (fd_cells->len > 0 ? 1 : 0)) * PANEL_HEIGHT,
                      "Under load: calls in flight on one connection; connections calling at once",
                      "depth n: n calls sent before the first reply is awaited (pipelined); clients n: n "
                      "connections calling at once, a thread each (no mark: that server serves one connection at a time). "
                      "Time per call as its caller sees it.",
                      "depth (calls in flight), then clients (connections, one thread each)");
  g_string_append (svg, "</svg>\n");

  return g_file_set_contents (path, svg->str, (gssize) svg->len, error);
}
