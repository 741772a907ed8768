// The in-memory side of user_memory: each user's memories with their vectors (searched
// exactly while few, through an HNSW graph once many), and one global graph over every
// memory for admin/service search, filled by a background indexer.
//
// Vectors: held once, in the engine's VectorStore; users' slots and every graph
// (VectorStorage::kBorrow) point into it.
//
// Labels: every version of a memory's vector gets a fresh 64-bit label (a process-wide
// counter), so a changed vector is "remove old label, add new label" everywhere, and a
// graph built in the background can be caught up by comparing label sets.
//
// Locking: a user's UserMemories is guarded by its shard's lock. GlobalMemoryIndex has
// its own reader-writer lock, taken after a shard lock (never the other way round).
#pragma once

#include <absl/container/flat_hash_set.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agentstore/common/memory_query.h"
#include "agentstore/common/uuid.h"
#include "agentstore/index/hnsw_graph.h"
#include "agentstore/index/text_index.h"
#include "arena.h"
#include "vector_store.h"

namespace agentstore::internal {

// What a filter needs of one memory, without touching its record.
// (Members ordered so that no padding is left between them: one per memory.)
struct MemoryMeta {
  Uuid id;
  Loc loc = 0;  // the record (without its embedding) in the shard's arena
  uint64_t label = 0;
  const float* vec = nullptr;  // in the VectorStore, slot `vslot`
  uint64_t key_hash = 0;       // of memory_key (set by UserMemories::Put)
  int64_t expires_at = 0;      // 0: never
  double importance = 0;
  uint32_t vslot = 0;
  fb::MemoryType type = fb::MemoryType::fact;
  std::vector<uint64_t> tags;  // hashes of memory_value.tags
};

// A search's filters, resolved once per query.
struct MemoryFilter {
  int64_t now = 0;
  std::optional<fb::MemoryType> type;
  std::optional<double> min_importance;
  std::vector<uint64_t> tags;
  bool Active() const { return type || min_importance || !tags.empty(); }
  bool Keep(const MemoryMeta& m) const {
    if (m.expires_at != 0 && m.expires_at <= now) return false;
    if (type && m.type != *type) return false;
    if (min_importance && m.importance < *min_importance) return false;
    for (uint64_t t : tags)
      if (std::find(m.tags.begin(), m.tags.end(), t) == m.tags.end()) return false;
    return true;
  }
};

uint64_t TagHash(std::string_view tag);
MemoryFilter MakeFilter(const MemoryQuery& q, int64_t now);

// One user's memories. Slots are dense (a removal moves the last slot into the hole);
// each slot's vector is in the VectorStore, its record in `records` (the shard's arena,
// which a memory_key lookup reads to confirm the key).
class UserMemories {
 public:
  UserMemories(VectorStore* vectors, const Arena* records) : vectors_(vectors), records_(records) {}
  ~UserMemories();
  UserMemories(const UserMemories&) = delete;
  UserMemories& operator=(const UserMemories&) = delete;

  size_t size() const { return meta_.size(); }
  const MemoryMeta& meta(uint32_t slot) const { return meta_[slot]; }
  const float* vector(uint32_t slot) const { return meta_[slot].vec; }
  std::optional<uint32_t> SlotOfId(const Uuid& id) const;
  std::optional<uint32_t> SlotOfLabel(uint64_t label) const;
  std::optional<Uuid> IdOfKey(std::string_view key) const;
  void SetLoc(uint32_t slot, Loc loc) { meta_[slot].loc = loc; }
  template <typename F>
  void ForEachLoc(F&& f) {
    for (auto& m : meta_) f(m.loc);
  }

  // Adds a memory (its id must not be here) or replaces one (same id); copies `vec` into
  // the VectorStore (a replaced memory's old vector is freed there).
  void Put(MemoryMeta meta, const std::string& key, const float* vec, std::string_view content,
           std::string_view old_content);
  // Removes a memory; `content` is its memory_value content (for the keyword index).
  void Erase(const Uuid& id, std::string_view content);

