// What a queue's arguments ask of it, parsed once at declaration (core/args.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace warren::core {

enum class Overflow { drop_head, reject_publish, reject_publish_dlx };

// x-requeue-delay: a message returned with nack/reject(requeue=true) for the n-th time is
// held for base * factor^(n-1) ms, at most max_ms, before it is ready again.
struct Backoff {
  uint64_t base_ms = 0;
  double factor = 1;
  uint64_t max_ms = UINT64_MAX;

  uint64_t delay_for(uint32_t returns) const {
    double d = double(base_ms) * std::pow(factor, double(returns > 0 ? returns - 1 : 0));
    return d >= double(max_ms) ? max_ms : uint64_t(d);
  }
};

// x-message-deduplication: the publish-side window.
struct DedupSettings {
  std::string header;  // x-deduplication-header: the header holding the key; else message_id
  uint64_t cache_size = 100'000;
  uint64_t cache_ttl_ms = 0;  // 0: entries leave by size only
};

struct QueueSettings {
  bool quorum = false;                     // x-queue-type=quorum
  std::optional<uint64_t> message_ttl;     // x-message-ttl, ms
  std::optional<uint64_t> expires;         // x-expires, ms unused before deletion
  std::optional<uint64_t> max_length;      // x-max-length, ready messages
  std::optional<uint64_t> max_length_bytes;  // x-max-length-bytes, ready body bytes
  Overflow overflow = Overflow::drop_head;
  std::optional<uint64_t> delivery_limit;  // x-delivery-limit
  std::optional<Backoff> requeue_delay;    // x-requeue-delay
  std::optional<DedupSettings> dedup;      // x-message-deduplication
  uint8_t max_priority = 0;                // x-max-priority: priorities 0..max, one lane each
  bool single_active_consumer = false;     // x-single-active-consumer

  // Whether each return to the queue is counted in the message (x-delivery-count).
  bool counts_deliveries() const { return quorum || delivery_limit || requeue_delay; }
  bool has_length_limit() const { return max_length || max_length_bytes; }
};

}  // namespace warren::core
