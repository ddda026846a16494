#!/usr/bin/env bash
# The installed library, used as a user would: `meson install` into a
# temporary root, then tests/install/consumer.c compiled with nothing but
# `pkg-config --cflags --libs xfquant` (shared, via rpath) and
# `pkg-config --static` (static), and run on stories260K.
# usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
model=$src/../shared/models/stories260K
text=$src/../shared/data/tinystories/eval.txt
if [[ ! -f $model/config.json || ! -f $text ]]; then
  echo "SKIP: $model or $text absent (../shared)"; exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xfquant-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name xfquant.pc | head -n1)
[[ -n $pc ]] || { echo "FAIL: no xfquant.pc installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
# the installed tree moved under the temporary root: relocate its prefix
prefix=$(PKG_CONFIG_PATH= pkg-config --variable=prefix "$pc")
pcx() { pkg-config --define-variable=prefix="$tmp/root$prefix" "$@"; }
# the consumer must find the installed library, not the build tree's
unset LD_LIBRARY_PATH
hdr=$(find "$tmp/root" -name xfquant.h | head -n1)
[[ -n $hdr ]] || { echo "FAIL: no xfquant.h installed"; exit 1; }
cc=${CC:-cc}
cflags=$(pcx --cflags xfquant)
libs=$(pcx --libs xfquant)
libdir=$(pcx --variable=libdir xfquant)
echo "cflags: $cflags; libs: $libs"
# the header alone, strict C and C++-style use
$cc -std=c99 -Wall -Wextra -Werror -pedantic $cflags -fsyntax-only -x c "$hdr"
$cc -std=c11 -Wall -Wextra -Werror $cflags "$src/tests/install/consumer.c" -o "$tmp/consumer_shared" \
  $libs -Wl,-rpath,"$libdir" -lm
static_libs=$(pcx --static --libs xfquant | sed 's/-lxfquant/-l:libxfquant.a/')
$cc -std=c11 -Wall -Wextra -Werror $cflags "$src/tests/install/consumer.c" -o "$tmp/consumer_static" \
  $static_libs -lm
# the shared one really uses the installed .so; the static one has no such dependency
# (ldd's output is captured first: `ldd | grep -q` under pipefail fails when
# grep's early exit kills ldd with SIGPIPE)
deps_shared=$(ldd "$tmp/consumer_shared") deps_static=$(ldd "$tmp/consumer_static" || true)
grep -q "$tmp/root.*libxfquant.so" <<<"$deps_shared" ||
  { echo "FAIL: consumer_shared does not load the installed libxfquant.so"; echo "$deps_shared"; exit 1; }
if grep -q libxfquant <<<"$deps_static"; then
  echo "FAIL: consumer_static depends on libxfquant.so"; exit 1
fi
mkdir -p "$tmp/out_shared" "$tmp/out_static"
"$tmp/consumer_shared" "$model" "$text" "$tmp/out_shared"
"$tmp/consumer_static" "$model" "$text" "$tmp/out_static"
# same inputs, same bytes, whichever library
cmp "$tmp/out_shared/stories260K-rtn4.xfq" "$tmp/out_static/stories260K-rtn4.xfq"
echo "OK: installed header + shared and static libxfquant"
