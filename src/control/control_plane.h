// ControlPlane: the one owner of the catalog in force. Every change (admin API, `meterctl
// apply`, `--catalog` at start) goes through it: the edit is made on a copy of the catalog
// document, validated as a whole (Catalog::FromJson, imported keys parsed), stored as a new
// catalog version in one store transaction, and only then published to the metering API
// (CatalogHolder, service and throttle settings). A refused change changes nothing.
//
// Thread-safe: changes are serialized by one mutex; they block on the store commit, so they
// run on the admin API's threads, never on the metering API's event loops.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "common/clock.h"
#include "common/status.h"
#include "control/document.h"
#include "json/json.h"
#include "keys/signing_keys.h"
#include "metering/service.h"
#include "metering/throttle.h"
#include "store/store.h"

namespace meterd::control {

// The settings the control plane can change: the command-line values, overlaid with the
// catalog's "settings".
struct Settings {
  metering::ServiceSettings service;
  metering::ThrottleSettings throttle;
  // How long audit events are kept (D17; --audit-retention-days).
  int64_t audit_retention_ms = int64_t{90} * 24 * 3600 * 1000;
};
Settings EffectiveSettings(const Settings& flags, const catalog::SettingsOverrides& overrides);
json::Value SettingsJson(const Settings& settings);

struct ControlPlaneDeps {
  catalog::CatalogHolder* catalog = nullptr;
  const Clock* clock = nullptr;
  ManualClock* manual_clock = nullptr;  // null unless `--clock manual`
  store::Store* store = nullptr;
  metering::MeteringService* service = nullptr;
  metering::Throttler* throttler = nullptr;  // may be null
  keys::SigningKeyStore* signing_keys = nullptr;
};

// A registration token as the admin API shows it.
struct IssuedToken {
  store::RegistrationTokenRow row;
  int64_t expires_ms = 0;
};

class ControlPlane {
 public:
  // None of the pointers is owned; all must outlive the control plane.
  ControlPlane(ControlPlaneDeps deps, Settings flags) : deps_(deps), flags_(flags) {}

  // Loads the stored catalog (none: an empty one), applies `catalog_file` when given, and
  // publishes the result. Call once, before serving.
  Status Start(const std::string& catalog_file);

  // The catalog document in force (canonical, secrets included) and its version (0: none yet).
  json::Value Document() const;
  int64_t version() const;
  Settings settings() const;

  // Makes one change: `edit` gets the current document and returns the next one (or refuses with
  // a status that is passed on). An edit that changes nothing stores nothing. Validation errors
  // are kInvalidArgument; a concurrent change by another node is kConflict; store errors pass.
  Result<json::Value> Change(const std::string& description,
                             const std::function<Result<json::Value>(const json::Value&)>& edit);
  // Declarative apply (document.h MergeCatalog), committed as one change.
  Result<MergeOutcome> Apply(const json::Value& incoming, const std::string& description);

  // Registration tokens (ResolveCustomer) live in the store, not in the document.
  Result<std::vector<IssuedToken>> ListTokens();
  Result<IssuedToken> IssueToken(const std::string& product, const std::string& account,
                                 const std::string& license_arn);
  // kNotFound when there is no such token.
  Status RevokeToken(const std::string& token);

  // Business time now.
  int64_t Now() const { return deps_.clock->NowMillis(); }

  // The test clock. kConflict on the system clock, or when `millis` is before now.
  bool manual_clock() const { return deps_.manual_clock != nullptr; }
  Status SetClock(int64_t millis);
  Status AdvanceClock(int64_t millis);

 private:
  Status Publish(const json::Value& document, std::shared_ptr<const catalog::Catalog> catalog,
                 int64_t version);
  // Work that follows a change: keys to generate, catalog tokens to record, runs to close.
  void AfterChange();

  ControlPlaneDeps deps_;
  const Settings flags_;
  mutable std::mutex mu_;
  json::Value document_ = json::Value::Object({});
  int64_t version_ = 0;
};

}  // namespace meterd::control
