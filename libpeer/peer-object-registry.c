/* peer-object-registry.c: what a PeerServer serves, and where: see
 * peer-object-registry-private.h.
 *
 * Every kind of object is registered with GDBus on each peer's own
 * connection, so that GDBus answers Introspect, Properties and Peer for
 * all of them alike, and every message still takes the router's path (its
 * filter sees them before GDBus does). The PeerConnection keeps the
 * registrations and drops them when the peer goes.
 *
 * A transport that is not the peer's GDBus connection (a lane) reaches
 * the same objects by name through _peer_object_registry_call(), which
 * finds what GDBus would dispatch to and serves it with the code GDBus's
 * callbacks call, leaving to GDBus whatever GDBus answers by itself.
 */
#include "config.h"

#include <string.h>

#include "peer-connection-private.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-object-manager-private.h"
#include "peer-object-registry-private.h"
#include "peer-subtree-private.h"

typedef struct {
  char *path;
  PeerInterface *iface;
  gboolean builtin;
} Export;

typedef struct {
  char *path;
  PeerSubtree *subtree;
} SubtreeExport;

typedef struct {
  char *path;
  GDBusInterfaceSkeleton *skeleton;
} SkeletonExport;

struct _PeerObjectRegistry
{
  PeerRouter *router;                   /* owned */
  GPtrArray *exports;                   /* Export*, in export order */
  GPtrArray *subtrees;                  /* SubtreeExport* */
  GPtrArray *skeletons;                 /* SkeletonExport* */
  GPtrArray *manager_paths;             /* char* */
  PeerInterface *manager;               /* serves every manager path; NULL until the first */
};

static void
export_free (Export *export)
{
  g_free (export->path);
  g_object_unref (export->iface);
  g_free (export);
}

static void
subtree_export_free (SubtreeExport *export)
{
  g_free (export->path);
  g_object_unref (export->subtree);
  g_free (export);
}

static void
skeleton_export_free (SkeletonExport *export)
{
  g_free (export->path);
  g_object_unref (export->skeleton);
  g_free (export);
}

PeerObjectRegistry *
_peer_object_registry_new (PeerRouter *router)
{
  PeerObjectRegistry *registry = g_new0 (PeerObjectRegistry, 1);

  registry->router = _peer_router_ref (router);
  registry->exports = g_ptr_array_new_with_free_func ((GDestroyNotify) export_free);
  registry->subtrees = g_ptr_array_new_with_free_func ((GDestroyNotify) subtree_export_free);
  registry->skeletons = g_ptr_array_new_with_free_func ((GDestroyNotify) skeleton_export_free);
  registry->manager_paths = g_ptr_array_new_with_free_func (g_free);
  return registry;
}

void
_peer_object_registry_free (PeerObjectRegistry *registry)
{
  if (registry == NULL)
    return;
  while (registry->subtrees->len > 0)
    _peer_object_registry_unexport_subtree (registry, ((SubtreeExport *) g_ptr_array_index (registry->subtrees, 0))->subtree);
  while (registry->skeletons->len > 0)
    _peer_object_registry_unexport_skeleton (registry, ((SkeletonExport *) g_ptr_array_index (registry->skeletons, 0))->skeleton);
  /* No announcements while everything goes. */
  g_ptr_array_set_size (registry->manager_paths, 0);
  while (registry->exports->len > 0)
    {
      Export *export = g_ptr_array_index (registry->exports, registry->exports->len - 1);
      /* A copy: unexporting frees @export, and goes on comparing the
       * path with those of the same interface's other exports. */
      g_autofree char *path = g_strdup (export->path);

      _peer_object_registry_unexport (registry, path, export->iface);
    }
  if (registry->manager != NULL)
    _peer_object_manager_detach (registry->manager);
  g_clear_object (&registry->manager);
  g_ptr_array_unref (registry->exports);
  g_ptr_array_unref (registry->subtrees);
  g_ptr_array_unref (registry->skeletons);
  g_ptr_array_unref (registry->manager_paths);
  _peer_router_unref (registry->router);
  g_free (registry);
}

/* --- ObjectManager announcements --------------------------------------- */

/* Any thread: the interface's signals and PropertiesChanged leave through
 * the router. */
