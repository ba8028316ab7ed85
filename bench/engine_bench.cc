// meterd-engine-bench: the raw storage engines alone, for meterd's write pattern (docs/STORAGE.md).
// One writer thread writes groups of N BatchMeterUsage-shaped records per durable commit (the
// group commit's transaction) straight into each engine, without the store's Submit queue, HTTP,
// JSON or SigV4, and measures commits/s, records/s, bytes written per record (/proc/self/io
// write_bytes, which counts the engine's background threads too) and the commit latency.
//
//   meterd-engine-bench [--engine sqlite|sqlite-locality|rocksdb|all] [--rows 400000]
//                       [--group 800] [--preload 1000000] [--dir DIR] [--max-seconds 300]
//                       [--preload-max-seconds 900] [--keep]
//
// Each engine gets a fresh store. It is measured twice: on the empty store (--rows records), then
// after it was topped up to --preload rows (written unmeasured, in big groups), --rows records
// again. Each phase stops at --max-seconds, each preload at --preload-max-seconds: a run is
// bounded in time whatever the sizes.
//
// Engines:
//   sqlite           today's schema exactly (src/store/sqlite_store.cc: UNIQUE record_id and
//                    dedup_key, the time and account indexes, rollup upserts, audit_events with
//                    its 5 indexes), WAL, synchronous=FULL, 64 MiB cache, the WalCheckpointer,
//                    random UUIDv4 record ids.
//   sqlite-locality  the same data laid out for locality: a rowid ledger without a record_id
//                    index, UUIDv7-style time-ordered record ids, a WITHOUT ROWID dedup table
//                    keyed (usage_hour_ms, 16-byte hash of the dedup key), audit events with one
//                    time index only, rollups as today.
//   rocksdb          store::ledger::LedgerDb (the tuned open) and the codec of ledger_codec.h:
//                    one WriteBatch per group written with sync=true; per record a Get on the
//                    dedup family (the dedup check) before the Puts (usage, usage_by_account,
//                    dedup), audit Puts, rollups as Merge operands, the meta counters.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/version.h>
#include <rocksdb/write_batch.h>
#include <sqlite3.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/crypto.h"
#include "common/status.h"
#include "common/time_util.h"
#include "metering/dedup_key.h"
#include "store/ledger_codec.h"
#include "store/ledger_db.h"
#include "store/rollup.h"
#include "store/sqlite_schema.h"
#include "store/store.h"
#include "store/wal_checkpointer.h"

namespace {

using meterd::Result;
using meterd::Status;
using meterd::StatusCode;
using meterd::store::AuditEventRow;
using meterd::store::RollupAccumulator;
using meterd::store::UsageRow;
using SteadyClock = std::chrono::steady_clock;
namespace fs = std::filesystem;
namespace ledger = meterd::store::ledger;

constexpr int64_t kMaxRows = int64_t{1'000'000'000};
constexpr int64_t kMaxGroup = 1'000'000;
constexpr int64_t kRecordsPerRequest = 25;  // one BatchMeterUsage call: one audit event
constexpr int64_t kPreloadGroup = 20'000;   // preload groups: big, unmeasured, still durable
constexpr double kSettleMaxSeconds = 120;   // the wait for the engine's background work

struct Options {
  std::vector<std::string> engines;
  int64_t rows = 400'000;
  int64_t group = 800;
  int64_t preload = 1'000'000;
  std::string dir;
  double max_seconds = 300;
  double preload_max_seconds = 900;
  bool keep = false;
};

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "meterd-engine-bench: %s\n"
               "usage: meterd-engine-bench [--engine sqlite|sqlite-locality|rocksdb|all]\n"
               "         [--rows 400000] [--group 800] [--preload 1000000] [--dir DIR]\n"
               "         [--max-seconds 300] [--preload-max-seconds 900] [--keep]\n"
               "  --dir: where the stores go (a new temp dir by default, removed at the end);\n"
               "  it must be new or empty. --preload: rows stored before the second measurement\n"
               "  (0: only the empty store). --keep: leave the stores on disk.\n",
               error.c_str());
  std::exit(2);
}

int64_t ParseInt(std::string_view flag, const char* text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < lo || v > hi) {
    Usage(std::string(flag) + " must be an integer in [" + std::to_string(lo) + ", " +
          std::to_string(hi) + "]");
  }
  return v;
}

double ParseSeconds(std::string_view flag, const char* text) {
  char* end = nullptr;
  double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v > 0) || v > 24 * 3600) {
    Usage(std::string(flag) + " must be a number of seconds in (0, 86400]");
  }
  return v;
}

Options ParseOptions(int argc, char** argv) {
  Options opt;
  std::string engine = "all";
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--keep") {
      opt.keep = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") Usage("help");
    static constexpr std::string_view kValueFlags[] = {"--engine",
                                                       "--rows",
                                                       "--group",
                                                       "--preload",
                                                       "--dir",
                                                       "--max-seconds",
                                                       "--preload-max-seconds"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), flag) == std::end(kValueFlags)) {
      Usage("unknown option " + std::string(flag));
    }
    if (i + 1 >= argc) Usage("missing value for " + std::string(flag));
    const char* value = argv[++i];
    if (flag == "--engine") {
      engine = value;
    } else if (flag == "--rows") {
      opt.rows = ParseInt(flag, value, 1, kMaxRows);
    } else if (flag == "--group") {
      opt.group = ParseInt(flag, value, 1, kMaxGroup);
    } else if (flag == "--preload") {
      opt.preload = ParseInt(flag, value, 0, kMaxRows);
    } else if (flag == "--dir") {
      opt.dir = value;
    } else if (flag == "--max-seconds") {
      opt.max_seconds = ParseSeconds(flag, value);
    } else if (flag == "--preload-max-seconds") {
      opt.preload_max_seconds = ParseSeconds(flag, value);
    } else {
      Usage("unknown option " + std::string(flag));
    }
  }
  if (engine == "all") {
    opt.engines = {"sqlite", "sqlite-locality", "rocksdb"};
  } else if (engine == "sqlite" || engine == "sqlite-locality" || engine == "rocksdb") {
    opt.engines = {engine};
  } else {
    Usage("--engine must be sqlite, sqlite-locality, rocksdb or all");
  }
  if (opt.preload > 0 && opt.preload < opt.rows) {
    Usage("--preload must be 0 or at least --rows (the first phase already stores --rows)");
  }
  return opt;
}

