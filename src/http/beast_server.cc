// HttpServer on Boost.Beast: one io_context and one SO_REUSEPORT acceptor per event-loop
// thread, so the kernel spreads connections over the loops and no lock is shared between them.
// This is the only translation unit that includes Beast (it is slow to compile).
// Boost 1.74's asio uses std::exchange without including <utility>: it must come first.
// In builds with assertions, Boost's assertions in this file go to boost::assertion_failed below.
// clang-format off
#define BOOST_ENABLE_ASSERT_DEBUG_HANDLER
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string_view>
#include <thread>
#include <vector>

#include "http/http_server.h"
#include "http/request_reader.h"

#ifndef NDEBUG
namespace boost {

// Boost.Beast 1.74's chunked-body parser asserts `n >= 5` when the last chunk arrives split
// ("0\r\n", then "\r"): the assertion is wrong (boostorg/beast#2861, fixed in later Boost)
// and the code after it correctly asks for more bytes. Builds without NDEBUG (the sanitizer and
// fuzz builds) would abort on a client that sends so; every other assertion still aborts.
void assertion_failed(char const* expr, char const* function, char const* file, long line) {
  const std::string_view path(file);
  if (std::string_view(expr) == "n >= 5" &&
      path.ends_with("boost/beast/http/impl/basic_parser.ipp")) {
    return;
  }
  std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed.\n", file, line, function, expr);
  std::abort();
}

void assertion_failed_msg(char const* expr, char const* msg, char const* function, char const* file,
                          long line) {
  std::fprintf(stderr, "%s:%ld: %s: Assertion `%s' failed: %s\n", file, line, function, expr, msg);
  std::abort();
}

}  // namespace boost
#endif

namespace meterd::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// How a request is read, shared by the server (Session) and ParseRequestBytes (the fuzzer and
// the tests): one RequestParser per request under the limits, and what a read error means.
//
// RequestParser builds the HttpRequest itself and counts the header as it goes. Beast 1.74's
// own header_limit is not cumulative: it bounds the bytes of one put() call, and fields that
// complete in earlier calls are consumed and no longer counted, so a client that sends its
// header in suitably cut segments could make a header of any size (all kept in memory). The
// count here is of the request line and fields as received ("METHOD TARGET HTTP/1.1\r\n",
// "Name: value\r\n", the final "\r\n"; optional whitespace around values excluded), so a
// header written plainly is refused exactly when it is over max_header_bytes, however it arrives.
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  explicit RequestParser(const HttpServerOptions& limits)
      : max_header_bytes_(limits.max_header_bytes), max_header_fields_(limits.max_header_fields) {
    header_limit(static_cast<uint32_t>(
        std::min<size_t>(limits.max_header_bytes, std::numeric_limits<uint32_t>::max())));
    body_limit(limits.max_body_bytes);
    request_.headers.reserve(16);
  }

  // The request read; valid once the read completed without error.
  HttpRequest& request() { return request_; }

 private:
  static constexpr size_t kRequestLineOverhead = 12;  // "  HTTP/1.1\r\n"
  static constexpr size_t kFieldOverhead = 4;         // ": " and "\r\n"

  void CountHeader(size_t bytes, beast::error_code& ec) {
    header_bytes_ += bytes;
    if (header_bytes_ > max_header_bytes_) ec = bhttp::error::header_limit;
  }

  void on_request_impl(bhttp::verb /*method*/, beast::string_view method_str,
                       beast::string_view target, int /*version*/, beast::error_code& ec) override {
    CountHeader(method_str.size() + target.size() + kRequestLineOverhead, ec);
    if (ec) return;
    request_.method.assign(method_str.data(), method_str.size());
    request_.target.assign(target.data(), target.size());
  }

  void on_response_impl(int /*code*/, beast::string_view /*reason*/, int /*version*/,
                        beast::error_code& ec) override {
    ec = bhttp::error::bad_version;  // never called for a request parser
  }

  void on_field_impl(bhttp::field /*name*/, beast::string_view name_string,
                     beast::string_view value, beast::error_code& ec) override {
    CountHeader(name_string.size() + value.size() + kFieldOverhead, ec);
    if (++header_fields_ > max_header_fields_) ec = bhttp::error::header_limit;
    if (ec) return;
    request_.headers.push_back(HttpHeader{std::string(name_string.data(), name_string.size()),
                                          std::string(value.data(), value.size())});
  }

  void on_header_impl(beast::error_code& ec) override { CountHeader(2, ec); }

  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         beast::error_code& ec) override {
    // The body limit was checked against the length before this is called.
    if (content_length) request_.body.reserve(static_cast<size_t>(*content_length));
  }

  size_t on_body_impl(beast::string_view body, beast::error_code& ec) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }

  void on_chunk_header_impl(std::uint64_t /*size*/, beast::string_view /*extensions*/,
                            beast::error_code& ec) override {}

  size_t on_chunk_body_impl(std::uint64_t /*remain*/, beast::string_view body,
                            beast::error_code& ec) override {
    request_.body.append(body.data(), body.size());
    return body.size();
  }

  void on_finish_impl(beast::error_code& ec) override {}

  size_t max_header_bytes_;
  size_t max_header_fields_;
  size_t header_bytes_ = 0;
  size_t header_fields_ = 0;
  HttpRequest request_;
};

