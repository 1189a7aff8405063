"""The management HTTP API: RabbitMQ's paths, JSON, status codes and texts, and Debian's
rabbitmqadmin unchanged. Passes against RabbitMQ 3.10 with the management plugin
(AMQP_PORT=5672 MGMT_PORT=15672) and against warrend."""
import base64
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import pika

from harness import broker, http_call, setUpModule, start_warrend, tearDownModule, unique  # noqa: F401 (module fixtures)


def call(method, path, body=None, auth=("guest", "guest"), raw=None):
    """(status, parsed JSON or None) of one request to the broker's management API."""
    return http_call(broker().mgmt_port, method, path, body, auth, raw)


def q(name):
    return urllib.parse.quote(name, safe="")


def eventually(fetch, expected, timeout=30):
    """RabbitMQ refreshes queue counts every few seconds: ask until they show (or time out)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fetch()
        if got == expected or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def publish(queue, bodies):
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
    ch = conn.channel()
    ch.confirm_delivery()
    for body in bodies:
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    conn.close()


class Errors(unittest.TestCase):
    def test_credentials_are_required_and_checked(self):
        self.assertEqual(call("GET", "/api/overview", auth=None)[0], 401)
        self.assertEqual(call("GET", "/api/overview", auth=("guest", "wrong")),
                         (401, {"error": "not_authorized", "reason": "Login failed"}))
        self.assertEqual(call("GET", "/api/overview", auth=("nobody", "guest"))[0], 401)

    def test_unknown_objects_and_paths(self):
        not_found = {"error": "Object Not Found", "reason": "Not Found"}
        self.assertEqual(call("GET", f"/api/queues/%2F/{unique('missing')}"), (404, not_found))
        self.assertEqual(call("GET", "/api/no-such-thing"), (404, not_found))
        self.assertEqual(call("GET", "/api/queues/no-such-vhost"), (404, not_found))
        self.assertEqual(call("PUT", "/api/queues/no-such-vhost/q", {}),
                         (404, {"error": "not_found", "reason": "vhost_not_found"}))
        self.assertEqual(call("PATCH", "/api/queues/%2F/x")[0], 405)

    def test_an_oversized_body_is_refused(self):
        status, body = call("POST", "/api/definitions", raw=b'{"x":"' + b"a" * 21_000_000 + b'"}')
        self.assertIn(status, (413, 400))  # Warren: 413; RabbitMQ 3.10 answers 400
        self.assertEqual(body["reason"], "Exceeded HTTP request body size limit")

    def test_bad_bodies_get_rabbits_reasons_and_change_nothing(self):
        name = unique("bad")
        status, body = call("PUT", f"/api/queues/%2F/{name}", {"arguments": {"x-max-length": "abc"}})
        self.assertEqual((status, body["reason"]),
                         (400, f"invalid arg 'x-max-length' for queue '{name}' in vhost '/': "
                               "\"expected integer, got longstr\""))
        self.assertEqual(call("GET", f"/api/queues/%2F/{name}")[0], 404)
        status, body = call("PUT", f"/api/queues/%2F/{name}", "just a string")
        self.assertEqual((status, body["error"]), (400, "bad_request"))
        self.assertIn("doubly-JSON-encoded", body["reason"])
        self.assertEqual(call("PUT", f"/api/queues/%2F/{name}", raw=b"{not json")[0], 400)
        status, body = call("PUT", f"/api/exchanges/%2F/{name}", {"type": "nope"})
        self.assertEqual((status, body["reason"]), (400, "unknown exchange type 'nope'"))
        self.assertEqual(call("GET", f"/api/queues/%2F/{name}")[0], 404)
        self.assertEqual(call("GET", f"/api/exchanges/%2F/{name}")[0], 404)


    def test_get_publish_and_binding_refusals_read_as_rabbits(self):
        name, exchange = unique("gq"), unique("gx")
        self.assertEqual(call("PUT", f"/api/queues/%2F/{name}", {"durable": False})[0], 201)
        publish_path = "/api/exchanges/%2F/amq.direct/publish"
        self.assertEqual(call("POST", publish_path, {}),
                         (400, {"error": "bad_request", "reason": "[{key_missing,routing_key},\n {key_missing,properties},"
                                                                  "\n {key_missing,payload},\n {key_missing,payload_encoding}]"}))
        self.assertEqual(call("POST", f"/api/queues/%2F/{name}/get", {}),
                         (400, {"error": "bad_request",
                                "reason": "[{key_missing,ackmode},{key_missing,count},{key_missing,encoding}]"}))
        self.assertEqual(call("POST", f"/api/queues/%2F/{name}/get",
                              {"count": 1, "ackmode": "ack_requeue_true", "encoding": "zip"}),
                         (400, {"error": "bad_request", "reason": "Unsupported encoding. Please use auto or base64."}))
        body = {"routing_key": name, "properties": {}, "payload_encoding": "base64"}
        for payload in ("eA=", "eA"):
            self.assertEqual(call("POST", publish_path, dict(body, payload=payload)),
                             (400, {"error": "bad_request", "reason": ["not_base64", payload]}))
        self.assertEqual(call("POST", publish_path, dict(body, payload_encoding="zip", payload="x")),
                         (400, {"error": "bad_request", "reason": ["unsupported_encoding", "zip"]}))
        self.assertEqual(call("POST", "/api/exchanges/%2F/amq.default/publish", dict(body, payload="e A==")),
                         (200, {"routed": True}))
        got = call("POST", f"/api/queues/%2F/{name}/get", {"count": 1, "ackmode": "ack_requeue_false",
                                                             "encoding": "auto"})[1]
        self.assertEqual([m["payload"] for m in got], ["x"])
        self.assertEqual(call("POST", f"/api/bindings/%2F/e/{exchange}/q/{name}", {"routing_key": "k"}),
                         (404, {"error": "not_found", "reason": f"no exchange '{exchange}' in vhost '/'"}))
        self.assertEqual(call("POST", f"/api/bindings/%2F/e/amq.direct/q/{name}-none", {"routing_key": "k"}),
                         (404, {"error": "not_found", "reason": f"no queue '{name}-none' in vhost '/'"}))
        self.assertEqual(call("GET", f"/api/bindings/%2F/e/{exchange}/q/{name}"), (200, []))
        self.assertEqual(call("DELETE", f"/api/queues/%2F/{name}"), (204, None))


class Queues(unittest.TestCase):
    def test_lifecycle_counts_get_publish_purge_delete(self):
        name = unique("mq")
        self.assertEqual(call("PUT", f"/api/queues/%2F/{name}", {"durable": True, "arguments": {"x-max-length": 100}}),
                         (201, None))
        self.assertEqual(call("PUT", f"/api/queues/%2F/{name}", {"durable": True, "arguments": {"x-max-length": 100}})[0],
                         204)
        status, body = call("PUT", f"/api/queues/%2F/{name}", {"durable": False})
        self.assertEqual((status, body["reason"]),
                         (400, f"inequivalent arg 'durable' for queue '{name}' in vhost '/': "
                               "received 'false' but current is 'true'"))
        # No message has passed yet: RabbitMQ lists such a queue without message_stats.
        self.assertNotIn("message_stats", call("GET", f"/api/queues/%2F/{name}")[1])
        publish(name, [b"one", b"two", b"three"])
        keys = ["name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "messages", "messages_ready",
                "messages_unacknowledged", "consumers"]
        expected = {"name": name, "vhost": "/", "durable": True, "auto_delete": False, "exclusive": False,
                    "arguments": {"x-max-length": 100}, "messages": 3, "messages_ready": 3,
                    "messages_unacknowledged": 0, "consumers": 0}
        self.assertEqual(eventually(lambda: {k: call("GET", f"/api/queues/%2F/{name}")[1].get(k) for k in keys},
                                    expected), expected)
        self.assertEqual(eventually(lambda: call("GET", f"/api/queues/%2F/{name}")[1]
                                    .get("message_stats", {}).get("publish"), 3), 3)

        routed = call("POST", "/api/exchanges/%2F/amq.default/publish",
                      {"properties": {"message_id": "m4"}, "routing_key": name, "payload": "four",
                       "payload_encoding": "string"})
        self.assertEqual(routed, (200, {"routed": True}))
        self.assertEqual(call("POST", "/api/exchanges/%2F/amq.default/publish",
                              {"properties": {}, "routing_key": unique("nowhere"), "payload": "x",
                               "payload_encoding": "string"}), (200, {"routed": False}))
        # A refused publish: 400 with the reply code and text the channel was closed with.
        missing = unique("missing")
        self.assertEqual(call("POST", f"/api/exchanges/%2F/{missing}/publish",
                              {"properties": {}, "routing_key": "k", "payload": "x", "payload_encoding": "string"}),
                         (400, {"error": "bad_request", "reason": f"404 NOT_FOUND - no exchange '{missing}' in vhost '/'"}))
        self.assertEqual(call("POST", f"/api/queues/%2F/{q(missing)}/get",
                              {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
                         (404, {"error": "not_found", "reason": f"NOT_FOUND - no queue '{missing}' in vhost '/'"}))
        self.assertEqual(call("POST", "/api/exchanges/%2F/amq.direct/publish",
                              {"properties": {"expiration": "abc"}, "routing_key": "k", "payload": "x",
                               "payload_encoding": "string"}),
                         (400, {"error": "bad_request",
                                "reason": "406 PRECONDITION_FAILED - invalid expiration 'abc': no_integer"}))
        status, got = call("POST", f"/api/queues/%2F/{name}/get",
                           {"count": 2, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 50000})
        self.assertEqual(status, 200)
        self.assertEqual([(m["payload"], m["payload_encoding"], m["redelivered"], m["exchange"], m["routing_key"])
                          for m in got], [("one", "string", False, "", name), ("two", "string", False, "", name)])
        self.assertEqual(got[0]["message_count"], 3)
        status, got = call("POST", f"/api/queues/%2F/{name}/get", {"count": 10, "ackmode": "ack_requeue_false",
                                                                    "encoding": "base64"})
        self.assertEqual([(base64.b64decode(m["payload"]), m["redelivered"]) for m in got],
                         [(b"one", True), (b"two", True), (b"three", False), (b"four", False)])
        self.assertEqual(got[3]["properties"], {"message_id": "m4"})
        publish(name, [b"five"])
        self.assertEqual(call("DELETE", f"/api/queues/%2F/{name}/contents"), (204, None))
        self.assertEqual(call("POST", f"/api/queues/%2F/{name}/get", {"count": 1, "ackmode": "ack_requeue_false",
                                                                       "encoding": "auto"}), (200, []))
        self.assertEqual(call("DELETE", f"/api/queues/%2F/{name}"), (204, None))
        self.assertEqual(call("DELETE", f"/api/queues/%2F/{name}")[0], 404)

    def test_listing_pages_filters_and_columns(self):
        prefix = unique("page")
        for i in range(5):
            self.assertEqual(call("PUT", f"/api/queues/%2F/{prefix}-{i}", {"durable": False, "auto_delete": False})[0], 201)
        status, page = call("GET", f"/api/queues/%2F?page=2&page_size=2&name={prefix}&use_regex=false")
        self.assertEqual(status, 200)
        self.assertEqual((page["filtered_count"], page["item_count"], page["page"], page["page_count"],
                          page["page_size"]), (5, 2, 2, 3, 2))
        self.assertEqual([item["name"] for item in page["items"]], [f"{prefix}-2", f"{prefix}-3"])
        pattern = q(f"^{prefix}-[04]$")
        status, page = call("GET", f"/api/queues?page=1&page_size=100&columns=name,durable&name={pattern}&use_regex=true")
        self.assertEqual(page["items"], [{"name": f"{prefix}-0", "durable": False}, {"name": f"{prefix}-4", "durable": False}])
        status, everything = call("GET", f"/api/queues?columns=name&name={prefix}-0")  # no page: no filter
        self.assertIn({"name": f"{prefix}-3"}, everything)
        for i in range(5):
            call("DELETE", f"/api/queues/%2F/{prefix}-{i}")

    def test_a_long_listing_is_complete_and_sorted(self):
        # Warren copies queue rows in turns of 128 on its loop: every turn must land, in order.
        prefix = unique("long")
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        ch = conn.channel()
        names = [f"{prefix}-{i:03}" for i in range(300)]
        for name in reversed(names):
            ch.queue_declare(name, auto_delete=False)
        ch.basic_publish("", names[200], b"x")
        listing = eventually(lambda: [(row["name"], row.get("messages")) for row in
                                      call("GET", "/api/queues/%2F?columns=name,messages")[1]
                                      if row["name"].startswith(prefix)],
                             [(name, 1 if name == names[200] else 0) for name in names])
        self.assertEqual(listing, [(name, 1 if name == names[200] else 0) for name in names])
        for name in names:
            ch.queue_delete(name)
        conn.close()


class MoveMessages(unittest.TestCase):
    """Warren's own: a dead-letter queue emptied back into its work queue, and a copy."""

    def test_dead_letters_go_back_where_they_died_and_copies_stay(self):
        if broker().external:
            self.skipTest("Warren's own operation")
        work, dead, spare = unique("work"), unique("dead"), unique("spare")
        call("PUT", f"/api/queues/%2F/{dead}", {"durable": True})
        call("PUT", f"/api/queues/%2F/{spare}", {"durable": True})
        call("PUT", f"/api/queues/%2F/{work}", {"durable": True, "arguments": {
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}})
        publish(work, [b"a", b"b", b"c"])
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        ch = conn.channel()
        for _ in range(3):
            method, _, _ = ch.basic_get(work)
            ch.basic_reject(method.delivery_tag, requeue=False)
        conn.close()
        depth = lambda q: call("GET", f"/api/queues/%2F/{q}")[1]["messages_ready"]
        self.assertEqual((depth(work), depth(dead)), (0, 3))
        self.assertEqual(call("POST", f"/api/queues/%2F/{dead}/move", {"to": spare, "copy": True, "max": 2}),
                         (200, {"moved": 2}))
        self.assertEqual((depth(dead), depth(spare)), (3, 2))
        self.assertEqual(call("POST", f"/api/queues/%2F/{dead}/move", {}), (200, {"moved": 3}))
        self.assertEqual((depth(work), depth(dead)), (3, 0))
        got = call("POST", f"/api/queues/%2F/{work}/get", {"count": 3, "ackmode": "ack_requeue_false",
                                                             "encoding": "auto"})[1]
        self.assertEqual([m["payload"] for m in got], ["a", "b", "c"])
        self.assertEqual(call("POST", f"/api/queues/%2F/{unique('none')}/move", {})[0], 404)
        self.assertEqual(call("POST", f"/api/queues/%2F/{dead}/move", {"max": -1})[0], 400)
        for q in (work, dead, spare):
            call("DELETE", f"/api/queues/%2F/{q}")


