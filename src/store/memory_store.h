// The in-memory backend, for unit tests: the same contract as the SQLite backend (unique keys,
// all-or-nothing groups), nothing survives the process.
#pragma once

#include <memory>

#include "store/group_commit.h"

namespace meterd::store {

class UsageReader;  // store/usage_reader.h

std::unique_ptr<Backend> NewMemoryBackend();
// The UsageReader of a backend made by NewMemoryBackend (the backend itself: valid as
// long as it lives).
UsageReader* MemoryBackendReader(Backend* memory_backend);

}  // namespace meterd::store
