#include "wire/properties_codec.h"

#include "wire/buffer.h"
#include "wire/field_codec.h"

namespace warren::wire {
namespace {

// One property: its flag bit and how to read and write it. The table drives both codecs.
struct PropertyCodec {
  uint16_t flag;
  void (*encode)(Writer&, const BasicProperties&);
  bool (*present)(const BasicProperties&);
  void (*decode)(Reader&, BasicProperties&);
};

template <auto Member>
constexpr PropertyCodec shortstr_property(uint16_t flag) {
  return {flag, [](Writer& w, const BasicProperties& p) { w.shortstr(*(p.*Member)); },
          [](const BasicProperties& p) { return (p.*Member).has_value(); },
          [](Reader& r, BasicProperties& p) { p.*Member = std::string(r.shortstr()); }};
}

template <auto Member>
constexpr PropertyCodec octet_property(uint16_t flag) {
  return {flag, [](Writer& w, const BasicProperties& p) { w.u8(*(p.*Member)); },
          [](const BasicProperties& p) { return (p.*Member).has_value(); },
          [](Reader& r, BasicProperties& p) { p.*Member = r.u8(); }};
}

constexpr PropertyCodec kCodecs[] = {
    shortstr_property<&BasicProperties::content_type>(1 << 15),
    shortstr_property<&BasicProperties::content_encoding>(1 << 14),
    {1 << 13, [](Writer& w, const BasicProperties& p) { encode_table(w, *p.headers); },
     [](const BasicProperties& p) { return p.headers.has_value(); },
     [](Reader& r, BasicProperties& p) {
       if (auto t = decode_table(r)) p.headers = std::move(*t);
     }},
    octet_property<&BasicProperties::delivery_mode>(1 << 12),
    octet_property<&BasicProperties::priority>(1 << 11),
    shortstr_property<&BasicProperties::correlation_id>(1 << 10),
    shortstr_property<&BasicProperties::reply_to>(1 << 9),
    shortstr_property<&BasicProperties::expiration>(1 << 8),
    shortstr_property<&BasicProperties::message_id>(1 << 7),
    {1 << 6, [](Writer& w, const BasicProperties& p) { w.u64(*p.timestamp); },
     [](const BasicProperties& p) { return p.timestamp.has_value(); },
     [](Reader& r, BasicProperties& p) { p.timestamp = r.u64(); }},
    shortstr_property<&BasicProperties::type>(1 << 5),
    shortstr_property<&BasicProperties::user_id>(1 << 4),
    shortstr_property<&BasicProperties::app_id>(1 << 3),
    shortstr_property<&BasicProperties::cluster_id>(1 << 2),
};

}  // namespace

std::string encode_properties(const BasicProperties& p) {
  std::string out;
  Writer w(out);
  uint16_t flags = 0;
  for (const auto& c : kCodecs)
    if (c.present(p)) flags |= c.flag;
  w.u16(flags);
  for (const auto& c : kCodecs)
    if (flags & c.flag) c.encode(w, p);
  return out;
}

std::optional<BasicProperties> decode_properties(std::string_view bytes) {
  Reader r(bytes);
  uint16_t flags = r.u16();
  if (r.failed() || (flags & 0x3)) return std::nullopt;  // continuation and bit 1 unused
  BasicProperties p;
  for (const auto& c : kCodecs)
    if (flags & c.flag) c.decode(r, p);
  if (r.failed() || !r.at_end()) return std::nullopt;
  return p;
}

std::optional<uint8_t> peek_priority(std::string_view bytes) {
  Reader r(bytes);
  const uint16_t flags = r.u16();
  if (!(flags & (1 << 11))) return std::nullopt;
  // The values before it: content-type, content-encoding, headers, delivery-mode.
  if (flags & (1 << 15)) r.shortstr();
  if (flags & (1 << 14)) r.shortstr();
  if (flags & (1 << 13)) r.longstr();  // a table is a long string of its fields
  if (flags & (1 << 12)) r.u8();
  const uint8_t priority = r.u8();
  if (r.failed()) return std::nullopt;
  return priority;
}

}  // namespace warren::wire
