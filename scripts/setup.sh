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
           amqp-tools librabbitmq-dev prometheus chromium; do  # promtool and the server; a browser
  have_pkg "$pkg" || need+=("$pkg")
done
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's rabbitmqadmin for the management API's test, taken out of the rabbitmq-server
# package rather than installing it: that would start a RabbitMQ on warrend's port.
if ! command -v rabbitmqadmin >/dev/null; then
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt's download user writes there
  apt-get update -qq
  (cd "$tmp" && apt-get download -qq rabbitmq-server >/dev/null && dpkg-deb -x rabbitmq-server_*.deb root)
  install -m 755 "$tmp/root/usr/bin/rabbitmqadmin" /usr/local/bin/rabbitmqadmin
  rm -rf "$tmp"
fi
# Node's amqplib for its interop test, from npm at the version package-lock.json pins.
if [ ! -d tests/interop/node/node_modules/amqplib ]; then
  (cd tests/interop/node && npm ci --no-audit --no-fund --silent)
fi
