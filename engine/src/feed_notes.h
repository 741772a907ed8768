// The notes the engine adds to a write batch for the change feed (storage::WriteBatch::
// Note): the batch's commit time, the owner of the deletes that follow it (a delete
// carries only its key), and whether the collection records put after it are new. A
// header of its own so the write paths need nothing else of the feed.
#pragma once

#include <cstdint>
#include <string>

#include "agentstore/common/uuid.h"
#include "agentstore/engine/feed.h"

namespace agentstore::internal {

std::string CommitTimeNote(int64_t micros);
// The owner of the deletes that follow: a user; for a tenant-owned collection's records,
// their tenant. With `tenant` (collection records of a user): the user's tenant too, so
// the feed knows it after the user is gone (its hard delete's cascade).
std::string OwnerNote(const Uuid& user);
std::string OwnerNote(const Uuid& user, const Uuid& tenant);
// The collection records put after it are created (their key was new) or updated. A
// record's times cannot tell: a put may name an old created_at (documents' versions).
std::string CollectionOpNote(ChangeOp op);

}  // namespace agentstore::internal
