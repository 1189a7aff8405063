#!/usr/bin/env bash
# Installs what building and testing Warren needs, and nothing when it is all present.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# The libraries, then the real AMQP clients the interop tests drive.
for pkg in build-essential cmake pkg-config liblmdb-dev libasio-dev libfmt-dev libxxhash-dev \
           libgtest-dev libbenchmark-dev libcli11-dev libcpp-httplib-dev nlohmann-json3-dev libssl-dev clang \
           python3-pika python3-aio-pika python3-amqp python3-kombu python3-celery \
           amqp-tools librabbitmq-dev rabbitmq-server prometheus chromium; do  # rabbitmqadmin, promtool, a browser
  have_pkg "$pkg" || need+=("$pkg")
done
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Node's amqplib for its interop test, from npm at the version package-lock.json pins.
if [ ! -d tests/interop/node/node_modules/amqplib ]; then
  (cd tests/interop/node && npm ci --no-audit --no-fund --silent)
fi