// --- the workload ------------------------------------------------------------------------------

// 8-4-4-4-12 hex of 16 bytes.
std::string FormatUuid(const uint8_t b[16]) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 15]);
  }
  return out;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t Next() { return gen_(); }
  // Random version-4 UUID.
  std::string UuidV4() {
    uint8_t b[16];
    Fill(b);
    b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
    return FormatUuid(b);
  }
  // UUIDv7 (RFC 9562): 48 bits of Unix milliseconds first, then random bits, so that ids made
  // later sort later.
  std::string UuidV7(int64_t unix_ms) {
    uint8_t b[16];
    Fill(b);
    for (int i = 0; i < 6; ++i) b[i] = static_cast<uint8_t>(unix_ms >> (40 - 8 * i));
    b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x70);
    b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);
    return FormatUuid(b);
  }

 private:
  void Fill(uint8_t b[16]) {
    const uint64_t hi = gen_(), lo = gen_();
    for (int i = 0; i < 8; ++i) {
      b[i] = static_cast<uint8_t>(hi >> (8 * i));
      b[8 + i] = static_cast<uint8_t>(lo >> (8 * i));
    }
  }
  std::mt19937_64 gen_;
};

// One durable commit's worth of writes: the records and, per 25 records (one request), one
// audit event.
struct Group {
  std::vector<UsageRow> rows;
  std::vector<AuditEventRow> audits;
};

// Generates meterd's BatchMeterUsage traffic in time order. Every simulated hour each of
// kCustomers buyers reports each of kDimensions dimensions once, in a scattered order; a buyer
// belongs to one of kProducts products (each with its own seller). Record i of the run is
// (hour i / per_hour, then a bijective scatter of i % per_hour over (customer, dimension)), so
// every dedup key is new and the keys of one hour land all over the dedup index.
class Workload {
 public:
  static constexpr int64_t kCustomers = 50'000;
  static constexpr int64_t kDimensions = 4;
  static constexpr int64_t kProducts = 16;
  static constexpr int64_t kPerHour = kCustomers * kDimensions;

  Workload(uint64_t seed, bool time_ordered_ids, int64_t start_ms)
      : rng_(seed), time_ordered_ids_(time_ordered_ids), start_hour_ms_(start_ms) {
    for (int64_t p = 0; p < kProducts; ++p) {
      // AWS product codes: 25 characters of [a-z0-9].
      std::string code;
      uint64_t x = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(p + 1);
      for (int k = 0; k < 25; ++k) {
        code.push_back("abcdefghijklmnopqrstuvwxyz0123456789"[x % 36]);
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      }
      products_.push_back(code);
      sellers_.push_back(std::to_string(111'122'220'000 + p * 1'111));
      access_keys_.push_back("AKIAMETERDSELLER" + std::to_string(1000 + p));
    }
  }

  int64_t next_record() const { return next_; }

  // The next `n` records, and one audit event per started request of 25.
  void Next(int64_t n, Group* g) {
    g->rows.clear();
    g->audits.clear();
    g->rows.reserve(static_cast<size_t>(n));
    int64_t request_first = 0;  // the group's first record of the current request
    for (int64_t k = 0; k < n; ++k) {
      if (next_ % kRecordsPerRequest == 0) request_id_ = rng_.UuidV4();
      if (next_ % kRecordsPerRequest == 0 || k == 0) request_first = k;
      g->rows.push_back(Make(next_));
      ++next_;
      // A request split over two groups (a group size not a multiple of 25) gets an event in
      // each: meterd never splits one, the default group (800) never does.
      if (next_ % kRecordsPerRequest == 0 || k == n - 1) {
        g->audits.push_back(Audit(g->rows, request_first, k));
      }
    }
  }

