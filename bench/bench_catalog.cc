#include "bench_catalog.h"

#include <cstdio>
#include <set>
#include <string_view>
#include <utility>

#include "json/json.h"

namespace meterd::bench {
namespace {

std::string Padded(size_t value, int width) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%0*zu", width, value);
  return buffer;
}

void AppendMember(std::string* out, std::string_view name, std::string_view value, bool first) {
  if (!first) out->push_back(',');
  json::AppendQuoted(out, name);
  out->push_back(':');
  json::AppendQuoted(out, value);
}

// The callers' first choice by name, else the first of `codes` that qualifies.
template <typename Pred>
const catalog::Product* PickProduct(const catalog::Catalog& catalog, std::string_view preferred,
                                    Pred qualifies) {
  if (const catalog::Product* p = catalog.FindProduct(preferred); p != nullptr && qualifies(*p)) {
    return p;
  }
  for (const catalog::Product& p : catalog.products()) {
    if (qualifies(p)) return &p;
  }
  return nullptr;
}

bool ActiveLegacySubscription(const catalog::Catalog& catalog, std::string_view account,
                              std::string_view product) {
  for (const catalog::Subscription* s : catalog.SubscriptionsOf(account, product)) {
    if (s->status == catalog::SubscriptionStatus::kActive && s->license_arn.empty()) return true;
  }
  return false;
}

}  // namespace

