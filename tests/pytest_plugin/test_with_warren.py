"""What a project's own tests look like with the pytest_warren plugin (src/python): run by
tests/interop/test_pytest_plugin.py, which checks that they pass and what they record."""
import os

import kombu
import pika


def record(line):
    with open(os.environ["WARREN_PLUGIN_RECORD"], "a") as f:
        f.write(line + "\n")


def test_pika_publishes_and_gets(warren_server, warren_url):
    record(f"pid {warren_server.pid} port {warren_server.port}")
    conn = pika.BlockingConnection(pika.URLParameters(warren_url))
    ch = conn.channel()
    ch.queue_declare("plugin-pika")
    ch.confirm_delivery()
    ch.basic_publish("", "plugin-pika", b"hello")
    method, _, body = ch.basic_get("plugin-pika", auto_ack=True)
    assert body == b"hello"
    conn.close()


def test_kombu_uses_the_same_broker(warren_server, warren_url):
    record(f"pid {warren_server.pid} port {warren_server.port}")
    with kombu.Connection(warren_url) as conn:
        queue = conn.SimpleQueue("plugin-kombu")
        queue.put({"order": 7})
        message = queue.get(timeout=10)
        assert message.payload == {"order": 7}
        message.ack()
        queue.close()
    # The broker is shared by the session: the first test's queue is there.
    conn = pika.BlockingConnection(pika.URLParameters(warren_url))
    assert conn.channel().queue_declare("plugin-pika", passive=True).method.message_count == 0
    conn.close()
