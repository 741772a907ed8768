// Collections: record types declared at run time (seed tables such as goals, journal
// entries, versioned documents). Their records live here, behind this module, not in
// the built-in partitions' arenas; writes still go through EngineState::Log / Durable,
// the engine's one write path, so durability, group commit and crash safety are shared.
//
// RocksDB keys: [0x70][name] -> the declaration (JSON); [0x71][name][0x00][primary key
// bytes] -> a record (FlexBuffers, collection_schema.h). Prefixes far above the built-in
// RecordTypes so they never collide with new ones.
//
// Locks: a write to a user-owned collection takes that user's shard (shared) before the
// collection's mutex, the order DeleteUser uses (global, shard, then every collection by
// name), so no record can be written for a user being deleted.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "agentstore/common/uuid.h"
#include "collection_schema.h"

namespace agentstore::internal {

inline constexpr char kCollectionDefPrefix = 0x70;
inline constexpr char kCollectionRecordPrefix = 0x71;

struct CollectionRecord {
  std::string bytes;  // the FlexBuffers encoding
  Uuid owner;         // user or tenant; nil for unowned collections
  int64_t deleted_at = 0;
  int64_t expires_at = 0;  // the TTL field's value; 0: never
};

using RecordMap = std::map<std::string, CollectionRecord>;  // primary key bytes -> record
using RecordEntry = RecordMap::value_type;                  // (primary key, record)

struct Collection {
  mutable std::shared_mutex mu;
  std::mutex alter_mu;  // one alter at a time; held across an index build, not by writes
  std::shared_ptr<const coll::Schema> schema;
  RecordMap records;
  // One per schema index: entry (index key bytes + primary key bytes) -> the record's node
  // in `records`, so an index walk reads records without a lookup by key. Map nodes never
  // move, and a record's index entries are erased before the record is (ApplyRecord).
  std::vector<std::map<std::string, const RecordEntry*>> indexes;
  std::vector<bool> building;  // per index: being built by an alter, not yet queryable
  std::unordered_map<Uuid, std::set<std::string>, UuidHash> by_owner;
  // (expires_at, primary key) of every record whose TTL field is set, soonest first, so a
  // sweep reads only what has expired instead of every record.
  std::set<std::pair<int64_t, std::string>> expiry;
};

struct CollectionStore {
  std::shared_mutex mu;  // guards `by_name` only; never held with a collection's mutex
  std::map<std::string, std::shared_ptr<Collection>> by_name;

  std::shared_ptr<Collection> Find(std::string_view name) {
    std::shared_lock lock(mu);
    auto it = by_name.find(std::string(name));
    return it == by_name.end() ? nullptr : it->second;
  }
  std::vector<std::shared_ptr<Collection>> All() {
    std::shared_lock lock(mu);
    std::vector<std::shared_ptr<Collection>> out;
    for (auto& [n, c] : by_name) out.push_back(c);
    return out;
  }
};

// A hard or soft user delete's changes to every collection, prepared into the user's
// delete batch while holding every collection's lock; applied after the batch is logged.
struct CollectionCascade {
  struct Change {
    Collection* coll;
    std::string pk;
    coll::Json old_rec;
    std::optional<coll::Json> next;  // nullopt: removed
    std::string bytes;               // next's encoding
  };
  std::vector<std::shared_ptr<Collection>> held;  // declared first: outlives `locks`
  std::vector<std::unique_lock<std::shared_mutex>> locks;
  std::vector<Change> changes;
};

}  // namespace agentstore::internal
