// Shovels: store and forward between this broker and another (RabbitMQ or Warren), with the
// keys and meaning of RabbitMQ's dynamic shovels.
//
//   broker->declare_shovel({.name = "uplink",
//                           .src_queue = "outbox",
//                           .dest_uri = {"amqp://user:secret@central.example/%2F"},
//                           .dest_exchange = "telemetry"});
//
// A URI "amqp://" with no host is this broker. Definitions are durable: after a restart each
// shovel resumes, and with ack_mode on_confirm nothing its source held is lost (messages in
// flight at a break are sent again; see docs/shovels.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "warren/properties.h"

namespace warren {

enum class ShovelAckMode {
  on_confirm,  // the source message is acknowledged once the destination confirmed it
  on_publish,  // ... once it was written to the destination
  no_ack,      // consumed without acknowledgements: a break loses what was in flight
};

struct ShovelDefinition {
  std::string vhost = "/";
  std::string name = {};
  // Several URIs: each (re)connection tries them in turn.
  std::vector<std::string> src_uri = {"amqp://"};
  std::string src_queue = {};  // or src_exchange: a queue of the shovel's own is bound to it
  std::string src_exchange = {};
  std::string src_exchange_key = "#";
  std::vector<std::string> dest_uri = {"amqp://"};
  std::string dest_queue = {};  // or dest_exchange
  std::string dest_exchange = {};
  std::optional<std::string> dest_exchange_key = {};  // absent: each message's own routing key
  ShovelAckMode ack_mode = ShovelAckMode::on_confirm;
  uint16_t src_prefetch_count = 1000;
  // "never" (both unset), "queue-length" (the source's length when the shovel starts), or N.
  bool src_delete_after_queue_length = false;
  std::optional<uint64_t> src_delete_after = {};
  // Seconds to wait before reconnecting after a failure; 0: a failed shovel stays stopped.
  double reconnect_delay = 5;
  bool add_forward_headers = false;              // the x-shovelled header, as RabbitMQ writes it
  bool dest_add_timestamp_header = false;        // x-shovelled-timestamp
  BasicProperties dest_publish_properties = {};  // set fields replace the message's own
};

struct ShovelStatus {
  std::string vhost = {};
  std::string name = {};
  std::string state = {};  // "starting", "running", "terminated"
  std::string reason;      // why it last stopped (kept while it runs again)
  uint64_t forwarded = 0;  // messages the destination accepted (confirmed, or written)
  uint64_t resent = 0;     // messages sent again after a break: the possible duplicates
  uint64_t in_flight = 0;  // sent, not yet confirmed
  bool blocked = false;    // the destination said connection.blocked
  // Messages ready in the source queue, when the source is this broker.
  std::optional<uint64_t> pending = {};
  int64_t last_connected_ms = 0;  // wall clock of the last time both ends were up; 0: never
  int64_t state_since_ms = 0;
};

}  // namespace warren
