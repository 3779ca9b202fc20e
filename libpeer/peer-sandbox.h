/* peer-sandbox.h: a sandbox for a PeerHelper that works on untrusted input.
 *
 * A PeerSandbox is a profile: what a helper started with
 * peer_helper_new_sandboxed() may see and do. The default profile
 * (peer_sandbox_new() as it comes) gives the helper
 *
 *  - new user, mount, network, PID, IPC and UTS namespaces; a read-only
 *    view of /usr, /lib*, /bin, /sbin, /etc/ld.so.cache, the helper binary
 *    and the directories its RUNPATH, LD_LIBRARY_PATH and LD_PRELOAD name;
 *    /dev/null, /dev/zero, /dev/random and /dev/urandom; its own /proc and
 *    an empty private /tmp. Nothing else: no /home, no /run/user, not the
 *    application's /tmp or working directory, unless added with
 *    peer_sandbox_add_path(). The helper keeps the application's uid and
 *    gid; /proc/sys and /proc/sysrq-trigger are read-only;
 *  - no capabilities, PR_SET_NO_NEW_PRIVS, Landlock rules to the same
 *    view where the kernel has Landlock (and, from ABI 6, no signals and
 *    no abstract sockets outside the sandbox);
 *  - a seccomp filter (see peer-sandbox-filter.c for the lists): what a
 *    GLib program serving libpeer needs is allowed; a few things such a
 *    program may try and cope with failing are refused with EPERM
 *    (socket(), execve() after the start, ptrace(), mount(), keyctl(),
 *    fork() and namespaces, bpf(), io_uring, other ioctls and prctls …);
 *    any other syscall kills the helper, and the PeerHelper reports it as
 *    "helper killed by SIGSYS: syscall NAME refused by the sandbox";
 *  - resource limits (peer_sandbox_set_limit()).
 *
 * A sandboxed helper works by fd: it gets its inputs as fds and returns
 * results as sealed memfds (PeerBlob); it cannot open the application's
 * paths, make sockets or start programs.
 *
 * A sandboxed helper is PID 1 of its PID namespace, which changes two
 * things: a signal it has no handler for does not reach it from outside
 * but for SIGKILL (so peer_helper_stop()'s SIGTERM ends it only if it
 * handles SIGTERM, or when it exits as its connection closes, as
 * peer-server does; otherwise SIGKILL follows after
 * %PEER_HELPER_STOP_TIMEOUT_MS), and abort() ends it with SIGSEGV rather
 * than SIGABRT.
 */
#pragma once

#if !defined(LIBPEER_INSIDE) && !defined(LIBPEER_COMPILATION)
# error "Only <libpeer.h> can be included directly."
#endif

#include <gio/gio.h>
#include "peer-export.h"
#include "peer-types.h"

G_BEGIN_DECLS

/**
 * PEER_SANDBOX_ENV:
 *
 * Set (to "1") in the environment of a sandboxed helper.
 */
#define PEER_SANDBOX_ENV "PEER_SANDBOXED"

/**
 * PeerSandboxLimit:
 * @PEER_SANDBOX_LIMIT_ADDRESS_SPACE: bytes of address space (RLIMIT_AS),
 *   default 1 GiB; not applied in a build with AddressSanitizer, whose
 *   shadow memory takes terabytes of address space
 * @PEER_SANDBOX_LIMIT_CPU_SECONDS: seconds of CPU time (RLIMIT_CPU),
 *   default 300; past it the helper gets SIGXCPU, then SIGKILL
 * @PEER_SANDBOX_LIMIT_FILE_SIZE: bytes a file (a memfd too) may grow to
 *   (RLIMIT_FSIZE), default 1 GiB
 * @PEER_SANDBOX_LIMIT_OPEN_FILES: fds open at once (RLIMIT_NOFILE),
 *   default 256; must be below the application's own hard limit
 *
 * The helper's resource limits; soft and hard limit alike, so that the
 * helper cannot raise them.
 */
typedef enum {
  PEER_SANDBOX_LIMIT_ADDRESS_SPACE,
  PEER_SANDBOX_LIMIT_CPU_SECONDS,
  PEER_SANDBOX_LIMIT_FILE_SIZE,
  PEER_SANDBOX_LIMIT_OPEN_FILES,
} PeerSandboxLimit;

