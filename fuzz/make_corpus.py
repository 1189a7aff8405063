"""Writes the seed corpus: small valid inputs for each fuzz target (run once, commit the output)."""
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "interop"))
from rawamqp import frame, longstr, method, shortstr, table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def props(delivery_mode=2, headers=None):
    flags, body = 0x1000, bytes([delivery_mode])
    if headers is not None:
        flags |= 0x2000
        body = table(headers) + body
    return struct.pack(">H", flags) + body


def publish(channel, exchange, key, payload, properties=None):
    return (method(channel, 60, 40, struct.pack(">H", 0) + shortstr(exchange) + shortstr(key) + b"\x00")
            + frame(2, channel, struct.pack(">HHQ", 60, 0, len(payload)) + (properties or props()))
            + frame(3, channel, payload))


q = struct.pack(">H", 0) + shortstr("q")
sessions = {
    "declare_publish_get": method(1, 50, 10, q + b"\x02" + table()) + publish(1, "", "q", b"hello")
    + method(1, 60, 70, q + b"\x00") + method(1, 60, 80, struct.pack(">Q", 1) + b"\x00"),
    "confirms_consume": method(1, 85, 10, b"\x00") + method(1, 50, 10, q + b"\x00" + table())
    + method(1, 60, 20, q + shortstr("c") + b"\x00" + table()) + publish(1, "", "q", b"x" * 100)
    + method(1, 60, 120, struct.pack(">Q", 0) + b"\x03"),
    "topic_headers": method(1, 40, 10, struct.pack(">H", 0) + shortstr("t") + shortstr("topic") + b"\x00" + table())
    + method(1, 50, 20, q + shortstr("t") + shortstr("a.#") + b"\x00" + table())
    + publish(1, "t", "a.b", b"m", props(headers={"CC": b"A" + longstr(b"S" + longstr("q"))})),
    "tx": method(1, 90, 10) + publish(1, "", "q", b"t") + method(1, 90, 20) + method(1, 90, 30),
    "errors": method(1, 60, 80, struct.pack(">Q", 9) + b"\x00") + frame(3, 2, b"zz") + frame(9, 0, b""),
    "close": method(1, 20, 40, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0))
    + method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)),
}
for name, data in sessions.items():
    write("fuzz_connection", name, data)
    write("fuzz_frames", name, data)
write("fuzz_frames", "start_ok", method(0, 10, 11, table({"product": b"S" + longstr("x")}) + shortstr("PLAIN")
                                        + longstr(b"\0guest\0guest") + shortstr("en_US")))

all_types = table({"t": b"t\x01", "b": b"b\xff", "B": b"B\x01", "s": b"s\x00\x01", "u": b"u\x00\x01",
                   "I": b"I" + struct.pack(">i", -5), "i": b"i" + struct.pack(">I", 5), "l": b"l" + struct.pack(">q", 7),
                   "f": b"f" + struct.pack(">f", 1.5), "d": b"d" + struct.pack(">d", 2.5), "D": b"D\x02\x00\x00\x00\x05",
                   "S": b"S" + longstr("str"), "x": b"x" + longstr(b"\x00\x01"), "A": b"A" + longstr(b"I\x00\x00\x00\x01"),
                   "T": b"T" + struct.pack(">Q", 1700000000), "F": b"F" + table({"k": b"V"}), "V": b"V"})
write("fuzz_field_table", "all_types", all_types)
write("fuzz_field_table", "properties", props(headers={"x-death": b"A" + longstr(b"F" + table({"count": b"l" + struct.pack(">q", 1)}))}))
write("fuzz_field_table", "empty", b"\x00\x00\x00\x00")

record = bytes([1, 1, 1]) + b"x" + bytes([1]) + b"k" + struct.pack(">I", 3) + props() + b"body"
write("fuzz_records", "message", record)
write("fuzz_records", "queue", bytes([1]) + struct.pack(">Q", 7) + longstr("/") + longstr("q") + b"\x00" + longstr(b""))
write("fuzz_records", "stats", bytes([1]) + struct.pack(">QQQ", 1, 2, 3))

# A journal record (storage/op_codec.cpp): subset, op count, then each op.
def op(kind, db, ids, key=b"", value=b"", message=None):
    out = bytes([kind, db]) + struct.pack(">QQQQ", *ids) + longstr(key) + longstr(value)
    return out + (longstr(message) if message is not None else b"\xff\xff\xff\xff")
ops = [op(2, 5, (1, 2, 0, 4), message=record), op(4, 5, (1, 1, 0, 0)), op(0, 2, (0, 0, 0, 0), b"k", b"v")]
write("fuzz_records", "journal_ops", bytes([0]) + struct.pack(">I", len(ops)) + b"".join(ops))

# fuzz_tls: mode byte, chunk byte, then bytes. A real ClientHello (from Python's ssl over
# memory), a plaintext AMQP client on the TLS port, a forged record, and application data.
import ssl  # noqa: E402

client = ssl.create_default_context()
client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
outgoing = ssl.MemoryBIO()
tls = client.wrap_bio(ssl.MemoryBIO(), outgoing)
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outgoing.read()
write("fuzz_tls", "client_hello", bytes([0, 63]) + hello)
write("fuzz_tls", "client_hello_cut_short", bytes([0, 6]) + hello[:40])
write("fuzz_tls", "plaintext_amqp", bytes([0, 7]) + b"AMQP\x00\x00\x09\x01")
write("fuzz_tls", "forged_record", bytes([1, 63]) + b"\x17\x03\x03\x00\x20" + bytes(32))
write("fuzz_tls", "alert", bytes([1, 3]) + b"\x15\x03\x03\x00\x02\x02\x28")
write("fuzz_tls", "application_data", bytes([2, 5]) + b"AMQP\x00\x00\x09\x01" + bytes(range(200)))
