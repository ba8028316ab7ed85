#include "audit/audit_event.h"

#include <gtest/gtest.h>

#include "common/time_util.h"
#include "json/json.h"

namespace meterd::audit {
namespace {

json::Value Parsed(const store::AuditEventRow& row) {
  auto parsed = json::Parse(row.event_json);
  EXPECT_TRUE(parsed.ok()) << row.event_json;
  return parsed.ok() ? *parsed : json::Value::Null();
}

std::string Text(const json::Value& v, std::string_view name) {
  const json::Value* m = v.is_object() ? v.Find(name) : nullptr;
  return m != nullptr && m->is_string() ? m->text() : "<absent>";
}

protocol::ApiCall SuccessfulBatch() {
  protocol::ApiCall call;
  call.request_id = "req-1";
  call.operation = "BatchMeterUsage";
  call.region = "us-east-1";
  call.access_key_id = "AKIAACMESELLER000001";
  call.claimed_access_key_id = "AKIAACMESELLER000001";
  call.claimed_region = "us-east-1";
  call.account = "111122223333";
  call.source_ip = "127.0.0.1";
  call.user_agent = "Boto3/1.34";
  call.http_status = 200;
  call.records.success = 1;
  call.request_body = R"({"ProductCode":"p1","UsageRecords":[]})";
  call.response_body = R"({"Results":[],"UnprocessedRecords":[]})";
  return call;
}

TEST(MeteringEvent, HasTheCloudTrailShape) {
  const int64_t t = *ParseIso8601("2026-11-01T10:00:00Z");
  store::AuditEventRow row = MeteringEvent(SuccessfulBatch(), t, "ev-1");
  json::Value e = Parsed(row);
  EXPECT_EQ(Text(e, "eventVersion"), "1.08");
  EXPECT_EQ(Text(e, "eventTime"), "2026-11-01T10:00:00Z");
  EXPECT_EQ(Text(e, "eventSource"), "metering-marketplace.amazonaws.com");
  EXPECT_EQ(Text(e, "eventName"), "BatchMeterUsage");
  EXPECT_EQ(Text(e, "awsRegion"), "us-east-1");
  EXPECT_EQ(Text(e, "sourceIPAddress"), "127.0.0.1");
  EXPECT_EQ(Text(e, "userAgent"), "Boto3/1.34");
  EXPECT_EQ(Text(e, "requestID"), "req-1");
  EXPECT_EQ(Text(e, "eventID"), "ev-1");
  EXPECT_EQ(Text(e, "eventType"), "AwsApiCall");
  EXPECT_EQ(Text(e, "recipientAccountId"), "111122223333");
  EXPECT_EQ(Text(e, "errorCode"), "<absent>");
  EXPECT_EQ(Text(e, "errorMessage"), "<absent>");
  ASSERT_NE(e.Find("readOnly"), nullptr);
  EXPECT_FALSE(e.Find("readOnly")->as_bool());
  const json::Value* identity = e.Find("userIdentity");
  ASSERT_NE(identity, nullptr);
  EXPECT_EQ(Text(*identity, "type"), "IAMUser");
  EXPECT_EQ(Text(*identity, "accountId"), "111122223333");
  EXPECT_EQ(Text(*identity, "accessKeyId"), "AKIAACMESELLER000001");
  EXPECT_EQ(Text(*e.Find("requestParameters"), "ProductCode"), "p1");
  EXPECT_TRUE(e.Find("responseElements")->is_object());
  // The columns the lookup filters use.
  EXPECT_EQ(row.event_id, "ev-1");
  EXPECT_EQ(row.event_time_ms, t);
  EXPECT_EQ(row.event_name, "BatchMeterUsage");
  EXPECT_EQ(row.account_id, "111122223333");
  EXPECT_EQ(row.access_key_id, "AKIAACMESELLER000001");
  EXPECT_EQ(row.error_code, "");
}

TEST(MeteringEvent, RefusedCallKeepsTheClaimedKeyAndTheError) {
  protocol::ApiCall call;
  call.request_id = "req-2";
  call.operation = "MeterUsage";
  call.claimed_access_key_id = "AKIAUNKNOWNKEY000001";
  call.claimed_region = "eu-west-1";
  call.http_status = 403;
  call.error_code = "UnrecognizedClientException";
  call.error_message = "The security token included in the request is invalid.";
  call.request_body = "{not json";
  call.response_body = R"({"__type":"UnrecognizedClientException"})";
  store::AuditEventRow row = MeteringEvent(call, 0, "ev-2");
  json::Value e = Parsed(row);
  EXPECT_EQ(Text(e, "errorCode"), "UnrecognizedClientException");
  EXPECT_EQ(Text(e, "errorMessage"), call.error_message);
  EXPECT_EQ(Text(e, "awsRegion"), "eu-west-1");
  EXPECT_EQ(Text(*e.Find("userIdentity"), "type"), "Unknown");
  EXPECT_EQ(Text(*e.Find("userIdentity"), "accessKeyId"), "AKIAUNKNOWNKEY000001");
  EXPECT_EQ(Text(*e.Find("userIdentity"), "accountId"), "<absent>");
  // A body that is not JSON is left out, never copied as text; errors have no response.
  EXPECT_TRUE(e.Find("requestParameters")->is_null());
  EXPECT_TRUE(e.Find("responseElements")->is_null());
  EXPECT_EQ(row.error_code, "UnrecognizedClientException");
  EXPECT_EQ(row.access_key_id, "AKIAUNKNOWNKEY000001");
  EXPECT_EQ(row.event_json.find("not json"), std::string::npos);
}

TEST(MeteringEvent, BatchResultsKeepIdAndStatusNotTheEchoedRecord) {
  protocol::ApiCall call = SuccessfulBatch();
  call.response_body =
      R"({"Results":[{"MeteringRecordId":"m1","Status":"Success","UsageRecord":{"Quantity":1}}],)"
      R"("UnprocessedRecords":[]})";
  json::Value e = Parsed(MeteringEvent(call, 0, "ev-8"));
  const json::Value& result = e.Find("responseElements")->Find("Results")->items().at(0);
  EXPECT_EQ(Text(result, "MeteringRecordId"), "m1");
  EXPECT_EQ(Text(result, "Status"), "Success");
  EXPECT_EQ(result.Find("UsageRecord"), nullptr);
}

TEST(MeteringEvent, CallsWithoutAnOperationAreNamedUnknown) {
  protocol::ApiCall call;
  call.request_id = "req-3";
  call.http_status = 413;
  call.error_code = "ValidationException";
  EXPECT_EQ(MeteringEvent(call, 0, "ev-3").event_name, "Unknown");
}

TEST(MeteringEvent, HidesTheRegisterUsageSignature) {
  protocol::ApiCall call = SuccessfulBatch();
  call.operation = "RegisterUsage";
  call.workload_id = "i-0123";
  call.response_body = R"({"PublicKeyRotationTimestamp":1,"Signature":"eyJhbGciOi.secret.sig"})";
  json::Value e = Parsed(MeteringEvent(call, 0, "ev-4"));
  EXPECT_EQ(Text(*e.Find("responseElements"), "Signature"), std::string(kHidden));
  EXPECT_EQ(e.Find("responseElements")->Find("PublicKeyRotationTimestamp")->text(), "1");
  EXPECT_EQ(Text(*e.Find("userIdentity"), "type"), "AssumedRole");
  EXPECT_EQ(json::Serialize(e).find("eyJhbGciOi"), std::string::npos);
}

HttpRequest AdminRequest(std::string method, std::string target, std::string body) {
  HttpRequest r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  r.remote_address = "127.0.0.1";
  r.headers.push_back({"Authorization", "Bearer admintoken0123456789abcdef"});
  r.headers.push_back({"User-Agent", "meterctl"});
  return r;
}

TEST(AdminEvent, RedactsSecretsInRequestAndAnswer) {
  HttpRequest request = AdminRequest(
      "POST", "/v1/credentials",
      R"({"account":"111122223333","secretAccessKey":"SECRETsecret","sessionToken":"TOKENtoken",)"
      R"("nested":{"privateKeyPem":"-----BEGIN PRIVATE KEY-----PEMBODY"}})");
  HttpResponse response;
  response.status = 201;
  response.body = R"({"accessKeyId":"AKIANEW","secretAccessKey":"GENERATEDsecret"})";
  store::AuditEventRow row = AdminEvent(request, response, true, 0, "ev-5");
  for (const char* secret :
       {"SECRETsecret", "TOKENtoken", "PEMBODY", "GENERATEDsecret", "admintoken0123456789abcdef"}) {
    EXPECT_EQ(row.event_json.find(secret), std::string::npos) << secret << " in " << row.event_json;
  }
  json::Value e = Parsed(row);
  EXPECT_EQ(Text(e, "eventSource"), "meterd-admin");
  EXPECT_EQ(Text(e, "eventName"), "POST /v1/credentials");
  EXPECT_EQ(Text(*e.Find("userIdentity"), "type"), "AdminToken");
  const json::Value* body = e.Find("requestParameters")->Find("body");
  ASSERT_NE(body, nullptr);
  EXPECT_EQ(Text(*body, "account"), "111122223333");
  EXPECT_EQ(Text(*e.Find("responseElements"), "accessKeyId"), "AKIANEW");
  EXPECT_EQ(Text(e, "errorCode"), "<absent>");
}

TEST(AdminEvent, MalformedAndRefusedBodiesAreLeftOut) {
  HttpRequest request =
      AdminRequest("POST", "/v1/credentials", R"({"secretAccessKey":"SECRETsecret")");
  HttpResponse response;
  response.status = 400;
  response.body = R"({"code":"InvalidArgument","message":"the body is not JSON"})";
  store::AuditEventRow row = AdminEvent(request, response, true, 0, "ev-6");
  EXPECT_EQ(row.event_json.find("SECRETsecret"), std::string::npos);
  EXPECT_EQ(row.error_code, "InvalidArgument");
  EXPECT_EQ(Text(Parsed(row), "errorMessage"), "the body is not JSON");

  request = AdminRequest("PATCH", "/v1/credentials/AKIAX", R"({"secretAccessKey":"S2"})");
  response.status = 401;
  response.body = R"({"code":"Unauthorized","message":"wrong bearer token"})";
  row = AdminEvent(request, response, false, 0, "ev-7");
  json::Value e = Parsed(row);
  EXPECT_EQ(e.Find("requestParameters")->Find("body"), nullptr);
  EXPECT_EQ(Text(*e.Find("userIdentity"), "type"), "Unknown");
  EXPECT_EQ(row.error_code, "Unauthorized");
}

TEST(AdminEvent, NamesReplaceIdentifiers) {
  EXPECT_EQ(AdminEventName("PATCH", "/v1/settings"), "PATCH /v1/settings");
  EXPECT_EQ(AdminEventName("DELETE", "/v1/accounts/111122223333"), "DELETE /v1/accounts/{id}");
  EXPECT_EQ(AdminEventName("POST", "/v1/products/p1/dimensions?x=1"),
            "POST /v1/products/{id}/dimensions");
  EXPECT_EQ(AdminEventName("POST", "/v1/products/p1/keys/2/expire"),
            "POST /v1/products/{id}/keys/{id}/expire");
  EXPECT_EQ(AdminEventName("POST", "/v1/clock/advance"), "POST /v1/clock/advance");
  EXPECT_EQ(AdminEventName("DELETE", "/v1/faults?operation=MeterUsage"), "DELETE /v1/faults");
  EXPECT_TRUE(IsAuditedAdminRequest("POST", "/v1/apply"));
  EXPECT_TRUE(IsAuditedAdminRequest("DELETE", "/v1/faults"));
  EXPECT_FALSE(IsAuditedAdminRequest("GET", "/v1/catalog"));
  EXPECT_FALSE(IsAuditedAdminRequest("POST", "/other"));
}

TEST(Cursor, RoundTripsAndRefusesForgeries) {
  store::AuditPosition p{1764000000123, "0f1e2d3c-aaaa-bbbb-cccc-000000000001"};
  auto back = DecodeCursor(EncodeCursor(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->event_time_ms, p.event_time_ms);
  EXPECT_EQ(back->event_id, p.event_id);
  for (const char* bad : {"", "zz", "abc", "2f6964", "31", "3132", "99999999999999999999999"}) {
    EXPECT_FALSE(DecodeCursor(bad).ok()) << bad;
  }
  // "x/id": not a number.
  EXPECT_FALSE(DecodeCursor("782f6964").ok());
}

TEST(MeteringEvent, APreparedEventIsFinishedWithEachAnswer) {
  protocol::ApiCall call;
  call.request_id = "req-1";
  call.operation = "MeterUsage";
  call.access_key_id = "AKIAWORKLOAD";
  call.account = "444455556666";
  call.request_json = *json::Parse(R"({"ProductCode":"acmectr001"})");
  PreparedMeteringEvent prepared = PrepareMeteringEvent(call, 1000, "event-1");
  // A re-run group finishes the same prepared event with the answer decided afresh.
  for (int status : {200, 500}) {
    call.http_status = status;
    call.error_code = status == 200 ? "" : "InternalServiceErrorException";
    call.response_body = status == 200 ? R"({"MeteringRecordId":"r-1"})" : "{}";
    store::AuditEventRow row = FinishMeteringEvent(prepared, call);
    EXPECT_EQ(row.event_json, MeteringEvent(call, 1000, "event-1").event_json);
    auto event = json::Parse(row.event_json);
    ASSERT_TRUE(event.ok()) << row.event_json;
    EXPECT_EQ(event->Find("eventID")->text(), "event-1");
    EXPECT_EQ(event->Find("additionalEventData")->Find("httpStatus")->text(),
              std::to_string(status));
    EXPECT_EQ(event->Find("requestParameters")->Find("ProductCode")->text(), "acmectr001");
    EXPECT_EQ(row.error_code, call.error_code);
    EXPECT_EQ(row.event_id, "event-1");
  }
}

}  // namespace
}  // namespace meterd::audit
