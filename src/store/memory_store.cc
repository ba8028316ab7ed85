#include "store/memory_store.h"

#include <map>
#include <mutex>
#include <set>
#include <utility>

namespace meterd::store {

namespace {

// Writes go to `pending_*` during a transaction and are merged on commit, so a rolled-back
// group leaves no trace, as in a real database.
class MemoryBackend final : public Backend, public Transaction {
 public:
  Status Begin() override {
    pending_usage_.clear();
    pending_tokens_.clear();
    pending_entitlements_.clear();
    return Status::Ok();
  }
  Transaction& txn() override { return *this; }
  Status Commit() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, value] : pending_usage_) usage_.emplace(key, std::move(value));
    for (auto& [key, value] : pending_tokens_) tokens_.emplace(key, std::move(value));
    for (auto& key : pending_entitlements_) entitlements_.insert(key);
    pending_usage_.clear();
    pending_tokens_.clear();
    pending_entitlements_.clear();
    return Status::Ok();
  }
  void Rollback() override { (void)Begin(); }
  Result<int64_t> CountUsageRows() override {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(usage_.size());
  }

  Result<std::optional<ExistingUsage>> InsertUsageIfAbsent(const UsageRow& row) override {
    auto existing = FindUsage(row.dedup_key);
    if (!existing.ok() || existing->has_value()) return existing;
    pending_usage_.emplace(row.dedup_key, row);
    return std::optional<ExistingUsage>();
  }
  Result<std::optional<ExistingUsage>> FindUsage(const std::string& dedup_key) override {
    for (auto* map : {&pending_usage_, &usage_}) {
      auto it = map->find(dedup_key);
      if (it != map->end()) {
        return std::optional<ExistingUsage>(
            ExistingUsage{it->second.record_id, it->second.quantity});
      }
    }
    return std::optional<ExistingUsage>();
  }
  Result<std::optional<ClientTokenEntry>> FindClientToken(const std::string& caller,
                                                          const std::string& token) override {
    auto key = std::make_pair(caller, token);
    for (auto* map : {&pending_tokens_, &tokens_}) {
      auto it = map->find(key);
      if (it != map->end()) return std::optional<ClientTokenEntry>(it->second);
    }
    return std::optional<ClientTokenEntry>();
  }
  Status PutClientToken(const ClientTokenEntry& entry) override {
    pending_tokens_.emplace(std::make_pair(entry.caller, entry.token), entry);
    return Status::Ok();
  }
  Result<bool> HasEntitlement(const std::string& workload, const std::string& product) override {
    auto key = std::make_pair(workload, product);
    return pending_entitlements_.count(key) > 0 || entitlements_.count(key) > 0;
  }
  Status PutEntitlement(const std::string& workload, const std::string& product,
                        int64_t /*now_ms*/) override {
    pending_entitlements_.insert(std::make_pair(workload, product));
    return Status::Ok();
  }

 private:
  std::mutex mu_;  // guards the committed maps against CountUsageRows from other threads
  std::map<std::string, UsageRow> usage_, pending_usage_;
  std::map<std::pair<std::string, std::string>, ClientTokenEntry> tokens_, pending_tokens_;
  std::set<std::pair<std::string, std::string>> entitlements_, pending_entitlements_;
};

}  // namespace

std::unique_ptr<Backend> NewMemoryBackend() { return std::make_unique<MemoryBackend>(); }

}  // namespace meterd::store
