// Answers the management API shares: RabbitMQ's error bodies and its list paging.
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "mgmt/api.h"
#include "warren/status.h"

namespace warren::mgmt {

Response error(int status, std::string_view error, std::string_view reason);
// 404 {"error":"Object Not Found","reason":"Not Found"}
Response not_found();
Response bad_request(std::string_view reason);
// A reply text without its "NAME - " prefix, as the management plugin shows it.
std::string_view reply_text(const Status& s);
// The usual answer to a refusal: 404 for not found, 401 for access refused, else 400 with
// the reply text.
Response from_status(const Status& s);
// RabbitMQ's reason for a body without some of the keys it needs, "[{key_missing,a},...]",
// laid out as Erlang prints it (one key per line once it is longer than a line); nothing if
// all are there.
std::optional<std::string> missing_keys(const nlohmann::json& body,
                                        std::initializer_list<const char*> keys);
// The items of a list answer, turned into JSON only when answered: a page of 100 of 10,000
// queues builds 100 objects. json(i) is asked at most once per item, after name(i).
struct ListItems {
  size_t size = 0;
  std::function<std::string(size_t)> name;  // for the name filter
  std::function<nlohmann::json(size_t)> json;
};
// A list answer with RabbitMQ's filtering (name, use_regex), paging (page, page_size) and
// columns.
Response list_response(const ListItems& items,
                       const std::multimap<std::string, std::string>& query);
Response list_response(nlohmann::json items, const std::multimap<std::string, std::string>& query);

}  // namespace warren::mgmt
