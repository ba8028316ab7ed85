// The store: where the ledger and every decision that protects it (dedup keys, ClientTokens,
// first-call entitlements) live. Dedup is decided by unique keys in the store, never by a map
// in one process's memory, so that the decision survives restarts and can be shared by several
// nodes on one database.
//
// Writes go through Store::Submit: one writer thread drains every queued unit of work into one
// transaction (group commit, as leveldb's DBImpl::Write) and answers each unit only after the
// transaction is durable. A unit reads and writes through the Transaction it is given.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace meterd::store {

// One row of the append-only ledger.
struct UsageRow {
  std::string record_id;  // MeteringRecordId (UUID)
  std::string dedup_key;  // unique; see metering/dedup_key.h
  std::string source;     // "BatchMeterUsage" | "MeterUsage"
  std::string region;
  std::string product_code;
  std::string seller_account;
  std::string customer_identifier;  // as sent, may be empty
  std::string customer_account;     // the buyer account
  std::string license_arn;          // may be empty
  std::string workload_id;          // MeterUsage only
  std::string dimension;
  int64_t usage_hour_ms = 0;  // start of the UTC hour of timestamp_ms
  int64_t timestamp_ms = 0;
  int64_t quantity = 0;
  std::string allocations_json;  // "" or the UsageAllocations as JSON
  std::string request_id;
  int64_t received_ms = 0;
};

// What a unique key already holds.
struct ExistingUsage {
  std::string record_id;
  int64_t quantity = 0;
};

// A remembered MeterUsage ClientToken (D4).
struct ClientTokenEntry {
  std::string caller;  // workload id
  std::string token;
  std::string fingerprint;  // hex SHA-256 of every other request member
  std::string record_id;    // the answer given the first time
  int64_t created_ms = 0;
};

// A container task's metered run (D11): from the first RegisterUsage to the task's stop.
struct MeteredRun {
  std::string workload_id;
  std::string product_code;
  int64_t started_ms = 0;
};

// A registration token (ResolveCustomer): from the catalog or issued by meterd.
struct RegistrationTokenRow {
  std::string token;
  std::string seller_account;
  std::string product_code;
  std::string customer_account;
  std::string license_arn;
  int64_t issued_ms = 0;
};

// One version of the control-plane catalog (docs/CONTROL-PLANE.md): the whole document, as
// canonical JSON. Versions count up from 1; the highest one is the catalog in force.
struct CatalogVersion {
  int64_t version = 0;
  std::string document;
  int64_t changed_ms = 0;
  std::string change;  // what changed, for people ("POST /v1/accounts 111122223333")
};

// --- audit trail (D17; src/audit/) ---------------------------------------------------------
// One audit event as stored: the filterable facts in columns, the whole CloudTrail-shaped event
// as JSON text. Events are ordered newest first by (event_time_ms, event_id).
struct AuditEventRow {
  std::string event_id;  // unique (UUID)
  int64_t event_time_ms = 0;
  std::string event_source;  // "metering-marketplace.amazonaws.com" | "meterd-admin"
  std::string event_name;
  std::string account_id;     // "" when unknown
  std::string access_key_id;  // "" when unknown
  std::string error_code;     // "" on success
  std::string event_json;
};

// Where a page of events ended: the next page starts strictly after (older than) it.
struct AuditPosition {
  int64_t event_time_ms = 0;
  std::string event_id;
};

// What LookupAuditEvents returns. Empty filter members match everything; `from_ms` inclusive,
// `to_ms` exclusive; `errors_only` matches any non-empty error_code.
struct AuditQuery {
  std::string event_name, event_source, account_id, access_key_id, error_code;
  bool errors_only = false;
  std::optional<int64_t> from_ms, to_ms;
  std::optional<AuditPosition> after;
  size_t limit = 100;
};

struct AuditPage {
  std::vector<AuditEventRow> events;  // newest first, at most `limit`
  bool more = false;                  // more events match after the last one
};

