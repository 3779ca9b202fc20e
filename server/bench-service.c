/* bench-service.c: org.libpeer.Bench1, the calls benchmarks measure,
 * through the skeleton peer-codegen generates from its XML.
 *
 * Handlers are trivial and thread-safe on purpose (the XML says so with
 * org.libpeer.ThreadSafe): what a benchmark sees is the transport's cost,
 * not the handler's. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "peer-protocol-stubs.h"
#include "services.h"

static void
handle_ping (PeerCall *call,
             gpointer  user_data)
{
  peer_bench1_complete_ping (call);
}

static void
handle_echo (PeerCall     *call,
             const guint8 *data,
             gsize         data_len,
             gpointer      user_data)
{
  /* The bytes are the call's own: the reply shares them, no copy. */
  peer_bench1_complete_echo (call, data, data_len);
}

static void
handle_echo_fds (PeerCall *call,
                 GVariant *handles,
                 gpointer  user_data)
{
  g_autoptr(GUnixFDList) fds = g_unix_fd_list_new ();
  g_auto(GVariantBuilder) reply = G_VARIANT_BUILDER_INIT (G_VARIANT_TYPE ("ah"));
  gsize n = g_variant_n_children (handles);

  for (gsize i = 0; i < n; i++)
    {
      g_autoptr(GError) error = NULL;
      gint32 handle;
      int fd;

      g_variant_get_child (handles, i, "h", &handle);
      fd = peer_call_dup_fd (call, handle, &error);
      if (fd < 0)
        {
          peer_call_take_error (call, g_steal_pointer (&error));
          return;
        }
      /* append() keeps its own duplicate. */
      g_variant_builder_add (&reply, "h", g_unix_fd_list_append (fds, fd, NULL));
      close (fd);
    }
  peer_bench1_complete_echo_fds (call, g_variant_builder_end (&reply), fds);
}

static void
handle_echo_blob (PeerCall *call,
                  int       fd,
                  gpointer  user_data)
{
  g_autoptr(PeerBlob) blob = NULL;
  g_autoptr(GError) error = NULL;
  int copy = fcntl (fd, F_DUPFD_CLOEXEC, 3);

  /* Checked as a blob (sealed, mapped) before it goes back, so that an
   * unsealed memfd is refused here too. The call keeps its own fd. */
  if (copy < 0)
    {
      peer_call_return_error (call, G_IO_ERROR, g_io_error_from_errno (errno), "Cannot duplicate the fd");
      return;
    }
  blob = peer_blob_new_take_fd (copy, -1, &error);
  if (blob == NULL)
    {
      peer_call_take_error (call, g_steal_pointer (&error));
      return;
    }
  peer_bench1_complete_echo_blob (call, peer_blob_get_fd (blob));
}

gboolean
peer_bench_service_export (PeerServer *server,
                           GError    **error)
{
  static const PeerBench1Vtable vtable = {
    .handle_ping = handle_ping,
    .handle_echo = handle_echo,
    .handle_echo_fds = handle_echo_fds,
    .handle_echo_blob = handle_echo_blob,
  };
  g_autoptr(PeerInterface) iface = peer_bench1_export (server, PEER_BENCH_PATH, &vtable, NULL, error);

  return iface != NULL && peer_server_add_name (server, PEER_BENCH_NAME, error);
}
