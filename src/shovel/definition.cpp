#include "shovel/definition.h"

#include <fmt/format.h>

#include <cmath>
#include <set>

#include "mgmt/json_fields.h"

namespace warren::shovel {

using nlohmann::json;

namespace {

Status invalid(std::string_view why) {
  return Status::error(ReplyCode::precondition_failed,
                       fmt::format("Validation failed\n\n{}\n", why));
}

std::string shown(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

// The keys RabbitMQ 3.10 knows for an AMQP 0-9-1 shovel (with the older spellings).
const std::set<std::string, std::less<>> kKeys = {"src-uri",
                                                  "src-queue",
                                                  "src-exchange",
                                                  "src-exchange-key",
                                                  "src-protocol",
                                                  "src-prefetch-count",
                                                  "src-delete-after",
                                                  "dest-uri",
                                                  "dest-queue",
                                                  "dest-exchange",
                                                  "dest-exchange-key",
                                                  "dest-protocol",
                                                  "ack-mode",
                                                  "reconnect-delay",
                                                  "add-forward-headers",
                                                  "dest-add-forward-headers",
                                                  "dest-add-timestamp-header",
                                                  "dest-publish-properties",
                                                  "prefetch-count",
                                                  "delete-after",
                                                  "publish-properties",
                                                  "add-timestamp-header"};

class Reader {
 public:
  Reader(std::string_view name, const json& value) : name_(name), value_(value) {}

  const json* find(std::initializer_list<const char*> keys) const {
    for (const char* key : keys)
      if (auto it = value_.find(key); it != value_.end()) return &*it;
    return nullptr;
  }

  Status uris(const char* key, std::vector<std::string>& out) const {
    const json* v = find({key});
    if (!v) return invalid(fmt::format("Key \"{}\" not found in {}", key, name_));
    out.clear();
    if (v->is_string())
      out.push_back(v->get<std::string>());
    else if (v->is_array() && !v->empty())
      for (const auto& u : *v) {
        if (!u.is_string())
          return invalid(fmt::format("{} should be a URI or a list of URIs", key));
        out.push_back(u.get<std::string>());
      }
    else
      return invalid(
          fmt::format("{} should be a URI or a list of URIs, actually was {}", key, shown(*v)));
    return {};
  }

  Status text(std::initializer_list<const char*> keys, std::string& out) const {
    const json* v = find(keys);
    if (!v) return {};
    if (!v->is_string())
      return invalid(
          fmt::format("{} should be a string, actually was {}", *keys.begin(), shown(*v)));
    out = v->get<std::string>();
    return {};
  }

  Status flag(std::initializer_list<const char*> keys, bool& out) const {
    const json* v = find(keys);
    if (!v) return {};
    if (!v->is_boolean())
      return invalid(
          fmt::format("{} should be boolean, actually was {}", *keys.begin(), shown(*v)));
    out = v->get<bool>();
    return {};
  }

 private:
  std::string_view name_;
  const json& value_;
};

Status read_ack_mode(const Reader& r, ShovelDefinition& d) {
  const json* v = r.find({"ack-mode"});
  if (!v) return {};
  static const std::pair<const char*, ShovelAckMode> kModes[] = {
      {"no-ack", ShovelAckMode::no_ack},
      {"on-publish", ShovelAckMode::on_publish},
      {"on-confirm", ShovelAckMode::on_confirm}};
  for (const auto& [text, mode] : kModes)
    if (v->is_string() && *v == text) {
      d.ack_mode = mode;
      return {};
    }
  return invalid(fmt::format(
      "ack-mode should be one of [\"no-ack\",\"on-publish\",\"on-confirm\"], actually was {}",
      shown(*v)));
}

Status read_numbers(const Reader& r, ShovelDefinition& d) {
  if (const json* v = r.find({"src-prefetch-count", "prefetch-count"})) {
    if (!v->is_number_integer() || *v < 0 || *v > 65535)
      return invalid(
          fmt::format("src-prefetch-count should be a number, actually was {}", shown(*v)));
    d.src_prefetch_count = v->get<uint16_t>();
  }
  if (const json* v = r.find({"src-delete-after", "delete-after"})) {
    if (v->is_string() && *v == "never") {
    } else if (v->is_string() && *v == "queue-length") {
      d.src_delete_after_queue_length = true;
    } else if (v->is_number_integer() && *v >= 0) {
      d.src_delete_after = v->get<uint64_t>();
    } else {
      return invalid(fmt::format(
          "src-delete-after should be a number greater than or equal to 0, \"never\" or "
          "\"queue-length\", actually was {}",
          shown(*v)));
    }
  }
  if (const json* v = r.find({"reconnect-delay"})) {
    if (!v->is_number() || *v < 0 || !std::isfinite(v->get<double>()))
      return invalid(fmt::format(
          "reconnect-delay should be a number greater than or equal to 0, actually was {}",
          shown(*v)));
    d.reconnect_delay = v->get<double>();
  }
  return {};
}

Status read_protocols(const Reader& r) {
  for (const char* key : {"src-protocol", "dest-protocol"})
    if (const json* v = r.find({key}); v && !(v->is_string() && *v == "amqp091"))
      return invalid(
          fmt::format("{} should be \"amqp091\" (the only protocol Warren shovels "
                      "speak), actually was {}",
                      key, shown(*v)));
  return {};
}

Status read_publish_properties(const Reader& r, ShovelDefinition& d) {
  const json* v = r.find({"dest-publish-properties", "publish-properties"});
  if (!v) return {};
  if (!v->is_object())
    return invalid(
        fmt::format("dest-publish-properties should be an object, actually was {}", shown(*v)));
  std::string error;
  auto properties = mgmt::properties_from_json(*v, &error);
  if (!properties) return invalid(fmt::format("dest-publish-properties: {}", error));
  d.dest_publish_properties = std::move(*properties);
  return {};
}

}  // namespace

Result<std::vector<AmqpUri>> parse_uris(const std::vector<std::string>& uris) {
  std::vector<AmqpUri> out;
  for (const auto& text : uris) {
    auto uri = parse_amqp_uri(text);
    if (!uri.ok()) return uri.status();
    out.push_back(std::move(uri.value()));
  }
  return out;
}

Status validate(const ShovelDefinition& d) {
  if (d.name.empty()) return invalid("a shovel needs a name");
  for (const auto* uris : {&d.src_uri, &d.dest_uri}) {
    if (uris->empty()) return invalid("a shovel needs a source and a destination URI");
    auto parsed = parse_uris(*uris);
    if (!parsed.ok())
      return invalid(parsed.status().text().substr(parsed.status().text().find(" - ") + 3));
    for (const auto& uri : parsed.value())
      if (auto it = uri.query.find("verify");
          it != uri.query.end() && it->second != "verify_peer" && it->second != "verify_none")
        return invalid(
            fmt::format("{}: verify must be verify_peer or verify_none", uri.redacted()));
  }
  if (!d.src_queue.empty() && !d.src_exchange.empty())
    return invalid("Cannot specify 'src-exchange' and 'src-queue'");
  if (d.src_queue.empty() && d.src_exchange.empty())
    return invalid("Must specify 'src-exchange' or 'src-queue'");
  if (!d.dest_queue.empty() && !d.dest_exchange.empty())
    return invalid("Cannot specify 'dest-exchange' and 'dest-queue'");
  if (d.reconnect_delay < 0 || !std::isfinite(d.reconnect_delay))
    return invalid("reconnect-delay should be a number greater than or equal to 0");
  return {};
}

Result<ShovelDefinition> definition_from_json(std::string_view vhost, std::string_view name,
                                              const json& value) {
  if (!value.is_object()) return invalid(fmt::format("the value of {} should be an object", name));
  std::vector<std::string> unknown;
  for (const auto& [key, v] : value.items())
    if (!kKeys.contains(key)) unknown.push_back(fmt::format("{{\"{}\",{}}}", key, shown(v)));
  if (!unknown.empty())
    return invalid(fmt::format("Unrecognised terms [{}] in {}", fmt::join(unknown, ","), name));
  ShovelDefinition d;
  d.vhost = std::string(vhost);
  d.name = std::string(name);
  Reader r(name, value);
  std::string dest_key;
  const bool has_dest_key = r.find({"dest-exchange-key"}) != nullptr;
  for (Status s :
       {r.uris("src-uri", d.src_uri), r.uris("dest-uri", d.dest_uri),
        r.text({"src-queue"}, d.src_queue), r.text({"src-exchange"}, d.src_exchange),
        r.text({"src-exchange-key"}, d.src_exchange_key), r.text({"dest-queue"}, d.dest_queue),
        r.text({"dest-exchange"}, d.dest_exchange), r.text({"dest-exchange-key"}, dest_key),
        read_ack_mode(r, d), read_numbers(r, d), read_protocols(r),
        r.flag({"add-forward-headers", "dest-add-forward-headers"}, d.add_forward_headers),
        r.flag({"dest-add-timestamp-header", "add-timestamp-header"}, d.dest_add_timestamp_header),
        read_publish_properties(r, d)})
    if (!s) return s;
  if (has_dest_key) d.dest_exchange_key = dest_key;
  if (Status s = validate(d); !s) return s;
  return d;
}

json definition_to_json(const ShovelDefinition& d) {
  auto uris = [](const std::vector<std::string>& list) {
    return list.size() == 1 ? json(list[0]) : json(list);
  };
  json v{{"src-uri", uris(d.src_uri)}, {"dest-uri", uris(d.dest_uri)}};
  if (!d.src_queue.empty()) v["src-queue"] = d.src_queue;
  if (!d.src_exchange.empty()) {
    v["src-exchange"] = d.src_exchange;
    v["src-exchange-key"] = d.src_exchange_key;
  }
  if (!d.dest_queue.empty()) v["dest-queue"] = d.dest_queue;
  if (!d.dest_exchange.empty()) v["dest-exchange"] = d.dest_exchange;
  if (d.dest_exchange_key) v["dest-exchange-key"] = *d.dest_exchange_key;
  static const char* kModes[] = {"on-confirm", "on-publish", "no-ack"};
  v["ack-mode"] = kModes[int(d.ack_mode)];
  v["src-prefetch-count"] = d.src_prefetch_count;
  if (d.src_delete_after_queue_length)
    v["src-delete-after"] = "queue-length";
  else if (d.src_delete_after)
    v["src-delete-after"] = *d.src_delete_after;
  else
    v["src-delete-after"] = "never";
  v["reconnect-delay"] = d.reconnect_delay;
  v["add-forward-headers"] = d.add_forward_headers;
  v["dest-add-timestamp-header"] = d.dest_add_timestamp_header;
  if (d.dest_publish_properties != BasicProperties{})
    v["dest-publish-properties"] = mgmt::to_json(d.dest_publish_properties);
  return v;
}

}  // namespace warren::shovel
