// The LMDB store: one environment per data directory, with a named database per kind of
// record. The writer thread owns every write transaction (storage/writer.h); the event
// loop reads through short ReadViews. Nothing here knows about AMQP.
//
// The parts: storage/op_apply.cpp applies ops to a transaction; storage/store.cpp opens,
// recovers, commits, checkpoints and recovers in place after a failure; read_view.cpp
// reads. Every system call on the store's own files goes through storage/file_io.h.
#pragma once

#include <lmdb.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "storage/file_io.h"
#include "storage/journal.h"
#include "storage/records.h"
#include "storage/store_stats.h"
#include "warren/options.h"

namespace warren::storage {

enum class Db : uint8_t {
  meta,
  exchanges,
  queues,
  bindings,
  queue_stats,
  messages,
  transient,
  schedule,  // timed events: expiries and delayed retries (storage/keys.h)
  keys,      // deduplication windows and idempotency keys (storage/keys.h)
};
inline constexpr int kDbCount = 9;
// The databases' names in the LMDB file.
inline constexpr std::string_view kDbNames[kDbCount] = {"meta",        "exchanges", "queues",
                                                        "bindings",    "queue_stats", "messages",
                                                        "transient",   "schedule",  "keys"};
inline std::string_view db_name(Db db) { return kDbNames[int(db)]; }
inline std::optional<Db> db_named(std::string_view name) {
  for (int i = 0; i < kDbCount; ++i)
    if (kDbNames[i] == name) return Db(i);
  return std::nullopt;
}

struct CommitInfo {
  size_t ops = 0;
  size_t message_puts = 0;
};

// The seam through which tests make the disk misbehave. The default does nothing.
class FaultInjector {
 public:
  virtual ~FaultInjector() = default;
  // Called just before a write transaction commits. A failure aborts the transaction, as a
  // failed write of LMDB's pages would: nothing of it is stored.
  virtual Status before_commit(const CommitInfo&) { return {}; }
  // Called before the map grows; a failure stands for a disk with no room left.
  virtual Status before_grow(uint64_t /*new_size*/) { return {}; }
  // Called before each system call on the store's own files (storage/file_io.h).
  virtual IoFault on_io(IoPoint /*point*/, size_t /*bytes*/) { return {}; }
};

// Which ops of a batch a transaction applies: Store::write may commit a batch in parts
// (the rest without its new messages when the store is full, then the messages alone).
enum class Subset : uint8_t { all, without_messages, only_messages };

struct StoreOptions {
  std::string path;
  Durability durability = Durability::fsync;
  // Damage that would lose commits (a damaged journal; LMDB ahead of it) refuses the store
  // unless this is set: then it opens as LMDB holds it, and says what was lost.
  bool accept_data_loss = false;
  uint64_t initial_map_size = uint64_t{64} << 20;
  uint64_t max_map_size = uint64_t{1} << 40;
  std::shared_ptr<FaultInjector> faults;
};

class Store;

// One write operation. The writer applies a batch of them in one transaction.
struct Op {
  enum class Kind : uint8_t {
    put,                 // db[key] = value
    del,                 // erase db[key]
    put_message,         // db(queue_id, seq) = message
    replace_message,     // db(queue_id, seq) = message, if it is still there
    del_message,         // erase db(queue_id, seq)
    del_message_range,   // erase db(queue_id, seq .. seq_end-1)
    set_delivered_mark,  // queue_stats(queue_id).delivered_mark = seq
    drop_queue,          // erase the queue's messages (both dbs), stats and window
    dedup_insert,        // add `key` (a digest) to the queue's window, then trim it
  };
  Kind kind = Kind::put;
  Db db = Db::meta;
  std::string key;
  std::string value;
  uint64_t queue_id = 0;
  uint64_t seq = 0;
  uint64_t seq_end = 0;
  uint64_t bytes = 0;
  std::shared_ptr<const MessageData> message;

