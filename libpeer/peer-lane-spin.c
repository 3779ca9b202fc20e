/* peer-lane-spin.c: spin-then-sleep, how both ends of a lane wait for a
 * frame: a client for its reply, a server's lane thread for the next call.
 *
 * A frame that comes within some tens of microseconds is waited for by
 * polling the socket, not by sleeping in recvmsg(): when the peer runs on
 * another CPU, being woken costs more than a whole call (20-25 µs on a
 * shared VM, against a round trip of some 5 µs when both ends poll).
 *
 * What a poll costs: one recv(MSG_PEEK | MSG_DONTWAIT), then a few
 * pause instructions (which tell the CPU, and a hypervisor, that this is
 * a spin), then the clock (the vDSO: no syscall). No sched_yield(): a
 * peer that shares our CPU is not helped by a spin at all, and is not
 * spun for (below).
 *
 * Whether to spin at all: only when this thread and its peer can run on
 * two CPUs between them. The masks are the kernel's (sched_getaffinity(),
 * which `taskset` sets), this thread's and the peer process's, not the
 * machine's CPU count: under `taskset -c 0` both ends share one CPU, and
 * a spin there only delays the peer it waits for; pinned to CPUs 0 and 1,
 * each end's own mask has one CPU, and spinning is what saves the
 * wake-up.
 *
 * How long: twice the recent time a spin took to catch a frame (a moving
 * average), within [SPIN_MIN_US, the maximum]. A spin that catches
 * nothing is followed by one at the maximum (the peer got slower: by how
 * much?); after SPIN_MISSES in a row (a peer slower than spinning is
 * worth: a handler that works, an idle client) spinning stops, and is
 * tried again every SPIN_PROBE_EVERY waits at the maximum, so a peer that
 * got faster is noticed. One late frame on a noisy machine stops
 * nothing. A frame already there when the wait starts (a
 * pipelined call) says nothing of the peer's speed and changes nothing.
 * So an idle end burns at most one budget after its last frame.
 *
 * How many at once: a spin helps only a thread that has a CPU to itself
 * while it waits. However many lanes and threads a process has (64
 * clients each calling from its own thread, a server's loops), at most
 * one thread fewer than the process's CPUs spins at a time (at least
 * one), and none while more threads than that wait for frames
 * (_peer_lane_wait_begin()): the CPUs are then wanted by the threads
 * whose frames come, and a spinner would be served first every time (it
 * calls again at once, and is answered at once), the others starved.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer-lane-private.h"

#define SPIN_MAX_US 50
#define SPIN_MIN_US 15
#define SPIN_PROBE_EVERY 64
#define SPIN_MISSES 4
/* Pauses between polls: some 0.1-0.3 µs, less than the poll itself. */
#define SPIN_PAUSES 16

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__) || defined(__arm__)
  __asm__ __volatile__ ("yield" ::: "memory");
#else
  __asm__ __volatile__ ("" ::: "memory");
#endif
}

static inline gint64
now_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64) ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

/* The most a wait spins, in µs: $PEER_LANE_SPIN_US (0 turns spinning
 * off, for a machine where CPU time matters more than latency), else
 * SPIN_MAX_US. Read once. */
static gint64
spin_max_us (void)
{
  static gsize value;

  if (g_once_init_enter (&value))
    {
      const char *text = g_getenv ("PEER_LANE_SPIN_US");
      guint64 us = SPIN_MAX_US;

      if (text != NULL && !g_ascii_string_to_unsigned (text, 10, 0, 1000, &us, NULL))
        {
          g_debug ("libpeer: PEER_LANE_SPIN_US=%s is not a number of µs from 0 to 1000; using %d",
                   text, SPIN_MAX_US);
          us = SPIN_MAX_US;
        }
      /* Stored plus one: g_once_init_leave() takes no zero. */
      g_once_init_leave (&value, (gsize) us + 1);
    }
  return (gint64) value - 1;
}

gint64
_peer_lane_spin_max_for (const cpu_set_t *ours,
                         const cpu_set_t *peers,
                         gint64           max_us)
{
  cpu_set_t both;

  if (peers == NULL)
    return CPU_COUNT (ours) > 1 ? max_us : 0;
  CPU_OR (&both, ours, peers);
  return CPU_COUNT (&both) > 1 ? max_us : 0;
}

/* Threads of this process spinning now, and how many may; threads
 * waiting for a frame. */
static gint n_spinning;
static gint max_spinning = 1;
static gint n_waiting;

void
_peer_lane_wait_begin (void)
{
  g_atomic_int_inc (&n_waiting);
}

