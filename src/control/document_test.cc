#include "control/document.h"

#include <gtest/gtest.h>

namespace meterd::control {
namespace {

json::Value Parse(const std::string& text) {
  auto v = json::Parse(text);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : json::Value();
}

std::string S(const json::Value& v) { return json::Serialize(v); }

TEST(DocumentTest, CanonicalSortsMembersAtEveryLevel) {
  EXPECT_EQ(S(Canonical(Parse(R"({"b":1,"a":{"d":[{"z":1,"y":2}],"c":true}})"))),
            R"({"a":{"c":true,"d":[{"y":2,"z":1}]},"b":1})");
}

TEST(DocumentTest, SubscriptionKeyIsLicenseOrAccountAndProduct) {
  EXPECT_EQ(EntryKey("subscriptions", Parse(R"({"account":"1","product":"p"})")), "1:p");
  EXPECT_EQ(EntryKey("subscriptions", Parse(R"({"account":"1","product":"p","licenseArn":"L"})")),
            "L");
  EXPECT_EQ(EntryKey("accounts", Parse(R"({"name":"no id"})")), "");
  EXPECT_EQ(EntryKey("regions.disabled", Parse(R"({"region":"eu-south-2"})")), "eu-south-2");
}

TEST(DocumentTest, PutReplacesByKeyAndRemoveRemoves) {
  json::Value doc = Parse(R"({"accounts":[{"id":"1","name":"a"},{"id":"2","name":"b"}]})");
  doc = PutEntry(doc, "accounts", Parse(R"({"id":"2","name":"B"})"));
  doc = PutEntry(doc, "accounts", Parse(R"({"id":"3"})"));
  EXPECT_EQ(S(doc), R"({"accounts":[{"id":"1","name":"a"},{"id":"2","name":"B"},{"id":"3"}]})");
  bool removed = false;
  doc = RemoveEntry(doc, "accounts", "1", &removed);
  EXPECT_TRUE(removed);
  doc = RemoveEntry(doc, "accounts", "9", &removed);
  EXPECT_FALSE(removed);
  EXPECT_EQ(S(doc), R"({"accounts":[{"id":"2","name":"B"},{"id":"3"}]})");
}

TEST(DocumentTest, RegionsLiveInsideTheRegionsObject) {
  json::Value doc = PutEntry(Parse("{}"), "regions.disabled",
                             Parse(R"({"region":"r1","operations":["MeterUsage"]})"));
  EXPECT_EQ(S(doc), R"({"regions":{"disabled":[{"operations":["MeterUsage"],"region":"r1"}]}})");
  ASSERT_NE(FindEntry(doc, "regions.disabled", "r1"), nullptr);
}

TEST(DocumentTest, MergePatchReplacesMergesAndRemoves) {
  EXPECT_EQ(S(MergePatch(Parse(R"({"a":1,"b":{"c":1,"d":2},"e":3})"),
                         Parse(R"({"a":2,"b":{"c":9},"e":null})"))),
            R"({"a":2,"b":{"c":9,"d":2}})");
}

TEST(DocumentTest, RedactedDropsSecretsAtAnyDepth) {
  EXPECT_EQ(
      S(Redacted(
          Parse(R"({"credentials":[{"accessKeyId":"A","secretAccessKey":"s","sessionToken":"t"}],)"
                R"("products":[{"signingKeys":[{"version":1,"privateKeyPem":"p"}]}]})"))),
      R"({"credentials":[{"accessKeyId":"A"}],"products":[{"signingKeys":[{"version":1}]}]})");
}

TEST(DocumentTest, StampTimesFillsOnlyWhatIsMissing) {
  json::Value doc = Parse(
      R"({"subscriptions":[{"account":"1","product":"p","status":"unsubscribe-pending"},)"
      R"({"account":"2","product":"p","status":"unsubscribe-pending","unsubscribedAt":"2020-01-01T00:00:00Z"}],)"
      R"("products":[{"code":"p","signingKeys":[{"version":1,"expired":true},{"version":2}]}]})");
  json::Value stamped = StampTimes(doc, 0);
  EXPECT_EQ(
      S(stamped),
      R"({"products":[{"code":"p","signingKeys":[{"expired":true,"expiredAt":"1970-01-01T00:00:00Z","version":1},{"version":2}]}],)"
      R"("subscriptions":[{"account":"1","product":"p","status":"unsubscribe-pending","unsubscribedAt":"1970-01-01T00:00:00Z"},)"
      R"({"account":"2","product":"p","status":"unsubscribe-pending","unsubscribedAt":"2020-01-01T00:00:00Z"}]})");
}

TEST(DocumentTest, MergeIsIdempotentAndKeepsStampsAndUnnamedEntries) {
  const json::Value file =
      Parse(R"({"accounts":[{"id":"1","name":"one"}],)"
            R"("subscriptions":[{"account":"1","product":"p","status":"unsubscribe-pending"}],)"
            R"("settings":{"tokenTtlHours":2}})");
  const json::Value current = Parse(R"({"accounts":[{"id":"9","name":"kept"}]})");
  auto first = MergeCatalog(current, file);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->created.size(), 3u);
  EXPECT_TRUE(first->updated.empty());
  json::Value stored = StampTimes(first->document, 1000);
  ASSERT_NE(FindEntry(stored, "accounts", "9"), nullptr);

  auto second = MergeCatalog(stored, file);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->created.empty());
  EXPECT_TRUE(second->updated.empty());
  EXPECT_EQ(second->unchanged, 3);
  EXPECT_EQ(S(second->document), S(stored));  // the stamp survived

  auto renamed = MergeCatalog(stored, Parse(R"({"accounts":[{"id":"1","name":"uno"}]})"));
  ASSERT_TRUE(renamed.ok());
  EXPECT_EQ(renamed->updated, std::vector<std::string>{"accounts/1"});
}

TEST(DocumentTest, MergeRefusesWhatItCannotKey) {
  json::Value empty = Parse("{}");
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"({"acounts":[]})")).ok());
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"({"accounts":{}})")).ok());
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"({"accounts":[{"name":"x"}]})")).ok());
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"({"accounts":[{"id":"1"},{"id":"1"}]})")).ok());
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"([])")).ok());
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"({"regions":[]})")).ok());
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"({"regions":{"disabled":{}}})")).ok());
  EXPECT_FALSE(MergeCatalog(empty, Parse(R"({"settings":[]})")).ok());
}

}  // namespace
}  // namespace meterd::control
