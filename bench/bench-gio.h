/* bench-gio.h: what the two GDBus-based transports (plain GDBus and
 * libpeer's PeerClient) share: building the calls, checking the replies,
 * and keeping calls in flight through a GAsyncReadyCallback API. */
#pragma once

#include <gio/gio.h>
#include <gio/gunixfdlist.h>

#include "bench-transport.h"

G_BEGIN_DECLS

/* Echo's argument and reply type. G_VARIANT_TYPE() validates its string
 * on every use (some 240 instructions) unless G_DISABLE_CHECKS is defined;
 * a GVariantType is its type string, so a literal known to be valid is
 * what G_VARIANT_TYPE() itself becomes without checks. */
#define BENCH_ECHO_TYPE ((const GVariantType *) "(ay)")

/* (transfer floating): the (ay) arguments of Echo, not copying @data,
 * which must outlive the call. */
GVariant *bench_gio_echo_parameters (const guint8 *data,
                                     gsize         size);

/* Checks an (ay) reply against what was sent. */
gboolean  bench_gio_check_echo      (GVariant     *reply,
                                     const guint8 *data,
                                     gsize         size,
                                     GError      **error);

/* (transfer full): a list holding copies of @fds, or NULL with @error. */
GUnixFDList *bench_gio_fd_list_new  (const int    *fds,
                                     guint         n_fds,
                                     GError      **error);

/* (transfer none): the (ah) arguments of EchoFds, handles 0 to @n_fds - 1,
 * kept in @cache from one call to the next (the caller unrefs it when
 * done) and made again only when @n_fds changes. */
GVariant *bench_gio_echo_fds_parameters (GVariant **cache,
                                         guint      n_fds);

/* Checks an (ah) reply to EchoFds and its fds against @fds; with
 * @out_fd, stores a copy of the first fd that came back there. */
gboolean  bench_gio_check_echo_fds  (GVariant     *reply,
                                     GUnixFDList  *fd_list,
                                     const int    *fds,
                                     guint         n_fds,
                                     int          *out_fd,
                                     GError      **error);

/* The same, given the `ah` of the reply (@handles) rather than its tuple. */
gboolean  bench_gio_check_echo_fd_handles (GVariant    *handles,
                                           GUnixFDList *fd_list,
                                           const int   *fds,
                                           guint        n_fds,
                                           int         *out_fd,
                                           GError     **error);

/* Starts one Echo call with @parameters, calling @callback when done. */
typedef void      (*BenchGioCallFunc)   (gpointer             client,
                                         GVariant            *parameters,
                                         GAsyncReadyCallback  callback,
                                         gpointer             user_data);
typedef GVariant *(*BenchGioFinishFunc) (gpointer             client,
                                         GAsyncResult        *result,
                                         GError             **error);

/* Runs @loop with @depth calls in flight, iterating a private main
 * context until the last reply came back or one was wrong. */
gboolean  bench_gio_pipeline        (gpointer            client,
                                     BenchGioCallFunc    call,
                                     BenchGioFinishFunc  finish,
                                     guint               depth,
                                     BenchLoop          *loop,
                                     GError            **error);

G_END_DECLS
