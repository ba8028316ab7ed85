#include "metering/service.h"

#include <memory>
#include <optional>

#include "common/crypto.h"
#include "common/time_util.h"
#include "json/json.h"
#include "metering/caller_checks.h"
#include "metering/dedup_key.h"

namespace meterd::metering {

namespace {

using catalog::Catalog;
using catalog::Integration;
using catalog::Platform;
using catalog::Product;
using catalog::ProductKind;
using catalog::Subscription;

Status Error(StatusCode code, std::string message) { return Status(code, std::move(message)); }

// A BatchMeterUsage record that passed every request-level check.
struct PlannedRecord {
  bool subscribed = false;
  store::UsageRow row;
};

// Fault injection: the records marked in `injected` leave the results for UnprocessedRecords,
// in request order. Runs after the commit, when the results no longer need their indices.
void MoveInjectedToUnprocessed(const std::vector<bool>& injected, BatchMeterUsageOutput* out) {
  std::vector<UsageRecordResult> kept;
  kept.reserve(out->results.size());
  for (size_t i = 0; i < out->results.size(); ++i) {
    if (i < injected.size() && injected[i]) {
      out->unprocessed.push_back(std::move(out->results[i].record));
    } else {
      kept.push_back(std::move(out->results[i]));
    }
  }
  out->results = std::move(kept);
}

}  // namespace

template <typename Output>
void AnswerAfterCommit(store::WriteUnit* unit, std::function<Result<Output>()> answer,
                       Completion<Output> done) {
  // The answer the seal saw (decided afresh on every run), which `done` then gets as it is.
  auto decided = std::make_shared<std::optional<Result<Output>>>();
  if (done.seal) {
    unit->seal = [decided, answer, seal = std::move(done.seal)](store::Transaction& txn) {
      decided->emplace(answer());
      return seal(**decided, txn);
    };
  }
  unit->done = [decided, answer = std::move(answer),
                done = std::move(done.done)](const Status& st) {
    if (!st.ok()) return done(StoreFailure(st), AnswerPath::kStoreFailed);
    if (!decided->has_value()) decided->emplace(answer());
    done(std::move(**decided), AnswerPath::kCommitted);
  };
}

template void AnswerAfterCommit(store::WriteUnit*, std::function<Result<BatchMeterUsageOutput>()>,
                                Completion<BatchMeterUsageOutput>);
template void AnswerAfterCommit(store::WriteUnit*, std::function<Result<MeterUsageOutput>()>,
                                Completion<MeterUsageOutput>);
template void AnswerAfterCommit(store::WriteUnit*, std::function<Result<RegisterUsageOutput>()>,
                                Completion<RegisterUsageOutput>);
template void AnswerAfterCommit(store::WriteUnit*, std::function<Result<ResolveCustomerOutput>()>,
                                Completion<ResolveCustomerOutput>);

const char* RecordStatusName(RecordStatus s) {
  switch (s) {
    case RecordStatus::kSuccess:
      return "Success";
    case RecordStatus::kCustomerNotSubscribed:
      return "CustomerNotSubscribed";
    case RecordStatus::kDuplicateRecord:
      return "DuplicateRecord";
  }
  return "Success";
}

std::string AllocationsJson(const std::vector<UsageAllocation>& allocations) {
  std::string out = "[";
  bool first = true;
  for (const auto& a : allocations) {
    if (!first) out += ',';
    first = false;
    out += "{\"AllocatedUsageQuantity\":" + std::to_string(a.quantity);
    if (!a.tags.empty()) {
      out += ",\"Tags\":[";
      bool first_tag = true;
      for (const auto& t : a.tags) {
        if (!first_tag) out += ',';
        first_tag = false;
        out += "{\"Key\":";
        json::AppendQuoted(&out, t.key);
        out += ",\"Value\":";
        json::AppendQuoted(&out, t.value);
        out += '}';
      }
      out += ']';
    }
    out += '}';
  }
  out += ']';
  return out;
}

void MeteringService::BatchMeterUsage(const CallContext& ctx, BatchMeterUsageInput input,
                                      Completion<BatchMeterUsageOutput> done) {
  std::shared_ptr<const Catalog> catalog = catalog_->Get();
  const int64_t now = clock_->NowMillis();
  const WindowSettings windows = settings().windows;
  if (Status st = SellerCaller(*catalog, ctx, "BatchMeterUsage"); !st.ok()) return done(st);

  // Which product: ProductCode, or the product of the records' licenses (D6).
  bool any_license = false;
  for (const auto& r : input.records) any_license = any_license || !r.license_arn.empty();
  const Product* product = nullptr;
  if (!input.product_code.empty()) {
    if (any_license) {
      return done(Error(StatusCode::kValidation,
                        "ProductCode and LicenseArn cannot be used together. Omit ProductCode "
                        "when usage records carry a LicenseArn."));
    }
    product = catalog->FindProduct(input.product_code);
  } else {
    if (input.records.empty()) return done(BatchMeterUsageOutput{});
    for (const auto& r : input.records) {
      if (r.license_arn.empty()) {
        return done(Error(StatusCode::kValidation,
                          "Either ProductCode or a LicenseArn in every usage record is required."));
      }
    }
    const Subscription* first = catalog->FindLicense(input.records[0].license_arn);
    if (first == nullptr) {
      return done(Error(StatusCode::kInvalidLicense,
                        "LicenseArn '" + input.records[0].license_arn + "' is not valid."));
    }
    product = catalog->FindProduct(first->product);
  }
  if (product == nullptr || product->kind != ProductKind::kSaas ||
      product->seller != ctx.caller.account) {
    return done(Error(StatusCode::kInvalidProductCode,
                      "The product code passed does not match the product code used for "
                      "publishing the product."));
  }
  const bool concurrent = product->integration == Integration::kConcurrentAgreements;

  // Request-level checks over every record before anything is decided or written.
  // The buyer and license of each record are looked up once, here, and reused below.
  struct Resolved {
    const catalog::Account* buyer = nullptr;
    const Subscription* license = nullptr;
  };
  std::vector<Resolved> resolved(input.records.size());
  for (size_t i = 0; i < input.records.size(); ++i) {
    const UsageRecord& r = input.records[i];
    // Only error messages name the record: nothing is built on the way to success.
    auto where = [i] { return " (usage record " + std::to_string(i + 1) + ")"; };
    bool has_ci = !r.customer_identifier.empty();
    bool has_account = !r.customer_aws_account_id.empty();
    if (has_ci == has_account) {
      return done(Error(StatusCode::kInvalidCustomerIdentifier,
                        "Exactly one of CustomerIdentifier and CustomerAWSAccountId is required" +
                            where() + "."));
    }
    if (concurrent && has_ci) {
      return done(Error(StatusCode::kInvalidCustomerIdentifier,
                        "CustomerIdentifier is not supported for products with concurrent "
                        "agreements; use CustomerAWSAccountId and LicenseArn" +
                            where() + "."));
    }
    if (concurrent && r.license_arn.empty()) {
      return done(
          Error(StatusCode::kInvalidLicense,
                "LicenseArn is required for products with concurrent agreements" + where() + "."));
    }
    Resolved& found = resolved[i];
    found.buyer = has_ci ? catalog->FindAccountByCustomerIdentifier(r.customer_identifier)
                         : catalog->FindAccount(r.customer_aws_account_id);
    if (!r.license_arn.empty()) {
      const Subscription* license = found.license = catalog->FindLicense(r.license_arn);
      if (license == nullptr || license->product != product->code) {
        return done(Error(
            StatusCode::kInvalidLicense,
            license == nullptr
                ? "LicenseArn '" + r.license_arn + "' is not valid" + where() + "."
                : "All LicenseArns of one request must belong to one product" + where() + "."));
      }
      if (found.buyer == nullptr || license->account != found.buyer->id) {
        return done(Error(StatusCode::kInvalidLicense,
                          "LicenseArn does not match the customer" + where() + "."));
      }
      if (!license->CoversTime(r.timestamp_ms)) {
        return done(Error(StatusCode::kInvalidLicense,
                          "Usage is outside the license activation period" + where() + "."));
      }
    }
    if (product->FindDimension(r.dimension) == nullptr) {
      return done(Error(StatusCode::kInvalidUsageDimension,
                        "The usage dimension does not match one of the UsageDimensions associated "
                        "with products" +
                            where() + "."));
    }
    if (r.has_allocations) {
      Status st = CheckAllocations(r.allocations, r.quantity);
      if (!st.ok()) return done(Status(st.code(), st.message() + where()));
    }
    if (!BatchTimestampAccepted(r.timestamp_ms, now, windows)) {
      return done(Error(StatusCode::kTimestampOutOfBounds,
                        "Usage record timestamp " + FormatIso8601(r.timestamp_ms) +
                            " is outside the accepted window" + where() +
                            ". The entire batch was not processed."));
    }
  }

  // Per-record subscription state, then the rows to write.
  auto planned = std::make_shared<std::vector<PlannedRecord>>(input.records.size());
  for (size_t i = 0; i < input.records.size(); ++i) {
    const UsageRecord& r = input.records[i];
    PlannedRecord& p = (*planned)[i];
    const catalog::Account* buyer = resolved[i].buyer;
    if (buyer == nullptr) continue;
    // Fault injection: a marked record is answered unprocessed (below) and never written.
    if (i < ctx.injected_unprocessed.size() && ctx.injected_unprocessed[i]) continue;
    if (const Subscription* license = resolved[i].license) {
      p.subscribed = license->AcceptsUsage(r.timestamp_ms, now);
    } else {
      p.subscribed = Subscribed(*catalog, buyer->id, product->code, r.timestamp_ms, now);
    }
    if (!p.subscribed) continue;
    store::UsageRow& row = p.row;
    row.record_id = TimeOrderedUuid();
    row.usage_hour_ms = FloorToHour(r.timestamp_ms);
    row.dedup_key = BatchDedupKey(ctx.region, product->code, buyer->id, r.license_arn, r.dimension,
                                  row.usage_hour_ms);
    row.source = "BatchMeterUsage";
    row.region = ctx.region;
    row.product_code = product->code;
    row.seller_account = product->seller;
    row.customer_identifier = r.customer_identifier;
    row.customer_account = buyer->id;
    row.license_arn = r.license_arn;
    row.dimension = r.dimension;
    row.timestamp_ms = r.timestamp_ms;
    row.quantity = r.quantity;
    if (r.has_allocations) row.allocations_json = AllocationsJson(r.allocations);
    row.request_id = ctx.request_id;
    row.received_ms = now;
  }

  auto output = std::make_shared<BatchMeterUsageOutput>();
  output->results.resize(input.records.size());
  for (size_t i = 0; i < input.records.size(); ++i) {
    output->results[i].record = std::move(input.records[i]);
    output->results[i].status = RecordStatus::kCustomerNotSubscribed;
  }
  store::WriteUnit unit;
  if (store_->UsesDeclaredReads()) {
    for (const PlannedRecord& p : *planned) {
      if (p.subscribed) unit.reads.dedup_keys.push_back(p.row.dedup_key);
    }
  }
  unit.apply = [planned, output](store::Transaction& txn) -> Status {
    for (size_t i = 0; i < planned->size(); ++i) {
      PlannedRecord& p = (*planned)[i];
      if (!p.subscribed) continue;
      auto existing = txn.InsertUsageIfAbsent(p.row);
      if (!existing.ok()) return existing.status();
      UsageRecordResult& result = output->results[i];
      result.metering_record_id.clear();  // apply may run again (store.h)
      if (!existing->has_value()) {
        result.status = RecordStatus::kSuccess;
        result.metering_record_id = p.row.record_id;
      } else if ((*existing)->quantity == p.row.quantity) {
        result.status = RecordStatus::kSuccess;
        result.metering_record_id = (*existing)->record_id;
      } else {
        result.status = RecordStatus::kDuplicateRecord;
      }
    }
    return Status::Ok();
  };
  // A copy: the group may be re-run after the answer was taken (apply writes into `output`).
  AnswerAfterCommit<BatchMeterUsageOutput>(
      &unit,
      [output, injected = ctx.injected_unprocessed]() -> Result<BatchMeterUsageOutput> {
        BatchMeterUsageOutput answer = *output;
        if (!injected.empty()) MoveInjectedToUnprocessed(injected, &answer);
        return answer;
      },
      std::move(done));
  store_->Submit(std::move(unit));
}

void MeteringService::MeterUsage(const CallContext& ctx, const MeterUsageInput& input,
                                 Completion<MeterUsageOutput> done) {
  std::shared_ptr<const Catalog> catalog = catalog_->Get();
  const int64_t now = clock_->NowMillis();
  auto caller = WorkloadCaller(*catalog, ctx, "MeterUsage",
                               "an EC2 instance, ECS task, EKS pod or AgentCore runtime");
  if (!caller.ok()) return done(caller.status());
  const catalog::Workload* workload = *caller;
  if (workload->region != ctx.region) {
    return done(Error(StatusCode::kInvalidEndpointRegion,
                      "The endpoint being called is in a AWS Region (" + ctx.region +
                          ") different from your EC2 instance, ECS task, or EKS pod (" +
                          workload->region + ")."));
  }
  const Product* product = catalog->FindProduct(input.product_code);
  if (product == nullptr || product->kind == ProductKind::kSaas) {
    return done(Error(StatusCode::kInvalidProductCode,
                      "The product code passed does not match the product code used for "
                      "publishing the product."));
  }
  if (product->FindDimension(input.usage_dimension) == nullptr) {
    return done(Error(StatusCode::kInvalidUsageDimension,
                      "The usage dimension does not match one of the UsageDimensions associated "
                      "with products."));
  }
  if (input.has_allocations) {
    Status st = CheckAllocations(input.allocations, input.usage_quantity);
    if (!st.ok()) return done(st);
  }
  if (!MeterUsageTimestampAccepted(input.timestamp_ms, now, settings().windows)) {
    return done(Error(StatusCode::kTimestampOutOfBounds,
                      "Timestamp " + FormatIso8601(input.timestamp_ms) +
                          " is outside the accepted window (up to 6 hours in the past)."));
  }

  const bool entitled_now =
      Subscribed(*catalog, workload->account, product->code, input.timestamp_ms, now);
  const bool remembers_first_call = workload->platform == Platform::kEcs ||
                                    workload->platform == Platform::kEks ||
                                    workload->platform == Platform::kFargate;
  const bool agentcore = workload->platform == Platform::kAgentCore;
  // SDKs always send a ClientToken; without one, AWS makes up a random one (D4).
  const std::string token = input.client_token.empty() ? RandomUuid() : input.client_token;
  const std::string allocations = input.has_allocations ? AllocationsJson(input.allocations) : "";

  // The fingerprint covers every member but ClientToken and DryRun.
  std::string canonical;
  json::AppendQuoted(&canonical, input.product_code);
  canonical += '|' + std::to_string(input.timestamp_ms) + '|';
  json::AppendQuoted(&canonical, input.usage_dimension);
  canonical += '|' + std::to_string(input.usage_quantity) + '|' + allocations;

  auto row = std::make_shared<store::UsageRow>();
  row->record_id = TimeOrderedUuid();
  row->usage_hour_ms = FloorToHour(input.timestamp_ms);
  row->dedup_key = agentcore ? AgentCoreDedupKey(workload->id, token)
                             : MeterUsageDedupKey(workload->id, product->code,
                                                  input.usage_dimension, row->usage_hour_ms);
  row->source = "MeterUsage";
  row->region = ctx.region;
  row->product_code = product->code;
  row->seller_account = product->seller;
  row->customer_account = workload->account;
  row->workload_id = workload->id;
  row->dimension = input.usage_dimension;
  row->timestamp_ms = input.timestamp_ms;
  row->quantity = input.usage_quantity;
  row->allocations_json = allocations;
  row->request_id = ctx.request_id;
  row->received_ms = now;

  struct Outcome {
    Status status;
    std::string record_id;
  };
  auto outcome = std::make_shared<Outcome>();
  const bool dry_run = input.dry_run;
  const std::string fingerprint = HexEncode(Sha256(canonical));
  const std::string product_code = product->code;

  store::WriteUnit unit;
  if (store_->UsesDeclaredReads()) {
    unit.reads.dedup_keys.push_back(row->dedup_key);
    unit.reads.client_tokens.emplace_back(row->workload_id, token);
    if (remembers_first_call && !entitled_now) {
      unit.reads.entitlements.emplace_back(row->workload_id, product_code);
    }
  }
  unit.apply = [=](store::Transaction& txn) -> Status {
    *outcome = Outcome{};  // apply may run again (store.h)
    auto remembered = txn.FindClientToken(row->workload_id, token);
    if (!remembered.ok()) return remembered.status();
    if (remembered->has_value()) {
      if ((*remembered)->fingerprint != fingerprint) {
        outcome->status = Error(StatusCode::kIdempotencyConflict,
                                "The ClientToken is being used for multiple requests.");
      } else {
        outcome->record_id = (*remembered)->record_id;
      }
      return Status::Ok();
    }
    if (!entitled_now) {
      bool entitled_before = false;
      if (remembers_first_call) {
        auto has = txn.HasEntitlement(row->workload_id, product_code);
        if (!has.ok()) return has.status();
        entitled_before = *has;
      }
      if (!entitled_before) {
        outcome->status = Error(StatusCode::kCustomerNotEntitled,
                                "The customer does not have a valid subscription for the product.");
        return Status::Ok();
      }
    }
    auto existing = dry_run ? txn.FindUsage(row->dedup_key) : txn.InsertUsageIfAbsent(*row);
    if (!existing.ok()) return existing.status();
    if (existing->has_value() && (*existing)->quantity != row->quantity) {
      outcome->status = Error(StatusCode::kDuplicateRequest,
                              "A metering record has already been emitted by the same EC2 "
                              "instance, ECS task, or EKS pod for the given {usageDimension, "
                              "timestamp} with a different usageQuantity.");
      return Status::Ok();
    }
    if (dry_run) {
      outcome->status = Error(StatusCode::kDryRunOperation,
                              "Request would have succeeded, but DryRun flag is set.");
      return Status::Ok();
    }
    outcome->record_id = existing->has_value() ? (*existing)->record_id : row->record_id;
    METERD_RETURN_IF_ERROR(txn.PutClientToken(
        store::ClientTokenEntry{row->workload_id, token, fingerprint, outcome->record_id, now}));
    if (remembers_first_call && entitled_now) {
      METERD_RETURN_IF_ERROR(txn.PutEntitlement(row->workload_id, product_code, now));
    }
    return Status::Ok();
  };
  AnswerAfterCommit<MeterUsageOutput>(
      &unit,
      [outcome, dry_run]() -> Result<MeterUsageOutput> {
        if (!outcome->status.ok()) return outcome->status;
        if (dry_run) {
          return Error(StatusCode::kDryRunOperation,
                       "Request would have succeeded, but DryRun flag is set.");
        }
        return MeterUsageOutput{outcome->record_id};
      },
      std::move(done));
  store_->Submit(std::move(unit));
}

}  // namespace meterd::metering
