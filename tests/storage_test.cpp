#include <gtest/gtest.h>
#include <lmdb.h>

#include <atomic>
#include <thread>

#include "storage/keys.h"
#include "storage/records.h"
#include "storage/store.h"
#include "storage/writer.h"
#include "test_util.h"

namespace warren::storage {
namespace {

using warren::testing::TempDir;

// Built in one initialisation: g++ 12 at -O3 reports a false -Wrestrict overlap
// (GCC bug 105329) when a string literal is assigned to a member of a fresh object.
std::shared_ptr<const MessageData> message(size_t body_size, bool persistent = true) {
  return std::make_shared<const MessageData>(MessageData{
      .flags = uint8_t(persistent ? MessageData::kPersistent : 0),
      .exchange = "x",
      .routing_key = "rk",
      .properties = std::string("\x10\x00\x02", 3),
      .body = std::string(body_size, 'b'),
  });
}

std::unique_ptr<Store> open_store(const std::string& dir, StoreOptions o = {}) {
  o.path = dir;
  o.durability = Durability::nosync;
  auto s = Store::open(o);
  EXPECT_TRUE(s.ok()) << s.status().text();
  return s.ok() ? std::move(s.value()) : nullptr;
}

size_t count_entries(Store& store, Db db, std::string_view from, std::string_view to) {
  ReadView view(store);
  size_t n = 0;
  view.scan(db, from, to, [&](std::string_view, std::string_view) {
    ++n;
    return true;
  });
  return n;
}

size_t count_messages(Store& store, Db db, uint64_t queue_id) {
  auto lo = message_key(queue_id, 0), hi = message_key(queue_id, UINT64_MAX);
  return count_entries(store, db, {lo.data(), lo.size()}, {hi.data(), hi.size()});
}

QueueStats stats(Store& store, uint64_t queue_id) {
  ReadView view(store);
  auto v = view.get(Db::queue_stats, queue_id_key(queue_id));
  return v ? decode_stats(*v).value_or(QueueStats{}) : QueueStats{};
}

TEST(Records, RoundTrip) {
  QueueRecord q{7, "/", "tasks", true, "args"};
  auto q2 = decode_queue(encode(q));
  ASSERT_TRUE(q2);
  EXPECT_EQ(q2->id, 7u);
  EXPECT_EQ(q2->name, "tasks");
  EXPECT_TRUE(q2->auto_delete);
  ExchangeRecord x{"/", "logs", "topic", false, true, ""};
  auto x2 = decode_exchange(encode(x));
  ASSERT_TRUE(x2);
  EXPECT_EQ(x2->type, "topic");
  EXPECT_TRUE(x2->internal);
  BindingRecord b{"/", "logs", true, "tasks", "a.*", ""};
  auto b2 = decode_binding(encode(b));
  ASSERT_TRUE(b2);
  EXPECT_EQ(b2->routing_key, "a.*");
  EXPECT_EQ(binding_key(b).size(), 16u);
  BindingRecord other = b;
  other.routing_key = "a.#";
  EXPECT_NE(binding_key(b), binding_key(other));
  auto m = message(10);
  std::string bytes(encoded_size(*m), '\0');
  encode_into(*m, bytes.data());
  auto m2 = decode_message(bytes);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->body, m->body);
  EXPECT_EQ(m2->properties, m->properties);
  EXPECT_TRUE(m2->persistent());
}

TEST(Records, DecodersRefuseGarbage) {
  auto m = message(10);
  std::string bytes(encoded_size(*m), '\0');
  encode_into(*m, bytes.data());
  EXPECT_FALSE(decode_message(bytes.substr(0, 5)));
  EXPECT_FALSE(decode_queue("\x01\x02"));
  EXPECT_FALSE(decode_stats(std::string(30, '\xff')));
  EXPECT_FALSE(decode_exchange(""));
}

TEST(Keys, SortNumerically) {
  auto a = message_key(1, 255), b = message_key(1, 256), c = message_key(2, 0);
  EXPECT_LT(std::string(a.data(), 16), std::string(b.data(), 16));
  EXPECT_LT(std::string(b.data(), 16), std::string(c.data(), 16));
}

TEST(Store, KeepsDataAcrossReopenAndDropsTransient) {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    ASSERT_TRUE(store->write({Op::put_message(Db::messages, 1, 1, message(10)),
                              Op::put_message(Db::transient, 1, 2, message(10, false))}));
    EXPECT_EQ(count_messages(*store, Db::transient, 1), 1u);
  }
  auto store = open_store(dir.path());
  EXPECT_EQ(count_messages(*store, Db::messages, 1), 1u);
  EXPECT_EQ(count_messages(*store, Db::transient, 1), 0u);
  EXPECT_EQ(stats(*store, 1).count, 1u);
  EXPECT_EQ(stats(*store, 1).bytes, 10u);
}

