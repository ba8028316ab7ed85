// The one place that picks a store backend (and the reader of its ledger that goes with it).
#include <sys/stat.h>

#include "store/embedded_store.h"
#include "store/memory_store.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"
#include "store/store.h"
#include "store/usage_reader.h"

namespace meterd::store {

namespace {

// The memory backend's reader is the backend itself, owned by the store.
class BorrowedReader final : public UsageReader {
 public:
  explicit BorrowedReader(UsageReader* target) : target_(target) {}
  Result<UsagePage> ListUsage(const UsageFilter& filter, const std::optional<LedgerPosition>& after,
                              size_t limit) override {
    return target_->ListUsage(filter, after, limit);
  }
  Result<std::vector<RollupRow>> ReadRollups(const RollupQuery& q) override {
    return target_->ReadRollups(q);
  }

 private:
  UsageReader* target_;
};

}  // namespace

OpenedStore::OpenedStore() = default;
OpenedStore::OpenedStore(OpenedStore&&) noexcept = default;
OpenedStore& OpenedStore::operator=(OpenedStore&&) noexcept = default;
OpenedStore::~OpenedStore() = default;

Result<OpenedStore> OpenStoreWithReader(const std::string& url, const StoreOptions& options) {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<UsageReader> reader;
  if (url.empty() || url == "embedded") {
    if (options.data_dir.empty()) return Status(StatusCode::kInvalidArgument, "--data is required");
    mkdir(options.data_dir.c_str(), 0700);
    auto opened = OpenEmbeddedBackend(options.data_dir);
    if (!opened.ok()) return opened.status();
    backend = std::move(opened).value();
    reader = NewEmbeddedUsageReader(backend.get());
  } else if (url == "sqlite") {
    if (options.data_dir.empty()) return Status(StatusCode::kInvalidArgument, "--data is required");
    mkdir(options.data_dir.c_str(), 0700);
    auto opened = OpenSqliteBackend(options.data_dir);
    if (!opened.ok()) return opened.status();
    backend = std::move(opened).value();
    // After the backend: it created or migrated the schema the reader reads.
    auto opened_reader = OpenSqliteUsageReader(options.data_dir);
    if (!opened_reader.ok()) return opened_reader.status();
    reader = std::move(opened_reader).value();
  } else if (IsPostgresUrl(url)) {
    auto opened = OpenPostgresBackend(url);
    if (!opened.ok()) return opened.status();
    backend = std::move(opened).value();
    reader = NewPostgresUsageReader(PostgresBackendReadPool(backend.get()));
  } else if (url == "memory") {
    backend = NewMemoryBackend();
    reader = std::make_unique<BorrowedReader>(MemoryBackendReader(backend.get()));
  } else {
    return Status(
        StatusCode::kInvalidArgument,
        "unknown store \"" + url + "\" (use embedded, sqlite, postgresql://... or memory)");
  }
  OpenedStore out;
  out.store = std::make_unique<GroupCommitStore>(std::move(backend), options.max_group_units);
  out.reader = std::move(reader);
  return out;
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options) {
  auto opened = OpenStoreWithReader(url, options);
  if (!opened.ok()) return opened.status();
  return std::move(opened->store);
}

}  // namespace meterd::store
