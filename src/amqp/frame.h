// AMQP 0-9-1 frames: type (1 octet), channel (2), payload size (4), payload, end octet 0xCE.
// The parser is incremental and does no I/O: hand it what arrived, get whole frames back.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace warren::amqp {

enum class FrameType : uint8_t { method = 1, header = 2, body = 3, heartbeat = 8 };
inline constexpr uint8_t kFrameEnd = 0xCE;
inline constexpr size_t kFrameOverhead = 8;  // 7-octet header + end octet
inline constexpr std::string_view kProtocolHeader{"AMQP\x00\x00\x09\x01", 8};

struct Frame {
  uint8_t type = 0;
  uint16_t channel = 0;
  std::string_view payload;  // valid while the parsed buffer is
};

class FrameParser {
 public:
  enum class Result { need_more, frame, error };

  // frame_max: the largest whole frame accepted (0 = no limit beyond the u32 size).
  void set_frame_max(uint32_t frame_max) { frame_max_ = frame_max; }

  // Looks for one frame at the start of `in`. On `frame`, *consumed is its length. On
  // `error`, *error holds RabbitMQ's FRAME_ERROR detail.
  Result parse(std::string_view in, Frame* frame, size_t* consumed, std::string* error) const;

 private:
  uint32_t frame_max_ = 0;
};

void append_frame(std::string& out, FrameType type, uint16_t channel, std::string_view payload);

// The content header payload: class id, weight 0, body size, then the property list.
std::string content_header_payload(uint16_t class_id, uint64_t body_size, std::string_view properties);

}  // namespace warren::amqp
