// Which shard holds a record of a user-owned table, store-wide, in one lookup. Records of
// user_agents, chats, messages, usage_logs and user_memory live in their owner's shard,
// yet an id must be unique across all shards: without this, a create or an import that
// names its own id asked every shard's map (15 misses per message at 16 shards: the
// largest cost of import), and a service-scope read by id searched shard by shard.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agentstore/common/uuid.h"
#include "arena.h"

namespace agentstore::internal {

// A multiset of (fingerprint of id, shard), 8 bytes an entry: the id's 54-bit hash and its
// 10-bit shard (shards are 1..1024) packed in one word. Candidates(id) names every shard
// that may hold the id: never misses one, may (rarely, on a fingerprint collision) name a
// shard that does not, so callers confirm in that shard's own map. Hand-rolled open
// addressing because a std::unordered_map<Uuid, shard> costs ~48 bytes per record (node,
// bucket, cached hash) against the store's memory target, and the project carries no flat
// hash map library. Striped: 64 sub-tables, each with its own (leaf) mutex, so writers in
// different shards rarely meet.
class IdDirectory {
 public:
  static constexpr unsigned kShardBits = 10;
  static constexpr uint64_t kShardMask = (uint64_t{1} << kShardBits) - 1;

  void Add(const Uuid& id, size_t shard) {
    uint64_t e = Entry(id, shard);
    Stripe& s = stripes_[StripeOf(e)];
    std::lock_guard lock(s.mu);
    s.Insert(e);
  }
  // Removes one (id, shard) entry, if present.
  void Remove(const Uuid& id, size_t shard) {
    uint64_t e = Entry(id, shard);
    Stripe& s = stripes_[StripeOf(e)];
    std::lock_guard lock(s.mu);
    s.Erase(e);
  }
  // The shards that may hold `id`, in `out` (cleared first). Usually none or one.
  void Candidates(const Uuid& id, std::vector<uint16_t>* out) const {
    out->clear();
    uint64_t e = Entry(id, 0);
    const Stripe& s = stripes_[StripeOf(e)];
    std::lock_guard lock(s.mu);
    s.Find(e, out);
  }

 private:
  static uint64_t Entry(const Uuid& id, size_t shard) {
    uint64_t fp = static_cast<uint64_t>(UuidHash()(id)) & ~kShardMask;
    if (fp == 0) fp = kShardMask + 1;  // 0 marks an empty slot
    return fp | (shard & kShardMask);
  }
  // The fingerprint's top 6 bits pick the stripe, its low bits the home slot.
  static size_t StripeOf(uint64_t e) { return e >> 58; }
  static uint64_t Fingerprint(uint64_t e) { return e >> kShardBits; }

  struct Stripe {
    mutable std::mutex mu;
    std::unique_ptr<uint64_t[]> slots;  // 0: empty
    size_t capacity = 0;                // a power of two
    size_t size = 0;

