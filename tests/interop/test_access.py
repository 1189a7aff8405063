"""Users, tags and permissions, reply by reply against RabbitMQ: the same users and
permissions are made through each broker's management API, then the same AMQP operations
and HTTP requests are tried on both and every outcome (ok, or the reply code and text)
must be the same. A private RabbitMQ node (rabbit_node.py) is the oracle; the expected
outcomes are also written down, so that the test fails on a broker that checks nothing.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import pika

from harness import free_ports, http_call, start_logged_warrend, unique
from rabbit_node import RabbitNode, scripts_dir

rabbit = None


def setUpModule():
    global rabbit
    if scripts_dir():
        rabbit = RabbitNode(plugins=("rabbitmq_management",))


def tearDownModule():
    if rabbit:
        rabbit.close()


class Warren:
    def __init__(self, *args):
        self.dir = tempfile.mkdtemp(prefix="warren-access-")
        self.port, self.mgmt_port = free_ports(2)
        self.start(*args)

    def start(self, *args):
        self.log = open(os.path.join(self.dir, "log"), "a")
        self.proc = start_logged_warrend(
            ["--port", str(self.port), "--management-port", str(self.mgmt_port), "--prometheus-port", "0",
             "--data-dir", os.path.join(self.dir, "data"), "--durability", "nosync", *args], self.log)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.log.close()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def outcome(fn):
    """'ok', or the reply code and text the broker closed with."""
    try:
        fn()
        return "ok"
    except pika.exceptions.ChannelClosedByBroker as e:
        return f"{e.reply_code} {e.reply_text}"
    except pika.exceptions.ConnectionClosedByBroker as e:
        return f"{e.reply_code} {e.reply_text}"
    except pika.exceptions.ProbableAccessDeniedError as e:
        return f"access denied: {e.args[0]}"
    except pika.exceptions.ProbableAuthenticationError:
        return "login refused"


def setup_users(mgmt_port, vhost):
    def put(path, body):
        status, reply = http_call(mgmt_port, "PUT", path, body)
        assert status in (201, 204), (path, status, reply)
    put(f"/api/vhosts/{vhost}", {})
    put("/api/users/nobody", {"password": "secret", "tags": ""})
    put("/api/users/partial", {"password": "secret", "tags": "management"})
    put("/api/users/watcher", {"password": "secret", "tags": "monitoring"})
    put("/api/permissions/%2F/partial", {"configure": "^p-", "write": "^p-|^amq\\.default$", "read": "^p-"})
    put(f"/api/permissions/{vhost}/partial", {"configure": "", "write": "", "read": ".*"})


def amqp_scenario(port, vhost):
    """Each step on a fresh channel (a refusal closes its channel)."""
    def connect(user, v="/"):
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", port, v, pika.PlainCredentials(user, "secret"), connection_attempts=1))

    out = [("nobody on /", outcome(lambda: connect("nobody").close())),
           ("bad password", outcome(lambda: pika.BlockingConnection(pika.ConnectionParameters(
               "127.0.0.1", port, "/", pika.PlainCredentials("partial", "wrong"), connection_attempts=1))))]
    conn = connect("partial")
    steps = [
        ("declare q", lambda ch: ch.queue_declare("q")),
        ("declare p-q", lambda ch: ch.queue_declare("p-q")),
        ("passive declare p-q", lambda ch: ch.queue_declare("p-q", passive=True)),
        ("declare server-named", lambda ch: ch.queue_declare("", exclusive=True)),
        ("declare p-dlx with DLX x", lambda ch: ch.queue_declare("p-dlx", arguments={"x-dead-letter-exchange": "x"})),
        ("declare exchange x", lambda ch: ch.exchange_declare("x", "direct")),
        ("declare exchange p-x", lambda ch: ch.exchange_declare("p-x", "direct")),
        ("passive declare amq.direct", lambda ch: ch.exchange_declare("amq.direct", passive=True)),
        ("bind p-q to amq.direct", lambda ch: ch.queue_bind("p-q", "amq.direct", "k")),
        ("bind p-q to p-x", lambda ch: ch.queue_bind("p-q", "p-x", "k")),
        ("unbind p-q from p-x", lambda ch: ch.queue_unbind("p-q", "p-x", "k")),
        ("bind exchange p-x to amq.fanout", lambda ch: ch.exchange_bind("p-x", "amq.fanout")),
        ("publish to amq.direct", lambda ch: (ch.confirm_delivery(), ch.basic_publish("amq.direct", "k", b"x"))),
        ("publish to the default exchange", lambda ch: (ch.confirm_delivery(), ch.basic_publish("", "p-q", b"x"))),
        ("get p-q", lambda ch: ch.basic_get("p-q", auto_ack=True)),
        ("get amq-like other", lambda ch: ch.basic_get("other", auto_ack=True)),
        ("consume p-q", lambda ch: ch.basic_consume("p-q", lambda *a: None)),
        ("purge p-q", lambda ch: ch.queue_purge("p-q")),
        ("delete exchange p-x", lambda ch: ch.exchange_delete("p-x")),
        ("delete p-q", lambda ch: ch.queue_delete("p-q")),
    ]
    for name, step in steps:
        out.append((name, outcome(lambda: step(conn.channel()))))
    conn.close()
    conn = connect("partial", vhost)
    out.append((f"declare in {vhost} (read only)", outcome(lambda: conn.channel().queue_declare("any"))))
    conn.close()
    out.append(("watcher on / (no permissions)", outcome(lambda: connect("watcher").close())))
    return out


def http_scenario(mgmt_port, vhost):
    out = []
    for user, method, path in [("nobody", "GET", "/api/overview"),
                               ("partial", "GET", "/api/users"),
                               ("partial", "GET", "/api/whoami"),
                               ("partial", "PUT", "/api/vhosts/another"),
                               ("partial", "GET", f"/api/queues/{vhost}"),
                               ("watcher", "GET", "/api/whoami"),
                               ("watcher", "GET", "/api/users"),
                               ("watcher", "PUT", "/api/queues/%2F/w-q"),
                               ("partial", "PUT", "/api/queues/%2F/q-by-http"),
                               ("partial", "POST", "/api/queues/%2F/q-by-http/get")]:
        request = {"PUT": {}, "POST": {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}}.get(method)
        status, body = http_call(mgmt_port, method, path, request, auth=(user, "secret"))
        if isinstance(body, dict) and "reason" in body:
            body = body["reason"]
        elif isinstance(body, dict):
            body = {k: body[k] for k in ("name", "tags") if k in body}
        out.append((f"{user} {method} {path}", status, body))
    return out


def setup_topic_user(mgmt_port, vhost):
    """'topical' may do anything in the vhost, but on amq.topic may publish only keys that
    start with its name and bind only with the empty key, and on t-x publish only keys that
    start with the vhost's name. A topic permission on a direct exchange is not checked."""
    def put(path, body):
        status, reply = http_call(mgmt_port, "PUT", path, body)
        assert status in (201, 204), (path, status, reply)
    put(f"/api/vhosts/{vhost}", {})
    put("/api/users/topical", {"password": "secret", "tags": "management"})
    put(f"/api/permissions/{vhost}/topical", {"configure": ".*", "write": ".*", "read": ".*"})
    for exchange, write, read in [("amq.topic", "^{username}\\.", ""), ("t-x", "^{vhost}", ".*"),
                                  ("amq.direct", "^never$", "^never$")]:
        put(f"/api/topic-permissions/{vhost}/topical", {"exchange": exchange, "write": write, "read": read})


