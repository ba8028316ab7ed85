// Checks that every metering operation starts with (internal to metering/): who may call it,
// whether it is enabled in the region, subscriptions, and the error a store failure becomes.
#pragma once

#include <cstdint>
#include <string_view>

#include "catalog/catalog.h"
#include "common/status.h"
#include "metering/types.h"

namespace meterd::metering {

// The workload calling `operation`, or AccessDeniedException (a seller's credential) or
// DisabledApiException (the operation is disabled in the call's region).
Result<const catalog::Workload*> WorkloadCaller(const catalog::Catalog& catalog,
                                                const CallContext& ctx, std::string_view operation,
                                                std::string_view who_may_call);
// The same for operations of sellers: AccessDeniedException for a workload's credential.
Status SellerCaller(const catalog::Catalog& catalog, const CallContext& ctx,
                    std::string_view operation);

// Whether any agreement of `account` for `product` accepts usage stamped `ts_ms` at `now_ms`.
bool Subscribed(const catalog::Catalog& catalog, std::string_view account, std::string_view product,
                int64_t ts_ms, int64_t now_ms);

// What a store (or key store) failure becomes on the wire: a retryable 500 that says nothing
// was recorded. The store's own words (paths, SQL) are not sent.
Status StoreFailure(const Status& st);

}  // namespace meterd::metering
