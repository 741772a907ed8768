// The notes the engine adds to a write batch for the change feed (storage::WriteBatch::
// Note): the batch's commit time, and the owning user of the deletes that follow it (a
// delete carries only its key). A header of its own so the write paths need nothing else
// of the feed.
#pragma once

#include <cstdint>
#include <string>

#include "agentstore/common/uuid.h"

namespace agentstore::internal {

std::string CommitTimeNote(int64_t micros);
std::string OwnerNote(const Uuid& user);

}  // namespace agentstore::internal
