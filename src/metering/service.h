// MeteringService: the business rules of BatchMeterUsage and MeterUsage (BEHAVIOUR.md sections
// 1-4 and 13, docs/BEHAVIOUR-DECISIONS.md). Inputs arrive decoded and shape-validated; every
// request-level rule is checked before anything is written, then one store unit decides dedup
// and idempotency inside the group-commit transaction.
//
// Thread-safe: methods may be called concurrently. Callbacks run on the store's writer thread
// (or inline on the caller's thread when the request fails before the store) and must not block.
#pragma once

#include <functional>

#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/status.h"
#include "metering/rules.h"
#include "metering/types.h"
#include "store/store.h"

namespace meterd::metering {

class MeteringService {
 public:
  // None of the pointers is owned; all must outlive the service.
  MeteringService(const catalog::CatalogHolder* catalog, const Clock* clock, store::Store* store,
                  WindowSettings windows)
      : catalog_(catalog), clock_(clock), store_(store), windows_(windows) {}

  void BatchMeterUsage(const CallContext& ctx, BatchMeterUsageInput input,
                       std::function<void(Result<BatchMeterUsageOutput>)> done);
  void MeterUsage(const CallContext& ctx, const MeterUsageInput& input,
                  std::function<void(Result<MeterUsageOutput>)> done);

 private:
  const catalog::CatalogHolder* catalog_;
  const Clock* clock_;
  store::Store* store_;
  WindowSettings windows_;
};

// Canonical text of the allocations, stored with the record (and part of the ClientToken
// fingerprint): [{"AllocatedUsageQuantity":n,"Tags":[{"Key":..,"Value":..}]}].
std::string AllocationsJson(const std::vector<UsageAllocation>& allocations);

}  // namespace meterd::metering
