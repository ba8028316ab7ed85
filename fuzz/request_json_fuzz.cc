// Fuzzes what the API does with an untrusted body: JSON parse, model validation of every
// operation's input, and decoding of the metering inputs.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "json/json.h"
#include "model/service_model.h"
#include "protocol/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace meterd;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = json::Parse(text);
  if (!parsed.ok()) return 0;
  (void)json::Serialize(*parsed);
  const auto& model = model::ServiceModel::Builtin();
  for (const char* op : {"BatchMeterUsage", "MeterUsage", "RegisterUsage", "ResolveCustomer"}) {
    std::vector<model::Violation> violations;
    model.ValidateInput(op, *parsed, &violations);
    if (!violations.empty()) (void)model::FormatViolations(violations);
  }
  if (parsed->is_object()) {
    auto batch = protocol::DecodeBatchMeterUsage(*parsed);
    metering::BatchMeterUsageOutput out;
    for (auto& r : batch.records) out.unprocessed.push_back(r);
    (void)protocol::EncodeBatchMeterUsage(out);
    (void)protocol::DecodeMeterUsage(*parsed);
    metering::RegisterUsageOutput registered;
    registered.signature = protocol::DecodeRegisterUsage(*parsed).nonce.value_or("");
    (void)protocol::EncodeRegisterUsage(registered);
    metering::ResolveCustomerOutput resolved;
    resolved.product_code = protocol::DecodeResolveCustomer(*parsed).registration_token;
    (void)protocol::EncodeResolveCustomer(resolved);
  }
  return 0;
}