static gboolean
router_emit (gpointer        router,
             PeerConnection *destination,
             const char     *object_path,
             const char     *interface_name,
             const char     *signal_name,
             GVariant       *parameters,
             GError        **error)
{
  return _peer_router_emit_signal (router, destination, object_path, interface_name, signal_name,
                                   parameters, error);
}

static gboolean
bind_interface (PeerObjectRegistry *registry,
                PeerInterface      *iface,
                const char         *object_path,
                GError            **error)
{
  return _peer_interface_bind (iface, router_emit, registry->router, (GBoxedCopyFunc) _peer_router_ref,
                               (GDestroyNotify) _peer_router_unref, object_path, error);
}

/* What an object that came (@interfaces, a{sa{sv}}) or went (@removed)
 * means to each manager above it. */
static void
announce (gpointer            data,
          const char         *object_path,
          GVariant           *interfaces,
          const char * const *removed)
{
  PeerObjectRegistry *registry = data;

  for (guint i = 0; i < registry->manager_paths->len; i++)
    {
      const char *manager_path = g_ptr_array_index (registry->manager_paths, i);

      if (!_peer_object_manager_manages (manager_path, object_path))
        continue;
      if (interfaces != NULL)
        _peer_object_manager_emit_added (registry->manager, manager_path, object_path, interfaces);
      else
        _peer_object_manager_emit_removed (registry->manager, manager_path, object_path, removed);
    }
}

static gboolean
anyone_manages (PeerObjectRegistry *registry,
                const char         *object_path)
{
  for (guint i = 0; i < registry->manager_paths->len; i++)
    if (_peer_object_manager_manages (g_ptr_array_index (registry->manager_paths, i), object_path))
      return TRUE;
  return FALSE;
}

static void
announce_one (PeerObjectRegistry *registry,
              const char         *object_path,
              const char         *interface_name,
              GVariant           *properties)
{
  g_autoptr(GVariant) interfaces = NULL;
  GVariantBuilder builder;

  if (properties == NULL)
    {
      const char *names[] = { interface_name, NULL };

      announce (registry, object_path, NULL, names);
      return;
    }
  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{sa{sv}}"));
  g_variant_builder_add (&builder, "{s@a{sv}}", interface_name, properties);
  interfaces = g_variant_ref_sink (g_variant_builder_end (&builder));
  announce (registry, object_path, interfaces, NULL);
}

/* (transfer full) a skeleton's properties, a{sv} */
static GVariant *
dup_skeleton_properties (GDBusInterfaceSkeleton *skeleton)
{
  GVariant *properties = g_dbus_interface_skeleton_get_properties (skeleton);

  /* Floating or not, depending on who implemented it: one reference. */
  return g_variant_take_ref (properties);
}

/* --- GetManagedObjects --------------------------------------------------- */

typedef struct {
  GHashTable *by_path;                  /* path → GVariantBuilder* (a{sa{sv}}) */
  GPtrArray *order;                     /* paths, as first seen */
} ObjectList;

static void
object_list_add (ObjectList *list,
                 const char *path,
                 const char *interface_name,
                 GVariant   *properties)
{
  GVariantBuilder *builder = g_hash_table_lookup (list->by_path, path);

  if (builder == NULL)
    {
      char *key = g_strdup (path);

      builder = g_variant_builder_new (G_VARIANT_TYPE ("a{sa{sv}}"));
      g_hash_table_insert (list->by_path, key, builder);
      g_ptr_array_add (list->order, key);
    }
  g_variant_builder_add (builder, "{s@a{sv}}", interface_name, properties);
}

