#include "storage/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include "storage/journal.h"
#include "storage/keys.h"
#include "storage/lmdb_meta.h"
#include "storage/op_codec.h"

namespace warren::storage {
namespace fs = std::filesystem;

namespace {

constexpr const char* kDbNames[kDbCount] = {"meta",     "exchanges", "queues",
                                            "bindings", "queue_stats", "messages",
                                            "transient", "schedule", "keys"};
constexpr std::string_view kSchemaKey = "schema_version";
constexpr std::string_view kLastFullKey = "store_was_full";
// Checkpoints come at least this often: between them LMDB cannot reuse the pages the
// commits free, so the file grows by what they write.
constexpr uint32_t kMaxCommitsPerCheckpoint = 256;
constexpr uint64_t kMaxBytesPerCheckpoint = uint64_t{16} << 20;

MDB_val val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

std::string make_memory_dir() {
  std::string base = fs::exists("/dev/shm") && access("/dev/shm", W_OK) == 0
                         ? "/dev/shm"
                         : fs::temp_directory_path().string();
  std::string tmpl = base + "/warren-mem-XXXXXX";
  if (!mkdtemp(tmpl.data())) return {};
  return tmpl;
}

// Erases every entry with from <= key < to, calling before_erase(key, value) first; a
// non-zero result from it stops with that code.
int erase_range(MDB_txn* txn, MDB_dbi dbi, std::string_view from, std::string_view to,
                const std::function<int(std::string_view, std::string_view)>& before_erase) {
  MDB_cursor* cur;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != MDB_SUCCESS) return rc;
  std::string start(from);
  // Seek afresh after each delete: simple, and ranges are short or rare.
  for (;;) {
    MDB_val k = val(start), v;
    if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) != MDB_SUCCESS || view(k) >= to) break;
    if (before_erase) rc = before_erase(view(k), view(v));
    if (rc == MDB_SUCCESS) rc = mdb_cursor_del(cur, 0);
    if (rc != MDB_SUCCESS) break;
  }
  mdb_cursor_close(cur);
  return rc;
}

int put_value(MDB_txn* txn, MDB_dbi dbi, std::string_view key, std::string_view value) {
  MDB_val k = val(key), v = val(value);
  return mdb_put(txn, dbi, &k, &v, 0);
}

int del_value(MDB_txn* txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = val(key);
  int rc = mdb_del(txn, dbi, &k, nullptr);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

struct StatsDelta {
  int64_t count = 0;
  int64_t bytes = 0;
  std::optional<uint64_t> mark;
  bool drop = false;
};

}  // namespace

Status mdb_status(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return {};
  auto detail = fmt::format("{}: {}", what, mdb_strerror(rc));
  switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
      return Status::storage(StorageFault::no_space, detail);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
      return Status::storage(StorageFault::corruption, detail);
    default:
      return Status::storage(StorageFault::io_error, detail);
  }
}

Op Op::put(Db db, std::string key, std::string value) {
  Op op;
  op.kind = Kind::put;
  op.db = db;
  op.key = std::move(key);
  op.value = std::move(value);
  return op;
}
Op Op::del(Db db, std::string key) {
  Op op;
  op.kind = Kind::del;
  op.db = db;
  op.key = std::move(key);
  return op;
}
Op Op::put_message(Db db, uint64_t queue_id, uint64_t seq,
                   std::shared_ptr<const MessageData> message) {
  Op op;
  op.kind = Kind::put_message;
  op.db = db;
  op.queue_id = queue_id;
  op.seq = seq;
  op.bytes = message->body.size();
  op.message = std::move(message);
  return op;
}
Op Op::del_message(Db db, uint64_t queue_id, uint64_t seq) {
  Op op;
  op.kind = Kind::del_message;
  op.db = db;
  op.queue_id = queue_id;
  op.seq = seq;
  return op;
}
Op Op::del_message_range(Db db, uint64_t queue_id, uint64_t from, uint64_t to) {
  Op op;
  op.kind = Kind::del_message_range;
  op.db = db;
  op.queue_id = queue_id;
  op.seq = from;
  op.seq_end = to;
  return op;
}
Op Op::set_delivered_mark(uint64_t queue_id, uint64_t mark) {
  Op op;
  op.kind = Kind::set_delivered_mark;
  op.db = Db::queue_stats;
  op.queue_id = queue_id;
  op.seq = mark;
  return op;
}
Op Op::replace_message(Db db, uint64_t queue_id, uint64_t seq,
                       std::shared_ptr<const MessageData> message) {
  Op op = put_message(db, queue_id, seq, std::move(message));
  op.kind = Kind::replace_message;
  return op;
}
Op Op::dedup_insert(uint64_t queue_id, std::string_view digest, uint64_t order, uint64_t now_ms,
                    uint64_t max_entries, uint64_t ttl_ms) {
  Op op;
  op.value = be64_string(order);
  op.kind = Kind::dedup_insert;
  op.db = Db::keys;
  op.queue_id = queue_id;
  op.key = std::string(digest);
  op.seq = now_ms;
  op.seq_end = max_entries;
  op.bytes = ttl_ms;
  return op;
}
Op Op::drop_queue(uint64_t queue_id) {
  Op op;
  op.kind = Kind::drop_queue;
  op.db = Db::queue_stats;
  op.queue_id = queue_id;
  return op;
}