class ExchangesAndBindings(unittest.TestCase):
    def test_declare_bind_route_unbind_delete(self):
        exchange, queue = unique("mx"), unique("mxq")
        self.assertEqual(call("PUT", f"/api/exchanges/%2F/{exchange}", {"type": "topic", "durable": True})[0], 201)
        status, x = call("GET", f"/api/exchanges/%2F/{exchange}")
        self.assertEqual({k: x[k] for k in ["name", "type", "durable", "auto_delete", "internal", "arguments"]},
                         {"name": exchange, "type": "topic", "durable": True, "auto_delete": False, "internal": False,
                          "arguments": {}})
        call("PUT", f"/api/queues/%2F/{queue}", {"durable": False})
        self.assertEqual(call("POST", f"/api/bindings/%2F/e/{exchange}/q/{queue}", {"routing_key": "a.*"})[0], 201)
        status, bindings = call("GET", f"/api/bindings/%2F/e/{exchange}/q/{queue}")
        self.assertEqual([(b["source"], b["destination"], b["destination_type"], b["routing_key"], b["properties_key"])
                          for b in bindings], [(exchange, queue, "queue", "a.*", "a.%2A")])
        publish_to = lambda key: call("POST", f"/api/exchanges/%2F/{exchange}/publish",
                                      {"properties": {}, "routing_key": key, "payload": "x",
                                       "payload_encoding": "string"})[1]
        self.assertEqual(publish_to("a.b"), {"routed": True})
        self.assertEqual(publish_to("b.a"), {"routed": False})
        self.assertEqual(call("DELETE", f"/api/bindings/%2F/e/{exchange}/q/{queue}/{q('a.%2A')}"), (204, None))
        self.assertEqual(publish_to("a.b"), {"routed": False})
        self.assertEqual(call("DELETE", f"/api/exchanges/%2F/{exchange}"), (204, None))
        self.assertEqual(call("GET", f"/api/exchanges/%2F/{exchange}")[0], 404)
        call("DELETE", f"/api/queues/%2F/{queue}")


