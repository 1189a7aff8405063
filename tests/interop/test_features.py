"""RabbitMQ features real clients rely on: priority queues, single active consumer, consumer
priorities, direct reply-to, idempotent unbinding, coalesced confirms, the close handshake
and the capabilities table. Each passes against RabbitMQ 3.10 (AMQP_PORT=5672) and warrend."""
import asyncio
import os
import struct
import subprocess
import sys
import threading
import unittest

import amqp
import aio_pika
import kombu
import pika

import rawamqp
from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))
REPLY_TO = "amq.rabbitmq.reply-to"


def connect():
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))


def drain(ch, queue):
    bodies = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body.decode())


def settle(conn):
    """A round trip on the connection: everything sent before it has been handled."""
    conn.channel().close()


class PriorityQueues(unittest.TestCase):
    def test_pika_higher_first_fifo_within_a_priority_maximum_caps_above(self):
        conn = connect()
        ch = conn.channel()
        ch.confirm_delivery()
        queue = unique("prio")
        ch.queue_declare(queue, auto_delete=False, arguments={"x-max-priority": 3})
        for i, p in enumerate([None, 9, 3, 1, 0, 2, None, 200]):
            ch.basic_publish("", queue, str(i), pika.BasicProperties(priority=p))
        self.assertEqual(drain(ch, queue), ["1", "2", "7", "5", "3", "0", "4", "6"])
        ch.queue_delete(queue)
        conn.close()

    def test_pika_requeue_keeps_the_place_and_drop_head_drops_the_highest(self):
        conn = connect()
        ch = conn.channel()
        ch.confirm_delivery()
        queue = unique("prio-requeue")
        ch.queue_declare(queue, arguments={"x-max-priority": 3})
        for body, p in [("a1", 1), ("b1", 1), ("c3", 3), ("d0", 0)]:
            ch.basic_publish("", queue, body, pika.BasicProperties(priority=p))
        first, second = ch.basic_get(queue), ch.basic_get(queue)
        self.assertEqual([first[2], second[2]], [b"c3", b"a1"])
        ch.basic_nack(first[0].delivery_tag, requeue=True)
        ch.basic_nack(second[0].delivery_tag, requeue=True)
        self.assertEqual(drain(ch, queue), ["c3", "a1", "b1", "d0"])
        ch.queue_delete(queue)

        limited = unique("prio-drop")
        ch.queue_declare(limited, arguments={"x-max-priority": 5, "x-max-length": 3})
        for i, p in enumerate([0, 5, 0, 5, 1]):
            ch.basic_publish("", limited, str(i), pika.BasicProperties(priority=p))
        self.assertEqual(drain(ch, limited), ["4", "0", "2"])
        ch.queue_delete(limited)
        conn.close()

    def test_kombu_task_priorities(self):
        queue = unique("kombu-prio")
        with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{broker().port}//") as conn:
            q = kombu.Queue(queue, kombu.Exchange(queue, "direct"), routing_key=queue, max_priority=9)
            with conn.Producer() as producer:
                for i, p in enumerate([1, 9, 5, 9, 0]):
                    producer.publish({"n": i}, exchange=q.exchange, routing_key=queue, declare=[q], priority=p)
            got = []
            with conn.SimpleQueue(q) as simple:
                for _ in range(5):
                    message = simple.get(timeout=10)
                    got.append(message.payload["n"])
                    message.ack()
            self.assertEqual(got, [1, 3, 2, 0, 4])
            q(conn.default_channel).delete()


