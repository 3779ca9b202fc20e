#!/usr/bin/python3
# A libpeer server in Python: org.example.Greeter1 at /org/example/Greeter.
# Prints the address to connect to, then serves until SIGINT or SIGTERM.
import signal

import gi
gi.require_version("Peer", "1")
from gi.repository import GLib, Peer

XML = """<node><interface name="org.example.Greeter1">
  <method name="Greet">
    <arg name="name" type="s" direction="in"/>
    <arg name="greeting" type="s" direction="out"/>
  </method>
  <method name="Refuse"/>
  <signal name="Greeted"><arg name="name" type="s"/></signal>
  <property name="Greetings" type="u" access="read"/>
</interface></node>"""

greetings = 0


def greet(call):
    global greetings
    (name,) = call.get_parameters().unpack()
    greetings += 1
    call.return_value(GLib.Variant("(s)", (f"Hello, {name}!",)))
    call.get_interface().emit_signal(None, "Greeted", GLib.Variant("(s)", (name,)))


def refuse(call):
    call.return_gerror(GLib.Error.new_literal(
        Peer.error_quark(), "Not today", Peer.Error.PERMISSION_DENIED))


def get_property(iface, caller, path, name):
    return GLib.Variant("u", greetings)


iface = Peer.Interface.new_for_xml(XML, "org.example.Greeter1")
iface.add_method("Greet", Peer.MethodFlags.NONE, greet)
iface.add_method("Refuse", Peer.MethodFlags.NONE, refuse)
iface.set_property_getter(get_property)

server = Peer.Server.new(None, None, Peer.ServerFlags.NONE, None)
server.export("/org/example/Greeter", iface)
server.start()
print(server.get_client_address(), flush=True)

loop = GLib.MainLoop()
for signum in (signal.SIGINT, signal.SIGTERM):
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
loop.run()
server.stop()
