"""Shovels against real brokers: a private RabbitMQ 3.10 node (rabbit_node.py) and a second
warrend as upstreams, with the link cut, black-holed and slowed by a TCP proxy on loopback
(tcp_proxy.py), upstreams stopped and started, and warrend killed with SIGKILL mid-flight.

After each fault, every message published locally with a confirm is at the destination,
none lost; the order is checked (see in_order) and duplicates are counted and reported.
The management API's shovel endpoints are compared with RabbitMQ's shovel plugin.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import pika

from harness import free_ports, http_call as http, start_logged_warrend, unique
from rabbit_node import RabbitNode, scripts_dir
from tcp_proxy import TcpProxy

DEADLINE = 120  # seconds any one wait may take before the test fails


def wait_for(what, check, timeout=DEADLINE, interval=0.05):
    """Polls check() until it returns something true (the state of another process: there is
    no event to wait on); fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class Warren:
    """A warrend of this test's own: fixed ports across restarts, killable."""

    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="warren-shovel-")
        self.port, self.mgmt_port = free_ports(2)
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "log"), "a")
        metrics = [] if "--prometheus-port" in self.extra else ["--prometheus-port", "0"]
        self.proc = start_logged_warrend(
            ["--port", str(self.port), "--management-port", str(self.mgmt_port), *metrics, "--data-dir",
             os.path.join(self.dir, "data"), "--durability", "nosync", *self.extra], self.log)

    def read_log(self):
        with open(os.path.join(self.dir, "log")) as f:
            return f.read()

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc.stdout.close()
            self.log.close()
            assert self.proc.returncode == 0, self.read_log()[-4000:]

    def close(self):
        if self.proc.poll() is None:
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def api(self, method, path, body=None):
        return http(self.mgmt_port, method, path, body)


def channel(port):
    connection = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0,
                                                                   blocked_connection_timeout=None))
    return connection, connection.channel()


def publish(port, queue, ids, progress=None):
    """Publishes persistent messages with these ids (message_id and body), each confirmed
    before the next (pika's basic_publish returns on the confirm); progress["confirmed"]
    counts them."""
    connection, ch = channel(port)
    ch.confirm_delivery()
    for i in ids:
        ch.basic_publish("", queue, str(i).encode(),
                         pika.BasicProperties(message_id=str(i), delivery_mode=2, headers={"n": i}))
        if progress is not None:
            progress["confirmed"] += 1
    connection.close()


class Publisher(threading.Thread):
    """publish() on a thread: a test breaks things meanwhile, then joins it."""

    def __init__(self, port, queue, ids):
        super().__init__()
        self.args, self.ids = (port, queue, ids), list(ids)
        self.progress, self.error = {"confirmed": 0}, None
        self.start()

    def run(self):
        try:
            publish(*self.args, progress=self.progress)
        except Exception as e:  # the test decides whether that was expected
            self.error = e

    def confirmed(self):
        """The ids confirmed (in order: each was confirmed before the next was sent)."""
        self.join()
        return self.ids[:self.progress["confirmed"]]


def drain(port, queue, expect_at_least, timeout=DEADLINE):
    """Every message of `queue`, consumed until at least `expect_at_least` arrived and the
    queue is empty; their ids in arrival order."""
    wait_for(f"queue {queue}", lambda: queue_exists(port, queue))  # the shovel may declare it
    connection, ch = channel(port)
    ids = []
    deadline = time.monotonic() + timeout
    for method, properties, body in ch.consume(queue, auto_ack=True, inactivity_timeout=0.2):
        if method is not None:
            ids.append(int(properties.message_id))
            continue
        if len(ids) >= expect_at_least and ch.queue_declare(queue, durable=True, passive=True).method.message_count == 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{queue}: {len(ids)} of {expect_at_least} arrived")
    ch.cancel()
    connection.close()
    return ids


def queue_exists(port, queue):
    connection, ch = channel(port)
    try:
        ch.queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if connection.is_open:
            connection.close()


def in_order(ids, keep="first"):
    """Whether the messages, each kept once (its first copy, or its last one), are in the
    order they were published. After a break a shovel sends again from the oldest
    unconfirmed message on: the first copies are in order; when the destination refused a
    message (a nack) a later one may have got in first, and then the last copies are."""
    seen, kept = set(), []
    for i in (ids if keep == "first" else reversed(ids)):
        if i not in seen:
            seen.add(i)
            kept.append(i)
    if keep == "last":
        kept.reverse()
    return kept == sorted(kept)