class SingleActiveConsumer(unittest.TestCase):
    def test_pika_the_next_consumer_takes_over_with_the_first_ones_unacked_first(self):
        queue = unique("sac")
        first_conn, second_conn = connect(), connect()
        first, second = first_conn.channel(), second_conn.channel()
        first.queue_declare(queue, arguments={"x-single-active-consumer": True})
        first.basic_qos(prefetch_count=2)
        got_first, got_second = [], []
        first.basic_consume(queue, lambda ch, m, p, b: got_first.append(b.decode()))
        second.basic_consume(queue, lambda ch, m, p, b: (got_second.append(b.decode()),
                                                        ch.basic_ack(m.delivery_tag)))
        self.assertEqual(first.queue_declare(queue, passive=True).method.consumer_count, 2)
        for i in range(5):
            first.basic_publish("", queue, str(i))
        while len(got_first) < 2:
            first_conn.process_data_events(time_limit=1)
        settle(second_conn)
        second_conn.process_data_events(time_limit=0)
        self.assertEqual(got_second, [], "an inactive consumer received messages")
        first_conn.close()  # two unacknowledged: requeued, then the second consumer is active
        while len(got_second) < 5:
            second_conn.process_data_events(time_limit=1)
        self.assertEqual(got_first, ["0", "1"])
        self.assertEqual(got_second, ["0", "1", "2", "3", "4"])
        second.queue_delete(queue)
        second_conn.close()


class ConsumerPriorities(unittest.TestCase):
    def test_pika_the_highest_with_room_first_then_lower_ones(self):
        queue = unique("cprio")
        low_conn, high_conn = connect(), connect()
        low, high = low_conn.channel(), high_conn.channel()
        low.queue_declare(queue)
        high.basic_qos(prefetch_count=3)
        to_low, to_high = [], []
        high.basic_consume(queue, lambda ch, m, p, b: to_high.append(b.decode()), arguments={"x-priority": 10})
        low.basic_consume(queue, lambda ch, m, p, b: to_low.append(b.decode()), arguments={"x-priority": 1})
        for i in range(5):
            low.basic_publish("", queue, str(i))
        while len(to_low) < 2:
            low_conn.process_data_events(time_limit=1)
        while len(to_high) < 3:
            high_conn.process_data_events(time_limit=1)
        self.assertEqual(to_high, ["0", "1", "2"])
        self.assertEqual(to_low, ["3", "4"])
        low.queue_delete(queue)
        low_conn.close()
        high_conn.close()


