#!/usr/bin/env bash
# Cross-compiles Warren for arm64 and runs its unit tests under qemu-user. Installs what is
# missing first: arm64 as a dpkg architecture, Debian's g++-aarch64-linux-gnu, qemu-user
# and the arm64 -dev packages. Then prints warrend's size and idle RSS on arm64.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
have_pkg() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == *"install ok installed"* ]]; }

arm_libs=(liblmdb-dev libfmt-dev libxxhash-dev libssl-dev libgtest-dev libsystemd-dev libcpp-httplib-dev librabbitmq-dev)
need=()
for pkg in g++-aarch64-linux-gnu qemu-user; do have_pkg "$pkg" || need+=("$pkg"); done
for pkg in "${arm_libs[@]}"; do have_pkg "$pkg:arm64" || need+=("$pkg:arm64"); done
if ((${#need[@]})); then
  echo "arm64: installing ${need[*]}"
  grep -qx arm64 <<<"$(dpkg --print-foreign-architectures)" || dpkg --add-architecture arm64
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Every unit test (GoogleTest, the C API test, the fuzz targets' corpus replays) runs
# emulated; the interop tests (Python and Node clients against warrend) do not.
cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=src/packaging/aarch64-linux-gnu.cmake \
  -DCMAKE_BUILD_TYPE=Release -DWARREN_BUILD_BENCH=OFF -DWARREN_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-arm64 -j "$jobs"
grep -q AArch64 <<<"$(readelf -h build-arm64/warrend)" || { echo "arm64: warrend is not an arm64 binary"; exit 1; }
ctest --test-dir build-arm64 --output-on-failure -j "$jobs" -E '^interop\.'
/usr/bin/python3 bench/arm64_figures.py build-arm64/warrend