 private:
  UsageRow Make(int64_t i) {
    static constexpr std::string_view kDimensionNames[kDimensions] = {
        "api_calls", "storage_gb", "active_users", "data_processed_gb"};
    const int64_t hour = i / kPerHour;
    const int64_t j = i % kPerHour;
    // A bijection of [0, kPerHour): the multiplier is prime to kPerHour (2^6 * 5^5).
    const int64_t scattered = static_cast<int64_t>(
        (static_cast<unsigned __int128>(j) * 2'654'435'761ULL + 12'345) % kPerHour);
    const int64_t customer = scattered / kDimensions;
    const int64_t product = customer % kProducts;
    UsageRow row;
    row.source = "BatchMeterUsage";
    row.region = "us-east-1";
    row.product_code = products_[product];
    row.seller_account = sellers_[product];
    // Buyer accounts scattered over the 12-digit space (a bijection mod 10^11).
    const int64_t account = static_cast<int64_t>(
        (static_cast<unsigned __int128>(customer) * 6'364'136'223'846'793ULL) % 100'000'000'000);
    row.customer_account = std::to_string(100'000'000'000 + account);
    if (customer % 2 == 0) {
      // Legacy SaaS customers: named by a CustomerIdentifier, with a license.
      row.customer_identifier = "cust-" + std::to_string(account) + "-acme";
      row.license_arn =
          "arn:aws:lm::" + row.customer_account + ":l-" + std::to_string(account % 100'000'000);
    }
    row.dimension = std::string(kDimensionNames[scattered % kDimensions]);
    row.usage_hour_ms = start_hour_ms_ + hour * meterd::kMillisPerHour;
    // Records arrive through the hour, in order.
    row.timestamp_ms = row.usage_hour_ms + j * meterd::kMillisPerHour / kPerHour;
    row.received_ms = row.timestamp_ms + 250;
    row.quantity = 1 + static_cast<int64_t>(rng_.Next() % 1000);
    if (customer % 10 == 3) {
      // One buyer in ten splits its usage over cost-allocation tags.
      const int64_t a = row.quantity / 2;
      row.allocations_json =
          "[{\"AllocatedUsageQuantity\":" + std::to_string(a) +
          ",\"Tags\":[{\"Key\":\"team\",\"Value\":\"team-" + std::to_string(customer % 7) +
          "\"}]},{\"AllocatedUsageQuantity\":" + std::to_string(row.quantity - a) +
          ",\"Tags\":[{\"Key\":\"env\",\"Value\":\"prod\"}]}]";
    }
    row.dedup_key =
        meterd::metering::BatchDedupKey(row.region, row.product_code, row.customer_account,
                                        row.license_arn, row.dimension, row.usage_hour_ms);
    row.record_id = time_ordered_ids_ ? rng_.UuidV7(row.received_ms) : rng_.UuidV4();
    row.request_id = request_id_;
    return row;
  }

  // The CloudTrail-shaped event of the request holding rows[first..last], about 1.5 KB.
  AuditEventRow Audit(const std::vector<UsageRow>& rows, int64_t first, int64_t last) {
    const UsageRow& r0 = rows[static_cast<size_t>(last)];
    const int64_t product = static_cast<int64_t>(
        std::find(sellers_.begin(), sellers_.end(), r0.seller_account) - sellers_.begin());
    AuditEventRow e;
    e.event_id = rng_.UuidV4();
    e.event_time_ms = r0.received_ms;
    e.event_source = "metering-marketplace.amazonaws.com";
    e.event_name = "BatchMeterUsage";
    e.account_id = r0.seller_account;
    e.access_key_id = access_keys_[static_cast<size_t>(product)];
    std::string& j = e.event_json;
    j.reserve(1600);
    j += "{\"eventVersion\":\"1.08\",\"userIdentity\":{\"type\":\"IAMUser\",\"accountId\":\"";
    j += e.account_id + "\",\"accessKeyId\":\"" + e.access_key_id + "\"},\"eventTime\":\"";
    j += meterd::FormatIso8601(e.event_time_ms);
    j += "\",\"eventSource\":\"metering-marketplace.amazonaws.com\",\"eventName\":"
         "\"BatchMeterUsage\",\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":\"10.0.4.17\","
         "\"userAgent\":\"Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#6.1 md/arch#x86_64 "
         "lang/python#3.11.6\",\"requestParameters\":{\"ProductCode\":\"";
    j += r0.product_code + "\",\"UsageRecords\":[";
    std::string results;
    for (int64_t k = first; k <= last && j.size() < 1050; ++k) {
      const UsageRow& r = rows[static_cast<size_t>(k)];
      if (k != first) {
        j += ',';
        results += ',';
      }
      j += "{\"CustomerAWSAccountId\":\"" + r.customer_account + "\",\"Dimension\":\"" +
           r.dimension + "\",\"Quantity\":" + std::to_string(r.quantity) +
           ",\"Timestamp\":" + std::to_string(r.timestamp_ms / 1000) + "}";
      results += "{\"MeteringRecordId\":\"" + r.record_id + "\",\"Status\":\"Success\"}";
    }
    j += "]},\"responseElements\":{\"Results\":[" + results;
    j += "],\"UnprocessedRecords\":[]},\"additionalEventData\":{\"httpStatus\":200,"
         "\"latencyMicros\":812,\"records\":{\"customerNotSubscribed\":0,\"duplicate\":0,"
         "\"success\":";
    j += std::to_string(last - first + 1) + ",\"unprocessed\":0}},\"requestID\":\"" +
         r0.request_id + "\",\"eventID\":\"" + e.event_id +
         "\",\"readOnly\":false,\"eventType\":\"AwsApiCall\",\"managementEvent\":false,"
         "\"recipientAccountId\":\"" +
         e.account_id + "\"}";
    return e;
  }

  Rng rng_;
  bool time_ordered_ids_;
  int64_t start_hour_ms_;
  int64_t next_ = 0;
  std::string request_id_;
  std::vector<std::string> products_, sellers_, access_keys_;
};

// --- engines -----------------------------------------------------------------------------------

class Engine {
 public:
  virtual ~Engine() = default;
  virtual Status Open(const std::string& dir) = 0;
  // Writes the group in one durable transaction; `*inserted` counts the new records.
  virtual Status Commit(const Group& g, int64_t* inserted) = 0;
  // Finishes the background work the writes left (SQLite: a full checkpoint; RocksDB: the
  // memtable flushes and the pending compactions), within kSettleMaxSeconds.
  virtual Status Settle() = 0;
};

// The locality layout: what is written together sorts together. The ledger is a rowid table
// appended in seq order (no record_id index; ids are time-ordered anyway), the unique dedup
// decision lives in a small WITHOUT ROWID table whose key starts with the usage hour (so the
// hot part of the index is the last few hours), audit events have their time index only.
constexpr const char* kLocalitySchema =
    R"SQL(
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS usage_records (
  seq INTEGER PRIMARY KEY,
  record_id TEXT NOT NULL,
  dedup_key TEXT NOT NULL,
  source TEXT NOT NULL,
  region TEXT NOT NULL,
  product_code TEXT NOT NULL,
  seller_account TEXT NOT NULL,
  customer_identifier TEXT NOT NULL,
  customer_account TEXT NOT NULL,
  license_arn TEXT NOT NULL,
  workload_id TEXT NOT NULL,
  dimension TEXT NOT NULL,
  usage_hour_ms INTEGER NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  allocations TEXT NOT NULL,
  request_id TEXT NOT NULL,
  received_ms INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS usage_records_no_update BEFORE UPDATE ON usage_records
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS usage_records_no_delete BEFORE DELETE ON usage_records
  BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE IF NOT EXISTS usage_dedup (
  usage_hour_ms INTEGER NOT NULL,
  key_hash BLOB NOT NULL,
  record_id TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (usage_hour_ms, key_hash)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS client_tokens (
  caller TEXT NOT NULL,
  token TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  record_id TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (caller, token)
);
CREATE TABLE IF NOT EXISTS usage_rollups (
  granularity INTEGER NOT NULL,
  period_ms INTEGER NOT NULL,
  product_code TEXT NOT NULL,
  customer_account TEXT NOT NULL,
  dimension TEXT NOT NULL,
  unit TEXT NOT NULL,
  tag_key TEXT NOT NULL,
  tag_value TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  records INTEGER NOT NULL,
  PRIMARY KEY (granularity, period_ms, product_code, customer_account, dimension, unit, tag_key,
               tag_value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS usage_records_by_time ON usage_records (timestamp_ms);
CREATE INDEX IF NOT EXISTS usage_records_by_account ON usage_records (customer_account,
                                                                      timestamp_ms);
CREATE TABLE IF NOT EXISTS audit_events (
  seq INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL,
  event_time_ms BIGINT NOT NULL,
  event_source TEXT NOT NULL,
  event_name TEXT NOT NULL,
  account_id TEXT NOT NULL,
  access_key_id TEXT NOT NULL,
  error_code TEXT NOT NULL,
  event TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_by_time ON audit_events (event_time_ms, event_id);
INSERT INTO schema_version (version) VALUES (2);
)SQL";

// The statements of sqlite_store.cc.
constexpr const char* kInsertUsageToday = R"SQL(
      INSERT INTO usage_records (record_id, dedup_key, source, region, product_code,
        seller_account, customer_identifier, customer_account, license_arn, workload_id,
        dimension, usage_hour_ms, timestamp_ms, quantity, allocations, request_id, received_ms)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
      ON CONFLICT (dedup_key) DO NOTHING)SQL";
constexpr const char* kInsertUsageLocality = R"SQL(
      INSERT INTO usage_records (record_id, dedup_key, source, region, product_code,
        seller_account, customer_identifier, customer_account, license_arn, workload_id,
        dimension, usage_hour_ms, timestamp_ms, quantity, allocations, request_id, received_ms,
        seq)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18))SQL";
constexpr const char* kInsertDedup = R"SQL(
      INSERT INTO usage_dedup (usage_hour_ms, key_hash, record_id, quantity, seq)
      VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (usage_hour_ms, key_hash) DO NOTHING)SQL";
constexpr const char* kInsertAuditToday = R"SQL(
      INSERT INTO audit_events (event_id, event_time_ms, event_source, event_name, account_id,
        access_key_id, error_code, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
      ON CONFLICT (event_id) DO NOTHING)SQL";
constexpr const char* kInsertAuditLocality = R"SQL(
      INSERT INTO audit_events (event_id, event_time_ms, event_source, event_name, account_id,
        access_key_id, error_code, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
      ON CONFLICT (event_time_ms, event_id) DO NOTHING)SQL";
// The rollup upsert is the SQLite store's own (store/sqlite_schema.h).
constexpr const char* kUpsertRollup = meterd::store::kSqliteUpsertRollup;

class SqliteEngine final : public Engine {
 public:
  explicit SqliteEngine(bool locality) : locality_(locality) {}
  ~SqliteEngine() override {
    checkpointer_.reset();
    for (sqlite3_stmt* s : {insert_usage_, insert_dedup_, insert_audit_, upsert_rollup_, begin_,
                            commit_, rollback_}) {
      sqlite3_finalize(s);
    }
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  Status Open(const std::string& dir) override {
    const std::string path = dir + "/meterd.db";
    if (sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      return Error("open " + path);
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    // The pragmas of SqliteBackend::Open.
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                               "PRAGMA foreign_keys=ON", "PRAGMA cache_size=-65536"}) {
      METERD_RETURN_IF_ERROR(Exec(pragma));
    }
    METERD_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    if (locality_) {
      METERD_RETURN_IF_ERROR(Exec(kLocalitySchema));
    } else {
      // Today's schema is the SQLite store's own DDL (store/sqlite_schema.h).
      METERD_RETURN_IF_ERROR(Exec(meterd::store::kSqliteSchema));
      METERD_RETURN_IF_ERROR(Exec(meterd::store::kSqliteAuditSchema));
    }
    METERD_RETURN_IF_ERROR(Exec("COMMIT"));
    // Checkpoints off the commits, as the store runs them.
    auto checkpointer = meterd::store::WalCheckpointer::Start(path, db_);
    if (!checkpointer.ok()) return checkpointer.status();
    checkpointer_ = std::move(*checkpointer);
    METERD_RETURN_IF_ERROR(
        Prepare(locality_ ? kInsertUsageLocality : kInsertUsageToday, &insert_usage_));
    if (locality_) METERD_RETURN_IF_ERROR(Prepare(kInsertDedup, &insert_dedup_));
    METERD_RETURN_IF_ERROR(
        Prepare(locality_ ? kInsertAuditLocality : kInsertAuditToday, &insert_audit_));
    METERD_RETURN_IF_ERROR(Prepare(kUpsertRollup, &upsert_rollup_));
    METERD_RETURN_IF_ERROR(Prepare("BEGIN IMMEDIATE", &begin_));
    METERD_RETURN_IF_ERROR(Prepare("COMMIT", &commit_));
    METERD_RETURN_IF_ERROR(Prepare("ROLLBACK", &rollback_));
    return Status::Ok();
  }

  Status Commit(const Group& g, int64_t* inserted) override {
    rollups_.Clear();
    METERD_RETURN_IF_ERROR(Run(begin_, "begin"));
    Status st = Write(g, inserted);
    if (st.ok()) st = Run(commit_, "commit");
    if (!st.ok() && sqlite3_get_autocommit(db_) == 0) (void)Run(rollback_, "rollback");
    return st;
  }

  Status Settle() override {
    // A checkpoint another connection runs (the checkpointer's background pass) makes this one
    // return SQLITE_BUSY at once, without the busy handler: try again until it is done.
    const SteadyClock::time_point deadline =
        SteadyClock::now() + std::chrono::seconds(static_cast<int>(kSettleMaxSeconds));
    for (;;) {
      const int rc =
          sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
      if (rc == SQLITE_OK) return Status::Ok();
      if ((rc & 0xff) != SQLITE_BUSY || SteadyClock::now() >= deadline) return Error("checkpoint");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  Status Write(const Group& g, int64_t* inserted) {
    *inserted = 0;
    for (const UsageRow& r : g.rows) {
      if (locality_) {
        // The dedup decision first (its unique key), then the ledger row.
        const meterd::Sha256Digest digest = meterd::Sha256(r.dedup_key);
        sqlite3_stmt* d = insert_dedup_;
        sqlite3_bind_int64(d, 1, r.usage_hour_ms);
        sqlite3_bind_blob(d, 2, digest.data(), 16, SQLITE_STATIC);
        BindText(d, 3, r.record_id);
        sqlite3_bind_int64(d, 4, r.quantity);
        sqlite3_bind_int64(d, 5, next_seq_);
        METERD_RETURN_IF_ERROR(Run(d, "insert dedup"));
        if (sqlite3_changes(db_) != 1) continue;  // a duplicate: the store answers from the row
      }
      sqlite3_stmt* s = insert_usage_;
      BindText(s, 1, r.record_id);
      BindText(s, 2, r.dedup_key);
      BindText(s, 3, r.source);
      BindText(s, 4, r.region);
      BindText(s, 5, r.product_code);
      BindText(s, 6, r.seller_account);
      BindText(s, 7, r.customer_identifier);
      BindText(s, 8, r.customer_account);
      BindText(s, 9, r.license_arn);
      BindText(s, 10, r.workload_id);
      BindText(s, 11, r.dimension);
      sqlite3_bind_int64(s, 12, r.usage_hour_ms);
      sqlite3_bind_int64(s, 13, r.timestamp_ms);
      sqlite3_bind_int64(s, 14, r.quantity);
      BindText(s, 15, r.allocations_json);
      BindText(s, 16, r.request_id);
      sqlite3_bind_int64(s, 17, r.received_ms);
      if (locality_) sqlite3_bind_int64(s, 18, next_seq_);
      METERD_RETURN_IF_ERROR(Run(s, "insert usage"));
      if (sqlite3_changes(db_) == 1) {
        rollups_.Add(r);
        ++*inserted;
        ++next_seq_;
      }
    }
    for (const AuditEventRow& e : g.audits) {
      sqlite3_stmt* s = insert_audit_;
      BindText(s, 1, e.event_id);
      sqlite3_bind_int64(s, 2, e.event_time_ms);
      BindText(s, 3, e.event_source);
      BindText(s, 4, e.event_name);
      BindText(s, 5, e.account_id);
      BindText(s, 6, e.access_key_id);
      BindText(s, 7, e.error_code);
      BindText(s, 8, e.event_json);
      METERD_RETURN_IF_ERROR(Run(s, "insert audit event"));
    }
    // SqliteBackend::FlushRollups: one upsert per distinct key.
    for (const auto& [key, delta] : rollups_.deltas()) {
      sqlite3_stmt* s = upsert_rollup_;
      sqlite3_bind_int64(s, 1, static_cast<int64_t>(key.granularity));
      sqlite3_bind_int64(s, 2, key.period_ms);
      BindText(s, 3, key.product_code);
      BindText(s, 4, key.customer_account);
      BindText(s, 5, key.dimension);
      BindText(s, 6, key.unit);
      BindText(s, 7, key.tag_key);
      BindText(s, 8, key.tag_value);
      sqlite3_bind_int64(s, 9, delta.quantity);
      sqlite3_bind_int64(s, 10, delta.records);
      METERD_RETURN_IF_ERROR(Run(s, "upsert rollup"));
    }
    return Status::Ok();
  }

  static void BindText(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  Status Run(sqlite3_stmt* s, const char* what) {
    const int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? Status::Ok() : Error(what);
  }
  Status Prepare(const char* sql, sqlite3_stmt** out) {
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, out, nullptr) != SQLITE_OK) {
      return Error("prepare");
    }
    return Status::Ok();
  }
  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      return Status(StatusCode::kIoError, "sqlite: " + msg);
    }
    return Status::Ok();
  }
  Status Error(const std::string& what) const {
    return Status(StatusCode::kIoError,
                  "sqlite: " + what + ": " + (db_ != nullptr ? sqlite3_errmsg(db_) : "no db"));
  }

  const bool locality_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt *insert_usage_ = nullptr, *insert_dedup_ = nullptr, *insert_audit_ = nullptr,
               *upsert_rollup_ = nullptr, *begin_ = nullptr, *commit_ = nullptr,
               *rollback_ = nullptr;
  std::unique_ptr<meterd::store::WalCheckpointer> checkpointer_;
  RollupAccumulator rollups_;
  int64_t next_seq_ = 1;
};

rocksdb::Slice AsSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

class RocksEngine final : public Engine {
 public:
  Status Open(const std::string& dir) override {
    auto opened = ledger::LedgerDb::Open(ledger::LedgerPath(dir), ledger::OpenMode::kReadWrite);
    if (!opened.ok()) return opened.status();
    db_ = std::move(*opened);
    std::string v;
    rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), db_->family(ledger::kMeta),
                                       AsSlice(ledger::kMetaNextSeq), &v);
    if (s.ok()) {
      if (!ledger::ParseFixedValue(v, &next_seq_)) {
        return Status(StatusCode::kCorruption, "next_seq");
      }
    } else if (!s.IsNotFound()) {
      return ledger::FromRocks(s, "get next_seq");
    }
    return ledger::FromRocks(
        db_->db()->Put(rocksdb::WriteOptions(), db_->family(ledger::kMeta),
                       AsSlice(ledger::kMetaSchema), ledger::FixedValue(ledger::kLayoutVersion)),
        "put schema");
  }

  Status Commit(const Group& g, int64_t* inserted) override {
    *inserted = 0;
    rollups_.Clear();
    batch_.Clear();
    in_group_.clear();
    rocksdb::DB* db = db_->db();
    const rocksdb::ReadOptions read;
    std::string existing;
    int64_t seq = next_seq_;
    for (const UsageRow& r : g.rows) {
      // The dedup check: the stored keys, then the group's own (a Get does not see the batch).
      rocksdb::Status s =
          db->Get(read, db_->family(ledger::kDedup), ledger::DedupKey(r.dedup_key), &existing);
      if (s.ok()) continue;
      if (!s.IsNotFound()) return ledger::FromRocks(s, "get dedup");
      if (!in_group_.insert(r.dedup_key).second) continue;
      for (const ledger::Entry& e : ledger::NewUsageEntries(r, seq))
        batch_.Put(db_->family(e.family), e.key, e.value);
      rollups_.Add(r);
      ++seq;
      ++*inserted;
    }
    for (const AuditEventRow& e : g.audits) {
      batch_.Put(db_->family(ledger::kAudit), ledger::AuditKey(e.event_time_ms, e.event_id),
                 ledger::EncodeAuditEvent(e));
    }
    for (const auto& [key, delta] : rollups_.deltas()) {
      batch_.Merge(db_->family(ledger::kRollups), ledger::RollupKeyBytes(key),
                   ledger::EncodeRollupDelta(delta));
    }
    batch_.Put(db_->family(ledger::kMeta), AsSlice(ledger::kMetaNextSeq), ledger::FixedValue(seq));
    batch_.Put(db_->family(ledger::kMeta), AsSlice(ledger::kMetaRows),
               ledger::FixedValue(rows_ + *inserted));
    rocksdb::WriteOptions write;
    write.sync = true;
    METERD_RETURN_IF_ERROR(ledger::FromRocks(db->Write(write, &batch_), "write group"));
    next_seq_ = seq;
    rows_ += *inserted;
    return Status::Ok();
  }

  Status Settle() override {
    rocksdb::DB* db = db_->db();
    std::vector<rocksdb::ColumnFamilyHandle*> all;
    for (int f = 0; f < ledger::kFamilyCount; ++f) all.push_back(db_->family(ledger::Family(f)));
    rocksdb::FlushOptions flush;
    flush.wait = true;
    METERD_RETURN_IF_ERROR(ledger::FromRocks(db->Flush(flush, all), "flush"));
    const SteadyClock::time_point deadline =
        SteadyClock::now() + std::chrono::seconds(static_cast<int>(kSettleMaxSeconds));
    while (SteadyClock::now() < deadline) {
      uint64_t busy = 0, v = 0;
      if (db->GetIntProperty("rocksdb.num-running-compactions", &v)) busy += v;
      if (db->GetIntProperty("rocksdb.num-running-flushes", &v)) busy += v;
      for (rocksdb::ColumnFamilyHandle* h : all) {
        if (db->GetIntProperty(h, "rocksdb.compaction-pending", &v)) busy += v;
      }
      if (busy == 0) return Status::Ok();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::fprintf(stderr, "meterd-engine-bench: rocksdb compactions still running after %.0f s\n",
                 kSettleMaxSeconds);
    return Status::Ok();
  }

 private:
  std::unique_ptr<ledger::LedgerDb> db_;
  rocksdb::WriteBatch batch_;
  std::unordered_set<std::string> in_group_;
  RollupAccumulator rollups_;
  int64_t next_seq_ = 1;
  int64_t rows_ = 0;
};

