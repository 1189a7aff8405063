#!/usr/bin/env bash
# Issue 11's figures, measured side by side in one run, each case RUNS times (median):
#  - a priority queue with 10 levels (x-max-priority 9, message i has priority i % 10) next to
#    a plain queue: publish + confirm (window 256), consume + ack (prefetch 256), on warrend;
#  - direct reply-to round trips, one requester at a time, on warrend and on RabbitMQ.
#
#   bash bench/features.sh [BUILD_DIR] [RUNS]     # RabbitMQ must be running on 5672
set -euo pipefail
build=${1:-build}
runs=${2:-5}
load=$build/bench/amqp_load
port=5682
dir=$(mktemp -d)
"$build/warrend" --port $port --management-port 0 --prometheus-port 0 --data-dir "$dir" --durability fsync --log-level warning &
warrend=$!
trap 'kill $warrend 2>/dev/null; wait $warrend 2>/dev/null; rm -rf "$dir"' EXIT
until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.05; done

rate() { sed 's/.*rate=\([0-9]*\).*/\1/'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# queue_case PRIORITY_ARGS...: prints "publish consume" rates for one fresh queue.
queue_case() {
  local q="feat-$RANDOM$RANDOM" p c
  p=$("$load" --port $port --queue "$q" --mode publish --window 256 --messages 100000 "$@" | rate)
  c=$("$load" --port $port --queue "$q" --mode consume --prefetch 256 --messages 100000 "$@" | rate)
  echo "$p $c"
}

plain_pub=() plain_con=() prio_pub=() prio_con=() rpc_warren=() rpc_rabbit=()
for ((i = 0; i < runs; i++)); do
  read -r p c < <(queue_case)
  plain_pub+=("$p") plain_con+=("$c")
  read -r p c < <(queue_case --max-priority 9)
  prio_pub+=("$p") prio_con+=("$c")
  rpc_warren+=("$("$load" --port $port --queue "rpc-$RANDOM$RANDOM" --mode rpc --size 64 --messages 20000 | rate)")
  rpc_rabbit+=("$("$load" --port 5672 --queue "rpc-$RANDOM$RANDOM" --mode rpc --size 64 --messages 20000 | rate)")
done

m() { printf '%s\n' "$@" | median; }
pp=$(m "${plain_pub[@]}") pc=$(m "${plain_con[@]}") qp=$(m "${prio_pub[@]}") qc=$(m "${prio_con[@]}")
rw=$(m "${rpc_warren[@]}") rr=$(m "${rpc_rabbit[@]}")
awk -v pp="$pp" -v pc="$pc" -v qp="$qp" -v qc="$qc" -v rw="$rw" -v rr="$rr" -v n="$runs" 'BEGIN {
  printf "median of %d runs (messages or round trips per second)\n", n
  printf "%-40s %9s %9s %7s\n", "case", "plain", "priority", "ratio"
  printf "%-40s %9d %9d %6.0f%%\n", "publish + confirm, window 256, 256 B", pp, qp, 100 * qp / pp
  printf "%-40s %9d %9d %6.0f%%\n", "consume + ack, prefetch 256, 256 B", pc, qc, 100 * qc / pc
  printf "%-40s %9s %9s %7s\n", "", "warren", "rabbitmq", "ratio"
  printf "%-40s %9d %9d %6.1fx\n", "direct reply-to round trips, 64 B", rw, rr, rw / rr
}'
