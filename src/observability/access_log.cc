#include "observability/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/time_util.h"
#include "json/json.h"
#include "observability/log.h"

namespace meterd::observability {

namespace {

void AppendMember(std::string* out, std::string_view key, std::string_view value) {
  out->push_back(',');
  json::AppendQuoted(out, key);
  out->push_back(':');
  json::AppendQuoted(out, value);
}

void AppendRaw(std::string* out, std::string_view key, std::string_view raw) {
  out->push_back(',');
  json::AppendQuoted(out, key);
  out->push_back(':');
  out->append(raw);
}

}  // namespace

Result<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& target) {
  if (target == "stderr") return std::unique_ptr<AccessLog>(new AccessLog(2, false));
  if (target == "stdout") return std::unique_ptr<AccessLog>(new AccessLog(1, false));
  int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kIoError,
                  "cannot open the access log " + target + ": " + std::strerror(errno));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(fd, true));
}

AccessLog::~AccessLog() {
  if (owned_) ::close(fd_);
}

std::string AccessLog::FormatLine(const protocol::ApiCall& call) {
  std::string line;
  line.reserve(512);
  line += "{\"time\":";
  json::AppendQuoted(&line, FormatIso8601(call.received_ms));
  AppendMember(&line, "request_id", call.request_id);
  AppendMember(&line, "operation", call.operation);
  AppendMember(&line, "region", call.region);
  AppendMember(&line, "access_key_id", call.access_key_id);
  AppendMember(&line, "account", call.account);
  AppendMember(&line, "workload_id", call.workload_id);
  AppendMember(&line, "source_ip", call.source_ip);
  AppendMember(&line, "user_agent", call.user_agent);
  AppendRaw(&line, "status", std::to_string(call.http_status));
  AppendMember(&line, "error_type", call.error_code);
  AppendMember(&line, "error_message", call.error_message);
  char latency[32];
  std::snprintf(latency, sizeof(latency), "%.3f", static_cast<double>(call.latency_us) / 1000.0);
  AppendRaw(&line, "latency_ms", latency);
  AppendRaw(&line, "throttled", call.throttled ? "true" : "false");
  AppendRaw(&line, "fault_injected", call.fault_injected ? "true" : "false");
  const protocol::RecordCounts& r = call.records;
  line += ",\"records\":{\"success\":" + std::to_string(r.success) +
          ",\"duplicate\":" + std::to_string(r.duplicate) +
          ",\"customer_not_subscribed\":" + std::to_string(r.customer_not_subscribed) +
          ",\"unprocessed\":" + std::to_string(r.unprocessed) + "}}\n";
  return line;
}

void AccessLog::OnApiCall(const protocol::ApiCall& call) { log::WriteWhole(fd_, FormatLine(call)); }

}  // namespace meterd::observability
