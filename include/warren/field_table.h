// AMQP 0-9-1 field tables and arrays, with RabbitMQ's value types. Entries keep their
// order and their exact wire types, so what a publisher sent is what a consumer gets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "warren/export.h"

namespace warren {

class FieldValue;

struct Decimal {
  uint8_t scale = 0;
  uint32_t value = 0;
  bool operator==(const Decimal&) const = default;
};
struct Timestamp {
  uint64_t seconds = 0;
  bool operator==(const Timestamp&) const = default;
};
struct ByteArray {  // 'x'
  std::string data;
  bool operator==(const ByteArray&) const = default;
};
struct Void {  // 'V'
  bool operator==(const Void&) const = default;
};

using FieldArray = std::vector<FieldValue>;

class WARREN_EXPORT FieldTable {
 public:
  using Entry = std::pair<std::string, FieldValue>;
  FieldTable() = default;
  FieldTable(std::initializer_list<Entry> entries);

  // Replaces the value of an existing key in place, or appends.
  FieldTable& set(std::string key, FieldValue value);
  const FieldValue* find(std::string_view key) const;
  bool erase(std::string_view key);
  bool empty() const;
  size_t size() const;
  std::vector<Entry>::const_iterator begin() const;
  std::vector<Entry>::const_iterator end() const;
  std::vector<Entry>& entries() { return entries_; }
  const std::vector<Entry>& entries() const { return entries_; }
  bool operator==(const FieldTable& other) const;

 private:
  std::vector<Entry> entries_;
};

// One value, tagged with its wire type: bool 't', int8 'b', uint8 'B', int16 's',
// uint16 'u', int32 'I', uint32 'i', int64 'l', float 'f', double 'd', decimal 'D',
// long string 'S', byte array 'x', array 'A', timestamp 'T', table 'F', void 'V'.
class WARREN_EXPORT FieldValue {
 public:
  using Variant = std::variant<Void, bool, int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t,
                               int64_t, float, double, Decimal, std::string, ByteArray, FieldArray,
                               Timestamp, FieldTable>;
  FieldValue() = default;
  template <class T>
  requires std::is_constructible_v<Variant, T&&> FieldValue(T&& v) : v_(std::forward<T>(v)) {}
  FieldValue(const char* s) : v_(std::string(s)) {}
  FieldValue(int v) : v_(int32_t(v)) {}

  const Variant& get() const { return v_; }
  Variant& get() { return v_; }
  template <class T>
  const T* as() const {
    return std::get_if<T>(&v_);
  }

  // Any integer type widened to int64, as RabbitMQ compares argument values.
  std::optional<int64_t> as_integer() const;
  // The wire type letter ('S', 'I', ...).
  char type_char() const;
  bool operator==(const FieldValue& other) const { return v_ == other.v_; }

 private:
  Variant v_;
};

// Defined here, where FieldValue is complete (clang instantiates eagerly).
inline bool FieldTable::empty() const { return entries_.empty(); }
inline size_t FieldTable::size() const { return entries_.size(); }
inline std::vector<FieldTable::Entry>::const_iterator FieldTable::begin() const {
  return entries_.begin();
}
inline std::vector<FieldTable::Entry>::const_iterator FieldTable::end() const {
  return entries_.end();
}

}  // namespace warren
