// Saved HNSW graphs, so a restart loads a graph instead of rebuilding it (minutes for a
// large store). RocksDB stays the source of truth: a saved graph is only a hint, checked
// element by element against what recovery read from RocksDB before it is used.
//
// On disk, two files per graph: <base>.hnsw (hnswlib's own snapshot) and <base>.meta (a
// format version, the vector space and graph parameters, the RocksDB sequence number the
// graph was saved at, the size and CRC-32 of the .hnsw file, and for every graph element
// by position the (user, memory id) it was built from and a 64-bit hash of its vector;
// CRC-32 over the whole .meta). The graphs borrow their vectors from the VectorStore
// (VectorStorage::kBorrow), so the .hnsw holds links and labels only; the loader points
// each element checked against the store at that memory's vector.
// Both are written to temporary names and renamed, .hnsw first, so a crash while saving
// leaves the previous pair, or a new .hnsw beside the old .meta (a CRC mismatch: the
// graph is rebuilt). Nothing is fsynced: a torn file after a power loss fails its CRC
// and is rebuilt from RocksDB, so the snapshot never needs to be durable to be safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agentstore/common/status.h"
#include "agentstore/common/uuid.h"
#include "agentstore/index/hnsw_graph.h"

namespace agentstore::internal {

// What one graph element was built from (zero ids: nothing live; dropped on load).
struct GraphElementKey {
  Uuid user;
  Uuid id;
  uint64_t vector_hash = 0;  // VectorHash of the vector it was built from
};

// A 64-bit hash of a vector's bytes (XXH3-64): a loaded element whose memory's vector
// hashes otherwise was built from an older vector.
uint64_t VectorHash(const float* v, uint32_t dim);
// Format version 2's: zlib's CRC-32 and Adler-32 side by side.
uint64_t VectorHashV2(const float* v, uint32_t dim);

struct SavedGraph {
  std::unique_ptr<index::HnswGraph> graph;
  std::vector<GraphElementKey> keys;  // by element position
  uint64_t sequence = 0;              // RocksDB's latest sequence number when saved
  // The hash its keys were made with; false for an older format, which the caller
  // should save again.
  uint64_t (*hash)(const float*, uint32_t) = VectorHash;
  bool current_format = true;
};

// Writes `graph` with `keys` (one per element, graph.elements() of them).
Status SaveGraphFile(const std::string& base, const index::HnswGraph& graph,
                     const std::vector<GraphElementKey>& keys, uint64_t sequence);

// Reads a saved graph: kNotFound when there is none; kCorruption when it is torn,
// damaged, of another format version, or for another space or graph parameters (the
// caller rebuilds). The graph's labels are still the saving process's: the caller
// relabels (HnswGraph::Relabel) after checking each element against the store.
Result<SavedGraph> LoadGraphFile(const std::string& base, std::shared_ptr<const index::Space> space,
                                 const index::GraphParams& params);

// Removes a saved graph and any leftover temporary files.
void RemoveGraphFile(const std::string& base);

}  // namespace agentstore::internal
