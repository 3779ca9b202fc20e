#!/bin/sh
# render-svg.sh SVG [PNG]: renders a peer-bench chart in headless Chromium
# and checks that the picture is not blank (many distinct colours, a fair
# share of non-white pixels). Not part of `meson test`: Chromium is heavy.
# Needs the Debian package chromium and python3 (standard library only).
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 SVG [PNG]" >&2
  exit 2
fi
svg=$(realpath "$1")
png=${2:-${1%.svg}.png}

browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "render-svg: chromium is not installed (apt-get install chromium)" >&2
  exit 1
fi

# The window is the chart's own size, read from its root element.
size=$(python3 - "$svg" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
print("%d,%d" % (float(root.get("width")), float(root.get("height"))))
PY
)

# --no-sandbox: Chromium refuses to run as root otherwise.
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --no-first-run --hide-scrollbars --window-size="$size" \
  --screenshot="$(realpath -m "$png")" "file://$svg" 2>/dev/null

python3 - "$png" <<'PY'
import struct, sys, zlib

def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit("render-svg: %s is not a PNG" % path)
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {2: 3, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise SystemExit("render-svg: unexpected PNG format %r" % (header,))
    raw, stride, rows, prev = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, channels, rows

width, height, channels, rows = read_png(sys.argv[1])
colours, inked = set(), 0
for row in rows:
    for x in range(0, len(row), channels):
        pixel = row[x:x + 3]
        colours.add(pixel)
        inked += pixel != b"\xff\xff\xff"
share = inked / (width * height)
print("render-svg: %s: %dx%d, %d colours, %.1f%% not white" % (sys.argv[1], width, height, len(colours), 100 * share))
if len(colours) < 16 or share < 0.01:
    raise SystemExit("render-svg: the picture looks blank")
PY
