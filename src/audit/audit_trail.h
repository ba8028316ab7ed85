// AuditTrail: records audit events (D17) in the store without blocking the caller, looks them up
// and prunes them past their retention.
//
// The guarantee: a metering API call that was answered has its event durable in the store. A
// call whose answer is decided inside a store unit (the metering operations that reach the
// store) has its event prepared on the event loop (PrepareEvent: everything but the answer) and
// written in that unit's transaction by WriteEvent (which adds the answer: responseElements, the
// error, additionalEventData) after every unit of the group applied and before the commit; the
// handler sends the answer only after that commit. Every other call (refused before the
// store: signature, operation, throttling, injected faults, validation, business checks, the
// HTTP-level rejects) is recorded by RecordEvent, and the handler holds its answer until the
// event's unit has committed; if that unit fails, the call is answered anyway and the event is
// counted lost. Two cases stay asynchronous, and so may lose an event to a crash before the next
// commit: a call whose own group failed (its answer is the store error; its event is handed to
// RecordEvent without waiting), and admin events (RecordAdmin: the change itself committed
// before it was answered; its event follows it).
//
// latencyMicros in the event: from when the request was read whole to when its answer was decided
// (inside the transaction, before the commit: the fsync is not in it), or built (a call refused
// before the store: the wait for its event's commit is not in it). The event time is when the
// call arrived, on the server's clock.
//
// RecordEvent (and RecordAdmin, OnApiCall): an event joins a pending list; the first event of a
// list submits one store unit, and that unit takes every event pending when the writer runs it.
// Under load many events share one unit (and one group commit); an idle server writes each event
// at once. An event whose unit fails is counted in stats().lost and logged on stderr.
//
// Thread-safe: every method but Prune runs concurrently on event loops (WriteEvent on the writer
// thread) and never blocks on the store. The store and clock are not owned and must outlive the
// trail; the trail's units may outlive it (they hold shared state, not the trail).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/http_message.h"
#include "protocol/api_call.h"
#include "store/store.h"

namespace meterd::audit {

inline constexpr int64_t kDefaultRetentionDays = 90;
inline constexpr int64_t kDayMillis = int64_t{24} * 3600 * 1000;

struct AuditStats {
  uint64_t recorded = 0;  // events committed
  uint64_t lost = 0;      // events whose group failed
  uint64_t pruned = 0;    // events deleted past their retention
};

class AuditTrail final : public protocol::ApiCallObserver, public protocol::CallAuditor {
 public:
  AuditTrail(store::Store* store, const Clock* clock);

  // protocol::CallAuditor (the handler's path, see above). The event time is when the call
  // arrived: now minus the call's latency, on the server's clock.
  std::unique_ptr<protocol::PreparedAuditEvent> PrepareEvent(const protocol::ApiCall& call,
                                                             const std::string& event_id) override;
  Status WriteEvent(const protocol::ApiCall& call, const protocol::PreparedAuditEvent& prepared,
                    store::Transaction& txn) override;
  void EventCommitted() override;
  void RecordEvent(const protocol::ApiCall& call, const std::string& event_id,
                   std::function<void(const Status&)> committed) override;

  // protocol::ApiCallObserver: RecordEvent with a fresh event id, not waited for.
  void OnApiCall(const protocol::ApiCall& call) override;
  // One mutating admin request (see IsAuditedAdminRequest) and its answer.
  void RecordAdmin(const HttpRequest& request, const HttpResponse& response, bool authenticated);

  // The committed events that match, newest first (reads apart from the writer).
  Result<store::AuditPage> Lookup(const store::AuditQuery& query);

  // Deletes the events older than now - `retention_ms`, `batch` at a time, one store unit per
  // batch so that writes are never held up for long; returns how many it deleted. Blocks until
  // done: call it from a background thread.
  Result<int64_t> Prune(int64_t retention_ms, int64_t batch = 500);

  AuditStats stats() const;

 private:
  struct Shared;
  store::AuditEventRow Event(const protocol::ApiCall& call, std::string event_id) const;
  void Record(store::AuditEventRow row, std::function<void(const Status&)> committed);

  store::Store* store_;
  const Clock* clock_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace meterd::audit
