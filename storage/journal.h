// The commit journal: what makes a commit durable with one flush instead of LMDB's two.
//
// In Durability::fsync the store commits LMDB transactions without syncing them and
// appends each one's ops to this journal, written through O_DIRECT|O_DSYNC: one device
// write per commit. Now and then the store syncs LMDB and starts a new journal generation
// (a checkpoint) recording the synced transaction and a copy of LMDB's meta page for it.
// Until the next checkpoint the store holds a read transaction on that snapshot, so LMDB
// cannot reuse its pages: whatever a power loss leaves of later writes, the snapshot is
// intact, and recovery puts its meta page back and replays the journal from there.
// docs/storage-format.md describes the file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "storage/file_io.h"

namespace warren::storage {

class Journal {
 public:
  struct Checkpoint {
    uint64_t generation = 0;  // 0: none yet
    uint64_t txnid = 0;       // the LMDB transaction synced at the checkpoint
    uint32_t page_size = 0;
    std::string meta;  // LMDB's meta for that transaction (storage/lmdb_meta.h)
  };
  struct Record {
    uint64_t txnid;
    std::string payload;
    // Transaction txnid was about to commit without a record of its ops (too big for the
    // journal): whatever it did is not known here. Always the generation's last record.
    bool unjournaled() const { return payload == kUnjournaled; }
  };
  static constexpr std::string_view kUnjournaled{"\xff", 1};

  // Opens or creates the file and reads the newest checkpoint and the records that follow
  // it: each valid, of that generation, and numbered one after the previous. Every system
  // call goes through `io`.
  static Result<std::unique_ptr<Journal>> open(const std::string& path, const FileIo& io);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  const Checkpoint& checkpoint() const { return checkpoint_; }
  // The records found at open; released with take_pending.
  std::vector<Record> take_pending() { return std::move(pending_); }
  // The transaction of the last valid record found at open (the checkpoint's if none).
  uint64_t end_txnid() const { return end_txnid_; }
  // What opening found wrong, if anything: valid records after one that is damaged (so
  // replay would lose them), or records of a newer generation than the newest readable
  // checkpoint (whose header is then damaged). Empty when the journal ends cleanly.
  const std::string& damage() const { return damage_; }
  // The records of the current generation, read back from the file: what must be replayed
  // onto the checkpoint's snapshot to get the state of the last commit.
  Result<std::vector<Record>> records();

  // Whether a record with a payload of `size` bytes may be appended to this generation.
  bool has_room(size_t size) const;
  // Appends the record of transaction txnid, whose payload of `size` bytes `fill` writes,
  // and returns once it is on stable storage. On failure nothing counts as appended.
  Status append(uint64_t txnid, size_t size, const std::function<void(char*)>& fill);
  // Appends the record saying transaction txnid commits without a record (kUnjournaled).
  Status append_unjournaled(uint64_t txnid);
  // The last appended record is void (its transaction did not commit): the next append
  // takes its place, and records() no longer returns it.
  void forget_last();
  // Starts a new generation at a checkpoint; earlier records are void from then on. On
  // failure the current generation stays.
  Status begin_generation(uint64_t txnid, uint32_t page_size, std::string_view meta);

  static constexpr size_t kBlock = 4096;              // O_DIRECT alignment
  // Bigger commits checkpoint instead: measured with 256 outstanding confirms, writing
  // them twice (journal, then LMDB) cost more than the LMDB sync they save.
  static constexpr size_t kMaxRecordBytes = 64 << 10;
  static constexpr uint64_t kGenerationBytes = uint64_t{16} << 20;

 private:
  Journal(int fd, bool direct, const FileIo& io);
  Status read_existing();
  // Reads the records of the current generation from kRecordsStart, stopping at the first
  // that is not valid or at `end`; returns where it stopped. *damage says what was wrong
  // when the stop was not a clean end (see damage()).
  Result<uint64_t> read_records(uint64_t end, std::vector<Record>& out, std::string* damage);
  // Whether a valid record of this generation numbered after `expected` follows `from`.
  Result<bool> valid_record_after(uint64_t from, uint64_t expected);
  Status write_at(IoPoint point, uint64_t offset, size_t bytes);  // from buffer_
  Status extend_to(uint64_t end);

  int fd_;
  bool direct_;
  const FileIo& io_;
  uint64_t file_size_ = 0;
  uint64_t next_offset_ = 0;  // where the next record goes
  uint64_t last_offset_ = 0;  // where the last appended record starts
  Checkpoint checkpoint_;
  std::vector<Record> pending_;
  uint64_t end_txnid_ = 0;
  std::string damage_;
  char* buffer_ = nullptr;  // one record, page-aligned for O_DIRECT
  size_t buffer_size_ = 0;
  const char* zeros_ = nullptr;
};

}  // namespace warren::storage
