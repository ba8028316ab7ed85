// Dedup keys: the unique keys that decide "same record" (D2, D3). Components are joined with
// their lengths ("<len>:<bytes>") so that no value can forge another key, whatever it contains.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace meterd::metering {

// D2: (region, product, buyer account, license, dimension, UTC hour).
std::string BatchDedupKey(std::string_view region, std::string_view product,
                          std::string_view customer_account, std::string_view license_arn,
                          std::string_view dimension, int64_t hour_ms);
// D3: (workload, product, dimension, UTC hour).
std::string MeterUsageDedupKey(std::string_view workload, std::string_view product,
                               std::string_view dimension, int64_t hour_ms);
// D11: the hourly usage of a container task's metered run.
std::string TaskRunDedupKey(std::string_view workload, std::string_view product, int64_t hour_ms);
// D3, AgentCore: every ClientToken is its own record.
std::string AgentCoreDedupKey(std::string_view workload, std::string_view client_token);

}  // namespace meterd::metering
