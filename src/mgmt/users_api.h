// Users and permissions in the management API, as RabbitMQ 3.10's plugin has them (all of it
// for administrators only; the caller checks that):
//
//   GET             /api/users, /api/users/{name}, /api/users/{name}/permissions
//   PUT, DELETE     /api/users/{name}        {"password" | "password_hash", "tags": "a,b"}
//   GET             /api/permissions, /api/vhosts/{vhost}/permissions
//   GET, PUT, DELETE /api/permissions/{vhost}/{user}   {"configure", "write", "read"}
//   GET             /api/topic-permissions, /api/users/{name}/topic-permissions,
//                   /api/vhosts/{vhost}/topic-permissions
//   GET, PUT, DELETE /api/topic-permissions/{vhost}/{user}   {"exchange", "write", "read"}
//                   (PUT sets one exchange's; GET and DELETE take all of the user's in the vhost)
//   DELETE          /api/topic-permissions/{vhost}/{user}/{exchange}   (Warren's own)
//
// and the same records in definitions files.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/engine.h"
#include "mgmt/api.h"

namespace warren::mgmt {

Response users_endpoint(core::Engine& engine, const Request& request,
                        const std::vector<std::string>& parts);
Response permissions_endpoint(core::Engine& engine, const Request& request,
                              const std::vector<std::string>& parts);
Response topic_permissions_endpoint(core::Engine& engine, const Request& request,
                                    const std::vector<std::string>& parts);
// GET /api/vhosts/{vhost}/permissions and /api/vhosts/{vhost}/topic-permissions
nlohmann::json vhost_permissions(const core::Engine& engine, const std::string& vhost);
nlohmann::json vhost_topic_permissions(const core::Engine& engine, const std::string& vhost);

// A user as GET /api/users and definitions files show it.
nlohmann::json user_json(const core::User& user);
// Every permission (of every user in every vhost), as definitions files list them.
nlohmann::json all_permissions(const core::Engine& engine);
nlohmann::json all_topic_permissions(const core::Engine& engine);

// From a definitions file's "users" item: the user, or what is wrong. Permissions are added
// separately (permission_from_json).
Result<core::User> user_from_json(const nlohmann::json& item, const core::User* existing);
// Sets a "permissions" item on the user it names (which must exist by then).
Status permission_from_json(core::Engine& engine, const nlohmann::json& item,
                            core::CommitId* commit);
// Sets a "topic_permissions" item (user, vhost, exchange, write, read) likewise.
Status topic_permission_from_json(core::Engine& engine, const nlohmann::json& item,
                                  core::CommitId* commit);

}  // namespace warren::mgmt
