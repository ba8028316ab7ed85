#include "metering/faults.h"

#include <charconv>
#include <utility>

namespace meterd::metering {

struct FaultRuleSlot {
  FaultRule rule;
  std::mt19937_64 generator;
  FaultCounts counts;
};

namespace {

constexpr std::string_view kOperations[] = {"BatchMeterUsage", "MeterUsage", "RegisterUsage",
                                            "ResolveCustomer"};
constexpr size_t kMaxCallerLength = 128;

bool KnownOperation(std::string_view operation) {
  for (std::string_view op : kOperations) {
    if (op == operation) return true;
  }
  return false;
}

Status Invalid(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}

// A uniform double in [0, 1) from the top 53 bits: the same on every standard library, unlike
// std::uniform_real_distribution, so a seed gives the same faults everywhere.
double Uniform(std::mt19937_64& generator) {
  return static_cast<double>(generator() >> 11) * 0x1.0p-53;
}

std::vector<bool> ExpandMask(uint64_t mask_seed, double rate, size_t n) {
  std::vector<bool> mask(n);
  if (rate <= 0) return mask;
  std::mt19937_64 generator(mask_seed);
  for (size_t i = 0; i < n; ++i) mask[i] = Uniform(generator) < rate;
  return mask;
}

uint64_t CountMarked(const std::vector<bool>& mask) {
  uint64_t marked = 0;
  for (bool b : mask) marked += b ? 1 : 0;
  return marked;
}

Status CheckRate(std::string_view name, double rate) {
  if (!(rate >= 0 && rate <= 1)) {
    return Invalid(std::string(name) + " must be between 0 and 1");
  }
  return Status::Ok();
}

// The member `name`, or null when it is absent or JSON null.
const json::Value* Optional(const json::Value& body, std::string_view name) {
  const json::Value* v = body.Find(name);
  return v == nullptr || v->is_null() ? nullptr : v;
}

Status ParseRate(const json::Value& body, std::string_view name, double* out) {
  const json::Value* v = Optional(body, name);
  if (v == nullptr) return Status::Ok();
  if (!v->is_number()) return Invalid(std::string(name) + " must be a number");
  const std::string& text = v->text();
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Invalid(std::string(name) + " must be between 0 and 1");
  }
  return CheckRate(name, *out);
}

void AppendDouble(std::string* out, double d) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  out->append(buf, ec == std::errc() ? end : buf);
}

}  // namespace

Status ValidateFaultRule(const FaultRule& rule) {
  if (!KnownOperation(rule.operation)) {
    return Invalid("unknown operation \"" + rule.operation +
                   "\"; expected BatchMeterUsage, MeterUsage, RegisterUsage or ResolveCustomer");
  }
  if (rule.caller.size() > kMaxCallerLength) {
    return Invalid("caller must be an access key id or a 12-digit account id");
  }
  for (char c : rule.caller) {
    // Key ids and account ids are printable ASCII; anything else can never match a caller.
    if (c <= ' ' || c > '~') {
      return Invalid("caller must be an access key id or a 12-digit account id");
    }
  }
  METERD_RETURN_IF_ERROR(CheckRate("throttleRate", rule.throttle_rate));
  METERD_RETURN_IF_ERROR(CheckRate("internalErrorRate", rule.internal_error_rate));
  METERD_RETURN_IF_ERROR(CheckRate("unprocessedRate", rule.unprocessed_rate));
  // A little slack, so that e.g. 0.7 + 0.3 is not refused for its rounding.
  if (rule.throttle_rate + rule.internal_error_rate > 1 + 1e-9) {
    return Invalid("throttleRate + internalErrorRate must not exceed 1");
  }
  if (rule.latency_ms < 0 || rule.latency_ms > kMaxFaultLatencyMs) {
    return Invalid("latencyMs must be an integer between 0 and " +
                   std::to_string(kMaxFaultLatencyMs));
  }
  return Status::Ok();
}

