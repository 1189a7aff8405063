#include "mgmt/api.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <thread>

#include "common/log.h"
#include "common/percent.h"
#include "core/errors.h"
#include "mgmt/json_fields.h"
#include "mgmt/metrics.h"
#include "mgmt/responses.h"
#include "mgmt/shovel_api.h"
#include "mgmt/users_api.h"
#include "wire/properties_codec.h"

namespace warren::mgmt {

using nlohmann::json;

namespace {

constexpr std::chrono::seconds kRateInterval{5};

std::vector<std::string> segments(std::string_view path) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < path.size()) {
    size_t slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > at) out.push_back(percent_decoded(path.substr(at, slash - at)));
    at = slash + 1;
  }
  return out;
}

// A boolean field: true/false, or the strings "true"/"false" (what rabbitmqadmin sends).
std::optional<bool> flag(const json& body, const char* key, bool fallback) {
  if (!body.contains(key)) return fallback;
  const json& v = body[key];
  if (v.is_boolean()) return v.get<bool>();
  if (v == "true") return true;
  if (v == "false") return false;
  return std::nullopt;
}

// A non-negative integer field: a number or a string of digits.
std::optional<int64_t> count_field(const json& body, const char* key, int64_t fallback) {
  if (!body.contains(key)) return fallback;
  const json& v = body[key];
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>();
  if (v.is_string()) {
    const std::string& text = v.get_ref<const std::string&>();
    if (!text.empty() && text.size() < 18 &&
        text.find_first_not_of("0123456789") == std::string::npos)
      return std::stoll(text);
  }
  return std::nullopt;
}

// A map's keys in order: listings are sorted by name, as RabbitMQ's are.
template <class Map>
std::vector<std::string> sorted_keys(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& entry : map) keys.push_back(entry.first);
  std::sort(keys.begin(), keys.end());
  return keys;
}

// Adds "<name>_details": {"rate": r} next to each count, as RabbitMQ writes message_stats.
json with_rates(const std::map<std::string, uint64_t>& counts,
                const std::map<std::string, double>& rates) {
  json out(json::value_t::object);
  auto& fields = out.get_ref<json::object_t&>();
  for (const auto& [name, count] : counts) {
    auto it = rates.find(name);
    json details(json::value_t::object);
    details.get_ref<json::object_t&>().emplace("rate", it == rates.end() ? 0.0 : it->second);
    fields.emplace(name, count);
    fields.emplace(name + "_details", std::move(details));
  }
  return out;
}

constexpr std::string_view kNode = "warren@localhost";  // RabbitMQ's node name, for tools

// What the management's own channel is told: only whether a publish came back unroutable.
class ReturnWatch : public core::ChannelSink {
 public:
  bool returned = false;
  void on_deliver(core::DeliveryInfo) override {}
  void on_confirm(uint64_t, bool, bool) override {}
  void on_return(core::ReturnInfo) override { returned = true; }
  void on_consumer_cancelled(const std::string&) override {}
  void on_closed(const Status&) override {}
};

// What the queue listing shows of a queue, copied on the loop and turned into JSON off it.
struct QueueRow {
  std::string vhost, name;
  bool durable = false, auto_delete = false, exclusive = false, quorum = false;
  FieldTable arguments;
  uint64_t ready = 0, unacked = 0, delayed = 0, consumers = 0;
  core::Queue::MessageStats stats;
};

QueueRow row_of(const std::string& vhost, const core::Queue& q) {
  return {vhost,       q.name,    q.durable,   q.auto_delete, q.exclusive,        q.settings.quorum,
          q.arguments, q.ready(), q.unacked(), q.delayed(),   q.consumers.size(), q.stats};
}

// Walks the queues of the named vhosts on the loop in turns of about kPerTurn queues, so that
// the loop, which serves confirms in between, is never held for the whole listing (nor for a
// first pass over every queue). A vhost's queues are an unordered map: a turn resumes at the
// bucket where the last one stopped, which stays valid while the map is not rehashed; after a
// rehash (the map grew) the vhost's walk starts again. A queue deleted meanwhile is left out,
// one declared meanwhile may be.
class QueueWalk {
 public:
  explicit QueueWalk(std::vector<std::string> vhosts) : vhosts_(std::move(vhosts)) {}

  std::optional<std::vector<QueueRow>> run(core::Engine& engine,
                                           const RunOnLoop& run_on_loop) {
    const bool finished = run_on_loop([&] {
      turn(engine);
      return vhost_ == vhosts_.size();
    });
    if (!finished) return std::nullopt;
    return std::move(rows_);
  }

 private:
  static constexpr size_t kPerTurn = 64;

  void turn(core::Engine& engine) {
    size_t copied = 0;
    while (copied < kPerTurn && vhost_ < vhosts_.size()) {
      const core::Vhost* v = engine.find_vhost(vhosts_[vhost_]);
      if (!v) {
        next_vhost();
        continue;
      }
      const auto& queues = v->queues;
      if (buckets_ != queues.bucket_count()) {  // the first turn in this vhost, or rehashed
        rows_.resize(vhost_rows_start_);
        bucket_ = 0;
        buckets_ = queues.bucket_count();
      }
      for (; bucket_ < buckets_ && copied < kPerTurn; ++bucket_)
        for (auto it = queues.begin(bucket_); it != queues.end(bucket_); ++it, ++copied)
          if (!it->second->deleted) rows_.push_back(row_of(v->name, *it->second));
      if (bucket_ == buckets_) next_vhost();
    }
  }

  void next_vhost() {
    ++vhost_;
    bucket_ = buckets_ = 0;
    vhost_rows_start_ = rows_.size();
  }

  std::vector<std::string> vhosts_;
  size_t vhost_ = 0, bucket_ = 0, buckets_ = 0, vhost_rows_start_ = 0;
  std::vector<QueueRow> rows_;
};

Response stopping() {
  return {503, json{{"error", "unavailable"}, {"reason", "the broker is stopping"}}};
}

bool any_traffic(const core::Queue::MessageStats& s) {
  return s.publish != 0 || s.deliver_get != 0 || s.ack != 0 || s.redeliver != 0;
}

// Emplaced field by field: nlohmann's initializer lists copy every value, and in a listing
// of thousands of queues those copies were most of the cost.
json queue_json(const QueueRow& q, Api& api) {
  json out(json::value_t::object);
  auto& fields = out.get_ref<json::object_t&>();
  fields.emplace("name", q.name);
  fields.emplace("vhost", q.vhost);
  fields.emplace("durable", q.durable);
  fields.emplace("auto_delete", q.auto_delete);
  fields.emplace("exclusive", q.exclusive);
  fields.emplace("arguments", to_json(q.arguments));
  fields.emplace("type", q.quorum ? "quorum" : "classic");
  fields.emplace("state", "running");
  fields.emplace("node", kNode);
  fields.emplace("messages", q.ready + q.unacked);
  fields.emplace("messages_ready", q.ready);
  fields.emplace("messages_unacknowledged", q.unacked);
  fields.emplace("messages_delayed", q.delayed);
  fields.emplace("consumers", q.consumers);
  if (!any_traffic(q.stats)) return out;  // as RabbitMQ lists a queue no message has passed
  std::map<std::string, uint64_t> counts{{"publish", q.stats.publish},
                                         {"deliver_get", q.stats.deliver_get},
                                         {"ack", q.stats.ack},
                                         {"redeliver", q.stats.redeliver}};
  fields.emplace("message_stats",
                 with_rates(counts, api.rates("queue " + q.vhost + "/" + q.name, counts)));
  return out;
}

}  // namespace