def topic_scenario(port, mgmt_port, vhost):
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("topical", "secret"), connection_attempts=1))

    def publish(exchange, key):
        return lambda ch: (ch.confirm_delivery(), ch.basic_publish(exchange, key, b"x"))

    def bind(key, exchange="amq.topic"):
        return lambda ch: ch.queue_bind(ch.queue_declare("", exclusive=True).method.queue, exchange, key)

    steps = [
        ("declare t-x", lambda ch: ch.exchange_declare("t-x", "topic")),
        ("declare fan", lambda ch: ch.exchange_declare("fan", "fanout")),
        ("publish topical.news", publish("amq.topic", "topical.news")),
        ("publish a.b", publish("amq.topic", "a.b")),
        ("publish the empty key", publish("amq.topic", "")),
        ("publish to t-x with the vhost's name", publish("t-x", vhost + ".1")),
        ("publish to t-x with another key", publish("t-x", "x.1")),
        ("publish to amq.direct (not a topic exchange)", publish("amq.direct", "anything")),
        ("bind with the empty key", bind("")),
        ("bind with a.b", bind("a.b")),
        ("unbind a.b", lambda ch: ch.queue_unbind(ch.queue_declare("", exclusive=True).method.queue,
                                                  "amq.topic", "a.b")),
        ("bind to t-x with any key", bind("any.key", "t-x")),
        ("bind exchange fan from amq.topic", lambda ch: ch.exchange_bind("fan", "amq.topic", "k")),
        ("bind exchange amq.topic from fan", lambda ch: ch.exchange_bind("amq.topic", "fan", "k")),
    ]
    out = [(name, outcome(lambda: step(conn.channel()))) for name, step in steps]
    conn.close()

    def call(method, path, body=None, auth=("guest", "guest")):
        status, reply = http_call(mgmt_port, method, path, body, auth=auth)
        if isinstance(reply, list):
            reply = sorted(reply, key=lambda r: r["exchange"])
        elif isinstance(reply, dict) and "reason" in reply:
            reply = reply["reason"] if isinstance(reply["reason"], str) and "key_missing" in reply["reason"] else "*"
        return status, reply

    mine = f"/api/topic-permissions/{vhost}/topical"
    http_publish = {"properties": {}, "payload": "x", "payload_encoding": "string"}
    for name, method, path, body in [
            ("HTTP publish a.b", "POST", f"/api/exchanges/{vhost}/amq.topic/publish", dict(http_publish, routing_key="a.b")),
            ("HTTP publish topical.x", "POST", f"/api/exchanges/{vhost}/amq.topic/publish",
             dict(http_publish, routing_key="topical.x")),
            ("HTTP bind with a.b", "POST", f"/api/bindings/{vhost}/e/amq.topic/e/fan", {"routing_key": "a.b"})]:
        status, reply = http_call(mgmt_port, method, path, body, auth=("topical", "secret"))
        out.append((name, status, reply))
    for name, method, path, body in [
            ("list of the user in the vhost", "GET", mine, None),
            ("list of the user", "GET", "/api/users/topical/topic-permissions", None),
            ("list of the vhost", "GET", f"/api/vhosts/{vhost}/topic-permissions", None),
            ("keys missing", "PUT", mine, {"exchange": "e"}),
            ("exchange missing", "PUT", mine, {"write": ".*", "read": ".*"}),
            ("bad pattern", "PUT", mine, {"exchange": "e", "write": "(", "read": ".*"}),
            ("unknown user", "PUT", f"/api/topic-permissions/{vhost}/no-such-user",
             {"exchange": "e", "write": ".*", "read": ".*"}),
            ("POST", "POST", mine, {}),
            ("delete", "DELETE", mine, None),
            ("delete again", "DELETE", mine, None),
            ("list after", "GET", mine, None)]:
        out.append((name, *call(method, path, body)))
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, vhost, pika.PlainCredentials("topical", "secret"), connection_attempts=1))
    out.append(("publish a.b once cleared", outcome(lambda: publish("amq.topic", "a.b")(conn.channel()))))
    conn.close()
    return out


