#!/bin/sh
# Builds every fuzz harness with clang's libFuzzer (plus ASan and UBSan) and
# runs each for SECONDS (default 60) from its seed corpus, in a scratch copy
# of the corpus. Prints each fuzzer's run count and result.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}

command -v clang >/dev/null || { echo "run-fuzzers.sh: needs clang (apt-get install clang)" >&2; exit 2; }
[ -d build-fuzz ] || CC=clang meson setup build-fuzz -Dfuzzing=true \
  -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C build-fuzz >/dev/null

status=0
for harness in build-fuzz/tests/fuzz/fuzz-*-libfuzzer; do
  name=$(basename "$harness" -libfuzzer)
  name=${name#fuzz-}
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$name/." "$work/"
  max_len=4096
  # A chunked lane frame is over PEER_LANE_MAX_INLINE (128 KiB).
  [ "$name" = lane-frame ] && max_len=300000
  echo "== $name: ${seconds}s"
  if "$harness" -max_total_time="$seconds" -max_len="$max_len" "$work" >"$work.log" 2>&1; then
    grep -E "^(#[0-9]+|Done)" "$work.log" | tail -2
  else
    status=1
    tail -40 "$work.log"
  fi
  rm -rf "$work" "$work.log"
done
exit $status