class Handlers {
 public:
  Handlers(Api& api, const Request& r)
      : api_(api), engine_(api.engine_), r_(r), parts_(segments(r.path)) {}

  Response run() {
    if (parts_.empty() || parts_[0] != "api") return not_found();
    const std::string what = parts_.size() > 1 ? parts_[1] : "";
    const size_t n = parts_.size();
    if (auto refused = access_refused(what)) return *refused;
    if (what == "overview" && n == 2) return only("GET", [&] { return overview(); });
    if (what == "whoami" && n == 2) return only("GET", [&] { return whoami(); });
    if (what == "users") return users_endpoint(engine_, r_, parts_);
    if (what == "permissions") return permissions_endpoint(engine_, r_, parts_);
    if (what == "topic-permissions") return topic_permissions_endpoint(engine_, r_, parts_);
    if (what == "vhosts" && n == 4 && parts_[3] == "permissions")
      return only("GET", [&] { return list(vhost_permissions(engine_, parts_[2])); });
    if (what == "vhosts" && n == 4 && parts_[3] == "topic-permissions")
      return only("GET", [&] { return list(vhost_topic_permissions(engine_, parts_[2])); });
    if (what == "vhosts" && n == 3 && r_.method == "PUT") return put_vhost(parts_[2]);
    if (what == "vhosts" && n == 3 && r_.method == "DELETE") return delete_vhost(parts_[2]);
    if (what == "vhosts") return only("GET", [&] { return vhosts(); });
    if (what == "nodes" && n == 2) return only("GET", [&] { return list(json::array({node()})); });
    if (what == "queues") return queues();
    if (what == "exchanges") return exchanges();
    if (what == "bindings") return bindings();
    if (what == "connections" && n == 2) return only("GET", [&] { return list(connections()); });
    if (what == "connections" && n == 3) return connection(parts_[2]);
    if (what == "channels" && n == 2) return only("GET", [&] { return list(channels()); });
    if (what == "consumers") return only("GET", [&] { return list(consumers()); });
    if (what == "definitions" && n == 2) return definitions();
    if (what == "parameters") return parameters_endpoint(api_.shovels_, engine_, r_, parts_);
    if (what == "shovels") return shovels_endpoint(api_.shovels_, r_, parts_);
    if (what == "aliveness-test" && n == 3)
      return only("GET", [&] { return aliveness(parts_[2]); });
    if (what == "health" && n == 4 && parts_[2] == "checks" && parts_[3] == "alarms")
      return only("GET", [&] { return alarms(); });
    return not_found();
  }

 private:
  template <class F>
  Response only(std::string_view method, F&& fn) {
    if (r_.method != method) return {405, nullptr};
    return fn();
  }
  static Response ok(json body) { return {200, std::move(body)}; }

  std::optional<std::string> query(std::string_view key) const {
    auto it = r_.query.find(std::string(key));
    return it == r_.query.end() ? std::nullopt : std::optional(it->second);
  }

  // The request body as a JSON object (an empty body is an empty object).
  std::optional<json> body_object(Response* failed) const {
    if (r_.body.empty()) return json::object();
    json parsed = json::parse(r_.body, nullptr, false);
    if (parsed.is_discarded()) {
      *failed = bad_request("invalid JSON in the request body");
      return std::nullopt;
    }
    if (!parsed.is_object()) {
      *failed = bad_request(
          fmt::format("invalid payload: the request body JSON-decoded to a {}. Is the input "
                      "doubly-JSON-encoded?",
                      parsed.is_string() ? "string" : parsed.type_name()));
      return std::nullopt;
    }
    return parsed;
  }

  Response list(json items) const { return list_response(std::move(items), r_.query); }

  // ---- reading ------------------------------------------------------------------------

  json listeners_json() const {
    json out = json::array();
    for (const Api::Listener& l : api_.listeners_)
      out.push_back(json{{"node", kNode},
                         {"protocol", l.protocol},
                         {"ip_address", l.ip_address},
                         {"port", l.port}});
    return out;
  }

  json node() const {
    const auto uptime = std::chrono::steady_clock::now() - engine_.started();
    return json{{"name", kNode},
                {"type", "disc"},
                {"running", true},
                {"os_pid", std::to_string(::getpid())},
                {"uptime", std::chrono::duration_cast<std::chrono::milliseconds>(uptime).count()},
                {"processors", std::thread::hardware_concurrency()},
                {"mem_used", core::resident_memory()},
                {"mem_limit", engine_.memory_high_watermark()},
                {"mem_alarm", engine_.memory_alarm()},
                {"disk_free", disk_available(engine_.options().data_dir)},
                {"disk_free_alarm", engine_.disk_alarm()},
                {"fd_used", open_descriptors()},
                {"fd_total", descriptor_limit()},
                {"sockets_used", engine_.connections().size()},
                {"rates_mode", "basic"}};
  }

  static size_t open_descriptors() {
    std::error_code ec;
    auto entries = std::filesystem::directory_iterator("/proc/self/fd", ec);
    return ec ? 0 : size_t(std::distance(entries, std::filesystem::directory_iterator{}));
  }

  static uint64_t descriptor_limit() {
    rlimit limit{};
    return ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? uint64_t(limit.rlim_cur) : 0;
  }

  json exchange_json(const core::Vhost& vhost, const core::Exchange& x) const {
    return json{{"name", x.name},
                {"vhost", vhost.name},
                {"type", x.type_name},
                {"durable", x.durable},
                {"auto_delete", x.auto_delete},
                {"internal", x.internal},
                {"arguments", to_json(x.arguments)}};
  }

  static json binding_json(const core::Vhost& vhost, const std::string& source,
                           const std::string& destination, bool to_queue, const std::string& key,
                           const FieldTable& arguments) {
    return json{{"source", source},
                {"vhost", vhost.name},
                {"destination", destination},
                {"destination_type", to_queue ? "queue" : "exchange"},
                {"routing_key", key},
                {"arguments", to_json(arguments)},
                {"properties_key", arguments.empty() ? (key.empty() ? "~" : percent_encoded(key))
                                                     : percent_encoded(key) + "~"}};
  }

  // The vhosts a path names: all of them, or the one in parts_[i] (nullptr: no such vhost).
  // ---- who may do what (RabbitMQ's user tags) ---------------------------------------------

  // The broker itself (definitions applied at boot) has no user and may do anything.
  bool internal() const { return r_.user.empty(); }
  const core::User* me() const { return engine_.users().find(r_.user); }
  bool tagged(std::string_view tag) const { return internal() || (me() && me()->has_tag(tag)); }
  bool administrator() const { return tagged("administrator"); }
  // Administrators and monitoring users see every vhost; others those they may use.
  bool sees(std::string_view vhost) const {
    return administrator() || tagged("monitoring") || engine_.users().may_use_vhost(r_.user, vhost);
  }

