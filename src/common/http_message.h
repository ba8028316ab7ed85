// Plain HTTP request/response values passed between the HTTP server and the handlers. Kept free
// of any HTTP library so that handlers and their tests do not depend on Boost.Beast.
#pragma once

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
};

}  // namespace meterd
