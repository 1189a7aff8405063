// Channel rules: routing, confirms, returns, delivery tags, acks, requeue order, QoS.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>

#include "broker_util.h"

namespace warren {
namespace {

using namespace warren::testing;

class ChannelRules : public ::testing::Test {
 protected:
  // Declared first so they outlive the broker, whose thread feeds them.
  Inbox inbox, inbox2;
  std::unique_ptr<Broker> broker = memory_broker();
  Channel ch = broker->channel();

  std::vector<std::string> drain(const std::string& queue) {
    std::vector<std::string> bodies;
    while (auto d = ch.basic_get(queue, true)) bodies.push_back(d->message.body);
    return bodies;
  }
};

TEST_F(ChannelRules, RoutesThroughEveryExchangeType) {
  for (auto q : {"direct-q", "fanout-q", "topic-q", "headers-q", "e2e-q"}) ch.queue_declare(q);
  ch.queue_bind("direct-q", "amq.direct", "k1");
  ch.queue_bind("fanout-q", "amq.fanout", "ignored");
  ch.queue_bind("topic-q", "amq.topic", "*.orange.#");
  ch.queue_bind("headers-q", "amq.headers", "",
                {{"x-match", FieldValue("any")}, {"kind", FieldValue("pdf")}});
  ch.exchange_declare("inner", "fanout");
  ch.exchange_bind("inner", "amq.topic", "#.e2e");
  ch.queue_bind("e2e-q", "inner", "");

  ch.basic_publish("amq.direct", "k1", transient("d"));
  ch.basic_publish("amq.direct", "k2", transient("lost"));
  ch.basic_publish("amq.fanout", "x", transient("f"));
  ch.basic_publish("amq.topic", "quick.orange.rabbit", transient("t"));
  ch.basic_publish("amq.topic", "quick.brown.fox", transient("lost"));
  ch.basic_publish("amq.topic", "a.e2e", transient("e"));
  Message h = transient("h");
  h.properties.headers = FieldTable{{"kind", FieldValue("pdf")}};
  ch.basic_publish("amq.headers", "", h);
  ch.basic_publish("", "direct-q", transient("default"));

  EXPECT_EQ(drain("direct-q"), (std::vector<std::string>{"d", "default"}));
  EXPECT_EQ(drain("fanout-q"), (std::vector<std::string>{"f"}));
  EXPECT_EQ(drain("topic-q"), (std::vector<std::string>{"t"}));
  EXPECT_EQ(drain("headers-q"), (std::vector<std::string>{"h"}));
  EXPECT_EQ(drain("e2e-q"), (std::vector<std::string>{"e"}));
}

TEST_F(ChannelRules, OneCopyPerQueueAndCcBccAddKeys) {
  ch.queue_declare("a");
  ch.queue_declare("b");
  ch.queue_bind("a", "amq.direct", "ka");
  ch.queue_bind("a", "amq.direct", "kb");
  ch.queue_bind("b", "amq.direct", "kb");
  Message m = transient("m");
  m.properties.headers = FieldTable{{"CC", FieldValue(FieldArray{FieldValue("kb")})},
                                    {"BCC", FieldValue(FieldArray{FieldValue("ka")})}};
  ch.basic_publish("amq.direct", "ka", m);
  auto got = ch.basic_get("a", true);
  ASSERT_TRUE(got);
  EXPECT_FALSE(ch.basic_get("a", true));  // one copy although three keys matched
  ASSERT_TRUE(got->message.properties.headers);
  EXPECT_TRUE(got->message.properties.headers->find("CC"));
  EXPECT_FALSE(got->message.properties.headers->find("BCC"));
  EXPECT_TRUE(ch.basic_get("b", true));
}

TEST_F(ChannelRules, AlternateExchangeTakesUnroutedMessages) {
  ch.queue_declare("unrouted");
  ch.queue_bind("unrouted", "amq.fanout", "");
  ch.exchange_declare("main", "direct",
                      {.arguments = {{"alternate-exchange", FieldValue("amq.fanout")}}});
  ch.basic_publish("main", "nowhere", transient("m"));
  EXPECT_EQ(drain("unrouted"), (std::vector<std::string>{"m"}));
}

TEST_F(ChannelRules, ConfirmSequenceNumbersStartAtOne) {
  ch.queue_declare("q", {.durable = true});
  ch.confirm_select();
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::tuple<uint64_t, bool, bool>> confirms;
  ch.on_confirm([&](uint64_t tag, bool multiple, bool ack) {
    std::lock_guard lock(m);
    confirms.emplace_back(tag, multiple, ack);
    cv.notify_all();
  });
  EXPECT_EQ(ch.basic_publish("", "q", persistent("1")), 1u);
  EXPECT_EQ(ch.basic_publish("", "q", persistent("2")), 2u);
  EXPECT_EQ(ch.basic_publish("", "nowhere", persistent("3")), 3u);  // unroutable counts too
  EXPECT_TRUE(ch.wait_for_confirms(5s));
  std::unique_lock lock(m);
  ASSERT_TRUE(cv.wait_for(lock, 5s,
                          [&] { return !confirms.empty() && std::get<0>(confirms.back()) == 3; }));
  uint64_t highest = 0;
  for (auto [tag, multiple, ack] : confirms) {
    EXPECT_TRUE(ack);
    EXPECT_GT(tag, highest);
    highest = tag;
  }
  EXPECT_EQ(highest, 3u);
  lock.unlock();
  auto other = broker->channel();
  other.confirm_select();
  EXPECT_EQ(other.basic_publish("", "q", persistent("x")), 1u);  // per channel
}

TEST_F(ChannelRules, MandatoryUnroutableIsReturnedThenAcked) {
  ch.confirm_select();
  std::promise<ReturnedMessage> returned;
  ch.on_return([&](ReturnedMessage r) { returned.set_value(std::move(r)); });
  ch.basic_publish("amq.direct", "nobody", transient("back"), {.mandatory = true});
  EXPECT_TRUE(ch.wait_for_confirms(5s));
  auto f = returned.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto r = f.get();
  EXPECT_EQ(r.reply_code, 312);
  EXPECT_EQ(r.reply_text, "NO_ROUTE");
  EXPECT_EQ(r.exchange, "amq.direct");
  EXPECT_EQ(r.routing_key, "nobody");
  EXPECT_EQ(r.message.body, "back");
}

TEST_F(ChannelRules, PublishToMissingExchangeClosesTheChannel) {
  ch.basic_publish("nox", "k", transient("m"));
  Status s = error_of([&] { ch.queue_declare("q"); });
  EXPECT_EQ(s.text(), "NOT_FOUND - no exchange 'nox' in vhost '/'");
  EXPECT_EQ(s.class_id(), 60);
  EXPECT_EQ(s.method_id(), 40);
  EXPECT_EQ(error_of([&] { ch.basic_publish("", "q", transient("m")); }).code(),
            ReplyCode::not_found);
}

TEST_F(ChannelRules, PublishToInternalExchangeIs403) {
  ch.exchange_declare("inside", "fanout", {.internal = true});
  ch.confirm_select();
  ch.basic_publish("inside", "", transient("m"));
  Status s = error_of([&] { ch.wait_for_confirms(5s); });
  EXPECT_EQ(s.text(), "ACCESS_REFUSED - cannot publish to internal exchange 'inside' in vhost '/'");
}

TEST_F(ChannelRules, OversizedMessageIs406) {
  auto small = memory_broker({.max_message_size = 100});
  auto c = small->channel();
  c.queue_declare("q");
  c.basic_publish("", "q", transient(std::string(101, 'x')));
  Status s = error_of([&] { c.basic_get("q"); });
  EXPECT_EQ(s.text(),
            "PRECONDITION_FAILED - message size 101 is larger than configured max size 100");
  auto c2 = small->channel();
  EXPECT_FALSE(c2.basic_get("q"));  // nothing was stored
}

TEST_F(ChannelRules, DeliveryTagsArePerChannelAndSharedByGetAndConsume) {
  ch.queue_declare("q");
  for (int i = 0; i < 4; ++i) ch.basic_publish("", "q", transient(std::to_string(i)));
  auto a = ch.basic_get("q");
  auto b = ch.basic_get("q", true);  // auto-ack deliveries take a tag as well
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->delivery_tag, 1u);
  EXPECT_EQ(b->delivery_tag, 2u);
  EXPECT_EQ(b->message_count, 2u);
  ch.basic_qos(1);
  ch.basic_consume("q", inbox.callback());
  auto c = inbox.next();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->delivery_tag, 3u);
  auto other = broker->channel();
  auto d = other.basic_get("q");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->delivery_tag, 1u);
}