  // 401 with RabbitMQ's reason when the user's tags do not allow the request at all.
  std::optional<Response> access_refused(const std::string& what) const {
    auto refuse = [](std::string_view reason) {
      return std::optional(error(401, "not_authorised", reason));
    };
    if (!tagged("administrator") && !tagged("monitoring") && !tagged("management") &&
        !tagged("policymaker"))
      return refuse("Not management user");
    const bool reading = r_.method == "GET";
    const bool admin_only =
        what == "users" || what == "permissions" || what == "topic-permissions" ||
        what == "definitions" || (what == "vhosts" && !reading) ||
        (what == "vhosts" && parts_.size() == 4) || (what == "connections" && !reading);
    if (admin_only && !administrator()) return refuse("Not administrator user");
    if (what == "parameters" && !reading && !administrator() && !tagged("policymaker"))
      return refuse("Not policymaker user");
    // A path that names a vhost (/api/queues/{vhost}/...) needs access to it.
    static const std::set<std::string, std::less<>> kByVhost = {
        "queues", "exchanges", "bindings", "consumers", "aliveness-test", "shovels", "vhosts"};
    std::string vhost;
    if (kByVhost.contains(what) && parts_.size() > 2) vhost = parts_[2];
    if (what == "parameters" && parts_.size() > 3) vhost = parts_[3];
    if (what == "shovels" && parts_.size() > 3 && parts_[2] == "vhost") vhost = parts_[3];
    // Reading: monitoring users and administrators see every vhost. Changing: only where
    // the user may use the vhost at all (the AMQP permissions then decide).
    const bool may =
        reading ? sees(vhost) : internal() || engine_.users().may_use_vhost(r_.user, vhost);
    if (!vhost.empty() && engine_.find_vhost(vhost) && !may &&
        !(what == "vhosts" && administrator()))
      return refuse("User not authorised to access virtual host");
    return std::nullopt;
  }

  Response whoami() const {
    const core::User* user = me();
    return ok(json{{"name", r_.user}, {"tags", user ? json(user->tags) : json::array()}});
  }

  std::vector<const core::Vhost*> vhosts_named(size_t i) const {
    std::vector<const core::Vhost*> out;
    if (parts_.size() <= i) {
      for (const auto& [name, vhost] : engine_.vhosts())
        if (sees(name)) out.push_back(vhost.get());
    } else if (auto* v = engine_.find_vhost(parts_[i])) {
      out.push_back(v);
    } else {
      out.push_back(nullptr);
    }
    return out;
  }

  Response overview() {
    uint64_t queues = 0, exchanges = 0, consumers = 0, ready = 0, unacked = 0;
    std::map<std::string, uint64_t> counts{
        {"publish", 0}, {"deliver_get", 0}, {"ack", 0}, {"redeliver", 0}};
    for (const auto& [name, vhost] : engine_.vhosts()) {
      exchanges += vhost->exchanges.size();
      for (const auto& [qname, q] : vhost->queues) {
        ++queues;
        consumers += q->consumers.size();
        ready += q->ready();
        unacked += q->unacked();
        counts["publish"] += q->stats.publish;
        counts["deliver_get"] += q->stats.deliver_get;
        counts["ack"] += q->stats.ack;
        counts["redeliver"] += q->stats.redeliver;
      }
    }
    std::map<std::string, uint64_t> depth{{"messages", ready + unacked},
                                          {"messages_ready", ready},
                                          {"messages_unacknowledged", unacked}};
    size_t channels = 0;
    for (const auto& c : engine_.connections()) channels += c->channels.size();
    Response out = ok(json{
        {"management_version", "3.10.8"},
        {"rabbitmq_version", "3.10.8"},
        {"product_name", "Warren"},
        {"product_version", "0.1.0"},
        {"cluster_name", "warren"},
        {"node", kNode},
        {"object_totals",
         {{"connections", engine_.connections().size()},
          {"channels", channels},
          {"consumers", consumers},
          {"exchanges", exchanges},
          {"queues", queues}}},
        {"listeners", listeners_json()},
        {"rates_mode", "basic"},
        {"disable_stats", false},
        {"exchange_types", json::array({json{{"name", "direct"}}, json{{"name", "fanout"}},
                                        json{{"name", "topic"}}, json{{"name", "headers"}}})}});
    // The rates off the loop: their lock is shared with the HTTP workers.
    out.finish = [depth, counts, &api = api_](Response& r, const RunOnLoop&) {
      r.body["queue_totals"] = with_rates(depth, api.rates("depth", depth));
      r.body["message_stats"] = with_rates(counts, api.rates("overview", counts));
    };
    return out;
  }

  Response vhosts() {
    if (parts_.size() > 3) return not_found();
    json out = json::array();
    for (const auto* v : vhosts_named(2)) {
      if (!v) return not_found();
      uint64_t ready = 0, unacked = 0;
      for (const auto& [name, q] : v->queues) {
        ready += q->ready();
        unacked += q->unacked();
      }
      out.push_back(json{{"name", v->name},
                         {"description", ""},
                         {"tags", json::array()},
                         {"metadata", {{"description", ""}, {"tags", json::array()}}},
                         {"default_queue_type", "undefined"},  // RabbitMQ's when none is set
                         {"tracing", false},
                         {"cluster_state", {{kNode, "running"}}},
                         {"messages", ready + unacked},
                         {"messages_ready", ready},
                         {"messages_unacknowledged", unacked}});
    }
    if (parts_.size() == 3) return ok(out[0]);
    return list(std::move(out));
  }

  // Stored; the user who creates it may use it fully, as RabbitMQ's API grants.
  Response put_vhost(const std::string& name) {
    if (name.empty()) return bad_request("a vhost needs a name");
    if (engine_.find_vhost(name)) return {204, nullptr};
    core::CommitId commit = engine_.create_vhost(name);
    if (const core::User* user = me()) {
      core::User granted = *user;
      granted.permissions[name] = core::Permissions{};
      commit = std::max(commit, engine_.store_user(std::move(granted)));
    }
    return {201, nullptr, commit};
  }

  Response delete_vhost(const std::string& name) {
    if (!engine_.find_vhost(name)) return not_found();
    // Its shovels go with it, as RabbitMQ deletes a vhost's runtime parameters; first, as
    // their connections use it. Declared again if the vhost cannot go after all.
    core::CommitId commit = 0;
    std::vector<std::pair<std::string, json>> shovels;
    if (api_.shovels_)
      for (const auto& shovel : api_.shovels_->list())
        if (shovel.vhost == name) {
          shovels.emplace_back(shovel.name, shovel.value);
          if (auto removed = api_.shovels_->remove(name, shovel.name); removed.ok())
            commit = std::max(commit, removed.value());
        }
    auto r = engine_.delete_vhost(name);
    if (!r.ok()) {
      for (const auto& [shovel, value] : shovels)
        if (auto again = api_.shovels_->declare(name, shovel, value); again.ok())
          commit = std::max(commit, again.value());
      Response refused = from_status(r.status());
      refused.commit = commit;
      return refused;
    }
    return {204, nullptr, std::max(commit, r.value())};
  }

  json connections() const {
    json out = json::array();
    for (const auto& c : engine_.connections())
      if (c->name != "management") out.push_back(connection_json(*c));
    return out;
  }

