// VectorStore: the one copy of every memory's vector (issue 14: the vectors were held
// twice, in each user's dense block and in hnswlib's graph, and a third time for heavy
// users). Users' exact scans, exports and every HNSW graph (VectorStorage::kBorrow) read
// the vectors from here through stable pointers.
//
// Vectors live in fixed-size chunks that never move and are never released while the
// store exists, so a pointer handed out stays readable even after its slot is freed: a
// graph's tombstoned element may still point at a freed slot, later reused by another
// vector. That only changes what the tombstone (never returned by a search) looks like
// as a stepping stone; memory stays bounded by the peak number of live vectors.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace agentstore::internal {

class VectorStore {
 public:
  explicit VectorStore(uint32_t dim) : dim_(dim) {}
  VectorStore(const VectorStore&) = delete;
  VectorStore& operator=(const VectorStore&) = delete;

  struct Ref {
    uint32_t slot = 0;
    const float* vec = nullptr;
  };

  // Copies `vec` (dim floats) into a free slot.
  Ref Add(const float* vec) {
    std::lock_guard lock(mu_);
    uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      if (next_ == chunks_.size() * kChunk)
        chunks_.push_back(std::make_unique_for_overwrite<float[]>(size_t{kChunk} * dim_));
      slot = next_++;
    }
    float* at = chunks_[slot / kChunk].get() + size_t{slot % kChunk} * dim_;
    std::memcpy(at, vec, dim_ * sizeof(float));
    ++live_;
    return {slot, at};
  }

  void Free(uint32_t slot) {
    std::lock_guard lock(mu_);
    free_.push_back(slot);
    --live_;
  }

  size_t live() const {
    std::lock_guard lock(mu_);
    return live_;
  }
  // Bytes of vector chunks held (live, free and not yet used slots).
  size_t bytes() const {
    std::lock_guard lock(mu_);
    return chunks_.size() * size_t{kChunk} * dim_ * sizeof(float);
  }
  // Gives back the free list's slack after recovery (chunks are never released).
  void ShrinkToFit() {
    std::lock_guard lock(mu_);
    free_.shrink_to_fit();
  }

 private:
  // 1024 vectors a chunk: 1.5 MiB at 384 dimensions (glibc serves it with mmap), small
  // enough that the last, partly used chunk wastes little.
  static constexpr uint32_t kChunk = 1024;
  const uint32_t dim_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<float[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t next_ = 0;
  size_t live_ = 0;
};

}  // namespace agentstore::internal
