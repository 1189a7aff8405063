"""A broker inside a Python process, through Warren's C API (warren/c.h) and ctypes: no
server, no socket. Publishes with confirms, consumes with a callback, dead-letters a
message and replays it, and prints "ok" at the end.

    WARREN_LIBRARY=/usr/local/lib/libwarren.so python3 examples/embed_ctypes.py

libwarren.so comes from a build with -DBUILD_SHARED_LIBS=ON (README, "The C API").
"""
import ctypes
import ctypes.util
import os
import shutil
import sys
import tempfile
import threading

lib = ctypes.CDLL(os.environ.get("WARREN_LIBRARY") or ctypes.util.find_library("warren") or "libwarren.so")

c_error_p = ctypes.c_void_p
DELIVER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
WARREN_DURABLE, WARREN_PASSIVE = 1, 8


def declare(name, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


p, s, u64, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_int
err_p = ctypes.POINTER(c_error_p)
error_code = declare("warren_error_code", i, p)
error_text = declare("warren_error_text", s, p)
error_free = declare("warren_error_free", None, p)
options_create = declare("warren_options_create", p)
options_destroy = declare("warren_options_destroy", None, p)
options_set_data_dir = declare("warren_options_set_data_dir", None, p, s)
broker_open = declare("warren_broker_open", p, p, err_p)
broker_close = declare("warren_broker_close", None, p)
broker_replay = declare("warren_broker_replay", u64, p, s, s, i, err_p)
channel_open = declare("warren_channel_open", p, p, err_p)
channel_close = declare("warren_channel_close", None, p)
table_create = declare("warren_table_create", p)
table_destroy = declare("warren_table_destroy", None, p)
table_set_string = declare("warren_table_set_string", None, p, s, s)
queue_declare = declare("warren_queue_declare", i, p, s, i, p, ctypes.POINTER(ctypes.c_char_p),
                        ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32), err_p)
confirm_select = declare("warren_confirm_select", i, p, err_p)
basic_publish = declare("warren_basic_publish", u64, p, s, s, ctypes.c_char_p, ctypes.c_size_t, p, i, err_p)
wait_for_confirms = declare("warren_wait_for_confirms", i, p, ctypes.c_int64, ctypes.POINTER(i), err_p)
basic_qos = declare("warren_basic_qos", i, p, ctypes.c_uint16, err_p)
basic_consume = declare("warren_basic_consume", p, p, s, i, DELIVER, p, err_p)
basic_cancel = declare("warren_basic_cancel", i, p, p, err_p)
basic_ack = declare("warren_basic_ack", i, p, u64, i, err_p)
basic_get = declare("warren_basic_get", p, p, s, i, err_p)
basic_reject = declare("warren_basic_reject", i, p, u64, i, err_p)
channel_flush = declare("warren_channel_flush", i, p, ctypes.c_int64, err_p)
delivery_destroy = declare("warren_delivery_destroy", None, p)
delivery_tag = declare("warren_delivery_tag", u64, p)
delivery_body = declare("warren_delivery_body", p, p, ctypes.POINTER(ctypes.c_size_t))
free = declare("warren_free", None, p)


class WarrenError(Exception):
    def __init__(self, err):
        self.code = error_code(err)
        super().__init__(error_text(err).decode())
        error_free(err)


def check(call, *args):
    """Calls a warren_* function whose last argument is warren_error_t**; raises on failure."""
    err = c_error_p()
    result = call(*args, ctypes.byref(err))
    if err.value:
        raise WarrenError(err)
    return result


def body_of(delivery):
    size = ctypes.c_size_t()
    data = delivery_body(delivery, ctypes.byref(size))
    return ctypes.string_at(data, size.value)


def main():
    data_dir = tempfile.mkdtemp(prefix="warren-ctypes-")
    try:
        options = options_create()
        options_set_data_dir(options, data_dir.encode())
        broker = check(broker_open, options)
        options_destroy(options)
        ch = check(channel_open, broker)

        check(queue_declare, ch, b"py-jobs", WARREN_DURABLE, None, None, None, None)
        check(confirm_select, ch)
        for n in range(10):
            body = f"job {n}".encode()
            check(basic_publish, ch, b"", b"py-jobs", body, len(body), None, 0)
        acked = ctypes.c_int()
        check(wait_for_confirms, ch, 10_000, ctypes.byref(acked))
        assert acked.value == 1, "a publish was nacked"

        # Consume: the callback runs on the broker's thread and acknowledges from there.
        consumer = check(channel_open, broker)
        got, done = [], threading.Event()

        @DELIVER
        def on_delivery(_state, delivery):
            got.append(body_of(delivery).decode())
            basic_ack(consumer, delivery_tag(delivery), 0, None)
            if len(got) == 10:
                done.set()

        check(basic_qos, consumer, 5)
        tag = check(basic_consume, consumer, b"py-jobs", 0, on_delivery, None)
        assert done.wait(30), f"only {len(got)} deliveries"
        assert got == [f"job {n}" for n in range(10)], got
        check(basic_cancel, consumer, tag)
        free(tag)
        channel_close(consumer)

        # A failure is the reply code and RabbitMQ's text.
        try:
            check(queue_declare, ch, b"missing", WARREN_PASSIVE, None, None, None, None)
            raise AssertionError("a passive declare of a missing queue succeeded")
        except WarrenError as e:
            assert e.code == 404 and str(e) == "NOT_FOUND - no queue 'missing' in vhost '/'", (e.code, str(e))
        channel_close(ch)

        # Dead-lettered, then replayed back to where it died.
        ch = check(channel_open, broker)
        args = table_create()
        table_set_string(args, b"x-dead-letter-exchange", b"")
        table_set_string(args, b"x-dead-letter-routing-key", b"py-dead")
        check(queue_declare, ch, b"py-dead", WARREN_DURABLE, None, None, None, None)
        check(queue_declare, ch, b"py-work", WARREN_DURABLE, args, None, None, None)
        table_destroy(args)
        check(basic_publish, ch, b"", b"py-work", b"poison", 6, None, 0)
        delivery = check(basic_get, ch, b"py-work", 0)
        check(basic_reject, ch, delivery_tag(delivery), 0)
        delivery_destroy(delivery)
        check(channel_flush, ch, 10_000)
        assert check(broker_replay, broker, b"py-dead", None, 0) == 1
        delivery = check(basic_get, ch, b"py-work", 1)
        assert delivery and body_of(delivery) == b"poison"
        delivery_destroy(delivery)
        channel_close(ch)
        broker_close(broker)
        print("ok")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
