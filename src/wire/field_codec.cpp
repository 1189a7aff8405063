#include "wire/field_codec.h"

#include <bit>

namespace warren::wire {
namespace {

struct ValueEncoder {
  Writer& w;
  void operator()(const Void&) {}
  void operator()(bool v) { w.u8(v ? 1 : 0); }
  void operator()(int8_t v) { w.u8(uint8_t(v)); }
  void operator()(uint8_t v) { w.u8(v); }
  void operator()(int16_t v) { w.u16(uint16_t(v)); }
  void operator()(uint16_t v) { w.u16(v); }
  void operator()(int32_t v) { w.u32(uint32_t(v)); }
  void operator()(uint32_t v) { w.u32(v); }
  void operator()(int64_t v) { w.u64(uint64_t(v)); }
  void operator()(float v) { w.u32(std::bit_cast<uint32_t>(v)); }
  void operator()(double v) { w.u64(std::bit_cast<uint64_t>(v)); }
  void operator()(const Decimal& v) {
    w.u8(v.scale);
    w.u32(v.value);
  }
  void operator()(const std::string& v) { w.longstr(v); }
  void operator()(const ByteArray& v) { w.longstr(v.data); }
  void operator()(const FieldArray& v) { encode_array(w, v); }
  void operator()(const Timestamp& v) { w.u64(v.seconds); }
  void operator()(const FieldTable& v) { encode_table(w, v); }
};

// Writes a u32 length, then whatever body() writes, then patches the length.
template <class F>
void length_prefixed(Writer& w, F body) {
  size_t at = w.size();
  w.u32(0);
  body();
  w.patch_u32(at, uint32_t(w.size() - at - 4));
}

}  // namespace

void encode_value(Writer& w, const FieldValue& value) {
  w.u8(uint8_t(value.type_char()));
  std::visit(ValueEncoder{w}, value.get());
}

void encode_table(Writer& w, const FieldTable& table) {
  length_prefixed(w, [&] {
    for (const auto& [key, value] : table) {
      w.shortstr(key.size() > 255 ? std::string_view(key).substr(0, 255) : key);
      encode_value(w, value);
    }
  });
}

void encode_array(Writer& w, const FieldArray& array) {
  length_prefixed(w, [&] {
    for (const auto& value : array) encode_value(w, value);
  });
}

std::optional<FieldValue> decode_value(Reader& r, int depth) {
  char type = char(r.u8());
  if (r.failed()) return std::nullopt;
  switch (type) {
    case 't':
      return FieldValue(r.u8() != 0);
    case 'b':
      return FieldValue(int8_t(r.u8()));
    case 'B':
      return FieldValue(uint8_t(r.u8()));
    case 's':
      return FieldValue(int16_t(r.u16()));
    case 'u':
      return FieldValue(uint16_t(r.u16()));
    case 'I':
      return FieldValue(int32_t(r.u32()));
    case 'i':
      return FieldValue(uint32_t(r.u32()));
    case 'l':
      return FieldValue(int64_t(r.u64()));
    case 'f':
      return FieldValue(std::bit_cast<float>(r.u32()));
    case 'd':
      return FieldValue(std::bit_cast<double>(r.u64()));
    case 'D': {
      Decimal d;
      d.scale = r.u8();
      d.value = r.u32();
      return FieldValue(d);
    }
    case 'S':
      return FieldValue(std::string(r.longstr()));
    case 'x':
      return FieldValue(ByteArray{std::string(r.longstr())});
    case 'T':
      return FieldValue(Timestamp{r.u64()});
    case 'V':
      return FieldValue(Void{});
    case 'A': {
      auto a = decode_array(r, depth + 1);
      if (!a) return std::nullopt;
      return FieldValue(std::move(*a));
    }
    case 'F': {
      auto t = decode_table(r, depth + 1);
      if (!t) return std::nullopt;
      return FieldValue(std::move(*t));
    }
    default:
      r.fail();
      return std::nullopt;
  }
}

std::optional<FieldTable> decode_table(Reader& r, int depth) {
  if (depth > kMaxFieldDepth) {
    r.fail();
    return std::nullopt;
  }
  Reader body(r.longstr());
  if (r.failed()) return std::nullopt;
  FieldTable table;
  while (body.remaining() > 0) {
    std::string key(body.shortstr());
    auto value = decode_value(body, depth);
    if (!value || body.failed()) {
      r.fail();
      return std::nullopt;
    }
    table.entries().emplace_back(std::move(key), std::move(*value));
  }
  if (body.failed()) {
    r.fail();
    return std::nullopt;
  }
  return table;
}

std::optional<FieldArray> decode_array(Reader& r, int depth) {
  if (depth > kMaxFieldDepth) {
    r.fail();
    return std::nullopt;
  }
  Reader body(r.longstr());
  if (r.failed()) return std::nullopt;
  FieldArray array;
  while (body.remaining() > 0) {
    auto value = decode_value(body, depth);
    if (!value) {
      r.fail();
      return std::nullopt;
    }
    array.push_back(std::move(*value));
  }
  return array;
}

std::string encode_table(const FieldTable& table) {
  std::string out;
  Writer w(out);
  encode_table(w, table);
  return out;
}

std::optional<FieldTable> decode_table(std::string_view bytes) {
  Reader r(bytes);
  auto t = decode_table(r);
  if (!t || !r.at_end()) return std::nullopt;
  return t;
}

}  // namespace warren::wire