static void
list_objects (gpointer         data,
              PeerConnection  *caller,
              const char      *manager_path,
              GVariantBuilder *objects)
{
  PeerObjectRegistry *registry = data;
  ObjectList list;

  list.by_path = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_variant_builder_unref);
  list.order = g_ptr_array_new ();

  for (guint i = 0; i < registry->exports->len; i++)
    {
      Export *export = g_ptr_array_index (registry->exports, i);
      g_autoptr(GVariant) properties = NULL;

      if (export->builtin || !_peer_object_manager_manages (manager_path, export->path))
        continue;
      properties = _peer_interface_dup_all_properties (export->iface, caller, export->path);
      object_list_add (&list, export->path, peer_interface_get_info (export->iface)->name, properties);
    }
  for (guint i = 0; i < registry->skeletons->len; i++)
    {
      SkeletonExport *export = g_ptr_array_index (registry->skeletons, i);
      g_autoptr(GVariant) properties = NULL;

      if (!_peer_object_manager_manages (manager_path, export->path))
        continue;
      properties = dup_skeleton_properties (export->skeleton);
      object_list_add (&list, export->path, g_dbus_interface_skeleton_get_info (export->skeleton)->name,
                       properties);
    }
  for (guint i = 0; i < registry->subtrees->len; i++)
    {
      SubtreeExport *export = g_ptr_array_index (registry->subtrees, i);
      g_autoptr(GVariant) children = NULL;
      GVariantBuilder builder;
      GVariantIter iter;
      const char *path;
      GVariant *interfaces;

      /* Children of a subtree at the manager's own path are below it. */
      if (!g_str_equal (manager_path, export->path) &&
          !_peer_object_manager_manages (manager_path, export->path))
        continue;
      g_variant_builder_init (&builder, G_VARIANT_TYPE ("a{oa{sa{sv}}}"));
      _peer_subtree_list_objects (export->subtree, caller, &builder);
      children = g_variant_ref_sink (g_variant_builder_end (&builder));
      g_variant_iter_init (&iter, children);
      while (g_variant_iter_next (&iter, "{&o@a{sa{sv}}}", &path, &interfaces))
        {
          GVariantIter ifaces;
          const char *name;
          GVariant *properties;

          g_variant_iter_init (&ifaces, interfaces);
          while (g_variant_iter_next (&ifaces, "{&s@a{sv}}", &name, &properties))
            {
              object_list_add (&list, path, name, properties);
              g_variant_unref (properties);
            }
          g_variant_unref (interfaces);
        }
    }

  for (guint i = 0; i < list.order->len; i++)
    {
      const char *path = g_ptr_array_index (list.order, i);

      g_variant_builder_add (objects, "{o@a{sa{sv}}}", path,
                             g_variant_builder_end (g_hash_table_lookup (list.by_path, path)));
    }
  g_ptr_array_unref (list.order);
  g_hash_table_unref (list.by_path);
}

/* --- peers --------------------------------------------------------------- */

typedef gboolean (*RegisterFunc) (PeerConnection *peer,
                                  gpointer        export,
                                  GError        **error);

static gboolean
register_export (PeerConnection *peer,
                 gpointer        data,
                 GError        **error)
{
  Export *export = data;

  return _peer_connection_export (peer, export->path, export->iface, error);
}

static gboolean
register_subtree (PeerConnection *peer,
                  gpointer        data,
                  GError        **error)
{
  SubtreeExport *export = data;
  guint id = _peer_subtree_register (export->subtree, peer, error);

  if (id == 0)
    return FALSE;
  _peer_connection_add_registration (peer, PEER_REGISTRATION_SUBTREE, export->subtree, export->path, id);
  return TRUE;
}

static gboolean
register_skeleton (PeerConnection *peer,
                   gpointer        data,
                   GError        **error)
{
  SkeletonExport *export = data;

  if (!g_dbus_interface_skeleton_export (export->skeleton, peer_connection_get_dbus_connection (peer),
                                         export->path, error))
    return FALSE;
  _peer_connection_add_registration (peer, PEER_REGISTRATION_SKELETON, export->skeleton, export->path, 0);
  return TRUE;
}

gboolean
_peer_object_registry_add_peer (PeerObjectRegistry *registry,
                                PeerConnection     *peer,
                                GError            **error)
{
  for (guint i = 0; i < registry->exports->len; i++)
    if (!register_export (peer, g_ptr_array_index (registry->exports, i), error))
      return FALSE;
  for (guint i = 0; i < registry->subtrees->len; i++)
    if (!register_subtree (peer, g_ptr_array_index (registry->subtrees, i), error))
      return FALSE;
  for (guint i = 0; i < registry->skeletons->len; i++)
    if (!register_skeleton (peer, g_ptr_array_index (registry->skeletons, i), error))
      return FALSE;
  return TRUE;
}

