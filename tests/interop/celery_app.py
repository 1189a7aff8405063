"""A Celery app whose task fails twice, then succeeds: acks_late with retries."""
import os

from celery import Celery

app = Celery("warren_interop", broker=f"amqp://guest:guest@127.0.0.1:{os.environ['CELERY_PORT']}//")
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
                task_default_queue=os.environ["CELERY_QUEUE"], broker_connection_retry_on_startup=True)
STATE_DIR = os.environ["CELERY_STATE_DIR"]


@app.task(bind=True, max_retries=5)
def flaky(self, key):
    attempts_file = os.path.join(STATE_DIR, f"{key}.attempts")
    attempts = int(open(attempts_file).read()) + 1 if os.path.exists(attempts_file) else 1
    with open(attempts_file, "w") as f:
        f.write(str(attempts))
    if attempts < 3:
        raise self.retry(countdown=0)
    with open(os.path.join(STATE_DIR, f"{key}.done"), "w") as f:
        f.write(str(attempts))
