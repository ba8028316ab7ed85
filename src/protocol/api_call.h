// ApiCall: one metering API call as it ended, and the ApiCallObserver seam through which the
// audit trail, the access log and the metrics see every call - accepted or refused, including
// requests refused before they could be read whole - without knowing the wire.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "json/json.h"

namespace meterd::protocol {

// Per-record outcomes of one BatchMeterUsage call (MeterUsage stores one record: success=1).
struct RecordCounts {
  int success = 0;
  int duplicate = 0;
  int customer_not_subscribed = 0;
  int unprocessed = 0;
};

struct ApiCall {
  std::string request_id;
  std::string operation;      // "BatchMeterUsage", ...; empty when no known operation was named
  std::string region;         // from the verified SigV4 scope; empty when the signature failed
  std::string access_key_id;  // verified key; empty when the signature failed
  // The access key and region the Authorization header claims, also when the signature failed
  // (the audit trail records who tried); empty when the header does not parse.
  std::string claimed_access_key_id;
  std::string claimed_region;
  std::string account;      // the caller's account (a workload's buyer, or the seller)
  std::string workload_id;  // the calling workload; empty for seller credentials
  std::string source_ip;
  std::string user_agent;
  int64_t received_ms = 0;  // wall clock when the request was read whole
  int64_t latency_us = 0;   // from then until the response was built
  int http_status = 0;
  std::string error_code;  // the AWS error shape name; empty on success
  std::string error_message;
  bool throttled = false;       // refused by the real throttle (D14)
  bool fault_injected = false;  // an injected fault decided the answer (see metering/faults.h)
  RecordCounts records;
  // The request: parsed once by the handler and handed over when the call got that far
  // (request_json), else the body text as sent (request_body; empty when the call never got past
  // the route). The response body as sent. Metering requests carry no secrets: credentials travel
  // in headers, which are never copied here.
  std::optional<json::Value> request_json;
  std::string request_body;
  std::string response_body;
};

// Sees every call once, after its response was built, on the event loop that serves the
// connection. Implementations must be thread-safe (event loops call concurrently) and must not
// block: anything slow (a store write) is handed off.
class ApiCallObserver {
 public:
  virtual ~ApiCallObserver() = default;
  virtual void OnApiCall(const ApiCall& call) = 0;
};

// Hands each call to several observers, in the order they were added. Add every observer before
// the server starts; OnApiCall is then safe from any thread.
class ApiCallFanout final : public ApiCallObserver {
 public:
  // `observer` is not owned and must outlive the fanout.
  void Add(ApiCallObserver* observer) { observers_.push_back(observer); }
  bool empty() const { return observers_.empty(); }
  void OnApiCall(const ApiCall& call) override {
    for (ApiCallObserver* o : observers_) o->OnApiCall(call);
  }

 private:
  std::vector<ApiCallObserver*> observers_;
};

}  // namespace meterd::protocol
