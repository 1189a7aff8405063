"""Careless and hostile peers meet bounds: small frames before tuning, a handshake timeout,
no spinning at the file-descriptor limit, slow and logged login failures, publishers held
back while the store is behind, bounded partial bodies, and a memory alarm. Each memory
bound is growth over a baseline measured in the same run; each wait is for an event."""
import errno
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

import pika

from harness import start_warrend
from rawamqp import Raw, close_reason, frame, method, shortstr, table


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish_frames(channel, queue, body_size, persistent=True):
    """basic.publish and a content header announcing body_size bytes."""
    props = struct.pack(">H", 0x1000) + (b"\x02" if persistent else b"\x01")
    return (method(channel, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr(queue) + b"\x00")
            + frame(2, channel, struct.pack(">HHQ", 60, 0, body_size) + props))


def send_until_blocked(sock, data, limit):
    """Sends `data` over and over without blocking until the peer stops reading (the socket
    stays full) or `limit` bytes went out; returns how many went out."""
    sock.setblocking(False)
    sent, stuck_since = 0, None
    view, at = memoryview(data), 0
    while sent < limit:
        try:
            n = sock.send(view[at:])  # a partial send goes on where it stopped: whole frames
            at = (at + n) % len(data)
            sent += n
            stuck_since = None
        except BlockingIOError:
            # Full: wait for room; a peer that stopped reading never makes any.
            stuck_since = stuck_since or time.monotonic()
            if time.monotonic() - stuck_since > 1.0:
                break
            time.sleep(0.01)
    sock.setblocking(True)
    return sent