// ---- ReadView -------------------------------------------------------------------------

ReadView::ReadView(Store& store) : store_(store), resize_guard_(store.resize_mutex_) {
  bool expected = false;
  if (store_.cached_read_txn_ && store_.cached_read_busy_.compare_exchange_strong(expected, true)) {
    int rc = mdb_txn_renew(store_.cached_read_txn_);
    if (rc == MDB_SUCCESS) {
      txn_ = store_.cached_read_txn_;
      cached_ = true;
      return;
    }
    store_.cached_read_busy_ = false;
  }
  int rc = mdb_txn_begin(store_.env_, nullptr, MDB_RDONLY, &txn_);
  if (rc != MDB_SUCCESS) {
    txn_ = nullptr;
    status_ = mdb_status(rc, "begin read transaction");
  }
}

ReadView::~ReadView() {
  if (!txn_) return;
  if (cached_) {
    mdb_txn_reset(txn_);
    store_.cached_read_busy_ = false;
  } else {
    mdb_txn_abort(txn_);
  }
}

std::optional<std::string_view> ReadView::get(Db db, std::string_view key) {
  if (!txn_) return std::nullopt;
  MDB_val k = val(key), v;
  if (mdb_get(txn_, store_.dbi(db), &k, &v) != MDB_SUCCESS) return std::nullopt;
  return view(v);
}

std::optional<ReadView::Entry> ReadView::seek(Db db, std::string_view from, std::string_view to) {
  if (!txn_) return std::nullopt;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return std::nullopt;
  MDB_val k = val(from), v;
  std::optional<Entry> out;
  if (mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == MDB_SUCCESS && view(k) < to)
    out = Entry{view(k), view(v)};
  mdb_cursor_close(cur);
  return out;
}

std::optional<ReadView::Entry> ReadView::last(Db db, std::string_view from, std::string_view to) {
  if (!txn_) return std::nullopt;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return std::nullopt;
  MDB_val k = val(to), v;
  int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  rc = rc == MDB_SUCCESS ? mdb_cursor_get(cur, &k, &v, MDB_PREV)
                         : mdb_cursor_get(cur, &k, &v, MDB_LAST);
  std::optional<Entry> out;
  if (rc == MDB_SUCCESS && view(k) >= from && view(k) < to) out = Entry{view(k), view(v)};
  mdb_cursor_close(cur);
  return out;
}

void ReadView::scan(Db db, std::string_view from, std::string_view to,
                    const std::function<bool(std::string_view, std::string_view)>& fn) {
  if (!txn_) return;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return;
  MDB_val k = val(from), v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS && view(k) < to;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    if (!fn(view(k), view(v))) break;
  mdb_cursor_close(cur);
}

void ReadView::for_each(Db db, const std::function<void(std::string_view, std::string_view)>& fn) {
  if (!txn_) return;
  MDB_cursor* cur;
  if (mdb_cursor_open(txn_, store_.dbi(db), &cur) != MDB_SUCCESS) return;
  MDB_val k, v;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
    fn(view(k), view(v));
  mdb_cursor_close(cur);
}

// ---- Store ----------------------------------------------------------------------------

Store::Store(StoreOptions options) : options_(std::move(options)) {}

