#!/bin/sh
# The libpeer demo: installs what is missing, builds, starts peer-server on a
# private socket and talks to it with peer-client.
set -eu
cd "$(dirname "$0")"

sh scripts/install-deps.sh
[ -d build ] || meson setup build >/dev/null
ninja -C build >/dev/null

tmp=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# peer-server prints the address to use as its first line.
mkfifo "$tmp/address"
./build/server/peer-server >"$tmp/address" &
server_pid=$!
read -r address <"$tmp/address"
export PEER_ADDRESS="$address"

step() { printf '\n$ peer-client %s\n' "$*"; ./build/client/peer-client "$@"; }

echo "peer-server (pid $server_pid) listens on $address"
ls -ld "$(dirname "${address#unix:path=}")" "${address#unix:path=}"
step ping --count 2000
step --lane ping --count 2000
step quick 128
step notify "Hello from the demo" "the signal comes back to every peer"
step get /org/libpeer/Helper org.libpeer.Helper1.Version
step get /org/libpeer/Helper org.libpeer.Helper1.Peers
step set /org/libpeer/Helper org.libpeer.Helper1.Label "demo"
step call /org/libpeer/Helper org.libpeer.Helper1.Quick 16
step introspect /org/libpeer/Helper
printf '\n$ gdbus call --address ... (a standard tool, no bus running)\n'
gdbus call --address "$address" --dest org.libpeer.Helper --object-path /org/libpeer/Helper \
  --method org.libpeer.Helper1.Quick 32
printf '\n$ busctl --address=... get-property ...\n'
busctl --address="$address" get-property org.libpeer.Helper /org/libpeer/Helper org.libpeer.Helper1 Label
printf '\n$ peer-client --spawn -- peer-server quick 64   (a helper over a socketpair, no socket on disk)\n'
PATH="$PWD/build/server:$PATH" ./build/client/peer-client --spawn -- peer-server quick 64
printf '\n$ peer-client quick 0   (bad input: one-line error, non-zero exit)\n'
./build/client/peer-client quick 0 || echo "(exit status $?)"
