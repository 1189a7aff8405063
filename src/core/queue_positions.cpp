#include "core/queue_positions.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace warren::core {

#if defined(WARREN_CHECK_THREADS) || !defined(NDEBUG)
constexpr bool kChecked = true;
#else
constexpr bool kChecked = false;
#endif

namespace {
[[noreturn]] void drifted(const char* what) {
  std::fprintf(stderr, "warren: queue positions drifted: %s\n", what);
  std::abort();
}
}  // namespace

void QueuePositions::check() const {
  if (kChecked && !consistent()) drifted("an invariant no longer holds");
}

bool QueuePositions::consistent() const {
  if (read_ > next_ || ready_ < returned_.size()) return false;
  if (!returned_.empty() && returned_.rbegin()->first >= read_) return false;
  for (const auto& [seq, held] : returned_)
    if (delayed_.count(seq) || removing_.count(seq)) return false;
  return true;
}

void QueuePositions::count_out(uint64_t bytes) {
  if (ready_ == 0) {
    if (kChecked) drifted("a message left a queue with none ready");
    return;  // release builds: never wrap around
  }
  --ready_;
  if (bytes > ready_bytes_) {
    if (kChecked && bytes_known_) drifted("more bytes left than were ready");
    bytes = ready_bytes_;
  }
  ready_bytes_ -= bytes;
}

void QueuePositions::recover(uint64_t first, uint64_t next, uint64_t count, uint64_t bytes) {
  read_ = std::max(first, uint64_t{1});
  next_ = std::max(next, read_);
  ready_ = count;
  ready_bytes_ = bytes;
  check();
}

void QueuePositions::recover_delayed(uint64_t seq, Held held) {
  if (!delayed_.emplace(seq, held).second) return;
  count_out(held.bytes);
  check();
}

uint64_t QueuePositions::append(uint64_t bytes) {
  count_in(bytes);
  return next_++;
}

void QueuePositions::never_stored(uint64_t seq, uint64_t bytes) {
  if (seq >= read_ && !held_in_stream(seq)) {
    count_out(bytes);
  } else if (returned_.erase(seq)) {
    count_out(bytes);
  } else {
    removing_.erase(seq);  // already counted out when its removal began
    delayed_.erase(seq);
  }
  check();
}

std::optional<std::pair<uint64_t, QueuePositions::Held>> QueuePositions::pop_returned() {
  if (returned_.empty()) return std::nullopt;
  auto node = returned_.extract(returned_.begin());
  count_out(node.mapped().bytes);
  check();
  return std::pair{node.key(), node.mapped()};
}

void QueuePositions::skip_to(uint64_t seq) {
  read_ = std::clamp(seq, read_, next_);
  check();
}

void QueuePositions::take_from_stream(uint64_t seq, uint64_t bytes) {
  if (kChecked && (seq < read_ || seq >= next_ || held_in_stream(seq)))
    drifted("took a stream message that is not ready");
  read_ = seq + 1;
  count_out(bytes);
  check();
}

void QueuePositions::take_unreadable(uint64_t seq) {
  bytes_known_ = false;
  take_from_stream(seq, 0);
}

void QueuePositions::give_back(uint64_t seq, Held held) {
  // Below the read position it must be remembered; at or above it the stream finds it.
  if (seq < read_) returned_.emplace(seq, held);
  count_in(held.bytes);
  check();
}

void QueuePositions::unread(uint64_t seq, Held held, bool was_returned) {
  if (!was_returned && seq + 1 == read_) {
    read_ = seq;  // unread again, not counted as returned
    count_in(held.bytes);
    check();
    return;
  }
  give_back(seq, held);
}

void QueuePositions::delay(uint64_t seq, Held held) {
  delayed_.emplace(seq, held);
  check();
}

std::optional<QueuePositions::Held> QueuePositions::end_delay(uint64_t seq) {
  auto it = delayed_.find(seq);
  if (it == delayed_.end()) return std::nullopt;
  Held held = it->second;
  delayed_.erase(it);
  return held;
}

bool QueuePositions::is_ready(uint64_t seq) const {
  if (returned_.count(seq)) return true;
  return seq >= read_ && seq < next_ && !held_in_stream(seq);
}

void QueuePositions::remove_ready(uint64_t seq, uint64_t bytes, uint64_t commit) {
  if (kChecked && !is_ready(seq)) drifted("removed a message that is not ready");
  count_out(bytes);
  if (returned_.erase(seq)) {
    // nothing else remembers it
  } else if (seq == read_) {
    ++read_;  // at the read position: simply step over it
  } else {
    removing_[seq] = commit;  // ahead of it: step around it until its deletion lands
  }
  check();
}

void QueuePositions::removed_through(uint64_t commit) {
  std::erase_if(removing_, [&](const auto& entry) { return entry.second <= commit; });
}

QueuePositions::Purged QueuePositions::purge() {
  Purged out;
  out.count = ready_;
  out.returned.assign(returned_.begin(), returned_.end());
  uint64_t from = read_;
  for (auto it = delayed_.lower_bound(read_); it != delayed_.end(); ++it) {
    if (from < it->first) out.ranges.emplace_back(from, it->first);
    from = it->first + 1;
  }
  if (from < next_) out.ranges.emplace_back(from, next_);
  returned_.clear();
  read_ = next_;
  ready_ = 0;
  ready_bytes_ = 0;
  bytes_known_ = true;
  check();
  return out;
}

void QueuePositions::clear() {
  returned_.clear();
  delayed_.clear();
  removing_.clear();
  read_ = next_;
  ready_ = 0;
  ready_bytes_ = 0;
}

}  // namespace warren::core
