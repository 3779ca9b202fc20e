/* peer-subtree.c: dynamic objects below one path, served through GDBus's
 * own subtree registration on each peer's connection.
 *
 * GDBus does the D-Bus side (Introspect listing the children, Properties
 * and argument checks against the interface a child has); this file turns
 * its three callbacks into the application's two. The lookup is asked
 * again at each step, never remembered: a child that goes between the
 * listing and a call is simply not found.
 */
#include "config.h"

#include <string.h>

#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-subtree-private.h"

struct _PeerSubtree
{
  GObject parent_instance;

  PeerSubtreeEnumerateFunc enumerate;
  PeerSubtreeLookupFunc lookup;
  gpointer user_data;
  GDestroyNotify destroy;
  GPtrArray *interfaces;                /* PeerInterface*, owned: bound with the subtree */

  /* Set by bind, cleared by unbind; main context */
  char *object_path;
  PeerSubtreeNotifyFunc notify;
  gpointer registry;
};

G_DEFINE_FINAL_TYPE (PeerSubtree, peer_subtree, G_TYPE_OBJECT)

static void
peer_subtree_finalize (GObject *object)
{
  PeerSubtree *self = PEER_SUBTREE (object);

  if (self->destroy != NULL)
    self->destroy (self->user_data);
  g_ptr_array_unref (self->interfaces);
  g_free (self->object_path);

  G_OBJECT_CLASS (peer_subtree_parent_class)->finalize (object);
}

static void
peer_subtree_class_init (PeerSubtreeClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = peer_subtree_finalize;
}

static void
peer_subtree_init (PeerSubtree *self)
{
  self->interfaces = g_ptr_array_new_with_free_func (g_object_unref);
}

PeerSubtree *
peer_subtree_new (PeerSubtreeEnumerateFunc enumerate,
                  PeerSubtreeLookupFunc    lookup,
                  gpointer                 user_data,
                  GDestroyNotify           destroy)
{
  PeerSubtree *self;

  g_return_val_if_fail (enumerate != NULL, NULL);
  g_return_val_if_fail (lookup != NULL, NULL);

  self = g_object_new (PEER_TYPE_SUBTREE, NULL);
  self->enumerate = enumerate;
  self->lookup = lookup;
  self->user_data = user_data;
  self->destroy = destroy;
  return self;
}

void
peer_subtree_add_interface (PeerSubtree   *self,
                            PeerInterface *iface)
{
  g_return_if_fail (PEER_IS_SUBTREE (self));
  g_return_if_fail (PEER_IS_INTERFACE (iface));
  g_return_if_fail (self->object_path == NULL);

  if (!g_ptr_array_find (self->interfaces, iface, NULL))
    g_ptr_array_add (self->interfaces, g_object_ref (iface));
}

const char *
peer_subtree_get_object_path (PeerSubtree *self)
{
  g_return_val_if_fail (PEER_IS_SUBTREE (self), NULL);
  return self->object_path;
}

gboolean
_peer_subtree_bind (PeerSubtree           *self,
                    const char            *object_path,
                    PeerSubtreeNotifyFunc  notify,
                    gpointer               registry,
                    GError               **error)
{
  if (self->object_path != NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "The subtree is already exported at %s", self->object_path);
      return FALSE;
    }
  self->object_path = g_strdup (object_path);
  self->notify = notify;
  self->registry = registry;
  return TRUE;
}

void
_peer_subtree_unbind (PeerSubtree *self)
{
  g_clear_pointer (&self->object_path, g_free);
  self->notify = NULL;
  self->registry = NULL;
}

GPtrArray *
_peer_subtree_get_interfaces (PeerSubtree *self)
{
  return self->interfaces;
}

/* A node is one path element: what GDBus writes into introspection XML
 * as it is, and what a path may hold. */
static gboolean
is_node_name (const char *node)
{
  if (node == NULL || *node == '\0')
    return FALSE;
  for (const char *p = node; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && *p != '_')
      return FALSE;
  return TRUE;
}

