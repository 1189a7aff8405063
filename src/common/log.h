// Leveled logging to stderr through fmt.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <string_view>

namespace warren::log {

enum class Level { debug, info, warning, error, none };
inline Level& threshold() {
  static Level level = Level::info;
  return level;
}
template <class... Args>
void write(Level level, fmt::format_string<Args...> format, Args&&... args) {
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
  if (level < threshold()) return;
  fmt::print(stderr, "[{}] {}\n", kNames[int(level)], fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... a) { write(Level::info, f, std::forward<Args>(a)...); }
template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) { write(Level::debug, f, std::forward<Args>(a)...); }
template <class... Args>
void warning(fmt::format_string<Args...> f, Args&&... a) { write(Level::warning, f, std::forward<Args>(a)...); }
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... a) { write(Level::error, f, std::forward<Args>(a)...); }

inline bool parse_level(std::string_view name, Level* out) {
  constexpr std::pair<std::string_view, Level> kLevels[] = {
      {"debug", Level::debug}, {"info", Level::info}, {"warning", Level::warning},
      {"error", Level::error}, {"none", Level::none}};
  for (auto [n, l] : kLevels)
    if (n == name) {
      *out = l;
      return true;
    }
  return false;
}

}  // namespace warren::log
