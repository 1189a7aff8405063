// TTL, length limits, delivery limits, delayed retry, deduplication and the dead-letter
// reasons they produce, through the public API on real stores.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <set>
#include <thread>

#include "broker_util.h"
#include "test_util.h"

namespace warren {
namespace {

using namespace warren::testing;

Message expiring(std::string body, std::string expiration) {
  Message m = transient(std::move(body));
  m.properties.expiration = std::move(expiration);
  return m;
}

const FieldTable& headers(const Delivery& d) { return *d.message.properties.headers; }

std::string header_string(const Delivery& d, const char* name) {
  const FieldValue* v = headers(d).find(name);
  return v && v->as<std::string>() ? *v->as<std::string>() : "";
}

const FieldTable& first_death(const Delivery& d) {
  return *headers(d).find("x-death")->as<FieldArray>()->front().as<FieldTable>();
}

std::optional<int64_t> delivery_count(const Delivery& d) {
  if (!d.message.properties.headers) return std::nullopt;
  const FieldValue* v = d.message.properties.headers->find("x-delivery-count");
  return v ? v->as_integer() : std::nullopt;
}

// Declares `name` with args, dead-lettering into the queue "dead" through the default exchange.
void declare_with_dlq(Channel& ch, std::string_view name, FieldTable extra) {
  ch.queue_declare("dead");
  extra.set("x-dead-letter-exchange", FieldValue(""));
  extra.set("x-dead-letter-routing-key", FieldValue("dead"));
  ch.queue_declare(name, {.arguments = extra});
}

// ---- TTL -----------------------------------------------------------------------------

TEST(Ttl, QueueTtlDeadLettersWithNoConsumerActive) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  declare_with_dlq(ch, "work", args({{"x-message-ttl", FieldValue(int32_t(50))}}));
  ch.basic_publish("", "work", transient("a"));
  Inbox dead;
  ch.basic_consume("dead", dead.callback(), {.no_ack = true});
  auto d = dead.next();
  ASSERT_TRUE(d) << "the expired message never reached the dead-letter queue";
  EXPECT_EQ(d->message.body, "a");
  EXPECT_EQ(header_string(*d, "x-first-death-reason"), "expired");
  EXPECT_EQ(*first_death(*d).find("queue")->as<std::string>(), "work");
  EXPECT_FALSE(first_death(*d).find("original-expiration"));  // queue TTL sets no expiration
  EXPECT_EQ(info(*broker, "work").messages_ready, 0u);
}

TEST(Ttl, ExpiryReachesMessagesBehindTheHead) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  declare_with_dlq(ch, "work", {});
  ch.basic_publish("", "work", expiring("long", "60000"));
  ch.basic_publish("", "work", expiring("short", "30"));
  Inbox dead;
  ch.basic_consume("dead", dead.callback(), {.no_ack = true});
  auto d = dead.next();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.body, "short");
  EXPECT_FALSE(d->message.properties.expiration);  // removed, kept as original-expiration
  EXPECT_EQ(*first_death(*d).find("original-expiration")->as<std::string>(), "30");
  EXPECT_EQ(info(*broker, "work").messages_ready, 1u);
  auto left = ch.basic_get("work", true);
  ASSERT_TRUE(left);
  EXPECT_EQ(left->message.body, "long");
  EXPECT_EQ(*left->message.properties.expiration, "60000");  // delivered as sent
}

TEST(Ttl, ExpiredMessagesAreNotDeliveredAndAnExpiredReturnIsDeadLettered) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  declare_with_dlq(ch, "work", args({{"x-message-ttl", FieldValue(int32_t(40))}}));
  ch.basic_publish("", "work", transient("kept out"));
  auto got = ch.basic_get("work");
  ASSERT_TRUE(got);
  Inbox dead;
  ch.basic_consume("dead", dead.callback(), {.no_ack = true});
  std::this_thread::sleep_for(80ms);  // the TTL passes while it is out with us
  EXPECT_EQ(dead.size(), 0u) << "an unacknowledged message must not expire";
  ch.basic_reject(got->delivery_tag, true);
  auto d = dead.next();
  ASSERT_TRUE(d);
  EXPECT_EQ(header_string(*d, "x-first-death-reason"), "expired");
  EXPECT_FALSE(ch.basic_get("work"));
}

