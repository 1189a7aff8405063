// The group-commit writer (invariant D2). One thread takes everything submitted since its
// last commit, writes it in one transaction, commits (fsync), then reports the batch as
// done. Submitters never wait for the disk unless they ask to; whatever arrives while a
// commit is in flight simply rides in the next one, so there is no artificial delay.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/store.h"

namespace warren::storage {

class Writer {
 public:
  // Called on the writer thread after each batch, in batch order.
  using BatchDone = std::function<void(uint64_t batch, const Status& status)>;

  Writer(Store& store, BatchDone on_done);
  ~Writer();  // commits whatever is pending, then stops

  // Queues ops; returns the id of the batch that will carry them (ids start at 1).
  uint64_t submit(Op op);
  uint64_t submit(std::vector<Op>& ops);  // moves the ops out

  // The id of the last batch that holds anything submitted so far (0 if none).
  uint64_t last_submitted() const;

  // Waits until batch `id` is done; returns its outcome. Not to be called from a thread
  // the writer's completions depend on.
  Status wait_for(uint64_t id, std::chrono::steady_clock::time_point deadline, bool* timed_out);

  // Whether any batch in [from, to] failed (true too when that is too long ago to know).
  bool failed_between(uint64_t from, uint64_t to) const;

  // Bytes of message bodies submitted and not yet committed.
  uint64_t backlog_bytes() const { return backlog_bytes_.load(std::memory_order_relaxed); }
  // Blocks while the backlog is above limit.
  void wait_for_room(uint64_t limit);
  // Counts bytes on their way to being submitted (a publish queued in a channel's outbox),
  // so that publishers racing ahead of the loop are held too; released once submitted.
  void reserve(uint64_t bytes) { backlog_bytes_.fetch_add(bytes, std::memory_order_relaxed); }
  void release(uint64_t bytes);

  void stop();

  // While one exists, everything submitted lands in the same batch (the writer waits to
  // take it): for changes that must commit together, like a dead-letter move.
  class SameBatch {
   public:
    explicit SameBatch(Writer& w) : lock_(w.swap_mutex_) {}  // re-entrant: nested moves nest

   private:
    std::lock_guard<std::recursive_mutex> lock_;
  };

 private:
  void run();
  void add_pending(Op op);  // with mutex_ held
  void record_outcome(uint64_t id, const Status& status, uint64_t bytes);

  Store& store_;
  BatchDone on_done_;
  mutable std::mutex mutex_;
  std::recursive_mutex swap_mutex_;  // held while taking a batch, and by SameBatch
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::vector<Op> pending_;
  uint64_t pending_bytes_ = 0;
  uint64_t open_batch_ = 1;  // the batch now gathering ops
  std::atomic<uint64_t> committed_{0};
  std::atomic<uint64_t> backlog_bytes_{0};
  // Outcomes of recent failed batches, for wait_for; successes need no record.
  std::deque<std::pair<uint64_t, Status>> failures_;
  uint64_t forgotten_failures_upto_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace warren::storage
