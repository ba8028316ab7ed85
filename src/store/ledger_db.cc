#include "store/ledger_db.h"

#include <rocksdb/cache.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/rate_limiter.h>
#include <rocksdb/sst_file_manager.h>
#include <rocksdb/table.h>
#include <rocksdb/write_buffer_manager.h>

namespace meterd::store::ledger {

namespace {

// Sums the (quantity, records) pairs of one rollup key: a write adds its delta without reading
// the current total, so a group's rollups cost one merge operand per distinct key.
class RollupSum final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& /*key*/, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    RollupDelta sum, add;
    if (existing != nullptr &&
        !DecodeRollupDelta(std::string_view(existing->data(), existing->size()), &sum)) {
      return false;
    }
    if (!DecodeRollupDelta(std::string_view(value.data(), value.size()), &add)) return false;
    sum.quantity += add.quantity;
    sum.records += add.records;
    *new_value = EncodeRollupDelta(sum);
    return true;
  }
  const char* Name() const override { return "meterd.RollupSum"; }
};

// Memory: one budget for the whole process, whatever the ledger's size. Memtables are charged
// to the block cache, so RSS stays near kCacheBytes plus RocksDB's small fixed overhead.
constexpr size_t kCacheBytes = size_t{128} << 20;
constexpr size_t kMemtableBudgetBytes = size_t{64} << 20;
constexpr size_t kWriteBufferBytes = size_t{32} << 20;  // the hot families' memtable size

// Index and filter blocks are what every look-up reads first (a new record's dedup probe reads one
// filter per level), so they have the cache's high-priority pool: data blocks and the memtables'
// charges cannot push them out. Few shards: a shard's share of the cache must hold many of them.
std::shared_ptr<rocksdb::Cache> NewCache() {
  rocksdb::LRUCacheOptions cache;
  cache.capacity = kCacheBytes;
  cache.num_shard_bits = 4;
  cache.high_pri_pool_ratio = 0.5;
  return rocksdb::NewLRUCache(cache);
}

struct SharedResources {
  std::shared_ptr<rocksdb::Cache> cache = NewCache();
  std::shared_ptr<rocksdb::WriteBufferManager> write_buffers =
      std::make_shared<rocksdb::WriteBufferManager>(kMemtableBudgetBytes, cache);
  std::shared_ptr<const rocksdb::FilterPolicy> bloom{rocksdb::NewBloomFilterPolicy(10)};
  std::shared_ptr<rocksdb::MergeOperator> rollup_sum = std::make_shared<RollupSum>();
};

// The families a BatchMeterUsage writes across every hour it reports (a day back), not in order.
bool WrittenAcrossRecentHours(Family family) {
  return family == kUsageByTime || family == kUsageByAccount || family == kDedup ||
         family == kRollups;
}

rocksdb::ColumnFamilyOptions FamilyOptions(const SharedResources& shared, Family family) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = shared.cache;
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  // Partitioned index and filters: a look-up reads one 4 KiB partition of a file's filter, not
  // the whole filter (megabytes for a big file, read and checksummed again whenever it had left
  // the cache: 64 % of the writer's time at 2 M rows before this). The top level stays pinned.
  table.index_type = rocksdb::BlockBasedTableOptions::IndexType::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.pin_top_level_index_and_filter = true;
  table.format_version = 5;
  // XXH3 block checksums: this librocksdb's crc32c is the portable (slow) one.
  table.checksum = rocksdb::kXXH3;
  // Bloom filters where a point look-up usually misses: a new record's dedup key, a new
  // ClientToken, a first call's entitlement. Time-ordered families are scanned, not probed.
  if (family == kDedup || family == kClientTokens || family == kEntitlements ||
      family == kRegistrationTokens || family == kRuns) {
    table.filter_policy = shared.bloom;
    table.whole_key_filtering = true;
    // And in the memtable: a look-up of an absent key skips the skip list.
    cf.memtable_prefix_bloom_size_ratio = 0.05;
    cf.memtable_whole_key_filtering = true;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.write_buffer_size = kWriteBufferBytes;
  cf.max_write_buffer_number = 3;
  // One compression on every level: RocksDB moves a file down a level without rewriting it (a
  // trivial move: the ledger's append-only families, whose files never overlap) only when both
  // levels compress alike. None, because two cores are CPU-bound long before the disk is
  // (about 300 bytes a record at 60,000 records/s is 18 MB/s).
  cf.compression = rocksdb::kNoCompression;
  cf.bottommost_compression = rocksdb::kNoCompression;
  if (family == kRollups) cf.merge_operator = shared.rollup_sum;
  if (family == kUsage || family == kAudit) {
    // Appended in key order (by seq, by time), so their L0 files barely overlap and a read of
    // them costs little per file; their compactions are cheap but wait behind the long ones of
    // the other families. Many L0 files here are not a debt worth stalling the writer for.
    cf.level0_slowdown_writes_trigger = 96;
    cf.level0_stop_writes_trigger = 160;
  }
  if (WrittenAcrossRecentHours(family)) {
    // Keyed by time first, but a batch writes across every hour it reports (a day back): each
    // flush overlaps all of the recent window, and leveled compaction rewrote that whole window
    // of the base level at every L0 -> L1 merge, a cost that grew with the records of the last
    // hours (2.3 M records in 40 s: 5.5 to 6.3 rewrites each, 0.3 of a core). Universal
    // (tiered) compaction merges sorted runs of similar size instead: an entry is rewritten
    // about log2 of the runs it passes through, and a look-up probes one filter per run (about 8
    // at most before a merge). The oldest run, the bulk of the history, is rewritten only when
    // the newer runs reach twice its size: a constant number of rewrites per entry, amortized.
    // Measured in docs/STORAGE.md "Universal compaction and the allocator". A store written
    // with leveled compaction opens as it is: each non-empty level is taken as one sorted run.
    cf.compaction_style = rocksdb::kCompactionStyleUniversal;
    cf.compaction_options_universal.size_ratio = 1;
    cf.compaction_options_universal.max_size_amplification_percent = 200;
    cf.level0_file_num_compaction_trigger = 8;
    cf.level0_slowdown_writes_trigger = 40;
    cf.level0_stop_writes_trigger = 60;
  } else {
    cf.level_compaction_dynamic_level_bytes = true;
  }
  return cf;
}