TEST(Ttl, ZeroTtlReachesAWaitingConsumerOnly) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("now", {.arguments = args({{"x-message-ttl", FieldValue(int32_t(0))}})});
  ch.basic_publish("", "now", transient("nobody waits"));
  EXPECT_FALSE(ch.basic_get("now"));  // gone the moment it arrived
  Inbox in;
  ch.basic_consume("now", in.callback(), {.no_ack = true});
  ch.basic_publish("", "now", transient("taken"));
  auto d = in.next();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.body, "taken");
}

TEST(Ttl, BadExpirationIsRefusedWithRabbitText) {
  auto broker = memory_broker();
  for (auto [value, text] : std::vector<std::pair<std::string, std::string>>{
           {"abc", "invalid expiration 'abc': no_integer"},
           {"-5", "invalid expiration '-5': {value_negative,-5}"},
           {"1.5", "invalid expiration '1.5': {leftover_string,\".5\"}"},
           {"", "invalid expiration '': no_integer"}}) {
    auto ch = broker->channel();
    ch.queue_declare("q");
    ch.basic_publish("", "q", expiring("x", value));
    Status s = error_of([&] { ch.queue_declare("q", {.passive = true}); });
    EXPECT_EQ(s.code(), ReplyCode::precondition_failed) << value;
    EXPECT_EQ(s.text(), "PRECONDITION_FAILED - " + text);
  }
}

TEST(Ttl, UnusedQueueExpires) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("idle", {.arguments = args({{"x-expires", FieldValue(int32_t(60))}})});
  ch.queue_declare("busy", {.arguments = args({{"x-expires", FieldValue(int32_t(60))}})});
  Inbox in;
  ch.basic_consume("busy", in.callback());
  // Declaring restarts a queue's clock; listing does not, so poll the list.
  auto listed = [&](const std::string& name) {
    for (const auto& q : broker->list_queues())
      if (q.name == name) return true;
    return false;
  };
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (listed("idle") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  Status s = error_of([&] { ch.queue_declare("idle", {.passive = true}); });
  EXPECT_EQ(s.code(), ReplyCode::not_found);
  // "busy" fell due in the same round as "idle": only its consumer kept it.
  ch = broker->channel();
  EXPECT_NO_THROW(ch.queue_declare("busy", {.passive = true}));  // a consumer keeps it alive
}

TEST(Ttl, ArgumentsAreCheckedWithRabbitText) {
  auto broker = memory_broker();
  struct Case {
    const char* arg;
    FieldValue value;
    const char* why;
  };
  for (const auto& c : std::vector<Case>{
           {"x-message-ttl", FieldValue(int32_t(-1)), "{value_negative,-1}"},
           {"x-message-ttl", FieldValue("abc"), "\"expected integer, got longstr\""},
           {"x-expires", FieldValue(int32_t(0)), "{value_zero,0}"},
           {"x-max-length", FieldValue(int32_t(-1)), "{value_negative,-1}"},
           {"x-overflow", FieldValue("bogus"), "invalid_overflow"},
           {"x-overflow", FieldValue(int32_t(5)), "{unacceptable_type,signedint}"}}) {
    auto ch = broker->channel();
    Status s = error_of([&] { ch.queue_declare("argq", {.arguments = args({{c.arg, c.value}})}); });
    EXPECT_EQ(s.text(), fmt::format("PRECONDITION_FAILED - invalid arg '{}' for queue 'argq' in "
                                    "vhost '/': {}",
                                    c.arg, c.why));
  }
}

