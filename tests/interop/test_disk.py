"""A real full disk, the way an edge device meets one: warrend's data directory on a 64 MiB
tmpfs, and on a 64 MiB ext4 image. Publishers get nacks and connection.blocked, acks still
land, the space they free is used again, publishing resumes by itself, and a restart shows
every ack kept. Needs root (it mounts); skipped with the reason otherwise."""
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import pika

from harness import start_warrend


def mount(kind, where, image):
    if kind == "tmpfs":
        cmd = ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", where]
    else:
        subprocess.run(["truncate", "-s", "64M", image], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True, capture_output=True)
        cmd = ["mount", "-o", "loop", image, where]
    return subprocess.run(cmd, capture_output=True, text=True)


@unittest.skipIf("AMQP_PORT" in os.environ, "warrend's own data directory")
class FullDisk(unittest.TestCase):
    def run_case(self, kind):
        base = tempfile.mkdtemp(prefix="warren-disk-")
        where = os.path.join(base, "mnt")
        os.mkdir(where)
        mounted = mount(kind, where, os.path.join(base, "image"))
        if mounted.returncode != 0:
            shutil.rmtree(base, ignore_errors=True)
            self.skipTest(f"cannot mount a {kind}: {mounted.stderr.strip()}")
        try:
            self.fill_drain_and_refill(os.path.join(where, "data"))
        finally:
            subprocess.run(["umount", "-l", where])
            shutil.rmtree(base, ignore_errors=True)

    def fill_drain_and_refill(self, data):
        proc, port = start_warrend("--data-dir", data, "--log-level", "info", stderr=subprocess.PIPE)
        try:
            events = []
            probe = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            probe.add_on_connection_blocked_callback(lambda c, m: events.append(m.method.reason))
            probe.add_on_connection_unblocked_callback(lambda c, m: events.append("unblocked"))
            probe_ch = probe.channel()
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            ch = conn.channel()
            ch.queue_declare("full", durable=True)
            ch.confirm_delivery()
            body = b"d" * 16384
            accepted = 0
            with self.assertRaises(pika.exceptions.NackError):
                for _ in range(10_000):  # 160 MiB: more than the disk holds
                    ch.basic_publish("", "full", body, pika.BasicProperties(delivery_mode=2))
                    accepted += 1
            self.assertGreater(accepted, 100)
            # A publish during the alarm blocks that connection, as RabbitMQ does.
            probe_ch.basic_publish("", "full", b"probe", pika.BasicProperties(delivery_mode=2))
            deadline = time.monotonic() + 30
            while "low on disk" not in events:
                self.assertLess(time.monotonic(), deadline, "never blocked")
                probe.process_data_events(time_limit=0.1)
            reader = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            rch = reader.channel()
            for _ in range(accepted // 2):
                method, _, _ = rch.basic_get("full")
                rch.basic_ack(method.delivery_tag)
            rch.queue_declare("full", passive=True)  # a round trip: the acks are in
            while events[-1] != "unblocked":  # the freed space clears the alarm
                self.assertLess(time.monotonic(), deadline, "never unblocked")
                probe.process_data_events(time_limit=0.1)
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish("", "full", b"again", pika.BasicProperties(delivery_mode=2))  # acked
            for c in (probe, conn, reader):
                c.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            _, log = proc.communicate(timeout=30)
            proc.stdout.close()
        self.assertEqual(proc.returncode, 0)
        self.assertIn("the disk is full", log)
        # Every ack landed: after a restart nothing taken comes back.
        proc, port = start_warrend("--data-dir", data, "--log-level", "warning")
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            count = conn.channel().queue_declare("full", passive=True).method.message_count
            self.assertEqual(count, accepted - accepted // 2 + 2)  # the probe and "again" too
            conn.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            proc.stdout.close()

    def test_on_a_full_tmpfs(self):
        self.run_case("tmpfs")

    def test_on_a_full_ext4(self):
        self.run_case("ext4")


if __name__ == "__main__":
    unittest.main()
