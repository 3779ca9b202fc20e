/* peer-debug-private.h: seeing the messages on libpeer's connections.
 *
 * PEER_DEBUG=messages prints one line per message sent or received on
 * stderr; PEER_CAPTURE=FILE writes every message to FILE in pcap format
 * with link type DLT_DBUS (231), as `dbus-monitor --pcap` does, for
 * Wireshark and tshark. Both environment variables are read once, the
 * first time a connection is made; without them nothing is added to the
 * message path. Lane frames go to the same log and capture, as the D-Bus
 * messages they stand for.
 */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The link type of a D-Bus pcap file (LINKTYPE_DBUS). */
#define PEER_DEBUG_PCAP_LINKTYPE 231
/* Messages longer than this are cut in the capture: D-Bus's own maximum. */
#define PEER_DEBUG_PCAP_SNAPLEN (128 * 1024 * 1024)
/* How much of a body the log prints. */
#define PEER_DEBUG_MAX_BODY_CHARS 200

/* Adds the log and capture filters to @connection when PEER_DEBUG or
 * PEER_CAPTURE ask for them. @side ("server", "client", "helper") is a
 * static string that names the connection's end in the log. Call before
 * message processing starts, so that no message is missed. Any thread. */
void  _peer_debug_watch_connection (GDBusConnection *connection,
                                    const char      *side);

/* The same for the server's end of a peer's connection: its log lines
 * name the peer ("server :1.3 pid=4321 < call ..."), whichever way the
 * message goes. Call before message processing starts. Any thread. */
void  _peer_debug_watch_peer       (GDBusConnection *connection,
                                    const char      *unique_name,
                                    pid_t            pid);

/* Whether lane frames are logged or captured: a flag read, cheap enough
 * to ask on every frame. */
gboolean _peer_debug_lanes_watched (void);

/* Logs and captures @message, the D-Bus message a lane frame stands for,
 * as _peer_debug_watch_connection() does for a connection's. @side is
 * static ("client lane", "server lane"). Any thread. */
void  _peer_debug_lane_message (GDBusMessage    *message,
                                gboolean         incoming,
                                const char      *side);

/* A frame of a server's lane to the peer of @peer (the GDBusConnection
 * given to _peer_debug_watch_peer()), logged with the peer's name. */
void  _peer_debug_peer_lane_message (GDBusMessage    *message,
                                     gboolean         incoming,
                                     const char      *side,
                                     GDBusConnection *peer);

/* One log line for @message, without the trailing newline. Exposed for
 * tests. (transfer full) */
char *_peer_debug_describe_message (GDBusMessage    *message,
                                    gboolean         incoming);

G_END_DECLS
