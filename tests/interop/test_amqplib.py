"""Node's amqplib (from npm), driven through node."""
import os
import subprocess
import unittest

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))



def node_client(queue, phase):
    return subprocess.run(["node", os.path.join(HERE, "node", "amqplib_client.js"), str(broker().port), queue, phase],
                          capture_output=True, text=True, timeout=60)


class Amqplib(unittest.TestCase):
    def test_confirm_channel_get_nack_dead_letter_consume(self):
        result = node_client(unique("amqplib"), "all")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("all expectations held", result.stdout)

    def test_persistent_messages_survive_a_restart(self):
        queue = unique("amqplib-restart")
        result = node_client(queue, "publish")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        broker().restart()
        result = node_client(queue, "verify")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
