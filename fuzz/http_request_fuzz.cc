// Fuzzes the HTTP request reader (http/request_reader.h): the bytes a client sends on one
// connection, read by the server's own parser under its limits (header bytes, body limit,
// chunked bodies, pipelining, and the RejectReason of what is refused). Each input is read with
// the server's limits and with tight ones, whole and in small segments (as TCP may deliver it),
// with oracles:
//   - no request has a body over the body limit, or a request line plus header fields (as
//     counted by RequestParser: without the whitespace around values) over the header limit;
//   - the segments do not change the requests read. The one tolerated difference is at the
//     header limit: Beast's own per-call limit counts raw bytes (whitespace too) over what one
//     call sees, so a split reading may refuse kHeaderTooLarge where the whole one accepts; and
//     when both refuse the same request, for bytes that break several rules, the reason may
//     differ.
// Seeds: fuzz/corpus/http_request/ (raw request bytes).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/http_server.h"
#include "http/request_reader.h"

namespace {

using meterd::HttpRequest;
using meterd::http::HttpServerOptions;
using meterd::http::ParseRequestBytes;
using meterd::http::ReadResult;
using meterd::http::RejectReason;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

bool SameRequest(const HttpRequest& a, const HttpRequest& b) {
  if (a.method != b.method || a.target != b.target || a.body != b.body ||
      a.headers.size() != b.headers.size()) {
    return false;
  }
  for (size_t i = 0; i < a.headers.size(); ++i) {
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) {
      return false;
    }
  }
  return true;
}

void CheckLimits(const ReadResult& result, const HttpServerOptions& limits) {
  for (const HttpRequest& r : result.requests) {
    Check(r.body.size() <= limits.max_body_bytes);
    size_t header = r.method.size() + r.target.size() + 12 + 2;  // "  HTTP/1.1\r\n", "\r\n"
    for (const auto& h : r.headers) header += h.name.size() + h.value.size() + 4;
    Check(header <= limits.max_header_bytes);
  }
}

void CheckSameAnswer(const ReadResult& whole, const ReadResult& split) {
  size_t common = std::min(whole.requests.size(), split.requests.size());
  for (size_t i = 0; i < common; ++i) Check(SameRequest(whole.requests[i], split.requests[i]));
  if (whole.requests.size() == split.requests.size() && whole.reject == split.reject) return;
  const auto header_limit = RejectReason::kHeaderTooLarge;
  if (whole.requests.size() == split.requests.size()) {
    // Both refused the same request. Which limit or syntax error Beast meets first in bytes that
    // break several rules depends on where it stood when each piece arrived (e.g. a malformed
    // header over the limit; a bad chunk extension whose chunk Beast counted again against the
    // body limit); any refusal answers 400 and closes.
    Check(whole.reject.has_value() && split.reject.has_value());
    return;
  }
  // Split, Beast's raw count may pass the limit where ours does not.
  Check(split.requests.size() == common && split.reject == header_limit);
}

void ReadWith(std::string_view bytes, const HttpServerOptions& limits, size_t segment) {
  ReadResult whole = ParseRequestBytes(bytes, limits);
  CheckLimits(whole, limits);
  ReadResult split = ParseRequestBytes(bytes, limits, segment);
  CheckLimits(split, limits);
  CheckSameAnswer(whole, split);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t segment = size == 0 ? 1 : 1 + data[size - 1] % 16;
  static const HttpServerOptions server_limits;  // what `meterd serve` reads with
  ReadWith(bytes, server_limits, segment);
  static const HttpServerOptions tight_limits = [] {
    HttpServerOptions limits;
    limits.max_header_bytes = 256;
    limits.max_body_bytes = 64;
    return limits;
  }();
  ReadWith(bytes, tight_limits, segment);
  return 0;
}
