// TempDir: a fresh directory for one test (under $TEST_TMPDIR, else /tmp), removed with
// everything in it when the object goes. Tests only; not thread-safe.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace meterd {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "meterd_test") {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string templ = std::string(base != nullptr ? base : "/tmp") + "/" + prefix + ".XXXXXX";
    const char* made = mkdtemp(templ.data());
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace meterd
