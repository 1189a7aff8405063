#include "warren/field_table.h"

#include <algorithm>

namespace warren {

FieldTable::FieldTable(std::initializer_list<Entry> entries) : entries_(entries) {}

FieldTable& FieldTable::set(std::string key, FieldValue value) {
  for (auto& e : entries_) {
    if (e.first == key) {
      e.second = std::move(value);
      return *this;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
  return *this;
}

const FieldValue* FieldTable::find(std::string_view key) const {
  for (const auto& e : entries_)
    if (e.first == key) return &e.second;
  return nullptr;
}

bool FieldTable::erase(std::string_view key) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](auto& e) { return e.first == key; });
  if (it == entries_.end()) return false;
  entries_.erase(it);
  return true;
}

bool FieldTable::operator==(const FieldTable& other) const { return entries_ == other.entries_; }

std::optional<int64_t> FieldValue::as_integer() const {
  return std::visit(
      [](const auto& v) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) return int64_t(v);
        return std::nullopt;
      },
      v_);
}

char FieldValue::type_char() const {
  static constexpr char kLetters[] = {'V', 't', 'b', 'B', 's', 'u', 'I', 'i', 'l',
                                      'f', 'd', 'D', 'S', 'x', 'A', 'T', 'F'};
  static_assert(sizeof(kLetters) == std::variant_size_v<Variant>);
  return kLetters[v_.index()];
}

}  // namespace warren