TEST(QueueType, QuorumDeclarationsFollowRabbitRules) {
  auto broker = memory_broker();
  FieldTable quorum = args({{"x-queue-type", FieldValue("quorum")}});
  struct Case {
    std::string name;
    QueueOptions options;
    std::string text;
  };
  for (const auto& c : std::vector<Case>{
           {"q", {.durable = false, .arguments = quorum},
            "invalid property 'non-durable' for queue 'q' in vhost '/'"},
           {"q", {.durable = true, .exclusive = true, .arguments = quorum},
            "invalid property 'exclusive-owner' for queue 'q' in vhost '/'"},
           {"q", {.durable = true, .auto_delete = true, .arguments = quorum},
            "invalid property 'auto-delete' for queue 'q' in vhost '/'"},
           {"", {.durable = true, .arguments = quorum},
            "Cannot declare a server-named queue for type rabbit_quorum_queue"},
           {"q", {.durable = true, .arguments = args({{"x-queue-type", FieldValue("foo")}})},
            "invalid arg 'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'foo'\""}}) {
    auto ch = broker->channel();
    Status s = error_of([&] { ch.queue_declare(c.name, c.options); });
    EXPECT_EQ(s.text(), "PRECONDITION_FAILED - " + c.text);
  }
  auto ch = broker->channel();
  EXPECT_NO_THROW(ch.queue_declare("q", {.durable = true, .arguments = quorum}));
}

// ---- length limits -------------------------------------------------------------------

TEST(LengthLimit, DropHeadDeadLettersTheOldest) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  declare_with_dlq(ch, "work", args({{"x-max-length", FieldValue(int32_t(2))}}));
  ch.confirm_select();
  for (auto body : {"0", "1", "2"}) ch.basic_publish("", "work", transient(body));
  EXPECT_TRUE(ch.wait_for_confirms(5s));
  EXPECT_EQ(info(*broker, "work").messages_ready, 2u);
  auto d = ch.basic_get("dead", true);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.body, "0");
  EXPECT_EQ(header_string(*d, "x-first-death-reason"), "maxlen");
  EXPECT_EQ(ch.basic_get("work", true)->message.body, "1");
}

TEST(LengthLimit, BytesCountBodiesAndATooLargeBodyGoesToo) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("small", {.arguments = args({{"x-max-length-bytes", FieldValue(int32_t(5))}})});
  ch.basic_publish("", "small", transient("abc"));
  ch.basic_publish("", "small", transient("def"));
  ch.flush();
  EXPECT_EQ(info(*broker, "small").messages_ready, 1u);
  ch.basic_publish("", "small", transient("0123456789"));
  ch.flush();
  EXPECT_EQ(info(*broker, "small").messages_ready, 0u);
}

TEST(LengthLimit, RejectPublishNacksAndRejectPublishDlxDeadLetters) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("full", {.arguments = args({{"x-max-length", FieldValue(int32_t(1))},
                                               {"x-overflow", FieldValue("reject-publish")}})});
  declare_with_dlq(ch, "full-dlx", args({{"x-max-length", FieldValue(int32_t(1))},
                                         {"x-overflow", FieldValue("reject-publish-dlx")}}));
  ch.confirm_select();
  std::set<uint64_t> acked, nacked;
  std::mutex m;
  std::condition_variable cv;
  ch.on_confirm([&](uint64_t tag, bool multiple, bool ack) {
    std::lock_guard lock(m);
    EXPECT_FALSE(multiple && !ack);
    (ack ? acked : nacked).insert(tag);
    cv.notify_all();
  });
  ch.basic_publish("", "full", transient("a"));
  ch.basic_publish("", "full", transient("b"));
  EXPECT_FALSE(ch.wait_for_confirms(5s));
  ch.basic_publish("", "full-dlx", transient("c"));
  ch.basic_publish("", "full-dlx", transient("d"));
  EXPECT_FALSE(ch.wait_for_confirms(5s));
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 5s, [&] { return acked.count(3) + nacked.count(4) == 2; }));
    EXPECT_EQ(nacked, (std::set<uint64_t>{2, 4}));
    EXPECT_TRUE(acked.count(1) && acked.count(3));
  }
  EXPECT_EQ(ch.basic_get("full", true)->message.body, "a");
  auto d = ch.basic_get("dead", true);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.body, "d");
  EXPECT_EQ(header_string(*d, "x-first-death-reason"), "maxlen");
}

