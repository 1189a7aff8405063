// The op interpreter: applies a batch of ops to one LMDB write transaction, one function per
// kind of op. What an op changes besides its own record — its queue's counters, the timers
// in the schedule database, the trim of a dedup window — changes in the same transaction.
// It knows nothing of commits, journals or retries: storage/store.cpp decides those.
#pragma once

#include <lmdb.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "storage/records.h"
#include "storage/store.h"

namespace warren::storage {

class OpApplier {
 public:
  OpApplier(MDB_txn* txn, const MDB_dbi* dbis) : txn_(txn), dbis_(dbis) {}

  // Applies `subset` of `ops`, then the counters and trims they imply. Returns 0 or the
  // LMDB error that stopped it (the caller aborts the transaction).
  int apply(const std::vector<Op>& ops, Subset subset);
  // Whether anything was written: a transaction that writes nothing gets no LMDB id.
  bool changed() const { return changed_; }
  // What failed, for the error message.
  std::string_view failed_step() const { return step_; }

 private:
  struct StatsDelta {
    int64_t count = 0;
    int64_t bytes = 0;
    std::optional<uint64_t> mark;
    bool drop = false;
  };
  // A queue's dedup window within this transaction: appended per op, trimmed once.
  struct WindowState {
    bool loaded = false;
    uint64_t next_order = 0, entries = 0, now = 0, max_entries = 0, ttl = 0;
  };

  int apply_one(const Op& op);
  int put(const Op& op);
  int del(const Op& op);
  int put_message(const Op& op);
  int replace_message(const Op& op);
  int del_message(const Op& op);
  int del_message_range(const Op& op);
  int drop_queue(const Op& op);
  int dedup_insert(const Op& op);
  int set_delivered_mark(const Op& op);
  int trim_windows();
  int write_stats();

  MDB_dbi dbi(Db db) const { return dbis_[int(db)]; }
  int put_value(Db db, std::string_view key, std::string_view value);
  int del_value(Db db, std::string_view key);  // absent is fine
  // Erases every entry with from <= key < to, calling before_erase(key, value) first.
  template <class F>
  int erase_range(Db db, std::string_view from, std::string_view to, F&& before_erase);
  int put_record(const Op& op);
  int schedule(const Op& op);
  int unschedule(uint64_t queue_id, uint64_t seq, const RecordTimers& timers);
  // A stored message leaves: its timers go and, in the messages db, its counters drop.
  int message_removed(Db db, uint64_t queue_id, uint64_t seq, std::string_view record, bool counted);
  int trim_window(uint64_t queue_id, WindowState& w);

  MDB_txn* txn_;
  const MDB_dbi* dbis_;
  bool changed_ = false;
  std::string_view step_;
  std::unordered_map<uint64_t, StatsDelta> stats_;
  std::unordered_map<uint64_t, WindowState> windows_;
};

}  // namespace warren::storage
