/* peer-interface.c: introspection data, method handlers and property values
 * of one interface, served at one or more object paths.
 *
 * Property values live in one shared store, unless an object was given
 * values of its own (peer_interface_set_object_property()): from then on
 * that object reads and writes its own store, and the shared one stands
 * in only for what it never set. */
#include "config.h"

#include "peer-call-private.h"
#include "peer-connection.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-wire-private.h"

typedef struct {
  PeerMethodFunc func;
  gpointer user_data;
  GDestroyNotify destroy;               /* of user_data: peer_interface_add_method() */
  PeerMethodFlags flags;
  GVariantType *reply_type;             /* the out args as a tuple, made once */
  char *in_signature;                   /* the in args as a tuple type string */
} MethodHandler;

struct _PeerInterface
{
  GObject parent_instance;

  GDBusInterfaceInfo *info;
  guint n_methods;
  MethodHandler *handlers;              /* one per info->methods[i]; set before export */

  PeerPropertyGetFunc get_func;       /* one of get_func and getter */
  PeerPropertyGetter getter;
  gpointer get_data;
  GDestroyNotify get_destroy;
  PeerPropertySetFunc set_func;       /* one of set_func and setter */
  PeerPropertySetter setter;
  gpointer set_data;
  GDestroyNotify set_destroy;
  gboolean property_data_shared;        /* set by peer_interface_set_property_funcs():
                                         * one user_data, destroyed as get_data */

  /* Set by _peer_interface_set_gobject_hooks() before export. */
  gboolean store_writes;                /* peers' writes are stored (FALSE: the
                                         * set func stores them itself) */

  GMutex lock;
  /* Protected by @lock */
  GHashTable *values;                   /* property name → GVariant: shared */
  GHashTable *object_values;            /* path → (name → GVariant): objects' own */
  /* Where signals go while bound: cleared by the last unbind. */
  PeerInterfaceEmitFunc emit;
  gpointer emitter;                     /* owned through emitter_ref */
  GBoxedCopyFunc emitter_ref;
  GDestroyNotify emitter_unref;
  guint n_bindings;
  GPtrArray *paths;                     /* char*: where exported, in export order */
};

G_DEFINE_FINAL_TYPE (PeerInterface, peer_interface, G_TYPE_OBJECT)

static void
clear_method_handler (MethodHandler *handler)
{
  GDestroyNotify destroy = handler->destroy;
  gpointer user_data = handler->user_data;

  handler->func = NULL;
  handler->user_data = NULL;
  handler->destroy = NULL;
  if (destroy != NULL)
    destroy (user_data);
}

static void
clear_property_get_func (PeerInterface *self)
{
  GDestroyNotify destroy = self->get_destroy;
  gpointer data = self->get_data;

  self->get_func = NULL;
  self->getter = NULL;
  self->get_data = NULL;
  self->get_destroy = NULL;
  if (destroy != NULL)
    destroy (data);
}

static void
clear_property_set_func (PeerInterface *self)
{
  GDestroyNotify destroy = self->set_destroy;
  gpointer data = self->set_data;

  self->set_func = NULL;
  self->setter = NULL;
  self->set_data = NULL;
  self->set_destroy = NULL;
  if (destroy != NULL)
    destroy (data);
}

static void
peer_interface_finalize (GObject *object)
{
  PeerInterface *self = PEER_INTERFACE (object);

  clear_property_get_func (self);
  clear_property_set_func (self);
  for (guint i = 0; i < self->n_methods; i++)
    {
      clear_method_handler (&self->handlers[i]);
      g_variant_type_free (self->handlers[i].reply_type);
      g_free (self->handlers[i].in_signature);
    }
  g_free (self->handlers);
  g_hash_table_unref (self->values);
  g_hash_table_unref (self->object_values);
  g_ptr_array_unref (self->paths);
  /* The cache is keyed by the info's address: an entry left behind would
   * be found again by a new info allocated at the same address. */
  g_dbus_interface_info_cache_release (self->info);
  g_dbus_interface_info_unref (self->info);
  g_mutex_clear (&self->lock);

  G_OBJECT_CLASS (peer_interface_parent_class)->finalize (object);
}

