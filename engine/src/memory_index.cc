// UserMemories and GlobalMemoryIndex: the search structures behind user_memory.
#include "memory_index.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <tuple>

#include "agentstore/schema/records_generated.h"
#include "graph_file.h"

namespace agentstore::internal {

uint64_t TagHash(std::string_view tag) {
  // Tags match exactly; a 64-bit collision could only let a memory pass a tag filter it
  // should not, with probability ~2^-64 per pair.
  return index::HashTerm(tag);
}

MemoryFilter MakeFilter(const MemoryQuery& q, int64_t now) {
  MemoryFilter f;
  f.now = now;
  f.type = q.memory_type;
  f.min_importance = q.min_importance;
  for (const auto& t : q.tags) f.tags.push_back(TagHash(t));
  return f;
}

// ---------------------------------------------------------------- UserMemories

size_t UserMemories::SlotBy::operator()(uint32_t slot) const {
  const MemoryMeta& meta = m->meta_[slot];
  switch (what) {
    case kId:
      return (*this)(meta.id);
    case kLabel:
      return (*this)(LabelProbe{meta.label});
    case kKey:
      return meta.key_hash;
  }
  return 0;
}

bool UserMemories::SlotBy::operator()(uint32_t slot, const KeyProbe& k) const {
  return m->meta_[slot].key_hash == k.hash && m->KeyOf(slot) == k.key;
}

uint64_t UserMemories::KeyHash(std::string_view key) { return UuidHash::Mix(index::HashTerm(key)); }

std::string_view UserMemories::KeyOf(uint32_t slot) const {
  const auto* m = flatbuffers::GetRoot<fb::UserMemory>(records_->Get(meta_[slot].loc).data());
  return m->memory_key() ? m->memory_key()->string_view() : std::string_view();
}

void UserMemories::IndexSlot(uint32_t slot) {
  by_id_.insert(slot);
  by_label_.insert(slot);
  by_key_.insert(slot);
}

void UserMemories::UnindexSlot(uint32_t slot) {
  by_id_.erase(slot);
  by_label_.erase(slot);
  by_key_.erase(slot);
}

std::optional<uint32_t> UserMemories::SlotOfId(const Uuid& id) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  return *it;
}

std::optional<uint32_t> UserMemories::SlotOfLabel(uint64_t label) const {
  auto it = by_label_.find(LabelProbe{label});
  if (it == by_label_.end()) return std::nullopt;
  return *it;
}

std::optional<Uuid> UserMemories::IdOfKey(std::string_view key) const {
  auto it = by_key_.find(KeyProbe{key, KeyHash(key)});
  if (it == by_key_.end()) return std::nullopt;
  return meta_[*it].id;
}

UserMemories::~UserMemories() {
  for (const auto& m : meta_) vectors_->Free(m.vslot);
}

void UserMemories::Put(MemoryMeta meta, const std::string& key, const float* vec,
                       std::string_view content, std::string_view old_content) {
  // Always a fresh VectorStore slot, even for a replaced memory: the global graph may
  // still hold the old label's pointer until its indexer tombstones it.
  VectorStore::Ref ref = vectors_->Add(vec);
  meta.vec = ref.vec;
  meta.vslot = ref.slot;
  meta.key_hash = KeyHash(key);
  vec = ref.vec;
  uint32_t slot;
  if (auto s = SlotOfId(meta.id)) {
    slot = *s;
    uint64_t old_label = meta_[slot].label;
    UnindexSlot(slot);  // hashed by the old label and key
    text_.Remove(old_label, old_content);
    if (graph_) {
      graph_->Remove(old_label);
      ++graph_changes_;
    }
    vectors_->Free(meta_[slot].vslot);
    meta_[slot] = std::move(meta);
  } else {
    slot = static_cast<uint32_t>(meta_.size());
    meta_.push_back(std::move(meta));
  }
  IndexSlot(slot);
  const MemoryMeta& m = meta_[slot];
  text_.Add(m.label, content);
  // A failed graph insert (out of memory) leaves the label out of the graph; searches
  // notice through live() < size() and scan exactly instead.
  if (graph_) {
    (void)graph_->Add(m.label, vec);
    ++graph_changes_;
  }
}

void UserMemories::Erase(const Uuid& id, std::string_view content) {
  auto s = SlotOfId(id);
  if (!s) return;
  uint32_t slot = *s, last = static_cast<uint32_t>(meta_.size() - 1);
  uint64_t label = meta_[slot].label;
  if (graph_) {
    graph_->Remove(label);
    ++graph_changes_;
  }
  text_.Remove(label, content);
  UnindexSlot(slot);
  vectors_->Free(meta_[slot].vslot);
  if (slot != last) {
    // The last memory moves into the hole: re-filed under its new slot number.
    UnindexSlot(last);
    meta_[slot] = std::move(meta_[last]);
    IndexSlot(slot);
  }
  meta_.pop_back();
}

