#include "observability/ops_endpoints.h"

#include <future>
#include <memory>

#include "json/json.h"

namespace meterd::observability {

namespace {

using json::Value;

HttpResponse Answer(int status, std::string content_type, std::string body) {
  HttpResponse r;
  r.status = status;
  r.headers.push_back({"Content-Type", std::move(content_type)});
  r.headers.push_back({"Cache-Control", "no-store"});
  r.body = std::move(body);
  return r;
}

HttpResponse JsonAnswer(int status, const Value& body) {
  return Answer(status, "application/json", json::Serialize(body) + "\n");
}

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

HttpResponse OpsEndpoints::Serve(const HttpRequest& request, std::string_view path) {
  if (request.method != "GET" && request.method != "HEAD") {
    HttpResponse r = JsonAnswer(
        405, Value::Object({{"code", Value::String("MethodNotAllowed")},
                            {"message", Value::String(request.method + " is not allowed here")}}));
    r.headers.push_back({"Allow", "GET, HEAD"});
    return r;
  }
  if (path == "/healthz") return JsonAnswer(200, Value::Object({{"status", Value::String("ok")}}));
  if (path == "/readyz") return Readyz();
  return Answer(200, std::string(kPrometheusContentType), metrics_->Render());
}

std::string OpsEndpoints::CheckStore() {
  // A read through the writer: it proves the writer thread takes work and the store answers.
  // The unit never fails its group (other units share the transaction): it reports its read.
  auto answered = std::make_shared<std::promise<std::string>>();
  std::future<std::string> answer = answered->get_future();
  auto read = std::make_shared<std::string>();
  store::WriteUnit unit;
  unit.apply = [read](store::Transaction& txn) {
    auto latest = txn.LatestCatalog();
    if (!latest.ok()) *read = "the store cannot be read: " + latest.status().ToString();
    return Status::Ok();
  };
  unit.done = [answered, read](const Status& st) {
    answered->set_value(st.ok() ? *read : "the store's transaction failed: " + st.ToString());
  };
  store_->Submit(std::move(unit));
  if (answer.wait_for(kStoreProbeTimeout) != std::future_status::ready) {
    return "the store did not answer within " + std::to_string(kStoreProbeTimeout.count()) +
           " ms (writer queue depth " + std::to_string(store_->Stats().queue_depth) + ")";
  }
  if (std::string problem = answer.get(); !problem.empty()) return problem;
  const store::StoreStats stats = store_->Stats();
  if (stats.last_error_steady_ms != 0) {
    const int64_t age_ms = SteadyMillis() - stats.last_error_steady_ms;
    if (age_ms < kStoreErrorWindow.count()) {
      return "a group commit failed " + std::to_string(age_ms / 1000) +
             " s ago: " + stats.last_error;
    }
  }
  return "";
}

HttpResponse OpsEndpoints::Readyz() {
  bool ready = true;
  std::vector<Value::Member> checks;
  auto check = [&](const char* name, const std::string& problem, const std::string& ok_detail) {
    const bool ok = problem.empty();
    ready = ready && ok;
    checks.emplace_back(name, Value::Object({{"ok", Value::Bool(ok)},
                                             {"detail", Value::String(ok ? ok_detail : problem)}}));
  };
  check("catalog", catalog_loaded_.load() ? "" : "the catalog is not loaded yet",
        "version " + std::to_string(catalog_version_()));
  check("api", serving_.load() ? "" : "the metering API is not listening", "listening");
  check("store", CheckStore(), "answering");
  return JsonAnswer(ready ? 200 : 503,
                    Value::Object({{"status", Value::String(ready ? "ready" : "unavailable")},
                                   {"checks", Value::Object(std::move(checks))}}));
}

}  // namespace meterd::observability
