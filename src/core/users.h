// The broker's users, as RabbitMQ's internal authentication backend has them: a salted
// password hash (rabbit_password_hashing_sha256, so definitions exported from RabbitMQ keep
// their passwords), tags for the management API, and per-vhost permissions (configure,
// write, read: regular expressions a resource name must match somewhere, "" matching
// nothing) and topic permissions. Loop thread.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace warren::core {

// RabbitMQ's stored form: base64 of a 4-byte random salt followed by SHA-256(salt + password).
std::string hash_password(std::string_view password);
// Whether `password` hashes to `hash`; the comparison takes the same time either way.
bool password_matches(std::string_view password, std::string_view hash);

enum class Access { configure, write, read };
std::string_view access_name(Access access);

struct Permissions {
  std::string configure = ".*";
  std::string write = ".*";
  std::string read = ".*";
  const std::string& operator[](Access a) const {
    return a == Access::configure ? configure : a == Access::write ? write : read;
  }
  bool operator==(const Permissions&) const = default;
};

// Topic permissions (RabbitMQ's topic authorisation) for one topic exchange: regular
// expressions a routing key must match to publish with it (write) or to bind with it (read).
// "" allows only the empty key; "{username}" and "{vhost}" stand for the user and the vhost.
struct TopicPermissions {
  std::string write = ".*";
  std::string read = ".*";
  bool operator==(const TopicPermissions&) const = default;
};
using TopicPermissionsByExchange = std::map<std::string, TopicPermissions, std::less<>>;

struct User {
  std::string name;
  std::string password_hash = {};  // empty: no password login (certificates only)
  std::vector<std::string> tags = {};
  std::map<std::string, Permissions, std::less<>> permissions = {};  // by vhost
  // Users from warrend's command line or config file may use every vhost fully (as a
  // user did before permissions existed); others only where permissions say.
  bool every_vhost = false;
  std::map<std::string, TopicPermissionsByExchange, std::less<>> topic_permissions =
      {};  // by vhost

  bool has_tag(std::string_view tag) const;
  bool operator==(const User&) const = default;
};

class Users {
 public:
  Users();
  ~Users();

  const User* find(std::string_view name) const;
  // Adds or replaces.
  void put(User user);
  bool remove(std::string_view name);
  std::vector<const User*> list() const;  // by name
  bool empty() const { return users_.empty(); }

  // PLAIN/AMQPLAIN and HTTP basic logins. As long for an unknown user as for a known one.
  bool password_matches(std::string_view user, std::string_view password) const;
  bool may_use_vhost(std::string_view user, std::string_view vhost) const;
  // Whether `user` has `access` to the resource named `resource` in `vhost`.
  bool may(std::string_view user, std::string_view vhost, Access access,
           std::string_view resource) const;
  // Whether `user` may publish (write) or bind (read) with `routing_key` on the topic
  // exchange `exchange`: true unless a topic permission for it says otherwise.
  bool may_use_topic(std::string_view user, std::string_view vhost, std::string_view exchange,
                     Access access, std::string_view routing_key) const;
  // Bumped by every change, so that callers may cache answers.
  uint64_t generation() const { return generation_; }

  // A user as one stored record (an AMQP field table) and back.
  static std::string encode(const User& user);
  static std::optional<User> decode(std::string_view bytes);
  // The 36 bytes of a rabbit_password_hashing_sha256 hash; empty if it is not one.
  static std::string decode_hash(std::string_view hash);
  // Whether a permission's pattern compiles; the error otherwise.
  static std::optional<std::string> pattern_error(const std::string& pattern);
  // The same for a topic permission's pattern, whose {username} and {vhost} are not regex.
  static std::optional<std::string> topic_pattern_error(const std::string& pattern);

 private:
  struct Patterns;
  std::map<std::string, User, std::less<>> users_;
  std::unique_ptr<Patterns> patterns_;  // compiled regular expressions, by text
  uint64_t generation_ = 1;
  size_t users_with_topic_permissions_ = 0;  // 0: every topic publish is allowed without a lookup
};

}  // namespace warren::core
