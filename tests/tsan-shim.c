/* tsan-shim.c: what ThreadSanitizer needs to see of GLib 2.74.
 *
 * Preloaded (LD_PRELOAD) into every program of the ThreadSanitizer test
 * pass, and only there (tests/meson.build). GLib is not built with
 * ThreadSanitizer: its GMutex and GCond are raw futexes, and its handoffs
 * (a source attached in one thread and dispatched in another, a thread
 * pool's items, an async queue's, the last unref of a reference count)
 * happen in atomics TSan cannot see, so without help every access made
 * under a GLib lock, or after a GLib handoff, reads as a race. This file
 * wraps the public entry points that other libraries (libgio, libgobject,
 * libpeer, the tests) call, forwards each to GLib's own, and tells TSan
 * the happens-before edge it stands for:
 *
 * - GMutex: a mutex, with TSan's mutex annotations (lock order included).
 *   GCond: a wait unlocks and relocks its mutex; signal and broadcast
 *   release, a wait acquires. GRecMutex and GRWLock need nothing: 2.74
 *   builds them on pthreads, which TSan intercepts.
 * - Main contexts: g_main_context_invoke(), g_idle_add(),
 *   g_timeout_add() and g_source_set_callback() on idle and timeout
 *   sources (what GTask and GDBus use to hop between threads): the call
 *   releases, the callback acquires; the first three are done here,
 *   through the others, as GLib 2.74 does them. A context is made before
 *   anyone attaches to it or wakes it up. Sources of other kinds (made
 *   with g_source_new()): attaching releases, each of their functions
 *   acquires.
 * - Thread pools: g_thread_pool_push() releases its item, the pool's
 *   function acquires it. Async queues: a push releases, a pop acquires.
 * - Reference counts: g_object_unref(), g_atomic_ref_count_dec(),
 *   g_variant_unref() and g_bytes_unref() release, and the unref that
 *   frees acquires, as a shared pointer's annotations do (where the count
 *   is GLib's and hidden, every unref acquires).
 *   GMainContext and GSource are counted the same way.
 * - GLib's own hidden locks, where other libraries reach them through
 *   entry points: GObject's bit locks, a GData list's (an object's qdata,
 *   weak references included), one-time initialization, and a GVariant
 *   serializing itself on first use.
 * - g_free() called by instrumented code (libpeer, the tests) is checked
 *   as the write to the whole block it is, since the pass has TSan ignore
 *   what the interceptors GLib calls (free() among them) do to memory. A
 *   GMutex is checked at its destruction only when instrumented code
 *   clears it: GIO frees some of its own with counts of its own.
 *
 * Calls GLib makes to itself do not pass through here (libglib binds
 * them locally), nor need to: TSan does not look inside an uninstrumented
 * library, only at what it hands back. In a program without TSan (a tool
 * an interop test starts) the annotations are absent and every wrapper
 * just forwards.
 */
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <glib-object.h>

/* Functions here, not GLib's macros around them. */
#undef g_once_init_enter
#undef g_once_init_leave
#undef g_pointer_bit_lock
#undef g_pointer_bit_trylock
#undef g_pointer_bit_unlock

/* Weak: absent in a program built without ThreadSanitizer. */
void __tsan_acquire (void *addr) __attribute__ ((weak));
void __tsan_release (void *addr) __attribute__ ((weak));
void __tsan_mutex_create (void *addr, unsigned flags) __attribute__ ((weak));
void __tsan_mutex_destroy (void *addr, unsigned flags) __attribute__ ((weak));
void __tsan_mutex_pre_lock (void *addr, unsigned flags) __attribute__ ((weak));
void __tsan_mutex_post_lock (void *addr, unsigned flags, int recursion) __attribute__ ((weak));
int  __tsan_mutex_pre_unlock (void *addr, unsigned flags) __attribute__ ((weak));
void __tsan_mutex_post_unlock (void *addr, unsigned flags) __attribute__ ((weak));
void __tsan_write_range_pc (void *addr, unsigned long size, void *pc) __attribute__ ((weak));