Status FaultInjector::SetRule(FaultRule rule) {
  METERD_RETURN_IF_ERROR(ValidateFaultRule(rule));
  auto slot = std::make_shared<FaultRuleSlot>();
  slot->generator.seed(rule.seed.has_value() ? *rule.seed : std::random_device()());
  slot->rule = std::move(rule);
  std::lock_guard<std::mutex> lock(mu_);
  const std::string& operation = slot->rule.operation;
  const std::string& caller = slot->rule.caller;
  rules_[operation][caller] = std::move(slot);
  UpdateCountLocked();
  return Status::Ok();
}

void FaultInjector::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
  UpdateCountLocked();
}

bool FaultInjector::ClearRule(std::string_view operation, std::string_view caller) {
  std::lock_guard<std::mutex> lock(mu_);
  auto op = rules_.find(operation);
  if (op == rules_.end()) return false;
  auto it = op->second.find(caller);
  if (it == op->second.end()) return false;
  op->second.erase(it);
  if (op->second.empty()) rules_.erase(op);
  UpdateCountLocked();
  return true;
}

std::vector<FaultRuleState> FaultInjector::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<FaultRuleState> out;
  for (const auto& [operation, callers] : rules_) {
    for (const auto& [caller, slot] : callers) out.push_back({slot->rule, slot->counts});
  }
  return out;
}

void FaultInjector::UpdateCountLocked() {
  size_t n = 0;
  for (const auto& [operation, callers] : rules_) n += callers.size();
  rule_count_.store(n, std::memory_order_release);
}

const std::shared_ptr<FaultRuleSlot>* FaultInjector::FindLocked(std::string_view operation,
                                                                std::string_view access_key_id,
                                                                std::string_view account) const {
  auto op = rules_.find(operation);
  if (op == rules_.end()) return nullptr;
  const CallerMap& callers = op->second;
  // Most specific first: the key, then its account, then everyone ("").
  for (std::string_view caller : {access_key_id, account}) {
    if (caller.empty()) continue;
    if (auto it = callers.find(caller); it != callers.end()) return &it->second;
  }
  auto everyone = callers.find(std::string_view());
  return everyone == callers.end() ? nullptr : &everyone->second;
}

FaultDecision FaultInjector::Decide(std::string_view operation, std::string_view access_key_id,
                                    std::string_view account, size_t record_count) {
  FaultDecision decision;
  if (rule_count_.load(std::memory_order_acquire) == 0) return decision;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const std::shared_ptr<FaultRuleSlot>* found = FindLocked(operation, access_key_id, account);
    if (found == nullptr) return decision;
    FaultRuleSlot* slot = found->get();
    const FaultRule& rule = slot->rule;
    decision.matched = true;
    decision.latency_ms = rule.latency_ms;
    ++slot->counts.calls;
    if (rule.latency_ms > 0) ++slot->counts.delayed;
    double u = Uniform(slot->generator);
    if (u < rule.throttle_rate) {
      decision.action = FaultAction::kThrottle;
      ++slot->counts.throttled;
    } else if (u < rule.throttle_rate + rule.internal_error_rate) {
      decision.action = FaultAction::kInternalError;
      ++slot->counts.internal_errors;
    } else if (rule.operation == "BatchMeterUsage") {
      decision.has_mask = true;
      decision.mask_seed = slot->generator();
      decision.unprocessed_rate = rule.unprocessed_rate;
    }
    // Only a mask needs the rule after this call (for its count of unprocessed records).
    if (decision.has_mask) decision.slot = *found;
  }
  if (decision.has_mask && record_count > 0) {
    decision.unprocessed = UnprocessedMask(decision, record_count);
  }
  return decision;
}

std::vector<bool> FaultInjector::UnprocessedMask(const FaultDecision& decision, size_t n) {
  if (!decision.has_mask) return {};
  std::vector<bool> mask = ExpandMask(decision.mask_seed, decision.unprocessed_rate, n);
  if (uint64_t marked = CountMarked(mask); marked > 0 && decision.slot != nullptr) {
    // A rule replaced or cleared since the decision keeps the count to itself.
    std::lock_guard<std::mutex> lock(mu_);
    decision.slot->counts.unprocessed_records += marked;
  }
  return mask;
}

