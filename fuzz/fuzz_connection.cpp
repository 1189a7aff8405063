// The whole AMQP connection state machine over an in-memory broker: a valid handshake,
// then arbitrary frames. Whatever a client sends, the broker must neither crash nor leak.
#include <asio/io_context.hpp>

#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <string>

#include "amqp/connection.h"
#include "amqp/frame.h"

namespace {

struct Broker {
  asio::io_context io;
  std::unique_ptr<warren::core::Engine> engine;
  warren::amqp::ServerConfig config;
  Broker() {
    warren::BrokerOptions options;
    options.durability = warren::Durability::in_memory;
    options.max_message_size = 1 << 20;
    engine = std::move(warren::core::Engine::open(io, {options, nullptr}).value());
    engine->token()->lock();  // this thread runs the broker
    // Stopped before exit() destroys static objects (error categories among them) that its
    // writer thread may still use; the rest is left to the process's end.
    static Broker* self = this;
    std::atexit([] { self->engine->shutdown(); });
  }
};

std::string handshake() {
  using namespace warren::amqp;
  std::string out(kProtocolHeader);
  ConnectionStartOk start_ok;
  start_ok.mechanism = "PLAIN";
  start_ok.response.value = std::string("\0guest\0guest", 12);
  start_ok.locale = "en_US";
  append_frame(out, FrameType::method, 0, encode_method(start_ok));
  append_frame(out, FrameType::method, 0, encode_method(ConnectionTuneOk{2047, 131072, 0}));
  ConnectionOpen open;
  open.virtual_host = "/";
  append_frame(out, FrameType::method, 0, encode_method(open));
  append_frame(out, FrameType::method, 1, encode_method(ChannelOpen{}));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Never destroyed (its writer is stopped at exit, see Broker); it stays reachable, so
  // leak checking is unaffected.
  static Broker& broker = *new Broker;
  static const std::string prefix = handshake();
  {
    warren::amqp::Connection conn(*broker.engine, broker.config, "fuzz", true);
    std::string in = prefix;
    in.append(reinterpret_cast<const char*>(data), size);
    conn.feed(in);
    broker.io.restart();
    broker.io.poll();  // deliveries, confirms, commit notifications
    conn.output().clear();
    conn.on_disconnect();
  }
  broker.io.restart();
  broker.io.poll();
  return 0;
}
