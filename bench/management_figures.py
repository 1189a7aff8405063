#!/usr/bin/env python3
"""The management side's figures (issue 12), on a fresh warrend each:

1. GET /metrics, /metrics/per-object, /api/queues and one page of it with 10,000 queues
   declared: median and worst of 20 requests each and the broker's CPU per request (goal
   for /metrics: under 100 ms); then /api/queues with 1,000 queues, the pollers' request.
2. Publish + confirm latency, one message at a time (p50, p99; 7 rounds of 3,000 per case), with 1,000 queues
   declared, alone, next to an idle neighbour process and while a second warrend's
   /api/queues is polled (the controls), and while its own /api/queues is polled 10 times a
   second (goal: p99 within 10%); both polls again with the poller at idle priority, as a
   poller on another machine would be.

    /usr/bin/python3 bench/management_figures.py [build/warrend] [--latency-only] [--rounds N]
                                                 [--poll-query '?page=1&page_size=1']

--poll-query changes what the pollers ask for: with one queue per page the broker still walks
every queue on its loop, but builds and sends almost no JSON.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import base64

import pika

WARREND = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "build/warrend"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Warrend:
    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="warren-mgmt-bench-")
        self.mgmt, self.prom = free_port(), free_port()
        self.proc = subprocess.Popen([WARREND, "--port", "0", "--management-port", str(self.mgmt), "--prometheus-port",
                                      str(self.prom), "--data-dir", self.dir, "--log-level", "warning"],
                                     stdout=subprocess.PIPE, text=True)
        # "port N", then "ready amqp=N management=N prometheus=N" once every listener is up.
        self.port = int(self.proc.stdout.readline().split()[1])
        if not self.proc.stdout.readline().startswith("ready "):
            raise SystemExit("warrend did not become ready")
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def declare(port, count):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    for i in range(count):
        ch.queue_declare(f"q{i:05}", durable=True)
    conn.close()


def timed_get(url, headers=None):
    start = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=60) as r:
        r.read()
    return (time.perf_counter() - start) * 1000


def cpu_seconds(pid):
    """User + system CPU time of a process, all its threads."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_with_cpu(w, url, headers, count):
    """The answer times of `count` GETs, and the broker's CPU per request (ms)."""
    cpu = cpu_seconds(w.proc.pid)
    times = [timed_get(url, headers) for _ in range(count)]
    return times, (cpu_seconds(w.proc.pid) - cpu) / count * 1000


def http_figures():
    with Warrend() as w:
        declare(w.port, 10_000)
        for name, url, headers in [("/metrics", f"http://127.0.0.1:{w.prom}/metrics", None),
                                   ("/metrics/per-object", f"http://127.0.0.1:{w.prom}/metrics/per-object", None),
                                   ("/api/queues", f"http://127.0.0.1:{w.mgmt}/api/queues", AUTH),
                                   ("/api/queues one page", f"http://127.0.0.1:{w.mgmt}/api/queues?page=1&page_size=100", AUTH)]:
            times, cpu = requests_with_cpu(w, url, headers, 20)
            print(f"{name:22} 10,000 queues: median {statistics.median(times):6.1f} ms, worst {max(times):6.1f} ms, "
                  f"broker CPU {cpu:5.1f} ms per request")
    with Warrend() as w:  # what the latency figures' poller costs the broker
        declare(w.port, 1000)
        url = f"http://127.0.0.1:{w.mgmt}/api/queues"
        timed_get(url, AUTH)
        times, cpu = requests_with_cpu(w, url, AUTH, 200)
        print(f"{'/api/queues':22}  1,000 queues: median {statistics.median(times):6.2f} ms, "
              f"broker CPU {cpu:5.2f} ms per request")


def confirm_latencies(port, count=3000):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.queue_declare("latency", durable=True)
    ch.confirm_delivery()
    out = []
    for i in range(count):
        start = time.perf_counter()
        ch.basic_publish("", "latency", b"x" * 256, pika.BasicProperties(delivery_mode=2))
        out.append((time.perf_counter() - start) * 1000)
    conn.close()
    return out


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


