#include "observability/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "json/json.h"
#include "observability/access_log.h"

namespace meterd::log {
namespace {

TEST(LogTest, ParsesLevelsAndFormats) {
  Level level;
  Format format;
  EXPECT_TRUE(ParseLevel("debug", &level));
  EXPECT_EQ(level, Level::kDebug);
  EXPECT_TRUE(ParseLevel("error", &level));
  EXPECT_EQ(level, Level::kError);
  EXPECT_FALSE(ParseLevel("verbose", &level));
  EXPECT_TRUE(ParseFormat("json", &format));
  EXPECT_EQ(format, Format::kJson);
  EXPECT_FALSE(ParseFormat("xml", &format));
}

TEST(LogTest, JsonLinesAreOneObjectWithTimeLevelMessageAndFields) {
  std::string line = FormatLine(Format::kJson, 1764160200123, Level::kWarn, "a \"quoted\"\nthing",
                                {{"error", "disk full"}, {"signal", "15"}});
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
  auto parsed = json::Parse(line);
  ASSERT_TRUE(parsed.ok()) << line;
  EXPECT_EQ(parsed->Find("time")->text(), "2025-11-26T12:30:00.123Z");
  EXPECT_EQ(parsed->Find("level")->text(), "warn");
  EXPECT_EQ(parsed->Find("msg")->text(), "a \"quoted\"\nthing");
  EXPECT_EQ(parsed->Find("error")->text(), "disk full");
  EXPECT_EQ(parsed->Find("signal")->text(), "15");
}

TEST(LogTest, TextLinesKeepTheMeterdPrefix) {
  EXPECT_EQ(FormatLine(Format::kText, 0, Level::kInfo, "stopping", {{"signal", "15"}}),
            "meterd: stopping signal=15\n");
  EXPECT_EQ(FormatLine(Format::kText, 0, Level::kError, "failed", {{"error", "disk full"}}),
            "meterd: ERROR: failed error=\"disk full\"\n");
  EXPECT_EQ(FormatLine(Format::kText, 0, Level::kWarn, "manual clock", {}),
            "meterd: WARNING: manual clock\n");
}

TEST(LogTest, LinesBelowTheLevelAreNotWritten) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  SetOutputFd(fds[1]);
  Configure(Level::kWarn, Format::kJson);
  Info("not shown");
  Debug("not shown either");
  Error("shown", {{"k", "v"}});
  Configure(Level::kInfo, Format::kText);
  SetOutputFd(2);
  close(fds[1]);
  std::string out;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) out.append(buffer, n);
  close(fds[0]);
  EXPECT_EQ(out.find("not shown"), std::string::npos) << out;
  EXPECT_NE(out.find("\"level\":\"error\",\"msg\":\"shown\",\"k\":\"v\"}"), std::string::npos)
      << out;
}

TEST(AccessLogTest, ALineHasEveryFieldAndNoBody) {
  protocol::ApiCall call;
  call.request_id = "0f6f1f52-3b1c-4bb0-9b0a-4a7f1d3b8c3e";
  call.operation = "BatchMeterUsage";
  call.region = "us-east-1";
  call.access_key_id = "AKIAACMESELLER000001";
  call.account = "111122223333";
  call.source_ip = "127.0.0.1";
  call.user_agent = "Boto3/1.26 \"quoted\"";
  call.received_ms = 1764160200123;
  call.latency_us = 1234;
  call.http_status = 400;
  call.error_code = "ValidationException";
  call.error_message = "bad";
  call.throttled = true;
  call.records = {1, 2, 3, 4};
  call.request_body = "{\"secret-looking-body\":1}";
  call.response_body = "{\"response-body\":1}";
  std::string line = observability::AccessLog::FormatLine(call);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto parsed = json::Parse(line);
  ASSERT_TRUE(parsed.ok()) << line;
  const json::Value& v = *parsed;
  EXPECT_EQ(v.Find("time")->text(), "2025-11-26T12:30:00.123Z");
  EXPECT_EQ(v.Find("request_id")->text(), call.request_id);
  EXPECT_EQ(v.Find("operation")->text(), "BatchMeterUsage");
  EXPECT_EQ(v.Find("region")->text(), "us-east-1");
  EXPECT_EQ(v.Find("access_key_id")->text(), "AKIAACMESELLER000001");
  EXPECT_EQ(v.Find("account")->text(), "111122223333");
  EXPECT_EQ(v.Find("workload_id")->text(), "");
  EXPECT_EQ(v.Find("source_ip")->text(), "127.0.0.1");
  EXPECT_EQ(v.Find("user_agent")->text(), "Boto3/1.26 \"quoted\"");
  EXPECT_EQ(v.Find("status")->text(), "400");
  EXPECT_EQ(v.Find("error_type")->text(), "ValidationException");
  EXPECT_EQ(v.Find("error_message")->text(), "bad");
  EXPECT_EQ(v.Find("latency_ms")->text(), "1.234");
  EXPECT_TRUE(v.Find("throttled")->as_bool());
  EXPECT_FALSE(v.Find("fault_injected")->as_bool());
  const json::Value* records = v.Find("records");
  ASSERT_NE(records, nullptr);
  EXPECT_EQ(records->Find("success")->text(), "1");
  EXPECT_EQ(records->Find("duplicate")->text(), "2");
  EXPECT_EQ(records->Find("customer_not_subscribed")->text(), "3");
  EXPECT_EQ(records->Find("unprocessed")->text(), "4");
  EXPECT_EQ(line.find("body"), std::string::npos) << "bodies are never logged: " << line;
}

}  // namespace
}  // namespace meterd::log
