#!/usr/bin/python3
"""A python3-dbus (libdbus) client that passes fds to peer-server, as a peer.

Usage: python-fd-client.py ADDRESS digest FILE ALGORITHM
       python-fd-client.py ADDRESS digest-pipe SIZE
       python-fd-client.py ADDRESS open PATH
       python-fd-client.py ADDRESS echo SIZE

Prints the result, or "error NAME" for a D-Bus error; exits non-zero on
anything unexpected.
"""
import hashlib
import os
import sys
import threading

import dbus
import dbus.connection

HELPER = ("/org/libpeer/Helper", "org.libpeer.Helper1")
BENCH = ("/org/libpeer/Bench", "org.libpeer.Bench1")


def pattern(size):
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(size))


def call(conn, where, method, signature, args, **kwargs):
    return conn.call_blocking(None, where[0], where[1], method, signature, args, **kwargs)


def main():
    address, mode = sys.argv[1], sys.argv[2]
    conn = dbus.connection.Connection(address)
    # libdbus authenticates lazily, and only then knows that fd passing was
    # negotiated: a first call without fds completes the handshake.
    call(conn, BENCH, "Ping", "", ())
    try:
        if mode == "digest":
            with open(sys.argv[3], "rb") as f:
                print(call(conn, HELPER, "Digest", "hs", (dbus.types.UnixFd(f), sys.argv[4])))
        elif mode == "digest-pipe":
            size = int(sys.argv[3])
            data = pattern(size)
            r, w = os.pipe()

            def writer():
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view):]
                os.close(w)

            thread = threading.Thread(target=writer)
            thread.start()
            hex_digest = call(conn, HELPER, "Digest", "hs", (dbus.types.UnixFd(r), "sha256"), timeout=120)
            os.close(r)
            thread.join()
            print(hex_digest, hashlib.sha256(data).hexdigest())
        elif mode == "open":
            fd = call(conn, HELPER, "OpenFile", "s", (sys.argv[3],)).take()
            with os.fdopen(fd, "rb") as f:
                sys.stdout.write(f.read().decode())
        elif mode == "echo":
            data = pattern(int(sys.argv[3]))
            reply = call(conn, BENCH, "Echo", "ay", (dbus.ByteArray(data),), byte_arrays=True)
            print("echo", "same" if bytes(reply) == data else "changed", len(reply))
        else:
            sys.exit("unknown mode " + mode)
    except dbus.exceptions.DBusException as e:
        print("error", e.get_dbus_name())


main()