#define TSAN_MUTEX_TRY_LOCK        (1u << 4)
#define TSAN_MUTEX_TRY_LOCK_FAILED (1u << 5)

/* Whether the annotations are there: a constant of the process. */
#define tsan (__tsan_acquire != NULL)

static inline void
acquire (const void *addr)
{
  if (tsan && addr != NULL)
    __tsan_acquire ((void *) addr);
}

static inline void
release (const void *addr)
{
  if (tsan && addr != NULL)
    __tsan_release ((void *) addr);
}

/* GLib's own functions, looked up on first use: libgobject's and
 * libgio's constructors lock mutexes before the shim's could run. */
#define DECLARE_REAL(name) static __typeof__ (name) *real_##name
DECLARE_REAL (g_mutex_init);
DECLARE_REAL (g_mutex_clear);
DECLARE_REAL (g_mutex_lock);
DECLARE_REAL (g_mutex_trylock);
DECLARE_REAL (g_mutex_unlock);
DECLARE_REAL (g_cond_wait);
DECLARE_REAL (g_cond_wait_until);
DECLARE_REAL (g_cond_signal);
DECLARE_REAL (g_cond_broadcast);
DECLARE_REAL (g_main_context_new);
DECLARE_REAL (g_main_context_wakeup);
DECLARE_REAL (g_source_set_callback);
DECLARE_REAL (g_source_attach);
DECLARE_REAL (g_source_new);
DECLARE_REAL (g_bit_lock);
DECLARE_REAL (g_bit_trylock);
DECLARE_REAL (g_bit_unlock);
DECLARE_REAL (g_pointer_bit_lock);
DECLARE_REAL (g_pointer_bit_trylock);
DECLARE_REAL (g_pointer_bit_unlock);
DECLARE_REAL (g_datalist_id_get_data);
DECLARE_REAL (g_datalist_id_set_data_full);
DECLARE_REAL (g_datalist_id_remove_multiple);
DECLARE_REAL (g_datalist_id_dup_data);
DECLARE_REAL (g_datalist_id_replace_data);
DECLARE_REAL (g_datalist_id_remove_no_notify);
DECLARE_REAL (g_datalist_get_data);
DECLARE_REAL (g_datalist_foreach);
DECLARE_REAL (g_datalist_clear);
DECLARE_REAL (g_once_init_enter);
DECLARE_REAL (g_once_init_leave);
DECLARE_REAL (g_thread_pool_new);
DECLARE_REAL (g_thread_pool_new_full);
DECLARE_REAL (g_thread_pool_push);
DECLARE_REAL (g_async_queue_push);
DECLARE_REAL (g_async_queue_push_unlocked);
DECLARE_REAL (g_async_queue_push_front);
DECLARE_REAL (g_async_queue_push_front_unlocked);
DECLARE_REAL (g_async_queue_pop);
DECLARE_REAL (g_async_queue_pop_unlocked);
DECLARE_REAL (g_async_queue_try_pop);
DECLARE_REAL (g_async_queue_try_pop_unlocked);
DECLARE_REAL (g_async_queue_timeout_pop);
DECLARE_REAL (g_async_queue_timeout_pop_unlocked);
DECLARE_REAL (g_free);
DECLARE_REAL (g_object_unref);
DECLARE_REAL (g_atomic_ref_count_dec);
DECLARE_REAL (g_main_context_unref);
DECLARE_REAL (g_source_unref);
DECLARE_REAL (g_variant_unref);
DECLARE_REAL (g_variant_get_data);
DECLARE_REAL (g_variant_get_data_as_bytes);
DECLARE_REAL (g_bytes_unref);
#undef DECLARE_REAL

static gpointer
lookup (const char *name)
{
  gpointer symbol = dlsym (RTLD_NEXT, name);

  if (symbol == NULL)
    g_error ("tsan-shim: no %s after the shim: %s", name, dlerror ());
  return symbol;
}

