// Ownership of the broker state. Exactly one thread at a time holds a broker's token and
// may run its core code: the event loop while it runs a handler, or a caller thread that
// found the loop idle and runs its operation itself rather than waking the loop and waiting
// (which costs two thread wake-ups per call). Core code itself needs no other lock.
//
// Each token knows its own holder, so one thread may hold the tokens of several brokers at
// once (a callback of broker A that calls broker B that calls A again) and re-enter any of
// them. Lock order and the rest of the threading rules: docs/architecture.md.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

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
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  }
  // A caller's way in: only when nobody holds the token or waits for it, so a caller in
  // a tight loop cannot starve the loop of its turn. Re-entrant like lock().
  bool try_lock() {
    if (held_here()) {
      ++depth_;
      return true;
    }
    if (waiting_.load(std::memory_order_relaxed) > 0 || !mutex_.try_lock()) return false;
    owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    return true;
  }
  void unlock() {
    if (depth_ > 0) {
      --depth_;
      return;
    }
    owner_.store(std::thread::id(), std::memory_order_relaxed);
    mutex_.unlock();
  }
  // Whether the calling thread holds this token (so it may run core code inline). Only the
  // holder ever stores its own id, so a relaxed load cannot see this thread's id wrongly.
  bool held_here() const { return owner_.load(std::memory_order_relaxed) == std::this_thread::get_id(); }

 private:
  std::mutex mutex_;
  std::atomic<int> waiting_{0};
  std::atomic<std::thread::id> owner_{};
  int depth_ = 0;  // re-entries by the holder
};

// Core entry points check that their caller holds the broker's token, in debug and
// sanitizer builds (WARREN_CHECK_THREADS); release builds pay nothing.
#if defined(WARREN_CHECK_THREADS) || !defined(NDEBUG)
inline void require_held(const LoopToken& token, const char* where) {
  if (token.held_here()) return;
  std::fprintf(stderr, "warren: %s called without holding the broker's loop token\n", where);
  std::abort();
}
#define WARREN_REQUIRE_LOOP(token) ::warren::core::require_held((token), __func__)
#else
#define WARREN_REQUIRE_LOOP(token) ((void)0)
#endif

}  // namespace warren::core
