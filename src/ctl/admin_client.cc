// AdminClient on Boost.Beast: the only translation unit of meterctl that includes Beast.
//
// The client is synchronous to its caller but runs each step (resolve, connect, write, read) as
// an asynchronous operation on a private io_context: Beast's deadlines (tcp_stream::expires_after)
// only apply to asynchronous operations.
// Boost 1.74's asio uses std::exchange without including <utility>: it must come first.
// clang-format off
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on

#include "ctl/admin_client.h"

#include <cctype>
#include <limits>
#include <string>

namespace meterd::ctl {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

std::string Seconds(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

}  // namespace

int ExitCodeForHttpStatus(int status) {
  if (status >= 200 && status < 300) return kExitOk;
  if (status == 401) return kExitUnauthorized;
  if (status == 404) return kExitNotFound;
  if (status == 409) return kExitConflict;
  if (status >= 400 && status < 500) return kExitRefused;
  return kExitUnavailable;  // 5xx, and anything else the admin API never answers
}

Result<AdminUrl> ParseAdminUrl(std::string_view url) {
  const std::string original(url);
  auto bad = [&](const std::string& why) {
    return Status(StatusCode::kInvalidArgument, "invalid endpoint '" + original + "': " + why);
  };
  if (url.empty()) return bad("empty");
  if (size_t scheme_end = url.find("://"); scheme_end != std::string_view::npos) {
    std::string scheme(url.substr(0, scheme_end));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (scheme == "https") {
      return bad(
          "https is not supported: the admin API speaks plain HTTP (reach a remote one "
          "through an SSH tunnel)");
    }
    if (scheme != "http") return bad("the scheme must be http");
    url.remove_prefix(scheme_end + 3);
  }
  if (url.find_first_of("?#") != std::string_view::npos) {
    return bad("no query or fragment allowed");
  }
  AdminUrl out;
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view path = url.substr(slash);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    out.base_path = std::string(path);
  }
  if (authority.empty()) return bad("no host");
  if (authority.find('@') != std::string_view::npos) return bad("no user information allowed");
  out.host_header = std::string(authority);
  std::string_view port;
  if (authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad("unexpected text after the IPv6 address");
      port = rest.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return bad("no host");
  if (port.empty()) {
    out.port = "80";
  } else {
    if (port.size() > 5) return bad("invalid port");
    int value = 0;
    for (char c : port) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return bad("invalid port");
      value = value * 10 + (c - '0');
    }
    if (value < 1 || value > 65535) return bad("invalid port");
    out.port = std::string(port);
  }
  return out;
}

std::string PercentEncode(std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c)) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string WithQuery(std::string path,
                      const std::vector<std::pair<std::string, std::string>>& params) {
  char separator = path.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [name, value] : params) {
    if (value.empty()) continue;
    path += separator;
    path += PercentEncode(name);
    path += '=';
    path += PercentEncode(value);
    separator = '&';
  }
  return path;
}

AdminError ErrorFromResponse(const AdminResponse& response) {
  auto parsed = json::Parse(response.body);
  if (parsed.ok() && parsed->is_object()) {
    const json::Value* code = parsed->Find("code");
    const json::Value* message = parsed->Find("message");
    if (code != nullptr && code->is_string() && !code->text().empty()) {
      return {code->text(), message != nullptr && message->is_string() ? message->text() : ""};
    }
  }
  AdminError error{"HTTP " + std::to_string(response.status), ""};
  std::string text = response.body;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (text.size() > 500) text = text.substr(0, 500) + "...";
  if (text.empty()) {
    text = std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(response.status)));
  }
  error.message = text;
  return error;
}

Result<AdminClient> AdminClient::Create(AdminClientOptions options) {
  auto url = ParseAdminUrl(options.endpoint);
  if (!url.ok()) return url.status();
  return AdminClient(std::move(options), std::move(url).value());
}

Result<AdminResponse> AdminClient::Call(std::string_view method, std::string_view path_with_query,
                                        const std::optional<json::Value>& body) const {
  return Exchange(method, path_with_query, body, nullptr);
}

Result<AdminResponse> AdminClient::Download(std::string_view path_with_query,
                                            const BodySink& sink) const {
  return Exchange("GET", path_with_query, std::nullopt, &sink);
}