static void
peer_interface_class_init (PeerInterfaceClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = peer_interface_finalize;
}

static void
peer_interface_init (PeerInterface *self)
{
  g_mutex_init (&self->lock);
  self->values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_variant_unref);
  self->object_values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                               (GDestroyNotify) g_hash_table_unref);
  self->paths = g_ptr_array_new_with_free_func (g_free);
  self->store_writes = TRUE;
}

PeerInterface *
peer_interface_new (GDBusInterfaceInfo *info)
{
  PeerInterface *self;

  g_return_val_if_fail (info != NULL, NULL);
  g_return_val_if_fail (g_dbus_is_interface_name (info->name), NULL);

  self = g_object_new (PEER_TYPE_INTERFACE, NULL);
  self->info = g_dbus_interface_info_ref (info);
  /* The cache makes GDBus's own lookups (and ours) cheap. */
  g_dbus_interface_info_cache_build (info);
  while (info->methods != NULL && info->methods[self->n_methods] != NULL)
    self->n_methods++;
  self->handlers = g_new0 (MethodHandler, MAX (self->n_methods, 1));
  for (guint i = 0; i < self->n_methods; i++)
    {
      GDBusMethodInfo *method = info->methods[i];
      GString *in = g_string_new ("(");

      for (guint k = 0; method->in_args != NULL && method->in_args[k] != NULL; k++)
        g_string_append (in, method->in_args[k]->signature);
      g_string_append_c (in, ')');
      self->handlers[i].in_signature = g_string_free (in, FALSE);
      self->handlers[i].reply_type = _peer_wire_method_reply_type (method);
    }
  return self;
}

PeerInterface *
peer_interface_new_for_xml (const char *xml,
                            const char *interface_name,
                            GError    **error)
{
  g_autoptr(GDBusNodeInfo) node = NULL;
  GDBusInterfaceInfo *info;

  g_return_val_if_fail (xml != NULL, NULL);
  g_return_val_if_fail (interface_name != NULL, NULL);

  node = g_dbus_node_info_new_for_xml (xml, error);
  if (node == NULL)
    return NULL;
  info = g_dbus_node_info_lookup_interface (node, interface_name);
  if (info == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Introspection XML has no interface %s", interface_name);
      return NULL;
    }
  return peer_interface_new (info);
}

gboolean
peer_interface_add_methods (PeerInterface         *self,
                            const PeerMethodEntry *entries,
                            gsize                  n_entries,
                            gpointer               user_data,
                            GError               **error)
{
  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (entries != NULL || n_entries == 0, FALSE);
  g_return_val_if_fail (self->n_bindings == 0, FALSE);

  for (gsize i = 0; i < n_entries; i++)
    {
      guint index;

      for (index = 0; index < self->n_methods; index++)
        if (g_str_equal (self->info->methods[index]->name, entries[i].name))
          break;
      if (index == self->n_methods)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Interface %s has no method %s", self->info->name, entries[i].name);
          return FALSE;
        }
      clear_method_handler (&self->handlers[index]);
      self->handlers[index].func = entries[i].handler;
      self->handlers[index].user_data = user_data;
      self->handlers[index].flags = entries[i].flags;
    }
  return TRUE;
}

gboolean
peer_interface_add_method (PeerInterface   *self,
                           const char      *method_name,
                           PeerMethodFlags  flags,
                           PeerMethodFunc   handler,
                           gpointer         user_data,
                           GDestroyNotify   destroy,
                           GError         **error)
{
  guint index;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (method_name != NULL, FALSE);
  g_return_val_if_fail (handler != NULL, FALSE);
  g_return_val_if_fail (self->n_bindings == 0, FALSE);

  for (index = 0; index < self->n_methods; index++)
    if (g_str_equal (self->info->methods[index]->name, method_name))
      break;
  if (index == self->n_methods)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Interface %s has no method %s", self->info->name, method_name);
      if (destroy != NULL)
        destroy (user_data);
      return FALSE;
    }
  clear_method_handler (&self->handlers[index]);
  self->handlers[index].func = handler;
  self->handlers[index].user_data = user_data;
  self->handlers[index].destroy = destroy;
  self->handlers[index].flags = flags;
  return TRUE;
}

