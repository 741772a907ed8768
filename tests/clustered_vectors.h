// Sentence-embedding-like test vectors, as ../shared/design/targets.md describes them:
// unit vectors around ~1000 cluster centres, each cluster spread inside its own
// low-dimensional subspace, clusters drawn with Zipf popularity; users hold a log-normal
// number of memories (median ~55) drawn mostly from a handful of favourite clusters.
// Deterministic for a seed. Shared by the index tests and the memory benchmarks.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace agentstore::testing {

class ClusteredVectors {
 public:
  ClusteredVectors(uint32_t dim, uint32_t clusters, uint64_t seed, uint32_t subspace = 8)
      : dim_(dim), clusters_(clusters), subspace_(subspace) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> n01(0.f, 1.f);
    centres_.resize(size_t{clusters} * dim);
    bases_.resize(size_t{clusters} * subspace * dim);
    for (uint32_t c = 0; c < clusters; ++c) {
      float* centre = &centres_[size_t{c} * dim];
      for (uint32_t i = 0; i < dim; ++i) centre[i] = n01(rng);
      Normalize(centre, dim);
      for (uint32_t s = 0; s < subspace; ++s) {
        float* b = &bases_[(size_t{c} * subspace + s) * dim];
        for (uint32_t i = 0; i < dim; ++i) b[i] = n01(rng);
        Normalize(b, dim);
      }
    }
    // Zipf(1.0) popularity over clusters, as a cumulative table.
    cdf_.resize(clusters);
    double sum = 0;
    for (uint32_t c = 0; c < clusters; ++c) cdf_[c] = (sum += 1.0 / (c + 1));
    for (auto& x : cdf_) x /= sum;
  }

  uint32_t dim() const { return dim_; }

  uint32_t ZipfCluster(std::mt19937_64& rng) const {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<uint32_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()) %
           clusters_;
  }

  // A unit vector of cluster `c`: its centre moved inside the cluster's subspace, plus a
  // little isotropic noise (nearest neighbours end up around cos 0.8, as with MiniLM).
  std::vector<float> Sample(uint32_t c, std::mt19937_64& rng) const {
    std::normal_distribution<float> spread(0.f, 0.45f), noise(0.f, 0.02f);
    std::vector<float> v(centres_.begin() + size_t{c} * dim_,
                         centres_.begin() + size_t{c + 1} * dim_);
    for (uint32_t s = 0; s < subspace_; ++s) {
      float a = spread(rng);
      const float* b = &bases_[(size_t{c} * subspace_ + s) * dim_];
      for (uint32_t i = 0; i < dim_; ++i) v[i] += a * b[i];
    }
    for (auto& x : v) x += noise(rng);
    Normalize(v.data(), dim_);
    return v;
  }

  struct User {
    std::vector<uint32_t> favourites;
  };
  User MakeUser(std::mt19937_64& rng) const {
    User u;
    int n = std::uniform_int_distribution<int>(2, 5)(rng);
    for (int i = 0; i < n; ++i) u.favourites.push_back(ZipfCluster(rng));
    return u;
  }
  // 85% from the user's favourites, the rest from the whole Zipf distribution.
  std::vector<float> SampleFor(const User& u, std::mt19937_64& rng) const {
    if (std::uniform_real_distribution<double>(0, 1)(rng) < 0.85) {
      size_t i = std::uniform_int_distribution<size_t>(0, u.favourites.size() - 1)(rng);
      return Sample(u.favourites[i], rng);
    }
    return Sample(ZipfCluster(rng), rng);
  }
  // Memories per ordinary user: log-normal with median ~55.
  static size_t MemoryCount(std::mt19937_64& rng) {
    double x = std::lognormal_distribution<double>(std::log(55.0), 0.8)(rng);
    return std::clamp<size_t>(static_cast<size_t>(x), 1, 2000);
  }

  static void Normalize(float* v, uint32_t dim) {
    double n = 0;
    for (uint32_t i = 0; i < dim; ++i) n += double{v[i]} * v[i];
    float inv = static_cast<float>(1.0 / std::sqrt(n));
    for (uint32_t i = 0; i < dim; ++i) v[i] *= inv;
  }

 private:
  uint32_t dim_, clusters_, subspace_;
  std::vector<float> centres_, bases_;
  std::vector<double> cdf_;
};

// Exact top-k by cosine distance over unit vectors (the tests' ground truth), ids
// nearest first.
inline std::vector<size_t> BruteForceTopK(const std::vector<std::vector<float>>& data,
                                          const std::vector<float>& q, size_t k) {
  std::vector<std::pair<float, size_t>> d;
  for (size_t i = 0; i < data.size(); ++i) {
    double dot = 0;
    for (size_t j = 0; j < q.size(); ++j) dot += double{q[j]} * data[i][j];
    d.push_back({static_cast<float>(1.0 - dot), i});
  }
  k = std::min(k, d.size());
  std::partial_sort(d.begin(), d.begin() + k, d.end());
  std::vector<size_t> out;
  for (size_t i = 0; i < k; ++i) out.push_back(d[i].second);
  return out;
}

}  // namespace agentstore::testing
