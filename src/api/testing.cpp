// warren::testing::AmqpServer: the broker's own AMQP server on its own loop thread.
#include "warren/testing.h"

#include <fmt/format.h>

#include "amqp/server.h"
#include "api/handles.h"
#include "warren/error.h"

namespace warren::testing {

struct AmqpServer::Impl {
  std::unique_ptr<Broker> broker;
  std::unique_ptr<amqp::Server> server;  // lives and dies on the broker's loop
  uint16_t port = 0;
  bool holding_token = false;

  api::BrokerHandle& handle() { return *broker->handle(); }

  // The server's socket handlers run core code without taking the loop token (warrend's
  // loop thread holds it for good). So while the server lives, this loop holds it for good
  // too, and in-process calls go through the loop instead of running on their callers.
  void hold_token_on_loop() {
    handle().run([&] { handle().token().lock(); }, /*may_run_here=*/false);
    holding_token = true;
  }
  void release_token_on_loop() {
    if (holding_token) handle().run([&] { handle().token().unlock(); }, /*may_run_here=*/false);
    holding_token = false;
  }

  Status listen(uint16_t port_wanted) {
    hold_token_on_loop();
    return handle().run([&] {
      server =
          std::make_unique<amqp::Server>(handle().io(), handle().engine(), amqp::ServerConfig{});
      amqp::ListenOptions listen;
      listen.addresses = {"127.0.0.1"};
      listen.port = port_wanted;
      Status s = server->listen(listen);
      port = server->port();
      return s;
    });
  }

  ~Impl() {
    if (server) {
      handle().run([&] {
        server->stop();
        server->abandon_all();
      });
      // Closing the sockets queued their sessions' last handlers: the server goes after them.
      handle().run([&] { server.reset(); }, /*may_run_here=*/false);
    }
    release_token_on_loop();
  }
};

AmqpServer::AmqpServer(const AmqpServerOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->broker = Broker::open(options.broker);
  if (Status s = impl_->listen(options.port); !s) throw Error(s);
}

AmqpServer::~AmqpServer() = default;

uint16_t AmqpServer::port() const { return impl_->port; }

std::string AmqpServer::url() const {
  return fmt::format("amqp://guest:guest@127.0.0.1:{}/%2F", impl_->port);
}

Broker& AmqpServer::broker() { return *impl_->broker; }

}  // namespace warren::testing