// --- measurement -------------------------------------------------------------------------------

// write_bytes of /proc/self/io: bytes this process (all its threads) caused to be written to
// the storage layer.
int64_t WriteBytes() {
  std::ifstream io("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (io >> key >> value) {
    if (key == "write_bytes:") return value;
  }
  return -1;
}

std::string LoadAverage() {
  std::ifstream f("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  f >> a >> b >> c;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %.2f %.2f", a, b, c);
  return buf;
}

int64_t DirBytes(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return total;
}

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size()))) - 1;
  return v[std::min(idx, v.size() - 1)];
}

struct PhaseResult {
  std::string engine;
  int64_t stored_before = 0;
  int64_t records = 0;
  int64_t groups = 0;
  double engine_seconds = 0;  // the sum of the commits' latencies
  double wall_seconds = 0;    // the phase, with the workload's generation
  int64_t write_bytes = 0;    // during the phase
  int64_t settle_bytes = 0;   // of the settle after it
  double settle_seconds = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  int64_t store_bytes = 0;  // on disk after the settle
  std::string load;
  bool cut_short = false;  // stopped at --max-seconds
};

// Writes `rows` records in groups of `group`, one durable commit each, until done or
// `max_seconds` passed.
Status Write(Engine& engine, Workload& workload, int64_t rows, int64_t group, double max_seconds,
             PhaseResult* out) {
  Group g;
  std::vector<double> latencies_ms;
  const SteadyClock::time_point start = SteadyClock::now();
  const SteadyClock::time_point deadline =
      start +
      std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(max_seconds));
  const int64_t bytes_before = WriteBytes();
  int64_t written = 0;
  SteadyClock::time_point last_report = start;
  while (written < rows) {
    if (SteadyClock::now() >= deadline) {
      out->cut_short = true;
      break;
    }
    workload.Next(std::min(group, rows - written), &g);
    int64_t inserted = 0;
    const SteadyClock::time_point t0 = SteadyClock::now();
    METERD_RETURN_IF_ERROR(engine.Commit(g, &inserted));
    const SteadyClock::time_point t1 = SteadyClock::now();
    if (inserted != static_cast<int64_t>(g.rows.size())) {
      return Status(StatusCode::kInternal, std::to_string(g.rows.size() - inserted) +
                                               " records met an existing dedup key");
    }
    latencies_ms.push_back(Seconds(t1 - t0) * 1e3);
    out->engine_seconds += Seconds(t1 - t0);
    written += inserted;
    ++out->groups;
    if (t1 - last_report > std::chrono::seconds(15)) {
      std::fprintf(stderr, "  ... %lld records, %.0f records/s, load %s\n",
                   static_cast<long long>(written),
                   static_cast<double>(written) / out->engine_seconds, LoadAverage().c_str());
      last_report = t1;
    }
  }
  out->wall_seconds = Seconds(SteadyClock::now() - start);
  out->write_bytes = WriteBytes() - bytes_before;
  out->records = written;
  out->p50_ms = Percentile(latencies_ms, 0.50);
  out->p99_ms = Percentile(latencies_ms, 0.99);
  out->max_ms = Percentile(latencies_ms, 1.0);
  return Status::Ok();
}

