#include "storage/writer.h"

namespace warren::storage {
namespace {
constexpr size_t kRememberedFailures = 256;
}

Writer::Writer(Store& store, BatchDone on_done)
    : store_(store), on_done_(std::move(on_done)), thread_([this] { run(); }) {}

Writer::~Writer() { stop(); }

uint64_t Writer::submit(Op op) {
  std::lock_guard lock(mutex_);
  bool wake = pending_.empty();
  add_pending(std::move(op));
  if (wake) work_cv_.notify_one();
  return open_batch_;
}

uint64_t Writer::submit(std::vector<Op>& ops) {
  if (ops.empty()) return last_submitted();
  std::lock_guard lock(mutex_);
  bool wake = pending_.empty();
  for (auto& op : ops) add_pending(std::move(op));
  ops.clear();
  if (wake) work_cv_.notify_one();
  return open_batch_;
}

void Writer::add_pending(Op op) {
  uint64_t bytes = op.kind == Op::Kind::put_message ? op.bytes : 0;
  pending_bytes_ += bytes;
  backlog_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  pending_.push_back(std::move(op));
}

uint64_t Writer::last_submitted() const {
  std::lock_guard lock(mutex_);
  return pending_.empty() ? open_batch_ - 1 : open_batch_;
}

Status Writer::wait_for(uint64_t id, std::chrono::steady_clock::time_point deadline,
                        bool* timed_out) {
  std::unique_lock lock(mutex_);
  *timed_out = !done_cv_.wait_until(lock, deadline, [&] { return committed_.load() >= id; });
  if (*timed_out) return {};
  for (const auto& [failed, status] : failures_)
    if (failed == id) return status;
  return {};
}

bool Writer::failed_between(uint64_t from, uint64_t to) const {
  std::lock_guard lock(mutex_);
  if (from <= forgotten_failures_upto_) return true;
  for (const auto& [id, status] : failures_)
    if (id >= from && id <= to) return true;
  return false;
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
  if (thread_.joinable()) thread_.join();
}

void Writer::record_outcome(uint64_t id, const Status& status, uint64_t bytes) {
  {
    std::lock_guard lock(mutex_);
    if (!status) {
      failures_.emplace_back(id, status);
      if (failures_.size() > kRememberedFailures) {
        forgotten_failures_upto_ = failures_.front().first;
        failures_.pop_front();
      }
    }
    backlog_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    committed_.store(id, std::memory_order_release);
  }
  done_cv_.notify_all();
}

void Writer::run() {
  std::vector<Op> batch;
  for (;;) {
    uint64_t id, bytes;
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return !pending_.empty() || stopping_; });
      if (pending_.empty()) return;  // stopping, and everything is written
      // Not while someone holds a SameBatch (that is quick): re-check after waiting for it.
      lock.unlock();
      std::lock_guard same(swap_mutex_);
      lock.lock();
      batch.swap(pending_);
      bytes = pending_bytes_;
      pending_bytes_ = 0;
      id = open_batch_++;
    }
    Status status = store_.write(batch);
    batch.clear();
    record_outcome(id, status, bytes);
    if (on_done_) on_done_(id, status);
  }
}

}  // namespace warren::storage
