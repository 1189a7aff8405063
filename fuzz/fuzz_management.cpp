// The management API from request to handler: a method line, a path line (with its query),
// then a JSON body, all arbitrary, against an in-memory broker. Whatever arrives, the API
// must answer with a status (never crash, never throw) and leave the broker usable.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "fuzz_broker.h"
#include "mgmt/api.h"

namespace {


// "key=value&key=value" into the request's query (values as they come: the fuzzer decides).
void add_query(warren::mgmt::Request& r, std::string_view q) {
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    r.query.emplace(std::string(pair.substr(0, eq)),
                    eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1)));
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto& broker = warren::fuzz::FuzzBroker::instance();
  static auto& api = *new warren::mgmt::Api(*broker.engine);
  std::string_view in(reinterpret_cast<const char*>(data), size);
  warren::mgmt::Request r;
  auto line = [&in] {
    auto nl = in.find('\n');
    auto first = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    return first;
  };
  r.method = std::string(line());
  auto target = line();
  auto question = target.find('?');
  r.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) add_query(r, target.substr(question + 1));
  r.body = std::string(in);
  r.user = "guest";
  auto response = api.handle(r);
  if (auto finish = std::move(response.finish))
    finish(response, [](const std::function<bool()>& step) {
      while (!step()) {
      }
      return true;
    });
  if (response.status < 200 || response.status > 599) __builtin_trap();
  // A list is written item by item as text: it must still be one JSON document.
  if (response.content_type == "application/json" && !nlohmann::json::accept(response.text))
    __builtin_trap();
  (void)response.body.dump(-1, ' ', false,
                           nlohmann::json::error_handler_t::replace);  // as the server writes it
  broker.io.restart();
  broker.io.poll();  // commits and whatever they release
  return 0;
}
