// Compiled with -Wno-maybe-uninitialized under GCC, as mgmt/name_filter.cpp: GCC 12 warns
// inside libstdc++'s <regex>.
#include "core/users.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <regex>

#include "common/bounded_regex.h"
#include "mgmt/json_fields.h"
#include "wire/field_codec.h"

namespace warren::core {

namespace {

// OpenSSL 3's one-shot SHA256() looks the algorithm up in its provider tables on every call:
// three times the work of a digest with the algorithm fetched once, and on the broker's loop
// (every login, every HTTP request) it was 30 µs with cold caches against 20.
const EVP_MD* sha256() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md;
}

std::string salted_digest(std::string_view salt, std::string_view password) {
  std::string input(salt);
  input += password;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  EVP_Digest(input.data(), input.size(), digest, nullptr, sha256(), nullptr);
  return std::string(salt) + std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

// What an unknown user's password is checked against, so that the answer takes as long.
const std::string& decoy_hash() {
  static const std::string hash = hash_password("no such user");
  return hash;
}

}  // namespace

std::string hash_password(std::string_view password) {
  unsigned char salt[4];
  if (RAND_bytes(salt, sizeof salt) != 1) return {};
  return mgmt::encode_base64(
      salted_digest(std::string_view(reinterpret_cast<const char*>(salt), sizeof salt), password));
}

bool password_matches(std::string_view password, std::string_view hash) {
  auto stored = mgmt::decode_base64(hash);
  if (!stored || stored->size() != 4 + SHA256_DIGEST_LENGTH) return false;
  std::string computed = salted_digest(std::string_view(*stored).substr(0, 4), password);
  return CRYPTO_memcmp(computed.data(), stored->data(), computed.size()) == 0;
}

std::string_view access_name(Access access) {
  return access == Access::configure ? "configure" : access == Access::write ? "write" : "read";
}

bool User::has_tag(std::string_view tag) const {
  return std::find(tags.begin(), tags.end(), tag) != tags.end();
}

struct Users::Patterns {
  std::map<std::string, std::regex, std::less<>> compiled;
  const std::regex* get(const std::string& pattern) {
    auto it = compiled.find(pattern);
    if (it != compiled.end()) return &it->second;
    if (!regex_is_bounded(pattern)) return nullptr;
    try {
      return &compiled.emplace(pattern, std::regex(pattern)).first->second;
    } catch (const std::regex_error&) {
      return nullptr;
    }
  }
};

Users::Users() : patterns_(std::make_unique<Patterns>()) {}
Users::~Users() = default;

const User* Users::find(std::string_view name) const {
  auto it = users_.find(name);
  return it == users_.end() ? nullptr : &it->second;
}

void Users::put(User user) {
  if (const User* old = find(user.name); old && !old->topic_permissions.empty())
    --users_with_topic_permissions_;
  if (!user.topic_permissions.empty()) ++users_with_topic_permissions_;
  std::string name = user.name;
  users_[name] = std::move(user);
  ++generation_;
}

bool Users::remove(std::string_view name) {
  auto it = users_.find(name);
  if (it == users_.end()) return false;
  if (!it->second.topic_permissions.empty()) --users_with_topic_permissions_;
  users_.erase(it);
  ++generation_;
  return true;
}

std::vector<const User*> Users::list() const {
  std::vector<const User*> out;
  for (const auto& [name, user] : users_) out.push_back(&user);
  return out;
}

bool Users::password_matches(std::string_view name, std::string_view password) const {
  const User* user = find(name);
  const bool known = user && !user->password_hash.empty();
  const bool matches = core::password_matches(password, known ? user->password_hash : decoy_hash());
  return known && matches;
}

bool Users::may_use_vhost(std::string_view name, std::string_view vhost) const {
  const User* user = find(name);
  return user && (user->every_vhost || user->permissions.contains(vhost));
}

bool Users::may(std::string_view name, std::string_view vhost, Access access,
                std::string_view resource) const {
  const User* user = find(name);
  if (!user) return false;
  if (user->every_vhost) return true;
  auto it = user->permissions.find(vhost);
  if (it == user->permissions.end()) return false;
  const std::string& pattern = it->second[access];
  if (pattern.empty()) return false;  // RabbitMQ's "no access"
  if (pattern == ".*") return true;
  const std::regex* re = patterns_->get(pattern);
  // A name matches when the pattern is found anywhere in it (Erlang's re:run).
  return re && std::regex_search(resource.begin(), resource.end(), *re);
}

namespace {

// RabbitMQ's variables in topic permission patterns.
std::string expand_topic_variables(std::string pattern, std::string_view user,
                                   std::string_view vhost) {
  for (auto [name, value] : {std::pair{std::string_view("{username}"), user},
                             std::pair{std::string_view("{vhost}"), vhost}})
    for (size_t at = pattern.find(name); at != std::string::npos;
         at = pattern.find(name, at + value.size()))
      pattern.replace(at, name.size(), value);
  return pattern;
}

}  // namespace

bool Users::may_use_topic(std::string_view name, std::string_view vhost, std::string_view exchange,
                          Access access, std::string_view routing_key) const {
  if (users_with_topic_permissions_ == 0) return true;
  const User* user = find(name);
  if (!user) return false;  // (its ordinary permissions refuse everything anyway)
  auto in_vhost = user->topic_permissions.find(vhost);
  if (in_vhost == user->topic_permissions.end()) return true;
  auto it = in_vhost->second.find(exchange);
  if (it == in_vhost->second.end()) return true;
  const std::string& pattern = access == Access::write ? it->second.write : it->second.read;
  if (pattern == ".*") return true;
  // "" is RabbitMQ's "^$": only the empty routing key.
  const std::string expanded =
      pattern.empty() ? "^$" : expand_topic_variables(pattern, user->name, vhost);
  const std::regex* re = patterns_->get(expanded);
  return re && std::regex_search(routing_key.begin(), routing_key.end(), *re);
}

std::string Users::decode_hash(std::string_view hash) {
  auto bytes = mgmt::decode_base64(hash);
  return bytes && bytes->size() == 4 + SHA256_DIGEST_LENGTH ? *bytes : std::string();
}

std::optional<std::string> Users::pattern_error(const std::string& pattern) {
  if (!regex_is_bounded(pattern)) return "the pattern is too long or repeats too much";
  try {
    std::regex compiled(pattern);
  } catch (const std::regex_error& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

std::optional<std::string> Users::topic_pattern_error(const std::string& pattern) {
  return pattern_error(expand_topic_variables(pattern, "user", "vhost"));
}

// ---- stored form ------------------------------------------------------------------------------

std::string Users::encode(const User& user) {
  FieldTable t;
  t.set("name", FieldValue(user.name));
  t.set("password_hash", FieldValue(user.password_hash));
  FieldArray tags;
  for (const auto& tag : user.tags) tags.push_back(FieldValue(tag));
  t.set("tags", FieldValue(std::move(tags)));
  FieldTable permissions;
  for (const auto& [vhost, p] : user.permissions)
    permissions.set(vhost, FieldValue(FieldTable{{"configure", FieldValue(p.configure)},
                                                 {"write", FieldValue(p.write)},
                                                 {"read", FieldValue(p.read)}}));
  t.set("permissions", FieldValue(std::move(permissions)));
  t.set("every_vhost", FieldValue(user.every_vhost));
  FieldTable topic;
  for (const auto& [vhost, by_exchange] : user.topic_permissions) {
    FieldTable exchanges;
    for (const auto& [exchange, p] : by_exchange)
      exchanges.set(exchange, FieldValue(FieldTable{{"write", FieldValue(p.write)},
                                                    {"read", FieldValue(p.read)}}));
    topic.set(vhost, FieldValue(std::move(exchanges)));
  }
  t.set("topic_permissions", FieldValue(std::move(topic)));
  return wire::encode_table(t);
}

std::optional<User> Users::decode(std::string_view bytes) {
  auto t = wire::decode_table(bytes);
  if (!t) return std::nullopt;
  auto text = [&](const FieldTable& table, std::string_view key) -> std::optional<std::string> {
    const FieldValue* v = table.find(key);
    const std::string* s = v ? v->as<std::string>() : nullptr;
    return s ? std::optional(*s) : std::nullopt;
  };
  User user;
  auto name = text(*t, "name");
  auto hash = text(*t, "password_hash");
  if (!name || !hash) return std::nullopt;
  user.name = *name;
  user.password_hash = *hash;
  if (const FieldValue* tags = t->find("tags"))
    if (const auto* list = tags->as<FieldArray>())
      for (const auto& tag : *list)
        if (const auto* s = tag.as<std::string>()) user.tags.push_back(*s);
  if (const FieldValue* permissions = t->find("permissions"))
    if (const auto* by_vhost = permissions->as<FieldTable>())
      for (const auto& [vhost, value] : *by_vhost)
        if (const auto* p = value.as<FieldTable>())
          user.permissions[vhost] =
              Permissions{text(*p, "configure").value_or(""), text(*p, "write").value_or(""),
                          text(*p, "read").value_or("")};
  if (const FieldValue* every = t->find("every_vhost"))
    if (const bool* b = every->as<bool>()) user.every_vhost = *b;
  if (const FieldValue* topic = t->find("topic_permissions"))  // absent in older stores
    if (const auto* by_vhost = topic->as<FieldTable>())
      for (const auto& [vhost, value] : *by_vhost)
        if (const auto* by_exchange = value.as<FieldTable>())
          for (const auto& [exchange, entry] : *by_exchange)
            if (const auto* p = entry.as<FieldTable>())
              user.topic_permissions[vhost][exchange] =
                  TopicPermissions{text(*p, "write").value_or(""), text(*p, "read").value_or("")};
  return user;
}

}  // namespace warren::core
