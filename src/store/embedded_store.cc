#include "store/embedded_store.h"

#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "common/time_util.h"
#include "store/ledger_codec.h"
#include "store/ledger_db.h"
#include "store/rollup.h"
#include "store/sqlite_migration.h"
#include "store/usage_reader.h"

namespace meterd::store {

namespace {

using ledger::Family;

Status Corrupt(const std::string& what) {
  return Status(StatusCode::kCorruption, "embedded store: undecodable " + what);
}

std::string_view View(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// What readers see: the state of the last synced group (a RocksDB snapshot taken right after that
// group's write), never a group that is written but not yet durable. A reader holds the
// database it reads (a shared_ptr), so that a reopen after a failed write waits for it.
// Thread-safe.
struct ReadState {
  std::shared_ptr<ledger::LedgerDb> db;
  std::shared_ptr<const rocksdb::Snapshot> snapshot;
};

class DurableView {
 public:
  Result<ReadState> Current() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.db == nullptr) {
      return Status(StatusCode::kIoError,
                    "embedded store: unavailable (reopening after a failed write)");
    }
    return state_;
  }
  // Takes ownership of `snapshot`, a snapshot of `db` (released when no reader holds it).
  void Publish(const std::shared_ptr<ledger::LedgerDb>& db, const rocksdb::Snapshot* snapshot) {
    ReadState next{
        db, std::shared_ptr<const rocksdb::Snapshot>(snapshot, [db](const rocksdb::Snapshot* snap) {
          db->db()->ReleaseSnapshot(snap);
        })};
    std::lock_guard<std::mutex> lock(mu_);
    std::swap(state_, next);
  }
  void Clear() {
    ReadState old;
    std::lock_guard<std::mutex> lock(mu_);
    std::swap(state_, old);
  }

 private:
  mutable std::mutex mu_;
  ReadState state_;
};

// --- the audit trail's reader ------------------------------------------------------------------
class EmbeddedAuditReader final : public AuditReader {
 public:
  explicit EmbeddedAuditReader(const DurableView* view) : view_(view) {}

  // Newest first: a reverse scan of the (event_time_ms, event_id) keys from the upper bound of
  // the query, the other filters applied to each event (the trail keeps one order only: every
  // further index would cost a write per event, docs/STORAGE.md).
  Result<AuditPage> LookupAuditEvents(const AuditQuery& q) override {
    auto state = view_->Current();
    if (!state.ok()) return state.status();
    rocksdb::ReadOptions ro;
    ro.snapshot = state->snapshot.get();
    ro.fill_cache = false;  // a lookup scans; the cache is the writer's
    const ledger::LedgerDb& db = *state->db;
    std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(ro, db.family(ledger::kAudit)));
    std::string upper;
    if (q.after) {
      upper = ledger::AuditKey(q.after->event_time_ms, q.after->event_id);
    } else if (q.to_ms) {
      upper = ledger::AuditKey(*q.to_ms, "");
    }
    if (upper.empty()) {
      it->SeekToLast();
    } else {
      it->SeekForPrev(upper);
      // Strictly before the bound: the cursor's own event, or an event at to_ms, is not in it.
      if (it->Valid() && View(it->key()) == upper) it->Prev();
    }
    AuditPage page;
    for (; it->Valid(); it->Prev()) {
      AuditEventRow row;
      if (!ledger::ParseAuditKey(View(it->key()), &row.event_time_ms, &row.event_id)) {
        return Corrupt("audit key");
      }
      if (q.to_ms && row.event_time_ms >= *q.to_ms) continue;
      if (q.from_ms && row.event_time_ms < *q.from_ms) break;
      if (!ledger::DecodeAuditEvent(View(it->value()), &row)) return Corrupt("audit event");
      if (!q.event_name.empty() && row.event_name != q.event_name) continue;
      if (!q.event_source.empty() && row.event_source != q.event_source) continue;
      if (!q.account_id.empty() && row.account_id != q.account_id) continue;
      if (!q.access_key_id.empty() && row.access_key_id != q.access_key_id) continue;
      if (!q.error_code.empty() && row.error_code != q.error_code) continue;
      if (q.errors_only && row.error_code.empty()) continue;
      if (page.events.size() == q.limit) {
        page.more = true;
        break;
      }
      page.events.push_back(std::move(row));
    }
    METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "audit lookup"));
    return page;
  }

 private:
  const DurableView* view_;
};

// --- the backend -------------------------------------------------------------------------------
class EmbeddedBackend final : public Backend, public Transaction {
 public:
  explicit EmbeddedBackend(std::string path) : path_(std::move(path)), audit_reader_(&view_) {}

  ~EmbeddedBackend() override { (void)CloseDb(); }

