/* job-service.c: org.libpeer.Job1, the example helper's long-running jobs.
 *
 * Helper1.StartJob returns at once with a job object; the work goes on in
 * steps driven by timeouts in the server's main context, so any number of
 * jobs run side by side without holding up other calls. The jobs are the
 * children of one PeerSubtree at /org/libpeer/Helper/jobs, all served by
 * one Job1 PeerInterface (the skeleton peer-codegen generates from its
 * XML: typed handlers, replies, values and signals) whose values are each
 * job's own: nothing is registered per job, introspecting
 * /org/libpeer/Helper/jobs lists the live ones, and the ObjectManager at
 * /org/libpeer/Helper announces each
 * (InterfacesAdded with its State and Progress) and its going
 * (InterfacesRemoved). A finished job stays visible for the linger time,
 * then goes.
 *
 * A job belongs to the peer that started it. When that peer disconnects,
 * its running jobs are cancelled: nobody is left to receive the result,
 * and a peer must not be able to leave work behind that outlives it.
 *
 * Each job takes two shares of its owner's PeerConnection: one of the
 * owner's running jobs (given back when it finishes) and one of the jobs
 * it has in the table, lingering ones included (given back when it goes,
 * or when its owner disconnects: then nobody's share is left to protect,
 * and the job counts only in the server-wide table until it goes).
 */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "peer-protocol-stubs.h"
#include "services.h"

/* Running jobs one peer may have; each costs a timer. */
#define JOB_RUNNING_SHARE "running jobs"
#define JOB_MAX_RUNNING_PER_PEER 8
/* Jobs one peer may have in the table, finished ones still lingering
 * included, so that a peer starting short jobs in a loop fills only its
 * own share. */
#define JOB_SHARE "jobs"
#define JOB_DEFAULT_MAX_PER_PEER 32
/* Jobs of all peers in the table: 32 peers at their full share. Each is
 * listed in every GetManagedObjects reply, so this bounds their size. */
#define JOB_DEFAULT_MAX_TOTAL 1024
#define JOB_MAX_STEPS 10000
#define JOB_MAX_STEP_MS 60000

typedef enum {
  JOB_RUNNING,
  JOB_DONE,
  JOB_FAILED,
  JOB_CANCELLED,
} JobState;

static const char *const job_state_names[] = { "running", "done", "failed", "cancelled" };

typedef struct _JobService JobService;

/* Owned by the service's table; calls find it there by their path. */
typedef struct {
  JobService *service;
  char *path;
  guint64 id;
  gboolean fails;
  guint steps;
  guint step_ms;
  guint step;
  guint64 owner_id;
  uid_t owner_uid;
  PeerConnection *owner;                /* a reference while its shares are held */
  JobState state;
  GSource *timer;                       /* the next step, then the linger */
} Job;

struct _JobService
{
  PeerServer *server;                   /* not a reference: the server owns us */
  GMainContext *context;
  GHashTable *jobs;                     /* id (guint64*) → Job*, owned */
  PeerInterface *iface;                 /* org.libpeer.Job1, for every job */
  PeerSubtree *subtree;                 /* the jobs, at PEER_JOBS_PATH */
  guint64 next_id;
  guint linger_ms;
  guint max_per_peer;
  guint max_total;
};

static void
clear_timer (Job *job)
{
  if (job->timer != NULL)
    {
      g_source_destroy (job->timer);
      g_clear_pointer (&job->timer, g_source_unref);
    }
}

/* The job leaves the table, or its owner disconnected: what it held of
 * the owner's shares goes back. */
static void
release_owner (Job *job)
{
  if (job->owner == NULL)
    return;
  if (job->state == JOB_RUNNING)
    peer_connection_give_back_share (job->owner, JOB_RUNNING_SHARE);
  peer_connection_give_back_share (job->owner, JOB_SHARE);
  g_clear_object (&job->owner);
}

static void
job_free (gpointer data)
{
  Job *job = data;

  clear_timer (job);
  release_owner (job);
  g_free (job->path);
  g_free (job);
}