// The answer to a read that failed with `ec`: a RejectReason, or nullopt when the connection is
// closed without one (the client left, was too slow, or sent nothing). `got_bytes`: some bytes
// of the request were received.
std::optional<RejectReason> RejectFor(beast::error_code ec, bool got_bytes) {
  if (ec == bhttp::error::body_limit) return RejectReason::kBodyTooLarge;
  if (ec == bhttp::error::header_limit) return RejectReason::kHeaderTooLarge;
  if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
    return std::nullopt;
  }
  // Bytes arrived but they are not HTTP/1.x (or stopped in the middle of a request).
  if (got_bytes) return RejectReason::kMalformed;
  return std::nullopt;
}

// A SyncReadStream over bytes that then ends: a client that sends them and shuts down its
// sending side. Each read returns at most `segment` bytes (0: as many as asked for).
class BytesReadStream {
 public:
  BytesReadStream(std::string_view bytes, size_t segment) : rest_(bytes), segment_(segment) {}

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    if (rest_.empty()) {
      ec = asio::error::eof;
      return 0;
    }
    ec = {};
    size_t n = segment_ == 0 ? rest_.size() : std::min(segment_, rest_.size());
    n = asio::buffer_copy(buffers, asio::buffer(rest_.data(), n));
    rest_.remove_prefix(n);
    return n;
  }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::string_view rest_;
  size_t segment_;
};

