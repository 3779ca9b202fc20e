#!/usr/bin/python3
"""A client written with python3-dbus, against a libpeer server.

Usage: python-client.py ADDRESS peer|bus

'peer' talks as a plain peer (dbus.connection.Connection); 'bus' as a bus
client (dbus.bus.BusConnection: Hello first). Prints one result per line;
exits non-zero on anything unexpected.

After the calls, a signal: the client subscribes to Helper1.Notified, calls
Notify and waits for the signal (5 s, then it fails). As a peer it needs no
match rule: a plain peer receives every broadcast. As a bus client its
subscription is an AddMatch, and a second bus connection that subscribed to
nothing must receive no broadcast at all; it learns that it has missed
nothing by a call of its own answered after the signal went out (see
fence()).
"""
import sys

import dbus
import dbus.bus
import dbus.connection
import dbus.lowlevel
import dbus.mainloop.glib
from gi.repository import GLib

HELPER1 = "org.libpeer.Helper1"
PROPERTIES = "org.freedesktop.DBus.Properties"
TIMEOUT_S = 5

address, mode = sys.argv[1], sys.argv[2]
# Signals are dispatched by a main loop; blocking calls still work.
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)


def connect():
    if mode == "bus":
        return dbus.bus.BusConnection(address)
    return dbus.connection.Connection(address)


def run_until(done, what):
    """Iterates the main loop until done() holds; fails after TIMEOUT_S."""
    context = GLib.MainContext.default()
    expired = []
    timer = GLib.timeout_add_seconds(TIMEOUT_S, lambda: expired.append(True))
    while not done():
        if expired:
            print("timed out waiting for", what)
            sys.exit(1)
        context.iteration(True)
    GLib.source_remove(timer)


def fence(conn):
    """A Properties.Get through conn, answered by the server's main thread
    after the Notify handler that emitted the signal to every peer has
    returned; libdbus dispatches in arrival order, so when its reply is
    handled, every message sent before it has been handled too."""
    replies = []
    conn.get_object("org.libpeer.Helper", "/org/libpeer/Helper", introspect=False).Get(
        HELPER1, "Version", dbus_interface=PROPERTIES,
        reply_handler=lambda v: replies.append(v),
        error_handler=lambda e: replies.append(e))
    run_until(lambda: replies, "the fence's reply")


conn = connect()
if mode == "bus":
    print("unique-name", conn.get_unique_name())

helper = conn.get_object("org.libpeer.Helper", "/org/libpeer/Helper")
number = helper.Quick(8, dbus_interface=HELPER1)
print("quick", int(number))
try:
    helper.Quick(0, dbus_interface=HELPER1)
    print("quick(0) unexpectedly succeeded")
    sys.exit(1)
except dbus.DBusException as e:
    print("error", e.get_dbus_name(), e.get_dbus_message())
version = helper.Get(HELPER1, "Version", dbus_interface=PROPERTIES)
print("version", str(version))
helper.Set(HELPER1, "Label", "from python", dbus_interface=PROPERTIES)
label = helper.Get(HELPER1, "Label", dbus_interface=PROPERTIES)
print("label", str(label))

# --- a signal after a call --------------------------------------------------

# Records every broadcast Notified that reaches the connection that
# subscribed to nothing (its filter sees all messages, matched or not).
quiet = connect() if mode == "bus" else None
quiet_saw = []


def on_quiet_message(_conn, message):
    if (isinstance(message, dbus.lowlevel.SignalMessage) and message.get_destination() is None
            and message.get_member() == "Notified"):
        quiet_saw.append(str(message.get_args_list()[1]))


if quiet is not None:
    fence(quiet)                      # its Hello is done: it is a bus client
    quiet.add_message_filter(on_quiet_message)

summary = "from python-dbus " + mode
notified = []
# As a bus client, bus_name makes python3-dbus match the sender against
# org.libpeer.Helper's owner, which it looks up: the signal must carry
# sender :1.0. A peer has no names to look up.
conn.add_signal_receiver(lambda id_, s: notified.append((int(id_), str(s))),
                         signal_name="Notified", dbus_interface=HELPER1, path="/org/libpeer/Helper",
                         bus_name="org.libpeer.Helper" if mode == "bus" else None)
notify_id = int(helper.Notify("python", 0, "", summary, "", dbus.Array([], signature="s"),
                              dbus.Dictionary({}, signature="sv"), -1, dbus_interface=HELPER1))
run_until(lambda: any(s == summary for _, s in notified), "Notified")
if (notify_id, summary) not in notified:
    print("Notified carried", notified, "not", (notify_id, summary))
    sys.exit(1)
print("notified", notify_id, summary)

if quiet is not None:
    fence(quiet)
    print("unsubscribed-saw:", " ".join(quiet_saw))