/* (transfer full) (nullable) the lookup's answer, without empty arrays. */
static GPtrArray *
lookup_node (PeerSubtree    *self,
             PeerConnection *caller,
             const char     *node)
{
  GPtrArray *interfaces;

  if (!is_node_name (node))
    return NULL;
  interfaces = self->lookup (self, caller, node, self->user_data);
  if (interfaces != NULL && interfaces->len == 0)
    g_clear_pointer (&interfaces, g_ptr_array_unref);
  return interfaces;
}

/* (transfer full) (nullable) the child's interface named @interface_name */
PeerInterface *
_peer_subtree_lookup_interface (PeerSubtree    *self,
                                PeerConnection *caller,
                                const char     *node,
                                const char     *interface_name)
{
  g_autoptr(GPtrArray) interfaces = lookup_node (self, caller, node);

  for (guint i = 0; interfaces != NULL && i < interfaces->len; i++)
    {
      PeerInterface *iface = g_ptr_array_index (interfaces, i);

      if (g_str_equal (peer_interface_get_info (iface)->name, interface_name))
        return g_object_ref (iface);
    }
  return NULL;
}

/* (transfer full) a{sa{sv}}, or NULL when there is no such child */
static GVariant *
dup_child (PeerSubtree    *self,
           PeerConnection *caller,
           const char     *node,
           const char     *child_path)
{
  g_autoptr(GPtrArray) interfaces = lookup_node (self, caller, node);
  GVariantBuilder builder;

  if (interfaces == NULL)
    return NULL;
  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{sa{sv}}"));
  for (guint i = 0; i < interfaces->len; i++)
    {
      PeerInterface *iface = g_ptr_array_index (interfaces, i);
      g_autoptr(GVariant) properties = _peer_interface_dup_all_properties (iface, caller, child_path);

      g_variant_builder_add (&builder, "{s@a{sv}}", peer_interface_get_info (iface)->name, properties);
    }
  return g_variant_ref_sink (g_variant_builder_end (&builder));
}

void
_peer_subtree_list_objects (PeerSubtree     *self,
                            PeerConnection  *caller,
                            GVariantBuilder *builder)
{
  g_auto(GStrv) nodes = NULL;

  if (self->object_path == NULL)
    return;
  nodes = self->enumerate (self, caller, self->user_data);
  for (guint i = 0; nodes != NULL && nodes[i] != NULL; i++)
    {
      g_autofree char *child_path = g_build_path ("/", self->object_path, nodes[i], NULL);
      g_autoptr(GVariant) child = dup_child (self, caller, nodes[i], child_path);

      if (child != NULL)
        g_variant_builder_add (builder, "{o@a{sa{sv}}}", child_path, child);
    }
}

void
peer_subtree_object_added (PeerSubtree *self,
                           const char  *node)
{
  g_autofree char *child_path = NULL;
  g_autoptr(GVariant) child = NULL;

  g_return_if_fail (PEER_IS_SUBTREE (self));
  g_return_if_fail (node != NULL);

  if (self->notify == NULL)
    return;
  child_path = g_build_path ("/", self->object_path, node, NULL);
  child = dup_child (self, NULL, node, child_path);
  if (child == NULL)
    {
      g_debug ("libpeer: subtree %s has no child %s to announce", self->object_path, node);
      return;
    }
  self->notify (self->registry, child_path, child, NULL);
}

void
peer_subtree_object_removed (PeerSubtree        *self,
                             const char         *node,
                             const char * const *interface_names)
{
  g_autofree char *child_path = NULL;
  g_autoptr(GPtrArray) interfaces = NULL;
  g_autoptr(GPtrArray) names = NULL;

  g_return_if_fail (PEER_IS_SUBTREE (self));
  g_return_if_fail (node != NULL);

  if (self->notify == NULL)
    return;
  child_path = g_build_path ("/", self->object_path, node, NULL);
  if (interface_names == NULL)
    {
      /* The names belong to the interfaces' info: @interfaces keeps them
       * until the announcement is made. */
      interfaces = lookup_node (self, NULL, node);
      if (interfaces == NULL)
        {
          g_debug ("libpeer: subtree %s has no child %s to announce gone", self->object_path, node);
          return;
        }
      names = g_ptr_array_new ();
      for (guint i = 0; i < interfaces->len; i++)
        g_ptr_array_add (names, peer_interface_get_info (g_ptr_array_index (interfaces, i))->name);
      g_ptr_array_add (names, NULL);
      interface_names = (const char * const *) names->pdata;
    }
  self->notify (self->registry, child_path, NULL, interface_names);
}

