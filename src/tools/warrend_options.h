// warrend's settings: command-line flags and the config file (CLI11), with their defaults.
#pragma once

#include <string>
#include <vector>

#include "amqp/server.h"
#include "common/log.h"
#include "warren/options.h"

namespace warren::tools {

struct Settings {
  amqp::ListenOptions listen;
  BrokerOptions broker;
  amqp::ServerConfig amqp;
  std::vector<std::string> vhosts;
  // --user / --user-hash: name and password hash (rabbit_password_hashing_sha256). Each is
  // an administrator on every vhost and replaces the default guest.
  std::vector<std::pair<std::string, std::string>> users;
  log::Level level = log::Level::info;
  uint64_t memory_high_watermark = 0;  // bytes; 0: not watched
  uint16_t management_port = 15672;    // the management HTTP API; 0: off
  std::string management_bind = "127.0.0.1";
  uint16_t prometheus_port = 15692;  // Prometheus metrics; 0: off
  std::string prometheus_bind = "127.0.0.1";
  std::string definitions;  // a definitions.json to apply at boot
  amqp::TlsOptions tls;     // with a certificate, an AMQPS listener on tls_port
  uint16_t tls_port = 5671;
  bool management_tls = false;  // the management API over HTTPS, with the TLS certificate
  bool prometheus_tls = false;
  // Shovels in vhost "/": "NAME {json}", the JSON being RabbitMQ's shovel parameter value.
  std::vector<std::pair<std::string, std::string>> shovels;
  // Maintenance modes instead of serving.
  bool check = false;        // report every damaged record of the data directory
  std::string salvage_from;  // copy every readable message of that directory into data-dir
};

// Parses argv (and the config file it names). On --help prints the help and exits 0; on a
// bad flag or setting prints what is wrong (never a password) and exits 2.
Settings parse_settings(int argc, char** argv);

}  // namespace warren::tools