/* --- exports ------------------------------------------------------------- */

static gboolean
check_path (const char *object_path,
            GError    **error)
{
  if (object_path == NULL || !g_variant_is_object_path (object_path))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "'%s' is not a valid object path", object_path ? object_path : "(null)");
      return FALSE;
    }
  return TRUE;
}

/* Whether @interface_name is served at @object_path already. */
static gboolean
is_served (PeerObjectRegistry *registry,
           const char         *object_path,
           const char         *interface_name,
           GError            **error)
{
  for (guint i = 0; i < registry->exports->len; i++)
    {
      Export *other = g_ptr_array_index (registry->exports, i);

      if (g_str_equal (other->path, object_path) &&
          g_str_equal (peer_interface_get_info (other->iface)->name, interface_name))
        goto served;
    }
  for (guint i = 0; i < registry->skeletons->len; i++)
    {
      SkeletonExport *other = g_ptr_array_index (registry->skeletons, i);

      if (g_str_equal (other->path, object_path) &&
          g_str_equal (g_dbus_interface_skeleton_get_info (other->skeleton)->name, interface_name))
        goto served;
    }
  return FALSE;

served:
  g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
               "%s is already served at %s", interface_name, object_path);
  return TRUE;
}

static void
for_each_peer (PeerObjectRegistry *registry,
               RegisterFunc        func,
               gpointer            export,
               const char         *what)
{
  g_autoptr(GPtrArray) peers = _peer_router_dup_peers (registry->router);

  for (guint i = 0; i < peers->len; i++)
    {
      PeerConnection *peer = g_ptr_array_index (peers, i);
      g_autoptr(GError) error = NULL;

      if (!func (peer, export, &error))
        g_debug ("libpeer: cannot export %s on %s: %s", what,
                 peer_connection_get_unique_name (peer), error->message);
    }
}

gboolean
_peer_object_registry_export (PeerObjectRegistry *registry,
                              const char         *object_path,
                              PeerInterface      *iface,
                              gboolean            builtin,
                              GError            **error)
{
  GDBusInterfaceInfo *info = peer_interface_get_info (iface);
  Export *export;

  if (!check_path (object_path, error) ||
      is_served (registry, object_path, info->name, error) ||
      !bind_interface (registry, iface, object_path, error))
    return FALSE;
  export = g_new0 (Export, 1);
  export->path = g_strdup (object_path);
  export->iface = g_object_ref (iface);
  export->builtin = builtin;
  g_ptr_array_add (registry->exports, export);
  _peer_router_add_object (registry->router, object_path, iface);
  for_each_peer (registry, register_export, export, object_path);

  if (!builtin && anyone_manages (registry, object_path))
    {
      g_autoptr(GVariant) properties = _peer_interface_dup_all_properties (iface, NULL, object_path);

      announce_one (registry, object_path, info->name, properties);
    }
  return TRUE;
}

gboolean
_peer_object_registry_unexport (PeerObjectRegistry *registry,
                                const char         *object_path,
                                PeerInterface      *iface)
{
  gboolean found = FALSE;

  for (guint i = registry->exports->len; i > 0; i--)
    {
      Export *export = g_ptr_array_index (registry->exports, i - 1);
      g_autoptr(GPtrArray) peers = NULL;

      if (export->iface != iface || (object_path != NULL && !g_str_equal (export->path, object_path)))
        continue;
      found = TRUE;
      g_ptr_array_steal_index (registry->exports, i - 1);
      _peer_router_remove_object (registry->router, export->path, iface);
      peers = _peer_router_dup_peers (registry->router);
      for (guint k = 0; k < peers->len; k++)
        _peer_connection_unexport (g_ptr_array_index (peers, k), export->path, iface);
      _peer_interface_unbind (iface, export->path);
      if (!export->builtin && anyone_manages (registry, export->path))
        announce_one (registry, export->path, peer_interface_get_info (iface)->name, NULL);
      export_free (export);
    }
  return found;
}

/* --- subtrees ------------------------------------------------------------ */