TEST_F(ChannelRules, AckOfUnknownTagIs406) {
  ch.queue_declare("q");
  ch.basic_ack(7);
  Status s = error_of([&] { ch.basic_get("q"); });
  EXPECT_EQ(s.code(), ReplyCode::precondition_failed);
  EXPECT_EQ(s.text(), "PRECONDITION_FAILED - unknown delivery tag 7");
  EXPECT_EQ(s.class_id(), 60);
  EXPECT_EQ(s.method_id(), 80);
}

TEST_F(ChannelRules, DoubleAckAndAutoAckTagsAreUnknown) {
  ch.queue_declare("q");
  ch.basic_publish("", "q", transient("a"));
  ch.basic_publish("", "q", transient("b"));
  auto a = ch.basic_get("q");
  ch.basic_ack(a->delivery_tag);
  ch.basic_ack(a->delivery_tag);
  EXPECT_EQ(error_of([&] { ch.basic_qos(0); }).text(),
            "PRECONDITION_FAILED - unknown delivery tag 1");
  auto c = broker->channel();
  auto b = c.basic_get("q", true);
  c.basic_ack(b->delivery_tag);
  EXPECT_EQ(error_of([&] { c.basic_qos(0); }).code(), ReplyCode::precondition_failed);
}

TEST_F(ChannelRules, MultipleAckCoversEverythingUpToTheTag) {
  ch.queue_declare("q");
  for (int i = 0; i < 6; ++i) ch.basic_publish("", "q", transient(std::to_string(i)));
  std::vector<uint64_t> tags;
  for (int i = 0; i < 6; ++i) tags.push_back(ch.basic_get("q")->delivery_tag);
  ch.basic_ack(5);  // gaps are fine
  ch.basic_ack(6, true);
  ch.flush();
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 0u);
  // Tag 0 with multiple settles everything, and is a no-op when nothing is outstanding.
  ch.basic_publish("", "q", transient("x"));
  ch.basic_get("q");
  ch.basic_ack(0, true);
  ch.basic_ack(0, true);
  ch.flush();
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 0u);
  // ...but tag 0 alone is unknown, and a multiple ack whose tag is unknown settles nothing.
  ch.basic_ack(0);
  EXPECT_EQ(error_of([&] { ch.flush(); }).text(), "PRECONDITION_FAILED - unknown delivery tag 0");
  auto c = broker->channel();
  c.basic_publish("", "q", transient("y"));
  auto y = c.basic_get("q");
  c.basic_ack(y->delivery_tag + 5, true);
  EXPECT_EQ(error_of([&] { c.flush(); }).code(), ReplyCode::precondition_failed);
  // The channel closed and requeued its delivery: it is ready again.
  EXPECT_EQ(broker->list_queues().front().messages_ready, 1u);
}