/* The job a subtree node or a call's path names, or NULL. */
static Job *
lookup_job (JobService *service,
            const char *node)
{
  guint64 id;

  if (node == NULL || !g_ascii_string_to_unsigned (node, 10, 1, G_MAXUINT64, &id, NULL))
    return NULL;
  return g_hash_table_lookup (service->jobs, &id);
}

static Job *
job_from_call (JobService *service,
               PeerCall   *call)
{
  const char *path = peer_call_get_object_path (call);
  const char *slash = strrchr (path, '/');

  return slash != NULL ? lookup_job (service, slash + 1) : NULL;
}

static char **
enumerate_jobs (PeerSubtree    *subtree,
                PeerConnection *caller,
                gpointer        user_data)
{
  JobService *service = user_data;
  GPtrArray *nodes = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, service->jobs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (nodes, g_strdup_printf ("%" G_GUINT64_FORMAT, ((Job *) value)->id));
  g_ptr_array_add (nodes, NULL);
  return (char **) g_ptr_array_free (nodes, FALSE);
}

static GPtrArray *
lookup_job_node (PeerSubtree    *subtree,
                 PeerConnection *caller,
                 const char     *node,
                 gpointer        user_data)
{
  JobService *service = user_data;
  GPtrArray *interfaces;

  if (lookup_job (service, node) == NULL)
    return NULL;
  interfaces = g_ptr_array_new_with_free_func (g_object_unref);
  g_ptr_array_add (interfaces, g_object_ref (service->iface));
  return interfaces;
}

static void
start_timer (Job         *job,
             guint        ms,
             GSourceFunc  func)
{
  clear_timer (job);
  job->timer = g_timeout_source_new (ms);
  g_source_set_callback (job->timer, func, job, NULL);
  g_source_set_static_name (job->timer, "[peer-server] job");
  g_source_attach (job->timer, job->service->context);
}

static gboolean
on_linger_over (gpointer user_data)
{
  Job *job = user_data;
  JobService *service = job->service;
  guint64 id = job->id;

  g_clear_pointer (&job->timer, g_source_unref);
  g_debug ("job %" G_GUINT64_FORMAT " goes", id);
  release_owner (job);
  /* While the subtree still finds it, so that its interfaces are named. */
  {
    g_autofree char *node = g_strdup_printf ("%" G_GUINT64_FORMAT, id);
    peer_subtree_object_removed (service->subtree, node, NULL);
  }
  peer_interface_forget_object (service->iface, job->path);
  /* Frees the job. */
  g_hash_table_remove (service->jobs, &id);
  return G_SOURCE_REMOVE;
}

static void
finish_job (Job        *job,
            JobState    state,
            const char *message)
{
  g_autoptr(GError) error = NULL;

  if (job->owner != NULL)
    peer_connection_give_back_share (job->owner, JOB_RUNNING_SHARE);
  job->state = state;
  peer_job1_set_object_state (job->service->iface, job->path, job_state_names[state], NULL);
  if (!peer_job1_emit_object_finished (job->service->iface, job->path, NULL, state == JOB_DONE, message, &error))
    g_debug ("Finished not sent: %s", error->message);
  start_timer (job, job->service->linger_ms, on_linger_over);
}

static gboolean
on_step (gpointer user_data)
{
  Job *job = user_data;
  g_autofree char *message = NULL;
  g_autoptr(GError) error = NULL;
  double fraction;

  job->step++;
  if (job->fails && job->step == job->steps)
    {
      g_clear_pointer (&job->timer, g_source_unref);
      message = g_strdup_printf ("failed at step %u of %u, as asked", job->step, job->steps);
      finish_job (job, JOB_FAILED, message);
      return G_SOURCE_REMOVE;
    }

  fraction = (double) job->step / job->steps;
  message = g_strdup_printf ("step %u of %u", job->step, job->steps);
  peer_job1_set_object_progress (job->service->iface, job->path, fraction, NULL);
  if (!peer_job1_emit_object_progress (job->service->iface, job->path, NULL, fraction, message, &error))
    g_debug ("Progress not sent: %s", error->message);
  if (job->step < job->steps)
    return G_SOURCE_CONTINUE;

  g_clear_pointer (&job->timer, g_source_unref);
  finish_job (job, JOB_DONE, "done");
  return G_SOURCE_REMOVE;
}

