/* peer-interface.c: introspection data, method handlers and property values
 * of one exported interface. */
#include "config.h"

#include "peer-call-private.h"
#include "peer-connection.h"
#include "peer-error.h"
#include "peer-interface-private.h"
#include "peer-wire-private.h"

typedef struct {
  PeerMethodFunc func;
  gpointer user_data;
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

  PeerPropertyGetFunc get_func;
  PeerPropertySetFunc set_func;
  gpointer property_data;
  GDestroyNotify property_destroy;

  GMutex lock;
  /* Protected by @lock */
  GHashTable *values;                   /* property name → GVariant */
  /* Where signals go once exported: cleared by unbind. */
  PeerInterfaceEmitFunc emit;
  gpointer emitter;                     /* owned through emitter_ref */
  GBoxedCopyFunc emitter_ref;
  GDestroyNotify emitter_unref;
  char *object_path;
};

G_DEFINE_FINAL_TYPE (PeerInterface, peer_interface, G_TYPE_OBJECT)

static void
peer_interface_finalize (GObject *object)
{
  PeerInterface *self = PEER_INTERFACE (object);

  if (self->property_destroy != NULL)
    self->property_destroy (self->property_data);
  for (guint i = 0; i < self->n_methods; i++)
    {
      g_variant_type_free (self->handlers[i].reply_type);
      g_free (self->handlers[i].in_signature);
    }
  g_free (self->handlers);
  g_hash_table_unref (self->values);
  g_free (self->object_path);
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
  g_return_val_if_fail (self->object_path == NULL, FALSE);

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
      self->handlers[index].func = entries[i].handler;
      self->handlers[index].user_data = user_data;
      self->handlers[index].flags = entries[i].flags;
    }
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

  if (self->property_destroy != NULL)
    self->property_destroy (self->property_data);
  self->get_func = get_func;
  self->set_func = set_func;
  self->property_data = user_data;
  self->property_destroy = destroy;
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
  g_return_val_if_fail (PEER_IS_INTERFACE (self), NULL);
  /* Set once by bind, before any peer can call; read without the lock. */
  return self->object_path;
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
  if (self->object_path != NULL)
    g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                 "Interface %s is already exported at %s", self->info->name, self->object_path);
  else
    {
      self->emit = emit;
      self->emitter = emitter_ref (emitter);
      self->emitter_ref = emitter_ref;
      self->emitter_unref = emitter_unref;
      self->object_path = g_strdup (object_path);
      ret = TRUE;
    }
  g_mutex_unlock (&self->lock);
  return ret;
}

void
_peer_interface_unbind (PeerInterface *self)
{
  gpointer emitter;
  GDestroyNotify emitter_unref;

  g_mutex_lock (&self->lock);
  emitter = g_steal_pointer (&self->emitter);
  emitter_unref = self->emitter_unref;
  self->emit = NULL;
  g_clear_pointer (&self->object_path, g_free);
  g_mutex_unlock (&self->lock);
  if (emitter != NULL)
    emitter_unref (emitter);
}

