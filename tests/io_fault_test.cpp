// Every system call of the journal, the checkpoint and the restore of LMDB's meta can fail
// (storage/file_io.h). For each: what a client sees, that nothing confirmed is lost after
// reopening, and that the store opens again.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "api/handles.h"
#include "broker_util.h"
#include "faults.h"

namespace warren {
namespace {

using namespace warren::testing;
using storage::IoPoint;

class IoFault : public DurableBrokerTest {
 protected:
  std::unique_ptr<Broker> open_faulty() {
    BrokerOptions o{.data_dir = dir.path(), .durability = Durability::fsync};
    return std::make_unique<Broker>(api::BrokerHandle::open(o, faults));
  }
  // A channel in confirm mode on the durable queue "q".
  static Channel confirming(Broker& broker) {
    auto ch = broker.channel();
    ch.queue_declare("q", {.durable = true});
    ch.confirm_select();
    return ch;
  }
  // Publishes one persistent message with confirms; whether it was acked.
  static bool publish(Channel& ch, std::string body) {
    ch.basic_publish("", "q", persistent(std::move(body)));
    return ch.wait_for_confirms(10s);
  }
  std::vector<std::string> bodies_after_reopen() {
    auto broker = open();
    auto ch = broker->channel();
    std::vector<std::string> out;
    while (auto d = ch.basic_get("q", true)) out.push_back(d->message.body);
    return out;
  }
  std::shared_ptr<IoFaults> faults = std::make_shared<IoFaults>();
};

using Bodies = std::vector<std::string>;

// A failed journal write is not a failed commit: a checkpoint makes the commit durable.
struct AppendFault {
  const char* name;
  IoPoint point;
  int error;
  size_t written;
};
class JournalWriteFails : public IoFault, public ::testing::WithParamInterface<AppendFault> {};

TEST_P(JournalWriteFails, TheCommitIsMadeDurableByACheckpointInstead) {
  {
    auto broker = open_faulty();
    auto ch = broker->channel();
    // The first commit after opening is the first to append (and to grow the journal).
    faults->fail(GetParam().point, GetParam().error, 1, GetParam().written);
    ch.queue_declare("q", {.durable = true});
    EXPECT_EQ(faults->failed(GetParam().point), 1);
    ch.confirm_select();
    EXPECT_TRUE(publish(ch, "m1"));
    EXPECT_TRUE(publish(ch, "m2")) << "the journal is used again";
  }
  EXPECT_EQ(bodies_after_reopen(), (Bodies{"m1", "m2"}));
}

INSTANTIATE_TEST_SUITE_P(
    Faults, JournalWriteFails,
    ::testing::Values(AppendFault{"AppendEio", IoPoint::journal_append, EIO, 0},
                      AppendFault{"AppendEnospc", IoPoint::journal_append, ENOSPC, 0},
                      AppendFault{"AppendShortWrite", IoPoint::journal_append, ENOSPC, 1000}),
    [](const auto& info) { return std::string(info.param.name); });

// The journal grows a step at a time; a step that finds the disk full is retried later.
TEST_F(IoFault, AJournalThatCannotGrowFallsBackToCheckpoints) {
  {
    auto broker = open_faulty();
    auto ch = confirming(*broker);
    faults->fail(IoPoint::journal_extend, ENOSPC, 1, 4096);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(publish(ch, std::to_string(i)));  // > one step of records
    EXPECT_EQ(faults->failed(IoPoint::journal_extend), 1);
  }
  EXPECT_EQ(bodies_after_reopen().size(), 100u);
}

// The journal fails and so does the checkpoint: the commit cannot be made durable, so it
// is undone and the publisher gets a nack; nothing is wedged once the disk recovers.
TEST_F(IoFault, ACommitThatCannotBeMadeDurableIsUndoneAndNacked) {
  {
    auto broker = open_faulty();
    auto ch = confirming(*broker);
    ASSERT_TRUE(publish(ch, "kept"));
    faults->fail(IoPoint::journal_append, EIO);
    faults->fail(IoPoint::checkpoint_sync, EIO);
    EXPECT_FALSE(publish(ch, "lost")) << "not on the disk: a nack";
    EXPECT_EQ(info(*broker, "q").messages_ready, 1u) << "undone in memory too";
    Status declare = error_of([&] { ch.queue_declare("other", {.durable = true}); });
    EXPECT_EQ(declare.storage_fault(), StorageFault::io_error) << "a declaration that is not stored fails";
    faults->clear();
    ch = broker->channel();
    ch.confirm_select();
    EXPECT_TRUE(publish(ch, "later")) << "the store writes again by itself";
  }
  EXPECT_EQ(bodies_after_reopen(), (Bodies{"kept", "later"}));
}

TEST_F(IoFault, AFullDiskAtJournalAndCheckpointRaisesTheDiskAlarm) {
  auto broker = open_faulty();
  auto ch = confirming(*broker);
  faults->fail(IoPoint::journal_append, ENOSPC);
  faults->fail(IoPoint::checkpoint_sync, ENOSPC);
  EXPECT_FALSE(publish(ch, "no room"));
  auto& engine = broker->handle()->engine();
  EXPECT_TRUE(broker->handle()->run([&] { return engine.disk_alarm(); }))
      << "publishing connections are blocked (connection.blocked)";
}

// A checkpoint that fails after a journaled commit costs nothing: the journal still holds
// every commit since the last good checkpoint. Checked across a crash.
struct CheckpointFault {
  const char* name;
  IoPoint point;
};
class CheckpointFails : public IoFault, public ::testing::WithParamInterface<CheckpointFault> {};

TEST_P(CheckpointFails, EveryConfirmedMessageSurvivesACrash) {
  constexpr int kMessages = 600;  // more than two checkpoints' worth of commits
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto broker = open_faulty();
    auto ch = broker->channel();
    ch.queue_declare("q", {.durable = true});
    faults->fail(GetParam().point, EIO);
    ch.confirm_select();
    int confirmed = 0;
    for (int i = 0; i < kMessages; ++i) confirmed += publish(ch, std::to_string(i));
    int failures = faults->failed(GetParam().point);
    (void)!write(pipe_fds[1], &confirmed, sizeof confirmed);
    (void)!write(pipe_fds[1], &failures, sizeof failures);
    _exit(0);  // a crash: no clean close, no final checkpoint
  }
  close(pipe_fds[1]);
  int confirmed = -1, failures = -1;
  ASSERT_EQ(read(pipe_fds[0], &confirmed, sizeof confirmed), ssize_t(sizeof confirmed));
  ASSERT_EQ(read(pipe_fds[0], &failures, sizeof failures), ssize_t(sizeof failures));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  EXPECT_EQ(confirmed, kMessages) << "every commit was journaled: all confirmed";
  EXPECT_GE(failures, 2) << "checkpoints were due, and tried again";
  Bodies expected;
  for (int i = 0; i < kMessages; ++i) expected.push_back(std::to_string(i));
  EXPECT_EQ(bodies_after_reopen(), expected);
}

INSTANTIATE_TEST_SUITE_P(Faults, CheckpointFails,
                         ::testing::Values(CheckpointFault{"Sync", IoPoint::checkpoint_sync},
                                           CheckpointFault{"MetaRead", IoPoint::meta_read},
                                           CheckpointFault{"Rotation", IoPoint::journal_rotate}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(IoFault, ACheckpointThatFailedOnceSucceedsLaterAndTheStoreReopensClean) {
  {
    auto broker = open_faulty();
    auto ch = confirming(*broker);
    faults->fail(IoPoint::checkpoint_sync, EIO, 1);
    for (int i = 0; i < 400; ++i) ASSERT_TRUE(publish(ch, std::to_string(i)));
    EXPECT_EQ(faults->failed(IoPoint::checkpoint_sync), 1);
  }
  EXPECT_EQ(bodies_after_reopen().size(), 400u);
}

// Opening restores the checkpoint's meta page before replaying the journal; if that write
// fails, the store refuses to open and says why, and opens once the disk works again.
struct OpenFault {
  const char* name;
  IoPoint point;
};
class OpenFails : public IoFault, public ::testing::WithParamInterface<OpenFault> {};

TEST_P(OpenFails, TheStoreRefusesToOpenThenOpensIntact) {
  {
    auto broker = open();
    auto ch = confirming(*broker);
    ASSERT_TRUE(publish(ch, "m"));
  }
  faults->fail(GetParam().point, EIO);
  Status refused = error_of([&] { open_faulty(); });
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.text().find("Input/output error"), std::string::npos) << refused.text();
  faults->clear();
  EXPECT_EQ(bodies_after_reopen(), (Bodies{"m"}));
}

INSTANTIATE_TEST_SUITE_P(Faults, OpenFails,
                         ::testing::Values(OpenFault{"MetaWrite", IoPoint::meta_write},
                                           OpenFault{"MetaSync", IoPoint::meta_sync},
                                           OpenFault{"JournalOpen", IoPoint::journal_open},
                                           OpenFault{"JournalRead", IoPoint::journal_read}),
                         [](const auto& info) { return std::string(info.param.name); });

// When recovering in place fails too, the store closes LMDB and refuses writes (nacks)
// until a later write finds the disk working again.
TEST_F(IoFault, AStoreThatCannotRecoverStopsWritingUntilTheDiskWorksAgain) {
  {
    auto broker = open_faulty();
    auto ch = confirming(*broker);
    ASSERT_TRUE(publish(ch, "kept"));
    faults->fail(IoPoint::journal_append, EIO);
    faults->fail(IoPoint::checkpoint_sync, EIO);
    faults->fail(IoPoint::meta_write, EIO);  // recovery in place cannot restore the snapshot
    EXPECT_FALSE(publish(ch, "refused"));
    EXPECT_FALSE(publish(ch, "refused too")) << "stopped writing";
    EXPECT_GE(faults->failed(IoPoint::meta_write), 2) << "each write tries to recover";
    faults->clear();
    EXPECT_TRUE(publish(ch, "later"));
    EXPECT_EQ(info(*broker, "q").messages_ready, 2u);
  }
  EXPECT_EQ(bodies_after_reopen(), (Bodies{"kept", "later"}));
}

// A full file system is what the map cap is: publishers are refused and blocked, acks still
// land (in the space reserved ahead), the space they free is reused, and publishing resumes
// by itself once there is room.
TEST_F(IoFault, AFullDiskRefusesPublishesLetsAcksLandAndRecovers) {
  const std::string body(16 << 10, 'x');
  size_t accepted = 0, taken = 0;
  {
    auto broker = open_faulty();
    auto ch = confirming(*broker);
    faults->fail(IoPoint::data_allocate, ENOSPC);  // from now on the disk has no more room
    while (publish(ch, body)) {
      ++accepted;
      ASSERT_LT(accepted, 100'000u) << "the store never filled";
    }
    EXPECT_GE(faults->failed(IoPoint::data_allocate), 1);
    EXPECT_TRUE(broker->handle()->run([&] { return broker->handle()->engine().disk_alarm(); }));
    auto reader = broker->channel();
    for (; taken < accepted / 2; ++taken) {
      auto d = reader.basic_get("q");
      ASSERT_TRUE(d);
      reader.basic_ack(d->delivery_tag);
    }
    reader.flush();  // the acks landed
    ch = confirming(*broker);
    EXPECT_TRUE(publish(ch, "after the acks")) << "space freed by acks is used again";
    EXPECT_FALSE(broker->handle()->run([&] { return broker->handle()->engine().disk_alarm(); }));
    faults->clear();
  }
  EXPECT_EQ(bodies_after_reopen().size(), accepted - taken + 1) << "every ack landed";
}

// A commit LMDB itself fails to write stores nothing; the next one works.
TEST_F(IoFault, AFailedLmdbCommitIsNackedAndTheNextOneLands) {
  {
    auto broker = open_faulty();
    auto ch = confirming(*broker);
    faults->fail_commits(true);
    EXPECT_FALSE(publish(ch, "lost"));
    faults->fail_commits(false);
    EXPECT_TRUE(publish(ch, "kept"));
  }
  EXPECT_EQ(bodies_after_reopen(), (Bodies{"kept"}));
}

}  // namespace
}  // namespace warren
