#include "json/json.h"

#include <cstring>
#include <limits>

namespace meterd::json {

Value Value::Bool(bool b) {
  Value v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}
Value Value::Number(std::string text) {
  Value v;
  v.type_ = Type::kNumber;
  v.text_ = std::move(text);
  return v;
}
Value Value::String(std::string s) {
  Value v;
  v.type_ = Type::kString;
  v.text_ = std::move(s);
  return v;
}
Value Value::Array(std::vector<Value> items) {
  Value v;
  v.type_ = Type::kArray;
  v.items_ = std::move(items);
  return v;
}
Value Value::Object(std::vector<Member> members) {
  Value v;
  v.type_ = Type::kObject;
  v.members_ = std::move(members);
  return v;
}

const Value* Value::Find(std::string_view key) const {
  for (const auto& m : members_) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

bool Value::GetInt64(int64_t* out) const {
  if (type_ != Type::kNumber) return false;
  if (text_.find_first_of(".eE") != std::string::npos) return false;
  bool saturated = false;
  int64_t v = ScaledDecimal(text_, 0, &saturated);
  if (saturated) return false;
  *out = v;
  return true;
}

namespace {

class Parser {
 public:
  Parser(std::string_view text, const ParseOptions& options) : s_(text), options_(options) {}

  Result<Value> ParseDocument() {
    SkipSpace();
    Value v;
    if (!ParseValue(&v, 0)) return Error();
    SkipSpace();
    if (pos_ != s_.size()) {
      error_ = "unexpected data after the JSON value";
      return Error();
    }
    return v;
  }

 private:
  Status Error() const {
    return Status(StatusCode::kSerialization,
                  "Invalid JSON at offset " + std::to_string(pos_) + ": " + error_);
  }
  bool Fail(const char* why) {
    error_ = why;
    return false;
  }
  void SkipSpace() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }
  bool Consume(std::string_view lit) {
    if (s_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  bool ParseValue(Value* out, int depth) {
    if (pos_ >= s_.size()) return Fail("unexpected end of input");
    char c = s_[pos_];
    switch (c) {
      case '{':
        return ParseObject(out, depth + 1);
      case '[':
        return ParseArray(out, depth + 1);
      case '"': {
        std::string str;
        if (!ParseString(&str)) return false;
        *out = Value::String(std::move(str));
        return true;
      }
      case 't':
        if (!Consume("true")) return Fail("invalid literal");
        *out = Value::Bool(true);
        return true;
      case 'f':
        if (!Consume("false")) return Fail("invalid literal");
        *out = Value::Bool(false);
        return true;
      case 'n':
        if (!Consume("null")) return Fail("invalid literal");
        *out = Value::Null();
        return true;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(out);
        return Fail("unexpected character");
    }
  }

  bool ParseObject(Value* out, int depth) {
    if (depth > options_.max_depth) return Fail("nesting too deep");
    ++pos_;  // '{'
    std::vector<Value::Member> members;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      *out = Value::Object(std::move(members));
      return true;
    }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Fail("expected a member name");
      std::string key;
      if (!ParseString(&key)) return false;
      for (const auto& m : members) {
        if (m.first == key) return Fail("repeated member name");
      }
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Fail("expected ':'");
      ++pos_;
      SkipSpace();
      Value v;
      if (!ParseValue(&v, depth)) return false;
      members.emplace_back(std::move(key), std::move(v));
      SkipSpace();
      if (pos_ >= s_.size()) return Fail("unexpected end of input");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        *out = Value::Object(std::move(members));
        return true;
      }
      return Fail("expected ',' or '}'");
    }
  }

  bool ParseArray(Value* out, int depth) {
    if (depth > options_.max_depth) return Fail("nesting too deep");
    ++pos_;  // '['
    std::vector<Value> items;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      *out = Value::Array(std::move(items));
      return true;
    }
    while (true) {
      SkipSpace();
      Value v;
      if (!ParseValue(&v, depth)) return false;
      items.push_back(std::move(v));
      SkipSpace();
      if (pos_ >= s_.size()) return Fail("unexpected end of input");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        *out = Value::Array(std::move(items));
        return true;
      }
      return Fail("expected ',' or ']'");
    }
  }

  bool ParseNumber(Value* out) {
    size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size()) return Fail("invalid number");
    if (s_[pos_] == '0') {
      ++pos_;
    } else if (s_[pos_] >= '1' && s_[pos_] <= '9') {
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    } else {
      return Fail("invalid number");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      size_t digits = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == digits) return Fail("invalid number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      size_t digits = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == digits) return Fail("invalid number");
    }
    *out = Value::Number(std::string(s_.substr(start, pos_ - start)));
    return true;
  }

  static int HexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool ReadHex4(uint32_t* out) {
    if (pos_ + 4 > s_.size()) return Fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int d = HexDigit(s_[pos_ + i]);
      if (d < 0) return Fail("invalid \\u escape");
      v = (v << 4) | static_cast<uint32_t>(d);
    }
    pos_ += 4;
    *out = v;
    return true;
  }
  static void AppendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  // Validates one UTF-8 sequence starting at pos_ and copies it.
  bool CopyUtf8(std::string* out) {
    auto b0 = static_cast<unsigned char>(s_[pos_]);
    int len;
    uint32_t cp;
    if (b0 < 0x80) {
      out->push_back(static_cast<char>(b0));
      ++pos_;
      return true;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2;
      cp = b0 & 0x1F;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3;
      cp = b0 & 0x0F;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4;
      cp = b0 & 0x07;
    } else {
      return Fail("invalid UTF-8");
    }
    if (pos_ + len > s_.size()) return Fail("invalid UTF-8");
    for (int i = 1; i < len; ++i) {
      auto b = static_cast<unsigned char>(s_[pos_ + i]);
      if ((b & 0xC0) != 0x80) return Fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return Fail("invalid UTF-8");
    }
    out->append(s_.data() + pos_, len);
    pos_ += len;
    return true;
  }

  bool ParseString(std::string* out) {
    ++pos_;  // opening quote
    while (true) {
      if (pos_ >= s_.size()) return Fail("unterminated string");
      char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return Fail("control character in string");
      if (c != '\\') {
        // Fast path for runs of plain ASCII.
        size_t run = pos_;
        while (run < s_.size()) {
          auto u = static_cast<unsigned char>(s_[run]);
          if (u == '"' || u == '\\' || u < 0x20 || u >= 0x80) break;
          ++run;
        }
        if (run > pos_) {
          out->append(s_.data() + pos_, run - pos_);
          pos_ = run;
          continue;
        }
        if (!CopyUtf8(out)) return false;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) return Fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!ReadHex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (!Consume("\\u") || !ReadHex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) {
              return Fail("unpaired surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return Fail("unpaired surrogate");
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Fail("invalid escape");
      }
    }
  }

  std::string_view s_;
  const ParseOptions& options_;
  size_t pos_ = 0;
  const char* error_ = "";
};

}  // namespace