// ---- delivery limit and delayed retry ------------------------------------------------

TEST(DeliveryLimit, CountsEveryReturnThenDeadLetters) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  declare_with_dlq(ch, "work", args({{"x-delivery-limit", FieldValue(int32_t(2))}}));
  ch.basic_publish("", "work", transient("poison"));
  std::vector<std::optional<int64_t>> seen;
  for (int i = 0; i < 3; ++i) {
    auto d = ch.basic_get("work");
    ASSERT_TRUE(d) << i;
    seen.push_back(delivery_count(*d));
    EXPECT_EQ(d->redelivered, i > 0);
    ch.basic_nack(d->delivery_tag, false, true);
  }
  EXPECT_EQ(seen, (std::vector<std::optional<int64_t>>{0, 1, 2}));  // always shown on get
  EXPECT_FALSE(ch.basic_get("work"));
  auto d = ch.basic_get("dead", true);
  ASSERT_TRUE(d);
  EXPECT_EQ(header_string(*d, "x-first-death-reason"), "delivery_limit");
}

TEST(DeliveryLimit, ConsumersSeeTheCountOnlyOnceAboveZeroAndClosesCount) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("work", {.arguments = args({{"x-delivery-limit", FieldValue(int32_t(5))}})});
  ch.basic_publish("", "work", transient("m"));
  {
    auto other = broker->channel();
    Inbox in;
    other.basic_consume("work", in.callback());
    auto first = in.next();
    ASSERT_TRUE(first);
    EXPECT_FALSE(delivery_count(*first));
    other.close();  // a return too
  }
  Inbox in;
  ch.basic_consume("work", in.callback());
  auto second = in.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(delivery_count(*second), 1);
  EXPECT_TRUE(second->redelivered);
}

TEST(DelayedRetry, ANackedMessageWaitsForItsBackoff) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  FieldTable backoff;
  backoff.set("base", FieldValue(int32_t(150)));
  backoff.set("factor", FieldValue(int32_t(2)));
  ch.queue_declare("work", {.arguments = args({{"x-requeue-delay", FieldValue(backoff)}})});
  ch.basic_publish("", "work", transient("retry me"));
  auto d = ch.basic_get("work");
  ASSERT_TRUE(d);
  auto nacked_at = std::chrono::steady_clock::now();
  ch.basic_nack(d->delivery_tag, false, true);
  EXPECT_FALSE(ch.basic_get("work")) << "ready before its delay";
  EXPECT_EQ(info(*broker, "work").messages_delayed, 1u);
  Inbox in;
  ch.basic_consume("work", in.callback());
  auto again = in.next();
  ASSERT_TRUE(again);
  EXPECT_GE(std::chrono::steady_clock::now() - nacked_at, 140ms);
  EXPECT_EQ(delivery_count(*again), 1);
  // The second return waits twice as long.
  nacked_at = std::chrono::steady_clock::now();
  ch.basic_nack(again->delivery_tag, false, true);
  auto third = in.next();
  ASSERT_TRUE(third);
  EXPECT_GE(std::chrono::steady_clock::now() - nacked_at, 290ms);
  EXPECT_EQ(delivery_count(*third), 2);
}

