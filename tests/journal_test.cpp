// The commit journal (storage/journal.h): what a crash or a power loss leaves is recovered.
// A "crash" is a forked child that writes and then _exits without closing the store; a
// power loss is that crash plus a data file in which each page written since the last
// checkpoint either reached the disk or did not.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/op_codec.h"
#include "storage/records.h"
#include "storage/store.h"
#include "test_util.h"

namespace warren::storage {
namespace {

namespace fs = std::filesystem;
using warren::testing::TempDir;

constexpr uint64_t kQueue = 1;

std::shared_ptr<const MessageData> message(uint64_t n) {
  auto m = std::make_shared<MessageData>();
  m->flags = MessageData::kPersistent;
  m->exchange = "x";
  m->routing_key = "rk";
  m->body = "message " + std::to_string(n) + " " + std::string(n % 700, 'b');
  return m;
}

std::unique_ptr<Store> open_store(const std::string& dir, Durability durability,
                                  StoreOptions o = {}) {
  o.path = dir;
  o.durability = durability;
  auto s = Store::open(o);
  EXPECT_TRUE(s.ok()) << s.status().text();
  return s.ok() ? std::move(s.value()) : nullptr;
}

// Commit i puts message i; every third commit also deletes the message two before it, so
// that commits free pages as well as take them.
Status write_commit(Store& store, uint64_t i) {
  std::vector<Op> ops{Op::put_message(Db::messages, kQueue, i, message(i))};
  if (i % 3 == 0 && i >= 2) ops.push_back(Op::del_message(Db::messages, kQueue, i - 2));
  return store.write(ops);
}

bool deleted(uint64_t i, uint64_t commits) { return (i + 2) % 3 == 0 && i + 2 <= commits; }

// The store holds exactly what `commits` commits of write_commit wrote.
void expect_commits(Store& store, uint64_t commits) {
  ReadView view(store);
  uint64_t expected = 0;
  for (uint64_t i = 1; i <= commits; ++i) {
    auto key = message_key(kQueue, i);
    auto record = view.get(Db::messages, {key.data(), key.size()});
    if (deleted(i, commits)) {
      EXPECT_FALSE(record) << "message " << i << " was deleted";
      continue;
    }
    ++expected;
    ASSERT_TRUE(record) << "message " << i << " of " << commits << " is missing";
    auto m = decode_message(*record);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->body, message(i)->body);
  }
  auto key = message_key(kQueue, commits + 1);
  EXPECT_FALSE(view.get(Db::messages, {key.data(), key.size()})) << "a message never written";
  auto stats = decode_stats(view.get(Db::queue_stats, queue_id_key(kQueue)).value_or(""));
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->count, expected);
}

// Runs fn in a child process that then ends without closing anything, as a crash would.
// `at_ready` runs in the parent once the child has called ready().
void crash_after(const std::function<void(const std::function<void()>& ready)>& fn,
                 const std::function<void()>& at_ready = {}) {
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(to_child), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    fn([&] {
      char c = 1;
      if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(3);
    });
    _exit(::testing::Test::HasFailure() ? 2 : 0);
  }
  char c = 0;
  if (read(to_parent[0], &c, 1) == 1) {
    if (at_ready) at_ready();
    ASSERT_EQ(write(to_child[1], &c, 1), 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) close(fd);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child failed: " << status;
}

