// The whole AMQP connection state machine over an in-memory broker: a valid handshake,
// then arbitrary frames. Whatever a client sends, the broker must neither crash nor leak.

#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <string>

#include "amqp/connection.h"
#include "amqp/frame.h"
#include "fuzz_broker.h"

namespace {


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
  static auto& broker = warren::fuzz::FuzzBroker::instance();
  static auto& config = *new warren::amqp::ServerConfig;  // reachable to the end, as the broker
  static const std::string prefix = handshake();
  {
    warren::amqp::Connection conn(*broker.engine, config, "fuzz", true);
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