class Vhosts(unittest.TestCase):
    def test_create_use_and_delete_a_vhost(self):
        vhost = unique("vh")
        self.assertEqual(call("PUT", f"/api/vhosts/{vhost}"), (201, None))
        self.assertEqual(call("PUT", f"/api/permissions/{vhost}/guest", {"configure": ".*", "write": ".*", "read": ".*"})[0],
                         204)
        self.assertEqual(call("PUT", f"/api/queues/{vhost}/q", {"durable": True})[0], 201)
        shown = call("GET", f"/api/vhosts/{vhost}")[1]
        self.assertEqual({k: shown[k] for k in ["name", "description", "tags", "metadata", "default_queue_type",
                                                "tracing"]},
                         {"name": vhost, "description": "", "tags": [], "metadata": {"description": "", "tags": []},
                          "default_queue_type": "undefined", "tracing": False})
        self.assertEqual(list(shown["cluster_state"].values()), ["running"])
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port, virtual_host=vhost))
        self.assertEqual(call("DELETE", f"/api/vhosts/{vhost}"), (204, None))
        with self.assertRaises(pika.exceptions.ConnectionClosedByBroker) as closed:
            conn.process_data_events(time_limit=30)
            conn.channel()
        self.assertIn((closed.exception.reply_code, closed.exception.reply_text),  # RabbitMQ races to either
                      [(320, f"CONNECTION_FORCED - vhost '{vhost}' is deleted"),
                       (320, f"CONNECTION_FORCED - vhost '{vhost}' is down")])
        self.assertEqual(call("GET", f"/api/vhosts/{vhost}")[0], 404)
        self.assertEqual(call("GET", f"/api/queues/{vhost}/q")[0], 404)
        self.assertEqual(call("DELETE", f"/api/vhosts/{vhost}")[0], 404)
        if not broker().external:  # its durable queue does not bring it back
            broker().restart()
            self.assertEqual(call("GET", f"/api/vhosts/{vhost}")[0], 404)