Store::~Store() {
  // A clean close leaves nothing to replay.
  if (journal_ && writable_ && commits_since_checkpoint_ > 0) (void)checkpoint();
  if (checkpoint_pin_) mdb_txn_abort(checkpoint_pin_);
  if (cached_read_txn_) mdb_txn_abort(cached_read_txn_);
  if (env_) mdb_env_close(env_);
  if (lock_fd_ >= 0) close(lock_fd_);
  if (remove_on_close_) {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store(options));
  if (Status s = store->open_env(); !s) return s;
  if (Status s = store->replay_journal(); !s) return s;
  if (Status s = store->prepare_schema(); !s) return s;
  if (store->journal_ && !store->at_checkpoint())
    if (Status s = store->checkpoint(); !s) return s;
  if (store->journal_ && options.durability != Durability::fsync)
    if (Status s = store->drop_journal(); !s) return s;
  return store;
}

Status Store::open_env() {
  if (options_.durability == Durability::in_memory) {
    path_ = make_memory_dir();
    if (path_.empty())
      return Status::storage(StorageFault::io_error, "cannot create a temporary store");
    remove_on_close_ = true;
  } else {
    path_ = options_.path;
    if (path_.empty()) return Status::storage(StorageFault::io_error, "no data directory given");
    std::error_code ec;
    fs::create_directories(path_, ec);
    if (ec)
      return Status::storage(StorageFault::io_error,
                             fmt::format("cannot create {}: {}", path_, ec.message()));
  }
  // LMDB would let a second process write concurrently; the broker's in-memory state
  // assumes it is the only one, so it takes the directory for itself.
  lock_fd_ = ::open((path_ + "/LOCK").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0 || flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return Status::storage(StorageFault::io_error,
                           fmt::format("data directory {} is in use by another process", path_));

  // A journal left by an fsync-mode run is recovered whatever the mode now.
  if (options_.durability == Durability::fsync || fs::exists(journal_path()))
    if (Status s = open_journal(); !s) return s;
  int rc = mdb_env_create(&env_);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_maxdbs(env_, kDbCount + 1);
  uint64_t size = std::min(options_.initial_map_size, options_.max_map_size);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(env_, size);
  // Commits are never synced by LMDB itself: in Durability::fsync the journal makes them
  // durable and checkpoints sync LMDB.
  unsigned flags = MDB_NOTLS | MDB_NOSYNC;
  if (rc == MDB_SUCCESS) rc = mdb_env_open(env_, path_.c_str(), flags, 0644);
  if (rc != MDB_SUCCESS) return mdb_status(rc, fmt::format("open store {}", path_));
  MDB_stat stat;
  mdb_env_stat(env_, &stat);
  page_size_ = stat.ms_psize;
  if (journal_ && (rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &checkpoint_pin_)) != MDB_SUCCESS)
    return mdb_status(rc, "begin checkpoint snapshot");
  // The file may already be larger than the requested initial size.
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  map_size_ = info.me_mapsize;
  rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &cached_read_txn_);
  if (rc == MDB_SUCCESS)
    mdb_txn_reset(cached_read_txn_);
  else
    cached_read_txn_ = nullptr;
  return {};
}

Status Store::open_journal() {
  auto journal = Journal::open(journal_path());
  if (!journal.ok()) return journal.status();
  journal_ = std::move(journal.value());
  const Journal::Checkpoint& checkpoint = journal_->checkpoint();
  std::string data_file = path_ + "/data.mdb";
  if (checkpoint.generation == 0 || !fs::exists(data_file)) {
    (void)journal_->take_pending();  // a store created afresh: nothing to replay onto
    return {};
  }
  // After a power loss, whatever LMDB wrote since the checkpoint may have reached the disk
  // in part. The checkpoint's snapshot is intact (its pages were held): make it current
  // again and replay the journal from there. After a clean close this changes nothing.
  Status restored = restore_lmdb_meta(data_file, checkpoint.page_size, checkpoint.meta);
  restored_checkpoint_ = restored.ok();
  return restored;
}

// Whether LMDB is exactly the journal's checkpoint (a clean close, and an open that wrote
// nothing), so that opening needs no checkpoint of its own.
bool Store::at_checkpoint() {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  if (!restored_checkpoint_ || info.me_last_txnid != journal_->checkpoint().txnid) return false;
  last_page_at_checkpoint_ = info.me_last_pgno;
  return true;
}

