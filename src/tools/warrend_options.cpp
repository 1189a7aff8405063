#include "tools/warrend_options.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/users.h"

namespace warren::tools {
namespace {

std::string default_data_dir() {
  if (geteuid() == 0) return "/var/lib/warren";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.local/share/warren";
}

uint64_t total_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? uint64_t(pages) * uint64_t(size) : 0;
}

[[noreturn]] void refuse(const std::string& problem) {
  std::fprintf(stderr, "warrend: %s\nRun with --help for the options.\n", problem.c_str());
  std::exit(2);
}

// CLI11 reads the file; this only checks that every line has the "key = value" shape, so
// that a mistake is reported by line number instead of by its text (which may be a
// password).
void check_config_shape(const std::string& path) {
  std::ifstream in(path);
  if (!in) refuse("cannot read config file " + path);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#' || line[first] == ';') continue;
    if (line.find('=') == std::string::npos)
      refuse(fmt::format("{} line {}: expected 'key = value'", path, number));
  }
}

// "--user NAME:PASSWORD" stays in /proc/PID/cmdline for anyone to read: the password part
// is overwritten once it is parsed.
void hide_passwords(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    char* value = nullptr;
    if (arg == "--user" && i + 1 < argc)
      value = argv[i + 1];
    else if (arg.starts_with("--user="))
      value = argv[i] + 7;
    if (!value) continue;
    if (char* colon = std::strchr(value, ':'))
      for (char* p = colon + 1; *p; ++p) *p = '*';
  }
}

}  // namespace

