// Fault injection (docs/CONTROL-PLANE.md, "Fault injection"): rules set through the admin API
// make metering calls fail, lose records or answer late, so that sellers can test their retry
// code against the errors AWS really returns. Faults live in memory only.
//
// FaultInjector decides per call; DelayQueue delays answers without holding an HTTP event loop.
//
// Draw sequence (what a seed makes repeatable): every call matched by a rule takes one draw from
// the rule's generator (std::mt19937_64 seeded with `seed`) for its outcome. A BatchMeterUsage
// call that is not failed takes exactly one more draw: the seed of its record mask. The mask is
// then expanded from that per-call seed, so the rule's sequence does not depend on how many
// records a call carries, nor on when the mask is computed (the handler decides before it has
// decoded the body, see UnprocessedMask). The same seed and the same sequence of matched calls
// therefore give the same outcomes and the same masks.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "json/json.h"

namespace meterd::metering {

inline constexpr int64_t kMaxFaultLatencyMs = 60000;

struct FaultRule {
  std::string operation;           // BatchMeterUsage, MeterUsage, RegisterUsage or ResolveCustomer
  std::string caller;              // "": everyone; else an access key id or a 12-digit account id
  double throttle_rate = 0;        // [0, 1]
  double internal_error_rate = 0;  // [0, 1]; throttle_rate + internal_error_rate <= 1
  double unprocessed_rate = 0;     // [0, 1]; per record, BatchMeterUsage only
  int64_t latency_ms = 0;          // [0, kMaxFaultLatencyMs]; delays every matched answer
  std::optional<uint64_t> seed;    // absent: a random seed, not reported by List
};

// What the injector did under one rule since the rule was set.
struct FaultCounts {
  uint64_t calls = 0;                // calls matched
  uint64_t throttled = 0;            // answered ThrottlingException
  uint64_t internal_errors = 0;      // answered InternalServiceErrorException
  uint64_t unprocessed_records = 0;  // records put into UnprocessedRecords
  uint64_t delayed = 0;              // answers delayed by latency_ms
};

struct FaultRuleState {
  FaultRule rule;
  FaultCounts counts;
};

enum class FaultAction { kNone, kThrottle, kInternalError };

struct FaultRuleSlot;  // internal: one rule with its generator and counts

struct FaultDecision {
  bool matched = false;  // a rule applied to this call
  FaultAction action = FaultAction::kNone;
  int64_t latency_ms = 0;
  // BatchMeterUsage, action kNone, record_count given to Decide: true = answer the record as
  // unprocessed. Size record_count then; empty otherwise.
  std::vector<bool> unprocessed;

  // For UnprocessedMask: the per-call mask seed (see the file comment) and the matched rule.
  bool has_mask = false;
  uint64_t mask_seed = 0;
  double unprocessed_rate = 0;
  std::shared_ptr<FaultRuleSlot> slot;
};

// Checks a rule as SetRule does: kInvalidArgument naming the offending field.
Status ValidateFaultRule(const FaultRule& rule);

// Holds the rules and decides each call. Thread-safe: one mutex guards rules, generators and
// counts; Decide takes no lock (and allocates nothing) while no rule is set.
class FaultInjector {
 public:
  FaultInjector() = default;
  FaultInjector(const FaultInjector&) = delete;
  FaultInjector& operator=(const FaultInjector&) = delete;

  // Sets the rule of (operation, caller), replacing an existing one: its generator restarts from
  // the new seed and its counts from zero. kInvalidArgument for an invalid rule.
  Status SetRule(FaultRule rule);
  // Removes every rule.
  void Clear();
  // Removes the rule of (operation, caller); false if there was none.
  bool ClearRule(std::string_view operation, std::string_view caller);
  // The rules with their counts, by operation and then caller ("" = everyone first).
  std::vector<FaultRuleState> List() const;

  // Decides one call of `operation` by the caller (its access key id and account). The rule for
  // the access key id wins over the rule for the account, which wins over the rule for everyone;
  // no rule: a no-op decision. `record_count` > 0 fills `unprocessed` at once; a caller that does
  // not know the count yet passes 0 and calls UnprocessedMask later (never both for one call).
  FaultDecision Decide(std::string_view operation, std::string_view access_key_id,
                       std::string_view account, size_t record_count);

  // The record mask of a BatchMeterUsage call decided with record_count 0, for its `n` records:
  // size n, or empty when the decision has no mask. Counts the marked records under the rule.
  std::vector<bool> UnprocessedMask(const FaultDecision& decision, size_t n);

 private:
  using CallerMap = std::map<std::string, std::shared_ptr<FaultRuleSlot>, std::less<>>;

  const std::shared_ptr<FaultRuleSlot>* FindLocked(std::string_view operation,
                                                   std::string_view access_key_id,
                                                   std::string_view account) const;
  void UpdateCountLocked();

  mutable std::mutex mu_;
  std::map<std::string, CallerMap, std::less<>> rules_;  // operation -> caller -> rule
  // Number of rules; read without the lock so that Decide's common case costs one load.
  std::atomic<size_t> rule_count_{0};
};

// The body of POST /v1/faults. Unknown members are ignored; null stands for an absent optional
// member. kInvalidArgument for wrong types, unknown operations and values out of range.
Result<FaultRule> ParseFaultRule(const json::Value& body);

// The body of GET /v1/faults: {"rules":[{...,"counts":{...}}]}, field names as in the docs.
std::string FaultRulesJson(const std::vector<FaultRuleState>& rules);

// Runs work after a delay on one timer thread, so that a delayed answer holds no HTTP event
// loop. Delays are real time (steady clock), not the business clock: a test clock that is frozen
// or jumps must not hold or release answers. Thread-safe. The thread starts with the first
// delayed work. Work must be cheap and must not block (e.g. a Responder): it runs on the timer
// thread, or on the thread calling Stop for work still pending then.
class DelayQueue {
 public:
  DelayQueue() = default;
  ~DelayQueue() { Stop(); }
  DelayQueue(const DelayQueue&) = delete;
  DelayQueue& operator=(const DelayQueue&) = delete;

  // Runs `work` once, `delay_ms` from now. A delay <= 0, or a queue already stopped, runs it
  // now on the calling thread: work is never dropped, so no request is left unanswered.
  void RunAfter(int64_t delay_ms, std::function<void()> work);

  // Stops the timer thread and runs the pending work now, earliest deadline first. Idempotent.
  void Stop();

  size_t pending() const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  void Loop();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // By deadline; a multimap keeps equal deadlines in the order they were queued.
  std::multimap<TimePoint, std::function<void()>> queue_;
  bool stopped_ = false;
  std::thread thread_;
};

}  // namespace meterd::metering
