// A small, strict JSON DOM for untrusted request bodies and configuration files.
//
// Why not a library: the request path needs exact control over what is refused (depth, repeated
// member names, invalid UTF-8) and over numbers (kept as their original text, so timestamps and
// quantities are parsed exactly, never through a double).
//
// Values are immutable after parsing and safe to read from several threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace meterd::json {

enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

class Value {
 public:
  using Member = std::pair<std::string, Value>;

  Value() = default;
  static Value Null() { return Value(); }
  static Value Bool(bool b);
  static Value Number(std::string text);  // `text` must be a valid JSON number
  static Value String(std::string s);
  static Value Array(std::vector<Value> items);
  static Value Object(std::vector<Member> members);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool() const { return bool_; }
  // The string's decoded UTF-8 for kString; the number's original text for kNumber.
  const std::string& text() const { return text_; }
  const std::vector<Value>& items() const { return items_; }
  const std::vector<Member>& members() const { return members_; }

  // Member lookup for objects (linear: request objects have a handful of members).
  const Value* Find(std::string_view key) const;

  // Integer value of a number with no fraction or exponent that fits int64.
  bool GetInt64(int64_t* out) const;

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  std::string text_;
  std::vector<Value> items_;
  std::vector<Member> members_;
};

struct ParseOptions {
  int max_depth = 64;
};

// Parses one JSON text (RFC 8259). Refuses: syntax errors, trailing data, nesting deeper than
// max_depth, repeated member names in one object, invalid UTF-8, lone surrogates. Errors are
// kSerialization with a message naming the byte offset.
Result<Value> Parse(std::string_view text, const ParseOptions& options = ParseOptions());

// Appends `s` as a JSON string literal (with quotes) to `out`.
void AppendQuoted(std::string* out, std::string_view s);

// Serializes a value compactly.
std::string Serialize(const Value& v);
void AppendSerialized(std::string* out, const Value& v);

// Exact decimal number text -> value scaled by 10^scale_digits, truncated toward negative
// infinity; saturates at INT64 bounds (sets *saturated). Accepts the JSON number grammar
// including fraction and exponent: ("1.704164645678E9", 3) -> 1704164645678.
int64_t ScaledDecimal(std::string_view number_text, int scale_digits, bool* saturated);

}  // namespace meterd::json
