/* cmd-helper.c: peer-client's commands for peer-server's own
 * org.libpeer.Helper1: quick, notify and job, through the stubs
 * peer-codegen generates from protocol/ (peer_helper1_*, peer_job1_*);
 * and --spawn's helper, sandboxed or not. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>
#include <libpeer.h>

#include "peer-client.h"
#include "peer-protocol-stubs.h"

PeerHelper *
start_helper (const char * const *argv,
              gboolean            sandboxed,
              GError            **error)
{
  if (!sandboxed)
    return peer_helper_new (argv, NULL, error);
  /* The default profile: the helper sees none of the user's files, so
   * only commands that hand it an fd (digest, job, quick, ping) work. */
  return peer_helper_new_sandboxed (argv, NULL, NULL, error);
}

int
cmd_quick (PeerClient *client,
           int         argc,
           char      **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *number = NULL;
  gint64 bits;

  if (argc != 2)
    return usage_error ("quick needs BITS");
  /* The server decides which sizes it serves; the word must only fit
   * the method's argument, a D-Bus int32. */
  if (!parse_int (argv[1], G_MININT32, G_MAXINT32, &bits))
    return usage_error ("quick: BITS must be a 32-bit integer (from %d to %d), not '%s'",
                        G_MININT32, G_MAXINT32, argv[1]);
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */
  if (!peer_helper1_call_quick_sync (client, HELPER_PATH, (gint32) bits, &number, NULL, &error))
    return fail ("quick: %s", error->message);
  g_print ("%s\n", number);
  return EXIT_SUCCESS;
}

static void
on_notified (PeerClient *client,
             const char *object_path,
             guint32     id,
             const char *summary,
             gpointer    user_data)
{
  Waiter *waiter = user_data;

  if (waiter->have_id && id != waiter->wanted_id)
    return;
  if (!waiter->have_id)
    {
      /* The signal can overtake our reading of the reply; keep the first
       * one with our summary until the id is known. */
      g_free (waiter->seen_summary);
      waiter->seen_summary = g_strdup (summary);
      waiter->wanted_id = id;
    }
  waiter->seen = TRUE;
  g_print ("signal Notified(%u, '%s') received\n", id, summary);
  g_main_loop_quit (waiter->loop);
}

static void
on_notify_reply (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Waiter *waiter = user_data;
  g_autoptr(GError) error = NULL;

  if (!peer_helper1_call_notify_finish (PEER_CLIENT (source), &waiter->wanted_id, result, &error))
    {
      g_printerr ("peer-client: notify: %s\n", error->message);
      waiter->exit_code = EXIT_FAILURE;
      g_main_loop_quit (waiter->loop);
      return;
    }
  waiter->have_id = TRUE;
  g_print ("notification %u sent\n", waiter->wanted_id);
  if (waiter->seen)
    g_main_loop_quit (waiter->loop);
}

static gboolean
on_notify_timeout (gpointer user_data)
{
  Waiter *waiter = user_data;

  g_printerr ("peer-client: notify: no Notified signal within 10 s\n");
  waiter->exit_code = EXIT_FAILURE;
  g_main_loop_quit (waiter->loop);
  return G_SOURCE_REMOVE;
}

int
cmd_notify (PeerClient *client,
            int         argc,
            char      **argv)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  Waiter waiter = { loop, EXIT_SUCCESS };
  const char *no_actions[] = { NULL };
  guint sub, timeout;

  if (argc < 2 || argc > 3)
    return usage_error ("notify needs SUMMARY [BODY]");
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */

  sub = peer_helper1_subscribe_notified (client, HELPER_PATH, on_notified, &waiter, NULL);
  peer_helper1_call_notify (client, HELPER_PATH, "peer-client", 0, "", argv[1], argc > 2 ? argv[2] : "",
                            g_variant_new_strv (no_actions, 0),
                            g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0), -1,
                            NULL, on_notify_reply, &waiter);
  timeout = g_timeout_add_seconds (10, on_notify_timeout, &waiter);
  g_signal_connect (client, "closed", G_CALLBACK (on_closed_quit), &waiter);

  /* Done when both the reply and our signal are in. */
  while (waiter.exit_code == EXIT_SUCCESS && !(waiter.have_id && waiter.seen))
    g_main_loop_run (loop);

  g_source_remove (timeout);
  peer_client_unsubscribe_signal (client, sub);
  g_free (waiter.seen_summary);
  return waiter.exit_code;
}

