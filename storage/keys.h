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

// The schedule database orders timed events by their time: a message's expiry and the end
// of a delayed retry. Key: kind octet ++ u64 time (ms) ++ u64 queue id ++ u64 sequence number.
enum class Timer : char { expiry = 'E', retry = 'R' };
using ScheduleKey = std::array<char, 25>;

inline ScheduleKey schedule_key(Timer kind, uint64_t time, uint64_t queue_id, uint64_t seq) {
  ScheduleKey k;
  k[0] = char(kind);
  put_be64(k.data() + 1, time);
  put_be64(k.data() + 9, queue_id);
  put_be64(k.data() + 17, seq);
  return k;
}

struct ScheduleEntry {
  Timer kind = Timer::expiry;
  uint64_t time = 0;
  uint64_t queue_id = 0;
  uint64_t seq = 0;
};

inline ScheduleEntry parse_schedule_key(std::string_view key) {
  if (key.size() != 25) return {};
  return {Timer(key[0]), get_be64(key.data() + 1), get_be64(key.data() + 9),
          get_be64(key.data() + 17)};
}

// The keys database: deduplication windows and idempotency keys, under 128-bit XXH3 digests.
//   'O' ++ queue id ++ order   -> digest ++ u64 inserted at (ms)         a queue's window, oldest first
//   'C' ++ queue id            -> u64 next order ++ u64 entries          the window's size
//   'D' ++ digest              -> u64 done at (ms)                       an idempotency key done
using Digest = std::array<char, 16>;

inline std::string keys_key(char kind, uint64_t queue_id, std::string_view rest = {}) {
  std::string k(9, '\0');
  k[0] = kind;
  put_be64(k.data() + 1, queue_id);
  k.append(rest);
  return k;
}

inline std::string done_key(std::string_view digest) {
  std::string k(1, 'D');
  k.append(digest);
  return k;
}

// Whether a key of database `db` (named as in storage/store.h) has a shape that database
// stores; a key of any other shape is damage.
inline bool key_has_shape(std::string_view db, std::string_view key) {
  if (db == "messages" || db == "transient" || db == "bindings") return key.size() == 16;
  if (db == "queue_stats") return key.size() == 8;
  if (db == "schedule") return key.size() == 25 && (key[0] == char(Timer::expiry) || key[0] == char(Timer::retry));
  if (db == "keys")
    return (key.size() == 17 && (key[0] == 'O' || key[0] == 'D')) || (key.size() == 9 && key[0] == 'C');
  if (db == "exchanges" || db == "queues") return key.find('\0') != std::string_view::npos;
  return true;
}

inline std::string be64_string(uint64_t v) {
  std::string s(8, '\0');
  put_be64(s.data(), v);
  return s;
}

}  // namespace warren::storage