TEST_F(ChannelRules, RequeueRestoresOriginalPositionMarkedRedelivered) {
  ch.queue_declare("q");
  for (int i = 0; i < 4; ++i) ch.basic_publish("", "q", transient(std::to_string(i)));
  auto m0 = ch.basic_get("q");
  auto m1 = ch.basic_get("q");
  ch.basic_reject(m1->delivery_tag, true);
  ch.basic_nack(m0->delivery_tag, false, true);
  std::vector<std::pair<std::string, bool>> order;
  while (auto d = ch.basic_get("q", true)) order.emplace_back(d->message.body, d->redelivered);
  EXPECT_EQ(order, (std::vector<std::pair<std::string, bool>>{
                       {"0", true}, {"1", true}, {"2", false}, {"3", false}}));
}

TEST_F(ChannelRules, RejectWithoutRequeueDropsTheMessage) {
  ch.queue_declare("q");
  ch.basic_publish("", "q", transient("bad"));
  auto d = ch.basic_get("q");
  ch.basic_reject(d->delivery_tag, false);
  EXPECT_FALSE(ch.basic_get("q"));
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 0u);
}

TEST_F(ChannelRules, ClosingAChannelRequeuesItsUnackedMessagesInOrder) {
  ch.queue_declare("q");
  for (int i = 0; i < 3; ++i) ch.basic_publish("", "q", transient(std::to_string(i)));
  {
    auto c = broker->channel();
    c.basic_get("q");
    c.basic_get("q");
  }  // closed here
  auto a = ch.basic_get("q");
  auto b = ch.basic_get("q");
  auto c = ch.basic_get("q");
  EXPECT_EQ(a->message.body, "0");
  EXPECT_TRUE(a->redelivered);
  EXPECT_EQ(b->message.body, "1");
  EXPECT_TRUE(b->redelivered);
  EXPECT_EQ(c->message.body, "2");
  EXPECT_FALSE(c->redelivered);
}