  // Opens the database and reads its counters; also the recovery after a failed write.
  Status OpenDb() {
    auto opened = ledger::LedgerDb::Open(path_, ledger::OpenMode::kReadWrite);
    if (!opened.ok()) return opened.status();
    db_ = std::shared_ptr<ledger::LedgerDb>(std::move(opened).value());
    Status st = Load();
    if (!st.ok()) (void)CloseDb();
    return st;
  }

  // Closes the database once no reader or sync uses it (readers hold it for one lookup).
  Status CloseDb() {
    std::unique_lock<std::shared_mutex> exclusive(db_mu_);  // no sync in progress
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      if (unsynced_snapshot_ != nullptr) db_->db()->ReleaseSnapshot(unsynced_snapshot_);
      unsynced_snapshot_ = nullptr;
    }
    view_.Clear();
    std::weak_ptr<ledger::LedgerDb> old = db_;
    db_.reset();
    for (int waited_ms = 0; !old.expired(); ++waited_ms) {
      if (waited_ms == 10000) {
        return Status(StatusCode::kIoError, "embedded store: a reader holds the database");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return Status::Ok();
  }

  Status Load() {
    int64_t schema = 0;
    METERD_RETURN_IF_ERROR(ReadMeta(ledger::kMetaSchema, &schema));
    if (schema > ledger::kLayoutVersion) {
      return Status(StatusCode::kCorruption, "the data dir was written by a newer meterd (layout " +
                                                 std::to_string(schema) + ")");
    }
    int64_t next_seq = 1, rows = 0;
    METERD_RETURN_IF_ERROR(ReadMeta(ledger::kMetaNextSeq, &next_seq));
    METERD_RETURN_IF_ERROR(ReadMeta(ledger::kMetaRows, &rows));
    next_seq_ = std::max<int64_t>(next_seq, 1);
    rows_ = rows;
    committed_rows_ = rows;
    if (schema == 1) METERD_RETURN_IF_ERROR(UpgradeToLayout2());
    view_.Publish(db_, db_->db()->GetSnapshot());
    if (schema < ledger::kLayoutVersion) {
      // Synced: it also makes the upgrade's writes before it durable.
      rocksdb::WriteOptions wo;
      wo.sync = true;
      METERD_RETURN_IF_ERROR(
          ledger::FromRocks(db_->db()->Put(wo, Meta(), ledger::kMetaSchema,
                                           ledger::FixedValue(ledger::kLayoutVersion)),
                            "write the layout version"));
    }
    return Status::Ok();
  }

  // Layout 1 -> 2: each dedup entry is keyed by (hour, digest) and keeps only its row's seq, and
  // each account index entry is keyed by day first. Idempotent, so a crash mid-way is finished
  // by the next open (the version is written after it): an entry already rewritten has a layout
  // 2 key, which no layout 1 key parses as.
  Status UpgradeToLayout2() {
    UpgradeBatch batch(db_.get());
    std::string account, dedup_key;
    std::unique_ptr<rocksdb::Iterator> it(
        db_->db()->NewIterator(rocksdb::ReadOptions(), Cf(ledger::kDedup)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != ledger::kLayout1DedupKeySize) continue;
      int64_t seq = 0;
      if (!ledger::DecodeLayout1DedupEntry(View(it->value()), &dedup_key, &seq)) {
        return Corrupt("layout 1 dedup entry");
      }
      METERD_RETURN_IF_ERROR(batch.Move(ledger::kDedup, View(it->key()),
                                        ledger::DedupKey(dedup_key),
                                        ledger::EncodeDedupValue(seq)));
    }
    METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "upgrade scan"));
    it.reset(db_->db()->NewIterator(rocksdb::ReadOptions(), Cf(ledger::kUsageByAccount)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      int64_t ts = 0, seq = 0;
      if (ledger::ParseUsageByAccountKey(View(it->key()), &account, &ts, &seq)) continue;
      if (!ledger::ParseLayout1UsageByAccountKey(View(it->key()), &account, &ts, &seq)) {
        return Corrupt("layout 1 account index key");
      }
      METERD_RETURN_IF_ERROR(batch.Move(ledger::kUsageByAccount, View(it->key()),
                                        ledger::UsageByAccountKey(account, ts, seq), ""));
    }
    METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "upgrade scan"));
    return batch.Flush();
  }
  // The upgrade's writes, in batches of a bounded size.
  class UpgradeBatch {
   public:
    explicit UpgradeBatch(ledger::LedgerDb* db) : db_(db) {}
    Status Move(Family f, std::string_view old_key, const std::string& key,
                const std::string& value) {
      METERD_RETURN_IF_ERROR(Rocks(batch_.Put(db_->family(f), key, value), "upgrade"));
      METERD_RETURN_IF_ERROR(
          Rocks(batch_.Delete(db_->family(f), rocksdb::Slice(old_key.data(), old_key.size())),
                "upgrade"));
      return batch_.Count() >= 20000 ? Flush() : Status::Ok();
    }
    Status Flush() {
      if (batch_.Count() == 0) return Status::Ok();
      METERD_RETURN_IF_ERROR(Rocks(db_->db()->Write(rocksdb::WriteOptions(), &batch_), "upgrade"));
      batch_.Clear();
      return Status::Ok();
    }

   private:
    ledger::LedgerDb* db_;
    rocksdb::WriteBatch batch_;
  };

  // Backend
  Status Begin() override {
    batch_.Clear();
    overlay_.clear();
    group_dedup_.clear();
    rollups_.Clear();
    pending_seq_ = next_seq_;
    pending_rows_ = committed_rows_;
    if (sync_failed_.exchange(false)) needs_reopen_ = true;
    if (needs_reopen_) {
      // A write or sync failed (a full disk, an I/O error). RocksDB's WAL writer is unusable
      // after an error, so the database is closed and opened again: recovery replays the WAL up
      // to the failed write and starts a new one. While the cause lasts the open fails, and so
      // does every group, with that error.
      METERD_RETURN_IF_ERROR(CloseDb());
      METERD_RETURN_IF_ERROR(OpenDb());
      needs_reopen_ = false;
      pending_seq_ = next_seq_;
      pending_rows_ = committed_rows_;
    }
    return Status::Ok();
  }
  Transaction& txn() override { return *this; }
  AuditReader& audit_reader() override { return audit_reader_; }

  Status Commit() override {
    for (const auto& [key, delta] : rollups_.deltas()) {
      METERD_RETURN_IF_ERROR(Rocks(batch_.Merge(Cf(ledger::kRollups), ledger::RollupKeyBytes(key),
                                                ledger::EncodeRollupDelta(delta)),
                                   "rollup"));
    }
    rollups_.Clear();
    if (pending_seq_ != next_seq_) {
      METERD_RETURN_IF_ERROR(
          Rocks(batch_.Put(Meta(), ledger::kMetaNextSeq, ledger::FixedValue(pending_seq_)), "seq"));
      METERD_RETURN_IF_ERROR(
          Rocks(batch_.Put(Meta(), ledger::kMetaRows, ledger::FixedValue(pending_rows_)), "rows"));
    }
    overlay_.clear();
    group_dedup_.clear();
    if (batch_.Count() == 0) return Status::Ok();
    METERD_RETURN_IF_ERROR(CheckFreeSpace(batch_.GetDataSize()));
    // Written and visible to the next groups, not yet durable: SyncCommitted (the store's syncer
    // thread) fsyncs the WAL before any unit of the group is answered.
    rocksdb::Status s = db_->db()->Write(rocksdb::WriteOptions(), &batch_);
    if (!s.ok()) {
      needs_reopen_ = true;
      return ledger::FromRocks(s, "commit");
    }
    next_seq_ = pending_seq_;
    batch_.Clear();
    // What readers may see once this group is synced.
    std::lock_guard<std::mutex> lock(sync_mu_);
    if (unsynced_snapshot_ != nullptr) db_->db()->ReleaseSnapshot(unsynced_snapshot_);
    unsynced_snapshot_ = db_->db()->GetSnapshot();
    unsynced_rows_ = pending_rows_;
    committed_rows_ = pending_rows_;
    return Status::Ok();
  }

  bool PipelinesSync() const override { return true; }

  Status SyncCommitted() override {
    // The writer closes and reopens the database only under the exclusive lock, so the database,
    // the snapshot of its last commit and this sync belong together.
    std::shared_lock<std::shared_mutex> shared(db_mu_);
    if (db_ == nullptr) {
      // A reopen after a failed write failed: nothing written since is known to be durable.
      return Status(StatusCode::kIoError, "embedded store: unavailable (reopen failed)");
    }
    const rocksdb::Snapshot* covered = nullptr;
    int64_t rows = 0;
    {
      std::lock_guard<std::mutex> lock(sync_mu_);
      covered = unsynced_snapshot_;
      rows = unsynced_rows_;
      unsynced_snapshot_ = nullptr;
    }
    // Every group committed before this call is in the WAL files SyncWAL syncs. (Groups written
    // before a reopen are durable already: the open replayed their WAL and flushed it.)
    rocksdb::Status s = db_->db()->SyncWAL();
    if (!s.ok()) {
      if (covered != nullptr) db_->db()->ReleaseSnapshot(covered);
      sync_failed_.store(true);
      return ledger::FromRocks(s, "sync");
    }
    if (covered != nullptr) {
      rows_.store(rows);
      view_.Publish(db_, covered);
    }
    return Status::Ok();
  }

  const DurableView* view() const { return &view_; }
  void Rollback() override {
    batch_.Clear();
    overlay_.clear();
    group_dedup_.clear();
    rollups_.Clear();
  }
  Result<int64_t> CountUsageRows() override { return rows_.load(); }

  // Transaction
  Result<std::optional<ExistingUsage>> InsertUsageIfAbsent(const UsageRow& r) override {
    // The digest once per record: the look-up's key is the new entry's key.
    std::string digest = ledger::DedupKey(r.dedup_key);
    auto existing = FindUsage(r.dedup_key, digest);
    if (!existing.ok() || existing->has_value()) return existing;
    const int64_t seq = pending_seq_++;
    ++pending_rows_;
    for (ledger::Entry& e : ledger::NewUsageEntries(r, seq, digest)) {
      METERD_RETURN_IF_ERROR(Rocks(batch_.Put(Cf(e.family), e.key, e.value), "usage"));
    }
    // Only the dedup entry is read back inside a group (an identical record in a later unit),
    // and its answer is the row's, which is not readable before the group is written.
    group_dedup_.emplace(std::move(digest), GroupDedup{r.dedup_key, r.record_id, r.quantity});
    rollups_.Add(r);
    return std::optional<ExistingUsage>();
  }

  Result<std::optional<ExistingUsage>> FindUsage(const std::string& dedup_key) override {
    return FindUsage(dedup_key, ledger::DedupKey(dedup_key));
  }

  // `digest` is DedupKey(dedup_key). The dedup entry names the row that took the key; the row's
  // whole dedup key is compared, so a digest collision is refused, never taken as the same.
  Result<std::optional<ExistingUsage>> FindUsage(const std::string& dedup_key,
                                                 const std::string& digest) {
    if (auto mine = group_dedup_.find(digest); mine != group_dedup_.end()) {
      if (mine->second.dedup_key != dedup_key) return DigestCollision();
      return std::optional<ExistingUsage>(
          ExistingUsage{mine->second.record_id, mine->second.quantity});
    }
    std::string value;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), Cf(ledger::kDedup), digest, &value);
    if (s.IsNotFound()) return std::optional<ExistingUsage>();
    if (!s.ok()) return ledger::FromRocks(s, "read dedup");
    int64_t seq = 0;
    if (!ledger::DecodeDedupValue(value, &seq)) return Corrupt("dedup entry");
    s = db_->db()->Get(rocksdb::ReadOptions(), Cf(ledger::kUsage), ledger::UsageKey(seq), &value);
    if (s.IsNotFound()) return Corrupt("dedup entry of a missing row " + std::to_string(seq));
    if (!s.ok()) return ledger::FromRocks(s, "read usage");
    UsageRow row;
    if (!ledger::DecodeUsageRow(value, &row)) return Corrupt("usage row " + std::to_string(seq));
    if (row.dedup_key != dedup_key) return DigestCollision();
    return std::optional<ExistingUsage>(ExistingUsage{std::move(row.record_id), row.quantity});
  }
  // Two dedup keys with one 128-bit digest: refused (retryable), never taken as the same.
  static Status DigestCollision() {
    return Status(StatusCode::kInternal, "embedded store: dedup digest collision");
  }

  Result<std::optional<ClientTokenEntry>> FindClientToken(const std::string& caller,
                                                          const std::string& token) override {
    std::string value;
    auto found = Get(ledger::kClientTokens, ledger::PairKey(caller, token), &value);
    if (!found.ok()) return found.status();
    if (!*found) return std::optional<ClientTokenEntry>();
    ClientTokenEntry e;
    e.caller = caller;
    e.token = token;
    if (!ledger::DecodeClientToken(value, &e)) return Corrupt("client token");
    return std::optional<ClientTokenEntry>(std::move(e));
  }

  Status PutClientToken(const ClientTokenEntry& e) override {
    return Put(ledger::kClientTokens, ledger::PairKey(e.caller, e.token),
               ledger::EncodeClientToken(e));
  }

  Result<bool> HasEntitlement(const std::string& workload, const std::string& product) override {
    std::string value;
    return Get(ledger::kEntitlements, ledger::PairKey(workload, product), &value);
  }

  Status PutEntitlement(const std::string& workload, const std::string& product,
                        int64_t now_ms) override {
    const std::string key = ledger::PairKey(workload, product);
    std::string value;
    auto found = Get(ledger::kEntitlements, key, &value);
    if (!found.ok()) return found.status();
    if (*found) return Status::Ok();  // the first call's time stays
    return Put(ledger::kEntitlements, key, ledger::FixedValue(now_ms));
  }

  Status OpenRunIfAbsent(const MeteredRun& run) override {
    const std::string key = ledger::PairKey(run.workload_id, run.product_code);
    std::string value;
    auto found = Get(ledger::kRuns, key, &value);
    if (!found.ok()) return found.status();
    if (*found) return Status::Ok();
    return Put(ledger::kRuns, key, ledger::EncodeRun(run.started_ms, {}));
  }

  Result<std::vector<MeteredRun>> ListOpenRuns() override {
    std::vector<MeteredRun> runs;
    Status st = Scan(ledger::kRuns, [&](std::string_view key, std::string_view value) {
      MeteredRun run;
      int64_t started = 0;
      std::optional<int64_t> stopped;
      if (!ledger::ParsePairKey(key, &run.workload_id, &run.product_code) ||
          !ledger::DecodeRun(value, &started, &stopped)) {
        return Corrupt("run");
      }
      if (stopped) return Status::Ok();
      run.started_ms = started;
      runs.push_back(std::move(run));
      return Status::Ok();
    });
    if (!st.ok()) return st;
    std::sort(runs.begin(), runs.end(), [](const MeteredRun& a, const MeteredRun& b) {
      return std::tie(a.workload_id, a.product_code) < std::tie(b.workload_id, b.product_code);
    });
    return runs;
  }

  Status StopRun(const std::string& workload, const std::string& product,
                 int64_t stopped_ms) override {
    const std::string key = ledger::PairKey(workload, product);
    std::string value;
    auto found = Get(ledger::kRuns, key, &value);
    if (!found.ok()) return found.status();
    if (!*found) return Status::Ok();
    int64_t started = 0;
    std::optional<int64_t> stopped;
    if (!ledger::DecodeRun(value, &started, &stopped)) return Corrupt("run");
    if (stopped) return Status::Ok();  // a stopped run stays stopped
    return Put(ledger::kRuns, key, ledger::EncodeRun(started, stopped_ms));
  }

  Result<std::optional<RegistrationTokenRow>> FindRegistrationToken(
      const std::string& token) override {
    std::string value;
    auto found = Get(ledger::kRegistrationTokens, token, &value);
    if (!found.ok()) return found.status();
    if (!*found) return std::optional<RegistrationTokenRow>();
    RegistrationTokenRow row;
    row.token = token;
    if (!ledger::DecodeRegistrationToken(value, &row)) return Corrupt("registration token");
    return std::optional<RegistrationTokenRow>(std::move(row));
  }

  Status PutRegistrationToken(const RegistrationTokenRow& row) override {
    std::string value;
    auto found = Get(ledger::kRegistrationTokens, row.token, &value);
    if (!found.ok()) return found.status();
    if (*found) return Status::Ok();  // the first issue time wins
    return Put(ledger::kRegistrationTokens, row.token, ledger::EncodeRegistrationToken(row));
  }

  Result<std::vector<RegistrationTokenRow>> ListRegistrationTokens() override {
    std::vector<RegistrationTokenRow> rows;
    Status st =
        Scan(ledger::kRegistrationTokens, [&](std::string_view key, std::string_view value) {
          RegistrationTokenRow row;
          row.token = std::string(key);
          if (!ledger::DecodeRegistrationToken(value, &row)) return Corrupt("registration token");
          rows.push_back(std::move(row));
          return Status::Ok();
        });
    if (!st.ok()) return st;
    std::sort(rows.begin(), rows.end(),
              [](const RegistrationTokenRow& a, const RegistrationTokenRow& b) {
                return std::tie(a.issued_ms, a.token) < std::tie(b.issued_ms, b.token);
              });
    return rows;
  }

  Result<bool> DeleteRegistrationToken(const std::string& token) override {
    std::string value;
    auto found = Get(ledger::kRegistrationTokens, token, &value);
    if (!found.ok() || !*found) return found;
    METERD_RETURN_IF_ERROR(Delete(ledger::kRegistrationTokens, token));
    return true;
  }

  Result<std::optional<CatalogVersion>> LatestCatalog() override {
    // The highest version: the group's own (the overlay's last catalog entry) or the stored one.
    std::string key, value;
    auto mine = overlay_.lower_bound({ledger::kCatalog + 1, std::string()});
    if (mine != overlay_.begin() && std::prev(mine)->first.first == ledger::kCatalog &&
        std::prev(mine)->second.has_value()) {
      key = std::prev(mine)->first.second;
      value = *std::prev(mine)->second;
    }
    std::unique_ptr<rocksdb::Iterator> it(
        db_->db()->NewIterator(rocksdb::ReadOptions(), Cf(ledger::kCatalog)));
    it->SeekToLast();
    METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "latest catalog"));
    if (it->Valid() && View(it->key()) > std::string_view(key)) {
      key = std::string(View(it->key()));
      value = std::string(View(it->value()));
    }
    if (key.empty()) return std::optional<CatalogVersion>();
    CatalogVersion v;
    ledger::Reader reader(key);
    if (!reader.OrderedInt(&v.version) || !ledger::DecodeCatalogVersion(value, &v)) {
      return Corrupt("catalog version");
    }
    return std::optional<CatalogVersion>(std::move(v));
  }

  Status PutCatalog(const CatalogVersion& v) override {
    const std::string key = ledger::CatalogKey(v.version);
    std::string value;
    auto found = Get(ledger::kCatalog, key, &value);
    if (!found.ok()) return found.status();
    // A unique key, as the SQL backends' primary key: two changes cannot both be version N.
    if (*found) {
      return Status(StatusCode::kIoError,
                    "embedded store: catalog version " + std::to_string(v.version) + " exists");
    }
    return Put(ledger::kCatalog, key, ledger::EncodeCatalogVersion(v));
  }

  Status PutAuditEvent(const AuditEventRow& row) override {
    // Event ids are unique: writing the same event again writes the same bytes.
    return Rocks(batch_.Put(Cf(ledger::kAudit), ledger::AuditKey(row.event_time_ms, row.event_id),
                            ledger::EncodeAuditEvent(row)),
                 "audit event");
  }

  Result<int64_t> DeleteAuditEventsBefore(int64_t before_ms, int64_t limit) override {
    // The committed events (a group's own events are newer than any retention bound).
    std::unique_ptr<rocksdb::Iterator> it(
        db_->db()->NewIterator(rocksdb::ReadOptions(), Cf(ledger::kAudit)));
    int64_t deleted = 0;
    for (it->SeekToFirst(); it->Valid() && deleted < limit; it->Next()) {
      int64_t time = 0;
      std::string id;
      if (!ledger::ParseAuditKey(View(it->key()), &time, &id)) return Corrupt("audit key");
      if (time >= before_ms) break;
      METERD_RETURN_IF_ERROR(Rocks(batch_.Delete(Cf(ledger::kAudit), it->key()), "prune audit"));
      ++deleted;
    }
    METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "prune audit"));
    return deleted;
  }

 private:
  // A full disk is refused before RocksDB sees it: a write that fails half-way leaves RocksDB's
  // WAL writer unusable (then the database is reopened, above). `bytes` is the group's size.
  Status CheckFreeSpace(size_t bytes) const {
    struct statvfs fs {};
    if (statvfs(path_.c_str(), &fs) != 0) return Status::Ok();  // unknown: let the write tell
    const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
    const uint64_t needed = std::max<uint64_t>(kMinFreeBytes, 4 * static_cast<uint64_t>(bytes));
    if (free_bytes >= needed) return Status::Ok();
    return Status(StatusCode::kIoError, "embedded store: the disk is full (" +
                                            std::to_string(free_bytes) + " bytes free, " +
                                            std::to_string(needed) + " needed)");
  }
  static constexpr uint64_t kMinFreeBytes = uint64_t{1} << 20;

  rocksdb::ColumnFamilyHandle* Cf(Family f) const { return db_->family(f); }
  rocksdb::ColumnFamilyHandle* Meta() const { return db_->family(ledger::kMeta); }
  static Status Rocks(const rocksdb::Status& s, const char* what) {
    return ledger::FromRocks(s, what);
  }

  // Reads `key` as the group sees it: its own writes first (the overlay), then the state the
  // groups before it wrote.
  Result<bool> Get(Family f, const std::string& key, std::string* value) {
    if (auto mine = overlay_.find({f, key}); mine != overlay_.end()) {
      if (!mine->second) return false;
      *value = *mine->second;
      return true;
    }
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), Cf(f), key, value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return ledger::FromRocks(s, "read");
    return true;
  }
  // Writes that later units of the group may read back.
  Status Put(Family f, std::string key, const std::string& value) {
    METERD_RETURN_IF_ERROR(Rocks(batch_.Put(Cf(f), key, value), "put"));
    overlay_[{f, std::move(key)}] = value;
    return Status::Ok();
  }
  Status Delete(Family f, const std::string& key) {
    METERD_RETURN_IF_ERROR(Rocks(batch_.Delete(Cf(f), key), "delete"));
    overlay_[{f, key}] = std::nullopt;
    return Status::Ok();
  }
  // Every entry of a small family as the group sees it, in key order.
  template <typename Visit>
  Status Scan(Family f, Visit visit) {
    std::map<std::string, std::string> entries;
    std::unique_ptr<rocksdb::Iterator> it(db_->db()->NewIterator(rocksdb::ReadOptions(), Cf(f)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      entries.emplace(std::string(View(it->key())), std::string(View(it->value())));
    }
    METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "scan"));
    for (auto mine = overlay_.lower_bound({f, std::string()});
         mine != overlay_.end() && mine->first.first == f; ++mine) {
      if (mine->second) {
        entries[mine->first.second] = *mine->second;
      } else {
        entries.erase(mine->first.second);
      }
    }
    for (const auto& [key, value] : entries) METERD_RETURN_IF_ERROR(visit(key, value));
    return Status::Ok();
  }
  Status ReadMeta(std::string_view key, int64_t* value) {
    std::string bytes;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), Meta(), key, &bytes);
    if (s.IsNotFound()) return Status::Ok();
    METERD_RETURN_IF_ERROR(ledger::FromRocks(s, "read meta"));
    if (!ledger::ParseFixedValue(bytes, value)) return Corrupt("meta " + std::string(key));
    return Status::Ok();
  }

  const std::string path_;
  // The open database (null while a reopen fails). Changed only by the writer thread, under
  // db_mu_ held exclusively; the syncer reads it under db_mu_ shared.
  std::shared_ptr<ledger::LedgerDb> db_;
  std::shared_mutex db_mu_;
  DurableView view_;
  EmbeddedAuditReader audit_reader_;
  // The group being written (writer thread only).
  rocksdb::WriteBatch batch_;
  // The group's writes that its later units may read: (family, key) -> value, or nullopt for a
  // delete. The ledger's bulk (rows, indexes, audit events, rollups) goes to batch_ only.
  std::map<std::pair<int, std::string>, std::optional<std::string>> overlay_;
  // The group's new dedup entries: digest -> the answer an identical record gets.
  struct GroupDedup {
    std::string dedup_key;
    std::string record_id;
    int64_t quantity = 0;
  };
  std::unordered_map<std::string, GroupDedup> group_dedup_;
  RollupAccumulator rollups_;
  int64_t next_seq_ = 1;      // committed
  int64_t pending_seq_ = 1;   // inside the group
  int64_t pending_rows_ = 0;  // inside the group
  // Rows written by the committed groups, synced or not (writer thread only): a group's count
  // starts from here, not from rows_, which the syncer moves later.
  int64_t committed_rows_ = 0;
  bool needs_reopen_ = false;
  std::atomic<bool> sync_failed_{false};
  std::atomic<int64_t> rows_{0};  // synced; read from any thread
  std::mutex sync_mu_;
  const rocksdb::Snapshot* unsynced_snapshot_ = nullptr;  // under sync_mu_: the last commit
  int64_t unsynced_rows_ = 0;                             // under sync_mu_
};

