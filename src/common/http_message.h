// Plain HTTP request/response values passed between the HTTP server and the handlers. Kept free
// of any HTTP library so that handlers and their tests do not depend on Boost.Beast.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace meterd {

struct HttpHeader {
  std::string name;  // as received (any case)
  std::string value;
};

struct HttpRequest {
  std::string method;
  std::string target;  // path plus optional "?query"
  std::vector<HttpHeader> headers;
  std::string body;
  std::string remote_address;

  // Case-insensitive lookup of the first header named `lower_name` (given in lower case).
  const std::string* FindHeader(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::vector<HttpHeader> headers;
  std::string body;
  bool close_connection = false;

  // --- Streamed bodies (exports): when `stream` is set, `body` is ignored and the server sends
  // the body with Transfer-Encoding: chunked, asking for each next piece only after the previous
  // one was written to the socket (back-pressure: the producer never runs ahead of the client).
  // The producer appends the next piece to `*chunk` (which it gets empty) and says whether more
  // follows. kFailed ends the connection without the last chunk, so the client sees a truncated
  // body rather than a short one that looks whole. It runs on the connection's event loop.
  enum class StreamStep { kMore, kEnd, kFailed };
  using BodyStream = std::function<StreamStep(std::string* chunk)>;
  BodyStream stream;
};

}  // namespace meterd
