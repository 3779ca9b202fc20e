/* peer-test-util.h: what the tests share: temporary directories, fd
 * counting, waiting for events, and servers in a thread or a process. */
#pragma once

#include <gio/gio.h>
#include <libpeer.h>

G_BEGIN_DECLS

/* A new 0700 directory under the temporary directory. */
char     *peer_test_make_dir       (void);
/* Removes @path and everything in it. */
void      peer_test_remove_dir     (const char *path);
/* How many fds this process has open (/proc/self/fd). */
guint     peer_test_count_open_fds (void);
GHashTable *peer_test_list_open_sockets (void);
void      peer_test_wait_for_sockets_closed (GHashTable *kept);

typedef struct {
  GSource *source;
  GSource *recheck;             /* see peer_test_deadline_start() */
  gboolean expired;
} PeerTestDeadline;

void      peer_test_deadline_start   (PeerTestDeadline *deadline,
                                      guint             timeout_ms);
void      peer_test_deadline_iterate (PeerTestDeadline *deadline,
                                      const char       *what);
void      peer_test_deadline_end     (PeerTestDeadline *deadline);

/* Iterates the thread-default main context until @cond holds; fails the
 * test after 10 s (60 s under valgrind). Never sleeps: each iteration
 * waits for an event, and @cond is looked at again at least every 20 ms
 * for what another thread changes without waking this one. */
