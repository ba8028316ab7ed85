// The service model (botocore service-2.json, newest revision) as data, and a validator that
// checks request bodies against it: types, required members, lengths, ranges, patterns, list
// sizes and enums. Generating the checks from the model keeps them current with the model.
//
// A ServiceModel is immutable after Load() and safe to share between threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "json/json.h"

namespace meterd::model {

// One failed constraint, in the words AWS's own validation uses.
struct Violation {
  std::string path;        // "usageRecords.3.member.dimension"
  std::string value;       // rendered value ("null" for a missing member)
  std::string constraint;  // "Member must have length less than or equal to 255"
  bool in_tag = false;     // the violation is inside a Tag / TagList (InvalidTagException)
};

// "1 validation error detected: Value 'x' at 'p' failed to satisfy constraint: c; Value ..."
std::string FormatViolations(const std::vector<Violation>& violations);

// A compiled string pattern. Patterns are ECMAScript regexes with search (not anchored)
// semantics; the common shapes "^[class]*$", "^[class]+$" and "[\s\S]*" are compiled into a
// byte table instead of std::regex, which keeps validation off the profile.
class Pattern {
 public:
  explicit Pattern(const std::string& source);
  bool Matches(std::string_view s) const;
  const std::string& source() const { return source_; }

 private:
  enum class Kind { kAny, kClass, kRegex };
  std::string source_;
  Kind kind_ = Kind::kRegex;
  bool allow_empty_ = true;
  bool table_[256] = {};
  std::optional<std::regex> regex_;
};

struct Shape {
  enum class Type { kStructure, kList, kString, kInteger, kLong, kBoolean, kTimestamp, kOther };
  std::string name;
  Type type = Type::kOther;
  std::optional<int64_t> min, max;
  std::unique_ptr<Pattern> pattern;
  std::vector<std::string> enum_values;
  // Structures: member name -> shape name; required member names.
  std::vector<std::pair<std::string, std::string>> members;
  std::vector<std::string> required;
  std::string list_member;  // lists: member shape name
};

class ServiceModel {
 public:
  static Result<std::unique_ptr<ServiceModel>> Load(std::string_view model_json);
  // The model compiled into the binary (model/service-2.json), loaded on first use.
  static const ServiceModel& Builtin();

  const std::string& target_prefix() const { return target_prefix_; }
  const std::string& signing_name() const { return signing_name_; }
  bool HasOperation(std::string_view name) const;
  // Appends every violation of `input` against the input shape of `operation`.
  void ValidateInput(std::string_view operation, const json::Value& input,
                     std::vector<Violation>* out) const;
  const Shape* FindShape(std::string_view name) const;

 private:
  void Validate(const Shape& shape, const json::Value& value, const std::string& path, bool in_tag,
                std::vector<Violation>* out) const;

  std::string target_prefix_;
  std::string signing_name_;
  std::map<std::string, std::string, std::less<>> operation_inputs_;  // op -> input shape
  std::map<std::string, Shape, std::less<>> shapes_;
};

// The embedded model text (generated at build time from model/service-2.json).
extern const char* const kServiceModelJson;

}  // namespace meterd::model