TEST_F(ChannelRules, PrefetchLimitsUnackedDeliveriesPerConsumer) {
  ch.queue_declare("q");
  for (int i = 0; i < 10; ++i) ch.basic_publish("", "q", transient(std::to_string(i)));
  ch.basic_qos(2);
  ch.basic_consume("q", inbox.callback());
  auto a = inbox.next();
  auto b = inbox.next();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(inbox.next(200ms));  // the limit holds
  EXPECT_EQ(broker->list_queues().front().messages_ready, 8u);
  ch.basic_ack(b->delivery_tag, true);
  EXPECT_TRUE(inbox.next());
  EXPECT_TRUE(inbox.next());
  EXPECT_FALSE(inbox.next(200ms));
  EXPECT_EQ(a->message.body, "0");
  EXPECT_EQ(b->message.body, "1");
}

TEST_F(ChannelRules, GlobalPrefetchCountsTheWholeChannel) {
  ch.queue_declare("q1");
  ch.queue_declare("q2");
  for (int i = 0; i < 3; ++i) {
    ch.basic_publish("", "q1", transient("a"));
    ch.basic_publish("", "q2", transient("b"));
  }
  ch.basic_qos(3, true);
  ch.basic_consume("q1", inbox.callback());
  ch.basic_consume("q2", inbox.callback());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(inbox.next());
  EXPECT_FALSE(inbox.next(200ms));
  auto queues = broker->list_queues();
  EXPECT_EQ(queues[0].messages_unacknowledged + queues[1].messages_unacknowledged, 3u);
  // basic_get ignores prefetch.
  EXPECT_TRUE(ch.basic_get("q1") || ch.basic_get("q2"));
}

TEST_F(ChannelRules, RoundRobinBetweenConsumers) {
  ch.queue_declare("q");
  Inbox& a = inbox;
  Inbox& b = inbox2;
  ch.basic_consume("q", a.callback());
  auto other = broker->channel();
  other.basic_consume("q", b.callback());
  for (int i = 0; i < 10; ++i) ch.basic_publish("", "q", transient(std::to_string(i)));
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(a.next());
    EXPECT_TRUE(b.next());
  }
}

TEST_F(ChannelRules, NoAckConsumersNeedNoAcks) {
  ch.queue_declare("q");
  ch.basic_qos(1);
  ch.basic_consume("q", inbox.callback(), {.no_ack = true});
  for (int i = 0; i < 5; ++i) ch.basic_publish("", "q", transient(std::to_string(i)));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(inbox.next());
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 0u);
}

TEST_F(ChannelRules, ConsumerTagsAndExclusiveConsumers) {
  ch.queue_declare("q");
  auto tag = ch.basic_consume("q", [](Delivery) {});
  EXPECT_TRUE(tag.starts_with("amq.ctag-"));
  EXPECT_EQ(tag.size(), 9u + 22u);
  Status reuse = error_of([&] { ch.basic_consume("q", [](Delivery) {}, {.consumer_tag = tag}); });
  EXPECT_EQ(reuse.code(), ReplyCode::not_allowed);
  EXPECT_EQ(reuse.text(), "NOT_ALLOWED - attempt to reuse consumer tag '" + tag + "'");
  EXPECT_TRUE(reuse.closes_connection());

  auto c = broker->channel();
  c.queue_declare("ex");
  c.basic_consume("ex", [](Delivery) {}, {.exclusive = true});
  auto c2 = broker->channel();
  Status locked = error_of([&] { c2.basic_consume("ex", [](Delivery) {}); });
  EXPECT_EQ(locked.text(), "ACCESS_REFUSED - queue 'ex' in vhost '/' in exclusive use");
  auto c3 = broker->channel();
  EXPECT_NO_THROW(c3.basic_get("ex"));
  EXPECT_NO_THROW(c3.basic_cancel("never-existed"));
}