Result<AdminResponse> AdminClient::Exchange(std::string_view method,
                                            std::string_view path_with_query,
                                            const std::optional<json::Value>& body,
                                            const BodySink* sink) const {
  const bhttp::verb verb = bhttp::string_to_verb(beast::string_view(method.data(), method.size()));
  if (verb == bhttp::verb::unknown) {
    return Status(StatusCode::kInvalidArgument, "unknown HTTP method " + std::string(method));
  }
  const std::string& where = options_.endpoint;
  auto io_error = [](std::string message) {
    return Status(StatusCode::kIoError, std::move(message));
  };

  bhttp::request<bhttp::string_body> request{verb, url_.base_path + std::string(path_with_query),
                                             11};
  request.set(bhttp::field::host, url_.host_header);
  request.set(bhttp::field::user_agent, options_.user_agent);
  request.set(bhttp::field::accept, "application/json");
  request.set(bhttp::field::authorization, "Bearer " + options_.token);
  request.set(bhttp::field::connection, "close");
  if (body.has_value()) {
    request.set(bhttp::field::content_type, "application/json");
    request.body() = json::Serialize(*body);
  }
  request.prepare_payload();

  asio::io_context ioc;
  beast::error_code ec;

  // Resolve, under the connect deadline (the resolver has no deadline of its own).
  tcp::resolver resolver(ioc);
  asio::steady_timer resolve_timer(ioc);
  tcp::resolver::results_type endpoints;
  bool resolve_timed_out = false;
  resolver.async_resolve(url_.host, url_.port,
                         [&](const beast::error_code& e, tcp::resolver::results_type results) {
                           ec = e;
                           endpoints = std::move(results);
                           resolve_timer.cancel();
                         });
  resolve_timer.expires_after(options_.connect_timeout);
  resolve_timer.async_wait([&](const beast::error_code& e) {
    if (e) return;  // cancelled: the name was resolved in time
    resolve_timed_out = true;
    resolver.cancel();
  });
  ioc.run();
  if (resolve_timed_out) {
    return io_error("cannot reach the admin API at " + where + ": resolving " + url_.host +
                    " timed out after " + Seconds(options_.connect_timeout));
  }
  if (ec) {
    return io_error("cannot reach the admin API at " + where + ": cannot resolve " + url_.host +
                    ": " + ec.message());
  }

  // Connect.
  beast::tcp_stream stream(ioc);
  stream.expires_after(options_.connect_timeout);
  stream.async_connect(endpoints,
                       [&](const beast::error_code& e, const tcp::endpoint&) { ec = e; });
  ioc.restart();
  ioc.run();
  if (ec == beast::error::timeout) {
    return io_error("cannot reach the admin API at " + where + ": connecting timed out after " +
                    Seconds(options_.connect_timeout));
  }
  if (ec) {
    std::string hint;
    if (ec == asio::error::connection_refused) {
      hint = " (is `meterd serve` running, with its admin API on this address? see --endpoint)";
    }
    return io_error("cannot reach the admin API at " + where + ": " + ec.message() + hint);
  }

  // Send the request and read the answer, both under the request deadline.
  stream.expires_after(options_.request_timeout);
  bhttp::async_write(stream, request, [&](const beast::error_code& e, size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  if (ec == beast::error::timeout) {
    return io_error("the admin API at " + where + " did not take the request within " +
                    Seconds(options_.request_timeout));
  }
  // A write error (the server closed early) may still leave an answer to read: try it.
  const beast::error_code write_error = ec;

  // The answer: the header, then the body a piece at a time, each read under the request
  // deadline (a long download goes on as long as the server keeps sending). A 2xx body goes to
  // `sink` when there is one; any other body is kept, up to max_response_bytes.
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());  // enforced below, per use
  auto read_error = [&]() -> Status {
    if (ec == beast::error::timeout) {
      return io_error("no answer from the admin API at " + where + " within " +
                      Seconds(options_.request_timeout) + " (see --timeout)");
    }
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof) {
      return io_error(std::string("the admin API at ") + where +
                      (parser.is_header_done()
                           ? " closed the connection in the middle of the answer"
                           : " closed the connection without an answer") +
                      (write_error ? " (" + write_error.message() + ")" : std::string()));
    }
    return io_error("cannot read the answer of the admin API at " + where + ": " + ec.message() +
                    " (is this meterd's admin API?)");
  };
  stream.expires_after(options_.request_timeout);
  bhttp::async_read_header(stream, buffer, parser,
                           [&](const beast::error_code& e, size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  if (ec) return read_error();
  AdminResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  if (auto it = parser.get().find(bhttp::field::content_type); it != parser.get().end()) {
    out.content_type = std::string(it->value());
  }
  if (auto it = parser.get().find("X-Meterd-Next-Cursor"); it != parser.get().end()) {
    out.next_cursor = std::string(it->value());
  }
  const bool to_sink = sink != nullptr && out.status >= 200 && out.status < 300;
  std::vector<char> piece(size_t{64} << 10);
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    stream.expires_after(options_.request_timeout);
    bhttp::async_read(stream, buffer, parser, [&](const beast::error_code& e, size_t) { ec = e; });
    ioc.restart();
    ioc.run();
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) return read_error();
    const size_t n = piece.size() - parser.get().body().size;
    if (to_sink) {
      METERD_RETURN_IF_ERROR((*sink)(std::string_view(piece.data(), n)));
    } else {
      if (out.body.size() + n > options_.max_response_bytes) {
        return io_error("the answer of the admin API at " + where + " is larger than " +
                        std::to_string(options_.max_response_bytes) + " bytes");
      }
      out.body.append(piece.data(), n);
    }
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  return out;
}

}  // namespace meterd::ctl
