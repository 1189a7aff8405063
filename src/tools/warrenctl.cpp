// warrenctl: rabbitmqctl's verbs for a running warrend, through its management HTTP API.
//
//   warrenctl [--url URL] [--user NAME:PASSWORD] [-p VHOST] [-q] [--formatter
//   json|tsv|pretty_table]
//             list_queues [name messages ...]
//   warrenctl --offline --data-dir DIR list_queues       (a stopped data directory, read-only)
//
// Exit codes as rabbitmqctl's: 0 done, 64 usage, 69 unreachable or not found, 77 refused
// credentials, 70 anything else.
#include <fmt/format.h>
#include <httplib.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/users.h"
#include "mgmt/json_fields.h"
#include "storage/check.h"

namespace {

using nlohmann::json;
using warren::mgmt::percent_encoded;

constexpr int kUsage = 64, kUnavailable = 69, kSoftware = 70, kNoPermission = 77;

struct Options {
  std::string url = "http://127.0.0.1:15672";
  std::string user = "guest:guest";
  std::string vhost = "/";
  std::string formatter = "tsv";
  bool quiet = false;
  bool offline = false;
  std::string data_dir;
  std::string verb;
  std::vector<std::string> args;
  std::string cacert;
};

[[noreturn]] void fail(int code, const std::string& what) {
  std::fprintf(stderr, "Error:\n%s\n", what.c_str());
  std::exit(code);
}

class Api {
 public:
  explicit Api(const Options& o) : client_(o.url) {
    auto colon = o.user.find(':');
    if (colon == std::string::npos) fail(kUsage, "--user wants NAME:PASSWORD");
    client_.set_basic_auth(o.user.substr(0, colon), o.user.substr(colon + 1));
    client_.set_connection_timeout(std::chrono::seconds(10));
    // An https:// URL is verified against the system's CAs, or --cacert.
    if (!o.cacert.empty()) client_.set_ca_cert_path(o.cacert.c_str());
    client_.enable_server_certificate_verification(true);
    client_.set_read_timeout(std::chrono::seconds(60));
    url_ = o.url;
  }

  // GET that answers null for 404 instead of exiting.
  json call_allowing_404(const std::string& method, const std::string& path) {
    httplib::Result r = client_.Get(path);
    if (r && r->status == 404) return nullptr;
    return call(method, path);
  }

  // The answer's JSON; a failure exits with rabbitmqctl's code and the server's reason.
  json call(const std::string& method, const std::string& path, const json& body = nullptr) {
    httplib::Result r = method == "GET"      ? client_.Get(path)
                        : method == "DELETE" ? client_.Delete(path)
                        : method == "PUT"    ? client_.Put(path, body.dump(), "application/json")
                                             : client_.Post(path, body.dump(), "application/json");
    if (!r)
      fail(kUnavailable, fmt::format("cannot reach warrend's management API at {} ({})", url_,
                                     httplib::to_string(r.error())));
    const json answer = json::parse(r->body, nullptr, false);
    const std::string reason = answer.is_object() && answer.contains("reason")
                                   ? answer["reason"].get<std::string>()
                                   : r->body;
    if (r->status == 401)
      fail(kNoPermission,
           reason.empty() || reason == r->body ? "the user name or password was refused" : reason);
    if (r->status == 404) fail(kUnavailable, reason.empty() ? "not found" : reason);
    if (r->status >= 400) fail(kSoftware, fmt::format("{}: {}", r->status, reason));
    return answer.is_discarded() ? json() : answer;
  }

