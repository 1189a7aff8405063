#!/usr/bin/python3
"""Memory figures for bench/README.md: what an idle connection and a byte of body in flight
cost, and the peak RssAnon (anonymous memory: heap and stacks, not LMDB's file-backed map)
each abusive peer of issue 10 reaches. Each figure is growth over a baseline taken in the
same warrend just before.

    /usr/bin/python3 bench/resource_figures.py [build/warrend]

Runs a fresh warrend (fsync, a temporary data directory) per case on a free loopback port.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "interop"))
from rawamqp import Raw, frame, method, shortstr, table  # noqa: E402

WARREND = sys.argv[1] if len(sys.argv) > 1 else "build/warrend"


def kib(pid, field="RssAnon"):
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1])


class Warrend:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="warren-figures-")
        self.proc = subprocess.Popen([WARREND, "--port", "0", "--management-port", "0", "--prometheus-port", "0", "--data-dir", self.dir, "--log-level", "error", *args],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().split()[1])
        self.baseline = kib(self.proc.pid)
        self.peak = self.baseline
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, kib(self.proc.pid))
            except (FileNotFoundError, StopIteration):
                return
            time.sleep(0.005)

    def growth(self):
        return kib(self.proc.pid) - self.baseline

    def peak_growth(self):
        return self.peak - self.baseline

    def stop(self):
        self._done.set()
        self.proc.terminate()
        self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def publish_frames(channel, queue, body_size):
    props = struct.pack(">H", 0x1000) + b"\x02"
    return (method(channel, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr(queue) + b"\x00")
            + frame(2, channel, struct.pack(">HHQ", 60, 0, body_size) + props))


def send_until_stuck(sock, data, limit):
    """Sends data over and over until `limit` bytes went out or the peer stops reading."""
    sock.setblocking(False)
    sent, at, stuck = 0, 0, None
    view = memoryview(data)
    while sent < limit:
        try:
            n = sock.send(view[at:])
            at, sent, stuck = (at + n) % len(data), sent + n, None
        except BlockingIOError:
            stuck = stuck or time.monotonic()
            if time.monotonic() - stuck > 1.0:
                break
            time.sleep(0.005)
    sock.setblocking(True)
    return sent


def declare(queue, durable=True, nowait=True):
    flags = (2 if durable else 0) | (16 if nowait else 0)
    return method(1, 50, 10, struct.pack(">H", 0) + shortstr(queue) + bytes([flags]) + table())


def delete(queue):
    return method(1, 50, 40, struct.pack(">H", 0) + shortstr(queue) + b"\x04")  # nowait


def row(what, figure, note=""):
    print(f"| {what} | {figure} | {note} |", flush=True)


def idle_connections(n=1000):
    w = Warrend()
    raws = []
    for _ in range(n):
        r = Raw(w.port, timeout=30)
        r.handshake()
        r.open_channel(1)
        raws.append(r)
    row(f"idle connection (handshake + one channel), {n} of them", f"{w.growth() * 1024 / n / 1000:.1f} kB each")
    for r in raws:
        r.close()
    w.stop()


def bodies_in_flight():
    w = Warrend()
    r = Raw(w.port, timeout=30)
    r.handshake()
    sent_total = 0
    for ch in range(1, 17):
        r.open_channel(ch)
        r.send(publish_frames(ch, "nowhere", 64 << 20))
    chunk = b"b" * 131000
    for ch in range(1, 17):  # 4 MiB of each body: 64 MiB in flight, under the 256 MiB budget
        for _ in range(32):
            r.send(frame(3, ch, chunk))
            sent_total += len(chunk)
    r.open_channel(17)  # answered once every body frame before it was read
    row("body bytes in flight (16 bodies, 64 MiB arrived)", f"{w.growth() * 1024 / sent_total:.2f} B per byte")
    r.close()
    w.stop()


def huge_frames_before_login():
    w = Warrend()
    accepted = 0
    for _ in range(4):
        s = socket.create_connection(("127.0.0.1", w.port), timeout=30)
        s.sendall(b"AMQP\x00\x00\x09\x01")
        s.sendall(struct.pack(">BHI", 1, 0, 2 << 30))  # announces 2 GiB
        try:
            accepted += send_until_stuck(s, b"x" * (1 << 20), 256 << 20)
        except OSError:
            pass  # reset by the server
        s.close()
    row("4 clients announce a 2 GiB frame before login, then send up to 256 MiB",
        f"peak +{w.peak_growth() / 1024:.1f} MB", f"{accepted / (1 << 20):.1f} MiB read in all; was 1,010 MB")
    w.stop()


def publishers_without_consumers(total=1 << 30):
    w = Warrend()
    setup = Raw(w.port, timeout=60)
    setup.handshake()
    setup.open_channel(1)
    setup.send(declare("flood", nowait=False))
    setup.read_method()
    body = b"p" * 65536
    one = publish_frames(1, "flood", len(body)) + frame(3, 1, body)

    def flood():
        r = Raw(w.port, timeout=600)
        r.handshake()
        r.open_channel(1)
        r.sock.sendall(one * (total // 2 // len(body)))
        r.open_channel(2)  # everything before it was read
        r.close()
    threads = [threading.Thread(target=flood) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row(f"2 publishers, {total >> 30} GiB of persistent 64 KiB messages, no consumer",
        f"peak +{w.peak_growth() / 1024:.1f} MB", "was 2.0 GB for 2 GiB")
    setup.close()
    w.stop()


def partial_bodies():
    w = Warrend()
    r = Raw(w.port, timeout=30)
    r.handshake()
    for ch in range(1, 17):
        r.open_channel(ch)
        r.send(publish_frames(ch, "nowhere", 120 << 20))
    data = b"".join(frame(3, ch, b"b" * 131000) for ch in range(1, 17))
    sent = send_until_stuck(r.sock, data, 16 * (120 << 20) - (1 << 20))
    row("16 channels each send 120 MiB of a body that never completes",
        f"peak +{w.peak_growth() / 1024:.1f} MB", f"{sent / (1 << 20):.0f} MiB read before the budget stopped it; "
        "was 1.9 GB")
    r.close()
    w.stop()


def announced_bodies(connections=40, channels=2000):
    w = Warrend()
    size0 = kib(w.proc.pid, "VmSize")
    raws = []
    started = time.monotonic()
    for _ in range(connections):
        r = Raw(w.port, timeout=120)
        r.handshake(channel_max=channels)
        r.send(b"".join(method(ch, 20, 10, shortstr("")) + publish_frames(ch, "nowhere", 128 << 20)
                        for ch in range(1, channels + 1)))
        raws.append(r)
    probe = Raw(w.port, timeout=120)
    probe.handshake()
    probe.open_channel(1)
    took = time.monotonic() - started
    row(f"{connections} connections x {channels} channels announce 128 MiB bodies",
        f"peak +{w.peak_growth() / 1024:.1f} MB, address space +{(kib(w.proc.pid, 'VmSize') - size0) / 1024:.0f} MB",
        f"a new client served after {took:.1f} s of it; was 10 TB reserved, 16 s stalls")
    for r in raws:
        r.close()
    probe.close()
    w.stop()


def queues_declared_and_deleted(n=50000):
    w = Warrend()
    r = Raw(w.port, timeout=120)
    r.handshake()
    r.open_channel(1)
    after = []
    for cycle in range(3):
        r.send(b"".join(declare(f"q{i}") + delete(f"q{i}") for i in range(n)))
        r.send(declare("sync", nowait=False))
        r.read_method()
        after.append(w.growth())
    row(f"{n} durable queues declared and deleted, 3 times",
        f"+{(after[2] - after[0]) / 1024:.1f} MB from cycle 1 to 3", "was 40-45 MB per cycle")
    r.close()
    w.stop()


if __name__ == "__main__":
    print("| case | figure | notes |\n|---|---|---|")
    idle_connections()
    bodies_in_flight()
    huge_frames_before_login()
    partial_bodies()
    announced_bodies()
    queues_declared_and_deleted()
    publishers_without_consumers()