Status Store::replay_journal() {
  if (!journal_) return {};
  std::vector<Journal::Record> records = journal_->take_pending();
  if (records.empty()) return {};
  MDB_txn* txn;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  for (int i = 0; i < kDbCount && rc == MDB_SUCCESS; ++i)
    rc = mdb_dbi_open(txn, kDbNames[i], 0, &dbis_[i]);
  if (rc == MDB_SUCCESS) rc = mdb_txn_commit(txn);  // changes nothing: keeps the handles
  else mdb_txn_abort(txn);
  if (rc != MDB_SUCCESS) return mdb_status(rc, "open databases for the journal");
  for (const Journal::Record& record : records) {
    auto batch = decode_ops(record.payload);
    if (!batch)
      return Status::storage(StorageFault::corruption,
                             fmt::format("journal record {} cannot be read", record.txnid));
    for (;;) {
      if ((rc = mdb_txn_begin(env_, nullptr, 0, &txn)) != MDB_SUCCESS)
        return mdb_status(rc, "begin journal replay");
      if (mdb_txn_id(txn) != record.txnid) {
        mdb_txn_abort(txn);
        return Status::storage(
            StorageFault::corruption,
            fmt::format("journal record {} does not follow the store's transaction {}",
                        record.txnid, mdb_txn_id(txn) - 1));
      }
      int op_rc = MDB_SUCCESS;
      Status s = apply(txn, batch->ops, Subset(batch->subset), &op_rc);
      if (s) {
        if ((rc = mdb_txn_commit(txn)) != MDB_SUCCESS) return mdb_status(rc, "replay journal");
        break;
      }
      mdb_txn_abort(txn);
      if (op_rc != MDB_MAP_FULL) return s;
      // It fitted before the crash; the map had grown since the file was last sized.
      if (Status grown = set_map_size(map_size_.load() * 2); !grown) return grown;
    }
  }
  return {};
}

Status Store::commit(MDB_txn* txn, const std::vector<Op>& ops, Subset subset) {
  uint64_t txnid = mdb_txn_id(txn);
  int rc = mdb_txn_commit(txn);
  if (rc != MDB_SUCCESS) return mdb_status(rc, "commit");
  if (!journal_) return {};
  // A transaction that changed nothing (a delete of what is gone) is not a commit to
  // LMDB: it takes no transaction id, and a record under that id would break replay.
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  if (info.me_last_txnid != txnid) return {};
  return make_durable(txnid, ops, subset);
}

Status Store::make_durable(uint64_t txnid, const std::vector<Op>& ops, Subset subset) {
  ++commits_since_checkpoint_;
  if (checkpoint_due()) return checkpoint();
  auto encode = [&](char* out) { encode_ops_into(ops, uint8_t(subset), out); };
  if (journal_->append(txnid, encoded_ops_size(ops), encode)) return {};
  // Too big, no room left in this generation, or the append failed: a checkpoint covers it.
  return checkpoint();
}

bool Store::checkpoint_due() const {
  if (commits_since_checkpoint_ >= kMaxCommitsPerCheckpoint) return true;
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return (uint64_t(info.me_last_pgno) - last_page_at_checkpoint_) * page_size_ >
         kMaxBytesPerCheckpoint;
}

Status Store::checkpoint() {
  int rc = mdb_env_sync(env_, 1);
  if (rc != MDB_SUCCESS) return stop_writing(mdb_status(rc, "sync store"));
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  int fd = -1;
  mdb_env_get_fd(env_, &fd);
  auto meta = read_lmdb_meta(fd, page_size_, info.me_last_txnid);
  if (!meta.ok()) return stop_writing(meta.status());
  if (Status s = journal_->begin_generation(info.me_last_txnid, page_size_, *meta); !s)
    return stop_writing(s);
  // Only now may LMDB reuse the pages of the previous checkpoint's snapshot.
  mdb_txn_reset(checkpoint_pin_);
  if ((rc = mdb_txn_renew(checkpoint_pin_)) != MDB_SUCCESS)
    return stop_writing(mdb_status(rc, "hold checkpoint snapshot"));
  commits_since_checkpoint_ = 0;
  last_page_at_checkpoint_ = info.me_last_pgno;
  return {};
}

