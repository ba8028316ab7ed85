// The one-time move of a data dir from the SQLite layout (`<data_dir>/meterd.db`,
// sqlite_schema.h) to the embedded RocksDB layout (`<data_dir>/ledger/`, ledger_codec.h).
//
// Call it at start-up, before the embedded store opens `<data_dir>/ledger`, from the one thread
// that owns the data dir (no other process may be using it). It is crash-safe: the RocksDB
// database is built in `<data_dir>/ledger.migrating` and renamed to `ledger` only once it is
// complete and durable, so while `ledger` does not exist a start simply redoes the migration
// from scratch; the SQLite file is renamed to `meterd.db.migrated` (kept, never deleted) only
// after `ledger` exists, and a start that finds both finishes that rename.
#pragma once

#include <string>

#include "common/status.h"

namespace meterd::store {

// When `<data_dir>/meterd.db` exists and `<data_dir>/ledger` does not: upgrades the SQLite file
// to the current SQLite schema (through OpenSqliteBackend, which also backfills rollups of a
// schema-1 file), copies every table into a new RocksDB ledger (each ledger row keeps its seq;
// kMetaNextSeq = max seq + 1, kMetaRows, kMetaSchema, kMetaMigratedFrom = "sqlite schema N,
// R rows, <date>"; rollups as their exact totals), makes it `<data_dir>/ledger` and renames
// meterd.db (and its -wal/-shm) to meterd.db.migrated (meterd.db.migrated.2, .3, ... when that
// name is taken).
// When both exist and the ledger says it was migrated (kMetaMigratedFrom): finishes the renames
// of an interrupted migration. When both exist otherwise: kInvalidArgument (which one is the
// store is for a person to decide). Nothing to do (no meterd.db): Ok.
// `*summary`, when not null, gets one line for the log of what was done ("" when nothing).
Status MigrateSqliteLayoutIfPresent(const std::string& data_dir, std::string* summary = nullptr);

}  // namespace meterd::store
