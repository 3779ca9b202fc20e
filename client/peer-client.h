/* peer-client.h: what peer-client's files share: one-line errors, option
 * parsing, waiting in a main loop, and the commands (cmd-*.c). */
#pragma once

#include <libpeer.h>

G_BEGIN_DECLS

#define BENCH_PATH  "/org/libpeer/Bench"
#define BENCH_IFACE "org.libpeer.Bench1"
#define HELPER_PATH  "/org/libpeer/Helper"
#define HELPER_IFACE "org.libpeer.Helper1"

#define EXIT_USAGE 2

/* One line on stderr; returns EXIT_FAILURE (fail) or EXIT_USAGE
 * (bad_input, and usage_error, which adds "see peer-client --help"). */
int      fail                  (const char         *format,
                                ...) G_GNUC_PRINTF (1, 2);
int      bad_input             (const char         *format,
                                ...) G_GNUC_PRINTF (1, 2);
int      usage_error           (const char         *format,
                                ...) G_GNUC_PRINTF (1, 2);
/* A command's own options; argv[0] is the command name. */
gboolean parse_command_options (const char         *command,
                                const GOptionEntry *entries,
                                int                *argc,
                                char             ***argv,
                                int                *exit_code);
gboolean parse_int             (const char         *text,
                                gint64              min,
                                gint64              max,
                                gint64             *out);

/* A command that waits in a main loop for an event, the peer's going, or
 * Ctrl-C. */
typedef struct {
  GMainLoop *loop;
  int exit_code;
  guint32 wanted_id;
  gboolean have_id;
  gboolean seen;
  char *seen_summary;
} Waiter;

void     on_closed_quit        (PeerClient         *client,
                                const GError       *reason,
                                Waiter             *waiter);
gboolean on_interrupt          (gpointer            user_data);

/* --spawn's helper (cmd-helper.c), in the default sandbox when
 * @sandboxed. */
PeerHelper *start_helper       (const char * const *argv,
                                gboolean            sandboxed,
                                GError            **error);

/* Each command first checks its words (argv[0] is its name) and returns
 * EXIT_SUCCESS at once when @client is NULL: main() runs it so before
 * connecting, so that a bad command line never reaches the server. */
int      cmd_ping              (PeerClient *client, int argc, char **argv);
int      cmd_call              (PeerClient *client, int argc, char **argv);
int      cmd_introspect        (PeerClient *client, int argc, char **argv);
int      cmd_get               (PeerClient *client, int argc, char **argv);
int      cmd_set               (PeerClient *client, int argc, char **argv);
int      cmd_monitor           (PeerClient *client, int argc, char **argv);
int      cmd_quick             (PeerClient *client, int argc, char **argv);
int      cmd_notify            (PeerClient *client, int argc, char **argv);
int      cmd_job               (PeerClient *client, int argc, char **argv);
int      cmd_open              (PeerClient *client, int argc, char **argv);
int      cmd_digest            (PeerClient *client, int argc, char **argv);
int      cmd_blob_echo         (PeerClient *client, int argc, char **argv);
int      cmd_payload_bench     (PeerClient *client, int argc, char **argv);

G_END_DECLS
