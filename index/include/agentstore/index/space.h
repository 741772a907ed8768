// Space: the vector configuration of a store (dimension and metric, fixed when the store
// is created) and its distance function. Every vector that enters the store passes
// PrepareVector, so the rest of the index can assume finite values of the right length
// and, for cosine, unit length (cosine distance is then 1 - dot product).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "agentstore/common/status.h"

namespace agentstore::index {

enum class Metric : uint8_t { kCosine = 0, kL2 = 1 };

std::string_view MetricName(Metric m);
std::optional<Metric> MetricFromName(std::string_view name);

class Space {
 public:
  // `dim` must be 1..4096.
  static Result<std::shared_ptr<const Space>> Make(uint32_t dim, Metric metric);
  ~Space();

  uint32_t dim() const { return dim_; }
  Metric metric() const { return metric_; }

  // Distance between two prepared vectors; smaller is nearer. Cosine: 1 - cos(a, b);
  // L2: squared Euclidean distance. Runs hnswlib's SIMD kernels, so exact scans and the
  // graphs rank identically.
  float Distance(const float* a, const float* b) const { return fn_(a, b, param_); }
  // A similarity for people and for fusion: cos(a, b) for cosine, -distance for L2.
  float Similarity(float distance) const {
    return metric_ == Metric::kCosine ? 1.0f - distance : -distance;
  }

  // Checks a vector for this space: the dimension, finite values and, for cosine, a
  // non-zero length; normalizes it to unit length for cosine. invalid_argument otherwise.
  Status Prepare(std::vector<float>& v) const;

  // The hnswlib SpaceInterface<float> behind Distance (for hnsw_graph.cc only).
  void* hnswlib_space() const { return space_.get(); }

 private:
  using DistFn = float (*)(const void*, const void*, const void*);
  Space(uint32_t dim, Metric metric, std::shared_ptr<void> space, DistFn fn, const void* param);
  uint32_t dim_;
  Metric metric_;
  std::shared_ptr<void> space_;
  DistFn fn_;
  const void* param_;
};

// One search answer: a label (a memory's index label, or a row number for scans) and
// its distance to the query.
struct Hit {
  uint64_t label;
  float distance;
  friend bool operator<(const Hit& a, const Hit& b) {
    return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
  }
};

// Exact top-k over `n` rows of `space.dim()` floats, row i at row(i) (rows need not be
// contiguous: the engine's live in its VectorStore): the k nearest rows to `q` among
// those for which keep(row) is true, nearest first, labelled by row number. Always
// answers min(k, rows kept). A bounded max-heap: O(n log k), one pass over the data.
// Rows at equal distance are ordered by tie_less(row_a, row_b) (by default row number;
// the engine passes the record id, which, unlike a row number, survives a restart).
template <typename Row, typename Keep, typename TieLess>
void ExactTopK(const Space& space, const float* q, size_t n, size_t k, Row&& row, Keep&& keep,
               std::vector<Hit>* out, TieLess&& tie_less) {
  out->clear();
  if (k == 0) return;
  auto less = [&](const Hit& a, const Hit& b) {
    return a.distance < b.distance || (a.distance == b.distance && tie_less(a.label, b.label));
  };
  for (size_t i = 0; i < n; ++i) {
    if (!keep(i)) continue;
    float d = space.Distance(q, row(i));
    if (out->size() < k) {
      out->push_back({i, d});
      std::push_heap(out->begin(), out->end(), less);
    } else if (less(Hit{i, d}, out->front())) {
      std::pop_heap(out->begin(), out->end(), less);
      out->back() = {i, d};
      std::push_heap(out->begin(), out->end(), less);
    }
  }
  std::sort_heap(out->begin(), out->end(), less);
}

template <typename Row, typename Keep>
void ExactTopK(const Space& space, const float* q, size_t n, size_t k, Row&& row, Keep&& keep,
               std::vector<Hit>* out) {
  ExactTopK(space, q, n, k, row, keep, out, [](uint64_t a, uint64_t b) { return a < b; });
}

// The same over `n` contiguous rows starting at `rows`.
template <typename Keep>
void ExactTopK(const Space& space, const float* q, const float* rows, size_t n, size_t k,
               Keep&& keep, std::vector<Hit>* out) {
  const size_t dim = space.dim();
  ExactTopK(
      space, q, n, k, [&](size_t i) { return rows + i * dim; }, keep, out);
}

}  // namespace agentstore::index
