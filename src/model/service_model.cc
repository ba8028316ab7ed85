#include "model/service_model.h"

#include <cctype>

namespace meterd::model {

namespace {

// Number of Unicode code points in valid UTF-8 (AWS lengths count characters, not bytes).
int64_t CodePointCount(std::string_view s) {
  int64_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string LowerFirst(std::string_view name) {
  std::string out(name);
  if (!out.empty()) out[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[0])));
  return out;
}

std::string Render(const json::Value& v) {
  switch (v.type()) {
    case json::Type::kNull:
      return "null";
    case json::Type::kString: {
      // Long values are cut so that an error message never echoes a whole body back.
      constexpr size_t kMaxEcho = 256;
      if (v.text().size() <= kMaxEcho) return v.text();
      return v.text().substr(0, kMaxEcho) + "...";
    }
    // A list is rendered as its size: the constraint on a list is always about its length.
    case json::Type::kArray:
      return std::to_string(v.items().size());
    case json::Type::kObject:
      return "{...}";
    case json::Type::kBool:
      return v.as_bool() ? "true" : "false";
    case json::Type::kNumber:
      return v.text();
  }
  return "";
}

// Parses the body of a bracket class "[...]" into a byte table. Returns false for anything
// this fast path does not understand (the caller falls back to std::regex).
bool ParseClass(std::string_view body, bool table[256]) {
  size_t i = 0;
  auto next_char = [&](unsigned char* out) -> bool {
    if (i >= body.size()) return false;
    char c = body[i++];
    if (c == '\\') {
      if (i >= body.size()) return false;
      char e = body[i++];
      if (std::isalnum(static_cast<unsigned char>(e))) return false;  // \s, \d, ... not here
      *out = static_cast<unsigned char>(e);
      return true;
    }
    *out = static_cast<unsigned char>(c);
    return true;
  };
  while (i < body.size()) {
    unsigned char lo;
    if (!next_char(&lo)) return false;
    if (i + 1 < body.size() && body[i] == '-') {
      ++i;
      unsigned char hi;
      if (!next_char(&hi) || hi < lo) return false;
      for (unsigned c = lo; c <= hi; ++c) table[c] = true;
    } else {
      table[lo] = true;
    }
  }
  return true;
}

}  // namespace

Pattern::Pattern(const std::string& source) : source_(source) {
  if (source == "[\\s\\S]*" || source == "[\\s\\S]+") {
    kind_ = Kind::kAny;
    allow_empty_ = source.back() == '*';
    return;
  }
  // "^[class]*$" or "^[class]+$"
  if (source.size() > 5 && source.front() == '^' && source[1] == '[' && source.back() == '$') {
    char quant = source[source.size() - 2];
    std::string_view body(source);
    body = body.substr(2, body.size() - 5);
    if ((quant == '*' || quant == '+') && source[source.size() - 3] == ']' && !body.empty() &&
        body.find(']') == std::string_view::npos && body[0] != '^' && ParseClass(body, table_)) {
      kind_ = Kind::kClass;
      allow_empty_ = quant == '*';
      return;
    }
  }
  kind_ = Kind::kRegex;
  regex_.emplace(source, std::regex::ECMAScript | std::regex::optimize);
}

bool Pattern::Matches(std::string_view s) const {
  switch (kind_) {
    case Kind::kAny:
      return allow_empty_ || !s.empty();
    case Kind::kClass:
      if (s.empty()) return allow_empty_;
      for (char c : s) {
        if (!table_[static_cast<unsigned char>(c)]) return false;
      }
      return true;
    case Kind::kRegex:
      return std::regex_search(s.begin(), s.end(), *regex_);
  }
  return false;
}

std::string FormatViolations(const std::vector<Violation>& violations) {
  std::string out =
      std::to_string(violations.size()) +
      (violations.size() == 1 ? " validation error detected: " : " validation errors detected: ");
  bool first = true;
  for (const auto& v : violations) {
    if (!first) out += "; ";
    first = false;
    if (v.value == "null") {
      out += "Value null";
    } else {
      out += "Value '" + v.value + "'";
    }
    out += " at '" + v.path + "' failed to satisfy constraint: " + v.constraint;
  }
  return out;
}

