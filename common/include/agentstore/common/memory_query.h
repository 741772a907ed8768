// The shapes of user_memory searches, shared by the engine, the protocol and the client.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agentstore/common/row.h"
#include "agentstore/common/uuid.h"

namespace agentstore {

struct MemoryQuery {
  Uuid user;                  // whose memories (per-user and hybrid search)
  std::vector<float> vector;  // the query embedding (the store's dimension)
  std::string text;           // hybrid search: the keywords matched against content
  uint32_t k = 5;             // 1..1000
  // Filters; a search answers min(k, memories matching them), never fewer.
  std::optional<fb::MemoryType> memory_type;
  std::optional<double> min_importance;
  std::vector<std::string> tags;  // each must be in memory_value.tags
  // Record the read on each result (access_count + 1, last_accessed_at = now).
  bool touch = false;
  // Return each result's embedding too (they are left out by default).
  bool with_vectors = false;
  // Candidates an HNSW search examines (its ef); 0: the store's default.
  uint32_t breadth = 0;
};

struct MemoryHit {
  Row<fb::UserMemory> memory;
  // Vector distance to the query: 1 - cos for cosine stores, squared L2 for l2 stores.
  float distance = 0;
  // Search: the similarity (cos, or -distance for l2). Hybrid: the fused RRF score.
  double score = 0;
};

}  // namespace agentstore
