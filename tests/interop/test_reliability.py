"""Dead-lettering, TTL, length limits and delivery limits through python3-pika.

The RabbitMQ features are checked the same way against RabbitMQ (AMQP_PORT=5672) and
Warren; Warren's own extensions (delayed retry, deduplication, delivery limits on classic
queues) are skipped against an external broker.
"""
import threading
import time
import unittest

import pika
import pika.exceptions

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)


def connect():
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))


class Reliability(unittest.TestCase):
    def setUp(self):
        self.conn = connect()
        self.ch = self.conn.channel()
        self.queues = []

    def tearDown(self):
        if self.conn.is_open:
            self.conn.close()
        cleanup = connect()
        ch = cleanup.channel()
        for q in self.queues:
            ch.queue_delete(q)
        cleanup.close()

    def declare(self, prefix, **kwargs):
        name = unique(prefix)
        self.queues.append(name)
        self.ch.queue_declare(name, **kwargs)
        return name

    def with_dlq(self, prefix, arguments, **kwargs):
        dead = self.declare("dead")
        args = dict(arguments)
        args.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
        return self.declare(prefix, arguments=args, **kwargs), dead

    def next_message(self, queue, timeout=10):
        """The next message of `queue`, waiting for it through a consumer."""
        got = []

        def on_message(ch, method, props, body):
            got.append((method, props, body))
            ch.basic_ack(method.delivery_tag)
            ch.stop_consuming()

        tag = self.ch.basic_consume(queue, on_message)
        timer = self.conn.call_later(timeout, self.ch.stop_consuming)
        self.ch.start_consuming()
        self.conn.remove_timeout(timer)
        if self.ch.is_open and tag in self.ch.consumer_tags:
            self.ch.basic_cancel(tag)
        self.assertTrue(got, f"nothing arrived in {queue} within {timeout} s")
        return got[0]

    def count(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count

    # ---- RabbitMQ's features ---------------------------------------------------------

    def test_queue_ttl_dead_letters_with_x_death(self):
        work, dead = self.with_dlq("ttl", {"x-message-ttl": 50})
        self.ch.basic_publish("", work, b"late", pika.BasicProperties(headers={"keep": "me"}))
        method, props, body = self.next_message(dead)
        self.assertEqual(body, b"late")
        self.assertEqual(method.routing_key, dead)
        self.assertEqual(props.headers["keep"], "me")
        (death,) = props.headers["x-death"]
        self.assertEqual(death["count"], 1)
        self.assertEqual(death["reason"], "expired")
        self.assertEqual(death["queue"], work)
        self.assertEqual(death["exchange"], "")
        self.assertEqual(death["routing-keys"], [work])
        self.assertIn("time", death)
        self.assertNotIn("original-expiration", death)
        self.assertEqual(props.headers["x-first-death-reason"], "expired")
        self.assertEqual(props.headers["x-first-death-queue"], work)
        self.assertEqual(self.count(work), 0)

    def test_message_expiration_is_kept_as_original_expiration(self):
        work, dead = self.with_dlq("exp", {})
        self.ch.basic_publish("", work, b"x", pika.BasicProperties(expiration="30"))
        _, props, _ = self.next_message(dead)
        self.assertIsNone(props.expiration)
        self.assertEqual(props.headers["x-death"][0]["original-expiration"], "30")

    def test_bad_expiration_closes_the_channel_with_406(self):
        q = self.declare("badexp")
        self.ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="1.5"))
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            self.ch.queue_declare(q, passive=True)
        self.assertEqual(e.exception.reply_code, 406)
        self.assertEqual(e.exception.reply_text,
                         "PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,\".5\"}")

    def test_repeated_deaths_count_up_in_one_entry(self):
        # A retry loop made of plain RabbitMQ parts: work rejects into a parking queue
        # whose TTL sends the message back to work.
        work = unique("loop-work")
        park = unique("loop-park")
        self.queues += [work, park]
        self.ch.queue_declare(work, arguments={"x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": park})
        self.ch.queue_declare(park, arguments={"x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": work,
                                               "x-message-ttl": 20})
        self.ch.basic_publish("", work, b"flaky")
        for attempt in range(3):
            method, props, _ = self._get_waiting(work)
            if attempt:
                deaths = props.headers["x-death"]
                self.assertEqual([(d["queue"], d["reason"]) for d in deaths],
                                 [(park, "expired"), (work, "rejected")])
                self.assertEqual(deaths[0]["count"], attempt)
                self.assertEqual(deaths[1]["count"], attempt)
                self.assertEqual(props.headers["x-first-death-queue"], work)
            self.ch.basic_reject(method.delivery_tag, requeue=False)

    def _get_waiting(self, queue, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            method, props, body = self.ch.basic_get(queue)
            if method:
                return method, props, body
            self.conn.sleep(0.005)
        self.fail(f"nothing arrived in {queue}")

    def test_expiry_back_into_its_own_queue_is_dropped(self):
        q = unique("selfdlx")
        self.queues.append(q)
        self.ch.queue_declare(q, arguments={"x-dead-letter-exchange": "", "x-message-ttl": 20})
        self.ch.basic_publish("", q, b"cycle")
        # Nothing announces a silent drop, so wait well past the TTL and look once (polling
        # the queue keeps RabbitMQ from expiring it).
        self.conn.sleep(0.5)
        self.assertEqual(self.count(q), 0)

    def test_drop_head_dead_letters_maxlen(self):
        work, dead = self.with_dlq("maxlen", {"x-max-length": 2})
        self.ch.confirm_delivery()
        for body in (b"0", b"1", b"2"):
            self.ch.basic_publish("", work, body)  # all acked
        self.assertEqual(self.count(work), 2)
        _, props, body = self.next_message(dead)
        self.assertEqual(body, b"0")
        self.assertEqual(props.headers["x-death"][0]["reason"], "maxlen")

    def test_reject_publish_nacks_and_reject_publish_dlx_dead_letters(self):
        full = self.declare("full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        dlx_full, dead = self.with_dlq("fulldlx", {"x-max-length-bytes": 5,
                                                   "x-overflow": "reject-publish-dlx"})
        self.ch.confirm_delivery()
        self.ch.basic_publish("", full, b"a")
        with self.assertRaises(pika.exceptions.NackError):
            self.ch.basic_publish("", full, b"b", mandatory=True)  # no return, only the nack
        self.ch.basic_publish("", dlx_full, b"abc")
        with self.assertRaises(pika.exceptions.NackError):
            self.ch.basic_publish("", dlx_full, b"def")
        self.assertEqual(self.count(full), 1)
        self.assertEqual(self.count(dlx_full), 1)
        _, props, body = self.next_message(dead)
        self.assertEqual(body, b"def")
        self.assertEqual(props.headers["x-death"][0]["reason"], "maxlen")

    def test_invalid_arguments_are_refused_with_rabbit_texts(self):
        for arg, value, why in [("x-message-ttl", -1, "{value_negative,-1}"),
                                ("x-expires", 0, "{value_zero,0}"),
                                ("x-overflow", "bogus", "invalid_overflow"),
                                ("x-max-length", "ten", '"expected integer, got longstr"')]:
            name = unique("badarg")
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
                self.ch.queue_declare(name, arguments={arg: value})
            self.assertEqual(e.exception.reply_code, 406)
            self.assertEqual(e.exception.reply_text,
                             f"PRECONDITION_FAILED - invalid arg '{arg}' for queue '{name}' "
                             f"in vhost '/': {why}")
            self.ch = self.conn.channel()

    def test_unused_queue_expires(self):
        name = unique("expires")
        self.ch.queue_declare(name, arguments={"x-expires": 100})
        # Any look at the queue (a passive declare too) is a use that restarts its clock, so
        # the test waits past it and looks once.
        self.conn.sleep(0.6)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            self.ch.queue_declare(name, passive=True)
        self.assertEqual(e.exception.reply_code, 404)

    def test_quorum_delivery_limit_counts_returns_then_dead_letters(self):
        dead = self.declare("qdead", durable=True)
        work = self.declare("quorum", durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 2,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
        self.ch.basic_publish("", work, b"poison", pika.BasicProperties(delivery_mode=2))
        counts = []
        for _ in range(3):
            method, props, _ = self._get_waiting(work)
            counts.append((props.headers or {}).get("x-delivery-count"))
            self.assertEqual(method.redelivered, bool(counts[-1]))
            self.ch.basic_nack(method.delivery_tag, requeue=True)
        self.assertEqual(counts[1:], [1, 2])
        _, props, body = self.next_message(dead)
        self.assertEqual(body, b"poison")
        self.assertEqual(props.headers["x-death"][0]["reason"], "delivery_limit")
        self.assertEqual(self.count(work), 0)


class WarrenExtensions(unittest.TestCase):
    """Warren's extensions, through the same client: queue arguments, nothing else."""

    def setUp(self):
        if broker().external:
            self.skipTest("a Warren extension; RabbitMQ has no such argument")
        self.conn = connect()
        self.ch = self.conn.channel()
        self.queues = []

    tearDown = Reliability.tearDown
    declare = Reliability.declare
    with_dlq = Reliability.with_dlq
    next_message = Reliability.next_message
    count = Reliability.count

    def test_retry_with_backoff_then_dead_letter(self):
        work, dead = self.with_dlq("retry", {"x-delivery-limit": 2,
                                             "x-requeue-delay": {"base": 100, "factor": 2}})
        self.ch.basic_publish("", work, b"job")
        seen = []
        nacked_at = None
        for _ in range(3):
            method, props, _ = self.next_unacked(work)
            if nacked_at is not None:
                seen.append(time.monotonic() - nacked_at)
            self.ch.basic_nack(method.delivery_tag, requeue=True)
            nacked_at = time.monotonic()
        self.assertGreaterEqual(seen[0], 0.09)
        self.assertGreaterEqual(seen[1], 0.19)  # the backoff doubled
        _, props, _ = self.next_message(dead)
        self.assertEqual(props.headers["x-death"][0]["reason"], "delivery_limit")

    def next_unacked(self, queue, timeout=10):
        got = []

        def on_message(ch, method, props, body):
            got.append((method, props, body))
            ch.stop_consuming()

        tag = self.ch.basic_consume(queue, on_message)
        timer = self.conn.call_later(timeout, self.ch.stop_consuming)
        self.ch.start_consuming()
        self.conn.remove_timeout(timer)
        self.ch.basic_cancel(tag)
        self.assertTrue(got)
        return got[0]

    def test_duplicate_publishes_are_acked_but_not_enqueued(self):
        q = self.declare("dedup", durable=True, arguments={"x-message-deduplication": True})
        self.ch.confirm_delivery()
        for _ in range(3):  # every one is acked: a retrying producer is never stuck
            self.ch.basic_publish("", q, b"order", pika.BasicProperties(
                delivery_mode=2, message_id="order-42"))
        self.ch.basic_publish("", q, b"plugin style", pika.BasicProperties(
            headers={"x-deduplication-header": "k1"}))
        self.ch.basic_publish("", q, b"plugin style", pika.BasicProperties(
            headers={"x-deduplication-header": "k1"}))
        self.assertEqual(self.count(q), 2)
        broker().restart()
        self.conn = connect()
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.ch.basic_publish("", q, b"order", pika.BasicProperties(delivery_mode=2,
                                                                  message_id="order-42"))
        self.assertEqual(self.count(q), 1)  # the transient one is gone; no duplicate added


if __name__ == "__main__":
    unittest.main()
