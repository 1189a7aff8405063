// Shovels: AMQP URIs and definitions as RabbitMQ reads them (its texts, checked against
// RabbitMQ 3.10.8's shovel plugin), and shovels inside one in-process broker (both ends
// "amqp://"): moving, headers, delete-after, durability across reopening. Shovels to other
// brokers over the network are tested with real brokers in tests/interop/test_shovel.py.
#include <gtest/gtest.h>

#include "broker_util.h"
#include "shovel/definition.h"
#include "shovel/uri.h"

namespace warren::testing {
namespace {

using nlohmann::json;
using shovel::parse_amqp_uri;

// ---- URIs ---------------------------------------------------------------------------------

TEST(AmqpUri, DefaultsAsRabbitMQHasThem) {
  auto uri = parse_amqp_uri("amqp://broker.example");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->host, "broker.example");
  EXPECT_EQ(uri->port, 5672);
  EXPECT_EQ(uri->user, "guest");
  EXPECT_EQ(uri->password, "guest");
  EXPECT_EQ(uri->vhost, "/");
  EXPECT_FALSE(uri->local);
}

TEST(AmqpUri, CredentialsPortVhostAndQueryAreDecoded) {
  auto uri = parse_amqp_uri(
      "amqp://us%40er:p%3Ass@10.0.0.1:5673/edge%2Fone?heartbeat=5&connection_timeout=2000");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->user, "us@er");
  EXPECT_EQ(uri->password, "p:ss");
  EXPECT_EQ(uri->port, 5673);
  EXPECT_EQ(uri->vhost, "edge/one");
  EXPECT_EQ(uri->heartbeat, 5);
  EXPECT_EQ(uri->connection_timeout_ms, 2000u);
  EXPECT_EQ(uri->redacted(), "amqp://10.0.0.1:5673/edge%2Fone");
}

TEST(AmqpUri, ASlashAloneIsTheEmptyVhostAndPercent2FIsTheDefault) {
  EXPECT_EQ(parse_amqp_uri("amqp://h/")->vhost, "");
  EXPECT_EQ(parse_amqp_uri("amqp://h/%2F")->vhost, "/");
}

TEST(AmqpUri, NoHostIsThisBroker) {
  auto uri = parse_amqp_uri("amqp://");
  ASSERT_TRUE(uri.ok());
  EXPECT_TRUE(uri->local);
  EXPECT_FALSE(uri->vhost_given);
  auto with_vhost = parse_amqp_uri("amqp:///other");
  EXPECT_TRUE(with_vhost->local);
  EXPECT_EQ(with_vhost->vhost, "other");
}

TEST(AmqpUri, IPv6HostsAreBracketed) {
  auto uri = parse_amqp_uri("amqp://[::1]:5699");
  ASSERT_TRUE(uri.ok());
  EXPECT_EQ(uri->host, "::1");
  EXPECT_EQ(uri->port, 5699);
}

TEST(AmqpUri, WhatIsNotAnAmqpUriIsRefusedSayingWhy) {
  for (const char* bad :
       {"http://x", "amqp://h:0", "amqp://h:99999", "amqp://h:port", "amqp://[::1", "amqp://h/a/b",
        "amqp://h?heartbeat=soon", "amqps://", "broker"}) {
    auto uri = parse_amqp_uri(bad);
    EXPECT_FALSE(uri.ok()) << bad;
    if (!uri.ok()) {
      EXPECT_NE(uri.status().text().find("not a valid URI"), std::string::npos) << bad;
    }
  }
}

// ---- definitions ----------------------------------------------------------------------------

std::string refusal(const json& value) {
  auto d = shovel::definition_from_json("/", "bad", value);
  EXPECT_FALSE(d.ok());
  return d.ok() ? "" : d.status().text();
}

