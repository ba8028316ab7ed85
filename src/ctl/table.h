// meterctl's human output: aligned tables of the admin API's JSON lists, key/value views of one
// object, pretty-printed JSON, and the parsing of human durations ("1h30m").
//
// Pure functions of their arguments (thread-safe); no I/O.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "json/json.h"

namespace meterd::ctl {

// One column of a table: a header and how to get the cell's text from a row object.
struct Column {
  std::string header;
  std::function<std::string(const json::Value& row)> cell;
};

// A column showing the member at `path` ("name", or "counts.calls" for a nested member).
Column Field(std::string header, std::string path);

// The member at a dotted `path` of an object, or nullptr.
const json::Value* FindPath(const json::Value& object, std::string_view path);

// A value as one table cell: strings as they are (control characters as spaces), numbers as their
// text, arrays of scalars joined with ",", arrays of objects by their "name" members (else "N
// items"), objects as compact JSON; missing or null: "-".
std::string CellText(const json::Value* value);

// The columns meterctl shows for a kind of resource: accounts, credentials, workloads, products,
// dimensions, keys, subscriptions, tokens, regions, faults, audit. Empty for an unknown kind.
std::vector<Column> ColumnsFor(std::string_view resource);

// Columns for objects of unknown shape: every member (first-seen order) under its name in upper
// case words ("customerIdentifier" -> "CUSTOMER IDENTIFIER").
std::vector<Column> InferColumns(const std::vector<json::Value>& rows);
std::string HeaderFromName(std::string_view camel_case);

// The rows of a list answer: the body itself when it is an array; else the member `key` of an
// object when it is an array; else the only array member of an object. nullptr if none.
const std::vector<json::Value>* ListItems(const json::Value& body, std::string_view key);

// An aligned table: a header line and one line per row, columns separated by two spaces, no
// trailing blanks. Rows that are not objects show "-" in every column. "" when there are no rows.
std::string RenderTable(const std::vector<json::Value>& rows, const std::vector<Column>& columns);

// One object as aligned "key:  value" lines; nested objects are flattened ("throttle.enabled"),
// multi-line strings (PEM) and arrays of objects follow as their own blocks. Not an object:
// pretty JSON.
std::string RenderDetail(const json::Value& value);

// The answer of POST /v1/apply: created, updated, unchanged and the catalog version.
std::string RenderApplyResult(const json::Value& value);

// The whole catalog (GET /v1/catalog): one titled table per kind of resource.
std::string RenderCatalog(const json::Value& value);

// JSON indented by two spaces, members in their order, numbers as their original text; ends with
// a newline.
std::string PrettyJson(const json::Value& value);

// Terminal width of UTF-8 text, counted in code points.
size_t DisplayWidth(std::string_view utf8);

// A duration in whole seconds: plain seconds ("3600"), or numbers with units d, h, m, s in that
// order, each at most once ("90s", "15m", "1h30m", "3d"). nullopt for anything else or overflow.
std::optional<int64_t> ParseDurationSeconds(std::string_view text);

}  // namespace meterd::ctl