// A child writes commits 1..n in fsync mode and crashes.
void crash_after_commits(const std::string& dir, uint64_t n) {
  crash_after([&](auto&& ready) {
    auto store = open_store(dir, Durability::fsync);
    ASSERT_TRUE(store);
    for (uint64_t i = 1; i <= n; ++i) ASSERT_TRUE(write_commit(*store, i));
    ready();
    store.release();  // no close: the crash
  });
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

TEST(Journal, CommitsAfterTheLastCheckpointAreReplayedAfterACrash) {
  TempDir dir;
  // 700 commits span two checkpoints; those after the second exist only in the journal.
  crash_after([&](auto&& ready) {
    auto store = open_store(dir.path(), Durability::fsync);
    ASSERT_TRUE(store);
    for (uint64_t i = 1; i <= 700; ++i) {
      ASSERT_TRUE(write_commit(*store, i));
      // A commit that changes nothing takes no LMDB transaction id: replay must not miss
      // a beat after it.
      if (i % 100 == 50) {
        ASSERT_TRUE(store->write({Op::del(Db::meta, "absent")}));
      }
    }
    ready();
    store.release();  // no close: the crash
  });
  auto store = open_store(dir.path(), Durability::fsync);
  ASSERT_TRUE(store);
  expect_commits(*store, 700);
  // Replayed commits are checkpointed at open, and the store writes on from there.
  for (uint64_t i = 701; i <= 710; ++i) ASSERT_TRUE(write_commit(*store, i));
  store.reset();
  store = open_store(dir.path(), Durability::fsync);
  ASSERT_TRUE(store);
  expect_commits(*store, 710);
}

// Each page of the data file written since the checkpoint survives a power loss or not; a
// lost page that the file did not have before reads as zeros.
TEST(Journal, APowerLossLosingAnyPagesWrittenSinceTheCheckpointLosesNoCommit) {
  const Durability durability = Durability::fsync;
  TempDir dir;
  std::string data = dir.sub("data.mdb");
  std::string at_checkpoint;  // the data file as the checkpoint at open synced it
  constexpr uint64_t kCommits = 200;
  crash_after(
      [&](auto&& ready) {
        auto store = open_store(dir.path(), durability);
        ASSERT_TRUE(store);
        ready();
        for (uint64_t i = 1; i <= kCommits; ++i) ASSERT_TRUE(write_commit(*store, i));
        store.release();
      },
      [&] { at_checkpoint = read_file(data); });
  std::string after = read_file(data);
  std::string journal = read_file(dir.sub("journal"));
  ASSERT_GT(after.size(), at_checkpoint.size());
  const size_t page = 4096;
  ASSERT_EQ(at_checkpoint.size() % page, 0u);

  std::mt19937 random(20261122);
  for (int round = 0; round < 8; ++round) {
    TempDir copy;
    for (const auto& entry : fs::directory_iterator(dir.path()))
      fs::copy(entry.path(), copy.sub(entry.path().filename().string()));
    std::string mixed = after;
    size_t changed = 0;
    for (size_t at = 0; at < after.size(); at += page) {
      size_t n = std::min(page, after.size() - at);
      bool lost = round == 0 || random() % 2 == 0;  // round 0 loses every one
      if (!lost) continue;
      if (at < at_checkpoint.size())
        mixed.replace(at, n, at_checkpoint, at, n);
      else
        mixed.replace(at, n, std::string(n, '\0'));
      changed += mixed.compare(at, n, after, at, n) != 0;
    }
    ASSERT_GT(changed, 0u);
    write_file(copy.sub("data.mdb"), mixed);
    auto store = open_store(copy.path(), durability);
    ASSERT_TRUE(store) << "round " << round;
    expect_commits(*store, kCommits);
  }
}

TEST(Journal, ANosyncOpenRecoversAnFsyncJournalAndDropsIt) {
  TempDir dir;
  crash_after_commits(dir.path(), 30);
  {
    auto store = open_store(dir.path(), Durability::nosync);
    ASSERT_TRUE(store);
    expect_commits(*store, 30);
    EXPECT_FALSE(fs::exists(dir.sub("journal")));
    for (uint64_t i = 31; i <= 40; ++i) ASSERT_TRUE(write_commit(*store, i));
  }
  // Back in fsync mode nothing stale is restored over what nosync wrote.
  auto store = open_store(dir.path(), Durability::fsync);
  ASSERT_TRUE(store);
  expect_commits(*store, 40);
}

TEST(Journal, ADamagedRecordWithRecordsAfterItIsRefusedUnlessTheLossIsAccepted) {
  TempDir dir;
  crash_after_commits(dir.path(), 20);
  // Each of these small records takes one block after the two checkpoint slots: damage the
  // 11th. Replaying up to it would silently drop the nine confirmed commits after it.
  std::string journal = read_file(dir.sub("journal"));
  size_t eleventh = (2 + 10) * Journal::kBlock;
  ASSERT_GT(journal.size(), eleventh + 100);
  journal[eleventh + 100] ^= 0x55;
  write_file(dir.sub("journal"), journal);
  StoreOptions o;
  o.path = dir.path();
  auto refused = Store::open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().storage_fault(), StorageFault::corruption);
  EXPECT_NE(refused.status().text().find("is damaged and valid records follow it"), std::string::npos)
      << refused.status().text();
  // Accepted, the store opens as LMDB holds it: here every commit had reached it.
  o.accept_data_loss = true;
  auto store = open_store(dir.path(), Durability::fsync, o);
  ASSERT_TRUE(store);
  expect_commits(*store, 20);
}

