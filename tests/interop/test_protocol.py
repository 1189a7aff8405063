"""Hostile and careless peers, byte for byte, against the broker under test."""
import os
import socket
import struct
import time
import unittest

import pika

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)
from rawamqp import Raw, close_reason, frame, longstr, method, shortstr, table



def declare(channel, queue):
    return method(channel, 50, 10, struct.pack(">H", 0) + shortstr(queue) + b"\x00" + table())


def publish(channel, queue, body, persistent=False):
    header_props = struct.pack(">H", 0x1000) + (b"\x02" if persistent else b"\x01")
    return (method(channel, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr(queue) + b"\x00")
            + frame(2, channel, struct.pack(">HHQ", 60, 0, len(body)) + header_props)
            + frame(3, channel, body))


class Handshake(unittest.TestCase):
    def test_wrong_protocol_header_gets_ours_and_a_close(self):
        for header in (b"AMQP\x00\x00\x09\x02", b"AMQP\x01\x01\x00\x0a", b"GET / HTTP/1.1\r\n\r\n"):
            raw = Raw(broker().port)
            raw.send(header)
            self.assertEqual(raw.recv_exact(8), b"AMQP\x00\x00\x09\x01")
            self.assertTrue(raw.closed_by_peer())
            raw.close()

    def test_bad_password_is_403_with_authentication_failure_close(self):
        raw = Raw(broker().port)
        reply = raw.handshake(password="wrong")
        self.assertEqual(reply[1:3], (10, 50))
        self.assertEqual(close_reason(reply[3]),
                         (403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                               "For details see the broker logfile.", 0, 0))
        raw.close()

    def test_unknown_vhost_is_530(self):
        raw = Raw(broker().port)
        reply = raw.handshake(vhost="nosuch")
        self.assertEqual(close_reason(reply[3]), (530, "NOT_ALLOWED - vhost nosuch not found", 10, 40))
        raw.close()


