// Shovel definitions as the management API, definitions files and the config file hand them
// over: the input's first line is parsed as an AMQP URI, the rest as a parameter value. A
// URI that parses must print (redacted) and parse again to the same place; a definition
// that is accepted must write out as JSON that reads back as the same definition.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "shovel/definition.h"
#include "shovel/uri.h"

using warren::shovel::AmqpUri;

static bool same_place(const AmqpUri& a, const AmqpUri& b) {
  return a.local == b.local && a.host == b.host && a.port == b.port && a.vhost == b.vhost;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto newline = in.find('\n');
  std::string_view uri_text = in.substr(0, newline);
  if (auto uri = warren::shovel::parse_amqp_uri(uri_text); uri.ok()) {
    auto again = warren::shovel::parse_amqp_uri(uri->redacted());
    if (!again.ok() || !same_place(*uri, *again)) __builtin_trap();
  }
  if (newline == std::string_view::npos) return 0;
  auto value = nlohmann::json::parse(in.substr(newline + 1), nullptr, false);
  if (value.is_discarded()) return 0;
  auto definition = warren::shovel::definition_from_json("/", "fuzz", value);
  if (!definition.ok()) return 0;
  auto written = warren::shovel::definition_to_json(*definition);
  auto read_back = warren::shovel::definition_from_json("/", "fuzz", written);
  if (!read_back.ok() || warren::shovel::definition_to_json(*read_back) != written)
    __builtin_trap();
  return 0;
}
