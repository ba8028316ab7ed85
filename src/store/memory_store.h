// The in-memory backend, for unit tests: the same contract as the SQLite backend (unique keys,
// all-or-nothing groups), nothing survives the process.
#pragma once

#include <memory>

#include "store/group_commit.h"

namespace meterd::reports {
class UsageReader;
}

namespace meterd::store {

std::unique_ptr<Backend> NewMemoryBackend();
// The reports::UsageReader of a backend made by NewMemoryBackend (the backend itself: valid as
// long as it lives).
reports::UsageReader* MemoryBackendReader(Backend* memory_backend);

}  // namespace meterd::store