class Overview(unittest.TestCase):
    def test_overview_vhosts_whoami_health(self):
        status, overview = call("GET", "/api/overview")
        self.assertEqual(status, 200)
        for key in ["connections", "channels", "consumers", "exchanges", "queues"]:
            self.assertIn(key, overview["object_totals"])
        for key in ["messages", "messages_ready", "messages_unacknowledged"]:
            self.assertIn(key, overview["queue_totals"])
        self.assertIn("rate", overview["queue_totals"]["messages_details"])
        self.assertIn("message_stats", overview)
        self.assertEqual(call("GET", "/api/whoami")[1]["name"], "guest")
        self.assertIn("/", [v["name"] for v in call("GET", "/api/vhosts")[1]])
        self.assertEqual(call("GET", "/api/aliveness-test/%2F"), (200, {"status": "ok"}))
        self.assertEqual(call("GET", "/api/health/checks/alarms"), (200, {"status": "ok"}))
        amqp = [l for l in overview["listeners"] if l["protocol"] == "amqp"]
        self.assertIn(broker().port, [l["port"] for l in amqp])
        self.assertIn(broker().mgmt_port, [l["port"] for l in overview["listeners"] if l["protocol"] == "http"])


class Nodes(unittest.TestCase):
    def test_the_node_reports_its_resources(self):
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker().port))
        try:
            fields = ["os_pid", "uptime", "processors", "mem_used", "mem_limit", "disk_free", "fd_used",
                      "fd_total", "sockets_used"]
            node = lambda: call("GET", "/api/nodes")[1][0]  # noqa: E731
            self.assertEqual(eventually(lambda: sorted(set(fields) & set(node())), sorted(fields)), sorted(fields))
            n = node()
            self.assertTrue(n["os_pid"].isdigit())
            self.assertTrue(n["running"])
            self.assertGreater(n["uptime"], 0)
            self.assertGreaterEqual(n["processors"], 1)
            self.assertGreater(n["disk_free"], 0)
            self.assertGreater(n["fd_used"], 0)
            self.assertGreaterEqual(n["fd_total"], n["fd_used"])
            self.assertEqual(eventually(lambda: node()["sockets_used"] >= 1, True), True)
        finally:
            conn.close()


