// The AMQP listener: accepts sockets and runs one Session per client, which only moves
// bytes between the socket and its Connection, keeps heartbeats, and stops reading from a
// client that does not read what it is sent.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "amqp/connection.h"

namespace warren::amqp {

struct ListenOptions {
  std::vector<std::string> addresses{"127.0.0.1", "::1"};
  uint16_t port = 5672;  // 0: pick a free port (the same one on every address)
};

class Server {
 public:
  Server(asio::io_context& io, core::Engine& engine, ServerConfig config);
  ~Server();
  // Binds and starts accepting. Fails if no address can be bound.
  Status listen(const ListenOptions& options);
  uint16_t port() const { return port_; }
  // Stops accepting and closes every connection (connection.close 320 first).
  void stop();
  // Drops every connection at once, releasing their broker state. For when the loop has
  // stopped: must run before the engine shuts down.
  void abandon_all();

  class Session;

 private:
  void accept(asio::ip::tcp::acceptor& acceptor);

  asio::io_context& io_;
  core::Engine& engine_;
  ServerConfig config_;
  std::vector<std::unique_ptr<asio::ip::tcp::acceptor>> acceptors_;
  std::set<std::shared_ptr<Session>> sessions_;
  uint16_t port_ = 0;
  bool stopping_ = false;
};

}  // namespace warren::amqp
