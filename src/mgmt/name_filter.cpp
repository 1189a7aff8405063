// Compiled with -Wno-maybe-uninitialized under GCC: GCC 12 warns inside libstdc++'s <regex>
// (a known false positive at -O2 with sanitizers), and only this file uses it.
#include "mgmt/name_filter.h"

#include <cctype>
#include <regex>

#include "common/bounded_regex.h"

namespace warren::mgmt {

struct NameFilter::Regex {
  std::regex compiled;
};

std::optional<NameFilter> NameFilter::make(const std::string& pattern, bool regex,
                                           std::string* error) {
  NameFilter filter;
  filter.pattern_ = pattern;
  if (!regex) return filter;
  if (!regex_is_bounded(pattern)) {
    *error = "regular expression too long or with too large a repeat";
    return std::nullopt;
  }
  try {
    filter.regex_ = std::make_shared<const Regex>(Regex{std::regex(pattern)});
  } catch (const std::regex_error&) {
    *error = "invalid regular expression";
    return std::nullopt;
  }
  return filter;
}

bool NameFilter::matches(const std::string& name) const {
  return regex_ ? std::regex_search(name, regex_->compiled)
                : name.find(pattern_) != std::string::npos;
}

}  // namespace warren::mgmt