class ShovelCase(unittest.TestCase):
    def assert_all_arrived(self, published, received, keep="first"):
        missing = sorted(set(published) - set(received))
        self.assertEqual(missing[:20], [], f"{len(missing)} lost")
        self.assertTrue(in_order(received, keep), "out of order")
        duplicates = len(received) - len(set(received))
        print(f"\n  {self._testMethodName}: {len(set(received))} arrived, {duplicates} duplicates", file=sys.stderr)
        return duplicates

    def declare_shovel(self, node, name, value, vhost="%2F"):
        status, body = node.api("PUT", f"/api/parameters/shovel/{vhost}/{name}", {"value": value})
        self.assertIn(status, (201, 204), body)

    def shovel_status(self, node, name):
        status, body = node.api("GET", f"/api/shovels/vhost/%2F/{name}")
        return body if status == 200 else None

    def wait_running(self, node, name):
        return wait_for(f"shovel {name} running",
                        lambda: (self.shovel_status(node, name) or {}).get("state") == "running")


# ---- upstream: a second warrend -------------------------------------------------------------


class UplinkToWarren(ShovelCase):
    """edge (a local queue) -> centre (a queue on another warrend), through a proxy."""

    def setUp(self):
        self.centre = Warren()
        self.edge = Warren()
        self.proxy = TcpProxy(self.centre.port)
        self.shovel = unique("up")
        self.declare_shovel(self.edge, self.shovel, {
            "src-uri": "amqp://", "src-queue": "outbox",
            "dest-uri": f"amqp://guest:guest@127.0.0.1:{self.proxy.port}/%2F?heartbeat=1&connection_timeout=2000",
            "dest-queue": "inbox", "reconnect-delay": 0.5, "src-prefetch-count": 100})
        self.wait_running(self.edge, self.shovel)

    def tearDown(self):
        self.proxy.close()
        self.edge.close()
        self.centre.close()

    def test_a_steady_stream_arrives_in_order_with_properties_unchanged(self):
        publish(self.edge.port, "outbox", range(2000))
        received = drain(self.centre.port, "inbox", 2000)
        self.assertEqual(self.assert_all_arrived(range(2000), received), 0)
        status = self.shovel_status(self.edge, self.shovel)
        self.assertEqual((status["forwarded"], status["resent"], status["pending"]), (2000, 0, 0))

    def test_the_link_cut_mid_stream(self):
        publisher = Publisher(self.edge.port, "outbox", range(3000))
        wait_for("some forwarding", lambda: self.shovel_status(self.edge, self.shovel)["forwarded"] > 300)
        self.proxy.cut()
        self.assertEqual(publisher.confirmed(), list(range(3000)), publisher.error)
        received = drain(self.centre.port, "inbox", 3000)
        self.assert_all_arrived(range(3000), received)
        self.assertGreaterEqual(self.proxy.accepted, 2)  # it did reconnect

    def test_a_black_holed_link_is_noticed_by_heartbeats_and_healed(self):
        publisher = Publisher(self.edge.port, "outbox", range(3000))
        wait_for("some forwarding", lambda: self.shovel_status(self.edge, self.shovel)["forwarded"] > 300)
        self.proxy.blackhole()
        status = wait_for("the stall noticed",
                          lambda: (s := self.shovel_status(self.edge, self.shovel))["state"] != "running" and s)
        self.assertIn("heartbeat", status["reason"] + " " + self.edge.read_log())
        # The local broker kept confirming meanwhile.
        self.assertEqual(publisher.confirmed(), list(range(3000)), publisher.error)
        self.proxy.open()
        received = drain(self.centre.port, "inbox", 3000)
        self.assert_all_arrived(range(3000), received)

    def test_a_slow_link(self):
        self.proxy.slow(400_000)  # bytes per second: 1000 messages take about a second
        publish(self.edge.port, "outbox", range(1000))
        received = drain(self.centre.port, "inbox", 1000)
        self.assertEqual(self.assert_all_arrived(range(1000), received), 0)

    def test_the_upstream_gone_then_back_while_the_edge_keeps_confirming(self):
        self.proxy.refuse()
        wait_for("the shovel to notice", lambda: self.shovel_status(self.edge, self.shovel)["state"] == "terminated")
        publish(self.edge.port, "outbox", range(2000))  # every one confirmed by the edge alone
        status = self.shovel_status(self.edge, self.shovel)
        self.assertEqual(status["pending"], 2000)
        self.assertIn("connection", status["reason"])
        self.proxy.open()
        received = drain(self.centre.port, "inbox", 2000)
        self.assertEqual(self.assert_all_arrived(range(2000), received), 0)

    def test_the_upstream_warrend_killed_and_restarted(self):
        publisher = Publisher(self.edge.port, "outbox", range(3000))
        wait_for("some forwarding", lambda: self.shovel_status(self.edge, self.shovel)["forwarded"] > 300)
        self.centre.kill()
        self.centre.start()
        self.assertEqual(publisher.confirmed(), list(range(3000)), publisher.error)
        received = drain(self.centre.port, "inbox", 3000)
        self.assert_all_arrived(range(3000), received)

    def test_the_edge_warrend_killed_mid_flight_resumes_from_its_store(self):
        publisher = Publisher(self.edge.port, "outbox", range(3000))
        wait_for("some forwarding", lambda: self.shovel_status(self.edge, self.shovel)["forwarded"] > 300)
        self.edge.kill()
        confirmed = publisher.confirmed()  # it saw its connection die: what it had confirmed must arrive
        self.assertIsNotNone(publisher.error)
        self.edge.start()
        self.wait_running(self.edge, self.shovel)  # the definition came back from the store
        received = drain(self.centre.port, "inbox", len(confirmed))
        self.assert_all_arrived(confirmed, received)