class BeastServer;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServerOptions& options, HttpHandler* handler,
          std::atomic<size_t>* connections)
      : stream_(std::move(socket)),
        options_(options),
        handler_(handler),
        connections_(connections) {}
  ~Session() { connections_->fetch_sub(1, std::memory_order_relaxed); }

  void Start() { ReadRequest(); }

 private:
  void ReadRequest() {
    parser_.emplace(options_);
    stream_.expires_after(std::chrono::seconds(first_request_ ? options_.request_timeout_seconds
                                                              : options_.idle_timeout_seconds));
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      std::optional<RejectReason> reason = RejectFor(ec, buffer_.size() > 0 || parser_->got_some());
      if (reason) return SendReject(*reason);
      return Close();
    }
    first_request_ = false;
    keep_alive_ = parser_->keep_alive();
    HttpRequest request = std::move(parser_->request());
    beast::error_code ignored;
    auto endpoint = stream_.socket().remote_endpoint(ignored);
    if (!ignored) request.remote_address = endpoint.address().to_string();
    // The stream must not time out while the handler (and the store) works on the request.
    stream_.expires_never();
    auto executor = stream_.get_executor();
    handler_->Handle(
        std::move(request), [self = shared_from_this(), executor](ResponseBuilder build) {
          asio::post(executor, [self, build = std::move(build)]() { self->Write(build()); });
        });
  }

  void SendReject(RejectReason reason) {
    keep_alive_ = false;
    stream_.expires_never();  // the handler may answer later (once the call's event is durable)
    auto executor = stream_.get_executor();
    handler_->RejectAsync(reason, [self = shared_from_this(), executor](ResponseBuilder build) {
      asio::post(executor, [self, build = std::move(build)]() {
        HttpResponse r = build();
        r.close_connection = true;
        self->Write(std::move(r));
      });
    });
  }

  void Write(HttpResponse r) {
    if (r.stream) return WriteStreamed(std::move(r));
    response_.emplace();
    response_->version(11);
    response_->result(static_cast<unsigned>(r.status));
    for (auto& h : r.headers) response_->insert(h.name, h.value);
    response_->body() = std::move(r.body);
    bool keep = keep_alive_ && !r.close_connection;
    response_->keep_alive(keep);
    response_->prepare_payload();
    stream_.expires_after(std::chrono::seconds(options_.request_timeout_seconds));
    bhttp::async_write(stream_, *response_,
                       [self = shared_from_this(), keep](beast::error_code ec, size_t) {
                         if (ec || !keep) return self->Close();
                         self->ReadRequest();
                       });
  }

  // --- Streamed bodies: the header with Transfer-Encoding: chunked, then one chunk per call of
  // the producer, each asked for only after the previous one was written (back-pressure), then
  // the last chunk. A producer failure closes the connection without the last chunk.
  void WriteStreamed(HttpResponse r) {
    stream_header_.emplace();
    stream_header_->version(11);
    stream_header_->result(static_cast<unsigned>(r.status));
    for (auto& h : r.headers) stream_header_->insert(h.name, h.value);
    stream_header_->chunked(true);
    stream_keep_ = keep_alive_ && !r.close_connection;
    stream_header_->keep_alive(stream_keep_);
    body_stream_ = std::move(r.stream);
    stream_serializer_.emplace(*stream_header_);
    stream_.expires_after(std::chrono::seconds(options_.request_timeout_seconds));
    bhttp::async_write_header(stream_, *stream_serializer_,
                              [self = shared_from_this()](beast::error_code ec, size_t) {
                                if (ec) return self->Close();
                                self->WriteNextChunk();
                              });
  }

  void WriteNextChunk() {
    chunk_.clear();
    HttpResponse::StreamStep step = body_stream_(&chunk_);
    if (step == HttpResponse::StreamStep::kFailed) return EndStream(false);
    const bool last = step == HttpResponse::StreamStep::kEnd;
    auto after = [self = shared_from_this(), last](beast::error_code ec, size_t) {
      if (ec) return self->EndStream(false);
      if (last) return self->WriteLastChunk();
      self->WriteNextChunk();
    };
    stream_.expires_after(std::chrono::seconds(options_.request_timeout_seconds));
    if (chunk_.empty()) {
      // An empty chunk would read as the last one: go on (or finish) without writing.
      if (last) return WriteLastChunk();
      return asio::post(stream_.get_executor(),
                        [self = shared_from_this()] { self->WriteNextChunk(); });
    }
    asio::async_write(stream_, bhttp::make_chunk(asio::buffer(chunk_)), std::move(after));
  }

  void WriteLastChunk() {
    asio::async_write(
        stream_, bhttp::make_chunk_last(),
        [self = shared_from_this()](beast::error_code ec, size_t) { self->EndStream(!ec); });
  }

  void EndStream(bool complete) {
    body_stream_ = nullptr;  // releases what the producer holds
    stream_serializer_.reset();
    stream_header_.reset();
    std::string().swap(chunk_);
    if (!complete || !stream_keep_) return Close();
    ReadRequest();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  const HttpServerOptions& options_;
  HttpHandler* handler_;
  std::atomic<size_t>* connections_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  // A streamed response in progress (WriteStreamed).
  std::optional<bhttp::response<bhttp::empty_body>> stream_header_;
  std::optional<bhttp::response_serializer<bhttp::empty_body>> stream_serializer_;
  HttpResponse::BodyStream body_stream_;
  std::string chunk_;
  bool stream_keep_ = false;
  bool keep_alive_ = true;
  bool first_request_ = true;
};

class BeastServer final : public HttpServer {
 public:
  BeastServer(const HttpServerOptions& options, HttpHandler* handler)
      : options_(options), handler_(handler) {}
  ~BeastServer() override {
    Stop();
    loops_.clear();
  }

