/* bench-report.c: the results of a run, the table and the JSON file. */
#include "config.h"

#include <math.h>
#include <string.h>

#include "bench-report.h"

static char *
format_size (gsize size)
{
  if (size >= 1024 * 1024 && size % (1024 * 1024) == 0)
    return g_strdup_printf ("%" G_GSIZE_FORMAT " MiB", size / (1024 * 1024));
  if (size >= 1024 && size % 1024 == 0)
    return g_strdup_printf ("%" G_GSIZE_FORMAT " KiB", size / 1024);
  return g_strdup_printf ("%" G_GSIZE_FORMAT " B", size);
}

char *
bench_cell_label (const BenchCell *cell)
{
  g_autofree char *size = NULL;

  switch (cell->kind)
    {
    case BENCH_CELL_FD:
      return g_strdup_printf ("%u fd%s", cell->n_fds, cell->n_fds == 1 ? "" : "s");
    case BENCH_CELL_PIPELINE:
      return g_strdup_printf ("depth %u", cell->depth);
    case BENCH_CELL_CLIENTS:
      return g_strdup_printf ("clients %u", cell->n_clients);
    case BENCH_CELL_MEMFD:
      size = format_size (cell->size);
      return g_strconcat ("memfd ", size, NULL);
    case BENCH_CELL_ECHO:
    default:
      return format_size (cell->size);
    }
}

gboolean
bench_cell_equal (const BenchCell *a,
                  const BenchCell *b)
{
  return a->kind == b->kind && a->size == b->size && a->depth == b->depth && a->n_fds == b->n_fds &&
         a->n_clients == b->n_clients;
}

gboolean
bench_cell_floor_copies (const BenchCell *cell)
{
  return cell->kind == BENCH_CELL_MEMFD;
}

static const char *
cell_kind_name (BenchCellKind kind)
{
  switch (kind)
    {
    case BENCH_CELL_FD:
      return "fd";
    case BENCH_CELL_PIPELINE:
      return "pipeline";
    case BENCH_CELL_CLIENTS:
      return "clients";
    case BENCH_CELL_MEMFD:
      return "memfd";
    case BENCH_CELL_ECHO:
    default:
      return "echo";
    }
}

void
bench_result_free (BenchResult *result)
{
  if (result == NULL)
    return;
  g_free (result->transport);
  g_free (result->version);
  g_free (result->unavailable);
  g_clear_pointer (&result->cdf, g_array_unref);
  g_free (result);
}

static void
bench_instructions_free (BenchInstructions *instructions)
{
  g_free (instructions->transport);
  g_free (instructions);
}

BenchReport *
bench_report_new (void)
{
  BenchReport *report = g_new0 (BenchReport, 1);

  report->sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  report->fd_counts = g_array_new (FALSE, FALSE, sizeof (guint));
  report->memfd_sizes = g_array_new (FALSE, FALSE, sizeof (gsize));
  report->depths = g_array_new (FALSE, FALSE, sizeof (guint));
  report->client_counts = g_array_new (FALSE, FALSE, sizeof (guint));
  report->results = g_ptr_array_new_with_free_func ((GDestroyNotify) bench_result_free);
  report->instructions = g_ptr_array_new_with_free_func ((GDestroyNotify) bench_instructions_free);
  return report;
}

void
bench_report_free (BenchReport *report)
{
  if (report == NULL)
    return;
  g_free (report->cpu_model);
  g_free (report->kernel);
  g_free (report->glib_version);
  g_array_unref (report->sizes);
  g_array_unref (report->fd_counts);
  g_array_unref (report->memfd_sizes);
  g_array_unref (report->depths);
  g_array_unref (report->client_counts);
  g_free (report->pin);
  g_free (report->client_cpus);
  g_free (report->server_cpus);
  g_ptr_array_unref (report->results);
  g_ptr_array_unref (report->instructions);
  g_free (report);
}

void
bench_report_compute_ratios (BenchReport *report)
{
  for (guint i = 0; i < report->results->len; i++)
    {
      BenchResult *result = report->results->pdata[i];
      const BenchResult *floor_result = NULL;

      result->ratio = NAN;
      for (guint j = 0; j < report->results->len && floor_result == NULL; j++)
        {
          const BenchResult *other = report->results->pdata[j];

          if (g_str_equal (other->transport, "floor") && other->available &&
              bench_cell_equal (&other->cell, &result->cell))
            floor_result = other;
        }
      if (floor_result == NULL || !result->available)
        continue;
      /* Latency cells compare round trips; pipelined ones throughput,
       * inverted so that both read "times the floor's cost". */
      if (result->cell.kind == BENCH_CELL_PIPELINE || result->cell.kind == BENCH_CELL_CLIENTS)
        result->ratio = floor_result->summary.calls_per_s / result->summary.calls_per_s;
      else
        result->ratio = result->summary.p50_us / floor_result->summary.p50_us;
    }
}

