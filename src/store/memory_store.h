// The in-memory backend, for unit tests: the same contract as the SQLite backend (unique keys,
// all-or-nothing groups), nothing survives the process.
#pragma once

#include <memory>

#include "store/group_commit.h"

namespace meterd::store {

std::unique_ptr<Backend> NewMemoryBackend();

}  // namespace meterd::store
