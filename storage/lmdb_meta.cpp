#include "storage/lmdb_meta.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace warren::storage {
namespace {

// struct MDB_meta follows the 16-byte page header: magic (u32), version (u32), address,
// map size, two MDB_db of 48 bytes, last page, txnid: all 8 bytes on 64-bit, native order.
constexpr size_t kPageHeader = 16;
constexpr size_t kMetaBytes = 136;
constexpr size_t kTxnidOffset = 128;
constexpr uint32_t kMagic = 0xBEEFC0DE;
constexpr uint32_t kDataVersion = 1;

template <typename T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

Result<std::string> read_lmdb_meta(const FileIo& io, int fd, uint32_t page_size, uint64_t txnid) {
  static_assert(sizeof(void*) == 8, "the meta layout below is LMDB's on 64-bit machines");
  char page[kPageHeader + kMetaBytes];
  if (int e = io.read_exact(IoPoint::meta_read, fd, page, sizeof page, (txnid % 2) * page_size))
    return FileIo::status(e, "read LMDB meta page");
  const char* meta = page + kPageHeader;
  if (load<uint32_t>(meta) != kMagic || load<uint32_t>(meta + 4) != kDataVersion ||
      load<uint64_t>(meta + kTxnidOffset) != txnid)
    return Status::storage(StorageFault::corruption,
                           "LMDB meta page has an unexpected layout; this build cannot journal it");
  return std::string(meta, kMetaBytes);
}

Result<LmdbFile> inspect_lmdb_file(const FileIo& io, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return FileIo::status(errno, fmt::format("open {}", path));
  struct stat st;
  LmdbFile out;
  if (fstat(fd, &st) == 0) out.file_size = uint64_t(st.st_size);
  // Meta 0 starts the file; its free database's md_pad holds the page size, which places
  // meta 1. A meta is valid with LMDB's magic, version and a plausible page size.
  constexpr size_t kPageSizeOffset = 24;  // mm_dbs[0].md_pad
  constexpr size_t kLastPageOffset = 120;
  bool found = false;
  uint32_t page_size = 0;
  for (int slot = 0; slot < 2; ++slot) {
    char page[kPageHeader + kMetaBytes];
    // With meta 0 unreadable, meta 1 is looked for where the system's page size puts it.
    if (slot == 1 && page_size == 0) page_size = uint32_t(sysconf(_SC_PAGESIZE));
    uint64_t at = slot == 0 ? 0 : page_size;
    if (io.read_exact(IoPoint::meta_read, fd, page, sizeof page, at) != 0) continue;
    const char* meta = page + kPageHeader;
    uint32_t size = load<uint32_t>(meta + kPageSizeOffset);
    bool plausible = size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
    if (load<uint32_t>(meta) != kMagic || load<uint32_t>(meta + 4) != kDataVersion || !plausible) continue;
    if (slot == 0) page_size = size;
    uint64_t txnid = load<uint64_t>(meta + kTxnidOffset);
    if (found && txnid <= out.txnid) continue;
    found = true;
    out.txnid = txnid;
    out.last_page = load<uint64_t>(meta + kLastPageOffset);
    out.page_size = size;
    out.meta.assign(meta, kMetaBytes);
  }
  close(fd);
  if (!found)
    return Status::storage(StorageFault::corruption,
                           fmt::format("{} has no valid LMDB meta page: it is damaged or not a store", path));
  // Compared in pages: a damaged last page number times the page size could overflow.
  if (out.last_page >= out.file_size / out.page_size)
    return Status::storage(StorageFault::corruption,
                           fmt::format("{} is truncated or its meta is damaged: {} bytes, but its meta says "
                                       "page {} is in use",
                                       path, out.file_size, out.last_page));
  return out;
}

Status restore_lmdb_meta(const FileIo& io, const std::string& path, uint32_t page_size,
                         std::string_view meta) {
  if (meta.size() != kMetaBytes || load<uint32_t>(meta.data()) != kMagic)
    return Status::storage(StorageFault::corruption, "journal holds no valid LMDB meta");
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? Status{} : FileIo::status(errno, fmt::format("open {}", path));
  struct stat st;
  Status s;
  if (fstat(fd, &st) != 0 || uint64_t(st.st_size) < 2 * uint64_t(page_size))
    s = Status::storage(StorageFault::corruption, fmt::format("{} is shorter than its meta pages", path));
  for (uint64_t slot = 0; slot < 2 && s; ++slot)
    if (int e = io.write_all(IoPoint::meta_write, fd, meta.data(), meta.size(), slot * page_size + kPageHeader))
      s = FileIo::status(e, "restore LMDB meta");
  if (s)
    if (int e = io.sync(IoPoint::meta_sync, fd)) s = FileIo::status(e, fmt::format("sync {}", path));
  close(fd);
  return s;
}

}  // namespace warren::storage
