"""A Celery app whose results come back through the rpc:// result backend."""
import os

from celery import Celery

app = Celery("warren_rpc", broker=f"amqp://guest:guest@127.0.0.1:{os.environ['CELERY_PORT']}//", backend="rpc://")
app.conf.update(task_default_queue=os.environ["CELERY_QUEUE"], broker_connection_retry_on_startup=True)


@app.task
def add(x, y):
    return x + y
