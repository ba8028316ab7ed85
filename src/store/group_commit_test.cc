// WriteUnit::seal: it runs in the group's transaction after every unit's apply and before the
// commit, and again when the group is re-run.
#include "store/group_commit.h"

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "store/memory_store.h"

namespace meterd::store {
namespace {

// The memory backend, noting Commit in the log of the test; the first `fail_commits` commits
// fail with a conflict that a re-run resolves.
class LoggingBackend final : public Backend {
 public:
  LoggingBackend(std::vector<std::string>* log, std::mutex* mu, int fail_commits)
      : inner_(NewMemoryBackend()), log_(log), mu_(mu), fail_commits_(fail_commits) {}
  Status Begin() override { return inner_->Begin(); }
  Transaction& txn() override { return inner_->txn(); }
  Status Commit() override {
    std::lock_guard<std::mutex> lock(*mu_);
    if (fail_commits_ > 0) {
      --fail_commits_;
      log_->push_back("commit failed");
      return Status(StatusCode::kIoError, "conflict");
    }
    log_->push_back("commit");
    return inner_->Commit();
  }
  void Rollback() override { inner_->Rollback(); }
  bool ShouldRetryGroup() const override { return true; }
  Result<int64_t> CountUsageRows() override { return inner_->CountUsageRows(); }
  AuditReader& audit_reader() override { return inner_->audit_reader(); }

 private:
  std::unique_ptr<Backend> inner_;
  std::vector<std::string>* log_;
  std::mutex* mu_;
  int fail_commits_;
};

class SealTest : public ::testing::Test {
 protected:
  // A unit that logs "<name> apply" / "<name> seal" and reports its done status.
  WriteUnit Unit(const std::string& name, std::promise<Status>* done) {
    WriteUnit unit;
    unit.apply = [this, name](Transaction&) {
      Log(name + " apply");
      return Status::Ok();
    };
    unit.seal = [this, name](Transaction&) {
      Log(name + " seal");
      return Status::Ok();
    };
    unit.done = [done](const Status& st) { done->set_value(st); };
    return unit;
  }
  void Log(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    log_.push_back(line);
  }
  std::vector<std::string> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }
  std::mutex mu_;
  std::vector<std::string> log_;
};

TEST_F(SealTest, SealsRunAfterEveryApplyOfTheGroupAndBeforeTheCommit) {
  GroupCommitStore store(std::make_unique<LoggingBackend>(&log_, &mu_, 0), 16);
  // A first unit holds the writer, so that the next two are taken as one group.
  std::promise<void> started, go;
  std::promise<Status> first_done, a_done, b_done;
  WriteUnit first;
  first.apply = [&started, &go](Transaction&) {
    started.set_value();
    go.get_future().wait();
    return Status::Ok();
  };
  first.done = [&first_done](const Status& st) { first_done.set_value(st); };
  store.Submit(std::move(first));
  started.get_future().wait();
  store.Submit(Unit("a", &a_done));
  store.Submit(Unit("b", &b_done));
  go.set_value();
  EXPECT_TRUE(first_done.get_future().get().ok());
  EXPECT_TRUE(a_done.get_future().get().ok());
  EXPECT_TRUE(b_done.get_future().get().ok());
  store.Close();
  EXPECT_EQ(log(), (std::vector<std::string>{"commit", "a apply", "b apply", "a seal", "b seal",
                                             "commit"}));
}

TEST_F(SealTest, AReRunGroupRunsTheSealsAgain) {
  GroupCommitStore store(std::make_unique<LoggingBackend>(&log_, &mu_, 1), 16);
  std::promise<Status> done;
  store.Submit(Unit("a", &done));
  EXPECT_TRUE(done.get_future().get().ok());
  store.Close();
  EXPECT_EQ(log(), (std::vector<std::string>{"a apply", "a seal", "commit failed", "a apply",
                                             "a seal", "commit"}));
}

TEST_F(SealTest, AFailedSealFailsTheGroup) {
  GroupCommitStore store(std::make_unique<LoggingBackend>(&log_, &mu_, 0), 16);
  std::promise<Status> done;
  WriteUnit unit = Unit("a", &done);
  unit.seal = [](Transaction&) { return Status(StatusCode::kIoError, "disk full"); };
  store.Submit(std::move(unit));
  EXPECT_EQ(done.get_future().get().code(), StatusCode::kIoError);
  store.Close();
  EXPECT_EQ(store.Stats().failed_groups, 1u);
}

}  // namespace
}  // namespace meterd::store