void
peer_interface_set_property_funcs (PeerInterface       *self,
                                   PeerPropertyGetFunc  get_func,
                                   PeerPropertySetFunc  set_func,
                                   gpointer             user_data,
                                   GDestroyNotify       destroy)
{
  g_return_if_fail (PEER_IS_INTERFACE (self));

  clear_property_get_func (self);
  clear_property_set_func (self);
  self->get_func = get_func;
  self->set_func = set_func;
  self->get_data = user_data;
  self->set_data = user_data;
  self->get_destroy = destroy;          /* once, for both */
  self->property_data_shared = TRUE;
}

void
peer_interface_set_property_getter (PeerInterface      *self,
                                    PeerPropertyGetter  getter,
                                    gpointer            user_data,
                                    GDestroyNotify      destroy)
{
  g_return_if_fail (PEER_IS_INTERFACE (self));

  if (self->property_data_shared)
    clear_property_set_func (self);
  clear_property_get_func (self);
  self->property_data_shared = FALSE;
  self->getter = getter;
  self->get_data = user_data;
  self->get_destroy = destroy;
}

void
peer_interface_set_property_setter (PeerInterface      *self,
                                    PeerPropertySetter  setter,
                                    gpointer            user_data,
                                    GDestroyNotify      destroy)
{
  g_return_if_fail (PEER_IS_INTERFACE (self));

  if (self->property_data_shared)
    clear_property_get_func (self);
  clear_property_set_func (self);
  self->property_data_shared = FALSE;
  self->setter = setter;
  self->set_data = user_data;
  self->set_destroy = destroy;
}

GDBusInterfaceInfo *
peer_interface_get_info (PeerInterface *self)
{
  g_return_val_if_fail (PEER_IS_INTERFACE (self), NULL);
  return self->info;
}

const char *
peer_interface_get_object_path (PeerInterface *self)
{
  const char *path;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), NULL);

  /* The first path stays until it is unexported, which the caller does. */
  g_mutex_lock (&self->lock);
  path = self->paths->len > 0 ? g_ptr_array_index (self->paths, 0) : NULL;
  g_mutex_unlock (&self->lock);
  return path;
}

char **
peer_interface_dup_object_paths (PeerInterface *self)
{
  char **paths;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), NULL);

  g_mutex_lock (&self->lock);
  paths = g_new0 (char *, self->paths->len + 1);
  for (guint i = 0; i < self->paths->len; i++)
    paths[i] = g_strdup (g_ptr_array_index (self->paths, i));
  g_mutex_unlock (&self->lock);
  return paths;
}

static gboolean
paths_contain (GPtrArray  *paths,
               const char *path,
               guint      *out_index)
{
  for (guint i = 0; i < paths->len; i++)
    if (g_str_equal (g_ptr_array_index (paths, i), path))
      {
        if (out_index != NULL)
          *out_index = i;
        return TRUE;
      }
  return FALSE;
}

GDBusMethodInfo *
_peer_interface_get_method_info (PeerInterface *self,
                                 guint          index)
{
  g_assert (index < self->n_methods);
  return self->info->methods[index];
}

const GVariantType *
_peer_interface_get_reply_type (PeerInterface *self,
                                guint          index)
{
  g_assert (index < self->n_methods);
  return self->handlers[index].reply_type;
}

gboolean
_peer_interface_lookup_method (PeerInterface   *self,
                               GDBusMethodInfo *info,
                               guint           *out_index)
{
  /* GDBus hands back the very GDBusMethodInfo we registered: compare
   * pointers, no string hashing on the call path. */
  for (guint i = 0; i < self->n_methods; i++)
    if (self->info->methods[i] == info)
      {
        *out_index = i;
        return TRUE;
      }
  return FALSE;
}

gboolean
_peer_interface_get_method_handler (PeerInterface   *self,
                                    guint            index,
                                    PeerMethodFlags *out_flags)
{
  g_assert (index < self->n_methods);
  *out_flags = self->handlers[index].flags;
  return self->handlers[index].func != NULL;
}

