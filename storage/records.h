// Record codecs for the named databases. Every record starts with a format octet so a
// later version can read and upgrade older records. The layout is in docs/storage-format.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace warren::storage {

// Version 2: records carry a checksum (format 2). A version-1 store is read and upgraded:
// its format-1 records stay readable.
inline constexpr uint32_t kSchemaVersion = 2;
inline constexpr uint8_t kRecordFormat = 2;

struct QueueRecord {
  uint64_t id = 0;
  std::string vhost;
  std::string name;
  bool auto_delete = false;
  std::string arguments;  // field table, AMQP wire format
};

struct ExchangeRecord {
  std::string vhost;
  std::string name;
  std::string type;
  bool auto_delete = false;
  bool internal = false;
  std::string arguments;
};

struct BindingRecord {
  std::string vhost;
  std::string source;
  bool to_queue = true;  // else to an exchange
  std::string destination;
  std::string routing_key;
  std::string arguments;
};

// Per-queue counters kept in the same commits as the messages they count, so opening a
// store needs no scan.
struct QueueStats {
  uint64_t count = 0;           // persistent messages stored
  uint64_t bytes = 0;           // their body bytes
  uint64_t delivered_mark = 0;  // every stored message below this may have been delivered
};

// A message as stored: the publish's exchange and routing key, the properties in
// content-header wire format, and the body.
struct MessageData {
  uint8_t flags = 0;
  // What a queue keeps about the message besides its content. Each is stored only when set.
  uint64_t expires_at = 0;      // ms since the epoch; 0 = never
  uint32_t delivery_count = 0;  // returns to the queue, in queues that count them
  uint64_t ready_at = 0;        // ms since the epoch; a delayed retry is held until then
  std::string exchange;
  std::string routing_key;
  std::string properties;
  std::string body;

  static constexpr uint8_t kPersistent = 1;
  bool persistent() const { return flags & kPersistent; }
};

// The parts of an encoded message record the store needs to keep its indexes.
struct RecordTimers {
  uint64_t expires_at = 0;
  uint64_t ready_at = 0;
  uint64_t body_bytes = 0;
};
std::optional<RecordTimers> peek_timers(std::string_view record);

// What a record holds after its format octet (and checksum); nullopt if its format is
// unknown or its checksum does not match: a damaged record is never read as data.
std::optional<std::string_view> record_payload(std::string_view record);

std::string encode(const QueueRecord& r);
std::string encode(const ExchangeRecord& r);
std::string encode(const QueueStats& r);
std::optional<QueueRecord> decode_queue(std::string_view bytes);
std::optional<ExchangeRecord> decode_exchange(std::string_view bytes);
std::optional<QueueStats> decode_stats(std::string_view bytes);

// XXH3-128 of bytes, big-endian: 16 bytes that name a binding, a dedup key or an
// idempotency key.
std::string digest128(std::string_view bytes);

// A binding's key is a 128-bit digest of its whole record (LMDB keys are at most 511 bytes;
// a binding can be longer); the value is the record.
std::string binding_key(const BindingRecord& r);
std::string encode(const BindingRecord& r);
std::optional<BindingRecord> decode_binding(std::string_view bytes);

size_t encoded_size(const MessageData& m);
// Writes exactly encoded_size(m) bytes to out.
void encode_into(const MessageData& m, char* out);
std::optional<MessageData> decode_message(std::string_view bytes);

}  // namespace warren::storage