TEST(DelayedRetry, ArgumentIsChecked) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  FieldTable bad;
  bad.set("base", FieldValue(int32_t(0)));
  Status s = error_of([&] { ch.queue_declare("w", {.arguments = args({{"x-requeue-delay", FieldValue(bad)}})}); });
  EXPECT_EQ(s.code(), ReplyCode::precondition_failed);
  EXPECT_NE(s.text().find("'base' must be a positive integer"), std::string::npos) << s.text();
}

using RestartTest = DurableBrokerTest;

TEST_F(RestartTest, DeliveryCountsAndDelaysSurviveARestart) {
  FieldTable q = args({{"x-delivery-limit", FieldValue(int32_t(3))},
                       {"x-requeue-delay", FieldValue(int32_t(400))}});
  std::chrono::steady_clock::time_point nacked_at;
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("work", {.durable = true, .arguments = q});
    ch.basic_publish("", "work", persistent("job"));
    auto d = ch.basic_get("work");
    ASSERT_TRUE(d);
    nacked_at = std::chrono::steady_clock::now();
    ch.basic_nack(d->delivery_tag, false, true);
    ch.flush();
  }
  auto broker = open();
  auto ch = broker->channel();
  EXPECT_EQ(ch.queue_declare("work", {.durable = true, .arguments = q}).message_count, 0u);
  EXPECT_FALSE(ch.basic_get("work")) << "a delayed message must not be ready early after a restart";
  Inbox in;
  ch.basic_consume("work", in.callback());
  auto d = in.next();
  ASSERT_TRUE(d);
  EXPECT_GE(std::chrono::steady_clock::now() - nacked_at, 390ms);
  EXPECT_EQ(delivery_count(*d), 1);
}

TEST_F(RestartTest, ExpiryIsKeptAcrossARestart) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("work", {.durable = true});
    ch.basic_publish("", "work", [] { auto m = persistent("old"); m.properties.expiration = "100"; return m; }());
    ch.basic_publish("", "work", persistent("keep"));
    ch.flush();
  }
  std::this_thread::sleep_for(150ms);  // it expires while the broker is down
  auto broker = open();
  auto ch = broker->channel();
  auto d = ch.basic_get("work", true);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.body, "keep");
}

// ---- deduplication -------------------------------------------------------------------

Message with_id(std::string body, std::string id) {
  Message m = persistent(std::move(body));
  m.properties.message_id = std::move(id);
  return m;
}

TEST_F(RestartTest, DuplicatesAreAckedNotEnqueuedAndTheIndexSurvives) {
  FieldTable q = args({{"x-message-deduplication", FieldValue(true)}});
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("orders", {.durable = true, .arguments = q});
    ch.confirm_select();
    ch.basic_publish("", "orders", with_id("first", "order-1"));
    ch.basic_publish("", "orders", with_id("again", "order-1"));  // in flight together
    ch.basic_publish("", "orders", with_id("other", "order-2"));
    ch.basic_publish("", "orders", persistent("no id"));
    ch.basic_publish("", "orders", persistent("no id"));
    EXPECT_TRUE(ch.wait_for_confirms(5s)) << "a duplicate is acked, not nacked";
    EXPECT_EQ(info(*broker, "orders").messages_ready, 4u);
    EXPECT_EQ(info(*broker, "orders").duplicates, 1u);
  }
  auto broker = open();
  auto ch = broker->channel();
  ch.confirm_select();
  ch.basic_publish("", "orders", with_id("retried after restart", "order-2"));
  // A transient message is lost in a restart, so its key must not refuse its retry.
  Message lost = with_id("transient", "order-3");
  lost.properties.delivery_mode = 1;
  {
    auto b2 = broker->channel();
    b2.basic_publish("", "orders", lost);
    b2.basic_publish("", "orders", lost);  // but while it lives, it is a duplicate
    b2.flush();
  }
  EXPECT_TRUE(ch.wait_for_confirms(5s));
  EXPECT_EQ(info(*broker, "orders").messages_ready, 5u);
  broker.reset();
  broker = open();
  ch = broker->channel();
  ch.basic_publish("", "orders", lost);
  ch.flush();
  EXPECT_EQ(info(*broker, "orders").messages_ready, 5u);
  EXPECT_EQ(ch.basic_get("orders", true)->message.body, "first");
}