void
_peer_interface_dispatch (PeerInterface *self,
                          PeerCall      *call)
{
  const MethodHandler *handler = &self->handlers[call->method_index];

  if (handler->func == NULL)
    {
      peer_call_return_error (call, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                              "Method %s.%s is not implemented",
                              self->info->name, call->method_info->name);
      return;
    }
  handler->func (call, handler->user_data);
}

gboolean
_peer_interface_check_arguments (PeerInterface *self,
                                 guint          index,
                                 GVariant      *body)
{
  g_assert (index < self->n_methods);
  return g_str_equal (body != NULL ? g_variant_get_type_string (body) : "()",
                      self->handlers[index].in_signature);
}

gboolean
_peer_interface_bind (PeerInterface         *self,
                      PeerInterfaceEmitFunc  emit,
                      gpointer               emitter,
                      GBoxedCopyFunc         emitter_ref,
                      GDestroyNotify         emitter_unref,
                      const char            *object_path,
                      GError               **error)
{
  gboolean ret = FALSE;

  g_mutex_lock (&self->lock);
  if (self->emitter != NULL && self->emitter != emitter)
    g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                 "Interface %s is already exported by another server", self->info->name);
  else if (object_path != NULL && paths_contain (self->paths, object_path, NULL))
    g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                 "Interface %s is already exported at %s", self->info->name, object_path);
  else
    {
      if (self->emitter == NULL)
        {
          self->emit = emit;
          self->emitter = emitter_ref (emitter);
          self->emitter_ref = emitter_ref;
          self->emitter_unref = emitter_unref;
        }
      self->n_bindings++;
      if (object_path != NULL)
        g_ptr_array_add (self->paths, g_strdup (object_path));
      ret = TRUE;
    }
  g_mutex_unlock (&self->lock);
  return ret;
}

void
_peer_interface_unbind (PeerInterface *self,
                        const char    *object_path)
{
  gpointer emitter = NULL;
  GDestroyNotify emitter_unref = NULL;
  guint index;

  g_mutex_lock (&self->lock);
  if (object_path != NULL && paths_contain (self->paths, object_path, &index))
    g_ptr_array_remove_index (self->paths, index);
  if (self->n_bindings > 0 && --self->n_bindings == 0)
    {
      emitter = g_steal_pointer (&self->emitter);
      emitter_unref = self->emitter_unref;
      self->emit = NULL;
    }
  g_mutex_unlock (&self->lock);
  if (emitter != NULL)
    emitter_unref (emitter);
}

/* Takes what an emission needs from under the lock. FALSE when unbound. */
static gboolean
take_emitter (PeerInterface          *self,
              PeerInterfaceEmitFunc  *out_emit,
              gpointer               *out_emitter)
{
  gboolean bound;

  g_mutex_lock (&self->lock);
  bound = self->emitter != NULL;
  if (bound)
    {
      *out_emit = self->emit;
      *out_emitter = self->emitter_ref (self->emitter);
    }
  g_mutex_unlock (&self->lock);
  return bound;
}

static const char *
property_emits_changed (GDBusPropertyInfo *prop)
{
  const char *value = g_dbus_annotation_info_lookup (prop->annotations,
                                                     "org.freedesktop.DBus.Property.EmitsChangedSignal");
  return value != NULL ? value : "true";
}

static gboolean
check_property_value (PeerInterface      *self,
                      const char         *property_name,
                      GVariant           *value,
                      GDBusPropertyInfo **out_prop,
                      GError            **error)
{
  GDBusPropertyInfo *prop = g_dbus_interface_info_lookup_property (self->info, property_name);

  if (prop == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Interface %s has no property %s", self->info->name, property_name);
      return FALSE;
    }
  if (!g_str_equal (g_variant_get_type_string (value), prop->signature))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Property %s.%s has type '%s', not '%s'", self->info->name, property_name,
                   prop->signature, g_variant_get_type_string (value));
      return FALSE;
    }
  *out_prop = prop;
  return TRUE;
}

/* PropertiesChanged for @property_name at each of @paths, as its
 * EmitsChangedSignal annotation says. */
