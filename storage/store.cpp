// Opening, recovery, commits and checkpoints: the store's policy. The ops themselves are
// applied by storage/op_apply.cpp; reads are in storage/read_view.cpp.
#include "storage/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "common/log.h"
#include "storage/keys.h"
#include "storage/lmdb_meta.h"
#include "storage/lmdb_pages.h"
#include "storage/op_apply.h"
#include "storage/op_codec.h"

namespace warren::storage {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSchemaKey = "schema_version";
// Checkpoints come at least this often: between them LMDB cannot reuse the pages the
// commits free, so the file grows by what they write.
constexpr uint32_t kMaxCommitsPerCheckpoint = 256;
constexpr uint64_t kMaxBytesPerCheckpoint = uint64_t{16} << 20;
// After a failed checkpoint, the next try waits this many commits: each try first
// rewrites everything since the last good checkpoint.
constexpr uint32_t kCheckpointRetryCommits = 64;

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

}  // namespace

Status mdb_status(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return {};
  auto detail = fmt::format("{}: {}", what, mdb_strerror(rc));
  switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
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

// ---- opening ---------------------------------------------------------------------------

Store::Store(StoreOptions options) : options_(std::move(options)), io_(options_.faults) {}

Store::~Store() {
  // A clean close leaves nothing to replay.
  if (journal_ && env_ && commits_since_checkpoint_ > 0) (void)checkpoint();
  close_lmdb();
  if (lock_fd_ >= 0) close(lock_fd_);
  if (remove_on_close_) {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
}

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store(options));
  if (Status s = store->open_env(); !s) return s;
  if (store->journal_)
    if (Status s = store->replay(store->journal_->take_pending()); !s) return s;
  if (Status s = store->prepare_schema(); !s) return s;
  if (store->journal_ && !store->at_checkpoint())
    if (Status s = store->checkpoint(); !s) return s;
  if (store->journal_ && options.durability != Durability::fsync)
    if (Status s = store->drop_journal(); !s) return s;
  store->ensure_allocated();
  return store;
}

namespace {

// Messages are private data: a new data directory is the broker's user's alone, and one
// that someone else could write (and so replace the store or its journal) is refused.
Status make_private_directory(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fs::create_directories(path, ec);
    if (ec)
      return Status::storage(StorageFault::io_error,
                             fmt::format("cannot create {}: {}", path, ec.message()));
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::replace, ec);
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return FileIo::status(errno, fmt::format("cannot read the data directory {}", path));
  if (st.st_uid != ::geteuid() || (st.st_mode & 022) != 0)
    return Status::storage(
        StorageFault::io_error,
        fmt::format("data directory {} can be written by other users (owner uid {}, mode {:04o}); "
                    "it must belong to the broker's user and not be group- or world-writable "
                    "(chmod go-w {})",
                    path, st.st_uid, st.st_mode & 07777, path));
  return {};
}

}  // namespace

Status Store::open_env() {
  if (options_.durability == Durability::in_memory) {
    path_ = make_memory_dir();
    if (path_.empty())
      return Status::storage(StorageFault::io_error, "cannot create a temporary store");
    remove_on_close_ = true;
  } else {
    path_ = options_.path;
    if (path_.empty()) return Status::storage(StorageFault::io_error, "no data directory given");
    if (Status s = make_private_directory(path_); !s) return s;
  }
  // LMDB would let a second process write concurrently; the broker's in-memory state
  // assumes it is the only one, so it takes the directory for itself.
  std::string lock_path = path_ + "/LOCK";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0)
    return FileIo::status(errno, fmt::format("cannot open the lock file {}", lock_path));
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    return errno == EWOULDBLOCK
               ? Status::storage(
                     StorageFault::io_error,
                     fmt::format("data directory {} is in use by another process", path_))
               : FileIo::status(errno, fmt::format("cannot lock {}", lock_path));
  if (options_.durability != Durability::in_memory) {
    if (!fs::exists(data_path())) {
      if (Status s = create_store(); !s) return s;
    } else if (std::error_code ec; fs::exists(path_ + "/creating", ec)) {
      fs::remove_all(path_ + "/creating", ec);  // the store was moved into place, not cleaned up
    }
  }
  // A journal left by an fsync-mode run is recovered whatever the mode now.
  if (options_.durability == Durability::fsync || fs::exists(journal_path()))
    if (Status s = open_journal(); !s) return s;
  // A file shorter than its own meta says, without a valid meta, or with a damaged page,
  // would make LMDB fault, assert or overwrite pages in use.
  if (fs::exists(data_path()))
    if (Status s = audit_lmdb_file(io_, data_path(), key_has_shape); !s) return s;
  return open_lmdb(options_.initial_map_size);
}