TEST(Dedup, WindowIsBoundedBySizeAndAge) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("sized", {.arguments = args({{"x-message-deduplication", FieldValue(true)},
                                                {"x-cache-size", FieldValue(int32_t(2))}})});
  ch.queue_declare("aged", {.arguments = args({{"x-message-deduplication", FieldValue(true)},
                                               {"x-cache-ttl", FieldValue(int32_t(50))}})});
  for (auto id : {"a", "b", "c", "a"}) ch.basic_publish("", "sized", with_id(id, id));
  ch.flush();
  EXPECT_EQ(info(*broker, "sized").messages_ready, 4u) << "'a' left the 2-entry window";
  ch.basic_publish("", "sized", with_id("c", "c"));
  ch.flush();
  EXPECT_EQ(info(*broker, "sized").messages_ready, 4u) << "'c' is still in the window";

  ch.basic_publish("", "aged", with_id("x", "x"));
  ch.basic_publish("", "aged", with_id("x", "x"));
  ch.flush();
  EXPECT_EQ(info(*broker, "aged").messages_ready, 1u);
  std::this_thread::sleep_for(80ms);
  ch.basic_publish("", "aged", with_id("x", "x"));
  ch.flush();
  EXPECT_EQ(info(*broker, "aged").messages_ready, 2u) << "older than x-cache-ttl: not a duplicate";
}

TEST(Dedup, KeyFromANamedHeader) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("q", {.arguments = args({{"x-message-deduplication", FieldValue(true)},
                                            {"x-deduplication-header", FieldValue("idem")}})});
  auto with_header = [](FieldValue v, std::string id) {
    Message m = transient("m");
    m.properties.message_id = std::move(id);
    m.properties.headers = FieldTable{};
    m.properties.headers->set("idem", std::move(v));
    return m;
  };
  ch.basic_publish("", "q", with_header(FieldValue(int32_t(7)), "one"));
  ch.basic_publish("", "q", with_header(FieldValue(int32_t(7)), "two"));  // same header: dup
  ch.basic_publish("", "q", with_header(FieldValue("7"), "three"));      // another type: not
  ch.basic_publish("", "q", with_id("no header", "one"));                 // message_id ignored
  ch.flush();
  EXPECT_EQ(info(*broker, "q").messages_ready, 3u);
}

// ---- dead-letter cycles --------------------------------------------------------------

