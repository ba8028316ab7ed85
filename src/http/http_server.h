// The HTTP seam. HttpHandler is what the API implements; HttpServer is what serves it
// (Boost.Beast, in beast_server.cc, the only translation unit that includes Beast).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "common/http_message.h"
#include "common/status.h"

namespace meterd::http {

enum class RejectReason {
  kBodyTooLarge,    // Content-Length or chunked body reached the body limit
  kHeaderTooLarge,  // request line plus headers over the header limit, or too many fields
  kMalformed,       // not HTTP/1.x
};

// Builds a response. The server runs it on the connection's own event loop, so that encoding
// never happens on whichever thread completed the work (e.g. the store's single writer).
using ResponseBuilder = std::function<HttpResponse()>;
// Hands a builder to the server. Callable from any thread, exactly once per request.
using Responder = std::function<void(ResponseBuilder)>;

// Implementations must be thread-safe: Handle is called concurrently from every event loop.
class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // Handles one request. Must call `respond` exactly once; it may do so from any thread, and
  // after Handle has returned (e.g. when a store commit completes).
  virtual void Handle(HttpRequest request, Responder respond) = 0;
  // The response for a request that could not be read whole. The connection is closed after it.
  virtual HttpResponse Reject(RejectReason reason) = 0;
  // What the server calls: the same response, handed to `respond` (exactly once, from any
  // thread), so that a handler can make something durable first (the audit trail, D17). The
  // default answers Reject(reason) at once.
  virtual void RejectAsync(RejectReason reason, Responder respond) {
    Responder send = std::move(respond);
    send([r = Reject(reason)]() mutable { return std::move(r); });
  }
};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: the kernel picks; Start() returns the port
  int threads = 0;    // event loops; 0: one per core
  size_t max_header_bytes = size_t{16} * 1024;
  size_t max_header_fields = 100;  // header fields of one request (SDKs send about 10)
  size_t max_body_bytes = size_t{1024} * 1024 - 1;  // D7: a body of 1 MiB or more is refused
  int idle_timeout_seconds = 60;                    // keep-alive connection with no request
  int request_timeout_seconds = 30;                 // to receive one whole request
  size_t max_connections = 10000;
};

// What one server's acceptors saw since Start (read at any time, e.g. by a metrics scrape).
struct ConnectionStats {
  uint64_t accepted = 0;  // connections taken and served
  uint64_t rejected = 0;  // closed at once because max_connections were open
  uint64_t open = 0;      // open now
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Binds and starts the event loops. Returns the bound port.
  virtual Result<uint16_t> Start() = 0;
  // Stops accepting, closes connections, joins the event loops. Idempotent.
  virtual void Stop() = 0;
  // Thread-safe.
  virtual ConnectionStats Stats() const = 0;
};

// `handler` is not owned and must outlive the server.
std::unique_ptr<HttpServer> NewBeastServer(const HttpServerOptions& options, HttpHandler* handler);

}  // namespace meterd::http
