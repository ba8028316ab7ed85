// Fuzzes what the admin API does with a client's query string on the report and audit routes:
// the parameter parsers of GET /v1/usage and /v1/reports/usage (filters, times, groupBy, limits,
// formats) and the opaque cursors of the ledger and of the audit trail. Oracles:
//   - a cursor that decodes re-encodes to a cursor that decodes to the same position;
//   - a position survives an encode/decode round trip;
//   - a parsed limit is within 1..kMaxLimit.
//
// Input: "name=value" pairs separated by '&' (no percent-decoding: the handler decodes before
// these parsers see the values); a pair named "cursor" or "audit_cursor" is also decoded alone.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "audit/audit_event.h"
#include "reports/report.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meterd;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  reports::Params params;
  size_t start = 0;
  while (start <= input.size()) {
    size_t end = input.find('&', start);
    if (end == std::string_view::npos) end = input.size();
    std::string_view pair = input.substr(start, end - start);
    size_t eq = pair.find('=');
    std::string name(pair.substr(0, eq));
    std::string value(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
    params[name] = value;
    start = end + 1;
  }

  if (auto list = reports::ParseUsageListRequest(params); list.ok()) {
    Check(list->limit >= 1 && list->limit <= reports::kMaxLimit);
  }
  (void)reports::ParseReportRequest(params);
  (void)reports::ParseExportFormat(params);

  if (auto it = params.find("cursor"); it != params.end()) {
    if (auto position = reports::DecodeCursor(it->second); position.ok()) {
      auto again = reports::DecodeCursor(reports::EncodeCursor(*position));
      Check(again.ok() && again->timestamp_ms == position->timestamp_ms &&
            again->seq == position->seq);
    }
  }
  if (auto it = params.find("audit_cursor"); it != params.end()) {
    if (auto position = audit::DecodeCursor(it->second); position.ok()) {
      auto again = audit::DecodeCursor(audit::EncodeCursor(*position));
      Check(again.ok() && again->event_time_ms == position->event_time_ms &&
            again->event_id == position->event_id);
    }
  }
  // Any position round-trips (the input's length and bytes make one).
  reports::LedgerPosition made{static_cast<int64_t>(size) * 1000003 - 7,
                               static_cast<int64_t>(size)};
  auto back = reports::DecodeCursor(reports::EncodeCursor(made));
  Check(back.ok() && back->timestamp_ms == made.timestamp_ms && back->seq == made.seq);
  store::AuditPosition event{static_cast<int64_t>(size), std::string(input.substr(0, 64))};
  auto event_back = audit::DecodeCursor(audit::EncodeCursor(event));
  if (event_back.ok()) Check(event_back->event_id == event.event_id);
  return 0;
}