Result<std::unique_ptr<ServiceModel>> ServiceModel::Load(std::string_view model_json) {
  auto parsed = json::Parse(model_json, json::ParseOptions{.max_depth = 32});
  if (!parsed.ok()) return Status(StatusCode::kCorruption, "model: " + parsed.status().message());
  const json::Value& root = *parsed;
  auto model = std::make_unique<ServiceModel>();
  const json::Value* metadata = root.Find("metadata");
  const json::Value* operations = root.Find("operations");
  const json::Value* shapes = root.Find("shapes");
  if (!metadata || !operations || !shapes || !shapes->is_object() || !operations->is_object()) {
    return Status(StatusCode::kCorruption, "model: missing metadata, operations or shapes");
  }
  if (const auto* p = metadata->Find("targetPrefix")) model->target_prefix_ = p->text();
  if (const auto* p = metadata->Find("signingName")) model->signing_name_ = p->text();
  for (const auto& [name, op] : operations->members()) {
    const json::Value* input = op.Find("input");
    const json::Value* shape = input ? input->Find("shape") : nullptr;
    model->operation_inputs_[name] = shape ? shape->text() : "";
  }
  for (const auto& [name, def] : shapes->members()) {
    Shape shape;
    shape.name = name;
    const json::Value* type = def.Find("type");
    static const std::pair<const char*, Shape::Type> kTypes[] = {
        {"structure", Shape::Type::kStructure}, {"list", Shape::Type::kList},
        {"string", Shape::Type::kString},       {"integer", Shape::Type::kInteger},
        {"long", Shape::Type::kLong},           {"boolean", Shape::Type::kBoolean},
        {"timestamp", Shape::Type::kTimestamp}};
    for (const auto& [type_name, shape_type] : kTypes) {
      if (type != nullptr && type->text() == type_name) shape.type = shape_type;
    }
    int64_t n;
    if (const auto* v = def.Find("min"); v && v->GetInt64(&n)) shape.min = n;
    if (const auto* v = def.Find("max"); v && v->GetInt64(&n)) shape.max = n;
    if (const auto* v = def.Find("pattern"); v && v->is_string()) {
      shape.pattern = std::make_unique<Pattern>(v->text());
    }
    if (const auto* v = def.Find("enum"); v && v->is_array()) {
      for (const auto& e : v->items()) shape.enum_values.push_back(e.text());
    }
    if (const auto* v = def.Find("members"); v && v->is_object()) {
      for (const auto& [member, ref] : v->members()) {
        const json::Value* s = ref.Find("shape");
        shape.members.emplace_back(member, s ? s->text() : "");
      }
    }
    if (const auto* v = def.Find("required"); v && v->is_array()) {
      for (const auto& r : v->items()) shape.required.push_back(r.text());
    }
    if (const auto* v = def.Find("member")) {
      if (const auto* s = v->Find("shape")) shape.list_member = s->text();
    }
    model->shapes_.emplace(name, std::move(shape));
  }
  return model;
}

const ServiceModel& ServiceModel::Builtin() {
  static const ServiceModel* model = [] {
    auto loaded = Load(kServiceModelJson);
    // The embedded model is part of the binary; failing to load it is a build defect.
    if (!loaded.ok()) std::abort();
    return std::move(loaded).value().release();
  }();
  return *model;
}

bool ServiceModel::HasOperation(std::string_view name) const {
  return operation_inputs_.find(name) != operation_inputs_.end();
}

const Shape* ServiceModel::FindShape(std::string_view name) const {
  auto it = shapes_.find(name);
  return it == shapes_.end() ? nullptr : &it->second;
}

void ServiceModel::ValidateInput(std::string_view operation, const json::Value& input,
                                 std::vector<Violation>* out) const {
  auto it = operation_inputs_.find(operation);
  if (it == operation_inputs_.end()) return;
  const Shape* shape = FindShape(it->second);
  if (shape == nullptr) return;
  Validate(*shape, input, "", false, out);
}