    size_t Home(uint64_t e) const { return Fingerprint(e) & (capacity - 1); }
    void Insert(uint64_t e) {
      if ((size + 1) * 5 > capacity * 4) Grow();  // load at most 0.8
      size_t i = Home(e);
      while (slots[i]) i = (i + 1) & (capacity - 1);
      slots[i] = e;
      ++size;
    }
    void Erase(uint64_t e) {
      if (!capacity) return;
      size_t i = Home(e);
      while (slots[i] && slots[i] != e) i = (i + 1) & (capacity - 1);
      if (!slots[i]) return;
      // Backward-shift deletion: pull later members of the cluster into the hole when
      // their home does not lie cyclically in (hole, their slot].
      size_t mask = capacity - 1;
      for (size_t j = (i + 1) & mask; slots[j]; j = (j + 1) & mask) {
        size_t home = Home(slots[j]);
        if (((j - home) & mask) >= ((j - i) & mask)) {
          slots[i] = slots[j];
          i = j;
        }
      }
      slots[i] = 0;
      --size;
    }
    void Find(uint64_t e, std::vector<uint16_t>* out) const {
      if (!capacity) return;
      uint64_t fp = Fingerprint(e);
      for (size_t i = Home(e); slots[i]; i = (i + 1) & (capacity - 1))
        if (Fingerprint(slots[i]) == fp)
          out->push_back(static_cast<uint16_t>(slots[i] & kShardMask));
    }
    void Grow() {
      size_t old_capacity = capacity;
      std::unique_ptr<uint64_t[]> old = std::move(slots);
      capacity = old_capacity ? old_capacity * 2 : 64;
      slots = std::make_unique<uint64_t[]>(capacity);  // zeroed
      size = 0;
      for (size_t i = 0; i < old_capacity; ++i)
        if (old[i]) Insert(old[i]);
    }
  };
  Stripe stripes_[64];
};

// A shard's id -> location map for one table; when attached to the table's IdDirectory,
// every id added or removed here is added to or removed from the directory too, so the
// directory cannot drift from the shards' maps whatever path changes them (creates,
// deletes, recovery, import). Exposes the part of std::unordered_map the engine uses.
//
// A flat (open-addressing) table: 25 bytes a slot (id, location, one control byte) at a
// load of 7/16 to 7/8, against ~56 bytes a record for std::unordered_map's node and
// bucket: the largest per-record cost of the heap with a million messages. As with any
// flat table, an insert may move every entry: no reference or iterator into the map
// is held across an insert into the same map (erasing leaves the others valid).
class IdMap {
 public:
  using Map = absl::flat_hash_map<Uuid, Loc, UuidHash>;
  using iterator = Map::iterator;
  using const_iterator = Map::const_iterator;

  IdMap() = default;
  IdMap(const IdMap&) = delete;
  IdMap& operator=(const IdMap&) = delete;
  IdMap(IdMap&&) = default;  // votes live in ChatIndex, which moves (never attached)

  void Attach(IdDirectory* dir, size_t shard) {
    dir_ = dir;
    shard_ = shard;
    for (const auto& [id, loc] : map_) dir_->Add(id, shard_);
  }
  const IdDirectory* directory() const { return dir_; }

  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  const_iterator begin() const { return map_.begin(); }
  const_iterator end() const { return map_.end(); }
  iterator find(const Uuid& id) { return map_.find(id); }
  const_iterator find(const Uuid& id) const { return map_.find(id); }
  size_t count(const Uuid& id) const { return map_.count(id); }
  bool contains(const Uuid& id) const { return map_.count(id) != 0; }
  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }
  void reserve(size_t n) { map_.reserve(n); }
  // Halves (or more) the table when a table of half its capacity would hold every entry
  // within its maximum load (7/8); otherwise leaves it alone (a rehash of every entry).
  void ShrinkToFit() {
    if (map_.capacity() > 16 && map_.size() * 16 < map_.capacity() * 7) map_.rehash(0);
  }
  Loc& at(const Uuid& id) { return map_.at(id); }
  const Loc& at(const Uuid& id) const { return map_.at(id); }

  Loc& operator[](const Uuid& id) {
    auto [it, fresh] = map_.try_emplace(id);
    if (fresh && dir_) dir_->Add(id, shard_);
    return it->second;
  }
  std::pair<iterator, bool> insert_or_assign(const Uuid& id, Loc loc) {
    auto r = map_.insert_or_assign(id, loc);
    if (r.second && dir_) dir_->Add(id, shard_);
    return r;
  }
  void erase(iterator it) {
    if (dir_) dir_->Remove(it->first, shard_);
    map_.erase(it);
  }
  size_t erase(const Uuid& id) {
    auto it = map_.find(id);
    if (it == map_.end()) return 0;
    erase(it);
    return 1;
  }

 private:
  Map map_;
  IdDirectory* dir_ = nullptr;
  size_t shard_ = 0;
};

}  // namespace agentstore::internal
