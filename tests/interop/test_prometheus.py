"""Prometheus metrics with rabbitmq_prometheus's names, checked by promtool and scraped by a
real Prometheus server (Debian's prometheus package). Passes against RabbitMQ 3.10 with the
prometheus plugin (AMQP_PORT=5672 PROMETHEUS_PORT=15692) and against warrend."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

import pika

from harness import broker, free_port, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)


def scrape(path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{broker().prometheus_port}{path}", timeout=30) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read().decode()


def samples(text):
    """{(name, labels as a sorted tuple): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, labels = (series.split("{", 1) + [""])[:2]
        pairs = tuple(sorted(tuple(p.split("=", 1)) for p in labels.rstrip("}").split('",') if p))
        out[(name, tuple((k, v.strip('"')) for k, v in pairs))] = float(value)
    return out


def total(values, name):
    """A metric summed over its labels (RabbitMQ labels its global counters by protocol and
    queue type)."""
    return sum(v for (n, _), v in values.items() if n == name)


def eventually(fetch, predicate, timeout=60):
    """RabbitMQ refreshes its metrics every few seconds, Prometheus scrapes every second:
    ask until the answer is in (or time out, returning the last one)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if predicate(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.25)


def publish(queue, count):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    ch.confirm_delivery()
    for i in range(count):
        ch.basic_publish("", queue, str(i), pika.BasicProperties(delivery_mode=2))
    return conn, ch


class Metrics(unittest.TestCase):
    def test_names_types_and_values_as_rabbitmq_writes_them(self):
        queue = unique("prom")
        conn, ch = publish(queue, 7)
        per_queue = ("rabbitmq_queue_messages_ready", (("queue", queue), ("vhost", "/")))
        got = eventually(lambda: samples(scrape("/metrics/per-object")[2]), lambda s: s.get(per_queue) == 7)
        self.assertEqual(got.get(per_queue), 7)
        status, content_type, text = scrape()
        self.assertEqual(status, 200)
        self.assertTrue(content_type.startswith("text/plain"), content_type)
        for name, kind in [("rabbitmq_queue_messages_ready", "gauge"), ("rabbitmq_queue_messages_unacked", "gauge"),
                           ("rabbitmq_queue_messages", "gauge"), ("rabbitmq_queue_consumers", "gauge"),
                           ("rabbitmq_connections", "gauge"), ("rabbitmq_channels", "gauge"),
                           ("rabbitmq_consumers", "gauge"), ("rabbitmq_queues", "gauge"),
                           ("rabbitmq_global_messages_received_total", "counter"),
                           ("rabbitmq_global_messages_received_confirm_total", "counter"),
                           ("rabbitmq_global_messages_confirmed_total", "counter"),
                           ("rabbitmq_global_messages_routed_total", "counter"),
                           ("rabbitmq_global_messages_unroutable_dropped_total", "counter"),
                           ("rabbitmq_global_messages_unroutable_returned_total", "counter"),
                           ("rabbitmq_global_messages_delivered_total", "counter"),
                           ("rabbitmq_global_messages_acknowledged_total", "counter"),
                           ("rabbitmq_global_messages_redelivered_total", "counter"),
                           ("rabbitmq_process_resident_memory_bytes", "gauge"),
                           ("rabbitmq_disk_space_available_bytes", "gauge")]:
            self.assertIn(f"# TYPE {name} {kind}\n", text)
        values = samples(text)
        self.assertGreaterEqual(total(values, "rabbitmq_global_messages_received_confirm_total"), 7)
        self.assertGreater(values[("rabbitmq_disk_space_available_bytes", ())], 0)
        for _ in range(3):
            method, _, _ = ch.basic_get(queue)
            ch.basic_ack(method.delivery_tag)
        acked = "rabbitmq_global_messages_acknowledged_total"
        got = eventually(lambda: samples(scrape("/metrics/per-object")[2]),
                         lambda s: s.get(per_queue) == 4 and total(s, acked) >= 3)
        self.assertEqual(got.get(per_queue), 4)
        self.assertGreaterEqual(total(got, acked), 3)
        ch.queue_delete(queue)
        conn.close()

    def test_promtool_finds_no_problem(self):
        if broker().external:
            self.skipTest("RabbitMQ's own Erlang metrics fail promtool's lint; this checks Warren's")
        for path in ["/metrics", "/metrics/per-object"]:
            result = subprocess.run(["promtool", "check", "metrics"], input=scrape(path)[2], capture_output=True,
                                    text=True, timeout=60)
            self.assertEqual(result.returncode, 0, f"{path}: {result.stdout}{result.stderr}")


class RealPrometheus(unittest.TestCase):
    """Debian's Prometheus server scrapes the broker; its query API shows the series."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="warren-prometheus-")
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: broker\n"
                    "    metrics_path: /metrics/per-object\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{broker().prometheus_port}']\n")
        for _ in range(5):  # a free port may be taken before Prometheus binds it: then another
            self.port = free_port()
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.dir}/data",
                 f"--web.listen-address=127.0.0.1:{self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)
            log = []
            for line in self.proc.stderr:  # wait for the event, not for time
                log.append(line)
                if "Server is ready to receive web requests" in line:
                    # Its log must keep flowing somewhere, or it dies on a full (or closed) pipe.
                    threading.Thread(target=lambda: log.extend(self.proc.stderr), daemon=True).start()
                    return
            self.proc.wait()
            if "address already in use" not in "".join(log):
                break
        raise RuntimeError("prometheus did not start:\n" + "".join(log[-20:]))

    def tearDown(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, expression):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.load(response)
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def test_a_scraped_queue_depth_and_publish_count(self):
        queue = unique("scraped")
        conn, ch = publish(queue, 5)
        series = eventually(lambda: self.query(f'rabbitmq_queue_messages_ready{{queue="{queue}"}}'),
                            lambda r: r and r[0][1] == 5)
        self.assertEqual([value for _, value in series], [5])
        self.assertEqual(series[0][0]["vhost"], "/")
        received = eventually(lambda: self.query("sum(rabbitmq_global_messages_received_total)"),
                              lambda r: r and r[0][1] >= 5)
        self.assertGreaterEqual(received[0][1], 5)
        self.assertEqual(self.query('up{job="broker"}')[0][1], 1)
        ch.queue_delete(queue)
        conn.close()


if __name__ == "__main__":
    unittest.main()
