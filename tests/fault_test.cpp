// The disk misbehaves: failed commits, a full map. Nothing stored is lost, confirms tell
// the truth, and the broker keeps serving.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "api/handles.h"
#include "broker_util.h"
#include "faults.h"
#include "test_util.h"

namespace warren {
namespace {

using namespace warren::testing;

class ScriptedFaults : public storage::FaultInjector {
 public:
  Status before_commit(const storage::CommitInfo& info) override {
    if (info.message_puts > 0 && fail_puts.load())
      return Status::storage(StorageFault::io_error, "injected fsync failure");
    return {};
  }
  Status before_grow(uint64_t) override {
    if (disk_full.load())
      return Status::storage(StorageFault::no_space, "injected: no space left on device");
    return {};
  }
  std::atomic<bool> fail_puts{false};
  std::atomic<bool> disk_full{false};
};

std::unique_ptr<Broker> open_with(const std::string& dir,
                                  std::shared_ptr<storage::FaultInjector> faults,
                                  BrokerOptions o = {}) {
  o.data_dir = dir;
  o.durability = Durability::fsync;
  return std::make_unique<Broker>(api::BrokerHandle::open(o, std::move(faults)));
}

class Faults : public ::testing::Test {
 protected:
  TempDir dir;
  std::shared_ptr<ScriptedFaults> faults = std::make_shared<ScriptedFaults>();
};

TEST_F(Faults, FailedCommitNacksAndStoresNothing) {
  auto broker = open_with(dir.path(), faults);
  auto ch = broker->channel();
  ch.queue_declare("q", {.durable = true});
  ch.confirm_select();
  ch.basic_publish("", "q", persistent("kept"));
  ASSERT_TRUE(ch.wait_for_confirms(5s));
  faults->fail_puts = true;
  ch.basic_publish("", "q", persistent("refused"));
  EXPECT_FALSE(ch.wait_for_confirms(5s));  // nacked
  faults->fail_puts = false;
  ch.basic_publish("", "q", persistent("after"));
  EXPECT_TRUE(ch.wait_for_confirms(5s));
  EXPECT_TRUE(ch.is_open());
  std::vector<std::string> bodies;
  while (auto d = ch.basic_get("q", true)) bodies.push_back(d->message.body);
  EXPECT_EQ(bodies, (std::vector<std::string>{"kept", "after"}));
  broker.reset();
  broker = open_with(dir.path(), faults);
  EXPECT_EQ(broker->channel().queue_declare("q", {.durable = true}).message_count, 0u);
}

TEST_F(Faults, ARefusedMessageLeavesNoDedupKeyBehind) {
  FieldTable args;
  args.set("x-message-deduplication", FieldValue(true));
  auto publish = [](Channel& ch) {
    Message m = persistent("order");
    m.properties.message_id = "order-7";
    ch.basic_publish("", "q", std::move(m));
  };
  {
    auto broker = open_with(dir.path(), faults);
    auto ch = broker->channel();
    ch.queue_declare("q", {.durable = true, .arguments = args});
    ch.confirm_select();
    faults->fail_puts = true;
    publish(ch);
    EXPECT_FALSE(ch.wait_for_confirms(5s));  // refused: the producer will retry
    faults->fail_puts = false;
    publish(ch);
    EXPECT_TRUE(ch.wait_for_confirms(5s));
    EXPECT_EQ(broker->list_queues().front().messages_ready, 1u) << "the retry was taken for a duplicate";
    EXPECT_EQ(broker->list_queues().front().duplicates, 0u);
  }
  auto broker = open_with(dir.path(), faults);
  auto ch = broker->channel();
  ch.confirm_select();
  publish(ch);  // the stored window says it is a duplicate now
  EXPECT_TRUE(ch.wait_for_confirms(5s));
  EXPECT_EQ(broker->list_queues().front().messages_ready, 1u);
}

TEST_F(Faults, NackedMessagesAreNotLeftInTheQueue) {
  auto broker = open_with(dir.path(), faults);
  auto ch = broker->channel();
  ch.queue_declare("q", {.durable = true});
  ch.confirm_select();
  faults->fail_puts = true;
  for (int i = 0; i < 20; ++i) ch.basic_publish("", "q", persistent("x"));
  EXPECT_FALSE(ch.wait_for_confirms(5s));
  faults->fail_puts = false;
  // The nacks went out after the queue had dropped the unstored messages.
  EXPECT_EQ(broker->list_queues().front().messages_ready, 0u);
  // flush() reports that not everything reached the disk.
  EXPECT_EQ(error_of([&] { ch.flush(); }).storage_fault(), StorageFault::io_error);
  EXPECT_FALSE(ch.basic_get("q"));
}

TEST_F(Faults, FullStoreRefusesPublishesButServesConsumers) {
  auto broker =
      open_with(dir.path(), faults, {.initial_map_size = 1 << 20, .max_map_size = 2 << 20});
  auto ch = broker->channel();
  ch.queue_declare("q", {.durable = true});
  ch.confirm_select();
  std::string body(4000, 'x');
  int accepted = 0;
  constexpr int kRounds = 2000;
  for (int round = 0; round < kRounds; ++round) {
    ch.basic_publish("", "q", persistent(body));
    if (!ch.wait_for_confirms(5s)) break;
    ++accepted;
  }
  ASSERT_GT(accepted, 10);
  ASSERT_LT(accepted, kRounds) << "the cap was never reached";
  EXPECT_TRUE(ch.is_open());
  // Everything accepted is there, and consumers drain it.
  auto consumer = broker->channel();
  int drained = 0;
  while (auto d = consumer.basic_get("q")) {
    consumer.basic_ack(d->delivery_tag);
    ++drained;
  }
  EXPECT_EQ(drained, accepted);
  consumer.flush();
  // Acks freed the space: publishing works again.
  ch.basic_publish("", "q", persistent(body));
  EXPECT_TRUE(ch.wait_for_confirms(5s));
}

TEST_F(Faults, DiskFullWhileGrowingIsANack) {
  auto broker = open_with(dir.path(), faults, {.initial_map_size = 1 << 20});
  auto ch = broker->channel();
  ch.queue_declare("q", {.durable = true});
  ch.confirm_select();
  faults->disk_full = true;
  std::string body(100000, 'x');
  bool nacked = false;
  for (int i = 0; i < 40 && !nacked; ++i) {
    ch.basic_publish("", "q", persistent(body));
    nacked = !ch.wait_for_confirms(5s);
  }
  EXPECT_TRUE(nacked);
  faults->disk_full = false;
  ch.basic_publish("", "q", persistent(body));
  EXPECT_TRUE(ch.wait_for_confirms(5s));
}

// Holds every commit until opened: a disk that has stopped answering.
TEST_F(Faults, WaitForConfirmsTimesOutWhileTheDiskHangs) {
  auto stuck = std::make_shared<StuckDisk>();
  stuck->open();
  auto broker = open_with(dir.path(), stuck);
  auto ch = broker->channel();
  ch.queue_declare("q", {.durable = true});
  ch.confirm_select();
  stuck->hang();
  ch.basic_publish("", "q", persistent("m"));
  EXPECT_THROW(ch.wait_for_confirms(100ms), Timeout);
  stuck->open();
  EXPECT_TRUE(ch.wait_for_confirms(5s));  // nothing was lost by timing out
}

TEST_F(Faults, PublishersAreHeldWhileTheWriterFallsBehind) {
  auto stuck = std::make_shared<StuckDisk>();
  constexpr int kMessages = 1000, kBody = 10000;
  auto broker = open_with(dir.path(), stuck, {.publish_backlog_limit = 100000});
  auto ch = broker->channel();
  std::atomic<int> published{0};
  std::thread publisher([&] {
    ch.queue_declare("q");  // not durable: the declaration needs no commit
    for (int i = 0; i < kMessages; ++i) {
      ch.basic_publish("", "q", persistent(std::string(kBody, 'x')));
      ++published;
    }
  });
  // With the disk stuck, the publisher must stall near the limit instead of queueing
  // all 10 MB on the heap.
  int seen = -1;
  for (int still = 0; still < 4;) {
    std::this_thread::sleep_for(50ms);
    int now = published.load();
    still = now == seen ? still + 1 : 0;
    seen = now;
  }
  EXPECT_LT(seen, 100000 / kBody + 10);
  EXPECT_LE(broker->handle()->writer().backlog_bytes(), uint64_t(100000 + 2 * kBody));
  stuck->open();
  publisher.join();
  ch.flush();
  EXPECT_EQ(broker->list_queues().front().messages_ready, uint64_t(kMessages));
}

}  // namespace
}  // namespace warren