// Reads the committed audit trail. Implementations read apart from the writer (SQLite: its own
// read connection in WAL mode), so a lookup never holds up a commit. Thread-safe; owned by the
// Store that hands it out.
class AuditReader {
 public:
  virtual ~AuditReader() = default;
  virtual Result<AuditPage> LookupAuditEvents(const AuditQuery& query) = 0;
};
// --- end of audit trail ---------------------------------------------------------------------

// Reads and writes inside one group-commit transaction. Only valid inside the `apply` function
// it was handed to, on the writer thread; not thread-safe. Errors are store errors (kIoError,
// kCorruption): they fail the whole group, which is then rolled back.
class Transaction {
 public:
  virtual ~Transaction() = default;
  // Inserts `row` unless a row with the same dedup_key exists; returns that row if so.
  virtual Result<std::optional<ExistingUsage>> InsertUsageIfAbsent(const UsageRow& row) = 0;
  // The row holding `dedup_key`, if any (DryRun asks without writing).
  virtual Result<std::optional<ExistingUsage>> FindUsage(const std::string& dedup_key) = 0;
  virtual Result<std::optional<ClientTokenEntry>> FindClientToken(const std::string& caller,
                                                                  const std::string& token) = 0;
  virtual Status PutClientToken(const ClientTokenEntry& entry) = 0;
  // First-call entitlement memory: (workload, product) pairs whose first call was accepted.
  virtual Result<bool> HasEntitlement(const std::string& workload, const std::string& product) = 0;
  virtual Status PutEntitlement(const std::string& workload, const std::string& product,
                                int64_t now_ms) = 0;
  // Metered runs: at most one per (workload, product); a stopped run stays stopped.
  virtual Status OpenRunIfAbsent(const MeteredRun& run) = 0;
  virtual Result<std::vector<MeteredRun>> ListOpenRuns() = 0;
  virtual Status StopRun(const std::string& workload, const std::string& product,
                         int64_t stopped_ms) = 0;
  // Registration tokens: Put keeps an existing row as it is (first issue time wins).
  virtual Result<std::optional<RegistrationTokenRow>> FindRegistrationToken(
      const std::string& token) = 0;
  virtual Status PutRegistrationToken(const RegistrationTokenRow& row) = 0;
  // Every registration token, oldest first.
  virtual Result<std::vector<RegistrationTokenRow>> ListRegistrationTokens() = 0;
  // Revokes a token; false when there was none.
  virtual Result<bool> DeleteRegistrationToken(const std::string& token) = 0;
  // The catalog in force (the highest version), if any was ever stored.
  virtual Result<std::optional<CatalogVersion>> LatestCatalog() = 0;
  // Stores a new version; `version` must be one more than the latest (a unique key, so two
  // nodes changing the catalog at once cannot both win).
  virtual Status PutCatalog(const CatalogVersion& version) = 0;

  // --- audit trail ---
  // Inserts an event; an event whose event_id is stored already is left as it is (not an error,
  // so a repeated event never fails the group it shares with ledger writes).
  virtual Status PutAuditEvent(const AuditEventRow& row) = 0;
  // Deletes at most `limit` of the oldest events with event_time_ms < `before_ms`; returns how
  // many it deleted (retention: one small bounded unit at a time).
  virtual Result<int64_t> DeleteAuditEventsBefore(int64_t before_ms, int64_t limit) = 0;
};

// The keys a unit is going to read, declared before it is submitted, so that a backend on a
// remote database fetches the keys of a whole group in one round trip instead of one per read.
// Optional and only an optimisation: a read of an undeclared key still works (it costs a round
// trip of its own there). Filled only when Store::UsesDeclaredReads(): the embedded and memory
// backends read locally and ignore it.
struct ReadKeys {
  std::vector<std::string> dedup_keys;
  std::vector<std::pair<std::string, std::string>> client_tokens;  // (caller, token)
  std::vector<std::pair<std::string, std::string>> entitlements;   // (workload, product)
  std::vector<std::string> registration_tokens;
};