/* --- GDBus's side ------------------------------------------------------- */

/* One per peer connection the subtree is registered on; freed by GDBus
 * once nothing of the registration can run any more. */
typedef struct {
  PeerSubtree *subtree;                 /* owned */
  GWeakRef peer;                        /* PeerConnection */
} SubtreeLink;

static void
subtree_link_free (gpointer data)
{
  SubtreeLink *link = data;

  g_weak_ref_clear (&link->peer);
  g_object_unref (link->subtree);
  g_free (link);
}

/* The child @object_path names below the subtree, or NULL. */
static const char *
child_node (PeerSubtree *self,
            const char  *object_path)
{
  gsize length;

  if (self->object_path == NULL)
    return NULL;
  length = strlen (self->object_path);
  if (strncmp (object_path, self->object_path, length) != 0)
    return NULL;
  /* A subtree at / has children at /node. */
  if (length > 1)
    {
      if (object_path[length] != '/')
        return NULL;
      length++;
    }
  else if (object_path[0] != '/')
    return NULL;
  return strchr (object_path + length, '/') == NULL ? object_path + length : NULL;
}

static char **
on_subtree_enumerate (GDBusConnection *connection,
                      const char      *sender,
                      const char      *object_path,
                      gpointer         user_data)
{
  SubtreeLink *link = user_data;
  g_autoptr(PeerConnection) peer = g_weak_ref_get (&link->peer);
  g_auto(GStrv) nodes = NULL;
  GPtrArray *valid = g_ptr_array_new ();

  if (peer != NULL && link->subtree->object_path != NULL)
    nodes = link->subtree->enumerate (link->subtree, peer, link->subtree->user_data);
  for (guint i = 0; nodes != NULL && nodes[i] != NULL; i++)
    if (is_node_name (nodes[i]))
      g_ptr_array_add (valid, g_strdup (nodes[i]));
    else
      g_debug ("libpeer: subtree %s lists '%s', which is not a node name", object_path, nodes[i]);
  g_ptr_array_add (valid, NULL);
  return (char **) g_ptr_array_free (valid, FALSE);
}

static GDBusInterfaceInfo **
on_subtree_introspect (GDBusConnection *connection,
                       const char      *sender,
                       const char      *object_path,
                       const char      *node,
                       gpointer         user_data)
{
  SubtreeLink *link = user_data;
  g_autoptr(PeerConnection) peer = g_weak_ref_get (&link->peer);
  g_autoptr(GPtrArray) interfaces = NULL;
  GPtrArray *infos;

  /* The subtree's own path has no interfaces of its own. */
  if (node == NULL || peer == NULL || link->subtree->object_path == NULL)
    return NULL;
  interfaces = lookup_node (link->subtree, peer, node);
  if (interfaces == NULL)
    return NULL;
  infos = g_ptr_array_new ();
  for (guint i = 0; i < interfaces->len; i++)
    g_ptr_array_add (infos, g_dbus_interface_info_ref (peer_interface_get_info (g_ptr_array_index (interfaces, i))));
  g_ptr_array_add (infos, NULL);
  return (GDBusInterfaceInfo **) g_ptr_array_free (infos, FALSE);
}

/* The interface a call to a child is for, and the peer it comes from
 * ((transfer full) both); NULL with @error when the child or its peer
 * has gone since GDBus looked it up for this call. */