EXPECTED_TOPIC = {
    "publish topical.news": "ok",
    "publish a.b": "403 ACCESS_REFUSED - access to topic 'a.b' in exchange 'amq.topic' in vhost '{vhost}' "
                   "refused for user 'topical'",
    "publish the empty key": "403 ACCESS_REFUSED - access to topic '' in exchange 'amq.topic'",
    "publish to t-x with the vhost's name": "ok",
    "publish to t-x with another key": "403 ACCESS_REFUSED - access to topic 'x.1' in exchange 't-x'",
    "publish to amq.direct (not a topic exchange)": "ok",
    "bind with the empty key": "ok",
    "bind with a.b": "403 ACCESS_REFUSED - access to topic 'a.b' in exchange 'amq.topic'",
    "unbind a.b": "403 ACCESS_REFUSED - access to topic 'a.b' in exchange 'amq.topic'",
    "bind exchange fan from amq.topic": "403 ACCESS_REFUSED - access to topic 'k' in exchange 'amq.topic'",
    "bind exchange amq.topic from fan": "ok",
    "publish a.b once cleared": "ok",
    "HTTP publish a.b": (400, {"error": "bad_request", "reason": "403 ACCESS_REFUSED - access to topic 'a.b' in "
                                                                 "exchange 'amq.topic' in vhost '{vhost}' refused for "
                                                                 "user 'topical'"}),
    "HTTP bind with a.b": (401, {"error": "not_authorised", "reason": "Access refused."}),
}


