#include "ctl/table.h"

#include <gtest/gtest.h>

#include "ctl/admin_client.h"

namespace meterd::ctl {
namespace {

json::Value ParseOrDie(std::string_view text) {
  auto parsed = json::Parse(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? parsed.value() : json::Value();
}

TEST(TableTest, AlignsColumnsWithoutTrailingBlanks) {
  json::Value body = ParseOrDie(R"([
    {"id": "111122223333", "name": "Acme", "roles": ["seller"]},
    {"id": "444455556666", "name": "Globex Corporation", "roles": ["buyer", "seller"],
     "customerIdentifier": "cust-globex-0001"}])");
  EXPECT_EQ(RenderTable(body.items(), ColumnsFor("accounts")),
            "ID            NAME                ROLES         CUSTOMER IDENTIFIER\n"
            "111122223333  Acme                seller        -\n"
            "444455556666  Globex Corporation  buyer,seller  cust-globex-0001\n");
}

TEST(TableTest, CountsCodePointsNotBytes) {
  json::Value body = ParseOrDie(R"([{"a": "Zürich", "b": "x"}, {"a": "abcdefg", "b": "y"}])");
  EXPECT_EQ(RenderTable(body.items(), InferColumns(body.items())),
            "A        B\n"
            "Zürich   x\n"
            "abcdefg  y\n");
  EXPECT_EQ(DisplayWidth("Zürich"), 6u);
}

TEST(TableTest, EmptyListRendersNothing) { EXPECT_EQ(RenderTable({}, ColumnsFor("accounts")), ""); }

TEST(TableTest, NestedFieldsAndDefaults) {
  json::Value rule =
      ParseOrDie(R"({"operation": "MeterUsage", "throttleRate": 0.5, "counts": {"calls": 7}})");
  std::vector<Column> columns = ColumnsFor("faults");
  ASSERT_GE(columns.size(), 8u);
  EXPECT_EQ(columns[1].cell(rule), "*");    // no caller: every caller
  EXPECT_EQ(columns[2].cell(rule), "0.5");  // numbers keep their text
  EXPECT_EQ(columns[7].cell(rule), "7");    // counts.calls
  EXPECT_EQ(columns[8].cell(rule), "-");    // missing
  json::Value key = ParseOrDie(R"({"version": 2})");
  EXPECT_EQ(ColumnsFor("keys")[1].cell(key), "false");
}

TEST(TableTest, SubscriptionIdFallsBackToAccountAndProduct) {
  json::Value legacy = ParseOrDie(R"({"account": "444455556666", "product": "p1"})");
  json::Value licensed = ParseOrDie(R"({"account": "4", "product": "p", "licenseArn": "arn:l"})");
  Column id = ColumnsFor("subscriptions")[0];
  EXPECT_EQ(id.cell(legacy), "444455556666:p1");
  EXPECT_EQ(id.cell(licensed), "arn:l");
}

TEST(TableTest, CellText) {
  EXPECT_EQ(CellText(nullptr), "-");
  json::Value v = ParseOrDie(
      R"({"t": true, "s": "a\nb", "dims": [{"name": "x"}, {"name": "y"}], "o": [{"k": 1}],
          "e": []})");
  EXPECT_EQ(CellText(v.Find("t")), "true");
  EXPECT_EQ(CellText(v.Find("s")), "a b");
  EXPECT_EQ(CellText(v.Find("dims")), "x,y");
  EXPECT_EQ(CellText(v.Find("o")), "1 items");
  EXPECT_EQ(CellText(v.Find("e")), "-");
}

TEST(TableTest, ListItems) {
  json::Value array = ParseOrDie(R"([{"a": 1}])");
  json::Value wrapped = ParseOrDie(R"({"next": null, "rules": [{"a": 1}, {"a": 2}]})");
  json::Value two = ParseOrDie(R"({"x": [], "y": []})");
  ASSERT_NE(ListItems(array, "rules"), nullptr);
  EXPECT_EQ(ListItems(array, "rules")->size(), 1u);
  ASSERT_NE(ListItems(wrapped, "faults"), nullptr);  // the only array member
  EXPECT_EQ(ListItems(wrapped, "faults")->size(), 2u);
  EXPECT_EQ(ListItems(two, "z"), nullptr);
  EXPECT_NE(ListItems(two, "y"), nullptr);
}

TEST(TableTest, DetailFlattensObjectsAndPutsBlocksLast) {
  json::Value product = ParseOrDie(R"({"code": "p1", "throttle": {"enabled": true},
      "pem": "-----BEGIN-----\nAAA\n-----END-----",
      "dimensions": [{"name": "api", "unit": "Requests"}]})");
  EXPECT_EQ(RenderDetail(product),
            "code:              p1\n"
            "throttle.enabled:  true\n"
            "\n"
            "pem:\n"
            "-----BEGIN-----\nAAA\n-----END-----\n"
            "\n"
            "dimensions:\n"
            "  NAME  UNIT      PRICE PER UNIT  DESCRIPTION\n"
            "  api   Requests  -               -\n");
}

TEST(TableTest, ApplyResult) {
  json::Value result = ParseOrDie(
      R"({"version": 7, "changed": true, "created": ["accounts/1", {"kind": "product", "code": "p"}],
          "updated": [], "unchanged": 3})");
  EXPECT_EQ(RenderApplyResult(result),
            "created: 2\n"
            "  accounts/1\n"
            "  product p\n"
            "updated: 0\n"
            "unchanged: 3\n"
            "catalog version: 7 (changed)\n");
}

