#include "store/ledger_db.h"

#include <gtest/gtest.h>
#include <rocksdb/options.h>

#include <string>
#include <vector>

#include "common/temp_dir.h"

namespace meterd::store::ledger {
namespace {

// A store written before the windowed families moved to universal compaction: every family
// leveled (RocksDB's defaults), its data compacted down to the last level. LedgerDb opens it with
// universal compaction for those families; nothing written before may go missing, and new writes
// and compactions must work on it.
TEST(LedgerDbTest, AStoreWrittenWithLeveledCompactionOpensAndKeepsEveryEntry) {
  TempDir dir;
  const std::string path = dir.path() + "/ledger";
  constexpr int kOld = 2000;
  auto key = [](int i) { return UsageByTimeKey(1'700'000'000'000 + i, i); };
  {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : FamilyNames()) {
      rocksdb::ColumnFamilyOptions cf;
      cf.level_compaction_dynamic_level_bytes = true;  // as the leveled layout was opened
      descriptors.emplace_back(name, cf);
    }
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, descriptors, &handles, &raw).ok());
    for (int i = 0; i < kOld; ++i) {
      ASSERT_TRUE(raw->Put({}, handles[kUsageByTime], key(i), "").ok());
      ASSERT_TRUE(raw->Put({}, handles[kDedup], "d" + std::to_string(i), EncodeDedupValue(i)).ok());
      if (i % 500 == 499) {
        ASSERT_TRUE(raw->Flush({}, handles).ok());
      }
    }
    for (auto* h : handles) ASSERT_TRUE(raw->CompactRange({}, h, nullptr, nullptr).ok());
    for (auto* h : handles) ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    ASSERT_TRUE(raw->Close().ok());
    delete raw;
  }

  auto opened = LedgerDb::Open(path, OpenMode::kReadWrite);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  LedgerDb& db = **opened;
  for (int i = kOld; i < 2 * kOld; ++i) {
    ASSERT_TRUE(db.db()->Put({}, db.family(kUsageByTime), key(i), "").ok());
    ASSERT_TRUE(
        db.db()->Put({}, db.family(kDedup), "d" + std::to_string(i), EncodeDedupValue(i)).ok());
    if (i % 500 == 499) {
      ASSERT_TRUE(db.db()->Flush({}, db.family(kUsageByTime)).ok());
    }
  }
  ASSERT_TRUE(db.db()->CompactRange({}, db.family(kUsageByTime), nullptr, nullptr).ok());
  ASSERT_TRUE(db.db()->CompactRange({}, db.family(kDedup), nullptr, nullptr).ok());

  int seen = 0;
  std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator({}, db.family(kUsageByTime)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ASSERT_EQ(it->key().ToString(), key(seen));
    ++seen;
  }
  ASSERT_TRUE(it->status().ok());
  EXPECT_EQ(seen, 2 * kOld);
  for (int i : {0, kOld - 1, kOld, 2 * kOld - 1}) {
    std::string value;
    ASSERT_TRUE(db.db()->Get({}, db.family(kDedup), "d" + std::to_string(i), &value).ok()) << i;
    int64_t seq = -1;
    ASSERT_TRUE(DecodeDedupValue(value, &seq));
    EXPECT_EQ(seq, i);
  }
}

}  // namespace
}  // namespace meterd::store::ledger
