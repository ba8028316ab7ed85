// MeteringService: the business rules of BatchMeterUsage and MeterUsage (BEHAVIOUR.md sections
// 1-4 and 13, docs/BEHAVIOUR-DECISIONS.md). Inputs arrive decoded and shape-validated; every
// request-level rule is checked before anything is written, then one store unit decides dedup
// and idempotency inside the group-commit transaction.
//
// Thread-safe: methods may be called concurrently. Callbacks run on the store's writer thread
// (or inline on the caller's thread when the request fails before the store) and must not block.
#pragma once

#include <functional>
#include <mutex>

#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/status.h"
#include "keys/signing_keys.h"
#include "metering/rules.h"
#include "metering/types.h"
#include "store/store.h"

namespace meterd::metering {

struct ServiceSettings {
  WindowSettings windows;
  int64_t token_ttl_ms = 4LL * 3600 * 1000;  // D12
};

class MeteringService {
 public:
  // None of the pointers is owned; all must outlive the service. `keys` may be null when the
  // catalog has no signing keys (RegisterUsage then answers InvalidPublicKeyVersion).
  MeteringService(const catalog::CatalogHolder* catalog, const Clock* clock, store::Store* store,
                  keys::SigningKeyStore* keys, ServiceSettings settings)
      : catalog_(catalog), clock_(clock), store_(store), keys_(keys), settings_(settings) {}

  // Replaces the windows and token TTL (a settings change through the control plane); the
  // next request uses them. Thread-safe.
  void Configure(const ServiceSettings& settings) {
    std::lock_guard<std::mutex> lock(settings_mu_);
    settings_ = settings;
  }
  ServiceSettings settings() const {
    std::lock_guard<std::mutex> lock(settings_mu_);
    return settings_;
  }

  void BatchMeterUsage(const CallContext& ctx, BatchMeterUsageInput input,
                       std::function<void(Result<BatchMeterUsageOutput>)> done);
  void MeterUsage(const CallContext& ctx, const MeterUsageInput& input,
                  std::function<void(Result<MeterUsageOutput>)> done);
  void RegisterUsage(const CallContext& ctx, const RegisterUsageInput& input,
                     std::function<void(Result<RegisterUsageOutput>)> done);
  void ResolveCustomer(const CallContext& ctx, const ResolveCustomerInput& input,
                       std::function<void(Result<ResolveCustomerOutput>)> done);

  // Start-up work for the current catalog: imports catalog private keys and creates the
  // missing ones (so that no request ever waits for RSA key generation), and records the
  // catalog's registration tokens with their first-seen time. Blocks until durable.
  Status PrepareCatalog();
  // One pass of container task metering (D11): closes the runs of stopped workloads and writes
  // the hourly usage of every run up to now. Blocks until durable. Called at start and then
  // periodically.
  Status MeterTaskRuns();

 private:
  const catalog::CatalogHolder* catalog_;
  const Clock* clock_;
  store::Store* store_;
  keys::SigningKeyStore* keys_;
  mutable std::mutex settings_mu_;
  ServiceSettings settings_;
};

// Canonical text of the allocations, stored with the record (and part of the ClientToken
// fingerprint): [{"AllocatedUsageQuantity":n,"Tags":[{"Key":..,"Value":..}]}].
std::string AllocationsJson(const std::vector<UsageAllocation>& allocations);

}  // namespace meterd::metering
