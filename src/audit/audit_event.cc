#include "audit/audit_event.h"

#include <cctype>
#include <utility>
#include <vector>

#include "common/crypto.h"
#include "common/time_util.h"
#include "control/document.h"
#include "json/json.h"

namespace meterd::audit {

namespace {

using json::Value;

// The body as JSON, or null when it is empty or not JSON (never the raw text: a body that does
// not parse may still hold a secret).
Value ParsedOrNull(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return Value::Null();
  Result<Value> parsed = json::Parse(body);
  return parsed.ok() ? std::move(parsed).value() : Value::Null();
}

// `value` with the member `name` of the top-level object replaced by kHidden.
Value Hide(const Value& value, std::string_view name) {
  if (!value.is_object() || value.Find(name) == nullptr) return value;
  return control::WithMember(value, name, Value::String(std::string(kHidden)));
}

void AddIfPresent(std::vector<Value::Member>* members, const char* name, const std::string& text) {
  if (!text.empty()) members->emplace_back(name, Value::String(text));
}

store::AuditEventRow Finish(std::vector<Value::Member> members, store::AuditEventRow row) {
  row.event_json = json::Serialize(Value::Object(std::move(members)));
  return row;
}

bool ReadOnlyOperation(std::string_view operation) { return operation == "ResolveCustomer"; }

// BatchMeterUsage's Results echo every UsageRecord of requestParameters: keep the id and status of
// each (the event stays about half the size, which the writer pays for on every call).
Value WithoutEchoedRecords(const Value& response) {
  const Value* results = response.is_object() ? response.Find("Results") : nullptr;
  if (results == nullptr || !results->is_array()) return response;
  std::vector<Value> slim;
  slim.reserve(results->items().size());
  for (const Value& result : results->items()) {
    slim.push_back(result.is_object() ? control::WithoutMember(result, "UsageRecord") : result);
  }
  return control::WithMember(response, "Results", Value::Array(std::move(slim)));
}

}  // namespace

namespace {

// Appends `"name":value,` (the members of an object, serialized compactly as json::Serialize
// would).
void AppendMember(std::string* out, std::string_view name, const Value& value) {
  json::AppendQuoted(out, name);
  out->push_back(':');
  json::AppendSerialized(out, value);
  out->push_back(',');
}
void AppendMembers(std::string* out, const std::vector<Value::Member>& members) {
  for (const auto& [name, value] : members) AppendMember(out, name, value);
}

}  // namespace

PreparedMeteringEvent PrepareMeteringEvent(const protocol::ApiCall& call, int64_t event_time_ms,
                                           std::string event_id) {
  const bool verified = !call.access_key_id.empty();
  const std::string& access_key = verified ? call.access_key_id : call.claimed_access_key_id;
  const std::string& region = verified ? call.region : call.claimed_region;
  const std::string event_name = call.operation.empty() ? "Unknown" : call.operation;

  std::vector<Value::Member> identity;
  identity.emplace_back("type", Value::String(!verified                  ? "Unknown"
                                              : call.workload_id.empty() ? "IAMUser"
                                                                         : "AssumedRole"));
  AddIfPresent(&identity, "accountId", call.account);
  AddIfPresent(&identity, "accessKeyId", access_key);
  AddIfPresent(&identity, "workloadId", call.workload_id);

  std::vector<Value::Member> head;
  head.emplace_back("eventVersion", Value::String(std::string(kEventVersion)));
  head.emplace_back("userIdentity", Value::Object(std::move(identity)));
  head.emplace_back("eventTime", Value::String(FormatIso8601(event_time_ms)));
  head.emplace_back("eventSource", Value::String(std::string(kMeteringSource)));
  head.emplace_back("eventName", Value::String(event_name));
  AddIfPresent(&head, "awsRegion", region);
  AddIfPresent(&head, "sourceIPAddress", call.source_ip);
  AddIfPresent(&head, "userAgent", call.user_agent);
  PreparedMeteringEvent prepared;
  prepared.head = "{";
  AppendMembers(&prepared.head, head);
  // The request, serialized straight from the parsed body (no copy of it).
  json::AppendQuoted(&prepared.head, "requestParameters");
  prepared.head.push_back(':');
  json::AppendSerialized(&prepared.head,
                         call.request_json ? *call.request_json : ParsedOrNull(call.request_body));
  prepared.head.push_back(',');

  std::vector<Value::Member> tail;
  tail.emplace_back("requestID", Value::String(call.request_id));
  tail.emplace_back("eventID", Value::String(event_id));
  tail.emplace_back("readOnly", Value::Bool(ReadOnlyOperation(call.operation)));
  tail.emplace_back("eventType", Value::String("AwsApiCall"));
  tail.emplace_back("managementEvent", Value::Bool(false));
  AddIfPresent(&tail, "recipientAccountId", call.account);
  AppendMembers(&prepared.tail, tail);
  prepared.tail.back() = '}';  // the last member's comma

  store::AuditEventRow& row = prepared.row;
  row.event_id = std::move(event_id);
  row.event_time_ms = event_time_ms;
  row.event_source = std::string(kMeteringSource);
  row.event_name = event_name;
  row.account_id = call.account;
  row.access_key_id = access_key;
  return prepared;
}

store::AuditEventRow FinishMeteringEvent(const PreparedMeteringEvent& prepared,
                                         const protocol::ApiCall& call) {
  Value response = Value::Null();
  if (call.error_code.empty()) {
    // RegisterUsage's Signature is a signed entitlement token: hidden, as CloudTrail does.
    response = Hide(ParsedOrNull(call.response_body), "Signature");
    if (call.operation == "BatchMeterUsage") response = WithoutEchoedRecords(response);
  }
  std::vector<Value::Member> extra = {
      {"httpStatus", Value::Number(std::to_string(call.http_status))},
      {"latencyMicros", Value::Number(std::to_string(call.latency_us))},
  };
  if (call.throttled) extra.emplace_back("throttled", Value::Bool(true));
  if (call.fault_injected) extra.emplace_back("faultInjected", Value::Bool(true));
  const protocol::RecordCounts& n = call.records;
  if (n.success + n.duplicate + n.customer_not_subscribed + n.unprocessed > 0) {
    extra.emplace_back(
        "records",
        Value::Object({
            {"customerNotSubscribed", Value::Number(std::to_string(n.customer_not_subscribed))},
            {"duplicate", Value::Number(std::to_string(n.duplicate))},
            {"success", Value::Number(std::to_string(n.success))},
            {"unprocessed", Value::Number(std::to_string(n.unprocessed))},
        }));
  }
  std::vector<Value::Member> answer;
  answer.emplace_back("responseElements", std::move(response));
  AddIfPresent(&answer, "errorCode", call.error_code);
  AddIfPresent(&answer, "errorMessage", call.error_code.empty() ? "" : call.error_message);
  answer.emplace_back("additionalEventData", Value::Object(std::move(extra)));

  store::AuditEventRow row = prepared.row;
  row.error_code = call.error_code;
  row.event_json.reserve(prepared.head.size() + prepared.tail.size() + 256);
  row.event_json = prepared.head;
  AppendMembers(&row.event_json, answer);
  row.event_json += prepared.tail;
  return row;
}

store::AuditEventRow MeteringEvent(const protocol::ApiCall& call, int64_t event_time_ms,
                                   std::string event_id) {
  return FinishMeteringEvent(PrepareMeteringEvent(call, event_time_ms, std::move(event_id)), call);
}

std::string AdminEventName(std::string_view method, std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  std::string name = std::string(method) + " ";
  // Segments after "/v1" alternate: a collection or action name, then an object's identifier
  // (/v1/products/{id}/dimensions/{id}/...). The clock's actions have no identifier.
  constexpr std::string_view kPrefix = "/v1/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return name + std::string(path);
  name += "/v1";
  std::string_view rest = path.substr(kPrefix.size());
  bool clock = rest.substr(0, 5) == "clock";
  for (size_t index = 0; !rest.empty() || index == 0; ++index) {
    size_t slash = rest.find('/');
    std::string_view segment = rest.substr(0, slash);
    name += "/";
    name += (index % 2 == 1 && !clock) ? std::string_view("{id}") : segment;
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }
  return name;
}

bool IsAuditedAdminRequest(std::string_view method, std::string_view target) {
  const bool mutating =
      method == "POST" || method == "PUT" || method == "PATCH" || method == "DELETE";
  return mutating && target.substr(0, 4) == "/v1/";
}

store::AuditEventRow AdminEvent(const HttpRequest& request, const HttpResponse& response,
                                bool authenticated, int64_t event_time_ms, std::string event_id) {
  const std::string event_name = AdminEventName(request.method, request.target);
  std::string error_code, error_message;
  Value answer = ParsedOrNull(response.body);
  if (response.status >= 400) {
    const Value* code = answer.is_object() ? answer.Find("code") : nullptr;
    const Value* message = answer.is_object() ? answer.Find("message") : nullptr;
    error_code = code != nullptr && code->is_string() ? code->text()
                                                      : "HTTP" + std::to_string(response.status);
    if (message != nullptr && message->is_string()) error_message = message->text();
  }

  std::string_view target = request.target;
  std::vector<Value::Member> parameters = {
      {"path", Value::String(std::string(target.substr(0, target.find('?'))))}};
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    parameters.emplace_back("query", Value::String(std::string(target.substr(q + 1))));
  }
  // Bodies only of authenticated requests: a refused caller's body is not worth keeping, and
  // every body goes through the catalog's redaction.
  if (authenticated) {
    Value body = ParsedOrNull(request.body);
    if (!body.is_null()) parameters.emplace_back("body", control::Redacted(body));
  }

