// Priority queues, single active consumer, consumer priorities, direct reply-to and
// idempotent unbinding through the in-process API, with RabbitMQ 3.10's behaviour as the
// expectation (tests/interop/test_features.py checks the same against RabbitMQ itself).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <future>
#include <set>
#include <string>
#include <vector>

#include "broker_util.h"
#include "test_util.h"

namespace warren {
namespace {

using namespace warren::testing;

Message with_priority(std::string body, std::optional<uint8_t> priority, bool durable = false) {
  Message m = durable ? persistent(std::move(body)) : transient(std::move(body));
  m.properties.priority = priority;
  return m;
}

FieldTable max_priority(int max, FieldTable extra = {}) {
  extra.set("x-max-priority", FieldValue(int32_t(max)));
  return extra;
}

// Bodies of everything basic_get hands out, until the queue is empty.
std::vector<std::string> drain(Channel& ch, std::string_view queue) {
  std::vector<std::string> bodies;
  while (auto d = ch.basic_get(queue, true)) bodies.push_back(d->message.body);
  return bodies;
}

using Bodies = std::vector<std::string>;

// ---- priority queues -------------------------------------------------------------------

TEST(PriorityQueue, HigherFirstFifoWithinOnePriorityAndTheMaximumCapsAbove) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("pq", {.arguments = max_priority(3)});
  std::vector<std::optional<uint8_t>> priorities = {std::nullopt, 9, 3, 1, 0, 2, std::nullopt, 200};
  for (size_t i = 0; i < priorities.size(); ++i) ch.basic_publish("", "pq", with_priority(std::to_string(i), priorities[i]));
  EXPECT_EQ(drain(ch, "pq"), (Bodies{"1", "2", "7", "5", "3", "0", "4", "6"}));
}

TEST(PriorityQueue, ARequeuedMessageGoesBackToItsPlaceInItsPriority) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("pq", {.arguments = max_priority(3)});
  for (auto [body, p] : {std::pair{"a1", 1}, {"b1", 1}, {"c3", 3}, {"d0", 0}})
    ch.basic_publish("", "pq", with_priority(body, uint8_t(p)));
  auto first = ch.basic_get("pq"), second = ch.basic_get("pq");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->message.body, "c3");
  EXPECT_EQ(second->message.body, "a1");
  ch.basic_nack(first->delivery_tag, false, true);
  ch.basic_nack(second->delivery_tag, false, true);
  std::vector<std::pair<std::string, bool>> got;
  while (auto d = ch.basic_get("pq", true)) got.emplace_back(d->message.body, d->redelivered);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, bool>>{{"c3", true}, {"a1", true}, {"b1", false}, {"d0", false}}));
}

TEST(PriorityQueue, ConsumersWithPrefetchGetTheHighestPriorityWaiting) {
  // Declared first so that they outlive the broker, which may deliver while its channels close.
  Inbox inbox;
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("pq", {.arguments = max_priority(9)});
  for (int i = 0; i < 10; ++i) ch.basic_publish("", "pq", with_priority(std::to_string(i), uint8_t(i)));
  ch.basic_qos(1);
  ch.basic_consume("pq", inbox.callback());
  Bodies order;
  for (int i = 0; i < 10; ++i) {
    auto d = inbox.next();
    ASSERT_TRUE(d);
    order.push_back(d->message.body);
    ch.basic_ack(d->delivery_tag);
  }
  EXPECT_EQ(order, (Bodies{"9", "8", "7", "6", "5", "4", "3", "2", "1", "0"}));
}

TEST(PriorityQueue, DropHeadDropsTheHighestPriorityAndRejectPublishCountsEveryMessage) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  // Checked against RabbitMQ 3.10: the head of a priority queue is its highest priority.
  ch.queue_declare("drop", {.arguments = max_priority(5, args({{"x-max-length", FieldValue(int32_t(3))}}))});
  for (auto [body, p] : {std::pair{"0", 0}, {"1", 5}, {"2", 0}, {"3", 5}, {"4", 1}})
    ch.basic_publish("", "drop", with_priority(body, uint8_t(p)));
  EXPECT_EQ(drain(ch, "drop"), (Bodies{"4", "0", "2"}));

  ch.queue_declare("reject", {.arguments = max_priority(5, args({{"x-max-length", FieldValue(int32_t(3))},
                                                                   {"x-overflow", FieldValue("reject-publish")}}))});
  ch.confirm_select();
  for (auto [body, p] : {std::pair{"0", 0}, {"1", 5}, {"2", 0}, {"3", 5}}) ch.basic_publish("", "reject", with_priority(body, uint8_t(p)));
  EXPECT_FALSE(ch.wait_for_confirms(5s)) << "the fourth publish, over the limit, must be nacked";
  EXPECT_EQ(drain(ch, "reject"), (Bodies{"1", "0", "2"}));
}

