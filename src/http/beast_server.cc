// HttpServer on Boost.Beast: one io_context and one SO_REUSEPORT acceptor per event-loop
// thread, so the kernel spreads connections over the loops and no lock is shared between them.
// This is the only translation unit that includes Beast (it is slow to compile).
// Boost 1.74's asio uses std::exchange without including <utility>: it must come first.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on

#include <pthread.h>

#include <atomic>
#include <thread>
#include <vector>

#include "http/http_server.h"

namespace meterd::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

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
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    parser_->body_limit(options_.max_body_bytes);
    stream_.expires_after(std::chrono::seconds(first_request_ ? options_.request_timeout_seconds
                                                              : options_.idle_timeout_seconds));
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec) {
      if (ec == bhttp::error::body_limit) return SendReject(RejectReason::kBodyTooLarge);
      if (ec == bhttp::error::header_limit) return SendReject(RejectReason::kHeaderTooLarge);
      if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
          ec == asio::error::eof || ec == asio::error::connection_reset ||
          ec == asio::error::operation_aborted) {
        return Close();
      }
      // Bytes arrived but they are not HTTP/1.x.
      if (buffer_.size() > 0 || parser_->got_some()) return SendReject(RejectReason::kMalformed);
      return Close();
    }
    first_request_ = false;
    auto& msg = parser_->get();
    HttpRequest request;
    request.method = std::string(msg.method_string());
    request.target = std::string(msg.target());
    request.headers.reserve(16);
    for (const auto& field : msg) {
      request.headers.push_back(
          HttpHeader{std::string(field.name_string()), std::string(field.value())});
    }
    request.body = std::move(msg.body());
    beast::error_code ignored;
    auto endpoint = stream_.socket().remote_endpoint(ignored);
    if (!ignored) request.remote_address = endpoint.address().to_string();
    keep_alive_ = msg.keep_alive();
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
    HttpResponse r = handler_->Reject(reason);
    r.close_connection = true;
    Write(std::move(r));
  }

  void Write(HttpResponse r) {
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
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
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
          beast::error_code ignored;
          socket.close(ignored);
        } else {
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
};

}  // namespace

std::unique_ptr<HttpServer> NewBeastServer(const HttpServerOptions& options, HttpHandler* handler) {
  return std::make_unique<BeastServer>(options, handler);
}

}  // namespace meterd::http