# Prints "ready" after its first listing, and how many listings it fetched when terminated:
# an idle-priority poller must still have polled about 10 times a second for its case to count.
POLLER = """
import os, sys
if sys.argv[2:] == ["idle"]:
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
import base64, signal, time, urllib.request
polls = 0
def report(*_):
    print(polls, flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, report)
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/queues{os.environ.get('POLL_QUERY', '')}",
                                 headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
while True:
    urllib.request.urlopen(request, timeout=60).read()
    polls += 1
    if polls == 1:
        print("ready", flush=True)
    time.sleep(0.1)
"""


# The controls. The idler wakes as often as the poller and spends some CPU in Python without
# talking to any broker. The twin poll is the same poller against a second warrend with the
# same 1,000 queues: the machine does the same HTTP and JSON work, but not in the broker that
# confirms. What the polled run adds over the twin is what polling costs the broker itself;
# what both add over "alone" is two busy cores. The same two polls with the poller under
# SCHED_IDLE stand for a poller on another machine (Prometheus, a browser): the broker's HTTP
# work is unchanged, but the poller no longer takes a core from the publisher or the broker.
IDLER = """
import time
print("ready", flush=True)
while True:
    sum(range(100_000))
    time.sleep(0.1)
"""


def latency_figures(rounds=7, poll_query=""):
    """Each round measures every case back to back; the figure is the median over rounds of
    each round's p99 ratio, so a burst of noise from elsewhere spoils one round, not all."""
    with Warrend() as w, Warrend() as twin:
        declare(w.port, 1000)
        declare(twin.port, 1000)
        neighbours = [("idler", IDLER, [w.mgmt]), ("twin poll", POLLER, [twin.mgmt]), ("polled", POLLER, [w.mgmt]),
                      ("twin poll, idle poller", POLLER, [twin.mgmt, "idle"]),
                      ("polled, idle poller", POLLER, [w.mgmt, "idle"])]
        results = {"alone": [], **{name: [] for name, _, _ in neighbours}}
        ratios = {name: [] for name, _, _ in neighbours}
        poll_rates = {name: [] for name, script, _ in neighbours if script is POLLER}
        for _ in range(rounds):  # interleaved, so drift hits all alike
            alone = confirm_latencies(w.port)
            results["alone"].extend(alone)
            # Neighbours run in another process: a thread here would take the GIL from the publisher.
            for name, script, args in neighbours:
                neighbour = subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                                             stdout=subprocess.PIPE, text=True,
                                             env={**os.environ, "POLL_QUERY": poll_query})
                # Measured once the neighbour runs as it will: a Python interpreter starting
                # (imports at normal priority, the first connection) is not what is measured.
                if neighbour.stdout.readline().strip() != "ready":
                    raise SystemExit(f"the {name} neighbour did not start")
                started = time.monotonic()
                values = confirm_latencies(w.port)
                neighbour.terminate()
                polls = neighbour.communicate()[0].strip()
                if polls:  # counted from the ready line: the first listing is not in the interval
                    poll_rates[name].append((int(polls) - 1) / (time.monotonic() - started))
                results[name].extend(values)
                ratios[name].append(percentile(values, 0.99) / percentile(alone, 0.99))
        for name, values in results.items():
            print(f"confirm latency, 1,000 queues, {name:22}: p50 {percentile(values, 0.5):.3f} ms, "
                  f"p99 {percentile(values, 0.99):.3f} ms ({len(values)} publishes)")
        for name, values in poll_rates.items():  # a poller stopped before it began reports nothing
            median = f"{statistics.median(values):.1f}" if values else "n/a"
            print(f"polls per second, {name:22}: median {median} ({len(values)} of {rounds} reported)")
        for name, values in ratios.items():
            print(f"p99 {name:22} / alone per round: median {statistics.median(values):.2f} "
                  f"({' '.join(f'{v:.2f}' for v in values)})")


def option(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


if __name__ == "__main__":
    if "--latency-only" not in sys.argv:
        http_figures()
    latency_figures(int(option("--rounds", 7)), option("--poll-query", ""))
