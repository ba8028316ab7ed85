#include "ctl/table.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <utility>

namespace meterd::ctl {

namespace {

bool IsScalar(const json::Value& v) { return !v.is_array() && !v.is_object(); }

bool HasObjectItem(const json::Value& v) {
  return v.is_array() && std::any_of(v.items().begin(), v.items().end(),
                                     [](const json::Value& item) { return item.is_object(); });
}

std::string Sanitized(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = ' ';
  }
  return out;
}

void AppendPadded(std::string* out, std::string_view text, size_t width) {
  *out += text;
  size_t w = DisplayWidth(text);
  if (w < width) out->append(width - w, ' ');
}

// The resource kind of a member holding a list, for ColumnsFor.
std::string_view ResourceOfMember(std::string_view name) {
  if (name == "registrationTokens") return "tokens";
  if (name == "signingKeys") return "keys";
  if (name == "disabled") return "regions";
  if (name == "rules") return "faults";
  return name;
}

std::vector<Column> ColumnsForMember(std::string_view name, const std::vector<json::Value>& rows) {
  std::vector<Column> columns = ColumnsFor(ResourceOfMember(name));
  if (columns.empty()) columns = InferColumns(rows);
  return columns;
}

std::string Indented(std::string_view text, std::string_view indent) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && c != '\n') out += indent;
    out += c;
    line_start = c == '\n';
  }
  return out;
}

void AppendPretty(std::string* out, const json::Value& v, int depth) {
  const std::string indent(static_cast<size_t>(depth + 1) * 2, ' ');
  const std::string close_indent(static_cast<size_t>(depth) * 2, ' ');
  if (v.is_object()) {
    if (v.members().empty()) {
      *out += "{}";
      return;
    }
    *out += "{\n";
    bool first = true;
    for (const auto& [name, member] : v.members()) {
      if (!first) *out += ",\n";
      first = false;
      *out += indent;
      json::AppendQuoted(out, name);
      *out += ": ";
      AppendPretty(out, member, depth + 1);
    }
    *out += "\n" + close_indent + "}";
  } else if (v.is_array()) {
    if (v.items().empty()) {
      *out += "[]";
      return;
    }
    *out += "[\n";
    bool first = true;
    for (const json::Value& item : v.items()) {
      if (!first) *out += ",\n";
      first = false;
      *out += indent;
      AppendPretty(out, item, depth + 1);
    }
    *out += "\n" + close_indent + "]";
  } else {
    json::AppendSerialized(out, v);
  }
}

// Text of one applied object in the apply summary: a string as is; an object as its scalar
// values joined with spaces ({"kind": "account", "id": "1"} -> "account 1").
std::string AppliedItemText(const json::Value& item) {
  if (item.is_string()) return Sanitized(item.text());
  if (item.is_object()) {
    std::string out;
    for (const auto& [name, member] : item.members()) {
      if (!IsScalar(member) || member.is_null()) continue;
      if (!out.empty()) out += ' ';
      out += CellText(&member);
    }
    if (!out.empty()) return out;
  }
  return json::Serialize(item);
}

}  // namespace

const json::Value* FindPath(const json::Value& object, std::string_view path) {
  const json::Value* current = &object;
  while (current != nullptr) {
    if (!current->is_object()) return nullptr;
    size_t dot = path.find('.');
    current = current->Find(path.substr(0, dot));
    if (dot == std::string_view::npos) return current;
    path.remove_prefix(dot + 1);
  }
  return nullptr;
}

Column Field(std::string header, std::string path) {
  return Column{std::move(header), [path = std::move(path)](const json::Value& row) {
                  return CellText(FindPath(row, path));
                }};
}

std::string CellText(const json::Value* value) {
  if (value == nullptr || value->is_null()) return "-";
  switch (value->type()) {
    case json::Type::kBool:
      return value->as_bool() ? "true" : "false";
    case json::Type::kNumber:
      return value->text();
    case json::Type::kString:
      return Sanitized(value->text());
    case json::Type::kArray: {
      if (value->items().empty()) return "-";
      std::string out;
      bool all_named = true;
      for (const json::Value& item : value->items()) {
        const json::Value* text = &item;
        if (item.is_object()) {
          text = item.Find("name");
          if (text == nullptr) text = item.Find("version");
          if (text == nullptr) text = item.Find("id");
          if (text == nullptr || !IsScalar(*text)) {
            all_named = false;
            break;
          }
        } else if (item.is_array()) {
          all_named = false;
          break;
        }
        if (!out.empty()) out += ',';
        out += CellText(text);
      }
      if (all_named) return out;
      return std::to_string(value->items().size()) + " items";
    }
    case json::Type::kObject:
      return Sanitized(json::Serialize(*value));
    case json::Type::kNull:
      break;
  }
  return "-";
}

