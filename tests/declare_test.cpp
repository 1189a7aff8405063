// Declaration rules for queues, exchanges and bindings, with RabbitMQ's codes and texts.
#include <gtest/gtest.h>

#include <future>

#include "broker_util.h"

namespace warren {
namespace {

using namespace warren::testing;

class Declare : public ::testing::Test {
 protected:
  Inbox inbox;  // outlives the broker, whose thread feeds it
  std::unique_ptr<Broker> broker = memory_broker();
  Channel ch = broker->channel();
};

TEST_F(Declare, QueueDeclareReportsReadyMessagesAndConsumers) {
  ch.queue_declare("q");
  ch.basic_publish("", "q", transient("a"));
  ch.basic_publish("", "q", transient("b"));
  auto before = ch.queue_declare("q", {.passive = true});
  EXPECT_EQ(before.message_count, 2u);
  EXPECT_EQ(before.consumer_count, 0u);
  ch.basic_consume("q", inbox.callback(), {.consumer_tag = "c"});
  ASSERT_TRUE(inbox.next());
  ASSERT_TRUE(inbox.next());
  auto ok = ch.queue_declare("q", {.passive = true});
  EXPECT_EQ(ok.queue, "q");
  EXPECT_EQ(ok.consumer_count, 1u);
  EXPECT_EQ(ok.message_count, 0u);  // ready ones only: both are out with the consumer
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 2u);
}

TEST_F(Declare, PassiveDeclareOfMissingQueueIs404AndClosesTheChannel) {
  Status s = error_of([&] { ch.queue_declare("nope", {.passive = true}); });
  EXPECT_EQ(s.code(), ReplyCode::not_found);
  EXPECT_EQ(s.text(), "NOT_FOUND - no queue 'nope' in vhost '/'");
  EXPECT_EQ(s.class_id(), 50);
  EXPECT_EQ(s.method_id(), 10);
  EXPECT_FALSE(ch.is_open());
  EXPECT_EQ(ch.close_reason().code(), ReplyCode::not_found);
  // Every later call on the channel reports the same error; other channels are unaffected.
  EXPECT_EQ(error_of([&] { ch.queue_declare("q"); }).code(), ReplyCode::not_found);
  auto other = broker->channel();
  EXPECT_NO_THROW(other.queue_declare("q"));
}

TEST_F(Declare, ServerNamedQueues) {
  auto ok = ch.queue_declare("", {.exclusive = true});
  EXPECT_TRUE(ok.queue.starts_with("amq.gen-"));
  EXPECT_EQ(ok.queue.size(), 8u + 22u);
  EXPECT_NE(ch.queue_declare("", {.exclusive = true}).queue, ok.queue);
}

TEST_F(Declare, ReservedPrefixIsRefused) {
  Status s = error_of([&] { ch.queue_declare("amq.foo"); });
  EXPECT_EQ(s.text(), "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'");
  auto ch2 = broker->channel();
  EXPECT_EQ(error_of([&] { ch2.queue_declare("amq.foo", {.passive = true}); }).code(),
            ReplyCode::not_found);
}

TEST_F(Declare, RedeclareWithOtherPropertiesIs406) {
  ch.queue_declare("q", {.durable = true});
  Status s = error_of([&] { ch.queue_declare("q", {.durable = false}); });
  EXPECT_EQ(s.text(),
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': "
            "received 'false' but current is 'true'");
}

TEST_F(Declare, RedeclareComparesKnownArgumentsByValue) {
  ch.queue_declare(
      "q", {.arguments = {{"x-max-length", FieldValue(int32_t(10))}, {"x-foo", FieldValue(1)}}});
  // Another integer width with the same value, and an unknown argument: equivalent.
  EXPECT_NO_THROW(
      ch.queue_declare("q", {.arguments = {{"x-max-length", FieldValue(int64_t(10))}}}));
  Status missing = error_of([&] { ch.queue_declare("q"); });
  EXPECT_EQ(missing.text(),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': "
            "received none but current is the value '10' of type 'signedint'");
  auto ch2 = broker->channel();
  Status different = error_of([&] {
    ch2.queue_declare("q", {.arguments = {{"x-max-length", FieldValue(int32_t(5))}}});
  });
  EXPECT_EQ(different.text(),
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': "
            "received '5' but current is '10'");
}

TEST_F(Declare, ExclusiveQueueBelongsToItsConnection) {
  auto owner = broker->connect("owner");
  auto owner_ch = owner.channel();
  owner_ch.queue_declare("mine", {.exclusive = true});
  Status s = error_of([&] { ch.queue_declare("mine", {.passive = true}); });
  EXPECT_EQ(s.code(), ReplyCode::resource_locked);
  EXPECT_EQ(s.text(),
            "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost '/'. "
            "It could be originally declared on another connection or the exclusive property "
            "value does not match that of the original declaration.");
  // Publishing to it from elsewhere works.
  auto other = broker->channel();
  other.basic_publish("", "mine", transient("hi"));
  other.flush();
  EXPECT_TRUE(owner_ch.basic_get("mine"));
  for (auto op : {0, 1, 2}) {
    auto c = broker->channel();
    Status e = error_of([&] {
      if (op == 0) c.basic_get("mine");
      if (op == 1) c.queue_purge("mine");
      if (op == 2) c.queue_delete("mine");
    });
    EXPECT_EQ(e.code(), ReplyCode::resource_locked) << op;
  }
  owner.close();
  auto after = broker->channel();
  EXPECT_EQ(error_of([&] { after.queue_declare("mine", {.passive = true}); }).code(),
            ReplyCode::not_found);
}

TEST_F(Declare, DeleteAndPurgeReportReadyCounts) {
  ch.queue_declare("q");
  for (int i = 0; i < 5; ++i) ch.basic_publish("", "q", transient("m"));
  auto d = ch.basic_get("q");
  ASSERT_TRUE(d);
  EXPECT_EQ(ch.queue_purge("q"), 4u);
  // Purge leaves the unacked message, which comes back on requeue.
  ch.basic_reject(d->delivery_tag, true);
  auto again = ch.basic_get("q");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->redelivered);
  ch.basic_nack(again->delivery_tag, false, true);
  ch.basic_publish("", "q", transient("m"));
  EXPECT_EQ(ch.queue_delete("q"), 2u);
  EXPECT_EQ(ch.queue_delete("q"), 0u);  // deleting a missing queue is fine
  EXPECT_EQ(error_of([&] { ch.queue_purge("q"); }).code(), ReplyCode::not_found);
}