Result<FaultRule> ParseFaultRule(const json::Value& body) {
  if (!body.is_object()) return Invalid("the body must be a JSON object");
  FaultRule rule;
  const json::Value* operation = body.Find("operation");
  if (operation == nullptr || operation->is_null()) return Invalid("operation is required");
  if (!operation->is_string()) return Invalid("operation must be a string");
  rule.operation = operation->text();
  if (!KnownOperation(rule.operation)) return ValidateFaultRule(rule);
  if (const json::Value* caller = Optional(body, "caller")) {
    if (!caller->is_string()) return Invalid("caller must be a string");
    rule.caller = caller->text();
  }
  METERD_RETURN_IF_ERROR(ParseRate(body, "throttleRate", &rule.throttle_rate));
  METERD_RETURN_IF_ERROR(ParseRate(body, "internalErrorRate", &rule.internal_error_rate));
  METERD_RETURN_IF_ERROR(ParseRate(body, "unprocessedRate", &rule.unprocessed_rate));
  if (const json::Value* latency = Optional(body, "latencyMs")) {
    if (!latency->is_number() || !latency->GetInt64(&rule.latency_ms) || rule.latency_ms < 0 ||
        rule.latency_ms > kMaxFaultLatencyMs) {
      return Invalid("latencyMs must be an integer between 0 and " +
                     std::to_string(kMaxFaultLatencyMs));
    }
  }
  if (const json::Value* seed = Optional(body, "seed")) {
    // uint64 in full: GetInt64 would stop at 2^63 - 1.
    const std::string& text = seed->text();
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!seed->is_number() || ec != std::errc() || end != text.data() + text.size()) {
      return Invalid("seed must be an integer between 0 and 18446744073709551615");
    }
    rule.seed = value;
  }
  METERD_RETURN_IF_ERROR(ValidateFaultRule(rule));
  return rule;
}

std::string FaultRulesJson(const std::vector<FaultRuleState>& rules) {
  std::string out = "{\"rules\":[";
  bool first = true;
  for (const auto& [rule, counts] : rules) {
    if (!first) out += ',';
    first = false;
    out += "{\"operation\":";
    json::AppendQuoted(&out, rule.operation);
    if (!rule.caller.empty()) {
      out += ",\"caller\":";
      json::AppendQuoted(&out, rule.caller);
    }
    out += ",\"throttleRate\":";
    AppendDouble(&out, rule.throttle_rate);
    out += ",\"internalErrorRate\":";
    AppendDouble(&out, rule.internal_error_rate);
    out += ",\"unprocessedRate\":";
    AppendDouble(&out, rule.unprocessed_rate);
    out += ",\"latencyMs\":" + std::to_string(rule.latency_ms);
    if (rule.seed.has_value()) out += ",\"seed\":" + std::to_string(*rule.seed);
    out += ",\"counts\":{\"calls\":" + std::to_string(counts.calls) +
           ",\"throttled\":" + std::to_string(counts.throttled) +
           ",\"internalErrors\":" + std::to_string(counts.internal_errors) +
           ",\"unprocessedRecords\":" + std::to_string(counts.unprocessed_records) +
           ",\"delayed\":" + std::to_string(counts.delayed) + "}}";
  }
  out += "]}";
  return out;
}

void DelayQueue::RunAfter(int64_t delay_ms, std::function<void()> work) {
  if (delay_ms > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopped_) {
      if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
      queue_.emplace(std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms),
                     std::move(work));
      cv_.notify_one();
      return;
    }
  }
  work();
}

void DelayQueue::Stop() {
  std::thread thread;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    thread = std::move(thread_);
  }
  cv_.notify_all();
  if (thread.joinable()) thread.join();
  // The timer thread is gone and RunAfter no longer queues: what is left is ours alone.
  std::multimap<TimePoint, std::function<void()>> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(queue_);
  }
  for (auto& [deadline, work] : left) work();
}

size_t DelayQueue::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void DelayQueue::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopped_) {
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto next = queue_.begin();
    if (next->first > std::chrono::steady_clock::now()) {
      cv_.wait_until(lock, next->first);
      continue;
    }
    std::function<void()> work = std::move(next->second);
    queue_.erase(next);
    // Unlocked, so that work may queue more work and RunAfter never waits for a Responder.
    lock.unlock();
    work();
    lock.lock();
  }
}

}  // namespace meterd::metering
