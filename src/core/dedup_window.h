// A queue's publish-side deduplication window (x-message-deduplication). The store keeps
// it as a log of digests in insertion order (storage/keys.h, 'O' entries), appended in the
// same commit as each message and trimmed from its head; this is its index in memory,
// loaded from that log on first use. A digest-keyed B-tree in the store made every publish
// dirty a random page (a tenth of the publish rate); the log only appends.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "core/queue_settings.h"
#include "storage/store.h"
#include "storage/writer.h"

namespace warren::core {

class DedupWindow {
 public:
  struct Digest {
    uint64_t hi = 0, lo = 0;
    bool operator==(const Digest&) const = default;
  };
  static Digest from_bytes(std::string_view sixteen);

  explicit DedupWindow(const DedupSettings& settings) : settings_(settings) {}

  bool loaded() const { return loaded_; }
  void load(storage::ReadView& view, uint64_t queue_id, uint64_t now);

  // If the digest is in the window: the commit that stores its message (0: landed).
  std::optional<uint64_t> find(const Digest& d, uint64_t now) const;
  // Adds a digest whose message `commit` stores; returns its order number for the store.
  uint64_t insert(const Digest& d, uint64_t now, uint64_t commit);
  // Commits up to outcomes.through are done; the inserts of failed ones never happened.
  void on_commits(const storage::CommitOutcomes& outcomes);
  bool has_pending() const { return !pending_.empty(); }

 private:
  struct Hash {
    size_t operator()(const Digest& d) const { return size_t(d.hi ^ d.lo); }
  };
  struct Entry {
    uint64_t order, inserted_at, commit;
  };
  void trim(uint64_t now);

  const DedupSettings settings_;
  bool loaded_ = false;
  uint64_t next_order_ = 0;
  std::deque<std::pair<Digest, uint64_t>> log_;  // (digest, order), oldest first
  std::unordered_map<Digest, Entry, Hash> index_;
  std::deque<std::pair<uint64_t, Digest>> pending_;  // (commit, digest) not yet landed
};

}  // namespace warren::core
