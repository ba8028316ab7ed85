// awsJson1_1 bodies <-> typed metering inputs and outputs. Decoding assumes the body already
// passed model validation (model/service_model.h), so member types are known to be right.
#pragma once

#include <cstdint>
#include <string>

#include "json/json.h"
#include "metering/types.h"

namespace meterd::protocol {

metering::BatchMeterUsageInput DecodeBatchMeterUsage(const json::Value& body);
metering::MeterUsageInput DecodeMeterUsage(const json::Value& body);

metering::RegisterUsageInput DecodeRegisterUsage(const json::Value& body);
metering::ResolveCustomerInput DecodeResolveCustomer(const json::Value& body);

std::string EncodeBatchMeterUsage(const metering::BatchMeterUsageOutput& out);
std::string EncodeMeterUsage(const metering::MeterUsageOutput& out);
std::string EncodeRegisterUsage(const metering::RegisterUsageOutput& out);
std::string EncodeResolveCustomer(const metering::ResolveCustomerOutput& out);

// Epoch seconds (integer, fraction or exponent form) -> milliseconds, exact, floored;
// saturates far outside any window.
int64_t TimestampMillis(const json::Value& number);
// Milliseconds -> epoch-second JSON number text ("1704164645" or "1704164645.678").
std::string EpochSecondsText(int64_t millis);

}  // namespace meterd::protocol
