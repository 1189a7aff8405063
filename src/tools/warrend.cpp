// warrend: the AMQP 0-9-1 server. Unmodified RabbitMQ clients connect to it.
//
//   warrend [--port N] [--data-dir DIR] [--config FILE] ...      (warrend --help lists all)
//
// --port 0 picks a free port and prints "port N" on stdout (for test fixtures). A config
// file holds the same settings as "key = value" lines (repeatable keys may repeat); flags
// win. Settings are parsed in tools/warrend_options.cpp.
#include <systemd/sd-daemon.h>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "amqp/server.h"
#include "common/log.h"
#include "core/engine.h"
#include "mgmt/http_server.h"
#include "mgmt/metrics.h"
#include "mgmt/web_ui.h"
#include "shovel/manager.h"
#include "storage/check.h"
#include "tools/warrend_options.h"

namespace {

using namespace warren;

storage::StoreOptions store_options(const BrokerOptions& broker, const std::string& dir) {
  storage::StoreOptions o;
  o.path = dir;
  o.durability = broker.durability == Durability::in_memory ? Durability::fsync : broker.durability;
  o.accept_data_loss = broker.accept_data_loss;
  o.max_map_size = broker.max_map_size;
  return o;
}

// --check: every page and record read; each problem reported on stdout.
int check(const tools::Settings& settings) {
  const std::string& dir = settings.broker.data_dir;
  auto report = storage::check_store(store_options(settings.broker, dir));
  if (!report.ok()) {
    std::printf("%s: not checked: %s\n", dir.c_str(), report.status().text().c_str());
    return 2;
  }
  for (const auto& note : report->notes) std::printf("note: %s\n", note.c_str());
  for (const auto& problem : report->problems) std::printf("%s\n", problem.c_str());
  std::printf("%s: %llu records read, %zu problem(s)\n", dir.c_str(),
              static_cast<unsigned long long>(report->records), report->problems.size());
  return report->clean() ? 0 : 1;
}

// --salvage-from DIR: whatever is readable there goes into a new store in --data-dir.
int salvage(const tools::Settings& settings) {
  auto report = storage::salvage_store(store_options(settings.broker, settings.salvage_from),
                                       store_options(settings.broker, settings.broker.data_dir));
  if (!report.ok()) {
    std::printf("salvage failed: %s\n", report.status().text().c_str());
    return 1;
  }
  for (const auto& lost : report->lost) std::printf("lost: %s\n", lost.c_str());
  std::printf("salvaged %llu definitions and %llu messages into %s; %zu loss(es)\n",
              static_cast<unsigned long long>(report->definitions),
              static_cast<unsigned long long>(report->messages), settings.broker.data_dir.c_str(),
              report->lost.size());
  return 0;
}

// --definitions FILE: applied as a POST /api/definitions would, and on disk before serving.
Status load_definitions(core::Engine& engine, mgmt::Api& api, const std::string& file) {
  std::ifstream in(file);
  mgmt::Request request{
      "POST", "/api/definitions", {}, {std::istreambuf_iterator<char>(in), {}}, ""};
  mgmt::Response r = api.handle(request);
  if (r.status >= 300)
    return Status::error(ReplyCode::internal_error,
                         fmt::format("definitions in {} not applied: {}", file,
                                     r.body.value("reason", r.body.dump())));
  bool timed_out = false;
  if (Status s =
          engine.wait_durable(r.commit, std::chrono::steady_clock::time_point::max(), &timed_out);
      !s)
    return s;
  log::info("definitions from {} applied", file);
  return {};
}

// --user / --user-hash: administrators on every vhost, stored again at each boot (their
// passwords may have changed); they replace the default guest.
void configure_users(core::Engine& engine,
                     const std::vector<std::pair<std::string, std::string>>& users) {
  if (users.empty()) return;
  engine.drop_default_user();
  for (const auto& [name, hash] : users)
    engine.store_user(core::User{
        .name = name, .password_hash = hash, .tags = {"administrator"}, .every_vhost = true});
}

// --shovel / shovel = 'NAME {json}': declared (and stored) at each boot.
Status declare_configured_shovels(
    core::Engine& engine, shovel::ShovelManager& shovels,
    const std::vector<std::pair<std::string, std::string>>& configured) {
  core::CommitId commit = 0;
  for (const auto& [name, text] : configured) {
    auto value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded())
      return Status::error(ReplyCode::precondition_failed,
                           fmt::format("shovel '{}': its definition is not JSON", name));
    auto declared = shovels.declare("/", name, value);
    if (!declared.ok())
      return Status::error(ReplyCode::precondition_failed,
                           fmt::format("shovel '{}': {}", name, declared.status().text()));
    commit = std::max(commit, declared.value());
  }
  bool timed_out = false;
  return engine.wait_durable(commit, std::chrono::steady_clock::time_point::max(), &timed_out);
}

// GET /metrics and /metrics/per-object, as RabbitMQ's Prometheus plugin serves them.
mgmt::Response metrics(core::Engine& engine, const shovel::ShovelManager& shovels,
                       const mgmt::Request& r) {
  if (r.method != "GET") return {405, nullptr};
  if (r.path != "/metrics" && r.path != "/metrics/per-object") return {404, nullptr};
  mgmt::Response response;
  const bool per_object = r.path == "/metrics/per-object";
  response.text = mgmt::prometheus_metrics(engine, per_object, per_object ? nullptr : &shovels);
  response.content_type = "text/plain; version=0.0.4";
  return response;
}

