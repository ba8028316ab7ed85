// GroupCommitStore: the one writer thread, shared by every backend. A backend supplies the
// transaction primitives; this class supplies the queue, the batching and the answers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "store/store.h"

namespace meterd::store {

// What a backend implements. Called only from the writer thread (except CountUsageRows, which
// the backend must make safe to call from other threads).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Status Begin() = 0;
  // True when the backend reads WriteUnit::reads ahead (Store::UsesDeclaredReads).
  virtual bool UsesDeclaredReads() const { return false; }
  // Called after Begin, when UsesDeclaredReads(), with the declared reads of every unit of the
  // group (store.h's ReadKeys), to fetch them at once.
  virtual Status Prefetch(const std::vector<const ReadKeys*>& reads) { return Status::Ok(); }
  virtual Transaction& txn() = 0;
  // Makes the transaction durable (fsync) before returning ok.
  virtual Status Commit() = 0;
  virtual void Rollback() = 0;
  // After a failed Begin, Prefetch, apply or Commit (and the Rollback): true when the failure
  // was a conflict that running the group again resolves (another writer won a unique key, a
  // serialization failure, or a lost connection before anything of the group was sent), so
  // the writer re-runs the whole group instead of failing it. The default: never.
  virtual bool ShouldRetryGroup() const { return false; }
  // Pipelined durability (optional). When true, Commit() only makes the group visible to the
  // groups after it (written, not yet synced), and SyncCommitted() makes every group committed
  // before the call durable (one fsync). The store answers a group only after a SyncCommitted
  // that began after the group's Commit returned, so no answer precedes its fsync; meanwhile the
  // writer runs the next group. SyncCommitted runs on a thread of its own, concurrently with
  // Begin/apply/Commit; readers must see synced groups only.
  virtual bool PipelinesSync() const { return false; }
  virtual Status SyncCommitted() { return Status::Ok(); }
  virtual Result<int64_t> CountUsageRows() = 0;
  // Safe to use from any thread (see AuditReader).
  virtual AuditReader& audit_reader() = 0;
};

class GroupCommitStore final : public Store {
 public:
  GroupCommitStore(std::unique_ptr<Backend> backend, size_t max_group_units);
  ~GroupCommitStore() override;

  void Submit(WriteUnit unit) override;
  void Close() override;
  StoreStats Stats() const override;
  void SetCommitObserver(CommitObserver* observer) override;
  Result<int64_t> CountUsageRows() override { return backend_->CountUsageRows(); }
  AuditReader* audit_reader() override { return &backend_->audit_reader(); }
  bool UsesDeclaredReads() const override { return backend_->UsesDeclaredReads(); }

 private:
  void WriterLoop();
  // Pipelined backends: answers the committed groups once SyncCommitted made them durable.
  void SyncerLoop();
  // Counts a finished group, tells the observer, then answers its units.
  void Finish(std::vector<WriteUnit>& group, const Status& status,
              std::chrono::steady_clock::time_point started);
  // One attempt at the group: Begin, Prefetch, every apply, every seal, Commit (Rollback on
  // failure).
  Status RunGroup(std::vector<WriteUnit>& group);

  std::unique_ptr<Backend> backend_;
  const size_t max_group_units_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<WriteUnit> queue_;
  bool closing_ = false;
  StoreStats stats_;
  CommitObserver* commit_observer_ = nullptr;  // under mu_
  // Pipelined backends: groups committed and not yet synced, with when each group started.
  struct Committed {
    std::vector<WriteUnit> group;
    std::chrono::steady_clock::time_point started;
  };
  std::deque<Committed> unsynced_;  // under mu_
  bool writer_done_ = false;        // under mu_: the writer has exited (the syncer drains, exits)
  std::condition_variable sync_cv_;
  std::thread writer_;
  std::thread syncer_;
};

}  // namespace meterd::store