gboolean
_peer_object_registry_export_subtree (PeerObjectRegistry *registry,
                                      const char         *object_path,
                                      PeerSubtree        *subtree,
                                      GError            **error)
{
  GPtrArray *interfaces = _peer_subtree_get_interfaces (subtree);
  SubtreeExport *export;

  if (!check_path (object_path, error))
    return FALSE;
  for (guint i = 0; i < registry->subtrees->len; i++)
    if (g_str_equal (((SubtreeExport *) g_ptr_array_index (registry->subtrees, i))->path, object_path))
      {
        g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                     "A subtree is already exported at %s", object_path);
        return FALSE;
      }
  if (!_peer_subtree_bind (subtree, object_path, announce, registry, error))
    return FALSE;
  for (guint i = 0; i < interfaces->len; i++)
    if (!bind_interface (registry, g_ptr_array_index (interfaces, i), NULL, error))
      {
        while (i-- > 0)
          _peer_interface_unbind (g_ptr_array_index (interfaces, i), NULL);
        _peer_subtree_unbind (subtree);
        return FALSE;
      }
  export = g_new0 (SubtreeExport, 1);
  export->path = g_strdup (object_path);
  export->subtree = g_object_ref (subtree);
  g_ptr_array_add (registry->subtrees, export);
  for_each_peer (registry, register_subtree, export, object_path);
  return TRUE;
}

gboolean
_peer_object_registry_unexport_subtree (PeerObjectRegistry *registry,
                                        PeerSubtree        *subtree)
{
  for (guint i = 0; i < registry->subtrees->len; i++)
    {
      SubtreeExport *export = g_ptr_array_index (registry->subtrees, i);
      g_autoptr(GPtrArray) peers = NULL;
      GPtrArray *interfaces;

      if (export->subtree != subtree)
        continue;
      g_ptr_array_steal_index (registry->subtrees, i);
      peers = _peer_router_dup_peers (registry->router);
      for (guint k = 0; k < peers->len; k++)
        _peer_connection_remove_registration (g_ptr_array_index (peers, k), subtree, NULL);
      interfaces = _peer_subtree_get_interfaces (subtree);
      for (guint k = 0; k < interfaces->len; k++)
        _peer_interface_unbind (g_ptr_array_index (interfaces, k), NULL);
      _peer_subtree_unbind (subtree);
      subtree_export_free (export);
      return TRUE;
    }
  return FALSE;
}

/* --- skeletons ----------------------------------------------------------- */

gboolean
_peer_object_registry_export_skeleton (PeerObjectRegistry     *registry,
                                       const char             *object_path,
                                       GDBusInterfaceSkeleton *skeleton,
                                       GError                **error)
{
  GDBusInterfaceInfo *info = g_dbus_interface_skeleton_get_info (skeleton);
  SkeletonExport *export;

  if (!check_path (object_path, error) || is_served (registry, object_path, info->name, error))
    return FALSE;
  for (guint i = 0; i < registry->skeletons->len; i++)
    if (((SkeletonExport *) g_ptr_array_index (registry->skeletons, i))->skeleton == skeleton)
      {
        g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                     "The skeleton of %s is already exported", info->name);
        return FALSE;
      }
  export = g_new0 (SkeletonExport, 1);
  export->path = g_strdup (object_path);
  export->skeleton = g_object_ref (skeleton);
  g_ptr_array_add (registry->skeletons, export);
  for_each_peer (registry, register_skeleton, export, object_path);

  if (anyone_manages (registry, object_path))
    {
      g_autoptr(GVariant) properties = dup_skeleton_properties (skeleton);

      announce_one (registry, object_path, info->name, properties);
    }
  return TRUE;
}

gboolean
_peer_object_registry_unexport_skeleton (PeerObjectRegistry     *registry,
                                         GDBusInterfaceSkeleton *skeleton)
{
  for (guint i = 0; i < registry->skeletons->len; i++)
    {
      SkeletonExport *export = g_ptr_array_index (registry->skeletons, i);
      g_autoptr(GPtrArray) peers = NULL;

      if (export->skeleton != skeleton)
        continue;
      g_ptr_array_steal_index (registry->skeletons, i);
      peers = _peer_router_dup_peers (registry->router);
      for (guint k = 0; k < peers->len; k++)
        _peer_connection_remove_registration (g_ptr_array_index (peers, k), skeleton, NULL);
      if (anyone_manages (registry, export->path))
        announce_one (registry, export->path, g_dbus_interface_skeleton_get_info (skeleton)->name, NULL);
      skeleton_export_free (export);
      return TRUE;
    }
  return FALSE;
}