TEST(ShovelDefinition, RabbitMQsValidationTexts) {
  EXPECT_EQ(refusal({{"src-queue", "a"}, {"dest-uri", "amqp://"}}),
            "PRECONDITION_FAILED - Validation failed\n\nKey \"src-uri\" not found in bad\n");
  EXPECT_EQ(
      refusal({{"src-uri", "amqp://"},
               {"src-queue", "a"},
               {"src-exchange", "x"},
               {"dest-uri", "amqp://"}}),
      "PRECONDITION_FAILED - Validation failed\n\nCannot specify 'src-exchange' and 'src-queue'\n");
  EXPECT_EQ(
      refusal({{"src-uri", "amqp://"}, {"dest-uri", "amqp://"}}),
      "PRECONDITION_FAILED - Validation failed\n\nMust specify 'src-exchange' or 'src-queue'\n");
  EXPECT_NE(refusal({{"src-uri", "amqp://"},
                     {"src-queue", "a"},
                     {"dest-uri", "amqp://"},
                     {"ack-mode", "sometimes"}})
                .find("ack-mode should be one of [\"no-ack\",\"on-publish\",\"on-confirm\"], "
                      "actually was \"sometimes\""),
            std::string::npos);
  EXPECT_NE(
      refusal({{"src-uri", "amqp://"}, {"src-queue", "a"}, {"dest-uri", "amqp://"}, {"bogus", 1}})
          .find("Unrecognised terms [{\"bogus\",1}] in bad"),
      std::string::npos);
  EXPECT_NE(refusal({{"src-uri", "http://x"}, {"src-queue", "a"}, {"dest-uri", "amqp://"}})
                .find("\"http://x\" not a valid URI"),
            std::string::npos);
  EXPECT_NE(refusal({{"src-uri", "amqp://"},
                     {"src-queue", "a"},
                     {"dest-uri", "amqp://"},
                     {"src-delete-after", "sometime"}})
                .find("src-delete-after should be a number greater than or equal to 0, \"never\" "
                      "or \"queue-length\""),
            std::string::npos);
  EXPECT_NE(refusal({{"src-uri", "amqp://"},
                     {"src-queue", "a"},
                     {"dest-uri", "amqp://"},
                     {"src-prefetch-count", "x"}})
                .find("src-prefetch-count should be a number"),
            std::string::npos);
  EXPECT_NE(refusal({{"src-uri", "amqp://"},
                     {"src-queue", "a"},
                     {"dest-uri", "amqp://"},
                     {"reconnect-delay", -1}})
                .find("reconnect-delay should be a number greater than or equal to 0"),
            std::string::npos);
  EXPECT_NE(refusal("a string").find("should be an object"), std::string::npos);
}

TEST(ShovelDefinition, KeysDefaultsAndFailoverLists) {
  auto d = shovel::definition_from_json("edge", "up",
                                        {{"src-uri", "amqp://"},
                                         {"src-queue", "outbox"},
                                         {"dest-uri", {"amqp://a.example", "amqp://b.example"}},
                                         {"dest-exchange", "in"},
                                         {"dest-exchange-key", "k"},
                                         {"ack-mode", "on-publish"},
                                         {"src-prefetch-count", 50},
                                         {"src-delete-after", "queue-length"},
                                         {"reconnect-delay", 0.5},
                                         {"add-forward-headers", true},
                                         {"dest-publish-properties", {{"delivery_mode", 2}}}});
  ASSERT_TRUE(d.ok()) << d.status().text();
  EXPECT_EQ(d->vhost, "edge");
  EXPECT_EQ(d->dest_uri.size(), 2u);
  EXPECT_EQ(d->dest_exchange_key, std::optional<std::string>("k"));
  EXPECT_EQ(d->ack_mode, ShovelAckMode::on_publish);
  EXPECT_EQ(d->src_prefetch_count, 50);
  EXPECT_TRUE(d->src_delete_after_queue_length);
  EXPECT_EQ(d->reconnect_delay, 0.5);
  EXPECT_EQ(d->dest_publish_properties.delivery_mode, std::optional<uint8_t>(2));
  auto plain = shovel::definition_from_json(
      "/", "p", {{"src-uri", "amqp://"}, {"src-queue", "q"}, {"dest-uri", "amqp://"}});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->ack_mode, ShovelAckMode::on_confirm);
  EXPECT_EQ(plain->src_prefetch_count, 1000);
  EXPECT_EQ(plain->reconnect_delay, 5);
  EXPECT_FALSE(plain->dest_exchange_key.has_value());
  // What definition_to_json writes reads back as the same definition.
  auto again = shovel::definition_from_json("edge", "up", shovel::definition_to_json(*d));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(shovel::definition_to_json(*again), shovel::definition_to_json(*d));
}

// ---- shovels inside one broker --------------------------------------------------------------

