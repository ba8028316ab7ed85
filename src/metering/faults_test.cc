#include "metering/faults.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace meterd::metering {
namespace {

FaultRule Rule(std::string operation, std::string caller, double throttle, double internal,
               double unprocessed, int64_t latency_ms, std::optional<uint64_t> seed) {
  FaultRule r;
  r.operation = std::move(operation);
  r.caller = std::move(caller);
  r.throttle_rate = throttle;
  r.internal_error_rate = internal;
  r.unprocessed_rate = unprocessed;
  r.latency_ms = latency_ms;
  r.seed = seed;
  return r;
}

json::Value Body(std::string_view text) {
  Result<json::Value> v = json::Parse(text);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : json::Value();
}

TEST(FaultInjectorTest, NoRulesIsANoOp) {
  FaultInjector faults;
  FaultDecision d = faults.Decide("MeterUsage", "AKIA1", "111122223333", 0);
  EXPECT_FALSE(d.matched);
  EXPECT_EQ(d.action, FaultAction::kNone);
  EXPECT_EQ(d.latency_ms, 0);
  EXPECT_TRUE(faults.UnprocessedMask(d, 5).empty());
  EXPECT_TRUE(faults.List().empty());
}

TEST(FaultInjectorTest, SameSeedSameSequence) {
  auto run = [](uint64_t seed) {
    FaultInjector faults;
    EXPECT_TRUE(faults.SetRule(Rule("BatchMeterUsage", "", 0.3, 0.2, 0.4, 0, seed)).ok());
    std::vector<std::pair<FaultAction, std::vector<bool>>> out;
    for (int i = 0; i < 200; ++i) {
      FaultDecision d = faults.Decide("BatchMeterUsage", "AKIA1", "111122223333", 0);
      // The mask depends on the seed and the call sequence, not on when it is drawn.
      out.emplace_back(d.action, faults.UnprocessedMask(d, 1 + i % 7));
    }
    return out;
  };
  auto a = run(42);
  EXPECT_EQ(a, run(42));
  EXPECT_NE(a, run(43));
}

TEST(FaultInjectorTest, MaskAtDecideEqualsMaskLater) {
  FaultInjector now;
  FaultInjector later;
  ASSERT_TRUE(now.SetRule(Rule("BatchMeterUsage", "", 0, 0, 0.5, 0, 7)).ok());
  ASSERT_TRUE(later.SetRule(Rule("BatchMeterUsage", "", 0, 0, 0.5, 0, 7)).ok());
  for (int i = 0; i < 20; ++i) {
    FaultDecision d1 = now.Decide("BatchMeterUsage", "k", "a", 25);
    FaultDecision d2 = later.Decide("BatchMeterUsage", "k", "a", 0);
    EXPECT_EQ(d1.unprocessed.size(), 25u);
    EXPECT_TRUE(d2.unprocessed.empty());
    EXPECT_EQ(d1.unprocessed, later.UnprocessedMask(d2, 25));
  }
  EXPECT_EQ(now.List()[0].counts.unprocessed_records, later.List()[0].counts.unprocessed_records);
}

TEST(FaultInjectorTest, RatesAreRoughlyHonoured) {
  FaultInjector faults;
  ASSERT_TRUE(faults.SetRule(Rule("BatchMeterUsage", "", 0.5, 0.2, 0.3, 0, 1)).ok());
  int throttled = 0;
  int internal = 0;
  size_t records = 0;
  size_t marked = 0;
  constexpr int kCalls = 10000;
  for (int i = 0; i < kCalls; ++i) {
    FaultDecision d = faults.Decide("BatchMeterUsage", "k", "a", 10);
    if (d.action == FaultAction::kThrottle) ++throttled;
    if (d.action == FaultAction::kInternalError) ++internal;
    if (d.action == FaultAction::kNone) {
      ASSERT_EQ(d.unprocessed.size(), 10u);
      records += d.unprocessed.size();
      for (bool b : d.unprocessed) marked += b ? 1 : 0;
    } else {
      EXPECT_TRUE(d.unprocessed.empty());
    }
  }
  EXPECT_NEAR(throttled / double(kCalls), 0.5, 0.05);
  EXPECT_NEAR(internal / double(kCalls), 0.2, 0.05);
  EXPECT_NEAR(marked / double(records), 0.3, 0.05);

  FaultCounts c = faults.List()[0].counts;
  EXPECT_EQ(c.calls, uint64_t{kCalls});
  EXPECT_EQ(c.throttled, uint64_t(throttled));
  EXPECT_EQ(c.internal_errors, uint64_t(internal));
  EXPECT_EQ(c.unprocessed_records, marked);
  EXPECT_EQ(c.delayed, 0u);
}

TEST(FaultInjectorTest, ExtremeRates) {
  FaultInjector faults;
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "", 1, 0, 0, 0, 3)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("RegisterUsage", "", 0, 1, 0, 0, 3)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("BatchMeterUsage", "", 0, 0, 1, 0, 3)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("ResolveCustomer", "", 0, 0, 0, 250, 3)).ok());
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(faults.Decide("MeterUsage", "k", "a", 0).action, FaultAction::kThrottle);
    EXPECT_EQ(faults.Decide("RegisterUsage", "k", "a", 0).action, FaultAction::kInternalError);
    FaultDecision batch = faults.Decide("BatchMeterUsage", "k", "a", 3);
    EXPECT_EQ(batch.action, FaultAction::kNone);
    EXPECT_EQ(batch.unprocessed, std::vector<bool>(3, true));
    FaultDecision resolve = faults.Decide("ResolveCustomer", "k", "a", 0);
    EXPECT_TRUE(resolve.matched);
    EXPECT_EQ(resolve.action, FaultAction::kNone);
    EXPECT_EQ(resolve.latency_ms, 250);
    EXPECT_TRUE(resolve.unprocessed.empty());  // masks are for BatchMeterUsage only
  }
  std::vector<FaultRuleState> list = faults.List();
  ASSERT_EQ(list.size(), 4u);
  // By operation.
  EXPECT_EQ(list[0].rule.operation, "BatchMeterUsage");
  EXPECT_EQ(list[0].counts.unprocessed_records, 300u);
  EXPECT_EQ(list[1].rule.operation, "MeterUsage");
  EXPECT_EQ(list[1].counts.throttled, 100u);
  EXPECT_EQ(list[2].rule.operation, "RegisterUsage");
  EXPECT_EQ(list[2].counts.internal_errors, 100u);
  EXPECT_EQ(list[3].rule.operation, "ResolveCustomer");
  EXPECT_EQ(list[3].counts.delayed, 100u);
  EXPECT_EQ(list[3].counts.calls, 100u);
}

