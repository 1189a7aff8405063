// An exchange and its bindings; routing is a pure function of them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/routing.h"
#include "warren/field_table.h"

namespace warren::core {

struct Destination {
  bool is_queue = true;
  std::string name;
  bool operator==(const Destination&) const = default;
};

struct Binding {
  Destination destination;
  std::string routing_key;
  FieldTable arguments;
  HeadersMatch match = HeadersMatch::all;  // headers exchanges only
  bool same_as(const Binding& o) const {
    return destination == o.destination && routing_key == o.routing_key && arguments == o.arguments;
  }
};

class Exchange {
 public:
  enum class Type { direct, fanout, topic, headers };
  static std::optional<Type> parse_type(std::string_view name);

  std::string name;
  std::string type_name;
  Type type = Type::direct;
  bool durable = false;
  bool auto_delete = false;
  bool internal = false;
  FieldTable arguments;
  std::vector<Binding> bindings;

  bool is_default() const { return name.empty(); }
  // Adds the binding unless an identical one exists; returns whether it was added.
  bool add_binding(Binding b);
  bool remove_binding(const Binding& b);
  // Appends the destinations a message with this key and these headers goes to.
  void route(std::string_view routing_key, const FieldTable* headers,
             std::vector<const Destination*>& out) const;
  std::optional<std::string> alternate_exchange() const;
};

}  // namespace warren::core
