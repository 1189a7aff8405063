#include "mgmt/users_api.h"

#include <fmt/format.h>

#include "core/vhost.h"
#include "mgmt/json_fields.h"
#include "mgmt/responses.h"

namespace warren::mgmt {

using nlohmann::json;

namespace {

constexpr std::string_view kHashing = "rabbit_password_hashing_sha256";

// "administrator,monitoring" (RabbitMQ's form) or ["administrator", "monitoring"].
std::optional<std::vector<std::string>> tags_from_json(const json& tags) {
  std::vector<std::string> out;
  auto add = [&](std::string tag) {
    while (!tag.empty() && tag.front() == ' ') tag.erase(0, 1);
    while (!tag.empty() && tag.back() == ' ') tag.pop_back();
    if (!tag.empty()) out.push_back(std::move(tag));
  };
  if (tags.is_null()) return out;
  if (tags.is_string()) {
    const std::string& text = tags.get_ref<const std::string&>();
    for (size_t at = 0; at <= text.size();) {
      size_t comma = std::min(text.find(',', at), text.size());
      add(text.substr(at, comma - at));
      at = comma + 1;
    }
    return out;
  }
  if (!tags.is_array()) return std::nullopt;
  for (const auto& tag : tags) {
    if (!tag.is_string()) return std::nullopt;
    add(tag.get<std::string>());
  }
  return out;
}

json permission_json(const std::string& user, const std::string& vhost,
                     const core::Permissions& p) {
  return json{{"user", user},
              {"vhost", vhost},
              {"configure", p.configure},
              {"write", p.write},
              {"read", p.read}};
}

json user_permissions(const core::User& user) {
  json out = json::array();
  for (const auto& [vhost, p] : user.permissions)
    out.push_back(permission_json(user.name, vhost, p));
  return out;
}

json topic_permission_json(const std::string& user, const std::string& vhost,
                           const std::string& exchange, const core::TopicPermissions& p) {
  return json{{"user", user},
              {"vhost", vhost},
              {"exchange", exchange},
              {"write", p.write},
              {"read", p.read}};
}

// A user's topic permissions, in one vhost or (empty) in all.
json user_topic_permissions(const core::User& user, std::string_view only_vhost = {}) {
  json out = json::array();
  for (const auto& [vhost, by_exchange] : user.topic_permissions)
    if (only_vhost.empty() || vhost == only_vhost)
      for (const auto& [exchange, p] : by_exchange)
        out.push_back(topic_permission_json(user.name, vhost, exchange, p));
  return out;
}

Response put_user(core::Engine& engine, const Request& r, const std::string& name) {
  json body = json::parse(r.body.empty() ? "{}" : r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return bad_request("invalid JSON in the request body");
  const core::User* existing = engine.users().find(name);
  json item = body;
  item["name"] = name;
  auto user = user_from_json(item, existing);
  if (!user.ok()) return bad_request(reply_text(user.status()));
  const bool existed = existing != nullptr;
  return {existed ? 204 : 201, nullptr, engine.store_user(std::move(user.value()))};
}

}  // namespace

json user_json(const core::User& user) {
  return json{{"name", user.name},
              {"password_hash", user.password_hash},
              {"hashing_algorithm", kHashing},
              {"tags", user.tags},
              {"limits", json::object()}};
}

json all_permissions(const core::Engine& engine) {
  json out = json::array();
  for (const core::User* user : engine.users().list())
    for (auto& p : user_permissions(*user)) out.push_back(std::move(p));
  return out;
}

json all_topic_permissions(const core::Engine& engine) {
  json out = json::array();
  for (const core::User* user : engine.users().list())
    for (auto& p : user_topic_permissions(*user)) out.push_back(std::move(p));
  return out;
}

json vhost_topic_permissions(const core::Engine& engine, const std::string& vhost) {
  json out = json::array();
  for (const core::User* user : engine.users().list())
    for (auto& p : user_topic_permissions(*user, vhost)) out.push_back(std::move(p));
  return out;
}

json vhost_permissions(const core::Engine& engine, const std::string& vhost) {
  json out = json::array();
  for (const core::User* user : engine.users().list())
    if (auto it = user->permissions.find(vhost); it != user->permissions.end())
      out.push_back(permission_json(user->name, vhost, it->second));
  return out;
}

Result<core::User> user_from_json(const json& item, const core::User* existing) {
  auto refuse = [](std::string_view why) {
    return Status::error(ReplyCode::precondition_failed, why);
  };
  if (!item.is_object() || !item.contains("name") || !item["name"].is_string() ||
      item["name"].get<std::string>().empty())
    return refuse("a user needs a name");
  core::User user;
  user.name = item["name"].get<std::string>();
  if (existing) {  // PUT /api/users keeps them
    user.permissions = existing->permissions;
    user.topic_permissions = existing->topic_permissions;
    user.every_vhost = existing->every_vhost;
  }
  auto tags = tags_from_json(item.value("tags", json()));
  if (!tags) return refuse("tags must be a comma-separated string or a list of strings");
  user.tags = std::move(*tags);
  if (item.contains("password")) {
    if (!item["password"].is_string()) return refuse("password must be a string");
    user.password_hash = core::hash_password(item["password"].get<std::string>());
  } else if (item.contains("password_hash")) {
    const json& algorithm = item.value("hashing_algorithm", json(kHashing));
    if (algorithm != kHashing)
      return refuse(fmt::format("hashing algorithm {} is not supported (only {})", algorithm.dump(),
                                kHashing));
    if (!item["password_hash"].is_string()) return refuse("password_hash must be a string");
    user.password_hash = item["password_hash"].get<std::string>();
    if (!user.password_hash.empty() && core::Users::decode_hash(user.password_hash).empty())
      return refuse("password_hash is not a rabbit_password_hashing_sha256 hash");
  }
  return user;
}

namespace {

Status refused(std::string_view why) { return Status::error(ReplyCode::precondition_failed, why); }

// What is wrong with an item's string fields `keys`, of which `patterns` are regular
// expressions (checked by `pattern_error`); nothing if all is well.
std::optional<Status> bad_fields(const json& item, std::initializer_list<const char*> keys,
                                 std::initializer_list<const char*> patterns,
                                 std::optional<std::string> (*pattern_error)(const std::string&)) {
  if (auto missing = missing_keys(item, keys)) return refused(*missing);
  for (const char* key : keys)
    if (!item[key].is_string()) return refused(fmt::format("{} must be a string", key));
  for (const char* key : patterns)
    if (auto error = pattern_error(item[key].get<std::string>()))
      return refused(fmt::format("invalid_regexp {}: {}", item[key].dump(), *error));
  return std::nullopt;
}

// Applies `change` to the user the item names, in the vhost it names, and stores the user.
template <class Change>
Status change_user_in_vhost(core::Engine& engine, const json& item, core::CommitId* commit,
                            Change change) {
  const std::string user = item.value("user", ""), vhost = item.value("vhost", "");
  const core::User* existing = engine.users().find(user);
  if (!existing || !engine.find_vhost(vhost)) return refused("vhost_or_user_not_found");
  core::User changed = *existing;
  change(changed, vhost);
  *commit = std::max(*commit, engine.store_user(std::move(changed)));
  return {};
}

}  // namespace

Status permission_from_json(core::Engine& engine, const json& item, core::CommitId* commit) {
  if (auto bad = bad_fields(item, {"configure", "write", "read"}, {"configure", "write", "read"},
                            core::Users::pattern_error))
    return *bad;
  return change_user_in_vhost(engine, item, commit, [&](core::User& u, const std::string& vhost) {
    u.permissions[vhost] =
        core::Permissions{item["configure"].get<std::string>(), item["write"].get<std::string>(),
                          item["read"].get<std::string>()};
  });
}

Status topic_permission_from_json(core::Engine& engine, const json& item, core::CommitId* commit) {
  if (auto bad = bad_fields(item, {"exchange", "write", "read"}, {"write", "read"},
                            core::Users::topic_pattern_error))
    return *bad;
  return change_user_in_vhost(engine, item, commit, [&](core::User& u, const std::string& vhost) {
    u.topic_permissions[vhost][item["exchange"].get<std::string>()] =
        core::TopicPermissions{item["write"].get<std::string>(), item["read"].get<std::string>()};
  });
}

Response users_endpoint(core::Engine& engine, const Request& r,
                        const std::vector<std::string>& parts) {
  const size_t n = parts.size();
  if (n == 2) {
    if (r.method != "GET") return {405, nullptr};
    json out = json::array();
    for (const core::User* user : engine.users().list()) out.push_back(user_json(*user));
    return list_response(std::move(out), r.query);
  }
  const std::string& name = parts[2];
  const core::User* user = engine.users().find(name);
  if (n == 4 && (parts[3] == "permissions" || parts[3] == "topic-permissions")) {
    if (r.method != "GET") return {405, nullptr};
    if (!user) return not_found();
    return {200,
            parts[3] == "permissions" ? user_permissions(*user) : user_topic_permissions(*user)};
  }
  if (n != 3) return not_found();
  if (r.method == "GET") return user ? Response{200, user_json(*user)} : not_found();
  if (r.method == "PUT") return put_user(engine, r, name);
  if (r.method == "DELETE") {
    if (!user) return not_found();
    return {204, nullptr, engine.delete_user(name)};
  }
  return {405, nullptr};
}

namespace {

// PUT /api/(topic-)permissions/{vhost}/{user}: the body with the path's user and vhost, set
// by `apply`; 201 for the user's first in the vhost, else 204.
Response put_permission(core::Engine& engine, const Request& r, const std::string& user,
                        const std::string& vhost, bool existed,
                        Status (*apply)(core::Engine&, const json&, core::CommitId*)) {
  json body = json::parse(r.body.empty() ? "{}" : r.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return bad_request("invalid JSON in the request body");
  body["user"] = user;
  body["vhost"] = vhost;
  core::CommitId commit = 0;
  if (Status s = apply(engine, body, &commit); !s) return bad_request(reply_text(s));
  return {existed ? 204 : 201, nullptr, commit};
}

}  // namespace

Response permissions_endpoint(core::Engine& engine, const Request& r,
                              const std::vector<std::string>& parts) {
  const size_t n = parts.size();
  if (n == 2) {
    if (r.method != "GET") return {405, nullptr};
    return list_response(all_permissions(engine), r.query);
  }
  if (n != 4) return not_found();
  const std::string &vhost = parts[2], &name = parts[3];
  const core::User* user = engine.users().find(name);
  if (r.method == "GET") {
    auto it = user ? user->permissions.find(vhost) : decltype(user->permissions.end()){};
    if (!user || it == user->permissions.end()) return not_found();
    return {200, permission_json(name, vhost, it->second)};
  }
  if (r.method == "PUT") {
    const bool existed = user && user->permissions.contains(vhost);
    return put_permission(engine, r, name, vhost, existed, permission_from_json);
  }
  if (r.method == "DELETE") {
    if (!user || !user->permissions.contains(vhost)) return not_found();
    core::User changed = *user;
    changed.permissions.erase(vhost);
    return {204, nullptr, engine.store_user(std::move(changed))};
  }
  return {405, nullptr};
}

namespace {

// DELETE /api/topic-permissions/{vhost}/{user}/{exchange}: Warren's own path, for
// clear_topic_permissions with an exchange (RabbitMQ's API can only clear them all).
Response delete_topic_permission(core::Engine& engine, const Request& r, const core::User* user,
                                 const std::string& vhost, const std::string& exchange) {
  if (r.method != "DELETE") return {405, nullptr};
  auto in_vhost =
      user ? user->topic_permissions.find(vhost) : decltype(user->topic_permissions.end()){};
  if (!user || in_vhost == user->topic_permissions.end() || !in_vhost->second.contains(exchange))
    return not_found();
  core::User changed = *user;
  auto& by_exchange = changed.topic_permissions[vhost];
  by_exchange.erase(exchange);
  if (by_exchange.empty()) changed.topic_permissions.erase(vhost);
  return {204, nullptr, engine.store_user(std::move(changed))};
}

}  // namespace

Response topic_permissions_endpoint(core::Engine& engine, const Request& r,
                                    const std::vector<std::string>& parts) {
  const size_t n = parts.size();
  if (n == 2) {
    if (r.method != "GET") return {405, nullptr};
    return list_response(all_topic_permissions(engine), r.query);
  }
  if (n != 4 && n != 5) return not_found();
  const std::string &vhost = parts[2], &name = parts[3];
  const core::User* user = engine.users().find(name);
  const bool has_some = user && user->topic_permissions.contains(vhost);
  if (n == 5) return delete_topic_permission(engine, r, user, vhost, parts[4]);
  if (r.method == "GET") {
    if (!has_some) return not_found();
    return {200, user_topic_permissions(*user, vhost)};
  }
  if (r.method == "PUT")
    return put_permission(engine, r, name, vhost, has_some, topic_permission_from_json);
  if (r.method == "DELETE") {
    if (!has_some) return not_found();
    core::User changed = *user;
    changed.topic_permissions.erase(vhost);
    return {204, nullptr, engine.store_user(std::move(changed))};
  }
  return {405, nullptr};
}

}  // namespace warren::mgmt