class DirectReplyTo(unittest.TestCase):
    def test_pika_rpc_round_trip_and_rabbits_errors(self):
        conn = connect()
        client = conn.channel()
        replies = []
        tag = client.basic_consume(REPLY_TO, lambda ch, m, p, b: replies.append((m, p, b)), auto_ack=True)
        rpc_queue = unique("rpc")
        client.queue_declare(rpc_queue, auto_delete=True)
        client.basic_publish("", rpc_queue, "ping", pika.BasicProperties(reply_to=REPLY_TO, correlation_id="7"))
        server_conn = connect()
        server = server_conn.channel()
        method = None
        while method is None:
            method, props, body = server.basic_get(rpc_queue, auto_ack=True)
        self.assertTrue(props.reply_to.startswith(REPLY_TO + "."), props.reply_to)
        self.assertEqual(server.queue_declare(props.reply_to, passive=True).method.consumer_count, 1)
        server.basic_publish("", props.reply_to, "pong", pika.BasicProperties(correlation_id="7"))
        while not replies:
            conn.process_data_events(time_limit=1)
        m, p, b = replies[0]
        self.assertEqual((b, p.correlation_id, m.consumer_tag, m.routing_key), (b"pong", "7", tag, props.reply_to))

        for label, action, text in [
            ("ack mode", lambda ch: ch.basic_consume(REPLY_TO, lambda *a: None), "reply consumer cannot acknowledge"),
            ("no consumer", lambda ch: (ch.basic_publish("", rpc_queue, "x", pika.BasicProperties(reply_to=REPLY_TO)),
                                        ch.queue_declare("", exclusive=True)), "fast reply consumer does not exist"),
        ]:
            ch = server_conn.channel()
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker, msg=label) as caught:
                action(ch)
            self.assertEqual(caught.exception.args, (406, "PRECONDITION_FAILED - " + text))
        reply_to = props.reply_to
        conn.close()  # the requester is gone: a mandatory reply comes back
        returned = []
        ch = server_conn.channel()
        ch.add_on_return_callback(lambda c, m, p, b: returned.append(m.reply_text))
        ch.basic_publish("", reply_to, "late", mandatory=True)
        settle(server_conn)
        server_conn.process_data_events(time_limit=0)
        self.assertEqual(returned, ["NO_ROUTE"])
        server_conn.close()

    def test_py_amqp_rpc_round_trip(self):
        with amqp.Connection(f"127.0.0.1:{broker().port}") as conn:
            client, server = conn.channel(), conn.channel()
            rpc_queue = unique("rpc-amqp")
            server.queue_declare(rpc_queue, exclusive=True)
            replies = []
            client.basic_consume(REPLY_TO, no_ack=True, callback=replies.append)
            client.basic_publish(amqp.Message("2+3", reply_to=REPLY_TO, correlation_id="a"), "", rpc_queue)
            request = None
            while request is None:
                request = server.basic_get(rpc_queue, no_ack=True)
            server.basic_publish(amqp.Message("5", correlation_id="a"), "", request.properties["reply_to"])
            while not replies:
                conn.drain_events(timeout=5)
            self.assertEqual((replies[0].body, replies[0].properties["correlation_id"]), ("5", "a"))

    def test_celery_rpc_result_backend(self):
        queue = unique("celery-rpc")
        env = dict(os.environ, CELERY_PORT=str(broker().port), CELERY_QUEUE=queue, PYTHONPATH=HERE)
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_rpc_app", "worker", "--pool=solo", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-l", "warning"],
            env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            code = ("import celery_rpc_app as a; r=[a.add.delay(i, i) for i in range(5)]; "
                    "print([x.get(timeout=60) for x in r])")
            result = subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE, capture_output=True, text=True,
                                    timeout=120)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertEqual(result.stdout.strip(), "[0, 2, 4, 6, 8]")
        finally:
            worker.terminate()
            worker.wait(timeout=20)


class Unbind(unittest.TestCase):
    def test_pika_unbind_of_what_is_gone_is_ok(self):
        conn = connect()
        ch = conn.channel()
        exchange, queue = unique("ub-x"), unique("ub-q")
        ch.exchange_declare(exchange, "direct", auto_delete=True)
        ch.queue_declare(queue, auto_delete=True)
        for args in [(queue, exchange, "never-bound"), (unique("no-queue"), exchange, "k"),
                     (queue, unique("no-exchange"), "k")]:
            ch.queue_unbind(*args)
        ch.exchange_unbind(exchange, unique("no-source"), "k")
        ch.exchange_unbind(unique("no-destination"), exchange, "k")
        self.assertTrue(ch.is_open)
        ch.queue_delete(queue)
        ch.exchange_delete(exchange)
        conn.close()

    def test_aio_pika_rpc_pattern_closes_after_its_queue_went(self):
        async def main():
            conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{broker().port}/")
            channel = await conn.channel()
            rpc = await aio_pika.patterns.RPC.create(channel)

            async def double(*, x):
                return 2 * x

            name = unique("double")
            await rpc.register(name, double, auto_delete=True)
            self.assertEqual(await rpc.call(name, kwargs={"x": 21}), 42)
            await rpc.close()  # unbinds what auto-delete may already have removed
            await conn.close()

        asyncio.run(main())


