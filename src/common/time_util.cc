#include "common/time_util.h"

#include <cstdio>

namespace meterd {

int64_t DaysFromCivil(int year, int month, int day) {
  int64_t y = year - (month <= 2 ? 1 : 0);
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

namespace {
int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
}  // namespace

CivilTime CivilFromMillis(int64_t millis) {
  int64_t days = FloorDiv(millis, kMillisPerDay);
  int64_t rem = millis - days * kMillisPerDay;
  int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  const int y = static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0));
  CivilTime t{y, m, d, 0, 0, 0};
  int64_t secs = rem / 1000;
  t.hour = static_cast<int>(secs / 3600);
  t.minute = static_cast<int>((secs / 60) % 60);
  t.second = static_cast<int>(secs % 60);
  return t;
}

int64_t MillisFromCivil(const CivilTime& t) {
  return DaysFromCivil(t.year, t.month, t.day) * kMillisPerDay + t.hour * kMillisPerHour +
         t.minute * kMillisPerMinute + t.second * kMillisPerSecond;
}

int64_t FloorToHour(int64_t millis) { return FloorDiv(millis, kMillisPerHour) * kMillisPerHour; }

int64_t FloorToDay(int64_t millis) { return FloorDiv(millis, kMillisPerDay) * kMillisPerDay; }

int64_t StartOfMonth(int64_t millis) {
  CivilTime t = CivilFromMillis(millis);
  return DaysFromCivil(t.year, t.month, 1) * kMillisPerDay;
}

namespace {
bool ReadDigits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}
bool Valid(const CivilTime& t) {
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return t.month >= 1 && t.month <= 12 && t.day >= 1 && t.day <= kDays[t.month - 1] &&
         t.hour <= 23 && t.minute <= 59 && t.second <= 60;
}
}  // namespace

std::optional<int64_t> ParseIso8601(std::string_view s) {
  CivilTime t{};
  if (!ReadDigits(s, 0, 4, &t.year) || s.size() < 19 || s[4] != '-' ||
      !ReadDigits(s, 5, 2, &t.month) || s[7] != '-' || !ReadDigits(s, 8, 2, &t.day) ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !ReadDigits(s, 11, 2, &t.hour) ||
      s[13] != ':' || !ReadDigits(s, 14, 2, &t.minute) || s[16] != ':' ||
      !ReadDigits(s, 17, 2, &t.second) || !Valid(t)) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t frac_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t scale = 100;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac_ms += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int64_t offset_ms = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0, om = 0;
    if (!ReadDigits(s, pos + 1, 2, &oh) || pos + 6 > s.size() || s[pos + 3] != ':' ||
        !ReadDigits(s, pos + 4, 2, &om)) {
      return std::nullopt;
    }
    offset_ms = (oh * 60 + om) * kMillisPerMinute * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  return MillisFromCivil(t) + frac_ms - offset_ms;
}

std::optional<int64_t> ParseAmzDate(std::string_view s) {
  CivilTime t{};
  if (s.size() != 16 || !ReadDigits(s, 0, 4, &t.year) || !ReadDigits(s, 4, 2, &t.month) ||
      !ReadDigits(s, 6, 2, &t.day) || s[8] != 'T' || !ReadDigits(s, 9, 2, &t.hour) ||
      !ReadDigits(s, 11, 2, &t.minute) || !ReadDigits(s, 13, 2, &t.second) || s[15] != 'Z' ||
      !Valid(t)) {
    return std::nullopt;
  }
  return MillisFromCivil(t);
}

std::string FormatIso8601(int64_t millis) {
  CivilTime t = CivilFromMillis(millis);
  int64_t ms = millis - FloorDiv(millis, 1000) * 1000;
  char buf[40];
  if (ms == 0) {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", t.year, t.month, t.day,
                  t.hour, t.minute, t.second);
  } else {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.year, t.month, t.day,
                  t.hour, t.minute, t.second, static_cast<int>(ms));
  }
  return buf;
}

std::string FormatAmzDate(int64_t millis) {
  CivilTime t = CivilFromMillis(millis);
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%04d%02d%02dT%02d%02d%02dZ", t.year, t.month, t.day, t.hour,
                t.minute, t.second);
  return buf;
}

}  // namespace meterd
