#include "core/exchange.h"

#include <algorithm>

namespace warren::core {

std::optional<Exchange::Type> Exchange::parse_type(std::string_view name) {
  if (name == "direct") return Type::direct;
  if (name == "fanout") return Type::fanout;
  if (name == "topic") return Type::topic;
  if (name == "headers") return Type::headers;
  return std::nullopt;
}

bool Exchange::add_binding(Binding b) {
  for (const auto& existing : bindings)
    if (existing.same_as(b)) return false;
  bindings.push_back(std::move(b));
  return true;
}

bool Exchange::remove_binding(const Binding& b) {
  auto it = std::find_if(bindings.begin(), bindings.end(), [&](auto& x) { return x.same_as(b); });
  if (it == bindings.end()) return false;
  bindings.erase(it);
  return true;
}

void Exchange::route(std::string_view key, const FieldTable* headers,
                     std::vector<const Destination*>& out) const {
  for (const auto& b : bindings) {
    bool hit = false;
    switch (type) {
      case Type::direct:
        hit = b.routing_key == key;
        break;
      case Type::fanout:
        hit = true;
        break;
      case Type::topic:
        hit = topic_matches(b.routing_key, key);
        break;
      case Type::headers:
        hit = headers_match(b.match, b.arguments, headers);
        break;
    }
    if (hit) out.push_back(&b.destination);
  }
}

std::optional<std::string> Exchange::alternate_exchange() const {
  if (const FieldValue* v = arguments.find("alternate-exchange"))
    if (const auto* s = v->as<std::string>()) return *s;
  return std::nullopt;
}

}  // namespace warren::core
