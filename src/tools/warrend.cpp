// warrend: the AMQP 0-9-1 server. Unmodified RabbitMQ clients connect to it.
//
//   warrend [--port N] [--bind ADDR]... [--data-dir DIR] [--durability fsync|nosync|memory]
//           [--user NAME:PASSWORD]... [--vhost NAME]... [--config FILE] [--log-level LEVEL]
//
// --port 0 picks a free port and prints "port N" on stdout (for test fixtures). A config
// file holds the same settings as "key = value" lines ("user" may repeat); flags win.
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "amqp/server.h"
#include "common/log.h"
#include "core/engine.h"

namespace {

using namespace warren;

struct Settings {
  amqp::ListenOptions listen;
  bool addresses_given = false;
  BrokerOptions broker;
  amqp::ServerConfig amqp;
  bool users_given = false;
  std::vector<std::string> vhosts;
  log::Level level = log::Level::info;
  // Bytes, or a fraction of the machine's memory (RabbitMQ's default is 0.4).
  double memory_high_watermark = 0.4;
};

uint64_t total_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? uint64_t(pages) * uint64_t(size) : 0;
}

uint64_t watermark_bytes(double setting) {
  return setting <= 1.0 ? uint64_t(setting * double(total_memory())) : uint64_t(setting);
}

std::string default_data_dir() {
  if (geteuid() == 0) return "/var/lib/warren";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.local/share/warren";
}

[[noreturn]] void usage(const std::string& problem) {
  std::fprintf(stderr,
               "warrend: %s\n"
               "usage: warrend [--port N] [--bind ADDR]... [--data-dir DIR]\n"
               "               [--durability fsync|nosync|memory] [--user NAME:PASSWORD]...\n"
               "               [--vhost NAME]... [--max-map-size BYTES] [--max-message-size BYTES]\n"
               "               [--heartbeat SECONDS] [--frame-max BYTES]\n"
               "               [--channel-max N] [--handshake-timeout MS]\n"
               "               [--memory-high-watermark BYTES|FRACTION] [--publish-backlog-limit BYTES]\n"
               "               [--max-bodies-in-flight BYTES]\n"
               "               [--config FILE] [--log-level LEVEL]\n",
               problem.c_str());
  std::exit(2);
}

uint64_t number(const std::string& key, const std::string& value) {
  try {
    size_t used = 0;
    uint64_t n = std::stoull(value, &used);
    if (used == value.size()) return n;
  } catch (const std::exception&) {
  }
  usage(fmt::format("{} wants a number, not '{}'", key, value));
}

void apply(Settings& s, const std::string& key, const std::string& value) {
  if (key == "port") {
    uint64_t port = number(key, value);
    if (port > 65535) usage("port out of range");
    s.listen.port = uint16_t(port);
  } else if (key == "bind") {
    if (!s.addresses_given) s.listen.addresses.clear();
    s.addresses_given = true;
    s.listen.addresses.push_back(value);
  } else if (key == "data-dir") {
    s.broker.data_dir = value;
  } else if (key == "durability") {
    if (value == "fsync") s.broker.durability = Durability::fsync;
    else if (value == "nosync") s.broker.durability = Durability::nosync;
    else if (value == "memory") s.broker.durability = Durability::in_memory;
    else usage("durability is fsync, nosync or memory");
  } else if (key == "user") {
    auto colon = value.find(':');
    if (colon == std::string::npos || colon == 0) usage("user wants NAME:PASSWORD");
    if (!s.users_given) s.amqp.users.clear();
    s.users_given = true;
    s.amqp.users[value.substr(0, colon)] = value.substr(colon + 1);
  } else if (key == "vhost") {
    s.vhosts.push_back(value);
  } else if (key == "max-message-size") {
    s.broker.max_message_size = number(key, value);
  } else if (key == "max-map-size") {
    s.broker.max_map_size = number(key, value);
  } else if (key == "heartbeat") {
    s.amqp.heartbeat = uint16_t(number(key, value));
  } else if (key == "frame-max") {
    s.amqp.frame_max = uint32_t(std::max<uint64_t>(4096, number(key, value)));
  } else if (key == "channel-max") {
    s.amqp.channel_max = uint16_t(std::clamp<uint64_t>(number(key, value), 1, 65535));
  } else if (key == "handshake-timeout") {
    s.amqp.handshake_timeout = std::chrono::milliseconds(number(key, value));
  } else if (key == "memory-high-watermark") {
    try {
      size_t used = 0;
      s.memory_high_watermark = std::stod(value, &used);
      if (used != value.size() || s.memory_high_watermark < 0) throw std::invalid_argument(value);
    } catch (const std::exception&) {
      usage("memory-high-watermark wants bytes, or a fraction of memory such as 0.4");
    }
  } else if (key == "max-bodies-in-flight") {
    s.amqp.bodies->limit = number(key, value);
  } else if (key == "publish-backlog-limit") {
    s.broker.publish_backlog_limit = number(key, value);
  } else if (key == "log-level") {
    if (!log::parse_level(value, &s.level)) usage("log-level is debug, info, warning, error or none");
  } else {
    usage("unknown setting '" + key + "'");
  }
}

void read_config(Settings& s, const std::string& path) {
  std::ifstream in(path);
  if (!in) usage("cannot read config file " + path);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    auto eq = line.find('=');
    auto trim = [](std::string t) {
      t.erase(0, t.find_first_not_of(" \t"));
      t.erase(t.find_last_not_of(" \t\r") + 1);
      return t;
    };
    if (trim(line).empty()) continue;
    // The line itself is not repeated: it may hold a password.
    if (eq == std::string::npos) usage(fmt::format("{} line {}: expected 'key = value'", path, number));
    apply(s, trim(line.substr(0, eq)), trim(line.substr(eq + 1)));
  }
}

Settings parse(int argc, char** argv) {
  Settings s;
  s.broker.data_dir = default_data_dir();
  std::vector<std::pair<std::string, std::string>> flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage("help");
    if (!arg.starts_with("--")) usage("unexpected argument " + arg);
    std::string key = arg.substr(2), value;
    auto eq = key.find('=');
    if (eq != std::string::npos) {
      value = key.substr(eq + 1);
      key.erase(eq);
    } else {
      if (i + 1 >= argc) usage("--" + key + " wants a value");
      value = argv[++i];
    }
    flags.emplace_back(key, value);
  }
  for (auto& [k, v] : flags)
    if (k == "config") read_config(s, v);
  for (auto& [k, v] : flags)
    if (k != "config") apply(s, k, v);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings = parse(argc, argv);
  log::threshold() = settings.level;
  asio::io_context io;
  auto engine = core::Engine::open(
      io, core::EngineOptions{settings.broker, nullptr, settings.vhosts,
                              watermark_bytes(settings.memory_high_watermark)});
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
  log::info("warrend ready: data in {} ({})", settings.broker.durability == Durability::in_memory
                                                  ? std::string("memory")
                                                  : settings.broker.data_dir,
            settings.broker.durability == Durability::fsync ? "fsync" : "nosync");

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int signal) {
    if (ec) return;
    log::info("signal {}: shutting down", signal);
    // Every publish already read is confirmed or nacked before its connection is closed;
    // clients get a few seconds to answer connection.close.
    server.shutdown(std::chrono::seconds(5), [&] { io.stop(); });
  });
  io.run();
  server.abandon_all();
  engine.value()->shutdown();
  log::info("stopped");
  return 0;
}
