/* peer-test-raw.h: speaking D-Bus by hand over a raw socket, for tests
 * that play a peer no library would (test-hostile, test-load). Static
 * functions in a header because each test program is one source file. */
#pragma once

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gio/gio.h>

G_GNUC_UNUSED static int
raw_connect_path (const char *socket_path)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  g_strlcpy (sun.sun_path, socket_path, sizeof sun.sun_path);
  g_assert_cmpint (connect (fd, (struct sockaddr *) &sun, sizeof sun), ==, 0);
  return fd;
}

G_GNUC_UNUSED static void
raw_send (int           fd,
          gconstpointer data,
          gsize         size)
{
  gsize done = 0;

  while (done < size)
    {
      gssize n = send (fd, (const char *) data + done, size - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      g_assert_cmpint (n, >, 0);
      done += n;
    }
}

/* Sends what it can; FALSE once the server has closed the connection. */
G_GNUC_UNUSED static gboolean
raw_try_send (int           fd,
              gconstpointer data,
              gsize         size)
{
  gsize done = 0;

  while (done < size)
    {
      gssize n = send (fd, (const char *) data + done, size - done, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          g_assert_true (errno == EPIPE || errno == ECONNRESET);
          return FALSE;
        }
      done += n;
    }
  return TRUE;
}

/* Waits up to @timeout_ms for the server to close @fd, discarding what it
 * sends meanwhile. */
G_GNUC_UNUSED static gboolean
raw_wait_closed (int fd,
                 int timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  for (;;)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      char buf[4096];
      gint64 left = deadline - g_get_monotonic_time ();
      gssize n;

      if (left <= 0)
        return FALSE;
      if (poll (&pfd, 1, (int) (left / 1000) + 1) <= 0)
        continue;
      n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno == ECONNRESET))
        return TRUE;
    }
}

/* Whether @fd is still open on the server's side: whatever the server
 * sent (signals, say) is read and dropped, and no end of file follows. */
G_GNUC_UNUSED static gboolean
raw_is_open (int fd)
{
  for (;;)
    {
      char buf[4096];
      gssize n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);

      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return TRUE;
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return FALSE;
    }
}

G_GNUC_UNUSED static char *
raw_read_line (int fd)
{
  g_autoptr(GString) line = g_string_new (NULL);

  for (;;)
    {
      struct pollfd pfd = { fd, POLLIN, 0 };
      char c;

      if (poll (&pfd, 1, 10000) <= 0 || recv (fd, &c, 1, 0) != 1)
        return NULL;
      if (c == '\n')
        break;
      if (c != '\r')
        g_string_append_c (line, c);
    }
  return g_string_free (g_steal_pointer (&line), FALSE);
}

G_GNUC_UNUSED static char *
uid_hex (uid_t uid)
{
  g_autofree char *text = g_strdup_printf ("%u", (guint) uid);
  GString *hex = g_string_new (NULL);

  for (const char *p = text; *p != '\0'; p++)
    g_string_append_printf (hex, "%02x", (guint) (guchar) *p);
  return g_string_free (hex, FALSE);
}

/* A connection authenticated by hand, optionally with fd passing. */
/* A connection authenticated by hand, optionally with fd passing; -1 when
 * the server closed it instead (a limit, a deadline). */
G_GNUC_UNUSED static int
raw_try_connect_authenticated_path (const char *socket_path,
                                    gboolean    negotiate_fds)
{
  int fd = raw_connect_path (socket_path);
  g_autofree char *hex = uid_hex (getuid ());
  g_autofree char *auth = g_strdup_printf ("AUTH EXTERNAL %s\r\n", hex);
  g_autofree char *ok = NULL;

  if (!raw_try_send (fd, "", 1) || !raw_try_send (fd, auth, strlen (auth)))
    goto refused;
  ok = raw_read_line (fd);
  if (ok == NULL || !g_str_has_prefix (ok, "OK "))
    goto refused;
  if (negotiate_fds)
    {
      g_autofree char *agree = NULL;

      if (!raw_try_send (fd, "NEGOTIATE_UNIX_FD\r\n", strlen ("NEGOTIATE_UNIX_FD\r\n")))
        goto refused;
      agree = raw_read_line (fd);
      if (g_strcmp0 (agree, "AGREE_UNIX_FD") != 0)
        goto refused;
    }
  if (!raw_try_send (fd, "BEGIN\r\n", strlen ("BEGIN\r\n")))
    goto refused;
  return fd;

refused:
  close (fd);
  return -1;
}

G_GNUC_UNUSED static int
raw_connect_authenticated_path (const char *socket_path,
                                gboolean    negotiate_fds)
{
  int fd = raw_try_connect_authenticated_path (socket_path, negotiate_fds);

  g_assert_cmpint (fd, >=, 0);
  return fd;
}

G_GNUC_UNUSED static GDBusMessage *
new_call (const char *path,
          const char *iface,
          const char *member,
          GVariant   *body,
          guint32     serial)
{
  GDBusMessage *message = g_dbus_message_new_method_call (NULL, path, iface, member);

  if (body != NULL)
    g_dbus_message_set_body (message, body);
  g_dbus_message_set_serial (message, serial);
  return message;
}

G_GNUC_UNUSED static guchar *
to_blob (GDBusMessage *message,
         gsize        *size)
{
  g_autoptr(GError) error = NULL;
  guchar *blob = g_dbus_message_to_blob (message, size, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);

  g_assert_no_error (error);
  return blob;
}

G_GNUC_UNUSED static void
raw_send_message (int           fd,
                  GDBusMessage *message)
{
  gsize size;
  g_autofree guchar *blob = to_blob (message, &size);

  raw_send (fd, blob, size);
}

/* Reads messages until the reply to @serial; NULL when the connection closes. */
G_GNUC_UNUSED static GDBusMessage *
raw_read_reply (int     fd,
                guint32 serial)
{
  for (;;)
    {
      guchar header[16];
      g_autofree guchar *blob = NULL;
      g_autoptr(GDBusMessage) message = NULL;
      g_autoptr(GError) error = NULL;
      gssize needed;
      gsize got = 0;

      while (got < sizeof header)
        {
          struct pollfd pfd = { fd, POLLIN, 0 };
          gssize n;

          if (poll (&pfd, 1, 10000) <= 0)
            return NULL;
          n = recv (fd, header + got, sizeof header - got, 0);
          if (n <= 0)
            return NULL;
          got += n;
        }
      needed = g_dbus_message_bytes_needed (header, sizeof header, &error);
      g_assert_no_error (error);
      blob = g_malloc (needed);
      memcpy (blob, header, sizeof header);
      while (got < (gsize) needed)
        {
          gssize n = recv (fd, blob + got, needed - got, MSG_WAITALL);
          if (n <= 0)
            return NULL;
          got += n;
        }
      message = g_dbus_message_new_from_blob (blob, needed, G_DBUS_CAPABILITY_FLAGS_UNIX_FD_PASSING, &error);
      g_assert_no_error (error);
      if (g_dbus_message_get_reply_serial (message) == serial)
        return g_steal_pointer (&message);
    }
}

