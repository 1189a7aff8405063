// What survives a restart, and how it comes back.
#include <gtest/gtest.h>

#include "broker_util.h"
#include "test_util.h"

namespace warren {
namespace {

using namespace warren::testing;

using Recovery = DurableBrokerTest;

TEST_F(Recovery, DurableDefinitionsAndPersistentMessagesSurvive) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.exchange_declare("events", "topic", {.durable = true});
    ch.exchange_declare("temp-x", "fanout");
    ch.queue_declare("orders", {.durable = true});
    ch.queue_declare("scratch");
    ch.queue_bind("orders", "events", "order.*");
    ch.queue_bind("scratch", "events", "#");
    ch.confirm_select();
    ch.basic_publish("events", "order.new", persistent("p1"));
    ch.basic_publish("events", "order.new", transient("t1"));
    ch.basic_publish("events", "order.new", persistent("p2"));
    ASSERT_TRUE(ch.wait_for_confirms(5s));
  }
  auto broker = open();
  auto ch = broker->channel();
  EXPECT_NO_THROW(ch.exchange_declare("events", "topic", {.passive = true, .durable = true}));
  EXPECT_EQ(error_of([&] { ch.exchange_declare("temp-x", "fanout", {.passive = true}); }).code(),
            ReplyCode::not_found);
  ch = broker->channel();
  EXPECT_EQ(error_of([&] { ch.queue_declare("scratch", {.passive = true}); }).code(),
            ReplyCode::not_found);
  ch = broker->channel();
  auto ok = ch.queue_declare("orders", {.durable = true});
  EXPECT_EQ(ok.message_count, 2u);  // the transient message is gone
  auto a = ch.basic_get("orders", true);
  auto b = ch.basic_get("orders", true);
  EXPECT_EQ(a->message.body, "p1");
  EXPECT_EQ(b->message.body, "p2");
  EXPECT_FALSE(a->redelivered);
  EXPECT_EQ(a->exchange, "events");
  EXPECT_EQ(a->routing_key, "order.new");
  EXPECT_EQ(a->message.properties.delivery_mode, 2);
  // The binding survived too.
  ch.basic_publish("events", "order.paid", persistent("p3"));
  EXPECT_EQ(ch.basic_get("orders", true)->message.body, "p3");
}

TEST_F(Recovery, UnackedComeBackRedeliveredAckedNever) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("q", {.durable = true});
    ch.confirm_select();
    for (int i = 0; i < 5; ++i) ch.basic_publish("", "q", persistent(std::to_string(i)));
    ASSERT_TRUE(ch.wait_for_confirms(5s));
    auto m0 = ch.basic_get("q");
    auto m1 = ch.basic_get("q");
    ch.basic_ack(m0->delivery_tag);
    ch.flush();
    // m1 is still unacked when the broker closes.
  }
  auto broker = open();
  auto ch = broker->channel();
  std::vector<std::pair<std::string, bool>> seen;
  while (auto d = ch.basic_get("q", true)) seen.emplace_back(d->message.body, d->redelivered);
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, bool>>{
                      {"1", true}, {"2", false}, {"3", false}, {"4", false}}));
}

TEST_F(Recovery, NewMessagesFollowRecoveredOnes) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("q", {.durable = true});
    ch.basic_publish("", "q", persistent("old"));
    ch.flush();
  }
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.basic_publish("", "q", persistent("new"));
    ch.flush();
    EXPECT_EQ(ch.basic_get("q", true)->message.body, "old");
  }
  auto broker = open();
  auto ch = broker->channel();
  auto d = ch.basic_get("q", true);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.body, "new");
  EXPECT_FALSE(d->redelivered);
  EXPECT_FALSE(ch.basic_get("q"));
}

TEST_F(Recovery, DeletedDefinitionsStayDeleted) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.exchange_declare("x", "direct", {.durable = true});
    ch.queue_declare("q", {.durable = true});
    ch.queue_bind("q", "x", "k");
    ch.basic_publish("", "q", persistent("m"));
    ch.queue_unbind("q", "x", "k");
    ch.queue_delete("q");
    ch.queue_declare("q", {.durable = true});  // same name, new queue: empty
  }
  auto broker = open();
  auto ch = broker->channel();
  EXPECT_EQ(ch.queue_declare("q", {.durable = true}).message_count, 0u);
  ch.confirm_select();
  ch.basic_publish("x", "k", persistent("m"), {.mandatory = true});
  EXPECT_TRUE(ch.wait_for_confirms(5s));
  EXPECT_FALSE(ch.basic_get("q"));  // the binding did not come back
}

TEST_F(Recovery, PurgeIsDurable) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("q", {.durable = true});
    for (int i = 0; i < 10; ++i) ch.basic_publish("", "q", persistent("m"));
    ch.flush();
    EXPECT_EQ(ch.queue_purge("q"), 10u);
    ch.flush();
  }
  auto broker = open();
  EXPECT_EQ(broker->channel().queue_declare("q", {.durable = true}).message_count, 0u);
}

TEST_F(Recovery, ManyMessagesKeepTheirOrderAndCount) {
  constexpr int kCount = 5000;
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("q", {.durable = true});
    ch.confirm_select();
    for (int i = 0; i < kCount; ++i) ch.basic_publish("", "q", persistent(std::to_string(i)));
    ASSERT_TRUE(ch.wait_for_confirms(30s));
  }
  auto broker = open();
  auto ch = broker->channel();
  EXPECT_EQ(ch.queue_declare("q", {.durable = true}).message_count, uint32_t(kCount));
  for (int i = 0; i < kCount; ++i) {
    auto d = ch.basic_get("q", true);
    ASSERT_TRUE(d);
    ASSERT_EQ(d->message.body, std::to_string(i));
  }
}

}  // namespace
}  // namespace warren
