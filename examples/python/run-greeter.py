#!/usr/bin/python3
"""Runs the Python greeter, a libpeer server and client through GObject
introspection (meson test, suite python).

Usage: run-greeter.py SOURCE_ROOT [--twin]

Starts greeter-server.py, then either runs greeter-client.py and checks
what it prints (and that the README shows these two files as they are),
or, with --twin, makes the calls that must fail: an unknown method, wrong
argument types, an unknown property, each with the D-Bus error GDBus
gives, and the server still answers afterwards. Either way the server
must stop on SIGTERM with status 0, print nothing on stderr (a handler
that raised would have) and leave no socket behind. Needs
GI_TYPELIB_PATH and LD_LIBRARY_PATH to reach the build tree's
Peer-1.typelib and libpeer-1.so (meson test sets them).
"""
import os
import re
import select
import signal
import subprocess
import sys

import gi
gi.require_version("Peer", "1")
from gi.repository import Gio, GLib, Peer

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "greeter-server.py")
CLIENT = os.path.join(HERE, "greeter-client.py")
PATH, IFACE = "/org/example/Greeter", "org.example.Greeter1"
TIMEOUT_S = 20


def fail(message):
    sys.exit(f"run-greeter.py: {message}")


def check_readme(source_root):
    """The README's section shows both files, verbatim."""
    with open(os.path.join(source_root, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## Python and other languages\n", 1)
    if len(section) != 2:
        fail("README.md has no section 'Python and other languages'")
    section = section[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.S | re.M)
    for path in (SERVER, CLIENT):
        with open(path, encoding="utf-8") as f:
            if f.read() not in blocks:
                fail(f"README.md does not show {os.path.basename(path)} as it is")


def start_server():
    server = subprocess.Popen([sys.executable, SERVER], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([server.stdout], [], [], TIMEOUT_S)
    line = server.stdout.readline().strip() if ready else ""
    if not line.startswith("unix:path="):
        server.kill()
        fail(f"the server printed no address: {line!r} {server.stderr.read()!r}")
    return server, line


def run_client(address):
    out = subprocess.run([sys.executable, CLIENT, address], capture_output=True,
                         text=True, timeout=TIMEOUT_S)
    expected = ["Hello, Ada!", "greeted Ada", "greetings 1", "refused: Not today"]
    if out.returncode != 0 or out.stdout.splitlines() != expected:
        fail(f"greeter-client.py exited {out.returncode}:\n{out.stdout}{out.stderr}")
    print(out.stdout, end="")


def expect_error(what, domain, code, func):
    try:
        func()
    except GLib.Error as e:
        if not e.matches(domain, code):
            fail(f"{what}: {e.domain} {e.code} {e.message}")
        print(f"{what}: {e.message}")
    else:
        fail(f"{what} did not fail")


def run_twin(address):
    client = Peer.Client.new_sync(address, -1, None)

    def call(method, args):
        return client.call_sync(PATH, IFACE, method, args, None, -1, None, None)

    expect_error("unknown method", Gio.DBusError.quark(), Gio.DBusError.UNKNOWN_METHOD,
                 lambda: call("Shout", GLib.Variant("(s)", ("Ada",))))
    expect_error("wrong argument types", Gio.DBusError.quark(), Gio.DBusError.INVALID_ARGS,
                 lambda: call("Greet", GLib.Variant("(i)", (42,))))
    expect_error("missing argument", Gio.DBusError.quark(), Gio.DBusError.INVALID_ARGS,
                 lambda: call("Greet", None))
    expect_error("unknown property", Gio.DBusError.quark(), Gio.DBusError.INVALID_ARGS,
                 lambda: client.get_property_sync(PATH, IFACE, "Farewells", None))
    reply, _fds = call("Greet", GLib.Variant("(s)", ("Ada",)))
    if reply.unpack() != ("Hello, Ada!",):
        fail(f"Greet after the errors answered {reply}")
    client.close()


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[2:] not in ([], ["--twin"]):
        fail("usage: run-greeter.py SOURCE_ROOT [--twin]")
    twin = sys.argv[2:] == ["--twin"]
    if not twin:
        check_readme(sys.argv[1])

    server, address = start_server()
    try:
        if twin:
            run_twin(address)
        else:
            run_client(address)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            status = "killed after SIGTERM timed out"
    stderr = server.stderr.read()
    if status != 0 or stderr:
        fail(f"the server exited {status}:\n{stderr}")
    socket_path = address[len("unix:path="):]
    if os.path.exists(socket_path) or os.path.exists(os.path.dirname(socket_path)):
        fail(f"the server left {socket_path} behind")
    print("ok")


if __name__ == "__main__":
    main()
