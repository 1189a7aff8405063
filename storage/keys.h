// Key encodings. Integers are big-endian so LMDB's bytewise order is numeric order: a
// queue's messages are contiguous and sorted by sequence number.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace warren::storage {

using MessageKey = std::array<char, 16>;  // queue id (u64 BE) ++ sequence number (u64 BE)

inline void put_be64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = char(v >> (56 - 8 * i));
}
inline uint64_t get_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | uint8_t(p[i]);
  return v;
}

inline MessageKey message_key(uint64_t queue_id, uint64_t seq) {
  MessageKey k;
  put_be64(k.data(), queue_id);
  put_be64(k.data() + 8, seq);
  return k;
}

struct MessageId {
  uint64_t queue_id = 0;
  uint64_t seq = 0;
};

// nullopt-free: a key of the wrong size decodes to {0, 0}, which no queue uses.
inline MessageId parse_message_key(std::string_view key) {
  if (key.size() != 16) return {};
  return {get_be64(key.data()), get_be64(key.data() + 8)};
}

inline std::string queue_id_key(uint64_t queue_id) {
  std::string k(8, '\0');
  put_be64(k.data(), queue_id);
  return k;
}

// Exchanges and queues: vhost, NUL, name. Names cannot hold NUL (AMQP shortstr
// names are validated before they get here), so keys never collide.
inline std::string name_key(std::string_view vhost, std::string_view name) {
  std::string k;
  k.reserve(vhost.size() + 1 + name.size());
  k.append(vhost).push_back('\0');
  k.append(name);
  return k;
}

}  // namespace warren::storage