Status Measure(Engine& engine, Workload& workload, const std::string& dir, const Options& opt,
               PhaseResult* out) {
  out->stored_before = workload.next_record();
  METERD_RETURN_IF_ERROR(Write(engine, workload, opt.rows, opt.group, opt.max_seconds, out));
  out->load = LoadAverage();
  const int64_t before = WriteBytes();
  const SteadyClock::time_point t0 = SteadyClock::now();
  METERD_RETURN_IF_ERROR(engine.Settle());
  out->settle_seconds = Seconds(SteadyClock::now() - t0);
  out->settle_bytes = WriteBytes() - before;
  out->store_bytes = DirBytes(dir);
  std::fprintf(stderr,
               "  %s at %lld stored: %lld records in %.1f s (engine), %.0f records/s, p50 %.2f ms,"
               " p99 %.2f ms, %.0f B/record written (+%.0f settling)\n",
               out->engine.c_str(), static_cast<long long>(out->stored_before),
               static_cast<long long>(out->records), out->engine_seconds,
               static_cast<double>(out->records) / out->engine_seconds, out->p50_ms, out->p99_ms,
               static_cast<double>(out->write_bytes) / static_cast<double>(out->records),
               static_cast<double>(out->settle_bytes) / static_cast<double>(out->records));
  return Status::Ok();
}

