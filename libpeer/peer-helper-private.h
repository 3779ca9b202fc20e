/* peer-helper-private.h: what the two halves of a PeerHelper share.
 *
 * peer-helper.c holds the GObject, its public API and its call surface
 * (the PeerClient of the running helper, the calls that wait for it, the
 * signals); peer-helper-process.c holds the supervisor (the process, its
 * handshake, its exit and restart). The supervisor publishes the helper's
 * state under @lock for the call surface to wait on, and knows nothing of
 * calls: it hands each authenticated connection up to be wrapped, and
 * closes the wrapper when the process ends.
 */
#pragma once

#include "peer-client.h"
#include "peer-helper.h"
#include "peer-policy.h"
#include "peer-sandbox.h"

G_BEGIN_DECLS

typedef enum {
  HELPER_STARTING,                      /* spawned, authenticating */
  HELPER_RUNNING,
  HELPER_RESTARTING,                    /* exited, a restart is due */
  HELPER_STOPPED,                       /* for good */
} HelperState;

struct _PeerHelper
{
  GObject parent_instance;

  /* Set at construction, read-only after */
  char **argv;
  PeerPolicy *policy;
  GDBusAuthObserver *observer;
  GMainContext *app_context;
  GMainContext *context;                /* the supervisor's */
  GMainLoop *loop;
  PeerSandbox *sandbox;                 /* NULL: not sandboxed */

  /* Supervisor thread only */
  GPid process;                         /* 0 once reaped */
  int pidfd;                            /* signals go here: it cannot name a reused pid */
  int notify_fd;                        /* a sandboxed helper's refused syscalls come here */
  GSource *refusal_source;
  char *refused_syscall;                /* the one it was killed for */
  GSource *child_watch;
  GCancellable *handshake_cancellable;  /* the current helper's handshake */
  guint n_handshakes;                   /* in flight, a dead helper's included */
  GSource *handshake_deadline;
  GSource *restart_source;
  GSource *kill_source;
  GError *handshake_error;
  /* How the current process's start went, to say how it ended. */
  gboolean authenticated;
  gboolean handshake_timed_out;
  gboolean stopped_by_us;
  guint64 n_refused_before;             /* the policy's count, at the spawn */
  GArray *restart_times;                /* gint64, monotonic µs */
  /* Clients whose connection has not yet reported "closed" (the call
   * surface's, kept on this thread): held until it has, because that
   * signal is emitted here, and the application may drop its own
   * reference from another thread meanwhile. */
  GPtrArray *open_clients;
  gboolean stopping;
  gint stop_handed_over;                /* atomic: see dispose */

  GMutex lock;
  GCond cond;
  /* Protected by @lock */
  GThread *supervisor;                  /* until the stop that joins it takes it */
  gboolean supervisor_gone;             /* joined (or never started) */
  HelperState state;
  gboolean first_spawn_done;
  GError *spawn_error;
  PeerClient *client;                   /* while RUNNING */
  GPid pid;
  guint64 generation;                   /* +1 at each exit */
  GError *exit_reason;
  guint n_restarts;
  guint max_restarts;
  guint window_ms;
  guint backoff_ms;
};

/* --- peer-helper-process.c: the supervisor ------------------------------ */

/* Starts the supervisor thread and waits for its first spawn: FALSE with
 * @error set when the helper could not be started (the thread has ended
 * then; peer_helper_stop() joins it). */
gboolean    _peer_helper_start_supervisor   (PeerHelper      *self,
                                             GError         **error);
/* peer_helper_stop(): returns with the helper gone, on any thread. */
void        _peer_helper_stop_supervisor    (PeerHelper      *self);
/* SIGTERM now, SIGKILL if it is still there after the stop timeout.
 * Supervisor thread. */
void        _peer_helper_terminate_process  (PeerHelper      *self);

/* --- peer-helper.c: what the supervisor hands up ------------------------ */

/* Wraps @connection, just authenticated, in the PeerClient that calls go
 * to, and starts its message processing. The client is held in
 * @open_clients until it has closed. Supervisor thread. (transfer full) */
PeerClient *_peer_helper_open_client        (PeerHelper      *self,
                                             GDBusConnection *connection);
/* Whether a client has yet to report "closed" (to the supervisor's
 * context, which must not go before). Supervisor thread. */
gboolean    _peer_helper_has_open_clients   (PeerHelper      *self);
/* PeerHelper::started and ::exited, emitted later in the application's
 * context. Any thread. */
void        _peer_helper_emit_started       (PeerHelper      *self,
                                             GPid             pid);
void        _peer_helper_emit_exited        (PeerHelper      *self,
                                             const GError    *reason);

G_END_DECLS
