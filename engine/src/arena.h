// Arena: a partition's record bytes, appended into large chunks and addressed by a
// 64-bit location (chunk << 32 | offset) instead of one heap object per record. An
// update appends a new version and marks the old one dead; Compact() copies the live
// records into fresh chunks when dead space dominates. Chunks are plain memory today;
// because nothing points into them but locations, they can later be backed by
// memory-mapped files in the data directory without touching callers.
//
// Not thread-safe: the owning partition's lock guards it.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace agentstore::internal {

using Loc = uint64_t;

class Arena {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  // Copies `bytes` in (8-byte aligned, as FlatBuffers wants) and returns its location.
  Loc Append(std::string_view bytes) {
    size_t need = Align(bytes.size() + kHeader);
    if (chunks_.empty() || used_ + need > chunks_.back().size) {
      size_t size = need > kChunkBytes ? need : kChunkBytes;
      chunks_.push_back(Chunk{std::unique_ptr<uint64_t[]>(new uint64_t[size / 8]), size});
      used_ = 0;
    }
    char* base = reinterpret_cast<char*>(chunks_.back().data.get()) + used_;
    uint32_t len = static_cast<uint32_t>(bytes.size());
    std::memcpy(base, &len, sizeof len);
    std::memcpy(base + kHeader, bytes.data(), bytes.size());
    Loc loc = (static_cast<uint64_t>(chunks_.size() - 1) << 32) | used_;
    used_ += need;
    live_bytes_ += need;
    return loc;
  }

  std::string_view Get(Loc loc) const {
    const char* p =
        reinterpret_cast<const char*>(chunks_[loc >> 32].data.get()) + (loc & 0xFFFFFFFFu);
    uint32_t len;
    std::memcpy(&len, p, sizeof len);
    return std::string_view(p + kHeader, len);
  }

  // Marks the record at `loc` dead (its space is reclaimed by the next Compact()).
  void Free(Loc loc) {
    size_t n = Align(Get(loc).size() + kHeader);
    live_bytes_ -= n;
    dead_bytes_ += n;
  }

  size_t live_bytes() const { return live_bytes_; }
  size_t dead_bytes() const { return dead_bytes_; }
  bool ShouldCompact() const { return dead_bytes_ > (8u << 20) && dead_bytes_ > live_bytes_; }

 private:
  static constexpr size_t kHeader = 8;
  static size_t Align(size_t n) { return (n + 7) & ~size_t{7}; }
  struct Chunk {
    std::unique_ptr<uint64_t[]> data;
    size_t size;
  };
  std::vector<Chunk> chunks_;
  size_t used_ = 0;
  size_t live_bytes_ = 0;
  size_t dead_bytes_ = 0;
};

}  // namespace agentstore::internal
