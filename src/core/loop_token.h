// Ownership of the broker state. Exactly one thread at a time holds the token and may run
// core code: the event loop while it runs a handler, or a caller thread that found the
// loop idle and runs its operation itself rather than waking the loop and waiting (which
// costs two thread wake-ups per call). Core code itself needs no other lock.
#pragma once

#include <mutex>

namespace warren::core {

class LoopToken {
 public:
  void lock() {
    mutex_.lock();
    holder_ = this;
  }
  bool try_lock() {
    if (!mutex_.try_lock()) return false;
    holder_ = this;
    return true;
  }
  void unlock() {
    holder_ = nullptr;
    mutex_.unlock();
  }
  // Whether the calling thread holds this token (so it may run core code inline).
  bool held_here() const { return holder_ == this; }

 private:
  std::mutex mutex_;
  static inline thread_local const LoopToken* holder_ = nullptr;
};

}  // namespace warren::core
