// AdminClient: a small synchronous HTTP/1.1 client of meterd's admin API (docs/CONTROL-PLANE.md),
// used by meterctl. admin_client.cc is the only translation unit of the client that includes
// Boost.Beast.
//
// One Call is one connection: resolve, connect, send one request with `Authorization: Bearer`,
// read one answer, close. Every step has a deadline. A Call returns the server's answer whatever
// its HTTP status; a non-ok Status means there is no answer at all (the server cannot be reached,
// timed out or sent something that is not HTTP), always as kIoError with a message that names the
// endpoint.
//
// Thread safety: an AdminClient is immutable after Create; Call may run on several threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "json/json.h"

namespace meterd::ctl {

// meterctl's exit codes (documented in `meterctl --help`).
enum ExitCode : int {
  kExitOk = 0,
  kExitRefused = 1,       // 400 InvalidArgument, or any other 4xx not below
  kExitUsage = 2,         // command-line usage error (nothing was sent)
  kExitNotFound = 3,      // 404
  kExitConflict = 4,      // 409
  kExitUnauthorized = 5,  // 401
  kExitUnavailable = 6,   // the server cannot be reached, or answered 5xx
};

// The exit code for an answer with HTTP status `status` (0 for 2xx).
int ExitCodeForHttpStatus(int status);

// An admin endpoint URL split into its parts: "http://HOST[:PORT][/BASE]". A URL without a
// scheme is taken as http. https is refused (the admin API speaks plain HTTP).
struct AdminUrl {
  std::string host;         // without the brackets of an IPv6 literal
  std::string port;         // "80" when not given
  std::string host_header;  // the Host header: host[:port] as written
  std::string base_path;    // "" or "/prefix" (no trailing '/'), put before every request path
};
Result<AdminUrl> ParseAdminUrl(std::string_view url);

// Percent-encodes one path segment or query value: everything but RFC 3986 unreserved characters
// (A-Z a-z 0-9 - . _ ~), so "/" and ":" of ARNs are encoded too.
std::string PercentEncode(std::string_view text);

// `path` followed by "?k=v&..." for the parameters with a non-empty value (values encoded).
std::string WithQuery(std::string path,
                      const std::vector<std::pair<std::string, std::string>>& params);

struct AdminResponse {
  int status = 0;
  std::string content_type;
  std::string body;
  // X-Meterd-Next-Cursor: where a paginated export (GET /v1/audit/export) continues.
  std::string next_cursor;
};

// The error of an answer that is not 2xx: the admin API's `{"code", "message"}`, or, when the
// body is not that, "HTTP <status>" and the body's text (or the reason phrase).
struct AdminError {
  std::string code;
  std::string message;
};
AdminError ErrorFromResponse(const AdminResponse& response);

struct AdminClientOptions {
  std::string endpoint = "http://127.0.0.1:8081";
  std::string token;
  // Resolving the name and connecting.
  std::chrono::milliseconds connect_timeout{5000};
  // Sending the request, and each read of the answer (a download goes on while data arrives).
  std::chrono::milliseconds request_timeout{60000};
  std::string user_agent = "meterctl";
  // Answers with a larger body are refused.
  uint64_t max_response_bytes = uint64_t{256} << 20;
};

class AdminClient {
 public:
  // Refuses an endpoint ParseAdminUrl refuses (kInvalidArgument).
  static Result<AdminClient> Create(AdminClientOptions options);

  // Sends `method` (GET, POST, PUT, PATCH, DELETE) to `path_with_query` (starting with '/',
  // already percent-encoded) with `body` serialized as application/json when given.
  Result<AdminResponse> Call(std::string_view method, std::string_view path_with_query,
                             const std::optional<json::Value>& body = std::nullopt) const;

  // --- Streamed downloads (exports): GET `path_with_query`; a 2xx body goes to `sink` a piece at
  // a time as it arrives (constant memory; `body` of the answer stays empty), any other answer's
  // body is kept as Call keeps it. A sink error stops the download and is returned. Each read
  // has the request deadline, not the whole download. Truncated bodies (the server failed in
  // the middle: no last chunk) are kIoError.
  using BodySink = std::function<Status(std::string_view piece)>;
  Result<AdminResponse> Download(std::string_view path_with_query, const BodySink& sink) const;

  const std::string& endpoint() const { return options_.endpoint; }

 private:
  Result<AdminResponse> Exchange(std::string_view method, std::string_view path_with_query,
                                 const std::optional<json::Value>& body,
                                 const BodySink* sink) const;
  AdminClient(AdminClientOptions options, AdminUrl url)
      : options_(std::move(options)), url_(std::move(url)) {}

  AdminClientOptions options_;
  AdminUrl url_;
};

}  // namespace meterd::ctl
