// The embedded backend (the default store): RocksDB in `<data_dir>/ledger/`, laid out by
// store/ledger_codec.h and tuned by store/ledger_db.h (docs/STORAGE.md says why this engine).
//
// A group is one rocksdb::WriteBatchWithIndex: the units' reads see the group's own writes
// (two identical records in one group: the second is a duplicate), and the commit is one
// DB::Write with sync=true, so a group is all or nothing and durable before any unit is
// answered. Rollups are merge operands (no read at write time); the ledger's seq and row count
// are written with each group. A data dir of the SQLite layout (`meterd.db`) is migrated once,
// at open (store/sqlite_migration.h).
//
// The readers (AuditReader, the reports' UsageReader) read the committed state through the same
// DB from any thread, apart from the writer.
#pragma once

#include <memory>
#include <string>

#include "store/group_commit.h"

namespace meterd::store {

class UsageReader;  // store/usage_reader.h

// Opens (creating, or migrating from the SQLite layout) the embedded store of `data_dir`.
Result<std::unique_ptr<Backend>> OpenEmbeddedBackend(const std::string& data_dir);

// The usage reader of a backend made by OpenEmbeddedBackend; valid while the backend lives.
std::unique_ptr<UsageReader> NewEmbeddedUsageReader(Backend* embedded_backend);

}  // namespace meterd::store
