// std::regex compiles repeats by copying and matches by recursion: a pattern that is short
// and repeats little keeps both bounded. Patterns from requests and definitions files are
// checked with this before they are compiled.
#pragma once

#include <cctype>
#include <string_view>

namespace warren {

inline bool regex_is_bounded(std::string_view pattern) {
  if (pattern.size() > 256) return false;
  bool in_repeat = false;
  size_t digits = 0;
  for (char c : pattern) {
    if (c == '{') in_repeat = true;
    if (c == '}') in_repeat = false;
    digits = in_repeat && std::isdigit(static_cast<unsigned char>(c)) ? digits + 1 : 0;
    if (digits > 2) return false;  // {100} and more
  }
  return true;
}

}  // namespace warren
