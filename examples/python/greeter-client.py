#!/usr/bin/python3
# A libpeer client in Python: greeter-client.py ADDRESS
import sys

import gi
gi.require_version("Peer", "1")
from gi.repository import GLib, Peer

PATH, IFACE = "/org/example/Greeter", "org.example.Greeter1"

client = Peer.Client.new_sync(sys.argv[1], -1, None)
greeted = []
client.subscribe_signal(PATH, IFACE, "Greeted",
                        lambda client, path, iface, signal, args: greeted.append(args[0]))

reply, _fds = client.call_sync(PATH, IFACE, "Greet", GLib.Variant("(s)", ("Ada",)),
                               None, -1, None, None)
print(reply.unpack()[0])                        # Hello, Ada!
while not greeted:                              # the signal follows the reply
    GLib.MainContext.default().iteration(True)
print("greeted", greeted[0])                    # greeted Ada
print("greetings", client.get_property_sync(PATH, IFACE, "Greetings", None).unpack())

try:
    client.call_sync(PATH, IFACE, "Refuse", None, None, -1, None, None)
except GLib.Error as e:                         # PEER_ERROR comes back as itself
    assert e.matches(Peer.error_quark(), Peer.Error.PERMISSION_DENIED)
    print("refused:", e.message)                # refused: Not today
