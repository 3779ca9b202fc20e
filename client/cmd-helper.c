/* cmd-helper.c: peer-client's commands for peer-server's own
 * org.libpeer.Helper1: quick, notify and job; and --spawn's helper,
 * sandboxed or not. */
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
  g_autoptr(GVariant) reply = NULL;
  gint64 bits;
  const char *number;

  if (argc != 2)
    return usage_error ("quick needs BITS");
  if (!parse_int (argv[1], G_MININT32, G_MAXINT32, &bits))
    return usage_error ("quick: BITS must be an integer, not '%s'", argv[1]);
  reply = peer_client_call_sync (client, HELPER_PATH, HELPER_IFACE, "Quick",
                                 g_variant_new ("(i)", (gint32) bits), G_VARIANT_TYPE ("(s)"),
                                 -1, NULL, NULL, NULL, &error);
  if (reply == NULL)
    return fail ("quick: %s", error->message);
  g_variant_get (reply, "(&s)", &number);
  g_print ("%s\n", number);
  return EXIT_SUCCESS;
}

static void
on_notified (PeerClient *client,
             const char *object_path,
             const char *interface_name,
             const char *signal_name,
             GVariant   *parameters,
             gpointer    user_data)
{
  Waiter *waiter = user_data;
  guint32 id;
  const char *summary;

  g_variant_get (parameters, "(u&s)", &id, &summary);
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
  g_autoptr(GVariant) reply = NULL;

  reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);
  if (reply == NULL)
    {
      g_printerr ("peer-client: notify: %s\n", error->message);
      waiter->exit_code = EXIT_FAILURE;
      g_main_loop_quit (waiter->loop);
      return;
    }
  g_variant_get (reply, "(u)", &waiter->wanted_id);
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

  sub = peer_client_subscribe_signal (client, HELPER_PATH, HELPER_IFACE, "Notified",
                                      on_notified, &waiter, NULL);
  peer_client_call (client, HELPER_PATH, HELPER_IFACE, "Notify",
                    g_variant_new ("(susss^as@a{sv}i)", "peer-client", 0, "", argv[1],
                                   argc > 2 ? argv[2] : "", no_actions,
                                   g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0), -1),
                    G_VARIANT_TYPE ("(u)"), -1, NULL, NULL, on_notify_reply, &waiter);
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

#define JOB_IFACE "org.libpeer.Job1"
#define JOB_BAR_WIDTH 30

typedef struct {
  GMainLoop *loop;
  int exit_code;
  char *path;                   /* the job's, once StartJob replied */
  GPtrArray *early;             /* GVariant* (osv): signals that came before the reply */
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
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  /* A job that finished meanwhile cannot be cancelled; Finished says how
   * it ended either way. */
  if (reply == NULL)
    g_printerr ("peer-client: job: cannot cancel: %s\n", error->message);
}

static void
send_cancel (PeerClient *client,
             JobWaiter  *waiter)
{
  if (waiter->cancel_sent || waiter->path == NULL || waiter->finished)
    return;
  waiter->cancel_sent = TRUE;
  peer_client_call (client, waiter->path, JOB_IFACE, "Cancel", NULL, G_VARIANT_TYPE_UNIT, -1,
                    NULL, NULL, on_cancel_reply, waiter);
}

static void
handle_job_signal (JobWaiter  *waiter,
                   const char *signal_name,
                   GVariant   *parameters)
{
  const char *message;

  if (waiter->finished)
    return;
  if (g_str_equal (signal_name, "Progress") && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(ds)")))
    {
      double fraction;

      g_variant_get (parameters, "(d&s)", &fraction, &message);
      show_progress (waiter, fraction, message);
    }
  else if (g_str_equal (signal_name, "Finished") && g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(bs)")))
    {
      gboolean success;

      g_variant_get (parameters, "(b&s)", &success, &message);
      if (waiter->bar_drawn)
        g_print ("\n");
      g_print ("job %s: %s\n", success ? "finished" : "did not finish", message);
      waiter->finished = TRUE;
      waiter->exit_code = success ? EXIT_SUCCESS : EXIT_FAILURE;
      g_main_loop_quit (waiter->loop);
    }
}

static void
on_job_signal (PeerClient *client,
               const char *object_path,
               const char *interface_name,
               const char *signal_name,
               GVariant   *parameters,
               gpointer    user_data)
{
  JobWaiter *waiter = user_data;

  /* Signals can overtake StartJob's reply: keep them until we know which
   * job is ours. */
  if (waiter->path == NULL)
    g_ptr_array_add (waiter->early, g_variant_ref_sink (g_variant_new ("(os@*)", object_path, signal_name,
                                                                       parameters)));
  else if (g_str_equal (object_path, waiter->path))
    handle_job_signal (waiter, signal_name, parameters);
}

static void
on_start_job_reply (GObject      *source,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  JobWaiter *waiter = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = peer_client_call_finish (PEER_CLIENT (source), NULL, result, &error);

  if (reply == NULL)
    {
      g_printerr ("peer-client: job: %s\n", error->message);
      waiter->exit_code = EXIT_FAILURE;
      waiter->finished = TRUE;
      g_main_loop_quit (waiter->loop);
      return;
    }
  g_variant_get (reply, "(o)", &waiter->path);
  if (!waiter->tty)
    g_print ("job %s started\n", waiter->path);
  for (guint i = 0; i < waiter->early->len; i++)
    {
      const char *path, *signal_name;
      g_autoptr(GVariant) parameters = NULL;

      g_variant_get (g_ptr_array_index (waiter->early, i), "(&o&s@*)", &path, &signal_name, &parameters);
      if (g_str_equal (path, waiter->path))
        handle_job_signal (waiter, signal_name, parameters);
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
  g_autoptr(GPtrArray) early = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);
  JobWaiter waiter = { loop, EXIT_FAILURE, NULL, early };
  JobInterrupt interrupt = { client, &waiter };
  gint64 steps, step_ms = 100;
  guint sub, sigint, sigterm;
  gulong closed;

  if (argc < 2 || argc > 3)
    return usage_error ("job needs STEPS [STEP_MS]");
  if (!parse_int (argv[1], 1, 10000, &steps))
    return usage_error ("job: STEPS must be an integer from 1 to 10000, not '%s'", argv[1]);
  if (argc > 2 && !parse_int (argv[2], 0, 60000, &step_ms))
    return usage_error ("job: STEP_MS must be an integer from 0 to 60000, not '%s'", argv[2]);
  waiter.tty = isatty (STDOUT_FILENO);

  sub = peer_client_subscribe_signal (client, NULL, JOB_IFACE, NULL, on_job_signal, &waiter, NULL);
  closed = g_signal_connect (client, "closed", G_CALLBACK (on_job_closed), &waiter);
  sigint = g_unix_signal_add (SIGINT, on_job_interrupt, &interrupt);
  sigterm = g_unix_signal_add (SIGTERM, on_job_interrupt, &interrupt);
  peer_client_call (client, HELPER_PATH, HELPER_IFACE, "StartJob",
                    g_variant_new ("(suu)", "count", (guint32) steps, (guint32) step_ms),
                    G_VARIANT_TYPE ("(o)"), -1, NULL, NULL, on_start_job_reply, &waiter);
  while (!waiter.finished)
    g_main_loop_run (loop);

  g_source_remove (sigint);
  g_source_remove (sigterm);
  g_signal_handler_disconnect (client, closed);
  peer_client_unsubscribe_signal (client, sub);
  g_free (waiter.path);
  return waiter.exit_code;
}

