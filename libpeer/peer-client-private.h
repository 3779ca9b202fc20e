/* peer-client-private.h: what tests may ask of a PeerClient, and what
 * its three files share: peer-client.c (the GObject, connecting, its
 * lifetime, the lane's opening), peer-client-calls.c (calls and the
 * server's limits) and peer-client-signals.c (signal subscriptions). */
#pragma once

#include "peer-client.h"
#include "peer-lane-private.h"

G_BEGIN_DECLS

struct _PeerClient
{
  GObject parent_instance;

  GDBusConnection *connection;
  gulong closed_handler;
  /* Connections libpeer makes start frozen (DELAY_MESSAGE_PROCESSING), so
   * that signals subscribed right after connecting are never missed; they
   * are thawed by the first call or the first main-loop iteration. */
  gint processing_started;              /* atomic */
  /* Whether the server takes blob-wrapped calls (see peer-wire.c): asked
   * once, the first time a call has a large `ay` argument. */
  gint blob_calls;                      /* atomic, BlobCalls */
  gsize blob_threshold;                 /* atomic (pointer-sized) */
  /* The limits the same answer gives for this client's messages,
   * G_MAXUINT until it comes or when the server does not say (see
   * check_within_limits() in peer-client-calls.c). */
  guint max_message_size;               /* atomic */
  guint max_fds;                        /* atomic */
  /* Set once by peer_client_open_lane_sync(), freed in finalize. */
  PeerLaneClient *lane;                 /* atomic */

  GMutex lock;
  /* Protected by @lock */
  GError *close_reason;
  GPtrArray *lane_subscriptions;        /* Subscription*, borrowed: GDBus holds them */
  gboolean lane_signals_taken;
  /* Set with lane_signals_taken (peer-client-signals.c): holds the lane's
   * signals until those sent on the connection before them are out */
  struct _SignalSwitch *signal_switch;
  guint signal_switch_filter;
};

typedef enum {
  BLOB_CALLS_UNKNOWN,
  BLOB_CALLS_YES,
  BLOB_CALLS_NO,
} BlobCalls;

/* (transfer none) (nullable): the lane, once opened. */
PeerLaneClient *_peer_client_get_lane (PeerClient *self);

/* peer-client.c */
void            _peer_client_ensure_processing (PeerClient *self);

/* peer-client-calls.c */
void            _peer_client_fix_call_error    (PeerClient *self,
                                                GError    **error);

/* peer-client-signals.c */
void            _peer_client_take_lane_signals (PeerClient *self);
/* Dispose and finalize: the switch's filter off @connection, and what
 * it held dropped. */
void            _peer_client_clear_signal_switch (PeerClient      *self,
                                                  GDBusConnection *connection);

G_END_DECLS