TEST(Journal, ACleanCloseLeavesNothingToReplay) {
  TempDir dir;
  {
    auto store = open_store(dir.path(), Durability::fsync);
    ASSERT_TRUE(store);
    for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(write_commit(*store, i));
  }
  uint64_t generation;
  FileIo io;
  {
    auto journal = Journal::open(dir.sub("journal"), io);
    ASSERT_TRUE(journal.ok());
    generation = (*journal)->checkpoint().generation;
    EXPECT_NE(generation, 0u);
    EXPECT_TRUE((*journal)->take_pending().empty());
  }
  // Reopening finds LMDB at the checkpoint: it writes nothing, not even a new checkpoint.
  ASSERT_TRUE(open_store(dir.path(), Durability::fsync));
  auto journal = Journal::open(dir.sub("journal"), io);
  ASSERT_TRUE(journal.ok());
  EXPECT_EQ((*journal)->checkpoint().generation, generation);
  auto store = open_store(dir.path(), Durability::fsync);
  ASSERT_TRUE(store);
  expect_commits(*store, 5);
}

TEST(Journal, AtTheCapDeletesStillLandAndFreeRoomForPuts) {
  TempDir dir;
  StoreOptions o;
  o.initial_map_size = o.max_map_size = 2 << 20;
  auto store = open_store(dir.path(), Durability::fsync, o);
  ASSERT_TRUE(store);
  auto big = std::make_shared<MessageData>();
  big->body = std::string(64 << 10, 'x');
  uint64_t stored = 0;
  for (uint64_t seq = 1; seq <= 200; ++seq) {
    Status s = store->write({Op::put_message(Db::messages, kQueue, seq, big)});
    if (!s) {
      EXPECT_EQ(s.storage_fault(), StorageFault::no_space) << s.text();
      break;
    }
    stored = seq;
  }
  ASSERT_GT(stored, 3u);
  ASSERT_LT(stored, 200u);
  ASSERT_TRUE(store->write({Op::del_message_range(Db::messages, kQueue, 1, stored + 1)}));
  EXPECT_TRUE(store->write({Op::put_message(Db::messages, kQueue, stored + 1, big)}));
}

TEST(OpCodec, EveryKindRoundTripsAndTruncationIsRefused) {
  std::vector<Op> ops{
      Op::put(Db::queues, "key", "value"),
      Op::del(Db::bindings, "gone"),
      Op::put_message(Db::messages, 3, 4, message(9)),
      Op::replace_message(Db::transient, 3, 5, message(10)),
      Op::del_message(Db::messages, 3, 6),
      Op::del_message_range(Db::messages, 3, 7, 9),
      Op::set_delivered_mark(3, 8),
      Op::drop_queue(4),
      Op::dedup_insert(3, "digest", 11, 12, 13, 14),
  };
  std::string bytes = encode_ops(ops, 1);
  EXPECT_EQ(bytes.size(), encoded_ops_size(ops));
  auto batch = decode_ops(bytes);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->subset, 1);
  ASSERT_EQ(batch->ops.size(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op &a = ops[i], &b = batch->ops[i];
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.db, b.db);
    EXPECT_EQ(a.key, b.key);
    EXPECT_EQ(a.value, b.value);
    EXPECT_EQ(a.queue_id, b.queue_id);
    EXPECT_EQ(a.seq, b.seq);
    EXPECT_EQ(a.seq_end, b.seq_end);
    EXPECT_EQ(a.bytes, b.bytes);
    ASSERT_EQ(bool(a.message), bool(b.message));
    if (a.message) {
      EXPECT_EQ(a.message->body, b.message->body);
    }
  }
  for (size_t cut = 0; cut < bytes.size(); ++cut)
    EXPECT_FALSE(decode_ops(std::string_view(bytes).substr(0, cut))) << cut;
  EXPECT_FALSE(decode_ops(bytes + "x"));
}


