#!/usr/bin/env bash
# Runs the same load cases against warrend and against RabbitMQ (classic and quorum queues)
# on this machine, one right after the other, and prints each rate and Warren's ratio.
#
#   bash bench/compare.sh [BUILD_DIR]      # RabbitMQ must be running on 5672
#
# Every case uses a fresh durable queue and persistent messages; publishing waits for
# publisher confirms (fsync before confirm: warrend --durability fsync, RabbitMQ classic v1
# and quorum queues), consuming acks each message.
set -euo pipefail
build=${1:-build}
load=$build/bench/amqp_load
port=5681
dir=$(mktemp -d)
"$build/warrend" --port $port --management-port 0 --prometheus-port 0 --data-dir "$dir" --durability fsync --log-level warning &
warrend=$!
trap 'kill $warrend 2>/dev/null; wait $warrend 2>/dev/null; rm -rf "$dir"' EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.05; done

# run_case NAME MODE ARGS...: one case against warrend, RabbitMQ classic, RabbitMQ quorum.
# A consume case first fills its queue by publishing (window 256).
run_case() {
  local name=$1 mode=$2
  shift 2
  local rates=()
  for target in "$port classic" "5672 classic" "5672 quorum"; do
    local p=${target% *} type=${target#* } q="load-$RANDOM$RANDOM"
    if [ "$mode" = consume ]; then
      "$load" --port "$p" --queue-type "$type" --queue "$q" --mode publish --window 256 "$@" >/dev/null
    fi
    local out
    out=$("$load" --port "$p" --queue-type "$type" --queue "$q" --mode "$mode" "$@") ||
      { echo "$name: failed against port $p ($type): $out" >&2; exit 1; }
    rates+=("$(sed 's/.*rate=\([0-9]*\).*/\1/' <<<"$out")")
  done
  awk -v n="$name" -v w="${rates[0]}" -v c="${rates[1]}" -v q="${rates[2]}" \
    'BEGIN { printf "%-44s %9d %9d %9d %7.1fx %7.1fx\n", n, w, c, q, w / c, w / q }'
}

printf "%-44s %9s %9s %9s %8s %8s\n" "case (messages/s)" warren classic quorum "vs cl." "vs qu."
for size in 256 4096; do
  run_case "publish+confirm window 1, ${size} B" publish --size $size --messages 2000 --window 1
  run_case "publish+confirm window 256, ${size} B" publish --size $size --messages 50000 --window 256
  run_case "consume+ack prefetch 1, ${size} B" consume --size $size --messages 20000 --prefetch 1
  run_case "consume+ack prefetch 256, ${size} B" consume --size $size --messages 50000 --prefetch 256
  run_case "1 producer + 1 consumer (256/256), ${size} B" both --size $size --messages 50000 --window 256 --prefetch 256
done