/* --- managers ------------------------------------------------------------ */

gboolean
_peer_object_registry_add_manager (PeerObjectRegistry *registry,
                                   const char         *object_path,
                                   GError            **error)
{
  if (!check_path (object_path, error))
    return FALSE;
  if (registry->manager == NULL)
    registry->manager = _peer_object_manager_new (list_objects, registry);
  /* Builtin: a manager does not list itself, nor another manager. */
  if (!_peer_object_registry_export (registry, object_path, registry->manager, TRUE, error))
    return FALSE;
  g_ptr_array_add (registry->manager_paths, g_strdup (object_path));
  return TRUE;
}

gboolean
_peer_object_registry_remove_manager (PeerObjectRegistry *registry,
                                      const char         *object_path)
{
  for (guint i = 0; i < registry->manager_paths->len; i++)
    if (g_str_equal (g_ptr_array_index (registry->manager_paths, i), object_path))
      {
        g_ptr_array_remove_index (registry->manager_paths, i);
        _peer_object_registry_unexport (registry, object_path, registry->manager);
        return TRUE;
      }
  return FALSE;
}

/* --- calls by name --------------------------------------------------------- */

#define PROPERTIES_INTERFACE "org.freedesktop.DBus.Properties"

/* What @caller's GDBus connection dispatches @interface_name at
 * @object_path to, found in GDBus's order: an object registered at the
 * path (an export or a skeleton); else, unless the call is to the
 * Properties interface of a path that has objects (GDBus answers those
 * "No such interface" there), a subtree exported at the path (which
 * claims its own path and has no interfaces there) or the child of one
 * exported one level up (never below /: GDBus looks for a subtree at the
 * parent only when the parent is not the root). FALSE when none is
 * libpeer's to serve; else *out_iface or *out_skeleton (transfer full). */
static gboolean
find_target (PeerObjectRegistry      *registry,
             PeerConnection          *caller,
             const char              *object_path,
             const char              *interface_name,
             gboolean                 properties,
             PeerInterface          **out_iface,
             GDBusInterfaceSkeleton **out_skeleton)
{
  g_autofree char *parent = NULL;
  gboolean object_here = FALSE;
  const char *node;

  *out_iface = NULL;
  *out_skeleton = NULL;
  for (guint i = 0; i < registry->exports->len; i++)
    {
      Export *export = g_ptr_array_index (registry->exports, i);

      if (!g_str_equal (export->path, object_path))
        continue;
      object_here = TRUE;
      if (!g_str_equal (peer_interface_get_info (export->iface)->name, interface_name))
        continue;
      /* The server's own (the bus driver, the lane, the wire) belong to
       * the connection; an ObjectManager is served like any interface. */
      if (export->builtin && export->iface != registry->manager)
        return FALSE;
      *out_iface = g_object_ref (export->iface);
      return TRUE;
    }
  for (guint i = 0; i < registry->skeletons->len; i++)
    {
      SkeletonExport *export = g_ptr_array_index (registry->skeletons, i);

      if (!g_str_equal (export->path, object_path))
        continue;
      object_here = TRUE;
      if (g_str_equal (g_dbus_interface_skeleton_get_info (export->skeleton)->name, interface_name))
        {
          *out_skeleton = g_object_ref (export->skeleton);
          return TRUE;
        }
    }
  if (properties && object_here)
    return FALSE;
  for (guint i = 0; i < registry->subtrees->len; i++)
    if (g_str_equal (((SubtreeExport *) g_ptr_array_index (registry->subtrees, i))->path, object_path))
      return FALSE;
  node = strrchr (object_path, '/');
  if (node == NULL || node == object_path)
    return FALSE;
  parent = g_strndup (object_path, node - object_path);
  for (guint i = 0; i < registry->subtrees->len; i++)
    {
      SubtreeExport *export = g_ptr_array_index (registry->subtrees, i);

      if (g_str_equal (export->path, parent))
        {
          *out_iface = _peer_subtree_lookup_interface (export->subtree, caller, node + 1, interface_name);
          return *out_iface != NULL;
        }
    }
  return FALSE;
}

