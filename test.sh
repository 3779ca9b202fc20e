#!/bin/sh
# Runs libpeer's whole test suite: installs what is missing, builds, tests.
set -eu
cd "$(dirname "$0")"

sh scripts/install-deps.sh
# dbus-next for the Node interop test; without the npm registry that test
# is skipped, the rest runs.
if [ ! -d tests/interop/node/node_modules ]; then
  (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "test.sh: npm ci failed; the Node interop test will be skipped" >&2
fi
[ -d build ] || meson setup build >/dev/null
meson test -C build --print-errorlogs "$@"
