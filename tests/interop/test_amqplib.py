"""Node's amqplib (from npm), driven through node."""
import os
import subprocess
import unittest

from harness import Broker, unique

broker = None
HERE = os.path.dirname(os.path.abspath(__file__))


def setUpModule():
    global broker
    broker = Broker()


def tearDownModule():
    broker.close()


class Amqplib(unittest.TestCase):
    def test_confirm_channel_get_nack_consume(self):
        result = subprocess.run(["node", os.path.join(HERE, "node", "amqplib_client.js"), str(broker.port),
                                 unique("amqplib")], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("all expectations held", result.stdout)


if __name__ == "__main__":
    unittest.main()
