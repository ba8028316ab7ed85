#include "observability/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "common/clock.h"
#include "common/time_util.h"
#include "json/json.h"

namespace meterd::log {

namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::atomic<int> g_format{static_cast<int>(Format::kText)};
std::atomic<int> g_fd{2};

// A text value is quoted when it would not read back as one token.
bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

}  // namespace

bool ParseLevel(std::string_view text, Level* level) {
  constexpr Level kLevels[] = {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError};
  for (Level l : kLevels) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

bool ParseFormat(std::string_view text, Format* format) {
  if (text == "text") {
    *format = Format::kText;
  } else if (text == "json") {
    *format = Format::kJson;
  } else {
    return false;
  }
  return true;
}

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

void Configure(Level level, Format format) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
  g_format.store(static_cast<int>(format), std::memory_order_relaxed);
}

void SetOutputFd(int fd) { g_fd.store(fd, std::memory_order_relaxed); }

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

std::string FormatLine(Format format, int64_t now_ms, Level level, std::string_view message,
                       std::initializer_list<Field> fields) {
  std::string line;
  if (format == Format::kJson) {
    line += "{\"time\":";
    json::AppendQuoted(&line, FormatIso8601(now_ms));
    line += ",\"level\":";
    json::AppendQuoted(&line, LevelName(level));
    line += ",\"msg\":";
    json::AppendQuoted(&line, message);
    for (const Field& f : fields) {
      line.push_back(',');
      json::AppendQuoted(&line, f.key);
      line.push_back(':');
      json::AppendQuoted(&line, f.value);
    }
    line += "}\n";
    return line;
  }
  // Text: what meterd printed before there was a log ("meterd: message"), warnings and errors
  // marked, fields as key=value.
  line = "meterd: ";
  if (level == Level::kWarn) line += "WARNING: ";
  if (level == Level::kError) line += "ERROR: ";
  if (level == Level::kDebug) line += "debug: ";
  line += message;
  for (const Field& f : fields) {
    line.push_back(' ');
    line += f.key;
    line.push_back('=');
    if (NeedsQuotes(f.value)) {
      json::AppendQuoted(&line, f.value);
    } else {
      line += f.value;
    }
  }
  line.push_back('\n');
  return line;
}

void Write(Level level, std::string_view message, std::initializer_list<Field> fields) {
  if (!Enabled(level)) return;
  const auto format = static_cast<Format>(g_format.load(std::memory_order_relaxed));
  WriteWhole(g_fd.load(std::memory_order_relaxed),
             FormatLine(format, WallClockMillis(), level, message, fields));
}

void WriteWhole(int fd, std::string_view line) {
  while (!line.empty()) {
    ssize_t n = ::write(fd, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere left to report it
    }
    line.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace meterd::log
