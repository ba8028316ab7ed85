// LedgerDb: the embedded store's RocksDB database (`<data_dir>/ledger/`) opened with every column
// family of store/ledger_codec.h and the options the write path is tuned for (docs/STORAGE.md):
// one WAL synced once per group commit, bloom filters on the point-looked-up families, a
// merge operator that sums rollups, and one shared memory budget (block cache and memtables)
// so that the process's memory stays flat however large the ledger grows.
//
// Thread-safety: RocksDB's own (a DB may be read and written from any thread). The handles live
// as long as the LedgerDb. Only src/store and the tools that read the layout include this file.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/ledger_codec.h"

namespace meterd::store::ledger {

enum class OpenMode {
  kReadWrite,  // the store itself: creates the database when missing
  kSecondary,  // a read-only follower of a database another process may be writing (meterd dump)
};

class LedgerDb {
 public:
  ~LedgerDb();
  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* family(Family f) const { return families_[f]; }

  // Opens `path` (a directory). kSecondary needs `secondary_path`, a private scratch directory.
  static Result<std::unique_ptr<LedgerDb>> Open(const std::string& path, OpenMode mode,
                                                const std::string& secondary_path = "");

 private:
  LedgerDb() = default;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> families_;
};

// A RocksDB status as a store error (kCorruption for corruption, kIoError otherwise).
Status FromRocks(const rocksdb::Status& s, const std::string& what);

// The directory of the embedded store inside a data dir.
std::string LedgerPath(const std::string& data_dir);

}  // namespace meterd::store::ledger
