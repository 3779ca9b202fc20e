/* peer-gobject-export.c: a GObject's properties as a PeerInterface's.
 *
 * The interface keeps the object's values as its stored values (so a
 * Get, GetAll or GetManagedObjects never touches the object from GDBus's
 * thread) and refreshes them on `notify`; a peer's Set goes to the object,
 * whose `notify` then stores and announces what the object made of it
 * (a setter may clamp or refuse). The binding is checked once, when the
 * interface is made, so that no peer can reach a type mismatch later.
 */
#include "config.h"

#include <string.h>

#include "peer-error.h"
#include "peer-gobject-export.h"
#include "peer-interface-private.h"

typedef struct {
  GObject *object;                      /* owned */
  gulong notify_handler;
  PeerInterface *iface;                 /* not a reference: it owns us */
  GHashTable *by_pspec;                 /* GParamSpec* → GDBusPropertyInfo* */
  GHashTable *by_dbus_name;             /* D-Bus name → GParamSpec* */
} ObjectBinding;

static void
object_binding_free (gpointer data)
{
  ObjectBinding *binding = data;

  g_clear_signal_handler (&binding->notify_handler, binding->object);
  g_object_unref (binding->object);
  g_hash_table_unref (binding->by_pspec);
  g_hash_table_unref (binding->by_dbus_name);
  g_free (binding);
}

/* `LastError` → `last-error`, as gdbus-codegen names GObject properties. */
static char *
gobject_style_name (const char *dbus_name)
{
  GString *name = g_string_new (NULL);

  for (const char *p = dbus_name; *p != '\0'; p++)
    {
      if (g_ascii_isupper (*p))
        {
          if (p != dbus_name && !g_ascii_isupper (p[-1]))
            g_string_append_c (name, '-');
          g_string_append_c (name, g_ascii_tolower (*p));
        }
      else
        g_string_append_c (name, *p == '_' ? '-' : *p);
    }
  return g_string_free (name, FALSE);
}

/* Whether values of @pspec can stand for D-Bus type @signature. */
static gboolean
types_match (GParamSpec *pspec,
             const char *signature)
{
  GType type = G_PARAM_SPEC_VALUE_TYPE (pspec);

  if (type == G_TYPE_VARIANT)
    {
      const GVariantType *wanted = G_PARAM_SPEC_VARIANT (pspec)->type;

      return g_variant_type_equal (wanted, G_VARIANT_TYPE (signature));
    }
  if (strlen (signature) == 1)
    switch (signature[0])
      {
      case 'b': return type == G_TYPE_BOOLEAN;
      case 'y': return type == G_TYPE_UCHAR;
      case 'n': case 'i': return type == G_TYPE_INT || G_TYPE_IS_ENUM (type);
      case 'q': case 'u': return type == G_TYPE_UINT || G_TYPE_IS_FLAGS (type);
      case 'x': return type == G_TYPE_INT64;
      case 't': return type == G_TYPE_UINT64;
      case 'd': return type == G_TYPE_DOUBLE;
      case 's': case 'o': case 'g': return type == G_TYPE_STRING;
      default: return FALSE;
      }
  return g_str_equal (signature, "as") && type == G_TYPE_STRV;
}

/* (transfer full) (nullable) the object's @pspec as @signature; NULL when
 * the value does not fit (an `n` out of range, a string that is no path). */