  static Op put(Db db, std::string key, std::string value);
  static Op del(Db db, std::string key);
  static Op put_message(Db db, uint64_t queue_id, uint64_t seq,
                        std::shared_ptr<const MessageData> message);
  static Op del_message(Db db, uint64_t queue_id, uint64_t seq);
  static Op del_message_range(Db db, uint64_t queue_id, uint64_t from, uint64_t to);
  static Op set_delivered_mark(uint64_t queue_id, uint64_t mark);
  static Op drop_queue(uint64_t queue_id);
  static Op replace_message(Db db, uint64_t queue_id, uint64_t seq,
                            std::shared_ptr<const MessageData> message);
  // `order` numbers the queue's inserts (the caller counts them, so it can tell which keys
  // are still in the window before they commit). The window keeps at most `max_entries` keys, none inserted before now_ms - ttl_ms
  // (ttl_ms 0: no age limit).
  static Op dedup_insert(uint64_t queue_id, std::string_view digest, uint64_t order,
                         uint64_t now_ms, uint64_t max_entries, uint64_t ttl_ms);
};

// A read-only snapshot, to be kept briefly: a long-lived reader pins old pages. Views
// returned by its methods are valid until the ReadView ends.
// Lock order: a thread may hold a ReadView (the store's resize lock, shared) and then
// submit to the writer, but must never wait for a commit while it holds one: the writer may
// need that lock exclusively to grow the map or to recover. views_open_here() lets callers
// check it.
class ReadView {
 public:
  static int views_open_here();
  explicit ReadView(Store& store);
  ~ReadView();
  ReadView(const ReadView&) = delete;
  ReadView& operator=(const ReadView&) = delete;

  using Entry = std::pair<std::string_view, std::string_view>;
  std::optional<std::string_view> get(Db db, std::string_view key);
  // The first entry with from <= key < to.
  std::optional<Entry> seek(Db db, std::string_view from, std::string_view to);
  // The last entry with from <= key < to.
  std::optional<Entry> last(Db db, std::string_view from, std::string_view to);
  // Calls fn for each entry with from <= key < to, in order, while it returns true.
  void scan(Db db, std::string_view from, std::string_view to,
            const std::function<bool(std::string_view, std::string_view)>& fn);
  void for_each(Db db, const std::function<void(std::string_view, std::string_view)>& fn);
  Status status() const { return status_; }

 private:
  Store& store_;
  std::shared_lock<std::shared_mutex> resize_guard_;
  MDB_txn* txn_ = nullptr;
  bool cached_ = false;
  Status status_;
};

class Store {
 public:
  // Opens (creating if needed) the store, checks the schema version and empties the
  // transient database. Fails if another process holds the directory.
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);
  ~Store();

  // Applies ops in one transaction and commits it; in Durability::fsync it is on stable
  // storage when this returns (storage/journal.h), or, if it is not, it is undone.
  // Grows the map when it fills. If the map cannot grow, or the disk is full, the ops are
  // applied again without their message puts (which may borrow a reserve beyond the cap,
  // so that acks can always free space), then the puts are tried once more on their own;
  // if they still do not fit the result is a no_space Status: the puts failed, everything
  // else was stored. After a failure that leaves LMDB unusable (a failed meta write, a
  // commit that could not be made durable) the store recovers in place, from its journal.
  Status write(const std::vector<Op>& ops);

  uint64_t map_size() const { return map_size_.load(); }
  // Counts and latencies for metrics (any thread).
  const StoreStats& stats() const { return stats_; }
  // Bytes of the map in use (pages up to the last one written), and the most it may reach.
  uint64_t map_used() const { return map_used_.load(std::memory_order_relaxed); }
  uint64_t map_limit() const { return options_.max_map_size; }
  MDB_dbi dbi(Db db) const { return dbis_[int(db)]; }

 private:
  friend class ReadView;
  explicit Store(StoreOptions options);

