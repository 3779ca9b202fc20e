#!/bin/sh
# bench.sh: from a fresh Debian 12 checkout to a benchmark table in one
# command. Installs what is missing (scripts/install-deps.sh), builds in
# build-bench/, and runs peer-bench with the arguments given; unless they
# name their own, the results also go to bench-results.json and
# bench-results.svg. `./bench.sh --help` lists peer-bench's options.
set -eu
cd "$(dirname "$0")"

# Build chatter goes to stderr: stdout is the table.
sh scripts/install-deps.sh >&2
[ -f build-bench/build.ninja ] || meson setup build-bench >&2
ninja -C build-bench bench/peer-bench bench/peer-bench-server server/peer-server >&2

json=yes
svg=yes
for arg in "$@"; do
  case $arg in
    --json | --json=*) json=no ;;
    --svg | --svg=*) svg=no ;;
    -h | --help | --help-*) json=no svg=no ;;
  esac
done
[ "$json" = no ] || set -- "$@" --json bench-results.json
[ "$svg" = no ] || set -- "$@" --svg bench-results.svg
exec build-bench/bench/peer-bench "$@"
