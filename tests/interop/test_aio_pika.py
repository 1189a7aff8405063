"""python3-aio-pika, the asyncio client, including its robust reconnection."""
import asyncio
import unittest

import aio_pika

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)



def url():
    return f"amqp://guest:guest@127.0.0.1:{broker().port}/"


class AioPika(unittest.IsolatedAsyncioTestCase):
    async def test_confirms_consume_ack_nack_get_prefetch(self):
        conn = await aio_pika.connect(url())
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.set_qos(prefetch_count=3)
            queue = await ch.declare_queue(unique("aio"), durable=True)
            for i in range(6):
                await ch.default_exchange.publish(
                    aio_pika.Message(f"a{i}".encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue.name)
            got = await queue.get(no_ack=False)
            self.assertEqual(got.body, b"a0")
            await got.nack(requeue=True)
            received = []
            async with queue.iterator() as it:
                async for message in it:
                    received.append((message.body, message.redelivered))
                    if message.body == b"a1" and not message.redelivered:
                        await message.nack(requeue=False)
                    else:
                        await message.ack()
                    if len(received) == 6:
                        break
            self.assertEqual(received[0], (b"a0", True))
            self.assertEqual([b for b, _ in received], [b"a0", b"a1", b"a2", b"a3", b"a4", b"a5"])
            self.assertEqual((await queue.declare()).message_count, 0)
            await queue.delete()

    async def test_nack_without_requeue_goes_to_the_dead_letter_queue(self):
        conn = await aio_pika.connect(url())
        async with conn:
            ch = await conn.channel()
            dlq = await ch.declare_queue(unique("aio-dlq"), durable=True)
            src = await ch.declare_queue(unique("aio-src"), durable=True,
                                         arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq.name})
            await ch.default_exchange.publish(aio_pika.Message(b"bad"), routing_key=src.name)
            got = await src.get(no_ack=False)
            await got.nack(requeue=False)
            for _ in range(100):  # RabbitMQ dead-letters asynchronously
                dead = await dlq.get(no_ack=True, fail=False)
                if dead:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(dead.body, b"bad")
            self.assertEqual(dead.headers["x-death"][0]["reason"], "rejected")
            await src.delete()
            await dlq.delete()

    async def test_robust_connection_reconnects_after_a_restart(self):
        conn = await aio_pika.connect_robust(url(), reconnect_interval=0.2)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            queue = await ch.declare_queue(unique("aio-robust"), durable=True)
            await ch.default_exchange.publish(
                aio_pika.Message(b"before", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue.name)
            reconnected = asyncio.Event()
            conn.reconnect_callbacks.add(lambda *_: reconnected.set())
            await asyncio.get_running_loop().run_in_executor(None, broker().restart)
            await asyncio.wait_for(reconnected.wait(), 20)
            got = await queue.get(no_ack=True)
            self.assertEqual(got.body, b"before")
            await queue.delete()


if __name__ == "__main__":
    unittest.main()
