// Method frames: one generic encoder and decoder driven by each method's field list
// (methods.h). Never touches a socket.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "amqp/methods.h"
#include "wire/buffer.h"
#include "wire/field_codec.h"

namespace warren::amqp {

namespace detail {

struct BitWriter {
  wire::Writer& w;
  uint8_t bits = 0;
  int count = 0;
  void flush() {
    if (count) w.u8(bits);
    bits = 0;
    count = 0;
  }
};

template <class T>
void encode_field(BitWriter& b, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    b.bits |= uint8_t(v) << b.count;
    if (++b.count == 8) b.flush();
    return;
  } else {
    b.flush();
    if constexpr (std::is_same_v<T, uint8_t>) b.w.u8(v);
    else if constexpr (std::is_same_v<T, uint16_t>) b.w.u16(v);
    else if constexpr (std::is_same_v<T, uint32_t>) b.w.u32(v);
    else if constexpr (std::is_same_v<T, uint64_t>) b.w.u64(v);
    else if constexpr (std::is_same_v<T, std::string>) b.w.shortstr(std::string_view(v).substr(0, 255));
    else if constexpr (std::is_same_v<T, LongStr>) b.w.longstr(v.value);
    else if constexpr (std::is_same_v<T, FieldTable>) wire::encode_table(b.w, v);
    else static_assert(!sizeof(T), "no wire type for this field");
  }
}

struct BitReader {
  wire::Reader& r;
  uint8_t bits = 0;
  int left = 0;  // bits still unread in `bits`
};

template <class T>
void decode_field(BitReader& b, T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    if (b.left == 0) {
      b.bits = b.r.u8();
      b.left = 8;
    }
    v = (b.bits >> (8 - b.left)) & 1;
    --b.left;
    return;
  } else {
    b.left = 0;
    if constexpr (std::is_same_v<T, uint8_t>) v = b.r.u8();
    else if constexpr (std::is_same_v<T, uint16_t>) v = b.r.u16();
    else if constexpr (std::is_same_v<T, uint32_t>) v = b.r.u32();
    else if constexpr (std::is_same_v<T, uint64_t>) v = b.r.u64();
    else if constexpr (std::is_same_v<T, std::string>) v = std::string(b.r.shortstr());
    else if constexpr (std::is_same_v<T, LongStr>) v.value = std::string(b.r.longstr());
    else if constexpr (std::is_same_v<T, FieldTable>) {
      if (auto t = wire::decode_table(b.r)) v = std::move(*t);
    } else static_assert(!sizeof(T), "no wire type for this field");
  }
}

}  // namespace detail

template <class M>
void encode_method(wire::Writer& w, const M& m) {
  w.u16(M::class_id);
  w.u16(M::method_id);
  detail::BitWriter bits{w};
  std::apply([&](auto... member) { (detail::encode_field(bits, m.*member), ...); }, M::fields());
  bits.flush();
}

template <class M>
std::string encode_method(const M& m) {
  std::string out;
  wire::Writer w(out);
  encode_method(w, m);
  return out;
}

// Decodes the arguments of a method whose ids were already read. False if malformed.
template <class M>
bool decode_arguments(wire::Reader& r, M& m) {
  detail::BitReader bits{r};
  std::apply([&](auto... member) { (detail::decode_field(bits, m.*member), ...); }, M::fields());
  return !r.failed();
}

struct DecodedMethod {
  enum class Outcome { ok, unknown_method, malformed } outcome = Outcome::ok;
  uint16_t class_id = 0;
  uint16_t method_id = 0;
  std::optional<AnyMethod> method;
};

// Decodes a method frame's payload.
DecodedMethod decode_method(std::string_view payload);

}  // namespace warren::amqp
