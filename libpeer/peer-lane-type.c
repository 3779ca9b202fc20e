/* peer-lane-type.c: a method's argument or reply type as both ends of a
 * lane keep it, and how a received body is read as a value of it.
 *
 * A lane body is the value's GVariant serialization, untrusted. GLib
 * reads any byte string safely, but not strictly: a fixed-size value of
 * the wrong length, or an array of fixed-size elements that is not a
 * whole number of them, is read as zeros or as empty, and a handler for
 * SetVolume(u) sent 3 bytes would be given 0. The D-Bus path refuses such
 * a message, and so does the lane, on both ends (a client reads replies
 * the same way).
 *
 * Most method types are tuples of numbers and arrays of numbers, and for
 * those the check is done here, from a plan made once per type: a length
 * compare for a fixed-size tuple like (i) or (ii), a division for a tuple
 * of one array like (ay), and for the rest a walk over the members that
 * reads each framing offset once and looks at the bytes that normal form
 * constrains (padding, which must be zero; booleans, 0 or 1). Every
 * other type (strings, variants, maybes, arrays of those) gets GLib's
 * g_variant_is_normal_form(), which visits an array one element at a
 * time (some 25 ms for 1 MiB of `ay`): too slow for bulk numbers, right
 * for the rest.
 *
 * The rules are the GVariant serialization format's (its specification,
 * and GLib's gvariant-serialiser.c): a fixed-size tuple is its members in
 * order, each aligned to its own alignment, padded with zeros to the
 * tuple's alignment; a tuple with variable-size members ends with the end
 * offset of each of them but the last, little-endian, last member's
 * first, each as wide as the container's size needs (1 byte up to 255,
 * 2 up to 64 KiB, then 4, then 8).
 */
#include "config.h"

#include <string.h>

#include "peer-lane-private.h"

/* A byte that normal form constrains, in a fixed-size value: padding
 * (and the empty tuple's one byte) must be 0, a boolean 0 or 1. */
typedef struct {
  guint16 offset;
  guint8 max;
} LaneByteRule;

typedef enum {
  LANE_MEMBER_FIXED,            /* a fixed-size value */
  LANE_MEMBER_ARRAY,            /* an array of fixed-size elements */
} LaneMemberKind;

typedef struct {
  LaneMemberKind kind;
  gboolean framed;              /* its end is a framing offset: variable size, not last */
  gsize align_mask;             /* its alignment - 1 */
  gsize size;                   /* FIXED: its size; ARRAY: its element's */
  guint first_rule;             /* its (FIXED) or each element's (ARRAY) byte rules */
  guint n_rules;
} LaneMember;

/* How the bodies of a tuple type that is neither fixed-size nor one array
 * are checked: see type_plan_walk(). */
struct _LaneTypePlan {
  guint n_members;
  LaneMember *members;
  LaneByteRule *rules;
};

/* The most bytes a fixed-size value may have for its rules to be kept
 * (offsets are 16-bit); a signature is at most 255 characters, so a
 * bigger one cannot be written anyway. */
#define MAX_FIXED_SIZE G_MAXUINT16

/* --- the empty tuple and the type anchor ------------------------------------- */

/* The empty tuple, made once: calls and replies without arguments are the
 * common case, and each g_variant_new_tuple() or g_variant_new_from_bytes()
 * costs a type-info lookup (a lock, a string copy, a hash) in GLib. */
GVariant *
_peer_lane_unit_variant (void)
{
  static GVariant *unit;

  if (g_once_init_enter (&unit))
    g_once_init_leave (&unit, g_variant_ref_sink (g_variant_new_tuple (NULL, 0)));
  return unit;
}

/* A value of @type kept alive for as long as a method table lives, so that
 * GLib keeps the type's info cached instead of building and freeing it on
 * every call. Never read. */
