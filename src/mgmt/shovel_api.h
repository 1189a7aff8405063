// The shovel plugin's part of the management API, as RabbitMQ's rabbitmq_shovel_management
// serves it: runtime parameters of component "shovel" and the shovels' status.
//
//   GET          /api/parameters[/shovel[/{vhost}[/{name}]]]
//   PUT, DELETE  /api/parameters/shovel/{vhost}/{name}      body {"value": {...}}
//   GET          /api/shovels[/{vhost}], /api/shovels/vhost/{vhost}/{name}
//   DELETE       /api/shovels/vhost/{vhost}/{name}/restart
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mgmt/api.h"
#include "shovel/manager.h"

namespace warren::mgmt {

// `parts` are the decoded path segments ("api", "parameters", ...). Without a shovel
// manager (an embedding that has none) there are no parameters and no shovels.
Response parameters_endpoint(shovel::ShovelManager* shovels, core::Engine& engine,
                             const Request& request, const std::vector<std::string>& parts);
Response shovels_endpoint(shovel::ShovelManager* shovels, const Request& request,
                          const std::vector<std::string>& parts);

// Every shovel as a definitions file lists it under "parameters".
nlohmann::json shovel_parameters(const shovel::ShovelManager& shovels);
// One shovel's status as GET /api/shovels shows it (RabbitMQ's fields, then Warren's).
nlohmann::json shovel_status_json(const shovel::ShovelManager::Entry& entry);

}  // namespace warren::mgmt