TEST(Store, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir dir;
  auto first = open_store(dir.path());
  StoreOptions o;
  o.path = dir.path();
  auto second = Store::open(o);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().text().find("in use by another process"), std::string::npos);
}

TEST(Store, RefusesAnotherSchemaVersion) {
  TempDir dir;
  open_store(dir.path()).reset();
  // Rewrite the version with LMDB itself, as a future release would have left it.
  MDB_env* env;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 10);
  ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0644), 0);
  MDB_txn* txn;
  MDB_dbi dbi;
  mdb_txn_begin(env, nullptr, 0, &txn);
  mdb_dbi_open(txn, "meta", 0, &dbi);
  MDB_val k{14, const_cast<char*>("schema_version")}, v{4, const_cast<char*>("\0\0\0\x09")};
  mdb_put(txn, dbi, &k, &v, 0);
  mdb_txn_commit(txn);
  mdb_env_close(env);
  StoreOptions o;
  o.path = dir.path();
  auto reopened = Store::open(o);
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().storage_fault(), StorageFault::corruption);
  EXPECT_NE(reopened.status().text().find("schema version 9"), std::string::npos);
}

TEST(Store, CountersFollowPutsDeletesAndRanges) {
  TempDir dir;
  auto store = open_store(dir.path());
  std::vector<Op> ops;
  for (uint64_t seq = 1; seq <= 10; ++seq)
    ops.push_back(Op::put_message(Db::messages, 3, seq, message(100)));
  ASSERT_TRUE(store->write(ops));
  ASSERT_TRUE(store->write({Op::del_message(Db::messages, 3, 1),
                            Op::del_message(Db::messages, 3, 1),  // twice: counted once
                            Op::del_message_range(Db::messages, 3, 5, 8)}));
  EXPECT_EQ(count_messages(*store, Db::messages, 3), 6u);
  EXPECT_EQ(stats(*store, 3).count, 6u);
  EXPECT_EQ(stats(*store, 3).bytes, 600u);
  ASSERT_TRUE(store->write({Op::drop_queue(3)}));
  EXPECT_EQ(count_messages(*store, Db::messages, 3), 0u);
  ReadView view(*store);
  EXPECT_FALSE(view.get(Db::queue_stats, queue_id_key(3)));
}

TEST(Store, MapGrowsWhenItFills) {
  TempDir dir;
  StoreOptions o;
  o.initial_map_size = 1 << 20;
  o.max_map_size = 64 << 20;
  auto store = open_store(dir.path(), o);
  uint64_t before = store->map_size();
  std::vector<Op> ops;
  for (uint64_t seq = 1; seq <= 800; ++seq)
    ops.push_back(Op::put_message(Db::messages, 1, seq, message(8000)));
  ASSERT_TRUE(store->write(ops));
  EXPECT_GT(store->map_size(), before);
  EXPECT_EQ(count_messages(*store, Db::messages, 1), 800u);
}

TEST(Store, AtTheCapPutsFailButDeletesLand) {
  TempDir dir;
  StoreOptions o;
  o.initial_map_size = 1 << 20;
  o.max_map_size = 2 << 20;
  auto store = open_store(dir.path(), o);
  uint64_t seq = 1;
  Status s;
  while (s.ok()) {
    std::vector<Op> ops;
    for (int i = 0; i < 20; ++i, ++seq)
      ops.push_back(Op::put_message(Db::messages, 1, seq, message(4000)));
    s = store->write(ops);
  }
  EXPECT_EQ(s.storage_fault(), StorageFault::no_space);
  EXPECT_EQ(s.code(), ReplyCode::resource_error);
  size_t stored = count_messages(*store, Db::messages, 1);
  ASSERT_GT(stored, 0u);
  // A full batch of acks and new puts: the acks are kept, the puts refused.
  Status mixed = store->write({Op::del_message(Db::messages, 1, 1),
                               Op::put_message(Db::messages, 1, seq + 1, message(900000))});
  EXPECT_EQ(mixed.storage_fault(), StorageFault::no_space);
  EXPECT_EQ(count_messages(*store, Db::messages, 1), stored - 1);
  EXPECT_EQ(stats(*store, 1).count, stored - 1);
}