std::vector<index::Hit> UserMemories::Search(const index::Space& space, const float* q, size_t k,
                                             const MemoryFilter& filter, size_t breadth,
                                             uint32_t exact_threshold) const {
  std::vector<index::Hit> out;
  const size_t n = meta_.size();
  auto keep = [&](size_t slot) { return filter.Keep(meta_[slot]); };
  auto row = [&](size_t slot) { return meta_[slot].vec; };
  // Equal distances (the same embedding stored twice) rank by memory id, so an answer
  // does not depend on the slots a restart happened to assign.
  auto by_id = [&](uint64_t a, uint64_t b) { return meta_[a].id < meta_[b].id; };
  auto exact = [&] { ExactTopK(space, q, n, k, row, keep, &out, by_id); };
  // Exact while there is no complete graph; also when the filter leaves few enough
  // memories that scanning them is cheaper than a filtered graph walk.
  bool graph_usable = graph_ && graph_->live() == n;
  size_t matching = n;
  if (graph_usable) {
    matching = 0;
    for (size_t i = 0; i < n; ++i) matching += keep(i);
  }
  if (!graph_usable || matching <= exact_threshold || matching <= k) {
    exact();
    return out;
  }
  // HNSW with post-filtering: ask for enough candidates that k are expected to pass
  // (scaled by the filter's selectivity), and widen until k pass or the graph is
  // exhausted; hnswlib 0.6.2 has no filter callback.
  size_t want = k;
  if (matching < n) want = std::min(n, std::max(k, breadth) * n / matching * 2);
  for (;;) {
    auto hits = graph_->Search(q, want, std::max(want, breadth));
    out.clear();
    for (const auto& h : hits) {
      // Hits come nearest first: past the k-th, only its ties can still change the answer.
      if (out.size() >= k && h.distance > out[k - 1].distance) break;
      auto slot = SlotOfLabel(h.label);
      if (!slot || !keep(*slot)) continue;
      out.push_back({*slot, h.distance});
    }
    // Ties with the k-th may go on past what the graph was asked for: ask for more.
    bool cut_in_ties = out.size() >= k && hits.size() == want && !hits.empty() &&
                       hits.back().distance == out[k - 1].distance;
    if (out.size() >= k && (!cut_in_ties || want >= n)) {
      std::stable_sort(out.begin(), out.end(), [&](const index::Hit& a, const index::Hit& b) {
        return a.distance < b.distance || (a.distance == b.distance && by_id(a.label, b.label));
      });
      out.resize(k);
      return out;
    }
    if (want >= n) break;
    want = std::min(n, want * 4);
  }
  // Never short: fall back to the exact answer.
  exact();
  return out;
}

std::vector<index::Scored> UserMemories::KeywordSearch(std::string_view text, size_t n,
                                                       const MemoryFilter& filter) const {
  // Every match, so that ties in score break by memory id (stable across restarts,
  // unlike labels) before the cut to n.
  auto ranked = text_.Search(text, meta_.size(), [&](uint64_t label) {
    auto s = SlotOfLabel(label);
    return s && filter.Keep(meta_[*s]);
  });
  for (auto& r : ranked) r.label = *SlotOfLabel(r.label);
  std::stable_sort(ranked.begin(), ranked.end(), [&](const auto& a, const auto& b) {
    if (a.score != b.score) return a.score > b.score;
    return meta_[a.label].id < meta_[b.label].id;
  });
  if (ranked.size() > n) ranked.resize(n);
  return ranked;
}

void UserMemories::InstallGraph(std::unique_ptr<index::HnswGraph> g) {
  for (uint64_t label : g->Labels())
    if (!SlotOfLabel(label)) g->Remove(label);
  for (const MemoryMeta& m : meta_)
    if (!g->Contains(m.label)) (void)g->Add(m.label, m.vec);
  graph_ = std::move(g);
  ++graph_changes_;
}

void UserMemories::Snapshot(std::vector<uint64_t>* labels,
                            std::vector<const float*>* vectors) const {
  labels->clear();
  vectors->clear();
  for (const auto& m : meta_) {
    labels->push_back(m.label);
    vectors->push_back(m.vec);
  }
}

// ---------------------------------------------------------------- GlobalMemoryIndex

