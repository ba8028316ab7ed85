// The one place that picks a store backend.
#include <sys/stat.h>

#include "store/memory_store.h"
#include "store/postgres_store.h"
#include "store/sqlite_store.h"
#include "store/store.h"

namespace meterd::store {

Result<std::unique_ptr<Store>> OpenStore(const std::string& url, const StoreOptions& options) {
  std::unique_ptr<Backend> backend;
  if (url.empty() || url == "sqlite") {
    if (options.data_dir.empty()) return Status(StatusCode::kInvalidArgument, "--data is required");
    mkdir(options.data_dir.c_str(), 0700);
    auto opened = OpenSqliteBackend(options.data_dir);
    if (!opened.ok()) return opened.status();
    backend = std::move(opened).value();
  } else if (IsPostgresUrl(url)) {
    auto opened = OpenPostgresBackend(url);
    if (!opened.ok()) return opened.status();
    backend = std::move(opened).value();
  } else if (url == "memory") {
    backend = NewMemoryBackend();
  } else {
    return Status(StatusCode::kInvalidArgument,
                  "unknown store \"" + url + "\" (use sqlite, postgresql://... or memory)");
  }
  return std::unique_ptr<Store>(
      std::make_unique<GroupCommitStore>(std::move(backend), options.max_group_units));
}

}  // namespace meterd::store
