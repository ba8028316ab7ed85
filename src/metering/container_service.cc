// RegisterUsage, container task metering and ResolveCustomer: the MeteringService methods of
// BEHAVIOUR.md sections 5, 6 and D10-D12 (docs/BEHAVIOUR-DECISIONS.md for the order of checks).
#include <future>
#include <memory>

#include "common/crypto.h"
#include "common/time_util.h"
#include "keys/jwt.h"
#include "metering/caller_checks.h"
#include "metering/dedup_key.h"
#include "metering/service.h"
#include "metering/task_metering.h"

namespace meterd::metering {

namespace {

using catalog::Catalog;
using catalog::Platform;
using catalog::Product;
using catalog::ProductKind;

}  // namespace

void MeteringService::RegisterUsage(const CallContext& ctx, const RegisterUsageInput& input,
                                    Completion<RegisterUsageOutput> done) {
  std::shared_ptr<const Catalog> catalog = catalog_->Get();
  const int64_t now = clock_->NowMillis();
  auto caller = WorkloadCaller(*catalog, ctx, "RegisterUsage", "an ECS task or an EKS pod");
  if (!caller.ok()) return done(caller.status());
  const catalog::Workload* workload = *caller;
  if (workload->platform != Platform::kEcs && workload->platform != Platform::kEks &&
      workload->platform != Platform::kFargate) {
    return done(Status(StatusCode::kPlatformNotSupported,
                       "This operation can only be called from within an ECS task or an EKS pod."));
  }
  if (workload->region != ctx.region) {
    return done(Status(StatusCode::kInvalidRegion,
                       "RegisterUsage must be called in the same AWS Region the task was launched "
                       "in (" +
                           workload->region + ")."));
  }
  const Product* product = catalog->FindProduct(input.product_code);
  if (product == nullptr || product->kind != ProductKind::kContainer) {
    return done(Status(StatusCode::kInvalidProductCode,
                       "The product code passed does not match the product code used for "
                       "publishing the product."));
  }
  const catalog::SigningKeyRef* key_ref = product->FindSigningKey(input.public_key_version);
  if (key_ref == nullptr || keys_ == nullptr) {
    return done(Status(StatusCode::kInvalidPublicKeyVersion, "Public Key version is invalid."));
  }
  auto key = keys_->GetOrCreate(product->code, key_ref->version);
  if (!key.ok()) return done(StoreFailure(key.status()));
  // Signed here, on the request thread: RSA is too slow for the store's single writer.
  auto token = keys::MakeRegisterUsageJwt(**key, product->code, key_ref->version, input.nonce,
                                          now / kMillisPerSecond);
  if (!token.ok()) return done(StoreFailure(token.status()));

  auto output = std::make_shared<RegisterUsageOutput>();
  output->signature = std::move(token).value();
  if (key_ref->expired) output->rotation_ms = key_ref->expired_at_ms;
  const bool entitled_now = Subscribed(*catalog, workload->account, product->code, now, now);
  auto entitled = std::make_shared<bool>(true);
  const std::string workload_id = workload->id;
  const std::string product_code = product->code;

  store::WriteUnit unit;
  if (!entitled_now && store_->UsesDeclaredReads()) {
    unit.reads.entitlements.emplace_back(workload_id, product_code);
  }
  unit.apply = [=](store::Transaction& txn) -> Status {
    *entitled = true;  // apply may run again (store.h)
    if (!entitled_now) {
      // D10: entitlement is checked on the first call only.
      auto before = txn.HasEntitlement(workload_id, product_code);
      if (!before.ok()) return before.status();
      *entitled = *before;
      if (!*entitled) return Status::Ok();
    } else {
      METERD_RETURN_IF_ERROR(txn.PutEntitlement(workload_id, product_code, now));
    }
    return txn.OpenRunIfAbsent(store::MeteredRun{workload_id, product_code, now});
  };
  AnswerAfterCommit<RegisterUsageOutput>(
      &unit,
      [output, entitled]() -> Result<RegisterUsageOutput> {
        if (!*entitled) {
          return Status(StatusCode::kCustomerNotEntitled,
                        "The customer does not have a valid subscription for the product.");
        }
        return *output;
      },
      std::move(done));
  store_->Submit(std::move(unit));
}

void MeteringService::ResolveCustomer(const CallContext& ctx, const ResolveCustomerInput& input,
                                      Completion<ResolveCustomerOutput> done) {
  std::shared_ptr<const Catalog> catalog = catalog_->Get();
  const int64_t now = clock_->NowMillis();
  if (Status st = SellerCaller(*catalog, ctx, "ResolveCustomer"); !st.ok()) return done(st);
  struct Outcome {
    Status status;
    store::RegistrationTokenRow row;
  };
  auto outcome = std::make_shared<Outcome>();
  const std::string token = input.registration_token;
  const std::string seller = ctx.caller.account;
  const int64_t ttl = settings().token_ttl_ms;
  store::WriteUnit unit;
  if (store_->UsesDeclaredReads()) unit.reads.registration_tokens.push_back(token);
  unit.apply = [=](store::Transaction& txn) -> Status {
    *outcome = Outcome{};  // apply may run again (store.h)
    auto row = txn.FindRegistrationToken(token);
    if (!row.ok()) return row.status();
    // A token of another seller's product is as unknown to this caller as a made-up one.
    if (!row->has_value() || (*row)->seller_account != seller) {
      outcome->status = Status(StatusCode::kInvalidToken, "Registration token is invalid");
    } else if (now >= (*row)->issued_ms + ttl) {
      outcome->status = Status(StatusCode::kExpiredToken, "Registration token has expired");
    } else {
      outcome->row = **row;
    }
    return Status::Ok();
  };
  AnswerAfterCommit<ResolveCustomerOutput>(
      &unit,
      [outcome, catalog]() -> Result<ResolveCustomerOutput> {
        if (!outcome->status.ok()) return outcome->status;
        const store::RegistrationTokenRow& row = outcome->row;
        ResolveCustomerOutput out;
        out.product_code = row.product_code;
        out.customer_aws_account_id = row.customer_account;
        const Product* product = catalog->FindProduct(row.product_code);
        if (product != nullptr &&
            product->integration == catalog::Integration::kConcurrentAgreements) {
          out.license_arn = row.license_arn;  // no CustomerIdentifier for new integrations
        } else if (const catalog::Account* a = catalog->FindAccount(row.customer_account)) {
          out.customer_identifier = a->customer_identifier;
        }
        return out;
      },
      std::move(done));
  store_->Submit(std::move(unit));
}

Status MeteringService::PrepareCatalog() {
  std::shared_ptr<const Catalog> catalog = catalog_->Get();
  for (const Product& product : catalog->products()) {
    for (const catalog::SigningKeyRef& ref : product.signing_keys) {
      if (keys_ == nullptr) return Status(StatusCode::kInvalidArgument, "no signing key store");
      if (!ref.private_key_pem.empty()) {
        METERD_RETURN_IF_ERROR(keys_->Import(product.code, ref.version, ref.private_key_pem));
      }
      auto key = keys_->GetOrCreate(product.code, ref.version);
      if (!key.ok()) return key.status();
    }
  }
  const int64_t now = clock_->NowMillis();
  return store::SubmitAndWait(store_, [catalog, now](store::Transaction& txn) -> Status {
    for (const catalog::RegistrationToken& t : catalog->registration_tokens()) {
      const Product* product = catalog->FindProduct(t.product);
      METERD_RETURN_IF_ERROR(txn.PutRegistrationToken(
          store::RegistrationTokenRow{t.token, product->seller, t.product, t.account, t.license_arn,
                                      t.issued_ms.value_or(now)}));
    }
    return Status::Ok();
  });
}

Status MeteringService::MeterTaskRuns() {
  std::shared_ptr<const Catalog> catalog = catalog_->Get();
  const int64_t now = clock_->NowMillis();
  return store::SubmitAndWait(store_, [catalog, now](store::Transaction& txn) -> Status {
    auto runs = txn.ListOpenRuns();
    if (!runs.ok()) return runs.status();
    for (const store::MeteredRun& run : *runs) {
      const catalog::Workload* workload = catalog->FindWorkload(run.workload_id);
      const Product* product = catalog->FindProduct(run.product_code);
      if (workload == nullptr || product == nullptr) continue;  // unknown now: keep the run
      const bool stopped = workload->stopped_ms.has_value();
      const int64_t end = stopped ? std::max(run.started_ms, *workload->stopped_ms) : now;
      if (!product->hourly_dimension.empty()) {
        for (const HourSlice& slice : SliceRun(run.started_ms, end, stopped)) {
          store::UsageRow row;
          row.record_id = TimeOrderedUuid();
          row.dedup_key = TaskRunDedupKey(run.workload_id, run.product_code, slice.hour_ms);
          row.source = "RegisterUsage";
          row.region = workload->region;
          row.product_code = product->code;
          row.seller_account = product->seller;
          row.customer_account = workload->account;
          row.workload_id = workload->id;
          row.dimension = product->hourly_dimension;
          row.usage_hour_ms = slice.hour_ms;
          row.timestamp_ms = std::max(run.started_ms, slice.hour_ms);
          row.quantity = slice.seconds;
          row.request_id = "task-metering";
          row.received_ms = now;
          // Re-emitting an hour after a restart meets its own dedup key: nothing changes.
          auto existing = txn.InsertUsageIfAbsent(row);
          if (!existing.ok()) return existing.status();
        }
      }
      if (stopped) METERD_RETURN_IF_ERROR(txn.StopRun(run.workload_id, run.product_code, end));
    }
    return Status::Ok();
  });
}

}  // namespace meterd::metering
