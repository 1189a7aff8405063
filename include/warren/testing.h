// An AMQP 0-9-1 server inside the test process, for test suites that would otherwise need a
// RabbitMQ: any AMQP client (librabbitmq, AMQP-CPP, SimpleAmqpClient, a Python subprocess)
// connects to it on loopback.
//
//   TEST(Orders, AreShipped) {
//     warren::testing::AmqpServer amqp;        // listening when the constructor returns
//     OrderService service(amqp.url());        // "amqp://guest:guest@127.0.0.1:41234/%2F"
//     ...
//   }                                          // connections closed, data gone
//
// By default the broker keeps its data in memory-backed temporary space (Durability::
// in_memory) and listens on a free loopback port; user guest, password guest, as RabbitMQ
// after installation. broker() is the same broker in-process, to arrange or inspect state
// without a client.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "warren/broker.h"
#include "warren/export.h"
#include "warren/options.h"

namespace warren::testing {

struct AmqpServerOptions {
  BrokerOptions broker = {.durability = Durability::in_memory};
  uint16_t port = 0;  // 0: a free port, chosen by the system
};

class WARREN_EXPORT AmqpServer {
 public:
  // Throws warren::Error if the broker cannot open or the port cannot be bound.
  explicit AmqpServer(const AmqpServerOptions& options = {});
  // Closes every client connection (connection.close 320, then the socket), then the broker.
  ~AmqpServer();
  AmqpServer(const AmqpServer&) = delete;
  AmqpServer& operator=(const AmqpServer&) = delete;

  uint16_t port() const;
  std::string host() const { return "127.0.0.1"; }
  std::string url() const;  // amqp://guest:guest@127.0.0.1:PORT/%2F
  Broker& broker();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace warren::testing
