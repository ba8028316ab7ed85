#include "store/memory_store.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

#include "store/rollup.h"
#include "store/usage_reader.h"

namespace meterd::store {

namespace {

// Writes go to `pending_*` during a transaction and are merged on commit, so a rolled-back
// group leaves no trace, as in a real database.
class MemoryBackend final : public Backend, public Transaction, public UsageReader {
 public:
  Status Begin() override {
    rollups_.Clear();
    pending_usage_.clear();
    pending_tokens_.clear();
    pending_entitlements_.clear();
    pending_runs_.clear();
    pending_reg_tokens_.clear();
    pending_reg_token_deletes_.clear();
    pending_catalog_.reset();
    pending_audit_.clear();
    pending_audit_deletes_.clear();
    return Status::Ok();
  }
  Transaction& txn() override { return *this; }
  Status Commit() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, value] : pending_usage_) {
      ledger_.emplace(LedgerPosition{value.timestamp_ms, ++last_seq_}, value);
      usage_.emplace(key, std::move(value));
    }
    for (const auto& [key, delta] : rollups_.deltas()) {
      RollupDelta& total = committed_rollups_[key];
      total.quantity += delta.quantity;
      total.records += delta.records;
    }
    for (auto& [key, value] : pending_tokens_) tokens_.emplace(key, std::move(value));
    for (auto& key : pending_entitlements_) entitlements_.insert(key);
    for (auto& [key, value] : pending_runs_) runs_[key] = std::move(value);
    for (auto& [key, value] : pending_reg_tokens_) reg_tokens_[key] = std::move(value);
    for (const auto& key : pending_reg_token_deletes_) reg_tokens_.erase(key);
    if (pending_catalog_) catalog_ = std::move(pending_catalog_);
    for (const auto& key : pending_audit_deletes_) audit_.erase(key);
    for (const auto& key : pending_audit_deletes_) audit_ids_.erase(key.second);
    for (auto& [key, value] : pending_audit_) {
      audit_ids_.insert(key.second);
      audit_.emplace(key, std::move(value));
    }
    return Begin();
  }
  void Rollback() override { (void)Begin(); }
  Result<int64_t> CountUsageRows() override {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(usage_.size());
  }
  AuditReader& audit_reader() override { return audit_reader_; }

  Result<std::optional<ExistingUsage>> InsertUsageIfAbsent(const UsageRow& row) override {
    auto existing = FindUsage(row.dedup_key);
    if (!existing.ok() || existing->has_value()) return existing;
    pending_usage_.emplace(row.dedup_key, row);
    rollups_.Add(row);
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

  Status OpenRunIfAbsent(const MeteredRun& run) override {
    auto key = std::make_pair(run.workload_id, run.product_code);
    if (Lookup(pending_runs_, runs_, key) == nullptr) pending_runs_[key] = {run, -1};
    return Status::Ok();
  }
  Result<std::vector<MeteredRun>> ListOpenRuns() override {
    std::map<std::pair<std::string, std::string>, RunState> merged = runs_;
    for (const auto& [key, value] : pending_runs_) merged[key] = value;
    std::vector<MeteredRun> out;
    for (const auto& [key, value] : merged) {
      if (value.stopped_ms < 0) out.push_back(value.run);
    }
    return out;
  }
  Status StopRun(const std::string& workload, const std::string& product,
                 int64_t stopped_ms) override {
    auto key = std::make_pair(workload, product);
    const RunState* state = Lookup(pending_runs_, runs_, key);
    if (state != nullptr && state->stopped_ms < 0) pending_runs_[key] = {state->run, stopped_ms};
    return Status::Ok();
  }
  Result<std::optional<RegistrationTokenRow>> FindRegistrationToken(
      const std::string& token) override {
    if (pending_reg_token_deletes_.count(token)) return std::optional<RegistrationTokenRow>();
    const RegistrationTokenRow* row = Lookup(pending_reg_tokens_, reg_tokens_, token);
    return row ? std::optional<RegistrationTokenRow>(*row) : std::nullopt;
  }
  Status PutRegistrationToken(const RegistrationTokenRow& row) override {
    if (FindRegistrationToken(row.token)->has_value()) return Status::Ok();
    pending_reg_token_deletes_.erase(row.token);
    pending_reg_tokens_[row.token] = row;
    return Status::Ok();
  }
  Result<std::vector<RegistrationTokenRow>> ListRegistrationTokens() override {
    std::map<std::string, RegistrationTokenRow> merged = reg_tokens_;
    for (const auto& key : pending_reg_token_deletes_) merged.erase(key);
    for (const auto& [key, value] : pending_reg_tokens_) merged[key] = value;
    std::vector<RegistrationTokenRow> out;
    out.reserve(merged.size());
    for (auto& [key, value] : merged) out.push_back(std::move(value));
    std::stable_sort(out.begin(), out.end(),
                     [](const auto& a, const auto& b) { return a.issued_ms < b.issued_ms; });
    return out;
  }
  Result<bool> DeleteRegistrationToken(const std::string& token) override {
    if (!FindRegistrationToken(token)->has_value()) return false;
    pending_reg_tokens_.erase(token);
    pending_reg_token_deletes_.insert(token);
    return true;
  }
  Result<std::optional<CatalogVersion>> LatestCatalog() override {
    if (pending_catalog_) return std::optional<CatalogVersion>(*pending_catalog_);
    if (catalog_) return std::optional<CatalogVersion>(*catalog_);
    return std::optional<CatalogVersion>();
  }
  Status PutCatalog(const CatalogVersion& version) override {
    auto latest = LatestCatalog();
    int64_t expected = latest->has_value() ? (*latest)->version + 1 : 1;
    if (version.version != expected) {
      return Status(StatusCode::kIoError, "catalog version conflict");
    }
    pending_catalog_ = std::make_unique<CatalogVersion>(version);
    return Status::Ok();
  }

  // Audit trail.
  Status PutAuditEvent(const AuditEventRow& row) override {
    AuditKey key{row.event_time_ms, row.event_id};
    if (audit_ids_.count(row.event_id) > 0 || pending_audit_.count(key) > 0) {
      return Status::Ok();
    }
    pending_audit_.emplace(key, row);
    return Status::Ok();
  }
  Result<int64_t> DeleteAuditEventsBefore(int64_t before_ms, int64_t limit) override {
    int64_t deleted = 0;
    // The writer thread is the only one that changes audit_, so reading it here needs no lock.
    for (const auto& [key, row] : audit_) {
      if (deleted >= limit || key.first >= before_ms) break;
      if (pending_audit_deletes_.insert(key).second) ++deleted;
    }
    for (auto it = pending_audit_.begin(); it != pending_audit_.end() && deleted < limit;) {
      if (it->first.first >= before_ms) break;
      it = pending_audit_.erase(it);
      ++deleted;
    }
    return deleted;
  }

  // --- UsageReader over the committed state.
  Result<UsagePage> ListUsage(const UsageFilter& filter, const std::optional<LedgerPosition>& after,
                              size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    UsagePage page;
    auto it = after ? ledger_.upper_bound(*after) : ledger_.begin();
    for (; it != ledger_.end(); ++it) {
      if (!filter.Matches(it->second)) continue;
      if (page.records.size() == limit) {
        page.more = true;
        break;
      }
      page.records.push_back(LedgerRecord{it->first, it->second});
    }
    return page;
  }
  Result<std::vector<RollupRow>> ReadRollups(const RollupQuery& q) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<RollupRow> rows;
    for (const auto& [key, total] : committed_rollups_) {
      if (key.granularity != q.granularity || key.period_ms < q.from_ms ||
          key.period_ms >= q.to_ms || key.tag_key != q.tag_key ||
          (!q.product_code.empty() && key.product_code != q.product_code) ||
          (!q.customer_account.empty() && key.customer_account != q.customer_account) ||
          (!q.dimension.empty() && key.dimension != q.dimension)) {
        continue;
      }
      rows.push_back(RollupRow{key, total.quantity, total.records});
    }
    return rows;
  }

 private:
  using AuditKey = std::pair<int64_t, std::string>;  // (event_time_ms, event_id)
  // Reads the committed events under the backend's lock.
  class MemoryAuditReader final : public AuditReader {
   public:
    explicit MemoryAuditReader(MemoryBackend* backend) : backend_(backend) {}
    Result<AuditPage> LookupAuditEvents(const AuditQuery& q) override {
      std::lock_guard<std::mutex> lock(backend_->mu_);
      AuditPage page;
      for (auto it = backend_->audit_.rbegin(); it != backend_->audit_.rend(); ++it) {
        const AuditEventRow& r = it->second;
        if (q.after && it->first >= AuditKey{q.after->event_time_ms, q.after->event_id}) continue;
        if (q.from_ms && r.event_time_ms < *q.from_ms) continue;
        if (q.to_ms && r.event_time_ms >= *q.to_ms) continue;
        if (!q.event_name.empty() && r.event_name != q.event_name) continue;
        if (!q.event_source.empty() && r.event_source != q.event_source) continue;
        if (!q.account_id.empty() && r.account_id != q.account_id) continue;
        if (!q.access_key_id.empty() && r.access_key_id != q.access_key_id) continue;
        if (!q.error_code.empty() && r.error_code != q.error_code) continue;
        if (q.errors_only && r.error_code.empty()) continue;
        if (page.events.size() == q.limit) {
          page.more = true;
          break;
        }
        page.events.push_back(r);
      }
      return page;
    }

   private:
    MemoryBackend* backend_;
  };

  struct RunState {
    MeteredRun run;
    int64_t stopped_ms = -1;
  };
  template <typename Map, typename Key>
  static const typename Map::mapped_type* Lookup(const Map& pending, const Map& committed,
                                                 const Key& key) {
    for (const Map* map : {&pending, &committed}) {
      auto it = map->find(key);
      if (it != map->end()) return &it->second;
    }
    return nullptr;
  }

  std::mutex mu_;  // guards the committed maps against readers on other threads
  std::map<std::pair<std::string, std::string>, RunState> runs_, pending_runs_;
  std::map<std::string, RegistrationTokenRow> reg_tokens_, pending_reg_tokens_;
  std::set<std::string> pending_reg_token_deletes_;
  std::unique_ptr<CatalogVersion> catalog_, pending_catalog_;
  std::map<std::string, UsageRow> usage_, pending_usage_;
  // --- Reports: the committed ledger in query order, and the rollups.
  std::map<LedgerPosition, UsageRow> ledger_;
  int64_t last_seq_ = 0;
  RollupAccumulator rollups_;  // this transaction's deltas
  std::map<RollupKey, RollupDelta> committed_rollups_;
  std::map<std::pair<std::string, std::string>, ClientTokenEntry> tokens_, pending_tokens_;
  std::set<std::pair<std::string, std::string>> entitlements_, pending_entitlements_;
  // Audit trail: committed events ordered by (time, id), guarded by mu_ for the reader.
  std::map<AuditKey, AuditEventRow> audit_, pending_audit_;
  std::set<std::string> audit_ids_;
  std::set<AuditKey> pending_audit_deletes_;
  MemoryAuditReader audit_reader_{this};
};

}  // namespace

std::unique_ptr<Backend> NewMemoryBackend() { return std::make_unique<MemoryBackend>(); }

UsageReader* MemoryBackendReader(Backend* memory_backend) {
  return static_cast<MemoryBackend*>(memory_backend);
}

}  // namespace meterd::store
