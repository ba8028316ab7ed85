// The access log: one JSON line per metering API call (accepted or refused, including requests
// refused before they were read whole), written by an ApiCallObserver:
//
//   {"time":"2024-05-01T10:00:00.123Z","request_id":"...","operation":"BatchMeterUsage",
//    "region":"us-east-1","access_key_id":"AKIA...","account":"111122223333","workload_id":"",
//    "source_ip":"127.0.0.1","user_agent":"Boto3/...","status":200,"error_type":"",
//    "error_message":"","latency_ms":1.234,"throttled":false,"fault_injected":false,
//    "records":{"success":25,"duplicate":0,"customer_not_subscribed":0,"unprocessed":0}}
//
// Never a secret: an access key id names a credential (it is not one); secrets and session
// tokens travel in headers that ApiCall never holds, and request and response bodies are not
// logged. Thread-safe: each line is appended whole with one write(2) (O_APPEND).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "protocol/api_call.h"

namespace meterd::observability {

class AccessLog final : public protocol::ApiCallObserver {
 public:
  // `target`: "stderr", "stdout" or a file path (created 0600, appended to).
  static Result<std::unique_ptr<AccessLog>> Open(const std::string& target);
  ~AccessLog() override;

  void OnApiCall(const protocol::ApiCall& call) override;

  // The line written for `call` (tests).
  static std::string FormatLine(const protocol::ApiCall& call);

 private:
  AccessLog(int fd, bool owned) : fd_(fd), owned_(owned) {}
  const int fd_;
  const bool owned_;
};

}  // namespace meterd::observability