TEST(PriorityQueue, ExpiryAndDeadLetteringWorkInEveryLane) {
  // Declared first so that they outlive the broker, which may deliver while its channels close.
  Inbox dead;
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("dead");
  ch.queue_declare("pq", {.arguments = max_priority(4, args({{"x-message-ttl", FieldValue(int32_t(30))},
                                                               {"x-dead-letter-exchange", FieldValue("")},
                                                               {"x-dead-letter-routing-key", FieldValue("dead")}}))});
  for (int p = 0; p <= 4; ++p) ch.basic_publish("", "pq", with_priority(std::to_string(p), uint8_t(p)));
  ch.basic_consume("dead", dead.callback(), {.no_ack = true});
  std::set<std::string> expired;
  for (int i = 0; i < 5; ++i) {
    auto d = dead.next();
    ASSERT_TRUE(d) << "only " << i << " of 5 expired messages were dead-lettered";
    expired.insert(d->message.body);
  }
  EXPECT_EQ(expired, (std::set<std::string>{"0", "1", "2", "3", "4"}));
  EXPECT_EQ(info(*broker, "pq").messages_ready, 0u);
}

TEST(PriorityQueue, RefusesAMaximumAbove255WithRabbitsText) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  Status s = error_of([&] { ch.queue_declare("pq", {.arguments = max_priority(256)}); });
  EXPECT_EQ(s.text(),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'pq' in vhost '/': "
            "{max_value_exceeded,256}");
}

TEST(PriorityQueue, AQuorumQueueRefusesPriorities) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  Status s = error_of([&] {
    ch.queue_declare("qq", {.durable = true, .arguments = max_priority(5, args({{"x-queue-type", FieldValue("quorum")}}))});
  });
  EXPECT_EQ(s.text(),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'qq' in vhost '/' of queue type "
            "rabbit_quorum_queue");
}

class DurablePriorityQueue : public DurableBrokerTest {};

TEST_F(DurablePriorityQueue, PrioritiesAndRequeuedPlacesSurviveARestart) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("pq", {.durable = true, .arguments = max_priority(7)});
    ch.confirm_select();
    for (int i = 0; i < 40; ++i) ch.basic_publish("", "pq", with_priority(fmt::format("{:02}", i), uint8_t(i % 8), true));
    ASSERT_TRUE(ch.wait_for_confirms(10s));
    auto head = ch.basic_get("pq");  // 07, the first of priority 7: given back by the restart
    ASSERT_TRUE(head);
    EXPECT_EQ(head->message.body, "07");
  }
  auto broker = open();
  auto ch = broker->channel();
  EXPECT_EQ(info(*broker, "pq").messages_ready, 40u);
  Bodies expected;
  for (int p = 7; p >= 0; --p)
    for (int i = p; i < 40; i += 8) expected.push_back(fmt::format("{:02}", i));
  EXPECT_EQ(drain(ch, "pq"), expected);
}

// ---- single active consumer --------------------------------------------------------------

TEST(SingleActiveConsumer, OnlyTheFirstReceivesAndTheNextTakesOverWithTheRequeuedFirst) {
  // Declared first so that they outlive the broker, which may deliver while its channels close.
  Inbox first, second;
  auto broker = memory_broker();
  auto first_ch = broker->channel();
  auto second_ch = broker->channel();
  first_ch.queue_declare("sac", {.arguments = args({{"x-single-active-consumer", FieldValue(true)}})});
  first_ch.basic_qos(2);
  first_ch.basic_consume("sac", first.callback());
  second_ch.basic_consume("sac", second.callback());
  EXPECT_EQ(first_ch.queue_declare("sac", {.passive = true}).consumer_count, 2u);  // both, as RabbitMQ
  for (int i = 0; i < 5; ++i) first_ch.basic_publish("", "sac", transient(std::to_string(i)));
  auto a = first.next(), b = first.next();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->message.body + b->message.body, "01");
  // No timed wait for "nothing arrives": had the inactive consumer received any of 2..4,
  // the order it gets after the handover (checked below) would not be 0..4.
  first_ch.close();  // 0 and 1 unacknowledged: requeued, then the second consumer is active
  Bodies got;
  for (int i = 0; i < 5; ++i) {
    auto d = second.next();
    ASSERT_TRUE(d) << "the second consumer did not take over";
    got.push_back(d->message.body);
    second_ch.basic_ack(d->delivery_tag);
  }
  EXPECT_EQ(got, (Bodies{"0", "1", "2", "3", "4"}));
}

