#include "store/usage_reader.h"

namespace meterd::store {

bool UsageFilter::Matches(const store::UsageRow& row) const {
  auto same = [](const std::string& wanted, const std::string& value) {
    return wanted.empty() || wanted == value;
  };
  return same(product_code, row.product_code) &&
         same(customer_identifier, row.customer_identifier) &&
         same(customer_account, row.customer_account) && same(license_arn, row.license_arn) &&
         same(workload_id, row.workload_id) && same(dimension, row.dimension) &&
         (!from_ms || row.timestamp_ms >= *from_ms) && (!to_ms || row.timestamp_ms < *to_ms);
}

}  // namespace meterd::store
