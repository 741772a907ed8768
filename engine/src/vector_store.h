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
//
// Vectors that already lie in a stable region (the mapped table image, table_image.h)
// are referred to where they are instead of copied: a start from an image holds them
// once, in the file's pages.
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

  // Vectors in [begin, begin + size) stay readable as long as `keep` lives.
  void SetStableRegion(std::shared_ptr<const void> keep, const char* begin, size_t size) {
    std::lock_guard lock(mu_);
    region_keep_ = std::move(keep);
    region_begin_ = begin;
    region_size_ = size;
  }

  // Copies `vec` (dim floats) into a free slot, or refers to it in the stable region.
  Ref Add(const float* vec) {
    std::lock_guard lock(mu_);
    if (InRegion(vec)) {
      ++live_;
      ++referred_;
      return {kReferred, vec};
    }
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
    if (slot == kReferred)
      --referred_;
    else
      free_.push_back(slot);
    --live_;
  }

  size_t live() const {
    std::lock_guard lock(mu_);
    return live_;
  }
  // Live vectors referred to in the stable region (not copied).
  size_t referred() const {
    std::lock_guard lock(mu_);
    return referred_;
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
  // The slot of a vector referred to in the stable region.
  static constexpr uint32_t kReferred = UINT32_MAX;
  bool InRegion(const float* v) const {
    auto* c = reinterpret_cast<const char*>(v);
    return region_begin_ && c >= region_begin_ &&
           c + size_t{dim_} * sizeof(float) <= region_begin_ + region_size_;
  }
  const uint32_t dim_;
  std::shared_ptr<const void> region_keep_;
  const char* region_begin_ = nullptr;
  size_t region_size_ = 0;
  size_t referred_ = 0;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<float[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t next_ = 0;
  size_t live_ = 0;
};

}  // namespace agentstore::internal
