// Routing-key and header matching for topic and headers exchanges.
#pragma once

#include <string_view>

#include "warren/field_table.h"
#include "warren/status.h"

namespace warren::core {

// Topic: words split on '.', '*' matches exactly one word, '#' zero or more.
bool topic_matches(std::string_view pattern, std::string_view routing_key);

enum class HeadersMatch { all, any, all_with_x, any_with_x };

// Reads x-match from binding arguments; a bad value is a 406 with RabbitMQ's text.
Status parse_headers_match(const FieldTable& binding_args, HeadersMatch* out);

// Binding keys starting "x-" take part only in the *-with-x modes; a void binding value
// matches any value of that header.
bool headers_match(HeadersMatch mode, const FieldTable& binding_args, const FieldTable* headers);

}  // namespace warren::core