class ConnectionsChannelsConsumers(unittest.TestCase):
    """What an operator reads about a client: its connection (addresses, properties, when it
    came), its channels (prefetch, consumers, unacknowledged, confirm mode) and consumers."""

    def test_a_consuming_client_as_the_listings_show_it(self):
        label, queue = unique("client"), unique("ccq")
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", broker().port, client_properties={"connection_name": label}))
        started_ms = time.time() * 1000
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_qos(prefetch_count=7)
            ch.queue_declare(queue, exclusive=True)
            ch.basic_publish("", queue, b"a")
            ch.basic_publish("", queue, b"b")
            ch.basic_consume(queue, lambda *a: None)  # never acks
            local_port = conn._impl._transport._sock.getsockname()[1]
            name = f"127.0.0.1:{local_port} -> 127.0.0.1:{broker().port}"

            def mine(path, match):
                conn.process_data_events(time_limit=0.05)
                return [x for x in call("GET", path)[1] if match(x)]
            listed = lambda: mine("/api/connections", lambda c: c.get("name") == name)  # noqa: E731
            self.assertEqual(eventually(lambda: len(listed()), 1), 1)  # RabbitMQ lists it within seconds
            connections = listed()
            c = connections[0]
            self.assertEqual({k: c[k] for k in ["peer_host", "peer_port", "port", "ssl", "auth_mechanism",
                                                 "type", "user", "vhost", "protocol"]},
                             {"peer_host": "127.0.0.1", "peer_port": local_port, "port": broker().port,
                              "ssl": False, "auth_mechanism": "PLAIN", "type": "network", "user": "guest",
                              "vhost": "/", "protocol": "AMQP 0-9-1"})
            self.assertEqual(c["client_properties"]["connection_name"], label)
            self.assertLess(abs(c["connected_at"] - started_ms), 60_000)
            summary = lambda: [{k: x.get(k) for k in ["number", "prefetch_count", "consumer_count",  # noqa: E731
                                                      "messages_unacknowledged", "confirm", "transactional"]}
                               for x in mine("/api/channels", lambda x: x["connection_details"]["name"] == name)]
            expected = [{"number": 1, "prefetch_count": 7, "consumer_count": 1, "messages_unacknowledged": 2,
                         "confirm": True, "transactional": False}]
            self.assertEqual(eventually(summary, expected), expected)  # RabbitMQ: after its stats interval
            consumers = mine("/api/consumers", lambda x: x["queue"]["name"] == queue)
            self.assertEqual([(x["channel_details"]["connection_name"], x["channel_details"]["number"],
                               x["activity_status"], x["prefetch_count"]) for x in consumers],
                             [(name, 1, "up", 7)])
        finally:
            conn.close()