Status Store::create_store() {
  const std::string staging = path_ + "/creating";
  std::error_code ec;
  fs::remove_all(staging, ec);  // what an interrupted creation left
  fs::create_directory(staging, ec);
  if (ec)
    return Status::storage(StorageFault::io_error,
                           fmt::format("create {}: {}", staging, ec.message()));
  MDB_env* env = nullptr;
  int rc = mdb_env_create(&env);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_maxdbs(env, kDbCount + 1);
  if (rc == MDB_SUCCESS) rc = mdb_env_open(env, staging.c_str(), MDB_NOTLS | MDB_NOSYNC, 0600);
  Status s = mdb_status(rc, fmt::format("create a store in {}", staging));
  if (s) {
    std::swap(env_, env);  // the schema is written by the same code as on every open
    s = prepare_schema();
    if (s)
      if (int e = io_.sync_env(env_, IoPoint::create_sync); e)
        s = FileIo::status(e, "sync the new store");
    std::swap(env_, env);
  }
  if (env) mdb_env_close(env);
  // A journal of another store must never be replayed onto this one.
  if (s && fs::exists(journal_path())) {
    fs::remove(journal_path(), ec);
    if (ec)
      s = Status::storage(StorageFault::io_error,
                          fmt::format("remove {}: {}", journal_path(), ec.message()));
  }
  if (s)
    if (int e = io_.rename(IoPoint::create_rename, staging + "/data.mdb", data_path()); e)
      s = FileIo::status(e, "move the new store into place");
  if (s)
    if (int e = io_.sync_dir(IoPoint::create_dir_sync, path_); e)
      s = FileIo::status(e, fmt::format("sync {}", path_));
  if (s) fs::remove_all(staging, ec);
  return s;
}

Status Store::open_journal() {
  auto journal = Journal::open(journal_path(), io_);
  if (!journal.ok()) return journal.status();
  journal_ = std::move(journal.value());
  if (journal_->checkpoint().generation == 0 || !fs::exists(data_path())) {
    (void)journal_->take_pending();  // a store created afresh: nothing to replay onto
    return {};
  }
  // Every LMDB commit is journaled (or marked) before it happens, so LMDB can never be
  // ahead of its journal: if it is, or if the journal is damaged where records follow,
  // restoring the checkpoint and replaying would silently undo confirmed commits.
  std::string loss = journal_->damage();
  if (auto lmdb = inspect_lmdb_file(io_, data_path());
      lmdb.ok() && lmdb->txnid > journal_->end_txnid() && loss.empty())
    loss = fmt::format("LMDB holds transaction {}, but the journal ends at {}", lmdb->txnid,
                       journal_->end_txnid());
  if (!loss.empty()) {
    if (!options_.accept_data_loss)
      return Status::storage(
          StorageFault::corruption,
          fmt::format("store {}: {}; it was not opened. Accepting the loss (warrend "
                      "--accept-data-loss) opens "
                      "it as LMDB holds it, without what the journal cannot vouch for",
                      path_, loss));
    log::error("store {}: {}; opening it as LMDB holds it, as accepting data loss allows", path_,
               loss);
    (void)journal_->take_pending();
    return {};
  }
  // After a power loss, whatever LMDB wrote since the checkpoint may have reached the disk
  // in part. The checkpoint's snapshot is intact (its pages were held): make it current
  // again and replay the journal from there. After a clean close this changes nothing.
  Status restored = restore_checkpoint();
  restored_checkpoint_ = restored.ok();
  return restored;
}

Status Store::restore_checkpoint() {
  const Journal::Checkpoint& c = journal_->checkpoint();
  return restore_lmdb_meta(io_, data_path(), c.page_size, c.meta);
}

