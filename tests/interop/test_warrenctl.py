"""warrenctl: rabbitmqctl's verbs and output habits over the management API. The verbs that
RabbitMQ's management API also answers pass against it too (AMQP_PORT=5672 MGMT_PORT=15672
WARRENCTL=build/warrenctl); move_messages and --offline are Warren's."""
import json
import os
import subprocess
import tempfile
import time
import unittest

import pika

from harness import broker, setUpModule, start_warrend, tearDownModule, unique  # noqa: F401 (module fixtures)


def ctl(*args, url=None, env=None):
    return subprocess.run([os.environ["WARRENCTL"], "--url", url or f"http://127.0.0.1:{broker().mgmt_port}", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def publish(queue, bodies, durable=True):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
    ch = conn.channel()
    ch.queue_declare(queue, durable=durable)
    ch.confirm_delivery()
    for body in bodies:
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    return conn


def eventually(fetch, predicate, timeout=30):
    """RabbitMQ's management figures lag a few seconds: ask until they are in."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if predicate(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def rows(output):
    return [line.split("\t") for line in output.strip().splitlines()]


class Verbs(unittest.TestCase):
    def test_list_queues_columns_formats_and_quiet(self):
        queue = unique("ctl")
        publish(queue, [b"a", b"b"]).close()
        result = ctl("list_queues")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.splitlines()[0], "Listing queues for vhost / ...")
        self.assertEqual(result.stdout.splitlines()[1], "name\tmessages")
        mine = lambda: [row for row in rows(ctl("-q", "list_queues", "name", "messages", "consumers").stdout)
                        if row[0] in (queue, "name")]
        self.assertEqual(eventually(mine, lambda r: [queue, "2", "0"] in r),
                         [["name", "messages", "consumers"], [queue, "2", "0"]])
        listed = json.loads(ctl("--formatter", "json", "list_queues", "name", "durable").stdout)
        self.assertIn({"name": queue, "durable": True}, listed)
        self.assertIn("amq.direct", ctl("list_exchanges").stdout)
        self.assertIn(queue, ctl("list_bindings").stdout)
        self.assertEqual(ctl("purge_queue", queue).returncode, 0)
        self.assertEqual(ctl("delete_queue", queue).returncode, 0)
        self.assertNotIn(queue, ctl("-q", "list_queues").stdout)

    def test_definitions_export_and_import(self):
        queue = unique("ctl-def")
        publish(queue, []).close()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "defs.json")
            self.assertEqual(ctl("export_definitions", path).returncode, 0)
            with open(path) as f:
                exported = json.load(f)
            self.assertIn(queue, [q["name"] for q in exported["queues"]])
            self.assertEqual(ctl("delete_queue", queue).returncode, 0)
            only_mine = {"queues": [q for q in exported["queues"] if q["name"] == queue]}
            result = subprocess.run([os.environ["WARRENCTL"], "--url", f"http://127.0.0.1:{broker().mgmt_port}",
                                     "import_definitions", "-"], input=json.dumps(only_mine), capture_output=True,
                                    text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(queue, ctl("-q", "list_queues").stdout)
        ctl("delete_queue", queue)

    def test_close_connection(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        names = eventually(lambda: [c["name"] for c in
                                    json.loads(ctl("--formatter", "json", "list_connections", "name").stdout)],
                           lambda n: n)
        self.assertTrue(names)
        for name in names:
            ctl("close_connection", name)
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as closed:
            conn.process_data_events(time_limit=30)
            conn.channel()
        self.assertEqual(closed.exception.reply_code, 320)
        self.assertIn("CONNECTION_FORCED", closed.exception.reply_text)

    def test_errors_have_rabbitmqctls_exit_codes(self):
        self.assertEqual(ctl("purge_queue", unique("missing")).returncode, 69)
        self.assertEqual(ctl("--user", "guest:wrong", "list_queues").returncode, 77)
        unreachable = ctl("list_queues", url="http://127.0.0.1:1")
        self.assertEqual(unreachable.returncode, 69)
        self.assertIn("cannot reach", unreachable.stderr)
        self.assertEqual(ctl("frobnicate").returncode, 64)
        env = dict(os.environ, WARREN_USER="guest:wrong")
        self.assertEqual(ctl("list_queues", env=env).returncode, 77)


class WarrensOwn(unittest.TestCase):
    def setUp(self):
        if broker().external:
            self.skipTest("Warren's own")

    def test_move_messages_back_where_they_died(self):
        work, dead = unique("work"), unique("dead")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        ch = conn.channel()
        ch.queue_declare(dead, durable=True)
        ch.queue_declare(work, durable=True, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
        ch.confirm_delivery()
        for body in [b"1", b"2"]:
            ch.basic_publish("", work, body, pika.BasicProperties(delivery_mode=2))
        for _ in range(2):
            method, _, _ = ch.basic_get(work)
            ch.basic_reject(method.delivery_tag, requeue=False)
        result = ctl("move_messages", dead)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("Moved 2 message(s)", result.stdout)
        self.assertEqual(ch.queue_declare(work, passive=True).method.message_count, 2)
        self.assertEqual(ch.queue_declare(dead, passive=True).method.message_count, 0)
        ch.queue_delete(work)
        ch.queue_delete(dead)
        conn.close()

    def test_offline_reads_a_stopped_store(self):
        with tempfile.TemporaryDirectory() as data:
            proc, port = start_warrend("--data-dir", data, "--log-level", "warning")
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            ch = conn.channel()
            ch.queue_declare("kept", durable=True, arguments={"x-max-priority": 3})
            ch.confirm_delivery()
            for p in range(5):
                ch.basic_publish("", "kept", str(p), pika.BasicProperties(delivery_mode=2, priority=p % 4))
            conn.close()
            proc.terminate()
            self.assertEqual(proc.wait(timeout=30), 0)
            result = subprocess.run([os.environ["WARRENCTL"], "--offline", "--data-dir", data, "-q", "list_queues"],
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(rows(result.stdout), [["name", "messages"], ["kept", "5"]])


if __name__ == "__main__":
    unittest.main()
