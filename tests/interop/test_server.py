"""warrend itself: the config file, --port 0, users, clean shutdown on SIGTERM."""
import os
import random
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import pika
import pika.exceptions

from harness import start_warrend
from rawamqp import Raw, frame, method, shortstr


@unittest.skipIf("AMQP_PORT" in os.environ, "about warrend itself")
class Server(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="warren-server-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def test_config_file_users_and_port(self):
        config = os.path.join(self.dir, "warren.conf")
        with open(config, "w") as f:
            f.write(f"# a comment\nport = 0\nmanagement-port = 0\nprometheus-port = 0\ndata-dir = {self.dir}/data\nuser = app:secret\n"
                    "durability = nosync\n")
        proc = subprocess.Popen([os.environ["WARREND"], "--config", config], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline().split()[1])  # "port N": the config's port 0 was used
            for line in proc.stderr:
                if "warrend ready" in line:
                    break
            ok = pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", port, credentials=pika.PlainCredentials("app", "secret")))
            ok.channel().queue_declare("configured", durable=True)
            ok.close()
            with self.assertRaises(pika.exceptions.ProbableAuthenticationError):
                pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))  # guest is gone
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
            proc.stderr.close()
            proc.stdout.close()
        self.assertTrue(os.path.exists(os.path.join(self.dir, "data", "data.mdb")))

    def test_port_zero_prints_the_port_and_sigint_stops_cleanly(self):
        proc, port = start_warrend("--durability", "memory", "--log-level", "warning")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        proc.send_signal(signal.SIGINT)
        # The client is told why: connection.close 320, then the server exits.
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as e:
            conn.channel().queue_declare("x")
            conn.process_data_events(time_limit=5)
        self.assertEqual(e.exception.reply_code, 320)
        self.assertEqual(proc.wait(timeout=10), 0)
        proc.stdout.close()

    def test_a_full_store_blocks_publishers_until_acks_free_space(self):
        proc, port = start_warrend("--data-dir", self.dir, "--max-map-size", str(2 << 20), "--log-level", "warning")
        try:
            events = []
            publisher = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            publisher.add_on_connection_blocked_callback(lambda c, m: events.append(m.method.reason))
            publisher.add_on_connection_unblocked_callback(lambda c, m: events.append("unblocked"))
            ch = publisher.channel()
            ch.queue_declare("full", durable=True)
            ch.confirm_delivery()
            accepted = 0
            with self.assertRaises(pika.exceptions.NackError):
                for _ in range(2000):
                    ch.basic_publish("", "full", b"x" * 4000, pika.BasicProperties(delivery_mode=2))
                    accepted += 1
            self.assertGreater(accepted, 10)
            loose = publisher.channel()
            loose.basic_publish("", "full", b"y", pika.BasicProperties(delivery_mode=2))
            publisher.process_data_events(time_limit=1)
            self.assertEqual(events, ["low on disk"])
            consumer = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            cch = consumer.channel()
            drained = 0
            while cch.basic_get("full", auto_ack=True)[0] is not None:
                drained += 1
            self.assertGreaterEqual(drained, accepted)
            deadline = time.monotonic() + 10
            while events[-1] != "unblocked":
                self.assertLess(time.monotonic(), deadline, "never unblocked")
                publisher.process_data_events(time_limit=0.2)
            consumer.close()
            publisher.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
            proc.stdout.close()

    def test_vhosts_and_the_message_size_limit(self):
        proc, port = start_warrend("--durability", "memory", "--vhost", "orders", "--max-message-size", "1000",
                                   "--log-level", "warning")
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, virtual_host="orders"))
            ch = conn.channel()
            ch.queue_declare("only-in-orders")
            ch.basic_publish("", "only-in-orders", b"x" * 1000)  # at the limit: fine
            ch.basic_publish("", "only-in-orders", b"x" * 1001)
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as e:
                ch.queue_declare("only-in-orders", passive=True)
            self.assertEqual(e.exception.reply_code, 406)
            self.assertEqual(e.exception.reply_text,
                             "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000")
            ch = conn.channel()
            self.assertEqual(ch.queue_declare("only-in-orders", passive=True).method.message_count, 1)
            conn.close()
            root = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker):
                root.channel().queue_declare("only-in-orders", passive=True)  # vhosts are apart
            root.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
            proc.stdout.close()

    def test_a_vhost_with_durable_queues_comes_back_without_its_flag(self):
        data = os.path.join(self.dir, "data")

        def start(*extra):
            return start_warrend("--data-dir", data, "--log-level", "warning", *extra)

        def stop(proc):
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
            proc.stdout.close()

        proc, port = start("--vhost", "orders")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, virtual_host="orders"))
        ch = conn.channel()
        ch.queue_declare("kept", durable=True)
        ch.confirm_delivery()
        ch.basic_publish("", "kept", b"m", pika.BasicProperties(delivery_mode=2))
        conn.close()
        stop(proc)
        proc, port = start()  # no --vhost this time
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, virtual_host="orders"))
            self.assertEqual(conn.channel().queue_declare("kept", passive=True).method.message_count, 1)
            conn.close()
        finally:
            stop(proc)

    def test_sigterm_settles_every_publish_it_read(self):
        """Publishers with confirms (window 1) and a SIGTERM at a random moment, round after
        round: whatever warrend stored, its publisher was told (no stored-but-unsettled
        publish), and nothing confirmed is missing afterwards."""
        data = os.path.join(self.dir, "sigterm")
        seed = random.randrange(1 << 30)
        rng = random.Random(seed)
        confirmed, unanswered = set(), set()
        slowest_stop = 0.0
        for rnd in range(8):
            proc, port = start_warrend("--data-dir", data, "--log-level", "warning")
            setup = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            setup.channel().queue_declare("sigterm", durable=True)
            setup.close()
            progress = threading.Semaphore(0)

            def publish(who):
                # Raw frames: pika raises when a connection.close arrives in the same read as
                # the ack before it, and then the test could not tell what was confirmed.
                raw = Raw(port, timeout=30)
                raw.handshake()
                raw.open_channel(1)
                raw.send(method(1, 85, 10, b"\x00"))  # confirm.select
                raw.read_method()
                for i in range(1_000_000):
                    body = f"{rnd}-{who}-{i}".encode()
                    raw.send(method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("sigterm") + b"\x00")
                             + frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0x1000) + b"\x02")
                             + frame(3, 1, body))
                    try:
                        answer = raw.read_method()[1:3]
                    except OSError:
                        answer = None
                    if answer != (60, 80):  # not basic.ack: connection.close, or the socket gone
                        unanswered.add(body)
                        raw.close()
                        return
                    confirmed.add(body)
                    if i == 20:
                        progress.release()

            publishers = [threading.Thread(target=publish, args=(p,)) for p in range(4)]
            for t in publishers:
                t.start()
            for _ in publishers:  # all of them are publishing (an event) ...
                self.assertTrue(progress.acquire(timeout=30))
            time.sleep(rng.uniform(0, 0.05))  # ... and the signal lands at a random point
            stopping = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0, f"seed {seed}")
            slowest_stop = max(slowest_stop, time.monotonic() - stopping)
            proc.stdout.close()
            for t in publishers:
                t.join(timeout=30)
        proc, port = start_warrend("--data-dir", data, "--log-level", "warning")
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            ch = conn.channel()
            stored = set()
            while True:
                got, _, body = ch.basic_get("sigterm", auto_ack=True)
                if got is None:
                    break
                stored.add(body)
            conn.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            proc.stdout.close()
        self.assertEqual(confirmed - stored, set(), f"confirmed but lost (seed {seed})")
        self.assertEqual(stored - confirmed, set(), f"stored but never confirmed (seed {seed})")
        self.assertGreater(len(confirmed), 8 * 4 * 20)
        self.assertLessEqual(len(unanswered), 8 * 4)
        # Bounded generously: a stop waits only for the last commit and the close handshake.
        self.assertLess(slowest_stop, 5, f"a stop took {slowest_stop:.2f} s")

    def test_bad_arguments_are_refused(self):
        for args in (["--port", "notanumber"], ["--durability", "sometimes"], ["--frobnicate", "1"]):
            result = subprocess.run([os.environ["WARREND"], *args], capture_output=True, text=True, timeout=10)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn(args[0].lstrip("-"), result.stderr, "it says which flag is wrong")
            self.assertIn("--help", result.stderr)

    def test_help_lists_every_setting(self):
        result = subprocess.run([os.environ["WARREND"], "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 0)
        for flag in ("--port", "--data-dir", "--durability", "--user", "--config", "--accept-data-loss",
                     "--memory-high-watermark", "--handshake-timeout", "--check", "--salvage-from"):
            self.assertIn(flag, result.stdout)


if __name__ == "__main__":
    unittest.main()
