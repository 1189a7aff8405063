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

// A callback of broker A calls broker B, whose callback calls A again: each thread holds
// each token at most once, and nobody waits for a token its own thread holds.
TEST(Threading, TwoBrokersCallEachOtherFromCallbacks) {
  auto a = memory_broker();
  auto b = memory_broker();
  auto cha = a->channel();
  auto chb = b->channel();
  cha.queue_declare("ping");
  chb.queue_declare("pong");
  std::promise<std::string> done;
  cha.basic_consume("ping", [&](Delivery d) {
    // On A's thread, holding A's token: publish to B and read B, then use A again.
    chb.basic_publish("", "pong", transient(d.message.body + "->b"));
    chb.flush();
    cha.basic_ack(d.delivery_tag);
    cha.queue_declare("ping", {.passive = true});  // a call A answers at once, on this thread
  });
  chb.basic_consume("pong", [&](Delivery d) {
    // On B's thread: use A, then B.
    auto got = cha.basic_get("ping");
    chb.basic_ack(d.delivery_tag);
    chb.queue_declare("pong", {.passive = true});
    done.set_value(d.message.body + (got ? " and more" : ""));
  });
  cha.basic_publish("", "ping", transient("a"));
  auto answer = done.get_future();
  if (answer.wait_for(10s) != std::future_status::ready) {
    ADD_FAILURE() << "the brokers deadlocked";
    std::_Exit(1);  // the threads cannot be joined
  }
  EXPECT_EQ(answer.get(), "a->b");
  EXPECT_EQ(info(*a, "ping").messages_unacknowledged, 0u);
}

}  // namespace
}  // namespace warren