EXPECTED_AMQP = {
    "nobody on /": "access denied",
    "bad password": "login refused",
    "declare q": "403 ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'partial'",
    "declare p-q": "ok",
    "declare exchange x": "403 ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'partial'",
    "bind p-q to amq.direct": "403 ACCESS_REFUSED - access to exchange 'amq.direct' in vhost '/' refused for user 'partial'",
    "publish to amq.direct": "403 ACCESS_REFUSED - access to exchange 'amq.direct' in vhost '/' refused for user 'partial'",
    "publish to the default exchange": "ok",
    "get p-q": "ok",
    "purge p-q": "ok",
}


@unittest.skipUnless(scripts_dir(), "no RabbitMQ here (scripts/setup.sh unpacks one)")
class SameAsRabbitMQ(unittest.TestCase):
    def setUp(self):
        self.warren = Warren()

    def tearDown(self):
        self.warren.close()

    def test_amqp_operations_reply_as_rabbitmq(self):
        vhost = unique("vh")
        results = []
        for port, mgmt in ((rabbit.port, rabbit.mgmt_port), (self.warren.port, self.warren.mgmt_port)):
            setup_users(mgmt, vhost)
            results.append(amqp_scenario(port, vhost))
        for (step, theirs), (_, ours) in zip(*results):
            theirs, ours = (re.sub(r"amq\.gen-[\w-]+", "amq.gen-*", x) for x in (theirs, ours))
            if theirs.startswith("access denied"):  # pika's wording holds the reply text
                theirs = theirs.split(":")[0]
                ours = ours.split(":")[0]
            self.assertEqual(ours, theirs, step)
        for step, expected in EXPECTED_AMQP.items():
            self.assertTrue(dict(results[1])[step].startswith(expected), (step, dict(results[1])[step]))

    def test_topic_permissions_reply_as_rabbitmq(self):
        vhost = unique("vh")
        results = []
        for port, mgmt in ((rabbit.port, rabbit.mgmt_port), (self.warren.port, self.warren.mgmt_port)):
            setup_topic_user(mgmt, vhost)
            results.append(topic_scenario(port, mgmt, vhost))
        self.assertEqual(len(results[0]), len(results[1]))
        for theirs, ours in zip(*results):
            self.assertEqual(ours, theirs)
        ours = {step[0]: step[1] if len(step) == 2 else step[1:] for step in results[1]}
        for step, expected in EXPECTED_TOPIC.items():
            if isinstance(expected, tuple):
                reason = expected[1]["reason"].replace("{vhost}", vhost)
                self.assertEqual(ours[step], (expected[0], dict(expected[1], reason=reason)), step)
            else:
                self.assertTrue(ours[step].startswith(expected.format(vhost=vhost)), (step, ours[step]))
        self.assertIn(("delete", 204, None), results[1])
        self.assertIn(("delete again", 404, "*"), results[1])

    def test_management_tags_reply_as_rabbitmq(self):
        vhost = unique("vh")
        results = []
        for mgmt in (rabbit.mgmt_port, self.warren.mgmt_port):
            setup_users(mgmt, vhost)
            results.append(http_scenario(mgmt, vhost))
        for theirs, ours in zip(*results):
            self.assertEqual(ours, theirs)
        self.assertIn(("nobody GET /api/overview", 401, "Not management user"), results[1])
        self.assertIn(("partial GET /api/users", 401, "Not administrator user"), results[1])


