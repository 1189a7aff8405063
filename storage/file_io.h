// The store's own system calls. Every one the journal, the checkpoint and the restore of
// LMDB's meta page make goes through a FileIo, and through it the FaultInjector, so tests
// can fail any of them as a disk would: an I/O error, a full disk, a write that stops
// short. (LMDB's own writes during a commit are LMDB's; FaultInjector::before_commit stands
// for those.) Like LevelDB's Env, but only as wide as the store needs.
#pragma once

#include <lmdb.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace warren::storage {

// Where a system call comes from.
enum class IoPoint : uint8_t {
  journal_open,     // opening (creating) the journal file
  journal_read,     // reading it back at open
  journal_append,   // a commit's record: one O_DIRECT|O_DSYNC write
  journal_extend,   // growing the journal file before an append
  journal_rotate,   // a new generation's header, written at a checkpoint
  checkpoint_sync,  // syncing LMDB at a checkpoint
  meta_read,        // reading LMDB's meta page at a checkpoint
  meta_write,       // writing a checkpoint's meta back into LMDB before replay
  meta_sync,        // syncing that write
  data_allocate,    // reserving disk blocks for LMDB's data file ahead of use
  create_sync,      // a new store: syncing its data file in the staging directory
  create_rename,    // a new store: moving its data file into place
  create_dir_sync,  // a new store: syncing the directory that now holds it
};
std::string_view io_point_name(IoPoint point);

// What an injected fault does to one call.
struct IoFault {
  int error = 0;       // the errno it fails with; 0: the call goes through
  size_t written = 0;  // for a write: the bytes that reach the file before it fails
};

class FaultInjector;

class FileIo {
 public:
  explicit FileIo(std::shared_ptr<FaultInjector> faults = {}) : faults_(std::move(faults)) {}

  // ::open; -1 with errno set on failure.
  int open(IoPoint point, const std::string& path, int flags, mode_t mode = 0644) const;
  // Writes all `size` bytes at `offset`, going on after short writes and EINTR. Returns 0
  // or the errno of the failure.
  int write_all(IoPoint point, int fd, const char* data, size_t size, uint64_t offset) const;
  // Reads exactly `size` bytes at `offset`; 0, the errno, or EIO for end of file.
  int read_exact(IoPoint point, int fd, char* data, size_t size, uint64_t offset) const;
  // fdatasync; 0 or the errno.
  int sync(IoPoint point, int fd) const;
  // mdb_env_sync(env, force) at `point`; 0 or LMDB's error code.
  int sync_env(MDB_env* env, IoPoint point = IoPoint::checkpoint_sync) const;
  // rename(2); 0 or the errno.
  int rename(IoPoint point, const std::string& from, const std::string& to) const;
  // Syncs a directory, so that a rename or a new file in it survives a power loss.
  int sync_dir(IoPoint point, const std::string& path) const;
  // Reserves disk blocks for [offset, offset + length) without changing the file's size;
  // 0 or the errno (EOPNOTSUPP where the file system cannot).
  int allocate(int fd, uint64_t offset, uint64_t length) const;

  // A failure as the store reports it: no_space for ENOSPC/EDQUOT, else io_error.
  static Status status(int error, std::string_view what);

 private:
  IoFault fault(IoPoint point, size_t bytes) const;
  std::shared_ptr<FaultInjector> faults_;
};

}  // namespace warren::storage
