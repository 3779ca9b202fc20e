/* peer-types.h: forward declarations shared by libpeer's headers. */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <glib.h>

G_BEGIN_DECLS

typedef struct _PeerBlob       PeerBlob;
typedef struct _PeerCall       PeerCall;
typedef struct _PeerClient     PeerClient;
typedef struct _PeerConnection PeerConnection;
typedef struct _PeerHelper     PeerHelper;
typedef struct _PeerInterface  PeerInterface;
typedef struct _PeerPolicy     PeerPolicy;
typedef struct _PeerServer     PeerServer;

G_END_DECLS