class RetriesAndFailover(ShovelCase):
    def setUp(self):
        self.centre, self.edge = Warren(), Warren()

    def tearDown(self):
        self.edge.close()
        self.centre.close()

    def test_the_next_uri_is_tried_when_one_is_dead(self):
        dead = free_ports(1)[0]
        name = unique("failover")
        self.declare_shovel(self.edge, name, {"src-uri": "amqp://", "src-queue": "out", "reconnect-delay": 0.2,
                                              "dest-uri": [f"amqp://127.0.0.1:{dead}", f"amqp://127.0.0.1:{self.centre.port}"],
                                              "dest-queue": "in"})
        publish(self.edge.port, "out", range(100))
        received = drain(self.centre.port, "in", 100)
        self.assertEqual(self.assert_all_arrived(range(100), received), 0)

    def test_an_unroutable_message_is_retried_until_it_has_a_route(self):
        connection, ch = channel(self.centre.port)
        ch.exchange_declare("nowhere", "direct", durable=True)
        connection.close()
        name = unique("route")
        self.declare_shovel(self.edge, name, {"src-uri": "amqp://", "src-queue": "out", "reconnect-delay": 0.2,
                                              "dest-uri": f"amqp://127.0.0.1:{self.centre.port}",
                                              "dest-exchange": "nowhere", "dest-exchange-key": "k"})
        publish(self.edge.port, "out", range(50))
        status = wait_for("the return noticed", lambda: "returned" in ((s := self.shovel_status(self.edge, name))
                                                                       .get("reason") or "") and s)
        self.assertIn("NO_ROUTE", status["reason"])
        self.assertEqual(status["pending"], 50)  # nothing dropped meanwhile
        connection, ch = channel(self.centre.port)
        ch.queue_declare("routed", durable=True)
        ch.queue_bind("routed", "nowhere", "k")
        connection.close()
        received = drain(self.centre.port, "routed", 50)
        self.assert_all_arrived(range(50), received)

    def test_a_shovel_from_the_config_file(self):
        config = os.path.join(self.edge.dir, "warren.conf")
        with open(config, "w") as f:
            f.write("# a shovel, its JSON quoted\n"
                    f"shovel = 'cfg {{\"src-uri\": \"amqp://\", \"src-queue\": \"c-out\", "
                    f"\"dest-uri\": \"amqp://127.0.0.1:{self.centre.port}\", \"dest-queue\": \"c-in\"}}'\n")
        self.edge.stop()
        self.edge.extra = ["--config", config]
        self.edge.start()
        self.wait_running(self.edge, "cfg")
        publish(self.edge.port, "c-out", range(20))
        self.assertEqual(self.assert_all_arrived(range(20), drain(self.centre.port, "c-in", 20)), 0)