 private:
  httplib::Client client_;
  std::string url_;
};

// rabbitmqctl's output: a header line and tab-separated rows; aligned with pretty_table;
// a JSON array with --formatter json.
void print_table(const Options& o, const std::vector<std::string>& columns, const json& rows) {
  auto cell = [](const json& v) -> std::string {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_null()) return "";
    return v.dump();
  };
  if (o.formatter == "json") {
    json out = json::array();
    for (const auto& row : rows) {
      json picked = json::object();
      for (const auto& c : columns) picked[c] = row.value(c, json());
      out.push_back(picked);
    }
    std::cout << out.dump() << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table{columns};
  for (const auto& row : rows) {
    std::vector<std::string> line;
    for (const auto& c : columns) line.push_back(cell(row.value(c, json())));
    table.push_back(line);
  }
  std::vector<size_t> width(columns.size(), 0);
  for (const auto& line : table)
    for (size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  for (const auto& line : table) {
    for (size_t i = 0; i < line.size(); ++i) {
      if (o.formatter == "pretty_table")
        std::cout << fmt::format("{:<{}}", line[i], width[i] + 2);
      else
        std::cout << line[i] << (i + 1 < line.size() ? "\t" : "");
    }
    std::cout << "\n";
  }
}

void say(const Options& o, const std::string& line) {
  if (!o.quiet && o.formatter != "json") std::cout << line << "\n";
}

// The columns named after the command's first `arguments` arguments, or else `fallback`.
std::vector<std::string> columns_or(const Options& o, std::vector<std::string> fallback,
                                    size_t arguments = 0) {
  if (o.args.size() <= arguments) return fallback;
  return {o.args.begin() + long(arguments), o.args.end()};
}

std::string read_all(const std::string& file) {
  if (file == "-") return {std::istreambuf_iterator<char>(std::cin), {}};
  std::ifstream in(file);
  if (!in) fail(kSoftware, "cannot read " + file);
  return {std::istreambuf_iterator<char>(in), {}};
}

int offline(const Options& o) {
  if (o.verb != "list_queues") fail(kUsage, "--offline answers list_queues only");
  warren::storage::StoreOptions store;
  store.path = o.data_dir;
  auto queues = warren::storage::stored_queues(store);
  if (!queues.ok()) fail(kSoftware, queues.status().text());
  json rows = json::array();
  for (const auto& q : *queues)
    if (q.vhost == o.vhost)
      rows.push_back(json{{"name", q.name}, {"messages", q.messages}, {"message_bytes", q.bytes}});
  say(o, fmt::format("Listing queues for vhost {} in {} (offline) ...", o.vhost, o.data_dir));
  print_table(o, columns_or(o, {"name", "messages"}), rows);
  return 0;
}

// list_(user_)permissions and list_(user_)topic_permissions: `what` ("permissions" or "topic
// permissions") of one user in every vhost, or of every user in the vhost (-p).
int list_permissions(const Options& o, Api& api, const std::string& what,
                     std::vector<std::string> columns) {
  const bool of_user = o.verb.starts_with("list_user_");
  if (of_user && o.args.empty()) fail(kUsage, fmt::format("usage: warrenctl {} USER", o.verb));
  std::string resource = what;
  std::replace(resource.begin(), resource.end(), ' ', '-');
  json rows = api.call(
      "GET", of_user ? fmt::format("/api/users/{}/{}", percent_encoded(o.args[0]), resource)
                     : fmt::format("/api/vhosts/{}/{}", percent_encoded(o.vhost), resource));
  say(o, of_user ? fmt::format("Listing {} for user \"{}\" ...", what, o.args[0])
                 : fmt::format("Listing {} for vhost \"{}\" ...", what, o.vhost));
  columns.insert(columns.begin(), of_user ? "vhost" : "user");
  print_table(o, columns_or(o, columns, of_user ? 1 : 0), rows);
  return 0;
}

// set_topic_permissions, clear_topic_permissions, list_topic_permissions,
// list_user_topic_permissions: rabbitmqctl's verbs and arguments (-p VHOST).
int topic_command(const Options& o, Api& api) {
  const std::string vhost = percent_encoded(o.vhost);
  auto usage = [&](const char* text) {
    fail(kUsage, fmt::format("usage: warrenctl {} {}", o.verb, text));
  };
  const std::string path = o.args.empty() ? ""
                                          : fmt::format("/api/topic-permissions/{}/{}", vhost,
                                                        percent_encoded(o.args[0]));
  if (o.verb == "set_topic_permissions") {
    if (o.args.size() != 4) usage("[-p VHOST] USER EXCHANGE WRITE READ");
    say(o, fmt::format("Setting topic permissions on \"{}\" for user \"{}\" in vhost \"{}\" ...",
                       o.args[1], o.args[0], o.vhost));
    api.call("PUT", path, json{{"exchange", o.args[1]}, {"write", o.args[2]}, {"read", o.args[3]}});
    return 0;
  }
  if (o.verb == "clear_topic_permissions") {
    if (o.args.empty() || o.args.size() > 2) usage("[-p VHOST] USER [EXCHANGE]");
    if (o.args.size() == 2) {
      say(o, fmt::format("Clearing topic permissions on \"{}\" for user \"{}\" in vhost \"{}\" ...",
                         o.args[1], o.args[0], o.vhost));
      api.call("DELETE", path + "/" + percent_encoded(o.args[1]));
    } else {
      say(o, fmt::format("Clearing topic permissions for user \"{}\" in vhost \"{}\" ...",
                         o.args[0], o.vhost));
      api.call("DELETE", path);
    }
    return 0;
  }
  return list_permissions(o, api, "topic permissions", {"exchange", "write", "read"});
}

// add_user, change_password, delete_user, set_user_tags, list_users, set_permissions,
// clear_permissions, list_permissions, list_user_permissions, hash_password: rabbitmqctl's
// verbs and arguments (-p VHOST for permissions).
int user_command(const Options& o, Api& api) {
  const std::string vhost = percent_encoded(o.vhost);
  auto need = [&](size_t n, const char* usage) {
    if (o.args.size() != n) fail(kUsage, fmt::format("usage: warrenctl {} {}", o.verb, usage));
  };
  auto user_path = [&](const std::string& name) { return "/api/users/" + percent_encoded(name); };
  if (o.verb == "hash_password") {
    need(1, "PASSWORD");
    std::cout << warren::core::hash_password(o.args[0]) << "\n";
    return 0;
  }
  if (o.verb == "list_users") {
    json rows = api.call("GET", "/api/users");
    for (auto& row : rows) row["user"] = row["name"];
    say(o, "Listing users ...");
    print_table(o, columns_or(o, {"user", "tags"}), rows);
    return 0;
  }
  if (o.verb == "add_user") {
    need(2, "USER PASSWORD");
    json existing = api.call_allowing_404("GET", user_path(o.args[0]));
    if (!existing.is_null()) fail(kSoftware, fmt::format("User \"{}\" already exists", o.args[0]));
    say(o, fmt::format("Adding user \"{}\" ...", o.args[0]));
    api.call("PUT", user_path(o.args[0]), json{{"password", o.args[1]}, {"tags", ""}});
    return 0;
  }
  if (o.verb == "change_password" || o.verb == "set_user_tags") {
    const bool password = o.verb == "change_password";
    if (password) need(2, "USER PASSWORD");
    if (!password && o.args.empty()) fail(kUsage, "usage: warrenctl set_user_tags USER [TAG ...]");
    json user = api.call("GET", user_path(o.args[0]));
    json body{{"tags", user["tags"]}, {"password_hash", user["password_hash"]}};
    if (password) {
      body.erase("password_hash");
      body["password"] = o.args[1];
    } else {
      body["tags"] = std::vector<std::string>(o.args.begin() + 1, o.args.end());
    }
    say(o, password ? fmt::format("Changing password for user \"{}\" ...", o.args[0])
                    : fmt::format("Setting tags for user \"{}\" ...", o.args[0]));
    api.call("PUT", user_path(o.args[0]), body);
    return 0;
  }
  if (o.verb == "delete_user") {
    need(1, "USER");
    say(o, fmt::format("Deleting user \"{}\" ...", o.args[0]));
    api.call("DELETE", user_path(o.args[0]));
    return 0;
  }
  const std::string permission_path =
      o.args.empty() ? ""
                     : fmt::format("/api/permissions/{}/{}", vhost, percent_encoded(o.args[0]));
  if (o.verb == "set_permissions") {
    need(4, "[-p VHOST] USER CONFIGURE WRITE READ");
    say(o,
        fmt::format("Setting permissions for user \"{}\" in vhost \"{}\" ...", o.args[0], o.vhost));
    api.call("PUT", permission_path,
             json{{"configure", o.args[1]}, {"write", o.args[2]}, {"read", o.args[3]}});
    return 0;
  }
  if (o.verb == "clear_permissions") {
    need(1, "[-p VHOST] USER");
    say(o, fmt::format("Clearing permissions for user \"{}\" in vhost \"{}\" ...", o.args[0],
                       o.vhost));
    api.call("DELETE", permission_path);
    return 0;
  }
  if (o.verb.find("topic_permissions") != std::string::npos) return topic_command(o, api);
  return list_permissions(o, api, "permissions", {"configure", "write", "read"});
}

// rabbitmqctl shovel_status's columns, then Warren's counts.
int shovel_status(const Options& o, Api& api) {
  json rows = api.call("GET", "/api/shovels");
  for (auto& row : rows) {
    auto end = [&](const char* side) {
      std::string what = row.value(fmt::format("{}_queue", side), "");
      if (what.empty()) what = row.value(fmt::format("{}_exchange", side), "");
      return fmt::format("{} {}", row.value(fmt::format("{}_uri", side), ""), what);
    };
    row["source"] = end("src");
    row["destination"] = end("dest");
    row["termination_reason"] = row.value("reason", "");
    row["last_changed"] = row.value("timestamp", "");
  }
  say(o, "Shovel status ...");
  print_table(
      o,
      columns_or(o, {"name", "vhost", "type", "state", "source", "destination",
                     "termination_reason", "last_changed", "forwarded", "resent", "pending"}),
      rows);
  return 0;
}

// set_parameter shovel NAME JSON, clear_parameter shovel NAME, delete_shovel NAME,
// restart_shovel NAME (in --vhost).
int shovel_command(const Options& o, Api& api) {
  const std::string vhost = percent_encoded(o.vhost);
  const bool by_parameter = o.verb == "set_parameter" || o.verb == "clear_parameter";
  const size_t wanted = o.verb == "set_parameter" ? 3 : by_parameter ? 2 : 1;
  if (o.args.size() != wanted || (by_parameter && o.args[0] != "shovel"))
    fail(kUsage, fmt::format("usage: warrenctl {} {}", o.verb,
                             o.verb == "set_parameter"     ? "shovel NAME JSON"
                             : o.verb == "clear_parameter" ? "shovel NAME"
                                                           : "NAME"));
  const std::string name = percent_encoded(o.args[by_parameter ? 1 : 0]);
  if (o.verb == "set_parameter") {
    json value = json::parse(o.args[2], nullptr, false);
    if (value.is_discarded()) fail(kUsage, "the parameter value is not JSON");
    api.call("PUT", fmt::format("/api/parameters/shovel/{}/{}", vhost, name),
             json{{"value", value}});
    say(o, fmt::format("Setting runtime parameter \"{}\" for component \"shovel\" ...", o.args[1]));
  } else if (o.verb == "restart_shovel") {
    api.call("DELETE", fmt::format("/api/shovels/vhost/{}/{}/restart", vhost, name));
    say(o, fmt::format("Restarting dynamic Shovel {} in virtual host {}", o.args[0], o.vhost));
  } else {
    api.call("DELETE", fmt::format("/api/parameters/shovel/{}/{}", vhost, name));
    say(o, fmt::format("Deleting shovel {} in vhost {}", o.args[by_parameter ? 1 : 0], o.vhost));
  }
  return 0;
}

int online(const Options& o) {
  Api api(o);
  const std::string vhost = percent_encoded(o.vhost);
  auto need = [&](size_t n, const char* usage) {
    if (o.args.size() != n) fail(kUsage, fmt::format("usage: warrenctl {} {}", o.verb, usage));
  };
  if (o.verb == "status") {
    json overview = api.call("GET", "/api/overview");
    json nodes = api.call("GET", "/api/nodes");
    if (o.formatter == "json") {
      std::cout << json{{"overview", overview}, {"node", nodes.empty() ? json() : nodes[0]}}.dump()
                << "\n";
      return 0;
    }
    say(o, fmt::format("Status of node {} ...", overview.value("node", "")));
    std::cout << fmt::format(
        "Product: {} {}\nQueues: {}\nConnections: {}\nMessages ready: {}\nMessages unacknowledged: "
        "{}\n",
        overview.value("product_name", ""), overview.value("product_version", ""),
        overview["object_totals"].value("queues", 0),
        overview["object_totals"].value("connections", 0),
        overview["queue_totals"].value("messages_ready", 0),
        overview["queue_totals"].value("messages_unacknowledged", 0));
    if (!nodes.empty())
      std::cout << fmt::format(
          "Memory used: {} bytes\nAlarms: {}\n", nodes[0].value("mem_used", 0),
          nodes[0].value("mem_alarm", false) || nodes[0].value("disk_free_alarm", false) ? "raised"
                                                                                         : "none");
    return 0;
  }
  struct Listing {
    const char* verb;
    const char* path;
    const char* what;
    std::vector<std::string> columns;
  };
  const Listing listings[] = {
      {"list_queues", "/api/queues/", "queues", {"name", "messages"}},
      {"list_exchanges", "/api/exchanges/", "exchanges", {"name", "type"}},
      {"list_bindings",
       "/api/bindings/",
       "bindings",
       {"source", "destination", "destination_type", "routing_key"}},
      {"list_connections",
       "/api/connections",
       "connections",
       {"name", "user", "vhost", "channels"}},
      {"list_channels", "/api/channels", "channels", {"name", "connection", "number"}},
      {"list_consumers",
       "/api/consumers/",
       "consumers",
       {"queue_name", "consumer_tag", "ack_required", "prefetch_count"}},
  };
  for (const Listing& l : listings) {
    if (o.verb != l.verb) continue;
    std::string path = l.path;
    if (path.back() == '/') path += vhost;
    json rows = api.call("GET", path);
    if (o.verb == "list_consumers")
      for (auto& row : rows) row["queue_name"] = row["queue"].value("name", "");
    say(o,
        fmt::format("Listing {}{} ...", l.what,
                    path.back() == '/' || o.verb == "list_connections" || o.verb == "list_channels"
                        ? ""
                        : fmt::format(" for vhost {}", o.vhost)));
    print_table(o, columns_or(o, l.columns), rows);
    return 0;
  }
  if (o.verb == "purge_queue") {
    need(1, "QUEUE");
    say(o, fmt::format("Purging queue '{}' in vhost '{}' ...", o.args[0], o.vhost));
    api.call("DELETE",
             fmt::format("/api/queues/{}/{}/contents", vhost, percent_encoded(o.args[0])));
    return 0;
  }
  if (o.verb == "delete_queue") {
    need(1, "QUEUE");
    say(o, fmt::format("Deleting queue '{}' on vhost '{}' ...", o.args[0], o.vhost));
    api.call("DELETE", fmt::format("/api/queues/{}/{}", vhost, percent_encoded(o.args[0])));
    return 0;
  }
  if (o.verb == "export_definitions") {
    need(1, "FILE|-");
    std::string text = api.call("GET", "/api/definitions").dump(2);
    if (o.args[0] == "-") {
      std::cout << text << "\n";
    } else {
      std::ofstream(o.args[0]) << text << "\n";
      say(o, fmt::format("Exported definitions to {}", o.args[0]));
    }
    return 0;
  }
  if (o.verb == "import_definitions") {
    need(1, "FILE|-");
    json definitions = json::parse(read_all(o.args[0]), nullptr, false);
    if (definitions.is_discarded()) fail(kUsage, o.args[0] + " is not JSON");
    api.call("POST", "/api/definitions", definitions);
    say(o, fmt::format("Imported definitions from {}", o.args[0]));
    return 0;
  }
  if (o.verb == "move_messages") {
    if (o.args.empty() || o.args.size() > 2)
      fail(kUsage, "usage: warrenctl move_messages SOURCE [DESTINATION]");
    json body = json::object();
    if (o.args.size() == 2) body["to"] = o.args[1];
    json answer = api.call(
        "POST", fmt::format("/api/queues/{}/{}/move", vhost, percent_encoded(o.args[0])), body);
    say(o, fmt::format("Moved {} message(s) from '{}' to {}", answer.value("moved", 0), o.args[0],
                       o.args.size() == 2 ? "'" + o.args[1] + "'" : "where they died"));
    return 0;
  }
  if (o.verb == "shovel_status") return shovel_status(o, api);
  static const std::set<std::string, std::less<>> kUserVerbs = {"add_user",
                                                                "change_password",
                                                                "delete_user",
                                                                "set_user_tags",
                                                                "list_users",
                                                                "set_permissions",
                                                                "clear_permissions",
                                                                "list_permissions",
                                                                "list_user_permissions",
                                                                "hash_password",
                                                                "set_topic_permissions",
                                                                "clear_topic_permissions",
                                                                "list_topic_permissions",
                                                                "list_user_topic_permissions"};
  if (kUserVerbs.contains(o.verb)) return user_command(o, api);
  if (o.verb == "set_parameter" || o.verb == "clear_parameter" || o.verb == "delete_shovel" ||
      o.verb == "restart_shovel")
    return shovel_command(o, api);
  if (o.verb == "close_connection") {
    need(1, "NAME");
    api.call("DELETE", "/api/connections/" + percent_encoded(o.args[0]));
    return 0;
  }
  fail(kUsage, fmt::format("unknown command '{}' (see warrenctl --help)", o.verb));
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const char* url = std::getenv("WARREN_URL")) o.url = url;
  if (const char* user = std::getenv("WARREN_USER")) o.user = user;
  CLI::App app{"warrenctl: rabbitmqctl's commands for warrend, through its management HTTP API"};
  app.add_option("--url", o.url, "The management API (env WARREN_URL)")->capture_default_str();
  app.add_option("--user", o.user, "NAME:PASSWORD (env WARREN_USER; default guest:guest)");
  app.add_option("-p,--vhost", o.vhost, "Virtual host")->capture_default_str();
  app.add_option("--cacert", o.cacert,
                 "PEM CA file that an https:// --url's certificate must chain to")
      ->check(CLI::ExistingFile);
  app.add_option("--formatter", o.formatter, "tsv, pretty_table or json")
      ->check(CLI::IsMember({"tsv", "pretty_table", "json"}))
      ->capture_default_str();
  app.add_flag("-q,--quiet", o.quiet, "Only the data, no informational lines");
  app.add_flag("--offline", o.offline, "Read a stopped data directory (list_queues only)");
  app.add_option("--data-dir", o.data_dir, "The data directory, with --offline");
  app.add_option(
         "command", o.verb,
         "status, list_queues [columns], list_exchanges, list_bindings, list_connections, "
         "list_channels, "
         "list_consumers, purge_queue Q, delete_queue Q, export_definitions FILE|-, "
         "import_definitions FILE|-, "
         "move_messages SRC [DST], close_connection NAME, shovel_status, "
         "set_parameter shovel NAME JSON, clear_parameter shovel NAME, delete_shovel NAME, "
         "restart_shovel NAME, add_user U P, change_password U P, delete_user U, "
         "set_user_tags U [TAG...], list_users, set_permissions U CONF WRITE READ, "
         "clear_permissions U, list_permissions, list_user_permissions U, "
         "set_topic_permissions U EXCHANGE WRITE READ, clear_topic_permissions U [EXCHANGE], "
         "list_topic_permissions, list_user_topic_permissions U, hash_password P")
      ->required();
  app.add_option("args", o.args, "The command's arguments");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "warrenctl: %s\n", e.what());
    return kUsage;
  }
  if (o.offline) {
    if (o.data_dir.empty()) fail(kUsage, "--offline needs --data-dir");
    return offline(o);
  }
  return online(o);
}
