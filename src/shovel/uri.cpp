#include "shovel/uri.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>

#include "common/percent.h"

namespace warren::shovel {

namespace {

Status not_a_uri(std::string_view text, std::string_view why) {
  return Status::error(ReplyCode::precondition_failed,
                       fmt::format("\"{}\" not a valid URI: {}", text, why));
}

template <class T>
bool parse_number(std::string_view s, T& out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

// "a=1&b=2" into the map, decoded.
void parse_query(std::string_view query, std::map<std::string, std::string>& out) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    out[percent_decoded(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : percent_decoded(pair.substr(eq + 1));
  }
}

// host[:port] or [v6]:port
Status parse_host_port(std::string_view text, std::string_view hostport, AmqpUri& uri) {
  std::string_view port;
  if (hostport.starts_with('[')) {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return not_a_uri(text, "unclosed IPv6 address");
    uri.host = std::string(hostport.substr(1, close - 1));
    std::string_view rest = hostport.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return not_a_uri(text, "junk after the IPv6 address");
      port = rest.substr(1);
    }
  } else {
    auto colon = hostport.rfind(':');
    uri.host = percent_decoded(hostport.substr(0, colon));
    if (colon != std::string_view::npos) port = hostport.substr(colon + 1);
  }
  const bool v6 = hostport.starts_with('[');
  for (unsigned char c : uri.host) {
    const bool fits = v6 ? (std::isxdigit(c) || c == ':' || c == '.')
                         : (std::isalnum(c) || c == '-' || c == '.' || c == '_');
    if (!fits) return not_a_uri(text, fmt::format("bad host \"{}\"", uri.host));
  }
  if (!port.empty() && (!parse_number(port, uri.port) || uri.port == 0))
    return not_a_uri(text, fmt::format("bad port \"{}\"", port));
  return {};
}

Status apply_query(std::string_view text, AmqpUri& uri) {
  auto number = [&](const char* key, auto& field) -> Status {
    auto it = uri.query.find(key);
    if (it == uri.query.end()) return {};
    if (!parse_number(std::string_view(it->second), field))
      return not_a_uri(text, fmt::format("{} must be a number", key));
    return {};
  };
  if (Status s = number("heartbeat", uri.heartbeat); !s) return s;
  if (Status s = number("connection_timeout", uri.connection_timeout_ms); !s) return s;
  if (Status s = number("frame_max", uri.frame_max); !s) return s;
  if (uri.frame_max != 0 && uri.frame_max < 4096) return not_a_uri(text, "frame_max below 4096");
  return {};
}

}  // namespace

std::string AmqpUri::redacted() const {
  if (local) return vhost_given ? fmt::format("amqp:///{}", percent_encoded(vhost)) : "amqp://";
  std::string host_part = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return fmt::format("{}://{}:{}/{}", tls ? "amqps" : "amqp", host_part, port,
                     percent_encoded(vhost));
}

Result<AmqpUri> parse_amqp_uri(std::string_view text) {
  AmqpUri uri;
  std::string_view rest = text;
  if (rest.starts_with("amqp://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("amqps://")) {
    rest.remove_prefix(8);
    uri.tls = true;
    uri.port = 5671;
  } else {
    auto colon = rest.find(':');
    return not_a_uri(text,
                     fmt::format("unexpected URI scheme \"{}\"",
                                 colon == std::string_view::npos ? rest : rest.substr(0, colon)));
  }
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    parse_query(rest.substr(q + 1), uri.query);
    rest = rest.substr(0, q);
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = authority.size() < rest.size() ? rest.substr(authority.size() + 1) : "";
  const bool has_path = authority.size() < rest.size();
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    auto colon = userinfo.find(':');
    uri.user = percent_decoded(userinfo.substr(0, colon));
    uri.password =
        colon == std::string_view::npos ? "" : percent_decoded(userinfo.substr(colon + 1));
    authority = authority.substr(at + 1);
  }
  if (path.find('/') != std::string_view::npos)
    return not_a_uri(text, "a vhost with a '/' must be written %2F");
  if (has_path) {
    uri.vhost = percent_decoded(path);
    uri.vhost_given = true;
  }
  if (authority.empty()) {
    if (uri.tls) return not_a_uri(text, "amqps needs a host");
    uri.local = true;
    if (uri.vhost.empty()) {  // "amqp:///": the shovel's own vhost, as "amqp://"
      uri.vhost = "/";
      uri.vhost_given = false;
    }
    return uri;
  }
  if (Status s = parse_host_port(text, authority, uri); !s) return s;
  if (uri.host.empty()) return not_a_uri(text, "no host");
  if (Status s = apply_query(text, uri); !s) return s;
  return uri;
}

}  // namespace warren::shovel