std::string BuyerAccountId(size_t i) { return std::to_string(200'000'000'000ULL + i); }
std::string CustomerIdentifier(size_t i) { return "bench-cust-" + std::to_string(i); }
std::string WorkloadId(size_t w) { return "bench-agentcore-" + std::to_string(w); }
std::string WorkloadAccessKeyId(size_t w) { return "AKIABENCHAGC" + Padded(w, 8); }
std::string WorkloadSecret(size_t w) { return "benchAgentcoreSecret" + Padded(w, 20); }

Result<std::string> BenchCatalogJson(const CatalogOptions& options) {
  if (options.customers < 1 || options.customers > kMaxCustomers) {
    return Status(StatusCode::kInvalidArgument,
                  "--customers must be 1.." + std::to_string(kMaxCustomers));
  }
  if (options.workloads > kMaxWorkloads) {
    return Status(StatusCode::kInvalidArgument,
                  "--workloads must be 0.." + std::to_string(kMaxWorkloads));
  }
  const size_t n = options.customers;
  const size_t w_count = options.workloads;
  std::string out;
  out.reserve(256 + n * 200 + w_count * 400);

  out.append("{\n\"accounts\": [\n");
  out.append(R"({"id":")").append(kSellerAccount);
  out.append(R"(","name":"meterd-bench seller","roles":["seller"]})");
  for (size_t i = 0; i < n; ++i) {
    out.append(",\n{");
    AppendMember(&out, "id", BuyerAccountId(i), true);
    AppendMember(&out, "name", "meterd-bench buyer " + std::to_string(i), false);
    out.append(R"(,"roles":["buyer"])");
    AppendMember(&out, "customerIdentifier", CustomerIdentifier(i), false);
    out.push_back('}');
  }

  out.append("\n],\n\"workloads\": [");
  for (size_t w = 0; w < w_count; ++w) {
    out.append(w == 0 ? "\n{" : ",\n{");
    AppendMember(&out, "id", WorkloadId(w), true);
    AppendMember(&out, "platform", "agentcore", false);
    AppendMember(&out, "region", kWorkloadRegion, false);
    AppendMember(&out, "account", BuyerAccountId(w % n), false);
    out.push_back('}');
  }

  out.append("\n],\n\"credentials\": [\n{");
  AppendMember(&out, "accessKeyId", kSellerAccessKeyId, true);
  AppendMember(&out, "secretAccessKey", kSellerSecret, false);
  AppendMember(&out, "account", kSellerAccount, false);
  out.push_back('}');
  for (size_t w = 0; w < w_count; ++w) {
    out.append(",\n{");
    AppendMember(&out, "accessKeyId", WorkloadAccessKeyId(w), true);
    AppendMember(&out, "secretAccessKey", WorkloadSecret(w), false);
    AppendMember(&out, "workload", WorkloadId(w), false);
    out.push_back('}');
  }

  out.append("\n],\n\"products\": [\n{");
  AppendMember(&out, "code", kSaasProduct, true);
  AppendMember(&out, "seller", kSellerAccount, false);
  AppendMember(&out, "kind", "saas", false);
  AppendMember(&out, "integration", "legacy", false);
  out.append(R"(,"dimensions":[{"name":"d0","unit":"Units"},{"name":"d1","unit":"Units"},)"
             R"({"name":"d2","unit":"Units"},{"name":"d3","unit":"Units"}]},)");
  out.append("\n{");
  AppendMember(&out, "code", kAmiProduct, true);
  AppendMember(&out, "seller", kSellerAccount, false);
  AppendMember(&out, "kind", "ami", false);
  AppendMember(&out, "integration", "legacy", false);
  out.append(R"(,"dimensions":[{"name":"calls","unit":"Requests"}]})");

  out.append("\n],\n\"subscriptions\": [");
  for (size_t i = 0; i < n; ++i) {
    out.append(i == 0 ? "\n{" : ",\n{");
    AppendMember(&out, "account", BuyerAccountId(i), true);
    AppendMember(&out, "product", kSaasProduct, false);
    AppendMember(&out, "status", "active", false);
    out.push_back('}');
  }
  // Workload w runs in account w % n, so the first min(W, n) accounts host them.
  for (size_t i = 0; i < std::min(w_count, n); ++i) {
    out.append(",\n{");
    AppendMember(&out, "account", BuyerAccountId(i), true);
    AppendMember(&out, "product", kAmiProduct, false);
    AppendMember(&out, "status", "active", false);
    out.push_back('}');
  }
  out.append("\n]\n}\n");
  return out;
}

Result<BatchTargets> FindBatchTargets(const catalog::Catalog& catalog) {
  auto sellers_of = [&catalog](const catalog::Product& p) {
    std::vector<auth::Credential> creds;
    for (const catalog::CredentialEntry& e : catalog.credentials()) {
      if (e.account == p.seller && e.credential.enabled) creds.push_back(e.credential);
    }
    return creds;
  };
  auto customers_of = [&catalog](const catalog::Product& p) {
    std::vector<std::string> customers;
    for (const catalog::Account& a : catalog.accounts()) {
      if (!a.customer_identifier.empty() && ActiveLegacySubscription(catalog, a.id, p.code)) {
        customers.push_back(a.customer_identifier);
      }
    }
    return customers;
  };
  const catalog::Product* product =
      PickProduct(catalog, kSaasProduct, [&](const catalog::Product& p) {
        return p.kind == catalog::ProductKind::kSaas &&
               p.integration == catalog::Integration::kLegacy && !p.dimensions.empty() &&
               !sellers_of(p).empty() && !customers_of(p).empty();
      });
  if (product == nullptr) {
    return Status(StatusCode::kNotFound,
                  "the catalog has no legacy SaaS product with dimensions, an enabled seller "
                  "credential and a customer (CustomerIdentifier) with an active subscription");
  }
  BatchTargets t;
  t.product_code = product->code;
  t.sellers = sellers_of(*product);
  t.customers = customers_of(*product);
  for (const catalog::Dimension& d : product->dimensions) t.dimensions.push_back(d.name);
  return t;
}

Result<MeterTargets> FindMeterTargets(const catalog::Catalog& catalog) {
  // Running agentcore workloads with an enabled credential, in catalog order of credentials.
  std::vector<std::pair<const catalog::CredentialEntry*, const catalog::Workload*>> candidates;
  std::set<std::string, std::less<>> accounts;
  for (const catalog::CredentialEntry& e : catalog.credentials()) {
    if (e.workload.empty() || !e.credential.enabled) continue;
    const catalog::Workload* w = catalog.FindWorkload(e.workload);
    if (w == nullptr || w->platform != catalog::Platform::kAgentCore || w->stopped_ms) continue;
    candidates.emplace_back(&e, w);
    accounts.insert(w->account);
  }
  const catalog::Product* product =
      PickProduct(catalog, kAmiProduct, [&](const catalog::Product& p) {
        if (p.kind == catalog::ProductKind::kSaas || p.dimensions.empty()) return false;
        for (const std::string& account : accounts) {
          if (ActiveLegacySubscription(catalog, account, p.code)) return true;
        }
        return false;
      });
  if (product == nullptr) {
    return Status(StatusCode::kNotFound,
                  "the catalog has no agentcore workload with an enabled credential whose account "
                  "has an active subscription to a non-SaaS product with dimensions");
  }
  MeterTargets t;
  t.product_code = product->code;
  t.dimension = product->dimensions.front().name;
  for (const auto& [entry, workload] : candidates) {
    if (ActiveLegacySubscription(catalog, workload->account, product->code)) {
      t.workloads.push_back(MeterWorkload{entry->credential, workload->region});
    }
  }
  return t;
}

}  // namespace meterd::bench
