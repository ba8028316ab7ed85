#include "reports/report.h"

#include <algorithm>
#include <charconv>
#include <set>
#include <tuple>

#include "common/time_util.h"
#include "json/json.h"
#include "keys/jwt.h"

namespace meterd::reports {

namespace {

Status Invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

bool ParseInt64(std::string_view text, int64_t* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

Status CheckKnown(const Params& params, std::initializer_list<std::string_view> known) {
  for (const auto& [name, value] : params) {
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return Invalid("unknown query parameter \"" + name + "\"");
    }
  }
  return Status::Ok();
}

std::string Param(const Params& params, const std::string& name) {
  auto it = params.find(name);
  return it == params.end() ? std::string() : it->second;
}

Result<std::optional<int64_t>> ParseTime(const Params& params, const std::string& name) {
  std::string text = Param(params, name);
  if (text.empty()) return std::optional<int64_t>();
  auto millis = ParseIso8601(text);
  if (!millis) return Invalid(name + " must be an RFC 3339 time (2026-11-01T00:00:00Z)");
  return std::optional<int64_t>(*millis);
}

void AppendJsonMember(std::string* out, std::string_view name, std::string_view value,
                      bool* first) {
  if (!*first) out->push_back(',');
  *first = false;
  json::AppendQuoted(out, name);
  out->push_back(':');
  json::AppendQuoted(out, value);
}

}  // namespace

// --- Cursor, CSV, formats

std::string EncodeCursor(const LedgerPosition& position) {
  return keys::Base64UrlEncode("1:" + std::to_string(position.timestamp_ms) + ":" +
                               std::to_string(position.seq));
}

Result<LedgerPosition> DecodeCursor(std::string_view cursor) {
  auto bad = Invalid("cursor is not one this server gave");
  auto decoded = keys::Base64UrlDecode(cursor);
  if (!decoded.ok()) return bad;
  std::string_view text = *decoded;
  if (text.substr(0, 2) != "1:") return bad;
  text.remove_prefix(2);
  size_t colon = text.find(':');
  LedgerPosition p;
  if (colon == std::string_view::npos || !ParseInt64(text.substr(0, colon), &p.timestamp_ms) ||
      !ParseInt64(text.substr(colon + 1), &p.seq)) {
    return bad;
  }
  return p;
}

void AppendCsvField(std::string* out, std::string_view field) {
  bool quote = field.find_first_of(",\"\r\n") != std::string_view::npos ||
               (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!quote) {
    out->append(field);
    return;
  }
  out->push_back('"');
  for (char c : field) {
    if (c == '"') out->push_back('"');
    out->push_back(c);
  }
  out->push_back('"');
}

void AppendCsvLine(std::string* out, const std::vector<std::string>& fields) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendCsvField(out, fields[i]);
  }
  out->append("\r\n");
}

Result<ExportFormat> ParseExportFormat(const Params& params) {
  std::string format = Param(params, "format");
  if (format == "csv") return ExportFormat::kCsv;
  if (format == "jsonl") return ExportFormat::kJsonl;
  return Invalid("format must be csv or jsonl");
}

const char* ContentType(ExportFormat format) {
  return format == ExportFormat::kCsv ? "text/csv; charset=utf-8" : "application/x-ndjson";
}

// --- Usage records

Result<UsageListRequest> ParseUsageListRequest(const Params& params) {
  METERD_RETURN_IF_ERROR(
      CheckKnown(params, {"product", "customer", "account", "license", "workload", "dimension",
                          "from", "to", "status", "limit", "cursor", "format"}));
  UsageListRequest r;
  r.filter.product_code = Param(params, "product");
  r.filter.customer_identifier = Param(params, "customer");
  r.filter.customer_account = Param(params, "account");
  r.filter.license_arn = Param(params, "license");
  r.filter.workload_id = Param(params, "workload");
  r.filter.dimension = Param(params, "dimension");
  auto from = ParseTime(params, "from");
  if (!from.ok()) return from.status();
  auto to = ParseTime(params, "to");
  if (!to.ok()) return to.status();
  r.filter.from_ms = *from;
  r.filter.to_ms = *to;
  std::string status = Param(params, "status");
  if (!status.empty() && status != "Success") {
    return Invalid(
        "status must be Success: the ledger holds accepted records only (refused, duplicate and "
        "unprocessed records are never written)");
  }
  if (std::string limit = Param(params, "limit"); !limit.empty()) {
    int64_t n = 0;
    if (!ParseInt64(limit, &n) || n < 1 || n > static_cast<int64_t>(kMaxLimit)) {
      return Invalid("limit must be an integer from 1 to " + std::to_string(kMaxLimit));
    }
    r.limit = static_cast<size_t>(n);
  }
  if (std::string cursor = Param(params, "cursor"); !cursor.empty()) {
    auto position = DecodeCursor(cursor);
    if (!position.ok()) return position.status();
    r.after = *position;
  }
  return r;
}

