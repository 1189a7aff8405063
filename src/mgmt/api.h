// The management HTTP API: RabbitMQ's paths, JSON and status codes (its management plugin
// is the reference), answered from the engine. Transport-free: mgmt/http_server.h feeds it
// requests from cpp-httplib, the fuzz target feeds it bytes. Runs on the engine's loop.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "core/engine.h"

namespace warren::shovel {
class ShovelManager;
}

namespace warren::mgmt {

struct Request {
  std::string method;                             // GET, PUT, POST, DELETE, ...
  std::string path;                               // undecoded, e.g. /api/queues/%2F/q
  std::multimap<std::string, std::string> query;  // decoded
  std::string body;
  std::string user;  // authenticated already; empty: the broker itself (no checks)
};

// Runs `step` on the broker's loop until it returns true (done), the loop serving other work
// between steps, and waits for that; false (not finished) when the broker stops first.
using RunOnLoop = std::function<bool(const std::function<bool()>& step)>;

struct Response {
  int status = 200;
  nlohmann::json body;        // null: no body (204), unless text is set
  core::CommitId commit = 0;  // answer once this commit is durable
  std::string text = {};      // a body that is not JSON (metrics), of content_type
  std::string content_type = {};
  // Work done on the HTTP thread after the loop answered (e.g. turning a snapshot of 10,000
  // queues into JSON), so the loop is not held for it. What it needs of the broker it reads
  // in short turns through run_on_loop.
  std::function<void(Response&, const RunOnLoop& run_on_loop)> finish = {};
};

class Api {
 public:
  explicit Api(core::Engine& engine);
  // The broker's shovels, for /api/parameters/shovel, /api/shovels and definitions.
  void attach_shovels(shovel::ShovelManager* shovels) { shovels_ = shovels; }
  // What the node listens on, for /api/overview's "listeners" (protocol as RabbitMQ names
  // it: amqp, amqp/ssl, http, https, http/prometheus). Before serving.
  struct Listener {
    std::string protocol, ip_address;
    uint16_t port = 0;
  };
  void set_listeners(std::vector<Listener> listeners) { listeners_ = std::move(listeners); }
  Response handle(const Request& request);
  // HTTP basic auth against the broker's users (loop thread); guest from loopback only.
  bool authenticate(const std::string& user, const std::string& password, bool loopback) const;
  // Per-second rates of `counts` since the sample of `key` taken at most 5 s ago. Any thread.
  std::map<std::string, double> rates(const std::string& key,
                                      const std::map<std::string, uint64_t>& counts);

 private:
  struct Rates {  // counts at the last sample, for message rates
    std::chrono::steady_clock::time_point at;
    std::map<std::string, uint64_t> counts;
  };
  core::Engine& engine_;
  shovel::ShovelManager* shovels_ = nullptr;
  std::vector<Listener> listeners_;
  std::mutex samples_mutex_;
  std::map<std::string, Rates> samples_;
  friend class Handlers;
};

}  // namespace warren::mgmt
