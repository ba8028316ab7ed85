// The server log: one line per event on stderr, as text ("meterd: message key=value", what
// meterd always printed) or JSON ({"time","level","msg",...fields}), below a configurable level.
// Messages and fields must never carry a secret (credential secrets, session tokens, private
// keys, the admin token): callers log ids and outcomes only. The one exception, the admin token
// announced once at first start, is printed by main.cc directly and never through this log.
//
// Thread-safe: each line is written whole with one write(2).
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

namespace meterd::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class Format { kText, kJson };

struct Field {
  std::string_view key;
  std::string value;
};

// "debug", "info", "warn" or "error"; false for anything else.
bool ParseLevel(std::string_view text, Level* level);
// "text" or "json"; false for anything else.
bool ParseFormat(std::string_view text, Format* format);
std::string_view LevelName(Level level);

// Applies to every later line. Default: info, text, stderr (fd 2).
void Configure(Level level, Format format);
// Lines go to `fd` instead of stderr (tests).
void SetOutputFd(int fd);
bool Enabled(Level level);

// One line (the level filter applied).
void Write(Level level, std::string_view message, std::initializer_list<Field> fields = {});
// The line Write would print, without printing it (tests; `now_ms`: the time field).
std::string FormatLine(Format format, int64_t now_ms, Level level, std::string_view message,
                       std::initializer_list<Field> fields);

inline void Debug(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kDebug, m, f);
}
inline void Info(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kInfo, m, f);
}
inline void Warn(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kWarn, m, f);
}
inline void Error(std::string_view m, std::initializer_list<Field> f = {}) {
  Write(Level::kError, m, f);
}

// Writes `line` (which ends with '\n') whole to `fd`, retrying short writes and EINTR.
void WriteWhole(int fd, std::string_view line);

}  // namespace meterd::log