// One unit of work for the writer. `apply` runs on the writer thread inside the group's
// transaction and returns a store error only (business outcomes are recorded by the closure
// itself). `apply` may run more than once for one commit: a backend shared by several nodes
// re-runs the whole group when another node won a race for one of its unique keys (and then
// sees the winner's row). So `apply` must set every outcome it records afresh on each run and
// have no other effect. `done` runs once, after the group committed (ok) or failed (the store
// error); it runs on the writer thread and must not block.
//
// `seal` (optional) runs in the same transaction after the `apply` of every unit of the group and
// before the commit, so that what it writes is durable exactly when the unit's own writes are:
// the audit event of the call whose answer `apply` decided (D17). Like `apply` it runs again when
// the group is re-run (after a rollback), and must then write afresh; a store error it returns
// fails the whole group.
struct WriteUnit {
  std::function<Status(Transaction&)> apply;
  std::function<void(const Status&)> done;
  std::function<Status(Transaction&)> seal;
  ReadKeys reads;
};

struct StoreStats {
  uint64_t groups = 0;
  uint64_t units = 0;
  uint64_t failed_groups = 0;
  size_t queue_depth = 0;            // units submitted and not yet taken by the writer
  std::string last_error;            // the store error of the most recent failed group
  int64_t last_error_steady_ms = 0;  // when it failed (steady clock, for ages); 0: never
};

// One group commit as the writer finished it: what metrics need, in the store's own terms (the
// store knows no metrics format).
struct GroupCommit {
  size_t units = 0;
  int64_t duration_us = 0;  // from Begin to the end of Commit (or Rollback)
  bool ok = true;           // false: a store error failed the whole group
};

// Sees every group commit. Called on the writer thread before the group's units are answered;
// must be thread-safe and must not block (it delays the next group).
class CommitObserver {
 public:
  virtual ~CommitObserver() = default;
  virtual void OnGroupCommit(const GroupCommit& group) = 0;
};

// Thread-safe. Submit may be called from any thread.
class Store {
 public:
  virtual ~Store() = default;
  virtual void Submit(WriteUnit unit) = 0;
  // Stops accepting work, finishes what is queued, and joins the writer. Idempotent.
  virtual void Close() = 0;
  virtual StoreStats Stats() const = 0;
  // `observer` (not owned; null: none) sees every later group commit. Call it at start-up.
  virtual void SetCommitObserver(CommitObserver* observer) {}
  // Number of ledger rows (reads the committed state; for tests and diagnostics).
  virtual Result<int64_t> CountUsageRows() = 0;
  // The audit trail's reader (never null; lives as long as the store).
  virtual AuditReader* audit_reader() = 0;
  // True when WriteUnit::reads is used (a remote database fetches a group's keys at once).
  // Otherwise callers leave `reads` empty and save the copies on the request path.
  virtual bool UsesDeclaredReads() const { return false; }
};

// Submits one unit and blocks until it committed or failed (start-up, control-plane and
// background work; never on the request path, which must not block an event loop).
Status SubmitAndWait(Store* store, std::function<Status(Transaction&)> apply);

struct StoreOptions {
  std::string data_dir;  // embedded store: the directory holding meterd.db
  size_t max_group_units = 4096;
};

// The factory: picks the backend named by `url`: "embedded" (default: RocksDB in data_dir/ledger,
// embedded_store.h), "sqlite" (the previous embedded engine, data_dir/meterd.db),
// "postgresql://..." or "postgres://..." (a libpq connection URI: a PostgreSQL database that
// several nodes share; see postgres_store.h) or "memory" (tests only: nothing survives the
// process).
Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options);

class UsageReader;  // store/usage_reader.h

// --- Usage reports: the store and the reader of its committed ledger and rollups
// (reports/usage_reader.h). The reader may hold a pointer into the store: destroy it first
// (members are destroyed in reverse order, so an OpenedStore does that itself).
struct OpenedStore {
  std::unique_ptr<Store> store;
  std::unique_ptr<UsageReader> reader;
  OpenedStore();
  OpenedStore(OpenedStore&&) noexcept;
  OpenedStore& operator=(OpenedStore&&) noexcept;
  ~OpenedStore();
};
Result<OpenedStore> OpenStoreWithReader(const std::string& url, const StoreOptions& options);

}  // namespace meterd::store
