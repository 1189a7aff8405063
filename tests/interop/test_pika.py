"""python3-pika, blocking and asynchronous adapters, against the broker under test."""
import threading
import unittest

import pika
import pika.exceptions

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)



def params():
    return pika.ConnectionParameters("127.0.0.1", broker().port, heartbeat=30)


def persistent(message_id=None):
    return pika.BasicProperties(delivery_mode=2, message_id=message_id)


class Blocking(unittest.TestCase):
    def setUp(self):
        self.conn = pika.BlockingConnection(params())
        self.ch = self.conn.channel()
        self.queue = unique("pika")
        self.ch.queue_declare(self.queue, durable=True)

    def tearDown(self):
        if self.conn.is_open:
            ch = self.conn.channel()
            ch.queue_delete(self.queue)
            self.conn.close()

    def test_publish_with_confirms_then_consume_with_manual_ack(self):
        self.ch.confirm_delivery()
        for i in range(10):
            self.ch.basic_publish("", self.queue, f"m{i}".encode(), persistent(f"id-{i}"))
        got = []

        def on_message(ch, method, props, body):
            got.append((body, props.message_id, method.redelivered))
            ch.basic_ack(method.delivery_tag)
            if len(got) == 10:
                ch.stop_consuming()

        self.ch.basic_consume(self.queue, on_message)
        self.ch.start_consuming()
        self.assertEqual([g[0] for g in got], [f"m{i}".encode() for i in range(10)])
        self.assertEqual(got[3][1], "id-3")
        self.assertFalse(any(g[2] for g in got))
        self.assertEqual(self.ch.queue_declare(self.queue, passive=True).method.message_count, 0)

    def test_unroutable_mandatory_publish_is_returned(self):
        self.ch.confirm_delivery()
        with self.assertRaises(pika.exceptions.UnroutableError):
            self.ch.basic_publish("amq.direct", unique("nobody"), b"x", mandatory=True)

    def test_basic_get_reports_remaining_count(self):
        for i in range(3):
            self.ch.basic_publish("", self.queue, f"g{i}".encode())
        method, props, body = self.ch.basic_get(self.queue)
        self.assertEqual(body, b"g0")
        self.assertEqual(method.message_count, 2)
        self.assertEqual(method.delivery_tag, 1)
        self.ch.basic_ack(method.delivery_tag)
        method, _, _ = self.ch.basic_get(self.queue, auto_ack=True)
        self.assertEqual(method.delivery_tag, 2)
        self.ch.basic_get(self.queue, auto_ack=True)
        self.assertEqual(self.ch.basic_get(self.queue), (None, None, None))

    def test_nack_with_requeue_redelivers_and_without_drops(self):
        self.ch.basic_publish("", self.queue, b"first")
        self.ch.basic_publish("", self.queue, b"second")
        m1, _, b1 = self.ch.basic_get(self.queue)
        self.ch.basic_nack(m1.delivery_tag, requeue=True)
        again, _, body = self.ch.basic_get(self.queue)
        self.assertEqual(body, b"first")
        self.assertTrue(again.redelivered)
        self.ch.basic_nack(again.delivery_tag, requeue=False)
        m2, _, b2 = self.ch.basic_get(self.queue)
        self.assertEqual(b2, b"second")
        self.assertFalse(m2.redelivered)
        self.ch.basic_reject(m2.delivery_tag, requeue=False)
        self.assertEqual(self.ch.queue_declare(self.queue, passive=True).method.message_count, 0)

    def get_eventually(self, queue, timeout=5):
        """basic.get until a message arrives (RabbitMQ dead-letters asynchronously)."""
        import time
        deadline = time.monotonic() + timeout
        while True:
            m, props, body = self.ch.basic_get(queue, auto_ack=True)
            if m is not None or time.monotonic() > deadline:
                return m, props, body
            self.conn.sleep(0.02)

    def test_nack_without_requeue_dead_letters_with_x_death(self):
        dlx, dlq = unique("dlx"), unique("dlq")
        self.ch.exchange_declare(dlx, "fanout", durable=True)
        self.ch.queue_declare(dlq, durable=True)
        self.ch.queue_bind(dlq, dlx)
        src = unique("src")
        self.ch.queue_declare(src, durable=True, arguments={"x-dead-letter-exchange": dlx})
        self.ch.basic_publish("", src, b"poison",
                              pika.BasicProperties(delivery_mode=2, expiration="60000", headers={"app": "x"}))
        m, _, _ = self.ch.basic_get(src)
        self.ch.basic_nack(m.delivery_tag, requeue=False)
        m, props, body = self.get_eventually(dlq)
        self.assertEqual(body, b"poison")
        self.assertEqual((m.exchange, m.routing_key), (dlx, src))
        self.assertIsNone(props.expiration)  # removed, kept as original-expiration
        self.assertEqual(props.delivery_mode, 2)
        h = props.headers
        self.assertEqual(h["app"], "x")
        death = h["x-death"][0]
        self.assertEqual(len(h["x-death"]), 1)
        self.assertEqual((death["count"], death["reason"], death["queue"], death["exchange"]), (1, "rejected", src, ""))
        self.assertEqual(death["routing-keys"], [src])
        self.assertEqual(death["original-expiration"], "60000")
        self.assertEqual((h["x-first-death-reason"], h["x-first-death-queue"], h["x-first-death-exchange"]),
                         ("rejected", src, ""))
        # Rejected from the same queue again: the same entry counts up.
        self.ch.basic_publish("", src, body, pika.BasicProperties(delivery_mode=2, headers=h))
        m, _, _ = self.ch.basic_get(src)
        self.ch.basic_reject(m.delivery_tag, requeue=False)
        _, props, _ = self.get_eventually(dlq)
        deaths = props.headers["x-death"]
        self.assertEqual(len(deaths), 1)
        self.assertEqual((deaths[0]["count"], deaths[0]["queue"], deaths[0]["reason"]), (2, src, "rejected"))
        self.assertEqual(props.headers["x-first-death-queue"], src)
        for q in (src, dlq):
            self.ch.queue_delete(q)
        self.ch.exchange_delete(dlx)

    def test_dead_letter_routing_key_without_exchange_is_406(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            self.ch.queue_declare(unique("bad"), arguments={"x-dead-letter-routing-key": "k"})
        self.assertEqual(e.exception.reply_code, 406)
        self.assertRegex(e.exception.reply_text,
                         r"^PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'bad-[0-9a-f]+' "
                         r"in vhost '/': routing_key_but_no_dlx_defined$")

    def test_prefetch_limits_unacked_deliveries(self):
        for i in range(5):
            self.ch.basic_publish("", self.queue, f"p{i}".encode())
        self.ch.basic_qos(prefetch_count=2)
        held = []
        self.ch.basic_consume(self.queue, lambda ch, m, p, b: held.append(m))
        self.conn.process_data_events(time_limit=0.5)
        self.assertEqual(len(held), 2)
        self.ch.basic_ack(held[-1].delivery_tag, multiple=True)
        self.conn.process_data_events(time_limit=0.5)
        self.assertEqual(len(held), 4)

    def test_closing_the_channel_requeues_unacked_in_order(self):
        for i in range(3):
            self.ch.basic_publish("", self.queue, f"c{i}".encode())
        other = self.conn.channel()
        other.basic_get(self.queue)
        other.basic_get(self.queue)
        other.close()
        bodies = []
        for _ in range(3):
            m, _, body = self.ch.basic_get(self.queue, auto_ack=True)
            bodies.append((body, m.redelivered))
        self.assertEqual(bodies, [(b"c0", True), (b"c1", True), (b"c2", False)])

    def test_channel_errors_carry_rabbit_codes_and_texts(self):
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            self.ch.queue_declare(unique("missing"), passive=True)
        self.assertEqual(e.exception.reply_code, 404)
        self.assertRegex(e.exception.reply_text, r"^NOT_FOUND - no queue 'missing-[0-9a-f]+' in vhost '/'$")
        ch = self.conn.channel()
        ch.basic_ack(7)
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(self.queue, passive=True)
        self.assertEqual(e.exception.reply_code, 406)
        self.assertEqual(e.exception.reply_text, "PRECONDITION_FAILED - unknown delivery tag 7")
        ch = self.conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(self.queue, durable=False)
        self.assertEqual(e.exception.reply_code, 406)
        self.assertIn("inequivalent arg 'durable'", e.exception.reply_text)
        self.assertTrue(self.conn.is_open)  # channel errors leave the connection up

    def test_transactions(self):
        self.ch.tx_select()
        self.ch.basic_publish("", self.queue, b"tx")
        peek = self.conn.channel()
        self.assertEqual(peek.queue_declare(self.queue, passive=True).method.message_count, 0)
        self.ch.tx_commit()
        self.assertEqual(peek.queue_declare(self.queue, passive=True).method.message_count, 1)
        self.ch.basic_publish("", self.queue, b"rolled back")
        self.ch.tx_rollback()
        self.assertEqual(peek.queue_declare(self.queue, passive=True).method.message_count, 1)

    def test_large_messages_cross_frame_boundaries(self):
        body = bytes(range(256)) * 2000  # 512 KB: many body frames each way
        self.ch.confirm_delivery()
        self.ch.basic_publish("", self.queue, body, persistent())
        _, _, got = self.ch.basic_get(self.queue, auto_ack=True)
        self.assertEqual(got, body)

    def test_bad_login_is_refused_with_403(self):
        bad = pika.ConnectionParameters("127.0.0.1", broker().port,
                                        credentials=pika.PlainCredentials("guest", "wrong"))
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError) as e:
            pika.BlockingConnection(bad)
        self.assertIn("ACCESS_REFUSED", str(e.exception))


