// The web console (console/ at the repo root, bundled at build time into static files) served at
// `/` of the admin listener. ConsoleFiles holds the files, read once at start from a directory;
// ConsoleHandler answers GET of `/`, `/index.html` and `/assets/...` from them and hands every
// other request to the admin API's handler unchanged.
//
// The files need no token: they hold no data. Every data call the page makes carries the bearer
// token the user typed, and the admin API checks it as for any client. The files are answered
// with a Content-Security-Policy that allows only the listener's own scripts, styles and API
// (no inline scripts, no external resources).
//
// Thread-safe: both are immutable after construction.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/http_message.h"
#include "common/status.h"
#include "http/http_server.h"

namespace meterd::admin {

class ConsoleFiles {
 public:
  struct File {
    std::string content_type;
    std::string body;
  };

  // No files: every console path answers 404 (the console was not built).
  ConsoleFiles() = default;

  // Reads every regular file under `dir` (symbolic links are not followed), keyed by its path
  // relative to `dir` ("index.html", "assets/console.js"). Fails when `dir` has no index.html,
  // holds more than 256 files or more than 64 MiB: a console directory is small.
  static Result<ConsoleFiles> Load(const std::string& dir);

  // The file for a URL path ("/" is index.html); nullptr when there is none.
  const File* Find(std::string_view url_path) const;
  size_t size() const { return files_.size(); }

 private:
  std::map<std::string, File, std::less<>> files_;
};

// The Content-Type meterd sends for a file name's extension.
std::string ConsoleContentType(std::string_view file_name);

class ConsoleHandler final : public http::HttpHandler {
 public:
  // Neither pointer is owned; both must outlive the handler. `missing_reason` is the message of
  // the 404 answered for console paths when `files` is empty.
  ConsoleHandler(const ConsoleFiles* files, http::HttpHandler* next, std::string missing_reason)
      : files_(files), next_(next), missing_reason_(std::move(missing_reason)) {}

  void Handle(HttpRequest request, http::Responder respond) override;
  HttpResponse Reject(http::RejectReason reason) override { return next_->Reject(reason); }

  // The answer for a console path, or nothing when the request is not the console's (exposed
  // for unit tests; Handle calls it).
  std::optional<HttpResponse> Serve(const HttpRequest& request) const;

 private:
  const ConsoleFiles* files_;
  http::HttpHandler* next_;
  const std::string missing_reason_;
};

}  // namespace meterd::admin
