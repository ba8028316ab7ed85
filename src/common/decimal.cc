#include "common/decimal.h"

#include <algorithm>

namespace meterd {

namespace {

constexpr __int128 Pow10(int n) {
  __int128 p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

constexpr __int128 kLimit = Pow10(36);

__int128 Abs(__int128 v) { return v < 0 ? -v : v; }

}  // namespace

std::optional<Decimal> Decimal::Checked(__int128 units, int scale) {
  if (Abs(units) >= kLimit || scale < 0 || scale > kMaxScale) return std::nullopt;
  return Decimal(units, scale);
}

std::optional<Decimal> Decimal::Parse(std::string_view s) {
  size_t pos = 0;
  bool negative = false;
  if (pos < s.size() && s[pos] == '-') {
    negative = true;
    ++pos;
  }
  __int128 units = 0;
  int digits = 0;    // significant digits taken (bounded to keep units in range)
  int fraction = 0;  // digits after the point
  size_t int_start = pos;
  while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    if (++digits > 37) return std::nullopt;
    units = units * 10 + (s[pos] - '0');
    ++pos;
  }
  size_t int_digits = pos - int_start;
  if (int_digits == 0 || (int_digits > 1 && s[int_start] == '0')) return std::nullopt;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t frac_start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (++digits > 37) return std::nullopt;
      units = units * 10 + (s[pos] - '0');
      ++fraction;
      ++pos;
    }
    if (pos == frac_start) return std::nullopt;
  }
  int exponent = 0;
  if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
    ++pos;
    bool exp_negative = false;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) exp_negative = s[pos++] == '-';
    size_t exp_start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      exponent = exponent * 10 + (s[pos] - '0');
      if (exponent > 100) return std::nullopt;
      ++pos;
    }
    if (pos == exp_start) return std::nullopt;
    if (exp_negative) exponent = -exponent;
  }
  if (pos != s.size()) return std::nullopt;
  int scale = fraction - exponent;
  if (scale < 0) {
    if (scale < -37) return std::nullopt;
    __int128 factor = Pow10(-scale);
    if (units != 0 && units > (kLimit - 1) / factor) return std::nullopt;
    units *= factor;
    scale = 0;
  }
  return Checked(negative ? -units : units, scale);
}

std::optional<Decimal> Decimal::Rescaled(int scale) const {
  if (scale < scale_ || scale > kMaxScale) return std::nullopt;
  __int128 factor = Pow10(scale - scale_);
  if (units_ != 0 && Abs(units_) > (kLimit - 1) / factor) return std::nullopt;
  return Decimal(units_ * factor, scale);
}

std::optional<Decimal> Decimal::Times(int64_t factor) const {
  __int128 f = factor;
  if (units_ != 0 && f != 0 && Abs(f) > (kLimit - 1) / Abs(units_)) return std::nullopt;
  return Checked(units_ * f, scale_);
}

std::optional<Decimal> Decimal::Plus(const Decimal& other) const {
  int scale = std::max(scale_, other.scale_);
  auto a = Rescaled(scale);
  auto b = other.Rescaled(scale);
  if (!a || !b) return std::nullopt;
  return Checked(a->units_ + b->units_, scale);  // each < 10^36: the sum fits in 128 bits
}

std::optional<Decimal> Decimal::DividedRounded(int64_t divisor, int scale) const {
  if (divisor <= 0) return std::nullopt;
  auto widened = Rescaled(scale);
  if (!widened) return std::nullopt;
  __int128 d = divisor;
  __int128 q = Abs(widened->units_) / d;
  __int128 r = Abs(widened->units_) % d;
  if (r * 2 >= d) ++q;
  return Checked(widened->units_ < 0 ? -q : q, scale);
}

std::string Decimal::ToString() const {
  __int128 v = Abs(units_);
  std::string digits;
  do {
    digits.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  } while (v != 0);
  while (static_cast<int>(digits.size()) <= scale_) digits.push_back('0');
  std::reverse(digits.begin(), digits.end());
  std::string out = units_ < 0 ? "-" : "";
  out.append(digits, 0, digits.size() - static_cast<size_t>(scale_));
  if (scale_ > 0) {
    out.push_back('.');
    out.append(digits, digits.size() - static_cast<size_t>(scale_), std::string::npos);
  }
  return out;
}

bool Decimal::operator==(const Decimal& other) const {
  int scale = std::max(scale_, other.scale_);
  auto a = Rescaled(scale);
  auto b = other.Rescaled(scale);
  return a && b && a->units_ == b->units_;
}

}  // namespace meterd
