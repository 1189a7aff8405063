#!/usr/bin/env bash
# Builds Warren and runs the server: warrend on 127.0.0.1:5672 and [::1]:5672, user
# guest/guest, data in /var/lib/warren (as root; else ~/.local/share/warren). Extra
# arguments go to warrend (e.g. --port 5673, --data-dir DIR; see warrend --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target warrend
exec build/warrend "$@"
