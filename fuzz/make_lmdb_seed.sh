#!/usr/bin/env bash
# Writes fuzz/corpus/fuzz_lmdb_pages/store: the data file of a small store holding a record
# in every database (exchanges, queues, bindings, counters, persistent and transient messages,
# timers, a deduplication window), compacted. Needs a built warrend (build/warrend) and
# python3-pika.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
out=$(mktemp)
build/warrend --port 0 --data-dir "$dir" >"$out" &
pid=$!
until grep -q '^port' "$out"; do sleep 0.1; done
/usr/bin/python3 - "$(awk '/^port/{print $2}' "$out")" <<'PY'
import sys, pika
c = pika.BlockingConnection(pika.ConnectionParameters(port=int(sys.argv[1])))
ch = c.channel()
ch.confirm_delivery()
ch.exchange_declare("x", "topic", durable=True)
ch.queue_declare("q", durable=True, arguments={"x-message-ttl": 600000, "x-message-deduplication": True})
ch.queue_bind("q", "x", "a.#")
for i in range(40):
    ch.basic_publish("x", "a.b", b"m%d" % i + b"." * (i * 50),
                     pika.BasicProperties(delivery_mode=2 if i % 4 else 1, headers={"x-deduplication-header": str(i)}))
ch.basic_publish("x", "a.b", b"big" * 3000, pika.BasicProperties(delivery_mode=2))
c.close()
PY
kill "$pid"
wait "$pid" || true
# A compacting copy (LMDB's own, through ctypes) keeps only the pages in use: a small seed.
mkdir -p "$dir/compact" fuzz/corpus/fuzz_lmdb_pages
/usr/bin/python3 - "$dir" <<'PY'
import ctypes, sys
lmdb = ctypes.CDLL("liblmdb.so.0")
env = ctypes.c_void_p()
assert lmdb.mdb_env_create(ctypes.byref(env)) == 0
assert lmdb.mdb_env_set_maxdbs(env, 16) == 0
assert lmdb.mdb_env_open(env, sys.argv[1].encode(), 0x20000, 0o600) == 0  # MDB_RDONLY
assert lmdb.mdb_env_copy2(env, (sys.argv[1] + "/compact").encode(), 1) == 0  # MDB_CP_COMPACT
lmdb.mdb_env_close(env)
PY
cp "$dir/compact/data.mdb" fuzz/corpus/fuzz_lmdb_pages/store
rm -rf "$dir" "$out"
ls -l fuzz/corpus/fuzz_lmdb_pages/store