class Definitions(unittest.TestCase):
    def test_export_then_import_recreates_queues_exchanges_and_bindings(self):
        exchange, queue = unique("dx"), unique("dq")
        call("PUT", f"/api/exchanges/%2F/{exchange}", {"type": "direct", "durable": True})
        call("PUT", f"/api/queues/%2F/{queue}", {"durable": True, "arguments": {"x-message-ttl": 60000}})
        call("POST", f"/api/bindings/%2F/e/{exchange}/q/{queue}", {"routing_key": "k"})
        status, exported = call("GET", "/api/definitions")
        self.assertEqual(status, 200)
        self.assertIn({"name": queue, "vhost": "/", "durable": True, "auto_delete": False,
                       "arguments": {"x-message-ttl": 60000}},
                      [{k: item[k] for k in ["name", "vhost", "durable", "auto_delete", "arguments"]}
                       for item in exported["queues"]])
        self.assertTrue(all(u.get("hashing_algorithm") == "rabbit_password_hashing_sha256" for u in exported["users"]))
        call("DELETE", f"/api/queues/%2F/{queue}")
        call("DELETE", f"/api/exchanges/%2F/{exchange}")
        mine = {key: [item for item in exported[key] if item.get("name", item.get("source")) in (queue, exchange)]
                for key in ["queues", "exchanges", "bindings"]}
        self.assertEqual(call("POST", "/api/definitions", mine)[0], 204)
        self.assertEqual(call("GET", f"/api/queues/%2F/{queue}")[1]["arguments"], {"x-message-ttl": 60000})
        status, bindings = call("GET", f"/api/bindings/%2F/e/{exchange}/q/{queue}")
        self.assertEqual([b["routing_key"] for b in bindings], ["k"])
        call("DELETE", f"/api/queues/%2F/{queue}")
        call("DELETE", f"/api/exchanges/%2F/{exchange}")

    def test_a_refused_import_takes_back_what_it_created(self):
        if broker().external:
            self.skipTest("RabbitMQ 3.10 keeps what it applied before the refusal")
        kept, fresh, bad, vhost = unique("kept"), unique("fresh"), unique("bad"), unique("vh")
        call("PUT", f"/api/queues/%2F/{kept}", {"durable": True})
        call("POST", f"/api/bindings/%2F/e/amq.direct/q/{kept}", {"routing_key": "old"})
        definitions = {
            "vhosts": [{"name": vhost}],
            "exchanges": [{"name": fresh, "vhost": "/", "type": "fanout", "durable": True}],
            "queues": [{"name": kept, "vhost": "/", "durable": True, "arguments": {}},
                       {"name": fresh, "vhost": "/", "durable": True, "arguments": {}},
                       {"name": bad, "vhost": "/", "durable": True, "arguments": {"x-max-priority": 300}}],
            "bindings": [{"source": "amq.direct", "vhost": "/", "destination": kept, "destination_type": "queue",
                          "routing_key": "old", "arguments": {}}],
        }
        status, body = call("POST", "/api/definitions", definitions)
        self.assertEqual(status, 400)
        self.assertIn("x-max-priority", body["reason"])
        self.assertEqual(call("GET", f"/api/queues/%2F/{fresh}")[0], 404)
        self.assertEqual(call("GET", f"/api/exchanges/%2F/{fresh}")[0], 404)
        self.assertEqual(call("GET", f"/api/vhosts/{q(vhost)}")[0], 404)
        self.assertEqual(call("GET", f"/api/queues/%2F/{kept}")[0], 200)  # it existed: left alone
        bindings = call("GET", f"/api/bindings/%2F/e/amq.direct/q/{kept}")[1]
        self.assertEqual([b["routing_key"] for b in bindings], ["old"])
        call("DELETE", f"/api/queues/%2F/{kept}")


