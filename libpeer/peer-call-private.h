/* peer-call-private.h: how a transport plugs into PeerCall. */
#pragma once

#include "peer-call.h"
#include "peer-wire-private.h"

G_BEGIN_DECLS

typedef struct {
  /* @value is a full (non-floating) reference or NULL; @fd_list may be NULL.
   * Called exactly once per call, or return_error instead. */
  void (*return_value) (PeerCall *call, GVariant *value, GUnixFDList *fd_list);
  void (*return_error) (PeerCall *call, const char *error_name, const char *message);
  /* Releases transport_data; called after the reply was sent, last.
   * Returns TRUE when the transport keeps the call's block to build a
   * later call in (see _peer_call_new()); FALSE has it freed. */
  gboolean (*finalize) (PeerCall *call);
} PeerCallTransport;

struct _PeerCall
{
  gatomicrefcount ref_count;
  gint replied;                         /* atomic */
  const PeerCallTransport *transport;
  gpointer transport_data;
  PeerConnection *connection;           /* owned, unless borrowed */
  PeerInterface *iface;                 /* owned, unless borrowed */
  GDBusMethodInfo *method_info;         /* borrowed from iface's info */
  /* The object called, when the transport knows it (an interface can be
   * at several paths); NULL: the interface's first. Borrowed from the
   * transport unless @owned_object_path holds it. */
  const char *object_path;
  char *owned_object_path;
  guint method_index;
  GVariant *parameters;                 /* owned */
  GUnixFDList *fd_list;                 /* owned, nullable */
  /* The ledger that counts this call in flight (peer-wire.c), or NULL.
   * Not a reference: @connection owns it and outlives the call. */
  PeerWireLimits *counted_in;
  /* The transport keeps @connection and @iface alive until finalize: no
   * reference of the call's own (two atomic pairs less per call). */
  gboolean borrowed;
};

/* @parameters: (transfer full), not floating. @transport_size > 0 makes
 * transport_data a zeroed block of that size in the call's own allocation
 * (@transport_data is then ignored), freed with the call. @block: NULL,
 * or the block of an earlier call with the same @transport_size that the
 * transport kept (its finalize returned TRUE): the call is built in it
 * instead of a new allocation. */
PeerCall *_peer_call_new (gpointer                 block,
                          const PeerCallTransport *transport,
                          gpointer                 transport_data,
                          gsize                    transport_size,
                          PeerConnection          *connection,
                          PeerInterface           *iface,
                          gboolean                 borrowed,
                          guint                    method_index,
                          GVariant                *parameters,
                          GUnixFDList             *fd_list);

/* Sets the object called (a copy is kept). */
void      _peer_call_set_object_path (PeerCall   *call,
                                      const char *object_path);

G_END_DECLS