  Result<uint16_t> Start() override {
    int threads = options_.threads > 0 ? options_.threads
                                       : static_cast<int>(std::thread::hardware_concurrency());
    if (threads < 1) threads = 1;
    beast::error_code ec;
    auto address = asio::ip::make_address(options_.host, ec);
    if (ec) return Status(StatusCode::kInvalidArgument, "bad listen address " + options_.host);
    uint16_t port = options_.port;
    for (int i = 0; i < threads; ++i) {
      auto loop = std::make_unique<Loop>();
      loop->acceptor.open(address.is_v6() ? tcp::v6() : tcp::v4(), ec);
      if (!ec) loop->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
      if (!ec) {
        int one = 1;
        if (setsockopt(loop->acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one,
                       sizeof(one)) != 0) {
          ec = beast::error_code(errno, boost::system::generic_category());
        }
      }
      if (!ec) loop->acceptor.bind(tcp::endpoint(address, port), ec);
      if (!ec) loop->acceptor.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        return Status(StatusCode::kIoError, "cannot listen on " + options_.host + ":" +
                                                std::to_string(port) + ": " + ec.message());
      }
      port = loop->acceptor.local_endpoint().port();
      loops_.push_back(std::move(loop));
    }
    for (auto& loop : loops_) {
      Accept(loop.get());
      Loop* l = loop.get();
      l->thread = std::thread([l] {
        pthread_setname_np(pthread_self(), "meterd-http");
        l->context.run();
      });
    }
    return port;
  }

  void Stop() override {
    for (auto& loop : loops_) {
      asio::post(loop->context, [l = loop.get()] {
        beast::error_code ignored;
        l->acceptor.close(ignored);
      });
      loop->context.stop();
    }
    for (auto& loop : loops_) {
      if (loop->thread.joinable()) loop->thread.join();
    }
    // The io_contexts stay alive until destruction: store callbacks may still post to them.
  }

  ConnectionStats Stats() const override {
    return ConnectionStats{accepted_.load(std::memory_order_relaxed),
                           rejected_.load(std::memory_order_relaxed),
                           connections_.load(std::memory_order_relaxed)};
  }

 private:
  struct Loop {
    asio::io_context context{1};
    tcp::acceptor acceptor{context};
    std::thread thread;
  };

  void Accept(Loop* loop) {
    loop->acceptor.async_accept(loop->context, [this, loop](beast::error_code ec,
                                                            tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !loop->acceptor.is_open()) return;
      if (!ec) {
        if (connections_.fetch_add(1, std::memory_order_relaxed) >= options_.max_connections) {
          connections_.fetch_sub(1, std::memory_order_relaxed);
          rejected_.fetch_add(1, std::memory_order_relaxed);
          beast::error_code ignored;
          socket.close(ignored);
        } else {
          accepted_.fetch_add(1, std::memory_order_relaxed);
          socket.set_option(tcp::no_delay(true), ec);
          std::make_shared<Session>(std::move(socket), options_, handler_, &connections_)->Start();
        }
      }
      Accept(loop);
    });
  }

  HttpServerOptions options_;
  HttpHandler* handler_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::atomic<size_t> connections_{0};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> rejected_{0};
};

}  // namespace

ReadResult ParseRequestBytes(std::string_view bytes, const HttpServerOptions& limits,
                             size_t segment_bytes) {
  ReadResult result;
  BytesReadStream stream(bytes, segment_bytes);
  beast::flat_buffer buffer;  // kept across requests, as a Session keeps its buffer
  for (;;) {
    RequestParser parser(limits);
    beast::error_code ec;
    bhttp::read(stream, buffer, parser, ec);
    if (ec) {
      result.reject = RejectFor(ec, buffer.size() > 0 || parser.got_some());
      return result;
    }
    result.requests.push_back(std::move(parser.request()));
    if (!parser.keep_alive()) return result;
  }
}

std::unique_ptr<HttpServer> NewBeastServer(const HttpServerOptions& options, HttpHandler* handler) {
  return std::make_unique<BeastServer>(options, handler);
}

}  // namespace meterd::http
