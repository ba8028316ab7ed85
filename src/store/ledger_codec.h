// The embedded store's on-disk layout (docs/STORAGE.md): one RocksDB database in
// `<data_dir>/ledger/`, one column family per table, keys laid out so that what is written
// together sorts together (the ledger and the audit trail by time, rollups by period), and one
// row codec per table. Everything that reads or writes the embedded store's bytes (the backend,
// its readers, the migration from the SQLite layout, `meterd dump`) goes through this file, so
// the layout is written down exactly once.
//
// Encodings: integers in keys are 8-byte big-endian with the sign bit flipped (so that byte order
// is numeric order, negative values included); strings in keys are length-prefixed (varint), so
// that no value can run into the next component. Values are a sequence of fields: varint-length
// strings and 8-byte little-endian integers, in the order the codec names them.
//
// Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/rollup.h"
#include "store/store.h"

namespace meterd::store::ledger {

// Column families, in the order they are opened (index = position in the handle vector).
enum Family : int {
  kMeta = 0,            // "default": counters and the schema version
  kUsage = 1,           // seq -> UsageRow (appended in seq order: inserts stay at the end)
  kUsageByTime,         // (timestamp_ms, seq) -> "": the reports' order
  kUsageByAccount,      // (customer_account, timestamp_ms, seq) -> ""
  kDedup,               // 16-byte digest of the dedup_key -> the seq of its row
  kClientTokens,        // (caller, token) -> ClientTokenEntry
  kEntitlements,        // (workload, product) -> first_call_ms
  kRuns,                // (workload, product) -> (started_ms, stopped_ms or -1)
  kRegistrationTokens,  // token -> RegistrationTokenRow
  kCatalog,             // version -> CatalogVersion
  kAudit,               // (event_time_ms, event_id) -> AuditEventRow
  kRollups,             // RollupKey -> (quantity, records), summed by a merge operator
  kFamilyCount,
};
// The RocksDB name of each family ("default" for kMeta).
const std::vector<std::string>& FamilyNames();

// Keys of kMeta.
inline constexpr std::string_view kMetaSchema = "schema";     // fixed64: the layout's version
inline constexpr std::string_view kMetaNextSeq = "next_seq";  // fixed64: the next ledger seq
inline constexpr std::string_view kMetaRows = "usage_rows";   // fixed64: ledger rows stored
// Where this layout came from when it was migrated from the SQLite layout (text, for people).
inline constexpr std::string_view kMetaMigratedFrom = "migrated_from";
// 1: the first RocksDB layout. 2: a dedup entry is keyed by (hour, digest) and holds only the seq
// of its row, and the account index is keyed by day first (an open of a layout 1 store rewrites
// both families once).
inline constexpr int64_t kLayoutVersion = 2;

// --- primitive encoders ---------------------------------------------------------------------
void PutOrderedInt(std::string* out, int64_t v);          // 8 bytes, big-endian, sign bit flipped
void PutKeyString(std::string* out, std::string_view s);  // varint length + bytes
void PutFixed(std::string* out, int64_t v);               // 8 bytes little-endian
std::string FixedValue(int64_t v);

// A cursor over an encoded key or value. Every Get returns false when the bytes run out or do
// not parse (a corrupt row); the caller turns that into kCorruption.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  bool OrderedInt(int64_t* v);
  bool KeyString(std::string* s);
  bool Fixed(int64_t* v);
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};
bool ParseFixedValue(std::string_view bytes, int64_t* v);

// --- ledger ---------------------------------------------------------------------------------
std::string UsageKey(int64_t seq);
bool ParseUsageKey(std::string_view key, int64_t* seq);
std::string EncodeUsageRow(const UsageRow& row);
bool DecodeUsageRow(std::string_view value, UsageRow* row);
std::string UsageByTimeKey(int64_t timestamp_ms, int64_t seq);
bool ParseUsageByTimeKey(std::string_view key, int64_t* timestamp_ms, int64_t* seq);
// The buyer account index: (UTC day of the timestamp, account, timestamp, seq). The day first
// keeps the family in time order, so that compactions rewrite the last days and move older
// files down untouched (an account-first key put every new entry anywhere in the whole
// history); a reader of one account seeks once per day of its range.
std::string UsageByAccountKey(std::string_view account, int64_t timestamp_ms, int64_t seq);
// The prefix every key of `account` on the UTC day starting at `day_ms` starts with (its ledger
// rows of that day in (timestamp, seq) order).
std::string UsageByAccountPrefix(int64_t day_ms, std::string_view account);
bool ParseUsageByAccountKey(std::string_view key, std::string* account, int64_t* timestamp_ms,
                            int64_t* seq);