TEST_F(ChannelRules, CancelledConsumersDeliveriesCanStillBeAcked) {
  ch.queue_declare("q");
  ch.basic_publish("", "q", transient("m"));
  auto tag = ch.basic_consume("q", inbox.callback());
  auto d = inbox.next();
  ASSERT_TRUE(d);
  ch.basic_cancel(tag);
  ch.basic_ack(d->delivery_tag);
  ch.flush();
  EXPECT_TRUE(ch.is_open());
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 0u);
}

TEST_F(ChannelRules, RecoverRedeliversWithNewTags) {
  ch.queue_declare("q");
  ch.basic_publish("", "q", transient("a"));
  auto first = ch.basic_get("q");
  ch.basic_recover(true);
  auto again = ch.basic_get("q");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->redelivered);
  EXPECT_EQ(again->delivery_tag, 2u);
  ch.basic_ack(first->delivery_tag);  // the old tag is gone
  EXPECT_EQ(error_of([&] { ch.flush(); }).text(), "PRECONDITION_FAILED - unknown delivery tag 1");
  auto c = broker->channel();
  Status s = error_of([&] { c.basic_recover(false); });
  EXPECT_EQ(s.text(), "NOT_IMPLEMENTED - requeue=false");
  EXPECT_TRUE(s.closes_connection());
}

TEST_F(ChannelRules, TransactionsApplyPublishesAndAcksAtCommit) {
  ch.queue_declare("q", {.durable = true});
  ch.basic_publish("", "q", persistent("before"));
  auto before = ch.basic_get("q");
  ASSERT_TRUE(before);
  ch.tx_select();
  ch.basic_publish("", "q", persistent("in-tx"));
  ch.basic_ack(before->delivery_tag);
  auto peek = broker->channel();
  EXPECT_EQ(peek.queue_declare("q", {.durable = true}).message_count, 0u);  // invisible yet
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 1u);
  ch.tx_rollback();
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 1u);  // ack undone
  ch.basic_publish("", "q", persistent("committed"));
  ch.basic_ack(before->delivery_tag);  // still a known tag after the rollback
  ch.tx_commit();
  auto q = broker->list_queues().front();
  EXPECT_EQ(q.messages_ready, 1u);
  EXPECT_EQ(q.messages_unacknowledged, 0u);
  EXPECT_EQ(peek.basic_get("q", true)->message.body, "committed");
}

TEST_F(ChannelRules, TxAndConfirmModesExcludeEachOther) {
  ch.tx_select();
  EXPECT_EQ(error_of([&] { ch.confirm_select(); }).text(),
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode");
  auto c = broker->channel();
  c.confirm_select();
  EXPECT_EQ(error_of([&] { c.tx_select(); }).text(),
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode");
  auto d = broker->channel();
  EXPECT_EQ(error_of([&] { d.tx_commit(); }).text(), "PRECONDITION_FAILED - channel is not transactional");
  auto e = broker->channel();
  EXPECT_EQ(error_of([&] { e.tx_rollback(); }).text(), "PRECONDITION_FAILED - channel is not transactional");
}

TEST_F(ChannelRules, CallbacksMayCallTheBroker) {
  ch.queue_declare("q");
  std::promise<void> done;
  std::atomic<int> seen{0};
  ch.basic_consume("q", [&](Delivery d) {
    ch.basic_ack(d.delivery_tag);  // runs on the broker thread, inline
    if (++seen == 3) done.set_value();
  });
  for (int i = 0; i < 3; ++i) ch.basic_publish("", "q", transient("m"));
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  ch.flush();
  EXPECT_EQ(broker->list_queues().front().messages_unacknowledged, 0u);
}

}  // namespace
}  // namespace warren
