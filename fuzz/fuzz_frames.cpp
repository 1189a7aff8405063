// Frame parser and method decoder on arbitrary bytes: no crash, leak or runaway allocation,
// and whatever decodes re-encodes to something that decodes the same.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "amqp/codec.h"
#include "amqp/frame.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  warren::amqp::FrameParser parser;
  parser.set_frame_max(131072);
  warren::amqp::Frame frame;
  size_t used = 0;
  std::string error;
  while (parser.parse(in, &frame, &used, &error) == warren::amqp::FrameParser::Result::frame) {
    auto decoded = warren::amqp::decode_method(frame.payload);
    if (decoded.method) {
      std::string again = std::visit([](const auto& m) { return warren::amqp::encode_method(m); }, *decoded.method);
      auto round = warren::amqp::decode_method(again);
      if (!round.method || round.method->index() != decoded.method->index()) __builtin_trap();
    }
    in.remove_prefix(used);
  }
  return 0;
}
