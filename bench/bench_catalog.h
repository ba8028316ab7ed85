// The benchmark catalog of meterd-bench: generating it, and reading from any catalog the
// identities and names a load run needs.
//
// The generated catalog is deterministic (same arguments, same bytes), so a data dir can be
// reused and the credentials in it can be derived again without reading the file.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "auth/sigv4.h"
#include "catalog/catalog.h"
#include "common/status.h"

namespace meterd::bench {

inline constexpr char kSellerAccount[] = "111122223333";
inline constexpr char kSellerAccessKeyId[] = "AKIABENCHSELLER00001";
inline constexpr char kSellerSecret[] = "benchSellerSecretKey00000000000000000001";
inline constexpr char kSaasProduct[] = "benchsaas";
inline constexpr char kAmiProduct[] = "benchami";
inline constexpr char kWorkloadRegion[] = "us-east-1";
// Account ids are 12 digits: buyers are numbered from here, far from the seller's id.
inline constexpr size_t kMaxCustomers = 10'000'000;
inline constexpr size_t kMaxWorkloads = 1'000'000;

std::string BuyerAccountId(size_t i);       // "200000000000" + i
std::string CustomerIdentifier(size_t i);   // "bench-cust-<i>"
std::string WorkloadId(size_t w);           // "bench-agentcore-<w>"
std::string WorkloadAccessKeyId(size_t w);  // "AKIABENCHAGC" + 8 digits (20 characters)
std::string WorkloadSecret(size_t w);       // 40 characters, derived from w

struct CatalogOptions {
  size_t customers = 0;  // 1..kMaxCustomers
  size_t workloads = 0;  // 0..kMaxWorkloads; workload w runs in buyer account w % customers
};

// The catalog document (JSON, one entry per line). kInvalidArgument for out-of-range options.
Result<std::string> BenchCatalogJson(const CatalogOptions& options);

// What BatchMeterUsage requests need: a legacy SaaS product (benchsaas when present, else the
// first with an enabled seller credential and subscribed customers), its seller's enabled
// credentials, the CustomerIdentifiers of buyers with an active subscription to it (catalog
// order) and its dimensions.
struct BatchTargets {
  std::string product_code;
  std::vector<auth::Credential> sellers;
  std::vector<std::string> customers;
  std::vector<std::string> dimensions;
};
Result<BatchTargets> FindBatchTargets(const catalog::Catalog& catalog);

// What MeterUsage requests need: enabled credentials of running agentcore workloads whose account
// has an active subscription to one non-SaaS product (benchami when present), with each
// workload's region, and that product's first dimension.
struct MeterWorkload {
  auth::Credential credential;
  std::string region;
};
struct MeterTargets {
  std::string product_code;
  std::string dimension;
  std::vector<MeterWorkload> workloads;
};
Result<MeterTargets> FindMeterTargets(const catalog::Catalog& catalog);

}  // namespace meterd::bench