TEST_F(Declare, DeleteIfUnusedAndIfEmpty) {
  ch.queue_declare("q");
  ch.basic_publish("", "q", transient("m"));
  ch.flush();
  Status not_empty = error_of([&] { ch.queue_delete("q", {.if_empty = true}); });
  EXPECT_EQ(not_empty.text(), "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty");
  auto c = broker->channel();
  c.basic_qos(1);
  c.basic_consume("q", [](Delivery) {});
  auto ch2 = broker->channel();
  Status in_use = error_of([&] { ch2.queue_delete("q", {.if_unused = true}); });
  EXPECT_EQ(in_use.text(), "PRECONDITION_FAILED - queue 'q' in vhost '/' in use");
}

TEST_F(Declare, AutoDeleteQueueGoesWithItsLastConsumer) {
  ch.queue_declare("ad", {.auto_delete = true});
  auto tag1 = ch.basic_consume("ad", [](Delivery) {});
  auto tag2 = ch.basic_consume("ad", [](Delivery) {});
  ch.basic_cancel(tag1);
  EXPECT_NO_THROW(ch.queue_declare("ad", {.passive = true}));
  ch.basic_cancel(tag2);
  EXPECT_EQ(error_of([&] { ch.queue_declare("ad", {.passive = true}); }).code(),
            ReplyCode::not_found);
}

