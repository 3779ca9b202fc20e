/* peer-sandbox-private.h: what PeerHelper needs of the sandbox, and what
 * the sandbox's files share. */
#pragma once

#include <sys/types.h>

#include "peer-sandbox.h"

G_BEGIN_DECLS

/* A started sandboxed helper. */
typedef struct {
  GPid pid;
  int pidfd;
  int notify_fd;                /* seccomp's listener: refused syscalls; -1 without */
  int app_fd;                   /* the application's end of the helper's socket */
} PeerSandboxProcess;

/* A consistent copy of @self's settings: its paths (char*, added to
 * @out_paths), PEER_SANDBOX_LIMIT_OPEN_FILES + 1 limits and its flags. */
void     peer_sandbox_snapshot            (PeerSandbox         *self,
                                           GPtrArray           *out_paths,
                                           guint64             *out_limits,
                                           PeerSandboxFlags    *out_flags);

/* Starts @argv (a program without a slash is looked up in PATH) in the
 * sandbox, with one end of a socketpair the child makes as its fd 3 (the
 * other is @out's app_fd), standard input /dev/null, the rest of its fds
 * closed. Blocks until the helper is exec'd or has failed. */
gboolean peer_sandbox_spawn               (PeerSandbox         *self,
                                           const char * const  *argv,
                                           const char * const  *envp,
                                           PeerSandboxProcess  *out,
                                           GError             **error);

/* The default profile, shared (transfer full). */
PeerSandbox *peer_sandbox_dup_default     (void);

/* peer_sandbox_filter_build()'s filter, kept by @self. */
GBytes  *peer_sandbox_dup_filter          (PeerSandbox         *self,
                                           int                  exec_fd,
                                           GError             **error);

/* The seccomp filter for a helper whose one permitted execveat() is of
 * @exec_fd, as classic BPF (struct sock_filter[]) in a new GBytes, or
 * NULL. */
GBytes  *peer_sandbox_filter_build        (int                  exec_fd,
                                           GError             **error);

/* Reads one notification from @notify_fd (a syscall the filter leaves to
 * the supervisor) and returns the syscall's name (or its number, as
 * text), or NULL when there was none to read. The syscall waits for
 * peer_sandbox_filter_refuse() with @out_id. */
char    *peer_sandbox_filter_receive      (int                  notify_fd,
                                           guint64             *out_id);
/* Answers notification @id: the syscall fails with EPERM. */
void     peer_sandbox_filter_refuse       (int                  notify_fd,
                                           guint64              id);

G_END_DECLS
