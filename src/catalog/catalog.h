// The control-plane model (BEHAVIOUR.md section 14): accounts, credentials, workloads, products,
// subscriptions, registration tokens and region settings.
//
// A Catalog is an immutable snapshot, built once from a JSON catalog file and then only read;
// share it as std::shared_ptr<const Catalog>. CatalogHolder publishes the current snapshot to
// every thread and is where live changes (control plane) swap in a new one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/sigv4.h"
#include "common/status.h"

namespace meterd::catalog {

struct Account {
  std::string id;  // 12 digits
  std::string name;
  bool seller = false;
  bool buyer = false;
  std::string customer_identifier;  // empty: none (can only be metered by account id)
};

enum class Platform { kEc2, kEcs, kEks, kFargate, kAgentCore, kOther };
const char* PlatformName(Platform p);

struct Workload {
  std::string id;
  Platform platform = Platform::kOther;
  std::string region;
  std::string account;                // the buyer account the workload runs in
  std::optional<int64_t> stopped_ms;  // the task stopped (ends its metered run, D11)
};

// Exactly one of `account` (a seller's long-term key) and `workload` is set.
struct CredentialEntry {
  auth::Credential credential;
  std::string account;
  std::string workload;
};

enum class ProductKind { kSaas, kAmi, kContainer };
enum class Integration { kLegacy, kConcurrentAgreements };

struct Dimension {
  std::string name;
  std::string description;
  std::string unit;
  std::string price_per_unit;  // exact decimal text; empty when not priced
};

struct SigningKeyRef {
  int64_t version = 0;
  bool expired = false;
  int64_t expired_at_ms = 0;    // PublicKeyRotationTimestamp; the load time if not given
  std::string private_key_pem;  // imported key; empty: meterd generates one
};

struct Product {
  std::string code;
  std::string seller;
  ProductKind kind = ProductKind::kSaas;
  Integration integration = Integration::kLegacy;
  std::vector<Dimension> dimensions;
  std::string hourly_dimension;
  std::vector<SigningKeyRef> signing_keys;

  const Dimension* FindDimension(std::string_view name) const;  // case-sensitive
  const SigningKeyRef* FindSigningKey(int64_t version) const;
};

enum class SubscriptionStatus { kActive, kUnsubscribePending, kUnsubscribed };

struct Subscription {
  std::string account;
  std::string product;
  SubscriptionStatus status = SubscriptionStatus::kActive;
  std::string license_arn;                  // empty for legacy subscriptions
  std::optional<int64_t> start_ms, end_ms;  // agreement / license activation period
  int64_t unsubscribed_at_ms = 0;           // for kUnsubscribePending
  bool free_trial = false;

  // Whether usage stamped `usage_ms` may be metered at `now_ms` (status, grace, period).
  bool AcceptsUsage(int64_t usage_ms, int64_t now_ms) const;
  bool CoversTime(int64_t usage_ms) const;
};

// How long an unsubscribe-pending subscription keeps accepting records.
constexpr int64_t kUnsubscribeGraceMillis = int64_t{60} * 60 * 1000;

struct RegistrationToken {
  std::string token;
  std::string account;
  std::string product;
  std::string license_arn;
  std::optional<int64_t> issued_ms;  // absent: when a data dir first saw it
};

struct DisabledOperations {
  std::string region;
  std::vector<std::string> operations;
};

// Server settings stored in the catalog ("settings", set through the control plane). Each one,
// when present, wins over the command-line flag of the same name.
struct SettingsOverrides {
  std::optional<double> batch_window_hours, batch_month_grace_hours, meter_usage_window_hours,
      future_skew_minutes, token_ttl_hours;
  std::optional<bool> throttle_enabled;
  std::optional<double> throttle_batch_meter_usage, throttle_meter_usage, throttle_register_usage,
      throttle_resolve_customer, throttle_burst_seconds;
  std::optional<double> audit_retention_days;  // D17
};

class Catalog {
 public:
  // Parses and cross-checks a catalog document. `loaded_at_ms` stands in for a missing
  // `unsubscribedAt` of unsubscribe-pending subscriptions.
  static Result<std::shared_ptr<const Catalog>> FromJson(std::string_view text,
                                                         int64_t loaded_at_ms);
  static Result<std::shared_ptr<const Catalog>> LoadFile(const std::string& path,
                                                         int64_t loaded_at_ms);

  const Account* FindAccount(std::string_view id) const;
  const Account* FindAccountByCustomerIdentifier(std::string_view customer_identifier) const;
  const Workload* FindWorkload(std::string_view id) const;
  const CredentialEntry* FindCredential(std::string_view access_key_id) const;
  const Product* FindProduct(std::string_view code) const;
  const Subscription* FindLicense(std::string_view license_arn) const;
  const RegistrationToken* FindRegistrationToken(std::string_view token) const;
  // Every subscription (agreement) of `account` to `product`.
  std::vector<const Subscription*> SubscriptionsOf(std::string_view account,
                                                   std::string_view product) const;
  bool IsDisabled(std::string_view region, std::string_view operation) const;
  int64_t loaded_at_ms() const { return loaded_at_ms_; }
  const SettingsOverrides& settings() const { return settings_; }

  const std::vector<Account>& accounts() const { return accounts_; }
  const std::vector<Product>& products() const { return products_; }
  const std::vector<CredentialEntry>& credentials() const { return credentials_; }
  const std::vector<Workload>& workloads() const { return workloads_; }
  const std::vector<RegistrationToken>& registration_tokens() const { return registration_tokens_; }
  const std::vector<Subscription>& subscriptions() const { return subscriptions_; }
  const std::vector<DisabledOperations>& disabled_operations() const { return disabled_; }

 private:
  int64_t loaded_at_ms_ = 0;
  std::vector<Account> accounts_;
  std::vector<Workload> workloads_;
  std::vector<CredentialEntry> credentials_;
  std::vector<Product> products_;
  std::vector<Subscription> subscriptions_;
  std::vector<RegistrationToken> registration_tokens_;
  std::vector<DisabledOperations> disabled_;
  SettingsOverrides settings_;

  std::map<std::string, size_t, std::less<>> account_index_, customer_index_, workload_index_,
      credential_index_, product_index_, license_index_, registration_token_index_;
  std::multimap<std::string, size_t, std::less<>> subscription_index_;  // account+'\n'+product
};

// Publishes the current catalog snapshot. Thread-safe. Also the KeyStore that SigV4 uses, so
// that a credential added or disabled by a catalog change takes effect on the next request.
class CatalogHolder final : public auth::KeyStore {
 public:
  explicit CatalogHolder(std::shared_ptr<const Catalog> initial) : current_(std::move(initial)) {}

  std::shared_ptr<const Catalog> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }
  void Set(std::shared_ptr<const Catalog> next) {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = std::move(next);
  }

  std::optional<auth::Credential> Find(std::string_view access_key_id) const override;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Catalog> current_;
};

}  // namespace meterd::catalog
