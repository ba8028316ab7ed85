#include "audit/audit_trail.h"

#include <utility>

#include "audit/audit_event.h"
#include "common/crypto.h"
#include "observability/log.h"

namespace meterd::audit {

struct AuditTrail::Shared {
  std::mutex mu;
  std::vector<store::AuditEventRow> pending;
  bool unit_queued = false;  // a unit is queued that will take `pending`
  std::atomic<uint64_t> recorded{0}, lost{0}, pruned{0};

  std::vector<store::AuditEventRow> TakePending() {
    std::lock_guard<std::mutex> lock(mu);
    unit_queued = false;
    std::vector<store::AuditEventRow> taken;
    taken.swap(pending);
    return taken;
  }
};

AuditTrail::AuditTrail(store::Store* store, const Clock* clock)
    : store_(store), clock_(clock), shared_(std::make_shared<Shared>()) {}

void AuditTrail::OnApiCall(const protocol::ApiCall& call) {
  // When the call arrived, on the server's clock (the test clock when there is one).
  const int64_t event_time = clock_->NowMillis() - call.latency_us / 1000;
  Record(MeteringEvent(call, event_time, TimeOrderedUuid()));
}

void AuditTrail::RecordAdmin(const HttpRequest& request, const HttpResponse& response,
                             bool authenticated) {
  Record(AdminEvent(request, response, authenticated, clock_->NowMillis(), TimeOrderedUuid()));
}

void AuditTrail::Record(store::AuditEventRow row) {
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->pending.push_back(std::move(row));
    if (shared_->unit_queued) return;
    shared_->unit_queued = true;
  }
  auto batch = std::make_shared<std::vector<store::AuditEventRow>>();
  store::WriteUnit unit;
  unit.apply = [shared = shared_, batch](store::Transaction& txn) -> Status {
    *batch = shared->TakePending();
    for (const auto& event : *batch) METERD_RETURN_IF_ERROR(txn.PutAuditEvent(event));
    return Status::Ok();
  };
  unit.done = [shared = shared_, batch](const Status& status) {
    // The unit did not run (the store is closed, or an earlier unit failed the group): its
    // events are still pending.
    if (!status.ok() && batch->empty()) *batch = shared->TakePending();
    if (status.ok()) {
      shared->recorded += batch->size();
      return;
    }
    const uint64_t total = shared->lost += batch->size();
    log::Error("audit events lost", {{"events", std::to_string(batch->size())},
                                     {"lost_in_total", std::to_string(total)},
                                     {"error", status.ToString()}});
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
