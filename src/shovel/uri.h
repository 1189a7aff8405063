// AMQP URIs as RabbitMQ reads them (its "URI spec"):
//
//   amqp://user:password@host:port/vhost?heartbeat=10&connection_timeout=5000
//
// User, password and vhost are percent-decoded. No path means vhost "/"; a bare "/" means
// the vhost "" (as RabbitMQ has it). No host at all ("amqp://") means this broker.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/result.h"

namespace warren::shovel {

struct AmqpUri {
  bool local = false;  // no host: this broker, in-process
  bool tls = false;    // amqps
  std::string host;
  uint16_t port = 5672;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";
  bool vhost_given = false;                 // a local URI without one uses the shovel's vhost
  uint16_t heartbeat = 60;                  // seconds; 0 turns heartbeats off
  uint32_t connection_timeout_ms = 30'000;  // TCP connect and handshake together
  uint32_t frame_max = 131'072;
  std::map<std::string, std::string> query;  // every query parameter, decoded

  // The URI without user and password, as status pages and x-shovelled headers show it.
  std::string redacted() const;
};

// 400-style error with RabbitMQ's wording ("... not a valid URI: ...") when it is not one.
Result<AmqpUri> parse_amqp_uri(std::string_view text);

}  // namespace warren::shovel
