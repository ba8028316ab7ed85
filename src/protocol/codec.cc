#include "protocol/codec.h"

#include <cstdio>

#include "metering/service.h"

namespace meterd::protocol {

namespace {

std::string StringMember(const json::Value& obj, std::string_view name) {
  const json::Value* v = obj.Find(name);
  return v != nullptr && v->is_string() ? v->text() : std::string();
}

int64_t IntMember(const json::Value& obj, std::string_view name) {
  const json::Value* v = obj.Find(name);
  int64_t n = 0;
  if (v != nullptr && v->GetInt64(&n)) return n;
  return 0;  // absent quantities default to 0
}

bool DecodeAllocations(const json::Value& obj, std::vector<metering::UsageAllocation>* out) {
  const json::Value* list = obj.Find("UsageAllocations");
  if (list == nullptr || !list->is_array()) return false;
  for (const auto& item : list->items()) {
    metering::UsageAllocation a;
    a.quantity = IntMember(item, "AllocatedUsageQuantity");
    if (const json::Value* tags = item.Find("Tags"); tags != nullptr && tags->is_array()) {
      for (const auto& t : tags->items()) {
        a.tags.push_back(metering::Tag{StringMember(t, "Key"), StringMember(t, "Value")});
      }
    }
    out->push_back(std::move(a));
  }
  return true;
}

void AppendUsageRecord(std::string* out, const metering::UsageRecord& r) {
  out->append("{\"Timestamp\":").append(EpochSecondsText(r.timestamp_ms));
  if (!r.customer_identifier.empty()) {
    out->append(",\"CustomerIdentifier\":");
    json::AppendQuoted(out, r.customer_identifier);
  }
  if (!r.customer_aws_account_id.empty()) {
    out->append(",\"CustomerAWSAccountId\":");
    json::AppendQuoted(out, r.customer_aws_account_id);
  }
  if (!r.license_arn.empty()) {
    out->append(",\"LicenseArn\":");
    json::AppendQuoted(out, r.license_arn);
  }
  out->append(",\"Dimension\":");
  json::AppendQuoted(out, r.dimension);
  out->append(",\"Quantity\":").append(std::to_string(r.quantity));
  if (r.has_allocations) {
    out->append(",\"UsageAllocations\":").append(metering::AllocationsJson(r.allocations));
  }
  out->push_back('}');
}

}  // namespace

int64_t TimestampMillis(const json::Value& number) {
  bool saturated = false;
  return json::ScaledDecimal(number.text(), 3, &saturated);
}

std::string EpochSecondsText(int64_t millis) {
  int64_t seconds = millis / 1000;
  int64_t ms = millis % 1000;
  if (ms < 0) {
    ms += 1000;
    seconds -= 1;
  }
  if (ms == 0) return std::to_string(seconds);
  char frac[8];
  std::snprintf(frac, sizeof(frac), ".%03d", static_cast<int>(ms));
  std::string text = std::to_string(seconds) + frac;
  while (text.back() == '0') text.pop_back();
  return text;
}

metering::BatchMeterUsageInput DecodeBatchMeterUsage(const json::Value& body) {
  metering::BatchMeterUsageInput in;
  in.product_code = StringMember(body, "ProductCode");
  if (const json::Value* list = body.Find("UsageRecords"); list != nullptr && list->is_array()) {
    in.records.reserve(list->items().size());
    for (const auto& item : list->items()) {
      metering::UsageRecord r;
      if (const json::Value* ts = item.Find("Timestamp")) r.timestamp_ms = TimestampMillis(*ts);
      r.customer_identifier = StringMember(item, "CustomerIdentifier");
      r.customer_aws_account_id = StringMember(item, "CustomerAWSAccountId");
      r.license_arn = StringMember(item, "LicenseArn");
      r.dimension = StringMember(item, "Dimension");
      r.quantity = IntMember(item, "Quantity");
      r.has_allocations = DecodeAllocations(item, &r.allocations);
      in.records.push_back(std::move(r));
    }
  }
  return in;
}

metering::MeterUsageInput DecodeMeterUsage(const json::Value& body) {
  metering::MeterUsageInput in;
  in.product_code = StringMember(body, "ProductCode");
  if (const json::Value* ts = body.Find("Timestamp")) in.timestamp_ms = TimestampMillis(*ts);
  in.usage_dimension = StringMember(body, "UsageDimension");
  in.usage_quantity = IntMember(body, "UsageQuantity");
  if (const json::Value* dry = body.Find("DryRun"); dry != nullptr && dry->is_bool()) {
    in.dry_run = dry->as_bool();
  }
  in.has_allocations = DecodeAllocations(body, &in.allocations);
  in.client_token = StringMember(body, "ClientToken");
  return in;
}

std::string EncodeBatchMeterUsage(const metering::BatchMeterUsageOutput& out) {
  std::string body;
  body.reserve(64 + out.results.size() * 256);
  body.append("{\"Results\":[");
  bool first = true;
  for (const auto& r : out.results) {
    if (!first) body.push_back(',');
    first = false;
    body.append("{\"UsageRecord\":");
    AppendUsageRecord(&body, r.record);
    if (!r.metering_record_id.empty()) {
      body.append(",\"MeteringRecordId\":");
      json::AppendQuoted(&body, r.metering_record_id);
    }
    body.append(",\"Status\":\"").append(metering::RecordStatusName(r.status)).append("\"}");
  }
  body.append("],\"UnprocessedRecords\":[");
  first = true;
  for (const auto& r : out.unprocessed) {
    if (!first) body.push_back(',');
    first = false;
    AppendUsageRecord(&body, r);
  }
  body.append("]}");
  return body;
}

metering::RegisterUsageInput DecodeRegisterUsage(const json::Value& body) {
  metering::RegisterUsageInput in;
  in.product_code = StringMember(body, "ProductCode");
  in.public_key_version = IntMember(body, "PublicKeyVersion");
  if (const json::Value* nonce = body.Find("Nonce"); nonce != nullptr && nonce->is_string()) {
    in.nonce = nonce->text();
  }
  return in;
}

metering::ResolveCustomerInput DecodeResolveCustomer(const json::Value& body) {
  return metering::ResolveCustomerInput{StringMember(body, "RegistrationToken")};
}

std::string EncodeRegisterUsage(const metering::RegisterUsageOutput& out) {
  std::string body = "{";
  if (out.rotation_ms) {
    body += "\"PublicKeyRotationTimestamp\":" + EpochSecondsText(*out.rotation_ms) + ",";
  }
  body += "\"Signature\":";
  json::AppendQuoted(&body, out.signature);
  body.push_back('}');
  return body;
}

std::string EncodeResolveCustomer(const metering::ResolveCustomerOutput& out) {
  std::string body = "{";
  auto member = [&body](const char* name, const std::string& value) {
    if (value.empty()) return;
    if (body.size() > 1) body.push_back(',');
    body.append("\"").append(name).append("\":");
    json::AppendQuoted(&body, value);
  };
  member("CustomerIdentifier", out.customer_identifier);
  member("ProductCode", out.product_code);
  member("CustomerAWSAccountId", out.customer_aws_account_id);
  member("LicenseArn", out.license_arn);
  body.push_back('}');
  return body;
}

std::string EncodeMeterUsage(const metering::MeterUsageOutput& out) {
  std::string body = "{\"MeteringRecordId\":";
  json::AppendQuoted(&body, out.metering_record_id);
  body.push_back('}');
  return body;
}

}  // namespace meterd::protocol