/* Takes what an emission needs from under the lock. FALSE when unbound. */
static gboolean
take_emitter (PeerInterface          *self,
              PeerInterfaceEmitFunc  *out_emit,
              gpointer               *out_emitter,
              char                  **out_path)
{
  gboolean bound;

  g_mutex_lock (&self->lock);
  bound = self->emitter != NULL;
  if (bound)
    {
      *out_emit = self->emit;
      *out_emitter = self->emitter_ref (self->emitter);
      *out_path = g_strdup (self->object_path);
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

gboolean
peer_interface_set_property (PeerInterface *self,
                             const char    *property_name,
                             GVariant      *value,
                             GError       **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autofree char *path = NULL;
  PeerInterfaceEmitFunc emit = NULL;
  gpointer emitter = NULL;
  gboolean bound;
  GDBusPropertyInfo *prop;
  GVariant *old;
  const char *emits;
  gboolean changed;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (property_name != NULL, FALSE);
  g_return_val_if_fail (value != NULL, FALSE);

  owned = g_variant_ref_sink (value);
  prop = g_dbus_interface_info_lookup_property (self->info, property_name);
  if (prop == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Interface %s has no property %s", self->info->name, property_name);
      return FALSE;
    }
  if (!g_str_equal (g_variant_get_type_string (owned), prop->signature))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Property %s.%s has type '%s', not '%s'", self->info->name, property_name,
                   prop->signature, g_variant_get_type_string (owned));
      return FALSE;
    }

  g_mutex_lock (&self->lock);
  old = g_hash_table_lookup (self->values, property_name);
  changed = old == NULL || !g_variant_equal (old, owned);
  if (changed)
    g_hash_table_insert (self->values, g_strdup (property_name), g_variant_ref (owned));
  g_mutex_unlock (&self->lock);

  emits = property_emits_changed (prop);
  if (changed && !g_str_equal (emits, "false") && !g_str_equal (emits, "const") &&
      take_emitter (self, &emit, &emitter, &path))
    {
      GDestroyNotify emitter_unref = self->emitter_unref;
      g_autoptr(GVariantBuilder) changed_props = g_variant_builder_new (G_VARIANT_TYPE_VARDICT);
      const char *invalidated[2] = { NULL, NULL };

      if (g_str_equal (emits, "invalidates"))
        invalidated[0] = property_name;
      else
        g_variant_builder_add (changed_props, "{sv}", property_name, owned);

      bound = emit (emitter, NULL, path, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                    g_variant_new ("(sa{sv}^as)", self->info->name, changed_props, invalidated),
                    error);
      emitter_unref (emitter);
      return bound;
    }
  return TRUE;
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
_peer_interface_get_property (PeerInterface  *self,
                              PeerConnection *caller,
                              const char     *property_name,
                              GError        **error)
{
  GVariant *value = NULL;

  if (self->get_func != NULL)
    {
      GError *local_error = NULL;

      value = self->get_func (self, caller, property_name, &local_error, self->property_data);
      if (local_error != NULL)
        {
          g_clear_pointer (&value, g_variant_unref);
          g_propagate_error (error, local_error);
          return NULL;
        }
      if (value != NULL)
        return g_variant_ref_sink (value);
    }

  value = peer_interface_dup_property (self, property_name);
  if (value == NULL)
    g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED,
                 "Property %s.%s has no value", self->info->name, property_name);
  return value;
}

gboolean
_peer_interface_set_property_from_peer (PeerInterface  *self,
                                        PeerConnection *caller,
                                        const char     *property_name,
                                        GVariant       *value,
                                        GError        **error)
{
  /* GDBus has checked the property exists, is writable and has the right
   * type before calling us. */
  if (self->set_func != NULL &&
      !self->set_func (self, caller, property_name, value, error, self->property_data))
    return FALSE;
  return peer_interface_set_property (self, property_name, value, error);
}

gboolean
peer_interface_emit_signal (PeerInterface  *self,
                            PeerConnection *destination,
                            const char     *signal_name,
                            GVariant       *parameters,
                            GError        **error)
{
  g_autoptr(GVariant) owned = NULL;
  g_autofree char *path = NULL;
  g_autofree char *expected = NULL;
  PeerInterfaceEmitFunc emit = NULL;
  gpointer emitter = NULL;
  GDestroyNotify emitter_unref;
  gboolean ok;
  GDBusSignalInfo *signal;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), FALSE);
  g_return_val_if_fail (destination == NULL || PEER_IS_CONNECTION (destination), FALSE);
  g_return_val_if_fail (signal_name != NULL, FALSE);

  if (parameters != NULL)
    owned = g_variant_ref_sink (parameters);

  signal = g_dbus_interface_info_lookup_signal (self->info, signal_name);
  if (signal == NULL)
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Interface %s has no signal %s", self->info->name, signal_name);
      return FALSE;
    }
  {
    g_autoptr(GString) sig = g_string_new ("(");
    for (guint i = 0; signal->args != NULL && signal->args[i] != NULL; i++)
      g_string_append (sig, signal->args[i]->signature);
    g_string_append_c (sig, ')');
    expected = g_string_free (g_steal_pointer (&sig), FALSE);
  }
  if (!g_str_equal (expected, owned != NULL ? g_variant_get_type_string (owned) : "()"))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Signal %s.%s takes '%s', not '%s'", self->info->name, signal_name, expected,
                   owned != NULL ? g_variant_get_type_string (owned) : "()");
      return FALSE;
    }

  if (!take_emitter (self, &emit, &emitter, &path))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_FAILED,
                   "Interface %s is not exported", self->info->name);
      return FALSE;
    }
  emitter_unref = self->emitter_unref;
  ok = emit (emitter, destination, path, self->info->name, signal_name, owned, error);
  emitter_unref (emitter);
  return ok;
}
