// The load generator of meterd-bench: distinct metering records, SigV4-signed requests, keep-alive
// HTTP/1.1 connections on non-blocking sockets and epoll, and what came back.
//
// The generator shares two cores with the server it measures, so the per-request path is kept
// cheap: no locks (each thread owns its connections and statistics, merged at the end), bodies
// built by appending into reused buffers, one JSON parse per response, and an HTTP parser that
// reads only the status, Content-Length / chunked framing, Connection and the body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bench_catalog.h"
#include "common/status.h"

namespace meterd::bench {

// Distinct BatchMeterUsage records. The dedup key is (region, product, customer, dimension, UTC
// hour): record j of request r is combination c = (r % requests_per_region) * records_per_request
// + j of its region, with customer c % N, dimension (c / N) % D, hour (c / (N * D)) % H hours
// before the run's start, and region r / requests_per_region. A request never spans two regions
// (it is signed for one), so the last few combinations of each region are left unused.
class BatchPlan {
 public:
  struct Record {
    uint64_t region = 0;
    uint32_t customer = 0;
    uint32_t dimension = 0;
    uint32_t hours_back = 0;
  };

  // `explicit_region` non-empty: region 0 is that region (later ones are still bench regions).
  BatchPlan(size_t customers, size_t dimensions, size_t hours, size_t records_per_request,
            std::string run_id, std::string explicit_region);

  // Whether one request's records fit into one region's combinations.
  bool valid() const { return requests_per_region_ > 0; }
  Record At(uint64_t request, size_t j) const;
  // The SigV4 scope region of region index k: "bench-<runid>-<k>" (or the explicit region for 0).
  std::string Region(uint64_t k) const;
  uint64_t RegionOf(uint64_t request) const { return request / requests_per_region_; }
  size_t records_per_request() const { return records_per_request_; }

 private:
  size_t customers_, dimensions_, hours_, records_per_request_;
  uint64_t requests_per_region_;
  std::string run_id_, explicit_region_;
};

// How many distinct hours (now, now - 1 h, ...) BatchMeterUsage records may use: at most 20, all
// in the current UTC month, and, for a run of `duration_seconds` (0: short), all still inside the
// 24 h window at its end.
size_t UsableHours(int64_t now_ms, int64_t duration_seconds);

enum class Op { kBatch, kMeter };

struct RunOptions {
  Op op = Op::kBatch;
  std::string endpoint;  // http://host:port[/path]
  size_t records_per_request = 25;
  size_t connections = 32;
  size_t threads = 1;
  double duration_seconds = 10;  // 0: unbounded (then `requests` bounds the run)
  uint64_t requests = 0;         // 0: unbounded
  double rate = 0;               // requests/s across all connections; 0: as fast as possible
  double retry_share = 0;
  double conflict_share = 0;
  std::string region;  // explicit --region; empty: bench regions (batch), workload's (meter)
  std::string run_id;
  double timeout_seconds = 30;
};

// Latency in microseconds in log-linear buckets (128 per power of two, so any value is known to
// within 0.8%), mergeable across threads.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void Add(int64_t micros);
  void Merge(const LatencyHistogram& other);
  // The value at quantile q (0..1) in microseconds, the bucket's midpoint; exact max.
  double Quantile(double q) const;
  int64_t max() const { return max_; }
  uint64_t count() const { return count_; }

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  int64_t max_ = 0;
};

// Requests by kind: fresh records, exact resends (retry) and resends with another quantity
// (conflict), each with how many answers were not what that kind expects (fresh: every record
// Success; retry: Success with the original MeteringRecordIds; conflict: DuplicateRecord for
// every record (batch), IdempotencyConflictException or DuplicateRequestException (meter)).
struct KindCounts {
  uint64_t requests = 0;
  uint64_t unexpected = 0;
};

struct RunReport {
  Op op = Op::kBatch;
  std::string endpoint;
  std::string run_id;
  size_t connections = 0;
  double seconds = 0;
  uint64_t requests = 0;  // requests with an outcome: an HTTP response or a transport error
  uint64_t records_sent = 0;
  // Records newly accepted: records of fresh requests whose answer said "Status":"Success" (a 200
  // with a MeteringRecordId for MeterUsage). Retries' Success answers are in record_status only,
  // so this is what the ledger grew by.
  uint64_t records_accepted = 0;
  LatencyHistogram latency;
  std::map<int, uint64_t> http_status;
  std::map<std::string, uint64_t> errors;
  std::map<std::string, uint64_t> record_status;
  KindCounts fresh, retry, conflict;
};

// Runs the load. Setup failures (bad endpoint, no targets) are kInvalidArgument; what the server
// answers is only counted.
Result<RunReport> RunLoad(const RunOptions& options, const catalog::Catalog& catalog);

std::string ReportText(const RunReport& report);
std::string ReportJson(const RunReport& report);  // one line, ends with '\n'

// The body of BatchMeterUsage request `request` of `plan` (quantity 1, or 2 for conflicts): its
// records are stamped `base_seconds` minus their hours back. Exposed for the self-test.
void AppendBatchBody(const BatchPlan& plan, const BatchTargets& targets, int64_t base_seconds,
                     uint64_t request, int64_t quantity, std::string* out);

// One HTTP/1.x response at the start of `data`. Interim (1xx) responses are skipped. Framing:
// Content-Length, chunked, or (neither) the body runs to the end of the connection, which is
// complete only at `eof`.
enum class ParseResult { kIncomplete, kComplete, kMalformed };
struct ParsedResponse {
  int status = 0;
  bool close = false;                  // the server will close the connection after this
  std::string_view body;               // into `data`, or into `decoded` for a chunked body
  std::string_view error_type_header;  // x-amzn-ErrorType, when sent
  size_t consumed = 0;                 // bytes of `data` this response took
  std::string decoded;                 // storage for a chunked body (reused between calls)
};
ParseResult ParseHttpResponse(std::string_view data, bool eof, ParsedResponse* out);

// The `__type` of an AWS JSON error body without its namespace ("aws.protocols#X" and
// "X:http://..." -> "X"); else the x-amzn-ErrorType header's; else "HTTP <status>".
std::string ErrorTypeOf(int status, std::string_view body, std::string_view error_type_header);

}  // namespace meterd::bench
