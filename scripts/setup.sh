#!/usr/bin/env bash
# Installs what building and testing Warren needs, and nothing when it is all present.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
have_pkg() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == *"install ok installed"* ]]; }
# The libraries, then the real AMQP clients the interop tests drive.
for pkg in build-essential cmake pkg-config liblmdb-dev libasio-dev libfmt-dev libxxhash-dev \
           libgtest-dev libbenchmark-dev libcli11-dev libcpp-httplib-dev nlohmann-json3-dev libssl-dev openssl clang \
           libsystemd-dev systemd adduser python3-pytest \
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
# RabbitMQ 3.10 from Debian for the tests that compare with it or shovel to it, unpacked
# rather than installed: installing would start a RabbitMQ service on warrend's port. The
# tests start private nodes from it (tests/interop/rabbit_node.py); rabbitmqadmin comes
# from it too. Its Erlang runtime is installed from Debian as usual.
rabbit_root=/usr/local/lib/warren-test-rabbitmq
erlang=(erlang-base erlang-crypto erlang-eldap erlang-inets erlang-mnesia erlang-os-mon erlang-parsetools
        erlang-public-key erlang-runtime-tools erlang-ssl erlang-syntax-tools erlang-tools erlang-xmerl)
missing_erlang=()
for pkg in "${erlang[@]}"; do have_pkg "$pkg" || missing_erlang+=("$pkg"); done
if ((${#missing_erlang[@]})); then
  echo "setup: installing ${missing_erlang[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing_erlang[@]}" >/dev/null
fi
if [ ! -x "$rabbit_root/usr/lib/rabbitmq/bin/rabbitmq-server" ]; then
  tmp=$(mktemp -d)
  chmod 755 "$tmp"  # apt's download user writes there
  apt-get update -qq
  (cd "$tmp" && apt-get download -qq rabbitmq-server >/dev/null && dpkg-deb -x rabbitmq-server_*.deb root)
  rm -rf "$rabbit_root"
  mkdir -p "$(dirname "$rabbit_root")"
  mv "$tmp/root" "$rabbit_root"
  rm -rf "$tmp"
fi
if ! command -v rabbitmqadmin >/dev/null; then
  install -m 755 "$rabbit_root/usr/bin/rabbitmqadmin" /usr/local/bin/rabbitmqadmin
fi
# Node's amqplib for its interop test, from npm at the version package-lock.json pins.
if [ ! -d tests/interop/node/node_modules/amqplib ]; then
  (cd tests/interop/node && npm ci --no-audit --no-fund --silent)
fi