class Frames(unittest.TestCase):
    def setUp(self):
        self.raw = Raw(broker().port)
        self.assertEqual(self.raw.handshake(frame_max=4096)[1:3], (10, 41))

    def tearDown(self):
        self.raw.close()

    def expect_connection_close(self, code, text, class_id=0, method_id=0):
        _, c, m, args = self.raw.read_method()
        self.assertEqual((c, m), (10, 50))
        self.assertEqual(close_reason(args), (code, text, class_id, method_id))

    def test_frame_larger_than_negotiated_is_501(self):
        self.raw.open_channel(1)
        self.raw.send(frame(3, 1, b"x" * 5000))
        self.expect_connection_close(501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}")

    def test_unknown_frame_type_is_501(self):
        self.raw.send(frame(9, 0, b""))
        self.expect_connection_close(501, "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame")

    def test_body_without_header_is_505(self):
        self.raw.open_channel(1)
        self.raw.send(frame(3, 1, b"body"))
        self.expect_connection_close(505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")

    def test_method_where_a_header_is_due_is_505(self):
        self.raw.open_channel(1)
        self.raw.send(method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q") + b"\x00"))
        self.raw.send(declare(1, "q"))
        self.expect_connection_close(
            505, "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead",
            60, 40)

    def test_heartbeat_on_a_channel_is_505(self):
        self.raw.send(frame(8, 1, b""))
        self.expect_connection_close(505, "UNEXPECTED_FRAME - type 8, all octets = <<>>")

    def test_method_on_an_unopened_channel_is_504(self):
        self.raw.send(declare(5, "q"))
        self.expect_connection_close(504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)

    def test_second_channel_open_is_504(self):
        self.raw.open_channel(1)
        self.raw.send(method(1, 20, 10, shortstr("")))
        self.expect_connection_close(504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)

    def test_immediate_is_540(self):
        self.raw.open_channel(1)
        # RabbitMQ answers once the whole message is in: method, header and body.
        self.raw.send(method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q") + b"\x02")
                      + frame(2, 1, struct.pack(">HHQ", 60, 0, 1) + struct.pack(">H", 0)) + frame(3, 1, b"x"))
        self.expect_connection_close(540, "NOT_IMPLEMENTED - immediate=true", 60, 40)


class Heartbeats(unittest.TestCase):
    def test_server_beats_and_drops_a_silent_client(self):
        raw = Raw(broker().port, timeout=15)
        raw.handshake(heartbeat=1)
        started = time.monotonic()
        kind, channel, payload = raw.read_frame()  # nothing else is due: the next frame is a beat
        self.assertEqual((kind, channel, payload), (8, 0, b""))
        self.assertLess(time.monotonic() - started, 3)
        # We never send anything: after a few missed intervals the server hangs up.
        while True:
            try:
                kind, _, _ = raw.read_frame()
                self.assertEqual(kind, 8)
            except (ConnectionError, ConnectionResetError):
                break
        self.assertLess(time.monotonic() - started, 10)
        raw.close()


class Channels(unittest.TestCase):
    def test_channel_max_counts_open_channels(self):
        raw = Raw(broker().port)
        raw.handshake(channel_max=3)
        for ch in (1, 2, 3):
            self.assertEqual(raw.open_channel(ch)[1:3], (20, 11))
        raw.send(method(2, 20, 40, struct.pack(">H", 200) + shortstr("") + struct.pack(">HH", 0, 0)))
        self.assertEqual(raw.read_method()[1:3], (20, 41))  # close-ok
        self.assertEqual(raw.open_channel(2048)[1:3], (20, 11))  # ids are not the limit
        raw.send(method(7, 20, 10, shortstr("")))
        _, c, m, args = raw.read_method()
        self.assertEqual(close_reason(args),
                         (530, "NOT_ALLOWED - number of channels opened (3) has reached the negotiated "
                               "channel_max (3)", 0, 0))
        raw.close()

    def test_a_thousand_channels_on_one_connection(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        channels = [conn.channel() for _ in range(1000)]
        queue = unique("many")
        channels[0].queue_declare(queue)
        for ch in channels[::50]:  # confirmed, so the count below cannot race them
            ch.confirm_delivery()
            ch.basic_publish("", queue, b"x")
        self.assertEqual(channels[-1].queue_declare(queue, passive=True).method.message_count, 20)
        channels[-1].queue_delete(queue)
        conn.close()


class CarelessClients(unittest.TestCase):
    def test_a_client_vanishing_mid_publish_stores_nothing_half(self):
        queue = unique("vanish")
        raw = Raw(broker().port)
        raw.handshake()
        raw.open_channel(1)
        raw.send(declare(1, queue))
        raw.read_method()
        whole = publish(1, queue, b"complete", persistent=True)
        half = publish(1, queue, b"y" * 1000, persistent=True)
        raw.send(whole + half[:len(half) - 600])  # the second body is cut short
        raw.close()
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        ch = conn.channel()
        deadline = time.monotonic() + 5
        count = 0
        while time.monotonic() < deadline:  # the server notices the close in its own time
            count = ch.queue_declare(queue, passive=True).method.message_count
            if count:
                break
            conn.sleep(0.05)
        self.assertEqual(count, 1)
        _, _, body = ch.basic_get(queue, auto_ack=True)
        self.assertEqual(body, b"complete")
        ch.queue_delete(queue)
        conn.close()

    def test_a_vanished_consumers_deliveries_are_requeued(self):
        queue = unique("requeue")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        ch = conn.channel()
        ch.queue_declare(queue)
        for i in range(3):
            ch.basic_publish("", queue, f"v{i}".encode())
        raw = Raw(broker().port)
        raw.handshake()
        raw.open_channel(1)
        raw.send(method(1, 60, 70, struct.pack(">H", 0) + shortstr(queue) + b"\x00"))  # basic.get
        self.assertEqual(raw.read_method()[1:3], (60, 71))
        raw.close()  # gone without acking
        deadline = time.monotonic() + 5
        while ch.queue_declare(queue, passive=True).method.message_count < 3:
            self.assertLess(time.monotonic(), deadline, "the delivery never came back")
            conn.sleep(0.05)
        m, _, body = ch.basic_get(queue, auto_ack=True)
        self.assertEqual((body, m.redelivered), (b"v0", True))
        ch.queue_delete(queue)
        conn.close()

    @unittest.skipIf("AMQP_PORT" in os.environ, "reads warrend's own memory")
    @unittest.skipIf(os.environ.get("WARREN_SANITIZED") == "1", "sanitizers keep freed memory on purpose")
    def test_a_client_that_stops_reading_does_not_swell_the_server(self):
        queue = unique("slow")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        ch = conn.channel()
        ch.queue_declare(queue)
        ch.confirm_delivery()  # each publish returns once the broker has it: no bytes in flight
        body = b"z" * 100_000
        for _ in range(500):  # 50 MB waiting for the consumer
            ch.basic_publish("", queue, body)
        self.assertEqual(ready(ch, queue), 500)
        baseline = rss_anon_kib(broker().proc.pid)

        raw = Raw(broker().port)
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.handshake()
        raw.open_channel(1)
        raw.send(method(1, 60, 20, struct.pack(">H", 0) + shortstr(queue) + shortstr("") + b"\x02" + table()))
        # The server pushes until the client's window and its own output limit are full, then
        # stops: wait until many round trips in a row see the same ready count.
        deadline = time.monotonic() + 30
        left, unchanged = ready(ch, queue), 0
        while left == 500 or unchanged < 50:
            self.assertLess(time.monotonic(), deadline, "deliveries never started or never stopped")
            now = ready(ch, queue)
            unchanged = unchanged + 1 if now == left else 0
            left = now
        # A server that buffered everything would have taken every message off the queue.
        self.assertGreater(left, 400, "the server took more than 10 MB out for a client that reads nothing")
        # Anonymous memory only: LMDB's map is file-backed and reading it is no buffering.
        growth = rss_anon_kib(broker().proc.pid) - baseline
        self.assertLess(growth, 16_000, "the server buffered what the client would not read")
        raw.close()
        ch.queue_delete(queue)
        conn.close()


def ready(channel, queue):
    return channel.queue_declare(queue, passive=True).method.message_count


def rss_anon_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("RssAnon")).split()[1])


if __name__ == "__main__":
    unittest.main()
