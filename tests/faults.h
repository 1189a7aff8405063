// Disks that misbehave on purpose, through the store's fault-injection seam.
#pragma once

#include <condition_variable>
#include <map>
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

namespace warren::testing {

// Fails chosen system calls of the store (storage/file_io.h) and, optionally, commits.
class IoFaults : public storage::FaultInjector {
 public:
  // The next `times` calls at `point` fail with `error` (times < 0: every call), after
  // `written` bytes of a write reached the file.
  void fail(storage::IoPoint point, int error, int times = -1, size_t written = 0) {
    std::lock_guard lock(m_);
    rules_[point] = {error, written, times};
  }
  void fail_commits(bool on) {
    std::lock_guard lock(m_);
    fail_commits_ = on;
  }
  void clear() {
    std::lock_guard lock(m_);
    rules_.clear();
    fail_commits_ = false;
  }
  // How many calls at `point` failed so far.
  int failed(storage::IoPoint point) {
    std::lock_guard lock(m_);
    return failed_[point];
  }

  storage::IoFault on_io(storage::IoPoint point, size_t) override {
    std::lock_guard lock(m_);
    auto it = rules_.find(point);
    if (it == rules_.end() || it->second.times == 0) return {};
    if (it->second.times > 0) --it->second.times;
    ++failed_[point];
    return {it->second.error, it->second.written};
  }
  Status before_commit(const storage::CommitInfo&) override {
    std::lock_guard lock(m_);
    if (fail_commits_) return Status::storage(StorageFault::io_error, "injected: LMDB's write failed");
    return {};
  }

 private:
  struct Rule {
    int error;
    size_t written;
    int times;
  };
  std::mutex m_;
  std::map<storage::IoPoint, Rule> rules_;
  std::map<storage::IoPoint, int> failed_;
  bool fail_commits_ = false;
};

}  // namespace warren::testing
