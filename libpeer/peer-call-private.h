/* peer-call-private.h: how a transport plugs into PeerCall. */
#pragma once

#include "peer-call.h"

G_BEGIN_DECLS

typedef struct {
  /* @value is a full (non-floating) reference or NULL; @fd_list may be NULL.
   * Called exactly once per call, or return_error instead. */
  void (*return_value) (PeerCall *call, GVariant *value, GUnixFDList *fd_list);
  void (*return_error) (PeerCall *call, const char *error_name, const char *message);
  /* Frees transport_data; called after the reply was sent. */
  void (*finalize)     (PeerCall *call);
} PeerCallTransport;

struct _PeerCall
{
  gatomicrefcount ref_count;
  gint replied;                         /* atomic */
  const PeerCallTransport *transport;
  gpointer transport_data;
  PeerConnection *connection;           /* owned */
  PeerInterface *iface;                 /* owned */
  GDBusMethodInfo *method_info;         /* borrowed from iface's info */
  guint method_index;
  GVariant *parameters;                 /* owned */
  GUnixFDList *fd_list;                 /* owned, nullable */
  gboolean counted;                     /* in the connection's calls in flight */
};

PeerCall *_peer_call_new (const PeerCallTransport *transport,
                          gpointer                 transport_data,
                          PeerConnection          *connection,
                          PeerInterface           *iface,
                          guint                    method_index,
                          GVariant                *parameters,
                          GUnixFDList             *fd_list);

G_END_DECLS
