#include "storage/journal.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <string>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "storage/keys.h"

namespace warren::storage {
namespace {

constexpr std::string_view kHeaderMagic = "WRNJ";
constexpr std::string_view kRecordMagic = "WRNR";
constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kRecordsStart = 2 * Journal::kBlock;  // after the two checkpoint slots
constexpr size_t kRecordHeader = 32;  // magic, length, generation, txnid, checksum
constexpr size_t kMaxMeta = 512;
constexpr uint64_t kGrowStep = uint64_t{256} << 10;

uint64_t padded(uint64_t n) { return (n + Journal::kBlock - 1) / Journal::kBlock * Journal::kBlock; }

void put_be32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = char(v >> (24 - 8 * i));
}
uint32_t get_be32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | uint8_t(p[i]);
  return v;
}

// A record's checksum covers its length, generation and txnid as well as its payload, so a
// stale record of an earlier generation or a torn one never passes for a current one.
uint64_t record_checksum(const char* header, std::string_view payload) {
  return XXH64(payload.data(), payload.size(), XXH64(header + 4, 20, 0));
}

Status io_error(int error, std::string_view what) {
  return FileIo::status(error, fmt::format("journal: {}", what));
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::open(const std::string& path, const FileIo& io) {
  // O_DIRECT|O_DSYNC makes an append one device write; file systems without O_DIRECT
  // (tmpfs) get O_DSYNC alone.
  int flags = O_RDWR | O_CREAT | O_CLOEXEC | O_DSYNC;
  bool direct = true;
  int fd = io.open(IoPoint::journal_open, path, flags | O_DIRECT, 0600);
  if (fd < 0 && errno == EINVAL) {
    direct = false;
    fd = io.open(IoPoint::journal_open, path, flags, 0600);
  }
  if (fd < 0) return io_error(errno, fmt::format("open {}", path));
  std::unique_ptr<Journal> journal(new Journal(fd, direct, io));
  if (Status s = journal->read_existing(); !s) return s;
  return journal;
}

// The buffers are mapped, not allocated: page-aligned as O_DIRECT needs, costing memory
// only for the pages a record touches, and without nudging malloc into keeping big blocks
// (freeing a large malloc block raises glibc's mmap threshold for everything after it).
Journal::Journal(int fd, bool direct, const FileIo& io) : fd_(fd), direct_(direct), io_(io) {
  buffer_size_ = padded(kMaxRecordBytes + kRecordHeader);
  void* buffer = mmap(nullptr, buffer_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* zeros = mmap(nullptr, kGrowStep, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buffer == MAP_FAILED || zeros == MAP_FAILED) throw std::bad_alloc();
  buffer_ = static_cast<char*>(buffer);
  zeros_ = static_cast<const char*>(zeros);
}

Journal::~Journal() {
  munmap(buffer_, buffer_size_);
  munmap(const_cast<char*>(zeros_), kGrowStep);
  close(fd_);
}

Status Journal::read_existing() {
  struct stat st;
  if (fstat(fd_, &st) != 0) return io_error(errno, "stat");
  file_size_ = uint64_t(st.st_size) / kBlock * kBlock;
  for (uint64_t slot = 0; slot < 2; ++slot) {
    if ((slot + 1) * kBlock > file_size_) continue;
    if (int e = io_.read_exact(IoPoint::journal_read, fd_, buffer_, kBlock, slot * kBlock))
      return io_error(e, "read checkpoint header");
    const char* p = buffer_;
    if (std::string_view(p, 4) != kHeaderMagic || get_be32(p + 4) != kFormatVersion) continue;
    uint32_t meta_len = get_be32(p + 28);
    if (meta_len > kMaxMeta) continue;
    size_t hashed = 32 + meta_len;
    if (get_be64(p + hashed) != XXH64(p, hashed, 0)) continue;
    uint64_t generation = get_be64(p + 8);
    uint32_t page_size = get_be32(p + 24);
    bool power_of_two = page_size >= 512 && (page_size & (page_size - 1)) == 0;
    if (generation <= checkpoint_.generation || !power_of_two) continue;
    checkpoint_ = {generation, get_be64(p + 16), page_size, std::string(p + 32, meta_len)};
  }
  next_offset_ = kRecordsStart;
  end_txnid_ = checkpoint_.txnid;
  if (checkpoint_.generation == 0) return {};
  auto end = read_records(file_size_, pending_, &damage_);
  if (!end.ok()) return end.status();
  next_offset_ = *end;
  end_txnid_ = checkpoint_.txnid + pending_.size();
  madvise(buffer_, buffer_size_, MADV_DONTNEED);
  return {};
}

Result<uint64_t> Journal::read_records(uint64_t end, std::vector<Record>& out, std::string* damage) {
  uint64_t at = kRecordsStart;
  uint64_t expected = checkpoint_.txnid + 1;
  bool suspicious = false;
  for (; at + kBlock <= end; ++expected) {
    if (int e = io_.read_exact(IoPoint::journal_read, fd_, buffer_, kBlock, at))
      return io_error(e, "read record");
    const char* p = buffer_;
    bool record = std::string_view(p, 4) == kRecordMagic;
    uint64_t generation = get_be64(p + 8);
    if (record && generation > checkpoint_.generation) {
      *damage = fmt::format("records of generation {} follow the newest readable checkpoint ({}): a newer "
                            "checkpoint's header is damaged",
                            generation, checkpoint_.generation);
      return at;
    }
    // A clean end: a block never written in this generation (zeros, as a checkpoint leaves
    // it, or a record of an older generation).
    if (!record ? std::all_of(p, p + kBlock, [](char c) { return c == 0; }) : generation < checkpoint_.generation)
      break;
    uint32_t length = get_be32(p + 4);
    size_t total = padded(kRecordHeader + length);
    if (!record || length > kMaxRecordBytes || get_be64(p + 16) != expected || at + total > end) {
      suspicious = true;
      break;
    }
    if (total > kBlock)
      if (int e = io_.read_exact(IoPoint::journal_read, fd_, buffer_, total, at))
        return io_error(e, "read record");
    std::string_view payload(p + kRecordHeader, length);
    if (get_be64(p + 24) != record_checksum(p, payload)) {
      suspicious = true;  // torn by a crash, if nothing valid follows it; damaged if something does
      break;
    }
    out.push_back({expected, std::string(payload)});
    at += total;
  }
  if (suspicious) {
    auto later = valid_record_after(at, expected);
    if (!later.ok()) return later.status();
    if (*later)
      *damage = fmt::format("the record of transaction {} is damaged and valid records follow it: replay "
                            "would lose them",
                            expected);
  }
  return at;
}

// Looks at every block boundary after `from` for a whole, valid record of this generation
// numbered after `expected`. Only runs when reading stopped at a bad record.
Result<bool> Journal::valid_record_after(uint64_t from, uint64_t expected) {
  // Reads through buffer_, which O_DIRECT needs aligned and which holds any whole record: a
  // record that does not fit in what was read is read again from its own start.
  for (uint64_t at = from + kBlock; at + kBlock <= file_size_;) {
    size_t n = size_t(std::min<uint64_t>(buffer_size_, file_size_ - at)) / kBlock * kBlock;
    if (int e = io_.read_exact(IoPoint::journal_read, fd_, buffer_, n, at)) return io_error(e, "scan records");
    size_t off = 0;
    for (; off + kBlock <= n; off += kBlock) {
      const char* p = buffer_ + off;
      uint32_t length = get_be32(p + 4);
      size_t total = padded(kRecordHeader + length);
      if (std::string_view(p, 4) != kRecordMagic || get_be64(p + 8) != checkpoint_.generation ||
          get_be64(p + 16) <= expected || length > kMaxRecordBytes || at + off + total > file_size_)
        continue;
      if (off + total > n) break;  // read again from here
      if (get_be64(p + 24) == record_checksum(p, std::string_view(p + kRecordHeader, length))) return true;
    }
    at += off;
  }
  return false;
}

Result<std::vector<Journal::Record>> Journal::records() {
  std::vector<Record> out;
  if (checkpoint_.generation == 0) return out;
  std::string damage;
  auto end = read_records(next_offset_, out, &damage);
  if (!end.ok()) return end.status();
  if (*end != next_offset_ || !damage.empty())
    return Status::storage(StorageFault::corruption,
                           fmt::format("journal: a record written at {} no longer reads back", *end));
  return out;
}

bool Journal::has_room(size_t payload_size) const {
  // A full record always leaves a block free: the marker of a commit the journal cannot take.
  const uint64_t marker = payload_size == kUnjournaled.size() ? 0 : kBlock;
  return checkpoint_.generation != 0 && payload_size <= kMaxRecordBytes &&
         next_offset_ + padded(kRecordHeader + payload_size) + marker <= kRecordsStart + kGenerationBytes;
}

Status Journal::write_at(IoPoint point, uint64_t offset, size_t bytes) {
  int e = io_.write_all(point, fd_, buffer_, bytes, offset);
  if (e == EINVAL && direct_) {
    // Some file systems accept O_DIRECT at open and refuse it on write.
    direct_ = false;
    if (fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) & ~O_DIRECT) != 0) return io_error(errno, "fcntl");
    e = io_.write_all(point, fd_, buffer_, bytes, offset);
  }
  return e ? io_error(e, io_point_name(point)) : Status{};
}