class ExactlyOnceWithADedupQueue(ShovelCase):
    """A dedup queue at the destination, keyed on message_id, drops what a break sends twice."""

    def test_killing_the_edge_leaves_one_copy_of_each(self):
        centre, edge = Warren(), Warren()
        try:
            connection, ch = channel(centre.port)
            ch.queue_declare("once", durable=True, arguments={"x-message-deduplication": True})
            connection.close()
            name = unique("once")
            self.declare_shovel(edge, name, {"src-uri": "amqp://", "src-queue": "outbox",
                                             "dest-uri": f"amqp://127.0.0.1:{centre.port}", "dest-queue": "once",
                                             "reconnect-delay": 0.5})
            publish(edge.port, "outbox", range(3000))
            wait_for("some forwarding", lambda: self.shovel_status(edge, name)["forwarded"] > 200)
            edge.kill()
            edge.start()
            received = drain(centre.port, "once", 3000)
            self.assertEqual(self.assert_all_arrived(range(3000), received), 0)
        finally:
            edge.close()
            centre.close()


class ABacklogWhileTheUpstreamIsDown(ShovelCase):
    def test_100000_messages_wait_with_flat_memory_then_drain(self):
        centre, edge = Warren(), Warren()
        try:
            proxy = TcpProxy(centre.port)
            proxy.refuse()
            name = unique("backlog")
            self.declare_shovel(edge, name, {"src-uri": "amqp://", "src-queue": "outbox",
                                             "dest-uri": f"amqp://127.0.0.1:{proxy.port}", "dest-queue": "inbox",
                                             "reconnect-delay": 0.5})
            publish_batches(edge.port, "outbox", range(10_000))
            baseline = rss_kib(edge.proc.pid)
            publish_batches(edge.port, "outbox", range(10_000, 100_000))
            grown = rss_kib(edge.proc.pid) - baseline
            print(f"\n  RSS {baseline} KiB with 10,000 waiting, +{grown} KiB with 100,000", file=sys.stderr)
            # The bodies live in LMDB, not on the heap: 90,000 more may not cost 45 bytes each.
            # (ASan holds freed memory in quarantine, so its builds only report the figure.)
            if os.environ.get("WARREN_SANITIZED") != "1":
                self.assertLess(grown, 4 * 1024)
            self.assertEqual(self.shovel_status(edge, name)["pending"], 100_000)
            proxy.open()
            received = drain(centre.port, "inbox", 100_000, timeout=300)
            self.assertEqual(self.assert_all_arrived(range(100_000), received), 0)
            proxy.close()
        finally:
            edge.close()
            centre.close()


def publish_batches(port, queue, ids, batch=1000):
    """Fast publishing with the same guarantee as confirms: each batch is one transaction,
    and tx.commit-ok means every message of it is stored."""
    connection, ch = channel(port)
    ch.tx_select()
    for n, i in enumerate(ids, 1):
        ch.basic_publish("", queue, b"x" * 200, pika.BasicProperties(message_id=str(i), delivery_mode=2))
        if n % batch == 0:
            ch.tx_commit()
    ch.tx_commit()
    connection.close()