TEST_F(Declare, DeletingAQueueCancelsItsConsumers) {
  ch.queue_declare("q");
  std::promise<std::string> cancelled;
  ch.basic_consume("q", [](Delivery) {},
                   {.consumer_tag = "ctag",
                    .on_cancel = [&](const std::string& tag) { cancelled.set_value(tag); }});
  broker->channel().queue_delete("q");
  auto f = cancelled.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), "ctag");
}

TEST_F(Declare, ExchangeRules) {
  ch.exchange_declare("x", "direct");
  EXPECT_NO_THROW(ch.exchange_declare("x", "direct", {.passive = true}));
  EXPECT_NO_THROW(ch.exchange_declare("amq.direct", "direct", {.durable = true}));
  Status type = error_of([&] { ch.exchange_declare("x", "fanout"); });
  EXPECT_EQ(type.text(),
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': "
            "received 'fanout' but current is 'direct'");
  auto c = broker->channel();
  Status unknown = error_of([&] { c.exchange_declare("y", "bogus"); });
  EXPECT_EQ(unknown.code(), ReplyCode::command_invalid);
  EXPECT_EQ(unknown.text(), "COMMAND_INVALID - unknown exchange type 'bogus'");
  EXPECT_TRUE(unknown.closes_connection());
  c = broker->channel();
  EXPECT_EQ(error_of([&] { c.exchange_declare("amq.custom", "direct"); }).text(),
            "ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix 'amq.*'");
  c = broker->channel();
  EXPECT_EQ(error_of([&] { c.exchange_declare("", "direct"); }).text(),
            "ACCESS_REFUSED - operation not permitted on the default exchange");
  c = broker->channel();
  EXPECT_EQ(error_of([&] { c.exchange_delete("amq.direct"); }).text(),
            "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed");
  c = broker->channel();
  EXPECT_EQ(error_of([&] { c.exchange_declare("missing", "direct", {.passive = true}); }).text(),
            "NOT_FOUND - no exchange 'missing' in vhost '/'");
  c = broker->channel();
  c.queue_declare("q");
  c.queue_bind("q", "x", "k");
  EXPECT_EQ(error_of([&] { c.exchange_delete("x", {.if_unused = true}); }).text(),
            "PRECONDITION_FAILED - exchange 'x' in vhost '/' in use");
  c = broker->channel();
  EXPECT_NO_THROW(c.exchange_delete("x"));
  EXPECT_NO_THROW(c.exchange_delete("x"));  // missing: fine
}

TEST_F(Declare, BindingErrors) {
  ch.queue_declare("q");
  EXPECT_EQ(error_of([&] { ch.queue_bind("q", "nox", "k"); }).text(),
            "NOT_FOUND - no exchange 'nox' in vhost '/'");
  auto c = broker->channel();
  EXPECT_EQ(error_of([&] { c.queue_bind("noq", "amq.direct", "k"); }).text(),
            "NOT_FOUND - no queue 'noq' in vhost '/'");
  c = broker->channel();
  EXPECT_EQ(error_of([&] { c.queue_bind("q", "", "q"); }).text(),
            "ACCESS_REFUSED - operation not permitted on the default exchange");
  c = broker->channel();
  EXPECT_NO_THROW(c.queue_unbind("q", "amq.direct", "never-bound"));
  Status xmatch = error_of([&] {
    c.queue_bind("q", "amq.headers", "", {{"x-match", FieldValue("bogus")}});
  });
  EXPECT_EQ(xmatch.code(), ReplyCode::precondition_failed);
  EXPECT_EQ(xmatch.class_id(), 50);
  EXPECT_EQ(xmatch.method_id(), 20);
}

TEST_F(Declare, AutoDeleteExchangeGoesWithItsLastBinding) {
  ch.exchange_declare("ax", "fanout", {.auto_delete = true});
  ch.queue_declare("q");
  ch.queue_bind("q", "ax", "");
  ch.queue_unbind("q", "ax", "");
  EXPECT_EQ(error_of([&] { ch.exchange_declare("ax", "fanout", {.passive = true}); }).code(),
            ReplyCode::not_found);
}

}  // namespace
}  // namespace warren