/* --- jobs --------------------------------------------------------------------- */

#define JOB_BAR_WIDTH 30

/* A Progress or Finished signal of some job. */
typedef struct {
  char *path;
  gboolean finished;            /* Finished, else Progress */
  double fraction;
  gboolean success;
  char *message;
} JobEvent;

static void
job_event_free (JobEvent *event)
{
  g_free (event->path);
  g_free (event->message);
  g_free (event);
}

typedef struct {
  GMainLoop *loop;
  int exit_code;
  char *path;                   /* the job's, once StartJob replied */
  GPtrArray *early;             /* JobEvent*: signals that came before the reply */
  gboolean finished;
  gboolean cancel_wanted;
  gboolean cancel_sent;
  gboolean tty;
  gboolean bar_drawn;
} JobWaiter;

static void
show_progress (JobWaiter  *waiter,
               double      fraction,
               const char *message)
{
  if (waiter->tty)
    {
      int filled = (int) (CLAMP (fraction, 0.0, 1.0) * JOB_BAR_WIDTH + 0.5);
      g_autofree char *bar = g_strnfill (filled, '#');
      g_autofree char *rest = g_strnfill (JOB_BAR_WIDTH - filled, '.');

      g_print ("\r[%s%s] %3d%%  %s\033[K", bar, rest, (int) (fraction * 100 + 0.5), message);
      waiter->bar_drawn = TRUE;
    }
  else
    g_print ("progress %3d%% %s\n", (int) (fraction * 100 + 0.5), message);
  fflush (stdout);
}

static void
on_cancel_reply (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(GError) error = NULL;

  /* A job that finished meanwhile cannot be cancelled; Finished says how
   * it ended either way. */
  if (!peer_job1_call_cancel_finish (PEER_CLIENT (source), result, &error))
    g_printerr ("peer-client: job: cannot cancel: %s\n", error->message);
}

static void
send_cancel (PeerClient *client,
             JobWaiter  *waiter)
{
  if (waiter->cancel_sent || waiter->path == NULL || waiter->finished)
    return;
  waiter->cancel_sent = TRUE;
  peer_job1_call_cancel (client, waiter->path, NULL, on_cancel_reply, waiter);
}

static void
handle_job_event (JobWaiter      *waiter,
                  const JobEvent *event)
{
  if (waiter->finished)
    return;
  if (!event->finished)
    {
      show_progress (waiter, event->fraction, event->message);
      return;
    }
  if (waiter->bar_drawn)
    g_print ("\n");
  g_print ("job %s: %s\n", event->success ? "finished" : "did not finish", event->message);
  waiter->finished = TRUE;
  waiter->exit_code = event->success ? EXIT_SUCCESS : EXIT_FAILURE;
  g_main_loop_quit (waiter->loop);
}

/* Signals can overtake StartJob's reply: they are kept until we know
 * which job is ours. */
static void
receive_job_event (JobWaiter *waiter,
                   JobEvent   event)
{
  if (waiter->path == NULL)
    {
      JobEvent *kept = g_memdup2 (&event, sizeof event);

      kept->path = g_strdup (event.path);
      kept->message = g_strdup (event.message);
      g_ptr_array_add (waiter->early, kept);
    }
  else if (g_str_equal (event.path, waiter->path))
    handle_job_event (waiter, &event);
}

static void
on_job_progress (PeerClient *client,
                 const char *object_path,
                 double      fraction,
                 const char *message,
                 gpointer    user_data)
{
  receive_job_event (user_data, (JobEvent) { (char *) object_path, FALSE, fraction, FALSE, (char *) message });
}

static void
on_job_finished (PeerClient *client,
                 const char *object_path,
                 gboolean    success,
                 const char *message,
                 gpointer    user_data)
{
  receive_job_event (user_data, (JobEvent) { (char *) object_path, TRUE, 1.0, success, (char *) message });
}