@unittest.skipIf("AMQP_PORT" in os.environ, "warrend's own limits and memory")
class Limits(unittest.TestCase):
    sanitized = os.environ.get("WARREN_SANITIZED") == "1"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="warren-limits-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.procs = []

    def tearDown(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            if proc.stdout:
                proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()

    def warrend(self, *args, **popen):
        proc, port = start_warrend("--data-dir", os.path.join(self.dir, f"d{len(self.procs)}"), *args, **popen)
        self.procs.append(proc)
        return proc, port

    def stop_and_read_log(self, proc):
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        return err

    def test_frames_before_tuning_are_small(self):
        proc, port = self.warrend("--log-level", "warning")
        raw = Raw(port)
        raw.send(b"AMQP\x00\x00\x09\x01")
        self.assertEqual(raw.read_method()[1:3], (10, 10))  # connection.start
        baseline = status_kib(proc.pid, "RssAnon")
        # A frame header announcing 2 GiB, then bytes: refused at the header.
        raw.send(struct.pack(">BHI", 1, 0, 2 << 30))
        _, c, m, args = raw.read_method()
        self.assertEqual((c, m), (10, 50))
        self.assertEqual(close_reason(args)[:2],
                         (501, "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,2147483648,4088}"))
        with self.assertRaises(OSError):
            for _ in range(64):  # the server has closed: sending fails before 64 MiB
                raw.sock.sendall(b"x" * (1 << 20))
        self.assertLess(status_kib(proc.pid, "RssAnon") - baseline, 4_000)
        raw.close()

    def test_a_handshake_that_stalls_is_dropped(self):
        proc, port = self.warrend("--handshake-timeout", "300", stderr=subprocess.PIPE)
        stalled = socket.create_connection(("127.0.0.1", port), timeout=20)
        stalled.sendall(b"AMQP")  # half a protocol header, then nothing
        fine = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        self.assertEqual(stalled.recv(100), b"", "the server closes the stalled connection")
        stalled.close()
        fine.channel().queue_declare("still-fine")  # an open connection is not dropped
        fine.close()
        self.assertIn("handshake timed out", self.stop_and_read_log(proc))

    # UBSan validates a vtable by writing it into a pipe: out of descriptors, it cannot, and
    # reports the first virtual call it checks as an error.
    @unittest.skipIf(sanitized, "UBSan's vptr check needs descriptors to check memory")
    def test_at_the_descriptor_limit_accept_backs_off_and_recovers(self):
        limit = 48

        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        proc, port = self.warrend("--log-level", "info", stderr=subprocess.PIPE, preexec_fn=low_limit)
        clients = []
        for _ in range(limit + 16):  # more than warrend can accept
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            clients.append(s)
        # The last clients were not accepted. A server that re-armed accept on EMFILE at
        # once would spin at 100% of a core; backing off, it barely uses any.
        waiting = clients[-1]
        waiting.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            waiting.recv(1)  # no connection.start: not accepted
        before = cpu_seconds(proc.pid)
        time.sleep(1)  # an observation window: spinning shows up as CPU time
        self.assertLess(cpu_seconds(proc.pid) - before, 0.3)
        for s in clients[:-1]:  # every descriptor but the waiting client's is freed
            s.close()
        waiting.settimeout(20)
        self.assertEqual(waiting.recv(8)[:4], b"\x01\x00\x00\x00", "accepted once descriptors are free")
        waiting.close()
        log = self.stop_and_read_log(proc)
        self.assertIn("cannot accept connections", log)
        self.assertIn("accepting connections again", log)

    def test_a_refused_login_is_answered_late_and_logged_and_delays_nobody_else(self):
        proc, port = self.warrend(stderr=subprocess.PIPE, text=True)
        events = []

        def refused():
            raw = Raw(port, timeout=20)
            reply = raw.handshake(password="s3cret-guess")
            events.append(("refused", close_reason(reply[3])[0]))
            raw.close()

        t = threading.Thread(target=refused)
        started = time.monotonic()
        t.start()
        ok = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        events.append(("accepted", None))  # while the refusal waits
        ok.close()
        t.join()
        self.assertEqual(events, [("accepted", None), ("refused", 403)])
        self.assertGreaterEqual(time.monotonic() - started, 0.9, "refusals take the configured second")
        log = self.stop_and_read_log(proc)
        self.assertIn("login refused for user 'guest'", log)
        self.assertNotIn("s3cret-guess", log)

    def test_a_config_file_error_does_not_echo_a_password(self):
        config = os.path.join(self.dir, "warren.conf")
        with open(config, "w") as f:
            f.write("port = 0\nuser app:hunter2\n")
        result = subprocess.run([os.environ["WARREND"], "--config", config], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("line 2", result.stderr)
        self.assertNotIn("hunter2", result.stderr)

    @unittest.skipIf(sanitized, "sanitizers keep freed memory on purpose")
    def test_a_publisher_is_held_back_while_the_store_is_behind(self):
        proc, port = self.warrend("--publish-backlog-limit", str(1 << 20), "--log-level", "warning")
        setup = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        setup.channel().queue_declare("flood", durable=True)
        baseline = status_kib(proc.pid, "RssAnon")
        body = b"p" * 65536
        one = publish_frames(1, "flood", len(body)) + frame(3, 1, body)
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], status_kib(proc.pid, "RssAnon"))
                time.sleep(0.01)

        def flood():
            raw = Raw(port, timeout=60)
            raw.handshake()
            raw.open_channel(1)
            raw.sock.sendall(one * 1600)  # 100 MiB of persistent messages, no confirms
            raw.close()

        sampler = threading.Thread(target=sample)
        sampler.start()
        floods = [threading.Thread(target=flood) for _ in range(2)]
        for t in floods:
            t.start()
        for t in floods:
            t.join()
        ch = setup.channel()
        deadline = time.monotonic() + 120
        while ch.queue_declare("flood", passive=True).method.message_count < 3200:
            self.assertLess(time.monotonic(), deadline, "not everything was stored")
            setup.sleep(0.05)
        done.set()
        sampler.join()
        setup.close()
        self.assertLess(peak[0] - baseline, 64_000, "200 MiB of publishes buffered in memory")

    @unittest.skipIf(sanitized, "sanitizers keep freed memory on purpose")
    def test_partial_bodies_are_bounded(self):
        proc, port = self.warrend("--max-bodies-in-flight", str(8 << 20), "--log-level", "warning")
        baseline = status_kib(proc.pid, "RssAnon")
        raw = Raw(port, timeout=30)
        raw.handshake()
        chunk = b"b" * 131000
        for ch in range(1, 17):
            raw.open_channel(ch)
            raw.send(publish_frames(ch, "nowhere", 120 << 20))
        # Body frames for all sixteen, round-robin, until the server stops reading.
        data = b"".join(frame(3, ch, chunk) for ch in range(1, 17))
        sent = send_until_blocked(raw.sock, data, 300 << 20)
        self.assertLess(sent, 200 << 20, "the server kept reading bodies past their budget")
        self.assertLess(status_kib(proc.pid, "RssAnon") - baseline, 48_000)
        other = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        other.channel().queue_declare("others-are-served")
        other.close()
        raw.close()

    @unittest.skipIf(sanitized, "sanitizers keep freed memory on purpose")
    def test_announcing_bodies_reserves_nothing(self):
        proc, port = self.warrend("--log-level", "warning")
        rss, size = status_kib(proc.pid, "VmRSS"), status_kib(proc.pid, "VmSize")
        raws = []
        for _ in range(4):
            raw = Raw(port, timeout=30)
            raw.handshake()
            for ch in range(1, 201):
                raw.open_channel(ch)
                raw.send(publish_frames(ch, "nowhere", 128 << 20))  # 100 GiB announced in all
            raws.append(raw)
        probe = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        probe.channel().queue_declare("probe")  # processed after the headers above
        probe.close()
        self.assertLess(status_kib(proc.pid, "VmRSS") - rss, 40_000)
        self.assertLess(status_kib(proc.pid, "VmSize") - size, 2_000_000)
        for raw in raws:
            raw.close()

    @unittest.skipIf(sanitized, "sanitizers keep freed memory on purpose")
    def test_the_memory_alarm_blocks_publishers_until_memory_is_back(self):
        probe, probe_port = self.warrend("--log-level", "warning")
        idle = status_kib(probe.pid, "RssAnon")
        watermark = (idle + 48_000) * 1024
        proc, port = self.warrend("--memory-high-watermark", str(watermark), "--log-level", "info",
                                  stderr=subprocess.PIPE)
        events = []
        publisher = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        publisher.add_on_connection_blocked_callback(lambda c, m: events.append(m.method.reason))
        publisher.add_on_connection_unblocked_callback(lambda c, m: events.append("unblocked"))
        ch = publisher.channel()
        ch.queue_declare("q")
        hog = Raw(port, timeout=30)
        hog.handshake()
        hog.open_channel(1)
        hog.send(publish_frames(1, "q", 100 << 20))
        hog.sock.sendall(frame(3, 1, b"h" * 131000) * 500)  # 65 MB of a body, held
        # RabbitMQ blocks a connection at its first publish during an alarm: publish until then.
        published = 0
        deadline = time.monotonic() + 30
        while not events:
            self.assertLess(time.monotonic(), deadline, "never blocked")
            ch.basic_publish("", "q", b"x")
            published += 1
            publisher.process_data_events(time_limit=0.05)
        self.assertEqual(events, ["low on memory"])
        hog.close()  # its partial body goes, and with it the memory
        while events[-1] != "unblocked":
            self.assertLess(time.monotonic(), deadline, "never unblocked")
            publisher.process_data_events(time_limit=0.1)
        # The publish that met the alarm waited, and went through once it cleared.
        self.assertEqual(ch.queue_declare("q", passive=True).method.message_count, published)
        publisher.close()
        log = self.stop_and_read_log(proc)
        self.assertIn("memory alarm", log)
        self.assertIn("memory alarm cleared", log)


if __name__ == "__main__":
    unittest.main()