static gboolean
emit_changed (PeerInterface      *self,
              GDBusPropertyInfo  *prop,
              GVariant           *value,
              GPtrArray          *paths,
              GError            **error)
{
  const char *emits = property_emits_changed (prop);
  PeerInterfaceEmitFunc emit = NULL;
  gpointer emitter = NULL;
  GDestroyNotify emitter_unref;
  gboolean ok = TRUE;

  if (paths->len == 0 || g_str_equal (emits, "false") || g_str_equal (emits, "const") ||
      !take_emitter (self, &emit, &emitter))
    return TRUE;
  emitter_unref = self->emitter_unref;
  for (guint i = 0; i < paths->len && ok; i++)
    {
      g_autoptr(GVariantBuilder) changed_props = g_variant_builder_new (G_VARIANT_TYPE_VARDICT);
      const char *invalidated[2] = { NULL, NULL };

      if (g_str_equal (emits, "invalidates"))
        invalidated[0] = prop->name;
      else
        g_variant_builder_add (changed_props, "{sv}", prop->name, value);
      ok = emit (emitter, NULL, g_ptr_array_index (paths, i), "org.freedesktop.DBus.Properties",
                 "PropertiesChanged",
                 g_variant_new ("(sa{sv}^as)", self->info->name, changed_props, invalidated), error);
    }
  emitter_unref (emitter);
  return ok;
}

/* Stores @value in @store; TRUE when it changed. Called with @lock held. */
static gboolean
store_value_locked (GHashTable *store,
                    const char *property_name,
                    GVariant   *value)
{
  GVariant *old = g_hash_table_lookup (store, property_name);

  if (old != NULL && g_variant_equal (old, value))
    return FALSE;
  g_hash_table_insert (store, g_strdup (property_name), g_variant_ref (value));
  return TRUE;
}

gboolean
peer_interface_set_property (PeerInterface *self,
                             const char    *property_name,
                             GVariant      *value,
                             GError       **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autoptr(GPtrArray) sharing = NULL;
  GDBusPropertyInfo *prop;
  gboolean changed;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (property_name != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);

  owned = g_variant_ref_sink (value);
  if (!check_property_value (self, property_name, owned, &prop, error))
    return FALSE;

  /* The paths that read the shared value: those without one of their own. */
  sharing = g_ptr_array_new_with_free_func (g_free);
  g_mutex_lock (&self->lock);
  changed = store_value_locked (self->values, property_name, owned);
  for (guint i = 0; changed && i < self->paths->len; i++)
    {
      const char *path = g_ptr_array_index (self->paths, i);
      GHashTable *own = g_hash_table_lookup (self->object_values, path);

      if (own == NULL || !g_hash_table_contains (own, property_name))
        g_ptr_array_add (sharing, g_strdup (path));
    }
  g_mutex_unlock (&self->lock);

  return !changed || emit_changed (self, prop, owned, sharing, error);
}

gboolean
peer_interface_set_object_property (PeerInterface *self,
                                    const char    *object_path,
                                    const char    *property_name,
                                    GVariant      *value,
                                    GError       **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autoptr(GPtrArray) paths = NULL;
  GDBusPropertyInfo *prop;
  GHashTable *own;
  gboolean changed;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (object_path != NULL, FALSE);
  g_return_val_if_fail (property_name != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);

  owned = g_variant_ref_sink (value);
  if (!g_variant_is_object_path (object_path))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "'%s' is not a valid object path", object_path);
      return FALSE;
    }
  if (!check_property_value (self, property_name, owned, &prop, error))
    return FALSE;

  g_mutex_lock (&self->lock);
  own = g_hash_table_lookup (self->object_values, object_path);
  if (own == NULL)
    {
      own = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_variant_unref);
      g_hash_table_insert (self->object_values, g_strdup (object_path), own);
    }
  changed = store_value_locked (own, property_name, owned);
  g_mutex_unlock (&self->lock);

  if (!changed)
    return TRUE;
  paths = g_ptr_array_new ();
  g_ptr_array_add (paths, (gpointer) object_path);
  return emit_changed (self, prop, owned, paths, error);
}

