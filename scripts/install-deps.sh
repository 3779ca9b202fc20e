#!/bin/sh
# Installs what libpeer needs to build, test and benchmark on Debian 12.
# Installs only what is missing; needs root (or sudo) only when something is.
set -eu

packages="gcc meson ninja-build pkg-config libglib2.0-dev libglib2.0-dev-bin libglib2.0-bin
  dbus-bin systemd python3 python3-dbus python3-dbus-next python3-txdbus python3-gi gobject-introspection libgirepository1.0-dev gi-docgen libsystemd-dev libdbus-1-dev libseccomp-dev valgrind tshark"

# Node and npm only for the dbus-next interop test; any Node will do.
command -v npm >/dev/null 2>&1 || packages="$packages nodejs npm"

missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "Installing:$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
# Through env, so that sudo keeps it: tshark's package asks a debconf
# question that must take its default here.
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
