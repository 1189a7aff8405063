#include "mgmt/shovel_api.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <ctime>

#include "core/vhost.h"
#include "mgmt/responses.h"
#include "shovel/definition.h"

namespace warren::mgmt {

using nlohmann::json;

namespace {

constexpr std::string_view kComponent = "shovel";

// "2026-11-30 6:54:22", local time, as RabbitMQ writes a shovel's timestamp.
json rabbit_time(int64_t ms) {
  if (ms == 0) return nullptr;
  std::time_t t = std::time_t(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02} {}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

json parameter_json(const shovel::ShovelManager::Entry& e) {
  return json{{"value", e.value}, {"vhost", e.vhost}, {"component", kComponent}, {"name", e.name}};
}

std::string first_uri(const json& value, const char* key) {
  const json& v = value.at(key);
  std::string text = v.is_array() ? v.at(0).get<std::string>() : v.get<std::string>();
  auto uri = shovel::parse_amqp_uri(text);
  return uri.ok() ? uri.value().redacted() : text;
}

json parameters_list(shovel::ShovelManager* shovels, const std::string* vhost) {
  json out = json::array();
  if (!shovels) return out;
  for (const auto& e : shovels->list())
    if (!vhost || e.vhost == *vhost) out.push_back(parameter_json(e));
  return out;
}

Response put_parameter(shovel::ShovelManager& shovels, core::Engine& engine, const Request& r,
                       const std::string& vhost, const std::string& name) {
  if (!engine.find_vhost(vhost)) return not_found();
  json body = json::parse(r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return bad_request("invalid JSON in the request body");
  if (!body.contains("value")) return bad_request("[{key_missing,value}]");
  const bool existed = std::ranges::any_of(
      shovels.list(), [&](const auto& e) { return e.vhost == vhost && e.name == name; });
  auto declared = shovels.declare(vhost, name, body["value"]);
  if (!declared.ok()) return bad_request(reply_text(declared.status()));
  return {existed ? 204 : 201, nullptr, declared.value()};
}

}  // namespace

Response parameters_endpoint(shovel::ShovelManager* shovels, core::Engine& engine, const Request& r,
                             const std::vector<std::string>& parts) {
  const size_t n = parts.size();
  const bool shovel_component = n >= 3 && parts[2] == kComponent;
  if (n <= 4) {
    if (r.method != "GET") return {405, nullptr};
    if (n >= 3 && !shovel_component) return {200, json::array()};  // no such component here
    return list_response(parameters_list(shovels, n == 4 ? &parts[3] : nullptr), r.query);
  }
  if (n != 5) return not_found();
  const std::string &vhost = parts[3], &name = parts[4];
  if (!shovel_component || !shovels) {
    if (r.method == "PUT")
      return bad_request(fmt::format("Warren has no runtime parameter component '{}'", parts[2]));
    return not_found();
  }
  if (r.method == "GET") {
    for (const auto& e : shovels->list())
      if (e.vhost == vhost && e.name == name) return {200, parameter_json(e)};
    return not_found();
  }
  if (r.method == "PUT") return put_parameter(*shovels, engine, r, vhost, name);
  if (r.method == "DELETE") {
    auto removed = shovels->remove(vhost, name);
    if (!removed.ok()) return not_found();
    return {204, nullptr, removed.value()};
  }
  return {405, nullptr};
}

Response shovels_endpoint(shovel::ShovelManager* shovels, const Request& r,
                          const std::vector<std::string>& parts) {
  const size_t n = parts.size();
  std::vector<shovel::ShovelManager::Entry> entries;
  if (shovels) entries = shovels->list();
  // /api/shovels/vhost/{vhost}/{name}[/restart]
  if (n >= 5 && parts[2] == "vhost") {
    const std::string &vhost = parts[3], &name = parts[4];
    auto it = std::ranges::find_if(
        entries, [&](const auto& e) { return e.vhost == vhost && e.name == name; });
    if (it == entries.end() || n > 6 || (n == 6 && parts[5] != "restart")) return not_found();
    if (n == 6) {
      if (r.method != "DELETE") return {405, nullptr};
      (void)shovels->restart(vhost, name);
      return {204, nullptr};
    }
    if (r.method != "GET") return {405, nullptr};
    return {200, shovel_status_json(*it)};
  }
  if (n > 3) return not_found();
  if (r.method != "GET") return {405, nullptr};
  json out = json::array();
  for (const auto& e : entries)
    if (n == 2 || e.vhost == parts[2]) out.push_back(shovel_status_json(e));
  return list_response(std::move(out), r.query);
}

json shovel_parameters(const shovel::ShovelManager& shovels) {
  json out = json::array();
  for (const auto& e : shovels.list()) out.push_back(parameter_json(e));
  return out;
}

json shovel_status_json(const shovel::ShovelManager::Entry& e) {
  const ShovelStatus& s = e.status;
  json j{{"node", "warren@localhost"},
         {"timestamp", rabbit_time(s.state_since_ms)},
         {"name", e.name},
         {"vhost", e.vhost},
         {"type", "dynamic"},
         {"state", s.state},
         {"src_uri", first_uri(e.value, "src-uri")},
         {"src_protocol", "amqp091"},
         {"dest_protocol", "amqp091"},
         {"dest_uri", first_uri(e.value, "dest-uri")}};
  for (const char* key : {"src-queue", "src-exchange", "src-exchange-key", "dest-queue",
                          "dest-exchange", "dest-exchange-key"})
    if (e.value.contains(key)) {
      std::string field = key;
      std::replace(field.begin(), field.end(), '-', '_');
      j[field] = e.value[key];
    }
  if (s.state == "terminated" || !s.reason.empty()) j["reason"] = s.reason;
  // Warren's own.
  j["forwarded"] = s.forwarded;
  j["resent"] = s.resent;
  j["in_flight"] = s.in_flight;
  j["pending"] = s.pending ? json(*s.pending) : json(nullptr);
  j["blocked"] = s.blocked;
  j["last_connected"] = rabbit_time(s.last_connected_ms);
  return j;
}

}  // namespace warren::mgmt
