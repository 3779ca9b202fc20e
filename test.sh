#!/bin/sh
# Runs libpeer's whole test suite: installs what is missing, builds, then
# runs every test four times: a normal build, a build with AddressSanitizer
# and UndefinedBehaviorSanitizer, the normal build under valgrind, and a
# build with ThreadSanitizer (its test setup, tests/meson.build, preloads
# tests/tsan-shim.c so that TSan sees GLib's locks and hand-offs).
# `./test.sh --quick` runs the first pass only. Other arguments go to
# `meson test` (e.g. a test name).
set -eu
cd "$(dirname "$0")"

quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi

sh scripts/install-deps.sh
# dbus-next for the Node interop test; without the npm registry that test
# is skipped, the rest runs.
if [ ! -d tests/interop/node/node_modules ]; then
  (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "test.sh: npm ci failed; the Node interop test will be skipped" >&2
fi

# The plain build also builds the API reference (gi-docgen), which the
# `docs` test checks: CI builds the docs on every run.
if [ ! -d build ]; then
  meson setup build -Ddocs=true >/dev/null
elif ! meson introspect --buildoptions build |
     python3 -c 'import json, sys; sys.exit(not any(o["name"] == "docs" and o["value"] for o in json.load(sys.stdin)))'; then
  meson configure build -Ddocs=true >/dev/null
fi
echo "== tests"
meson test -C build --print-errorlogs "$@"
[ "$quick" = 1 ] && exit 0

[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
echo "== tests with AddressSanitizer and UndefinedBehaviorSanitizer"
G_SLICE=always-malloc \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C build-asan --print-errorlogs "$@"

echo "== tests under valgrind"
meson test -C build --setup valgrind --print-errorlogs --no-suite bench "$@"

[ -d build-tsan ] || meson setup build-tsan -Db_sanitize=thread -Db_lundef=false >/dev/null
echo "== tests with ThreadSanitizer"
# `meson test` builds only what tests depend on; the shim its setup
# preloads (tests/meson.build) is none of them, so it is built here.
meson compile -C build-tsan peer-tsan-shim >/dev/null
meson test -C build-tsan --print-errorlogs "$@"