Settings parse_settings(int argc, char** argv) {
  Settings s;
  s.broker.data_dir = default_data_dir();
  CLI::App app{
      "warrend: a durable single-node AMQP 0-9-1 broker (unmodified RabbitMQ clients connect to "
      "it)",
      "warrend"};
  app.set_config("--config", "",
                 "Read settings from a file of 'key = value' lines (keys are the long "
                 "flags without dashes; flags given on the command line win)");
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.get_formatter()->column_width(34);

  uint16_t port = 5672;
  std::vector<std::string> binds, users;
  std::string durability = "fsync", level = "info";
  double watermark = 0.4;
  app.add_option("--port", port, "AMQP port; 0 picks a free one and prints 'port N' on stdout")
      ->capture_default_str();
  app.add_option("--bind", binds, "Address to listen on (repeatable; default 127.0.0.1 and ::1)");
  app.add_option("--data-dir", s.broker.data_dir, "Data directory")->capture_default_str();
  app.add_option("--durability", durability, "fsync (a confirm means on disk), nosync, or memory")
      ->check(CLI::IsMember({"fsync", "nosync", "memory"}))
      ->capture_default_str();
  app.add_option("--user", users,
                 "NAME:PASSWORD (repeatable; replaces the default guest:guest; the process list "
                 "does not show the password, but prefer --user-hash in config files)");
  std::vector<std::string> user_hashes;
  app.add_option("--user-hash", user_hashes,
                 "NAME:HASH, HASH in RabbitMQ's rabbit_password_hashing_sha256 form (warrenctl "
                 "hash_password makes one; repeatable)");
  app.add_option("--vhost", s.vhosts, "Virtual host to create (repeatable; '/' always exists)");
  app.add_option("--max-map-size", s.broker.max_map_size, "Largest the store may grow, in bytes")
      ->capture_default_str();
  app.add_option("--max-message-size", s.broker.max_message_size, "Largest message body, in bytes")
      ->capture_default_str();
  app.add_option("--heartbeat", s.amqp.heartbeat,
                 "Heartbeat interval offered to clients, in seconds")
      ->capture_default_str();
  app.add_option("--frame-max", s.amqp.frame_max, "Largest frame offered to clients, in bytes")
      ->check(CLI::Range(4096u, 1u << 30))
      ->capture_default_str();
  app.add_option("--channel-max", s.amqp.channel_max, "Most channels per connection")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  uint64_t handshake_ms = uint64_t(s.amqp.handshake_timeout.count());
  app.add_option("--handshake-timeout", handshake_ms,
                 "Milliseconds a client has to open its connection")
      ->capture_default_str();
  app.add_option("--memory-high-watermark", watermark,
                 "Above this anonymous memory publishers are blocked: bytes, or a fraction of RAM")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--publish-backlog-limit", s.broker.publish_backlog_limit,
                 "Bytes waiting for the disk before publishers are not read")
      ->capture_default_str();
  app.add_option("--max-bodies-in-flight", s.amqp.bodies->limit,
                 "Bytes of message bodies still arriving, over all connections, before those "
                 "connections are not read")
      ->capture_default_str();
  app.add_option("--management-port", s.management_port,
                 "Port of the management HTTP API (RabbitMQ's paths and JSON); 0 turns it off")
      ->capture_default_str();
  app.add_option("--management-bind", s.management_bind,
                 "Address the management HTTP API listens on")
      ->capture_default_str();
  app.add_option("--prometheus-port", s.prometheus_port,
                 "Port of the Prometheus metrics (/metrics, RabbitMQ's names); 0 turns it off")
      ->capture_default_str();
  app.add_option("--prometheus-bind", s.prometheus_bind, "Address the Prometheus metrics listen on")
      ->capture_default_str();
  app.add_option("--definitions", s.definitions,
                 "A definitions.json (RabbitMQ's format) whose vhosts, exchanges, queues and "
                 "bindings are applied at boot")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", s.tls.cert_file,
                 "PEM certificate (chain) of an AMQPS listener; with it warrend also serves TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", s.tls.key_file, "PEM private key of that certificate")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-ca", s.tls.ca_file, "PEM CA certificates client certificates must chain to")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-port", s.tls_port, "AMQPS port (TLS 1.2 and 1.3)")->capture_default_str();
  app.add_flag(
      "--tls-verify-peer", s.tls.verify_peer,
      "Ask clients for a certificate and verify it (its common name logs in with EXTERNAL)");
  app.add_flag("--tls-fail-if-no-peer-cert", s.tls.fail_if_no_peer_cert,
               "With --tls-verify-peer: refuse clients without a certificate");
  app.add_flag("--management-tls", s.management_tls,
               "Serve the management API over HTTPS with --tls-cert and --tls-key");
  app.add_flag("--prometheus-tls", s.prometheus_tls,
               "Serve the Prometheus metrics over HTTPS with --tls-cert and --tls-key");
  std::vector<std::string> shovels;
  app.add_option(
      "--shovel", shovels,
      "'NAME {...}': a shovel in vhost '/' with RabbitMQ's dynamic shovel keys (repeatable; "
      "in the config file: shovel = 'NAME {...}', quoted)");
  app.add_flag(
      "--accept-data-loss", s.broker.accept_data_loss,
      "Open a store whose journal is damaged as LMDB holds it, losing what the journal lost");
  app.add_option("--log-level", level, "debug, info, warning, error or none")
      ->check(CLI::IsMember({"debug", "info", "warning", "error", "none"}))
      ->capture_default_str();
  app.add_flag("--check", s.check,
               "Report every damaged record of --data-dir, then exit (1 if any)");
  app.add_option("--salvage-from", s.salvage_from,
                 "Copy every readable message of this data directory into --data-dir, then exit");

  for (int i = 1; i + 1 < argc; ++i)
    if (std::string_view(argv[i]) == "--config") check_config_shape(argv[i + 1]);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    std::exit(0);
  } catch (const CLI::ParseError& e) {
    refuse(e.what());
  }

  s.listen.port = port;
  if (!binds.empty()) s.listen.addresses = binds;
  s.broker.durability = durability == "fsync"    ? Durability::fsync
                        : durability == "nosync" ? Durability::nosync
                                                 : Durability::in_memory;
  for (const auto& user : users) {
    auto colon = user.find(':');
    if (colon == std::string::npos || colon == 0) refuse("--user wants NAME:PASSWORD");
    s.users.emplace_back(user.substr(0, colon), core::hash_password(user.substr(colon + 1)));
  }
  for (const auto& user : user_hashes) {
    auto colon = user.find(':');
    if (colon == std::string::npos || colon == 0) refuse("--user-hash wants NAME:HASH");
    std::string hash = user.substr(colon + 1);
    if (core::Users::decode_hash(hash).empty())
      refuse(fmt::format("--user-hash for {}: not a rabbit_password_hashing_sha256 hash",
                         user.substr(0, colon)));
    s.users.emplace_back(user.substr(0, colon), hash);
  }
  hide_passwords(argc, argv);
  for (const auto& shovel : shovels) {
    auto space = shovel.find_first_of(" \t");
    if (space == std::string::npos || space == 0) refuse("--shovel wants 'NAME {json}'");
    s.shovels.emplace_back(shovel.substr(0, space), shovel.substr(space + 1));
  }
  if (s.tls.cert_file.empty() != s.tls.key_file.empty())
    refuse("--tls-cert and --tls-key go together");
  if ((s.management_tls || s.prometheus_tls) && s.tls.cert_file.empty())
    refuse("--management-tls and --prometheus-tls need --tls-cert and --tls-key");
  s.amqp.handshake_timeout = std::chrono::milliseconds(handshake_ms);
  s.memory_high_watermark =
      watermark <= 1.0 ? uint64_t(watermark * double(total_memory())) : uint64_t(watermark);
  log::parse_level(level, &s.level);
  return s;
}

}  // namespace warren::tools
