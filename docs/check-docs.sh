#!/bin/sh
# meson test, suite docs: the API reference gi-docgen built holds the
# pages a reader starts from. Usage: check-docs.sh DOCS_DIR
set -eu
dir=$1
for page in index.html overview.html class.Server.html class.Client.html \
            class.Interface.html struct.Call.html error.Error.html \
            method.Interface.add_method.html ctor.Server.new.html libpeer-1.devhelp2; do
  [ -s "$dir/$page" ] || { echo "check-docs.sh: $dir/$page is missing" >&2; exit 1; }
done
grep -q 'add_method' "$dir/class.Interface.html" ||
  { echo "check-docs.sh: class.Interface.html does not list add_method" >&2; exit 1; }
echo "ok: $(ls "$dir" | wc -l) files in $dir"
