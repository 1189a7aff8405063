#!/usr/bin/env bash
# Installs Warren into temporary prefixes and builds and runs a consumer project (consumer/)
# every way an application would take it:
#   shared libwarren (from BUILD_DIR, configured -DBUILD_SHARED_LIBS=ON): find_package,
#     pkg-config, the exported symbols, Python's ctypes (examples/embed_ctypes.py);
#   static libwarren (the default): FetchContent from this checkout, then that build's own
#     install, used through find_package and pkg-config --static.
# Usage: tests/install/run.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
build_dir=$(cd "$1" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs=$(nproc)

fail() { echo "install test: $*" >&2; exit 1; }

# consume NAME CMAKE_ARGS...: configures, builds and runs the consumer; each program must print ok.
consume() {
  local name=$1
  shift
  cmake -S "$here/consumer" -B "$work/$name" -DCMAKE_BUILD_TYPE=Debug "$@" >"$work/$name.log" 2>&1 ||
    { cat "$work/$name.log"; fail "$name: configure failed"; }
  cmake --build "$work/$name" -j "$jobs" >>"$work/$name.log" 2>&1 || { cat "$work/$name.log"; fail "$name: build failed"; }
  for program in consumer_cpp consumer_c; do
    rm -rf "$work/data"
    [ "$("$work/$name/$program" "$work/data")" = ok ] || fail "$name: $program did not print ok"
  done
  echo "install test: $name ok"
}

# --- shared -------------------------------------------------------------------------------
shared=$work/shared-prefix
cmake --install "$build_dir" --prefix "$shared" >/dev/null
for f in include/warren/broker.h include/warren/c.h include/warren/testing.h lib/libwarren.so \
         lib/pkgconfig/warren.pc lib/cmake/warren/warren-config.cmake \
         lib/cmake/warren/warren-config-version.cmake bin/warrend bin/warrenctl; do
  [ -e "$shared/$f" ] || [ -e "$shared/${f/lib\//lib/x86_64-linux-gnu/}" ] || fail "not installed: $f"
done
libdir=$(dirname "$(find "$shared" -name libwarren.so -print -quit)")
soname=$(objdump -p "$libdir/libwarren.so" | awk '/SONAME/ {print $2}')
[[ "$soname" == libwarren.so.0 ]] || fail "SONAME is '$soname'"
# Only the public API: nothing of the internals, the standard library or Asio.
leaked=$(nm -D --defined-only "$libdir/libwarren.so" | c++filt | awk '{$1=$2=""; print}' |
         grep -vE '^ *(warren::|warren_|typeinfo for warren::|typeinfo name for warren::|vtable for warren::|WARREN_0)' |
         grep -vE '^ *$' || true)
[ -z "$leaked" ] || fail "exports more than the public API: $(echo "$leaked" | head -5)"
internal=$(nm -D --defined-only "$libdir/libwarren.so" | c++filt | awk '{$1=$2=""; print}' |
           grep -cE '^ *(typeinfo for |vtable for )?warren::(core|storage|amqp|api|shovel|wire|mgmt)::' || true)
[ "$internal" = 0 ] || fail "exports $internal internal symbols"

export LD_LIBRARY_PATH=$libdir
consume shared-find-package -DWARREN_FROM=package -DCMAKE_PREFIX_PATH="$shared"
# ldd's output is captured whole (under pipefail a reader quitting early kills ldd with
# SIGPIPE) and the paths compared resolved, so a symlinked temporary directory still matches.
linked=$(ldd "$work/shared-find-package/consumer_cpp")
loaded=$(awk '$1 == "libwarren.so.0" {print $3}' <<<"$linked")
[ -n "$loaded" ] && [ "$(realpath "$loaded")" = "$(realpath "$libdir/libwarren.so.0")" ] ||
  fail "not linked to the installed shared library: $linked"
PKG_CONFIG_PATH=$libdir/pkgconfig consume shared-pkg-config -DWARREN_FROM=pkg-config
WARREN_LIBRARY=$libdir/libwarren.so /usr/bin/python3 "$source_dir/examples/embed_ctypes.py" >"$work/ctypes.log" 2>&1 ||
  { cat "$work/ctypes.log"; fail "the ctypes example failed"; }
grep -q "^ok$" "$work/ctypes.log" || { cat "$work/ctypes.log"; fail "the ctypes example did not finish"; }
echo "install test: python ctypes ok"
unset LD_LIBRARY_PATH

# --- static, from source --------------------------------------------------------------------
consume static-fetchcontent -DWARREN_FROM=source -DWARREN_SOURCE_DIR="$source_dir"
static=$work/static-prefix
cmake --install "$work/static-fetchcontent" --prefix "$static" --component dev >/dev/null
[ -n "$(find "$static" -name libwarren.a)" ] || fail "static libwarren.a not installed"
[ -z "$(find "$static" -name 'libwarren.so*')" ] || fail "a shared library in the static install"
consume static-find-package -DWARREN_FROM=package -DCMAKE_PREFIX_PATH="$static"
PKG_CONFIG_PATH=$(dirname "$(find "$static" -name warren.pc)") consume static-pkg-config -DWARREN_FROM=pkg-config -DWARREN_STATIC=ON
echo "install test: all ways ok"