def rss_kib(pid):
    """Anonymous resident memory: what a backlog would grow if it were kept on the heap."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):  # the heap; LMDB's mapped file pages are not memory it keeps
                return int(line.split()[1])
    return 0


# ---- upstream: RabbitMQ ---------------------------------------------------------------------

rabbit = None


def setUpModule():
    global rabbit
    if scripts_dir():
        rabbit = RabbitNode(plugins=("rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management"))


def tearDownModule():
    if rabbit:
        rabbit.close()


def needs_rabbit(case):
    return unittest.skipUnless(scripts_dir(), "no RabbitMQ here (scripts/setup.sh unpacks one)")(case)


@needs_rabbit
class WithRabbitMQ(ShovelCase):
    def setUp(self):
        self.edge = Warren()
        self.rabbit_uri = f"amqp://guest:guest@127.0.0.1:{rabbit.port}/%2F?heartbeat=2&connection_timeout=3000"

    def tearDown(self):
        self.edge.close()

    def test_uplink_across_rabbitmq_stopped_and_started(self):
        queue = unique("uplink")
        self.declare_shovel(self.edge, queue, {"src-uri": "amqp://", "src-queue": "outbox", "dest-uri": self.rabbit_uri,
                                               "dest-queue": queue, "reconnect-delay": 0.5,
                                               "add-forward-headers": True})
        self.wait_running(self.edge, queue)
        publisher = Publisher(self.edge.port, "outbox", range(3000))
        wait_for("some forwarding", lambda: self.shovel_status(self.edge, queue)["forwarded"] > 300)
        rabbit.stop()
        self.assertEqual(publisher.confirmed(), list(range(3000)), publisher.error)
        self.assertEqual(self.shovel_status(self.edge, queue)["state"], "terminated")
        rabbit.start()
        received = drain(rabbit.port, queue, 3000)
        self.assert_all_arrived(range(3000), received)

    def test_properties_and_x_shovelled_as_rabbitmq_writes_them(self):
        queue = unique("props")
        self.declare_shovel(self.edge, queue, {"src-uri": "amqp://", "src-queue": "props-out",
                                               "dest-uri": self.rabbit_uri, "dest-queue": queue,
                                               "add-forward-headers": True})
        self.wait_running(self.edge, queue)
        connection, ch = channel(self.edge.port)
        ch.confirm_delivery()
        ch.basic_publish("", "props-out", b"hello", pika.BasicProperties(
            message_id="m1", correlation_id="c1", timestamp=12345, delivery_mode=2, priority=3,
            content_type="text/plain", headers={"a": 1, "b": "two"}))
        connection.close()
        connection, ch = channel(rabbit.port)
        method, properties, body = wait_for("the message", lambda: (m := ch.basic_get(queue, auto_ack=True))[0] and m)
        connection.close()
        self.assertEqual(body, b"hello")
        self.assertEqual((properties.message_id, properties.correlation_id, properties.timestamp,
                          properties.delivery_mode, properties.priority, properties.content_type),
                         ("m1", "c1", 12345, 2, 3, "text/plain"))
        self.assertEqual((properties.headers["a"], properties.headers["b"]), (1, "two"))
        [entry] = properties.headers["x-shovelled"]
        self.assertEqual(entry, {"shovelled-by": "warren@localhost", "shovel-type": "dynamic", "shovel-name": queue,
                                 "shovel-vhost": "/", "src-uri": "amqp://",
                                 "dest-uri": f"amqp://127.0.0.1:{rabbit.port}/%2F", "src-queue": "props-out",
                                 "dest-queue": queue})

    def test_a_queue_at_its_limit_with_reject_publish_loses_nothing(self):
        queue = unique("full")
        connection, ch = channel(rabbit.port)
        ch.queue_declare(queue, durable=True, arguments={"x-max-length": 100, "x-overflow": "reject-publish"})
        connection.close()
        self.declare_shovel(self.edge, queue, {"src-uri": "amqp://", "src-queue": "to-full", "dest-uri": self.rabbit_uri,
                                               "dest-queue": queue, "reconnect-delay": 0.3})
        publish(self.edge.port, "to-full", range(1000))
        status = wait_for("the nack noticed",
                          lambda: "nack" in ((s := self.shovel_status(self.edge, queue)).get("reason") or "") and s)
        self.assertLessEqual(status["forwarded"], 100)
        received = drain(rabbit.port, queue, 1000)  # consuming makes room, the shovel retries
        duplicates = self.assert_all_arrived(range(1000), received, keep="last")
        self.assertLessEqual(duplicates, self.shovel_status(self.edge, queue)["resent"])

    def test_downlink_commands_across_a_cut_link_rabbitmqs_restart_and_the_edge_killed(self):
        queue = unique("commands")
        connection, ch = channel(rabbit.port)
        ch.queue_declare(queue, durable=True)
        connection.close()
        proxy = TcpProxy(rabbit.port)
        name = unique("down")
        self.declare_shovel(self.edge, name, {
            "src-uri": f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F?heartbeat=2&connection_timeout=3000",
            "src-queue": queue, "dest-uri": "amqp://", "dest-queue": "commands", "reconnect-delay": 0.5,
            "src-prefetch-count": 50})
        self.wait_running(self.edge, name)
        forwarded = lambda: self.shovel_status(self.edge, name)["forwarded"]  # noqa: E731
        publish(rabbit.port, queue, range(1000))
        wait_for("some commands down", lambda: forwarded() > 100)
        proxy.cut()
        wait_for("more commands down", lambda: forwarded() > 600)
        rabbit.stop()
        rabbit.start()
        publish(rabbit.port, queue, range(1000, 2000))
        wait_for("more commands down", lambda: forwarded() > 1200)
        self.edge.kill()
        publish(rabbit.port, queue, range(2000, 3000))
        self.edge.start()
        received = drain(self.edge.port, "commands", 3000)
        self.assert_all_arrived(range(3000), received)
        self.assertGreaterEqual(proxy.accepted, 3)
        proxy.close()

    def test_a_blocked_upstream_pauses_the_shovel(self):
        queue = unique("blocked")
        self.declare_shovel(self.edge, queue, {"src-uri": "amqp://", "src-queue": "to-blocked",
                                               "dest-uri": self.rabbit_uri, "dest-queue": queue})
        self.wait_running(self.edge, queue)
        alarm = rabbit.ctl("set_vm_memory_high_watermark", "absolute", "1")  # every publisher blocked
        self.assertEqual(alarm.returncode, 0, alarm.stderr)
        try:
            # RabbitMQ blocks a connection when it next publishes; the edge confirms them all the same.
            publish(self.edge.port, "to-blocked", range(200))
            status = wait_for("connection.blocked", lambda: (s := self.shovel_status(self.edge, queue))["blocked"] and s)
            self.assertEqual(status["state"], "running")
            self.assertLess(status["forwarded"], 200)
        finally:
            rabbit.ctl("set_vm_memory_high_watermark", "0.4")
        received = drain(rabbit.port, queue, 200)
        self.assertEqual(self.assert_all_arrived(range(200), received), 0)
        self.assertFalse(self.shovel_status(self.edge, queue)["blocked"])

    def test_the_shovel_api_answers_as_rabbitmqs_plugin_does(self):
        """The same requests to RabbitMQ's shovel plugin and to warrend: status codes and texts."""
        valid = {"src-uri": "amqp://", "src-queue": unique("api-src"), "dest-uri": "amqp://", "dest-queue": unique("api-dst")}
        cases = [
            ({"src-queue": "a", "dest-uri": "amqp://", "dest-queue": "b"}, 'Key "src-uri" not found in'),
            ({**valid, "src-exchange": "x"}, "Cannot specify 'src-exchange' and 'src-queue'"),
            ({"src-uri": "amqp://", "dest-uri": "amqp://", "dest-queue": "b"}, "Must specify 'src-exchange' or 'src-queue'"),
            ({**valid, "src-uri": "http://x"}, '"http://x" not a valid URI'),
            ({**valid, "ack-mode": "sometimes"}, "ack-mode should be one of"),
            ({**valid, "bogus": 1}, "Unrecognised terms"),
            ({**valid, "src-prefetch-count": "x"}, "src-prefetch-count should be a number"),
            ({**valid, "src-delete-after": "sometime"}, "src-delete-after should be a number greater than or equal to 0"),
        ]
        for port in (rabbit.mgmt_port, self.edge.mgmt_port):
            name = unique("api")
            for value, text in cases:
                status, body = http(port, "PUT", f"/api/parameters/shovel/%2F/{name}", {"value": value})
                self.assertEqual(status, 400, (port, value))
                self.assertIn(text, body["reason"].replace("&lt;&lt;", "").replace("&gt;&gt;", "").replace("&quot;", '"'))
            self.assertEqual(http(port, "PUT", f"/api/parameters/shovel/%2F/{name}", {"value": valid})[0], 201)
            status, parameter = http(port, "GET", f"/api/parameters/shovel/%2F/{name}")
            self.assertEqual((status, parameter["component"], parameter["name"], parameter["vhost"], parameter["value"]),
                             (200, "shovel", name, "/", valid))
            status, listing = http(port, "GET", "/api/parameters/shovel")
            self.assertIn(name, [p["name"] for p in listing])
            shown = wait_for("the shovel running", lambda: [s for s in http(port, "GET", "/api/shovels")[1]
                                                          if s["name"] == name and s["state"] == "running"])
            for key in ("node", "timestamp", "name", "vhost", "type", "state", "src_uri", "src_protocol",
                        "dest_protocol", "dest_uri", "src_queue", "dest_queue"):
                self.assertIn(key, shown[0], port)
            self.assertEqual((shown[0]["type"], shown[0]["src_queue"]), ("dynamic", valid["src-queue"]))
            self.assertEqual(http(port, "DELETE", f"/api/parameters/shovel/%2F/{name}")[0], 204)
            self.assertEqual(http(port, "DELETE", f"/api/parameters/shovel/%2F/{name}")[0], 404)
            self.assertEqual(http(port, "GET", f"/api/parameters/shovel/%2F/{name}")[0], 404)