static GVariant *
type_anchor_new (const GVariantType *type)
{
  g_autoptr(GBytes) empty = g_bytes_new_static ("", 0);

  return g_variant_ref_sink (g_variant_new_from_bytes (type, empty, FALSE));
}

/* --- fixed-size types -------------------------------------------------------- */

static gsize
align_up (gsize offset,
          gsize align_mask)
{
  return (offset + align_mask) & ~align_mask;
}

static void
add_rules (GArray *rules,
           gsize   from,
           gsize   to,
           guint8  max)
{
  for (gsize i = from; i < to; i++)
    {
      LaneByteRule rule = { (guint16) i, max };

      g_array_append_val (rules, rule);
    }
}

/* Whether @type has a fixed size; if so, its size and alignment, and (when
 * @rules is set) the rules of its bytes, at @base, appended to @rules. */
static gboolean
fixed_layout (const GVariantType *type,
              gsize               base,
              gsize              *out_size,
              gsize              *out_align_mask,
              GArray             *rules)
{
  gsize offset = 0, align_mask = 0;

  if (g_variant_type_is_tuple (type) || g_variant_type_is_dict_entry (type))
    {
      for (const GVariantType *m = g_variant_type_first (type); m != NULL; m = g_variant_type_next (m))
        {
          gsize size, mask, start;

          if (!fixed_layout (m, 0, &size, &mask, NULL))
            return FALSE;
          start = align_up (offset, mask);
          if (rules != NULL)
            {
              add_rules (rules, base + offset, base + start, 0);
              fixed_layout (m, base + start, &size, &mask, rules);
            }
          offset = start + size;
          align_mask = MAX (align_mask, mask);
          if (offset > MAX_FIXED_SIZE)
            return FALSE;
        }
      if (offset == 0)
        {
          /* The empty tuple: one byte, zero. */
          if (rules != NULL)
            add_rules (rules, base, base + 1, 0);
          *out_size = 1;
          *out_align_mask = 0;
          return TRUE;
        }
      *out_size = align_up (offset, align_mask);
      *out_align_mask = align_mask;
      if (rules != NULL)
        add_rules (rules, base + offset, base + *out_size, 0);
      return TRUE;
    }

  switch (g_variant_type_peek_string (type)[0])
    {
    case 'b':
      if (rules != NULL)
        add_rules (rules, base, base + 1, 1);
      G_GNUC_FALLTHROUGH;
    case 'y':
      *out_size = 1;
      break;
    case 'n': case 'q':
      *out_size = 2;
      break;
    case 'i': case 'u': case 'h':
      *out_size = 4;
      break;
    case 'x': case 't': case 'd':
      *out_size = 8;
      break;
    default:
      return FALSE;             /* strings, variants, arrays, maybes */
    }
  *out_align_mask = *out_size - 1;
  return TRUE;
}

/* --- the plan for other tuples ----------------------------------------------- */

static void
type_plan_free (LaneTypePlan *plan)
{
  if (plan == NULL)
    return;
  g_free (plan->members);
  g_free (plan->rules);
  g_free (plan);
}

/* The plan for a tuple whose members are fixed-size values and arrays of
 * fixed-size elements, else NULL (GLib checks it). */
static LaneTypePlan *
type_plan_new (const GVariantType *type)
{
  g_autoptr(GArray) members = g_array_new (FALSE, TRUE, sizeof (LaneMember));
  g_autoptr(GArray) rules = g_array_new (FALSE, FALSE, sizeof (LaneByteRule));
  LaneTypePlan *plan;

  if (!g_variant_type_is_tuple (type))
    return NULL;
  for (const GVariantType *m = g_variant_type_first (type); m != NULL; m = g_variant_type_next (m))
    {
      LaneMember member = { 0 };
      const GVariantType *fixed = m;

      if (g_variant_type_is_array (m))
        {
          member.kind = LANE_MEMBER_ARRAY;
          member.framed = g_variant_type_next (m) != NULL;
          fixed = g_variant_type_element (m);
        }
      else
        member.kind = LANE_MEMBER_FIXED;
      member.first_rule = rules->len;
      if (!fixed_layout (fixed, 0, &member.size, &member.align_mask, rules))
        return NULL;
      member.n_rules = rules->len - member.first_rule;
      g_array_append_val (members, member);
    }
  plan = g_new0 (LaneTypePlan, 1);
  plan->n_members = members->len;
  plan->members = (LaneMember *) (gpointer) g_array_free (g_steal_pointer (&members), FALSE);
  plan->rules = (LaneByteRule *) (gpointer) g_array_free (g_steal_pointer (&rules), FALSE);
  return plan;
}

