#include <gtest/gtest.h>

#include "broker_util.h"
#include "core/dead_letter.h"
#include "wire/properties_codec.h"

namespace warren::core {
namespace {

storage::MessageData message(BasicProperties p) {
  storage::MessageData m;
  m.exchange = "orders";
  m.routing_key = "new";
  m.properties = wire::encode_properties(p);
  m.body = "body";
  return m;
}

BasicProperties props_of(const storage::MessageData& m) { return *wire::decode_properties(m.properties); }

std::vector<std::string> keys_of(const FieldValue& entry) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : *entry.as<FieldTable>()) keys.push_back(k);
  return keys;
}

TEST(DeadLetterCopy, FirstDeathAndExpiration) {
  BasicProperties p;
  p.expiration = "5000";
  p.headers = FieldTable{{"CC", FieldValue(FieldArray{FieldValue("audit")})}};
  auto out = dead_letter_copy(message(p), "work", "rejected", {"dlx", std::nullopt}, 1700000000);
  EXPECT_EQ(out.routing_keys, (std::vector<std::string>{"new", "audit"}));  // publish key + CC
  EXPECT_EQ(out.message.exchange, "dlx");
  auto q = props_of(out.message);
  EXPECT_FALSE(q.expiration);
  const auto& deaths = *q.headers->find("x-death")->as<FieldArray>();
  ASSERT_EQ(deaths.size(), 1u);
  EXPECT_EQ(keys_of(deaths[0]), (std::vector<std::string>{"count", "reason", "queue", "time", "exchange",
                                                          "routing-keys", "original-expiration"}));
  const auto& d = *deaths[0].as<FieldTable>();
  EXPECT_EQ(d.find("count")->type_char(), 'l');
  EXPECT_EQ(*d.find("time")->as<Timestamp>(), Timestamp{1700000000});
  EXPECT_EQ(*q.headers->find("x-first-death-reason")->as<std::string>(), "rejected");
  EXPECT_EQ(*q.headers->find("x-last-death-queue")->as<std::string>(), "work");
}

TEST(DeadLetterCopy, RepeatsCountUpAndMoveToTheFrontWithSortedKeys) {
  auto once = dead_letter_copy(message({}), "a", "rejected", {"dlx", std::nullopt}, 100);
  auto elsewhere = dead_letter_copy(once.message, "b", "expired", {"dlx", std::nullopt}, 200);
  auto again = dead_letter_copy(elsewhere.message, "a", "rejected", {"dlx", std::nullopt}, 300);
  auto h = *props_of(again.message).headers;
  const auto& deaths = *h.find("x-death")->as<FieldArray>();
  ASSERT_EQ(deaths.size(), 2u);
  const auto& front = *deaths[0].as<FieldTable>();
  EXPECT_EQ(*front.find("queue")->as<std::string>(), "a");
  EXPECT_EQ(*front.find("count")->as_integer(), 2);
  EXPECT_EQ(*front.find("time")->as<Timestamp>(), Timestamp{100});  // the first time is kept
  EXPECT_EQ(keys_of(deaths[0]),
            (std::vector<std::string>{"count", "exchange", "queue", "reason", "routing-keys", "time"}));
  EXPECT_EQ(*deaths[1].as<FieldTable>()->find("queue")->as<std::string>(), "b");
  EXPECT_EQ(*h.find("x-first-death-queue")->as<std::string>(), "a");
  EXPECT_EQ(*h.find("x-last-death-reason")->as<std::string>(), "rejected");
}

TEST(DeadLetterCopy, ARoutingKeyReplacesKeysAndDropsCc) {
  BasicProperties p;
  p.headers = FieldTable{{"CC", FieldValue(FieldArray{FieldValue("audit")})}};
  auto out = dead_letter_copy(message(p), "work", "rejected", {"", std::string("parking")}, 1);
  EXPECT_EQ(out.routing_keys, std::vector<std::string>{"parking"});
  EXPECT_FALSE(props_of(out.message).headers->find("CC"));
}

}  // namespace
}  // namespace warren::core

namespace warren {
namespace {

using namespace warren::testing;

TEST(DeadLettering, RejectedMessagesMoveAndAMissingExchangeDrops) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("parked");
  ch.queue_declare("work", {.arguments = {{"x-dead-letter-exchange", FieldValue("")},
                                          {"x-dead-letter-routing-key", FieldValue("parked")}}});
  ch.queue_declare("lost", {.arguments = {{"x-dead-letter-exchange", FieldValue("no-such-exchange")}}});
  ch.basic_publish("", "work", transient("w"));
  ch.basic_publish("", "lost", transient("l"));
  auto w = ch.basic_get("work");
  auto l = ch.basic_get("lost");
  ch.basic_reject(w->delivery_tag, false);
  ch.basic_nack(l->delivery_tag, false, false);
  auto parked = ch.basic_get("parked", true);
  ASSERT_TRUE(parked);
  EXPECT_EQ(parked->message.body, "w");
  EXPECT_EQ(parked->routing_key, "parked");
  EXPECT_FALSE(ch.basic_get("parked"));
  for (const auto& q : broker->list_queues()) EXPECT_EQ(q.messages_ready + q.messages_unacknowledged, 0u) << q.name;
}

}  // namespace
}  // namespace warren
