"""AMQPS: pika and py-amqp over TLS, client certificates and the EXTERNAL mechanism, and bad
input on both ports (plain clients on the TLS port, TLS clients on the plain one, untrusted
certificates, stalled handshakes): each ends in a clean close within a bounded time while
other connections go on. The same scenarios run against a RabbitMQ node configured with
the same certificates (made at test time by tls_certs.py) and must end the same way.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

import amqp
import pika

from harness import free_ports, http_call, start_logged_warrend
from rabbit_node import RabbitNode, scripts_dir
from tls_certs import Certificates

certs = None
rabbit = None


def setUpModule():
    global certs, rabbit
    certs = Certificates()
    if scripts_dir():
        rabbit = RabbitNode(plugins=("rabbitmq_auth_mechanism_ssl",), config=(
            "listeners.ssl.default = 127.0.0.1:{tls_port}\n"
            f"ssl_options.cacertfile = {certs.ca}\n"
            f"ssl_options.certfile = {certs.server[0]}\n"
            f"ssl_options.keyfile = {certs.server[1]}\n"
            "ssl_options.verify = verify_peer\n"
            "ssl_options.fail_if_no_peer_cert = false\n"
            "ssl_cert_login_from = common_name\n"
            "auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = AMQPLAIN\nauth_mechanisms.3 = EXTERNAL\n"
            "handshake_timeout = 2000\n"))
        os.chmod(certs.dir, 0o755)  # RabbitMQ reads them as its own user when run by root
        for name in os.listdir(certs.dir):
            os.chmod(os.path.join(certs.dir, name), 0o644)


def tearDownModule():
    if rabbit:
        rabbit.close()
    if certs:
        shutil.rmtree(certs.dir, ignore_errors=True)


class Warren:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="warren-tls-data-")
        self.port, self.tls_port = free_ports(2)
        self.log = open(os.path.join(self.dir, "log"), "w+")
        self.proc = start_logged_warrend(
            ["--port", str(self.port), "--tls-port", str(self.tls_port), "--tls-cert", certs.server[0],
             "--tls-key", certs.server[1], "--tls-ca", certs.ca, "--tls-verify-peer", "--handshake-timeout", "2000",
             *([] if "--management-port" in extra else ["--management-port", "0"]),
             *([] if "--prometheus-port" in extra else ["--prometheus-port", "0"]),
             "--data-dir", os.path.join(self.dir, "data"), "--durability", "nosync", *extra], self.log)

    def read_log(self):
        self.log.seek(0)
        return self.log.read()

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def context(client=None):
    ctx = ssl.create_default_context(cafile=certs.ca)
    if client:
        ctx.load_cert_chain(*client)
    return ctx


def outcome(fn):
    try:
        fn()
        return "ok"
    except pika.exceptions.ProbableAuthenticationError:
        return "login refused"
    except (pika.exceptions.AMQPConnectionError, ssl.SSLError, OSError, amqp.exceptions.AMQPError) as e:
        return f"refused: {type(e).__name__}"


def pika_round_trip(tls_port, ctx, credentials=None):
    params = pika.ConnectionParameters("127.0.0.1", tls_port, ssl_options=pika.SSLOptions(ctx, "localhost"),
                                       connection_attempts=1, socket_timeout=10)
    if credentials:
        params.credentials = credentials
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"over TLS")
    body = ch.basic_get(q, auto_ack=True)[2]
    conn.close()
    assert body == b"over TLS", body


def py_amqp_round_trip(tls_port):
    # PLAIN named: over TLS EXTERNAL is offered even without a client certificate (as
    # RabbitMQ does), and py-amqp would pick it.
    conn = amqp.Connection(f"127.0.0.1:{tls_port}", connect_timeout=10, login_method="PLAIN", ssl={
        "ca_certs": certs.ca, "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "localhost"})
    conn.connect()
    ch = conn.channel()
    q, _, _ = ch.queue_declare("", exclusive=True)
    ch.basic_publish(amqp.Message("py-amqp over TLS"), routing_key=q)
    msg = None
    while msg is None:
        msg = ch.basic_get(q, no_ack=True)
    conn.close()
    assert msg.body in ("py-amqp over TLS", b"py-amqp over TLS"), msg.body


def closed_within(host_port, send, limit=10):
    """Connects, sends `send`, and waits for the server to close: the seconds it took."""
    start = time.monotonic()
    with socket.create_connection(host_port, timeout=limit) as s:
        if send:
            s.sendall(send)
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
    return time.monotonic() - start


def scenarios(port, tls_port):
    """What each case ends in, in the same words for any broker."""
    cert_guest = certs.client("guest")
    rogue = certs.client("guest", ca="rogue-ca")
    return {
        "pika over TLS": outcome(lambda: pika_round_trip(tls_port, context())),
        "py-amqp over TLS": outcome(lambda: py_amqp_round_trip(tls_port)),
        "pika with a client certificate": outcome(lambda: pika_round_trip(tls_port, context(cert_guest))),
        "EXTERNAL as the certificate's CN": outcome(lambda: pika_round_trip(
            tls_port, context(cert_guest), pika.credentials.ExternalCredentials())),
        "EXTERNAL without a certificate": outcome(lambda: pika_round_trip(
            tls_port, context(), pika.credentials.ExternalCredentials())),
        "a certificate from an untrusted CA": outcome(lambda: pika_round_trip(tls_port, context(rogue))),
        "a client that does not trust the server": outcome(lambda: pika_round_trip(
            tls_port, ssl.create_default_context())),
    }


EXPECTED = {
    "pika over TLS": "ok",
    "py-amqp over TLS": "ok",
    "pika with a client certificate": "ok",
    "EXTERNAL as the certificate's CN": "ok",
    "EXTERNAL without a certificate": "login refused",
    "a certificate from an untrusted CA": "refused",
    "a client that does not trust the server": "refused",
}


class Tls(unittest.TestCase):
    def setUp(self):
        self.warren = Warren()

    def tearDown(self):
        self.warren.close()

    def test_clients_over_tls_as_rabbitmq(self):
        ours = scenarios(self.warren.port, self.warren.tls_port)
        for case, expected in EXPECTED.items():
            self.assertTrue(ours[case].startswith(expected), (case, ours[case]))
        if rabbit:
            theirs = scenarios(rabbit.port, rabbit.tls_port)
            self.assertEqual({k: v.split(":")[0] for k, v in ours.items()},
                             {k: v.split(":")[0] for k, v in theirs.items()})

    def test_bad_input_on_either_port_closes_cleanly_and_others_go_on(self):
        plain = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.warren.port))
        ch = plain.channel()
        ch.queue_declare("steady")
        cases = {
            "AMQP in clear on the TLS port": ((self.warren.tls_port), b"AMQP\x00\x00\x09\x01"),
            "a TLS hello on the plain port": ((self.warren.port), tls_client_hello()),
            "a stalled handshake on the TLS port": ((self.warren.tls_port), b""),
        }
        for case, (port, data) in cases.items():
            took = closed_within(("127.0.0.1", port), data)
            self.assertLess(took, 8, case)  # --handshake-timeout is 2 s
            ch.basic_publish("", "steady", case.encode())  # everyone else is unaffected
        self.assertEqual(ch.queue_declare("steady", passive=True).method.message_count, 3)
        plain.close()
        log = self.warren.read_log()
        self.assertIn("TLS handshake failed", log)
        self.assertIn("handshake timed out", log)

    def test_a_client_certificate_can_be_required(self):
        strict = Warren("--tls-fail-if-no-peer-cert")
        try:
            self.assertTrue(outcome(lambda: pika_round_trip(strict.tls_port, context())).startswith("refused"))
            self.assertEqual(outcome(lambda: pika_round_trip(strict.tls_port, context(certs.client("guest")))), "ok")
            self.assertIn("TLS handshake failed", strict.read_log())
        finally:
            strict.close()


class Https(unittest.TestCase):
    def test_the_management_api_and_metrics_over_https(self):
        mgmt, metrics = free_ports(2)
        warren = Warren("--management-port", str(mgmt), "--management-tls", "--prometheus-port", str(metrics),
                        "--prometheus-tls")
        try:
            ctx = context()
            request = urllib.request.Request(f"https://localhost:{mgmt}/api/overview", headers={
                "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
            with urllib.request.urlopen(request, context=ctx, timeout=30) as r:
                self.assertEqual(json.loads(r.read())["product_name"], "Warren")
            with urllib.request.urlopen(f"https://localhost:{metrics}/metrics", context=ctx, timeout=30) as r:
                self.assertIn(b"rabbitmq_connections", r.read())
            with self.assertRaises(OSError):  # plain HTTP is not served there
                urllib.request.urlopen(f"http://localhost:{mgmt}/api/overview", timeout=10).read()
            ctl = subprocess.run([os.environ["WARRENCTL"], "--url", f"https://localhost:{mgmt}", "--cacert", certs.ca,
                                  "list_queues"], capture_output=True, text=True, timeout=60)
            self.assertEqual(ctl.returncode, 0, ctl.stderr)
            untrusted = subprocess.run([os.environ["WARRENCTL"], "--url", f"https://localhost:{mgmt}", "list_queues"],
                                       capture_output=True, text=True, timeout=60)
            self.assertEqual(untrusted.returncode, 69)  # its certificate is not one the system trusts
        finally:
            warren.close()


class ShovelOverTls(unittest.TestCase):
    """amqps:// shovel URIs: the upstream's certificate verified, ours presented."""

    def setUp(self):
        self.mgmt = free_ports(1)[0]
        self.edge = Warren("--management-port", str(self.mgmt))

    def tearDown(self):
        self.edge.close()

    def shovel(self, name, dest_uri):
        status, body = http_call(self.mgmt, "PUT", f"/api/parameters/shovel/%2F/{name}", {"value": {
            "src-uri": "amqp://", "src-queue": name, "dest-uri": dest_uri, "dest-queue": name, "reconnect-delay": 0.5}})
        self.assertEqual(status, 201, body)

    def status(self, name):
        return http_call(self.mgmt, "GET", f"/api/shovels/vhost/%2F/{name}")[1]

    def publish_and_collect(self, name, port):
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", self.edge.port))
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(20):
            ch.basic_publish("", name, str(i).encode(), pika.BasicProperties(delivery_mode=2))
        conn.close()
        deadline = time.monotonic() + 60
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        got = []
        while len(got) < 20 and time.monotonic() < deadline:
            method, _, body = ch.basic_get(name, auto_ack=True) if queue_exists(ch, name) else (None, None, None)
            if method:
                got.append(int(body))
            else:
                time.sleep(0.05)  # another broker's queue: nothing to wait on
                ch = conn.channel()
        conn.close()
        return got

    def test_to_a_warren_and_to_rabbitmq_over_tls_with_a_client_certificate(self):
        cert, key = certs.client("guest")
        query = f"cacertfile={certs.ca}&certfile={cert}&keyfile={key}"
        centre = Warren()
        try:
            self.shovel("to-warren", f"amqps://guest:guest@localhost:{centre.tls_port}/%2F?{query}")
            self.assertEqual(self.publish_and_collect("to-warren", centre.port), list(range(20)))
        finally:
            centre.close()
        if rabbit:
            self.shovel("to-rabbit", f"amqps://guest:guest@localhost:{rabbit.tls_port}/%2F?{query}")
            self.assertEqual(self.publish_and_collect("to-rabbit", rabbit.port), list(range(20)))

    def test_an_upstream_that_fails_verification_is_not_used(self):
        centre = Warren()
        try:
            rogue = certs.path("rogue-ca.pem")
            self.shovel("untrusted", f"amqps://guest:guest@localhost:{centre.tls_port}/%2F?cacertfile={rogue}")
            deadline = time.monotonic() + 60
            while "certificate verify failed" not in (self.status("untrusted").get("reason") or ""):
                self.assertLess(time.monotonic(), deadline, self.status("untrusted"))
                time.sleep(0.05)  # the shovel's status has no event to wait on
            self.assertEqual(self.status("untrusted")["forwarded"], 0)
        finally:
            centre.close()


def queue_exists(ch, name):
    try:
        ch.queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False


def tls_client_hello():
    """The first bytes a TLS client sends: a real ClientHello, taken from Python's ssl."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


if __name__ == "__main__":
    unittest.main()