std::vector<Column> ColumnsFor(std::string_view resource) {
  if (resource == "accounts") {
    return {Field("ID", "id"), Field("NAME", "name"), Field("ROLES", "roles"),
            Field("CUSTOMER IDENTIFIER", "customerIdentifier")};
  }
  if (resource == "credentials") {
    return {Field("ACCESS KEY ID", "accessKeyId"), Field("ACCOUNT", "account"),
            Field("WORKLOAD", "workload"),
            Column{"ENABLED", [](const json::Value& row) {
                     const json::Value* enabled = FindPath(row, "enabled");
                     return enabled == nullptr ? std::string("true") : CellText(enabled);
                   }}};
  }
  if (resource == "workloads") {
    return {Field("ID", "id"), Field("PLATFORM", "platform"), Field("REGION", "region"),
            Field("ACCOUNT", "account"), Field("STOPPED AT", "stoppedAt")};
  }
  if (resource == "products") {
    return {Field("CODE", "code"),
            Field("SELLER", "seller"),
            Field("KIND", "kind"),
            Field("INTEGRATION", "integration"),
            Field("DIMENSIONS", "dimensions"),
            Field("HOURLY DIMENSION", "hourlyDimension"),
            Field("KEY VERSIONS", "signingKeys")};
  }
  if (resource == "dimensions") {
    return {Field("NAME", "name"), Field("UNIT", "unit"), Field("PRICE PER UNIT", "pricePerUnit"),
            Field("DESCRIPTION", "description")};
  }
  if (resource == "audit") {
    return {Field("EVENT TIME", "eventTime"),
            Field("SOURCE", "eventSource"),
            Field("EVENT NAME", "eventName"),
            Field("ACCOUNT", "userIdentity.accountId"),
            Field("ACCESS KEY", "userIdentity.accessKeyId"),
            Field("ERROR CODE", "errorCode"),
            Field("REQUEST ID", "requestID")};
  }
  if (resource == "keys") {
    return {Field("VERSION", "version"),
            Column{"EXPIRED",
                   [](const json::Value& row) {
                     const json::Value* expired = FindPath(row, "expired");
                     return expired == nullptr ? std::string("false") : CellText(expired);
                   }},
            Field("EXPIRED AT", "expiredAt")};
  }
  if (resource == "subscriptions") {
    return {Column{"ID",
                   [](const json::Value& row) {
                     // The server's id; else what it is made of: the licenseArn, or
                     // ACCOUNT:PRODUCT.
                     const json::Value* id = FindPath(row, "id");
                     if (id != nullptr && id->is_string()) return Sanitized(id->text());
                     const json::Value* arn = FindPath(row, "licenseArn");
                     if (arn != nullptr && arn->is_string() && !arn->text().empty()) {
                       return Sanitized(arn->text());
                     }
                     return CellText(FindPath(row, "account")) + ":" +
                            CellText(FindPath(row, "product"));
                   }},
            Field("ACCOUNT", "account"),
            Field("PRODUCT", "product"),
            Field("STATUS", "status"),
            Field("START", "start"),
            Field("END", "end"),
            Field("FREE TRIAL", "freeTrial"),
            Field("UNSUBSCRIBED AT", "unsubscribedAt")};
  }
  if (resource == "tokens") {
    return {Field("TOKEN", "token"),        Field("ACCOUNT", "account"),
            Field("PRODUCT", "product"),    Field("LICENSE ARN", "licenseArn"),
            Field("ISSUED AT", "issuedAt"), Field("EXPIRES AT", "expiresAt")};
  }
  if (resource == "regions") {
    return {Field("REGION", "region"), Field("DISABLED OPERATIONS", "operations")};
  }
  if (resource == "faults") {
    return {Field("OPERATION", "operation"),
            Column{"CALLER",
                   [](const json::Value& row) {
                     const json::Value* caller = FindPath(row, "caller");
                     return caller == nullptr || caller->is_null() ? std::string("*")
                                                                   : CellText(caller);
                   }},
            Field("THROTTLE RATE", "throttleRate"),
            Field("INTERNAL ERROR RATE", "internalErrorRate"),
            Field("UNPROCESSED RATE", "unprocessedRate"),
            Field("LATENCY MS", "latencyMs"),
            Field("SEED", "seed"),
            Field("CALLS", "counts.calls"),
            Field("THROTTLED", "counts.throttled"),
            Field("INTERNAL ERRORS", "counts.internalErrors"),
            Field("UNPROCESSED RECORDS", "counts.unprocessedRecords"),
            Field("DELAYED", "counts.delayed")};
  }
  return {};
}