  // --- opening and recovery ---------------------------------------------------------
  Status open_env();
  // A new store is built and synced in a staging directory, then moved into place: a
  // crash at any point leaves no store (built again) or a complete one.
  Status create_store();
  Status open_lmdb(uint64_t map_size);
  Status open_journal();
  Status restore_checkpoint();
  Status drop_journal();
  bool at_checkpoint();
  std::string journal_path() const { return path_ + "/journal"; }
  std::string data_path() const { return path_ + "/data.mdb"; }
  Status open_dbis(unsigned flags);
  Status replay(const std::vector<Journal::Record>& records);
  Status prepare_schema();
  // Undoes whatever LMDB holds beyond the journal (a commit that could not be made
  // durable, or pages a failed sync may have dropped) and rewrites the journal's commits
  // onto the checkpoint's snapshot, without closing the store. In nosync mode, reopens LMDB.
  Status recover_in_place(std::string_view why);
  void close_lmdb();

  // --- writing ----------------------------------------------------------------------
  // *map_full: LMDB's map is full (growing it may help; a full disk is no_space without it).
  Status try_write(const std::vector<Op>& ops, Subset subset, bool* map_full);
  // Commits txn, which applied `subset` of ops; in fsync mode makes it durable first.
  Status commit(MDB_txn* txn, bool changed, const std::vector<Op>& ops, Subset subset, bool* map_full);
  Status commit_journaled(MDB_txn* txn, const std::vector<Op>& ops, Subset subset, bool* map_full);
  bool checkpoint_due() const;
  // Syncs LMDB and starts a new journal generation from its state.
  Status checkpoint();
  Status grow_map();
  Status set_map_size(uint64_t size);
  Status write_without_messages(const std::vector<Op>& ops);
  Status write_with_retries(const std::vector<Op>& ops);

  // --- disk space -------------------------------------------------------------------
  // LMDB's data file is allocated on the disk ahead of use, with a reserve for acks: a full
  // file system then shows up as a cap on the map (MDB_MAP_FULL), which the writer handles
  // as it handles max_map_size, instead of as failed writes halfway through a commit.
  void ensure_allocated();
  uint64_t used_bytes() const;
  uint64_t disk_reserve() const;
  uint64_t map_cap() const { return std::min(options_.max_map_size, disk_cap_); }

  StoreOptions options_;
  FileIo io_;
  std::string path_;
  bool remove_on_close_ = false;
  int lock_fd_ = -1;
  MDB_env* env_ = nullptr;
  MDB_dbi dbis_[kDbCount] = {};
  std::atomic<uint64_t> map_size_{0};
  std::atomic<uint64_t> map_used_{0};
  StoreStats stats_;
  // Readers hold it shared for the life of a ReadView; growing the map or reopening LMDB
  // takes it exclusively, as LMDB requires that no transaction is active then.
  std::shared_mutex resize_mutex_;
  MDB_txn* cached_read_txn_ = nullptr;
  std::atomic<bool> cached_read_busy_{false};
  // Durability::fsync: the journal, and a read transaction holding the snapshot of its
  // last checkpoint so that LMDB does not reuse that snapshot's pages.
  std::unique_ptr<Journal> journal_;
  MDB_txn* checkpoint_pin_ = nullptr;
  uint32_t page_size_ = 0;
  bool restored_checkpoint_ = false;  // LMDB was set back to the journal's checkpoint
  uint32_t commits_since_checkpoint_ = 0;
  uint64_t last_page_at_checkpoint_ = 0;
  // A checkpoint failed: pages LMDB wrote since the last good one may not be on the disk
  // even if a later sync succeeds, so the next checkpoint rewrites them first.
  bool rewrite_before_checkpoint_ = false;
  Status checkpoint_failure_;  // why the last checkpoint failed, while rewrite_before_checkpoint_
  bool journal_failing_ = false;  // the last append failed (logged once, not per commit)
  Status broken_;  // LMDB is closed after a failed recovery; the next write retries it
  uint64_t allocated_ = 0;          // bytes of data.mdb backed by disk blocks
  uint64_t disk_cap_ = UINT64_MAX;  // while the disk is full: where new pages must stop
  bool allocation_unsupported_ = false;
  std::chrono::steady_clock::time_point next_allocation_try_{};
};

Status mdb_status(int rc, std::string_view what);

}  // namespace warren::storage
