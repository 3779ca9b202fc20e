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
printf '\n$ peer-client quick 0   (the server refuses: one-line error, exit status 1)\n'
./build/client/peer-client quick 0 || echo "(exit status $?)"
printf '\n$ peer-client quick abc   (a bad command line, found before the server is asked: exit status 2)\n'
./build/client/peer-client quick abc || echo "(exit status $?)"

# --- Passing fds -------------------------------------------------------------
# Each step runs with PEER_DEBUG=messages and shows the client's own call and
# reply as they went over the socket: what crossed is the message, and beside
# it the fds (fds=N); an `h` value in the body is an index into those fds.
printf '\n== Passing fds: an fd number crosses the socket, not the bytes ==\n'
files="$tmp/files"
mkdir "$files"
printf 'Minutes of the demo: fds were passed, bytes stayed put.\n' >"$files/notes.txt"
printf 'Not under the files root.\n' >"$tmp/secret.txt"

crossed() {
  grep -E '^libpeer\[[0-9]+\] client [<>] (call|return|error) ' "$tmp/debug" | grep -v 'org\.freedesktop\.' |
    sed -E -e 's/^.* client > call .* member=[^ ]*\.([A-Za-z0-9]+) (signature=.*)$/  crossed, sent:     \1 \2/' \
           -e 's/^.* client < return .* (signature=.*)$/  crossed, received: return \1/' \
           -e 's/^.* client < error .* error=([^ ]+) (signature=.*)$/  crossed, received: \1 \2/'
}
fdstep() { printf '\n$ %s\n' "$*"; }

fdstep "peer-client --spawn -- peer-server --files-root $files open notes.txt"
PEER_DEBUG=messages PATH="$PWD/build/server:$PATH" \
  ./build/client/peer-client --spawn -- peer-server --files-root "$files" open notes.txt 2>"$tmp/debug"
crossed
echo "  (the helper opened notes.txt read-only and passed the fd; the file's $(wc -c <"$files/notes.txt") bytes never crossed)"

fdstep "peer-client --spawn -- peer-server --files-root $files open ../secret.txt   (refused: outside the root)"
status=0
PEER_DEBUG=messages PATH="$PWD/build/server:$PATH" \
  ./build/client/peer-client --spawn -- peer-server --files-root "$files" open ../secret.txt 2>"$tmp/debug" ||
  status=$?
grep '^peer-client:' "$tmp/debug" || true
echo "(exit status $status)"
crossed
echo "  (no fd came back)"

fdstep "peer-client digest $files/notes.txt; sha256sum $files/notes.txt"
PEER_DEBUG=messages ./build/client/peer-client digest "$files/notes.txt" 2>"$tmp/debug"
sha256sum "$files/notes.txt"
crossed
echo "  (we opened the file and passed the fd; the server read the bytes from it, not from the socket)"

fdstep "seq 1 1000000 | peer-client digest -; seq 1 1000000 | sha256sum"
seq 1 1000000 | PEER_DEBUG=messages ./build/client/peer-client digest - 2>"$tmp/debug"
seq 1 1000000 | sha256sum
crossed
echo "  (the pipe's read end crossed; the $(seq 1 1000000 | wc -c) bytes streamed through the pipe as seq wrote them)"

fdstep "peer-client blob-echo 64M   (a sealed memfd there and back, every byte checked)"
PEER_DEBUG=messages ./build/client/peer-client blob-echo 64M 2>"$tmp/debug"
crossed
echo "  (one fd each way: the 64 MiB stayed in the memfd's shared pages)"

fdstep "peer-bench --transports libpeer --cells memfd --memfd-sizes 64M   (the same bytes copied through a socket, beside the hand-off)"
./build/bench/peer-bench --transports libpeer --cells memfd --memfd-sizes 64M --seconds 0.5 | tail -n +4
echo "  (server us: the copy's server read and wrote every byte; the memfd's only passed the fd back)"

fdstep "examples/blob-example --twin   (refused: a helper sends a memfd without seals)"
./build/examples/blob-example --twin
