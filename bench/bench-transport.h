/* bench-transport.h: what peer-bench needs from each transport it measures.
 *
 * A transport is one file, transport-NAME.c, defining one BenchTransport:
 * which program serves it, how to connect, how to make one checked call,
 * one checked call carrying file descriptors, and how to keep several
 * calls in flight. Which transports exist is decided by which of those
 * files meson compiles (bench-transport-list.h is generated from that
 * list), not by #ifdef.
 *
 * Every server speaks the same protocol: it prints its address as the
 * first line of standard output, serves until SIGTERM, and answers
 * Echo(ay)->(ay), EchoFds(ah)->(ah) and Ping() on BENCH_INTERFACE at
 * BENCH_PATH (the floor speaks its own minimal framing instead). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define BENCH_PATH      "/org/libpeer/Bench"
#define BENCH_INTERFACE "org.libpeer.Bench1"

/* Servers refuse bigger payloads: peer-bench never sends more. */
#define BENCH_MAX_PAYLOAD (64u * 1024 * 1024)

/* The most fds one call carries: the kernel's SCM_MAX_FD, what one
 * sendmsg() may pass. */
#define BENCH_MAX_FDS 253

#define BENCH_ERROR (bench_error_quark ())
GQuark bench_error_quark (void);

typedef enum {
  BENCH_ERROR_FAILED,
  BENCH_ERROR_WRONG_REPLY,    /* a reply that is not what was sent */
  BENCH_ERROR_UNSUPPORTED,    /* the server lacks this call or refuses it: the cell is n/a */
} BenchError;

/* The state of one pipelined run, shared by the runner and a transport's
 * pipeline function. The transport asks bench_loop_start_call() before
 * each call and hands every reply to bench_loop_finish_call(). */
typedef struct {
  gint64   deadline_ns;   /* start no call after this (bench_clock_ns()) */
  guint64  min_calls;     /* but start at least this many */
  guint64  started;
  guint64  completed;
  GArray  *samples;       /* (nullable) (element-type gint64): round trips in ns */
} BenchLoop;

/* The pipelined cell sends this many bytes: the call's sequence number,
 * so every reply is matched to the call it answers. */
#define BENCH_LOOP_PAYLOAD 8

typedef struct {
  const char *name;
  /* The program serving this transport, or NULL for peer-bench-server
   * with the transport's name as its argument. */
  const char *server_path;
  /* (nullable): the version of the library measured, for the report. */
  const char *(*get_version) (void);
  /* (nullable): the server side, run by peer-bench-server; returns an
   * exit status. */
  int        (*serve)      (void);

  gpointer   (*connect)    (const char *address,
                            GError    **error);
  /* One Echo of @data; the reply must be the same bytes. */
  gboolean   (*echo)       (gpointer      client,
                            const guint8 *data,
                            gsize         size,
                            GError      **error);
  /* One EchoFds of @n_fds fds (1 to BENCH_MAX_FDS), all in one message;
   * the reply must carry the same open files in the same order (see
   * bench_check_fds()). With @out_fd, the first fd that came back is
   * stored there, the caller's to close. Fails with
   * BENCH_ERROR_UNSUPPORTED when the server has no such call, or refuses
   * that many fds in one message. */
  gboolean   (*echo_fds)   (gpointer      client,
                            const int    *fds,
                            guint         n_fds,
                            int          *out_fd,
                            GError      **error);
  /* Keeps @depth Echo calls of BENCH_LOOP_PAYLOAD bytes in flight until
   * @loop says stop, then waits for the last replies. */
  gboolean   (*pipeline)   (gpointer      client,
                            guint         depth,
                            BenchLoop    *loop,
                            GError      **error);
  void       (*disconnect) (gpointer      client);
  /* Whether its server serves many connections at once (the clients
   * cells need it; a server that serves one after another would leave
   * all but the first waiting). */
  gboolean   serves_many;
} BenchTransport;

/* Every transport there could be; bench-transport-list.h names the ones
 * this build has. */
extern const BenchTransport bench_transport_floor;
extern const BenchTransport bench_transport_floor_spin;
extern const BenchTransport bench_transport_gdbus;
extern const BenchTransport bench_transport_libpeer;
extern const BenchTransport bench_transport_libpeer_lane;
extern const BenchTransport bench_transport_sdbus;
extern const BenchTransport bench_transport_libdbus;

/* (transfer none) (array zero-terminated=1): the transports built in. */
const BenchTransport * const *bench_transports_get (void);
const BenchTransport         *bench_transports_lookup (const char *name);

/* The monotonic clock every timestamp comes from. */
gint64   bench_clock_ns         (void);

/* Reply checks shared by the transports; each fails with
 * BENCH_ERROR_WRONG_REPLY and says what differed. */
gboolean bench_check_echo       (const guint8 *sent,
                                 gsize         sent_size,
                                 const guint8 *got,
                                 gsize         got_size,
                                 GError      **error);
gboolean bench_check_fd         (int           sent,
                                 int           got,
                                 GError      **error);
/* The count, and bench_check_fd() for the first, middle and last fds:
 * enough to catch a lost, added or reordered fd without making the check
 * (two fstat()s an fd) the larger part of a 253-fd call. */
gboolean bench_check_fds        (const int    *sent,
                                 guint         n_sent,
                                 const int    *got,
                                 guint         n_got,
                                 GError      **error);

gboolean bench_loop_start_call  (BenchLoop    *loop,
                                 guint64      *out_seq,
                                 gint64       *out_start_ns);
void     bench_loop_fill_payload (guint64      seq,
                                  guint8       out[BENCH_LOOP_PAYLOAD]);
gboolean bench_loop_finish_call (BenchLoop    *loop,
                                 guint64       seq,
                                 gint64        start_ns,
                                 const guint8 *reply,
                                 gsize         reply_size,
                                 GError      **error);

/* Server-side helpers: a 0700 directory with a socket path in it, a
 * listening socket there, the address line, and removal of both when the
 * server is told to stop (SIGTERM or SIGINT end the process from a signal
 * handler, which is why the paths are kept in static storage). */
char    *bench_server_make_socket_path (GError **error);
int      bench_server_listen           (const char *socket_path,
                                        GError    **error);
gboolean bench_server_announce         (const char *address,
                                        GError    **error);
void     bench_server_exit_on_signals  (const char *socket_path);
/* All four for a server that accepts on a plain listening socket: returns
 * the listening fd after announcing its address, or -1. */
int      bench_server_listen_and_announce (GError **error);

G_END_DECLS