/* Three significant digits or so: 4.21, 42.1, 421. */
static char *
format_us (double us)
{
  if (isnan (us))
    return g_strdup ("-");
  if (us < 10)
    return g_strdup_printf ("%.2f", us);
  if (us < 100)
    return g_strdup_printf ("%.1f", us);
  return g_strdup_printf ("%.0f", us);
}

void
bench_report_print_header (BenchReport *report,
                           FILE        *out)
{
  fprintf (out, "peer-bench %s: %s, %u CPUs, %s, GLib %s\n",
           PACKAGE_VERSION, report->cpu_model, report->n_cpus, report->kernel,
           report->glib_version);
  fprintf (out, "pin %s: client on CPU %s, servers on CPU %s; %.2f s per cell after %.2f s warm-up\n",
           report->pin, report->client_cpus, report->server_cpus,
           report->seconds, report->seconds / 5);
}

void
bench_report_print_table (BenchReport *report,
                          FILE        *out)
{
  const BenchCell *previous = NULL;

  fprintf (out, "\n%-12s %-12s %9s %9s %9s %10s %10s %10s %8s %8s\n",
           "cell", "transport", "p50 us", "p99 us", "p99.9 us", "calls/s",
           "client us", "server us", "x floor", "max/min");
  for (guint i = 0; i < report->results->len; i++)
    {
      const BenchResult *result = report->results->pdata[i];
      const BenchSummary *s = &result->summary;
      g_autofree char *label = NULL;
      g_autofree char *p50 = NULL, *p99 = NULL, *p999 = NULL;
      g_autofree char *client = NULL, *server = NULL;
      g_autofree char *ratio = NULL;
      g_autofree char *fairness = NULL;

      if (previous == NULL || !bench_cell_equal (previous, &result->cell))
        {
          label = bench_cell_label (&result->cell);
          if (previous != NULL)
            fputc ('\n', out);
        }
      previous = &result->cell;
      if (!result->available)
        {
          fprintf (out, "%-12s %-12s %9s   (%s)\n", label ? label : "", result->transport,
                   "n/a", result->unavailable);
          continue;
        }
      p50 = format_us (s->p50_us);
      p99 = format_us (s->p99_us);
      p999 = format_us (s->p999_us);
      client = format_us (s->client_cpu_us);
      server = format_us (s->server_cpu_us);
      ratio = isnan (result->ratio) ? g_strdup ("-") : g_strdup_printf ("%.2f", result->ratio);
      fairness = isnan (s->fairness) ? g_strdup ("") : g_strdup_printf ("%.2f", s->fairness);
      fprintf (out, "%-12s %-12s %9s %9s %9s %10.0f %10s %10s %8s %8s\n",
               label ? label : "", bench_cell_floor_copies (&result->cell) &&
                                   g_str_equal (result->transport, "floor") ? "floor (copy)" : result->transport,
               p50, p99, p999, s->calls_per_s, client, server, ratio, fairness);
    }
  fprintf (out,
           "\nus: microseconds per round trip (p50/p99/p99.9) or CPU time per call (client, server).\n"
           "x floor: p50 / the floor's p50 in the same cell; for depth cells, the floor's calls/s / calls/s.\n"
           "clients N: N connections calling at once, each from its own thread; calls/s is all of them;\n"
           "max/min: the most calls one of them made over the fewest (transports whose server serves\n"
           "one connection at a time are n/a).\n");
  if (report->memfd_sizes->len > 0)
    fprintf (out,
             "memfd cells: the client writes the bytes into a sealed memfd, the fd goes to the server and\n"
             "back in one EchoFds call, and the client checks the seals, maps it and compares every byte;\n"
             "the floor copies the same bytes through its socket and back instead.\n");
}

void
bench_report_print_instructions (BenchReport *report,
                                 FILE        *out)
{
  const BenchInstructions *first;

  if (report->instructions->len == 0)
    return;
  first = report->instructions->pdata[0];
  fprintf (out, "\ninstructions per 0 B Echo call (callgrind: %" G_GUINT64_FORMAT
           " calls minus %" G_GUINT64_FORMAT " calls, divided by %" G_GUINT64_FORMAT "):\n",
           2 * first->calls, first->calls, first->calls);
  fprintf (out, "%-12s %12s %12s %12s\n", "transport", "client", "server", "total");
  for (guint i = 0; i < report->instructions->len; i++)
    {
      const BenchInstructions *ins = report->instructions->pdata[i];

      fprintf (out, "%-12s %12.0f %12.0f %12.0f\n", ins->transport,
               ins->client_per_call, ins->server_per_call,
               ins->client_per_call + ins->server_per_call);
    }
}