class Restart(unittest.TestCase):
    def test_persistent_messages_survive_a_restart_and_clients_reconnect(self):
        queue = unique("restart")
        conn = pika.BlockingConnection(params())
        ch = conn.channel()
        ch.queue_declare(queue, durable=True)
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish("", queue, f"r{i}".encode(), persistent())
        ch.basic_publish("", queue, b"transient")
        m, _, _ = ch.basic_get(queue)  # unacked when the broker goes away
        self.assertIsNotNone(m)
        broker().restart()
        with self.assertRaises(pika.exceptions.AMQPError):
            conn.process_data_events(time_limit=1)
            ch.queue_declare(queue, passive=True)
        conn = pika.BlockingConnection(params())
        ch = conn.channel()
        bodies = []
        while True:
            m, _, body = ch.basic_get(queue, auto_ack=True)
            if m is None:
                break
            bodies.append((body, m.redelivered))
        self.assertEqual(bodies[0], (b"r0", True))
        self.assertEqual([b for b, _ in bodies], [f"r{i}".encode() for i in range(5)])
        ch.queue_delete(queue)
        conn.close()


class Asynchronous(unittest.TestCase):
    """pika's SelectConnection: callbacks all the way, as asynchronous services use it."""

    def test_confirms_and_consume_with_the_select_adapter(self):
        queue = unique("async")
        done = threading.Event()
        state = {"acked": 0, "received": []}

        def on_open(conn):
            conn.channel(on_open_callback=on_channel)

        def on_channel(ch):
            ch.confirm_delivery(lambda frame: on_confirm(ch, frame))
            ch.queue_declare(queue, durable=True, callback=lambda _: publish(ch))

        def publish(ch):
            for i in range(20):
                ch.basic_publish("", queue, f"a{i}".encode(), persistent())

        def on_confirm(ch, frame):
            method = frame.method
            if isinstance(method, pika.spec.Basic.Ack):
                state["acked"] = method.delivery_tag if method.multiple else state["acked"] + 1
                if state["acked"] >= 20 and not state.get("consuming"):
                    state["consuming"] = True
                    ch.basic_qos(prefetch_count=5, callback=lambda _: ch.basic_consume(queue, on_message))

        def on_message(ch, method, props, body):
            state["received"].append(body)
            ch.basic_ack(method.delivery_tag)
            if len(state["received"]) == 20:
                ch.queue_delete(queue, callback=lambda _: ch.connection.close())

        conn = pika.SelectConnection(params(), on_open_callback=on_open,
                                     on_close_callback=lambda c, reason: (done.set(), c.ioloop.stop()))
        timer = threading.Timer(20, lambda: conn.ioloop.add_callback_threadsafe(conn.ioloop.stop))
        timer.start()
        conn.ioloop.start()
        timer.cancel()
        self.assertTrue(done.is_set(), "the exchange did not finish")
        self.assertEqual(state["acked"], 20)
        self.assertEqual(state["received"], [f"a{i}".encode() for i in range(20)])


if __name__ == "__main__":
    unittest.main()
