#include "mgmt/responses.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>

#include "mgmt/name_filter.h"

namespace warren::mgmt {

using nlohmann::json;

Response error(int status, std::string_view error, std::string_view reason) {
  return {status, json{{"error", error}, {"reason", reason}}};
}
Response not_found() { return error(404, "Object Not Found", "Not Found"); }
Response bad_request(std::string_view reason) { return error(400, "bad_request", reason); }

std::string_view reply_text(const Status& s) {
  std::string_view text = s.text();
  if (auto dash = text.find(" - "); dash != std::string_view::npos) text.remove_prefix(dash + 3);
  return text;
}

Response from_status(const Status& s) {
  std::string_view text = reply_text(s);
  if (s.code() == ReplyCode::not_found) return not_found();
  // RabbitMQ's management answers a refused declaration, deletion or binding so.
  if (s.code() == ReplyCode::access_refused) return error(401, "not_authorised", "Access refused.");
  return bad_request(text);
}

std::optional<std::string> missing_keys(const json& body, std::initializer_list<const char*> keys) {
  std::vector<std::string> missing;
  for (const char* key : keys)
    if (!body.contains(key)) missing.push_back(fmt::format("{{key_missing,{}}}", key));
  if (missing.empty()) return std::nullopt;
  std::string flat = fmt::format("[{}]", fmt::join(missing, ","));
  constexpr size_t kErlangLineWidth = 80;
  if (flat.size() <= kErlangLineWidth) return flat;
  return fmt::format("[{}]", fmt::join(missing, ",\n "));
}

namespace {

json only_columns(json items, const std::string& columns) {
  std::vector<std::string> wanted;
  for (size_t at = 0; at <= columns.size();) {
    size_t comma = std::min(columns.find(',', at), columns.size());
    if (comma > at) wanted.push_back(columns.substr(at, comma - at));
    at = comma + 1;
  }
  json out = json::array();
  for (const auto& item : items) {
    json picked = json::object();
    for (const auto& column : wanted) {
      // "message_stats.publish" picks inside an object, as RabbitMQ allows.
      auto dot = column.find('.');
      if (dot == std::string::npos) {
        if (item.contains(column)) picked[column] = item[column];
      } else if (auto outer = column.substr(0, dot);
                 item.contains(outer) && item[outer].is_object()) {
        if (auto inner = column.substr(dot + 1); item[outer].contains(inner))
          picked[outer][inner] = item[outer][inner];
      }
    }
    out.push_back(std::move(picked));
  }
  return out;
}

}  // namespace

Response list_response(json items, const std::multimap<std::string, std::string>& q) {
  auto query = [&q](std::string_view key) {
    auto it = q.find(std::string(key));
    return it == q.end() ? std::nullopt : std::optional(it->second);
  };
  auto ok = [](json body) { return Response{200, std::move(body)}; };
  auto page = query("page");
  auto columns = query("columns");
  if (!page) return ok(columns ? only_columns(std::move(items), *columns) : std::move(items));
  const long total = long(items.size());
  // RabbitMQ filters by name only when paging.
  if (auto name = query("name"); name && !name->empty()) {
    std::string error;
    auto filter =
        NameFilter::make(*name, query("use_regex") == std::optional<std::string>("true"), &error);
    if (!filter) return bad_request(error);
    json kept = json::array();
    for (auto& item : items)
      if (filter->matches(item.value("name", ""))) kept.push_back(std::move(item));
    items = std::move(kept);
  }
  const auto number = [](const std::optional<std::string>& s, long fallback) {
    if (!s) return fallback;
    char* end = nullptr;
    long v = std::strtol(s->c_str(), &end, 10);
    return end && *end == '\0' && !s->empty() ? v : -1;
  };
  long page_number = number(page, 1), page_size = number(query("page_size"), 100);
  if (page_number < 1 || page_size < 1 || page_size > 500)
    return bad_request("page and page_size must be positive integers (page_size at most 500)");
  const long filtered = long(items.size());
  json slice = json::array();
  for (long i = (page_number - 1) * page_size; i < std::min(filtered, page_number * page_size); ++i)
    slice.push_back(items[size_t(i)]);
  if (columns) slice = only_columns(std::move(slice), *columns);
  return ok(json{{"filtered_count", filtered},
                 {"item_count", slice.size()},
                 {"items", std::move(slice)},
                 {"page", page_number},
                 {"page_count", std::max<long>(1, (filtered + page_size - 1) / page_size)},
                 {"page_size", page_size},
                 {"total_count", total}});
}

}  // namespace warren::mgmt