  // Top-k by vector among memories passing `filter`; min(k, passing) hits labelled by
  // slot, nearest first.
  std::vector<index::Hit> Search(const index::Space& space, const float* q, size_t k,
                                 const MemoryFilter& filter, size_t breadth,
                                 uint32_t exact_threshold) const;
  // Up to n slots ranked by BM25 over content, among memories passing `filter`.
  std::vector<index::Scored> KeywordSearch(std::string_view text, size_t n,
                                           const MemoryFilter& filter) const;

  // The graph, once the user has one (built by the indexer).
  const index::HnswGraph* graph() const { return graph_.get(); }
  bool graph_queued = false;
  // Installs a graph built from an earlier copy (or loaded from a saved graph), adding
  // what was put since and tombstoning what was removed since.
  void InstallGraph(std::unique_ptr<index::HnswGraph> g);
  void DropGraph() {
    graph_.reset();
    ++graph_changes_;
  }
  // Counts changes to the graph; the graph saver compares it with what it last saved.
  uint64_t graph_changes() const { return graph_changes_; }
  uint64_t saved_graph_changes = ~uint64_t{0};  // only the saver touches this
  // Returns the slack of growth (after recovery).
  void ShrinkToFit() {
    meta_.shrink_to_fit();
    text_.ShrinkToFit();
  }
  // Every (label, vector pointer), for building a graph outside the lock (the pointers
  // stay readable: VectorStore never moves or releases a vector's memory).
  void Snapshot(std::vector<uint64_t>* labels, std::vector<const float*>* vectors) const;

 private:
  // Slot numbers found by a property of their memory (its id, label or key): flat sets
  // of 4-byte slot numbers that hash and compare through meta_, instead of maps holding
  // a copy of every id, label and key string (~150 bytes a memory less: these maps were
  // the largest per-memory cost of the heap). A key lookup confirms the key in the
  // record itself, so a 64-bit key-hash collision cannot mistake one memory for another.
  struct LabelProbe {
    uint64_t label;
  };
  struct KeyProbe {
    std::string_view key;
    uint64_t hash;
  };
  struct SlotBy {
    enum What { kId, kLabel, kKey } what;
    const UserMemories* m;
    using is_transparent = void;
    size_t operator()(uint32_t slot) const;
    size_t operator()(const Uuid& id) const { return UuidHash()(id); }
    size_t operator()(LabelProbe l) const { return UuidHash::Mix(l.label); }
    size_t operator()(const KeyProbe& k) const { return k.hash; }
    bool operator()(uint32_t a, uint32_t b) const { return a == b; }
    bool operator()(uint32_t slot, const Uuid& id) const { return m->meta_[slot].id == id; }
    bool operator()(uint32_t slot, LabelProbe l) const { return m->meta_[slot].label == l.label; }
    bool operator()(uint32_t slot, const KeyProbe& k) const;
  };
  using SlotSet = absl::flat_hash_set<uint32_t, SlotBy, SlotBy>;
  static uint64_t KeyHash(std::string_view key);
  std::string_view KeyOf(uint32_t slot) const;
  // Adds `slot` to (or removes it from) every set, hashed by what meta_[slot] holds now.
  void IndexSlot(uint32_t slot);
  void UnindexSlot(uint32_t slot);

  VectorStore* vectors_;
  const Arena* records_;
  std::vector<MemoryMeta> meta_;
  SlotSet by_id_{0, SlotBy{SlotBy::kId, this}, SlotBy{SlotBy::kId, this}};
  SlotSet by_label_{0, SlotBy{SlotBy::kLabel, this}, SlotBy{SlotBy::kLabel, this}};
  SlotSet by_key_{0, SlotBy{SlotBy::kKey, this}, SlotBy{SlotBy::kKey, this}};
  std::unique_ptr<index::HnswGraph> graph_;
  uint64_t graph_changes_ = 0;
  index::TextIndex text_;  // labelled by memory label
};

// The global graph over every user's memories, with the memories not yet in it kept
// aside and scanned exactly, so a global search is always complete even while the
// indexer catches up (after a restart, or under a burst of writes).
class GlobalMemoryIndex {
 public:
  struct Entry {
    Uuid user;
    Uuid id;
    fb::MemoryType type = fb::MemoryType::fact;
    int64_t expires_at = 0;
  };