TEST(DeadLetterCycle, ExpiryBackIntoTheSameQueueIsDroppedButRejectionsLoop) {
  auto broker = memory_broker();
  auto ch = broker->channel();
  ch.queue_declare("self", {.arguments = args({{"x-message-ttl", FieldValue(int32_t(20))},
                                               {"x-dead-letter-exchange", FieldValue("")}})});
  ch.basic_publish("", "self", transient("loops?"));
  ch.flush();  // it is in the queue (or already gone); without the rule it would stay there
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (info(*broker, "self").messages_ready > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(info(*broker, "self").messages_ready, 0u);

  ch.queue_declare("bounce", {.arguments = args({{"x-dead-letter-exchange", FieldValue("")}})});
  ch.basic_publish("", "bounce", transient("again"));
  for (int i = 1; i <= 3; ++i) {
    auto d = ch.basic_get("bounce");
    ASSERT_TRUE(d) << i;
    if (i > 1) {
      EXPECT_EQ(*first_death(*d).find("count")->as_integer(), i - 1);
    }
    ch.basic_reject(d->delivery_tag, false);
  }
}

// ---- replay and idempotency ----------------------------------------------------------

TEST_F(RestartTest, ReplayMovesADeadLetterQueueBackWhereEachMessageDied) {
  auto broker = open();
  auto ch = broker->channel();
  ch.queue_declare("dead", {.durable = true});
  for (auto name : {"a", "b"})
    ch.queue_declare(name, {.durable = true,
                            .arguments = args({{"x-dead-letter-exchange", FieldValue("")},
                                               {"x-dead-letter-routing-key", FieldValue("dead")}})});
  for (int i = 0; i < 2500; ++i) ch.basic_publish("", i % 2 ? "b" : "a", persistent(std::to_string(i)));
  for (int i = 0; i < 2500; ++i) {
    auto d = ch.basic_get(i % 2 ? "b" : "a");
    ASSERT_TRUE(d);
    ch.basic_reject(d->delivery_tag, false);
  }
  ch.flush();
  EXPECT_EQ(info(*broker, "dead").messages_ready, 2500u);
  EXPECT_EQ(broker->replay("dead", "", {.max_messages = 3}), 3u);
  EXPECT_EQ(info(*broker, "a").messages_ready, 2u);
  EXPECT_EQ(info(*broker, "b").messages_ready, 1u);
  EXPECT_EQ(broker->replay("dead", "", {.copy = true}), 2497u);
  EXPECT_EQ(info(*broker, "dead").messages_ready, 2497u);
  EXPECT_EQ(info(*broker, "a").messages_ready + info(*broker, "b").messages_ready, 2500u);
  // The x-death history travels along: a second failure counts up.
  auto d = ch.basic_get("a");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.body, "0");
  ch.basic_reject(d->delivery_tag, false);
  ch.queue_purge("a");
  ch.queue_purge("b");
  ch.flush();
  // Into a named queue, all of it, and it is all on disk when replay returns.
  ch.queue_declare("retry", {.durable = true});
  EXPECT_EQ(broker->replay("dead", "retry"), 2498u);
  broker.reset();
  broker = open();
  EXPECT_EQ(info(*broker, "dead").messages_ready, 0u);
  EXPECT_EQ(info(*broker, "retry").messages_ready, 2498u);
  ch = broker->channel();
  auto first = ch.basic_get("retry", true);
  EXPECT_EQ(first->message.body, "3");  // the oldest first
  Status s = error_of([&] { broker->replay("nope", "retry"); });
  EXPECT_EQ(s.code(), ReplyCode::not_found);
}

TEST_F(RestartTest, AckDoneRecordsTheKeyWithTheAck) {
  {
    auto broker = open();
    auto ch = broker->channel();
    ch.queue_declare("jobs", {.durable = true});
    ch.basic_publish("", "jobs", with_id("charge card", "job-1"));
    ch.basic_publish("", "jobs", with_id("charge card again", "job-1"));  // a duplicate delivery
    ch.flush();
    auto d = ch.basic_get("jobs");
    ASSERT_TRUE(d);
    EXPECT_FALSE(ch.is_done("job-1"));
    ch.ack_done(d->delivery_tag, "job-1");
    EXPECT_TRUE(ch.is_done("job-1"));
    // The tag must be outstanding, as for basic_ack.
    Status s = error_of([&] { ch.ack_done(99, "job-9"); });
    EXPECT_EQ(s.code(), ReplyCode::precondition_failed);
  }
  auto broker = open();
  auto ch = broker->channel();
  EXPECT_TRUE(ch.is_done("job-1"));
  EXPECT_FALSE(ch.is_done("job-9")) << "a refused ack_done records nothing";
  auto again = ch.basic_get("jobs");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->message.body, "charge card again");
  EXPECT_TRUE(ch.is_done(*again->message.properties.message_id));
  ch.basic_ack(again->delivery_tag);
  ch.forget_done("job-1");
  EXPECT_FALSE(ch.is_done("job-1"));
  EXPECT_EQ(info(*broker, "jobs").messages_ready, 0u);
}

}  // namespace
}  // namespace warren