class Confirms(unittest.TestCase):
    def confirms_of_a_burst(self, durable):
        """Publishes 2,000 persistent messages at once in confirm mode; returns how many
        basic.ack frames had multiple set, checking the order rules on the way."""
        raw = rawamqp.Raw(broker().port)
        raw.handshake()
        raw.open_channel(1)
        raw.send(rawamqp.method(1, 85, 10, b"\x00"))  # confirm.select
        self.assertEqual(raw.read_method()[:3], (1, 85, 11))
        queue = unique("confirms")
        flags = b"\x02" if durable else b"\x00"
        raw.send(rawamqp.method(1, 50, 10, b"\x00\x00" + rawamqp.shortstr(queue) + flags + rawamqp.table()))
        self.assertEqual(raw.read_method()[:3], (1, 50, 11))
        count = 2000
        props = struct.pack(">HHQH", 60, 0, 1, 0x1000) + b"\x02"  # content header: persistent
        publish = (rawamqp.method(1, 60, 40, b"\x00\x00" + rawamqp.shortstr("") + rawamqp.shortstr(queue) + b"\x00")
                   + rawamqp.frame(2, 1, props) + rawamqp.frame(3, 1, b"x"))
        raw.send(publish * count)  # all at once: many land in one commit
        confirmed, multiples = 0, 0
        while confirmed < count:
            channel, class_id, method_id, args = raw.read_method()
            self.assertEqual((class_id, method_id), (60, 80), "expected basic.ack")
            tag, multiple = struct.unpack(">QB", args[:9])
            self.assertGreater(tag, confirmed, "confirms went backwards")
            multiples += multiple & 1
            self.assertTrue(multiple & 1 or tag == confirmed + 1, "a single ack skipped tags")
            confirmed = tag
        raw.send(rawamqp.method(1, 50, 40, b"\x00\x00" + rawamqp.shortstr(queue) + b"\x00"))
        raw.close()
        return multiples

    def test_publishes_made_durable_together_are_confirmed_with_multiple(self):
        self.assertGreater(self.confirms_of_a_burst(durable=True), 0, "no ack covered several publishes")

    def test_publishes_to_a_transient_queue_are_confirmed_with_multiple_too(self):
        self.assertGreater(self.confirms_of_a_burst(durable=False), 0, "no ack covered several publishes")


class CloseHandshake(unittest.TestCase):
    def test_amqplib_publish_then_close_completes_without_a_reset(self):
        for attempt in range(3):
            result = subprocess.run(["node", os.path.join(HERE, "node", "publish_then_close.js"), str(broker().port),
                                     unique("close")], capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("closed cleanly", result.stdout)

    def test_after_the_servers_close_frames_are_discarded_until_close_ok(self):
        raw = rawamqp.Raw(broker().port)
        raw.handshake()
        raw.open_channel(1)
        raw.send(rawamqp.method(1, 50, 10, b"\x00\x00" + rawamqp.shortstr("amq.bad") + b"\x00" + rawamqp.table()))
        channel, class_id, method_id, args = raw.read_method()
        self.assertEqual((channel, class_id, method_id), (1, 20, 40), "expected channel.close")
        # Still in flight from the client: ignored, not answered with a connection error.
        raw.send(rawamqp.method(1, 50, 10, b"\x00\x00" + rawamqp.shortstr("q") + b"\x00" + rawamqp.table()))
        raw.send(rawamqp.method(1, 20, 41))  # channel.close-ok
        self.assertEqual(raw.open_channel(1)[:3], (1, 20, 11))  # the channel number is free again
        raw.send(rawamqp.method(0, 10, 50, struct.pack(">H", 200) + rawamqp.shortstr("bye") + b"\x00" * 4))
        self.assertEqual(raw.read_method()[:3], (0, 10, 51))
        raw.close()


class Capabilities(unittest.TestCase):
    def test_every_capability_rabbitmq_3_10_advertises(self):
        conn = connect()
        caps = conn._impl.server_capabilities
        conn.close()
        self.assertEqual(caps, {name: True for name in [
            "publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
            "connection.blocked", "consumer_priorities", "authentication_failure_close", "per_consumer_qos",
            "direct_reply_to"]})


if __name__ == "__main__":
    unittest.main()