TEST(TableTest, PrettyJsonKeepsNumberText) {
  json::Value v = ParseOrDie(R"({"a": [1.50, {}], "b": {"c": "\u00e9"}, "d": []})");
  EXPECT_EQ(PrettyJson(v),
            "{\n"
            "  \"a\": [\n"
            "    1.50,\n"
            "    {}\n"
            "  ],\n"
            "  \"b\": {\n"
            "    \"c\": \"\xC3\xA9\"\n"
            "  },\n"
            "  \"d\": []\n"
            "}\n");
}

TEST(TableTest, HeaderFromName) {
  EXPECT_EQ(HeaderFromName("customerIdentifier"), "CUSTOMER IDENTIFIER");
  EXPECT_EQ(HeaderFromName("accessKeyId"), "ACCESS KEY ID");
  EXPECT_EQ(HeaderFromName("id"), "ID");
}

TEST(DurationTest, Parses) {
  EXPECT_EQ(ParseDurationSeconds("3600"), 3600);
  EXPECT_EQ(ParseDurationSeconds("0"), 0);
  EXPECT_EQ(ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(ParseDurationSeconds("15m"), 900);
  EXPECT_EQ(ParseDurationSeconds("2h"), 7200);
  EXPECT_EQ(ParseDurationSeconds("1h30m"), 5400);
  EXPECT_EQ(ParseDurationSeconds("3d"), 259200);
  EXPECT_EQ(ParseDurationSeconds("1d2h3m4s"), 93784);
}

TEST(DurationTest, Refuses) {
  for (const char* text : {"", "h", "1x", "-5", "1.5h", "30m1h", "1h1h", "1h30", " 1h", "1h ",
                           "99999999999999999999", "9999999999999999d"}) {
    EXPECT_FALSE(ParseDurationSeconds(text).has_value()) << text;
  }
}

TEST(AdminUrlTest, Parses) {
  auto url = ParseAdminUrl("http://127.0.0.1:8081");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, "8081");
  EXPECT_EQ(url->host_header, "127.0.0.1:8081");
  EXPECT_EQ(url->base_path, "");

  url = ParseAdminUrl("HTTP://[::1]:9/admin/");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, "9");
  EXPECT_EQ(url->base_path, "/admin");

  url = ParseAdminUrl("localhost");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->port, "80");
}

TEST(AdminUrlTest, Refuses) {
  for (const char* text :
       {"", "https://h:1", "ftp://h", "http://", "http://:80", "http://h:0", "http://h:65536",
        "http://h:x", "http://h/?q", "http://u@h", "http://[::1"}) {
    EXPECT_FALSE(ParseAdminUrl(text).ok()) << text;
  }
}

TEST(AdminClientTest, PercentEncodingAndQueries) {
  EXPECT_EQ(PercentEncode("arn:aws:ecs:us-east-1:4:task/prod/0f"),
            "arn%3Aaws%3Aecs%3Aus-east-1%3A4%3Atask%2Fprod%2F0f");
  EXPECT_EQ(PercentEncode("a b~_.-"), "a%20b~_.-");
  EXPECT_EQ(WithQuery("/v1/subscriptions", {{"account", "1"}, {"product", ""}}),
            "/v1/subscriptions?account=1");
  EXPECT_EQ(WithQuery("/v1/faults", {{"operation", "X"}, {"caller", "A/B"}}),
            "/v1/faults?operation=X&caller=A%2FB");
  EXPECT_EQ(WithQuery("/v1/faults", {}), "/v1/faults");
}

TEST(AdminClientTest, ExitCodes) {
  EXPECT_EQ(ExitCodeForHttpStatus(200), kExitOk);
  EXPECT_EQ(ExitCodeForHttpStatus(201), kExitOk);
  EXPECT_EQ(ExitCodeForHttpStatus(400), kExitRefused);
  EXPECT_EQ(ExitCodeForHttpStatus(405), kExitRefused);
  EXPECT_EQ(ExitCodeForHttpStatus(401), kExitUnauthorized);
  EXPECT_EQ(ExitCodeForHttpStatus(404), kExitNotFound);
  EXPECT_EQ(ExitCodeForHttpStatus(409), kExitConflict);
  EXPECT_EQ(ExitCodeForHttpStatus(500), kExitUnavailable);
  EXPECT_EQ(ExitCodeForHttpStatus(503), kExitUnavailable);
}

TEST(AdminClientTest, ErrorFromResponse) {
  AdminError e =
      ErrorFromResponse({409, "application/json", R"({"code":"Conflict","message":"m"})", ""});
  EXPECT_EQ(e.code, "Conflict");
  EXPECT_EQ(e.message, "m");
  e = ErrorFromResponse({502, "text/html", "Bad gateway\n", ""});
  EXPECT_EQ(e.code, "HTTP 502");
  EXPECT_EQ(e.message, "Bad gateway");
  e = ErrorFromResponse({503, "", "", ""});
  EXPECT_EQ(e.message, "Service Unavailable");
}

TEST(AdminClientTest, UnreachableServerIsAnIoError) {
  AdminClientOptions options;
  options.endpoint = "http://127.0.0.1:1";  // nothing listens on port 1
  options.token = "t";
  auto client = AdminClient::Create(options);
  ASSERT_TRUE(client.ok());
  auto response = client->Call("GET", "/v1/status");
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), StatusCode::kIoError);
  EXPECT_NE(response.status().message().find("http://127.0.0.1:1"), std::string::npos);
}

}  // namespace
}  // namespace meterd::ctl
