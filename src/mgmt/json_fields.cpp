#include "mgmt/json_fields.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <variant>

namespace warren::mgmt {

using nlohmann::json;

json to_json(const FieldValue& value) {
  return std::visit(
      [](const auto& v) -> json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, Void>)
          return nullptr;
        else if constexpr (std::is_same_v<T, Decimal>)
          return double(v.value) / std::pow(10.0, v.scale);
        else if constexpr (std::is_same_v<T, Timestamp>)
          return v.seconds;
        else if constexpr (std::is_same_v<T, ByteArray>)
          return v.data;
        else if constexpr (std::is_same_v<T, FieldArray>) {
          json out = json::array();
          for (const auto& item : v) out.push_back(to_json(item));
          return out;
        } else if constexpr (std::is_same_v<T, FieldTable>)
          return to_json(v);
        else
          return v;
      },
      value.get());
}

json to_json(const FieldTable& table) {
  json out = json::object();
  for (const auto& [key, value] : table) out[key] = to_json(value);
  return out;
}

FieldValue value_from_json(const json& value) {
  switch (value.type()) {
    case json::value_t::boolean:
      return FieldValue(value.get<bool>());
    case json::value_t::number_integer:
      return FieldValue(value.get<int64_t>());
    case json::value_t::number_unsigned:
      return value.get<uint64_t>() <= uint64_t(INT64_MAX)
                 ? FieldValue(int64_t(value.get<uint64_t>()))
                 : FieldValue(double(value.get<uint64_t>()));
    case json::value_t::number_float:
      return FieldValue(value.get<double>());
    case json::value_t::string:
      return FieldValue(value.get<std::string>());
    case json::value_t::array: {
      FieldArray out;
      for (const auto& item : value) out.push_back(value_from_json(item));
      return FieldValue(std::move(out));
    }
    case json::value_t::object:
      return FieldValue(*table_from_json(value));
    default:
      return FieldValue(Void{});
  }
}

std::optional<FieldTable> table_from_json(const json& object) {
  if (object.is_null()) return FieldTable{};
  if (!object.is_object()) return std::nullopt;
  FieldTable out;
  for (const auto& [key, value] : object.items()) out.set(key, value_from_json(value));
  return out;
}

namespace {

template <class T>
void put(json& out, const char* name, const std::optional<T>& value) {
  if (value) out[name] = *value;
}

}  // namespace

json to_json(const BasicProperties& p) {
  json out = json::object();
  put(out, "content_type", p.content_type);
  put(out, "content_encoding", p.content_encoding);
  if (p.headers) out["headers"] = to_json(*p.headers);
  put(out, "delivery_mode", p.delivery_mode);
  put(out, "priority", p.priority);
  put(out, "correlation_id", p.correlation_id);
  put(out, "reply_to", p.reply_to);
  put(out, "expiration", p.expiration);
  put(out, "message_id", p.message_id);
  put(out, "timestamp", p.timestamp);
  put(out, "type", p.type);
  put(out, "user_id", p.user_id);
  put(out, "app_id", p.app_id);
  put(out, "cluster_id", p.cluster_id);
  return out;
}

std::optional<BasicProperties> properties_from_json(const json& object, std::string* error) {
  BasicProperties p;
  if (object.is_null() || (object.is_array() && object.empty())) return p;
  if (!object.is_object()) {
    *error = "properties must be an object";
    return std::nullopt;
  }
  for (const auto& item : object.items()) {
    const std::string& key = item.key();
    const json& value = item.value();  // not a structured binding: clang 14 cannot capture one
    auto text = [&](std::optional<std::string>& field) {
      if (!value.is_string()) return false;
      field = value.get<std::string>();
      return true;
    };
    auto octet = [&](std::optional<uint8_t>& field) {
      // is_number_integer: JSON built in code holds 2 as a signed number, parsed JSON as unsigned.
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > 255)
        return false;
      field = uint8_t(value.get<int64_t>());
      return true;
    };
    bool ok = true;
    if (key == "content_type")
      ok = text(p.content_type);
    else if (key == "content_encoding")
      ok = text(p.content_encoding);
    else if (key == "correlation_id")
      ok = text(p.correlation_id);
    else if (key == "reply_to")
      ok = text(p.reply_to);
    else if (key == "expiration")
      ok = text(p.expiration);
    else if (key == "message_id")
      ok = text(p.message_id);
    else if (key == "type")
      ok = text(p.type);
    else if (key == "user_id")
      ok = text(p.user_id);
    else if (key == "app_id")
      ok = text(p.app_id);
    else if (key == "cluster_id")
      ok = text(p.cluster_id);
    else if (key == "delivery_mode")
      ok = octet(p.delivery_mode);
    else if (key == "priority")
      ok = octet(p.priority);
    else if (key == "timestamp") {
      ok = value.is_number_integer() && value.get<int64_t>() >= 0;
      if (ok) p.timestamp = value.get<uint64_t>();
    } else if (key == "headers") {
      auto headers = table_from_json(value);
      ok = headers.has_value();
      if (ok) p.headers = std::move(*headers);
    } else {
      *error = "unknown property '" + key + "'";
      return std::nullopt;
    }
    if (!ok) {
      *error = "bad value for property '" + key + "'";
      return std::nullopt;
    }
  }
  return p;
}

std::string encode_base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    const size_t n = std::min<size_t>(3, in.size() - i);
    uint32_t chunk = 0;
    for (size_t j = 0; j < 3; ++j) chunk = chunk << 8 | (j < n ? uint8_t(in[i + j]) : 0);
    for (size_t j = 0; j < 4; ++j)
      out.push_back(j <= n ? kAlphabet[(chunk >> (18 - 6 * j)) & 63] : '=');
  }
  return out;
}

std::optional<std::string> decode_base64(std::string_view in) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else if (c == '=')
      break;
    else
      return std::nullopt;
    buffer = (buffer << 6 | uint32_t(v)) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::optional<std::string> decode_base64_padded(std::string_view text) {
  std::string compact;
  for (char c : text)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') compact.push_back(c);
  const size_t padding = compact.size() - compact.find_last_not_of('=') - 1;
  if (compact.size() % 4 != 0 || padding > 2 ||
      compact.find('=') < compact.size() - padding)  // '=' only at the end
    return std::nullopt;
  return decode_base64(compact);
}

}  // namespace warren::mgmt
