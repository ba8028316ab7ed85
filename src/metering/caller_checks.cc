#include "metering/caller_checks.h"

#include <string>

namespace meterd::metering {

namespace {
Status Disabled() { return Status(StatusCode::kDisabledApi, "The API is disabled in the Region."); }
std::string NotAuthorized(std::string_view operation) {
  return "User is not authorized to perform: aws-marketplace:" + std::string(operation) + ". ";
}
}  // namespace

Result<const catalog::Workload*> WorkloadCaller(const catalog::Catalog& catalog,
                                                const CallContext& ctx, std::string_view operation,
                                                std::string_view who_may_call) {
  const catalog::Workload* workload =
      ctx.caller.is_workload() ? catalog.FindWorkload(ctx.caller.workload_id) : nullptr;
  if (workload == nullptr) {
    return Status(StatusCode::kAccessDenied, NotAuthorized(operation) + std::string(operation) +
                                                 " must be called with the credentials of " +
                                                 std::string(who_may_call) + ".");
  }
  if (catalog.IsDisabled(ctx.region, operation)) return Disabled();
  return workload;
}

Status SellerCaller(const catalog::Catalog& catalog, const CallContext& ctx,
                    std::string_view operation) {
  if (ctx.caller.is_workload()) {
    return Status(StatusCode::kAccessDenied, NotAuthorized(operation) + std::string(operation) +
                                                 " must be called with the seller's credentials.");
  }
  if (catalog.IsDisabled(ctx.region, operation)) return Disabled();
  return Status::Ok();
}

bool Subscribed(const catalog::Catalog& catalog, std::string_view account, std::string_view product,
                int64_t ts_ms, int64_t now_ms) {
  for (const catalog::Subscription* s : catalog.SubscriptionsOf(account, product)) {
    if (s->AcceptsUsage(ts_ms, now_ms)) return true;
  }
  return false;
}

Status StoreFailure(const Status& st) {
  return Status(StatusCode::kInternal,
                "An internal error occurred; nothing was recorded. Retry your request. (" +
                    std::string(StatusCodeName(st.code())) + ")");
}

}  // namespace meterd::metering