static void
json_string (GString    *json,
             const char *value)
{
  if (value == NULL)
    {
      g_string_append (json, "null");
      return;
    }
  g_string_append_c (json, '"');
  for (const char *p = value; *p != '\0'; p++)
    {
      guchar c = (guchar) *p;

      if (c == '"' || c == '\\')
        g_string_append_printf (json, "\\%c", c);
      else if (c < 0x20)
        g_string_append_printf (json, "\\u%04x", c);
      else
        g_string_append_c (json, (char) c);
    }
  g_string_append_c (json, '"');
}

static void
json_number (GString *json,
             double   value)
{
  char buffer[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (value))
    g_string_append (json, "null");
  else
    g_string_append (json, g_ascii_formatd (buffer, sizeof buffer, "%.6g", value));
}

static void
json_key (GString    *json,
          const char *indent,
          const char *key,
          gboolean    first)
{
  g_string_append_printf (json, "%s\n%s", first ? "" : ",", indent);
  json_string (json, key);
  g_string_append (json, ": ");
}

static void
json_result (GString           *json,
             const BenchResult *result)
{
  const BenchSummary *s = &result->summary;
  const char *in = "      ";

  g_string_append (json, "    {");
  json_key (json, in, "transport", TRUE);
  json_string (json, result->transport);
  json_key (json, in, "version", FALSE);
  json_string (json, result->version);
  json_key (json, in, "cell", FALSE);
  json_string (json, cell_kind_name (result->cell.kind));
  json_key (json, in, "size", FALSE);
  g_string_append_printf (json, "%" G_GSIZE_FORMAT, result->cell.size);
  json_key (json, in, "depth", FALSE);
  g_string_append_printf (json, "%u", result->cell.depth);
  json_key (json, in, "fds", FALSE);
  g_string_append_printf (json, "%u", result->cell.n_fds);
  json_key (json, in, "clients", FALSE);
  g_string_append_printf (json, "%u", MAX (result->cell.n_clients, 1));
  if (result->cell.kind == BENCH_CELL_MEMFD)
    {
      json_key (json, in, "method", FALSE);
      json_string (json, bench_cell_floor_copies (&result->cell) && g_str_equal (result->transport, "floor")
                           ? "copy" : "memfd");
    }
  json_key (json, in, "available", FALSE);
  g_string_append (json, result->available ? "true" : "false");
  if (!result->available)
    {
      json_key (json, in, "unavailable", FALSE);
      json_string (json, result->unavailable);
    }
  else
    {
      const struct { const char *key; double value; } numbers[] = {
        { "seconds", s->seconds },
        { "min_us", s->min_us },
        { "p50_us", s->p50_us },
        { "p99_us", s->p99_us },
        { "p99_9_us", s->p999_us },
        { "max_us", s->max_us },
        { "mean_us", s->mean_us },
        { "calls_per_s", s->calls_per_s },
        { "client_cpu_us_per_call", s->client_cpu_us },
        { "server_cpu_us_per_call", s->server_cpu_us },
        { "ratio_to_floor", result->ratio },
        { "fairness_max_over_min", s->fairness },
      };

      json_key (json, in, "calls", FALSE);
      g_string_append_printf (json, "%" G_GUINT64_FORMAT, s->calls);
      for (guint i = 0; i < G_N_ELEMENTS (numbers); i++)
        {
          json_key (json, in, numbers[i].key, FALSE);
          json_number (json, numbers[i].value);
        }
    }
  if (result->cdf != NULL && result->cdf->len > 0)
    {
      json_key (json, in, "cdf_us", FALSE);
      g_string_append_c (json, '[');
      for (guint i = 0; i < result->cdf->len; i++)
        {
          if (i > 0)
            g_string_append (json, ", ");
          json_number (json, g_array_index (result->cdf, double, i));
        }
      g_string_append_c (json, ']');
    }
  g_string_append (json, "\n    }");
}

