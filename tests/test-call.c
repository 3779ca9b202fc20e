/* test-call.c: PeerCall's reply rules, with a transport that records. */
#include "config.h"

#include <sys/socket.h>
#include <unistd.h>

#include "peer-call-private.h"
#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-interface.h"
#include "peer-router-private.h"

typedef struct {
  guint n_values;
  guint n_errors;
  guint n_finalized;
  char *error_name;
  char *error_message;
  GVariant *value;
  gboolean keep_block;          /* finalize keeps the call's block in @kept */
  gpointer kept;
} Recorder;

static void
record_value (PeerCall    *call,
              GVariant    *value,
              GUnixFDList *fd_list)
{
  Recorder *r = call->transport_data;

  r->n_values++;
  r->value = value ? g_variant_ref (value) : NULL;
}

static void
record_error (PeerCall   *call,
              const char *name,
              const char *message)
{
  Recorder *r = call->transport_data;

  r->n_errors++;
  r->error_name = g_strdup (name);
  r->error_message = g_strdup (message);
}

static gboolean
record_finalize (PeerCall *call)
{
  Recorder *r = call->transport_data;

  r->n_finalized++;
  if (!r->keep_block)
    return FALSE;
  r->kept = call;
  return TRUE;
}

static const PeerCallTransport recorder_transport = { record_value, record_error, record_finalize };

static const char xml[] =
  "<node><interface name='org.example.T'>"
  " <method name='M'><arg type='s' direction='in'/><arg type='s' direction='out'/></method>"
  "</interface></node>";

typedef struct {
  Recorder recorder;
  PeerInterface *iface;
  PeerConnection *connection;
  GDBusConnection *dbus;
  GIOStream *stream;
  PeerRouter *router;
} Fixture;

static void
fixture_set_up (Fixture      *f,
                gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GSocket) a = NULL;
  int fds[2];

  f->iface = peer_interface_new_for_xml (xml, "org.example.T", &error);
  g_assert_no_error (error);
  /* A PeerConnection needs a GDBusConnection; an unauthenticated one over
   * a socketpair is enough, nothing is sent on it. */
  int r;

  r = socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
  g_assert_cmpint (r, ==, 0);
  close (fds[1]);
  a = g_socket_new_from_fd (fds[0], &error);
  g_assert_no_error (error);
  f->stream = G_IO_STREAM (g_socket_connection_factory_create_connection (a));
  f->dbus = g_dbus_connection_new_sync (f->stream, NULL, G_DBUS_CONNECTION_FLAGS_DELAY_MESSAGE_PROCESSING,
                                        NULL, NULL, &error);
  g_assert_no_error (error);
  f->router = _peer_router_new ("0123456789abcdef0123456789abcdef");
  f->connection = _peer_connection_new (f->dbus, 1, f->router);
}

