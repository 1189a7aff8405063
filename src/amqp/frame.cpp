#include "amqp/frame.h"

#include <fmt/format.h>

#include "wire/buffer.h"

namespace warren::amqp {

FrameParser::Result FrameParser::parse(std::string_view in, Frame* frame, size_t* consumed,
                                       std::string* error) const {
  if (in.size() < 7) return Result::need_more;
  wire::Reader r(in);
  uint8_t type = r.u8();
  uint16_t channel = r.u16();
  uint32_t size = r.u32();
  if (frame_max_ && uint64_t(size) + kFrameOverhead > frame_max_) {
    *error = fmt::format("type {}, all octets = <<>>: {{frame_too_large,{},{}}}", type, size,
                         frame_max_ - kFrameOverhead);
    return Result::error;
  }
  if (in.size() < size_t(size) + kFrameOverhead) return Result::need_more;
  uint8_t end = uint8_t(in[7 + size]);
  if (end != kFrameEnd) {
    *error = fmt::format("type {}, all octets = <<>>: {{invalid_frame_end_marker,{}}}", type, end);
    return Result::error;
  }
  *frame = Frame{type, channel, in.substr(7, size)};
  *consumed = size + kFrameOverhead;
  return Result::frame;
}

void append_frame(std::string& out, FrameType type, uint16_t channel, std::string_view payload) {
  wire::Writer w(out);
  w.u8(uint8_t(type));
  w.u16(channel);
  w.u32(uint32_t(payload.size()));
  w.bytes(payload);
  w.u8(kFrameEnd);
}

std::string content_header_payload(uint16_t class_id, uint64_t body_size, std::string_view properties) {
  std::string out;
  wire::Writer w(out);
  w.u16(class_id);
  w.u16(0);
  w.u64(body_size);
  w.bytes(properties);
  return out;
}

}  // namespace warren::amqp