/* GetAll of a skeleton, as GDBus makes it: every readable property its
 * getter gives a value, the others left out. (transfer full) a{sv} */
static GVariant *
dup_skeleton_properties_for (GDBusInterfaceSkeleton *skeleton,
                             PeerConnection         *caller,
                             const char             *object_path)
{
  GDBusInterfaceInfo *info = g_dbus_interface_skeleton_get_info (skeleton);
  GDBusInterfaceVTable *vtable = g_dbus_interface_skeleton_get_vtable (skeleton);
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  for (guint i = 0; info->properties != NULL && info->properties[i] != NULL; i++)
    {
      GDBusPropertyInfo *prop = info->properties[i];
      GVariant *value;

      if (!(prop->flags & G_DBUS_PROPERTY_INFO_FLAGS_READABLE))
        continue;
      value = vtable->get_property (peer_connection_get_dbus_connection (caller), NULL, object_path,
                                    info->name, prop->name, NULL, skeleton);
      if (value == NULL)
        continue;
      g_variant_take_ref (value);
      g_variant_builder_add (&builder, "{sv}", prop->name, value);
      g_variant_unref (value);
    }
  return g_variant_ref_sink (g_variant_builder_end (&builder));
}

static gboolean
has_readable_properties (GDBusInterfaceInfo *info)
{
  for (guint i = 0; info->properties != NULL && info->properties[i] != NULL; i++)
    if (info->properties[i]->flags & G_DBUS_PROPERTY_INFO_FLAGS_READABLE)
      return TRUE;
  return FALSE;
}

/* org.freedesktop.DBus.Properties: served when GDBus would hand it to
 * the interface's property callbacks (peer-connection-calls.c's and
 * peer-subtree.c's, which call the functions called here, or the
 * skeleton's), and only then. */
