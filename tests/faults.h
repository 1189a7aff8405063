// Disks that misbehave on purpose, through the store's fault-injection seam.
#pragma once

#include <condition_variable>
#include <mutex>

#include "storage/store.h"

namespace warren::testing {

// Every commit waits until the disk is opened; hang() makes the next ones wait again.
class StuckDisk : public storage::FaultInjector {
 public:
  Status before_commit(const storage::CommitInfo&) override {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return open_; });
    return {};
  }
  void open() {
    std::lock_guard lock(m_);
    open_ = true;
    cv_.notify_all();
  }
  void hang() {
    std::lock_guard lock(m_);
    open_ = false;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

}  // namespace warren::testing
