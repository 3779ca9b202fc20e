/* peer-server-auth-private.h: what the two halves of a PeerServer share.
 *
 * peer-server.c holds its lifecycle (the socket, start and stop, the peer
 * registry and the limits); peer-server-auth.c how a connection becomes a
 * peer (the connection limits at accept, the handshake and its deadline,
 * the policy's checks), which hands each authenticated connection on to
 * peer-server.c. Both read the server's settings, so the instance struct
 * is here.
 */
#pragma once

#include <sys/types.h>

#include "peer-server-private.h"

G_BEGIN_DECLS

typedef struct _PeerRouter PeerRouter;

struct _PeerServer
{
  GObject parent_instance;

  /* Construct-only */
  char *address;
  PeerPolicy *policy;
  PeerServerFlags flags;

  /* Set by init, read-only after */
  GMainContext *context;
  GDBusAuthObserver *observer;
  char *guid;
  char *socket_path;                    /* NULL for abstract sockets */
  char *socket_dir;                     /* a directory we made, removed on stop */
  dev_t socket_dev;
  ino_t socket_ino;
  char *client_address;
  GSocket *listen_socket;
  /* peer_server_new_for_fd(): the one connected socket served, instead of
   * a listening one. @adopted_fd is owned until init wraps it. */
  int adopted_fd;
  GSocketConnection *adopted;

  /* Main context only */
  GSource *accept_source;
  GPtrArray *handshakes;                /* Handshake* (peer-server-auth.c), not owned */
  PeerObjectRegistry *objects;          /* what is served; NULL once disposed */
  PeerRouter *router;                   /* set by init, read-only after */
  PeerInterface *driver;                /* org.freedesktop.DBus */
  PeerInterface *monitoring;            /* org.freedesktop.DBus.Monitoring */
  PeerInterface *wire;                  /* org.libpeer.Transport1 */
  PeerInterface *lane;                  /* org.libpeer.Lane1 */
  guint handshake_timeout_ms;
  guint max_fds_per_message;
  gsize blob_threshold;
  guint max_peers;
  guint max_handshakes;
  guint max_calls_in_flight;
  gsize max_queued_bytes;
  gsize max_mapped_bytes;
  guint max_message_size;
  guint64 next_peer_id;
  gboolean started;
  gboolean stopped;

  GMutex lock;
  /* Protected by @lock */
  GHashTable *peers;                    /* id (guint64*) → PeerConnection, owned */
  guint64 n_refused;
};

/* --- peer-server-auth.c ------------------------------------------------- */

/* The policy's part: the GDBusAuthObserver every handshake runs with, and
 * who may become a monitor. Init, once @policy is set. */
void     _peer_server_auth_init               (PeerServer      *self);
/* The listening socket's source callback: accepts what is waiting and
 * starts a handshake with each connection the limits admit. */
gboolean _peer_server_on_incoming             (GSocket         *sock,
                                               GIOCondition     condition,
                                               gpointer         user_data);
/* peer_server_new_for_fd(): the policy judges the process at the other end
 * of the adopted socket, then the handshake runs. At start. */
void     _peer_server_start_adopted_handshake (PeerServer      *self);
/* At stop: every handshake in flight is cancelled and ends without the
 * server. */
void     _peer_server_cancel_handshakes       (PeerServer      *self);

/* --- peer-server.c ------------------------------------------------------ */

/* An authenticated connection becomes a peer: exported to, registered,
 * announced, and its messages processed. */
void     _peer_server_add_peer                (PeerServer      *self,
                                               GDBusConnection *connection);
/* PeerServer::peer-refused, now. */
void     _peer_server_emit_peer_refused       (PeerServer      *self,
                                               const GError    *reason);

G_END_DECLS