// Appends overwrite blocks that already hold data, so a synced write needs no metadata
// update; the file therefore grows by writing zeros, a step at a time.
Status Journal::extend_to(uint64_t end) {
  if (end <= file_size_) return {};
  uint64_t target = (end + kGrowStep - 1) / kGrowStep * kGrowStep;
  for (uint64_t at = file_size_; at < target; at += kGrowStep) {
    uint64_t n = std::min(kGrowStep, target - at);
    if (int e = io_.write_all(IoPoint::journal_extend, fd_, zeros_, n, at)) {
      file_size_ = at;  // what was written so far stays usable
      return io_error(e, "grow");
    }
  }
  file_size_ = target;
  return {};
}

Status Journal::append(uint64_t txnid, size_t size, const std::function<void(char*)>& fill) {
  if (!has_room(size))
    return Status::storage(StorageFault::io_error, "journal: no room in this generation");
  size_t total = padded(kRecordHeader + size);
  if (Status s = extend_to(next_offset_ + total); !s) return s;
  char* p = buffer_;
  std::memcpy(p, kRecordMagic.data(), 4);
  put_be32(p + 4, uint32_t(size));
  put_be64(p + 8, checkpoint_.generation);
  put_be64(p + 16, txnid);
  fill(p + kRecordHeader);
  put_be64(p + 24, record_checksum(p, {p + kRecordHeader, size}));
  std::memset(p + kRecordHeader + size, 0, total - kRecordHeader - size);
  if (Status s = write_at(IoPoint::journal_append, next_offset_, total); !s) return s;
  last_offset_ = next_offset_;
  next_offset_ += total;
  return {};
}

