#!/usr/bin/env python3
"""Issue 13's figures, side by side in one run:

1. Forwarding throughput: N persistent 256 B messages waiting in a local warrend queue,
   moved by a shovel (on-confirm, src-prefetch-count 256) into RabbitMQ, next to amqp_load
   publishing the same N straight to RabbitMQ with a confirm window of 256. Each case ROUNDS
   times, interleaved; medians. Goal: the shovel at least 80% of the direct rate.
2. Reconnect latency: the upstream (a second warrend, restarted on its port after 0-3 s down)
   comes back; time from it serving again to the first message it gets from the shovel
   (reconnect-delay 1 s), 2 x ROUNDS times. Goal: under the reconnect delay plus 100 ms.

RabbitMQ is a private node (tests/interop/rabbit_node.py; scripts/setup.sh unpacks it).

    /usr/bin/python3 bench/shovel_figures.py [BUILD_DIR] [ROUNDS] [N]
"""
import base64
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))
BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
N = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
os.environ.setdefault("WARREND", os.path.join(BUILD, "warrend"))

from harness import free_ports  # noqa: E402
from rabbit_node import RabbitNode  # noqa: E402

LOAD = os.path.join(BUILD, "bench", "amqp_load")
AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()


def api(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"content-type": "application/json", "Authorization": AUTH})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


class Warrend:
    def __init__(self, port=None):
        self.dir = tempfile.mkdtemp(prefix="warren-shovel-bench-")
        self.port, self.mgmt = free_ports(2)
        if port:
            self.port = port
        self.start()

    def start(self):
        self.proc = subprocess.Popen([os.path.join(BUILD, "warrend"), "--port", str(self.port), "--management-port",
                                      str(self.mgmt), "--prometheus-port", "0", "--data-dir", self.dir,
                                      "--durability", "fsync", "--log-level", "info"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "warrend ready" in line:
                return time.monotonic()
        raise RuntimeError("warrend did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def load(port, queue, mode="publish"):
    out = subprocess.run([LOAD, "--port", str(port), "--queue", queue, "--mode", mode, "--size", "256",
                          "--messages", str(N), "--window", "256", "--prefetch", "256"],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split("rate=")[1].split()[0].rstrip("/s"))


def shovel_rate(edge, rabbit, queue):
    load(edge.port, queue)  # the backlog, in the edge's store
    value = {"src-uri": "amqp://", "src-queue": queue, "src-prefetch-count": 256, "src-delete-after": "queue-length",
             "dest-uri": f"amqp://guest:guest@127.0.0.1:{rabbit.port}", "dest-queue": queue}
    start = time.monotonic()
    assert api(edge.mgmt, "PUT", f"/api/parameters/shovel/%2F/{queue}", {"value": value})[0] == 201
    # src-delete-after queue-length: the shovel deletes itself once all N are confirmed.
    while api(edge.mgmt, "GET", f"/api/parameters/shovel/%2F/{queue}")[0] == 200:
        time.sleep(0.005)
    return N / (time.monotonic() - start)


def throughput():
    rabbit, edge = RabbitNode(plugins=()), Warrend()
    try:
        direct, shovelled = [], []
        for i in range(ROUNDS):
            direct.append(load(rabbit.port, f"direct-{i}"))
            shovelled.append(shovel_rate(edge, rabbit, f"shovelled-{i}"))
            rabbit.ctl("delete_queue", f"direct-{i}")
            rabbit.ctl("delete_queue", f"shovelled-{i}")
        d, s = statistics.median(direct), statistics.median(shovelled)
        print(f"direct to RabbitMQ (window 256):     {d:9.0f} msg/s  {[round(x) for x in direct]}")
        print(f"shovelled from warrend (prefetch 256): {s:7.0f} msg/s  {[round(x) for x in shovelled]}")
        print(f"shovel / direct: {s / d:.0%} (goal >= 80%)")
    finally:
        edge.close()
        rabbit.close()


def reconnect_latency():
    centre, edge = Warrend(), Warrend()
    try:
        value = {"src-uri": "amqp://", "src-queue": "out", "dest-uri": f"amqp://127.0.0.1:{centre.port}",
                 "dest-queue": "in", "reconnect-delay": 1}
        api(edge.mgmt, "PUT", "/api/parameters/shovel/%2F/back", {"value": value})
        latencies = []
        for _ in range(2 * ROUNDS):
            centre.kill()
            while shovel_state(edge) != "terminated":
                time.sleep(0.005)
            forwarded = shovel(edge)["forwarded"]
            subprocess.run([LOAD, "--port", str(edge.port), "--queue", "out", "--mode", "publish", "--messages", "10",
                            "--window", "10"], capture_output=True, check=True)
            time.sleep(random.uniform(0, 3))  # down for a while: the shovel is somewhere in its backoff
            back = centre.start()
            while shovel(edge)["forwarded"] <= forwarded:
                time.sleep(0.002)
            latencies.append((time.monotonic() - back) * 1000)
        print(f"upstream back -> first message forwarded (reconnect-delay 1 s): median "
              f"{statistics.median(latencies):.0f} ms, worst {max(latencies):.0f} ms "
              f"{[round(x) for x in latencies]} (goal < 1100 ms)")
    finally:
        edge.close()
        centre.close()


def shovel(edge):
    return api(edge.mgmt, "GET", "/api/shovels/vhost/%2F/back")[1]


def shovel_state(edge):
    return shovel(edge)["state"]


if __name__ == "__main__":
    throughput()
    reconnect_latency()
