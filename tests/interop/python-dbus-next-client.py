#!/usr/bin/python3
"""A client written with dbus-next for Python (asyncio), against a libpeer
server. dbus-next is a bus client only: every connection says Hello.

Usage: python-dbus-next-client.py ADDRESS

Prints one result per line; exits non-zero on anything unexpected.

The high-level proxy makes calls, then subscribes to Helper1.Notified
(dbus-next adds the match rule and checks that the signal's sender owns
org.libpeer.Helper), calls Notify and waits for the signal (5 s, then it
fails).

Three low-level connections then show that the server honours match rules.
Each records the broadcast signals it receives through a message handler,
which sees every message the connection gets:
  all        AddMatch type='signal',sender='org.libpeer.Helper'
  member     AddMatch type='signal',member='Notified'
  none       no match rule at all
The proxy sets Label (the server emits PropertiesChanged before it
answers) and then calls Notify (Notified). Every connection's messages
arrive in the order the server sent them, so when Notified reaches
'member', a PropertiesChanged sent to it would already be there: no sleep
is needed to know it was not. 'none' receives nothing to wait for; a call
of its own, answered after the signal went out, tells it when it has
received everything it would have (see fence()).
"""
import asyncio
import sys

from dbus_next import Message, MessageType
from dbus_next.aio import MessageBus
from dbus_next.errors import DBusError

NAME = "org.libpeer.Helper"
PATH = "/org/libpeer/Helper"
HELPER1 = "org.libpeer.Helper1"
TIMEOUT_S = 5

address = sys.argv[1]


def driver_call(member, signature="", body=()):
    return Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                   interface="org.freedesktop.DBus", member=member, signature=signature,
                   body=list(body))


async def checked_call(bus, message):
    reply = await asyncio.wait_for(bus.call(message), TIMEOUT_S)
    if reply.message_type == MessageType.ERROR:
        raise RuntimeError(f"{message.member}: {reply.error_name} {reply.body}")
    return reply


async def fence(bus):
    """Properties.Get is answered by the server's main thread, after the
    Notify handler that emitted the signal to every peer has returned;
    dbus-next handles messages in arrival order, so once the reply is in,
    so is every message sent before it."""
    await checked_call(bus, Message(destination=NAME, path=PATH,
                                    interface="org.freedesktop.DBus.Properties", member="Get",
                                    signature="ss", body=[HELPER1, "Version"]))


class Recorder:
    """A low-level connection that records the broadcast signals it gets."""

    def __init__(self, bus, rule):
        self.bus = bus
        self.rule = rule
        self.saw = []
        self.events = {}
        bus.add_message_handler(self.on_message)

    def on_message(self, msg):
        if msg.message_type != MessageType.SIGNAL or msg.destination is not None:
            return None
        if msg.member == "PropertiesChanged":
            if "Label" not in msg.body[1]:
                return None              # Peers changes as other tests' peers come and go
            what = "PropertiesChanged(Label)"
        elif msg.member == "Notified":
            what = f"Notified({msg.body[1]})"
        else:
            what = msg.member
        self.saw.append(what)
        self.events.setdefault(what, asyncio.Event()).set()
        return None

    async def wait_for(self, what):
        try:
            await asyncio.wait_for(self.events.setdefault(what, asyncio.Event()).wait(), TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{self.rule or 'no rule'}: no {what} within {TIMEOUT_S} s; saw {self.saw}")


async def main():
    bus = await MessageBus(bus_address=address).connect()
    print("unique-name", bus.unique_name)

    introspection = await bus.introspect(NAME, PATH)
    helper = bus.get_proxy_object(NAME, PATH, introspection).get_interface(HELPER1)
    print("quick", await helper.call_quick(8))
    try:
        await helper.call_quick(0)
        raise RuntimeError("Quick(0) unexpectedly succeeded")
    except DBusError as e:
        print("error", e.type, e.text)
    print("version", await helper.get_version())

    # --- a signal after a call, through the proxy -------------------------
    got = asyncio.get_running_loop().create_future()

    def on_notified(id_, summary):
        if summary == "from dbus-next python" and not got.done():
            got.set_result(id_)

    helper.on_notified(on_notified)
    notify_id = await helper.call_notify("python", 0, "", "from dbus-next python", "", [], {}, -1)
    try:
        signal_id = await asyncio.wait_for(got, TIMEOUT_S)
    except asyncio.TimeoutError:
        raise RuntimeError(f"no Notified within {TIMEOUT_S} s")
    if signal_id != notify_id:
        raise RuntimeError(f"Notified carried id {signal_id}, Notify returned {notify_id}")
    print("notified", signal_id, "from dbus-next python")

    # --- match rules: a signal subscribed to, one not ----------------------
    recorders = {}
    for key, rule in (("all", "type='signal',sender='org.libpeer.Helper'"),
                      ("member", "type='signal',member='Notified'"),
                      ("none", None)):
        recorder = Recorder(await MessageBus(bus_address=address).connect(), rule)
        if rule is not None:
            await checked_call(recorder.bus, driver_call("AddMatch", "s", [rule]))
        recorders[key] = recorder

    await helper.set_label("from dbus-next python")
    await helper.call_notify("python", 0, "", "match rules", "", [], {}, -1)
    await recorders["all"].wait_for("Notified(match rules)")
    await recorders["member"].wait_for("Notified(match rules)")
    await fence(recorders["none"].bus)
    for key, recorder in recorders.items():
        print(f"{key}-saw:", " ".join(recorder.saw))
        recorder.bus.disconnect()
    bus.disconnect()


try:
    asyncio.run(main())
except Exception as e:                   # noqa: BLE001: the test shows it
    print("python-dbus-next-client:", type(e).__name__, e)
    sys.exit(1)
