// The one place that reads and writes LMDB's file format directly: its meta pages.
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

// Writes meta into both meta pages of the data file at path and syncs it. Does nothing
// when the file does not exist yet.
Status restore_lmdb_meta(const FileIo& io, const std::string& path, uint32_t page_size,
                         std::string_view meta);

}  // namespace warren::storage
