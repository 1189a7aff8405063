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