void ServiceModel::Validate(const Shape& shape, const json::Value& value, const std::string& path,
                            bool in_tag, std::vector<Violation>* out) const {
  in_tag = in_tag || shape.name == "Tag" || shape.name == "TagList";
  // Only a tag key/value's length or pattern and the size cap of a tag list are "invalid tag"
  // conditions (InvalidTagException); anything else inside tags is a plain validation error.
  auto violate = [&](std::string constraint, bool tag_rule = false) {
    out->push_back(Violation{path, Render(value), std::move(constraint), in_tag && tag_rule});
  };
  switch (shape.type) {
    case Shape::Type::kStructure: {
      if (!value.is_object()) return violate("Member must be a structure");
      for (const auto& [member, shape_name] : shape.members) {
        const json::Value* v = value.Find(member);
        std::string member_path =
            path.empty() ? LowerFirst(member) : path + "." + LowerFirst(member);
        bool required = false;
        for (const auto& r : shape.required) required = required || r == member;
        if (v == nullptr || v->is_null()) {
          if (required) {
            out->push_back(Violation{member_path, "null", "Member must not be null", false});
          }
          continue;
        }
        const Shape* member_shape = FindShape(shape_name);
        // Members that Smithy gave a default of "" (min length 0) treat "" as absent.
        if (required && member_shape != nullptr && v->is_string() && v->text().empty() &&
            member_shape->type == Shape::Type::kString && member_shape->min.value_or(0) == 0) {
          out->push_back(Violation{member_path, "null", "Member must not be null", false});
          continue;
        }
        if (member_shape != nullptr) Validate(*member_shape, *v, member_path, in_tag, out);
      }
      return;
    }
    case Shape::Type::kList: {
      if (!value.is_array()) return violate("Member must be a list");
      auto n = static_cast<int64_t>(value.items().size());
      if (shape.min && n < *shape.min) {
        violate("Member must have length greater than or equal to " + std::to_string(*shape.min));
      }
      if (shape.max && n > *shape.max) {
        violate("Member must have length less than or equal to " + std::to_string(*shape.max),
                true);
      }
      const Shape* member = FindShape(shape.list_member);
      if (member == nullptr) return;
      int64_t index = 1;
      for (const auto& item : value.items()) {
        std::string item_path = path + "." + std::to_string(index++) + ".member";
        if (item.is_null()) {
          out->push_back(Violation{item_path, "null", "Member must not be null", false});
          continue;
        }
        Validate(*member, item, item_path, in_tag, out);
      }
      return;
    }
    case Shape::Type::kString: {
      if (!value.is_string()) return violate("Member must be a string");
      const std::string& s = value.text();
      int64_t len = CodePointCount(s);
      if (shape.min && len < *shape.min) {
        violate("Member must have length greater than or equal to " + std::to_string(*shape.min),
                true);
      }
      if (shape.max && len > *shape.max) {
        violate("Member must have length less than or equal to " + std::to_string(*shape.max),
                true);
      }
      if (shape.pattern && !shape.pattern->Matches(s)) {
        violate("Member must satisfy regular expression pattern: " + shape.pattern->source(), true);
      }
      if (!shape.enum_values.empty()) {
        bool found = false;
        for (const auto& e : shape.enum_values) found = found || e == s;
        if (!found) {
          std::string set;
          for (const auto& e : shape.enum_values) set += (set.empty() ? "" : ", ") + e;
          violate("Member must satisfy enum value set: [" + set + "]");
        }
      }
      return;
    }
    case Shape::Type::kInteger:
    case Shape::Type::kLong: {
      if (!value.is_number() || value.text().find_first_of(".eE") != std::string::npos) {
        return violate("Member must be an integer");
      }
      bool saturated = false;
      int64_t n = json::ScaledDecimal(value.text(), 0, &saturated);
      int64_t type_max = shape.type == Shape::Type::kInteger ? 2147483647 : INT64_MAX;
      int64_t type_min = shape.type == Shape::Type::kInteger ? -2147483648LL : INT64_MIN;
      if (shape.min && n < *shape.min) {
        violate("Member must have value greater than or equal to " + std::to_string(*shape.min));
      } else if (n < type_min) {
        violate("Member must have value greater than or equal to " + std::to_string(type_min));
      }
      if (shape.max && n > *shape.max) {
        violate("Member must have value less than or equal to " + std::to_string(*shape.max));
      } else if (n > type_max || (saturated && n > 0)) {
        violate("Member must have value less than or equal to " + std::to_string(type_max));
      }
      return;
    }
    case Shape::Type::kBoolean:
      if (!value.is_bool()) violate("Member must be a boolean");
      return;
    case Shape::Type::kTimestamp:
      if (!value.is_number()) violate("Member must be a timestamp in epoch seconds");
      return;
    case Shape::Type::kOther:
      return;
  }
}

}  // namespace meterd::model