class BootDefinitions(unittest.TestCase):
    """warrend --definitions FILE applies a definitions.json before it serves."""

    def test_a_file_is_applied_at_boot_and_a_bad_one_refused(self):
        if broker().external:
            self.skipTest("warrend's flag")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "definitions.json")
            with open(path, "w") as f:
                json.dump({"vhosts": [{"name": "/"}],
                           "exchanges": [{"name": "boot-x", "vhost": "/", "type": "topic", "durable": True}],
                           "queues": [{"name": "boot-q", "vhost": "/", "durable": True,
                                       "arguments": {"x-max-length": 10}}],
                           "bindings": [{"source": "boot-x", "vhost": "/", "destination": "boot-q",
                                         "destination_type": "queue", "routing_key": "a.#", "arguments": {}}]}, f)
            proc, port = start_warrend("--data-dir", os.path.join(d, "data"), "--definitions", path,
                                       "--log-level", "warning")
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
            ch = conn.channel()
            ch.queue_declare("boot-q", durable=True, arguments={"x-max-length": 10}, passive=True)
            ch.confirm_delivery()
            ch.basic_publish("boot-x", "a.b", b"routed", mandatory=True)
            self.assertEqual(ch.queue_declare("boot-q", passive=True).method.message_count, 1)
            conn.close()
            proc.terminate()
            self.assertEqual(proc.wait(timeout=30), 0)
            with open(path, "w") as f:
                json.dump({"queues": [{"name": "bad", "vhost": "/", "arguments": {"x-max-length": "ten"}}]}, f)
            result = subprocess.run([os.environ["WARREND"], "--port", "0", "--management-port", "0",
                                     "--prometheus-port", "0", "--data-dir", os.path.join(d, "data2"),
                                     "--definitions", path], capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 1)
            self.assertIn("invalid arg 'x-max-length'", result.stderr)