Result<Value> Parse(std::string_view text, const ParseOptions& options) {
  return Parser(text, options).ParseDocument();
}

void AppendQuoted(std::string* out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (u < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[u >> 4]);
          out->push_back(kHex[u & 0xf]);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendSerialized(std::string* out, const Value& v) {
  switch (v.type()) {
    case Type::kNull:
      out->append("null");
      break;
    case Type::kBool:
      out->append(v.as_bool() ? "true" : "false");
      break;
    case Type::kNumber:
      out->append(v.text());
      break;
    case Type::kString:
      AppendQuoted(out, v.text());
      break;
    case Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const auto& item : v.items()) {
        if (!first) out->push_back(',');
        first = false;
        AppendSerialized(out, item);
      }
      out->push_back(']');
      break;
    }
    case Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : v.members()) {
        if (!first) out->push_back(',');
        first = false;
        AppendQuoted(out, key);
        out->push_back(':');
        AppendSerialized(out, value);
      }
      out->push_back('}');
      break;
    }
  }
}

std::string Serialize(const Value& v) {
  std::string out;
  AppendSerialized(&out, v);
  return out;
}

int64_t ScaledDecimal(std::string_view s, int scale_digits, bool* saturated) {
  *saturated = false;
  size_t pos = 0;
  bool negative = false;
  if (pos < s.size() && s[pos] == '-') {
    negative = true;
    ++pos;
  }
  // Collect the significant digits and the position of the decimal point.
  std::string digits;
  int64_t point = 0;  // digits before the decimal point
  bool seen_point = false;
  for (; pos < s.size(); ++pos) {
    char c = s[pos];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
      if (!seen_point) ++point;
    } else if (c == '.') {
      seen_point = true;
    } else {
      break;
    }
  }
  int64_t exponent = 0;
  if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
    ++pos;
    bool exp_negative = false;
    if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) exp_negative = s[pos++] == '-';
    for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos) {
      if (exponent < 100000) exponent = exponent * 10 + (s[pos] - '0');
    }
    if (exp_negative) exponent = -exponent;
  }
  // The value is 0.digits * 10^(point + exponent); we want floor(value * 10^scale).
  int64_t int_len = point + exponent + scale_digits;  // digits that land left of the point
  // Strip leading zeros so that the length test below is about significant digits.
  size_t first_nonzero = digits.find_first_not_of('0');
  if (first_nonzero == std::string::npos) return 0;
  int_len -= static_cast<int64_t>(first_nonzero);
  digits.erase(0, first_nonzero);
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  if (int_len > 19) {
    *saturated = true;
    return negative ? std::numeric_limits<int64_t>::min() : kMax;
  }
  unsigned __int128 acc = 0;
  bool fraction_nonzero = false;
  for (int64_t i = 0; i < static_cast<int64_t>(digits.size()); ++i) {
    if (i < int_len) {
      acc = acc * 10 + static_cast<unsigned>(digits[i] - '0');
    } else if (digits[i] != '0') {
      fraction_nonzero = true;
    }
  }
  for (int64_t i = static_cast<int64_t>(digits.size()); i < int_len; ++i) acc *= 10;
  if (int_len <= 0) acc = 0;
  if (negative && fraction_nonzero) acc += 1;  // floor toward negative infinity
  const auto limit = static_cast<unsigned __int128>(kMax) + (negative ? 1 : 0);
  if (acc > limit) {
    *saturated = true;
    return negative ? std::numeric_limits<int64_t>::min() : kMax;
  }
  if (negative) return static_cast<int64_t>(-static_cast<__int128>(acc));
  return static_cast<int64_t>(acc);
}

}  // namespace meterd::json