// After a checkpoint LMDB holds everything; a journal kept by a mode that does not write
// it would, at a later fsync-mode open, bring back its stale snapshot.
Status Store::drop_journal() {
  mdb_txn_abort(checkpoint_pin_);
  checkpoint_pin_ = nullptr;
  journal_.reset();
  std::error_code ec;
  fs::remove(journal_path(), ec);
  return ec ? Status::storage(StorageFault::io_error,
                              fmt::format("remove {}: {}", journal_path(), ec.message()))
            : Status{};
}

Status Store::stop_writing(Status why) {
  writable_ = Status::storage(
      StorageFault::io_error,
      fmt::format("store stopped writing after a failure to make a commit durable ({}); "
                  "reopen it to recover",
                  why.text()));
  return writable_;
}

Status Store::prepare_schema() {
  MDB_txn* txn;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) return mdb_status(rc, "begin schema transaction");
  for (int i = 0; i < kDbCount && rc == MDB_SUCCESS; ++i)
    rc = mdb_dbi_open(txn, kDbNames[i], MDB_CREATE, &dbis_[i]);
  if (rc != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return mdb_status(rc, "open databases");
  }
  MDB_val k = val(kSchemaKey), v;
  rc = mdb_get(txn, dbis_[int(Db::meta)], &k, &v);
  if (rc == MDB_SUCCESS) {
    uint32_t found = 0;
    for (char c : view(v)) found = (found << 8) | uint8_t(c);
    if (v.mv_size != 4 || found != kSchemaVersion) {
      mdb_txn_abort(txn);
      return Status::storage(
          StorageFault::corruption,
          fmt::format("store {} has schema version {}; this build reads version {}", path_, found,
                      kSchemaVersion));
    }
  } else {
    std::string version(4, '\0');
    for (int i = 0; i < 4; ++i) version[i] = char(kSchemaVersion >> (24 - 8 * i));
    MDB_val nv = val(version);
    rc = mdb_put(txn, dbis_[int(Db::meta)], &k, &nv, 0);
  }
  // Transient messages and the messages of non-durable queues do not outlive the broker.
  // Only when there is something to drop: dropping even an empty database is a commit.
  MDB_stat transient;
  if (rc == MDB_SUCCESS) rc = mdb_stat(txn, dbis_[int(Db::transient)], &transient);
  if (rc == MDB_SUCCESS && transient.ms_entries > 0)
    rc = mdb_drop(txn, dbis_[int(Db::transient)], 0);
  if (rc == MDB_SUCCESS) return mdb_status(mdb_txn_commit(txn), "commit schema");
  mdb_txn_abort(txn);
  return mdb_status(rc, "prepare schema");
}

