// Messages as a publisher hands them over and as a consumer receives them.
#pragma once

#include <cstdint>
#include <string>

#include "warren/properties.h"

namespace warren {

struct Message {
  std::string body = {};
  BasicProperties properties = {};
};

struct PublishOptions {
  // Unroutable messages come back through the channel's return callback (312 NO_ROUTE)
  // instead of being dropped.
  bool mandatory = false;
};

// A message handed to a consumer (basic.deliver) or returned by basic_get (basic.get-ok).
struct Delivery {
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange = {};
  std::string routing_key = {};
  std::string consumer_tag = {};  // empty for basic_get
  uint32_t message_count = 0;     // basic_get only: ready messages left in the queue
  Message message;
};

// An unroutable mandatory message coming back to its publisher (basic.return).
struct ReturnedMessage {
  uint16_t reply_code = 312;
  std::string reply_text = {};  // "NO_ROUTE"
  std::string exchange = {};
  std::string routing_key = {};
  Message message;
};

}  // namespace warren
