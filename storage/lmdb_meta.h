// One of the two places that read LMDB's file format directly: its meta pages (the other,
// storage/lmdb_pages.h, reads its B-tree pages).
//
// An LMDB data file starts with two meta pages; the one with the higher transaction id is
// the current state. The journal (storage/journal.h) keeps a copy of the meta of its last
// checkpoint and, before the store reopens after a crash, writes it back into both slots,
// which makes that synced snapshot the current state again. The layout is LMDB 0.9's on a
// 64-bit machine; reading a meta checks its magic, version and transaction id first, so
// any other layout is refused rather than misread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"
#include "storage/file_io.h"

namespace warren::storage {

// The meta of transaction txnid (which must be the last committed and synced one), read
// from the data file open as fd.
Result<std::string> read_lmdb_meta(const FileIo& io, int fd, uint32_t page_size, uint64_t txnid);

// What an LMDB data file says of itself, read before it is mapped.
struct LmdbFile {
  uint64_t txnid = 0;      // the newest valid meta page's transaction
  uint64_t last_page = 0;  // its last page in use
  uint32_t page_size = 0;
  uint64_t file_size = 0;
  std::string meta;  // that meta page's MDB_meta, as read_lmdb_meta() returns it
};
// Reads both meta pages of the data file at path; refuses (corruption) a file with no valid
// meta page, or one shorter than the pages its newest meta uses: mapping it would fault.
Result<LmdbFile> inspect_lmdb_file(const FileIo& io, const std::string& path);

// Writes meta into both meta pages of the data file at path and syncs it. Does nothing
// when the file does not exist yet.
Status restore_lmdb_meta(const FileIo& io, const std::string& path, uint32_t page_size,
                         std::string_view meta);

}  // namespace warren::storage
