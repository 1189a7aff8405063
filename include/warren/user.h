// Users of the broker's network listeners (AMQP, the management API), as RabbitMQ has them:
// a password (stored as a salted hash), tags, and per-vhost permissions. In-process channels
// have no user and are not checked.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace warren {

// Regular expressions a queue or exchange name must match (anywhere in it) for the user to
// configure (declare, delete), write (publish, bind to) or read (consume, get, purge, bind
// from) it; "" allows nothing.
struct UserPermissions {
  std::string configure = ".*";
  std::string write = ".*";
  std::string read = ".*";
};

// On a topic exchange, regular expressions a routing key must match (anywhere in it) to
// publish with it (write) or bind a queue or exchange with it (read); "" allows only the
// empty key; "{username}" and "{vhost}" stand for the user's name and the vhost. Exchanges
// without an entry are not checked (RabbitMQ's topic authorisation).
struct UserTopicPermissions {
  std::string write = ".*";
  std::string read = ".*";
};

struct UserDefinition {
  std::string name = {};
  // One of them: the password (stored hashed), or a hash as RabbitMQ exports it
  // (rabbit_password_hashing_sha256); neither: the user cannot log in with a password.
  std::string password = {};
  std::string password_hash = {};
  std::vector<std::string> tags = {};  // administrator, monitoring, management, policymaker
  std::map<std::string, UserPermissions> permissions = {};  // by vhost
  std::map<std::string, std::map<std::string, UserTopicPermissions>> topic_permissions =
      {};  // by vhost, then exchange
};

}  // namespace warren
