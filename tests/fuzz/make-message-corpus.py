#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-message.c: tests/fuzz/corpus/message/.

Run by hand after changing the input format or the seeds:

    python3 tests/fuzz/make-message-corpus.py [OUTPUT_DIR]

It empties OUTPUT_DIR (default: corpus/message next to this script) and
writes one file per seed. The format (see the top of fuzz-message.c): one
options byte (bits 0-1: fds per message, bit 2: keep NUM_UNIX_FDS as on the
wire), then D-Bus messages back to back. There is a seed for each rule of
peer-validate.c, broken and kept, and a few for what GLib's parser refuses
first.
"""
import os
import struct
import sys

# Options byte.
KEEP_WIRE_COUNT = 4

CALL, RETURN, ERROR, SIGNAL = 1, 2, 3, 4
PATH, INTERFACE, MEMBER, ERROR_NAME, REPLY_SERIAL = 1, 2, 3, 4, 5
DESTINATION, SENDER, SIGNATURE, UNIX_FDS = 6, 7, 8, 9

ALIGN = {"y": 1, "g": 1, "v": 1, "n": 2, "q": 2, "x": 8, "t": 8, "d": 8, "(": 8, "{": 8}
FIXED = {"y": "B", "n": "h", "q": "H", "i": "i", "u": "I", "h": "I", "x": "q", "t": "Q", "d": "d"}


def split(signature):
    """The complete types of a signature."""
    out, i = [], 0
    while i < len(signature):
        j = i
        while signature[j] == "a":
            j += 1
        if signature[j] in "({":
            depth = 0
            while True:
                depth += signature[j] in "({"
                depth -= signature[j] in ")}"
                j += 1
                if depth == 0:
                    break
        else:
            j += 1
        out.append(signature[i:j])
        i = j
    return out


class Writer:
    def __init__(self, endian):
        self.endian = endian
        self.data = bytearray()

    def pad(self, n):
        self.data += b"\0" * (-len(self.data) % n)

    def put(self, fmt, value):
        self.pad(struct.calcsize(fmt))
        self.data += struct.pack(self.endian + fmt, value)

    def value(self, t, v):
        c = t[0]
        if c in FIXED:
            if c == "h":
                v &= 0xFFFFFFFF
            self.put(FIXED[c], v)
        elif c == "b":
            self.put("I", int(v))
        elif c in "so":
            raw = v if isinstance(v, bytes) else v.encode()
            self.put("I", len(raw))
            self.data += raw + b"\0"
        elif c == "g":
            self.data += bytes([len(v)]) + v.encode() + b"\0"
        elif c == "v":
            inner, inner_value = v
            self.value("g", inner)
            self.value(inner, inner_value)
        elif c == "a":
            self.put("I", 0)
            at = len(self.data) - 4
            self.pad(ALIGN.get(t[1], 4))
            start = len(self.data)
            for item in v:
                self.value(t[1:], item)
            self.data[at:at + 4] = struct.pack(self.endian + "I", len(self.data) - start)
        elif c in "({":
            self.pad(8)
            for item_type, item in zip(split(t[1:-1]), v):
                self.value(item_type, item)
        else:
            raise ValueError(t)


def message(kind, fields, signature=None, body=(), serial=1, endian="<",
            version=1, flags=0, add_signature=True):
    """One message. @fields: (code, type, value) in wire order; the
    SIGNATURE field is added from @signature unless @add_signature is
    False or @fields has one."""
    w = Writer(endian)
    for t, v in zip(split(signature or ""), body):
        w.value(t, v)
    fields = list(fields)
    if signature is not None and add_signature and all(f[0] != SIGNATURE for f in fields):
        fields.append((SIGNATURE, "g", signature))
    header = Writer(endian)
    header.value("(yyyyuua(yv))", (
        ord("l" if endian == "<" else "B"), kind, flags, version, len(w.data), serial,
        [(code, (t, v)) for code, t, v in fields]))
    header.pad(8)
    return bytes(header.data + w.data)


def seed(options, *messages):
    return bytes([options]) + b"".join(messages)


OBJECT = (PATH, "o", "/org/example/Object")
IFACE = (INTERFACE, "s", "org.example.Iface")


def call(*extra, member="Ping", **kw):
    return message(CALL, [OBJECT, IFACE, (MEMBER, "s", member), *extra], **kw)


def signal(*extra, **kw):
    return message(SIGNAL, [OBJECT, IFACE, (MEMBER, "s", "Changed"), *extra], **kw)


def reply(*extra, **kw):
    return message(RETURN, [(REPLY_SERIAL, "u", 1), *extra], serial=2, **kw)


def error(*extra, **kw):
    kw.setdefault("signature", "s")
    kw.setdefault("body", ("it failed",))
    return message(ERROR, [(ERROR_NAME, "s", "org.example.Error.Failed"), (REPLY_SERIAL, "u", 1), *extra],
                   serial=2, **kw)


def seeds():
    s = {}

    # Well-formed messages, each type, with and without bodies.
    s["valid-call"] = seed(0, call())
    s["valid-call-no-interface"] = seed(0, message(CALL, [OBJECT, (MEMBER, "s", "Ping")]))
    s["valid-call-body"] = seed(0, call(signature="sa{sv}ay",
                                        body=("x", [("k", ("u", 7)), ("v", ("as", ["a", "b"]))], [1, 2, 3])))
    s["valid-call-names"] = seed(0, call((DESTINATION, "s", ":1.42"), (SENDER, "s", "org.example-x.Sender")))
    s["valid-call-big-endian"] = seed(0, call(signature="su", body=("x", 5), endian=">"))
    s["valid-signal"] = seed(0, signal(signature="s", body=("x",)))
    s["valid-return"] = seed(0, reply())
    s["valid-return-body"] = seed(0, reply(signature="(ii)", body=((1, 2),)))
    s["valid-error"] = seed(0, error())
    s["valid-error-no-body"] = seed(0, error(signature=None, body=()))
    s["valid-empty-signature"] = seed(0, reply((SIGNATURE, "g", "")))
    s["valid-unknown-fields"] = seed(0, call((200, "(sa{sv})", ("future", [])), (10, "y", 1)))
    s["valid-stream"] = seed(0, call(), reply(), signal(), error())

    # Message type and serial.
    s["type-0"] = seed(0, message(0, [OBJECT, (MEMBER, "s", "Ping")]))
    s["type-5"] = seed(0, message(5, [OBJECT, (MEMBER, "s", "Ping")]))
    s["type-255"] = seed(0, message(255, []))
    s["serial-0"] = seed(0, call(serial=0))
    s["serial-0-return"] = seed(0, message(RETURN, [(REPLY_SERIAL, "u", 1)], serial=0))
    s["field-code-0"] = seed(0, call((0, "y", 1)))

    # Header field types: the first is the one that crashes GLib's dispatch.
    s["path-type-s"] = seed(0, message(CALL, [(PATH, "s", "/org/example/Object"), (MEMBER, "s", "Ping")]))
    s["path-type-u"] = seed(0, message(SIGNAL, [(PATH, "u", 1), IFACE, (MEMBER, "s", "Changed")]))
    s["interface-type-o"] = seed(0, message(CALL, [OBJECT, (INTERFACE, "o", "/org/example"), (MEMBER, "s", "P")]))
    s["member-type-g"] = seed(0, message(CALL, [OBJECT, (MEMBER, "g", "s")]))
    s["error-name-type-o"] = seed(0, message(ERROR, [(ERROR_NAME, "o", "/e"), (REPLY_SERIAL, "u", 1)]))
    s["reply-serial-type-i"] = seed(0, message(RETURN, [(REPLY_SERIAL, "i", 1)]))
    s["destination-type-u"] = seed(0, call((DESTINATION, "u", 42)))
    s["sender-type-o"] = seed(0, signal((SENDER, "o", "/org/example/Sender")))
    s["signature-type-s"] = seed(0, reply((SIGNATURE, "s", "")))
    s["num-unix-fds-type-s"] = seed(0, call((UNIX_FDS, "s", "0")))
    s["num-unix-fds-type-s-fds"] = seed(1 | KEEP_WIRE_COUNT, call((UNIX_FDS, "s", "1")))

    # Required fields.
    s["call-no-path"] = seed(0, message(CALL, [IFACE, (MEMBER, "s", "Ping")]))
    s["call-no-member"] = seed(0, message(CALL, [OBJECT, IFACE]))
    s["signal-no-interface"] = seed(0, message(SIGNAL, [OBJECT, (MEMBER, "s", "Changed")]))
    s["error-no-name"] = seed(0, message(ERROR, [(REPLY_SERIAL, "u", 1)]))
    s["error-no-reply-serial"] = seed(0, message(ERROR, [(ERROR_NAME, "s", "org.example.Error")]))
    s["return-no-reply-serial"] = seed(0, message(RETURN, []))

    # Names and values.
    s["interface-name-bad"] = seed(0, message(CALL, [OBJECT, (INTERFACE, "s", "org..example"), (MEMBER, "s", "P")]))
    s["interface-name-one-element"] = seed(0, message(SIGNAL, [OBJECT, (INTERFACE, "s", "example"),
                                                               (MEMBER, "s", "C")]))
    s["member-name-bad"] = seed(0, call(member="Ping.Pong"))
    s["member-name-empty"] = seed(0, call(member=""))
    s["error-name-bad"] = seed(0, message(ERROR, [(ERROR_NAME, "s", "Failed"), (REPLY_SERIAL, "u", 1)]))
    s["destination-name-bad"] = seed(0, call((DESTINATION, "s", "org..x")))
    s["sender-name-bad"] = seed(0, signal((SENDER, "s", ":")))
    s["reply-serial-0"] = seed(0, message(RETURN, [(REPLY_SERIAL, "u", 0)]))

    # Reserved names.
    local_path = (PATH, "o", "/org/freedesktop/DBus/Local")
    local_iface = (INTERFACE, "s", "org.freedesktop.DBus.Local")
    s["reserved-call-path"] = seed(0, message(CALL, [local_path, (MEMBER, "s", "Ping")]))
    s["reserved-call-interface"] = seed(0, message(CALL, [OBJECT, local_iface, (MEMBER, "s", "Ping")]))
    s["reserved-signal-path"] = seed(0, message(SIGNAL, [local_path, IFACE, (MEMBER, "s", "Changed")]))
    s["reserved-signal-interface"] = seed(0, message(SIGNAL, [OBJECT, local_iface, (MEMBER, "s", "Changed")]))
    s["reserved-path-on-return"] = seed(0, reply(local_path))

    # Body and signature.
    s["signature-without-body"] = seed(0, reply((SIGNATURE, "g", "s")))
    s["body-without-signature"] = seed(0, reply(signature="s", body=("x",), add_signature=False))
    s["signature-invalid"] = seed(0, reply((SIGNATURE, "g", "a"), signature="y", body=(1,)))

    # fds and handles.
    s["fds-valid"] = seed(2, call(signature="hh", body=(0, 1)))
    s["fds-valid-kept"] = seed(2 | KEEP_WIRE_COUNT, call((UNIX_FDS, "u", 2), signature="hh", body=(0, 1)))
    s["fds-announced-none-came"] = seed(0, call((UNIX_FDS, "u", 2), signature="hh", body=(0, 1)))
    s["fds-more-came"] = seed(2 | KEEP_WIRE_COUNT, call((UNIX_FDS, "u", 1), signature="h", body=(0,)))
    s["fds-unannounced"] = seed(1 | KEEP_WIRE_COUNT, call())
    s["handle-range"] = seed(1, call(signature="h", body=(1,)))
    s["handle-no-fds"] = seed(0, call(signature="h", body=(0,)))
    s["handle-negative"] = seed(3, call(signature="h", body=(-1,)))
    s["handle-array"] = seed(2, call(signature="ah", body=([0, 1, 2],)))
    s["handle-array-valid"] = seed(2, call(signature="ah", body=([0, 1, 1],)))
    s["handle-struct-array"] = seed(3, call(signature="sa(sh)u", body=("x", [("a", 0), ("b", 3)], 7)))
    s["handle-variant"] = seed(1, call(signature="a{sv}", body=([("fd", ("h", 1)), ("n", ("i", 1))],)))
    s["handle-variant-valid"] = seed(1, call(signature="a{sv}", body=([("fd", ("h", 0)), ("n", ("i", 1))],)))
    s["handle-variant-nested"] = seed(1, call(signature="v", body=(("(iv)", (1, ("ah", [0, 7]))),)))

    # What GLib's parser refuses before the validator.
    good = call()
    s["parser-bad-endianness"] = seed(0, b"x" + good[1:])
    s["parser-version-2"] = seed(0, call(version=2))
    s["parser-truncated"] = seed(0, good[:-3])
    s["parser-short"] = seed(0, good[:12])
    s["parser-string-no-nul"] = seed(0, call(signature="s", body=("hello",))[:-1] + b"x")
    s["parser-bad-utf8"] = seed(0, call(signature="s", body=(b"\xff\xfe",)))
    s["parser-huge-length"] = seed(0, b"l\x01\x00\x01" + struct.pack("<III", 0x10000000, 1, 0))
    s["parser-garbage"] = seed(0, bytes(range(256)))
    # GLib 2.74 adds 16 + 0xfffffff8 in 32 bits: g_dbus_message_bytes_needed() says 8.
    s["parser-header-length-wraps"] = seed(0, b"l\x01\x00\x01" + struct.pack("<III", 0, 1, 0xFFFFFFF8) + good)

    # A stream: a refused message, then good ones.
    s["stream-refused-then-valid"] = seed(0, call(serial=0), call(), reply())
    s["stream-parser-stops"] = seed(0, call(), b"x" + good[1:], call())
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "message")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
