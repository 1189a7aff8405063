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

// The id of the group commit that makes an operation's effect durable; 0 when nothing it
// did needs one. Engine::when_durable and Engine::wait_durable take it.
using CommitId = uint64_t;

// A result together with the commit that makes it durable.
template <class T>
struct Committed {
  T value;
  CommitId commit = 0;
};

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