/* Calls to a subtree's children run in the main context, whatever the
 * method's flags. */
static void
handle_cancel (PeerCall *call,
               gpointer  user_data)
{
  JobService *service = user_data;
  Job *job = job_from_call (service, call);
  PeerConnection *caller = peer_call_get_connection (call);
  uid_t uid = peer_connection_get_uid (caller);
  g_autofree char *message = NULL;

  if (job == NULL)
    {
      /* Gone since GDBus found it for this call. */
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT,
                              "No job at %s", peer_call_get_object_path (call));
      return;
    }
  if (uid != job->owner_uid && uid != getuid ())
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                              "Job %" G_GUINT64_FORMAT " belongs to uid %d; uid %d may not cancel it",
                              job->id, (int) job->owner_uid, (int) uid);
      return;
    }
  if (job->state != JOB_RUNNING)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "Job %" G_GUINT64_FORMAT " is already %s", job->id, job_state_names[job->state]);
      return;
    }
  peer_job1_complete_cancel (call);
  message = g_strdup_printf ("cancelled by %s", peer_connection_get_unique_name (caller));
  finish_job (job, JOB_CANCELLED, message);
}

void
peer_job_service_start_job (PeerServer *server,
                            PeerCall   *call,
                            const char *kind,
                            guint32     steps,
                            guint32     step_ms)
{
  JobService *service = g_object_get_data (G_OBJECT (server), "peer-job-service");
  PeerConnection *owner = peer_call_get_connection (call);
  g_autoptr(GError) error = NULL;
  g_autofree char *node = NULL;
  guint64 *key;
  Job *job;

  g_return_if_fail (service != NULL);

  if (!g_str_equal (kind, "count") && !g_str_equal (kind, "fail"))
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "Unknown job kind '%s' (count or fail)", kind);
      return;
    }
  if (steps < 1 || steps > JOB_MAX_STEPS || step_ms > JOB_MAX_STEP_MS)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "steps must be 1..%d and step_ms 0..%d, not %u and %u",
                              JOB_MAX_STEPS, JOB_MAX_STEP_MS, steps, step_ms);
      return;
    }
  /* The owner's shares first, so that a peer at its limit hears about
   * its own limit; from here on the job gives them back (job_free). */
  if (!peer_connection_take_share (owner, JOB_RUNNING_SHARE, JOB_MAX_RUNNING_PER_PEER, &error))
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  if (!peer_connection_take_share (owner, JOB_SHARE, service->max_per_peer, &error))
    {
      peer_connection_give_back_share (owner, JOB_RUNNING_SHARE);
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  if (g_hash_table_size (service->jobs) >= service->max_total)
    {
      peer_connection_give_back_share (owner, JOB_RUNNING_SHARE);
      peer_connection_give_back_share (owner, JOB_SHARE);
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED,
                              "The server has %u jobs already, the most it holds for all peers together",
                              service->max_total);
      return;
    }

  job = g_new0 (Job, 1);
  job->service = service;
  job->id = ++service->next_id;
  job->path = g_strdup_printf ("%s/%" G_GUINT64_FORMAT, PEER_JOBS_PATH, job->id);
  job->fails = g_str_equal (kind, "fail");
  job->steps = steps;
  job->step_ms = step_ms;
  job->owner_id = peer_connection_get_id (owner);
  job->owner_uid = peer_connection_get_uid (owner);
  job->owner = g_object_ref (owner);

  peer_job1_set_object_state (service->iface, job->path, job_state_names[JOB_RUNNING], NULL);
  peer_job1_set_object_progress (service->iface, job->path, 0.0, NULL);
  key = g_new (guint64, 1);
  *key = job->id;
  g_hash_table_insert (service->jobs, key, job);
  node = g_strdup_printf ("%" G_GUINT64_FORMAT, job->id);
  peer_subtree_object_added (service->subtree, node);

  g_debug ("job %" G_GUINT64_FORMAT " started by %s: %s, %u × %u ms", job->id,
           peer_connection_get_unique_name (owner), kind, steps, step_ms);
  peer_helper1_complete_start_job (call, job->path);
  start_timer (job, step_ms, on_step);
}

