#include "catalog/catalog.h"

#include <gtest/gtest.h>

#include "common/time_util.h"

namespace meterd::catalog {
namespace {

const std::string kDir = std::string(METERD_SOURCE_DIR) + "/tests/fixtures/";

TEST(CatalogTest, LoadsTheSpecExampleAsIs) {
  auto c = Catalog::LoadFile(kDir + "catalog.example.json", 0);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const Catalog& cat = **c;
  EXPECT_TRUE(cat.FindAccount("111122223333")->seller);
  EXPECT_EQ(cat.FindAccountByCustomerIdentifier("cust-globex-0001")->id, "444455556666");
  EXPECT_EQ(cat.FindCredential("AKIAGLOBEXEC2000001")->workload, "i-0123456789abcdef0");
  EXPECT_EQ(cat.FindProduct("acmesaasca1")->integration, Integration::kConcurrentAgreements);
  EXPECT_EQ(cat.FindProduct("acmesaas01")->FindDimension("api_calls")->price_per_unit, "0.0001");
  EXPECT_EQ(cat.FindProduct("acmectr001")->hourly_dimension, "task_hours");
  const Subscription* license = cat.FindLicense(
      "arn:aws:license-manager::294406891311:license:l-0a1b2c3d4e5f60718293a4b5c6d7e8f9");
  ASSERT_NE(license, nullptr);
  EXPECT_FALSE(license->CoversTime(*ParseIso8601("2025-12-31T23:59:59Z")));
  EXPECT_TRUE(license->CoversTime(*ParseIso8601("2026-06-01T00:00:00Z")));
  EXPECT_TRUE(cat.IsDisabled("eu-south-2", "BatchMeterUsage"));
  EXPECT_FALSE(cat.IsDisabled("eu-south-2", "MeterUsage"));
  EXPECT_EQ(cat.SubscriptionsOf("777788889999", "acmesaas01").at(0)->status,
            SubscriptionStatus::kUnsubscribed);
}

TEST(CatalogTest, RefusesInconsistentCatalogsWithAPreciseMessage) {
  struct Case {
    const char* json;
    const char* message;
  } cases[] = {
      {R"({"accounts":[{"id":"123","roles":["seller"]}]})", "12 digits"},
      {R"({"accounts":[{"id":"111122223333","roles":["admin"]}]})", "unknown role"},
      {R"({"credentials":[{"accessKeyId":"A","secretAccessKey":"s","account":"111122223333"}]})",
       "unknown account"},
      {R"({"accounts":[{"id":"111122223333","roles":["buyer"]}],
          "products":[{"code":"p","seller":"111122223333","kind":"saas"}]})",
       "is not a seller"},
      {R"({"accounts":[{"id":"111122223333","roles":["seller"]}],
          "products":[{"code":"p","seller":"111122223333","kind":"saas","hourlyDimension":"x"}]})",
       "hourlyDimension"},
      {R"({"accounts":[{"id":"111122223333","roles":["seller"]}],
          "products":[{"code":"p","seller":"111122223333","kind":"saas"}],
          "subscriptions":[{"account":"111122223333","product":"p","status":"paused"}]})",
       "unknown status"},
      {R"({"regions":{"disabled":[{"region":"x","operations":["Nope"]}]}})", "unknown operation"},
      {R"([1,2])", "JSON object"},
      {R"({"accounts":)", "Invalid JSON"},
  };
  for (const auto& c : cases) {
    auto r = Catalog::FromJson(c.json, 0);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
}

TEST(CatalogTest, UnsubscribePendingGraceStartsAtUnsubscribedAtOrLoadTime) {
  int64_t loaded = *ParseIso8601("2026-11-26T12:00:00Z");
  auto c = Catalog::LoadFile(kDir + "catalog.test.json", loaded);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const Subscription* umbrella = (*c)->SubscriptionsOf("888899990000", "acmesaas01").at(0);
  EXPECT_TRUE(umbrella->AcceptsUsage(loaded, loaded + kUnsubscribeGraceMillis - 1));
  EXPECT_FALSE(umbrella->AcceptsUsage(loaded, loaded + kUnsubscribeGraceMillis));
  const Subscription* hooli = (*c)->SubscriptionsOf("999900001111", "acmesaas01").at(0);
  EXPECT_FALSE(hooli->AcceptsUsage(loaded, loaded));
}

TEST(CatalogHolderTest, IsTheKeyStoreOfTheCurrentSnapshot) {
  auto c = Catalog::LoadFile(kDir + "catalog.test.json", 0);
  ASSERT_TRUE(c.ok());
  CatalogHolder holder(*c);
  auto cred = holder.Find("ASIAGLOBEXTEMP000001");
  ASSERT_TRUE(cred.has_value());
  EXPECT_EQ(cred->session_token, "FwoGZXIvYXdzEGlobexSessionToken0001");
  EXPECT_FALSE(holder.Find("AKIADISABLEDKEY00001")->enabled);
  EXPECT_FALSE(holder.Find("nope").has_value());
  holder.Set(*Catalog::FromJson("{}", 0));
  EXPECT_FALSE(holder.Find("ASIAGLOBEXTEMP000001").has_value());
}

}  // namespace
}  // namespace meterd::catalog
