// AuditTrail: records audit events (D17) in the store without blocking the caller, looks them up
// and prunes them past their retention.
//
// Recording: an event joins a pending list; the first event of a list submits one store unit,
// and that unit takes every event pending when the writer runs it. Under load many events share
// one unit (and one group commit); an idle server writes each event at once. Events are written
// after the call was answered, so an event of an acknowledged call can be lost only with the
// group it was in (a store error: counted in stats().lost and logged on stderr) or by a crash
// before that group committed.
//
// Thread-safe: OnApiCall and RecordAdmin run concurrently on event loops and never block on
// the store. The store and clock are not owned and must outlive the trail; the trail's units may
// outlive it (they hold shared state, not the trail).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
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

class AuditTrail final : public protocol::ApiCallObserver {
 public:
  AuditTrail(store::Store* store, const Clock* clock);

  // protocol::ApiCallObserver: one metering API call, accepted or refused.
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
  void Record(store::AuditEventRow row);

  store::Store* store_;
  const Clock* clock_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace meterd::audit