std::string HeaderFromName(std::string_view camel_case) {
  std::string out;
  char previous = 0;
  for (char c : camel_case) {
    auto u = static_cast<unsigned char>(c);
    if (std::isupper(u) && previous != 0 && !std::isupper(static_cast<unsigned char>(previous))) {
      out += ' ';
    }
    if (c == '_' || c == '-' || c == '.') {
      out += ' ';
    } else {
      out += static_cast<char>(std::toupper(u));
    }
    previous = c;
  }
  return out;
}

std::vector<Column> InferColumns(const std::vector<json::Value>& rows) {
  std::vector<std::string> names;
  for (const json::Value& row : rows) {
    if (!row.is_object()) continue;
    for (const auto& [name, member] : row.members()) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  std::vector<Column> columns;
  columns.reserve(names.size());
  for (const std::string& name : names) {
    // A member name with a '.' is not a path: look it up directly.
    columns.push_back(Column{HeaderFromName(name), [name](const json::Value& row) {
                               return CellText(row.is_object() ? row.Find(name) : nullptr);
                             }});
  }
  if (columns.empty()) {
    columns.push_back(Column{"VALUE", [](const json::Value& row) { return CellText(&row); }});
  }
  return columns;
}

const std::vector<json::Value>* ListItems(const json::Value& body, std::string_view key) {
  if (body.is_array()) return &body.items();
  if (!body.is_object()) return nullptr;
  if (const json::Value* member = body.Find(key); member != nullptr && member->is_array()) {
    return &member->items();
  }
  const json::Value* only = nullptr;
  for (const auto& [name, member] : body.members()) {
    if (!member.is_array()) continue;
    if (only != nullptr) return nullptr;
    only = &member;
  }
  return only == nullptr ? nullptr : &only->items();
}

std::string RenderTable(const std::vector<json::Value>& rows, const std::vector<Column>& columns) {
  if (rows.empty() || columns.empty()) return "";
  std::vector<std::vector<std::string>> cells;
  cells.reserve(rows.size());
  std::vector<size_t> widths;
  widths.reserve(columns.size());
  for (const Column& column : columns) widths.push_back(DisplayWidth(column.header));
  for (const json::Value& row : rows) {
    std::vector<std::string> line;
    for (size_t i = 0; i < columns.size(); ++i) {
      line.push_back(row.is_object() ? columns[i].cell(row) : std::string("-"));
      widths[i] = std::max(widths[i], DisplayWidth(line.back()));
    }
    cells.push_back(std::move(line));
  }
  std::string out;
  auto append_line = [&](auto text_of) {
    std::string line;
    for (size_t i = 0; i < columns.size(); ++i) {
      if (i + 1 == columns.size()) {
        line += text_of(i);
      } else {
        AppendPadded(&line, text_of(i), widths[i] + 2);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  append_line([&](size_t i) -> const std::string& { return columns[i].header; });
  for (const auto& line : cells) {
    append_line([&](size_t i) -> const std::string& { return line[i]; });
  }
  return out;
}

std::string RenderDetail(const json::Value& value) {
  if (!value.is_object()) return PrettyJson(value);
  std::vector<std::pair<std::string, std::string>> lines;
  std::vector<std::string> blocks;
  std::function<void(const std::string&, const json::Value&)> flatten =
      [&](const std::string& prefix, const json::Value& object) {
        for (const auto& [name, member] : object.members()) {
          std::string key = prefix;
          if (!key.empty()) key += '.';
          key += name;
          if (member.is_object() && !member.members().empty()) {
            flatten(key, member);
          } else if (HasObjectItem(member)) {
            blocks.push_back(
                key + ":\n" +
                Indented(RenderTable(member.items(), ColumnsForMember(name, member.items())),
                         "  "));
          } else if (member.is_string() && member.text().find('\n') != std::string::npos) {
            std::string block = key + ":\n";
            block += member.text();
            if (block.back() != '\n') block += '\n';
            blocks.push_back(std::move(block));
          } else {
            lines.emplace_back(key, CellText(&member));
          }
        }
      };
  flatten("", value);
  size_t width = 0;
  for (const auto& [key, text] : lines) width = std::max(width, DisplayWidth(key) + 1);
  std::string out;
  for (const auto& [key, text] : lines) {
    AppendPadded(&out, key + ":", width + 2);
    out += text;
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  }
  for (const std::string& block : blocks) {
    if (!out.empty()) out += '\n';
    out += block;
  }
  return out;
}

std::string RenderApplyResult(const json::Value& value) {
  if (!value.is_object()) return PrettyJson(value);
  std::string out;
  for (const char* name : {"created", "updated"}) {
    const json::Value* list = value.Find(name);
    size_t n = list != nullptr && list->is_array() ? list->items().size() : 0;
    out += std::string(name) + ": " + std::to_string(n) + "\n";
    if (n == 0) continue;
    for (const json::Value& item : list->items()) out += "  " + AppliedItemText(item) + "\n";
  }
  out += "unchanged: " + CellText(value.Find("unchanged")) + "\n";
  const json::Value* changed = value.Find("changed");
  bool did_change = changed != nullptr && changed->is_bool() && changed->as_bool();
  out += "catalog version: " + CellText(value.Find("version")) +
         (did_change ? " (changed)" : " (nothing changed)") + "\n";
  return out;
}

std::string RenderCatalog(const json::Value& value) {
  if (!value.is_object()) return PrettyJson(value);
  std::string scalars;
  std::vector<std::string> sections;
  auto list_section = [](const std::string& title, const std::vector<json::Value>& rows,
                         std::string_view member) {
    std::string section = title + " (" + std::to_string(rows.size()) + ")\n";
    section += rows.empty() ? "  none\n" : RenderTable(rows, ColumnsForMember(member, rows));
    return section;
  };
  for (const auto& [name, member] : value.members()) {
    if (member.is_array()) {
      sections.push_back(list_section(HeaderFromName(name), member.items(), name));
    } else if (member.is_object()) {
      const json::Value* disabled = member.Find("disabled");
      if (name == "regions" && disabled != nullptr && disabled->is_array()) {
        sections.push_back(list_section("DISABLED REGIONS", disabled->items(), "disabled"));
        std::vector<json::Value::Member> rest;
        for (const auto& m : member.members()) {
          if (m.first != "disabled") rest.push_back(m);
        }
        if (!rest.empty()) {
          sections.push_back("REGIONS\n" +
                             Indented(RenderDetail(json::Value::Object(std::move(rest))), "  "));
        }
      } else {
        sections.push_back(HeaderFromName(name) + "\n" + Indented(RenderDetail(member), "  "));
      }
    } else {
      scalars += name + ": " + CellText(&member) + "\n";
    }
  }
  std::string out = scalars;
  for (const std::string& section : sections) {
    if (!out.empty()) out += '\n';
    out += section;
  }
  return out;
}

std::string PrettyJson(const json::Value& value) {
  std::string out;
  AppendPretty(&out, value, 0);
  out += '\n';
  return out;
}

size_t DisplayWidth(std::string_view utf8) {
  size_t width = 0;
  for (char c : utf8) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++width;
  }
  return width;
}

std::optional<int64_t> ParseDurationSeconds(std::string_view text) {
  if (text.empty()) return std::nullopt;
  constexpr std::string_view kUnits = "dhms";
  constexpr int64_t kUnitSeconds[] = {86400, 3600, 60, 1};
  int64_t total = 0;
  size_t last_unit = 0;  // index + 1 of the last unit seen
  size_t i = 0;
  while (i < text.size()) {
    int64_t number = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (__builtin_mul_overflow(number, int64_t{10}, &number) ||
          __builtin_add_overflow(number, int64_t{text[i] - '0'}, &number)) {
        return std::nullopt;
      }
      ++i;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    int64_t multiplier = 1;
    if (i == text.size()) {
      if (last_unit != 0) return std::nullopt;  // "1h30": a number without unit after a unit
    } else {
      size_t unit = kUnits.find(text[i]);
      if (unit == std::string_view::npos || unit + 1 <= last_unit) return std::nullopt;
      last_unit = unit + 1;
      multiplier = kUnitSeconds[unit];
      ++i;
    }
    int64_t seconds = 0;
    if (__builtin_mul_overflow(number, multiplier, &seconds) ||
        __builtin_add_overflow(total, seconds, &total)) {
      return std::nullopt;
    }
  }
  return total;
}

}  // namespace meterd::ctl
