#include "storage/writer.h"

#include <fmt/format.h>

namespace warren::storage {
namespace {
// Failures the consumer has seen are kept this long for late waiters.
constexpr size_t kRememberedFailures = 1024;
}  // namespace

Writer::Writer(Store& store, Finished on_finished)
    : store_(store), on_finished_(std::move(on_finished)), thread_([this] { run(); }) {}

Writer::~Writer() { stop(); }

uint64_t Writer::submit(std::vector<Op>&& ops) {
  if (ops.empty()) return last_submitted();
  uint64_t id;
  {
    std::lock_guard lock(mutex_);
    bool wake = pending_.empty();
    for (auto& op : ops) {
      uint64_t bytes = op.kind == Op::Kind::put_message ? op.bytes : 0;
      pending_bytes_ += bytes;
      backlog_bytes_.fetch_add(bytes, std::memory_order_relaxed);
      pending_.push_back(std::move(op));
    }
    id = submitted_.load(std::memory_order_relaxed) + 1;
    submitted_.store(id, std::memory_order_release);
    if (wake) work_cv_.notify_one();
  }
  ops.clear();
  return id;
}

Status Writer::outcome(uint64_t id) const {
  // finished() first: a failure is held before its commit counts as finished.
  if (id <= finished() && failures_held_.load(std::memory_order_acquire) == 0) return {};
  std::lock_guard lock(mutex_);
  for (const Failure& f : failures_)
    if (id >= f.first && id <= f.last) return f.status;
  if (id <= forgotten_upto_)
    return Status::storage(StorageFault::io_error,
                           fmt::format("the outcome of commit {} is no longer known", id));
  return {};
}

CommitOutcomes Writer::outcomes_after(uint64_t from) const {
  CommitOutcomes out;
  // finished_ is stored after a failure is held (both under the mutex): seeing the commit
  // finished means seeing its failure counted too.
  out.through = finished();
  if (failures_held_.load(std::memory_order_acquire) == 0) return out;
  std::lock_guard lock(mutex_);
  for (const Failure& f : failures_)
    if (f.last > from && f.first <= out.through) out.failed.push_back(f);
  return out;
}

void Writer::consumed(uint64_t id) {
  if (failures_held_.load(std::memory_order_acquire) <= kRememberedFailures) return;
  std::lock_guard lock(mutex_);
  consumed_ = std::max(consumed_, id);
  while (failures_.size() > kRememberedFailures && failures_.front().last <= consumed_) {
    forgotten_upto_ = failures_.front().last;
    failures_.pop_front();
  }
  failures_held_.store(failures_.size(), std::memory_order_release);
}

Status Writer::wait_for(uint64_t id, std::chrono::steady_clock::time_point deadline,
                        bool* timed_out) const {
  {
    std::unique_lock lock(mutex_);
    *timed_out = !done_cv_.wait_until(lock, deadline, [&] { return finished() >= id; });
    if (*timed_out) return {};
  }
  return outcome(id);
}

void Writer::wait_for_room(uint64_t limit) {
  if (backlog_bytes_.load(std::memory_order_relaxed) <= limit) return;
  std::unique_lock lock(mutex_);
  done_cv_.wait(lock, [&] { return backlog_bytes_.load() <= limit || stopping_; });
}

void Writer::release(uint64_t bytes) {
  if (bytes == 0) return;
  {
    std::lock_guard lock(mutex_);
    backlog_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  done_cv_.notify_all();
}

void Writer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  work_cv_.notify_one();
  done_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Writer::record_outcome(uint64_t first, uint64_t last, const Status& status, uint64_t bytes) {
  {
    std::lock_guard lock(mutex_);
    if (!status) {
      failures_.push_back({first, last, status});
      failures_held_.store(failures_.size(), std::memory_order_release);
    }
    backlog_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    finished_.store(last, std::memory_order_release);
  }
  done_cv_.notify_all();
}

void Writer::run() {
  std::vector<Op> batch;
  for (;;) {
    uint64_t first, last, bytes;
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return !pending_.empty() || stopping_; });
      if (pending_.empty()) return;  // stopping, and everything is written
      batch.swap(pending_);
      bytes = pending_bytes_;
      pending_bytes_ = 0;
      first = finished_.load(std::memory_order_relaxed) + 1;
      last = submitted_.load(std::memory_order_relaxed);
    }
    Status status = store_.write(batch);
    batch.clear();
    record_outcome(first, last, status, bytes);
    if (on_finished_) on_finished_();
  }
}

}  // namespace warren::storage
