// Latency histogram: lock-free counters in buckets a quarter of a power of two wide
// (about 19% resolution), cheap enough to update on every request.
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>

namespace agentstore {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 4 * 40;

  void Record(uint64_t micros) {
    buckets_[Bucket(micros)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    uint64_t prev = max_.load(std::memory_order_relaxed);
    while (micros > prev && !max_.compare_exchange_weak(prev, micros, std::memory_order_relaxed)) {
    }
  }
  // Adds `other`'s counts (e.g. per-thread histograms merged once at the end of a run).
  void Merge(const LatencyHistogram& other) {
    for (int b = 0; b < kBuckets; ++b)
      buckets_[b].fetch_add(other.buckets_[b].load(std::memory_order_relaxed),
                            std::memory_order_relaxed);
    count_.fetch_add(other.count(), std::memory_order_relaxed);
    uint64_t m = other.max(), prev = max_.load(std::memory_order_relaxed);
    while (m > prev && !max_.compare_exchange_weak(prev, m, std::memory_order_relaxed)) {
    }
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t max() const { return max_.load(std::memory_order_relaxed); }
  // The upper bound of the bucket holding quantile q (0..1).
  uint64_t Quantile(double q) const {
    uint64_t total = count();
    if (total == 0) return 0;
    uint64_t want = static_cast<uint64_t>(q * static_cast<double>(total - 1)) + 1, seen = 0;
    for (int b = 0; b < kBuckets; ++b) {
      seen += buckets_[b].load(std::memory_order_relaxed);
      if (seen >= want) return UpperBound(b);
    }
    return max();
  }

 private:
  static int Bucket(uint64_t v) {
    if (v < 4) return static_cast<int>(v);
    int log = 63 - std::countl_zero(v);
    int sub = static_cast<int>((v >> (log - 2)) & 3);
    int b = 4 * (log - 1) + sub;
    return b < kBuckets ? b : kBuckets - 1;
  }
  static uint64_t UpperBound(int b) {
    if (b < 4) return static_cast<uint64_t>(b);
    int log = b / 4 + 1, sub = b % 4;
    return ((4ull + sub + 1) << (log - 2)) - 1;
  }
  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> max_{0};
};

}  // namespace agentstore