# ---- Warren's operation of shovels ----------------------------------------------------------


class Operation(ShovelCase):
    def setUp(self):
        self.edge = Warren()

    def tearDown(self):
        self.edge.close()

    def test_warrenctl_metrics_definitions_and_a_configured_shovel(self):
        name = unique("ops")
        self.declare_shovel(self.edge, name, {"src-uri": "amqp://", "src-queue": "ops-in", "dest-uri": "amqp://",
                                              "dest-queue": "ops-out"})
        self.wait_running(self.edge, name)
        publish(self.edge.port, "ops-in", range(10))
        wait_for("forwarding", lambda: self.shovel_status(self.edge, name)["forwarded"] == 10)
        ctl = subprocess.run([os.environ["WARRENCTL"], "--url", f"http://127.0.0.1:{self.edge.mgmt_port}",
                              "shovel_status", "--formatter", "json"], capture_output=True, text=True)
        self.assertEqual(ctl.returncode, 0, ctl.stderr)
        [row] = [r for r in json.loads(ctl.stdout) if r["name"] == name]
        self.assertEqual((row["state"], row["forwarded"]), ("running", 10))
        # Prometheus text from a warrend with its metrics port on.
        status, definitions = self.edge.api("GET", "/api/definitions")
        [parameter] = [p for p in definitions["parameters"] if p["name"] == name]
        self.assertEqual(parameter["component"], "shovel")
        self.assertEqual(self.edge.api("DELETE", f"/api/parameters/shovel/%2F/{name}")[0], 204)
        self.assertEqual(self.edge.api("POST", "/api/definitions", {"parameters": [parameter]})[0], 204)
        self.wait_running(self.edge, name)  # imported back
        restart = subprocess.run([os.environ["WARRENCTL"], "--url", f"http://127.0.0.1:{self.edge.mgmt_port}",
                                  "delete_shovel", name], capture_output=True, text=True)
        self.assertEqual(restart.returncode, 0, restart.stderr)
        self.assertIsNone(self.shovel_status(self.edge, name))

    def test_deleting_a_vhost_deletes_its_shovels(self):
        vhost = unique("vh")
        self.assertEqual(self.edge.api("PUT", f"/api/vhosts/{vhost}")[0], 201)
        status, _ = self.edge.api("PUT", f"/api/parameters/shovel/{vhost}/s",
                                  {"value": {"src-uri": "amqp://", "src-queue": "a", "dest-uri": "amqp://",
                                             "dest-queue": "b"}})
        self.assertEqual(status, 201)
        self.assertEqual([s["vhost"] for s in self.edge.api("GET", "/api/shovels")[1]], [vhost])
        self.assertEqual(self.edge.api("DELETE", f"/api/vhosts/{vhost}")[0], 204)
        self.assertEqual(self.edge.api("GET", "/api/shovels")[1], [])
        self.edge.stop()
        self.edge.start()  # and it stays deleted
        self.assertEqual(self.edge.api("GET", "/api/shovels")[1], [])

    def test_metrics_name_each_shovel(self):
        metrics_port = free_ports(1)[0]
        node = Warren("--shovel", 'cfg {"src-uri": "amqp://", "src-queue": "m-in", "dest-uri": "amqp://", '
                                  '"dest-queue": "m-out"}')
        node.stop()  # restarted with a metrics port (the configured shovel is stored and comes back too)
        node.extra = ["--prometheus-port", str(metrics_port)]
        node.start()
        try:
            self.wait_running(node, "cfg")
            publish(node.port, "m-in", range(5))
            wait_for("forwarding", lambda: self.shovel_status(node, "cfg")["forwarded"] == 5)
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=30) as r:
                text = r.read().decode()
            self.assertIn('warren_shovel_forwarded_total{vhost="/",shovel="cfg"} 5', text)
            self.assertIn('warren_shovel_state{vhost="/",shovel="cfg",state="running"} 1', text)
        finally:
            node.close()

    def test_a_bad_shovel_in_the_config_stops_warrend_with_a_clear_message(self):
        bad = subprocess.run([os.environ["WARREND"], "--port", "0", "--management-port", "0", "--prometheus-port", "0",
                              "--durability", "memory", "--shovel", 'x {"src-queue": "a", "dest-uri": "amqp://"}'],
                             capture_output=True, text=True, timeout=60)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn('Key "src-uri" not found in x', bad.stderr)


if __name__ == "__main__":
    unittest.main()
