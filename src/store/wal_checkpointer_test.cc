#include "store/wal_checkpointer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "store/store.h"

namespace meterd::store {
namespace {

constexpr int64_t kHourMs = 3'600'000;

UsageRow Row(int64_t i) {
  UsageRow row;
  row.record_id = "record-" + std::to_string(i);
  row.dedup_key = "key-" + std::to_string(i);
  row.source = "BatchMeterUsage";
  row.region = "us-east-1";
  row.product_code = "prod";
  row.seller_account = "111122223333";
  row.customer_account = std::to_string(100000000000 + i % 50);
  row.dimension = "api_calls";
  row.usage_hour_ms = 1'793'491'200'000 + (i / 50) * kHourMs;
  row.timestamp_ms = row.usage_hour_ms + 1;
  row.quantity = 1;
  // Bulk, so that the WAL grows by megabytes per few hundred commits.
  row.request_id = std::string(2000, static_cast<char>('a' + i % 26));
  row.received_ms = row.timestamp_ms;
  return row;
}

uintmax_t FileSize(const std::filesystem::path& path) {
  std::error_code ec;
  uintmax_t size = std::filesystem::file_size(path, ec);
  return ec ? 0 : size;
}

// Under a steady stream of commits (far more than the WAL's finish size) the WAL file stays
// bounded, the frames reach the main file while the store is open, and every row is there after
// a reopen.
TEST(WalCheckpointerTest, WalStaysBoundedAndEveryCommittedRowSurvivesAReopen) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("meterd-wal-checkpointer-test-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  StoreOptions options;
  options.data_dir = dir.string();
  constexpr int kUnits = 600;
  constexpr int kRowsPerUnit = 25;  // ~30 MB of rows: about twice the finish size in WAL frames
  uintmax_t largest_wal = 0;
  {
    auto store = OpenStore("sqlite", options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int u = 0; u < kUnits; ++u) {
      Status st = SubmitAndWait(store->get(), [u](Transaction& txn) {
        for (int r = 0; r < kRowsPerUnit; ++r) {
          auto existing = txn.InsertUsageIfAbsent(Row(int64_t{u} * kRowsPerUnit + r));
          if (!existing.ok()) return existing.status();
        }
        return Status::Ok();
      });
      ASSERT_TRUE(st.ok()) << st.ToString();
      largest_wal = std::max(largest_wal, FileSize(dir / "meterd.db-wal"));
    }
    // Checkpointed while open: the main file holds most of the data already.
    EXPECT_GT(FileSize(dir / "meterd.db"), uintmax_t{16} << 20);
    (*store)->Close();
  }
  // The finish size (16 MiB) plus what one background pass lets through; without a finishing
  // pass the WAL would hold all ~60 MB of frames.
  EXPECT_LT(largest_wal, uintmax_t{40} << 20);

  auto reopened = OpenStore("sqlite", options);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto rows = (*reopened)->CountUsageRows();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*rows, int64_t{kUnits} * kRowsPerUnit);
  (*reopened)->Close();
  reopened->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace meterd::store