namespace creation {

// Ends the process right before one of the new store's steps: what a crash there leaves.
class CrashAt : public FaultInjector {
 public:
  explicit CrashAt(IoPoint point) : point_(point) {}
  IoFault on_io(IoPoint point, size_t) override {
    if (point == point_) _exit(0);
    return {};
  }

 private:
  IoPoint point_;
};

}  // namespace creation

// Creating a store is interrupted at each step; the next open finds no store (and builds
// one) or a complete one, never one it cannot open.
TEST(Journal, ACrashWhileCreatingAStoreLeavesNoneOrAWholeOne) {
  for (IoPoint point : {IoPoint::create_sync, IoPoint::create_rename, IoPoint::create_dir_sync,
                        IoPoint::checkpoint_sync}) {
    SCOPED_TRACE(std::string(io_point_name(point)));
    TempDir dir;
    crash_after([&](auto&& ready) {
      StoreOptions o;
      o.faults = std::make_shared<creation::CrashAt>(point);
      ready();
      open_store(dir.path(), Durability::fsync, o);  // ends at the step
      ADD_FAILURE() << "the step was never reached";
    });
    auto store = open_store(dir.path(), Durability::fsync);
    ASSERT_TRUE(store);
    ASSERT_TRUE(write_commit(*store, 1));
    store.reset();
    store = open_store(dir.path(), Durability::fsync);
    ASSERT_TRUE(store);
    expect_commits(*store, 1);
    EXPECT_FALSE(fs::exists(dir.sub("creating"))) << "the staging directory is cleaned up";
  }
}

// A staging directory holding a half-written data file (a power loss while it was built)
// is not a store: the next open builds a new one.
TEST(Journal, AHalfBuiltStoreIsBuiltAgain) {
  TempDir dir;
  fs::create_directory(dir.sub("creating"));
  write_file(dir.sub("creating/data.mdb"), std::string(8192, '\0'));
  auto store = open_store(dir.path(), Durability::fsync);
  ASSERT_TRUE(store);
  ASSERT_TRUE(write_commit(*store, 1));
  expect_commits(*store, 1);
}

// A crashed run's map had grown far past the size opening asks for; its journal's commits
// need that room again when they are replayed (at apply time and at commit time alike).
TEST(Journal, ReplayGrowsTheMapAsTheCrashedRunHad) {
  TempDir dir;
  StoreOptions small;
  small.initial_map_size = 1 << 20;
  uint64_t commits = 0;
  crash_after([&](auto&& ready) {
    auto store = open_store(dir.path(), Durability::fsync, small);
    ASSERT_TRUE(store);
    // Big records, all kept: the map doubles several times, and the commits after the last
    // checkpoint (at most 255) alone need more than the initial map.
    for (uint64_t i = 1; store->map_size() < (uint64_t{16} << 20); ++i) {
      auto m = std::make_shared<MessageData>(*message(i));
      m->body = std::string(40000, char('a' + i % 26));
      ASSERT_TRUE(store->write({Op::put_message(Db::messages, kQueue, i, m)}));
      commits = i;
    }
    write_file(dir.sub("commits"), std::to_string(commits));
    ready();
    store.release();
  });
  commits = std::stoull(read_file(dir.sub("commits")));
  auto store = open_store(dir.path(), Durability::fsync, small);
  ASSERT_TRUE(store) << "replay must grow the map as the crashed run did";
  ReadView view(*store);
  for (uint64_t i = 1; i <= commits; ++i) {
    auto key = message_key(kQueue, i);
    ASSERT_TRUE(view.get(Db::messages, {key.data(), key.size()})) << "message " << i << " of " << commits;
  }
}

}  // namespace
}  // namespace warren::storage
