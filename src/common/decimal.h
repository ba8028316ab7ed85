// Exact decimal arithmetic for money: a signed integer count of 10^-scale units (128 bits), so
// that quantities times prices and their sums are exact. No floating point anywhere.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meterd {

class Decimal {
 public:
  static constexpr int kMaxScale = 18;

  Decimal() = default;
  static Decimal FromInt(int64_t value) { return Decimal(value, 0); }

  // Parses the JSON number grammar ("12", "-0.50", "1.5e-3", "2E2"). The result keeps the
  // scale of the text ("0.50" has scale 2; exponents move it). Nullopt for anything else, for a
  // scale over kMaxScale, or for magnitudes of 10^36 or more.
  static std::optional<Decimal> Parse(std::string_view text);

  // Exact results; nullopt on overflow (magnitude 10^36 or more).
  std::optional<Decimal> Times(int64_t factor) const;
  std::optional<Decimal> Plus(const Decimal& other) const;  // scale: the larger of the two
  // this / divisor (divisor > 0), rounded half away from zero to `scale` digits (>= this scale).
  std::optional<Decimal> DividedRounded(int64_t divisor, int scale) const;

  // Plain decimal text with exactly scale() fraction digits ("1.2300", "-0.5", "12").
  std::string ToString() const;
  int scale() const { return scale_; }
  bool operator==(const Decimal& other) const;  // by value: 1.50 == 1.5

 private:
  Decimal(__int128 units, int scale) : units_(units), scale_(scale) {}
  static std::optional<Decimal> Checked(__int128 units, int scale);
  std::optional<Decimal> Rescaled(int scale) const;  // scale >= scale_

  __int128 units_ = 0;  // value = units_ / 10^scale_
  int scale_ = 0;
};

}  // namespace meterd