Status Journal::append_unjournaled(uint64_t txnid) {
  return append(txnid, kUnjournaled.size(), [](char* out) { std::memcpy(out, kUnjournaled.data(), kUnjournaled.size()); });
}

void Journal::forget_last() {
  if (last_offset_ >= kRecordsStart && last_offset_ < next_offset_) next_offset_ = last_offset_;
}

Status Journal::begin_generation(uint64_t txnid, uint32_t page_size, std::string_view meta) {
  if (meta.size() > kMaxMeta)
    return Status::storage(StorageFault::io_error, "journal: checkpoint meta too large");
  char* p = buffer_;
  std::memset(p, 0, kBlock);
  uint64_t generation = checkpoint_.generation + 1;
  std::memcpy(p, kHeaderMagic.data(), 4);
  put_be32(p + 4, kFormatVersion);
  put_be64(p + 8, generation);
  put_be64(p + 16, txnid);
  put_be32(p + 24, page_size);
  put_be32(p + 28, uint32_t(meta.size()));
  std::memcpy(p + 32, meta.data(), meta.size());
  size_t hashed = 32 + meta.size();
  put_be64(p + hashed, XXH64(p, hashed, 0));
  // The slot of the generation before the current one: the current checkpoint stays
  // readable until this one is written whole.
  if (Status s = extend_to(kRecordsStart + kBlock); !s) return s;
  if (Status s = write_at(IoPoint::journal_rotate, (generation % 2) * kBlock, kBlock); !s) return s;
  // The new generation's records start with a zero block: reading stops there cleanly, and
  // a record of an older generation can never pass for the start of this one. (Written
  // after the header: until then the older generation's first record must stay.)
  std::memset(p, 0, kBlock);
  (void)write_at(IoPoint::journal_rotate, kRecordsStart, kBlock);  // a stale record is clean too
  checkpoint_ = {generation, txnid, page_size, std::string(meta)};
  next_offset_ = kRecordsStart;
  last_offset_ = 0;
  pending_.clear();
  return {};
}

}  // namespace warren::storage
