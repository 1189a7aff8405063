// The fourteen basic properties of an AMQP message, each absent unless set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "warren/field_table.h"

namespace warren {

struct BasicProperties {
  std::optional<std::string> content_type = {};
  std::optional<std::string> content_encoding = {};
  std::optional<FieldTable> headers = {};
  std::optional<uint8_t> delivery_mode = {};  // 2 = persistent, 1 or absent = transient
  std::optional<uint8_t> priority = {};
  std::optional<std::string> correlation_id = {};
  std::optional<std::string> reply_to = {};
  std::optional<std::string> expiration = {};  // TTL in milliseconds, as a decimal string
  std::optional<std::string> message_id = {};
  std::optional<uint64_t> timestamp = {};  // seconds since the epoch
  std::optional<std::string> type = {};
  std::optional<std::string> user_id = {};
  std::optional<std::string> app_id = {};
  std::optional<std::string> cluster_id = {};

  bool persistent() const { return delivery_mode == 2; }
  bool operator==(const BasicProperties&) const = default;
};

}  // namespace warren