TEST(FaultInjectorTest, CallerRuleBeatsEveryoneRule) {
  FaultInjector faults;
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "", 1, 0, 0, 0, 1)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "AKIAKEY", 0, 1, 0, 0, 1)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "111122223333", 0, 0, 0, 10, 1)).ok());
  // The key's rule wins over its account's rule.
  EXPECT_EQ(faults.Decide("MeterUsage", "AKIAKEY", "111122223333", 0).action,
            FaultAction::kInternalError);
  FaultDecision by_account = faults.Decide("MeterUsage", "AKIAOTHER", "111122223333", 0);
  EXPECT_EQ(by_account.action, FaultAction::kNone);
  EXPECT_EQ(by_account.latency_ms, 10);
  EXPECT_EQ(faults.Decide("MeterUsage", "AKIAOTHER", "444455556666", 0).action,
            FaultAction::kThrottle);
  // Another operation has no rule.
  EXPECT_FALSE(faults.Decide("RegisterUsage", "AKIAKEY", "111122223333", 0).matched);
}

TEST(FaultInjectorTest, SetRuleReplacesAndResets) {
  FaultInjector faults;
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "", 1, 0, 0, 0, 1)).ok());
  faults.Decide("MeterUsage", "k", "a", 0);
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "", 0, 0, 0, 5, 9)).ok());
  std::vector<FaultRuleState> list = faults.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].rule.latency_ms, 5);
  EXPECT_EQ(list[0].rule.seed, std::optional<uint64_t>(9));
  EXPECT_EQ(list[0].counts.calls, 0u);
  EXPECT_EQ(faults.Decide("MeterUsage", "k", "a", 0).action, FaultAction::kNone);
}

TEST(FaultInjectorTest, ClearAndClearRule) {
  FaultInjector faults;
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "", 1, 0, 0, 0, 1)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "AKIAKEY", 0, 1, 0, 0, 1)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("RegisterUsage", "", 1, 0, 0, 0, 1)).ok());
  EXPECT_FALSE(faults.ClearRule("MeterUsage", "AKIAOTHER"));
  EXPECT_FALSE(faults.ClearRule("ResolveCustomer", ""));
  EXPECT_TRUE(faults.ClearRule("MeterUsage", "AKIAKEY"));
  EXPECT_FALSE(faults.ClearRule("MeterUsage", "AKIAKEY"));
  EXPECT_EQ(faults.Decide("MeterUsage", "AKIAKEY", "a", 0).action, FaultAction::kThrottle);
  EXPECT_EQ(faults.List().size(), 2u);
  faults.Clear();
  EXPECT_TRUE(faults.List().empty());
  EXPECT_FALSE(faults.Decide("MeterUsage", "AKIAKEY", "a", 0).matched);
  EXPECT_FALSE(faults.Decide("RegisterUsage", "AKIAKEY", "a", 0).matched);
}