TEST(SingleActiveConsumer, ACancelledActiveConsumerHandsOverInRegistrationOrder) {
  // Declared first so that they outlive the broker, which may deliver while its channels close.
  Inbox a, b, c;
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("sac", {.arguments = args({{"x-single-active-consumer", FieldValue(true)}})});
  std::string tag_a = ch.basic_consume("sac", a.callback(), {.no_ack = true});
  ch.basic_consume("sac", b.callback(), {.no_ack = true});
  ch.basic_consume("sac", c.callback(), {.no_ack = true});
  ch.basic_publish("", "sac", transient("1"));
  ASSERT_TRUE(a.next());
  ch.basic_cancel(tag_a);
  ch.basic_publish("", "sac", transient("2"));
  auto d = b.next();
  ASSERT_TRUE(d) << "the second registered consumer did not take over";
  EXPECT_EQ(d->message.body, "2");
  EXPECT_EQ(c.size(), 0u);
}

TEST(SingleActiveConsumer, RefusesANonBooleanWithRabbitsText) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  Status s = error_of([&] {
    ch.queue_declare("sac", {.arguments = args({{"x-single-active-consumer", FieldValue(int32_t(1))}})});
  });
  EXPECT_EQ(s.text(),
            "PRECONDITION_FAILED - invalid arg 'x-single-active-consumer' for queue 'sac' in vhost '/': "
            "{unacceptable_type,signedint}");
}

// ---- consumer priorities ---------------------------------------------------------------

TEST(ConsumerPriorities, TheHighestWithRoomGetsEverythingLowerOnesOnlyWhenItIsFull) {
  // Declared first so that they outlive the broker, which may deliver while its channels close.
  Inbox low, high;
  auto broker = memory_broker();
  auto low_ch = broker->channel(), high_ch = broker->channel();
  low_ch.queue_declare("work");
  high_ch.basic_qos(3);
  low_ch.basic_consume("work", low.callback(), {.arguments = args({{"x-priority", FieldValue(int32_t(1))}})});
  high_ch.basic_consume("work", high.callback(), {.arguments = args({{"x-priority", FieldValue(int32_t(10))}})});
  for (int i = 0; i < 5; ++i) low_ch.basic_publish("", "work", transient(std::to_string(i)));
  Bodies to_high, to_low;
  for (int i = 0; i < 3; ++i) {
    auto d = high.next();
    ASSERT_TRUE(d);
    to_high.push_back(d->message.body);
  }
  for (int i = 0; i < 2; ++i) {
    auto d = low.next();
    ASSERT_TRUE(d) << "the low-priority consumer got nothing while the high one was full";
    to_low.push_back(d->message.body);
  }
  EXPECT_EQ(to_high, (Bodies{"0", "1", "2"}));
  EXPECT_EQ(to_low, (Bodies{"3", "4"}));
}

TEST(ConsumerPriorities, EqualPrioritiesShareRoundRobin) {
  // Declared first so that they outlive the broker, which may deliver while its channels close.
  Inbox a, b, low;
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("work");
  auto top = args({{"x-priority", FieldValue(int32_t(5))}});
  ch.basic_consume("work", a.callback(), {.no_ack = true, .arguments = top});
  ch.basic_consume("work", low.callback(), {.no_ack = true});
  ch.basic_consume("work", b.callback(), {.no_ack = true, .arguments = top});
  for (int i = 0; i < 6; ++i) ch.basic_publish("", "work", transient(std::to_string(i)));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a.next()) << "round robin among the top consumers broke at " << i;
    ASSERT_TRUE(b.next()) << "round robin among the top consumers broke at " << i;
  }
  EXPECT_EQ(low.size(), 0u);
}

TEST(ConsumerPriorities, ANonIntegerPriorityIsRefused) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("work");
  Status s = error_of([&] {
    ch.basic_consume("work", [](Delivery) {}, {.arguments = args({{"x-priority", FieldValue("high")}})});
  });
  EXPECT_EQ(s.text(),
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'work' in vhost '/': "
            "\"expected integer, got longstr\"");
}

// ---- direct reply-to -------------------------------------------------------------------