Status Store::open_lmdb(uint64_t map_size) {
  int rc = mdb_env_create(&env_);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_maxdbs(env_, kDbCount + 1);
  if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(env_, std::min(map_size, options_.max_map_size));
  // Commits are never synced by LMDB itself: in Durability::fsync the journal makes them
  // durable and checkpoints sync LMDB.
  if (rc == MDB_SUCCESS) rc = mdb_env_open(env_, path_.c_str(), MDB_NOTLS | MDB_NOSYNC, 0600);
  if (rc != MDB_SUCCESS) {
    if (env_) mdb_env_close(env_);
    env_ = nullptr;
    return mdb_status(rc, fmt::format("open store {}", path_));
  }
  MDB_stat stat;
  mdb_env_stat(env_, &stat);
  page_size_ = stat.ms_psize;
  // The pin is taken before anything is replayed: it holds the checkpoint's snapshot.
  if (journal_ && (rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &checkpoint_pin_)) != MDB_SUCCESS)
    return mdb_status(rc, "begin checkpoint snapshot");
  // The file may already be larger than the requested size.
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

void Store::close_lmdb() {
  if (checkpoint_pin_) mdb_txn_abort(checkpoint_pin_);
  if (cached_read_txn_) mdb_txn_abort(cached_read_txn_);
  if (env_) mdb_env_close(env_);
  checkpoint_pin_ = cached_read_txn_ = nullptr;
  env_ = nullptr;
}

Status Store::open_dbis(unsigned flags) {
  MDB_txn* txn;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  for (int i = 0; i < kDbCount && rc == MDB_SUCCESS; ++i)
    rc = mdb_dbi_open(txn, kDbNames[i].data(), flags, &dbis_[i]);
  if (rc == MDB_SUCCESS) return mdb_status(mdb_txn_commit(txn), "open databases");
  mdb_txn_abort(txn);
  return mdb_status(rc, "open databases");
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

Status Store::replay(const std::vector<Journal::Record>& records) {
  if (records.empty()) return {};
  // Creating nothing, so that a store whose databases do not exist yet is not altered.
  if (Status s = open_dbis(0); !s) return s;
  for (const Journal::Record& record : records) {
    if (record.unjournaled()) {
      // Its commit was not made durable before the crash, so it was never confirmed.
      log::info("store {}: transaction {} was not journaled and is not replayed", path_,
                record.txnid);
      break;
    }
    auto batch = decode_ops(record.payload);
    if (!batch)
      return Status::storage(StorageFault::corruption,
                             fmt::format("journal record {} cannot be read", record.txnid));
    for (;;) {
      MDB_txn* txn;
      if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != MDB_SUCCESS)
        return mdb_status(rc, "begin journal replay");
      if (mdb_txn_id(txn) != record.txnid) {
        mdb_txn_abort(txn);
        return Status::storage(
            StorageFault::corruption,
            fmt::format("journal record {} does not follow the store's transaction {}",
                        record.txnid, mdb_txn_id(txn) - 1));
      }
      OpApplier applier(txn, dbis_);
      int rc = applier.apply(batch->ops, Subset(batch->subset));
      if (rc == MDB_SUCCESS) {
        rc = mdb_txn_commit(txn);
        if (rc == MDB_SUCCESS) break;
      } else {
        mdb_txn_abort(txn);
      }
      if (rc != MDB_MAP_FULL) return mdb_status(rc, "replay journal");
      // It fitted before the crash, in a map that had grown since the file was opened: grow
      // again, past the cap if need be (the reserve for acks may have been in use).
      MDB_envinfo info;
      mdb_env_info(env_, &info);
      if (int grow = mdb_env_set_mapsize(env_, info.me_mapsize * 2); grow != MDB_SUCCESS)
        return mdb_status(grow, "grow the map for journal replay");
      mdb_env_info(env_, &info);
      map_size_ = info.me_mapsize;
    }
  }
  return {};
}

