/* peer-client: talk to a libpeer server (or any D-Bus peer server) from
 * the command line.
 *
 *   peer-client [--address ADDR] COMMAND [ARGS...]
 *   peer-client --spawn [--sandbox] -- HELPER [HELPER-ARGS...] [--] COMMAND [ARGS...]
 *
 * Arguments to `call` and `set` are GVariant text; their types come from
 * the server's introspection data, so `42` and `hello` work as they are.
 * Every failure is one line on stderr and a non-zero exit: 2 when the
 * command line is wrong, found before anything is asked of the server
 * (each command is first run with no client, to check its words), 1 when
 * the operation failed. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>
#include <libpeer.h>

#include "peer-client.h"

typedef struct {
  const char *name;
  const char *args;
  const char *summary;
  int (*run) (PeerClient *client, int argc, char **argv);
  /* Checked before connecting: a command line that misses words fails
   * at once, without a connection made for nothing. */
  int min_args;
  const char *needs;            /* what the missing words are */
} Command;

int
fail (const char *format,
      ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("peer-client: %s\n", message);
  return EXIT_FAILURE;
}

int
bad_input (const char *format,
           ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("peer-client: %s\n", message);
  return EXIT_USAGE;
}

int
usage_error (const char *format,
             ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("peer-client: %s (see peer-client --help)\n", message);
  return EXIT_USAGE;
}

/* Parses a command's own options; argv[0] is the command name. */
gboolean
parse_command_options (const char         *command,
                       const GOptionEntry *entries,
                       int                *argc,
                       char             ***argv,
                       int                *exit_code)
{
  g_autoptr(GOptionContext) context = g_option_context_new (NULL);
  g_autoptr(GError) error = NULL;
  g_autofree char *prgname = g_strdup_printf ("peer-client %s", command);

  g_set_prgname (prgname);
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, argc, argv, &error))
    {
      *exit_code = usage_error ("%s: %s", command, error->message);
      return FALSE;
    }
  return TRUE;
}

gboolean
parse_int (const char *text,
           gint64      min,
           gint64      max,
           gint64     *out)
{
  return g_ascii_string_to_signed (text, 10, min, max, out, NULL);
}

void
on_closed_quit (PeerClient   *client,
                const GError *reason,
                Waiter       *waiter)
{
  g_printerr ("peer-client: %s\n", reason->message);
  waiter->exit_code = EXIT_FAILURE;
  g_main_loop_quit (waiter->loop);
}

gboolean
on_interrupt (gpointer user_data)
{
  Waiter *waiter = user_data;

  waiter->exit_code = EXIT_SUCCESS;
  g_main_loop_quit (waiter->loop);
  return G_SOURCE_REMOVE;
}

static const Command commands[] = {
  { "ping", "[--count N]", "round-trip statistics of org.libpeer.Bench1.Ping", cmd_ping },
  { "call", "OBJECT_PATH INTERFACE.METHOD [ARG...]", "call a method (arguments in GVariant text)", cmd_call,
    2, "OBJECT_PATH INTERFACE.METHOD [ARG...]" },
  { "introspect", "[OBJECT_PATH]", "print an object's introspection XML", cmd_introspect },
  { "get", "OBJECT_PATH INTERFACE.PROPERTY", "print a property", cmd_get, 2, "OBJECT_PATH INTERFACE.PROPERTY" },
  { "set", "OBJECT_PATH INTERFACE.PROPERTY VALUE", "set a property", cmd_set,
    3, "OBJECT_PATH INTERFACE.PROPERTY VALUE" },
  { "monitor", "[OBJECT_PATH]", "print signals as they come, until Ctrl-C", cmd_monitor },
  { "quick", "BITS", "a random number of BITS bits from the helper", cmd_quick, 1, "BITS" },
  { "notify", "SUMMARY [BODY]", "send a notification and wait for its Notified signal", cmd_notify,
    1, "SUMMARY [BODY]" },
  { "job", "STEPS [STEP_MS]", "run a job on the helper and show its progress; Ctrl-C cancels it", cmd_job,
    1, "STEPS [STEP_MS]" },
  { "open", "PATH", "print a file the helper opens under its files root", cmd_open, 1, "PATH" },
  { "digest", "[--algorithm ALG] FILE|-", "hash a file or standard input, passed as an fd", cmd_digest,
    1, "FILE, or - for standard input" },
  { "blob-echo", "SIZE", "round-trip SIZE bytes (K/M/G) as a sealed memfd and check them", cmd_blob_echo,
    1, "SIZE" },
  { "payload-bench", "[--runs N] SIZE...", "time Echo, EchoBlob and a raw socket", cmd_payload_bench,
    1, "SIZE..." },
};