#define PEER_TEST_WAIT_UNTIL(cond)                                        \
  G_STMT_START {                                                          \
    PeerTestDeadline _peer_deadline;                                      \
    peer_test_deadline_start (&_peer_deadline, 10000);                    \
    while (!(cond))                                                       \
      peer_test_deadline_iterate (&_peer_deadline, #cond);                \
    peer_test_deadline_end (&_peer_deadline);                             \
  } G_STMT_END

/* A PeerServer serving the example objects in its own thread and main
 * context, so the test's thread can make blocking calls. */
typedef struct {
  GThread *thread;
  GMainContext *context;
  GMainLoop *loop;
  PeerServer *server;
  char *address;
  char *dir;                    /* made by the test, removed on free */
  GError *error;
  GMutex lock;
  GCond cond;
  gboolean ready;
  PeerPolicy *policy;
  char *requested_address;
  PeerServerFlags flags;
} PeerTestServer;

/* @address NULL: a socket in a fresh directory of the test's. Returns NULL
 * with @error set when the server cannot start. */
PeerTestServer *peer_test_server_new    (PeerPolicy      *policy,
                                         const char      *address,
                                         PeerServerFlags  flags,
                                         GError         **error);
/* peer_test_server_new() with the defaults (no policy, a socket in a fresh
 * directory, no flags); fails the test when the server cannot start.
 * The caller owns the server: peer_test_server_free(). */
PeerTestServer *peer_test_server_start  (void);
/* Makes the interface @iface_name of @xml, adds @entries (@n_entries of
 * them, called with @user_data) and exports it at @path on @server's
 * server, all in the server's thread; fails the test on any error.
 * Returns the interface; the caller owns that reference and drops it
 * (g_object_unref()) once the server is freed or has unexported it. */
PeerInterface  *peer_test_export        (PeerTestServer        *server,
                                         const char            *path,
                                         const char            *xml,
                                         const char            *iface_name,
                                         const PeerMethodEntry *entries,
                                         gsize                  n_entries,
                                         gpointer               user_data);
/* A new client of @server (connected with a 5 s timeout), with its lane
 * open when @lane; fails the test on any error. The caller owns the
 * client: g_object_unref(). */
PeerClient     *peer_test_connect       (PeerTestServer        *server,
                                         gboolean               lane);
/* Ends what the three above began, in this order: drops @client, frees
 * @server, drops @iface (each may be NULL; all three are taken over),
 * then runs what is pending in the thread-default main context (the
 * last callbacks of closed connections) until nothing is. */
void            peer_test_finish        (PeerClient            *client,
                                         PeerTestServer        *server,
                                         PeerInterface         *iface);
/* Runs @func(@data) in the server's thread and waits for it. */
void            peer_test_server_invoke (PeerTestServer  *server,
                                         GSourceFunc      func,
                                         gpointer         data);
void            peer_test_server_free   (PeerTestServer  *server);
/* Closes the server's peer whose id is @id (0: every peer), in the
 * server's thread, with the reason PEER_ERROR_LIMIT_EXCEEDED "kicked by
 * test"; waits until it has. */
void            peer_test_server_close_peers (PeerTestServer *server,
                                              guint64         id);
/* Adds @node to the set @nodes (a GHashTable of strings it owns, with
 * g_free() as its key destructor: a subtree's children, say), or removes
 * it when @present is FALSE, in the server's thread, which alone may
 * touch the set. */
void            peer_test_server_set_node (PeerTestServer *server,
                                           GHashTable     *nodes,
                                           const char     *node,
                                           gboolean        present);

/* In the server's thread: exports at @path on @server a subtree whose
 * children are the names in a set, "a" and "b" to begin with, each
 * serving @iface with a Name of its own ("child a", "child b"). With
 * @vanishing, a child "vanishing" (never listed) is found by the first
 * two lookups (GDBus's introspection and dispatch of one call), then
 * gone. The set is returned in @out_nodes (a reference, the caller's:
 * g_hash_table_unref()), to change in the server's thread
 * (peer_test_server_set_node()); the subtree is the caller's too
 * (peer_server_unexport_subtree(), g_object_unref()). */
PeerSubtree     *peer_test_tree_export   (PeerServer     *server,
                                          const char     *path,
                                          PeerInterface  *iface,
                                          gboolean        vanishing,
                                          GHashTable    **out_nodes);

/* A process started by a test; stopped and reaped by pid. */
typedef struct {
  GPid pid;
  int stdout_fd;
  char *first_line;
} PeerTestProcess;

/* Starts $PEER_SERVER with @args and reads its address line. */
PeerTestProcess *peer_test_spawn_server  (const char * const *args,
                                          GError            **error);
/* The same, not followed by memcheck under `meson test --setup valgrind`
 * (started through timeout(1), which the setup does not follow): for a
 * test whose subject is another program talking to the server. */
PeerTestProcess *peer_test_spawn_server_unfollowed (const char * const *args,
                                                    GError            **error);
/* Starts @argv with stdout piped; reads nothing. */
PeerTestProcess *peer_test_spawn         (const char * const *argv,
                                          GError            **error);
/* Reads one line of the process's stdout (without the newline), waiting
 * up to 10 s (60 s under valgrind); NULL at end of file or on timeout. */
char            *peer_test_process_read_line (PeerTestProcess *process);
/* Sends @signum (0: none) and waits for the process; returns the wait
 * status. Frees @process. */
int              peer_test_process_stop  (PeerTestProcess *process,
                                          int              signum);

/* Under `meson test --setup valgrind` the programs a test starts run
 * under valgrind too (--trace-children), which writes to their stderr:
 * its lines ("==PID==", "--PID--") are taken out of @text, in place, and
 * written to the test's own stderr, where the test log shows them. A
 * report of an error also changes the child's exit status (97), which
 * fails the test that checks it. Returns @text. */
char            *peer_test_strip_valgrind (char *text);

/* Runs @argv to completion (killed after 60 s) and returns its exit status
 * (-1 when killed by a signal); captures stdout and stderr (without
 * valgrind's lines: peer_test_strip_valgrind()). */
int              peer_test_run           (const char * const *argv,
                                          char              **out_stdout,
                                          char              **out_stderr);

/* One org.libpeer.Bench1.Ping through @client, asynchronously (a sync call
 * makes a main context of its own, whose wakeup fd GDBus's worker thread
 * may release a moment later). When its reply is in, both sides have
 * released what earlier messages carried. */
void             peer_test_ping_async    (PeerClient         *client);

/* Fails unless the process has at most @baseline fds open again. Connections a
 * test closed finish closing in GDBus's worker thread, which the test
 * cannot wait for directly; each ping gives it the chance, and a real
 * leak fails at a 5 s deadline. */
void             peer_test_assert_no_fd_leak (PeerClient *client,
                                              guint       baseline);

/* Pops messages a monitor recorded from @received (a queue of
 * GDBusMessage references) until one of @type, named @member (NULL: any)
 * and answering @reply_serial (0: any) comes, which it returns (the
 * caller owns it); those before it are dropped. Fails the test when 10 s
 * pass with no message. */
GDBusMessage    *peer_test_wait_message  (GAsyncQueue        *received,
                                          GDBusMessageType    type,
                                          const char         *member,
                                          guint32             reply_serial);

/* The path of a built program: $PEER_SERVER or $PEER_CLIENT. */
const char      *peer_test_program       (const char *env_name);

G_END_DECLS