static GVariant *
dup_value (GObject    *object,
           GParamSpec *pspec,
           const char *signature)
{
  g_auto(GValue) value = G_VALUE_INIT;
  GVariant *variant = NULL;

  g_value_init (&value, G_PARAM_SPEC_VALUE_TYPE (pspec));
  g_object_get_property (object, pspec->name, &value);

  if (G_VALUE_HOLDS_VARIANT (&value))
    variant = g_value_dup_variant (&value);
  else if (G_VALUE_HOLDS_ENUM (&value))
    variant = g_variant_new_int32 (g_value_get_enum (&value));
  else if (G_VALUE_HOLDS_FLAGS (&value))
    variant = g_variant_new_uint32 (g_value_get_flags (&value));
  else
    switch (signature[0])
      {
      case 'b': variant = g_variant_new_boolean (g_value_get_boolean (&value)); break;
      case 'y': variant = g_variant_new_byte (g_value_get_uchar (&value)); break;
      case 'n':
        if (g_value_get_int (&value) >= G_MININT16 && g_value_get_int (&value) <= G_MAXINT16)
          variant = g_variant_new_int16 ((gint16) g_value_get_int (&value));
        break;
      case 'q':
        if (g_value_get_uint (&value) <= G_MAXUINT16)
          variant = g_variant_new_uint16 ((guint16) g_value_get_uint (&value));
        break;
      case 'i': variant = g_variant_new_int32 (g_value_get_int (&value)); break;
      case 'u': variant = g_variant_new_uint32 (g_value_get_uint (&value)); break;
      case 'x': variant = g_variant_new_int64 (g_value_get_int64 (&value)); break;
      case 't': variant = g_variant_new_uint64 (g_value_get_uint64 (&value)); break;
      case 'd': variant = g_variant_new_double (g_value_get_double (&value)); break;
      case 's':
        variant = g_variant_new_string (g_value_get_string (&value) != NULL ? g_value_get_string (&value) : "");
        break;
      case 'o':
        if (g_value_get_string (&value) != NULL && g_variant_is_object_path (g_value_get_string (&value)))
          variant = g_variant_new_object_path (g_value_get_string (&value));
        break;
      case 'g':
        if (g_value_get_string (&value) != NULL && g_variant_is_signature (g_value_get_string (&value)))
          variant = g_variant_new_signature (g_value_get_string (&value));
        break;
      case 'a':
        {
          const char * const *strv = g_value_get_boxed (&value);
          variant = g_variant_new_strv (strv, strv != NULL ? -1 : 0);
        }
        break;
      default:
        break;
      }
  if (variant == NULL)
    g_debug ("libpeer: property %s of %s has a value that is not a '%s'", pspec->name,
             G_OBJECT_TYPE_NAME (object), signature);
  return variant != NULL ? g_variant_ref_sink (variant) : NULL;
}

/* @variant (already of the D-Bus type) into @value, of @pspec's type. */
static void
set_value (GValue     *value,
           GParamSpec *pspec,
           GVariant   *variant)
{
  GType type = G_PARAM_SPEC_VALUE_TYPE (pspec);

  g_value_init (value, type);
  if (type == G_TYPE_VARIANT)
    g_value_set_variant (value, variant);
  else if (G_TYPE_IS_ENUM (type))
    g_value_set_enum (value, g_variant_is_of_type (variant, G_VARIANT_TYPE_INT16)
                               ? g_variant_get_int16 (variant) : g_variant_get_int32 (variant));
  else if (G_TYPE_IS_FLAGS (type))
    g_value_set_flags (value, g_variant_is_of_type (variant, G_VARIANT_TYPE_UINT16)
                                ? g_variant_get_uint16 (variant) : g_variant_get_uint32 (variant));
  else
    switch (g_variant_get_type_string (variant)[0])
      {
      case 'b': g_value_set_boolean (value, g_variant_get_boolean (variant)); break;
      case 'y': g_value_set_uchar (value, g_variant_get_byte (variant)); break;
      case 'n': g_value_set_int (value, g_variant_get_int16 (variant)); break;
      case 'q': g_value_set_uint (value, g_variant_get_uint16 (variant)); break;
      case 'i': g_value_set_int (value, g_variant_get_int32 (variant)); break;
      case 'u': g_value_set_uint (value, g_variant_get_uint32 (variant)); break;
      case 'x': g_value_set_int64 (value, g_variant_get_int64 (variant)); break;
      case 't': g_value_set_uint64 (value, g_variant_get_uint64 (variant)); break;
      case 'd': g_value_set_double (value, g_variant_get_double (variant)); break;
      case 's': case 'o': case 'g': g_value_set_string (value, g_variant_get_string (variant, NULL)); break;
      case 'a': g_value_take_boxed (value, g_variant_dup_strv (variant, NULL)); break;
      default: g_assert_not_reached ();
      }
}

/* Any thread the object notifies on. */
static void
on_notify (GObject    *object,
           GParamSpec *pspec,
           gpointer    user_data)
{
  ObjectBinding *binding = user_data;
  GDBusPropertyInfo *prop = g_hash_table_lookup (binding->by_pspec, pspec);
  g_autoptr(GVariant) value = NULL;
  g_autoptr(GError) error = NULL;

  if (prop == NULL)
    return;
  value = dup_value (object, pspec, prop->signature);
  if (value != NULL && !peer_interface_set_property (binding->iface, prop->name, value, &error))
    g_debug ("libpeer: %s not sent: %s", prop->name, error->message);
}