TEST(Store, AStoreFullToItsCapCanStillFreeItself) {
  TempDir dir;
  StoreOptions o;
  o.initial_map_size = 1 << 20;
  o.max_map_size = 1 << 20;
  auto store = open_store(dir.path(), o);
  uint64_t seq = 1;
  for (Status s; s.ok(); ++seq)
    s = store->write({Op::put_message(Db::messages, 1, seq, message(3000))});
  size_t stored = count_messages(*store, Db::messages, 1);
  ASSERT_GT(stored, 100u);
  // Deleting every other message dirties every leaf: more pages than the full map has.
  std::vector<Op> acks;
  for (uint64_t s = 1; s < seq; s += 2) acks.push_back(Op::del_message(Db::messages, 1, s));
  EXPECT_TRUE(store->write(acks));
  EXPECT_EQ(count_messages(*store, Db::messages, 1), stored / 2);
  // The space is reusable: new messages fit again, and the map did not stay enlarged.
  EXPECT_TRUE(store->write({Op::put_message(Db::messages, 1, seq, message(3000))}));
  EXPECT_LE(store->map_size(), o.max_map_size + (o.max_map_size / 16 + (1 << 20)));
}

class FailingCommits : public FaultInjector {
 public:
  Status before_commit(const CommitInfo&) override {
    if (fail_next.exchange(false))
      return Status::storage(StorageFault::io_error, "injected fsync failure");
    return {};
  }
  std::atomic<bool> fail_next{false};
};

TEST(Store, AFailedCommitStoresNothing) {
  TempDir dir;
  auto faults = std::make_shared<FailingCommits>();
  StoreOptions o;
  o.faults = faults;
  auto store = open_store(dir.path(), o);
  ASSERT_TRUE(store->write({Op::put_message(Db::messages, 1, 1, message(10))}));
  faults->fail_next = true;
  Status s = store->write(
      {Op::put_message(Db::messages, 1, 2, message(10)), Op::del_message(Db::messages, 1, 1)});
  EXPECT_EQ(s.storage_fault(), StorageFault::io_error);
  EXPECT_EQ(count_messages(*store, Db::messages, 1), 1u);
  EXPECT_EQ(stats(*store, 1).count, 1u);
  ASSERT_TRUE(store->write({Op::put_message(Db::messages, 1, 3, message(10))}));
  EXPECT_EQ(count_messages(*store, Db::messages, 1), 2u);
}

TEST(Writer, ConcurrentSubmittersShareCommits) {
  TempDir dir;
  auto store = open_store(dir.path());
  std::atomic<int> batches{0};
  constexpr int kThreads = 4, kPerThread = 500;
  {
    Writer writer(*store, [&] { ++batches; });
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i)
          writer.submit({Op::put_message(Db::messages, 1, uint64_t(t * kPerThread + i + 1), message(64))});
      });
    for (auto& t : threads) t.join();
    bool timed_out = false;
    EXPECT_TRUE(writer.wait_for(writer.last_submitted(),
                                std::chrono::steady_clock::now() + std::chrono::seconds(30),
                                &timed_out));
    EXPECT_FALSE(timed_out);
    EXPECT_TRUE(writer.outcomes_after(0).failed.empty());
  }
  EXPECT_EQ(count_messages(*store, Db::messages, 1), size_t(kThreads * kPerThread));
  EXPECT_LT(batches.load(), kThreads * kPerThread);
}

TEST(Writer, ReportsEachBatchOutcome) {
  TempDir dir;
  auto faults = std::make_shared<FailingCommits>();
  StoreOptions o;
  o.faults = faults;
  auto store = open_store(dir.path(), o);
  Writer writer(*store, nullptr);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  bool timed_out = false;
  EXPECT_EQ(writer.next_id(), 1u);
  uint64_t ok_commit = writer.submit({Op::put_message(Db::messages, 1, 1, message(5))});
  EXPECT_EQ(ok_commit, 1u);
  EXPECT_EQ(writer.submit({}), ok_commit) << "an empty submit takes no id";
  EXPECT_TRUE(writer.wait_for(ok_commit, deadline, &timed_out));
  faults->fail_next = true;
  uint64_t bad_commit = writer.submit({Op::put_message(Db::messages, 1, 2, message(5))});
  Status s = writer.wait_for(bad_commit, deadline, &timed_out);
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(s.storage_fault(), StorageFault::io_error);
  EXPECT_EQ(writer.backlog_bytes(), 0u);
  auto outcomes = writer.outcomes_after(0);
  EXPECT_EQ(outcomes.through, bad_commit);
  EXPECT_FALSE(outcomes.failed_commit(ok_commit));
  EXPECT_TRUE(outcomes.failed_commit(bad_commit));
  EXPECT_TRUE(writer.outcome(ok_commit));
  EXPECT_FALSE(writer.outcome(bad_commit));
}

