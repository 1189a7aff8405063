// AMQP 0-9-1 field tables and arrays on the wire, with RabbitMQ's type letters.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "warren/field_table.h"
#include "wire/buffer.h"

namespace warren::wire {

// Nesting deeper than this is refused: a hostile peer cannot exhaust the stack.
inline constexpr int kMaxFieldDepth = 64;

void encode_table(Writer& w, const FieldTable& table);  // with its u32 length prefix
void encode_array(Writer& w, const FieldArray& array);  // with its u32 length prefix
void encode_value(Writer& w, const FieldValue& value);  // type letter, then the value

// Each returns nullopt (and fails the reader) on malformed input.
std::optional<FieldTable> decode_table(Reader& r, int depth = 0);
std::optional<FieldArray> decode_array(Reader& r, int depth = 0);
std::optional<FieldValue> decode_value(Reader& r, int depth = 0);

std::string encode_table(const FieldTable& table);
std::optional<FieldTable> decode_table(std::string_view bytes);

}  // namespace warren::wire
