#!/bin/sh
# Runs libpeer's whole test suite: installs what is missing, builds, tests.
set -eu
cd "$(dirname "$0")"

sh scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
meson test -C build --print-errorlogs "$@"