  // GET shows one connection; DELETE closes it as RabbitMQ's management does (320
  // CONNECTION_FORCED - Closed via management plugin).
  Response connection(const std::string& name) {
    auto& all = engine_.connections();
    auto it = std::find_if(all.begin(), all.end(), [&](const auto& c) { return c->name == name; });
    if (it == all.end()) return not_found();
    if (r_.method == "GET") return ok(connection_json(**it));
    if (r_.method != "DELETE") return {405, nullptr};
    if (!(*it)->force_close) return bad_request("this connection cannot be closed from here");
    (*it)->force_close("Closed via management plugin");
    return {204, nullptr};
  }

  static std::string vhost_name(const core::Connection& c) {
    return c.vhost ? c.vhost->name : "";
  }

  static json connection_json(const core::Connection& c) {
    const core::ConnectionDetails& d = c.details;
    return json{{"name", c.name},
                {"node", kNode},
                {"type", "network"},
                {"user", c.user},
                {"vhost", vhost_name(c)},
                {"channels", c.channels.size()},
                {"state", "running"},
                {"protocol", "AMQP 0-9-1"},
                {"connected_at", c.connected_at_ms},
                {"peer_host", d.peer_host},
                {"peer_port", d.peer_port},
                {"host", d.host},
                {"port", d.port},
                {"ssl", d.tls},
                {"auth_mechanism", d.auth_mechanism},
                {"client_properties", to_json(d.client_properties)},
                {"channel_max", d.channel_max},
                {"frame_max", d.frame_max},
                {"timeout", d.heartbeat}};
  }

  // RabbitMQ's name of a channel: its connection's, then its number.
  static std::string channel_name(const core::Connection& c, uint16_t number) {
    return fmt::format("{} ({})", c.name, number);
  }

  static json connection_details(const core::Connection& c) {
    return json{
        {"name", c.name}, {"peer_host", c.details.peer_host}, {"peer_port", c.details.peer_port}};
  }

  json channels() const {
    json out = json::array();
    for (const auto& c : engine_.connections())
      for (const auto& weak : c->channels)
        if (auto ch = weak.lock()) {
          const core::Channel::Stats s = ch->stats();
          out.push_back(json{{"name", channel_name(*c, ch->id())},
                             {"node", kNode},
                             {"connection_details", connection_details(*c)},
                             {"connection", c->name},
                             {"number", ch->id()},
                             {"user", c->user},
                             {"vhost", vhost_name(*c)},
                             {"state", "running"},
                             {"confirm", ch->confirm_mode()},
                             {"transactional", s.transactional},
                             {"prefetch_count", s.prefetch_count},
                             {"global_prefetch_count", s.global_prefetch_count},
                             {"consumer_count", s.consumers},
                             {"messages_unacknowledged", s.unacked},
                             {"messages_unconfirmed", s.unconfirmed},
                             {"messages_uncommitted", s.uncommitted_publishes},
                             {"acks_uncommitted", s.uncommitted_acks}});
        }
    return out;
  }

  static bool active(const core::Queue& q, const core::Consumer& c) {
    return !q.settings.single_active_consumer || q.active_consumer() == &c;
  }

  static json channel_details(const core::Channel* ch) {
    if (!ch) return json::object();
    const core::Connection& c = ch->connection();
    return json{{"name", channel_name(c, ch->id())},
                {"number", ch->id()},
                {"node", kNode},
                {"user", c.user},
                {"connection_name", c.name},
                {"peer_host", c.details.peer_host},
                {"peer_port", c.details.peer_port}};
  }

  json consumers() const {
    json out = json::array();
    for (const auto* v : vhosts_named(2)) {
      if (!v) return out;
      for (const auto& [qname, q] : v->queues)
        for (const auto& c : q->consumers)
          out.push_back(
              json{{"consumer_tag", c->tag},
                   {"queue", json{{"name", qname}, {"vhost", v->name}}},
                   {"channel_details", channel_details(c->channel)},
                   {"ack_required", !c->no_ack},
                   {"exclusive", c->exclusive},
                   {"prefetch_count", c->prefetch},
                   {"arguments", c->priority ? json{{"x-priority", c->priority}} : json::object()},
                   {"active", active(*q, *c)},
                   {"activity_status", active(*q, *c) ? "up" : "waiting"}});
    }
    return out;
  }

  Response aliveness(const std::string& vhost) {
    if (!engine_.find_vhost(vhost)) return not_found();
    return ok(json{{"status", "ok"}});
  }

  Response alarms() const {
    if (!engine_.any_alarm()) return ok(json{{"status", "ok"}});
    json alarms = json::array();
    if (engine_.memory_alarm()) alarms.push_back(json{{"resource", "memory"}, {"node", kNode}});
    if (engine_.disk_alarm()) alarms.push_back(json{{"resource", "disk"}, {"node", kNode}});
    return {503, json{{"status", "failed"},
                      {"reason", "resource alarm(s) in effect in the cluster"},
                      {"alarms", alarms}}};
  }

  // ---- queues -------------------------------------------------------------------------

  Response queues() {
    const size_t n = parts_.size();
    if (n <= 3 && r_.method == "GET") {
      std::vector<std::string> names;
      for (const auto* v : vhosts_named(2)) {
        if (!v) return not_found();
        names.push_back(v->name);
      }
      Response deferred;
      deferred.finish = [walk = QueueWalk(std::move(names)), query = r_.query, &api = api_,
                         &engine = engine_](Response& out, const RunOnLoop& run_on_loop) mutable {
        auto rows = walk.run(engine, run_on_loop);
        if (!rows) {
          out = stopping();
          return;
        }
        std::sort(rows->begin(), rows->end(), [](const QueueRow& a, const QueueRow& b) {
          return std::tie(a.vhost, a.name) < std::tie(b.vhost, b.name);
        });
        out = list_response(ListItems{rows->size(), [&](size_t i) { return (*rows)[i].name; },
                                      [&](size_t i) { return queue_json((*rows)[i], api); }},
                            query);
      };
      return deferred;
    }
    if (n <= 3) return {405, nullptr};
    const std::string& vhost = parts_[2];
    const std::string& name = parts_[3];
    if (n == 4) {
      if (r_.method == "GET") {
        const auto* v = engine_.find_vhost(vhost);
        auto it = v ? v->queues.find(name) : decltype(v->queues.end()){};
        if (!v || it == v->queues.end()) return not_found();
        return ok(queue_json(row_of(v->name, *it->second), api_));
      }
      if (r_.method == "PUT") return declare_queue(vhost, name);
      if (r_.method == "DELETE") return delete_queue(vhost, name);
      return {405, nullptr};
    }
    if (n == 5 && parts_[4] == "contents")
      return only("DELETE", [&] { return purge(vhost, name); });
    if (n == 5 && parts_[4] == "get") return only("POST", [&] { return get(vhost, name); });
    if (n == 5 && parts_[4] == "move") return only("POST", [&] { return move(vhost, name); });
    if (n == 5 && parts_[4] == "bindings")
      return only("GET", [&] { return queue_bindings(vhost, name); });
    return not_found();
  }

  // Runs fn with a channel of the management's own connection to `vhost`: what it changes
  // goes through the same rules, texts and durability as an AMQP client's change.
  template <class F>
  Response with_channel(const std::string& vhost, F&& fn) {
    if (!engine_.find_vhost(vhost)) return error(404, "not_found", "vhost_not_found");
    auto connection = engine_.connect("management", r_.user, vhost);
    auto channel = engine_.open_channel(*connection, 1, &watch_);
    Response response = fn(*channel);
    engine_.disconnect(*connection);
    return response;
  }

