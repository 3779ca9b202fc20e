/* peer-sandbox-plan-private.h: what the parent prepares for the child
 * that becomes a sandboxed helper (peer-sandbox-spawn.c), and what the
 * child does with it (peer-sandbox-child.c). */
#pragma once

#include <sys/resource.h>
#include <sys/types.h>
#include <linux/filter.h>

#include <glib.h>

G_BEGIN_DECLS

/* Landlock, from the kernel's uapi, for headers older than the ABI used. */
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE      (1ULL << 0)
#define LL_FS_WRITE_FILE   (1ULL << 1)
#define LL_FS_READ_FILE    (1ULL << 2)
#define LL_FS_READ_DIR     (1ULL << 3)
#define LL_FS_ALL_V1       ((1ULL << 13) - 1)
#define LL_FS_REFER        (1ULL << 13)
#define LL_FS_TRUNCATE     (1ULL << 14)
#define LL_FS_IOCTL_DEV    (1ULL << 15)
#define LL_NET_BIND_TCP    (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL    (1ULL << 1)
#define LL_FS_FILE_RIGHTS  (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
#define LL_FS_READ         (LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR)

struct ll_ruleset_attr {
  guint64 handled_access_fs;
  guint64 handled_access_net;
  guint64 scoped;
};

struct ll_path_beneath_attr {
  guint64 allowed_access;
  gint32 parent_fd;
} __attribute__ ((packed));

/* --- what the child does, prepared by the parent ------------------------ */

typedef enum {
  OP_DIR,                       /* mkdir @target */
  OP_BIND_RO,                   /* @source read-only at @target */
  OP_BIND_DEV,                  /* the device node @source at @target */
  OP_SYMLINK,                   /* @target -> @source */
  OP_TMPFS,                     /* an empty tmpfs at @target */
  OP_PROC,                      /* a procfs at @target */
  OP_REBIND_RO,                 /* @target, made read-only where it is */
} OpKind;

typedef struct {
  OpKind kind;
  gboolean is_dir;
  char *source;
  char *target;
} MountOp;

typedef struct {
  char *path;                   /* as the child sees it */
  guint64 access;
} LandlockRule;

typedef enum {
  STEP_WAIT, STEP_IDS, STEP_MOUNT, STEP_PIVOT, STEP_FDS, STEP_LIMITS, STEP_CAPS,
  STEP_NO_NEW_PRIVS, STEP_LANDLOCK, STEP_SECCOMP, STEP_EXEC,
} Step;


typedef struct {
  gint32 step;
  gint32 op;                    /* the MountOp, for STEP_MOUNT */
  gint32 err;
} ChildReport;

typedef struct {
  gboolean namespaces;
  uid_t uid;
  gid_t gid;

  GArray *ops;                  /* MountOp */
  GArray *rules;                /* LandlockRule */
  int landlock_abi;

  char *program;                /* resolved, real */
  const char * const *argv;
  const char * const *envp;
  int devnull_fd;
  int app_end;                  /* the child's socket's other end */
  int sync_fd;                  /* the child's end */
  int exec_fd;                  /* N: the open-files limit */
  struct rlimit limits[8];
  int limit_resources[8];
  guint n_limits;
  struct sock_fprog filter;
} Plan;

/* Runs in the child, between clone3() and exec; never returns. Reports
 * a failure as a ChildReport on @plan's sync_fd. */
G_GNUC_NORETURN
void peer_sandbox_child_main (Plan *plan);

G_END_DECLS
