#include "store/group_commit.h"

#include <pthread.h>

#include <chrono>
#include <future>
#include <vector>

namespace meterd::store {

Status SubmitAndWait(Store* store, std::function<Status(Transaction&)> apply) {
  std::promise<Status> committed;
  WriteUnit unit;
  unit.apply = std::move(apply);
  unit.done = [&committed](const Status& st) { committed.set_value(st); };
  store->Submit(std::move(unit));
  return committed.get_future().get();
}

GroupCommitStore::GroupCommitStore(std::unique_ptr<Backend> backend, size_t max_group_units)
    : backend_(std::move(backend)), max_group_units_(max_group_units) {
  writer_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "meterd-writer");
    WriterLoop();
  });
  if (backend_->PipelinesSync()) {
    syncer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "meterd-syncer");
      SyncerLoop();
    });
  }
}

GroupCommitStore::~GroupCommitStore() { Close(); }

void GroupCommitStore::Submit(WriteUnit unit) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closing_) {
      queue_.push_back(std::move(unit));
      cv_.notify_one();
      return;
    }
  }
  // After Close() nothing is written; the caller still gets an answer.
  unit.done(Status(StatusCode::kIoError, "store is closed"));
}

void GroupCommitStore::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_ && !writer_.joinable()) return;
    closing_ = true;
    cv_.notify_one();
  }
  if (writer_.joinable()) writer_.join();
  // The writer has handed over its last group (WriterLoop sets writer_done_ on its way out).
  if (syncer_.joinable()) syncer_.join();
}

StoreStats GroupCommitStore::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  StoreStats stats = stats_;
  stats.queue_depth = queue_.size();
  return stats;
}

void GroupCommitStore::SetCommitObserver(CommitObserver* observer) {
  std::lock_guard<std::mutex> lock(mu_);
  commit_observer_ = observer;
}

namespace {
// A lost race is resolved by the next attempt (the winner's row is then read); a bound keeps a
// backend that keeps reporting conflicts from stalling the writer forever.
constexpr int kMaxGroupAttempts = 10;
}  // namespace

Status GroupCommitStore::RunGroup(std::vector<WriteUnit>& group) {
  Status status = backend_->Begin();
  if (status.ok() && backend_->UsesDeclaredReads()) {
    std::vector<const ReadKeys*> reads;
    reads.reserve(group.size());
    for (const auto& unit : group) reads.push_back(&unit.reads);
    status = backend_->Prefetch(reads);
  }
  for (auto& unit : group) {
    if (!status.ok()) break;
    status = unit.apply(backend_->txn());
  }
  // Every outcome of the group is decided: the seals write what must commit with it.
  for (auto& unit : group) {
    if (!status.ok()) break;
    if (unit.seal) status = unit.seal(backend_->txn());
  }
  if (status.ok()) status = backend_->Commit();
  if (!status.ok()) backend_->Rollback();
  return status;
}

void GroupCommitStore::WriterLoop() {
  const bool pipelined = backend_->PipelinesSync();
  std::vector<WriteUnit> group;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) {  // closing and drained
        writer_done_ = true;
        sync_cv_.notify_one();
        return;
      }
      while (!queue_.empty() && group.size() < max_group_units_) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    const auto started = std::chrono::steady_clock::now();
    Status status = RunGroup(group);
    for (int attempt = 1; !status.ok() && attempt < kMaxGroupAttempts; ++attempt) {
      if (!backend_->ShouldRetryGroup()) break;
      status = RunGroup(group);
    }
    if (pipelined && status.ok()) {
      // Written, not yet durable: the syncer answers it after the fsync that covers it.
      std::lock_guard<std::mutex> lock(mu_);
      unsynced_.push_back(Committed{std::move(group), started});
      sync_cv_.notify_one();
    } else {
      // A failed group wrote nothing: its answer needs no fsync.
      Finish(group, status, started);
    }
    group.clear();
  }
}

void GroupCommitStore::SyncerLoop() {
  std::deque<Committed> batch;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      sync_cv_.wait(lock, [this] { return writer_done_ || !unsynced_.empty(); });
      if (unsynced_.empty()) return;  // the writer is gone and everything is answered
      batch.swap(unsynced_);
    }
    // One fsync for every group committed so far.
    const Status status = backend_->SyncCommitted();
    for (Committed& committed : batch) Finish(committed.group, status, committed.started);
    batch.clear();
  }
}

void GroupCommitStore::Finish(std::vector<WriteUnit>& group, const Status& status,
                              std::chrono::steady_clock::time_point started) {
  const auto finished = std::chrono::steady_clock::now();
  CommitObserver* observer = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.groups++;
    stats_.units += group.size();
    if (!status.ok()) {
      stats_.failed_groups++;
      stats_.last_error = status.ToString();
      stats_.last_error_steady_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(finished.time_since_epoch())
              .count();
    }
    observer = commit_observer_;
  }
  // The observer first: whoever is answered (and then scrapes the metrics) finds the group
  // already counted.
  if (observer != nullptr) {
    observer->OnGroupCommit(GroupCommit{
        group.size(),
        std::chrono::duration_cast<std::chrono::microseconds>(finished - started).count(),
        status.ok()});
  }
  for (auto& unit : group) unit.done(status);
}

}  // namespace meterd::store
