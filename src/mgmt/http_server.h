// An HTTP listener for the management API and the Prometheus metrics: cpp-httplib serves
// HTTP on its own threads; each request is answered by a handler on the engine's loop
// (posted there, so HTTP never blocks AMQP for longer than one handler), and once the
// commit it made is durable.
#pragma once

#include <asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "mgmt/api.h"

namespace httplib {
class Server;
}

namespace warren::mgmt {

class HttpServer {
 public:
  using Handler = std::function<Response(const Request&)>;  // runs on the loop
  // Runs on the loop (the users live there); `loopback`: the client is on this machine.
  using Authenticator =
      std::function<bool(const std::string& user, const std::string& password, bool loopback)>;
  // With an authenticator every request needs HTTP basic credentials it accepts.
  HttpServer(asio::io_context& io, core::Engine& engine, Handler handler,
             Authenticator authenticate = {});
  ~HttpServer();  // stop()

  // A fixed document anyone may fetch (the web page: it asks for credentials itself).
  // Before start().
  void serve_static(std::string path, std::string_view content, std::string content_type);
  // Binds and starts serving; port 0 picks a free one (port() says which). With a
  // certificate and key (PEM files) it serves HTTPS.
  struct Tls {
    std::string cert_file, key_file;
  };
  Status start(const std::string& address, uint16_t port, std::string_view what,
               const Tls* tls = nullptr);
  uint16_t port() const { return port_; }
  // Stops accepting; requests waiting for the loop are answered 503. Safe on any thread;
  // the serving thread is joined by the destructor, after the loop has stopped.
  void stop();

 private:
  Response on_loop(Request request, std::string password, bool loopback);
  bool run_on_loop(const std::function<bool()>& step);

  asio::io_context& io_;
  core::Engine& engine_;
  Handler handler_;
  Authenticator authenticate_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  struct Static {
    std::string path;
    std::string_view content;
    std::string content_type;
  };
  std::vector<Static> statics_;
  struct Pending;
  std::shared_ptr<Pending> pending_;
};

}  // namespace warren::mgmt