class Warrens(unittest.TestCase):
    """Warren's own: users that survive restarts, hashes from definitions, no passwords shown."""

    def test_users_and_permissions_survive_a_restart_and_hashes_import(self):
        warren = Warren()
        try:
            status, _ = http_call(warren.mgmt_port, "PUT", "/api/users/keeper", {"password": "kept", "tags": "management"})
            self.assertEqual(status, 201)
            self.assertEqual(http_call(warren.mgmt_port, "PUT", "/api/permissions/%2F/keeper",
                                       {"configure": "^k", "write": "^k", "read": "^k"})[0], 201)
            # A hash as RabbitMQ exports it (password "from-rabbit").
            hashed = {"name": "imported", "password_hash": make_hash("from-rabbit"),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"]}
            self.assertEqual(http_call(warren.mgmt_port, "POST", "/api/definitions",
                                       {"users": [hashed], "permissions": [{"user": "imported", "vhost": "/",
                                                                            "configure": ".*", "write": ".*",
                                                                            "read": ".*"}]})[0], 204)
            warren.stop()
            warren.start()
            params = lambda user, pw: pika.ConnectionParameters("127.0.0.1", warren.port, "/",  # noqa: E731
                                                                pika.PlainCredentials(user, pw))
            conn = pika.BlockingConnection(params("keeper", "kept"))
            self.assertIn("403", outcome(lambda: conn.channel().queue_declare("other")))
            self.assertEqual(outcome(lambda: conn.channel().queue_declare("kq")), "ok")
            conn.close()
            pika.BlockingConnection(params("imported", "from-rabbit")).close()
            self.assertEqual(outcome(lambda: pika.BlockingConnection(params("imported", "wrong"))), "login refused")
        finally:
            warren.close()

    def test_a_password_on_the_command_line_is_hidden_from_the_process_list(self):
        warren = Warren("--user", "admin:s3cret-pass")
        try:
            with open(f"/proc/{warren.proc.pid}/cmdline", "rb") as f:
                cmdline = f.read().decode()
            self.assertNotIn("s3cret-pass", cmdline)
            self.assertIn("admin:", cmdline)
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", warren.port, "/", pika.PlainCredentials("admin", "s3cret-pass"))).close()
            self.assertEqual(outcome(lambda: pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", warren.port, "/", pika.PlainCredentials("guest", "guest")))), "login refused")
        finally:
            warren.close()

    def test_a_hash_on_the_command_line(self):
        warren = Warren("--user-hash", "hashed:" + make_hash("by-hash"))
        try:
            pika.BlockingConnection(pika.ConnectionParameters(
                "127.0.0.1", warren.port, "/", pika.PlainCredentials("hashed", "by-hash"))).close()
        finally:
            warren.close()


class PrivateData(unittest.TestCase):
    def test_a_new_data_directory_is_private_and_a_writable_one_refused(self):
        base = tempfile.mkdtemp(prefix="warren-private-")
        try:
            fresh = os.path.join(base, "new")
            proc = subprocess.Popen([os.environ["WARREND"], "--port", "0", "--management-port", "0",
                                     "--prometheus-port", "0", "--data-dir", fresh],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.assertTrue(proc.stdout.readline().startswith("port "))  # serving: the store is open
            proc.terminate()
            proc.wait(timeout=30)
            proc.stdout.close()
            self.assertEqual(os.stat(fresh).st_mode & 0o777, 0o700)
            for name in os.listdir(fresh):
                self.assertEqual(os.stat(os.path.join(fresh, name)).st_mode & 0o077, 0, name)
            shared = os.path.join(base, "shared")
            os.mkdir(shared)
            os.chmod(shared, 0o777)
            refused = subprocess.run([os.environ["WARREND"], "--port", "0", "--management-port", "0",
                                      "--prometheus-port", "0", "--data-dir", shared],
                                     capture_output=True, text=True, timeout=60)
            self.assertNotEqual(refused.returncode, 0)
            self.assertIn("can be written by other users", refused.stderr)
            self.assertEqual(os.listdir(shared), [])  # nothing written there
        finally:
            shutil.rmtree(base, ignore_errors=True)


class Warrenctl(unittest.TestCase):
    """rabbitmqctl's user and permission verbs, through the management API."""

    def setUp(self):
        self.warren = Warren()

    def tearDown(self):
        self.warren.close()

    def ctl(self, *args, ok=True):
        r = subprocess.run([os.environ["WARRENCTL"], "--url", f"http://127.0.0.1:{self.warren.mgmt_port}", "-q",
                            *args], capture_output=True, text=True, timeout=60)
        if ok:
            self.assertEqual(r.returncode, 0, r.stderr)
        return r

    def login(self, user, password, vhost="/"):
        return outcome(lambda: pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.warren.port, vhost, pika.PlainCredentials(user, password))).close())

    def test_users_and_permissions_from_the_command_line(self):
        self.ctl("add_user", "ops", "first")
        self.assertEqual(self.ctl("add_user", "ops", "again", ok=False).returncode, 70)
        self.assertTrue(self.login("ops", "first").startswith("access denied"))  # no permissions yet
        self.ctl("set_permissions", "ops", "^ops-", "^ops-", "^ops-")
        self.assertEqual(self.login("ops", "first"), "ok")
        self.ctl("set_user_tags", "ops", "monitoring", "management")
        users = json.loads(self.ctl("list_users", "--formatter", "json").stdout)
        self.assertIn({"user": "ops", "tags": ["monitoring", "management"]}, users)
        self.assertEqual(self.login("ops", "first"), "ok")  # tags kept the password
        self.ctl("change_password", "ops", "second")
        self.assertEqual(self.login("ops", "first"), "login refused")
        self.assertEqual(self.login("ops", "second"), "ok")
        rows = json.loads(self.ctl("list_permissions", "--formatter", "json").stdout)
        self.assertIn({"user": "ops", "configure": "^ops-", "write": "^ops-", "read": "^ops-"}, rows)
        rows = json.loads(self.ctl("list_user_permissions", "ops", "--formatter", "json").stdout)
        self.assertEqual(rows, [{"vhost": "/", "configure": "^ops-", "write": "^ops-", "read": "^ops-"}])
        self.ctl("clear_permissions", "ops")
        self.assertTrue(self.login("ops", "second").startswith("access denied"))
        self.ctl("delete_user", "ops")
        self.assertEqual(self.login("ops", "second"), "login refused")
        self.assertEqual(self.ctl("delete_user", "ops", ok=False).returncode, 69)

    def publish(self, user, exchange, key):
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.warren.port, "/", pika.PlainCredentials(user, "pw")))
        try:
            return outcome(lambda: (lambda ch: (ch.confirm_delivery(), ch.basic_publish(exchange, key, b"x")))(
                conn.channel()))
        finally:
            if conn.is_open:
                conn.close()

    def test_topic_permissions_from_the_command_line_kept_and_in_definitions(self):
        self.ctl("add_user", "ops", "pw")
        self.ctl("set_permissions", "ops", ".*", ".*", ".*")
        self.ctl("set_topic_permissions", "ops", "amq.topic", "^ops\\.", "^ops\\.")
        self.ctl("set_topic_permissions", "ops", "other", ".*", ".*")
        refused = "403 ACCESS_REFUSED - access to topic 'x' in exchange 'amq.topic' in vhost '/' refused for user 'ops'"
        self.assertEqual(self.publish("ops", "amq.topic", "x"), refused)
        self.assertEqual(self.publish("ops", "amq.topic", "ops.1"), "ok")
        rows = json.loads(self.ctl("list_topic_permissions", "--formatter", "json").stdout)
        self.assertEqual(rows, [{"user": "ops", "exchange": "amq.topic", "write": "^ops\\.", "read": "^ops\\."},
                                {"user": "ops", "exchange": "other", "write": ".*", "read": ".*"}])
        rows = json.loads(self.ctl("list_user_topic_permissions", "ops", "--formatter", "json").stdout)
        self.assertEqual([r["exchange"] for r in rows], ["amq.topic", "other"])
        self.assertNotEqual(self.ctl("set_topic_permissions", "ops", "e", "(", ".*", ok=False).returncode, 0)

        self.warren.stop()  # kept on disk
        self.warren.start()
        self.assertEqual(self.publish("ops", "amq.topic", "x"), refused)
        status, exported = http_call(self.warren.mgmt_port, "GET", "/api/definitions")
        self.assertIn({"user": "ops", "vhost": "/", "exchange": "amq.topic", "write": "^ops\\.",
                       "read": "^ops\\."}, exported["topic_permissions"])

        self.ctl("clear_topic_permissions", "ops", "amq.topic")  # one exchange
        self.assertEqual(self.publish("ops", "amq.topic", "x"), "ok")
        rows = json.loads(self.ctl("list_topic_permissions", "--formatter", "json").stdout)
        self.assertEqual([r["exchange"] for r in rows], ["other"])
        self.ctl("clear_topic_permissions", "ops")  # all of them
        self.assertEqual(json.loads(self.ctl("list_topic_permissions", "--formatter", "json").stdout), [])

        # Imported from a definitions file; a bad one changes nothing.
        item = {"user": "ops", "vhost": "/", "exchange": "amq.topic", "write": "^imported$", "read": ".*"}
        bad = dict(item, exchange="second", write="(")
        self.assertEqual(http_call(self.warren.mgmt_port, "POST", "/api/definitions",
                                   {"topic_permissions": [item, bad]})[0], 400)
        self.assertEqual(self.publish("ops", "amq.topic", "x"), "ok")
        self.assertEqual(http_call(self.warren.mgmt_port, "POST", "/api/definitions",
                                   {"topic_permissions": [item]})[0], 204)
        self.assertIn("403", self.publish("ops", "amq.topic", "x"))
        self.assertEqual(self.publish("ops", "amq.topic", "imported"), "ok")

    def test_hash_password_makes_a_hash_warrend_takes(self):
        hashed = self.ctl("hash_password", "made-here").stdout.strip()
        self.warren.stop()
        self.warren.start("--user-hash", f"viahash:{hashed}")
        self.assertEqual(self.login("viahash", "made-here"), "ok")
        self.assertEqual(self.login("viahash", "wrong"), "login refused")


def make_hash(password):
    """rabbit_password_hashing_sha256, as RabbitMQ computes it."""
    import base64
    import hashlib
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


if __name__ == "__main__":
    unittest.main()
