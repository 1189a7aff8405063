// The management listener: cpp-httplib serves HTTP on its own threads; each request is
// answered by mgmt::Api on the engine's loop (posted there, so HTTP never blocks AMQP for
// longer than one handler), and once the commit it made is durable.
#pragma once

#include <asio/io_context.hpp>
#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "mgmt/api.h"

namespace httplib {
class Server;
}

namespace warren::mgmt {

class HttpServer {
 public:
  HttpServer(asio::io_context& io, core::Engine& engine, Api& api);
  ~HttpServer();  // stop()

  // Binds and starts serving; port 0 picks a free one (port() says which).
  Status start(const std::string& address, uint16_t port);
  uint16_t port() const { return port_; }
  // Stops accepting; requests waiting for the loop are answered 503. Safe on any thread;
  // the serving thread is joined by the destructor, after the loop has stopped.
  void stop();

 private:
  Response on_loop(Request request);

  asio::io_context& io_;
  core::Engine& engine_;
  Api& api_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  struct Pending;
  std::shared_ptr<Pending> pending_;
};

}  // namespace warren::mgmt