Status Store::apply(MDB_txn* txn, const std::vector<Op>& ops, Subset subset, int* mdb_rc) {
  const bool skip_message_puts = subset == Subset::without_messages;
  std::unordered_map<uint64_t, StatsDelta> stats;
  std::unordered_map<uint64_t, DedupWindowState> windows;
  int rc = MDB_SUCCESS;
  auto fail = [&](int code, std::string_view what) {
    *mdb_rc = code;
    return mdb_status(code, what);
  };
  for (const Op& op : ops) {
    // A dedup entry stands or falls with its message: a refused message must not leave a
    // key that would make its retry look like a duplicate.
    bool new_message = op.kind == Op::Kind::put_message || op.kind == Op::Kind::dedup_insert;
    if (subset == Subset::only_messages && !new_message) continue;
    MDB_dbi dbi = dbis_[int(op.db)];
    switch (op.kind) {
      case Op::Kind::put: {
        MDB_val k = val(op.key), v = val(op.value);
        rc = mdb_put(txn, dbi, &k, &v, 0);
        break;
      }
      case Op::Kind::del: {
        MDB_val k = val(op.key);
        rc = mdb_del(txn, dbi, &k, nullptr);
        if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
        break;
      }
      case Op::Kind::put_message: {
        if (skip_message_puts) break;
        rc = put_record(txn, op, 0);
        if (rc == MDB_SUCCESS) rc = schedule(txn, op);
        if (rc == MDB_SUCCESS && op.db == Db::messages) {
          stats[op.queue_id].count += 1;
          stats[op.queue_id].bytes += int64_t(op.bytes);
        }
        break;
      }
      case Op::Kind::replace_message: {
        auto key = message_key(op.queue_id, op.seq);
        MDB_val k{key.size(), key.data()}, v;
        if (mdb_get(txn, dbi, &k, &v) != MDB_SUCCESS) break;  // settled meanwhile: stays gone
        // The old record's timers go; the new record's are scheduled afresh.
        rc = unschedule(txn, op.queue_id, op.seq, peek_timers(view(v)).value_or(RecordTimers{}));
        if (rc == MDB_SUCCESS) rc = put_record(txn, op, 0);
        if (rc == MDB_SUCCESS) rc = schedule(txn, op);
        break;
      }
      case Op::Kind::del_message: {
        auto key = message_key(op.queue_id, op.seq);
        auto end = message_key(op.queue_id, op.seq + 1);
        rc = erase_range(txn, dbi, {key.data(), key.size()}, {end.data(), end.size()},
                         [&](std::string_view, std::string_view record) {
                           auto timers = peek_timers(record).value_or(RecordTimers{});
                           if (op.db == Db::messages) {
                             stats[op.queue_id].count -= 1;
                             stats[op.queue_id].bytes -= int64_t(timers.body_bytes);
                           }
                           return unschedule(txn, op.queue_id, op.seq, timers);
                         });
        break;
      }
      case Op::Kind::drop_queue:
      case Op::Kind::del_message_range: {
        bool whole = op.kind == Op::Kind::drop_queue;
        uint64_t from = whole ? 0 : op.seq, to = whole ? UINT64_MAX : op.seq_end;
        auto start = message_key(op.queue_id, from);
        auto end = message_key(op.queue_id, to);
        for (Db d : {Db::messages, Db::transient}) {
          if (!whole && d != op.db) continue;
          rc = erase_range(
              txn, dbis_[int(d)], {start.data(), start.size()}, {end.data(), end.size()},
              [&](std::string_view key, std::string_view record) {
                auto timers = peek_timers(record).value_or(RecordTimers{});
                if (d == Db::messages && !whole) {
                  stats[op.queue_id].count -= 1;
                  stats[op.queue_id].bytes -= int64_t(timers.body_bytes);
                }
                return unschedule(txn, op.queue_id, parse_message_key(key).seq, timers);
              });
          if (rc != MDB_SUCCESS) break;
        }
        if (rc == MDB_SUCCESS && whole) rc = drop_window(txn, op.queue_id);
        if (whole) stats[op.queue_id].drop = true;
        break;
      }
      case Op::Kind::dedup_insert:
        if (!skip_message_puts) rc = dedup_append(txn, op, windows[op.queue_id]);
        break;
      case Op::Kind::set_delivered_mark:
        stats[op.queue_id].mark = op.seq;
        break;
    }
    if (rc != MDB_SUCCESS) return fail(rc, "write");
  }
  for (auto& [queue_id, window] : windows)
    if (int trim_rc = dedup_trim(txn, queue_id, window); trim_rc != MDB_SUCCESS)
      return fail(trim_rc, "trim dedup window");
  for (auto& [queue_id, delta] : stats) {
    auto key = queue_id_key(queue_id);
    MDB_val k = val(key), v;
    if (delta.drop) {
      rc = mdb_del(txn, dbis_[int(Db::queue_stats)], &k, nullptr);
      if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
      if (rc != MDB_SUCCESS) return fail(rc, "drop queue stats");
      continue;
    }
    QueueStats s;
    if (mdb_get(txn, dbis_[int(Db::queue_stats)], &k, &v) == MDB_SUCCESS)
      s = decode_stats(view(v)).value_or(QueueStats{});
    s.count = uint64_t(int64_t(s.count) + delta.count);
    s.bytes = uint64_t(int64_t(s.bytes) + delta.bytes);
    if (delta.mark) s.delivered_mark = *delta.mark;
    auto encoded = encode(s);
    MDB_val nv = val(encoded);
    rc = mdb_put(txn, dbis_[int(Db::queue_stats)], &k, &nv, 0);
    if (rc != MDB_SUCCESS) return fail(rc, "write queue stats");
  }
  if (subset == Subset::without_messages) {
    // Always a real commit, even with nothing else to write: LMDB reuses the pages a commit
    // frees only two commits later, so the retry of the messages needs this one to happen.
    MDB_val k = val(kLastFullKey), v = val(kLastFullKey);
    rc = mdb_put(txn, dbis_[int(Db::meta)], &k, &v, 0);
    if (rc != MDB_SUCCESS) return fail(rc, "write meta");
  }
  return {};
}

