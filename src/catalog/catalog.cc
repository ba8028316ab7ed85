#include "catalog/catalog.h"

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "common/time_util.h"
#include "json/json.h"

namespace meterd::catalog {

const char* PlatformName(Platform p) {
  switch (p) {
    case Platform::kEc2:
      return "ec2";
    case Platform::kEcs:
      return "ecs";
    case Platform::kEks:
      return "eks";
    case Platform::kFargate:
      return "fargate";
    case Platform::kAgentCore:
      return "agentcore";
    case Platform::kOther:
      return "other";
  }
  return "other";
}

const SigningKeyRef* Product::FindSigningKey(int64_t version) const {
  for (const auto& k : signing_keys) {
    if (k.version == version) return &k;
  }
  return nullptr;
}

const Dimension* Product::FindDimension(std::string_view name) const {
  for (const auto& d : dimensions) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

bool Subscription::CoversTime(int64_t usage_ms) const {
  if (start_ms && usage_ms < *start_ms) return false;
  if (end_ms && usage_ms > *end_ms) return false;
  return true;
}

bool Subscription::AcceptsUsage(int64_t usage_ms, int64_t now_ms) const {
  switch (status) {
    case SubscriptionStatus::kActive:
      break;
    case SubscriptionStatus::kUnsubscribePending:
      if (now_ms >= unsubscribed_at_ms + kUnsubscribeGraceMillis) return false;
      break;
    case SubscriptionStatus::kUnsubscribed:
      return false;
  }
  return CoversTime(usage_ms);
}

namespace {

Status Invalid(const std::string& what) {
  return Status(StatusCode::kInvalidArgument, "catalog: " + what);
}

// Small typed accessors that turn a missing or mistyped field into a precise message.
class Fields {
 public:
  Fields(const json::Value& object, std::string where)
      : object_(object), where_(std::move(where)) {}

  Status String(std::string_view key, bool required, std::string* out) const {
    const json::Value* v = object_.Find(key);
    if (v == nullptr || v->is_null()) {
      return required ? Invalid(where_ + ": missing \"" + std::string(key) + "\"") : Status::Ok();
    }
    if (!v->is_string()) return Invalid(where_ + ": \"" + std::string(key) + "\" must be a string");
    *out = v->text();
    return Status::Ok();
  }
  Status Bool(std::string_view key, bool* out) const {
    const json::Value* v = object_.Find(key);
    if (v == nullptr || v->is_null()) return Status::Ok();
    if (!v->is_bool())
      return Invalid(where_ + ": \"" + std::string(key) + "\" must be true or false");
    *out = v->as_bool();
    return Status::Ok();
  }
  Status Time(std::string_view key, std::optional<int64_t>* out) const {
    std::string text;
    METERD_RETURN_IF_ERROR(String(key, false, &text));
    if (text.empty()) return Status::Ok();
    auto t = ParseIso8601(text);
    if (!t) return Invalid(where_ + ": \"" + std::string(key) + "\" is not an ISO 8601 time");
    *out = *t;
    return Status::Ok();
  }
  Status StringList(std::string_view key, std::vector<std::string>* out) const {
    const json::Value* v = object_.Find(key);
    if (v == nullptr || v->is_null()) return Status::Ok();
    if (!v->is_array()) return Invalid(where_ + ": \"" + std::string(key) + "\" must be a list");
    for (const auto& item : v->items()) {
      if (!item.is_string())
        return Invalid(where_ + ": \"" + std::string(key) + "\" must hold strings");
      out->push_back(item.text());
    }
    return Status::Ok();
  }
  const json::Value* Find(std::string_view key) const { return object_.Find(key); }
  const std::string& where() const { return where_; }

 private:
  const json::Value& object_;
  std::string where_;
};

template <typename Fn>
Status ForEach(const json::Value& root, std::string_view key, Fn fn) {
  const json::Value* list = root.Find(key);
  if (list == nullptr || list->is_null()) return Status::Ok();
  if (!list->is_array()) return Invalid("\"" + std::string(key) + "\" must be a list");
  size_t index = 0;
  for (const auto& item : list->items()) {
    std::string where = std::string(key) + "[" + std::to_string(index++) + "]";
    if (!item.is_object()) return Invalid(where + " must be an object");
    METERD_RETURN_IF_ERROR(fn(Fields(item, where)));
  }
  return Status::Ok();
}

bool IsAccountId(std::string_view id) {
  if (id.size() != 12) return false;
  for (char c : id) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// A positive number no larger than `max`.
Status PositiveNumber(const json::Value& object, std::string_view key, double max,
                      std::optional<double>* out) {
  const json::Value* v = object.Find(key);
  if (v == nullptr || v->is_null()) return Status::Ok();
  std::string where = "settings: \"" + std::string(key) + "\"";
  if (!v->is_number()) return Invalid(where + " must be a number");
  char* end = nullptr;
  double d = std::strtod(v->text().c_str(), &end);
  if (!(d > 0) || d > max) {
    return Invalid(where + " must be greater than 0 and at most " + std::to_string(max));
  }
  *out = d;
  return Status::Ok();
}

Status ParseSettings(const json::Value& s, SettingsOverrides* out) {
  if (!s.is_object()) return Invalid("\"settings\" must be an object");
  constexpr double kYearHours = 366 * 24;
  METERD_RETURN_IF_ERROR(
      PositiveNumber(s, "batchWindowHours", kYearHours, &out->batch_window_hours));
  METERD_RETURN_IF_ERROR(
      PositiveNumber(s, "batchMonthGraceHours", kYearHours, &out->batch_month_grace_hours));
  METERD_RETURN_IF_ERROR(
      PositiveNumber(s, "meterUsageWindowHours", kYearHours, &out->meter_usage_window_hours));
  METERD_RETURN_IF_ERROR(
      PositiveNumber(s, "futureSkewMinutes", kYearHours * 60, &out->future_skew_minutes));
  METERD_RETURN_IF_ERROR(PositiveNumber(s, "tokenTtlHours", kYearHours, &out->token_ttl_hours));
  METERD_RETURN_IF_ERROR(
      PositiveNumber(s, "auditRetentionDays", 100 * 366, &out->audit_retention_days));
  const json::Value* t = s.Find("throttle");
  if (t == nullptr || t->is_null()) return Status::Ok();
  if (!t->is_object()) return Invalid("settings: \"throttle\" must be an object");
  if (const json::Value* enabled = t->Find("enabled"); enabled && !enabled->is_null()) {
    if (!enabled->is_bool()) return Invalid("settings: \"throttle.enabled\" must be true or false");
    out->throttle_enabled = enabled->as_bool();
  }
  constexpr double kMaxRate = 1e6;
  METERD_RETURN_IF_ERROR(
      PositiveNumber(*t, "batchMeterUsage", kMaxRate, &out->throttle_batch_meter_usage));
  METERD_RETURN_IF_ERROR(PositiveNumber(*t, "meterUsage", kMaxRate, &out->throttle_meter_usage));
  METERD_RETURN_IF_ERROR(
      PositiveNumber(*t, "registerUsage", kMaxRate, &out->throttle_register_usage));
  METERD_RETURN_IF_ERROR(
      PositiveNumber(*t, "resolveCustomer", kMaxRate, &out->throttle_resolve_customer));
  METERD_RETURN_IF_ERROR(PositiveNumber(*t, "burstSeconds", 3600, &out->throttle_burst_seconds));
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const Catalog>> Catalog::LoadFile(const std::string& path,
                                                         int64_t loaded_at_ms) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, "catalog: cannot read " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return FromJson(buffer.str(), loaded_at_ms);
}

Result<std::shared_ptr<const Catalog>> Catalog::FromJson(std::string_view text,
                                                         int64_t loaded_at_ms) {
  auto parsed = json::Parse(text);
  if (!parsed.ok()) return Invalid(parsed.status().message());
  const json::Value& root = *parsed;
  if (!root.is_object()) return Invalid("the document must be a JSON object");
  auto catalog = std::make_shared<Catalog>();
  Catalog& c = *catalog;
  c.loaded_at_ms_ = loaded_at_ms;

  METERD_RETURN_IF_ERROR(ForEach(root, "accounts", [&](const Fields& f) -> Status {
    Account a;
    METERD_RETURN_IF_ERROR(f.String("id", true, &a.id));
    METERD_RETURN_IF_ERROR(f.String("name", false, &a.name));
    METERD_RETURN_IF_ERROR(f.String("customerIdentifier", false, &a.customer_identifier));
    std::vector<std::string> roles;
    METERD_RETURN_IF_ERROR(f.StringList("roles", &roles));
    for (const auto& r : roles) {
      if (r == "seller")
        a.seller = true;
      else if (r == "buyer")
        a.buyer = true;
      else
        return Invalid(f.where() + ": unknown role \"" + r + "\" (seller, buyer)");
    }
    if (!IsAccountId(a.id)) return Invalid(f.where() + ": id must be 12 digits");
    if (c.account_index_.count(a.id)) return Invalid(f.where() + ": duplicate account " + a.id);
    if (!a.customer_identifier.empty()) {
      if (a.customer_identifier.size() > 255)
        return Invalid(f.where() + ": customerIdentifier too long");
      if (!c.customer_index_.emplace(a.customer_identifier, c.accounts_.size()).second) {
        return Invalid(f.where() + ": duplicate customerIdentifier");
      }
    }
    c.account_index_.emplace(a.id, c.accounts_.size());
    c.accounts_.push_back(std::move(a));
    return Status::Ok();
  }));

  METERD_RETURN_IF_ERROR(ForEach(root, "workloads", [&](const Fields& f) -> Status {
    Workload w;
    std::string platform;
    METERD_RETURN_IF_ERROR(f.String("id", true, &w.id));
    METERD_RETURN_IF_ERROR(f.String("platform", true, &platform));
    METERD_RETURN_IF_ERROR(f.String("region", true, &w.region));
    METERD_RETURN_IF_ERROR(f.String("account", true, &w.account));
    METERD_RETURN_IF_ERROR(f.Time("stoppedAt", &w.stopped_ms));
    static const std::pair<const char*, Platform> kPlatforms[] = {
        {"ec2", Platform::kEc2},
        {"ecs", Platform::kEcs},
        {"eks", Platform::kEks},
        {"fargate", Platform::kFargate},
        {"agentcore", Platform::kAgentCore},
        {"other", Platform::kOther}};
    bool known = false;
    for (const auto& [name, value] : kPlatforms) {
      if (platform == name) {
        w.platform = value;
        known = true;
      }
    }
    if (!known) return Invalid(f.where() + ": unknown platform \"" + platform + "\"");
    if (!c.FindAccount(w.account)) return Invalid(f.where() + ": unknown account " + w.account);
    if (!c.workload_index_.emplace(w.id, c.workloads_.size()).second) {
      return Invalid(f.where() + ": duplicate workload " + w.id);
    }
    c.workloads_.push_back(std::move(w));
    return Status::Ok();
  }));

  METERD_RETURN_IF_ERROR(ForEach(root, "credentials", [&](const Fields& f) -> Status {
    CredentialEntry e;
    METERD_RETURN_IF_ERROR(f.String("accessKeyId", true, &e.credential.access_key_id));
    METERD_RETURN_IF_ERROR(f.String("secretAccessKey", true, &e.credential.secret_access_key));
    METERD_RETURN_IF_ERROR(f.String("sessionToken", false, &e.credential.session_token));
    METERD_RETURN_IF_ERROR(f.Bool("enabled", &e.credential.enabled));
    METERD_RETURN_IF_ERROR(f.String("account", false, &e.account));
    METERD_RETURN_IF_ERROR(f.String("workload", false, &e.workload));
    if (e.account.empty() == e.workload.empty()) {
      return Invalid(f.where() + ": give exactly one of \"account\" and \"workload\"");
    }
    if (!e.account.empty() && !c.FindAccount(e.account)) {
      return Invalid(f.where() + ": unknown account " + e.account);
    }
    if (!e.workload.empty() && !c.FindWorkload(e.workload)) {
      return Invalid(f.where() + ": unknown workload " + e.workload);
    }
    if (!c.credential_index_.emplace(e.credential.access_key_id, c.credentials_.size()).second) {
      return Invalid(f.where() + ": duplicate accessKeyId");
    }
    c.credentials_.push_back(std::move(e));
    return Status::Ok();
  }));

  METERD_RETURN_IF_ERROR(ForEach(root, "products", [&](const Fields& f) -> Status {
    Product p;
    std::string kind, integration = "legacy";
    METERD_RETURN_IF_ERROR(f.String("code", true, &p.code));
    METERD_RETURN_IF_ERROR(f.String("seller", true, &p.seller));
    METERD_RETURN_IF_ERROR(f.String("kind", true, &kind));
    METERD_RETURN_IF_ERROR(f.String("integration", false, &integration));
    METERD_RETURN_IF_ERROR(f.String("hourlyDimension", false, &p.hourly_dimension));
    if (kind == "saas")
      p.kind = ProductKind::kSaas;
    else if (kind == "ami")
      p.kind = ProductKind::kAmi;
    else if (kind == "container")
      p.kind = ProductKind::kContainer;
    else
      return Invalid(f.where() + ": unknown kind \"" + kind + "\" (saas, ami, container)");
    if (integration == "legacy")
      p.integration = Integration::kLegacy;
    else if (integration == "concurrent-agreements")
      p.integration = Integration::kConcurrentAgreements;
    else
      return Invalid(f.where() + ": unknown integration \"" + integration + "\"");
    const Account* seller = c.FindAccount(p.seller);
    if (seller == nullptr || !seller->seller) {
      return Invalid(f.where() + ": seller " + p.seller + " is not a seller account");
    }
    if (p.code.empty() || p.code.size() > 255) return Invalid(f.where() + ": bad product code");
    const json::Value* dims = f.Find("dimensions");
    if (dims != nullptr && !dims->is_array())
      return Invalid(f.where() + ": dimensions must be a list");
    if (dims != nullptr) {
      for (const auto& d : dims->items()) {
        if (!d.is_object()) return Invalid(f.where() + ": a dimension must be an object");
        Fields df(d, f.where() + ".dimensions");
        Dimension dim;
        METERD_RETURN_IF_ERROR(df.String("name", true, &dim.name));
        METERD_RETURN_IF_ERROR(df.String("description", false, &dim.description));
        METERD_RETURN_IF_ERROR(df.String("unit", false, &dim.unit));
        if (const json::Value* price = d.Find("pricePerUnit"); price && !price->is_null()) {
          if (!price->is_number() || price->text()[0] == '-') {
            return Invalid(f.where() + ": pricePerUnit must be a non-negative number");
          }
          dim.price_per_unit = price->text();
        }
        if (dim.name.empty() || dim.name.size() > 255)
          return Invalid(f.where() + ": bad dimension name");
        if (p.FindDimension(dim.name))
          return Invalid(f.where() + ": duplicate dimension " + dim.name);
        p.dimensions.push_back(std::move(dim));
      }
    }
    if (!p.hourly_dimension.empty() && !p.FindDimension(p.hourly_dimension)) {
      return Invalid(f.where() + ": hourlyDimension is not one of the dimensions");
    }
    if (const json::Value* keys = f.Find("signingKeys"); keys && keys->is_array()) {
      for (const auto& k : keys->items()) {
        SigningKeyRef ref;
        const json::Value* version = k.is_object() ? k.Find("version") : nullptr;
        if (version == nullptr || !version->GetInt64(&ref.version) || ref.version < 1) {
          return Invalid(f.where() + ": signingKeys[].version must be an integer >= 1");
        }
        Fields kf(k, f.where() + ".signingKeys");
        METERD_RETURN_IF_ERROR(kf.Bool("expired", &ref.expired));
        std::optional<int64_t> expired_at;
        METERD_RETURN_IF_ERROR(kf.Time("expiredAt", &expired_at));
        ref.expired_at_ms = expired_at.value_or(loaded_at_ms);
        METERD_RETURN_IF_ERROR(kf.String("privateKeyPem", false, &ref.private_key_pem));
        if (p.FindSigningKey(ref.version) != nullptr) {
          return Invalid(f.where() + ": duplicate signing key version");
        }
        p.signing_keys.push_back(std::move(ref));
      }
    }
    if (!c.product_index_.emplace(p.code, c.products_.size()).second) {
      return Invalid(f.where() + ": duplicate product " + p.code);
    }
    c.products_.push_back(std::move(p));
    return Status::Ok();
  }));

  METERD_RETURN_IF_ERROR(ForEach(root, "subscriptions", [&](const Fields& f) -> Status {
    Subscription s;
    std::string status = "active";
    METERD_RETURN_IF_ERROR(f.String("account", true, &s.account));
    METERD_RETURN_IF_ERROR(f.String("product", true, &s.product));
    METERD_RETURN_IF_ERROR(f.String("status", false, &status));
    METERD_RETURN_IF_ERROR(f.String("licenseArn", false, &s.license_arn));
    METERD_RETURN_IF_ERROR(f.Time("start", &s.start_ms));
    METERD_RETURN_IF_ERROR(f.Time("end", &s.end_ms));
    std::optional<int64_t> unsubscribed_at;
    METERD_RETURN_IF_ERROR(f.Time("unsubscribedAt", &unsubscribed_at));
    METERD_RETURN_IF_ERROR(f.Bool("freeTrial", &s.free_trial));
    s.unsubscribed_at_ms = unsubscribed_at.value_or(loaded_at_ms);
    if (status == "active")
      s.status = SubscriptionStatus::kActive;
    else if (status == "unsubscribe-pending")
      s.status = SubscriptionStatus::kUnsubscribePending;
    else if (status == "unsubscribed")
      s.status = SubscriptionStatus::kUnsubscribed;
    else
      return Invalid(f.where() + ": unknown status \"" + status + "\"");
    if (!c.FindAccount(s.account)) return Invalid(f.where() + ": unknown account " + s.account);
    if (!c.FindProduct(s.product)) return Invalid(f.where() + ": unknown product " + s.product);
    size_t index = c.subscriptions_.size();
    if (!s.license_arn.empty() && !c.license_index_.emplace(s.license_arn, index).second) {
      return Invalid(f.where() + ": duplicate licenseArn");
    }
    if (s.license_arn.empty()) {
      for (const Subscription* other : c.SubscriptionsOf(s.account, s.product)) {
        if (other->license_arn.empty()) {
          return Invalid(f.where() + ": a second subscription of " + s.account + " to " +
                         s.product + " without a licenseArn");
        }
      }
    }
    c.subscription_index_.emplace(s.account + '\n' + s.product, index);
    c.subscriptions_.push_back(std::move(s));
    return Status::Ok();
  }));

  METERD_RETURN_IF_ERROR(ForEach(root, "registrationTokens", [&](const Fields& f) -> Status {
    RegistrationToken t;
    METERD_RETURN_IF_ERROR(f.String("token", true, &t.token));
    METERD_RETURN_IF_ERROR(f.String("account", true, &t.account));
    METERD_RETURN_IF_ERROR(f.String("product", true, &t.product));
    METERD_RETURN_IF_ERROR(f.String("licenseArn", false, &t.license_arn));
    METERD_RETURN_IF_ERROR(f.Time("issuedAt", &t.issued_ms));
    if (t.token.empty()) return Invalid(f.where() + ": empty token");
    if (!t.license_arn.empty()) {
      const Subscription* license = c.FindLicense(t.license_arn);
      if (license == nullptr || license->account != t.account || license->product != t.product) {
        return Invalid(f.where() + ": licenseArn is not a license of this account and product");
      }
    }
    if (!c.registration_token_index_.emplace(t.token, c.registration_tokens_.size()).second) {
      return Invalid(f.where() + ": duplicate token");
    }
    if (!c.FindAccount(t.account)) return Invalid(f.where() + ": unknown account " + t.account);
    if (!c.FindProduct(t.product)) return Invalid(f.where() + ": unknown product " + t.product);
    c.registration_tokens_.push_back(std::move(t));
    return Status::Ok();
  }));

  if (const json::Value* regions = root.Find("regions"); regions && regions->is_object()) {
    METERD_RETURN_IF_ERROR(ForEach(*regions, "disabled", [&](const Fields& f) -> Status {
      DisabledOperations d;
      METERD_RETURN_IF_ERROR(f.String("region", true, &d.region));
      METERD_RETURN_IF_ERROR(f.StringList("operations", &d.operations));
      static const std::set<std::string> kOperations = {"BatchMeterUsage", "MeterUsage",
                                                        "RegisterUsage", "ResolveCustomer"};
      for (const auto& op : d.operations) {
        if (!kOperations.count(op)) return Invalid(f.where() + ": unknown operation " + op);
      }
      c.disabled_.push_back(std::move(d));
      return Status::Ok();
    }));
  }
  if (const json::Value* settings = root.Find("settings"); settings && !settings->is_null()) {
    METERD_RETURN_IF_ERROR(ParseSettings(*settings, &c.settings_));
  }
  return std::shared_ptr<const Catalog>(std::move(catalog));
}

namespace {
template <typename T>
const T* Lookup(const std::map<std::string, size_t, std::less<>>& index,
                const std::vector<T>& items, std::string_view key) {
  auto it = index.find(key);
  return it == index.end() ? nullptr : &items[it->second];
}
}  // namespace

const Account* Catalog::FindAccount(std::string_view id) const {
  return Lookup(account_index_, accounts_, id);
}
const Account* Catalog::FindAccountByCustomerIdentifier(std::string_view ci) const {
  return Lookup(customer_index_, accounts_, ci);
}
const Workload* Catalog::FindWorkload(std::string_view id) const {
  return Lookup(workload_index_, workloads_, id);
}
const CredentialEntry* Catalog::FindCredential(std::string_view access_key_id) const {
  return Lookup(credential_index_, credentials_, access_key_id);
}
const Product* Catalog::FindProduct(std::string_view code) const {
  return Lookup(product_index_, products_, code);
}
const RegistrationToken* Catalog::FindRegistrationToken(std::string_view token) const {
  return Lookup(registration_token_index_, registration_tokens_, token);
}
const Subscription* Catalog::FindLicense(std::string_view license_arn) const {
  return Lookup(license_index_, subscriptions_, license_arn);
}

std::vector<const Subscription*> Catalog::SubscriptionsOf(std::string_view account,
                                                          std::string_view product) const {
  std::string key;
  key.reserve(account.size() + product.size() + 1);
  key.append(account).push_back('\n');
  key.append(product);
  std::vector<const Subscription*> out;
  auto [begin, end] = subscription_index_.equal_range(key);
  for (auto it = begin; it != end; ++it) out.push_back(&subscriptions_[it->second]);
  return out;
}

bool Catalog::IsDisabled(std::string_view region, std::string_view operation) const {
  for (const auto& d : disabled_) {
    if (d.region != region) continue;
    for (const auto& op : d.operations) {
      if (op == operation) return true;
    }
  }
  return false;
}

std::optional<auth::Credential> CatalogHolder::Find(std::string_view access_key_id) const {
  std::shared_ptr<const Catalog> catalog = Get();
  const CredentialEntry* entry = catalog->FindCredential(access_key_id);
  if (entry == nullptr) return std::nullopt;
  return entry->credential;
}

}  // namespace meterd::catalog