/**
 * PeerSandboxFlags:
 * @PEER_SANDBOX_FLAGS_NONE: fail (PEER_ERROR_NOT_SUPPORTED) when the
 *   kernel refuses a part of the sandbox
 * @PEER_SANDBOX_FLAGS_BEST_EFFORT: when the kernel refuses the namespaces
 *   (unprivileged user namespaces disabled, for one), run the helper
 *   without them: seccomp, no new privileges, no capabilities, the limits
 *   and Landlock (where the kernel has it: then the filesystem view is
 *   Landlock's alone, and from Landlock ABI 6 signals to processes
 *   outside the sandbox are refused; before it, without a PID namespace,
 *   the helper may signal the user's other processes) still apply
 *
 * What to do when the kernel refuses a part of the sandbox.
 */
typedef enum {
  PEER_SANDBOX_FLAGS_NONE = 0,
  PEER_SANDBOX_FLAGS_BEST_EFFORT = 1 << 0,
} PeerSandboxFlags;

/**
 * PeerSandbox:
 *
 * A profile: what a helper started with peer_helper_new_sandboxed() may
 * see and do. The default gives the helper new namespaces, a read-only
 * view of the system's libraries and its own binary, no capabilities, a
 * seccomp filter and resource limits; it works by fd (its inputs come as
 * fds, its results go back as #PeerBlob).
 */
#define PEER_TYPE_SANDBOX (peer_sandbox_get_type ())
PEER_EXPORT
G_DECLARE_FINAL_TYPE (PeerSandbox, peer_sandbox, PEER, SANDBOX, GObject)

/**
 * peer_sandbox_new:
 *
 * The default profile, described at the top of this header.
 *
 * Returns: (transfer full): a new profile
 */
PEER_EXPORT
PeerSandbox *peer_sandbox_new           (void);

/**
 * peer_sandbox_add_path:
 * @self: a profile
 * @path: (type filename): an absolute path, a directory or a file
 *
 * Lets the helper read @path (and what is beneath it), at the same path,
 * read-only. A path that does not exist when the helper starts is left
 * out. Thread-safe; applies to helpers started from now on.
 */
PEER_EXPORT
void         peer_sandbox_add_path      (PeerSandbox      *self,
                                         const char       *path);

/**
 * peer_sandbox_set_limit:
 * @self: a profile
 * @limit: which limit
 * @value: its value; 0 for none (the application's own), but for
 *   %PEER_SANDBOX_LIMIT_OPEN_FILES, where 0 means 1024: the helper's exec
 *   is made from the fd numbered as the limit, which it can then never
 *   hold again
 *
 * Thread-safe; applies to helpers started from now on.
 */
PEER_EXPORT
void         peer_sandbox_set_limit     (PeerSandbox      *self,
                                         PeerSandboxLimit  limit,
                                         guint64           value);

/**
 * peer_sandbox_get_limit:
 * @self: a profile
 * @limit: which limit
 *
 * Returns: the limit's value, 0 for none
 */
PEER_EXPORT
guint64      peer_sandbox_get_limit     (PeerSandbox      *self,
                                         PeerSandboxLimit  limit);

/**
 * peer_sandbox_set_flags:
 * @self: a profile
 * @flags: what to do when the kernel refuses a part of the sandbox
 *
 * Thread-safe; applies to helpers started from now on.
 */
PEER_EXPORT
void         peer_sandbox_set_flags     (PeerSandbox      *self,
                                         PeerSandboxFlags  flags);

/**
 * peer_sandbox_is_inside:
 *
 * For a helper: whether it was started in a sandbox (it finds
 * %PEER_SANDBOX_ENV in its environment), so that it can refuse what needs
 * paths with a clear error rather than fail to open them.
 *
 * Returns: %TRUE inside a sandboxed helper
 */
PEER_EXPORT
gboolean     peer_sandbox_is_inside     (void);

/**
 * peer_helper_new_sandboxed:
 * @argv: (array zero-terminated=1): the helper's command line, as for
 *   peer_helper_new(); the program must be a binary (not a script)
 * @policy: (nullable) (transfer none): as for peer_helper_new()
 * @sandbox: (nullable) (transfer none): the profile; %NULL for the
 *   default one. It is referenced, and read again at each restart.
 * @error: PEER_ERROR_NOT_SUPPORTED when the kernel refuses a part of the
 *   sandbox (and @sandbox does not allow running without it), or as for
 *   peer_helper_new()
 *
 * peer_helper_new() with the helper in a sandbox: see the top of
 * peer-sandbox.h for what the helper may do. A helper killed for a
 * syscall the sandbox refuses exits with the reason "helper killed by
 * SIGSYS: syscall NAME refused by the sandbox".
 *
 * Returns: (transfer full) (nullable): the helper, or %NULL
 */
PEER_EXPORT
PeerHelper  *peer_helper_new_sandboxed  (const char * const  *argv,
                                         PeerPolicy          *policy,
                                         PeerSandbox         *sandbox,
                                         GError             **error);

G_END_DECLS
