// ApiCall: one metering API call as it ended, and the seams through which the audit trail
// (CallAuditor), the access log and the metrics (ApiCallObserver) see every call - accepted or
// refused, including requests refused before they could be read whole - without knowing the wire.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "json/json.h"
#include "store/store.h"

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
  // From then until the answer was built. Observers: until it was handed to the server (after
  // the commit of its store unit, or of its audit event). The audit event: until it was decided
  // (inside the store unit, before the commit; or built, for a call refused before the store).
  int64_t latency_us = 0;
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

// What a CallAuditor prepared of one call's event (opaque to the handler).
class PreparedAuditEvent {
 public:
  virtual ~PreparedAuditEvent() = default;
};

// The audit trail as the handler drives it (D17): an answered call always has its durable event.
// A call whose answer is decided inside a store unit has its event written by WriteEvent in that
// unit's transaction, before the commit, and is answered after the commit; any other call has its
// event recorded by RecordEvent, and its answer waits for `committed`. Thread-safe; must not
// block.
class CallAuditor {
 public:
  virtual ~CallAuditor() = default;
  // What the event of `call` holds before its answer is known (who, when, the request), built on
  // the caller's thread so that the writer only adds the answer. The event time is now minus
  // `call.latency_us` (when the call arrived). `event_id` is the call's own: a re-run group writes
  // the same event again.
  virtual std::unique_ptr<PreparedAuditEvent> PrepareEvent(const ApiCall& call,
                                                           const std::string& event_id) = 0;
  // Writes the event of `call` (completed by its answer), as `prepared` by this auditor's
  // PrepareEvent, into `txn`, the transaction that holds the call's own writes (on the writer
  // thread, before the commit).
  virtual Status WriteEvent(const ApiCall& call, const PreparedAuditEvent& prepared,
                            store::Transaction& txn) = 0;
  // The transaction of a WriteEvent committed (the event counts as recorded).
  virtual void EventCommitted() = 0;
  // Records the event of `call` in a unit of its own, batched with other events. `committed`
  // (may be null) runs once, on the writer thread, when that unit committed (ok) or failed (the
  // store error; the event is then counted lost and logged); it must not block.
  virtual void RecordEvent(const ApiCall& call, const std::string& event_id,
                           std::function<void(const Status&)> committed) = 0;
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
