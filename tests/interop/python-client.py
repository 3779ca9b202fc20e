#!/usr/bin/python3
"""A client written with python3-dbus, against a libpeer server.

Usage: python-client.py ADDRESS peer|bus

'peer' talks as a plain peer (dbus.connection.Connection); 'bus' as a bus
client (dbus.bus.BusConnection: Hello first). Prints one result per line;
exits non-zero on anything unexpected.
"""
import sys

import dbus
import dbus.bus
import dbus.connection

address, mode = sys.argv[1], sys.argv[2]
if mode == "bus":
    conn = dbus.bus.BusConnection(address)
    print("unique-name", conn.get_unique_name())
else:
    conn = dbus.connection.Connection(address)

helper = conn.get_object("org.libpeer.Helper", "/org/libpeer/Helper")
number = helper.Quick(8, dbus_interface="org.libpeer.Helper1")
print("quick", int(number))
try:
    helper.Quick(0, dbus_interface="org.libpeer.Helper1")
    print("quick(0) unexpectedly succeeded")
    sys.exit(1)
except dbus.DBusException as e:
    print("error", e.get_dbus_name(), e.get_dbus_message())
version = helper.Get("org.libpeer.Helper1", "Version", dbus_interface="org.freedesktop.DBus.Properties")
print("version", str(version))
helper.Set("org.libpeer.Helper1", "Label", "from python", dbus_interface="org.freedesktop.DBus.Properties")
label = helper.Get("org.libpeer.Helper1", "Label", dbus_interface="org.freedesktop.DBus.Properties")
print("label", str(label))
