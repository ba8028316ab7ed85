#include "store/wal_checkpointer.h"

#include <pthread.h>

namespace meterd::store {

Result<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(const std::string& path,
                                                                sqlite3* writer_db) {
  sqlite3* own_db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &own_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = own_db != nullptr ? sqlite3_errmsg(own_db) : "out of memory";
    sqlite3_close_v2(own_db);
    return Status(StatusCode::kIoError, "open (checkpointer) " + path + ": " + message);
  }
  // The checkpoint's fsync of the main file is what makes a restarted WAL safe to overwrite.
  if (sqlite3_exec(own_db, "PRAGMA synchronous=FULL", nullptr, nullptr, nullptr) != SQLITE_OK) {
    std::string message = sqlite3_errmsg(own_db);
    sqlite3_close_v2(own_db);
    return Status(StatusCode::kIoError, "checkpointer: " + message);
  }
  std::unique_ptr<WalCheckpointer> checkpointer(new WalCheckpointer(own_db, writer_db));
  checkpointer->thread_ = std::thread([c = checkpointer.get()] { c->Loop(); });
  sqlite3_wal_hook(writer_db, &WalCheckpointer::OnCommit, checkpointer.get());
  return checkpointer;
}

WalCheckpointer::WalCheckpointer(sqlite3* own_db, sqlite3* writer_db)
    : own_db_(own_db), writer_db_(writer_db) {}

WalCheckpointer::~WalCheckpointer() {
  sqlite3_wal_hook(writer_db_, nullptr, nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  sqlite3_close_v2(own_db_);
}

int WalCheckpointer::OnCommit(void* self, sqlite3* db, const char* schema, int wal_pages) {
  auto* c = static_cast<WalCheckpointer*>(self);
  if (wal_pages >= kFinishPages) {
    // The tail since the last background pass, on the writer's connection. SQLITE_BUSY (a
    // background pass holds the checkpoint lock) returns at once, and the next commit tries
    // again; since the background is not woken past this size, that pass is the last one.
    (void)sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (wal_pages >= kBackgroundPages) {
    std::lock_guard<std::mutex> lock(c->mu_);
    if (!c->running_) {
      c->requested_ = true;
      c->wake_.notify_one();
    }
  }
  // Whatever happened, the commit itself succeeded: an error here would be reported as its own.
  return SQLITE_OK;
}

void WalCheckpointer::Loop() {
  pthread_setname_np(pthread_self(), "meterd-ckpt");
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return requested_ || stopping_; });
    if (stopping_) return;
    requested_ = false;
    running_ = true;
    lock.unlock();
    // A failure (SQLITE_BUSY from the writer's own pass, a full disk) leaves the frames in the
    // WAL, where they are durable; a later commit asks again.
    (void)sqlite3_wal_checkpoint_v2(own_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    lock.lock();
    running_ = false;
  }
}

}  // namespace meterd::store
