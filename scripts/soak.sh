#!/bin/sh
# The long soak (issue 13), not run in CI: tests/test-load.c's 64 peers
# over plain D-Bus and lanes, with fds, blobs and jobs, a slow reader and
# hostile peers beside them, for SECONDS (default 300), against a server
# in the same process. Fails when a reply was lost or wrong, or when the
# server's fds, threads or memory are not back near where they started.
# Prints those figures as a table; the whole log (GLib's warnings about
# the hostile peers' messages included) is kept under build/meson-logs/.
#
# Usage: scripts/soak.sh [SECONDS]
#   builds build/ first if needed (meson setup, ninja); the in-suite run
#   of the same test is `meson test -C build load` (suite 'slow').
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-300}

case $seconds in
  ''|*[!0-9]*) echo "usage: scripts/soak.sh [SECONDS]" >&2; exit 2 ;;
esac
[ -d build ] || meson setup build >/dev/null
ninja -C build tests/test-load >/dev/null

mkdir -p build/meson-logs
log=build/meson-logs/soak-$(date +%Y%m%d-%H%M%S).txt
echo "soak: ${seconds} s, log in $log"
status=0
# As meson test runs it (tests/meson.build), for longer.
G_DEBUG=gc-friendly,fatal-criticals MALLOC_CHECK_=2 \
PEER_LOAD_LONG=1 PEER_LOAD_SECONDS="$seconds" \
  build/tests/test-load >"$log" 2>&1 || status=$?
# The table (plain lines), the test's result, and what went wrong if it did.
grep -v -e '^#' -e '^$' -e 'GLib-GIO-WARNING' "$log" || true
[ "$status" = 0 ] || { echo "soak: FAILED ($status), see $log" >&2; grep -E '^# (not settled|fd |threads:)' "$log" >&2 || true; }
exit "$status"