TEST(FaultInjectorTest, MaskOfAReplacedRuleIsHarmless) {
  FaultInjector faults;
  ASSERT_TRUE(faults.SetRule(Rule("BatchMeterUsage", "", 0, 0, 1, 0, 1)).ok());
  FaultDecision d = faults.Decide("BatchMeterUsage", "k", "a", 0);
  faults.Clear();
  EXPECT_EQ(faults.UnprocessedMask(d, 2), std::vector<bool>(2, true));
  EXPECT_TRUE(faults.List().empty());
}

TEST(FaultInjectorTest, SetRuleRefusesInvalidRules) {
  FaultInjector faults;
  EXPECT_EQ(faults.SetRule(Rule("GetEntitlements", "", 0, 0, 0, 0, 1)).code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(faults.SetRule(Rule("MeterUsage", "", 0.6, 0.5, 0, 0, 1)).ok());
  EXPECT_FALSE(faults.SetRule(Rule("MeterUsage", "", -0.1, 0, 0, 0, 1)).ok());
  EXPECT_FALSE(faults.SetRule(Rule("MeterUsage", "", 0, 0, 1.5, 0, 1)).ok());
  EXPECT_FALSE(faults.SetRule(Rule("MeterUsage", "", 0, 0, 0, 60001, 1)).ok());
  EXPECT_FALSE(faults.SetRule(Rule("MeterUsage", "", 0, 0, 0, -1, 1)).ok());
  EXPECT_FALSE(faults.SetRule(Rule("MeterUsage", "a b", 0, 0, 0, 0, 1)).ok());
  EXPECT_TRUE(faults.SetRule(Rule("MeterUsage", "", 0.7, 0.3, 0, 60000, std::nullopt)).ok());
  EXPECT_TRUE(faults.List()[0].rule.seed == std::nullopt);
}

TEST(ParseFaultRuleTest, FullRule) {
  Result<FaultRule> r = ParseFaultRule(
      Body(R"({"operation":"BatchMeterUsage","caller":"AKIAEXAMPLE","throttleRate":0.5,
               "internalErrorRate":1e-1,"unprocessedRate":0.2,"latencyMs":200,
               "seed":18446744073709551615,"comment":"ignored"})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->operation, "BatchMeterUsage");
  EXPECT_EQ(r->caller, "AKIAEXAMPLE");
  EXPECT_EQ(r->throttle_rate, 0.5);
  EXPECT_EQ(r->internal_error_rate, 0.1);
  EXPECT_EQ(r->unprocessed_rate, 0.2);
  EXPECT_EQ(r->latency_ms, 200);
  EXPECT_EQ(r->seed, std::optional<uint64_t>(18446744073709551615u));
}