const char* const kRecordCsvHeader =
    "recordId,timestamp,usageHour,product,customerIdentifier,customerAccount,licenseArn,workload,"
    "dimension,quantity,unit,source,region,status,requestId,receivedAt,allocations\r\n";

void AppendRecordCsv(std::string* out, const store::UsageRow& r) {
  const bool seconds = r.source == "RegisterUsage";
  AppendCsvLine(
      out, {r.record_id, FormatIso8601(r.timestamp_ms), FormatIso8601(r.usage_hour_ms),
            r.product_code, r.customer_identifier, r.customer_account, r.license_arn, r.workload_id,
            r.dimension, std::to_string(r.quantity), seconds ? store::kUnitSecond : "", r.source,
            r.region, "Success", r.request_id, FormatIso8601(r.received_ms), r.allocations_json});
}

void AppendRecordJson(std::string* out, const store::UsageRow& r) {
  out->push_back('{');
  bool first = true;
  AppendJsonMember(out, "recordId", r.record_id, &first);
  AppendJsonMember(out, "product", r.product_code, &first);
  AppendJsonMember(out, "customerIdentifier", r.customer_identifier, &first);
  AppendJsonMember(out, "customerAccount", r.customer_account, &first);
  AppendJsonMember(out, "licenseArn", r.license_arn, &first);
  AppendJsonMember(out, "workload", r.workload_id, &first);
  AppendJsonMember(out, "dimension", r.dimension, &first);
  AppendJsonMember(out, "quantity", std::to_string(r.quantity), &first);
  if (r.source == "RegisterUsage") AppendJsonMember(out, "unit", store::kUnitSecond, &first);
  AppendJsonMember(out, "timestamp", FormatIso8601(r.timestamp_ms), &first);
  AppendJsonMember(out, "usageHour", FormatIso8601(r.usage_hour_ms), &first);
  AppendJsonMember(out, "source", r.source, &first);
  AppendJsonMember(out, "region", r.region, &first);
  AppendJsonMember(out, "status", "Success", &first);
  AppendJsonMember(out, "requestId", r.request_id, &first);
  AppendJsonMember(out, "receivedAt", FormatIso8601(r.received_ms), &first);
  if (!r.allocations_json.empty()) {
    out->append(",\"allocations\":");
    out->append(r.allocations_json);  // JSON written by metering/service.cc
  }
  out->push_back('}');
}

Result<std::string> UsagePageJson(UsageReader* reader, const UsageListRequest& request) {
  auto page = reader->ListUsage(request.filter, request.after, request.limit);
  if (!page.ok()) return page.status();
  std::string out = "{\"records\":[";
  for (size_t i = 0; i < page->records.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendRecordJson(&out, page->records[i].row);
  }
  out.push_back(']');
  if (page->more) {
    out.append(",\"nextCursor\":");
    json::AppendQuoted(&out, EncodeCursor(page->records.back().position));
  }
  out.append("}\n");
  return out;
}

// --- Aggregates

Result<ReportRequest> ParseReportRequest(const Params& params) {
  METERD_RETURN_IF_ERROR(CheckKnown(params, {"granularity", "from", "to", "groupBy", "product",
                                             "account", "dimension", "format"}));
  ReportRequest r;
  std::string granularity = Param(params, "granularity");
  if (granularity.empty()) granularity = "day";
  if (!store::ParseGranularity(granularity, &r.query.granularity)) {
    return Invalid("granularity must be hour, day or month");
  }
  auto from = ParseTime(params, "from");
  if (!from.ok()) return from.status();
  auto to = ParseTime(params, "to");
  if (!to.ok()) return to.status();
  r.query.from_ms = from->value_or(INT64_MIN);
  r.query.to_ms = to->value_or(INT64_MAX);
  if (r.query.from_ms >= r.query.to_ms) return Invalid("from must be before to");
  r.query.product_code = Param(params, "product");
  r.query.customer_account = Param(params, "account");
  r.query.dimension = Param(params, "dimension");
  std::string group_by = Param(params, "groupBy");
  if (group_by.empty()) group_by = "product,customer,dimension";
  r.by_product = r.by_customer = r.by_dimension = false;
  std::set<std::string> seen;
  size_t start = 0;
  while (start <= group_by.size()) {
    size_t comma = group_by.find(',', start);
    std::string item =
        group_by.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? group_by.size() + 1 : comma + 1;
    if (!seen.insert(item).second) return Invalid("groupBy names \"" + item + "\" twice");
    if (item == "product") {
      r.by_product = true;
    } else if (item == "customer") {
      r.by_customer = true;
    } else if (item == "dimension") {
      r.by_dimension = true;
    } else if (item.rfind("tag:", 0) == 0 && item.size() > 4) {
      if (!r.query.tag_key.empty()) return Invalid("groupBy takes one tag:<key> at most");
      r.query.tag_key = item.substr(4);
    } else {
      return Invalid("groupBy items are product, customer, dimension and tag:<key>, not \"" + item +
                     "\"");
    }
    r.group_by.push_back(item);
  }
  return r;
}

