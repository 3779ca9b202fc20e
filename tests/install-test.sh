#!/bin/sh
# install-test.sh: `meson install` into a temporary DESTDIR, then what a
# user of the installed libpeer does: run the installed programs (which
# find the installed libpeer-1.so through their relative rpath, not
# through LD_LIBRARY_PATH), find libpeer-1 with pkg-config in the
# multiarch libdir, and build the README's programs against it with
# -Wall -Wextra -Werror. The temporary directory goes in every case.
#
#   install-test.sh MESON BUILD_DIR SOURCE_DIR PREFIX BINDIR LIBDIR SANITIZE CC...
set -eu

meson=$1 build=$2 src=$3 prefix=$4 bindir=$5 libdir=$6 sanitize=$7
shift 7
cc="$*"
case "$libdir" in /*) ;; *) libdir=$prefix/$libdir ;; esac
case "$bindir" in /*) ;; *) bindir=$prefix/$bindir ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/libpeer-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
root=$tmp/root
n=0

ok () { n=$((n + 1)); echo "ok $n - $1"; }
fail () { echo "not ok - $1" >&2; exit 1; }

# What the test runner sets for the build tree must not help the
# installed programs.
unset LD_LIBRARY_PATH PKG_CONFIG_PATH PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

"$meson" install -C "$build" --no-rebuild --quiet --destdir "$root" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "meson install --destdir"; }
ok "meson install --destdir"

# The installed programs run, with the installed library: the staged one,
# found relative to the program.
"$root$bindir/peer-client" --help >"$tmp/help" 2>&1 || { cat "$tmp/help" >&2; fail "installed peer-client --help"; }
grep -q "^Usage:" "$tmp/help" || fail "installed peer-client --help prints no usage"
"$root$bindir/peer-server" --version >"$tmp/version" 2>&1 || { cat "$tmp/version" >&2; fail "installed peer-server --version"; }
loaded=$(ldd "$root$bindir/peer-server" | sed -n 's/^.*libpeer-1\.so[^ ]* => \([^ ]*\) .*$/\1/p')
[ -n "$loaded" ] && [ "$(readlink -f "$loaded")" = "$(readlink -f "$root$libdir/libpeer-1.so.0")" ] ||
  fail "installed peer-server does not load the installed libpeer-1.so: '$loaded'"
ok "installed peer-client --help and peer-server --version run with the installed libpeer-1.so"

# The twin: moved away from its library, a program finds none, which
# shows that it is the rpath relative to the program that finds it.
mkdir -p "$tmp/elsewhere/bin"
cp "$root$bindir/peer-client" "$tmp/elsewhere/bin/"
if "$tmp/elsewhere/bin/peer-client" --help >"$tmp/moved" 2>&1; then
  fail "peer-client away from its library still ran"
fi
grep -q "libpeer-1.so.0: cannot open shared object file" "$tmp/moved" ||
  { cat "$tmp/moved" >&2; fail "peer-client away from its library: another error"; }
ok "peer-client away from its library does not find one"

# pkg-config, in the multiarch libdir (lib/x86_64-linux-gnu on Debian).
export PKG_CONFIG_PATH="$root$libdir/pkgconfig"
version=$(pkg-config --modversion libpeer-1) || fail "pkg-config does not find libpeer-1 in $libdir/pkgconfig"
[ -n "$version" ] || fail "pkg-config --modversion libpeer-1 printed nothing"
ok "pkg-config finds libpeer-1 $version in $libdir/pkgconfig"
if [ "$libdir" != "$prefix/lib" ]; then
  # The twin: PREFIX/lib/pkgconfig, where it is not.
  if PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$root$prefix/lib/pkgconfig" pkg-config --exists libpeer-1; then
    fail "pkg-config finds libpeer-1 in $prefix/lib/pkgconfig too"
  fi
  ok "pkg-config does not find libpeer-1 in $prefix/lib/pkgconfig"
fi
# The staged files are where the prefix says plus the staging root: a
# copy of libpeer-1.pc with the prefix moved there (GLib's own .pc files
# stay as they are).
mkdir "$tmp/pkgconfig"
sed "s|^prefix=.*|prefix=$root$prefix|" "$root$libdir/pkgconfig/libpeer-1.pc" >"$tmp/pkgconfig/libpeer-1.pc"
export PKG_CONFIG_PATH="$tmp/pkgconfig"

# The README's programs, built as a user builds them: the compiler,
# -Wall -Wextra -Werror and pkg-config, nothing of this project's flags.
flags=$(pkg-config --cflags --libs libpeer-1)
sanitize_flags=
[ "$sanitize" = none ] || sanitize_flags="-fsanitize=$sanitize"
# shellcheck disable=SC2086  # word splitting of flags is meant
$cc -Wall -Wextra -Werror $sanitize_flags -o "$tmp/helper-example" "$src/examples/helper-example.c" $flags ||
  fail "helper-example.c does not build against the installed libpeer"
out=$(LD_LIBRARY_PATH="$root$libdir" "$tmp/helper-example") || fail "helper-example built against the installed libpeer failed"
[ "$out" = "hello, world" ] || fail "helper-example said '$out'"
ok "helper-example.c builds with -Wall -Wextra -Werror against the installed libpeer, and runs"

peer_codegen=$(pkg-config --variable=peer_codegen libpeer-1)
[ -x "$peer_codegen" ] || fail "pkg-config's peer_codegen ($peer_codegen) is not an installed program"
(cd "$tmp" && "$peer_codegen" --c-namespace Example --interface-prefix org.example. \
   --output-header example-helper1.h --output-source example-helper1.c "$src/examples/codegen-example.xml") ||
  fail "the installed peer-codegen failed"
# shellcheck disable=SC2086
$cc -Wall -Wextra -Werror $sanitize_flags -I"$tmp" -o "$tmp/codegen-example" \
  "$src/examples/codegen-example.c" "$tmp/example-helper1.c" $flags ||
  fail "codegen-example.c does not build against the installed libpeer"
ok "codegen-example.c builds with -Wall -Wextra -Werror, with the installed peer-codegen's code"

if command -v gdbus-codegen >/dev/null 2>&1; then
  (cd "$tmp" && gdbus-codegen --c-generate-autocleanup all --c-namespace Example --interface-prefix org.example. \
     --generate-c-code objects-example-gdbus "$src/examples/objects-example.xml") ||
    fail "gdbus-codegen failed on objects-example.xml"
  # gdbus-codegen's own output is built as its users build it (GLib's
  # generated code is not ours to hold to -Wextra).
  # shellcheck disable=SC2086
  $cc -Wall -Wextra -Werror $sanitize_flags -I"$tmp" -c -o "$tmp/objects-example.o" \
    "$src/examples/objects-example.c" $flags ||
    fail "objects-example.c does not build against the installed libpeer"
  ok "objects-example.c builds with -Wall -Wextra -Werror against the installed libpeer"
fi
echo "1..$n"