TEST(DirectReplyTo, ARequestCarriesATokenThatReachesTheRequestersConsumer) {
  // Declared first so that they outlive the broker, which may deliver while its channels close.
  Inbox replies;
  auto broker = memory_broker();
  auto client = broker->channel(), server = broker->channel();
  server.queue_declare("rpc");
  std::string tag = client.basic_consume("amq.rabbitmq.reply-to", replies.callback(), {.no_ack = true});
  Message request = transient("2+2");
  request.properties.reply_to = "amq.rabbitmq.reply-to";
  request.properties.correlation_id = "c1";
  client.basic_publish("", "rpc", request);
  auto got = server.basic_get("rpc", true);
  ASSERT_TRUE(got);
  const std::string reply_to = *got->message.properties.reply_to;
  ASSERT_TRUE(reply_to.starts_with("amq.rabbitmq.reply-to.")) << reply_to;
  EXPECT_GT(reply_to.size(), std::string("amq.rabbitmq.reply-to.").size());
  Message answer = transient("4");
  answer.properties.correlation_id = "c1";
  server.basic_publish("", reply_to, answer, {.mandatory = true});
  auto reply = replies.next();
  ASSERT_TRUE(reply) << "the reply never reached the requester";
  EXPECT_EQ(reply->message.body, "4");
  EXPECT_EQ(reply->consumer_tag, tag);
  EXPECT_EQ(reply->routing_key, reply_to);
  EXPECT_EQ(server.queue_declare(reply_to, {.passive = true}).consumer_count, 1u);
}

TEST(DirectReplyTo, RabbitsErrorsAndAReturnWhenTheConsumerIsGone) {
  auto broker = memory_broker();
  Message request = transient("x");
  request.properties.reply_to = "amq.rabbitmq.reply-to";
  {
    auto ch = broker->channel();
    Status s = error_of([&] {
      ch.basic_publish("", "nowhere", request);
      ch.queue_declare("", {.exclusive = true});  // a round trip: the publish's error arrives
    });
    EXPECT_EQ(s.text(), "PRECONDITION_FAILED - fast reply consumer does not exist");
  }
  {
    auto ch = broker->channel();
    Status s = error_of([&] { ch.basic_consume("amq.rabbitmq.reply-to", [](Delivery) {}); });
    EXPECT_EQ(s.text(), "PRECONDITION_FAILED - reply consumer cannot acknowledge");
  }
  auto server = broker->channel();
  server.queue_declare("rpc");
  std::string reply_to;
  {
    auto client = broker->channel();
    client.basic_consume("amq.rabbitmq.reply-to", [](Delivery) {}, {.no_ack = true});
    Status twice = error_of([&] { client.basic_consume("amq.rabbitmq.reply-to", [](Delivery) {}, {.no_ack = true}); });
    EXPECT_EQ(twice.text(), "PRECONDITION_FAILED - reply consumer already set");
    auto again = broker->channel();
    again.basic_consume("amq.rabbitmq.reply-to", [](Delivery) {}, {.no_ack = true});
    again.basic_publish("", "rpc", request);
    reply_to = *server.basic_get("rpc", true)->message.properties.reply_to;
  }  // the requester's channel closes
  std::promise<ReturnedMessage> returned;
  server.on_return([&](ReturnedMessage r) { returned.set_value(std::move(r)); });
  server.confirm_select();
  server.basic_publish("", reply_to, transient("late"), {.mandatory = true});
  ASSERT_TRUE(server.wait_for_confirms(5s));
  auto f = returned.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready) << "a reply to a gone consumer was not returned";
  EXPECT_EQ(f.get().reply_text, "NO_ROUTE");
}

// ---- idempotent unbinding ----------------------------------------------------------------

TEST(Unbind, MissingQueuesExchangesAndBindingsAreNotErrors) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.exchange_declare("x", "direct");
  ch.queue_declare("q");
  EXPECT_NO_THROW(ch.queue_unbind("q", "x", "never-bound"));
  EXPECT_NO_THROW(ch.queue_unbind("no-such-queue", "x", "k"));
  EXPECT_NO_THROW(ch.queue_unbind("q", "no-such-exchange", "k"));
  EXPECT_NO_THROW(ch.exchange_unbind("x", "no-such-exchange", "k"));
  EXPECT_NO_THROW(ch.exchange_unbind("no-such-exchange", "x", "k"));
  EXPECT_TRUE(ch.is_open());
  // What stays an error in RabbitMQ: the default exchange.
  Status s = error_of([&] { ch.queue_unbind("q", "", "q"); });
  EXPECT_EQ(s.code(), ReplyCode::access_refused);
}

}  // namespace
}  // namespace warren
