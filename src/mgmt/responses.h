// Answers the management API shares: RabbitMQ's error bodies and its list paging.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "mgmt/api.h"
#include "warren/status.h"

namespace warren::mgmt {

Response error(int status, std::string_view error, std::string_view reason);
// 404 {"error":"Object Not Found","reason":"Not Found"}
Response not_found();
Response bad_request(std::string_view reason);
// RabbitMQ's reply text without its "NAME - " prefix, as the management plugin shows it.
Response from_status(const Status& s);
// A list answer with RabbitMQ's filtering (name, use_regex), paging (page, page_size) and
// columns.
Response list_response(nlohmann::json items, const std::multimap<std::string, std::string>& query);

}  // namespace warren::mgmt
