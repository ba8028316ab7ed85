#include "control/control_plane.h"

#include <fstream>
#include <optional>
#include <sstream>

#include "common/crypto.h"
#include "common/time_util.h"
#include "observability/log.h"

namespace meterd::control {

namespace {

constexpr int64_t kHourMs = int64_t{3600} * 1000;

int64_t HoursToMs(double hours) { return static_cast<int64_t>(hours * kHourMs); }

json::Value Number(double d) {
  std::ostringstream out;
  out.precision(15);
  out << d;
  return json::Value::Number(out.str());
}

// Imported private keys must parse before a change is stored, or the change would publish a
// product that cannot sign.
Status CheckImportedKeys(const catalog::Catalog& catalog) {
  for (const catalog::Product& product : catalog.products()) {
    for (const catalog::SigningKeyRef& ref : product.signing_keys) {
      if (ref.private_key_pem.empty()) continue;
      auto key = keys::SigningKey::FromPrivatePem(ref.private_key_pem);
      if (!key.ok()) {
        return Status(StatusCode::kInvalidArgument, "products/" + product.code + " key version " +
                                                        std::to_string(ref.version) + ": " +
                                                        key.status().message());
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Settings EffectiveSettings(const Settings& flags, const catalog::SettingsOverrides& o) {
  Settings s = flags;
  if (o.batch_window_hours) s.service.windows.batch_max_age_ms = HoursToMs(*o.batch_window_hours);
  if (o.batch_month_grace_hours) {
    s.service.windows.batch_month_grace_ms = HoursToMs(*o.batch_month_grace_hours);
  }
  if (o.meter_usage_window_hours) {
    s.service.windows.meter_usage_max_age_ms = HoursToMs(*o.meter_usage_window_hours);
  }
  if (o.future_skew_minutes) {
    s.service.windows.max_future_ms = static_cast<int64_t>(*o.future_skew_minutes * 60 * 1000);
  }
  if (o.token_ttl_hours) s.service.token_ttl_ms = HoursToMs(*o.token_ttl_hours);
  if (o.throttle_enabled) s.throttle.enabled = *o.throttle_enabled;
  if (o.throttle_batch_meter_usage) s.throttle.batch_meter_usage = *o.throttle_batch_meter_usage;
  if (o.throttle_meter_usage) s.throttle.meter_usage = *o.throttle_meter_usage;
  if (o.throttle_register_usage) s.throttle.register_usage = *o.throttle_register_usage;
  if (o.throttle_resolve_customer) s.throttle.resolve_customer = *o.throttle_resolve_customer;
  if (o.throttle_burst_seconds) s.throttle.burst_factor = *o.throttle_burst_seconds;
  if (o.audit_retention_days) s.audit_retention_ms = HoursToMs(*o.audit_retention_days * 24);
  return s;
}

json::Value SettingsJson(const Settings& s) {
  auto hours = [](int64_t ms) { return Number(static_cast<double>(ms) / kHourMs); };
  const metering::WindowSettings& w = s.service.windows;
  return json::Value::Object({
      {"auditRetentionDays", Number(static_cast<double>(s.audit_retention_ms) / (24 * kHourMs))},
      {"batchMonthGraceHours", hours(w.batch_month_grace_ms)},
      {"batchWindowHours", hours(w.batch_max_age_ms)},
      {"futureSkewMinutes", Number(static_cast<double>(w.max_future_ms) / 60000)},
      {"meterUsageWindowHours", hours(w.meter_usage_max_age_ms)},
      {"throttle", json::Value::Object({
                       {"batchMeterUsage", Number(s.throttle.batch_meter_usage)},
                       {"burstSeconds", Number(s.throttle.burst_factor)},
                       {"enabled", json::Value::Bool(s.throttle.enabled)},
                       {"meterUsage", Number(s.throttle.meter_usage)},
                       {"registerUsage", Number(s.throttle.register_usage)},
                       {"resolveCustomer", Number(s.throttle.resolve_customer)},
                   })},
      {"tokenTtlHours", hours(s.service.token_ttl_ms)},
  });
}

Status ControlPlane::Start(const std::string& catalog_file) {
  std::unique_lock<std::mutex> lock(mu_);
  std::optional<store::CatalogVersion> stored;
  Status st = store::SubmitAndWait(deps_.store, [&stored](store::Transaction& txn) -> Status {
    auto latest = txn.LatestCatalog();
    if (!latest.ok()) return latest.status();
    stored = std::move(*latest);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  json::Value document = json::Value::Object({});
  if (stored.has_value()) {
    auto parsed = json::Parse(stored->document);
    if (!parsed.ok()) {
      return Status(StatusCode::kCorruption, "stored catalog version " +
                                                 std::to_string(stored->version) +
                                                 " is not JSON: " + parsed.status().message());
    }
    document = std::move(*parsed);
    version_ = stored->version;
  }
  auto catalog = catalog::Catalog::FromJson(json::Serialize(document), deps_.clock->NowMillis());
  if (!catalog.ok()) {
    return Status(StatusCode::kCorruption, "stored catalog version " + std::to_string(version_) +
                                               " is refused: " + catalog.status().message());
  }
  METERD_RETURN_IF_ERROR(Publish(document, *catalog, version_));
  lock.unlock();
  if (catalog_file.empty()) return Status::Ok();

  std::ifstream in(catalog_file, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, "catalog: cannot read " + catalog_file);
  std::stringstream buffer;
  buffer << in.rdbuf();
  auto incoming = json::Parse(buffer.str());
  if (!incoming.ok()) {
    return Status(StatusCode::kInvalidArgument, "catalog: " + incoming.status().message());
  }
  auto applied = Apply(*incoming, "--catalog " + catalog_file);
  return applied.ok() ? Status::Ok() : applied.status();
}

json::Value ControlPlane::Document() const {
  std::lock_guard<std::mutex> lock(mu_);
  return document_;
}

int64_t ControlPlane::version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return version_;
}

Settings ControlPlane::settings() const {
  return EffectiveSettings(flags_, deps_.catalog->Get()->settings());
}

Result<json::Value> ControlPlane::Change(
    const std::string& description,
    const std::function<Result<json::Value>(const json::Value&)>& edit) {
  std::unique_lock<std::mutex> lock(mu_);
  const int64_t now = deps_.clock->NowMillis();
  auto edited = edit(document_);
  if (!edited.ok()) return edited.status();
  json::Value next = StampTimes(Canonical(*edited), now);
  const std::string text = json::Serialize(next);
  if (text == json::Serialize(document_)) return next;  // nothing to store
  auto catalog = catalog::Catalog::FromJson(text, now);
  if (!catalog.ok()) return catalog.status();
  METERD_RETURN_IF_ERROR(CheckImportedKeys(**catalog));

  store::CatalogVersion version{version_ + 1, text, now, description};
  const int64_t expected_previous = version_;
  std::optional<int64_t> refused_at;  // the version another node stored first
  Status st = store::SubmitAndWait(deps_.store, [&](store::Transaction& txn) -> Status {
    refused_at.reset();  // apply may run again (store.h)
    auto latest = txn.LatestCatalog();
    if (!latest.ok()) return latest.status();
    const int64_t latest_version = latest->has_value() ? (*latest)->version : 0;
    if (latest_version != expected_previous) {
      // Not a store failure: record the refusal and leave the transaction untouched.
      refused_at = latest_version;
      return Status::Ok();
    }
    return txn.PutCatalog(version);
  });
  if (!st.ok()) return st;
  if (refused_at.has_value()) {
    return Status(StatusCode::kConflict, "the catalog was changed by another node (now version " +
                                             std::to_string(*refused_at) + "); retry");
  }
  METERD_RETURN_IF_ERROR(Publish(next, *catalog, version.version));
  lock.unlock();
  AfterChange();
  return next;
}

Result<MergeOutcome> ControlPlane::Apply(const json::Value& incoming,
                                         const std::string& description) {
  MergeOutcome outcome;
  auto changed = Change(description, [&](const json::Value& current) -> Result<json::Value> {
    auto merged = MergeCatalog(current, incoming);
    if (!merged.ok()) return merged.status();
    outcome = std::move(*merged);
    return outcome.document;
  });
  if (!changed.ok()) return changed.status();
  outcome.document = std::move(*changed);
  return outcome;
}

Status ControlPlane::Publish(const json::Value& document,
                             std::shared_ptr<const catalog::Catalog> catalog, int64_t version) {
  Settings effective = EffectiveSettings(flags_, catalog->settings());
  document_ = document;
  version_ = version;
  deps_.catalog->Set(std::move(catalog));
  deps_.service->Configure(effective.service);
  if (deps_.throttler != nullptr) deps_.throttler->Configure(effective.throttle);
  return Status::Ok();
}

void ControlPlane::AfterChange() {
  // The change is already durable and in force; these only catch up derived state, and are
  // retried at the next change, the next task-metering pass or the next start.
  if (Status st = deps_.service->PrepareCatalog(); !st.ok()) {
    log::Error("preparing the changed catalog failed", {{"error", st.ToString()}});
  }
  if (Status st = deps_.service->MeterTaskRuns(); !st.ok()) {
    log::Error("task metering after a change failed", {{"error", st.ToString()}});
  }
}

Result<std::vector<IssuedToken>> ControlPlane::ListTokens() {
  std::vector<store::RegistrationTokenRow> rows;
  Status st = store::SubmitAndWait(deps_.store, [&rows](store::Transaction& txn) -> Status {
    auto listed = txn.ListRegistrationTokens();
    if (!listed.ok()) return listed.status();
    rows = std::move(*listed);
    return Status::Ok();
  });
  if (!st.ok()) return st;
  const int64_t ttl = settings().service.token_ttl_ms;
  std::vector<IssuedToken> out;
  out.reserve(rows.size());
  for (auto& row : rows) {
    const int64_t expires = row.issued_ms + ttl;
    out.push_back(IssuedToken{std::move(row), expires});
  }
  return out;
}

Result<IssuedToken> ControlPlane::IssueToken(const std::string& product_code,
                                             const std::string& account,
                                             const std::string& license_arn) {
  std::shared_ptr<const catalog::Catalog> catalog = deps_.catalog->Get();
  const catalog::Product* product = catalog->FindProduct(product_code);
  if (product == nullptr || product->kind != catalog::ProductKind::kSaas) {
    return Status(StatusCode::kInvalidArgument, "no SaaS product \"" + product_code + "\"");
  }
  if (catalog->FindAccount(account) == nullptr) {
    return Status(StatusCode::kInvalidArgument, "no account \"" + account + "\"");
  }
  if (!license_arn.empty()) {
    const catalog::Subscription* license = catalog->FindLicense(license_arn);
    if (license == nullptr || license->account != account || license->product != product_code) {
      return Status(StatusCode::kInvalidArgument,
                    "licenseArn is not a license of this account and product");
    }
  } else if (product->integration == catalog::Integration::kConcurrentAgreements) {
    return Status(StatusCode::kInvalidArgument,
                  "a product with concurrent agreements needs a licenseArn");
  }
  static constexpr std::string_view kTokenAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  store::RegistrationTokenRow row{"mrt-" + SecureRandomString(kTokenAlphabet, 40),
                                  product->seller,
                                  product->code,
                                  account,
                                  license_arn,
                                  deps_.clock->NowMillis()};
  Status st = store::SubmitAndWait(
      deps_.store, [&row](store::Transaction& txn) { return txn.PutRegistrationToken(row); });
  if (!st.ok()) return st;
  const int64_t expires = row.issued_ms + settings().service.token_ttl_ms;
  return IssuedToken{std::move(row), expires};
}

Status ControlPlane::RevokeToken(const std::string& token) {
  // A catalog token leaves the document too, or the next start would record it again.
  if (FindEntry(Document(), "registrationTokens", token) != nullptr) {
    auto changed = Change("revoke registration token",
                          [&token](const json::Value& doc) -> Result<json::Value> {
                            bool removed = false;
                            return RemoveEntry(doc, "registrationTokens", token, &removed);
                          });
    if (!changed.ok()) return changed.status();
  }
  bool deleted = false;
  Status st = store::SubmitAndWait(deps_.store, [&](store::Transaction& txn) -> Status {
    auto result = txn.DeleteRegistrationToken(token);
    if (!result.ok()) return result.status();
    deleted = *result;
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return deleted ? Status::Ok() : Status(StatusCode::kNotFound, "no registration token " + token);
}

Status ControlPlane::SetClock(int64_t millis) {
  if (deps_.manual_clock == nullptr) {
    return Status(StatusCode::kConflict,
                  "the clock is the system clock; start meterd with --clock manual to move it");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = deps_.manual_clock->NowMillis();
    if (millis < now) {
      return Status(StatusCode::kConflict,
                    "the test clock only moves forward (now " + FormatIso8601(now) + ")");
    }
    deps_.manual_clock->Set(millis);
  }
  // Task metering catches up with the new time at once, not at the next tick.
  if (Status st = deps_.service->MeterTaskRuns(); !st.ok()) return st;
  return Status::Ok();
}

Status ControlPlane::AdvanceClock(int64_t millis) {
  if (deps_.manual_clock == nullptr) return SetClock(0);
  if (millis < 0) return Status(StatusCode::kConflict, "the test clock only moves forward");
  return SetClock(deps_.manual_clock->NowMillis() + millis);
}

}  // namespace meterd::control
