// The management API's `name` filter: a substring, or with use_regex a regular expression
// (bounded in length and repeats, so that no request can make matching explode).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace warren::mgmt {

class NameFilter {
 public:
  // nullopt, with *error set, when the pattern is refused.
  static std::optional<NameFilter> make(const std::string& pattern, bool regex, std::string* error);
  bool matches(const std::string& name) const;

 private:
  struct Regex;
  std::string pattern_;
  std::shared_ptr<const Regex> regex_;  // null: a substring
};

}  // namespace warren::mgmt
