// What the core hands to the layer above (the in-process API or the AMQP server).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storage/records.h"
#include "warren/properties.h"
#include "warren/status.h"

namespace warren::core {

using MessagePtr = std::shared_ptr<const storage::MessageData>;

struct DeliveryInfo {
  uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string consumer_tag;    // empty for basic.get
  uint32_t message_count = 0;  // basic.get only
  MessagePtr message;          // exchange, routing key, properties (wire) and body
};

struct ReturnInfo {
  ReplyCode code = ReplyCode::no_route;
  std::string text;
  MessagePtr message;
};

// A message as a publisher hands it over. Both forms of the properties are carried: the
// decoded ones for routing decisions, the wire bytes to store and deliver unchanged.
struct PublishInput {
  std::string exchange;
  std::string routing_key;
  bool mandatory = false;
  BasicProperties properties;
  std::string properties_wire;
  std::string body;
};

// Events a channel raises towards its owner. Called on the event-loop thread.
class ChannelSink {
 public:
  virtual ~ChannelSink() = default;
  virtual void on_deliver(DeliveryInfo delivery) = 0;
  virtual void on_confirm(uint64_t seq, bool multiple, bool ack) = 0;
  // Publish `seq` will be confirmed once writer batch `batch` commits (or nacked if it
  // fails). Lets a waiter watch the commit itself instead of waiting for the loop.
  virtual void on_confirm_pending(uint64_t /*seq*/, uint64_t /*batch*/) {}
  virtual void on_return(ReturnInfo returned) = 0;
  // The broker cancelled a consumer (its queue was deleted).
  virtual void on_consumer_cancelled(const std::string& consumer_tag) = 0;
  // The broker closed the channel because of `reason` (a hard error closes the connection).
  virtual void on_closed(const Status& reason) = 0;
  // False while the owner cannot take more deliveries (its output is backed up); the
  // channel then holds them until Channel::resume_deliveries().
  virtual bool ready_for_delivery() const { return true; }
};

}  // namespace warren::core