size_t schedule_entries(Store& store) {
  return count_entries(store, Db::schedule, std::string(1, '\0'), std::string(1, '\x7f'));
}

TEST(Records, OptionalFieldsRoundTripAndPeek) {
  MessageData m = *message(10);
  m.expires_at = 1'700'000'000'123;
  m.delivery_count = 3;
  m.ready_at = 1'700'000'000'456;
  std::string bytes(encoded_size(m), '\0');
  encode_into(m, bytes.data());
  auto back = decode_message(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->expires_at, m.expires_at);
  EXPECT_EQ(back->delivery_count, 3u);
  EXPECT_EQ(back->ready_at, m.ready_at);
  EXPECT_TRUE(back->persistent());
  auto t = peek_timers(bytes);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->expires_at, m.expires_at);
  EXPECT_EQ(t->body_bytes, 10u);
}

TEST(Store, ScheduleEntriesLiveAndDieWithTheirMessages) {
  TempDir dir;
  auto store = open_store(dir.path());
  auto timed = [](uint64_t expires_at, uint64_t ready_at) {
    auto m = std::make_shared<MessageData>(*message(5));
    m->expires_at = expires_at;
    m->ready_at = ready_at;
    return std::shared_ptr<const MessageData>(m);
  };
  ASSERT_TRUE(store->write({Op::put_message(Db::messages, 1, 1, timed(100, 0)),
                            Op::put_message(Db::messages, 1, 2, timed(200, 150)),
                            Op::put_message(Db::messages, 1, 3, timed(0, 0)),
                            Op::put_message(Db::messages, 2, 1, timed(300, 0))}));
  EXPECT_EQ(schedule_entries(*store), 4u);
  {
    ReadView view(*store);
    auto first = view.seek(Db::schedule, std::string(1, 'E'), std::string(1, 'F'));
    ASSERT_TRUE(first);
    auto e = parse_schedule_key(first->first);
    EXPECT_EQ(e.time, 100u);
    EXPECT_EQ(e.seq, 1u);
    EXPECT_EQ(first->second.size(), 9u);  // db octet + body bytes
  }
  ASSERT_TRUE(store->write({Op::del_message(Db::messages, 1, 1)}));
  EXPECT_EQ(schedule_entries(*store), 3u);
  // A rewrite that clears the retry time takes its entry away; the expiry entry goes with
  // the message.
  ASSERT_TRUE(store->write({Op::replace_message(Db::messages, 1, 2, timed(200, 0))}));
  ASSERT_TRUE(store->write({Op::del_message_range(Db::messages, 1, 0, 10)}));
  EXPECT_EQ(schedule_entries(*store), 1u);
  ASSERT_TRUE(store->write({Op::drop_queue(2)}));
  EXPECT_EQ(schedule_entries(*store), 0u);
  // Replacing a message that is gone does not bring it back.
  ASSERT_TRUE(store->write({Op::replace_message(Db::messages, 1, 2, timed(0, 0))}));
  EXPECT_EQ(count_messages(*store, Db::messages, 1), 0u);
}

TEST(Store, DedupWindowNeverGrowsPastItsBounds) {
  TempDir dir;
  auto store = open_store(dir.path());
  for (uint64_t i = 0; i < 10; ++i) {
    std::string digest = digest128("key-" + std::to_string(i));
    ASSERT_TRUE(store->write({Op::dedup_insert(7, digest, i, 1000 + i, 3, 0)}));
  }
  auto from = keys_key('O', 7), to = keys_key('O', 8);
  EXPECT_EQ(count_entries(*store, Db::keys, from, to), 3u);
  {
    ReadView view(*store);
    auto oldest = view.seek(Db::keys, from, to);
    ASSERT_TRUE(oldest);
    EXPECT_EQ(get_be64(oldest->first.data() + 9), 7u);  // orders 7, 8, 9 are left
  }
  // By age: one insert at time 5000 with a 1000 ms window leaves only itself.
  ASSERT_TRUE(store->write({Op::dedup_insert(7, digest128("late"), 10, 5000, 3, 1000)}));
  EXPECT_EQ(count_entries(*store, Db::keys, from, to), 1u);
  ASSERT_TRUE(store->write({Op::drop_queue(7)}));
  EXPECT_EQ(count_entries(*store, Db::keys, std::string(1, '\0'), std::string(1, '\x7f')), 0u);
}

}  // namespace
}  // namespace warren::storage
