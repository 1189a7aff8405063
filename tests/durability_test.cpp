// One authority for "durable": confirms, declarations, transactions, flush and shutdown all
// wait for the commit the core says carries their effect, and threads that hold several
// brokers' tokens stay out of each other's way.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "broker_util.h"
#include "core/engine.h"

namespace warren {
namespace {

using namespace warren::testing;

class Durability : public DurableBrokerTest {};

// RabbitMQ nacks a publish when any queue it reached refuses it, even though the other
// queues stored it: the client must see that nack, and only once.
TEST_F(Durability, APublishOneQueueRefusesIsNackedThoughItsCommitSucceeds) {
  auto broker = open();
  auto ch = broker->channel();
  ch.exchange_declare("both", "fanout", {.durable = true});
  ch.queue_declare("kept", {.durable = true});
  ch.queue_declare("full", {.durable = true,
                            .arguments = args({{"x-max-length", FieldValue(int32_t(0))},
                                               {"x-overflow", FieldValue("reject-publish")}})});
  ch.queue_bind("kept", "both", "");
  ch.queue_bind("full", "both", "");
  ch.confirm_select();
  ch.basic_publish("both", "", persistent("refused by one"));
  EXPECT_FALSE(ch.wait_for_confirms(5s)) << "one queue refused it: the publisher gets a nack";
  ch.basic_publish("", "kept", persistent("fine"));
  EXPECT_TRUE(ch.wait_for_confirms(5s)) << "the earlier nack belongs to the earlier wait";
  EXPECT_EQ(info(*broker, "kept").messages_ready, 2u);
}

TEST_F(Durability, ANackAfterAnAckInOneWaitIsReported) {
  auto broker = open();
  auto ch = broker->channel();
  ch.queue_declare("kept", {.durable = true});
  ch.queue_declare("full", {.durable = true,
                            .arguments = args({{"x-max-length", FieldValue(int32_t(0))},
                                               {"x-overflow", FieldValue("reject-publish")}})});
  ch.confirm_select();
  for (int i = 0; i < 20; ++i) ch.basic_publish("", "kept", persistent("ok"));
  ch.basic_publish("", "full", persistent("no room"));
  EXPECT_FALSE(ch.wait_for_confirms(5s));
}

// A callback of broker A calls broker B, then A again: the thread holds both tokens at
// once, and each knows it is held here (a single thread-local holder forgot A once B was
// released, and the next call to A waited for A's own loop: this thread).
TEST(Threading, ACallbackOfOneBrokerCallsAnotherThenItsOwn) {
  auto a = memory_broker();
  auto b = memory_broker();
  auto cha = a->channel();
  auto chb = b->channel();
  cha.queue_declare("ping");
  chb.queue_declare("pong");
  std::promise<std::string> done;
  cha.basic_consume("ping", [&](Delivery d) {
    chb.basic_publish("", "pong", transient(d.message.body + "->b"));
    chb.flush();
    auto got = chb.basic_get("pong", true);  // B runs on this thread, inside A's callback
    cha.basic_ack(d.delivery_tag);
    cha.queue_declare("ping", {.passive = true});  // and A again, on this thread
    done.set_value(got ? got->message.body : "nothing");
  });
  cha.basic_publish("", "ping", transient("a"));
  auto answer = done.get_future();
  if (answer.wait_for(10s) != std::future_status::ready) {
    ADD_FAILURE() << "the brokers deadlocked";
    std::_Exit(1);  // the threads cannot be joined
  }
  EXPECT_EQ(answer.get(), "a->b");
  cha.flush();
  EXPECT_EQ(info(*a, "ping").messages_unacknowledged, 0u);
}

}  // namespace
}  // namespace warren
