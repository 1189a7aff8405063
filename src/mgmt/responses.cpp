#include "mgmt/responses.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

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

std::vector<std::string> column_names(const std::string& columns) {
  std::vector<std::string> wanted;
  for (size_t at = 0; at <= columns.size();) {
    size_t comma = std::min(columns.find(',', at), columns.size());
    if (comma > at) wanted.push_back(columns.substr(at, comma - at));
    at = comma + 1;
  }
  return wanted;
}

json only_columns(const json& item, const std::vector<std::string>& wanted) {
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
  return picked;
}

// The array is written item by item, each item's text being nlohmann's: only the brackets
// and commas are put here. A list of 1,000 queues built as one document first spent most of
// its time allocating and freeing that document.
template <class ItemJson>
Response array_text(size_t size, ItemJson&& item_json) {
  std::string text = "[";
  for (size_t i = 0; i < size; ++i) {
    if (i) text += ',';
    // Names are bytes in AMQP: what is not UTF-8 is shown replaced rather than failing the answer.
    text += item_json(i).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  text += ']';
  return {200, nullptr, 0, std::move(text), "application/json"};
}

}  // namespace

Response list_response(const ListItems& items, const std::multimap<std::string, std::string>& q) {
  auto query = [&q](std::string_view key) {
    auto it = q.find(std::string(key));
    return it == q.end() ? std::nullopt : std::optional(it->second);
  };
  auto page = query("page");
  std::optional<std::vector<std::string>> wanted;
  if (auto columns = query("columns")) wanted = column_names(*columns);
  auto item_json = [&](size_t i) {
    return wanted ? only_columns(items.json(i), *wanted) : items.json(i);
  };
  if (!page) return array_text(items.size, item_json);
  const long total = long(items.size);
  std::vector<size_t> kept(items.size);
  std::iota(kept.begin(), kept.end(), size_t(0));
  // RabbitMQ filters by name only when paging.
  if (auto name = query("name"); name && !name->empty()) {
    std::string error;
    auto filter =
        NameFilter::make(*name, query("use_regex") == std::optional<std::string>("true"), &error);
    if (!filter) return bad_request(error);
    std::erase_if(kept, [&](size_t i) { return !filter->matches(items.name(i)); });
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
  const long filtered = long(kept.size());
  json slice = json::array();
  for (long i = (page_number - 1) * page_size; i < std::min(filtered, page_number * page_size); ++i)
    slice.push_back(item_json(kept[size_t(i)]));
  return {200, json{{"filtered_count", filtered},
                    {"item_count", slice.size()},
                    {"items", std::move(slice)},
                    {"page", page_number},
                    {"page_count", std::max<long>(1, (filtered + page_size - 1) / page_size)},
                    {"page_size", page_size},
                    {"total_count", total}}};
}

Response list_response(json items, const std::multimap<std::string, std::string>& query) {
  return list_response(ListItems{items.size(),
                                 [&](size_t i) { return items[i].value("name", ""); },
                                 [&](size_t i) { return std::move(items[i]); }},
                       query);
}

}  // namespace warren::mgmt