// Polls a condition that a shovel makes true on the broker's thread (status has no events).
template <class F>
bool eventually(F&& done, std::chrono::milliseconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

ShovelDefinition local_shovel(std::string name, std::string from, std::string to) {
  ShovelDefinition d;
  d.name = std::move(name);
  d.src_queue = std::move(from);
  d.dest_queue = std::move(to);
  d.reconnect_delay = 0.2;
  return d;
}

std::optional<ShovelStatus> status_of(Broker& b, std::string_view name) {
  for (auto& s : b.shovels())
    if (s.name == name) return s;
  return std::nullopt;
}

TEST(LocalShovel, MovesMessagesInOrderWithTheirPropertiesAndAcksThemAtTheSource) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("out", {.durable = true});
  ch.confirm_select();
  for (int i = 0; i < 500; ++i) {
    Message m = persistent("m" + std::to_string(i));
    m.properties.message_id = std::to_string(i);
    m.properties.headers = args({{"n", FieldValue(int32_t(i))}});
    ch.basic_publish("", "out", std::move(m));
  }
  ASSERT_TRUE(ch.wait_for_confirms(10s));
  broker->declare_shovel(local_shovel("mover", "out", "in"));
  Inbox inbox;
  auto consumer = broker->channel();
  consumer.queue_declare("in", {.durable = true});
  consumer.basic_consume("in", inbox.callback(), {.no_ack = true});
  for (int i = 0; i < 500; ++i) {
    auto d = inbox.next(20s);
    ASSERT_TRUE(d) << "message " << i;
    EXPECT_EQ(d->message.body, "m" + std::to_string(i));
    EXPECT_EQ(d->message.properties.message_id, std::optional<std::string>(std::to_string(i)));
    EXPECT_EQ(d->message.properties.delivery_mode, std::optional<uint8_t>(2));
    EXPECT_EQ(*d->message.properties.headers->find("n"), FieldValue(int32_t(i)));
    EXPECT_EQ(d->message.properties.headers->find("x-shovelled"), nullptr);
  }
  EXPECT_TRUE(eventually([&] {
    return info(*broker, "out").messages_ready == 0 &&
           info(*broker, "out").messages_unacknowledged == 0;
  }));
  EXPECT_TRUE(eventually([&] { return status_of(*broker, "mover")->forwarded == 500; }));
  auto s = status_of(*broker, "mover");
  EXPECT_EQ(s->state, "running");
  EXPECT_EQ(s->resent, 0u);
}

TEST(LocalShovel, NoAckMovesABacklogAPrefetchAtATime) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("many", {.durable = true});
  ch.queue_declare("moved", {.durable = true});
  for (int i = 0; i < 5000; ++i) ch.basic_publish("", "many", transient(std::to_string(i)));
  ch.flush();
  auto d = local_shovel("fast", "many", "moved");
  d.ack_mode = ShovelAckMode::no_ack;
  d.src_prefetch_count = 10;  // what may wait between the two ends at once
  broker->declare_shovel(d);
  ASSERT_TRUE(eventually([&] { return info(*broker, "moved").messages_ready == 5000; }));
  EXPECT_EQ(ch.basic_get("moved", true)->message.body, "0");
  EXPECT_EQ(info(*broker, "many").messages_ready, 0u);
}

TEST(LocalShovel, ForwardHeadersAsRabbitMQWritesThem) {
  auto broker = memory_broker();
  auto d = local_shovel("stamp", "a", "b");
  d.add_forward_headers = true;
  d.dest_add_timestamp_header = true;
  d.dest_publish_properties.app_id = "relay";
  broker->declare_shovel(d);
  auto ch = broker->channel();
  ch.queue_declare("b", {.durable = true});
  ch.basic_publish("", "a", transient("x"));
  std::optional<Delivery> got;
  ASSERT_TRUE(eventually([&] { return (got = ch.basic_get("b", true)).has_value(); }));
  const FieldTable& headers = *got->message.properties.headers;
  const auto* entries = headers.find("x-shovelled")->as<FieldArray>();
  ASSERT_NE(entries, nullptr);
  ASSERT_EQ(entries->size(), 1u);
  const auto* entry = (*entries)[0].as<FieldTable>();
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(*entry->find("shovel-name"), FieldValue(std::string("stamp")));
  EXPECT_EQ(*entry->find("shovel-type"), FieldValue(std::string("dynamic")));
  EXPECT_EQ(*entry->find("shovel-vhost"), FieldValue(std::string("/")));
  EXPECT_EQ(*entry->find("src-queue"), FieldValue(std::string("a")));
  EXPECT_EQ(*entry->find("dest-queue"), FieldValue(std::string("b")));
  EXPECT_EQ(*entry->find("src-uri"), FieldValue(std::string("amqp://")));
  ASSERT_NE(headers.find("x-shovelled-timestamp"), nullptr);
  EXPECT_GT(headers.find("x-shovelled-timestamp")->as_integer().value_or(0), 1'700'000'000);
  EXPECT_EQ(got->message.properties.app_id, std::optional<std::string>("relay"));
}

TEST(LocalShovel, DeleteAfterACountMovesThatManyThenTheShovelIsGone) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("src", {.durable = true});
  ch.confirm_select();
  for (int i = 0; i < 10; ++i) ch.basic_publish("", "src", transient(std::to_string(i)));
  ASSERT_TRUE(ch.wait_for_confirms(10s));
  auto d = local_shovel("three", "src", "dst");
  d.src_delete_after = 3;
  broker->declare_shovel(d);
  ASSERT_TRUE(eventually([&] { return broker->shovels().empty(); }));
  ASSERT_TRUE(eventually([&] { return info(*broker, "src").messages_unacknowledged == 0; }));
  EXPECT_EQ(info(*broker, "dst").messages_ready, 3u);
  EXPECT_EQ(info(*broker, "src").messages_ready, 7u);
  EXPECT_EQ(ch.basic_get("src", true)->message.body, "3");  // the rest kept their order
}

