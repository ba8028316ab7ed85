// The embedded backend: SQLite in WAL mode with synchronous=FULL, so a COMMIT that returned is
// on disk. One connection for the writer thread (all statements prepared once), one for reads.
#pragma once

#include <memory>
#include <string>

#include "store/group_commit.h"

namespace meterd::store {

// Opens (creating or migrating) `<data_dir>/meterd.db`.
Result<std::unique_ptr<Backend>> OpenSqliteBackend(const std::string& data_dir);

}  // namespace meterd::store