  Response declare_queue(const std::string& vhost, const std::string& name) {
    Response failed;
    auto body = body_object(&failed);
    if (!body) return failed;
    QueueOptions o;
    auto durable = flag(*body, "durable", true), auto_delete = flag(*body, "auto_delete", false);
    if (!durable || !auto_delete) return bad_request("durable and auto_delete must be booleans");
    o.durable = *durable;
    o.auto_delete = *auto_delete;
    auto arguments = table_from_json(body->value("arguments", json::object()));
    if (!arguments) return bad_request("arguments must be an object");
    o.arguments = std::move(*arguments);
    return with_channel(vhost, [&](core::Channel& ch) {
      const bool existed = engine_.find_vhost(vhost)->queues.count(name) > 0;
      auto r = ch.queue_declare(name, o);
      if (!r.ok()) return from_status(r.status());
      return Response{existed ? 204 : 201, nullptr, r.value().commit};
    });
  }

  Response delete_queue(const std::string& vhost, const std::string& name) {
    QueueDeleteOptions o;
    o.if_empty = query("if-empty") == std::optional<std::string>("true");
    o.if_unused = query("if-unused") == std::optional<std::string>("true");
    return with_channel(vhost, [&](core::Channel& ch) {
      if (!engine_.find_vhost(vhost)->queues.count(name)) return not_found();
      auto r = ch.queue_delete(name, o);
      if (!r.ok()) return from_status(r.status());
      return Response{204, nullptr, r.value().commit};
    });
  }

  Response purge(const std::string& vhost, const std::string& name) {
    return with_channel(vhost, [&](core::Channel& ch) {
      auto r = ch.queue_purge(name);
      if (!r.ok()) return from_status(r.status());
      return Response{204, nullptr, r.value().commit};
    });
  }

  Response get(const std::string& vhost, const std::string& name) {
    Response failed;
    auto body = body_object(&failed);
    if (!body) return failed;
    if (auto missing = missing_keys(*body, {"ackmode", "count", "encoding"}))
      return bad_request(*missing);
    const auto count = count_field(*body, "count", 1);
    const std::string ackmode = body->value("ackmode", "ack_requeue_true");
    const std::string encoding = body->value("encoding", "auto");
    if (!count) return bad_request("count must be a non-negative integer");
    if (ackmode != "ack_requeue_true" && ackmode != "ack_requeue_false" &&
        ackmode != "reject_requeue_true" && ackmode != "reject_requeue_false")
      return bad_request(fmt::format("unknown ackmode '{}'", ackmode));
    if (encoding != "auto" && encoding != "base64")
      return bad_request("Unsupported encoding. Please use auto or base64.");
    const auto truncate = count_field(*body, "truncate", -1);
    if (!truncate) return bad_request("truncate must be a non-negative integer");
    const bool requeue = ackmode.ends_with("requeue_true");
    // RabbitMQ answers a refused get with the channel's own text.
    auto refused = [](const Status& s) {
      if (s.code() == ReplyCode::access_refused) return error(401, "not_authorised", s.text());
      if (s.code() == ReplyCode::not_found) return error(404, "not_found", s.text());
      return from_status(s);
    };
    return with_channel(vhost, [&](core::Channel& ch) {
      json out = json::array();
      std::vector<uint64_t> tags;
      for (int64_t i = 0; i < *count; ++i) {
        auto got = ch.basic_get(name, false);
        if (!got.ok()) return refused(got.status());
        if (!got.value()) break;
        const core::DeliveryInfo& d = *got.value();
        tags.push_back(d.delivery_tag);
        out.push_back(message_json(d, encoding, *truncate));
      }
      for (uint64_t tag : tags)
        if (Status settled = requeue ? ch.basic_nack(tag, false, true) : ch.basic_ack(tag, false);
            !settled)
          return refused(settled);
      return Response{200, std::move(out), ch.last_commit()};
    });
  }

  static json message_json(const core::DeliveryInfo& d, const std::string& encoding,
                           int64_t truncate) {
    const std::string& body = d.message->body;
    std::string payload = body;
    if (truncate >= 0 && payload.size() > uint64_t(truncate)) payload.resize(size_t(truncate));
    const bool text = encoding == "auto" && json_string_ok(payload);
    auto properties = wire::decode_properties(d.message->properties);
    json props = properties ? to_json(*properties) : json::object();
    return json{
        {"payload_bytes", body.size()},
        {"redelivered", d.redelivered},
        {"exchange", d.message->exchange},
        {"routing_key", d.message->routing_key},
        {"message_count", d.message_count},
        {"properties", props.empty() ? json::array() : props},  // RabbitMQ writes [] when empty
        {"payload", text ? payload : encode_base64(payload)},
        {"payload_encoding", text ? "string" : "base64"}};
  }

  static bool json_string_ok(const std::string& s) {
    // Valid UTF-8 without NUL: what RabbitMQ's "auto" shows as a string.
    try {
      (void)json(s).dump();
    } catch (const json::exception&) {
      return false;
    }
    return s.find('\0') == std::string::npos;
  }

  // Warren's own: moves (or copies) ready messages to another queue, or with "to" empty
  // back to the queue each one died in (its x-death), e.g. a dead-letter queue emptied back
  // into its work queue. Oldest first, a commit per 1000.
  Response move(const std::string& vhost, const std::string& name) {
    Response failed;
    auto body = body_object(&failed);
    if (!body) return failed;
    if (body->contains("to") && !(*body)["to"].is_string())
      return bad_request("to must be a queue name");
    const std::string to = body->value("to", "");
    auto copy = flag(*body, "copy", false);
    auto max = count_field(*body, "max", INT64_MAX);
    if (!copy || !max) return bad_request("copy must be a boolean and max a non-negative integer");
    if (!engine_.find_vhost(vhost)) return error(404, "not_found", "vhost_not_found");
    auto moved = engine_.replay(vhost, name, to, uint64_t(*max), *copy);
    if (!moved.ok()) return from_status(moved.status());
    json answer{{"moved", moved->count}};
    if (!moved->stopped.ok()) answer["stopped"] = moved->stopped.text();
    return {200, std::move(answer), moved->commit};
  }

  Response queue_bindings(const std::string& vhost, const std::string& name) {
    const auto* v = engine_.find_vhost(vhost);
    if (!v || !v->queues.count(name)) return not_found();
    json out = json::array({binding_json(*v, "", name, true, name, {})});
    for (const auto& [xname, x] : v->exchanges)
      for (const auto& b : x->bindings)
        if (b.destination.is_queue && b.destination.name == name)
          out.push_back(binding_json(*v, xname, name, true, b.routing_key, b.arguments));
    return ok(std::move(out));
  }

  // ---- exchanges ----------------------------------------------------------------------

