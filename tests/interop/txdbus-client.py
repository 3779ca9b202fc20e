#!/usr/bin/python3
"""A client written with txdbus (Twisted), against a libpeer server.
txdbus is a bus client only: it says Hello (at object path "/Hello", which
a bus driver must answer all the same) before anything else.

Usage: txdbus-client.py ADDRESS

Prints one result per line; exits non-zero on anything unexpected.

It gets a proxy for org.libpeer.Helper at /org/libpeer/Helper (txdbus
introspects it), calls Quick(8) and Quick(0), whose error must arrive
under its D-Bus name, then subscribes to Helper1.Notified (an AddMatch),
calls Notify and waits for the signal. The whole run has TIMEOUT_S; past
it, the script prints what it was waiting for and fails.
"""
import sys

from twisted.internet import defer, reactor
from txdbus import client, error

NAME = "org.libpeer.Helper"
PATH = "/org/libpeer/Helper"
HELPER1 = "org.libpeer.Helper1"
SUMMARY = "from txdbus"
TIMEOUT_S = 10

address = sys.argv[1]
state = {"step": "the connection (Hello)", "code": 1}


def finish(code):
    state["code"] = code
    if reactor.running:
        reactor.stop()


def expire():
    print("timed out waiting for", state["step"])
    finish(1)


@defer.inlineCallbacks
def main():
    conn = yield client.connect(reactor, busAddress=address)
    print("unique-name", conn.busName)

    state["step"] = "the proxy (Introspect)"
    helper = yield conn.getRemoteObject(NAME, PATH)

    state["step"] = "Quick(8)"
    number = yield helper.callRemote("Quick", 8, interface=HELPER1)
    print("quick", number)

    state["step"] = "Quick(0)"
    try:
        yield helper.callRemote("Quick", 0, interface=HELPER1)
        raise RuntimeError("Quick(0) unexpectedly succeeded")
    except error.RemoteError as e:
        print("error", e.errName, e.message)

    # --- a signal after a call --------------------------------------------
    notified = defer.Deferred()

    def on_notified(id_, summary):
        if summary == SUMMARY and not notified.called:
            notified.callback(id_)

    state["step"] = "the AddMatch for Notified"
    yield helper.notifyOnSignal("Notified", on_notified, interface=HELPER1)
    state["step"] = "Notify"
    notify_id = yield helper.callRemote("Notify", "txdbus", 0, "", SUMMARY, "", [], {}, -1,
                                        interface=HELPER1)
    state["step"] = "Notified"
    signal_id = yield notified
    if signal_id != notify_id:
        raise RuntimeError(f"Notified carried id {signal_id}, Notify returned {notify_id}")
    print("notified", signal_id, SUMMARY)
    conn.disconnect()


def failed(failure):
    print("txdbus-client:", failure.type.__name__, failure.getErrorMessage())
    finish(1)


def run():
    d = main()
    d.addCallbacks(lambda _: finish(0), failed)


reactor.callWhenRunning(run)
timer = reactor.callLater(TIMEOUT_S, expire)
reactor.run()
sys.stdout.flush()
sys.exit(state["code"])
