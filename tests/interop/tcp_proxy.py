"""A TCP proxy on loopback that tests put between a shovel and its upstream to break the link
in the ways a real network does:

- cut(): every connection through it is reset; new ones go on working.
- blackhole(): connections stay open but nothing gets through either way (a router that
  drops packets), and new connections are accepted and then hear nothing. What was sent
  meanwhile is held, and arrives when open() heals the link, as TCP's retransmissions do.
- refuse(): new connections are closed at once; open() ends any of these modes.
- slow(bytes_per_second): everything is paced to that rate.
"""
import socket
import threading
import time

from harness import free_port


class TcpProxy:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.mode = "open"
        self.flowing = threading.Event()
        self.flowing.set()
        self.rate = None  # bytes per second when slowed
        self.lock = threading.Lock()
        self.pairs = []  # (client socket, upstream socket)
        self.accepted = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- what a test does ----------------------------------------------------------------

    def open(self):
        self.mode, self.rate = "open", None
        self.flowing.set()

    def refuse(self):
        self.mode = "refuse"
        self.cut()

    def blackhole(self):
        self.mode = "blackhole"
        self.flowing.clear()

    def slow(self, bytes_per_second):
        self.rate = bytes_per_second

    def cut(self):
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()  # linger 0: a reset, as a broken link shows
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.flowing.set()
        self.cut()
        self.listener.close()

    # ---- the pumps -------------------------------------------------------------------------

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "refuse":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source, sink):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            self.flowing.wait()  # held while black-holed
            if self.rate:
                time.sleep(len(data) / self.rate)
            try:
                sink.sendall(data)
            except OSError:
                break
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