Status Store::prepare_schema() {
  if (Status s = open_dbis(MDB_CREATE); !s) return s;
  MDB_txn* txn;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != MDB_SUCCESS) return mdb_status(rc, "begin schema transaction");
  MDB_val k = val(kSchemaKey), v;
  rc = mdb_get(txn, dbis_[int(Db::meta)], &k, &v);
  uint32_t found = 0;
  if (rc == MDB_SUCCESS) {
    for (char c : view(v)) found = (found << 8) | uint8_t(c);
    if (v.mv_size != 4 || found < 1 || found > kSchemaVersion) {
      mdb_txn_abort(txn);
      return Status::storage(
          StorageFault::corruption,
          fmt::format("store {} has schema version {}; this build reads versions 1 to {}", path_,
                      found, kSchemaVersion));
    }
  }
  if (found != kSchemaVersion) {
    // A new store, or one of version 1, whose records are read as they are: it is marked as
    // this version, so that a build that cannot read checksummed records refuses it.
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

// ---- recovering in place ----------------------------------------------------------------

Status Store::recover_in_place(std::string_view why) {
  log::warning("store {}: recovering in place after: {}", path_, why);
  {
    std::unique_lock lock(resize_mutex_);  // no reader is inside LMDB meanwhile
    uint64_t map_size = map_size_.load();
    close_lmdb();
    Status s;
    if (journal_) s = restore_checkpoint();
    if (s) s = open_lmdb(map_size);
    if (s && journal_) {
      auto records = journal_->records();
      s = records.ok() ? replay(*records) : records.status();
    }
    if (s) s = open_dbis(0);
    if (!s) {
      close_lmdb();
      broken_ = Status::storage(
          s.storage_fault() == StorageFault::none ? StorageFault::io_error : s.storage_fault(),
          fmt::format("store closed after it could not recover from a failure ({}); it retries "
                      "at the next write",
                      s.text()));
      log::error("{}", broken_.text());
      return broken_;
    }
    broken_ = {};
  }
  if (!journal_) return {};
  // Everything LMDB holds now was written since it reopened: a sync covers it all.
  rewrite_before_checkpoint_ = false;
  if (Status c = checkpoint(); !c)
    log::warning("store {}: checkpoint after recovery: {}", path_, c.text());
  return {};
}

// ---- writing ----------------------------------------------------------------------------

bool Store::checkpoint_due() const {
  if (commits_since_checkpoint_ < kCheckpointRetryCommits && rewrite_before_checkpoint_)
    return false;
  if (commits_since_checkpoint_ >= kMaxCommitsPerCheckpoint) return true;
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return (uint64_t(info.me_last_pgno) - last_page_at_checkpoint_) * page_size_ >
         kMaxBytesPerCheckpoint;
}

Status Store::checkpoint() {
  if (rewrite_before_checkpoint_) return recover_in_place("an earlier checkpoint failed");
  // Until the new generation is written, the journal's current one still covers every
  // commit since the last good checkpoint: a failure here loses nothing.
  auto failed = [&](Status s) {
    rewrite_before_checkpoint_ = true;  // a failed sync may have dropped dirty pages
    checkpoint_failure_ = s;
    commits_since_checkpoint_ = 0;  // try again after kCheckpointRetryCommits more
    return s;
  };
  if (int rc = io_.sync_env(env_); rc != MDB_SUCCESS)
    return failed(FileIo::status(rc, "checkpoint: sync the store"));
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  int fd = -1;
  mdb_env_get_fd(env_, &fd);
  auto meta = read_lmdb_meta(io_, fd, page_size_, info.me_last_txnid);
  if (!meta.ok()) return failed(meta.status());
  if (Status s = journal_->begin_generation(info.me_last_txnid, page_size_, *meta); !s)
    return failed(s);
  // Only now may LMDB reuse the pages of the previous checkpoint's snapshot.
  mdb_txn_reset(checkpoint_pin_);
  if (int rc = mdb_txn_renew(checkpoint_pin_); rc != MDB_SUCCESS) {
    // Nothing holds the snapshot the journal now starts from: recovery must not trust it.
    return recover_in_place(mdb_status(rc, "hold checkpoint snapshot").text());
  }
  commits_since_checkpoint_ = 0;
  last_page_at_checkpoint_ = info.me_last_pgno;
  stats_.checkpoints.fetch_add(1, std::memory_order_relaxed);
  return {};
}

Status Store::commit(MDB_txn* txn, bool changed, const std::vector<Op>& ops, Subset subset,
                     bool* map_full) {
  // A transaction that changed nothing is not a commit to LMDB: it takes no id, and needs
  // no record. Without a journal, LMDB's own commit is all there is.
  if (journal_ && changed) return commit_journaled(txn, ops, subset, map_full);
  int rc = mdb_txn_commit(txn);
  *map_full = rc == MDB_MAP_FULL;
  return mdb_status(rc, "commit");
}

// The record goes to the journal first, then LMDB commits: a commit is never visible before
// it is durable, and one that fails to commit is simply not in the journal.
Status Store::commit_journaled(MDB_txn* txn, const std::vector<Op>& ops, Subset subset,
                               bool* map_full) {
  const uint64_t txnid = mdb_txn_id(txn);
  const size_t size = encoded_ops_size(ops);
  bool journaled = false;
  if (journal_->has_room(size)) {
    auto encode = [&](char* out) { encode_ops_into(ops, uint8_t(subset), out); };
    const auto started = std::chrono::steady_clock::now();
    Status appended = journal_->append(txnid, size, encode);
    stats_.journal_write_seconds.record(std::chrono::steady_clock::now() - started);
    journaled = appended.ok();
    // A failed append is not the commit's failure: a checkpoint makes it durable instead.
    if (!appended && !journal_failing_)
      log::warning("store {}: {}; checkpoints make commits durable until it works again", path_,
                   appended.text());
    else if (appended && journal_failing_)
      log::info("store {}: the journal takes commits again", path_);
    journal_failing_ = !appended;
  }
  // A commit the journal cannot take is marked first, so that recovery knows LMDB may hold
  // it (and drops it: it is confirmed only once the checkpoint below has made it durable).
  bool marked = !journaled && journal_->append_unjournaled(txnid).ok();
  if (!journaled && rewrite_before_checkpoint_) {
    // Only a checkpoint could make this commit durable, and after a failed one LMDB must
    // first be rewritten from the journal, which this commit is not in: refuse it.
    mdb_txn_abort(txn);
    if (marked) journal_->forget_last();
    Status refused = Status::storage(
        checkpoint_failure_.storage_fault(),
        fmt::format("the journal cannot take the commit and the last checkpoint failed ({})",
                    checkpoint_failure_.text()));
    (void)recover_in_place(refused.text());
    return refused;
  }
  if (int rc = mdb_txn_commit(txn); rc != MDB_SUCCESS) {
    if (journaled || marked) journal_->forget_last();
    *map_full = rc == MDB_MAP_FULL;
    return mdb_status(rc, "commit");
  }
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  if (info.me_last_txnid != txnid) {  // LMDB took no id after all: the record must not stay
    if (journaled || marked) journal_->forget_last();
    return {};
  }
  ++commits_since_checkpoint_;
  if (journaled) {
    if (checkpoint_due())
      if (Status c = checkpoint(); !c)
        log::warning("store {}: checkpoint failed ({}); the journal still holds every commit",
                     path_, c.text());
    return {};
  }
  // Too big for the journal, or the append failed: only a synced LMDB makes it durable.
  Status synced = checkpoint();
  if (synced) return {};
  // The commit is in LMDB but not on the disk, and its batch is reported failed: undo it
  // (its marker goes first: the transaction id is used again).
  if (marked) journal_->forget_last();
  (void)recover_in_place(fmt::format("a commit could not be made durable ({})", synced.text()));
  return synced;
}

Status Store::try_write(const std::vector<Op>& ops, Subset subset, bool* map_full) {
  *map_full = false;
  if (!broken_.ok())
    if (Status s = recover_in_place(broken_.text()); !s) return s;
  MDB_txn* txn;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc == MDB_PANIC) {  // a failed commit left LMDB unusable (its meta write failed)
    if (Status s = recover_in_place(mdb_status(rc, "begin write transaction").text()); !s) return s;
    rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  }
  if (rc != MDB_SUCCESS) return mdb_status(rc, "begin write transaction");
  OpApplier applier(txn, dbis_);
  if (rc = applier.apply(ops, subset); rc != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    *map_full = rc == MDB_MAP_FULL;
    return mdb_status(rc, applier.failed_step());
  }
  if (options_.faults) {
    CommitInfo info{ops.size(), 0};
    for (const Op& op : ops)
      info.message_puts += op.kind == Op::Kind::put_message && subset != Subset::without_messages;
    if (Status f = options_.faults->before_commit(info); !f) {
      mdb_txn_abort(txn);
      return f;
    }
  }
  const auto started = std::chrono::steady_clock::now();
  Status committed = commit(txn, applier.changed(), ops, subset, map_full);
  if (committed) {
    stats_.commit_seconds.record(std::chrono::steady_clock::now() - started);
    stats_.commits.fetch_add(1, std::memory_order_relaxed);
    uint64_t puts = 0;
    if (subset != Subset::without_messages)
      for (const Op& op : ops) puts += op.kind == Op::Kind::put_message;
    stats_.message_puts.fetch_add(puts, std::memory_order_relaxed);
  }
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
  if (current >= map_cap())
    return Status::storage(
        StorageFault::no_space,
        disk_cap_ != UINT64_MAX
            ? fmt::format("the disk is full: {} bytes of the store are in use", current)
            : fmt::format("store is full: map size {} reached its cap", current));
  uint64_t next = std::min(current * 2, map_cap());
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
  // shrinks back afterwards, and new messages never use the reserve. On a full disk the
  // reserve is the space allocated ahead beyond the cap.
  uint64_t before = map_size_.load();
  uint64_t reserve = disk_cap_ != UINT64_MAX
                         ? (allocated_ > before ? allocated_ - before : 0)
                         : std::max<uint64_t>(options_.max_map_size / 16, uint64_t{1} << 20);
  if (reserve == 0) return s;
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
  Status s = write_with_retries(ops);
  if (env_) {
    ensure_allocated();
    map_used_.store(used_bytes(), std::memory_order_relaxed);
  }
  return s;
}