std::unique_ptr<Engine> MakeEngine(const std::string& name) {
  if (name == "sqlite") return std::make_unique<SqliteEngine>(false);
  if (name == "sqlite-locality") return std::make_unique<SqliteEngine>(true);
  return std::make_unique<RocksEngine>();
}

Status RunEngine(const std::string& name, const std::string& dir, const Options& opt,
                 std::vector<PhaseResult>* results) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kIoError, "mkdir " + dir + ": " + ec.message());
  std::unique_ptr<Engine> engine = MakeEngine(name);
  METERD_RETURN_IF_ERROR(engine->Open(dir));
  // Every engine sees the same records (the seed), in simulated hours from a fixed start; only
  // the record ids' kind differs (time-ordered for the locality layout).
  const int64_t start_ms = meterd::FloorToHour(1'798'761'600'000);  // 2027-01-01T00:00Z
  Workload workload(20'261'127, name == "sqlite-locality", start_ms);

  std::fprintf(stderr, "meterd-engine-bench: %s, empty store (load %s)\n", name.c_str(),
               LoadAverage().c_str());
  PhaseResult empty;
  empty.engine = name;
  METERD_RETURN_IF_ERROR(Measure(*engine, workload, dir, opt, &empty));
  results->push_back(empty);

  if (opt.preload > 0) {
    const int64_t top_up = opt.preload - workload.next_record();
    std::fprintf(stderr, "meterd-engine-bench: %s, preloading %lld more rows (load %s)\n",
                 name.c_str(), static_cast<long long>(top_up), LoadAverage().c_str());
    PhaseResult preload;
    METERD_RETURN_IF_ERROR(
        Write(*engine, workload, top_up, kPreloadGroup, opt.preload_max_seconds, &preload));
    std::fprintf(stderr, "  preloaded %lld rows in %.1f s%s; settling\n",
                 static_cast<long long>(preload.records), preload.wall_seconds,
                 preload.cut_short ? " (stopped at --preload-max-seconds)" : "");
    METERD_RETURN_IF_ERROR(engine->Settle());
    PhaseResult full;
    full.engine = name;
    METERD_RETURN_IF_ERROR(Measure(*engine, workload, dir, opt, &full));
    results->push_back(full);
  }
  return Status::Ok();
}

