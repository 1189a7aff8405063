// AMQP values as the management API writes them in JSON, and back: tables are objects,
// arrays are arrays, integers and floats are numbers, byte arrays and strings are strings,
// timestamps are seconds, void is null (as RabbitMQ's management plugin does).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "common/percent.h"
#include "warren/field_table.h"
#include "warren/properties.h"

namespace warren::mgmt {

nlohmann::json to_json(const FieldValue& value);
nlohmann::json to_json(const FieldTable& table);
// nullopt when the JSON holds something a field table cannot (a non-object at the top).
std::optional<FieldTable> table_from_json(const nlohmann::json& object);
FieldValue value_from_json(const nlohmann::json& value);

// Basic properties as RabbitMQ's management plugin shows them (only those that are set).
nlohmann::json to_json(const BasicProperties& properties);
// From a publish request's "properties"; a text saying what is wrong otherwise.
std::optional<BasicProperties> properties_from_json(const nlohmann::json& object,
                                                    std::string* error);

using warren::percent_encoded;  // common/percent.h

// Payloads that are not text, and HTTP basic credentials.
std::string encode_base64(std::string_view bytes);
std::optional<std::string> decode_base64(std::string_view text);  // nullopt: not base64
// As Erlang's base64:decode: whitespace skipped, the rest in padded groups of four.
std::optional<std::string> decode_base64_padded(std::string_view text);

}  // namespace warren::mgmt
