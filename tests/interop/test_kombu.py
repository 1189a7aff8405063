"""python3-kombu, as applications and Celery use it."""
import unittest

from kombu import Connection, Exchange, Queue

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)



def url():
    return f"amqp://guest:guest@127.0.0.1:{broker().port}//"


class Kombu(unittest.TestCase):
    def test_publish_confirm_consume_ack_requeue_reject(self):
        name = unique("kombu")
        exchange = Exchange(name, type="direct", durable=True)
        queue = Queue(name, exchange=exchange, routing_key="work", durable=True)
        with Connection(url(), transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer(serializer="json")
            for i in range(5):
                producer.publish({"n": i}, exchange=exchange, routing_key="work", declare=[queue],
                                 delivery_mode=2)
            seen = []

            def on_message(body, message):
                seen.append((body["n"], message.delivery_info["redelivered"]))
                if body["n"] == 1 and not message.delivery_info["redelivered"]:
                    message.requeue()
                elif body["n"] == 2:
                    message.reject()
                else:
                    message.ack()

            with conn.Consumer(queue, callbacks=[on_message], prefetch_count=2):
                while len(seen) < 6:
                    conn.drain_events(timeout=5)
            self.assertEqual(sorted(seen), sorted([(0, False), (1, False), (1, True), (2, False), (3, False), (4, False)]))
            simple = conn.SimpleQueue(queue)
            self.assertEqual(simple.qsize(), 0)
            simple.close()
            queue.bind(conn).delete()
            exchange.bind(conn).delete()

    def test_reject_goes_to_the_dead_letter_queue_and_messages_survive_a_restart(self):
        name = unique("kombu-dl")
        dead = Queue(name + "-dead", routing_key=name + "-dead", durable=True)
        work = Queue(name, routing_key=name, durable=True,
                     queue_arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead.name})
        with Connection(url(), transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer(serializer="json")
            producer.publish({"n": "poison"}, routing_key=name, declare=[work, dead], delivery_mode=2)
            producer.publish({"n": "kept"}, routing_key=dead.name, declare=[dead], delivery_mode=2)
            got = []
            with conn.Consumer(work, callbacks=[lambda body, m: (got.append(body), m.reject())]):
                while not got:
                    conn.drain_events(timeout=5)
        broker().restart()
        with Connection(url()) as conn:
            bodies = []
            for _ in range(100):
                message = dead.bind(conn.default_channel).get(no_ack=True)
                if message:
                    bodies.append(message.payload["n"])
                if len(bodies) == 2:
                    break
            self.assertEqual(sorted(bodies), ["kept", "poison"])
            work.bind(conn.default_channel).delete()
            dead.bind(conn.default_channel).delete()

    def test_simple_queue_get(self):
        name = unique("kombu-simple")
        with Connection(url()) as conn:
            q = conn.SimpleQueue(name)
            q.put({"hello": "world"})
            message = q.get(block=True, timeout=5)
            self.assertEqual(message.payload, {"hello": "world"})
            message.ack()
            q.close()  # cancels its consumer before the queue goes
            Queue(name).bind(conn.channel()).delete()


if __name__ == "__main__":
    unittest.main()
