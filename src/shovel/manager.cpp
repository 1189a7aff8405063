#include "shovel/manager.h"

#include "common/log.h"
#include "shovel/definition.h"

namespace warren::shovel {

using nlohmann::json;

namespace {

constexpr std::string_view kPrefix = "shovel";

// vhost and name joined by NUL, which neither can hold (both arrive as UTF-8 text).
std::string setting_key(std::string_view vhost, std::string_view name) {
  std::string key(kPrefix);
  key.push_back('\0');
  key.append(vhost).push_back('\0');
  key.append(name);
  return key;
}

}  // namespace

ShovelManager::ShovelManager(core::Engine& engine) : engine_(engine) {}

ShovelManager::~ShovelManager() { stop_all(); }

void ShovelManager::recover() {
  std::string prefix(kPrefix);
  prefix.push_back('\0');
  for (const auto& [key, stored] : engine_.settings_with_prefix(prefix)) {
    std::string_view rest = std::string_view(key).substr(prefix.size());
    auto nul = rest.find('\0');
    if (nul == std::string_view::npos) continue;
    const std::string vhost(rest.substr(0, nul)), name(rest.substr(nul + 1));
    json value = json::parse(stored, nullptr, false);
    auto definition = definition_from_json(vhost, name, value);
    if (!definition.ok()) {
      log::error("stored shovel '{}' in vhost '{}' not started: {}", name, vhost,
                 definition.status().text());
      continue;
    }
    start({vhost, name}, std::move(definition.value()), std::move(value));
  }
}

Result<core::CommitId> ShovelManager::declare(const ShovelDefinition& definition) {
  if (Status s = validate(definition); !s) return s;
  json value = definition_to_json(definition);
  Key key{definition.vhost, definition.name};
  core::CommitId commit = store(key, value);
  start(key, definition, std::move(value));
  return commit;
}

Result<core::CommitId> ShovelManager::declare(std::string_view vhost, std::string_view name,
                                              const json& value) {
  auto definition = definition_from_json(vhost, name, value);
  if (!definition.ok()) return definition.status();
  Key key{std::string(vhost), std::string(name)};
  core::CommitId commit = store(key, value);
  start(key, std::move(definition.value()), value);
  return commit;
}

core::CommitId ShovelManager::store(const Key& key, const json& value) {
  return engine_.put_setting(setting_key(key.first, key.second), value.dump());
}

void ShovelManager::start(const Key& key, ShovelDefinition definition, json value) {
  if (auto it = shovels_.find(key); it != shovels_.end()) it->second.shovel->stop();
  // src-delete-after reached: the shovel deletes its own definition, as RabbitMQ's does.
  auto completed = [this, alive = std::weak_ptr<bool>(alive_), key] {
    if (alive.lock()) (void)remove(key.first, key.second);
  };
  auto shovel = std::make_shared<Shovel>(engine_, std::move(definition), std::move(completed));
  shovels_[key] = Running{std::move(value), shovel};
  shovel->start();
}

Result<core::CommitId> ShovelManager::remove(std::string_view vhost, std::string_view name) {
  auto it = shovels_.find(Key{vhost, name});
  if (it == shovels_.end())
    return Status::error(ReplyCode::not_found,
                         fmt::format("no shovel '{}' in vhost '{}'", name, vhost));
  it->second.shovel->stop();
  shovels_.erase(it);
  return engine_.delete_setting(setting_key(vhost, name));
}

Status ShovelManager::restart(std::string_view vhost, std::string_view name) {
  auto it = shovels_.find(Key{vhost, name});
  if (it == shovels_.end())
    return Status::error(ReplyCode::not_found,
                         fmt::format("no shovel '{}' in vhost '{}'", name, vhost));
  auto definition = it->second.shovel->definition();
  start(it->first, std::move(definition), it->second.value);
  return {};
}

void ShovelManager::stop_all() {
  for (auto& [key, running] : shovels_) running.shovel->stop();
}

std::vector<ShovelManager::Entry> ShovelManager::list() const {
  std::vector<Entry> out;
  for (const auto& [key, running] : shovels_)
    out.push_back({key.first, key.second, running.value, running.shovel->status()});
  return out;
}

}  // namespace warren::shovel
