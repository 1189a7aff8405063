// The queue's positions, on their own: every transition, its counts and its invariants.
#include "core/queue_positions.h"

#include <gtest/gtest.h>

namespace warren::core {
namespace {

using Held = QueuePositions::Held;
constexpr Held kTen{storage::Db::messages, 10};

// A queue of n messages of 10 bytes each, numbered 1..n.
QueuePositions with(int n) {
  QueuePositions p;
  for (int i = 0; i < n; ++i) p.append(10);
  return p;
}

TEST(QueuePositions, AppendsAndTakesInOrder) {
  QueuePositions p = with(3);
  EXPECT_EQ(p.ready(), 3u);
  EXPECT_EQ(p.ready_bytes(), 30u);
  EXPECT_EQ(p.next_seq(), 4u);
  EXPECT_TRUE(p.stream_has_ready());
  p.take_from_stream(1, 10);
  p.take_from_stream(2, 10);
  EXPECT_EQ(p.read_position(), 3u);
  EXPECT_EQ(p.ready(), 1u);
  EXPECT_EQ(p.ready_bytes(), 10u);
  EXPECT_TRUE(p.consistent());
}

TEST(QueuePositions, ReturnedMessagesGoBackToTheirPlaceAheadOfTheStream) {
  QueuePositions p = with(4);
  for (uint64_t s = 1; s <= 3; ++s) p.take_from_stream(s, 10);
  p.give_back(3, kTen);
  p.give_back(1, kTen);
  EXPECT_EQ(p.ready(), 3u);
  auto first = p.pop_returned();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->first, 1u) << "the oldest returned message first";
  EXPECT_EQ(p.pop_returned()->first, 3u);
  EXPECT_FALSE(p.pop_returned());
  EXPECT_EQ(p.ready(), 1u);  // message 4, still in the stream
  EXPECT_TRUE(p.consistent());
}

TEST(QueuePositions, AReturnAtOrAboveTheReadPositionIsFoundByTheStream) {
  QueuePositions p;
  p.recover(5, 10, 5, 50);  // after a restart, 5..9 are stored
  p.recover_delayed(7, kTen);
  EXPECT_EQ(p.ready(), 4u);
  EXPECT_TRUE(p.held_in_stream(7));
  auto held = p.end_delay(7);
  ASSERT_TRUE(held);
  p.give_back(7, *held);  // its retry time came: ready where it is
  EXPECT_EQ(p.ready(), 5u);
  EXPECT_TRUE(p.returned().empty());
  EXPECT_FALSE(p.held_in_stream(7));
}

TEST(QueuePositions, DelayedMessagesAreNotReadyUntilTheirTime) {
  QueuePositions p = with(2);
  p.take_from_stream(1, 10);
  p.delay(1, kTen);
  EXPECT_EQ(p.ready(), 1u);
  EXPECT_EQ(p.delayed(), 1u);
  EXPECT_TRUE(p.is_delayed(1));
  p.give_back(1, *p.end_delay(1));
  EXPECT_EQ(p.ready(), 2u);
  EXPECT_EQ(p.delayed(), 0u);
  EXPECT_FALSE(p.end_delay(1)) << "only once";
}

TEST(QueuePositions, RemovingAReadyMessageAnywhere) {
  QueuePositions p = with(5);
  p.take_from_stream(1, 10);
  p.give_back(1, kTen);
  p.remove_ready(1, 10, 7);  // a returned one
  EXPECT_TRUE(p.returned().empty());
  p.remove_ready(2, 10, 7);  // at the read position: stepped over
  EXPECT_EQ(p.read_position(), 3u);
  p.remove_ready(4, 10, 7);  // ahead of it: held out until commit 7 lands
  EXPECT_TRUE(p.held_in_stream(4));
  EXPECT_FALSE(p.is_ready(4));
  EXPECT_EQ(p.ready(), 2u);
  p.removed_through(6);
  EXPECT_TRUE(p.held_in_stream(4));
  p.removed_through(7);
  EXPECT_FALSE(p.held_in_stream(4));
  EXPECT_FALSE(p.has_removing());
  EXPECT_TRUE(p.consistent());
}

TEST(QueuePositions, PurgeStepsAroundDelayedMessages) {
  QueuePositions p;
  p.recover(1, 11, 10, 100);
  p.recover_delayed(4, kTen);
  p.recover_delayed(8, kTen);
  p.take_from_stream(1, 10);
  p.give_back(1, kTen);
  auto purged = p.purge();
  EXPECT_EQ(purged.count, 8u);
  ASSERT_EQ(purged.returned.size(), 1u);
  EXPECT_EQ(purged.returned[0].first, 1u);
  using Range = std::pair<uint64_t, uint64_t>;
  EXPECT_EQ(purged.ranges, (std::vector<Range>{{2, 4}, {5, 8}, {9, 11}}));
  EXPECT_EQ(p.ready(), 0u);
  EXPECT_EQ(p.delayed(), 2u) << "delayed messages stay, as unacknowledged ones do";
  // A delayed message that comes back after a purge is below the read position now.
  p.give_back(4, *p.end_delay(4));
  EXPECT_EQ(p.returned().size(), 1u);
  EXPECT_EQ(p.ready(), 1u);
}

TEST(QueuePositions, AMessageWhoseCommitFailedIsNoLongerReady) {
  QueuePositions p = with(4);
  p.take_from_stream(1, 10);
  p.take_from_stream(2, 10);
  p.give_back(2, kTen);
  p.never_stored(2, 10);  // returned
  p.never_stored(3, 10);  // in the stream
  p.never_stored(1, 10);  // out with a consumer: its ack will find nothing
  EXPECT_EQ(p.ready(), 1u);
  EXPECT_EQ(p.ready_bytes(), 10u);
  EXPECT_TRUE(p.returned().empty());
}

TEST(QueuePositions, UnreadUndoesTheLastTake) {
  QueuePositions p = with(2);
  p.take_from_stream(1, 10);
  p.unread(1, kTen, false);
  EXPECT_EQ(p.read_position(), 1u);
  EXPECT_TRUE(p.returned().empty()) << "not a return: it was never delivered";
  EXPECT_EQ(p.ready(), 2u);
  p.take_from_stream(1, 10);
  p.give_back(1, kTen);
  auto r = p.pop_returned();
  p.unread(r->first, r->second, true);
  EXPECT_EQ(p.returned().size(), 1u);
}

#if defined(WARREN_CHECK_THREADS) || !defined(NDEBUG)
TEST(QueuePositionsDeathTest, CountingOutOfAnEmptyQueueIsCaught) {
  QueuePositions p = with(1);
  p.take_from_stream(1, 10);
  EXPECT_DEATH(p.remove_ready(1, 10, 1), "drifted");
}
#endif

}  // namespace
}  // namespace warren::core
