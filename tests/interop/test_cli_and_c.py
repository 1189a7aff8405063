"""amqp-tools (amqp-publish, amqp-consume, ...) and a C program on librabbitmq."""
import os
import subprocess
import unittest

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)



def tool(*args, **kwargs):
    server = f"127.0.0.1:{broker().port}"
    return subprocess.run([args[0], "-s", server, *args[1:]], capture_output=True, text=True,
                          timeout=30, check=True, **kwargs)


class AmqpTools(unittest.TestCase):
    def test_publish_then_consume_and_get(self):
        queue = unique("tools")
        declared = tool("amqp-declare-queue", "-d", "-q", queue)
        self.assertEqual(declared.stdout.strip(), queue)
        for body in ("alpha", "beta", "gamma"):
            tool("amqp-publish", "-r", queue, "-p", "-b", body)
        got = tool("amqp-get", "-q", queue)
        self.assertEqual(got.stdout, "alpha")
        # amqp-consume acks each message after the command handled it.
        consumed = tool("amqp-consume", "-q", queue, "-c", "2", "cat")
        self.assertEqual(consumed.stdout, "betagamma")
        empty = subprocess.run(["amqp-get", "-s", f"127.0.0.1:{broker().port}", "-q", queue],
                               capture_output=True, text=True, timeout=30)
        self.assertNotEqual(empty.returncode, 0)  # nothing left
        tool("amqp-delete-queue", "-q", queue)


def c_client(queue, phase):
    result = subprocess.run([os.environ["RABBITMQ_C_CLIENT"], str(broker().port), queue, phase],
                            capture_output=True, text=True, timeout=60)
    return result


class RabbitmqC(unittest.TestCase):
    def test_confirms_get_nack_dead_letter_consume_with_librabbitmq(self):
        result = c_client(unique("rabbitmq-c"), "all")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("all expectations held", result.stdout)

    def test_persistent_messages_survive_a_restart(self):
        queue = unique("rabbitmq-c-restart")
        self.assertEqual(c_client(queue, "publish").returncode, 0)
        broker().restart()
        result = c_client(queue, "verify")
        self.assertEqual(result.returncode, 0, result.stderr)


class AmqpToolsRestart(unittest.TestCase):
    def test_persistent_messages_survive_a_restart(self):
        queue = unique("tools-restart")
        tool("amqp-declare-queue", "-d", "-q", queue)
        tool("amqp-publish", "-r", queue, "-p", "-b", "durable")
        broker().restart()
        self.assertEqual(tool("amqp-get", "-q", queue).stdout, "durable")
        tool("amqp-delete-queue", "-q", queue)


if __name__ == "__main__":
    unittest.main()
