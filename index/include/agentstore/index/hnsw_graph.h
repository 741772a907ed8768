// HnswGraph: an hnswlib HierarchicalNSW graph behind agentstore's conventions. hnswlib
// throws, has a fixed capacity and deletes by tombstone; this wrapper catches (Status),
// grows the capacity by doubling, counts tombstones so owners know when to rebuild, and
// keeps hnswlib out of every other header.
//
// Storage: a kCopy graph holds its own copy of every vector (hnswlib's usual layout); a
// kBorrow graph holds only a pointer per element into vectors its owner keeps (the
// engine's VectorStore), so a vector held by the store is not held again by each graph
// (issue 14: RSS close to the raw data). A borrowed vector must stay readable for as
// long as the graph may reach its element, tombstoned ones included.
//
// Thread-safety: Search and the const accessors may run concurrently with each other;
// Add and Remove need the caller's exclusive lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agentstore/common/status.h"
#include "agentstore/index/space.h"

namespace agentstore::index {

struct GraphParams {
  size_t M = 16;
  size_t ef_construction = 200;
  size_t ef_search = 64;  // the default breadth of a search (k widens it when larger)
  uint64_t seed = 100;
};

enum class VectorStorage : uint8_t { kCopy, kBorrow };

class HnswGraph {
 public:
  HnswGraph(std::shared_ptr<const Space> space, const GraphParams& params, size_t capacity,
            VectorStorage storage = VectorStorage::kCopy);
  ~HnswGraph();
  HnswGraph(const HnswGraph&) = delete;
  HnswGraph& operator=(const HnswGraph&) = delete;

  // Adds a prepared vector under a label that is not in the graph (labels are never
  // reused by agentstore: a changed vector gets a new label). kBorrow keeps `vector`
  // itself (see above), kCopy copies it.
  Status Add(uint64_t label, const float* vector);
  // Adds labels[i] with vectors[i] in order from `threads` threads (hnswlib's concurrent
  // insertion; nothing else may use the graph meanwhile), stopping early once `deadline`
  // passes. Returns how many were added: a prefix of the lists.
  Result<size_t> AddMany(const std::vector<uint64_t>& labels,
                         const std::vector<const float*>& vectors, unsigned threads,
                         std::chrono::steady_clock::time_point deadline);
  // Tombstones a label; a no-op for unknown labels.
  void Remove(uint64_t label);

  // Up to k nearest live labels, nearest first, examining max(ef_search, breadth, k)
  // candidates: `breadth` > ef_search widens one search (higher recall, slower) without
  // touching shared state.
  std::vector<Hit> Search(const float* query, size_t k, size_t breadth = 0) const;

  bool Contains(uint64_t label) const;  // live (not tombstoned)
  size_t live() const;
  size_t tombstones() const;
  const GraphParams& params() const { return params_; }
  const Space& space() const;
  // Every live label.
  std::vector<uint64_t> Labels() const;
  // The stored vector of a live label (empty if absent).
  std::vector<float> VectorOf(uint64_t label) const;

  // The graph's elements by position (live and tombstoned), for persistence: a saved
  // graph's elements are matched against the store position by position on load.
  size_t elements() const;
  uint64_t LabelAt(size_t i) const;
  bool DeletedAt(size_t i) const;
  const float* VectorAt(size_t i) const;
  VectorStorage storage() const;
  // Gives element i the label relabel(i) returns, or tombstones it (nullopt). The labels
  // returned must be distinct and below 2^63 (tombstoned elements get labels above).
  // A kBorrow graph also takes the element's vector from the answer (a loaded borrowing
  // graph's pointers are the saving process's; tombstoned elements get a zero vector
  // the graph owns).
  struct Relabelled {
    uint64_t label;
    const float* vector = nullptr;  // kBorrow only
  };
  void Relabel(const std::function<std::optional<Relabelled>(size_t)>& relabel);

  // Whole-graph snapshot to a file, and back (a kBorrow snapshot holds no vectors: the
  // loader must Relabel before searching or adding).
  Status Save(const std::string& path) const;
  static Result<std::unique_ptr<HnswGraph>> Load(std::shared_ptr<const Space> space,
                                                 const GraphParams& params, const std::string& path,
                                                 VectorStorage storage = VectorStorage::kCopy);

 private:
  struct Impl;
  explicit HnswGraph(std::unique_ptr<Impl> impl, const GraphParams& params);
  std::unique_ptr<Impl> impl_;
  GraphParams params_;
};

}  // namespace agentstore::index
