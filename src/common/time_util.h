// UTC calendar helpers: no time zones, no locale, no libc state (thread-safe).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meterd {

constexpr int64_t kMillisPerSecond = 1000;
constexpr int64_t kMillisPerMinute = 60 * kMillisPerSecond;
constexpr int64_t kMillisPerHour = 60 * kMillisPerMinute;
constexpr int64_t kMillisPerDay = 24 * kMillisPerHour;

struct CivilTime {
  int year, month, day, hour, minute, second;
};

// Days since 1970-01-01 for a proleptic Gregorian date, and back (H. Hinnant's algorithms).
int64_t DaysFromCivil(int year, int month, int day);
CivilTime CivilFromMillis(int64_t millis);
int64_t MillisFromCivil(const CivilTime& t);

// The start of the UTC hour / month containing `millis`.
int64_t FloorToHour(int64_t millis);
int64_t FloorToDay(int64_t millis);  // the start of the UTC day
int64_t StartOfMonth(int64_t millis);

// Parses "2024-01-02T03:04:05Z", with optional fraction ".678" and offset "+01:00" or "Z".
std::optional<int64_t> ParseIso8601(std::string_view text);
// Parses the SigV4 basic format "20240102T030405Z".
std::optional<int64_t> ParseAmzDate(std::string_view text);
// "2024-01-02T03:04:05Z" / "2024-01-02T03:04:05.678Z" when there are milliseconds.
std::string FormatIso8601(int64_t millis);
// "20240102T030405Z".
std::string FormatAmzDate(int64_t millis);

}  // namespace meterd