  Response exchanges() {
    const size_t n = parts_.size();
    if (n <= 3) {
      if (r_.method != "GET") return {405, nullptr};
      json out = json::array();
      for (const auto* v : vhosts_named(2)) {
        if (!v) return not_found();
        for (const auto& name : sorted_keys(v->exchanges))
          out.push_back(exchange_json(*v, *v->exchanges.at(name)));
      }
      return list(std::move(out));
    }
    const std::string& vhost = parts_[2];
    // amq.default is how the management API names the default exchange.
    const std::string name = parts_[3] == "amq.default" ? "" : parts_[3];
    if (n == 4) {
      if (r_.method == "GET") {
        const auto* v = engine_.find_vhost(vhost);
        auto x = v ? v->find_exchange(name) : nullptr;
        if (!x) return not_found();
        return ok(exchange_json(*v, *x));
      }
      if (r_.method == "PUT") return declare_exchange(vhost, name);
      if (r_.method == "DELETE") {
        return with_channel(vhost, [&](core::Channel& ch) {
          if (!engine_.find_vhost(vhost)->find_exchange(name)) return not_found();
          auto r =
              ch.exchange_delete(name, query("if-unused") == std::optional<std::string>("true"));
          if (!r.ok()) return from_status(r.status());
          return Response{204, nullptr, r.value()};
        });
      }
      return {405, nullptr};
    }
    if (n == 5 && parts_[4] == "publish") return only("POST", [&] { return publish(vhost, name); });
    return not_found();
  }

  Response declare_exchange(const std::string& vhost, const std::string& name) {
    Response failed;
    auto body = body_object(&failed);
    if (!body) return failed;
    if (!body->contains("type") || !(*body)["type"].is_string())
      return bad_request("type is required");
    ExchangeOptions o;
    auto durable = flag(*body, "durable", true), auto_delete = flag(*body, "auto_delete", false),
         internal = flag(*body, "internal", false);
    if (!durable || !auto_delete || !internal)
      return bad_request("durable, auto_delete and internal must be booleans");
    o.durable = *durable;
    o.auto_delete = *auto_delete;
    o.internal = *internal;
    auto arguments = table_from_json(body->value("arguments", json::object()));
    if (!arguments) return bad_request("arguments must be an object");
    o.arguments = std::move(*arguments);
    const std::string type = (*body)["type"];
    return with_channel(vhost, [&](core::Channel& ch) {
      const bool existed = engine_.find_vhost(vhost)->find_exchange(name) != nullptr;
      auto r = ch.exchange_declare(name, type, o);
      if (!r.ok()) {
        if (r.status().code() == ReplyCode::command_invalid)  // RabbitMQ's text for a bad type
          return bad_request(fmt::format("unknown exchange type '{}'", type));
        return from_status(r.status());
      }
      return Response{existed ? 204 : 201, nullptr, r.value()};
    });
  }

  Response publish(const std::string& vhost, const std::string& exchange) {
    Response failed;
    auto body = body_object(&failed);
    if (!body) return failed;
    if (auto missing =
            missing_keys(*body, {"routing_key", "properties", "payload", "payload_encoding"}))
      return bad_request(*missing);
    const json payload = body->value("payload", json());
    const std::string encoding = body->value("payload_encoding", "string");
    if (!payload.is_string() || !body->contains("routing_key") ||
        !(*body)["routing_key"].is_string())
      return bad_request("payload and routing_key are required strings");
    std::string error_text;
    auto properties = properties_from_json(body->value("properties", json::object()), &error_text);
    if (!properties) return bad_request(error_text);
    core::PublishInput in;
    in.exchange = exchange;
    in.routing_key = (*body)["routing_key"];
    // Reasons as RabbitMQ's, which are Erlang terms: ["not_base64", payload].
    if (encoding == "base64") {
      auto decoded = decode_base64_padded(payload.get<std::string>());
      if (!decoded)
        return {400,
                json{{"error", "bad_request"}, {"reason", json::array({"not_base64", payload})}}};
      in.body = std::move(*decoded);
    } else if (encoding == "string") {
      in.body = payload.get<std::string>();
    } else {
      return {400, json{{"error", "bad_request"},
                        {"reason", json::array({"unsupported_encoding", encoding})}}};
    }
    in.properties = std::move(*properties);
    in.properties_wire = wire::encode_properties(in.properties);
    in.mandatory = true;  // to learn whether it was routed
    return with_channel(vhost, [&](core::Channel& ch) {
      // As RabbitMQ's: whatever closed the channel, 400 with its reply code and text.
      if (Status s = ch.basic_publish(std::move(in)); !s)
        return bad_request(fmt::format("{} {}", int(s.code()), s.text()));
      return Response{200, json{{"routed", !watch_.returned}}, ch.last_commit()};
    });
  }

  // ---- definitions (RabbitMQ's definitions.json) --------------------------------------

  Response definitions() {
    if (r_.method == "GET") return ok(export_definitions());
    if (r_.method == "POST") return import_definitions();
    return {405, nullptr};
  }

  json export_definitions() {
    json users = json::array(), permissions = json::array(), vhosts = json::array();
    json queues = json::array(), exchanges = json::array(), bindings = json::array();
    for (const core::User* user : engine_.users().list()) users.push_back(user_json(*user));
    permissions = all_permissions(engine_);
    for (const auto& [vname, v] : engine_.vhosts()) {
      vhosts.push_back(json{{"name", vname},
                            {"limits", json::array()},
                            {"metadata", {{"description", ""}, {"tags", json::array()}}}});
      for (const auto& [qname, q] : v->queues)
        if (!q->exclusive)
          queues.push_back(json{{"name", qname},
                                {"vhost", vname},
                                {"durable", q->durable},
                                {"auto_delete", q->auto_delete},
                                {"arguments", to_json(q->arguments)}});
      for (const auto& [xname, x] : v->exchanges) {
        if (!xname.starts_with("amq.") && !xname.empty())
          exchanges.push_back(json{{"name", xname},
                                   {"vhost", vname},
                                   {"type", x->type_name},
                                   {"durable", x->durable},
                                   {"auto_delete", x->auto_delete},
                                   {"internal", x->internal},
                                   {"arguments", to_json(x->arguments)}});
        for (const auto& b : x->bindings)
          bindings.push_back(
              json{{"source", xname},
                   {"vhost", vname},
                   {"destination", b.destination.name},
                   {"destination_type", b.destination.is_queue ? "queue" : "exchange"},
                   {"routing_key", b.routing_key},
                   {"arguments", to_json(b.arguments)}});
      }
    }
    return json{{"rabbit_version", "3.10.8"},
                {"rabbitmq_version", "3.10.8"},
                {"product_name", "Warren"},
                {"product_version", "0.1.0"},
                {"users", users},
                {"vhosts", vhosts},
                {"permissions", permissions},
                {"topic_permissions", all_topic_permissions(engine_)},
                {"parameters", api_.shovels_ ? shovel_parameters(*api_.shovels_) : json::array()},
                {"global_parameters", json::array()},
                {"policies", json::array()},
                {"queues", queues},
                {"exchanges", exchanges},
                {"bindings", bindings}};
  }

