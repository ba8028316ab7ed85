// Moves SQLite's WAL checkpoints off the group-commit writer.
//
// By default SQLite checkpoints inside the COMMIT that takes the WAL past wal_autocheckpoint
// pages: that commit copies the whole WAL into the database file and fsyncs it, and every request
// of its group waits for it. That wait was the p99 of a durable answer (tens of milliseconds on
// a disk whose fdatasync takes under one). Here a thread of its own, on a connection of its own,
// copies the frames in the background (SQLITE_CHECKPOINT_PASSIVE: it never waits for, nor
// blocks, the writer or the readers). The writer, from its WAL hook, only finishes the short tail
// that arrived meanwhile, and only once the WAL is large: a checkpoint that has copied every frame
// lets the next transaction write the WAL from its beginning again, so the file stays bounded
// under a steady load (a background pass alone always lags the newest commits).
//
// Durability is unchanged: a frame is durable once its COMMIT returned (synchronous=FULL);
// checkpoints only move durable frames into the main file, and SQLite recovers an interrupted
// one from the WAL. A failed checkpoint (a full disk) leaves the frames in the WAL and is tried
// again at a later commit.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"

namespace meterd::store {

class WalCheckpointer {
 public:
  // The background thread wakes once the WAL holds this many pages (4 MiB of 4 KiB pages)...
  static constexpr int kBackgroundPages = 1024;
  // ...and the writer finishes the tail itself past this many (16 MiB).
  static constexpr int kFinishPages = 4096;

  // Opens a connection of its own to `path` (a database already in WAL mode), starts the thread
  // and installs the WAL hook on `writer_db`, replacing SQLite's autocheckpoint. `writer_db` must
  // outlive the checkpointer and be used by one thread at a time (the group-commit writer), which
  // is the thread the hook runs on.
  static Result<std::unique_ptr<WalCheckpointer>> Start(const std::string& path,
                                                        sqlite3* writer_db);

  // Removes the hook, stops and joins the thread, closes its connection. Call before closing
  // `writer_db`.
  ~WalCheckpointer();

  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

 private:
  WalCheckpointer(sqlite3* own_db, sqlite3* writer_db);
  static int OnCommit(void* self, sqlite3* db, const char* schema, int wal_pages);
  void Loop();

  sqlite3* const own_db_;
  sqlite3* const writer_db_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool requested_ = false;  // guarded by mu_
  bool running_ = false;    // guarded by mu_: a background pass is under way
  bool stopping_ = false;   // guarded by mu_
  std::thread thread_;
};

}  // namespace meterd::store