void GlobalMemoryIndex::Put(uint64_t label, const Entry& e, const float* vec) {
  std::unique_lock lock(meta_mu_);
  entries_[label] = e;
  pending_[label] = vec;
}

void GlobalMemoryIndex::Remove(uint64_t label) {
  std::unique_lock lock(meta_mu_);
  if (!entries_.erase(label)) return;
  // Still pending: never reached the graph, or the indexer is inserting it right now
  // and will see it is gone (Step).
  if (pending_.erase(label)) return;
  tombstones_.push_back(label);
}

void GlobalMemoryIndex::PutRecovered(uint64_t label, const Entry& e) {
  std::unique_lock lock(meta_mu_);
  entries_[label] = e;
}

void GlobalMemoryIndex::AttachRecovered(
    std::unique_ptr<index::HnswGraph> graph,
    const std::function<const float*(const Entry&)>& vector_of) {
  std::unique_lock glock(graph_mu_);
  std::unique_lock mlock(meta_mu_);
  graph_ = std::move(graph);
  for (const auto& [label, e] : entries_) {
    if (graph_ && graph_->Contains(label)) continue;
    if (const float* v = vector_of(e)) pending_[label] = v;
  }
  // A loaded graph equals its file until it changes.
  changes_ = saved_changes_ = 0;
  if (graph_ && !pending_.empty()) ++changes_;
}

size_t GlobalMemoryIndex::CatchUp(unsigned threads,
                                  std::chrono::steady_clock::time_point deadline) {
  std::unique_lock glock(graph_mu_);
  std::unique_lock mlock(meta_mu_);
  if (!graph_ || pending_.empty()) return 0;
  // Oldest first (labels grow with writes), so what is left for the indexer is newest.
  std::vector<std::pair<uint64_t, const float*>> todo(pending_.begin(), pending_.end());
  std::sort(todo.begin(), todo.end());
  std::vector<uint64_t> labels(todo.size());
  std::vector<const float*> vectors(todo.size());
  for (size_t i = 0; i < todo.size(); ++i) std::tie(labels[i], vectors[i]) = todo[i];
  // On failure some may be in the graph and still pending: a search skips pending
  // labels the graph has, and the indexer's insert of one replaces it.
  auto added = graph_->AddMany(labels, vectors, threads, deadline);
  if (!added.ok() || *added == 0) return 0;
  for (size_t i = 0; i < *added; ++i) pending_.erase(labels[i]);
  ++changes_;
  return *added;
}

Status GlobalMemoryIndex::Save(const std::string& base, uint64_t sequence) {
  std::shared_lock glock(graph_mu_);
  if (!graph_) {
    RemoveGraphFile(base);
    return Status::OK();
  }
  if (changes_ == saved_changes_) return Status::OK();
  std::vector<GraphElementKey> keys(graph_->elements());
  {
    std::shared_lock mlock(meta_mu_);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (graph_->DeletedAt(i)) continue;
      auto e = entries_.find(graph_->LabelAt(i));
      if (e != entries_.end())
        keys[i] = {e->second.user, e->second.id, VectorHash(graph_->VectorAt(i), space_->dim())};
    }
  }
  uint64_t at = changes_;
  AS_RETURN_IF_ERROR(SaveGraphFile(base, *graph_, keys, sequence));
  // Step changes the graph only under the exclusive lock, so nothing changed meanwhile.
  saved_changes_ = at;
  return Status::OK();
}

std::vector<std::pair<index::Hit, GlobalMemoryIndex::Entry>> GlobalMemoryIndex::Search(
    const float* q, size_t k, std::optional<fb::MemoryType> type, int64_t now,
    size_t breadth) const {
  std::shared_lock glock(graph_mu_);
  std::shared_lock mlock(meta_mu_);
  auto keep = [&](const Entry& e) {
    return (!type || e.type == *type) && (e.expires_at == 0 || e.expires_at > now);
  };
  std::vector<index::Hit> hits;
  // The graph, post-filtered and widened until k pass (or it is exhausted).
  size_t in_graph = graph_ ? graph_->live() : 0;
  if (in_graph) {
    // Unfiltered, k candidates at the given breadth suffice; with a type filter start
    // at the breadth's worth of candidates and widen until k pass.
    size_t want = std::min(in_graph, type ? std::max(k, breadth) : k);
    for (;;) {
      hits.clear();
      auto found = graph_->Search(q, want, std::max(want, breadth));
      for (const auto& h : found) {
        // Nearest first: past the k-th, only its ties can still change the answer.
        if (hits.size() >= k && h.distance > hits[k - 1].distance) break;
        auto e = entries_.find(h.label);
        if (e != entries_.end() && keep(e->second)) hits.push_back(h);
      }
      // Ties with the k-th may go on past what the graph was asked for: ask for more.
      bool cut_in_ties = hits.size() >= k && !found.empty() && found.size() == want &&
                         found.back().distance == hits[k - 1].distance;
      if ((hits.size() >= k && !cut_in_ties) || want >= in_graph) break;
      want = std::min(in_graph, want * 4);
    }
  }
  // Plus an exact pass over what the indexer has not reached yet.
  for (const auto& [label, vec] : pending_) {
    const Entry& e = entries_.at(label);
    if (!keep(e) || (graph_ && graph_->Contains(label))) continue;
    hits.push_back({label, space_->Distance(q, vec)});
  }
  // Equal distances rank by memory id: labels are assigned anew by a restart.
  std::sort(hits.begin(), hits.end(), [&](const index::Hit& a, const index::Hit& b) {
    if (a.distance != b.distance) return a.distance < b.distance;
    return entries_.at(a.label).id < entries_.at(b.label).id;
  });
  if (hits.size() > k) hits.resize(k);
  std::vector<std::pair<index::Hit, Entry>> out;
  out.reserve(hits.size());
  for (const auto& h : hits) out.push_back({h, entries_.at(h.label)});
  return out;
}