// --- the reports' reader ----------------------------------------------------------------------
class EmbeddedUsageReader final : public UsageReader {
 public:
  explicit EmbeddedUsageReader(const DurableView* view) : view_(view) {}

  // (timestamp_ms, seq) order: a range scan of the ledger, or of the buyer account's index when
  // the filter names one (each hit then reads its row from the same snapshot).
  Result<UsagePage> ListUsage(const UsageFilter& filter, const std::optional<LedgerPosition>& after,
                              size_t limit) override {
    auto state = view_->Current();
    if (!state.ok()) return state.status();
    rocksdb::ReadOptions ro;
    ro.snapshot = state->snapshot.get();
    // A report or an export scans: its blocks would only push the writer's out of the cache.
    ro.fill_cache = false;
    return List(*state->db, ro, filter, after, limit);
  }

  Result<std::vector<RollupRow>> ReadRollups(const RollupQuery& q) override {
    auto state = view_->Current();
    if (!state.ok()) return state.status();
    rocksdb::ReadOptions ro;
    ro.snapshot = state->snapshot.get();
    const ledger::LedgerDb& db = *state->db;
    std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(ro, db.family(ledger::kRollups)));
    std::vector<RollupRow> rows;
    for (it->Seek(ledger::RollupPeriodPrefix(q.granularity, q.from_ms)); it->Valid(); it->Next()) {
      RollupRow row;
      if (!ledger::ParseRollupKey(View(it->key()), &row.key)) return Corrupt("rollup key");
      if (row.key.granularity != q.granularity || row.key.period_ms >= q.to_ms) break;
      if (row.key.tag_key != q.tag_key) continue;
      if (!q.product_code.empty() && row.key.product_code != q.product_code) continue;
      if (!q.customer_account.empty() && row.key.customer_account != q.customer_account) continue;
      if (!q.dimension.empty() && row.key.dimension != q.dimension) continue;
      RollupDelta total;
      if (!ledger::DecodeRollupDelta(View(it->value()), &total)) return Corrupt("rollup");
      row.quantity = total.quantity;
      row.records = total.records;
      rows.push_back(std::move(row));
    }
    METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "read rollups"));
    // The key's own order (text compared as bytes), not the length-prefixed order of the bytes.
    std::sort(rows.begin(), rows.end(),
              [](const RollupRow& a, const RollupRow& b) { return a.key < b.key; });
    return rows;
  }

 private:
  Result<UsagePage> List(const ledger::LedgerDb& db, const rocksdb::ReadOptions& ro,
                         const UsageFilter& filter, const std::optional<LedgerPosition>& after,
                         size_t limit) {
    UsagePage page;
    if (filter.customer_account.empty()) {
      std::unique_ptr<rocksdb::Iterator> it(
          db.db()->NewIterator(ro, db.family(ledger::kUsageByTime)));
      const std::string start =
          after ? ledger::UsageByTimeKey(after->timestamp_ms, after->seq)
                : ledger::UsageByTimeKey(filter.from_ms.value_or(INT64_MIN), INT64_MIN);
      METERD_RETURN_IF_ERROR(
          ListRange(db, ro, it.get(), start, "", after.has_value(), filter, limit, &page));
      return page;
    }
    // The account's entries, one UTC day at a time, over the days the ledger and the filter
    // share (the ledger's first and last timestamps bound an open-ended filter).
    std::unique_ptr<rocksdb::Iterator> it(
        db.db()->NewIterator(ro, db.family(ledger::kUsageByTime)));
    int64_t first_ms = 0, last_ms = 0, seq = 0;
    it->SeekToFirst();
    if (!it->Valid()) {
      METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "list usage"));
      return page;
    }
    if (!ledger::ParseUsageByTimeKey(View(it->key()), &first_ms, &seq)) return Corrupt("usage key");
    it->SeekToLast();
    if (!it->Valid() || !ledger::ParseUsageByTimeKey(View(it->key()), &last_ms, &seq)) {
      METERD_RETURN_IF_ERROR(ledger::FromRocks(it->status(), "list usage"));
      return Corrupt("usage key");
    }
    const int64_t from_ms =
        std::max(first_ms, after ? after->timestamp_ms : filter.from_ms.value_or(first_ms));
    const int64_t last_day = FloorToDay(std::min(last_ms, filter.to_ms.value_or(INT64_MAX)));
    it.reset(db.db()->NewIterator(ro, db.family(ledger::kUsageByAccount)));
    for (int64_t day = FloorToDay(from_ms); day <= last_day && !page.more; day += kMillisPerDay) {
      const std::string prefix = ledger::UsageByAccountPrefix(day, filter.customer_account);
      std::string start = prefix;
      bool skip_equal = false;
      if (after && day == FloorToDay(after->timestamp_ms)) {
        start = ledger::UsageByAccountKey(filter.customer_account, after->timestamp_ms, after->seq);
        skip_equal = true;
      } else if (day == FloorToDay(from_ms)) {
        start = ledger::UsageByAccountKey(filter.customer_account, from_ms, INT64_MIN);
      }
      METERD_RETURN_IF_ERROR(
          ListRange(db, ro, it.get(), start, prefix, skip_equal, filter, limit, &page));
      if (filter.to_ms && day + kMillisPerDay > *filter.to_ms) break;
    }
    return page;
  }

  // Appends to `page` the rows of the index entries from `start` (after it when `skip_equal`)
  // while their keys begin with `prefix`, up to `limit` rows (then page->more).
  Status ListRange(const ledger::LedgerDb& db, const rocksdb::ReadOptions& ro,
                   rocksdb::Iterator* it, const std::string& start, const std::string& prefix,
                   bool skip_equal, const UsageFilter& filter, size_t limit, UsagePage* page) {
    const bool by_account = !prefix.empty();
    it->Seek(start);
    if (skip_equal && it->Valid() && View(it->key()) == start) it->Next();
    std::string value;
    for (; it->Valid(); it->Next()) {
      const std::string_view key = View(it->key());
      LedgerRecord rec;
      if (by_account) {
        if (key.substr(0, prefix.size()) != prefix) break;
        std::string account;
        if (!ledger::ParseUsageByAccountKey(key, &account, &rec.position.timestamp_ms,
                                            &rec.position.seq)) {
          return Corrupt("usage index key");
        }
      } else if (!ledger::ParseUsageByTimeKey(key, &rec.position.timestamp_ms, &rec.position.seq)) {
        return Corrupt("usage key");
      }
      if (filter.to_ms && rec.position.timestamp_ms >= *filter.to_ms) break;
      if (filter.from_ms && rec.position.timestamp_ms < *filter.from_ms) continue;
      // The row itself, by seq, from the same snapshot as the index entry.
      rocksdb::Status s =
          db.db()->Get(ro, db.family(ledger::kUsage), ledger::UsageKey(rec.position.seq), &value);
      if (!s.ok()) return ledger::FromRocks(s, "usage row of an index entry");
      const std::string_view row_bytes = value;
      if (!ledger::DecodeUsageRow(row_bytes, &rec.row)) return Corrupt("usage row");
      if (!filter.Matches(rec.row)) continue;
      if (page->records.size() == limit) {
        page->more = true;
        break;
      }
      page->records.push_back(std::move(rec));
    }
    return ledger::FromRocks(it->status(), "list usage");
  }

  const DurableView* view_;
};

}  // namespace

Result<std::unique_ptr<Backend>> OpenEmbeddedBackend(const std::string& data_dir) {
  METERD_RETURN_IF_ERROR(MigrateSqliteLayoutIfPresent(data_dir));
  auto backend = std::make_unique<EmbeddedBackend>(ledger::LedgerPath(data_dir));
  METERD_RETURN_IF_ERROR(backend->OpenDb());
  return std::unique_ptr<Backend>(std::move(backend));
}

std::unique_ptr<UsageReader> NewEmbeddedUsageReader(Backend* embedded_backend) {
  auto* backend = static_cast<EmbeddedBackend*>(embedded_backend);
  return std::make_unique<EmbeddedUsageReader>(backend->view());
}

}  // namespace meterd::store