static void
on_peer_disconnected (PeerServer     *server,
                      PeerConnection *peer,
                      JobService     *service)
{
  g_autoptr(GPtrArray) owned = g_ptr_array_new ();
  guint64 id = peer_connection_get_id (peer);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, service->jobs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Job *job = value;
      if (job->owner_id == id && job->state == JOB_RUNNING)
        g_ptr_array_add (owned, job);
    }
  for (guint i = 0; i < owned->len; i++)
    finish_job (g_ptr_array_index (owned, i), JOB_CANCELLED, "its owner disconnected");

  /* Its finished jobs linger for whoever watches them, in the server-wide
   * table only. */
  g_hash_table_iter_init (&iter, service->jobs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Job *job = value;
      if (job->owner_id == id)
        release_owner (job);
    }
}

static void
job_service_free (gpointer data)
{
  JobService *service = data;

  /* The server is finalizing: its exports are already gone; each job's
   * timer and shares go with it. */
  g_hash_table_unref (service->jobs);
  g_object_unref (service->subtree);
  g_object_unref (service->iface);
  g_main_context_unref (service->context);
  g_free (service);
}

gboolean
peer_job_service_attach (PeerServer *server,
                         GError    **error)
{
  static const PeerJob1Vtable vtable = {
    .handle_cancel = handle_cancel,
  };
  JobService *service = g_new0 (JobService, 1);

  service->server = server;
  service->context = g_main_context_ref_thread_default ();
  service->jobs = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, job_free);
  service->linger_ms = PEER_JOB_DEFAULT_LINGER_MS;
  service->max_per_peer = JOB_DEFAULT_MAX_PER_PEER;
  service->max_total = JOB_DEFAULT_MAX_TOTAL;
  /* One interface for every job: the subtree's lookup hands it out. */
  service->iface = peer_job1_interface_new (&vtable, service, error);
  if (service->iface == NULL)
    {
      g_hash_table_unref (service->jobs);
      g_main_context_unref (service->context);
      g_free (service);
      return FALSE;
    }
  service->subtree = peer_subtree_new (enumerate_jobs, lookup_job_node, service, NULL);
  g_object_set_data_full (G_OBJECT (server), "peer-job-service", service, job_service_free);
  g_signal_connect (server, "peer-disconnected", G_CALLBACK (on_peer_disconnected), service);

  peer_subtree_add_interface (service->subtree, service->iface);
  /* Clients follow the jobs with GDBusObjectManagerClient, busctl or d-spy. */
  return peer_server_export_subtree (server, PEER_JOBS_PATH, service->subtree, error) &&
         peer_server_add_object_manager (server, PEER_HELPER_PATH, error);
}

void
peer_job_service_set_linger (PeerServer *server,
                             guint       linger_ms)
{
  JobService *service = g_object_get_data (G_OBJECT (server), "peer-job-service");

  g_return_if_fail (service != NULL);
  service->linger_ms = linger_ms;
}

void
peer_job_service_set_limits (PeerServer *server,
                             guint       max_per_peer,
                             guint       max_total)
{
  JobService *service = g_object_get_data (G_OBJECT (server), "peer-job-service");

  g_return_if_fail (service != NULL);
  g_return_if_fail (max_per_peer >= 1 && max_total > max_per_peer);

  service->max_per_peer = max_per_peer;
  service->max_total = max_total;
}