  // Vhosts, exchanges, queues and bindings are applied, each through the same rules as an
  // AMQP declaration. The first refusal is answered and what this import created before it is
  // removed again, so a bad file changes nothing. Users, permissions, policies and parameters
  // Warren does not apply are logged, not dropped silently.
  Response import_definitions() {
    Response failed;
    auto body = body_object(&failed);
    if (!body) return failed;
    auto array = [&](const char* key) {
      return body->contains(key) && (*body)[key].is_array() ? (*body)[key] : json::array();
    };
    for (const char* key : {"policies", "global_parameters"})
      if (!array(key).empty())
        log::warning("definitions import: {} {} not applied (Warren does not support them yet)",
                     array(key).size(), key);
    Import import(*this);
    for (const auto& v : array("vhosts"))
      if (v.contains("name") && v["name"].is_string()) import.vhost(v["name"].get<std::string>());
    auto each = [&](const char* key, auto apply) -> bool {
      for (const auto& item : array(key)) {
        if (!item.is_object() || !item.contains("vhost") || !item["vhost"].is_string()) {
          import.refuse(bad_request(fmt::format("{}: every item needs a vhost", key)));
          return false;
        }
        if (!(import.*apply)(item["vhost"].get<std::string>(), item)) return false;
      }
      return true;
    };
    bool applied = true;
    for (const auto& u : array("users"))
      if (!(applied = import.user(u))) break;
    if (applied && each("permissions", &Import::permission) &&
        each("topic_permissions", &Import::topic_permission) &&
        each("exchanges", &Import::exchange) && each("queues", &Import::queue) &&
        each("bindings", &Import::binding))
      each("parameters", &Import::parameter);
    return import.finish();
  }

  // One definitions import: applies items and remembers how to take back what it created.
  class Import {
   public:
    explicit Import(Handlers& h) : h_(h) {}

    void vhost(const std::string& name) {
      if (h_.engine_.find_vhost(name)) return;
      h_.engine_.add_vhost(name);
      undo_.push_back([this, name] {
        auto r = h_.engine_.delete_vhost(name);
        if (r.ok()) commit_ = std::max(commit_, r.value());
      });
    }

    bool exchange(const std::string& vhost, const json& x) {
      ExchangeOptions o;
      o.durable = x.value("durable", true);
      o.auto_delete = x.value("auto_delete", false);
      o.internal = x.value("internal", false);
      auto arguments = table_from_json(x.value("arguments", json::object()));
      if (!arguments) return refuse(bad_request("exchange arguments must be an object"));
      o.arguments = std::move(*arguments);
      const std::string name = x.value("name", "");
      const bool existed = exists(vhost, &core::Vhost::exchanges, name);
      return apply(
          vhost,
          [&](core::Channel& ch) {
            return as_response(ch.exchange_declare(name, x.value("type", "direct"), o));
          },
          existed ? Undo{} : [=](core::Channel& ch) { return ch.exchange_delete(name, false); });
    }

    bool queue(const std::string& vhost, const json& q) {
      QueueOptions o;
      o.durable = q.value("durable", true);
      o.auto_delete = q.value("auto_delete", false);
      auto arguments = table_from_json(q.value("arguments", json::object()));
      if (!arguments) return refuse(bad_request("queue arguments must be an object"));
      o.arguments = std::move(*arguments);
      const std::string name = q.value("name", "");
      const bool existed = exists(vhost, &core::Vhost::queues, name);
      return apply(
          vhost,
          [&](core::Channel& ch) {
            auto r = ch.queue_declare(name, o);
            return r.ok() ? Response{201, nullptr, r.value().commit} : from_status(r.status());
          },
          existed ? Undo{} : [=](core::Channel& ch) -> Result<core::CommitId> {
            auto r = ch.queue_delete(name, {});
            if (!r.ok()) return r.status();
            return r.value().commit;
          });
    }

    bool binding(const std::string& vhost, const json& b) {
      auto arguments = table_from_json(b.value("arguments", json::object()));
      if (!arguments) return refuse(bad_request("binding arguments must be an object"));
      const std::string source = b.value("source", ""), destination = b.value("destination", ""),
                        key = b.value("routing_key", "");
      const bool to_exchange = b.value("destination_type", "queue") == "exchange";
      const core::Binding wanted{{!to_exchange, destination}, key, *arguments};
      const bool existed = has_binding(vhost, source, wanted);
      auto bind = [&, args = *arguments](core::Channel& ch) {
        return to_exchange ? ch.exchange_bind(destination, source, key, args)
                           : ch.queue_bind(destination, source, key, args);
      };
      auto unbind = [=, args = *arguments](core::Channel& ch) {
        return to_exchange ? ch.exchange_unbind(destination, source, key, args)
                           : ch.queue_unbind(destination, source, key, args);
      };
      return apply(
          vhost, [&](core::Channel& ch) { return as_response(bind(ch)); },
          existed ? Undo{} : Undo{unbind});
    }

    // Users with their password hashes (RabbitMQ's own, so their passwords work here).
    bool user(const json& item) {
      const std::string name = item.is_object() ? item.value("name", "") : "";
      const core::User* existing = h_.engine_.users().find(name);
      auto user = user_from_json(item, existing);
      if (!user.ok()) return refuse(from_status(user.status()));
      keep_user(name, existing);
      commit_ = std::max(commit_, h_.engine_.store_user(std::move(user.value())));
      return true;
    }

    bool permission(const std::string&, const json& item) {
      return change_user(item, permission_from_json);
    }

    bool topic_permission(const std::string&, const json& item) {
      return change_user(item, topic_permission_from_json);
    }

    // Shovels; other components (federation, ...) are reported, not applied.
    bool parameter(const std::string& vhost, const json& p) {
      const std::string component = p.value("component", ""), name = p.value("name", "");
      if (component != "shovel" || !h_.api_.shovels_) {
        log::warning(
            "definitions import: parameter '{}' of component '{}' not applied (Warren "
            "does not support it)",
            name, component);
        return true;
      }
      auto& shovels = *h_.api_.shovels_;
      std::optional<json> before;
      for (const auto& e : shovels.list())
        if (e.vhost == vhost && e.name == name) before = e.value;
      auto declared = shovels.declare(vhost, name, p.value("value", json()));
      if (!declared.ok()) return refuse(from_status(declared.status()));
      commit_ = std::max(commit_, declared.value());
      undo_.push_back([this, &shovels, vhost, name, before] {
        auto r = before ? shovels.declare(vhost, name, *before) : shovels.remove(vhost, name);
        if (r.ok()) commit_ = std::max(commit_, r.value());
      });
      return true;
    }

    bool refuse(Response r) {
      refusal_ = std::move(r);
      return false;
    }

    // 204 once all of it is on disk; or the refusal, once what was taken back is.
    Response finish() {
      if (!refusal_) return {204, nullptr, commit_};
      for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
      Response r = std::move(*refusal_);
      r.commit = commit_;
      return r;
    }

   private:
    using Undo = std::function<Result<core::CommitId>(core::Channel&)>;

    static Response as_response(const Result<core::CommitId>& r) {
      return r.ok() ? Response{201, nullptr, r.value()} : from_status(r.status());
    }

    template <typename Map>
    bool exists(const std::string& vhost, Map core::Vhost::*objects, const std::string& name) {
      const auto* v = h_.engine_.find_vhost(vhost);
      return v && (v->*objects).count(name) > 0;
    }

    bool has_binding(const std::string& vhost, const std::string& source,
                     const core::Binding& wanted) {
      const auto* v = h_.engine_.find_vhost(vhost);
      auto it = v ? v->exchanges.find(source) : decltype(v->exchanges.end()){};
      if (!v || it == v->exchanges.end()) return false;
      for (const auto& b : it->second->bindings)
        if (b.same_as(wanted)) return true;
      return false;
    }

