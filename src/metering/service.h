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
#include <type_traits>
#include <utility>

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

// How an operation's answer reached its caller (Completion::done).
enum class AnswerPath {
  kBeforeStore,  // decided before anything was submitted (a refused request): no seal ran
  kCommitted,    // decided inside the store unit, which committed (with what the seal wrote)
  kStoreFailed,  // the unit's group failed: the answer is the store error, the seal's writes
                 // (if it ran) were rolled back
};

// The answer of one metering operation. `done` runs exactly once, with the answer and how it came
// about. `seal` (optional) runs on the writer thread inside the transaction that holds the call's
// writes, after every unit of the group applied and before the commit (store::WriteUnit::seal),
// with the answer `done` then gets with kCommitted; what it writes commits or fails with the
// call's records. It may run more than once (a re-run group) and then sees the answer decided
// afresh. A plain callable of the answer converts to a Completion without a seal.
template <typename Output>
struct Completion {
  std::function<void(Result<Output>, AnswerPath)> done;
  std::function<Status(const Result<Output>&, store::Transaction&)> seal;

  Completion() = default;
  template <typename F,
            typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Completion> &&
                                        std::is_invocable_v<std::decay_t<F>&, Result<Output>>>>
  Completion(F plain)  // NOLINT(google-explicit-constructor): a plain callback is a Completion
      : done([plain = std::move(plain)](Result<Output> r, AnswerPath) mutable {
          plain(std::move(r));
        }) {}

  // The answer of a request refused (or answered) before the store.
  void operator()(Result<Output> answer) const {
    done(std::move(answer), AnswerPath::kBeforeStore);
  }
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
                       Completion<BatchMeterUsageOutput> done);
  void MeterUsage(const CallContext& ctx, const MeterUsageInput& input,
                  Completion<MeterUsageOutput> done);
  void RegisterUsage(const CallContext& ctx, const RegisterUsageInput& input,
                     Completion<RegisterUsageOutput> done);
  void ResolveCustomer(const CallContext& ctx, const ResolveCustomerInput& input,
                       Completion<ResolveCustomerOutput> done);

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

// (service.cc and container_service.cc) Makes `unit` answer through `done` once its group is over:
// `answer` turns what the unit's apply recorded into the call's answer once every unit of the group
// applied (in the seal, when `done` has one, so that the seal sees it inside the transaction; else
// after the commit).
template <typename Output>
void AnswerAfterCommit(store::WriteUnit* unit, std::function<Result<Output>()> answer,
                       Completion<Output> done);

// Canonical text of the allocations, stored with the record (and part of the ClientToken
// fingerprint): [{"AllocatedUsageQuantity":n,"Tags":[{"Key":..,"Value":..}]}].
std::string AllocationsJson(const std::vector<UsageAllocation>& allocations);

}  // namespace meterd::metering
