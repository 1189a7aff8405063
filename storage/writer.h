// The group-commit writer (invariant D2). One thread takes everything submitted since its
// last transaction, writes it in one transaction, commits (durably), then reports it done.
// Submitters never wait for the disk unless they ask to; whatever arrives while a
// transaction is in flight simply rides in the next one, so there is no artificial delay.
//
// Every submit is numbered (its commit id, from 1): the ops of one submit always land in
// one transaction, and a transaction carries a run of consecutive submits. Only the thread
// that holds the broker's loop token submits, so the core knows a submit's id before it
// makes it (next_id) and can record it beside the in-memory state the submit changes.
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

// The outcome of a run of commits: every one up to `through` finished, and those in a
// failed range did not land.
struct CommitOutcomes {
  struct Failed {
    uint64_t first, last;
    Status status;
  };
  uint64_t through = 0;
  std::vector<Failed> failed;

  bool failed_commit(uint64_t id) const {
    for (const Failed& f : failed)
      if (id >= f.first && id <= f.last) return true;
    return false;
  }
};

class Writer {
 public:
  // Called on the writer thread after each transaction, in order.
  using Finished = std::function<void()>;

  Writer(Store& store, Finished on_finished);
  ~Writer();  // writes whatever is pending, then stops

  // Queues ops to be applied together; returns their commit id. An empty submit takes no id
  // and returns the last one.
  uint64_t submit(std::vector<Op>&& ops);
  // The id the next non-empty submit gets.
  uint64_t next_id() const { return last_submitted() + 1; }
  uint64_t last_submitted() const { return submitted_.load(std::memory_order_acquire); }
  // Every commit up to this one is written or failed.
  uint64_t finished() const { return finished_.load(std::memory_order_acquire); }

  // The outcome of a finished commit. One whose failure is too long ago to remember counts
  // as failed: a caller told "failed" retries, one wrongly told "stored" could lose data.
  Status outcome(uint64_t id) const;
  // Every commit after `from` up to finished(), with the failed ones.
  CommitOutcomes outcomes_after(uint64_t from) const;
  // The consumer of outcomes has seen everything up to `id`: failures up to it may be forgotten.
  void consumed(uint64_t id);
  // Waits until commit `id` is finished; returns its outcome. Not to be called from a thread
  // the writer's progress depends on (none does: it needs no other thread).
  Status wait_for(uint64_t id, std::chrono::steady_clock::time_point deadline, bool* timed_out) const;

  // Bytes of message bodies submitted and not yet written.
  uint64_t backlog_bytes() const { return backlog_bytes_.load(std::memory_order_relaxed); }
  // Blocks while the backlog is above limit.
  void wait_for_room(uint64_t limit);
  // Counts bytes on their way to being submitted (a publish queued in a channel's outbox),
  // so that publishers racing ahead of the loop are held too; released once submitted.
  void reserve(uint64_t bytes) { backlog_bytes_.fetch_add(bytes, std::memory_order_relaxed); }
  void release(uint64_t bytes);

  void stop();

 private:
  using Failure = CommitOutcomes::Failed;  // the commits of one failed transaction
  void run();
  void record_outcome(uint64_t first, uint64_t last, const Status& status, uint64_t bytes);

  Store& store_;
  Finished on_finished_;
  mutable std::mutex mutex_;
  mutable std::condition_variable done_cv_;
  std::condition_variable work_cv_;
  std::vector<Op> pending_;
  uint64_t pending_bytes_ = 0;
  std::atomic<uint64_t> submitted_{0};
  std::atomic<uint64_t> finished_{0};
  std::atomic<uint64_t> backlog_bytes_{0};
  std::deque<Failure> failures_;
  // failures_.size(), readable without the mutex: the common path (no failure held) then
  // needs no lock at all, so the loop never waits for the writer thread's mutex.
  std::atomic<size_t> failures_held_{0};
  uint64_t consumed_ = 0;
  uint64_t forgotten_upto_ = 0;  // failures up to here are no longer known
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace warren::storage