static gboolean
on_set_from_peer (PeerInterface  *iface,
                  PeerConnection *caller,
                  const char     *property_name,
                  GVariant       *value,
                  GError        **error,
                  gpointer        user_data)
{
  ObjectBinding *binding = user_data;
  GParamSpec *pspec = g_hash_table_lookup (binding->by_dbus_name, property_name);
  g_auto(GValue) gvalue = G_VALUE_INIT;

  /* GDBus checked the name, that it is writable and the value's type. */
  g_return_val_if_fail (pspec != NULL, FALSE);
  set_value (&gvalue, pspec, value);
  if (g_param_value_validate (pspec, &gvalue))
    {
      g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                   "Value out of range for property %s", property_name);
      return FALSE;
    }
  g_object_set_property (binding->object, pspec->name, &gvalue);
  return TRUE;
}

PeerInterface *
peer_interface_new_for_object (GObject            *object,
                               GDBusInterfaceInfo *info,
                               GError            **error)
{
  g_autoptr(PeerInterface) iface = NULL;
  ObjectBinding *binding;

  g_return_val_if_fail (G_IS_OBJECT (object), NULL);
  g_return_val_if_fail (info != NULL, NULL);

  binding = g_new0 (ObjectBinding, 1);
  binding->object = g_object_ref (object);
  binding->by_pspec = g_hash_table_new (NULL, NULL);
  binding->by_dbus_name = g_hash_table_new (g_str_hash, g_str_equal);
  iface = peer_interface_new (info);
  binding->iface = iface;
  g_object_set_data_full (G_OBJECT (iface), "peer-object-binding", binding, object_binding_free);

  for (guint i = 0; info->properties != NULL && info->properties[i] != NULL; i++)
    {
      GDBusPropertyInfo *prop = info->properties[i];
      GParamSpec *pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (object), prop->name);
      g_autoptr(GVariant) value = NULL;

      if (pspec == NULL)
        {
          g_autofree char *name = gobject_style_name (prop->name);
          pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (object), name);
        }
      if (pspec == NULL)
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "%s has no property for %s.%s", G_OBJECT_TYPE_NAME (object), info->name, prop->name);
          return NULL;
        }
      if (!types_match (pspec, prop->signature))
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Property %s of %s (%s) cannot stand for %s.%s ('%s')", pspec->name,
                       G_OBJECT_TYPE_NAME (object), g_type_name (G_PARAM_SPEC_VALUE_TYPE (pspec)),
                       info->name, prop->name, prop->signature);
          return NULL;
        }
      if (((prop->flags & G_DBUS_PROPERTY_INFO_FLAGS_READABLE) && !(pspec->flags & G_PARAM_READABLE)) ||
          ((prop->flags & G_DBUS_PROPERTY_INFO_FLAGS_WRITABLE) &&
           (!(pspec->flags & G_PARAM_WRITABLE) || (pspec->flags & G_PARAM_CONSTRUCT_ONLY))))
        {
          g_set_error (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS,
                       "Property %s of %s is not %s, as %s.%s is", pspec->name, G_OBJECT_TYPE_NAME (object),
                       (prop->flags & G_DBUS_PROPERTY_INFO_FLAGS_WRITABLE) ? "writable" : "readable",
                       info->name, prop->name);
          return NULL;
        }
      g_hash_table_insert (binding->by_pspec, pspec, prop);
      g_hash_table_insert (binding->by_dbus_name, prop->name, pspec);
      if ((pspec->flags & G_PARAM_READABLE) && (value = dup_value (object, pspec, prop->signature)) != NULL)
        peer_interface_set_property (iface, prop->name, value, NULL);
    }

  _peer_interface_set_store_writes (iface, FALSE);
  peer_interface_set_property_funcs (iface, NULL, on_set_from_peer, binding, NULL);
  binding->notify_handler = g_signal_connect (object, "notify", G_CALLBACK (on_notify), binding);
  return g_steal_pointer (&iface);
}

GObject *
peer_interface_get_object (PeerInterface *self)
{
  ObjectBinding *binding;

  g_return_val_if_fail (PEER_IS_INTERFACE (self), NULL);

  binding = g_object_get_data (G_OBJECT (self), "peer-object-binding");
  return binding != NULL ? binding->object : NULL;
}
