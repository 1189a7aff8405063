#include "core/routing.h"

#include <vector>

namespace warren::core {
namespace {

std::vector<std::string_view> split_words(std::string_view s) {
  std::vector<std::string_view> words;
  size_t start = 0;
  for (;;) {
    size_t dot = s.find('.', start);
    words.push_back(s.substr(start, dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return words;
}

}  // namespace

bool topic_matches(std::string_view pattern, std::string_view routing_key) {
  auto p = split_words(pattern);
  auto k = split_words(routing_key);
  // The empty key has no words at all, so only '#' (or '') can match it.
  if (routing_key.empty()) k.clear();
  if (pattern.empty()) p.clear();
  // reach[j]: the first i pattern words can match the first j key words. Dynamic
  // programming keeps many '#' from going exponential.
  std::vector<char> reach(k.size() + 1, 0), next(k.size() + 1, 0);
  reach[0] = 1;
  for (auto word : p) {
    std::fill(next.begin(), next.end(), 0);
    if (word == "#") {
      bool any = false;
      for (size_t j = 0; j <= k.size(); ++j) {
        any = any || reach[j];
        next[j] = any;
      }
    } else {
      for (size_t j = 1; j <= k.size(); ++j)
        next[j] = reach[j - 1] && (word == "*" || word == k[j - 1]);
    }
    reach.swap(next);
  }
  return reach[k.size()];
}

Status parse_headers_match(const FieldTable& args, HeadersMatch* out) {
  *out = HeadersMatch::all;
  const FieldValue* v = args.find("x-match");
  if (!v) return {};
  const std::string* s = v->as<std::string>();
  if (s && *s == "all")
    *out = HeadersMatch::all;
  else if (s && *s == "any")
    *out = HeadersMatch::any;
  else if (s && *s == "all-with-x")
    *out = HeadersMatch::all_with_x;
  else if (s && *s == "any-with-x")
    *out = HeadersMatch::any_with_x;
  else
    return Status::error(ReplyCode::precondition_failed,
                         "Invalid x-match field value <<\"" + (s ? *s : std::string()) +
                             "\">>; expected all, any, all-with-x, or any-with-x",
                         50, 20);
  return {};
}

bool headers_match(HeadersMatch mode, const FieldTable& args, const FieldTable* headers) {
  bool with_x = mode == HeadersMatch::all_with_x || mode == HeadersMatch::any_with_x;
  bool want_all = mode == HeadersMatch::all || mode == HeadersMatch::all_with_x;
  for (const auto& [key, expected] : args) {
    if (key == "x-match" || (!with_x && key.starts_with("x-"))) continue;
    const FieldValue* actual = headers ? headers->find(key) : nullptr;
    bool hit = actual && (expected.as<Void>() || *actual == expected);
    if (want_all && !hit) return false;
    if (!want_all && hit) return true;
  }
  return want_all;
}

}  // namespace warren::core