#define EXIT_STATUS_HELP \
  "Exit status: 0 when the command did what it says; 2 when the command line\n" \
  "is wrong, found before anything is asked of the server (an unknown command\n" \
  "or option, a missing or malformed argument, a file that cannot be opened,\n" \
  "a helper program that is not there; for call and set, also a value of the\n" \
  "wrong type for what the server's introspection says); 1 when the operation\n" \
  "failed: no connection, the helper did not start, or the server refused.\n"

static char *
describe_commands (void)
{
  GString *s = g_string_new ("Commands:\n");
  int name_width = 0, args_width = 0;

  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      name_width = MAX (name_width, (int) strlen (commands[i].name));
      args_width = MAX (args_width, (int) strlen (commands[i].args));
    }
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    g_string_append_printf (s, "  %-*s %-*s  %s\n", name_width, commands[i].name, args_width, commands[i].args,
                            commands[i].summary);
  g_string_append (s, "\nThe address comes from --address or $PEER_ADDRESS. With --spawn, the\n"
                     "words after -- up to the next -- (or up to the first command name) are the\n"
                     "helper's command line: peer-client --spawn -- peer-server quick 8\n\n"
                     EXIT_STATUS_HELP);
  return g_string_free (s, FALSE);
}

/* PEER_CAPTURE (or --capture, which sets it) names a file libpeer opens
 * when the first connection is made, and a file it cannot open it skips
 * in silence: asked first, so that a capture nobody gets is an error. */
static int
check_capture (const char *path,
               const char *given_as)
{
  int fd;

  if (path == NULL || path[0] == '\0')
    return EXIT_SUCCESS;
  fd = open (path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, 0666);
  if (fd < 0)
    return bad_input ("%s: cannot write the capture to %s: %s", given_as, path, g_strerror (errno));
  close (fd);
  return EXIT_SUCCESS;
}

static const Command *
find_command (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (g_str_equal (name, commands[i].name))
      return &commands[i];
  return NULL;
}

/* --spawn's arguments: HELPER [ARGS...], then an optional "--", then the
 * command. Returns the index of the command in @argv, or -1. */
static int
split_spawn_args (int         argc,
                  char      **argv,
                  GPtrArray  *helper_argv)
{
  int i = 1, first = -1;

  if (i < argc && g_str_equal (argv[i], "--"))
    i++;
  for (; i < argc && first < 0; i++)
    {
      if (g_str_equal (argv[i], "--"))
        first = i + 1;
      else if (helper_argv->len > 0 && find_command (argv[i]) != NULL)
        first = i;
      else
        g_ptr_array_add (helper_argv, argv[i]);
    }
  if (first < 0)
    first = argc;
  g_ptr_array_add (helper_argv, NULL);
  return helper_argv->len > 1 ? first : -1;
}

