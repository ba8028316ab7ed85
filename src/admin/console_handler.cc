#include "admin/console_handler.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "json/json.h"

namespace meterd::admin {

namespace {

constexpr size_t kMaxFiles = 256;
constexpr size_t kMaxTotalBytes = size_t{64} * 1024 * 1024;

// Only the listener's own scripts, styles, images and API; no inline scripts or styles (Chart.js
// sizes its canvas through the CSSOM, which style-src does not govern), no frames, no plugins.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::string ConsoleContentType(std::string_view file_name) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".woff2", "font/woff2"},
  };
  for (const auto& [extension, type] : kTypes) {
    if (EndsWith(file_name, extension)) return std::string(type);
  }
  return "application/octet-stream";
}

Result<ConsoleFiles> ConsoleFiles::Load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root(dir);
  if (!fs::is_regular_file(root / "index.html", ec)) {
    return Status(StatusCode::kNotFound, "no console at " + dir + " (no index.html)");
  }
  ConsoleFiles files;
  size_t total = 0;
  fs::recursive_directory_iterator it(root, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    if (files.files_.size() == kMaxFiles) {
      return Status(StatusCode::kInvalidArgument, dir + " holds more than 256 files");
    }
    std::ifstream in(it->path(), std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in) return Status(StatusCode::kIoError, "cannot read " + it->path().string());
    total += body.str().size();
    if (total > kMaxTotalBytes) {
      return Status(StatusCode::kInvalidArgument, dir + " holds more than 64 MiB");
    }
    std::string name = it->path().lexically_relative(root).generic_string();
    files.files_[name] = File{ConsoleContentType(name), std::move(body).str()};
  }
  if (ec) return Status(StatusCode::kIoError, "cannot list " + dir + ": " + ec.message());
  return files;
}

const ConsoleFiles::File* ConsoleFiles::Find(std::string_view url_path) const {
  std::string_view name = url_path;
  if (name == "/") name = "/index.html";
  if (name.empty() || name.front() != '/') return nullptr;
  name.remove_prefix(1);
  auto it = files_.find(name);
  return it == files_.end() ? nullptr : &it->second;
}

std::optional<HttpResponse> ConsoleHandler::Serve(const HttpRequest& request) const {
  if (request.method != "GET") return std::nullopt;
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path != "/" && path != "/index.html" && path.substr(0, 8) != "/assets/") return std::nullopt;

  HttpResponse r;
  const ConsoleFiles::File* file = files_->Find(path);
  if (file == nullptr) {
    r.status = 404;
    r.headers.push_back({"Content-Type", "application/json"});
    r.body = json::Serialize(json::Value::Object(
        {{"code", json::Value::String("NotFound")},
         {"message",
          json::Value::String(files_->size() == 0 ? missing_reason_ : "no such console file")}}));
    r.body.push_back('\n');
    return r;
  }
  r.headers.push_back({"Content-Type", file->content_type});
  r.headers.push_back({"Content-Security-Policy", std::string(kContentSecurityPolicy)});
  r.headers.push_back({"X-Content-Type-Options", "nosniff"});
  r.headers.push_back({"X-Frame-Options", "DENY"});
  r.headers.push_back({"Referrer-Policy", "no-referrer"});
  // The files change when meterd's build does; the browser asks again each time (they are small).
  r.headers.push_back({"Cache-Control", "no-cache"});
  r.body = file->body;
  return r;
}

void ConsoleHandler::Handle(HttpRequest request, http::Responder respond) {
  if (std::optional<HttpResponse> answer = Serve(request)) {
    respond([answer = std::move(*answer)]() mutable { return std::move(answer); });
    return;
  }
  next_->Handle(std::move(request), std::move(respond));
}

}  // namespace meterd::admin
