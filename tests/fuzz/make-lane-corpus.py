#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-lane-frame.c: tests/fuzz/corpus/lane-frame/.

Run by hand after changing the input format or the seeds:

    python3 tests/fuzz/make-lane-corpus.py [OUTPUT_DIR]

It empties OUTPUT_DIR (default: corpus/lane-frame next to this script) and
writes one file per seed. The format (see the top of fuzz-lane-frame.c):
one options byte, then datagrams, each a 3-byte little-endian length and
its bytes. A lane datagram is a 16-byte header (serial u32, target u32,
kind u8, flags u8, n_fds u16, body_size u32, native = little-endian byte
order here) and the body.
"""
import os
import struct
import sys

# Options byte.
MAX_BODY_TINY = 0       # 64 KiB: every chunked body is over it
MAX_BODY_EDGE = 1       # PEER_LANE_MAX_INLINE + 4 KiB
MAX_BODY_LARGE = 2      # 256 KiB
DRAIN = 4
SKIP = 8
NO_BUFFERS = 0x30
HOLD = 0x40

CALL, REPLY, ERROR, CHUNK, SIGNAL, REDIRECT, BATCH = 1, 2, 3, 4, 5, 6, 7
BLOB, CHUNKED, REDIRECTABLE = 1, 2, 4
MAX_INLINE = 128 * 1024


def header(serial, target, kind, flags=0, n_fds=0, body_size=0):
    return struct.pack("<IIBBHI", serial, target, kind, flags, n_fds, body_size)


def frame(serial, target, kind, body=b""):
    return header(serial, target, kind, body_size=len(body)) + body


def batched(serial, target, kind, body=b"", flags=0):
    """A frame as a batch holds it: header, body, padding to 8 bytes."""
    out = header(serial, target, kind, flags, body_size=len(body)) + body
    return out + b"\0" * (-len(out) % 8)


def batch(*frames, flags=0):
    body = b"".join(frames)
    return header(0, len(frames), BATCH, flags, body_size=len(body)) + body


def chunk(serial, target, offset, data):
    return header(serial, target, CHUNK, body_size=offset) + data


def chunked(serial, target, kind, size):
    return header(serial, target, kind, CHUNKED, body_size=size)


def body_bytes(size, seed=0):
    return bytes((i * 7 + seed) & 0xFF for i in range(size))


def seed(options, *datagrams, tail=None):
    """The input: the options byte, then each datagram with its length;
    @tail, if given, is appended raw (a last datagram without a length)."""
    out = bytearray([options])
    for d in datagrams:
        out += struct.pack("<I", len(d))[:3] + d
    if tail is not None:
        out += tail
    return bytes(out)


def seeds():
    s = {}
    o = MAX_BODY_LARGE

    # The old one-datagram seeds, each now one datagram.
    s["bad-kind"] = seed(o, header(7, 0, 9))
    s["bad-size"] = seed(o, header(8, 0, CALL, body_size=100) + b"short")
    s["blob-without-fd"] = seed(o, header(9, 0, CALL, BLOB))
    s["call-ay"] = seed(o, frame(2, 1, CALL, b"hello world"))
    s["call-empty"] = seed(o, frame(1, 0, CALL))
    s["call-i"] = seed(o, frame(4, 3, CALL, struct.pack("<i", 64)))
    s["call-s"] = seed(o, frame(3, 2, CALL, b"text\0"))
    s["error"] = seed(o, frame(6, 1, ERROR, b"org.x.E\0msg\0\x08"))
    s["fds-announced"] = seed(o, header(10, 0, CALL, n_fds=2))
    s["reply"] = seed(o, frame(5, 1, REPLY, b"abc"))
    s["short"] = seed(o, b"\x01\x02\x03")
    # Last datagrams without a length: 2 bytes (too few for a length),
    # then a length that runs past the end.
    s["short-raw"] = seed(o, tail=b"\x01\x02")
    s["tail-raw"] = seed(o, frame(1, 0, CALL), tail=b"\xff\xff\xff" + frame(2, 1, REPLY, b"abc"))

    # Several whole frames in a row.
    s["sequence"] = seed(o | HOLD,
                         frame(1, 0, CALL),
                         frame(2, 1, CALL, b"hello world"),
                         frame(3, 1, REPLY, b"abc"),
                         frame(4, 1, ERROR, b"org.x.E\0msg\0\x08"))

    # A valid chunked frame: 128 KiB + 1 in two chunks, then a whole frame.
    size = MAX_INLINE + 1
    body = body_bytes(size)
    part = body_bytes(64, 3)
    s["chunked-two"] = seed(o | HOLD,
                            chunked(11, 1, CALL, size),
                            chunk(11, 1, 0, body[:MAX_INLINE]),
                            chunk(11, 1, MAX_INLINE, body[MAX_INLINE:]),
                            frame(12, 1, CALL, b"hello world"))
    # An oversized one (max_body 64 KiB), drained; a whole frame between
    # its chunks is skipped; then a whole frame.
    s["chunked-oversized-drained"] = seed(MAX_BODY_TINY | DRAIN | SKIP,
                                          chunked(13, 2, REPLY, size),
                                          chunk(13, 2, 0, body[:65536]),
                                          frame(99, 98, REPLY, b"stale"),
                                          chunk(13, 2, 65536, body[65536:]),
                                          frame(14, 2, REPLY, b"abc"))
    # An oversized one being drained: a chunk over PEER_LANE_MAX_INLINE
    # (more than the reader's scratch buffer), then one that runs past the
    # end of the frame.
    big = size + 4096 - 64
    s["chunked-oversized-past-end"] = seed(MAX_BODY_EDGE | DRAIN,
                                           chunked(15, 1, CALL, size + 4096),
                                           chunk(15, 1, 0, (body + part * 64)[:big]),
                                           chunk(15, 1, big, part * 2))

    # Small broken sequences: each fails at the first bad datagram.
    s["chunked-truncated"] = seed(o, chunked(20, 1, CALL, size))
    s["chunked-truncated-mid"] = seed(o, chunked(20, 1, CALL, size), chunk(20, 1, 0, part))
    s["chunk-out-of-order"] = seed(o, chunked(21, 1, CALL, size),
                                   chunk(21, 1, 64, part), chunk(21, 1, 0, part))
    s["chunk-gap"] = seed(o, chunked(21, 1, CALL, size),
                          chunk(21, 1, 0, part), chunk(21, 1, 128, part))
    s["chunk-wrong-serial"] = seed(o, chunked(22, 1, CALL, size), chunk(23, 1, 0, part))
    s["chunk-wrong-target"] = seed(o, chunked(22, 1, CALL, size), chunk(22, 2, 0, part))
    s["chunk-with-flags"] = seed(o, chunked(22, 1, CALL, size),
                                 header(22, 1, CHUNK, CHUNKED) + part)
    s["chunk-header-only"] = seed(o, chunked(24, 1, CALL, size), chunk(24, 1, 0, b""))
    s["chunk-short"] = seed(o, chunked(24, 1, CALL, size), b"\x04\x00\x00")
    s["chunked-interleaved-refused"] = seed(o, chunked(25, 1, CALL, size),
                                            chunk(25, 1, 0, part),
                                            frame(26, 1, REPLY, b"abc"),
                                            chunk(25, 1, 64, part))
    s["chunked-interleaved-skipped"] = seed(o | SKIP, chunked(25, 1, REPLY, size),
                                            chunk(25, 1, 0, part),
                                            frame(26, 1, REPLY, b"abc"),
                                            chunk(25, 1, 64, part))
    s["chunked-nested"] = seed(o | SKIP, chunked(27, 1, CALL, size),
                               chunk(27, 1, 0, part),
                               chunked(28, 1, CALL, size))
    s["chunk-stray"] = seed(o, chunk(30, 1, 4096, part),
                            frame(31, 1, CALL, b"hello world"),
                            header(32, 0, CHUNK, 0xff, 3, 0xFFFFFFFF),
                            frame(33, 1, REPLY))
    s["chunked-oversized-refused"] = seed(MAX_BODY_TINY, chunked(34, 1, CALL, size),
                                          chunk(34, 1, 0, part))
    s["chunked-oversized-truncated"] = seed(MAX_BODY_EDGE | DRAIN, chunked(35, 1, CALL, 1 << 20),
                                            chunk(35, 1, 0, part), chunk(35, 1, 64, part))
    s["chunked-no-buffers"] = seed(o | NO_BUFFERS, chunked(36, 1, CALL, size),
                                   chunk(36, 1, 0, part))
    s["chunked-small"] = seed(o, chunked(37, 1, CALL, MAX_INLINE), chunk(37, 1, 0, part))
    s["chunked-inline-bytes"] = seed(o, chunked(38, 1, CALL, size) + part)
    s["chunked-blob"] = seed(o, header(39, 1, CALL, BLOB | CHUNKED, 1, size))
    s["chunked-fds-announced"] = seed(o, header(40, 1, CALL, CHUNKED, 1, size))
    # Batches: several frames in one datagram, and the ways one breaks.
    s["batch-calls"] = seed(o | HOLD,
                            batch(batched(41, 1, CALL, b"hello world", REDIRECTABLE),
                                  batched(42, 2, CALL, b"text\0"),
                                  batched(43, 3, CALL, struct.pack("<i", 64))),
                            frame(44, 1, CALL))
    s["batch-replies"] = seed(o, batch(batched(0, 41, REPLY, b"abc"),
                                       batched(0, 42, ERROR, b"org.x.E\0msg\0\x08"),
                                       batched(0, 43, REDIRECT, b"\0"),
                                       batched(0, 0, SIGNAL, b"/\0org.x\0S\0\0\0\0\0\0\0\0()")))
    s["batch-empty"] = seed(o, batch(), frame(45, 1, CALL))
    s["batch-truncated"] = seed(o, header(0, 1, BATCH, body_size=24) + batched(46, 1, CALL, b"x" * 20)[:24])
    s["batch-past-end"] = seed(o, batch(header(47, 1, CALL, body_size=64)))
    s["batch-nested"] = seed(o, batch(batched(0, 0, BATCH)))
    s["batch-chunk"] = seed(o, batch(batched(48, 1, CHUNK, b"x")))
    s["batch-frame-flags"] = seed(o, batch(batched(49, 1, CALL, b"x", CHUNKED)))
    s["batch-reply-redirectable"] = seed(o, batch(batched(0, 49, REPLY, b"x", REDIRECTABLE)))
    s["batch-frame-fds"] = seed(o, batch(header(50, 1, CALL, n_fds=1) + b"\0" * 0))
    s["batch-flags"] = seed(o, batch(batched(51, 1, CALL), flags=CHUNKED))
    s["batch-unaligned"] = seed(o, header(0, 1, BATCH, body_size=20) + header(52, 1, CALL, body_size=4) + b"abcd")
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "corpus", "lane-frame")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))
    for name, data in sorted(seeds().items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