static gboolean
rules_hold (const LaneByteRule *rules,
            guint               n_rules,
            const guint8       *data)
{
  for (guint i = 0; i < n_rules; i++)
    if (data[rules[i].offset] > rules[i].max)
      return FALSE;
  return TRUE;
}

/* Whether each of the @n elements of @size bytes at @data keeps @rules. */
static gboolean
elements_hold (const LaneByteRule *rules,
               guint               n_rules,
               const guint8       *data,
               gsize               size,
               gsize               n)
{
  if (n_rules == 0)
    return TRUE;
  for (gsize i = 0; i < n; i++)
    if (!rules_hold (rules, n_rules, data + i * size))
      return FALSE;
  return TRUE;
}

static gsize
offset_size_for (gsize size)
{
  if (size > G_MAXUINT32)
    return 8;
  if (size > G_MAXUINT16)
    return 4;
  if (size > G_MAXUINT8)
    return 2;
  return size > 0 ? 1 : 0;
}

static gsize
read_offset (const guint8 *data,
             gsize         width)
{
  gsize value = 0;

  for (gsize i = width; i > 0; i--)
    value = (value << 8) | data[i - 1];
  return value;
}

/* Whether the @size bytes at @data are a tuple of @plan's type in normal
 * form: each member where the framing says, aligned with zeros, of a size
 * its type allows, its constrained bytes as they must be, and nothing
 * after the last but the framing offsets. */
static gboolean
type_plan_walk (const LaneTypePlan *plan,
                const guint8       *data,
                gsize               size)
{
  gsize width = offset_size_for (size);
  gsize frames = size;          /* where the framing offsets read so far begin */
  gsize offset = 0;

  for (guint i = 0; i < plan->n_members; i++)
    {
      const LaneMember *m = &plan->members[i];
      const LaneByteRule *rules = plan->rules + m->first_rule;
      gsize start = align_up (offset, m->align_mask), end;

      if (start > frames)
        return FALSE;
      for (; offset < start; offset++)
        if (data[offset] != 0)
          return FALSE;
      if (m->kind == LANE_MEMBER_FIXED)
        end = start + m->size;
      else if (!m->framed)
        end = frames;
      else
        {
          if (frames - start < width)
            return FALSE;
          frames -= width;
          end = read_offset (data + frames, width);
        }
      if (end < start || end > frames)
        return FALSE;
      if (m->kind == LANE_MEMBER_FIXED)
        {
          if (!rules_hold (rules, m->n_rules, data + start))
            return FALSE;
        }
      else if ((end - start) % m->size != 0 ||
               !elements_hold (rules, m->n_rules, data + start, m->size, (end - start) / m->size))
        return FALSE;
      offset = end;
    }
  return offset == frames;
}

/* --- types ------------------------------------------------------------------- */