std::optional<Decimal> BilledAmount(const catalog::Catalog& catalog, const std::string& product,
                                    const std::string& dimension, const std::string& unit,
                                    int64_t quantity) {
  const catalog::Product* p = catalog.FindProduct(product);
  const catalog::Dimension* d = p ? p->FindDimension(dimension) : nullptr;
  if (d == nullptr || d->price_per_unit.empty()) return std::nullopt;
  auto price = Decimal::Parse(d->price_per_unit);
  if (!price) return std::nullopt;
  auto amount = price->Times(quantity);
  if (!amount || unit != store::kUnitSecond) return amount;
  constexpr int64_t kSecondsPerHour = 3600;
  return amount->DividedRounded(kSecondsPerHour, std::min(price->scale() + 6, Decimal::kMaxScale));
}

Result<Report> BuildReport(UsageReader* reader, const catalog::Catalog& catalog,
                           const ReportRequest& request) {
  auto rollups = reader->ReadRollups(request.query);
  if (!rollups.ok()) return rollups.status();
  Report report;
  report.request = request;
  using GroupKey = std::tuple<int64_t, std::string, std::string, std::string, std::string,
                              std::string>;  // period, product, customer, dimension, unit, tag
  struct Group {
    int64_t quantity = 0, records = 0;
    std::optional<Decimal> amount = Decimal::FromInt(0);
  };
  std::map<GroupKey, Group> groups;
  bool all_priced = true;
  for (const RollupRow& row : *rollups) {
    const store::RollupKey& k = row.key;
    GroupKey key{k.period_ms,
                 request.by_product ? k.product_code : "",
                 request.by_customer ? k.customer_account : "",
                 request.by_dimension ? k.dimension : "",
                 k.unit,
                 k.tag_value};
    Group& g = groups[key];
    g.quantity += row.quantity;
    g.records += row.records;
    auto amount = BilledAmount(catalog, k.product_code, k.dimension, k.unit, row.quantity);
    g.amount = amount && g.amount ? g.amount->Plus(*amount) : std::nullopt;
    if (!g.amount) all_priced = false;
    if (k.unit == store::kUnitSecond) {
      report.total_seconds += row.quantity;
    } else {
      report.total_quantity += row.quantity;
    }
  }
  std::optional<Decimal> total = Decimal::FromInt(0);
  for (auto& [key, g] : groups) {
    ReportRow row;
    std::tie(row.period_ms, row.product_code, row.customer_account, row.dimension, row.unit,
             row.tag_value) = key;
    row.tag_key = request.query.tag_key;
    row.quantity = g.quantity;
    row.records = g.records;
    row.amount = g.amount;
    if (total && row.amount) total = total->Plus(*row.amount);
    report.rows.push_back(std::move(row));
  }
  if (all_priced && !report.rows.empty()) report.total_amount = total;
  return report;
}

void AppendReportRowJson(std::string* out, const Report& report, const ReportRow& row) {
  const ReportRequest& rq = report.request;
  out->push_back('{');
  bool first = true;
  AppendJsonMember(out, "period", FormatIso8601(row.period_ms), &first);
  if (rq.by_product) AppendJsonMember(out, "product", row.product_code, &first);
  if (rq.by_customer) AppendJsonMember(out, "customerAccount", row.customer_account, &first);
  if (rq.by_dimension) AppendJsonMember(out, "dimension", row.dimension, &first);
  if (!row.unit.empty()) AppendJsonMember(out, "unit", row.unit, &first);
  if (!rq.query.tag_key.empty()) {
    out->append(",\"tag\":{");
    bool tag_first = true;
    AppendJsonMember(out, "key", row.tag_key, &tag_first);
    AppendJsonMember(out, "value", row.tag_value, &tag_first);
    out->push_back('}');
  }
  AppendJsonMember(out, "quantity", std::to_string(row.quantity), &first);
  if (row.amount) AppendJsonMember(out, "amount", row.amount->ToString(), &first);
  out->append(",\"records\":" + std::to_string(row.records) + "}");
}