static PeerObjectCall
call_properties (PeerObjectRegistry *registry,
                 PeerConnection     *caller,
                 const char         *object_path,
                 const char         *member,
                 GVariant           *parameters,
                 GVariant          **out_reply,
                 GError            **out_error)
{
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GDBusInterfaceSkeleton) skeleton = NULL;
  g_autoptr(GVariant) value = NULL;
  const char *interface_name, *property_name = NULL;
  GDBusInterfaceVTable *vtable = NULL;
  GDBusInterfaceInfo *info;
  GDBusPropertyInfo *prop;

  const char *signature = g_variant_get_type_string (parameters);
  g_autoptr(GVariant) interface_arg = NULL;
  g_autoptr(GVariant) property_arg = NULL;

  /* The signatures GDBus answers these to; the arguments read without a
   * format string, which GLib would parse each time. */
  if (!(g_str_equal (member, "Get") && g_str_equal (signature, "(ss)")) &&
      !(g_str_equal (member, "Set") && g_str_equal (signature, "(ssv)")) &&
      !(g_str_equal (member, "GetAll") && g_str_equal (signature, "(s)")))
    return PEER_OBJECT_CALL_NOT_SERVED;
  interface_arg = g_variant_get_child_value (parameters, 0);
  interface_name = g_variant_get_string (interface_arg, NULL);
  if (signature[2] == 's')
    {
      property_arg = g_variant_get_child_value (parameters, 1);
      property_name = g_variant_get_string (property_arg, NULL);
    }
  if (signature[3] == 'v')
    {
      g_autoptr(GVariant) boxed = g_variant_get_child_value (parameters, 2);

      value = g_variant_get_variant (boxed);
    }
  if (!find_target (registry, caller, object_path, interface_name, TRUE, &iface, &skeleton))
    return PEER_OBJECT_CALL_NOT_SERVED;
  if (iface != NULL)
    info = peer_interface_get_info (iface);
  else
    {
      info = g_dbus_interface_skeleton_get_info (skeleton);
      vtable = g_dbus_interface_skeleton_get_vtable (skeleton);
    }

  if (property_name == NULL)
    {
      g_autoptr(GVariant) all = NULL;

      if (vtable != NULL && vtable->get_property == NULL && has_readable_properties (info))
        return PEER_OBJECT_CALL_NOT_SERVED;
      if (iface != NULL)
        all = _peer_interface_dup_all_properties (iface, caller, object_path);
      else if (vtable->get_property != NULL)
        all = dup_skeleton_properties_for (skeleton, caller, object_path);
      else
        all = g_variant_ref_sink (g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0));
      *out_reply = g_variant_ref_sink (g_variant_new_tuple (&all, 1));
      return PEER_OBJECT_CALL_ANSWERED;
    }

  /* GDBus's refusals (no such property, not readable or not writable,
   * the wrong type) are GDBus's to word. */
  prop = g_dbus_interface_info_lookup_property (info, property_name);
  if (prop == NULL ||
      !(prop->flags & (value == NULL ? G_DBUS_PROPERTY_INFO_FLAGS_READABLE : G_DBUS_PROPERTY_INFO_FLAGS_WRITABLE)) ||
      (value != NULL && !g_str_equal (g_variant_get_type_string (value), prop->signature)))
    return PEER_OBJECT_CALL_NOT_SERVED;
  if (vtable != NULL && (value == NULL ? vtable->get_property == NULL : vtable->set_property == NULL))
    return PEER_OBJECT_CALL_NOT_SERVED;

  if (value == NULL)
    {
      GVariant *got;

      if (iface != NULL)
        got = _peer_interface_get_property (iface, caller, object_path, property_name, out_error);
      else
        got = vtable->get_property (peer_connection_get_dbus_connection (caller), NULL, object_path,
                                    info->name, property_name, out_error, skeleton);
      if (got == NULL)
        {
          if (out_error != NULL && *out_error == NULL)
            g_set_error (out_error, G_DBUS_ERROR, G_DBUS_ERROR_FAILED,
                         "Property %s.%s has no value", info->name, property_name);
          return PEER_OBJECT_CALL_ANSWERED;
        }
      {
        GVariant *boxed = g_variant_new_variant (g_variant_take_ref (got));

        *out_reply = g_variant_ref_sink (g_variant_new_tuple (&boxed, 1));
      }
      g_variant_unref (got);
      return PEER_OBJECT_CALL_ANSWERED;
    }

  if (iface != NULL ? _peer_interface_set_property_from_peer (iface, caller, object_path, property_name, value,
                                                              out_error)
                    : vtable->set_property (peer_connection_get_dbus_connection (caller), NULL, object_path,
                                            info->name, property_name, value, out_error, skeleton))
    *out_reply = g_variant_ref_sink (g_variant_new_tuple (NULL, 0));
  else if (out_error != NULL && *out_error == NULL)
    g_set_error (out_error, G_DBUS_ERROR, G_DBUS_ERROR_FAILED, "Setting %s.%s failed", info->name, property_name);
  return PEER_OBJECT_CALL_ANSWERED;
}

PeerObjectCall
_peer_object_registry_call (PeerObjectRegistry *registry,
                            PeerConnection     *caller,
                            const char         *object_path,
                            const char         *interface_name,
                            const char         *member,
                            GVariant           *parameters,
                            PeerInterface     **out_iface,
                            guint              *out_index,
                            GVariant          **out_reply,
                            GError            **out_error)
{
  g_autoptr(PeerInterface) iface = NULL;
  g_autoptr(GDBusInterfaceSkeleton) skeleton = NULL;
  GDBusMethodInfo *method;

  if (g_str_equal (interface_name, PROPERTIES_INTERFACE))
    return call_properties (registry, caller, object_path, member, parameters, out_reply, out_error);
  /* A skeleton's methods take a GDBusMethodInvocation, which only GDBus
   * makes (GLib has no public constructor for one). */
  if (!find_target (registry, caller, object_path, interface_name, FALSE, &iface, &skeleton) || iface == NULL)
    return PEER_OBJECT_CALL_NOT_SERVED;
  method = g_dbus_interface_info_lookup_method (peer_interface_get_info (iface), member);
  if (method == NULL || !_peer_interface_lookup_method (iface, method, out_index) ||
      !_peer_interface_check_arguments (iface, *out_index, parameters))
    return PEER_OBJECT_CALL_NOT_SERVED;
  *out_iface = g_steal_pointer (&iface);
  return PEER_OBJECT_CALL_METHOD;
}
