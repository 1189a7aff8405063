// Consumer options and the callbacks a channel invokes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "warren/field_table.h"
#include "warren/message.h"

namespace warren {

// Callbacks run on the broker's event thread, one at a time. They may call any method of
// any channel (those run inline), but should hand long work to another thread: while a
// callback runs, the broker serves no one else. Once Channel::close() has returned, no
// callback of that channel runs again.
using DeliveryCallback = std::function<void(Delivery)>;
using ConfirmCallback = std::function<void(uint64_t delivery_tag, bool multiple, bool ack)>;
using ReturnCallback = std::function<void(ReturnedMessage)>;
using CancelCallback = std::function<void(const std::string& consumer_tag)>;

struct ConsumeOptions {
  std::string consumer_tag = {};  // empty: the broker picks "amq.ctag-..."
  bool no_ack = false;            // deliveries count as acknowledged when sent
  bool exclusive = false;         // no other consumer may use the queue meanwhile
  FieldTable arguments = {};      // e.g. "x-priority"
  // Called when the broker cancels the consumer (its queue was deleted).
  CancelCallback on_cancel = {};
};

}  // namespace warren
