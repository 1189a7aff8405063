// Basic properties as the AMQP content header carries them: a u16 flag word (bit 15 =
// content-type ... bit 2 = cluster-id) followed by the present values in order.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "warren/properties.h"

namespace warren::wire {

std::string encode_properties(const BasicProperties& properties);
// nullopt on malformed input (including a set continuation bit or trailing bytes).
std::optional<BasicProperties> decode_properties(std::string_view bytes);
// The priority property without decoding the rest (priority queues read it per publish).
std::optional<uint8_t> peek_priority(std::string_view bytes);

}  // namespace warren::wire