TEST(ParseFaultRuleTest, Defaults) {
  Result<FaultRule> r = ParseFaultRule(Body(R"({"operation":"MeterUsage","seed":null})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->caller, "");
  EXPECT_EQ(r->throttle_rate, 0);
  EXPECT_EQ(r->latency_ms, 0);
  EXPECT_FALSE(r->seed.has_value());
}

TEST(ParseFaultRuleTest, Refusals) {
  const char* cases[][2] = {
      {R"([])", "JSON object"},
      {R"({})", "operation is required"},
      {R"({"operation":1})", "operation must be a string"},
      {R"({"operation":"GetEntitlements"})", "unknown operation"},
      {R"({"operation":"MeterUsage","caller":12})", "caller must be a string"},
      {R"({"operation":"MeterUsage","throttleRate":"0.5"})", "throttleRate must be a number"},
      {R"({"operation":"MeterUsage","throttleRate":1.5})", "throttleRate must be between"},
      {R"({"operation":"MeterUsage","internalErrorRate":-0.5})", "internalErrorRate must be"},
      {R"({"operation":"MeterUsage","unprocessedRate":2})", "unprocessedRate must be"},
      {R"({"operation":"MeterUsage","throttleRate":0.6,"internalErrorRate":0.6})",
       "must not exceed 1"},
      {R"({"operation":"MeterUsage","latencyMs":60001})", "latencyMs must be"},
      {R"({"operation":"MeterUsage","latencyMs":1.5})", "latencyMs must be"},
      {R"({"operation":"MeterUsage","latencyMs":"10"})", "latencyMs must be"},
      {R"({"operation":"MeterUsage","seed":-1})", "seed must be"},
      {R"({"operation":"MeterUsage","seed":1.5})", "seed must be"},
      {R"({"operation":"MeterUsage","seed":18446744073709551616})", "seed must be"},
      {R"({"operation":"MeterUsage","seed":"42"})", "seed must be"},
  };
  for (const auto& [text, message] : cases) {
    Result<FaultRule> r = ParseFaultRule(Body(text));
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(r.status().message().find(message), std::string::npos)
        << text << " -> " << r.status().message();
  }
}

TEST(FaultRulesJsonTest, Shape) {
  FaultInjector faults;
  ASSERT_TRUE(faults.SetRule(Rule("BatchMeterUsage", "AKIA\"X", 0.5, 0.1, 0.2, 200, 42)).ok());
  ASSERT_TRUE(faults.SetRule(Rule("MeterUsage", "", 0, 0, 0, 0, std::nullopt)).ok());
  faults.Decide("MeterUsage", "k", "a", 0);
  EXPECT_EQ(FaultRulesJson(faults.List()),
            R"({"rules":[{"operation":"BatchMeterUsage","caller":"AKIA\"X","throttleRate":0.5,)"
            R"("internalErrorRate":0.1,"unprocessedRate":0.2,"latencyMs":200,"seed":42,)"
            R"("counts":{"calls":0,"throttled":0,"internalErrors":0,"unprocessedRecords":0,)"
            R"("delayed":0}},{"operation":"MeterUsage","throttleRate":0,"internalErrorRate":0,)"
            R"("unprocessedRate":0,"latencyMs":0,"counts":{"calls":1,"throttled":0,)"
            R"("internalErrors":0,"unprocessedRecords":0,"delayed":0}}]})");
  EXPECT_EQ(FaultRulesJson({}), R"({"rules":[]})");
  // What it lists parses back into the same rule.
  Result<json::Value> listed = json::Parse(FaultRulesJson(faults.List()));
  ASSERT_TRUE(listed.ok());
  Result<FaultRule> back = ParseFaultRule(listed->Find("rules")->items()[0]);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->caller, "AKIA\"X");
  EXPECT_EQ(back->seed, std::optional<uint64_t>(42));
}

TEST(FaultInjectorTest, ConcurrentDecideAndSet) {
  FaultInjector faults;
  std::atomic<bool> done{false};
  std::thread setter([&] {
    for (int i = 0; i < 200; ++i) {
      EXPECT_TRUE(faults.SetRule(Rule("BatchMeterUsage", "", 0.1, 0.1, 0.5, 0, i)).ok());
      if (i % 10 == 0) faults.Clear();
    }
    done = true;
  });
  while (!done) {
    FaultDecision d = faults.Decide("BatchMeterUsage", "k", "a", 0);
    faults.UnprocessedMask(d, 4);
  }
  setter.join();
}

TEST(DelayQueueTest, RunsWorkAfterTheDelayInDeadlineOrder) {
  DelayQueue queue;
  std::mutex mu;
  std::vector<int> order;
  auto start = std::chrono::steady_clock::now();
  std::atomic<int64_t> first_ms{-1};
  queue.RunAfter(80, [&] {
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(2);
  });
  queue.RunAfter(30, [&] {
    first_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count();
    std::lock_guard<std::mutex> lock(mu);
    order.push_back(1);
  });
  EXPECT_EQ(queue.pending(), 2u);
  for (int i = 0; i < 500 && queue.pending() > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // pending() drops before the work has run: give the last one a moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_GE(first_ms.load(), 30);
}

TEST(DelayQueueTest, ZeroDelayRunsNow) {
  DelayQueue queue;
  bool ran = false;
  queue.RunAfter(0, [&] { ran = true; });
  EXPECT_TRUE(ran);
  EXPECT_EQ(queue.pending(), 0u);
}

TEST(DelayQueueTest, StopRunsPendingWorkAndLaterWorkAtOnce) {
  int ran = 0;
  {
    DelayQueue queue;
    queue.RunAfter(60000, [&] { ++ran; });
    queue.RunAfter(30000, [&] { ++ran; });
    EXPECT_EQ(ran, 0);
    auto start = std::chrono::steady_clock::now();
    queue.Stop();
    EXPECT_EQ(ran, 2);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    queue.RunAfter(60000, [&] { ++ran; });
    EXPECT_EQ(ran, 3);
    queue.Stop();  // idempotent
  }
  {
    DelayQueue queue;
    queue.RunAfter(60000, [&] { ++ran; });
  }  // the destructor stops too
  EXPECT_EQ(ran, 4);
}

}  // namespace
}  // namespace meterd::metering
