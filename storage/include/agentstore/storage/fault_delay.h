// Tests only: makes every failure StorageFaults injects take a while before it returns,
// as a write to a slow, full device does, widening the window in which other threads
// race the failing call (the WAL gate's tests). Process-wide; kept out of faults.h so
// that header (included everywhere through kv_store.h) stays as small as it is.
#pragma once

#include <cstdint>

namespace agentstore::storage {

void SetInjectedFailureDelayMs(uint32_t ms);

}  // namespace agentstore::storage