const SharedResources& Shared() {
  static const SharedResources* shared = [] {
    // Compactions run niced: on two cores they would otherwise take the CPU from the event loops
    // and the writer, and every request waiting behind them shows in the tail. Flushes do not:
    // a flush that falls behind stops every write (three immutable memtables), so it is on the
    // writer's path.
    rocksdb::Env* env = rocksdb::Env::Default();
    (void)env->LowerThreadPoolCPUPriority(rocksdb::Env::Priority::LOW, rocksdb::CpuPriority::kLow);
    return new SharedResources();
  }();
  return *shared;
}

}  // namespace

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  const StatusCode code = s.IsCorruption() ? StatusCode::kCorruption : StatusCode::kIoError;
  return Status(code, "rocksdb: " + what + ": " + s.ToString());
}

std::string LedgerPath(const std::string& data_dir) { return data_dir + "/ledger"; }

LedgerDb::~LedgerDb() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* h : families_) {
    if (h != nullptr) (void)db_->DestroyColumnFamilyHandle(h);
  }
  (void)db_->Close();
}

Result<std::unique_ptr<LedgerDb>> LedgerDb::Open(const std::string& path, OpenMode mode,
                                                 const std::string& secondary_path) {
  const SharedResources& shared = Shared();
  rocksdb::DBOptions options;
  options.create_if_missing = mode == OpenMode::kReadWrite;
  options.create_missing_column_families = mode == OpenMode::kReadWrite;
  options.write_buffer_manager = shared.write_buffers;
  // One flush and five compaction threads (niced, so they take only the CPU the requests leave):
  // with one, a long compaction of the dedup family held back the ledger's cheap L0 -> L1 moves
  // until writes stalled on 36 L0 files (seconds of p99 after a 10 M preload).
  options.max_background_jobs = 6;
  options.bytes_per_sync = size_t{1} << 20;
  // Flushes and compactions write in bursts of hundreds of MB; unpaced, they fill the disk's
  // queue and a group's WAL fsync waits behind them for seconds. An auto-tuned limiter keeps
  // their writes paced (it raises the rate when they fall behind).
  options.rate_limiter.reset(rocksdb::NewGenericRateLimiter(int64_t{256} << 20, int64_t{100000}, 10,
                                                            rocksdb::RateLimiter::Mode::kWritesOnly,
                                                            /*auto_tuned=*/true));
  options.wal_bytes_per_sync = 0;  // the group commit syncs the WAL itself
  if (mode == OpenMode::kReadWrite) {
    // Obsolete WALs and SSTs (tens of MB each, after every flush and compaction) are deleted in
    // 4 MiB truncations at up to 256 MB/s, not unlinked whole: one unlink of a 64 MB file freed
    // its extents in one ext4 journal commit (13-16 ms), and the group's WAL fdatasync waited
    // for that commit (9-11 ms), which was most of the p99 at half the peak rate. The trash may
    // reach the live files' size before a deletion goes direct again.
    options.sst_file_manager.reset(rocksdb::NewSstFileManager(
        rocksdb::Env::Default(), /*info_log=*/nullptr, /*trash_dir=*/"",
        /*rate_bytes_per_sec=*/int64_t{256} << 20, /*delete_existing_trash=*/true,
        /*status=*/nullptr, /*max_trash_db_ratio=*/1.0,
        /*bytes_max_delete_chunk=*/uint64_t{4} << 20));
  }
  // Every family is flushed together and recorded in the MANIFEST as one change, so that a
  // reader of the files (a secondary: `meterd dump`) never sees one family of a group without
  // the others.
  options.atomic_flush = true;
  // A torn last WAL record (a crash mid-write, before its group was answered) is dropped on
  // recovery; every record before it is kept.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  options.max_total_wal_size = size_t{256} << 20;
  options.keep_log_file_num = 4;
  options.max_log_file_size = size_t{8} << 20;  // RocksDB's own info LOG, rolled at 8 MiB
  options.max_manifest_file_size = size_t{64} << 20;
  if (mode == OpenMode::kSecondary) options.max_open_files = -1;

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.reserve(kFamilyCount);
  for (int f = 0; f < kFamilyCount; ++f) {
    descriptors.emplace_back(FamilyNames()[f], FamilyOptions(shared, static_cast<Family>(f)));
  }
  std::unique_ptr<LedgerDb> out(new LedgerDb());
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = mode == OpenMode::kReadWrite
                          ? rocksdb::DB::Open(options, path, descriptors, &out->families_, &raw)
                          : rocksdb::DB::OpenAsSecondary(options, path, secondary_path, descriptors,
                                                         &out->families_, &raw);
  if (!s.ok()) return FromRocks(s, "open " + path);
  out->db_.reset(raw);
  return out;
}

}  // namespace meterd::store::ledger