gboolean
bench_report_write_json (BenchReport *report,
                         const char  *path,
                         GError     **error)
{
  g_autoptr(GString) json = g_string_new ("{");

  json_key (json, "  ", "tool", TRUE);
  json_string (json, "peer-bench " PACKAGE_VERSION);

  json_key (json, "  ", "machine", FALSE);
  g_string_append (json, "{");
  json_key (json, "    ", "cpu_model", TRUE);
  json_string (json, report->cpu_model);
  json_key (json, "    ", "cpus", FALSE);
  g_string_append_printf (json, "%u", report->n_cpus);
  json_key (json, "    ", "kernel", FALSE);
  json_string (json, report->kernel);
  json_key (json, "    ", "glib", FALSE);
  json_string (json, report->glib_version);
  g_string_append (json, "\n  }");

  json_key (json, "  ", "settings", FALSE);
  g_string_append (json, "{");
  json_key (json, "    ", "seconds_per_cell", TRUE);
  json_number (json, report->seconds);
  json_key (json, "    ", "sizes", FALSE);
  g_string_append_c (json, '[');
  for (guint i = 0; i < report->sizes->len; i++)
    g_string_append_printf (json, "%s%" G_GSIZE_FORMAT, i > 0 ? ", " : "",
                            g_array_index (report->sizes, gsize, i));
  g_string_append_c (json, ']');
  json_key (json, "    ", "fd_counts", FALSE);
  g_string_append_c (json, '[');
  for (guint i = 0; i < report->fd_counts->len; i++)
    g_string_append_printf (json, "%s%u", i > 0 ? ", " : "", g_array_index (report->fd_counts, guint, i));
  g_string_append_c (json, ']');
  json_key (json, "    ", "memfd_sizes", FALSE);
  g_string_append_c (json, '[');
  for (guint i = 0; i < report->memfd_sizes->len; i++)
    g_string_append_printf (json, "%s%" G_GSIZE_FORMAT, i > 0 ? ", " : "",
                            g_array_index (report->memfd_sizes, gsize, i));
  g_string_append_c (json, ']');
  json_key (json, "    ", "depth", FALSE);
  g_string_append_printf (json, "%u", report->depth);
  json_key (json, "    ", "depths", FALSE);
  g_string_append_c (json, '[');
  for (guint i = 0; i < report->depths->len; i++)
    g_string_append_printf (json, "%s%u", i > 0 ? ", " : "", g_array_index (report->depths, guint, i));
  g_string_append_c (json, ']');
  json_key (json, "    ", "client_counts", FALSE);
  g_string_append_c (json, '[');
  for (guint i = 0; i < report->client_counts->len; i++)
    g_string_append_printf (json, "%s%u", i > 0 ? ", " : "", g_array_index (report->client_counts, guint, i));
  g_string_append_c (json, ']');
  json_key (json, "    ", "pin", FALSE);
  json_string (json, report->pin);
  json_key (json, "    ", "client_cpus", FALSE);
  json_string (json, report->client_cpus);
  json_key (json, "    ", "server_cpus", FALSE);
  json_string (json, report->server_cpus);
  json_key (json, "    ", "cdf_us", FALSE);
  g_string_append_printf (json, "\"latency at quantiles i/%u, i = 0..%u, for the %" G_GSIZE_FORMAT
                          " B echo cell\"", BENCH_CDF_POINTS - 1, BENCH_CDF_POINTS - 1,
                          report->cdf_size);
  g_string_append (json, "\n  }");

  json_key (json, "  ", "results", FALSE);
  g_string_append (json, "[\n");
  for (guint i = 0; i < report->results->len; i++)
    {
      json_result (json, report->results->pdata[i]);
      g_string_append (json, i + 1 < report->results->len ? ",\n" : "\n");
    }
  g_string_append (json, "  ]");

  json_key (json, "  ", "instructions_per_call", FALSE);
  g_string_append (json, "[");
  for (guint i = 0; i < report->instructions->len; i++)
    {
      const BenchInstructions *ins = report->instructions->pdata[i];

      g_string_append_printf (json, "%s\n    {", i > 0 ? "," : "");
      json_key (json, "      ", "transport", TRUE);
      json_string (json, ins->transport);
      json_key (json, "      ", "calls", FALSE);
      g_string_append_printf (json, "%" G_GUINT64_FORMAT, ins->calls);
      json_key (json, "      ", "client", FALSE);
      json_number (json, ins->client_per_call);
      json_key (json, "      ", "server", FALSE);
      json_number (json, ins->server_per_call);
      g_string_append (json, "\n    }");
    }
  g_string_append (json, report->instructions->len > 0 ? "\n  ]" : "]");
  g_string_append (json, "\n}\n");

  return g_file_set_contents (path, json->str, (gssize) json->len, error);
}
