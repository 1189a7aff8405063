// Ownership of the broker state. Exactly one thread at a time holds the token and may run
// core code: the event loop while it runs a handler, or a caller thread that found the
// loop idle and runs its operation itself rather than waking the loop and waiting (which
// costs two thread wake-ups per call). Core code itself needs no other lock.
#pragma once

#include <atomic>
#include <mutex>

namespace warren::core {

class LoopToken {
 public:
  // The loop's way in: it may wait, and callers yield to it while it does. Re-entrant: a
  // thread that holds the token (a server thread holds it for good) just goes on.
  void lock() {
    if (held_here()) {
      ++depth_;
      return;
    }
    waiting_.fetch_add(1, std::memory_order_relaxed);
    mutex_.lock();
    waiting_.fetch_sub(1, std::memory_order_relaxed);
    holder_ = this;
  }
  // A caller's way in: only when nobody holds the token or waits for it, so a caller in
  // a tight loop cannot starve the loop of its turn.
  bool try_lock() {
    if (waiting_.load(std::memory_order_relaxed) > 0 || !mutex_.try_lock()) return false;
    holder_ = this;
    return true;
  }
  void unlock() {
    if (depth_ > 0) {
      --depth_;
      return;
    }
    holder_ = nullptr;
    mutex_.unlock();
  }
  // Whether the calling thread holds this token (so it may run core code inline).
  bool held_here() const { return holder_ == this; }

 private:
  std::mutex mutex_;
  std::atomic<int> waiting_{0};
  int depth_ = 0;  // re-entries by the holder
  static inline thread_local const LoopToken* holder_ = nullptr;
};

}  // namespace warren::core