bool GlobalMemoryIndex::Step(size_t max, double rebuild_fraction, const std::atomic<bool>& stop) {
  // Only the indexer calls Step, so nothing else changes the graph meanwhile.
  // Tombstones first: removals queued by writers.
  std::vector<uint64_t> dead;
  {
    std::unique_lock lock(meta_mu_);
    dead.swap(tombstones_);
  }
  if (!dead.empty()) {
    std::unique_lock lock(graph_mu_);
    if (graph_)
      for (uint64_t l : dead) graph_->Remove(l);
    ++changes_;
  }
  bool rebuild = false;
  {
    std::shared_lock lock(graph_mu_);
    rebuild = graph_ && graph_->tombstones() > 1000 &&
              graph_->tombstones() > rebuild_fraction * static_cast<double>(graph_->live());
  }
  if (rebuild) {
    // Tombstones dominate: copy the live vectors, build outside every lock (this can take
    // minutes for a large store), then install. Removals made meanwhile stay queued in tombstones_
    // and reach the new graph below.
    std::vector<uint64_t> labels;
    std::vector<const float*> vectors;
    {
      std::shared_lock lock(graph_mu_);
      for (size_t i = 0; i < graph_->elements(); ++i) {
        if (graph_->DeletedAt(i)) continue;
        labels.push_back(graph_->LabelAt(i));
        vectors.push_back(graph_->VectorAt(i));
      }
    }
    auto fresh = std::make_unique<index::HnswGraph>(space_, params_, labels.size() + 1024,
                                                    index::VectorStorage::kBorrow);
    for (size_t i = 0; i < labels.size(); ++i) {
      // Minutes for a large store: a stop abandons it (the old graph stays, and is saved).
      if (i % 256 == 0 && stop.load(std::memory_order_relaxed)) return false;
      (void)fresh->Add(labels[i], vectors[i]);
    }
    std::unique_lock glock(graph_mu_);
    graph_ = std::move(fresh);
    ++changes_;
    return true;
  }
  // Insert a batch of pending vectors, one graph insertion per exclusive hold of the
  // graph lock, so searches wait at most one insertion.
  size_t done = 0;
  while (done < max && !stop.load(std::memory_order_relaxed)) {
    uint64_t label;
    const float* vec;
    {
      std::shared_lock lock(meta_mu_);
      if (pending_.empty()) break;
      label = pending_.begin()->first;
      vec = pending_.begin()->second;
    }
    {
      std::unique_lock lock(graph_mu_);
      if (!graph_)
        graph_ = std::make_unique<index::HnswGraph>(space_, params_, 4096,
                                                    index::VectorStorage::kBorrow);
      if (!graph_->Add(label, vec).ok()) break;
      ++changes_;
    }
    bool live;
    {
      std::unique_lock lock(meta_mu_);
      live = entries_.count(label) > 0;
      pending_.erase(label);
    }
    if (!live) {
      // Removed while it was being inserted.
      std::unique_lock lock(graph_mu_);
      graph_->Remove(label);
    }
    ++done;
  }
  return done > 0 || !dead.empty();
}

size_t GlobalMemoryIndex::pending() const {
  std::shared_lock lock(meta_mu_);
  return pending_.size();
}

size_t GlobalMemoryIndex::indexed() const {
  std::shared_lock lock(graph_mu_);
  return graph_ ? graph_->live() : 0;
}

}  // namespace agentstore::internal