TEST(LocalShovel, QueueLengthMovesWhatWasThereAtTheStart) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("backlog", {.durable = true});
  for (int i = 0; i < 4; ++i) ch.basic_publish("", "backlog", transient(std::to_string(i)));
  ch.flush();
  auto d = local_shovel("drain", "backlog", "elsewhere");
  d.src_delete_after_queue_length = true;
  broker->declare_shovel(d);
  ASSERT_TRUE(eventually([&] { return broker->shovels().empty(); }));
  EXPECT_EQ(info(*broker, "elsewhere").messages_ready, 4u);
}

TEST(LocalShovel, AnInvalidDefinitionIsRefusedWithRabbitMQsText) {
  auto broker = memory_broker();
  ShovelDefinition d;
  d.name = "nothing";
  Status s = error_of([&] { broker->declare_shovel(d); });
  EXPECT_EQ(s.code(), ReplyCode::precondition_failed);
  EXPECT_NE(s.text().find("Must specify 'src-exchange' or 'src-queue'"), std::string::npos);
  d.src_queue = "q";
  d.dest_uri = {"amqp://host:notaport"};
  EXPECT_NE(error_of([&] { broker->declare_shovel(d); }).text().find("not a valid URI"),
            std::string::npos);
  EXPECT_TRUE(broker->shovels().empty());
  EXPECT_FALSE(broker->delete_shovel("nothing"));
}

TEST(LocalShovel, AnExchangeSourceGetsAQueueOfItsOwnBoundWithTheKey) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.exchange_declare("events", "topic");
  ch.queue_declare("sink", {.durable = true});
  ShovelDefinition d;
  d.name = "tap";
  d.src_exchange = "events";
  d.src_exchange_key = "sensor.#";
  d.dest_queue = "sink";
  broker->declare_shovel(d);
  ASSERT_TRUE(eventually([&] { return status_of(*broker, "tap")->state == "running"; }));
  ch.basic_publish("events", "sensor.temp", transient("21"));
  ch.basic_publish("events", "other.thing", transient("no"));
  std::optional<Delivery> got;
  ASSERT_TRUE(eventually([&] { return (got = ch.basic_get("sink", true)).has_value(); }));
  EXPECT_EQ(got->message.body, "21");
  EXPECT_EQ(got->routing_key, "sink");
  ch.flush();
  EXPECT_FALSE(ch.basic_get("sink", true));
}

class DurableShovel : public DurableBrokerTest {};

TEST_F(DurableShovel, ADefinitionSurvivesReopeningAndTheShovelResumes) {
  {
    auto broker = open();
    broker->declare_shovel(local_shovel("kept", "left", "right"));
    ASSERT_TRUE(eventually([&] { return status_of(*broker, "kept")->state == "running"; }));
  }
  auto broker = open();
  auto s = status_of(*broker, "kept");
  ASSERT_TRUE(s);
  auto ch = broker->channel();
  ch.queue_declare("right", {.durable = true});
  ch.basic_publish("", "left", persistent("after reopening"));
  std::optional<Delivery> got;
  ASSERT_TRUE(eventually([&] { return (got = ch.basic_get("right", true)).has_value(); }));
  EXPECT_EQ(got->message.body, "after reopening");
  EXPECT_TRUE(broker->delete_shovel("kept"));
  broker.reset();
  EXPECT_TRUE(open()->shovels().empty());
}

}  // namespace
}  // namespace warren::testing
