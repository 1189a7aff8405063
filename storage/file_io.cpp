#include "storage/file_io.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage/store.h"

namespace warren::storage {

std::string_view io_point_name(IoPoint point) {
  switch (point) {
    case IoPoint::journal_open: return "journal open";
    case IoPoint::journal_read: return "journal read";
    case IoPoint::journal_append: return "journal append";
    case IoPoint::journal_extend: return "journal extend";
    case IoPoint::journal_rotate: return "journal rotation";
    case IoPoint::checkpoint_sync: return "checkpoint sync";
    case IoPoint::meta_read: return "LMDB meta read";
    case IoPoint::meta_write: return "LMDB meta write";
    case IoPoint::meta_sync: return "LMDB meta sync";
    case IoPoint::data_allocate: return "data file allocation";
    case IoPoint::create_sync: return "new store sync";
    case IoPoint::create_rename: return "new store rename";
    case IoPoint::create_dir_sync: return "new store directory sync";
  }
  return "?";
}

IoFault FileIo::fault(IoPoint point, size_t bytes) const {
  return faults_ ? faults_->on_io(point, bytes) : IoFault{};
}

int FileIo::open(IoPoint point, const std::string& path, int flags, mode_t mode) const {
  if (IoFault f = fault(point, 0); f.error) {
    errno = f.error;
    return -1;
  }
  return ::open(path.c_str(), flags, mode);
}

int FileIo::write_all(IoPoint point, int fd, const char* data, size_t size, uint64_t offset) const {
  IoFault f = fault(point, size);
  size_t limit = f.error ? std::min(f.written, size) : size;
  for (size_t done = 0; done < size;) {
    if (done >= limit) return f.error;
    ssize_t n = pwrite(fd, data + done, limit - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    done += size_t(n);
  }
  return 0;
}

int FileIo::read_exact(IoPoint point, int fd, char* data, size_t size, uint64_t offset) const {
  if (IoFault f = fault(point, size); f.error) return f.error;
  for (size_t done = 0; done < size;) {
    ssize_t n = pread(fd, data + done, size - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;  // the file ends early
    done += size_t(n);
  }
  return 0;
}

int FileIo::sync(IoPoint point, int fd) const {
  if (IoFault f = fault(point, 0); f.error) return f.error;
  return fdatasync(fd) == 0 ? 0 : errno;
}

int FileIo::sync_env(MDB_env* env, IoPoint point) const {
  if (IoFault f = fault(point, 0); f.error) return f.error;
  return mdb_env_sync(env, 1);
}

int FileIo::rename(IoPoint point, const std::string& from, const std::string& to) const {
  if (IoFault f = fault(point, 0); f.error) return f.error;
  return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

int FileIo::sync_dir(IoPoint point, const std::string& path) const {
  if (IoFault f = fault(point, 0); f.error) return f.error;
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int e = fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return e;
}

int FileIo::allocate(int fd, uint64_t offset, uint64_t length) const {
  if (IoFault f = fault(IoPoint::data_allocate, length); f.error) return f.error;
  return fallocate(fd, FALLOC_FL_KEEP_SIZE, off_t(offset), off_t(length)) == 0 ? 0 : errno;
}

Status FileIo::status(int error, std::string_view what) {
  auto detail = fmt::format("{}: {}", what, error == MDB_PANIC ? mdb_strerror(error) : std::strerror(error));
  bool full = error == ENOSPC || error == EDQUOT;
  return Status::storage(full ? StorageFault::no_space : StorageFault::io_error, detail);
}

}  // namespace warren::storage
