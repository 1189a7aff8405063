"""How long a graceful stop of warrend takes under load: four pika publishers confirm every
message; SIGTERM; time until the process has exited. Median and max of five rounds.

    /usr/bin/python3 bench/stop_time.py build/warrend
"""
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import pika


def one_round(warrend):
    data = tempfile.mkdtemp()
    proc = subprocess.Popen([warrend, "--port", "0", "--management-port", "0", "--prometheus-port", "0", "--data-dir", data, "--log-level", "warning"],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[1])
    started = threading.Semaphore(0)

    def publish():
        try:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            ch = conn.channel()
            ch.queue_declare("q", durable=True)
            ch.confirm_delivery()
            started.release()
            while True:
                ch.basic_publish("", "q", b"x", pika.BasicProperties(delivery_mode=2))
        except pika.exceptions.AMQPError:
            pass  # the broker closed the connection: the stop has begun

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in threads:
        started.acquire()
    time.sleep(0.3)  # under load
    begun = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    took = time.monotonic() - begun
    for t in threads:
        t.join()
    proc.stdout.close()
    shutil.rmtree(data, ignore_errors=True)
    return took


if __name__ == "__main__":
    times = [one_round(sys.argv[1]) for _ in range(5)]
    print(f"median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