std::string ReportJson(const Report& report, int64_t catalog_version) {
  const ReportRequest& rq = report.request;
  std::string out = "{";
  bool first = true;
  AppendJsonMember(&out, "granularity", store::GranularityName(rq.query.granularity), &first);
  if (rq.query.from_ms != INT64_MIN) {
    AppendJsonMember(&out, "from", FormatIso8601(rq.query.from_ms), &first);
  }
  if (rq.query.to_ms != INT64_MAX) {
    AppendJsonMember(&out, "to", FormatIso8601(rq.query.to_ms), &first);
  }
  out.append(",\"groupBy\":[");
  for (size_t i = 0; i < rq.group_by.size(); ++i) {
    if (i > 0) out.push_back(',');
    json::AppendQuoted(&out, rq.group_by[i]);
  }
  out.append("],\"catalogVersion\":" + std::to_string(catalog_version) + ",\"rows\":[");
  for (size_t i = 0; i < report.rows.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendReportRowJson(&out, report, report.rows[i]);
  }
  out.append("],\"totals\":{");
  bool totals_first = true;
  AppendJsonMember(&out, "quantity", std::to_string(report.total_quantity), &totals_first);
  if (report.total_seconds != 0) {
    AppendJsonMember(&out, "seconds", std::to_string(report.total_seconds), &totals_first);
  }
  if (report.total_amount) {
    AppendJsonMember(&out, "amount", report.total_amount->ToString(), &totals_first);
  }
  out.append("}}\n");
  return out;
}

const char* const kReportCsvHeader =
    "period,granularity,product,customerAccount,dimension,unit,tagKey,tagValue,quantity,amount,"
    "records\r\n";

void AppendReportRowCsv(std::string* out, const Report& report, const ReportRow& row) {
  AppendCsvLine(
      out, {FormatIso8601(row.period_ms), store::GranularityName(report.request.query.granularity),
            row.product_code, row.customer_account, row.dimension, row.unit, row.tag_key,
            row.tag_value, std::to_string(row.quantity), row.amount ? row.amount->ToString() : "",
            std::to_string(row.records)});
}

// --- Streams

namespace {

constexpr size_t kExportPageRecords = 1000;

}  // namespace

HttpResponse::BodyStream UsageExportStream(UsageReader* reader, UsageFilter filter,
                                           ExportFormat format) {
  struct State {
    UsageFilter filter;
    std::optional<LedgerPosition> after;
    bool started = false;
  };
  auto state = std::make_shared<State>();
  state->filter = std::move(filter);
  return [reader, state, format](std::string* chunk) {
    if (!state->started && format == ExportFormat::kCsv) chunk->append(kRecordCsvHeader);
    state->started = true;
    auto page = reader->ListUsage(state->filter, state->after, kExportPageRecords);
    if (!page.ok()) return HttpResponse::StreamStep::kFailed;
    for (const LedgerRecord& rec : page->records) {
      if (format == ExportFormat::kCsv) {
        AppendRecordCsv(chunk, rec.row);
      } else {
        AppendRecordJson(chunk, rec.row);
        chunk->push_back('\n');
      }
    }
    if (!page->more) return HttpResponse::StreamStep::kEnd;
    state->after = page->records.back().position;
    return HttpResponse::StreamStep::kMore;
  };
}

HttpResponse::BodyStream ReportExportStream(const std::shared_ptr<const Report>& report,
                                            ExportFormat format) {
  auto next = std::make_shared<size_t>(0);
  return [report, format, next](std::string* chunk) {
    if (*next == 0 && format == ExportFormat::kCsv) chunk->append(kReportCsvHeader);
    constexpr size_t kRowsPerChunk = 500;
    size_t end = std::min(report->rows.size(), *next + kRowsPerChunk);
    for (; *next < end; ++*next) {
      if (format == ExportFormat::kCsv) {
        AppendReportRowCsv(chunk, *report, report->rows[*next]);
      } else {
        AppendReportRowJson(chunk, *report, report->rows[*next]);
        chunk->push_back('\n');
      }
    }
    return *next < report->rows.size() ? HttpResponse::StreamStep::kMore
                                       : HttpResponse::StreamStep::kEnd;
  };
}

}  // namespace meterd::reports
