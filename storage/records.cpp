#include "storage/records.h"

#include <xxhash.h>

#include <cstring>

#include "storage/keys.h"
#include "wire/buffer.h"

namespace warren::storage {
namespace {

using wire::Reader;
using wire::Writer;

bool finish(Reader& r) { return !r.failed() && r.at_end(); }

constexpr uint8_t kUnsealed = 1;     // the first format: no checksum
constexpr size_t kSealHeader = 1 + 8;  // format octet, XXH3-64 of what follows

uint64_t checksum(std::string_view payload) { return XXH3_64bits(payload.data(), payload.size()); }

// Starts a record: its format octet and room for its checksum.
void begin(Writer& w) {
  w.u8(kRecordFormat);
  w.u64(0);
}

// Ends a record begun with begin(): its checksum covers everything after the header.
std::string seal(std::string out) {
  put_be64(out.data() + 1, checksum(std::string_view(out).substr(kSealHeader)));
  return out;
}

}  // namespace

std::optional<std::string_view> record_payload(std::string_view record) {
  if (record.empty()) return std::nullopt;
  if (uint8_t(record[0]) == kUnsealed) return record.substr(1);
  if (uint8_t(record[0]) != kRecordFormat || record.size() < kSealHeader) return std::nullopt;
  std::string_view payload = record.substr(kSealHeader);
  if (get_be64(record.data() + 1) != checksum(payload)) return std::nullopt;
  return payload;
}

std::string encode(const QueueRecord& q) {
  std::string out;
  Writer w(out);
  begin(w);
  w.u64(q.id);
  w.longstr(q.vhost);
  w.longstr(q.name);
  w.u8(q.auto_delete);
  w.longstr(q.arguments);
  return seal(std::move(out));
}

std::optional<QueueRecord> decode_queue(std::string_view bytes) {
  auto payload = record_payload(bytes);
  if (!payload) return std::nullopt;
  Reader r(*payload);
  QueueRecord q;
  q.id = r.u64();
  q.vhost = r.longstr();
  q.name = r.longstr();
  q.auto_delete = r.u8() != 0;
  q.arguments = r.longstr();
  if (!finish(r)) return std::nullopt;
  return q;
}

std::string encode(const ExchangeRecord& e) {
  std::string out;
  Writer w(out);
  begin(w);
  w.longstr(e.vhost);
  w.longstr(e.name);
  w.longstr(e.type);
  w.u8(uint8_t(e.auto_delete) | uint8_t(e.internal << 1));
  w.longstr(e.arguments);
  return seal(std::move(out));
}

std::optional<ExchangeRecord> decode_exchange(std::string_view bytes) {
  auto payload = record_payload(bytes);
  if (!payload) return std::nullopt;
  Reader r(*payload);
  ExchangeRecord e;
  e.vhost = r.longstr();
  e.name = r.longstr();
  e.type = r.longstr();
  uint8_t flags = r.u8();
  e.auto_delete = flags & 1;
  e.internal = flags & 2;
  e.arguments = r.longstr();
  if (!finish(r)) return std::nullopt;
  return e;
}

std::string encode(const QueueStats& s) {
  std::string out;
  Writer w(out);
  begin(w);
  w.u64(s.count);
  w.u64(s.bytes);
  w.u64(s.delivered_mark);
  return seal(std::move(out));
}

std::optional<QueueStats> decode_stats(std::string_view bytes) {
  auto payload = record_payload(bytes);
  if (!payload) return std::nullopt;
  Reader r(*payload);
  QueueStats s;
  s.count = r.u64();
  s.bytes = r.u64();
  s.delivered_mark = r.u64();
  if (!finish(r)) return std::nullopt;
  return s;
}

std::string encode(const BindingRecord& b) {
  std::string out;
  Writer w(out);
  begin(w);
  w.longstr(b.vhost);
  w.longstr(b.source);
  w.u8(b.to_queue);
  w.longstr(b.destination);
  w.longstr(b.routing_key);
  w.longstr(b.arguments);
  return seal(std::move(out));
}

std::string digest128(std::string_view bytes) {
  XXH128_hash_t h = XXH3_128bits(bytes.data(), bytes.size());
  std::string out(16, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = char(h.high64 >> (56 - 8 * i));
    out[8 + i] = char(h.low64 >> (56 - 8 * i));
  }
  return out;
}

std::string binding_key(const BindingRecord& b) {
  // The identity of a binding is all of its fields; a 128-bit digest of the record keeps
  // the key short and fixed while the value holds the record itself.
  return digest128(encode(b));
}

std::optional<BindingRecord> decode_binding(std::string_view bytes) {
  auto payload = record_payload(bytes);
  if (!payload) return std::nullopt;
  Reader r(*payload);
  BindingRecord b;
  b.vhost = r.longstr();
  b.source = r.longstr();
  b.to_queue = r.u8() != 0;
  b.destination = r.longstr();
  b.routing_key = r.longstr();
  b.arguments = r.longstr();
  if (!finish(r)) return std::nullopt;
  return b;
}

namespace {
// Flag bits beyond kPersistent say which optional fields follow the flags octet.
constexpr uint8_t kHasExpiry = 2, kHasCount = 4, kHasReadyAt = 8;

uint8_t stored_flags(const MessageData& m) {
  return uint8_t((m.flags & MessageData::kPersistent) | (m.expires_at ? kHasExpiry : 0) |
                 (m.delivery_count ? kHasCount : 0) | (m.ready_at ? kHasReadyAt : 0));
}

// Reads the optional fields; returns the persistent flag alone.
uint8_t read_optional_fields(Reader& r, uint8_t flags, uint64_t* expires_at, uint32_t* count,
                             uint64_t* ready_at) {
  if (flags & kHasExpiry) *expires_at = r.u64();
  if (flags & kHasCount) *count = r.u32();
  if (flags & kHasReadyAt) *ready_at = r.u64();
  return flags & MessageData::kPersistent;
}
}  // namespace

size_t encoded_size(const MessageData& m) {
  return kSealHeader + 1 + (m.expires_at ? 8 : 0) + (m.delivery_count ? 4 : 0) + (m.ready_at ? 8 : 0) + 1 +
         m.exchange.size() + 1 + m.routing_key.size() + 4 + m.properties.size() + m.body.size();
}

void encode_into(const MessageData& m, char* out) {
  auto put = [&](std::string_view s) {
    std::memcpy(out, s.data(), s.size());
    out += s.size();
  };
  auto put_int = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) *out++ = char(v >> (8 * (bytes - 1 - i)));
  };
  char* record = out;
  *out++ = char(kRecordFormat);
  out += 8;  // the checksum, once the rest is written
  char* payload = out;
  *out++ = char(stored_flags(m));
  if (m.expires_at) put_int(m.expires_at, 8);
  if (m.delivery_count) put_int(m.delivery_count, 4);
  if (m.ready_at) put_int(m.ready_at, 8);
  *out++ = char(uint8_t(m.exchange.size()));
  put(m.exchange);
  *out++ = char(uint8_t(m.routing_key.size()));
  put(m.routing_key);
  put_int(m.properties.size(), 4);
  put(m.properties);
  put(m.body);
  put_be64(record + 1, checksum(std::string_view(payload, size_t(out - payload))));
}

std::optional<MessageData> decode_message(std::string_view bytes) {
  auto payload = record_payload(bytes);
  if (!payload) return std::nullopt;
  Reader r(*payload);
  MessageData m;
  m.flags = read_optional_fields(r, r.u8(), &m.expires_at, &m.delivery_count, &m.ready_at);
  m.exchange = r.shortstr();
  m.routing_key = r.shortstr();
  m.properties = r.longstr();
  m.body = r.rest();
  if (r.failed()) return std::nullopt;
  return m;
}

std::optional<RecordTimers> peek_timers(std::string_view bytes) {
  auto payload = record_payload(bytes);
  if (!payload) return std::nullopt;
  Reader r(*payload);
  RecordTimers t;
  uint32_t count = 0;
  read_optional_fields(r, r.u8(), &t.expires_at, &count, &t.ready_at);
  r.shortstr();
  r.shortstr();
  r.longstr();
  t.body_bytes = r.remaining();
  if (r.failed()) return std::nullopt;
  return t;
}

}  // namespace warren::storage