// What /api/overview shows under "listeners".
std::vector<mgmt::Api::Listener> listeners(const tools::Settings& settings,
                                           const amqp::Server& server) {
  std::vector<mgmt::Api::Listener> out;
  for (const auto& address : settings.listen.addresses) {
    out.push_back({"amqp", address, server.port()});
    if (server.tls_port() != 0) out.push_back({"amqp/ssl", address, server.tls_port()});
  }
  if (settings.management_port != 0)
    out.push_back({settings.management_tls ? "https" : "http", settings.management_bind,
                   settings.management_port});
  if (settings.prometheus_port != 0)
    out.push_back({settings.prometheus_tls ? "https/prometheus" : "http/prometheus",
                   settings.prometheus_bind, settings.prometheus_port});
  return out;
}

// The one line test harnesses wait for (README, "Readiness"), and systemd's Type=notify.
void announce_ready(const tools::Settings& settings, const amqp::Server& server) {
  std::string line = fmt::format("ready amqp={}", server.port());
  if (server.tls_port() != 0) line += fmt::format(" amqps={}", server.tls_port());
  if (settings.management_port != 0)
    line += fmt::format(" management={}", settings.management_port);
  if (settings.prometheus_port != 0)
    line += fmt::format(" prometheus={}", settings.prometheus_port);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  sd_notify(0, fmt::format("READY=1\nSTATUS=accepting connections: {}", line.substr(6)).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  using namespace warren;
  tools::Settings settings = tools::parse_settings(argc, argv);
  log::threshold() = settings.level;
  if (settings.check) return check(settings);
  if (!settings.salvage_from.empty()) return salvage(settings);
  asio::io_context io;
  // Caught from the start: a SIGTERM during start-up is held until the loop runs, then it is
  // a graceful stop like any other.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  auto engine =
      core::Engine::open(io, core::EngineOptions{settings.broker, nullptr, settings.vhosts,
                                                 settings.memory_high_watermark});
  if (!engine.ok()) {
    log::error("cannot open {}: {}", settings.broker.data_dir, engine.status().text());
    return 1;
  }
  // This thread runs the broker for its whole life: it holds the loop token throughout.
  std::lock_guard own(*engine.value()->token());
  amqp::Server server(io, *engine.value(), settings.amqp);
  if (Status s = server.listen(settings.listen); !s) {
    log::error("{}", s.text());
    return 1;
  }
  if (settings.listen.port == 0) {
    std::printf("port %u\n", unsigned(server.port()));
    std::fflush(stdout);
  }
  if (!settings.tls.cert_file.empty()) {
    amqp::ListenOptions tls_listen = settings.listen;
    tls_listen.port = settings.tls_port;
    if (Status s = server.listen_tls(tls_listen, settings.tls); !s) {
      log::error("{}", s.text());
      return 1;
    }
  }
  configure_users(*engine.value(), settings.users);
  shovel::ShovelManager shovels(*engine.value());
  shovels.recover();
  if (Status s = declare_configured_shovels(*engine.value(), shovels, settings.shovels); !s) {
    log::error("{}", s.text());
    return 1;
  }
  mgmt::Api management_api(*engine.value());
  management_api.attach_shovels(&shovels);
  management_api.set_listeners(listeners(settings, server));
  if (!settings.definitions.empty())
    if (Status s = load_definitions(*engine.value(), management_api, settings.definitions); !s) {
      log::error("{}", s.text());
      return 1;
    }
  mgmt::HttpServer management(
      io, *engine.value(), [&](const mgmt::Request& r) { return management_api.handle(r); },
      [&](const std::string& user, const std::string& password, bool loopback) {
        return management_api.authenticate(user, password, loopback);
      });
  mgmt::HttpServer prometheus(io, *engine.value(), [&](const mgmt::Request& r) {
    return metrics(*engine.value(), shovels, r);
  });
  management.serve_static("/", mgmt::web_ui_page(), "text/html; charset=utf-8");
  const mgmt::HttpServer::Tls https{settings.tls.cert_file, settings.tls.key_file};
  if (settings.management_port != 0)
    if (Status s = management.start(settings.management_bind, settings.management_port,
                                    "management API", settings.management_tls ? &https : nullptr);
        !s) {
      log::error("{}", s.text());
      return 1;
    }
  if (settings.prometheus_port != 0)
    if (Status s =
            prometheus.start(settings.prometheus_bind, settings.prometheus_port,
                             "Prometheus metrics", settings.prometheus_tls ? &https : nullptr);
        !s) {
      log::error("{}", s.text());
      return 1;
    }

  signals.async_wait([&](std::error_code ec, int signal) {
    if (ec) return;
    log::info("signal {}: shutting down", signal);
    sd_notify(0, "STOPPING=1");
    management.stop();
    prometheus.stop();
    shovels.stop_all();
    // Every publish already read is confirmed or nacked before its connection is closed;
    // clients get a few seconds to answer connection.close.
    server.shutdown(std::chrono::seconds(5), [&] { io.stop(); });
  });
  log::info("warrend ready: data in {} ({})",
            settings.broker.durability == Durability::in_memory ? std::string("memory")
                                                                : settings.broker.data_dir,
            settings.broker.durability == Durability::fsync ? "fsync" : "nosync");
  announce_ready(settings, server);
  io.run();
  server.abandon_all();
  engine.value()->shutdown();
  log::info("stopped");
  return 0;
}