static void
on_start_job_reply (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  JobWaiter *waiter = user_data;
  g_autoptr(GError) error = NULL;

  if (!peer_helper1_call_start_job_finish (PEER_CLIENT (source), &waiter->path, result, &error))
    {
      g_printerr ("peer-client: job: %s\n", error->message);
      waiter->exit_code = EXIT_FAILURE;
      waiter->finished = TRUE;
      g_main_loop_quit (waiter->loop);
      return;
    }
  if (!waiter->tty)
    g_print ("job %s started\n", waiter->path);
  for (guint i = 0; i < waiter->early->len; i++)
    {
      const JobEvent *event = g_ptr_array_index (waiter->early, i);

      if (g_str_equal (event->path, waiter->path))
        handle_job_event (waiter, event);
    }
  g_ptr_array_set_size (waiter->early, 0);
  if (waiter->cancel_wanted)
    send_cancel (PEER_CLIENT (source), waiter);
}

typedef struct {
  PeerClient *client;
  JobWaiter *waiter;
} JobInterrupt;

static gboolean
on_job_interrupt (gpointer user_data)
{
  JobInterrupt *interrupt = user_data;

  /* The job runs on the server: stop it there, and leave once Finished
   * confirms it. */
  if (!interrupt->waiter->cancel_wanted)
    {
      if (interrupt->waiter->bar_drawn)
        g_print ("\n");
      g_printerr ("peer-client: cancelling the job…\n");
    }
  interrupt->waiter->cancel_wanted = TRUE;
  send_cancel (interrupt->client, interrupt->waiter);
  return G_SOURCE_CONTINUE;
}

static void
on_job_closed (PeerClient   *client,
               const GError *reason,
               JobWaiter    *waiter)
{
  g_printerr ("peer-client: job: %s\n", reason->message);
  waiter->exit_code = EXIT_FAILURE;
  waiter->finished = TRUE;
  g_main_loop_quit (waiter->loop);
}

int
cmd_job (PeerClient *client,
         int         argc,
         char      **argv)
{
  g_autoptr(GMainLoop) loop = g_main_loop_new (NULL, FALSE);
  g_autoptr(GPtrArray) early = g_ptr_array_new_with_free_func ((GDestroyNotify) job_event_free);
  JobWaiter waiter = { loop, EXIT_FAILURE, NULL, early };
  JobInterrupt interrupt = { client, &waiter };
  gint64 steps, step_ms = 100;
  guint progress, finished, sigint, sigterm;
  gulong closed;

  if (argc < 2 || argc > 3)
    return usage_error ("job needs STEPS [STEP_MS]");
  if (!parse_int (argv[1], 1, 10000, &steps))
    return usage_error ("job: STEPS must be an integer from 1 to 10000, not '%s'", argv[1]);
  if (argc > 2 && !parse_int (argv[2], 0, 60000, &step_ms))
    return usage_error ("job: STEP_MS must be an integer from 0 to 60000, not '%s'", argv[2]);
  if (client == NULL)
    return EXIT_SUCCESS;          /* checked only */
  waiter.tty = isatty (STDOUT_FILENO);

  progress = peer_job1_subscribe_progress (client, NULL, on_job_progress, &waiter, NULL);
  finished = peer_job1_subscribe_finished (client, NULL, on_job_finished, &waiter, NULL);
  closed = g_signal_connect (client, "closed", G_CALLBACK (on_job_closed), &waiter);
  sigint = g_unix_signal_add (SIGINT, on_job_interrupt, &interrupt);
  sigterm = g_unix_signal_add (SIGTERM, on_job_interrupt, &interrupt);
  peer_helper1_call_start_job (client, HELPER_PATH, "count", (guint32) steps, (guint32) step_ms,
                               NULL, on_start_job_reply, &waiter);
  while (!waiter.finished)
    g_main_loop_run (loop);

  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_signal_handler_disconnect (client, closed);
  peer_client_unsubscribe_signal (client, progress);
  peer_client_unsubscribe_signal (client, finished);
  g_free (waiter.path);
  return waiter.exit_code;
}

