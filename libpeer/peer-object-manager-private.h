/* peer-object-manager-private.h: org.freedesktop.DBus.ObjectManager. */
#pragma once

#include "peer-connection.h"
#include "peer-interface.h"

G_BEGIN_DECLS

#define PEER_OBJECT_MANAGER_INTERFACE "org.freedesktop.DBus.ObjectManager"

/* Adds every object below @manager_path that @caller may see to
 * @objects (a{oa{sa{sv}}}). Main context. */
typedef void (*PeerObjectManagerListFunc) (gpointer         registry,
                                           PeerConnection  *caller,
                                           const char      *manager_path,
                                           GVariantBuilder *objects);

/* One interface serves every manager of a server, exported at each of
 * their paths. (transfer full) */
PeerInterface *_peer_object_manager_new      (PeerObjectManagerListFunc list,
                                              gpointer                  registry);
/* The registry is going: calls still on their way get an error. */
void           _peer_object_manager_detach   (PeerInterface *manager);
/* Whether a manager at @manager_path lists @object_path: any path below it. */
gboolean       _peer_object_manager_manages  (const char    *manager_path,
                                              const char    *object_path);
/* @interfaces: a{sa{sv}}; @names: the interfaces that went. Any thread. */
void           _peer_object_manager_emit_added   (PeerInterface      *manager,
                                                  const char         *manager_path,
                                                  const char         *object_path,
                                                  GVariant           *interfaces);
void           _peer_object_manager_emit_removed (PeerInterface      *manager,
                                                  const char         *manager_path,
                                                  const char         *object_path,
                                                  const char * const *names);

G_END_DECLS
