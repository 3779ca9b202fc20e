#!/bin/sh
# smoke-test.sh PEER_BENCH: runs peer-bench once, tiny, and checks what it
# wrote: the JSON parses and has a result for every cell, the fd cells up
# to the kernel's 253 fds and the memfd cells included, the SVG is
# well-formed XML with its four panels, the depth and clients cells
# included (those a one-connection-at-a-time server cannot serve n/a),
# the chart's key (lower is better, the floor and each transport said in
# words), a dash pattern per transport and each line named, and bad
# options exit with status 2.
# No timing is checked: this is a noisy-machine-safe test that the
# benchmark still works, not a benchmark.
set -eu

bench=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/peer-bench-smoke-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

if ! command -v python3 >/dev/null 2>&1; then
  echo "python3 is needed to check the JSON and SVG; skipping" >&2
  exit 77
fi

# Small memfds: the smoke test checks that the hand-off works, not what
# 64 MiB costs.
"$bench" --seconds 0.05 --sizes 0,64 --depth 1,4 --clients 1,4 --fds 1,16,253 --memfd-sizes 64k,1M \
  --json "$tmp/results.json" --svg "$tmp/results.svg" >"$tmp/table.txt"
cat "$tmp/table.txt"

python3 - "$tmp/results.json" "$tmp/results.svg" <<'PY'
import json, sys
import xml.etree.ElementTree as ET

with open(sys.argv[1]) as f:
    report = json.load(f)
results = report["results"]
transports = sorted({r["transport"] for r in results})
assert "floor" in transports and "libpeer" in transports and "gdbus" in transports, transports
cells = {(r["cell"], r["size"], r["fds"], r["depth"], r["clients"]) for r in results}
assert cells == {("echo", 0, 0, 1, 1), ("echo", 64, 0, 1, 1), ("fd", 0, 1, 1, 1), ("fd", 0, 16, 1, 1),
                 ("fd", 0, 253, 1, 1), ("memfd", 65536, 1, 1, 1), ("memfd", 1048576, 1, 1, 1),
                 ("pipeline", 8, 0, 1, 1), ("pipeline", 8, 0, 4, 1),
                 ("clients", 8, 0, 1, 1), ("clients", 8, 0, 1, 4)}, cells
for r in results:
    if r["available"]:
        assert r["calls"] > 0 and r["p50_us"] > 0 and r["p50_us"] <= r["p99_us"] <= r["max_us"], r
    elif r["cell"] not in ("fd", "clients"):
        raise AssertionError("only an fd or a clients cell may be n/a: %r" % r)
# The clients cells: libpeer's servers serve many connections at once,
# and say how evenly.
for r in results:
    if r["cell"] == "clients" and r["transport"] in ("libpeer", "libpeer-lane", "gdbus"):
        assert r["available"] and r["fairness_max_over_min"] >= 1, r
    if r["cell"] == "memfd":
        assert r["method"] == ("copy" if r["transport"] == "floor" else "memfd"), r
# Every transport passes one fd, and every one but a lane (whose frames
# carry fewer) passes 253.
for r in results:
    if r["cell"] == "fd" and not (r["fds"] == 253 and r["transport"] == "libpeer-lane"):
        assert r["available"], r
for key in ("cpu_model", "cpus", "kernel", "glib"):
    assert report["machine"][key], key

root = ET.parse(sys.argv[2]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
lines = root.findall(".//{http://www.w3.org/2000/svg}polyline")
assert len(lines) >= 3 * len(transports), len(lines)
titles = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "title"]
assert len(titles) == 4 and titles[2].startswith("Passing fds") and titles[3].startswith("Under load"), titles

# The chart explains itself: which way is better, what the floor is, and
# each transport (libpeer's two paths apart), in a key at the top.
def text_of(element):
    return "".join(element.itertext())
texts = list(root.iter("{http://www.w3.org/2000/svg}text"))
explain = " ".join(text_of(t) for t in texts if t.get("class") == "explain")
assert "Lower is better" in explain, explain
key_names = [t.text for t in root.iter("{http://www.w3.org/2000/svg}tspan") if t.get("class") == "key-name"]
assert sorted(key_names) == transports, key_names
for name, words in (("floor", "bare Unix socket"), ("libpeer", "standard path"),
                    ("libpeer-lane", "fast path"), ("gdbus", "GDBus")):
    line = next(text_of(t) for t in texts if t.get("class") == "explain" and text_of(t).startswith(name + ":"))
    assert words in line, (name, line)
notes = [t for t in texts if t.get("class") == "panel-note"]
assert len(notes) >= 4, len(notes)
# Lines on top of each other stay apart: each transport has its own dash
# pattern or marker, the same in every panel, and is named where its line
# ends in the first panel.
styles = {}
for line in root.iter("{http://www.w3.org/2000/svg}polyline"):
    if line.get("class") == "transport-line":
        colour = line.get("stroke") or ""
        styles.setdefault(colour, set()).add(line.get("stroke-dasharray"))
for group in root.iter("{http://www.w3.org/2000/svg}g"):
    for line in group.findall("{http://www.w3.org/2000/svg}polyline"):
        if line.get("class") == "transport-line":
            styles.setdefault(group.get("stroke"), set()).add(line.get("stroke-dasharray"))
styles.pop("", None)
assert len(styles) == len(transports) and all(len(d) == 1 for d in styles.values()), styles
dashes = [next(iter(d)) for d in styles.values()]
assert len(set(dashes)) == len(transports), dashes
labels = [t.text for t in texts if t.get("class") == "end-label"]
for name in transports:
    assert labels.count(name) >= 3, (name, labels)
print("smoke: %d results from %s; SVG has %d lines" % (len(results), ", ".join(transports), len(lines)))
PY

# Bad input: one line on stderr, exit status 2.
for args in "--sizes 12x" "--sizes 0,,64" "--pin sideways" "--depth 0" "--seconds -1" \
            "--seconds nan" "--transports nonesuch" "--depth 1,1" "--clients 0" "--clients 257" "--fds 0" "--fds 254" "--fds 1,1" \
            "--memfd-sizes 0" "--memfd-sizes 65M" "--cells echo,nonesuch" "stray-argument"; do
  status=0
  # shellcheck disable=SC2086 # the arguments are split on purpose
  "$bench" $args >"$tmp/out" 2>"$tmp/err" || status=$?
  if [ "$status" -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ]; then
    echo "peer-bench $args: exit status $status, stderr:" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
done
echo "smoke: bad options refused"