  GlobalMemoryIndex(std::shared_ptr<const index::Space> space, index::GraphParams params)
      : space_(std::move(space)), params_(params) {}

  void Put(uint64_t label, const Entry& e, const float* vec);
  // Removes at once from answers; the graph's tombstone is left to the indexer (Step),
  // so a writer never waits for the graph lock (held shared while the graph is saved).
  void Remove(uint64_t label);

  // `vec` stays in the VectorStore: the pending queue and the graph keep only its address.
  // Recovery: entries first, then AttachRecovered with the saved graph
  // (already relabelled and checked against the store) or null; every entry the graph
  // lacks is queued for the indexer with its vector from `vector_of`.
  void PutRecovered(uint64_t label, const Entry& e);
  void AttachRecovered(std::unique_ptr<index::HnswGraph> graph,
                       const std::function<const float*(const Entry&)>& vector_of);
  // Recovery, before anything else uses the index: inserts pending vectors into the
  // loaded graph from `threads` threads until none is left or `deadline` passes (the rest
  // stay pending). Returns how many it inserted; 0 without a graph.
  size_t CatchUp(unsigned threads, std::chrono::steady_clock::time_point deadline);
  // Makes the next Save write the graph even if it did not change.
  void MarkChanged() {
    std::unique_lock glock(graph_mu_);
    ++changes_;
  }

  // Writes the graph to `base` (graph_file.h) unless it has not changed since the last
  // save. Holds the graph lock shared (searches go on; the indexer waits) and the entry
  // lock shared only while naming the elements.
  Status Save(const std::string& base, uint64_t sequence);

  // Top-k over every memory passing the type filter and not expired.
  std::vector<std::pair<index::Hit, Entry>> Search(const float* q, size_t k,
                                                   std::optional<fb::MemoryType> type, int64_t now,
                                                   size_t breadth) const;

  // Indexer work: moves up to `max` pending vectors into the graph, or rebuilds the graph
  // when tombstones pass `rebuild_fraction` of it (abandoned when `stop` turns true).
  // Returns false when there was nothing to do.
  bool Step(size_t max, double rebuild_fraction, const std::atomic<bool>& stop);
  size_t pending() const;
  size_t indexed() const;

 private:
  std::shared_ptr<const index::Space> space_;
  index::GraphParams params_;
  // Two locks, so that a write (Put: meta only) never waits for a graph insertion (graph
  // exclusive, ~0.5 ms). When both are held, graph_mu_ is taken first.
  mutable std::shared_mutex graph_mu_;
  std::unique_ptr<index::HnswGraph> graph_;  // guarded by graph_mu_
  mutable std::shared_mutex meta_mu_;
  // Guarded by meta_mu_:
  std::unordered_map<uint64_t, Entry> entries_;  // every live label
  // Live labels not known to be in the graph yet. The indexer copies one out, inserts it
  // into the graph, then erases it here; a search skips pending labels the graph already
  // has, so a vector is never missing from an answer and never counted twice.
  std::unordered_map<uint64_t, const float*> pending_;  // into the VectorStore
  // Labels removed from entries_ that the graph may hold: tombstoned by the indexer.
  std::vector<uint64_t> tombstones_;
  // Graph changes (guarded by graph_mu_), and how many there were at the last save.
  uint64_t changes_ = 0;
  uint64_t saved_changes_ = 0;
};

}  // namespace agentstore::internal
