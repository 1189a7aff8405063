"""python3-amqp (py-amqp, the transport under kombu and Celery)."""
import socket
import time
import unittest

import amqp

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)



def connect():
    conn = amqp.Connection(f"127.0.0.1:{broker().port}", userid="guest", password="guest")
    conn.connect()
    return conn


class PyAmqp(unittest.TestCase):
    def setUp(self):
        self.conn = connect()
        self.ch = self.conn.channel()
        self.queue = unique("pyamqp")
        self.ch.queue_declare(self.queue, durable=True, auto_delete=False)

    def tearDown(self):
        self.conn.channel().queue_delete(self.queue)
        self.conn.close()

    def test_confirmed_publish_get_consume_ack_nack(self):
        self.ch.confirm_select()
        for i in range(4):
            self.ch.basic_publish_confirm(amqp.Message(f"m{i}", delivery_mode=2), exchange="",
                                          routing_key=self.queue)
        first = self.ch.basic_get(self.queue)
        self.assertEqual(first.body, "m0")
        self.assertEqual(first.delivery_tag, 1)
        self.ch.basic_reject(first.delivery_tag, requeue=True)
        again = self.ch.basic_get(self.queue)
        self.assertEqual((again.body, again.delivery_info["redelivered"]), ("m0", True))
        self.ch.basic_reject(again.delivery_tag, requeue=False)  # dropped: no DLX here
        got = []
        self.ch.basic_qos(0, 2, False)
        tag = self.ch.basic_consume(self.queue, callback=lambda m: (got.append(m.body), m.channel.basic_ack(m.delivery_tag)))
        while len(got) < 3:
            self.conn.drain_events(timeout=5)
        self.assertEqual(got, ["m1", "m2", "m3"])
        self.ch.basic_cancel(tag)  # before tearDown deletes the queue under it

    def test_unknown_tag_closes_the_channel_with_406(self):
        ch = self.conn.channel()
        ch.basic_ack(99)
        with self.assertRaises(amqp.exceptions.PreconditionFailed) as e:
            ch.queue_declare(self.queue, passive=True)
        self.assertIn("unknown delivery tag 99", str(e.exception))


class DeadLetter(unittest.TestCase):
    def test_reject_without_requeue_goes_to_the_dead_letter_queue(self):
        conn = connect()
        ch = conn.channel()
        dlq, src = unique("pyamqp-dlq"), unique("pyamqp-src")
        ch.queue_declare(dlq, durable=True, auto_delete=False)
        ch.queue_declare(src, durable=True, auto_delete=False,
                         arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
        ch.basic_publish(amqp.Message("bad", delivery_mode=2), exchange="", routing_key=src)
        m = ch.basic_get(src)
        ch.basic_reject(m.delivery_tag, requeue=False)
        for _ in range(100):  # RabbitMQ dead-letters asynchronously
            dead = ch.basic_get(dlq, no_ack=True)
            if dead:
                break
            time.sleep(0.02)
        self.assertEqual(dead.body, "bad")
        self.assertEqual(dead.headers["x-death"][0]["reason"], "rejected")
        ch.queue_delete(src)
        ch.queue_delete(dlq)
        conn.close()


class Restart(unittest.TestCase):
    def test_persistent_messages_survive_a_restart(self):
        queue = unique("pyamqp-restart")
        conn = connect()
        ch = conn.channel()
        ch.queue_declare(queue, durable=True, auto_delete=False)
        ch.confirm_select()
        ch.basic_publish_confirm(amqp.Message("kept", delivery_mode=2), exchange="", routing_key=queue)
        broker().restart()
        with self.assertRaises((OSError, amqp.exceptions.AMQPError, socket.error)):
            ch.queue_declare(queue, passive=True)
        conn = connect()
        ch = conn.channel()
        self.assertEqual(ch.basic_get(queue, no_ack=True).body, "kept")
        ch.queue_delete(queue)
        conn.close()


if __name__ == "__main__":
    unittest.main()
