#include "audit/audit_trail.h"

#include <utility>

#include "audit/audit_event.h"
#include "common/crypto.h"
#include "observability/log.h"

namespace meterd::audit {

struct AuditTrail::Shared {
  // One event waiting for its unit, and who waits for that unit's commit (may be null).
  struct Pending {
    store::AuditEventRow row;
    std::function<void(const Status&)> committed;
  };
  std::mutex mu;
  std::vector<Pending> pending;
  bool unit_queued = false;  // a unit is queued that will take `pending`
  std::atomic<uint64_t> recorded{0}, lost{0}, pruned{0};

  std::vector<Pending> TakePending() {
    std::lock_guard<std::mutex> lock(mu);
    unit_queued = false;
    std::vector<Pending> taken;
    taken.swap(pending);
    return taken;
  }
};

AuditTrail::AuditTrail(store::Store* store, const Clock* clock)
    : store_(store), clock_(clock), shared_(std::make_shared<Shared>()) {}

store::AuditEventRow AuditTrail::Event(const protocol::ApiCall& call, std::string event_id) const {
  // When the call arrived, on the server's clock (the test clock when there is one).
  const int64_t event_time = clock_->NowMillis() - call.latency_us / 1000;
  return MeteringEvent(call, event_time, std::move(event_id));
}

std::unique_ptr<protocol::PreparedAuditEvent> AuditTrail::PrepareEvent(
    const protocol::ApiCall& call, const std::string& event_id) {
  const int64_t event_time = clock_->NowMillis() - call.latency_us / 1000;
  return std::make_unique<PreparedMeteringEvent>(PrepareMeteringEvent(call, event_time, event_id));
}

Status AuditTrail::WriteEvent(const protocol::ApiCall& call,
                              const protocol::PreparedAuditEvent& prepared,
                              store::Transaction& txn) {
  // Only this trail's PrepareEvent makes what it is handed (CallAuditor's contract).
  return txn.PutAuditEvent(
      FinishMeteringEvent(static_cast<const PreparedMeteringEvent&>(prepared), call));
}

void AuditTrail::EventCommitted() { ++shared_->recorded; }

void AuditTrail::RecordEvent(const protocol::ApiCall& call, const std::string& event_id,
                             std::function<void(const Status&)> committed) {
  Record(Event(call, event_id), std::move(committed));
}

void AuditTrail::OnApiCall(const protocol::ApiCall& call) {
  Record(Event(call, TimeOrderedUuid()), nullptr);
}

void AuditTrail::RecordAdmin(const HttpRequest& request, const HttpResponse& response,
                             bool authenticated) {
  Record(AdminEvent(request, response, authenticated, clock_->NowMillis(), TimeOrderedUuid()),
         nullptr);
}

void AuditTrail::Record(store::AuditEventRow row, std::function<void(const Status&)> committed) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->pending.push_back(Shared::Pending{std::move(row), std::move(committed)});
    if (shared_->unit_queued) return;
    shared_->unit_queued = true;
  }
  auto batch = std::make_shared<std::vector<Shared::Pending>>();
  store::WriteUnit unit;
  unit.apply = [shared = shared_, batch](store::Transaction& txn) -> Status {
    // A re-run group takes nothing new: the events it took the first time are written again.
    if (batch->empty()) *batch = shared->TakePending();
    for (const auto& event : *batch) METERD_RETURN_IF_ERROR(txn.PutAuditEvent(event.row));
    return Status::Ok();
  };
  unit.done = [shared = shared_, batch](const Status& status) {
    // The unit did not run (the store is closed, or an earlier unit failed the group): its
    // events are still pending.
    if (!status.ok() && batch->empty()) *batch = shared->TakePending();
    if (status.ok()) {
      shared->recorded += batch->size();
    } else {
      const uint64_t total = shared->lost += batch->size();
      log::Error("audit events lost", {{"events", std::to_string(batch->size())},
                                       {"lost_in_total", std::to_string(total)},
                                       {"error", status.ToString()}});
    }
    for (auto& event : *batch) {
      if (event.committed) event.committed(status);
    }
  };
  store_->Submit(std::move(unit));
}

Result<store::AuditPage> AuditTrail::Lookup(const store::AuditQuery& query) {
  return store_->audit_reader()->LookupAuditEvents(query);
}

Result<int64_t> AuditTrail::Prune(int64_t retention_ms, int64_t batch) {
  const int64_t before = clock_->NowMillis() - retention_ms;
  int64_t total = 0;
  while (true) {
    int64_t deleted = 0;
    Status st = store::SubmitAndWait(store_, [&](store::Transaction& txn) -> Status {
      auto n = txn.DeleteAuditEventsBefore(before, batch);
      if (!n.ok()) return n.status();
      deleted = *n;
      return Status::Ok();
    });
    if (!st.ok()) return st;
    total += deleted;
    shared_->pruned += static_cast<uint64_t>(deleted);
    if (deleted < batch) return total;
  }
}

AuditStats AuditTrail::stats() const {
  return AuditStats{shared_->recorded.load(), shared_->lost.load(), shared_->pruned.load()};
}

}  // namespace meterd::audit