static PeerInterface *
resolve_child (SubtreeLink     *link,
               const char      *object_path,
               const char      *interface_name,
               PeerConnection **out_peer,
               GError         **error)
{
  g_autoptr(PeerConnection) peer = g_weak_ref_get (&link->peer);
  const char *node = child_node (link->subtree, object_path);
  PeerInterface *iface = NULL;

  if (peer != NULL && node != NULL)
    iface = _peer_subtree_lookup_interface (link->subtree, peer, node, interface_name);
  if (iface == NULL)
    {
      g_set_error (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT,
                   "No object %s with interface %s", object_path, interface_name);
      return NULL;
    }
  *out_peer = g_steal_pointer (&peer);
  return iface;
}

static void
on_child_method_call (GDBusConnection       *connection,
                      const char            *sender,
                      const char            *object_path,
                      const char            *interface_name,
                      const char            *method_name,
                      GVariant              *parameters,
                      GDBusMethodInvocation *invocation,
                      gpointer               user_data)
{
  g_autoptr(PeerConnection) peer = NULL;
  g_autoptr(PeerInterface) iface = NULL;
  GError *error = NULL;

  iface = resolve_child (user_data, object_path, interface_name, &peer, &error);
  if (iface == NULL)
    g_dbus_method_invocation_take_error (invocation, error);
  else
    _peer_connection_dispatch_invocation (peer, iface, object_path, invocation);
}

static GVariant *
on_child_get_property (GDBusConnection *connection,
                       const char      *sender,
                       const char      *object_path,
                       const char      *interface_name,
                       const char      *property_name,
                       GError         **error,
                       gpointer         user_data)
{
  g_autoptr(PeerConnection) peer = NULL;
  g_autoptr(PeerInterface) iface = resolve_child (user_data, object_path, interface_name, &peer, error);

  return iface != NULL ? _peer_interface_get_property (iface, peer, object_path, property_name, error) : NULL;
}

static gboolean
on_child_set_property (GDBusConnection *connection,
                       const char      *sender,
                       const char      *object_path,
                       const char      *interface_name,
                       const char      *property_name,
                       GVariant        *value,
                       GError         **error,
                       gpointer         user_data)
{
  g_autoptr(PeerConnection) peer = NULL;
  g_autoptr(PeerInterface) iface = resolve_child (user_data, object_path, interface_name, &peer, error);

  return iface != NULL &&
         _peer_interface_set_property_from_peer (iface, peer, object_path, property_name, value, error);
}

static const GDBusInterfaceVTable child_vtable = {
  on_child_method_call,
  on_child_get_property,
  on_child_set_property,
  { 0 }
};

static const GDBusInterfaceVTable *
on_subtree_dispatch (GDBusConnection *connection,
                     const char      *sender,
                     const char      *object_path,
                     const char      *interface_name,
                     const char      *node,
                     gpointer        *out_user_data,
                     gpointer         user_data)
{
  SubtreeLink *link = user_data;
  g_autoptr(PeerConnection) peer = g_weak_ref_get (&link->peer);
  g_autoptr(PeerInterface) iface = NULL;

  if (node == NULL || peer == NULL || link->subtree->object_path == NULL)
    return NULL;
  iface = _peer_subtree_lookup_interface (link->subtree, peer, node, interface_name);
  if (iface == NULL)
    return NULL;
  /* The interface is looked up again when the call runs (it may be gone
   * by then): only the link is handed on. */
  *out_user_data = link;
  return &child_vtable;
}

static const GDBusSubtreeVTable subtree_vtable = {
  on_subtree_enumerate,
  on_subtree_introspect,
  on_subtree_dispatch,
  { 0 }
};

guint
_peer_subtree_register (PeerSubtree    *self,
                        PeerConnection *peer,
                        GError        **error)
{
  SubtreeLink *link = g_new0 (SubtreeLink, 1);

  link->subtree = g_object_ref (self);
  g_weak_ref_init (&link->peer, peer);
  /* Unenumerated nodes too: the lookup, not the listing, says whether a
   * child exists, and listing every child for each call would cost more. */
  return g_dbus_connection_register_subtree (peer_connection_get_dbus_connection (peer), self->object_path,
                                             &subtree_vtable, G_DBUS_SUBTREE_FLAGS_DISPATCH_TO_UNENUMERATED_NODES,
                                             link, subtree_link_free, error);
}
