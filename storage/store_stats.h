// What the store counts about itself, for metrics: written by the writer thread, read by
// anyone (relaxed atomics: each number is exact, a set of them is not a snapshot).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace warren::storage {

// A latency histogram with Prometheus's cumulative-bucket shape (bounds in seconds).
class LatencyHistogram {
 public:
  static constexpr std::array<double, 12> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   0.5,    1.0};
  void record(std::chrono::nanoseconds d) {
    const double seconds = std::chrono::duration<double>(d).count();
    size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);  // the last bucket is +Inf
    sum_ns_.fetch_add(uint64_t(d.count()), std::memory_order_relaxed);
  }
  uint64_t bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  double sum_seconds() const { return double(sum_ns_.load(std::memory_order_relaxed)) / 1e9; }

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

struct StoreStats {
  std::atomic<uint64_t> commits{0};       // LMDB transactions committed
  std::atomic<uint64_t> message_puts{0};  // messages written by them
  std::atomic<uint64_t> checkpoints{0};
  LatencyHistogram commit_seconds;        // a whole commit: journal, LMDB, sync
  LatencyHistogram journal_write_seconds; // the journal append (and its sync)
};

}  // namespace warren::storage
