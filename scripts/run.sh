#!/usr/bin/env bash
# Builds Warren and runs the main program: for now the quick-start example, which publishes
# with confirms, consumes and acknowledges against a data directory (default ./warren-data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target warren_example
exec build/examples/warren_example "${1:-warren-data}"
