#include "metering/dedup_key.h"

#include <initializer_list>

namespace meterd::metering {

namespace {
std::string Join(char kind, std::initializer_list<std::string_view> parts) {
  std::string key(1, kind);
  for (std::string_view p : parts) {
    key += '|';
    key += std::to_string(p.size());
    key += ':';
    key.append(p);
  }
  return key;
}
}  // namespace

std::string BatchDedupKey(std::string_view region, std::string_view product,
                          std::string_view customer_account, std::string_view license_arn,
                          std::string_view dimension, int64_t hour_ms) {
  std::string hour = std::to_string(hour_ms);
  return Join('B', {region, product, customer_account, license_arn, dimension, hour});
}

std::string MeterUsageDedupKey(std::string_view workload, std::string_view product,
                               std::string_view dimension, int64_t hour_ms) {
  std::string hour = std::to_string(hour_ms);
  return Join('M', {workload, product, dimension, hour});
}

std::string TaskRunDedupKey(std::string_view workload, std::string_view product, int64_t hour_ms) {
  std::string hour = std::to_string(hour_ms);
  return Join('T', {workload, product, hour});
}

std::string AgentCoreDedupKey(std::string_view workload, std::string_view client_token) {
  return Join('A', {workload, client_token});
}

}  // namespace meterd::metering