  std::vector<Value::Member> m;
  m.emplace_back("eventVersion", Value::String(std::string(kEventVersion)));
  m.emplace_back(
      "userIdentity",
      Value::Object({{"type", Value::String(authenticated ? "AdminToken" : "Unknown")}}));
  m.emplace_back("eventTime", Value::String(FormatIso8601(event_time_ms)));
  m.emplace_back("eventSource", Value::String(std::string(kAdminSource)));
  m.emplace_back("eventName", Value::String(event_name));
  AddIfPresent(&m, "sourceIPAddress", request.remote_address);
  if (const std::string* agent = request.FindHeader("user-agent")) {
    m.emplace_back("userAgent", Value::String(*agent));
  }
  m.emplace_back("requestParameters", Value::Object(std::move(parameters)));
  m.emplace_back("responseElements", response.status < 400 && authenticated
                                         ? control::Redacted(answer)
                                         : Value::Null());
  AddIfPresent(&m, "errorCode", error_code);
  AddIfPresent(&m, "errorMessage", error_message);
  m.emplace_back("additionalEventData",
                 Value::Object({{"httpStatus", Value::Number(std::to_string(response.status))}}));
  m.emplace_back("requestID", Value::String(event_id));
  m.emplace_back("eventID", Value::String(event_id));
  m.emplace_back("readOnly", Value::Bool(false));
  m.emplace_back("eventType", Value::String("MeterdAdminCall"));
  m.emplace_back("managementEvent", Value::Bool(true));

