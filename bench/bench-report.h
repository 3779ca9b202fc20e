/* bench-report.h: what a peer-bench run found, and its three outputs: the
 * table on stdout, the JSON file and the SVG chart. */
#pragma once

#include <stdio.h>
#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  BENCH_CELL_ECHO,       /* one Echo of `size` bytes at a time */
  BENCH_CELL_FD,         /* one EchoFds of `n_fds` fds at a time */
  BENCH_CELL_PIPELINE,   /* `depth` Echo calls of 8 bytes in flight */
  BENCH_CELL_MEMFD,      /* `size` bytes handed over as a sealed memfd (one
                          * EchoFds) and mapped; the floor copies them */
  BENCH_CELL_CLIENTS,    /* `n_clients` connections, each calling Echo of 8
                          * bytes one at a time from its own thread */
} BenchCellKind;

typedef struct {
  BenchCellKind kind;
  gsize         size;
  guint         depth;
  guint         n_fds;
  guint         n_clients;
} BenchCell;

/* (transfer full): "0 B", "4 KiB", "1 fd", "253 fds", "memfd 1 MiB",
 * "depth 16", "clients 64". */
char *bench_cell_label (const BenchCell *cell);
gboolean bench_cell_equal (const BenchCell *a,
                           const BenchCell *b);
/* Whether the floor copies the bytes in @cell where the other transports
 * pass an fd. */
gboolean bench_cell_floor_copies (const BenchCell *cell);

typedef struct {
  guint64 calls;
  double  seconds;          /* wall time of the measured calls */
  double  min_us, p50_us, p99_us, p999_us, max_us, mean_us;
  double  calls_per_s;
  double  client_cpu_us;    /* per call; NAN when unknown */
  double  server_cpu_us;
  /* Clients cells: the most calls one client made over the fewest (1:
   * all served alike); NAN elsewhere. */
  double  fairness;
} BenchSummary;

/* Sorts @samples (gint64 ns) and fills the latency fields of @summary. */
void    bench_summary_compute_latency (BenchSummary *summary,
                                       GArray       *samples);
/* How many points a kept CDF has: quantiles 0, 0.001, ..., 1. */
#define BENCH_CDF_POINTS 1001

/* (transfer full): @n_points latencies in µs at the quantiles
 * 0, 1/(n_points-1), ..., 1 of sorted @samples. */
GArray *bench_quantiles               (GArray       *sorted_samples,
                                       guint         n_points);

typedef struct {
  char        *transport;
  char        *version;      /* (nullable) */
  BenchCell    cell;
  gboolean     available;
  char        *unavailable;  /* (nullable): why not */
  BenchSummary summary;
  double       ratio;        /* to the floor in the same cell; NAN without */
  GArray      *cdf;          /* (nullable) (element-type double): see bench_quantiles() */
} BenchResult;

void bench_result_free (BenchResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchResult, bench_result_free)

typedef struct {
  char   *transport;
  guint64 calls;             /* N; the counts are of 2N calls minus N calls */
  double  client_per_call;
  double  server_per_call;
} BenchInstructions;

typedef struct {
  /* The machine. */
  char       *cpu_model;
  guint       n_cpus;
  char       *kernel;
  char       *glib_version;
  /* The settings. */
  double      seconds;
  GArray     *sizes;         /* (element-type gsize) */
  GArray     *fd_counts;     /* (element-type guint): the fd cells */
  GArray     *memfd_sizes;   /* (element-type gsize): the memfd cells */
  guint       depth;         /* the largest of @depths */
  GArray     *depths;        /* (element-type guint): the pipelined cells */
  GArray     *client_counts; /* (element-type guint): the clients cells */
  char       *pin;
  char       *client_cpus;
  char       *server_cpus;
  /* What was found. */
  GPtrArray  *results;       /* (element-type BenchResult) */
  GPtrArray  *instructions;  /* (element-type BenchInstructions) */
  gsize       cdf_size;      /* the echo size whose CDF is kept */
} BenchReport;

BenchReport *bench_report_new                (void);
void         bench_report_free               (BenchReport *report);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchReport, bench_report_free)

/* Fills in each result's ratio to the floor of the same cell. */
void         bench_report_compute_ratios     (BenchReport *report);
void         bench_report_print_header       (BenchReport *report,
                                              FILE        *out);
void         bench_report_print_table        (BenchReport *report,
                                              FILE        *out);
void         bench_report_print_instructions (BenchReport *report,
                                              FILE        *out);
gboolean     bench_report_write_json         (BenchReport *report,
                                              const char  *path,
                                              GError     **error);
/* In bench-svg.c. */
gboolean     bench_report_write_svg          (BenchReport *report,
                                              const char  *path,
                                              GError     **error);

G_END_DECLS