void
_peer_lane_wait_end (void)
{
  g_atomic_int_add (&n_waiting, -1);
}

guint
_peer_lane_n_cpus (void)
{
  cpu_set_t mask;

  CPU_ZERO (&mask);
  if (sched_getaffinity (getpid (), sizeof mask, &mask) != 0 || CPU_COUNT (&mask) == 0)
    return MAX (1, g_get_num_processors ());
  return CPU_COUNT (&mask);
}

/* Decides, at the first wait, whether this end spins at all: from the
 * calling thread's CPUs and the peer's (its pid as given, else as the
 * socket's credentials say: a lane socketpair's are its creator's, the
 * server, which a client wants and a server does not). A peer that is
 * this process, or whose mask cannot be read (in another pid namespace),
 * is taken to share this thread's CPUs. */
static void
spin_decide (LaneSpin *spin,
             int       fd)
{
  cpu_set_t ours, peers;
  pid_t pid = spin->peer_pid;
  gboolean have_peer = FALSE;

  if (pid <= 0)
    {
      struct ucred cred;
      socklen_t length = sizeof cred;

      if (getsockopt (fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) == 0)
        pid = cred.pid;
    }
  if (pid > 0 && pid != getpid ())
    {
      CPU_ZERO (&peers);
      have_peer = sched_getaffinity (pid, sizeof peers, &peers) == 0;
    }
  CPU_ZERO (&ours);
  if (sched_getaffinity (0, sizeof ours, &ours) != 0)
    {
      spin->max = 0;
      return;
    }
  spin->max = _peer_lane_spin_max_for (&ours, have_peer ? &peers : NULL, spin_max_us ()) * 1000;
  spin->budget = spin->max;
  /* The process's CPUs, as they are when the lane is first waited on. */
  g_atomic_int_set (&max_spinning, MAX (1, (gint) _peer_lane_n_cpus () - 1));
}

void
_peer_lane_spin_init_for_peer (LaneSpin *spin,
                               pid_t     peer_pid)
{
  *spin = (LaneSpin) { .max = -1, .peer_pid = peer_pid };
}

void
_peer_lane_spin_init (LaneSpin *spin)
{
  _peer_lane_spin_init_for_peer (spin, 0);
}

void
_peer_lane_spin_record (LaneSpin *spin,
                        gboolean  caught,
                        gint64    waited_ns)
{
  gint64 min = MIN (SPIN_MIN_US * 1000, spin->max);

  if (caught)
    {
      /* An average over some 8 waits, in ns. */
      spin->average += (waited_ns - spin->average) / 8;
      spin->budget = CLAMP (2 * spin->average, min, spin->max);
      spin->misses = 0;
    }
  else if (++spin->misses < SPIN_MISSES)
    spin->budget = spin->max;   /* the peer got slower: find out how much */
  else
    spin->budget = 0;
}

/* Whether @fd has something to read (or is at its end, or broken). */
static inline gboolean
spin_probe (int fd)
{
  guint8 byte;

  return recv (fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) >= 0 || (errno != EAGAIN && errno != EINTR);
}

/* Before a blocking read of @fd: returns when a frame (or the end of the
 * stream) is there, or when the budget is spent; TRUE in the first case. */
gboolean
_peer_lane_spin_wait (LaneSpin *spin,
                      int       fd)
{
  gint64 start, now, end;
  gboolean ready = FALSE;

  if (G_UNLIKELY (spin->max < 0))
    spin_decide (spin, fd);
  if (spin->max == 0)
    return FALSE;
  if (spin->budget == 0)
    {
      if (++spin->unspun < SPIN_PROBE_EVERY)
        return FALSE;
      spin->unspun = 0;
      spin->budget = spin->max;
    }

  if (spin_probe (fd))
    return TRUE;                /* there already */
  /* Another thread of ours has the spare CPU, or others wait for it:
   * sleep at once, and learn nothing from it. */
  if (g_atomic_int_get (&n_waiting) > g_atomic_int_get (&max_spinning))
    return FALSE;
  if (g_atomic_int_add (&n_spinning, 1) >= g_atomic_int_get (&max_spinning))
    {
      g_atomic_int_add (&n_spinning, -1);
      return FALSE;
    }
  start = now_ns ();
  end = start + spin->budget;
  do
    {
      for (guint i = 0; i < SPIN_PAUSES; i++)
        cpu_relax ();
      ready = spin_probe (fd);
      now = now_ns ();
    }
  while (!ready && now < end);
  g_atomic_int_add (&n_spinning, -1);
  _peer_lane_spin_record (spin, ready, now - start);
  return ready;
}