  store::AuditEventRow row;
  row.event_id = std::move(event_id);
  row.event_time_ms = event_time_ms;
  row.event_source = std::string(kAdminSource);
  row.event_name = event_name;
  row.error_code = error_code;
  return Finish(std::move(m), std::move(row));
}

std::string EncodeCursor(const store::AuditPosition& position) {
  const std::string text = std::to_string(position.event_time_ms) + "/" + position.event_id;
  return HexEncode(reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

Result<store::AuditPosition> DecodeCursor(std::string_view cursor) {
  const Status bad(StatusCode::kInvalidArgument, "the cursor is not one this server gave");
  if (cursor.empty() || cursor.size() % 2 != 0 || cursor.size() > 400) return bad;
  std::string text;
  for (size_t i = 0; i < cursor.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nibble(cursor[i]), lo = nibble(cursor[i + 1]);
    if (hi < 0 || lo < 0) return bad;
    text.push_back(static_cast<char>(hi * 16 + lo));
  }
  size_t slash = text.find('/');
  if (slash == 0 || slash == std::string::npos || slash > 18 || slash + 1 == text.size()) {
    return bad;
  }
  store::AuditPosition position;
  for (size_t i = 0; i < slash; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return bad;
    position.event_time_ms = position.event_time_ms * 10 + (text[i] - '0');
  }
  position.event_id = text.substr(slash + 1);
  return position;
}

}  // namespace meterd::audit
