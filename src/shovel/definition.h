// Shovel definitions as RabbitMQ's dynamic shovel parameters write them (the JSON object
// under "value" in PUT /api/parameters/shovel/{vhost}/{name}), and their validation.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "common/result.h"
#include "shovel/uri.h"
#include "warren/shovel.h"

namespace warren::shovel {

// The definition a parameter value describes, or RabbitMQ's "Validation failed" text
// (406 PRECONDITION_FAILED; the management API answers it as 400).
Result<ShovelDefinition> definition_from_json(std::string_view vhost, std::string_view name,
                                              const nlohmann::json& value);
// The parameter value again (the keys RabbitMQ would show for it).
nlohmann::json definition_to_json(const ShovelDefinition& d);
// The rules a definition must meet however it was made (the in-process API checks them too).
Status validate(const ShovelDefinition& d);

// Each URI of a list parsed, or the first one's error.
Result<std::vector<AmqpUri>> parse_uris(const std::vector<std::string>& uris);

}  // namespace warren::shovel