def rabbitmq(method, path, body=None):
    """A call to the local RabbitMQ's management API (the oracle), or None if none runs."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:15672{path}", data=data, method=method, headers={
        "content-type": "application/json",
        "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return None


class DefinitionsBothWays(unittest.TestCase):
    """Against the local RabbitMQ 3.10 when one runs with its management plugin: its export
    imports into Warren, and Warren's (users and password hashes included) into it."""

    def setUp(self):
        if broker().external or rabbitmq("GET", "/api/overview") is None:
            self.skipTest("needs warrend and a local RabbitMQ with the management plugin on 15672")

    def test_rabbitmq_to_warren(self):
        queue, exchange = unique("from-rabbit"), unique("from-rabbit-x")
        rabbitmq("PUT", f"/api/exchanges/%2F/{exchange}", {"type": "headers", "durable": True})
        rabbitmq("PUT", f"/api/queues/%2F/{queue}", {"durable": True, "arguments": {"x-max-priority": 4}})
        rabbitmq("POST", f"/api/bindings/%2F/e/{exchange}/q/{queue}", {"routing_key": "", "arguments": {"x-match": "any", "k": "v"}})
        exported = rabbitmq("GET", "/api/definitions")[1]
        rabbitmq("DELETE", f"/api/queues/%2F/{queue}")
        rabbitmq("DELETE", f"/api/exchanges/%2F/{exchange}")
        self.assertEqual(call("POST", "/api/definitions", exported)[0], 204)
        self.assertEqual(call("GET", f"/api/queues/%2F/{queue}")[1]["arguments"], {"x-max-priority": 4})
        bindings = call("GET", f"/api/bindings/%2F/e/{exchange}/q/{queue}")[1]
        self.assertEqual([b["arguments"] for b in bindings], [{"x-match": "any", "k": "v"}])
        call("DELETE", f"/api/queues/%2F/{queue}")
        call("DELETE", f"/api/exchanges/%2F/{exchange}")

    def test_warren_to_rabbitmq_passwords_included(self):
        queue = unique("from-warren")
        call("PUT", f"/api/queues/%2F/{queue}", {"durable": True, "arguments": {"x-message-ttl": 1000}})
        exported = call("GET", "/api/definitions")[1]
        mine = dict(exported, queues=[q for q in exported["queues"] if q["name"] == queue], exchanges=[], bindings=[])
        self.assertEqual(rabbitmq("POST", "/api/definitions", mine)[0], 204)
        status, got = rabbitmq("GET", f"/api/queues/%2F/{queue}")
        self.assertEqual((status, got["arguments"]), (200, {"x-message-ttl": 1000}))
        # guest's password hash, as Warren wrote it, still lets guest in.
        self.assertEqual(rabbitmq("GET", "/api/whoami")[0], 200)
        rabbitmq("DELETE", f"/api/queues/%2F/{queue}")
        call("DELETE", f"/api/queues/%2F/{queue}")


class RabbitmqAdmin(unittest.TestCase):
    """Debian's rabbitmqadmin, unchanged."""

    def admin(self, *args):
        result = subprocess.run(["rabbitmqadmin", "-P", str(broker().mgmt_port), "-u", "guest", "-p", "guest", *args],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result.stdout

    def test_declare_publish_get_list_purge_export_import_delete(self):
        queue, exchange = unique("adm"), unique("admx")
        self.admin("declare", "queue", f"name={queue}", "durable=true")
        self.admin("declare", "exchange", f"name={exchange}", "type=fanout")
        self.admin("declare", "binding", f"source={exchange}", f"destination={queue}")
        self.admin("publish", f"exchange={exchange}", "routing_key=any", "payload=hello")
        got = json.loads(self.admin("-f", "raw_json", "get", f"queue={queue}", "ackmode=ack_requeue_true"))
        self.assertEqual([(m["payload"], m["exchange"]) for m in got], [("hello", exchange)])
        queues = json.loads(self.admin("-f", "raw_json", "list", "queues", "name", "messages"))
        self.assertIn(queue, [item["name"] for item in queues])
        self.assertIn(exchange, self.admin("list", "exchanges"))
        self.assertIn(exchange, self.admin("list", "bindings"))
        for kind in ["connections", "users", "vhosts"]:
            self.admin("list", kind)
        self.admin("purge", "queue", f"name={queue}")
        self.assertEqual(json.loads(self.admin("-f", "raw_json", "get", f"queue={queue}")), [])
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), unique("defs") + ".json")
        self.admin("export", path)
        self.admin("delete", "queue", f"name={queue}")
        self.admin("delete", "exchange", f"name={exchange}")
        with open(path) as f:
            exported = json.load(f)
        only_mine = {key: [item for item in exported[key] if item.get("name", item.get("source")) in (queue, exchange)]
                     for key in ["queues", "exchanges", "bindings"]}
        with open(path, "w") as f:
            json.dump(only_mine, f)
        self.admin("import", path)
        os.unlink(path)
        self.assertIn(queue, self.admin("list", "queues"))
        self.admin("delete", "queue", f"name={queue}")
        self.admin("delete", "exchange", f"name={exchange}")


if __name__ == "__main__":
    unittest.main()
