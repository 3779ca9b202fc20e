/* bench-process.h: the server processes peer-bench starts, measures and
 * stops. Every process started here is reaped by pid: on the normal path
 * by bench_process_stop(), on an error path by bench_process_free(), on
 * SIGINT/SIGTERM/SIGHUP by the handler bench_process_install_signal_handlers()
 * installs, and if peer-bench itself is killed outright each child gets
 * SIGTERM from the kernel (PR_SET_PDEATHSIG). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _BenchProcess BenchProcess;

void          bench_process_install_signal_handlers (void);

/* Starts @argv with stdin from /dev/null, stdout read until its first
 * line (the address), stderr inherited, pinned to @cpu unless it is -1.
 * Fails if no line comes within @timeout_ms. */
BenchProcess *bench_process_spawn        (const char         *name,
                                          const char * const *argv,
                                          int                 cpu,
                                          int                 timeout_ms,
                                          GError            **error);
const char   *bench_process_get_address  (BenchProcess       *self);
int           bench_process_get_pid      (BenchProcess       *self);
/* CPU time the whole process (all its threads, living or gone) has used,
 * in ns, or -1 when the kernel does not say. */
gint64        bench_process_get_cpu_ns   (BenchProcess       *self);
/* SIGTERM, then waits up to @timeout_ms; fails if the process had died
 * or exits with an error. The process is reaped either way. */
gboolean      bench_process_stop         (BenchProcess       *self,
                                          int                 timeout_ms,
                                          GError            **error);
/* Stops the process if it still runs (SIGTERM, then SIGKILL) and frees. */
void          bench_process_free         (BenchProcess       *self);

/* Runs @argv to its end (stdin /dev/null, stdout and stderr inherited);
 * fails unless it exits with status 0 within @timeout_ms. */
gboolean      bench_process_run          (const char         *name,
                                          const char * const *argv,
                                          int                 timeout_ms,
                                          GError            **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BenchProcess, bench_process_free)

G_END_DECLS
