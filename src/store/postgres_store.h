// The shared backend: PostgreSQL through libpq, so that several meterd nodes keep one ledger.
// Every decision about money is made by a unique key in the database, never by one node's
// memory, and a group commit costs two round trips whatever its size:
//
//  1. Prefetch: the keys every unit of the group declared (WriteUnit::reads) are read in one
//     pipeline. Transaction reads are answered from that snapshot plus the group's own writes
//     (an undeclared key costs a query of its own).
//  2. Commit: the buffered writes go out as multi-row INSERT ... ON CONFLICT DO NOTHING
//     statements between BEGIN and COMMIT, in one pipeline. A row the group decided on because
//     it was absent (a ledger row, a ClientToken) is checked in the same statement: if another
//     node inserted it in the meantime, the statement fails the transaction, nothing of the
//     group is written, and GroupCommitStore runs the group again (ShouldRetryGroup), which then
//     reads the winner's row and answers as one node would (the idempotent answer,
//     DuplicateRecord, IdempotencyConflict). Serialization failures and deadlocks are retried
//     the same way.
//
// Listing reads and writes with a result (ListOpenRuns, LatestCatalog, DeleteRegistrationToken,
// ...) open the transaction early and run in it.
//
// A lost connection fails the group with kIoError (InternalServiceErrorException, retryable);
// nothing is acknowledged before COMMIT returned ok; the next group reconnects. The writer
// thread owns one connection; CountUsageRows, from any thread, uses a small pool of its own.
//
// The schema is created and migrated by meterd (table schema_version); nodes starting at once
// serialize on a row lock of that table, so each step is applied once.
#pragma once

#include <memory>
#include <string>

#include "store/group_commit.h"

namespace meterd::store {

// True for the URLs this backend takes ("postgresql://..." or "postgres://...").
bool IsPostgresUrl(const std::string& url);

// Connects to `url` (a libpq connection URI) and creates or migrates the schema.
Result<std::unique_ptr<Backend>> OpenPostgresBackend(const std::string& url);

}  // namespace meterd::store
