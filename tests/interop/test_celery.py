"""A python3-celery worker running tasks with acks_late and retries."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import pika

from harness import broker, setUpModule, tearDownModule, unique  # noqa: F401 (module fixtures)

HERE = os.path.dirname(os.path.abspath(__file__))



class Celery(unittest.TestCase):
    def test_worker_retries_a_failing_task_then_acks_it(self):
        state = tempfile.mkdtemp(prefix="warren-celery-")
        self.addCleanup(shutil.rmtree, state, ignore_errors=True)
        queue = unique("celery")
        env = dict(os.environ, CELERY_PORT=str(broker().port), CELERY_QUEUE=queue, CELERY_STATE_DIR=state,
                   PYTHONPATH=HERE)
        sys.path.insert(0, HERE)
        os.environ.update(CELERY_PORT=str(broker().port), CELERY_QUEUE=queue, CELERY_STATE_DIR=state)
        import celery_app
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-l", "warning"],
            env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            keys = [f"job{i}" for i in range(3)]
            for key in keys:
                celery_app.flaky.delay(key)
            deadline = time.monotonic() + 60
            while not all(os.path.exists(os.path.join(state, f"{k}.done")) for k in keys):
                self.assertIsNone(worker.poll(), worker.stderr.read() if worker.poll() is not None else "")
                self.assertLess(time.monotonic(), deadline, "the tasks did not finish")
                time.sleep(0.1)  # the worker is another process; its files are all we can watch
            for key in keys:
                self.assertEqual(open(os.path.join(state, f"{key}.done")).read(), "3")
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
            ch = conn.channel()
            deadline = time.monotonic() + 10
            while ch.queue_declare(queue, passive=True).method.message_count:  # the last acks land
                self.assertLess(time.monotonic(), deadline)
                conn.sleep(0.1)
            conn.close()
        finally:
            worker.terminate()
            worker.wait(timeout=20)
        self.assertEqual(len(os.listdir(state)), 6)


if __name__ == "__main__":
    unittest.main()
