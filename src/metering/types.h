// The typed inputs and outputs of the metering operations, after decoding and shape validation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meterd::metering {

struct Tag {
  std::string key;
  std::string value;
};

struct UsageAllocation {
  int64_t quantity = 0;
  std::vector<Tag> tags;  // empty: the untagged bucket
};

struct UsageRecord {
  int64_t timestamp_ms = 0;
  std::string customer_identifier;      // "" = absent
  std::string customer_aws_account_id;  // "" = absent
  std::string license_arn;              // "" = absent
  std::string dimension;
  int64_t quantity = 0;
  bool has_allocations = false;
  std::vector<UsageAllocation> allocations;
};

struct BatchMeterUsageInput {
  std::string product_code;  // "" = absent
  std::vector<UsageRecord> records;
};

enum class RecordStatus { kSuccess, kCustomerNotSubscribed, kDuplicateRecord };
const char* RecordStatusName(RecordStatus s);

struct UsageRecordResult {
  UsageRecord record;
  std::string metering_record_id;  // "" when there is none
  RecordStatus status = RecordStatus::kSuccess;
};

struct BatchMeterUsageOutput {
  std::vector<UsageRecordResult> results;
  std::vector<UsageRecord> unprocessed;
};

struct MeterUsageInput {
  std::string product_code;
  int64_t timestamp_ms = 0;
  std::string usage_dimension;
  int64_t usage_quantity = 0;
  bool dry_run = false;
  bool has_allocations = false;
  std::vector<UsageAllocation> allocations;
  std::string client_token;  // "" = absent
};

struct MeterUsageOutput {
  std::string metering_record_id;
};

struct RegisterUsageInput {
  std::string product_code;
  int64_t public_key_version = 0;
  std::optional<std::string> nonce;  // echoed in the token when sent, even if ""
};

struct RegisterUsageOutput {
  std::string signature;               // the JWT
  std::optional<int64_t> rotation_ms;  // PublicKeyRotationTimestamp, for an expired key
};

struct ResolveCustomerInput {
  std::string registration_token;
};

struct ResolveCustomerOutput {
  std::string customer_identifier;  // "" for concurrent-agreements products
  std::string product_code;
  std::string customer_aws_account_id;
  std::string license_arn;  // "" for legacy products
};

// Who is calling, resolved from the verified access key.
struct Caller {
  std::string access_key_id;
  std::string account;      // seller account, or the workload's buyer account
  std::string workload_id;  // "" for seller credentials
  bool is_workload() const { return !workload_id.empty(); }
};

struct CallContext {
  std::string request_id;
  std::string region;  // the SigV4 credential-scope region (D9)
  Caller caller;
  // Fault injection (metering/faults.h): BatchMeterUsage answers the records whose index is true
  // as UnprocessedRecords and writes nothing for them. Empty: no record is marked.
  std::vector<bool> injected_unprocessed;
};

}  // namespace meterd::metering
