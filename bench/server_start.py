"""Start time and memory of warrend: empty, and with a million queued 256-byte messages.

    /usr/bin/python3 bench/server_start.py [BUILD_DIR] [MESSAGES]

Start time is from spawning warrend to its first accepted TCP connection (median of 7).
Memory is read from /proc after start: VmRSS, and RssAnon (heap; LMDB's map is file-backed).
The backlog is published through warrend itself with amqp_load (confirms, window 256).
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
messages = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
warrend = os.path.join(build, "warrend")
load = os.path.join(build, "bench", "amqp_load")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(data_dir, port):
    began = time.perf_counter()
    proc = subprocess.Popen([warrend, "--port", str(port), "--management-port", "0", "--prometheus-port", "0", "--data-dir", data_dir, "--log-level", "warning"])
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, (time.perf_counter() - began) * 1000
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("warrend exited")


def memory_kib(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            fields[key] = int(rest.split()[0])
    return fields


def measure(data_dir, label):
    times, mem = [], None
    for _ in range(7):
        port = free_port()
        proc, ms = start(data_dir, port)
        times.append(ms)
        time.sleep(0.2)  # let it settle before reading its memory
        mem = memory_kib(proc.pid)
        proc.terminate()
        proc.wait()
    print(f"{label:<28} start {statistics.median(times):7.1f} ms (min {min(times):.1f})   "
          f"VmRSS {mem['VmRSS'] / 1024:6.1f} MB   RssAnon {mem['RssAnon'] / 1024:6.1f} MB")


data = tempfile.mkdtemp(prefix="warren-start-")
try:
    measure(data, "empty data directory")
    port = free_port()
    proc, _ = start(data, port)
    subprocess.run([load, "--port", str(port), "--mode", "publish", "--size", "256", "--messages",
                    str(messages), "--window", "256", "--queue", "backlog"], check=True, stdout=subprocess.DEVNULL)
    proc.terminate()
    proc.wait()
    measure(data, f"{messages} messages queued")
finally:
    shutil.rmtree(data, ignore_errors=True)
