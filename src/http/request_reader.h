// Reading HTTP/1.1 requests from a buffer exactly as the server reads them from a connection:
// the same parser (RequestParser in beast_server.cc: the header and body limits, the HttpRequest
// it builds, the keep-alive decision) and the same mapping of a read error to a RejectReason.
// Defined in beast_server.cc (the only translation unit that includes Beast); it exists so that
// the request reader can be fuzzed (fuzz/http_request_fuzz.cc) and tested without sockets.
//
// The header limit counts the request line and the header fields as received, the whitespace
// around field values excepted: a header written plainly is refused exactly when it is over
// max_header_bytes, however its bytes are split.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "common/http_message.h"
#include "http/http_server.h"

namespace meterd::http {

struct ReadResult {
  // The whole requests read, in order: several when the client pipelines. Reading stops after a
  // request that does not keep the connection alive (the server closes after its response).
  std::vector<HttpRequest> requests;
  // Set when reading stopped at a request the server refuses (it answers with
  // HttpHandler::Reject and closes the connection).
  std::optional<RejectReason> reject;
};

// Reads `bytes` as what a client sent on one connection before closing its sending side (as a
// connection would deliver them in `segment_bytes` pieces at most; 0: as many as the server
// reads at once). Only the limits of `limits` are used (max_header_bytes, max_header_fields,
// max_body_bytes).
// Bytes that end inside a request are refused as kMalformed, as the server does when the client
// half-closes in the middle of a request.
ReadResult ParseRequestBytes(std::string_view bytes, const HttpServerOptions& limits,
                             size_t segment_bytes = 0);

}  // namespace meterd::http
