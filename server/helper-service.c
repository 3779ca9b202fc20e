/* helper-service.c: org.libpeer.Helper1, the example helper.
 *
 * Quick() is the "random data" service and Notify() the notification-style
 * call with a broadcast signal; the properties show stored (Version,
 * Label) and live (Peers) values. */
#include "config.h"

#include <string.h>
#include <sys/random.h>

#include "peer-protocol.h"
#include "services.h"

#define QUICK_MAX_BITS 1024
#define LABEL_MAX_BYTES 256

typedef struct {
  PeerServer *server;                   /* not a reference: the server owns us */
  PeerInterface *iface;                 /* not a reference: the server holds it */
  guint32 last_notification_id;
} Helper;

char *
peer_helper_random_decimal (guint bits)
{
  /* Little-endian 32-bit limbs; repeated division by 10^9 gives the
   * decimal digits nine at a time. */
  guint32 limbs[QUICK_MAX_BITS / 32];
  guint n = (bits + 31) / 32;
  g_autoptr(GString) digits = g_string_new (NULL);
  gboolean zero;

  g_return_val_if_fail (bits >= 1 && bits <= QUICK_MAX_BITS, NULL);

  for (gsize got = 0; got < n * sizeof (guint32);)
    {
      ssize_t r = getrandom ((guint8 *) limbs + got, n * sizeof (guint32) - got, 0);
      if (r > 0)
        got += r;
      else
        for (guint i = 0; i < n; i++)   /* getrandom() can only fail with EINTR here */
          limbs[i] = g_random_int ();
    }
  if (bits % 32 != 0)
    limbs[n - 1] &= (1u << (bits % 32)) - 1;

  do
    {
      guint64 rem = 0;
      char chunk[10];

      zero = TRUE;
      for (guint i = n; i-- > 0;)
        {
          guint64 cur = (rem << 32) | limbs[i];
          limbs[i] = (guint32) (cur / 1000000000u);
          rem = cur % 1000000000u;
          if (limbs[i] != 0)
            zero = FALSE;
        }
      g_snprintf (chunk, sizeof chunk, zero ? "%u" : "%09u", (guint) rem);
      g_string_prepend (digits, chunk);
    }
  while (!zero);

  return g_string_free (g_steal_pointer (&digits), FALSE);
}

static void
handle_quick (PeerCall *call,
              gpointer  user_data)
{
  gint32 bits;
  g_autofree char *number = NULL;

  g_variant_get (peer_call_get_parameters (call), "(i)", &bits);
  if (bits < 1 || bits > QUICK_MAX_BITS)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "bits must be between 1 and %d, not %d", QUICK_MAX_BITS, bits);
      return;
    }
  number = peer_helper_random_decimal (bits);
  peer_call_return_value (call, g_variant_new ("(s)", number));
}

static void
handle_notify (PeerCall *call,
               gpointer  user_data)
{
  Helper *helper = user_data;
  const char *app_name, *app_icon, *summary, *body;
  guint32 replaces_id, id;
  gint32 expire_timeout;
  g_autoptr(GVariant) actions = NULL;
  g_autoptr(GVariant) hints = NULL;
  g_autoptr(GError) error = NULL;

  g_variant_get (peer_call_get_parameters (call), "(&su&s&s&s@as@a{sv}i)",
                 &app_name, &replaces_id, &app_icon, &summary, &body,
                 &actions, &hints, &expire_timeout);
  if (expire_timeout < -1)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "expire_timeout must be -1, 0 or positive, not %d", expire_timeout);
      return;
    }
  if (g_variant_n_children (actions) % 2 != 0)
    {
      peer_call_return_error (call, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                              "actions must come in (key, label) pairs");
      return;
    }

  if (replaces_id != 0 && replaces_id <= helper->last_notification_id)
    id = replaces_id;
  else
    {
      id = ++helper->last_notification_id;
      if (id == 0)                      /* 0 means "new"; never hand it out */
        id = ++helper->last_notification_id;
    }

  peer_call_return_value (call, g_variant_new ("(u)", id));
  if (!peer_interface_emit_signal (helper->iface, NULL, "Notified",
                                   g_variant_new ("(us)", id, summary), &error))
    g_debug ("Notified not sent: %s", error->message);
}

static gboolean
on_set_label (PeerInterface  *iface,
              PeerConnection *caller,
              const char     *property_name,
              GVariant       *value,
              GError        **error,
              gpointer        user_data)
{
  gsize len;

  g_variant_get_string (value, &len);
  if (len > LABEL_MAX_BYTES)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Label is limited to %d bytes, got %" G_GSIZE_FORMAT, LABEL_MAX_BYTES, len);
      return FALSE;
    }
  return TRUE;
}

static void
update_peers (Helper *helper)
{
  peer_interface_set_property (helper->iface, "Peers",
                               g_variant_new_uint32 (peer_server_get_n_peers (helper->server)),
                               NULL);
}

static void
on_peers_changed (PeerServer     *server,
                  PeerConnection *peer,
                  Helper         *helper)
{
  update_peers (helper);
}

gboolean
peer_helper_service_export (PeerServer *server,
                            GError    **error)
{
  static const PeerMethodEntry entries[] = {
    { "Quick", handle_quick, PEER_METHOD_FLAGS_THREAD_SAFE },
    { "Notify", handle_notify, PEER_METHOD_FLAGS_NONE },
  };
  g_autoptr(PeerInterface) iface = peer_interface_new (peer_proto_helper1_interface_info ());
  Helper *helper = g_new0 (Helper, 1);

  helper->server = server;
  helper->iface = iface;
  /* Freed with the server, which outlives every handler call. */
  g_object_set_data_full (G_OBJECT (server), "peer-helper-service", helper, g_free);

  if (!peer_interface_add_methods (iface, entries, G_N_ELEMENTS (entries), helper, error))
    return FALSE;
  peer_interface_set_property_funcs (iface, NULL, on_set_label, NULL, NULL);
  peer_interface_set_property (iface, "Version", g_variant_new_string (PACKAGE_VERSION), NULL);
  peer_interface_set_property (iface, "Label", g_variant_new_string (""), NULL);
  update_peers (helper);

  g_signal_connect (server, "peer-connected", G_CALLBACK (on_peers_changed), helper);
  g_signal_connect (server, "peer-disconnected", G_CALLBACK (on_peers_changed), helper);
  return peer_server_export (server, PEER_HELPER_PATH, iface, error);
}