std::string Thousands(int64_t v) {
  const std::string digits = std::to_string(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

void PrintTable(const Options& opt, const std::string& started, const std::string& load_before,
                const std::vector<PhaseResult>& results) {
  utsname u{};
  uname(&u);
  std::printf("- date: %s (started %s)\n", Now().c_str(), started.c_str());
  std::printf("- machine: %u cores (nproc), Linux %s %s; load average before: %s, after: %s\n",
              std::thread::hardware_concurrency(), u.release, u.machine, load_before.c_str(),
              LoadAverage().c_str());
  std::printf("- engines: SQLite %s, RocksDB %d.%d.%d\n", sqlite3_libversion(), ROCKSDB_MAJOR,
              ROCKSDB_MINOR, ROCKSDB_PATCH);
  std::printf(
      "- workload: %lld records per phase, groups of %lld records per durable commit (%lld "
      "requests of %lld, one ~1.5 KB audit event each), one writer thread; second phase after "
      "a preload to %s rows\n\n",
      static_cast<long long>(opt.rows), static_cast<long long>(opt.group),
      static_cast<long long>((opt.group + kRecordsPerRequest - 1) / kRecordsPerRequest),
      static_cast<long long>(kRecordsPerRequest), Thousands(opt.preload).c_str());
  std::printf(
      "| engine | rows stored before | records | commits/s | records/s | written B/record | "
      "+ settle B/record | p50 commit ms | p99 commit ms | store MiB after | load (1/5/15 min) "
      "|\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (const PhaseResult& r : results) {
    const double recs = static_cast<double>(std::max<int64_t>(r.records, 1));
    std::printf(
        "| %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.engine.c_str(),
        Thousands(r.stored_before).c_str(), Thousands(r.records).c_str(),
        r.cut_short ? " (cut at --max-seconds)" : "",
        Fixed(static_cast<double>(r.groups) / r.engine_seconds, 1).c_str(),
        Thousands(static_cast<int64_t>(static_cast<double>(r.records) / r.engine_seconds)).c_str(),
        Thousands(static_cast<int64_t>(static_cast<double>(r.write_bytes) / recs)).c_str(),
        Thousands(static_cast<int64_t>(static_cast<double>(r.settle_bytes) / recs)).c_str(),
        Fixed(r.p50_ms, 2).c_str(), Fixed(r.p99_ms, 2).c_str(),
        Fixed(static_cast<double>(r.store_bytes) / (1 << 20), 0).c_str(), r.load.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = ParseOptions(argc, argv);
  std::string root = opt.dir;
  bool remove_root = false;
  std::error_code ec;
  if (root.empty()) {
    std::string tmpl = (fs::temp_directory_path(ec) / "meterd-engine-bench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("meterd-engine-bench: mkdtemp");
      return 1;
    }
    root = tmpl;
    remove_root = !opt.keep;
  } else if (fs::exists(root, ec) && !fs::is_empty(root, ec)) {
    Usage("--dir " + root + " is not empty");
  }
  const std::string started = Now();
  const std::string load_before = LoadAverage();
  std::fprintf(stderr, "meterd-engine-bench: stores in %s\n", root.c_str());

  std::vector<PhaseResult> results;
  int rc = 0;
  for (const std::string& name : opt.engines) {
    const std::string dir = root + "/" + name;
    Status st = RunEngine(name, dir, opt, &results);
    if (!st.ok()) {
      std::fprintf(stderr, "meterd-engine-bench: %s: %s\n", name.c_str(), st.ToString().c_str());
      rc = 1;
    }
    // The next engine starts on a quiet disk: this one's files go now.
    if (!opt.keep) fs::remove_all(dir, ec);
  }
  if (remove_root) fs::remove_all(root, ec);
  PrintTable(opt, started, load_before, results);
  return rc;
}