// Layout 1's key: (account, timestamp, seq). Read only by the upgrade to layout 2.
bool ParseLayout1UsageByAccountKey(std::string_view key, std::string* account,
                                   int64_t* timestamp_ms, int64_t* seq);

// The dedup family's key of a dedup key: its hour (DedupKeyHour, big-endian) and the first 16
// bytes of its SHA-256. The hour first keeps the family in time order: new records' keys fall in
// the last hours' range, so compactions rewrite those and move older files down untouched, and a
// look-up skips every file of other hours by its key range. The digest keeps keys short and
// uniform. The row the entry names keeps the whole dedup key and every look-up compares it: a
// digest collision (about n^2 / 2^129 for n keys of one hour) is detected and refused, never taken
// for the same record. Both parts are functions of the dedup key alone, so one key always has one
// entry whatever DedupKeyHour makes of it: exactness never depends on the hour being parsed.
std::string DedupKey(std::string_view dedup_key);
// The hour a dedup key is scoped to: metering's hour-scoped keys (kinds B, M and T of
// metering/dedup_key.h) end in "|<digits>:<hour_ms>"; any other key (kind A, a ClientToken's,
// holds forever) is hour 0. metering's rules_test checks this against the key functions.
int64_t DedupKeyHour(std::string_view dedup_key);

// What the dedup family holds for a key: the ledger seq of the row that took it (fixed64). A
// look-up reads that row and compares its whole dedup key, and the answer a later identical record
// gets (the first record's id and quantity) is the row's. Eight bytes, not the ~170 of the key and
// answer: the family is the ledger's only randomly keyed one, so its compactions rewrite it again
// and again, and they are most of the engine's background work (docs/STORAGE.md).
std::string EncodeDedupValue(int64_t seq);
bool DecodeDedupValue(std::string_view value, int64_t* seq);
// Layout 1's dedup entry: the key was the 16-byte digest alone and the value held the whole dedup
// key, the record id, quantity, timestamp and seq. Read only by the upgrade to layout 2.
inline constexpr size_t kLayout1DedupKeySize = 16;
bool DecodeLayout1DedupEntry(std::string_view value, std::string* dedup_key, int64_t* seq);

// Every entry a new ledger row writes, in one place for every writer of the layout: the row by
// seq, its time and account index entries, and its dedup entry.
struct Entry {
  Family family;
  std::string key;
  std::string value;
};
// Fixed size: no container allocation per record on the writer thread. `dedup_digest` is
// DedupKey(row.dedup_key), for a caller that has computed it already (the dedup check).
std::array<Entry, 4> NewUsageEntries(const UsageRow& row, int64_t seq, std::string dedup_digest);
std::array<Entry, 4> NewUsageEntries(const UsageRow& row, int64_t seq);

// --- small tables -----------------------------------------------------------------------------
std::string PairKey(std::string_view first, std::string_view second);
bool ParsePairKey(std::string_view key, std::string* first, std::string* second);
std::string EncodeClientToken(const ClientTokenEntry& entry);  // caller and token are the key
bool DecodeClientToken(std::string_view value, ClientTokenEntry* entry);
std::string EncodeRun(int64_t started_ms, std::optional<int64_t> stopped_ms);
bool DecodeRun(std::string_view value, int64_t* started_ms, std::optional<int64_t>* stopped_ms);
std::string EncodeRegistrationToken(const RegistrationTokenRow& row);  // token is the key
bool DecodeRegistrationToken(std::string_view value, RegistrationTokenRow* row);
std::string CatalogKey(int64_t version);
std::string EncodeCatalogVersion(const CatalogVersion& v);  // version is the key
bool DecodeCatalogVersion(std::string_view value, CatalogVersion* v);

// --- audit trail ----------------------------------------------------------------------------
std::string AuditKey(int64_t event_time_ms, std::string_view event_id);
bool ParseAuditKey(std::string_view key, int64_t* event_time_ms, std::string* event_id);
std::string EncodeAuditEvent(const AuditEventRow& row);  // time and id are the key
bool DecodeAuditEvent(std::string_view value, AuditEventRow* row);

// --- rollups --------------------------------------------------------------------------------
// Ordered by (granularity, period, product, account, dimension, unit, tag key, tag value): a
// query of one granularity and a period range is one range scan.
std::string RollupKeyBytes(const RollupKey& key);
std::string RollupPeriodPrefix(Granularity g, int64_t period_ms);  // granularity + period
bool ParseRollupKey(std::string_view bytes, RollupKey* key);
std::string EncodeRollupDelta(const RollupDelta& delta);
bool DecodeRollupDelta(std::string_view value, RollupDelta* delta);

}  // namespace meterd::store::ledger