int Store::put_record(MDB_txn* txn, const Op& op, unsigned flags) {
  auto key = message_key(op.queue_id, op.seq);
  MDB_val k{key.size(), key.data()}, v{encoded_size(*op.message), nullptr};
  int rc = mdb_put(txn, dbis_[int(op.db)], &k, &v, flags | MDB_RESERVE);
  if (rc == MDB_SUCCESS) encode_into(*op.message, static_cast<char*>(v.mv_data));
  return rc;
}

int Store::schedule(MDB_txn* txn, const Op& op) {
  // The value says where the message is and its body size, so a timer needs no lookup.
  std::string value(1, char(op.db));
  value += be64_string(op.bytes);
  for (auto [kind, time] : {std::pair{Timer::expiry, op.message->expires_at},
                            std::pair{Timer::retry, op.message->ready_at}}) {
    if (!time) continue;
    auto key = schedule_key(kind, time, op.queue_id, op.seq);
    int rc = put_value(txn, dbis_[int(Db::schedule)], {key.data(), key.size()}, value);
    if (rc != MDB_SUCCESS) return rc;
  }
  return MDB_SUCCESS;
}

int Store::unschedule(MDB_txn* txn, uint64_t queue_id, uint64_t seq, const RecordTimers& timers) {
  for (auto [kind, time] : {std::pair{Timer::expiry, timers.expires_at},
                            std::pair{Timer::retry, timers.ready_at}}) {
    if (!time) continue;
    auto key = schedule_key(kind, time, queue_id, seq);
    int rc = del_value(txn, dbis_[int(Db::schedule)], {key.data(), key.size()});
    if (rc != MDB_SUCCESS) return rc;
  }
  return MDB_SUCCESS;
}

int Store::dedup_append(MDB_txn* txn, const Op& op, DedupWindowState& w) {
  MDB_dbi dbi = dbis_[int(Db::keys)];
  if (!w.loaded) {
    auto size_key = keys_key('C', op.queue_id);
    MDB_val k = val(size_key), v;
    if (mdb_get(txn, dbi, &k, &v) == MDB_SUCCESS && v.mv_size == 16) {
      w.next_order = get_be64(static_cast<const char*>(v.mv_data));
      w.entries = get_be64(static_cast<const char*>(v.mv_data) + 8);
    }
    w.loaded = true;
  }
  uint64_t order = op.value.size() == 8 ? get_be64(op.value.data()) : w.next_order;
  w.next_order = std::max(w.next_order, order + 1);
  ++w.entries;
  w.now = op.seq;
  w.max_entries = op.seq_end;
  w.ttl = op.bytes;
  return put_value(txn, dbi, keys_key('O', op.queue_id, be64_string(order)),
                   op.key + be64_string(op.seq));
}

// Trims the window from its head, oldest first: by count, then by age, and records its
// size. Appends at the tail and deletes at the head touch few pages.
int Store::dedup_trim(MDB_txn* txn, uint64_t queue_id, DedupWindowState& w) {
  MDB_dbi dbi = dbis_[int(Db::keys)];
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  auto from = keys_key('O', queue_id), to = keys_key('O', queue_id + 1);
  MDB_val k = val(from), v;
  bool at = rc == MDB_SUCCESS && mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == MDB_SUCCESS;
  while (rc == MDB_SUCCESS && at && view(k) < to && w.entries > 0) {
    uint64_t inserted = v.mv_size == 24 ? get_be64(static_cast<const char*>(v.mv_data) + 16) : 0;
    if (w.entries <= w.max_entries && !(w.ttl && inserted + w.ttl < w.now)) break;
    rc = mdb_cursor_del(cur, 0);
    --w.entries;
    // After a delete the cursor already stands on the next entry.
    at = rc == MDB_SUCCESS && mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT) == MDB_SUCCESS;
  }
  if (cur) mdb_cursor_close(cur);
  if (rc == MDB_SUCCESS)
    rc = put_value(txn, dbi, keys_key('C', queue_id), be64_string(w.next_order) + be64_string(w.entries));
  return rc;
}

int Store::drop_window(MDB_txn* txn, uint64_t queue_id) {
  MDB_dbi dbi = dbis_[int(Db::keys)];
  int rc = MDB_SUCCESS;
  for (char kind : {'O', 'C'}) {
    rc = erase_range(txn, dbi, keys_key(kind, queue_id), keys_key(kind, queue_id + 1), nullptr);
    if (rc != MDB_SUCCESS) break;
  }
  return rc;
}