void
_peer_lane_type_init (LaneType   *t,
                      const char *signature)
{
  g_autoptr(GArray) rules = g_array_new (FALSE, FALSE, sizeof (LaneByteRule));
  gsize size, align_mask;

  memset (t, 0, sizeof *t);
  t->type = g_variant_type_new (signature);
  t->anchor = type_anchor_new (t->type);
  t->string = g_variant_get_type_string (t->anchor);
  t->length = g_variant_type_get_string_length (t->type);

  if (g_variant_type_equal (t->type, G_VARIANT_TYPE_UNIT))
    t->check = LANE_CHECK_UNIT;
  else if (fixed_layout (t->type, 0, &size, &align_mask, rules))
    {
      t->size = size;
      if (rules->len == 0)
        t->check = LANE_CHECK_SIZE;
      else
        {
          t->check = LANE_CHECK_PLAN;
          t->plan = g_new0 (LaneTypePlan, 1);
          t->plan->n_members = 1;
          t->plan->members = g_new0 (LaneMember, 1);
          t->plan->members[0] = (LaneMember) { LANE_MEMBER_FIXED, FALSE, align_mask, size, 0, rules->len };
          t->plan->rules = (LaneByteRule *) (gpointer) g_array_free (g_steal_pointer (&rules), FALSE);
        }
    }
  else if ((t->plan = type_plan_new (t->type)) == NULL)
    t->check = LANE_CHECK_GLIB;
  else if (t->plan->n_members == 1 && t->plan->members[0].n_rules == 0)
    {
      /* One array of plain numbers, `(ay)` above all. */
      t->check = LANE_CHECK_ELEMENTS;
      t->size = t->plan->members[0].size;
      g_clear_pointer (&t->plan, type_plan_free);
    }
  else
    t->check = LANE_CHECK_PLAN;
}

void
_peer_lane_type_clear (LaneType *t)
{
  g_clear_pointer (&t->plan, type_plan_free);
  g_clear_pointer (&t->anchor, g_variant_unref);
  g_clear_pointer (&t->type, g_variant_type_free);
}

/* Whether @data is a value of @t in normal form, for every check but
 * GLib's. */
static inline gboolean
body_is_normal (const LaneType *t,
                const guint8   *data,
                gsize           size)
{
  switch (t->check)
    {
    case LANE_CHECK_UNIT:
      return size == 1 && data[0] == 0;
    case LANE_CHECK_SIZE:
      return size == t->size;
    case LANE_CHECK_ELEMENTS:
      return size % t->size == 0;
    case LANE_CHECK_PLAN:
      return type_plan_walk (t->plan, data, size);
    case LANE_CHECK_GLIB:
    default:
      return FALSE;             /* never asked: GLib checks those */
    }
}

/* A received body as a value of @t, or NULL when it is not one in normal
 * form. The empty tuple is the shared _peer_lane_unit_variant(). A body
 * checked here is handed to GLib as trusted: it checks nothing again as
 * the value is read. (transfer full) (nullable) */
GVariant *
_peer_lane_type_read (const LaneType *t,
                      GBytes         *body)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (body, &size);

  if (t->check == LANE_CHECK_GLIB)
    {
      /* Not g_variant_ref_sink(), which takes the value's lock. */
      GVariant *value = g_variant_take_ref (g_variant_new_from_bytes (t->type, body, FALSE));

      /* GLib reads a fixed-size value of another size as zeros (of its
       * size), which are in normal form; every such type is checked by
       * a plan, but a size that changed says the same anyway. */
      if (g_variant_get_size (value) != size || !g_variant_is_normal_form (value))
        g_clear_pointer (&value, g_variant_unref);
      return value;
    }
  if (!body_is_normal (t, data, size))
    return NULL;
  if (t->check == LANE_CHECK_UNIT)
    return g_variant_ref (_peer_lane_unit_variant ());
  return g_variant_take_ref (g_variant_new_from_bytes (t->type, body, TRUE));
}

gboolean
_peer_lane_type_check (const LaneType *t,
                       GBytes         *body)
{
  gsize size;
  const guint8 *data = g_bytes_get_data (body, &size);

  if (t->check == LANE_CHECK_GLIB)
    {
      g_autoptr(GVariant) value = _peer_lane_type_read (t, body);

      return value != NULL;
    }
  return body_is_normal (t, data, size);
}
