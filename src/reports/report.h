// Usage reports (docs/REPORTS.md): the admin API's usage queries, aggregates and exports, on top
// of a UsageReader. Parsing of the query parameters, the record and aggregate shapes (JSON, CSV,
// JSON Lines), the opaque cursor, billed amounts (exact decimals) and the streamed exports.
// Everything here is stateless or owned by one request; nothing blocks on the writer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/catalog.h"
#include "common/decimal.h"
#include "common/http_message.h"
#include "common/status.h"
#include "store/usage_reader.h"

namespace meterd::reports {

// The ledger's read seam is the store's (store/usage_reader.h: the arrow runs reports -> store);
// reports name its types as their own.
using store::LedgerPosition;
using store::LedgerRecord;
using store::RollupQuery;
using store::RollupRow;
using store::UsageFilter;
using store::UsagePage;
using store::UsageReader;

using Params = std::map<std::string, std::string>;  // decoded query parameters

constexpr size_t kDefaultLimit = 100;
constexpr size_t kMaxLimit = 1000;

// The opaque cursor of a ledger position: base64url of "1:<timestamp_ms>:<seq>".
std::string EncodeCursor(const LedgerPosition& position);
Result<LedgerPosition> DecodeCursor(std::string_view cursor);  // kInvalidArgument if not ours

// Appends `field` as one RFC 4180 field: quoted (with "" for ") when it holds a comma, quote,
// CR or LF, or starts or ends with a space; as it is otherwise.
void AppendCsvField(std::string* out, std::string_view field);

// Appends the fields as one CSV line ending in CRLF.
void AppendCsvLine(std::string* out, const std::vector<std::string>& fields);

enum class ExportFormat { kCsv, kJsonl };
// `format` = csv | jsonl (required).
Result<ExportFormat> ParseExportFormat(const Params& params);
const char* ContentType(ExportFormat format);

// --- Usage records (GET /v1/usage, /v1/usage/export)

struct UsageListRequest {
  UsageFilter filter;
  std::optional<LedgerPosition> after;  // from `cursor`
  size_t limit = kDefaultLimit;
};
// product, customer, account, license, workload, dimension, from, to, status (only "Success":
// the ledger holds accepted records only), limit, cursor. Unknown parameters are refused.
Result<UsageListRequest> ParseUsageListRequest(const Params& params);

// The CSV header line of records (with "\r\n"), and one record as a CSV line / a JSON object.
extern const char* const kRecordCsvHeader;
void AppendRecordCsv(std::string* out, const store::UsageRow& row);
void AppendRecordJson(std::string* out, const store::UsageRow& row);

// The body of GET /v1/usage.
Result<std::string> UsagePageJson(UsageReader* reader, const UsageListRequest& request);

// --- Aggregates (GET /v1/reports/usage, /v1/reports/usage/export)

struct ReportRequest {
  RollupQuery query;  // granularity, period range, filters, tag key
  bool by_product = true;
  bool by_customer = true;
  bool by_dimension = true;
  std::vector<std::string> group_by;  // as given, for the answer
};
// granularity (hour|day|month, default day), from, to (default: all time), groupBy (comma list
// of product, customer, dimension and at most one tag:<key>; default product,customer,dimension),
// product, account, dimension.
Result<ReportRequest> ParseReportRequest(const Params& params);

struct ReportRow {
  int64_t period_ms = 0;
  std::string product_code;      // "" when not grouped by product
  std::string customer_account;  // "" when not grouped by customer
  std::string dimension;         // "" when not grouped by dimension
  std::string unit;              // "" or store::kUnitSecond (task metering)
  std::string tag_key, tag_value;
  int64_t quantity = 0;
  int64_t records = 0;
  std::optional<Decimal> amount;  // absent when a contributing dimension has no price
};

struct Report {
  ReportRequest request;
  std::vector<ReportRow> rows;  // by period, then the group keys
  int64_t total_quantity = 0;   // rows in units of their dimensions
  int64_t total_seconds = 0;    // task-metering rows
  std::optional<Decimal> total_amount;
};

// The billed amount of `quantity` of `dimension` of `product` at the catalog's price: exact
// quantity x pricePerUnit; for task-metering seconds, seconds x price / 3600 rounded half away
// from zero to 6 more digits than the price has. Nullopt when not priced.
std::optional<Decimal> BilledAmount(const catalog::Catalog& catalog, const std::string& product,
                                    const std::string& dimension, const std::string& unit,
                                    int64_t quantity);

// Reads the rollups and groups them as asked, pricing each row with `catalog` (the one in force).
Result<Report> BuildReport(UsageReader* reader, const catalog::Catalog& catalog,
                           const ReportRequest& request);
// The body of GET /v1/reports/usage; `catalog_version` is the version whose prices were used.
std::string ReportJson(const Report& report, int64_t catalog_version);
extern const char* const kReportCsvHeader;
void AppendReportRowCsv(std::string* out, const Report& report, const ReportRow& row);
void AppendReportRowJson(std::string* out, const Report& report, const ReportRow& row);

// --- Streamed exports: bodies produced a chunk at a time (HttpResponse::stream).

// Records matching the filter, a page at a time from the reader: constant memory for any ledger.
// `reader` must outlive the stream.
HttpResponse::BodyStream UsageExportStream(UsageReader* reader, UsageFilter filter,
                                           ExportFormat format);
// The rows of a built report (their number is bounded by the catalog and the period range, not by
// the ledger).
HttpResponse::BodyStream ReportExportStream(const std::shared_ptr<const Report>& report,
                                            ExportFormat format);

}  // namespace meterd::reports
