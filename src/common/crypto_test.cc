#include "common/crypto.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

namespace meterd {
namespace {

bool IsCanonicalUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
      return false;
    }
  }
  return true;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The 48-bit millisecond timestamp of a version-7 UUID's first 12 hex digits.
int64_t TimestampOf(const std::string& id) {
  return std::stoll(id.substr(0, 8) + id.substr(9, 4), nullptr, 16);
}

TEST(CryptoTest, RandomUuidIsVersion4) {
  const std::string id = RandomUuid();
  EXPECT_TRUE(IsCanonicalUuid(id)) << id;
  EXPECT_EQ(id[14], '4') << id;
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
}

TEST(CryptoTest, TimeOrderedUuidIsCanonicalVersion7) {
  const int64_t before = NowMs();
  const std::string id = TimeOrderedUuid();
  const int64_t after = NowMs();
  ASSERT_TRUE(IsCanonicalUuid(id)) << id;
  EXPECT_EQ(id[14], '7') << id;                                          // version 7
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;  // variant 10
  // The timestamp is the wall clock, or a little ahead of it when earlier ids spent a
  // millisecond's counter and borrowed the next one.
  EXPECT_GE(TimestampOf(id), before);
  EXPECT_LE(TimestampOf(id), after + 1000);
}

TEST(CryptoTest, TimeOrderedUuidsAreIncreasingAndUnique) {
  constexpr int kCount = 100000;
  std::vector<std::string> ids;
  ids.reserve(kCount);
  for (int i = 0; i < kCount; ++i) ids.push_back(TimeOrderedUuid());
  std::unordered_set<std::string> seen(ids.begin(), ids.end());
  EXPECT_EQ(seen.size(), ids.size());
  for (int i = 1; i < kCount; ++i) {
    ASSERT_LT(ids[i - 1], ids[i]) << "at " << i;  // within a millisecond too: the counter
    ASSERT_EQ(ids[i][14], '7');
    ASSERT_NE(std::string("89ab").find(ids[i][19]), std::string::npos) << ids[i];
  }
  // Made much faster than 1 per ms: at least one millisecond held several ids, in order.
  EXPECT_LT(TimestampOf(ids.back()) - TimestampOf(ids.front()), kCount);
}

TEST(CryptoTest, TimeOrderedUuidIsUniqueAcrossThreads) {
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::vector<std::string>> made(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&made, t] {
      for (int i = 0; i < kEach; ++i) made[t].push_back(TimeOrderedUuid());
    });
  }
  for (auto& th : threads) th.join();
  std::unordered_set<std::string> seen;
  for (const auto& ids : made) {
    for (size_t i = 1; i < ids.size(); ++i) ASSERT_LT(ids[i - 1], ids[i]);  // per thread
    seen.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kEach));
}

}  // namespace
}  // namespace meterd
