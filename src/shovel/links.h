// The two ends of a shovel. Each is this broker (a core channel on an in-process
// connection) or another one (an AmqpClient); the shovel sees only these interfaces.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/engine.h"
#include "shovel/amqp_client.h"
#include "warren/shovel.h"

namespace warren::shovel {

// A message on its way through a shovel.
struct Carried {
  std::string exchange;
  std::string routing_key;
  std::string properties;  // as on the wire
  std::string body;
  bool redelivered = false;
};

class SourceLink {
 public:
  struct Events {
    // Consuming; `length` is the source queue's ready count when the shovel started.
    std::function<void(uint64_t length)> ready;
    std::function<void(uint64_t tag, Carried message)> message;
    std::function<void(const Status& why)> failed;
  };
  virtual ~SourceLink() = default;
  // Declares what the definition names, sets the prefetch, consumes.
  virtual void start(Events events) = 0;
  virtual void ack(uint64_t tag, bool multiple) = 0;
  // Unacknowledged messages go back to the source queue, in their places.
  virtual void stop() = 0;
};

class DestinationLink {
 public:
  struct Events {
    std::function<void()> ready;
    std::function<void(uint64_t seq, bool multiple, bool ack)> confirm;
    std::function<void(uint64_t seq)> written;  // publishes up to seq have left this process
    std::function<void(const std::string& why)> returned;
    std::function<void(bool blocked)> blocked;
    std::function<void(const Status& why)> failed;
  };
  virtual ~DestinationLink() = default;
  virtual void start(Events events) = 0;
  // Publish sequence number; confirms and `written` name these.
  virtual uint64_t publish(const std::string& exchange, const std::string& routing_key,
                           const std::string& properties, const std::string& body) = 0;
  virtual void stop() = 0;
};

// A local source queue is declared as soon as the shovel exists, not when its destination
// first answers: what is published meanwhile must find it. No-op for other sources.
void declare_local_source(core::Engine& engine, const ShovelDefinition& definition,
                          const AmqpUri& uri);

// One end of `definition`: `uri` says which broker. Local ends run on `engine`.
std::unique_ptr<SourceLink> make_source(core::Engine& engine, const ShovelDefinition& definition,
                                        const AmqpUri& uri);
std::unique_ptr<DestinationLink> make_destination(core::Engine& engine,
                                                  const ShovelDefinition& definition,
                                                  const AmqpUri& uri);

}  // namespace warren::shovel
