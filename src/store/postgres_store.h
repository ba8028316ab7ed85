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
// The same pipeline carries the group's audit events (multi-row INSERT ... ON CONFLICT DO
// NOTHING) and, after the ledger rows, the group's rollup deltas (store/rollup.h: one upsert row
// per distinct key, INSERT ... ON CONFLICT DO UPDATE adding to the totals). A re-run group
// starts from nothing: the deltas and events of the failed attempt are dropped with it.
//
// Listing reads and writes with a result (ListOpenRuns, LatestCatalog, DeleteRegistrationToken,
// DeleteAuditEventsBefore, ...) open the transaction early and run in it.
//
// A lost connection fails the group with kIoError (InternalServiceErrorException, retryable);
// nothing is acknowledged before COMMIT returned ok; the next group reconnects. The writer
// thread owns one connection; reads from other threads (CountUsageRows, the AuditReader, the
// UsageReader) share a small pool of their own (store/postgres_connection.h).
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

class PgReadPool;
// The read pool of a backend opened by OpenPostgresBackend (shared: it outlives the backend if
// a reader holds it); nullptr for any other backend.
std::shared_ptr<PgReadPool> PostgresBackendReadPool(Backend* backend);

}  // namespace meterd::store
