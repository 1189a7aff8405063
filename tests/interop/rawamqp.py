"""A minimal raw AMQP 0-9-1 client: exact frames in, exact frames out, for protocol tests."""
import socket
import struct

FRAME_END = b"\xce"


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def table(entries=None):
    body = b"".join(shortstr(k) + v for k, v in (entries or {}).items())
    return longstr(body)


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + FRAME_END


def method(channel, class_id, method_id, args=b""):
    return frame(1, channel, struct.pack(">HH", class_id, method_id) + args)


class Raw:
    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        # Small writes go out at once, as real clients send them (Nagle would hold a write
        # back until the previous one is acknowledged, and acks are delayed).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        kind, channel, size = struct.unpack(">BHI", self.recv_exact(7))
        payload = self.recv_exact(size)
        assert self.recv_exact(1) == FRAME_END
        return kind, channel, payload

    def read_method(self):
        """The next method frame (skipping heartbeats): (channel, class, method, args)."""
        while True:
            kind, channel, payload = self.read_frame()
            if kind == 1:
                class_id, method_id = struct.unpack(">HH", payload[:4])
                return channel, class_id, method_id, payload[4:]

    def closed_by_peer(self):
        """True once the server has closed the socket, in order or with a reset."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def handshake(self, frame_max=131072, channel_max=2047, vhost="/", user="guest", password="guest",
                  heartbeat=0):
        self.send(b"AMQP\x00\x00\x09\x01")
        assert self.read_method()[1:3] == (10, 10)  # start
        caps = b"F" + table({"authentication_failure_close": b"t\x01"})
        self.send(method(0, 10, 11, table({"capabilities": caps}) + shortstr("PLAIN")
                         + longstr(b"\x00" + user.encode() + b"\x00" + password.encode()) + shortstr("en_US")))
        reply = self.read_method()
        if reply[1:3] != (10, 30):
            return reply
        self.send(method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, heartbeat)))
        self.send(method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00"))
        return self.read_method()

    def open_channel(self, channel):
        self.send(method(channel, 20, 10, shortstr("")))
        return self.read_method()

    def close(self):
        self.sock.close()


def close_reason(args):
    """(reply-code, reply-text, class, method) of a connection.close or channel.close."""
    code = struct.unpack(">H", args[:2])[0]
    n = args[2]
    text = args[3:3 + n].decode()
    class_id, method_id = struct.unpack(">HH", args[3 + n:7 + n])
    return code, text, class_id, method_id