void
peer_interface_forget_object (PeerInterface *self,
                              const char    *object_path)
{
  g_return_if_fail (PEER_IS_INTERFACE (self));
  g_return_if_fail (object_path != NULL);

  g_mutex_lock (&self->lock);
  g_hash_table_remove (self->object_values, object_path);
  g_mutex_unlock (&self->lock);
}

GVariant *
peer_interface_dup_property (PeerInterface *self,
                             const char    *property_name)
{
  GVariant *value;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), NULL);
  g_return_val_if_fail (property_name != NULL, NULL);

  g_mutex_lock (&self->lock);
  value = g_hash_table_lookup (self->values, property_name);
  if (value != NULL)
    g_variant_ref (value);
  g_mutex_unlock (&self->lock);
  return value;
}

GVariant *
peer_interface_dup_object_property (PeerInterface *self,
                                    const char    *object_path,
                                    const char    *property_name)
{
  GVariant *value = NULL;
  GHashTable *own;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), NULL);
  g_return_val_if_fail (property_name != NULL, NULL);

  if (object_path == NULL)
    return peer_interface_dup_property (self, property_name);
  g_mutex_lock (&self->lock);
  own = g_hash_table_lookup (self->object_values, object_path);
  if (own != NULL)
    value = g_hash_table_lookup (own, property_name);
  if (value == NULL)
    value = g_hash_table_lookup (self->values, property_name);
  if (value != NULL)
    g_variant_ref (value);
  g_mutex_unlock (&self->lock);
  return value;
}

GVariant *
_peer_interface_get_property (PeerInterface  *self,
                              PeerConnection *caller,
                              const char     *object_path,
                              const char     *property_name,
                              GError        **error)
{
  GVariant *value = NULL;

  /* With no caller (a value for every peer at once), only stored values. */
  if ((self->get_func != NULL || self->getter != NULL) && caller != NULL)
    {
      GError *local_error = NULL;

      if (self->getter != NULL)
        value = self->getter (self, caller, object_path, property_name, self->get_data, &local_error);
      else
        value = self->get_func (self, caller, property_name, &local_error, self->get_data);
      if (local_error != NULL)
        {
          g_clear_pointer (&value, g_variant_unref);
          g_propagate_error (error, local_error);
          return NULL;
        }
      if (value != NULL)
        return g_variant_ref_sink (value);
    }

  value = peer_interface_dup_object_property (self, object_path, property_name);
  if (value == NULL)
    g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED,
                 "Property %s.%s has no value", self->info->name, property_name);
  return value;
}

GVariant *
_peer_interface_dup_all_properties (PeerInterface  *self,
                                    PeerConnection *caller,
                                    const char     *object_path)
{
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  for (guint i = 0; self->info->properties != NULL && self->info->properties[i] != NULL; i++)
    {
      GDBusPropertyInfo *prop = self->info->properties[i];
      g_autoptr(GVariant) value = NULL;

      if (!(prop->flags & G_DBUS_PROPERTY_INFO_FLAGS_READABLE))
        continue;
      value = _peer_interface_get_property (self, caller, object_path, prop->name, NULL);
      if (value != NULL)
        g_variant_builder_add (&builder, "{sv}", prop->name, value);
    }
  return g_variant_ref_sink (g_variant_builder_end (&builder));
}

gboolean
_peer_interface_set_property_from_peer (PeerInterface  *self,
                                        PeerConnection *caller,
                                        const char     *object_path,
                                        const char     *property_name,
                                        GVariant       *value,
                                        GError        **error)
{
  gboolean own;

  /* GDBus has checked the property exists, is writable and has the right
   * type before calling us. */
  if (self->set_func != NULL &&
      !self->set_func (self, caller, property_name, value, error, self->set_data))
    return FALSE;
  if (self->setter != NULL)
    {
      GError *local_error = NULL;

      if (!self->setter (self, caller, object_path, property_name, value,
                         self->set_data, &local_error))
        {
          /* A binding's setter may refuse without saying why. */
          if (local_error == NULL)
            local_error = g_error_new (PEER_ERROR, PEER_ERROR_PERMISSION_DENIED,
                                       "Property %s.%s refused the value",
                                       self->info->name, property_name);
          g_propagate_error (error, local_error);
          return FALSE;
        }
      g_clear_error (&local_error);
    }
  if (!self->store_writes)
    return TRUE;
  /* An object with values of its own keeps the peer's write to itself. */
  g_mutex_lock (&self->lock);
  own = object_path != NULL && g_hash_table_contains (self->object_values, object_path);
  g_mutex_unlock (&self->lock);
  if (own)
    return peer_interface_set_object_property (self, object_path, property_name, value, error);
  return peer_interface_set_property (self, property_name, value, error);
}

