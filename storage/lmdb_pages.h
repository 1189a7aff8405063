// Reading an LMDB data file's B-trees page by page, without LMDB.
//
// LMDB trusts its pages: a zeroed or flipped page makes it follow a wild page number,
// assert or fault, and a damaged free list makes it hand out pages still in use. So before
// a store is mapped by LMDB, every branch, leaf and overflow header page reachable from the
// current meta is checked here: each page names itself, its bounds and nodes lie inside
// it, keys are in order and inside the range their parent gives them, every leaf is at the
// depth the database records, the page counts match, and no page is used twice or both
// used and free. The same walk reads every record it can reach for `warrend --check` and
// for salvage, skipping damaged subtrees instead of stopping.
//
// The layout is LMDB 0.9's on a 64-bit machine (see storage/lmdb_meta.h); the walk never
// touches bytes outside the pages the meta says are in use, which inspect_lmdb_file() has
// checked the file holds.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "storage/file_io.h"

namespace warren::storage {

struct PageWalk {
  std::vector<std::string> damage;  // pages and records LMDB could not safely read
  std::vector<std::string> notes;   // harmless findings: pages neither used nor free
  uint64_t pages_read = 0;
};

// Called for every record of every named database reachable through undamaged pages.
using RecordVisitor = std::function<void(std::string_view db, std::string_view key, std::string_view value)>;
// Whether a key has a shape its named database can hold; a key that LMDB reads but the
// store could not is damage too.
using KeyCheck = std::function<bool(std::string_view db, std::string_view key)>;

// Walks the data file at path as its newest valid meta describes it. A file that cannot be
// read at all (no valid meta, truncated) is an error; damage inside it is reported.
Result<PageWalk> walk_lmdb_file(const FileIo& io, const std::string& path, const KeyCheck& key_ok,
                                const RecordVisitor& visit = {});

// walk_lmdb_file() without records: a corruption error naming the damage, if any.
Status audit_lmdb_file(const FileIo& io, const std::string& path, const KeyCheck& key_ok);

}  // namespace warren::storage