int
main (int   argc,
      char *argv[])
{
  g_autofree char *address = NULL;
  int timeout_ms = 10000;
  gboolean use_lane = FALSE;
  gboolean spawn = FALSE;
  gboolean sandbox = FALSE;
  g_autofree char *capture = NULL;
  const GOptionEntry options[] = {
    { "spawn", 's', 0, G_OPTION_ARG_NONE, &spawn,
      "Start a helper (the words after --) over a socketpair and talk to it", NULL },
    { "sandbox", 0, 0, G_OPTION_ARG_NONE, &sandbox,
      "With --spawn: run the helper in libpeer's default sandbox (it works on fds only)", NULL },
    { "capture", 0, 0, G_OPTION_ARG_FILENAME, &capture,
      "Write every message to FILE in pcap format, as PEER_CAPTURE=FILE does", "FILE" },
    { "address", 'a', 0, G_OPTION_ARG_STRING, &address, "The server's D-Bus address", "ADDR" },
    { "timeout", 't', 0, G_OPTION_ARG_INT, &timeout_ms, "Connect timeout in ms (default 10000)", "MS" },
    { "lane", 'l', 0, G_OPTION_ARG_NONE, &use_lane,
      "Open a lane: synchronous calls to the server's methods take libpeer's fast path", NULL },
    { NULL }
  };
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(PeerHelper) helper = NULL;
  g_autoptr(PeerClient) client = NULL;
  g_autoptr(GPtrArray) helper_argv = g_ptr_array_new ();
  g_autofree char *description = NULL;
  const Command *command = NULL;

  setlocale (LC_ALL, "");
  context = g_option_context_new ("COMMAND [ARGS...]");
  g_option_context_add_main_entries (context, options, NULL);
  description = describe_commands ();
  g_option_context_set_description (context, description);
  /* Options after the command belong to the command. */
  g_option_context_set_strict_posix (context, TRUE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    return usage_error ("%s", error->message);
  if (sandbox && !spawn)
    return usage_error ("--sandbox needs --spawn");
  if (spawn)
    {
      int first = split_spawn_args (argc, argv, helper_argv);

      if (first < 0)
        return usage_error ("--spawn needs -- HELPER [ARGS...] [--] COMMAND [ARGS...]");
      if (address != NULL)
        return usage_error ("--spawn and --address exclude each other");
      /* The command's words, as if they came first. */
      argv[first - 1] = argv[0];
      argv += first - 1;
      argc -= first - 1;
    }
  if (argc < 2)
    return usage_error ("no command given");
  command = find_command (argv[1]);
  if (command == NULL)
    return usage_error ("unknown command '%s'", argv[1]);
  if (argc - 2 < command->min_args)
    return usage_error ("%s needs %s", command->name, command->needs);
  if (timeout_ms <= 0)
    return usage_error ("--timeout must be positive");
  /* The command's own words, checked by running it without a client (on
   * a copy: option parsing reorders them). */
  {
    g_autofree char **words = g_new0 (char *, argc);
    int n_words = argc - 1, code;

    memcpy (words, argv + 1, (argc - 1) * sizeof (char *));
    if ((code = command->run (NULL, n_words, words)) != EXIT_SUCCESS)
      return code;
  }
  /* Read by libpeer when the first connection is made. */
  if (capture != NULL)
    {
      int code = check_capture (capture, "--capture");

      if (code != EXIT_SUCCESS)
        return code;
      g_setenv ("PEER_CAPTURE", capture, TRUE);
    }
  else
    {
      int code = check_capture (g_getenv ("PEER_CAPTURE"), "PEER_CAPTURE");

      if (code != EXIT_SUCCESS)
        return code;
    }

  if (spawn)
    {
      helper = start_helper ((const char * const *) helper_argv->pdata, sandbox, &error);
      /* A program that is not there is a word of the command line. */
      if (helper == NULL && g_error_matches (error, G_SPAWN_ERROR, G_SPAWN_ERROR_NOENT))
        return bad_input ("%s", error->message);
      if (helper != NULL)
        client = peer_helper_dup_client (helper, timeout_ms, NULL, &error);
      if (client == NULL)
        return fail ("%s", error->message);
    }
  else
    {
      if (address == NULL)
        address = g_strdup (g_getenv ("PEER_ADDRESS"));
      if (address == NULL || address[0] == '\0')
        return usage_error ("no address: pass --address ADDR or set PEER_ADDRESS");
      client = peer_client_new_sync (address, timeout_ms, NULL, &error);
    }
  if (client == NULL && g_error_matches (error, PEER_ERROR, PEER_ERROR_INVALID_ARGS))
    return usage_error ("%s", error->message);
  if (client == NULL)
    return fail ("%s", error->message);
  if (use_lane && !peer_client_open_lane_sync (client, NULL, &error))
    return fail ("%s", error->message);

  return command->run (client, argc - 1, argv + 1);
}
