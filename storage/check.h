// Walking a store for damage, and copying what is readable out of a damaged one. Both read
// the data file page by page (storage/lmdb_pages.h), not through LMDB, so a damaged page
// is reported or skipped instead of faulting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "storage/store.h"

namespace warren::storage {

struct CheckReport {
  uint64_t records = 0;               // records read
  std::vector<std::string> problems;  // one line each: where, and what is wrong
  std::vector<std::string> notes;     // findings that lose nothing
  bool clean() const { return problems.empty(); }
};

// Opens the store as warrend would (replaying its journal), closes it, then reads every
// page and record of its data file: damaged pages, records whose checksum, format or key
// is wrong, and per-queue counters that do not match the messages stored. A store that
// does not open is reported, and its data file still read as it is.
Result<CheckReport> check_store(const StoreOptions& options);

struct SalvageReport {
  uint64_t definitions = 0;       // exchanges, queues and bindings copied
  uint64_t messages = 0;          // messages copied
  std::vector<std::string> lost;  // what could not be read
};

// Copies every readable definition, persistent message and deduplication entry of `from`
// into a new store `to`, keeping queue ids and message order. `from` is first opened
// accepting data loss, to replay what its journal can; damaged pages are skipped.
Result<SalvageReport> salvage_store(const StoreOptions& from, const StoreOptions& to);

// A stopped store's queues and how many messages each holds, read from its data file
// without opening it (warrenctl --offline): nothing is written, no lock is taken.
struct StoredQueue {
  std::string vhost, name;
  uint64_t messages = 0, bytes = 0;
};
Result<std::vector<StoredQueue>> stored_queues(const StoreOptions& options);

}  // namespace warren::storage
