"""A damaged data directory, seen the way an operator meets one: warrend refuses to start
and says why, `warrend --check` lists the damage, `warrend --salvage-from` copies what is
readable into a new store that a client then drains. Real files, a real warrend, pika."""
import os
import shutil
import subprocess
import tempfile
import unittest

import pika

from harness import start_warrend

WARREND = os.environ.get("WARREND", "")
COUNT = 200


def body(n):
    return b"message-%04d-" % n + b"x" * (n % 97)


def fill(data):
    """A store with queue 'keep' holding COUNT persistent messages, closed cleanly."""
    proc, port = start_warrend("--data-dir", data, stderr=subprocess.DEVNULL)
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("keep", durable=True)
        for n in range(COUNT):
            ch.basic_publish("", "keep", body(n), pika.BasicProperties(delivery_mode=2))
        conn.close()
    finally:
        proc.terminate()
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0


def drain(data):
    proc, port = start_warrend("--data-dir", data, stderr=subprocess.DEVNULL)
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        got = []
        while True:
            method, _, payload = ch.basic_get("keep", auto_ack=True)
            if method is None:
                break
            got.append(payload)
        conn.close()
        return got
    finally:
        proc.terminate()
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0


def warrend(*args):
    return subprocess.run([WARREND, "--management-port", "0", "--prometheus-port", "0", *args], capture_output=True, text=True, timeout=60)


def edit(path, change):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        change(data)
        f.seek(0)
        f.write(data)
        f.truncate(len(data))


@unittest.skipIf("AMQP_PORT" in os.environ, "warrend's own data directory and tools")
class Damage(unittest.TestCase):
    def setUp(self):
        self.base = tempfile.mkdtemp(prefix="warren-damage-")
        self.data = os.path.join(self.base, "data")
        fill(self.data)
        self.file = os.path.join(self.data, "data.mdb")

    def tearDown(self):
        shutil.rmtree(self.base, ignore_errors=True)

    def offsets_of(self, n):
        """Where message n's body lies in data.mdb: its record, and copies in freed pages."""
        with open(self.file, "rb") as f:
            data = f.read()
        found, at = [], data.find(body(n))
        while at >= 0:
            found.append(at)
            at = data.find(body(n), at + 1)
        self.assertTrue(found)
        return found

    def test_an_undamaged_store_checks_clean(self):
        check = warrend("--check", "--data-dir", self.data)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("0 problem(s)", check.stdout)

    def test_a_damaged_message_is_listed_left_behind_by_salvage_and_the_rest_served(self):
        places = self.offsets_of(100)

        def flip(data):
            for at in places:
                data[at + 4] ^= 0x20
        edit(self.file, flip)
        check = warrend("--check", "--data-dir", self.data)
        self.assertEqual(check.returncode, 1, check.stdout + check.stderr)
        self.assertRegex(check.stdout, r"messages: message \d+ of queue \d+ is damaged")
        self.assertIn("1 problem(s)", check.stdout)

        rescued = os.path.join(self.base, "rescued")
        salvage = warrend("--salvage-from", self.data, "--data-dir", rescued)
        self.assertEqual(salvage.returncode, 0, salvage.stdout + salvage.stderr)
        self.assertIn(f"and {COUNT - 1} messages", salvage.stdout)
        self.assertRegex(salvage.stdout, r"lost: messages: message \d+ of queue \d+ is damaged")
        self.assertEqual(drain(rescued), [body(n) for n in range(COUNT) if n != 100])

    def test_a_zeroed_page_is_refused_at_start_and_salvaged_around(self):
        pages = {at // 4096 for at in self.offsets_of(100)}

        def zero(data):
            for page in pages:
                data[page * 4096:(page + 1) * 4096] = bytes(4096)
        edit(self.file, zero)
        start = warrend("--port", "0", "--data-dir", self.data)
        self.assertEqual(start.returncode, 1)
        self.assertRegex(start.stderr, r"page \d+ names itself page 0")
        self.assertIn("it was not opened", start.stderr)

        check = warrend("--check", "--data-dir", self.data)
        self.assertEqual(check.returncode, 1)
        self.assertRegex(check.stdout, r"page \d+ names itself page 0")

        rescued = os.path.join(self.base, "rescued")
        salvage = warrend("--salvage-from", self.data, "--data-dir", rescued)
        self.assertEqual(salvage.returncode, 0, salvage.stdout + salvage.stderr)
        got = drain(rescued)
        self.assertNotIn(body(100), got)
        self.assertGreater(len(got), COUNT // 2)
        # What is served is what was stored, in order.
        expected = [b for b in (body(n) for n in range(COUNT)) if b in set(got)]
        self.assertEqual(got, expected)

    def test_a_truncated_data_file_is_refused_with_the_reason(self):
        size = os.path.getsize(self.file)
        os.truncate(self.file, size // 2 // 4096 * 4096)
        start = warrend("--port", "0", "--data-dir", self.data)
        self.assertEqual(start.returncode, 1)
        self.assertIn("is truncated", start.stderr)


if __name__ == "__main__":
    unittest.main()
