// Dead-lettering as RabbitMQ does it: the copy of a message that goes to a queue's
// dead-letter exchange, with its x-death history.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/records.h"
#include "warren/properties.h"

namespace warren::core {

struct DeadLetterTarget {
  std::string exchange;                    // x-dead-letter-exchange ('' = default exchange)
  std::optional<std::string> routing_key;  // x-dead-letter-routing-key
};

struct DeadLettered {
  storage::MessageData message;           // a new message: no expiry, count or retry time
  BasicProperties properties;             // its properties, decoded
  std::vector<std::string> routing_keys;  // where the copy is routed
};

// Builds the copy of `original`, dead-lettered from `queue` for `reason` ("rejected",
// "expired", "maxlen", "delivery_limit") at `now` (seconds). x-death gets a new entry at the
// front, or the entry for the same queue and reason counts up and moves to the front;
// x-first-death-* are set once; x-last-death-* (RabbitMQ 3.13) every time; the expiration
// property is removed (kept as original-expiration); with a dead-letter routing key the CC
// header goes.
DeadLettered dead_letter_copy(const storage::MessageData& original, std::string_view queue,
                              std::string_view reason, const DeadLetterTarget& target, uint64_t now);

}  // namespace warren::core