Status Store::write_with_retries(const std::vector<Op>& ops) {
  bool map_full = false;
  Status s = try_write(ops, Subset::all, &map_full);
  if (!s && map_full && journal_ && env_ && commits_since_checkpoint_ > 0) {
    // Pages freed since the last checkpoint become reusable only after the next one.
    if (Status c = checkpoint(); c) s = try_write(ops, Subset::all, &map_full);
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
    if (Status c = checkpoint(); !c) return s;  // lets LMDB reuse what `rest` freed
  Status retry = try_write(ops, Subset::only_messages, &map_full);
  return retry.ok() ? retry : s;
}

// ---- disk space --------------------------------------------------------------------------

uint64_t Store::used_bytes() const {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return (uint64_t(info.me_last_pgno) + 1) * page_size_;
}

uint64_t Store::disk_reserve() const {
  return std::clamp<uint64_t>(used_bytes() / 16, uint64_t{2} << 20, uint64_t{64} << 20);
}

// After opening and after each write: keeps a step of disk space allocated beyond what
// LMDB uses, plus the reserve for acks. When the disk has no room for that, new pages stop
// at what is allocated minus the reserve, and allocation is tried again now and then.
void Store::ensure_allocated() {
  if (allocation_unsupported_ || options_.durability == Durability::in_memory) return;
  const uint64_t used = used_bytes(), reserve = disk_reserve();
  const uint64_t step = std::clamp<uint64_t>(used / 8, uint64_t{4} << 20, uint64_t{64} << 20);
  const bool capped = disk_cap_ != UINT64_MAX;
  if (!capped && allocated_ >= used + reserve + step / 2) return;
  const auto now = std::chrono::steady_clock::now();
  if (capped && now < next_allocation_try_) return;
  int fd = -1;
  mdb_env_get_fd(env_, &fd);
  const uint64_t target = used + reserve + step;
  int e = target > allocated_ ? io_.allocate(fd, allocated_, target - allocated_) : 0;
  if (e == 0) {
    allocated_ = std::max(allocated_, target);
    if (capped) {
      disk_cap_ = UINT64_MAX;
      log::info("store {}: the disk has room again", path_);
    }
    return;
  }
  if (e == EOPNOTSUPP) {
    allocation_unsupported_ = true;
    log::warning(
        "store {}: the file system cannot allocate ahead; a full disk shows as failed writes",
        path_);
    return;
  }
  next_allocation_try_ = now + std::chrono::seconds(1);
  if (capped) return;
  disk_cap_ = std::max(used, allocated_ > reserve ? allocated_ - reserve : used);
  log::error("store {}: the disk is full ({}); new messages are refused until space is freed",
             path_, std::strerror(e));
  if (map_size_.load() > disk_cap_) (void)set_map_size(disk_cap_);
}

}  // namespace warren::storage