static void
fixture_tear_down (Fixture      *f,
                   gconstpointer data)
{
  g_clear_object (&f->connection);
  g_clear_pointer (&f->router, _peer_router_unref);
  g_dbus_connection_close_sync (f->dbus, NULL, NULL);
  g_clear_object (&f->dbus);
  g_clear_object (&f->stream);
  g_clear_object (&f->iface);
  g_clear_pointer (&f->recorder.value, g_variant_unref);
  g_free (f->recorder.error_name);
  g_free (f->recorder.error_message);
  g_free (f->recorder.kept);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static PeerCall *
new_call_in (Fixture    *f,
             gpointer    block,
             const char *argument)
{
  return _peer_call_new (block, &recorder_transport, &f->recorder, 0, f->connection, f->iface, FALSE, 0,
                         g_variant_ref_sink (g_variant_new ("(s)", argument)), NULL);
}

static PeerCall *
new_call (Fixture *f)
{
  return new_call_in (f, NULL, "hello");
}

static void
test_reply_once (Fixture      *f,
                 gconstpointer data)
{
  PeerCall *call = new_call (f);

  g_assert_cmpstr (peer_call_get_method_name (call), ==, "M");
  g_assert_cmpstr (peer_call_get_interface_name (call), ==, "org.example.T");
  g_assert_true (peer_call_get_connection (call) == f->connection);
  g_assert_false (peer_call_has_replied (call));
  peer_call_return_value (call, g_variant_new ("(s)", "back"));
  g_assert_true (peer_call_has_replied (call));
  peer_call_unref (call);

  g_assert_cmpuint (f->recorder.n_values, ==, 1);
  g_assert_cmpuint (f->recorder.n_errors, ==, 0);
  g_assert_cmpuint (f->recorder.n_finalized, ==, 1);
  g_assert_cmpstr (g_variant_get_type_string (f->recorder.value), ==, "(s)");
}

/* A transport may keep a finished call's block and build its next call
 * in it (the lane does): the new call starts from nothing of the old. */
static void
test_block_kept_and_reused (Fixture      *f,
                            gconstpointer data)
{
  PeerCall *call = new_call (f);
  PeerCall *again;
  gpointer block;
  const char *argument;

  f->recorder.keep_block = TRUE;
  peer_call_return_value (call, g_variant_new ("(s)", "one"));
  peer_call_unref (call);
  g_assert_cmpuint (f->recorder.n_finalized, ==, 1);
  g_assert_nonnull (f->recorder.kept);

  block = g_steal_pointer (&f->recorder.kept);
  again = new_call_in (f, block, "two");
  g_assert_true (again == block);
  g_assert_false (peer_call_has_replied (again));
  g_assert_null (peer_call_get_unix_fd_list (again));
  g_variant_get (peer_call_get_parameters (again), "(&s)", &argument);
  g_assert_cmpstr (argument, ==, "two");
  g_assert_cmpstr (peer_call_get_method_name (again), ==, "M");

  /* Not kept this time: freed (ASan and valgrind see to it). */
  f->recorder.keep_block = FALSE;
  g_clear_pointer (&f->recorder.value, g_variant_unref);
  peer_call_return_value (again, g_variant_new ("(s)", "three"));
  peer_call_unref (again);
  g_assert_cmpuint (f->recorder.n_finalized, ==, 2);
  g_assert_null (f->recorder.kept);
  g_assert_cmpuint (f->recorder.n_values, ==, 2);
}

static void
test_unreplied_gets_no_reply (Fixture      *f,
                              gconstpointer data)
{
  PeerCall *call = new_call (f);

  peer_call_unref (call);
  g_assert_cmpuint (f->recorder.n_values, ==, 0);
  g_assert_cmpuint (f->recorder.n_errors, ==, 1);
  g_assert_cmpstr (f->recorder.error_name, ==, "org.libpeer.Error.NoReply");
}

static void
test_reply_later (Fixture      *f,
                  gconstpointer data)
{
  PeerCall *call = new_call (f);
  PeerCall *kept = peer_call_ref (call);

  peer_call_unref (call);               /* the handler returns */
  g_assert_cmpuint (f->recorder.n_errors + f->recorder.n_values, ==, 0);
  peer_call_return_error (kept, PEER_ERROR, PEER_ERROR_LIMIT_EXCEEDED, "too many: %d", 3);
  peer_call_unref (kept);
  g_assert_cmpuint (f->recorder.n_errors, ==, 1);
  g_assert_cmpstr (f->recorder.error_name, ==, "org.libpeer.Error.LimitExceeded");
  g_assert_cmpstr (f->recorder.error_message, ==, "too many: 3");
}

static void
test_remote_error_forwarded_clean (Fixture      *f,
                                   gconstpointer data)
{
  PeerCall *call = new_call (f);
  g_autoptr(GError) remote = g_dbus_error_new_for_dbus_error ("com.example.Error.Busy", "busy now");

  /* A GError that came from elsewhere keeps its name, and its message loses
   * GDBus's "GDBus.Error:name: " prefix. */
  peer_call_return_gerror (call, remote);
  peer_call_unref (call);
  g_assert_cmpstr (f->recorder.error_name, ==, "com.example.Error.Busy");
  g_assert_cmpstr (f->recorder.error_message, ==, "busy now");
}

static void
test_double_reply_is_critical (Fixture      *f,
                               gconstpointer data)
{
  if (g_test_subprocess ())
    {
      PeerCall *call = new_call (f);
      peer_call_return_value (call, g_variant_new ("(s)", "one"));
      peer_call_return_value (call, g_variant_new ("(s)", "two"));
      peer_call_unref (call);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*replied to twice*");
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/peer/call/reply-once", Fixture, NULL, fixture_set_up, test_reply_once, fixture_tear_down);
  g_test_add ("/peer/call/block-kept-and-reused", Fixture, NULL, fixture_set_up,
              test_block_kept_and_reused, fixture_tear_down);
  g_test_add ("/peer/call/unreplied-gets-no-reply", Fixture, NULL, fixture_set_up,
              test_unreplied_gets_no_reply, fixture_tear_down);
  g_test_add ("/peer/call/reply-later", Fixture, NULL, fixture_set_up, test_reply_later, fixture_tear_down);
  g_test_add ("/peer/call/remote-error-forwarded-clean", Fixture, NULL, fixture_set_up,
              test_remote_error_forwarded_clean, fixture_tear_down);
  g_test_add ("/peer/call/double-reply-is-critical", Fixture, NULL, fixture_set_up,
              test_double_reply_is_critical, fixture_tear_down);
  return g_test_run ();
}