void
_peer_interface_set_store_writes (PeerInterface *self,
                                  gboolean       store_writes)
{
  self->store_writes = store_writes;
}

/* Checks @signal_name and @parameters against the introspection data. */
static gboolean
check_signal (PeerInterface *self,
              const char    *signal_name,
              GVariant      *parameters,
              GError       **error)
{
  g_autoptr(GString) expected = g_string_new ("(");
  GDBusSignalInfo *signal = g_dbus_interface_info_lookup_signal (self->info, signal_name);
  const char *given = parameters != NULL ? g_variant_get_type_string (parameters) : "()";

  if (signal == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Interface %s has no signal %s", self->info->name, signal_name);
      return FALSE;
    }
  for (guint i = 0; signal->args != NULL && signal->args[i] != NULL; i++)
    g_string_append (expected, signal->args[i]->signature);
  g_string_append_c (expected, ')');
  if (!g_str_equal (expected->str, given))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Signal %s.%s takes '%s', not '%s'", self->info->name, signal_name, expected->str, given);
      return FALSE;
    }
  return TRUE;
}

static gboolean
emit_signal_at (PeerInterface  *self,
                const char     *object_path,
                PeerConnection *destination,
                const char     *signal_name,
                GVariant       *parameters,
                GError        **error)
{
  g_auto(GStrv) paths = NULL;
  PeerInterfaceEmitFunc emit = NULL;
  gpointer emitter = NULL;
  GDestroyNotify emitter_unref;
  gboolean ok = TRUE;

  if (!check_signal (self, signal_name, parameters, error))
    return FALSE;
  if (object_path == NULL)
    paths = peer_interface_dup_object_paths (self);
  if ((object_path == NULL && paths[0] == NULL) || !take_emitter (self, &emit, &emitter))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED,
                   "Interface %s is not exported", self->info->name);
      return FALSE;
    }
  emitter_unref = self->emitter_unref;
  if (object_path != NULL)
    ok = emit (emitter, destination, object_path, self->info->name, signal_name, parameters, error);
  for (guint i = 0; paths != NULL && paths[i] != NULL && ok; i++)
    ok = emit (emitter, destination, paths[i], self->info->name, signal_name, parameters, error);
  emitter_unref (emitter);
  return ok;
}

gboolean
peer_interface_emit_signal (PeerInterface  *self,
                            PeerConnection *destination,
                            const char     *signal_name,
                            GVariant       *parameters,
                            GError        **error)
{
  g_autoptr(GVariant) owned = NULL;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (destination == NULL || PEER_IS_CONNECTION (destination), FALSE);
  g_return_val_if_fail (signal_name != NULL, FALSE);

  if (parameters != NULL)
    owned = g_variant_ref_sink (parameters);
  return emit_signal_at (self, NULL, destination, signal_name, owned, error);
}

gboolean
peer_interface_emit_object_signal (PeerInterface  *self,
                                   const char     *object_path,
                                   PeerConnection *destination,
                                   const char     *signal_name,
                                   GVariant       *parameters,
                                   GError        **error)
{
  g_autoptr(GVariant) owned = NULL;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (object_path != NULL, FALSE);
  g_return_val_if_fail (destination == NULL || PEER_IS_CONNECTION (destination), FALSE);
  g_return_val_if_fail (signal_name != NULL, FALSE);

  if (parameters != NULL)
    owned = g_variant_ref_sink (parameters);
  if (!g_variant_is_object_path (object_path))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "'%s' is not a valid object path", object_path);
      return FALSE;
    }
  return emit_signal_at (self, object_path, destination, signal_name, owned, error);
}