#define REAL(name) \
  (G_LIKELY (real_##name != NULL) ? real_##name : (real_##name = lookup (#name)))

/* --- who is calling ------------------------------------------------------ */

/* The code of GLib's own libraries, which TSan does not instrument. */
typedef struct {
  guintptr start;
  guintptr end;
} Range;

static Range glib_code[16];
static int n_glib_code;
static pthread_once_t glib_code_once = PTHREAD_ONCE_INIT;

static int
add_glib_code (struct dl_phdr_info *info,
               size_t               size,
               void                *data)
{
  if (info->dlpi_name == NULL ||
      (strstr (info->dlpi_name, "/libglib-2.0.so") == NULL &&
       strstr (info->dlpi_name, "/libgobject-2.0.so") == NULL &&
       strstr (info->dlpi_name, "/libgio-2.0.so") == NULL))
    return 0;
  for (int i = 0; i < info->dlpi_phnum && n_glib_code < (int) G_N_ELEMENTS (glib_code); i++)
    if (info->dlpi_phdr[i].p_type == PT_LOAD && (info->dlpi_phdr[i].p_flags & PF_X))
      {
        glib_code[n_glib_code].start = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
        glib_code[n_glib_code].end = glib_code[n_glib_code].start + info->dlpi_phdr[i].p_memsz;
        n_glib_code++;
      }
  return 0;
}

static void
find_glib_code (void)
{
  dl_iterate_phdr (add_glib_code, NULL);
}

static gboolean
in_glib (const void *caller)
{
  pthread_once (&glib_code_once, find_glib_code);
  for (int i = 0; i < n_glib_code; i++)
    if ((guintptr) caller >= glib_code[i].start && (guintptr) caller < glib_code[i].end)
      return TRUE;
  return FALSE;
}

/* --- GMutex, GCond -------------------------------------------------------- */

void
g_mutex_init (GMutex *mutex)
{
  REAL (g_mutex_init) (mutex);
  if (tsan)
    __tsan_mutex_create (mutex, 0);
}

/* A destroy is checked against every earlier lock, which needs the
 * happens-before edge that the owner's reference count gives: GIO counts
 * some of its objects (GDBus's worker) with atomics of its own, so only
 * the mutexes of instrumented code are checked. */
void
g_mutex_clear (GMutex *mutex)
{
  if (tsan && !in_glib (__builtin_return_address (0)))
    __tsan_mutex_destroy (mutex, 0);
  REAL (g_mutex_clear) (mutex);
}

void
g_mutex_lock (GMutex *mutex)
{
  if (tsan)
    __tsan_mutex_pre_lock (mutex, 0);
  REAL (g_mutex_lock) (mutex);
  if (tsan)
    __tsan_mutex_post_lock (mutex, 0, 0);
}

gboolean
g_mutex_trylock (GMutex *mutex)
{
  gboolean locked;

  if (tsan)
    __tsan_mutex_pre_lock (mutex, TSAN_MUTEX_TRY_LOCK);
  locked = REAL (g_mutex_trylock) (mutex);
  if (tsan)
    __tsan_mutex_post_lock (mutex, TSAN_MUTEX_TRY_LOCK | (locked ? 0 : TSAN_MUTEX_TRY_LOCK_FAILED), 0);
  return locked;
}

void
g_mutex_unlock (GMutex *mutex)
{
  if (tsan)
    __tsan_mutex_pre_unlock (mutex, 0);
  REAL (g_mutex_unlock) (mutex);
  if (tsan)
    __tsan_mutex_post_unlock (mutex, 0);
}

/* A wait gives the mutex up and takes it back. */
static void
wait_begins (GMutex *mutex)
{
  if (tsan)
    {
      __tsan_mutex_pre_unlock (mutex, 0);
      __tsan_mutex_post_unlock (mutex, 0);
    }
}

static void
wait_ends (GCond  *cond,
           GMutex *mutex)
{
  if (tsan)
    {
      __tsan_mutex_pre_lock (mutex, 0);
      __tsan_mutex_post_lock (mutex, 0, 0);
    }
  acquire (cond);
}

void
g_cond_wait (GCond  *cond,
             GMutex *mutex)
{
  wait_begins (mutex);
  REAL (g_cond_wait) (cond, mutex);
  wait_ends (cond, mutex);
}

gboolean
g_cond_wait_until (GCond  *cond,
                   GMutex *mutex,
                   gint64  end_time)
{
  gboolean signalled;

  wait_begins (mutex);
  signalled = REAL (g_cond_wait_until) (cond, mutex, end_time);
  wait_ends (cond, mutex);
  return signalled;
}

void
g_cond_signal (GCond *cond)
{
  release (cond);
  REAL (g_cond_signal) (cond);
}

void
g_cond_broadcast (GCond *cond)
{
  release (cond);
  REAL (g_cond_broadcast) (cond);
}

/* --- main contexts ------------------------------------------------------- */

/* A callback handed to another thread: released when handed over, and
 * acquired each time it runs (and when its data is freed). */
typedef struct {
  GSourceFunc func;
  gpointer data;
  GDestroyNotify notify;
} Hop;

static Hop *
hop_new (GSourceFunc    func,
         gpointer       data,
         GDestroyNotify notify)
{
  Hop *hop = g_new (Hop, 1);

  hop->func = func;
  hop->data = data;
  hop->notify = notify;
  release (hop);
  return hop;
}

static gboolean
hop_run (gpointer user_data)
{
  Hop *hop = user_data;

  acquire (hop);
  acquire (g_main_current_source ());
  return hop->func (hop->data);
}

static void
hop_free (gpointer user_data)
{
  Hop *hop = user_data;

  acquire (hop);
  if (hop->notify != NULL)
    hop->notify (hop->data);
  g_free (hop);
}

/* What GLib 2.74's g_main_context_invoke_full() does, through the entry
 * points above: GLib's own would attach its source where the shim cannot
 * see it, after the release. */
void
g_main_context_invoke_full (GMainContext   *context,
                            gint            priority,
                            GSourceFunc     function,
                            gpointer        data,
                            GDestroyNotify  notify)
{
  GMainContext *thread_default;
  GSource *source;

  if (context == NULL)
    context = g_main_context_default ();
  if (g_main_context_is_owner (context))
    {
      while (function (data))
        ;
      if (notify != NULL)
        notify (data);
      return;
    }
  thread_default = g_main_context_get_thread_default ();
  if (thread_default == NULL)
    thread_default = g_main_context_default ();
  if (thread_default == context && g_main_context_acquire (context))
    {
      while (function (data))
        ;
      g_main_context_release (context);
      if (notify != NULL)
        notify (data);
      return;
    }
  source = g_idle_source_new ();
  g_source_set_priority (source, priority);
  g_source_set_callback (source, function, data, notify);
  g_source_set_static_name (source, "[glib] g_main_context_invoke_full");
  g_source_attach (source, context);
  g_source_unref (source);
}

void
g_main_context_invoke (GMainContext *context,
                       GSourceFunc   function,
                       gpointer      data)
{
  g_main_context_invoke_full (context, G_PRIORITY_DEFAULT, function, data, NULL);
}

static guint
attach_to_default (GSource        *source,
                   gint            priority,
                   GSourceFunc     function,
                   gpointer        data,
                   GDestroyNotify  notify)
{
  guint id;

  g_source_set_priority (source, priority);
  g_source_set_callback (source, function, data, notify);
  id = g_source_attach (source, NULL);
  g_source_unref (source);
  return id;
}

guint
g_idle_add_full (gint           priority,
                 GSourceFunc    function,
                 gpointer       data,
                 GDestroyNotify notify)
{
  return attach_to_default (g_idle_source_new (), priority, function, data, notify);
}

guint
g_idle_add (GSourceFunc function,
            gpointer    data)
{
  return g_idle_add_full (G_PRIORITY_DEFAULT_IDLE, function, data, NULL);
}

guint
g_timeout_add_full (gint           priority,
                    guint          interval,
                    GSourceFunc    function,
                    gpointer       data,
                    GDestroyNotify notify)
{
  return attach_to_default (g_timeout_source_new (interval), priority, function, data, notify);
}

guint
g_timeout_add (guint       interval,
               GSourceFunc function,
               gpointer    data)
{
  return g_timeout_add_full (G_PRIORITY_DEFAULT, interval, function, data, NULL);
}

guint
g_timeout_add_seconds_full (gint           priority,
                            guint          interval,
                            GSourceFunc    function,
                            gpointer       data,
                            GDestroyNotify notify)
{
  return attach_to_default (g_timeout_source_new_seconds (interval), priority, function, data, notify);
}

guint
g_timeout_add_seconds (guint       interval,
                       GSourceFunc function,
                       gpointer    data)
{
  return g_timeout_add_seconds_full (G_PRIORITY_DEFAULT, interval, function, data, NULL);
}

/* Only idle and timeout sources take a plain GSourceFunc; the callbacks
 * of other kinds (child watches, sockets, fds) have other types. */
void
g_source_set_callback (GSource        *source,
                       GSourceFunc     func,
                       gpointer        data,
                       GDestroyNotify  notify)
{
  if (source->source_funcs == &g_idle_funcs || source->source_funcs == &g_timeout_funcs)
    REAL (g_source_set_callback) (source, hop_run, hop_new (func, data, notify), hop_free);
  else
    REAL (g_source_set_callback) (source, func, data, notify);
}

/* A context is whole before anyone attaches to it or wakes it up: its
 * wakeup fd, made with it, is written to by whichever thread does. */
GMainContext *
g_main_context_new (void)
{
  GMainContext *context = REAL (g_main_context_new) ();

  release (context);
  return context;
}

void
g_main_context_wakeup (GMainContext *context)
{
  acquire (context);
  REAL (g_main_context_wakeup) (context);
}

guint
g_source_attach (GSource      *source,
                 GMainContext *context)
{
  acquire (context);
  release (source);
  return REAL (g_source_attach) (source, context);
}

/* Sources of other kinds than idles and timeouts (a library's own, such
 * as the lane's per-context source): g_source_attach() releases the
 * source, and the context's thread acquires it before each of the
 * source's functions, which read what the attaching thread set up. The
 * functions are wrapped once per GSourceFuncs, the wrapper pointing back
 * to the real ones; a function the real ones leave out stays out. */
typedef struct {
  GSourceFuncs funcs;                   /* first: what the source points to */
  const GSourceFuncs *real;
} WrappedFuncs;

static const GSourceFuncs *
real_funcs (GSource *source)
{
  return ((const WrappedFuncs *) source->source_funcs)->real;
}

static gboolean
wrapped_prepare (GSource *source,
                 gint    *timeout)
{
  acquire (source);
  return real_funcs (source)->prepare (source, timeout);
}

static gboolean
wrapped_check (GSource *source)
{
  acquire (source);
  return real_funcs (source)->check (source);
}

static gboolean
wrapped_dispatch (GSource     *source,
                  GSourceFunc  callback,
                  gpointer     data)
{
  acquire (source);
  return real_funcs (source)->dispatch (source, callback, data);
}

static void
wrapped_finalize (GSource *source)
{
  acquire (source);
  real_funcs (source)->finalize (source);
}

static pthread_mutex_t wrapped_lock = PTHREAD_MUTEX_INITIALIZER;
static WrappedFuncs *wrapped[64];
static guint n_wrapped;

GSource *
g_source_new (GSourceFuncs *source_funcs,
              guint         struct_size)
{
  WrappedFuncs *w = NULL;

  if (source_funcs == &g_idle_funcs || source_funcs == &g_timeout_funcs)
    return REAL (g_source_new) (source_funcs, struct_size);
  pthread_mutex_lock (&wrapped_lock);
  for (guint i = 0; i < n_wrapped && w == NULL; i++)
    if (wrapped[i]->real == source_funcs)
      w = wrapped[i];
  if (w == NULL && n_wrapped < G_N_ELEMENTS (wrapped))
    {
      /* Kept for the process's life, as the real ones are. */
      w = calloc (1, sizeof (WrappedFuncs));
      w->real = source_funcs;
      w->funcs.prepare = source_funcs->prepare != NULL ? wrapped_prepare : NULL;
      w->funcs.check = source_funcs->check != NULL ? wrapped_check : NULL;
      w->funcs.dispatch = source_funcs->dispatch != NULL ? wrapped_dispatch : NULL;
      w->funcs.finalize = source_funcs->finalize != NULL ? wrapped_finalize : NULL;
      w->funcs.closure_callback = source_funcs->closure_callback;
      w->funcs.closure_marshal = source_funcs->closure_marshal;
      wrapped[n_wrapped++] = w;
    }
  pthread_mutex_unlock (&wrapped_lock);
  /* Too many kinds: the rest go unwrapped (and may be reported). */
  return REAL (g_source_new) (w != NULL ? &w->funcs : source_funcs, struct_size);
}

/* --- one-time initialization -------------------------------------------- */

/* g_once_init_enter()'s fast path is an atomic load in the caller's own
 * (instrumented) code: the store it pairs with, in g_once_init_leave(),
 * must be a release TSan sees. */
gboolean
g_once_init_enter (volatile void *location)
{
  gboolean enter = REAL (g_once_init_enter) (location);

  if (!enter)
    acquire ((const void *) location);
  return enter;
}

void
g_once_init_leave (volatile void *location,
                   gsize          result)
{
  release ((const void *) location);
  REAL (g_once_init_leave) (location, result);
}

/* --- bit locks and data lists ------------------------------------------ */

/* GObject's own locks (libgobject calls these): a lock acquires what the
 * last unlock released. */
void
g_bit_lock (volatile gint *address,
            gint           lock_bit)
{
  REAL (g_bit_lock) (address, lock_bit);
  acquire ((const void *) address);
}

gboolean
g_bit_trylock (volatile gint *address,
               gint           lock_bit)
{
  gboolean locked = REAL (g_bit_trylock) (address, lock_bit);

  if (locked)
    acquire ((const void *) address);
  return locked;
}

void
g_bit_unlock (volatile gint *address,
              gint           lock_bit)
{
  release ((const void *) address);
  REAL (g_bit_unlock) (address, lock_bit);
}

void
g_pointer_bit_lock (volatile void *address,
                    gint           lock_bit)
{
  REAL (g_pointer_bit_lock) (address, lock_bit);
  acquire ((const void *) address);
}

gboolean
g_pointer_bit_trylock (volatile void *address,
                       gint           lock_bit)
{
  gboolean locked = REAL (g_pointer_bit_trylock) (address, lock_bit);

  if (locked)
    acquire ((const void *) address);
  return locked;
}

void
g_pointer_bit_unlock (volatile void *address,
                      gint           lock_bit)
{
  release ((const void *) address);
  REAL (g_pointer_bit_unlock) (address, lock_bit);
}

/* An object's qdata (its weak references, signal handlers and data) is
 * a GData list that libglib locks with a bit lock of its own, inside: a
 * call acquires what the list's last call released, as the lock would. */
#define DATALIST_BEGIN(datalist) acquire (datalist)
#define DATALIST_END(datalist) release (datalist)

gpointer
g_datalist_id_get_data (GData  **datalist,
                        GQuark   key_id)
{
  gpointer data;

  DATALIST_BEGIN (datalist);
  data = REAL (g_datalist_id_get_data) (datalist, key_id);
  DATALIST_END (datalist);
  return data;
}

void
g_datalist_id_set_data_full (GData          **datalist,
                             GQuark           key_id,
                             gpointer         data,
                             GDestroyNotify   destroy_func)
{
  DATALIST_BEGIN (datalist);
  REAL (g_datalist_id_set_data_full) (datalist, key_id, data, destroy_func);
  DATALIST_END (datalist);
}

void
g_datalist_id_remove_multiple (GData  **datalist,
                               GQuark  *keys,
                               gsize    n_keys)
{
  DATALIST_BEGIN (datalist);
  REAL (g_datalist_id_remove_multiple) (datalist, keys, n_keys);
  DATALIST_END (datalist);
}

gpointer
g_datalist_id_dup_data (GData          **datalist,
                        GQuark           key_id,
                        GDuplicateFunc   dup_func,
                        gpointer         user_data)
{
  gpointer data;

  DATALIST_BEGIN (datalist);
  data = REAL (g_datalist_id_dup_data) (datalist, key_id, dup_func, user_data);
  DATALIST_END (datalist);
  return data;
}

gboolean
g_datalist_id_replace_data (GData          **datalist,
                            GQuark           key_id,
                            gpointer         oldval,
                            gpointer         newval,
                            GDestroyNotify   destroy,
                            GDestroyNotify  *old_destroy)
{
  gboolean replaced;

  DATALIST_BEGIN (datalist);
  replaced = REAL (g_datalist_id_replace_data) (datalist, key_id, oldval, newval, destroy, old_destroy);
  DATALIST_END (datalist);
  return replaced;
}

gpointer
g_datalist_id_remove_no_notify (GData  **datalist,
                                GQuark   key_id)
{
  gpointer data;

  DATALIST_BEGIN (datalist);
  data = REAL (g_datalist_id_remove_no_notify) (datalist, key_id);
  DATALIST_END (datalist);
  return data;
}

gpointer
g_datalist_get_data (GData      **datalist,
                     const gchar *key)
{
  gpointer data;

  DATALIST_BEGIN (datalist);
  data = REAL (g_datalist_get_data) (datalist, key);
  DATALIST_END (datalist);
  return data;
}

void
g_datalist_foreach (GData           **datalist,
                    GDataForeachFunc  func,
                    gpointer          user_data)
{
  DATALIST_BEGIN (datalist);
  REAL (g_datalist_foreach) (datalist, func, user_data);
  DATALIST_END (datalist);
}

void
g_datalist_clear (GData **datalist)
{
  DATALIST_BEGIN (datalist);
  REAL (g_datalist_clear) (datalist);
  DATALIST_END (datalist);
}

/* --- thread pools and async queues --------------------------------------- */

typedef struct {
  GFunc func;
  gpointer user_data;
} PoolFunc;

static void
pool_run (gpointer data,
          gpointer user_data)
{
  PoolFunc *pool_func = user_data;

  acquire (data);
  pool_func->func (data, pool_func->user_data);
}

/* The PoolFunc lives as long as the program: a pool's function may run
 * until its last thread has left it. */
static PoolFunc *
pool_func_new (GFunc    func,
               gpointer user_data)
{
  PoolFunc *pool_func = g_new (PoolFunc, 1);

  pool_func->func = func;
  pool_func->user_data = user_data;
  return pool_func;
}

GThreadPool *
g_thread_pool_new (GFunc     func,
                   gpointer  user_data,
                   gint      max_threads,
                   gboolean  exclusive,
                   GError  **error)
{
  return REAL (g_thread_pool_new) (pool_run, pool_func_new (func, user_data), max_threads, exclusive, error);
}

GThreadPool *
g_thread_pool_new_full (GFunc           func,
                        gpointer        user_data,
                        GDestroyNotify  item_free_func,
                        gint            max_threads,
                        gboolean        exclusive,
                        GError        **error)
{
  return REAL (g_thread_pool_new_full) (pool_run, pool_func_new (func, user_data), item_free_func,
                                      max_threads, exclusive, error);
}

gboolean
g_thread_pool_push (GThreadPool  *pool,
                    gpointer      data,
                    GError      **error)
{
  release (data);
  return REAL (g_thread_pool_push) (pool, data, error);
}

void
g_async_queue_push (GAsyncQueue *queue,
                    gpointer     data)
{
  release (data);
  REAL (g_async_queue_push) (queue, data);
}

void
g_async_queue_push_unlocked (GAsyncQueue *queue,
                             gpointer     data)
{
  release (data);
  REAL (g_async_queue_push_unlocked) (queue, data);
}

void
g_async_queue_push_front (GAsyncQueue *queue,
                          gpointer     data)
{
  release (data);
  REAL (g_async_queue_push_front) (queue, data);
}

void
g_async_queue_push_front_unlocked (GAsyncQueue *queue,
                                   gpointer     data)
{
  release (data);
  REAL (g_async_queue_push_front_unlocked) (queue, data);
}

static gpointer
popped (gpointer data)
{
  acquire (data);
  return data;
}

gpointer
g_async_queue_pop (GAsyncQueue *queue)
{
  return popped (REAL (g_async_queue_pop) (queue));
}

gpointer
g_async_queue_pop_unlocked (GAsyncQueue *queue)
{
  return popped (REAL (g_async_queue_pop_unlocked) (queue));
}

gpointer
g_async_queue_try_pop (GAsyncQueue *queue)
{
  return popped (REAL (g_async_queue_try_pop) (queue));
}

gpointer
g_async_queue_try_pop_unlocked (GAsyncQueue *queue)
{
  return popped (REAL (g_async_queue_try_pop_unlocked) (queue));
}

gpointer
g_async_queue_timeout_pop (GAsyncQueue *queue,
                           guint64      timeout)
{
  return popped (REAL (g_async_queue_timeout_pop) (queue, timeout));
}

gpointer
g_async_queue_timeout_pop_unlocked (GAsyncQueue *queue,
                                    guint64      timeout)
{
  return popped (REAL (g_async_queue_timeout_pop_unlocked) (queue, timeout));
}

/* --- freeing -------------------------------------------------------------- */

/* The TSan pass has TSan ignore the memory accesses of interceptors that
 * uninstrumented code calls (ignore_noninstrumented_modules): GLib's own
 * traffic, and so also the free() inside a g_free() that libpeer calls.
 * That one is checked here instead, as the write to the whole block that
 * a free is. */
void
g_free (gpointer mem)
{
  void *caller = __builtin_return_address (0);

  if (tsan && mem != NULL && !in_glib (caller))
    __tsan_write_range_pc (mem, malloc_usable_size (mem), caller);
  REAL (g_free) (mem);
}

/* --- reference counts ---------------------------------------------------- */

/* Every unref acquires, not just one that sees the count at 1: two
 * holders dropping their references at once both see 2. */
void
g_object_unref (gpointer object)
{
  release (object);
  acquire (object);
  REAL (g_object_unref) (object);
}

gboolean
g_atomic_ref_count_dec (gatomicrefcount *arc)
{
  gboolean last;

  release (arc);
  last = REAL (g_atomic_ref_count_dec) (arc);
  if (last)
    acquire (arc);
  return last;
}

/* Counted inside libglib, where the shim cannot see which unref frees:
 * every unref acquires. A context's poll records and a source's
 * callback data are what the last one frees. */
void
g_main_context_unref (GMainContext *context)
{
  release (context);
  acquire (context);
  REAL (g_main_context_unref) (context);
}

void
g_source_unref (GSource *source)
{
  release (source);
  acquire (source);
  REAL (g_source_unref) (source);
}

/* No count to look at: every unref acquires. Their data is immutable. */
void
g_variant_unref (GVariant *value)
{
  release (value);
  acquire (value);
  REAL (g_variant_unref) (value);
}

void
g_bytes_unref (GBytes *bytes)
{
  release (bytes);
  acquire (bytes);
  REAL (g_bytes_unref) (bytes);
}

/* A GVariant built in tree form serializes itself the first time its
 * bytes are asked for, under a lock of libglib's own: whoever asks next,
 * in whatever thread, reads what that first caller wrote. */
gconstpointer
g_variant_get_data (GVariant *value)
{
  gconstpointer data;

  acquire (value);
  data = REAL (g_variant_get_data) (value);
  release (value);
  return data;
}

GBytes *
g_variant_get_data_as_bytes (GVariant *value)
{
  GBytes *bytes;

  acquire (value);
  bytes = REAL (g_variant_get_data_as_bytes) (value);
  release (value);
  return bytes;
}