    template <typename Do>
    bool apply(const std::string& vhost, Do&& work, Undo undo) {
      Response r = h_.with_channel(vhost, work);
      if (r.status >= 400) return refuse(std::move(r));
      commit_ = std::max(commit_, r.commit);
      if (undo)
        undo_.push_back([this, vhost, undo = std::move(undo)] {
          h_.with_channel(vhost, [&](core::Channel& ch) {
            auto r = undo(ch);
            if (r.ok()) commit_ = std::max(commit_, r.value());
            return Response{};
          });
        });
      return true;
    }

    // A permission item, applied to the user it names (taken back with the rest on refusal).
    bool change_user(const json& item,
                     Status (*apply)(core::Engine&, const json&, core::CommitId*)) {
      keep_user(item.value("user", ""), h_.engine_.users().find(item.value("user", "")));
      core::CommitId commit = 0;
      if (Status s = apply(h_.engine_, item, &commit); !s) return refuse(from_status(s));
      commit_ = std::max(commit_, commit);
      return true;
    }

    // Remembers a user as it was before this import changed it, to put it back.
    void keep_user(const std::string& name, const core::User* existing) {
      if (name.empty() || kept_users_.contains(name)) return;
      kept_users_.insert(name);
      std::optional<core::User> before;
      if (existing) before = *existing;
      undo_.push_back([this, name, before] {
        core::CommitId c = before ? h_.engine_.store_user(*before) : h_.engine_.delete_user(name);
        commit_ = std::max(commit_, c);
      });
    }

    Handlers& h_;
    std::set<std::string> kept_users_;
    core::CommitId commit_ = 0;
    std::vector<std::function<void()>> undo_;
    std::optional<Response> refusal_;
  };

  // ---- bindings -----------------------------------------------------------------------

  Response bindings() {
    const size_t n = parts_.size();
    if (n <= 3) {
      if (r_.method != "GET") return {405, nullptr};
      json out = json::array();
      for (const auto* v : vhosts_named(2)) {
        if (!v) return not_found();
        for (const auto& q : sorted_keys(v->queues))
          out.push_back(binding_json(*v, "", q, true, q, {}));
        for (const auto& xname : sorted_keys(v->exchanges))
          for (const auto& b : v->exchanges.at(xname)->bindings)
            out.push_back(binding_json(*v, xname, b.destination.name, b.destination.is_queue,
                                       b.routing_key, b.arguments));
      }
      return list(std::move(out));
    }
    // /api/bindings/{vhost}/e/{exchange}/{q|e}/{destination}[/{props}]
    if (n < 7 || parts_[3] != "e" || (parts_[5] != "q" && parts_[5] != "e")) return not_found();
    const std::string& vhost = parts_[2];
    const std::string& source = parts_[4];
    const bool to_queue = parts_[5] == "q";
    const std::string& destination = parts_[6];
    if (n == 7 && r_.method == "GET") {
      const auto* v = engine_.find_vhost(vhost);
      if (!v) return not_found();
      json out = json::array();  // none, as RabbitMQ answers, when the exchange is missing
      auto x = v->find_exchange(source);
      for (const auto& b : x ? x->bindings : std::vector<core::Binding>{})
        if (b.destination.is_queue == to_queue && b.destination.name == destination)
          out.push_back(
              binding_json(*v, source, destination, to_queue, b.routing_key, b.arguments));
      return ok(std::move(out));
    }
    if (n == 7 && r_.method == "POST") {
      Response failed;
      auto body = body_object(&failed);
      if (!body) return failed;
      const std::string key = body->value("routing_key", "");
      auto arguments = table_from_json(body->value("arguments", json::object()));
      if (!arguments) return bad_request("arguments must be an object");
      return with_channel(vhost, [&](core::Channel& ch) {
        auto r = to_queue ? ch.queue_bind(destination, source, key, *arguments)
                          : ch.exchange_bind(destination, source, key, *arguments);
        if (!r.ok() && r.status().code() == ReplyCode::not_found)  // RabbitMQ names what is missing
          return error(404, "not_found", reply_text(r.status()));
        if (!r.ok()) return from_status(r.status());
        return Response{201, nullptr, r.value()};
      });
    }
    if (n == 8 && r_.method == "DELETE") {
      // The binding's properties key: its routing key, "~" for an empty one, "key~..." with
      // arguments.
      std::string key = parts_[7] == "~" ? "" : parts_[7];
      FieldTable arguments;
      if (auto tilde = key.find('~'); tilde != std::string::npos) key.resize(tilde);
      key = percent_decoded(key);  // the properties key is the routing key percent-encoded
      const auto* v = engine_.find_vhost(vhost);
      auto x = v ? v->find_exchange(source) : nullptr;
      if (!x) return not_found();
      bool found = false;
      for (const auto& b : x->bindings)
        if (b.destination.is_queue == to_queue && b.destination.name == destination &&
            b.routing_key == key) {
          arguments = b.arguments;
          found = true;
          break;
        }
      if (!found) return not_found();
      return with_channel(vhost, [&](core::Channel& ch) {
        auto r = to_queue ? ch.queue_unbind(destination, source, key, arguments)
                          : ch.exchange_unbind(destination, source, key, arguments);
        if (!r.ok()) return from_status(r.status());
        return Response{204, nullptr, r.value()};
      });
    }
    return n == 7 || n == 8 ? Response{405, nullptr} : not_found();
  }

  Api& api_;
  core::Engine& engine_;
  const Request& r_;
  std::vector<std::string> parts_;
  ReturnWatch watch_;
};

Api::Api(core::Engine& engine) : engine_(engine) {}

Response Api::handle(const Request& request) {
  try {
    return Handlers(*this, request).run();
  } catch (const json::exception& e) {  // a value of the wrong JSON type, e.g. "durable": "yes"
    return bad_request(fmt::format("bad JSON value: {}", e.what()));
  } catch (const std::exception& e) {  // never out into the broker's loop
    return error(500, "internal_error", e.what());
  }
}

// Rates over the last sample interval: counts are remembered every kRateInterval.
std::map<std::string, double> Api::rates(const std::string& key,
                                         const std::map<std::string, uint64_t>& counts) {
  std::lock_guard lock(samples_mutex_);
  auto now = std::chrono::steady_clock::now();
  auto [it, fresh] = samples_.try_emplace(key, Rates{now, counts});
  std::map<std::string, double> out;
  if (fresh) return out;
  Rates& sample = it->second;
  double seconds = std::chrono::duration<double>(now - sample.at).count();
  if (seconds > 0)
    for (const auto& [name, count] : counts)
      out[name] = double(count - std::min(count, sample.counts[name])) / std::max(seconds, 1.0);
  if (now - sample.at >= kRateInterval) sample = {now, counts};
  return out;
}

bool Api::authenticate(const std::string& user, const std::string& password, bool loopback) const {
  static const std::set<std::string, std::less<>> kLoopbackOnly = {"guest"};  // as AMQP's
  return engine_.users().password_matches(user, password) &&
         (loopback || !kLoopbackOnly.contains(user));
}

}  // namespace warren::mgmt