Status Store::try_write(const std::vector<Op>& ops, Subset subset, bool* map_full) {
  *map_full = false;
  if (!writable_) return writable_;
  MDB_txn* txn;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) return mdb_status(rc, "begin write transaction");
  int op_rc = MDB_SUCCESS;
  Status s = apply(txn, ops, subset, &op_rc);
  if (!s) {
    mdb_txn_abort(txn);
    *map_full = op_rc == MDB_MAP_FULL;
    return s;
  }
  if (options_.faults) {
    CommitInfo info{ops.size(), 0};
    for (const Op& op : ops)
      info.message_puts += op.kind == Op::Kind::put_message && subset != Subset::without_messages;
    if (Status f = options_.faults->before_commit(info); !f) {
      mdb_txn_abort(txn);
      *map_full = f.storage_fault() == StorageFault::no_space;
      return f;
    }
  }
  Status committed = commit(txn, ops, subset);
  *map_full = committed.storage_fault() == StorageFault::no_space;
  return committed;
}

Status Store::set_map_size(uint64_t size) {
  // The checkpoint snapshot's read transaction may stay: it never reads, so it holds no
  // pointer into the map that remapping would invalidate.
  std::unique_lock lock(resize_mutex_);
  int rc = mdb_env_set_mapsize(env_, size);
  if (rc != MDB_SUCCESS) return mdb_status(rc, "resize map");
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  map_size_ = info.me_mapsize;
  return {};
}

Status Store::grow_map() {
  uint64_t current = map_size_.load();
  if (current >= options_.max_map_size)
    return Status::storage(StorageFault::no_space,
                           fmt::format("store is full: map size {} reached its cap", current));
  uint64_t next = std::min(current * 2, options_.max_map_size);
  if (options_.faults)
    if (Status f = options_.faults->before_grow(next); !f) return f;
  return set_map_size(next);
}

Status Store::write_without_messages(const std::vector<Op>& ops) {
  bool map_full = false;
  Status s = try_write(ops, Subset::without_messages, &map_full);
  if (s || !map_full) return s;
  // Deleting takes fresh pages too (LMDB copies on write), so a store full to its cap could
  // never free itself. Acks and deletions may borrow a reserve beyond the cap; the map
  // shrinks back afterwards, and new messages never use the reserve.
  uint64_t reserve = std::max<uint64_t>(options_.max_map_size / 16, uint64_t{1} << 20);
  uint64_t before = map_size_.load();
  if (Status grown = set_map_size(before + reserve); !grown) return grown;
  s = try_write(ops, Subset::without_messages, &map_full);
  MDB_envinfo info;
  MDB_stat stat;
  mdb_env_info(env_, &info);
  mdb_env_stat(env_, &stat);
  uint64_t in_use = (uint64_t(info.me_last_pgno) + 1) * stat.ms_psize;
  (void)set_map_size(std::max(before, in_use));
  return s;
}

Status Store::write(const std::vector<Op>& ops) {
  if (!writable_) return writable_;
  bool map_full = false;
  Status s = try_write(ops, Subset::all, &map_full);
  if (!s && map_full && journal_ && commits_since_checkpoint_ > 0) {
    // Pages freed since the last checkpoint become reusable only after the next one.
    if (Status c = checkpoint(); !c) return c;
    s = try_write(ops, Subset::all, &map_full);
  }
  while (!s && map_full) {
    Status grown = grow_map();
    if (!grown) {
      s = grown;
      break;
    }
    s = try_write(ops, Subset::all, &map_full);
  }
  if (s || s.storage_fault() != StorageFault::no_space) return s;
  // No room for the new messages: store the rest (acks, deletes, metadata), which frees
  // space rather than taking it; then try the messages once more on their own, as space
  // freed by earlier commits may now be reusable.
  Status rest = write_without_messages(ops);
  if (!rest) return rest;
  bool had_messages = std::any_of(ops.begin(), ops.end(),
                                  [](const Op& op) { return op.kind == Op::Kind::put_message; });
  if (!had_messages) return rest;
  if (journal_)
    if (Status c = checkpoint(); !c) return c;  // lets LMDB reuse what `rest` freed
  Status retry = try_write(ops, Subset::only_messages, &map_full);
  return retry.ok() ? retry : s;
}

}  // namespace warren::storage
