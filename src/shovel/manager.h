// The broker's shovels: declared, replaced and deleted by name within a vhost, stored
// durably (each definition is one setting in the store, so it survives restarts), started
// when declared and again when the broker opens. Loop thread only.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "core/engine.h"
#include "shovel/shovel.h"

namespace warren::shovel {

class ShovelManager {
 public:
  explicit ShovelManager(core::Engine& engine);
  ~ShovelManager();  // stops every shovel (their definitions stay stored)

  // Starts every stored shovel. Once, after the broker opened.
  void recover();
  // Declares or replaces a shovel and starts it; the commit that stores the definition.
  // A definition that breaks the rules: 406 with RabbitMQ's "Validation failed" text.
  Result<core::CommitId> declare(const ShovelDefinition& definition);
  // The same from a RabbitMQ parameter value (kept as given, for GET and exports).
  Result<core::CommitId> declare(std::string_view vhost, std::string_view name,
                                 const nlohmann::json& value);
  // 404 if there is no such shovel.
  Result<core::CommitId> remove(std::string_view vhost, std::string_view name);
  // Stops and starts it again (RabbitMQ's DELETE /api/shovels/vhost/{vhost}/{name}/restart).
  Status restart(std::string_view vhost, std::string_view name);
  // Stops every shovel for good (the broker is stopping); their definitions stay stored.
  void stop_all();

  struct Entry {
    std::string vhost, name;
    nlohmann::json value;  // the parameter value
    ShovelStatus status;
  };
  // By vhost, then name.
  std::vector<Entry> list() const;

 private:
  using Key = std::pair<std::string, std::string>;  // vhost, name
  struct Running {
    nlohmann::json value;
    std::shared_ptr<Shovel> shovel;
  };
  core::CommitId store(const Key& key, const nlohmann::json& value);
  void start(const Key& key, ShovelDefinition definition, nlohmann::json value);

  core::Engine& engine_;
  std::map<Key, Running> shovels_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace warren::shovel
