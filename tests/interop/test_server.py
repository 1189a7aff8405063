"""warrend itself: the config file, --port 0, users, clean shutdown on SIGTERM."""
import os
import signal
import subprocess
import tempfile
import unittest

import pika
import pika.exceptions

from harness import free_port


@unittest.skipIf("AMQP_PORT" in os.environ, "about warrend itself")
class Server(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="warren-server-")

    def test_config_file_users_and_port(self):
        port = free_port()
        config = os.path.join(self.dir, "warren.conf")
        with open(config, "w") as f:
            f.write(f"# a comment\nport = {port}\ndata-dir = {self.dir}/data\nuser = app:secret\n"
                    "durability = nosync\n")
        proc = subprocess.Popen([os.environ["WARREND"], "--config", config], stderr=subprocess.PIPE, text=True)
        try:
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
        self.assertTrue(os.path.exists(os.path.join(self.dir, "data", "data.mdb")))

    def test_port_zero_prints_the_port_and_sigint_stops_cleanly(self):
        proc = subprocess.Popen([os.environ["WARREND"], "--port", "0", "--durability", "memory",
                                 "--log-level", "warning"], stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        self.assertRegex(line, r"^port \d+$")
        port = int(line.split()[1])
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        proc.send_signal(signal.SIGINT)
        # The client is told why: connection.close 320, then the server exits.
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as e:
            conn.channel().queue_declare("x")
            conn.process_data_events(time_limit=5)
        self.assertEqual(e.exception.reply_code, 320)
        self.assertEqual(proc.wait(timeout=10), 0)
        proc.stdout.close()

    def test_bad_arguments_are_refused(self):
        for args in (["--port", "notanumber"], ["--durability", "sometimes"], ["--frobnicate", "1"]):
            result = subprocess.run([os.environ["WARREND"], *args], capture_output=True, text=True, timeout=10)
            self.assertEqual(result.returncode, 2, args)
            self.assertIn("usage:", result.stderr)


if __name__ == "__main__":
    unittest.main()
