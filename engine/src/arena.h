// Arena: a partition's record bytes, appended into large chunks and addressed by a
// 64-bit location (chunk << 32 | offset) instead of one heap object per record. An
// update appends a new version and marks the old one dead; Compact() copies the live
// records into fresh chunks when dead space dominates.
//
// A stable region (the mapped table image, table_image.h) can back records too: bytes
// given to Append that already lie in it, laid out as an arena record, are referred to
// in place instead of copied, so a start from an image holds each record once, in pages
// the kernel can drop and reload from the file (they are written only in place, through
// the region's copy-on-write mapping). Compact() keeps referring to them; new records
// always go to heap chunks.
//
// Not thread-safe: the owning partition's lock guards it.
#pragma once

#include <cstddef>
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

  // A region whose records are laid out as the arena's (a uint32 length and four zero
  // bytes, then the 8-aligned bytes) and that outlives every location into it (`keep`
  // holds it alive).
  struct StableRegion {
    std::shared_ptr<const void> keep;
    const char* begin = nullptr;
    size_t size = 0;
    bool Holds(const void* p) const {
      auto* c = static_cast<const char*>(p);
      return c >= begin && c < begin + size;
    }
  };
  void SetStableRegion(StableRegion region) {
    region_ = std::move(region);
    windows_.clear();
  }
  const StableRegion& stable_region() const { return region_; }
  // Whether Append(bytes) would refer to `bytes` in place rather than copy them.
  bool WouldRefer(std::string_view bytes) const {
    return region_.begin && region_.Holds(bytes.data()) && IsRegionRecord(bytes);
  }

  // Copies `bytes` in (8-byte aligned, as FlatBuffers wants) and returns its location;
  // bytes inside the stable region are referred to where they are.
  Loc Append(std::string_view bytes) {
    size_t need = Align(bytes.size() + kHeader);
    if (WouldRefer(bytes)) return Refer(bytes, need);
    if (current_ == kNone || used_ + need > chunks_[current_].size) {
      size_t size = need > kChunkBytes ? need : kChunkBytes;
      auto data = std::unique_ptr<uint64_t[]>(new uint64_t[size / 8]);
      char* base = reinterpret_cast<char*>(data.get());
      chunks_.push_back(Chunk{std::move(data), base, size});
      current_ = chunks_.size() - 1;
      used_ = 0;
    }
    char* base = chunks_[current_].base + used_;
    uint32_t len = static_cast<uint32_t>(bytes.size());
    std::memcpy(base, &len, sizeof len);
    std::memcpy(base + kHeader, bytes.data(), bytes.size());
    Loc loc = (static_cast<uint64_t>(current_) << 32) | used_;
    used_ += need;
    live_bytes_ += need;
    return loc;
  }

  std::string_view Get(Loc loc) const {
    const char* p = chunks_[loc >> 32].base + (loc & 0xFFFFFFFFu);
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
  static constexpr size_t kNone = SIZE_MAX;
  // The region is addressed through overlapping 4 GiB windows starting every 2 GiB, so
  // any record (< 2 GiB) lies wholly inside the window of its start and its offset there
  // fits a location's 32 bits.
  static constexpr unsigned kWindowShift = 31;
  static size_t Align(size_t n) { return (n + 7) & ~size_t{7}; }

  // Whether `bytes` (inside the region) is a whole record laid out as the arena's.
  bool IsRegionRecord(std::string_view bytes) const {
    if (reinterpret_cast<uintptr_t>(bytes.data()) % 8 != 0 ||
        bytes.data() - region_.begin < static_cast<ptrdiff_t>(kHeader))
      return false;
    uint32_t len;
    std::memcpy(&len, bytes.data() - kHeader, sizeof len);
    return len == bytes.size();
  }

  Loc Refer(std::string_view bytes, size_t need) {
    const size_t at = static_cast<size_t>(bytes.data() - kHeader - region_.begin);
    const size_t w = at >> kWindowShift;
    if (windows_.size() <= w) windows_.resize(w + 1, kNone);
    if (windows_[w] == kNone) {
      char* base = const_cast<char*>(region_.begin) + (w << kWindowShift);
      chunks_.push_back(Chunk{nullptr, base, region_.size - (w << kWindowShift)});
      windows_[w] = chunks_.size() - 1;
    }
    live_bytes_ += need;
    return (static_cast<uint64_t>(windows_[w]) << 32) | (at - (w << kWindowShift));
  }

  struct Chunk {
    std::unique_ptr<uint64_t[]> data;  // null for a window of the stable region
    char* base;                        // a region window's is copy-on-write
    size_t size;
  };
  std::vector<Chunk> chunks_;
  size_t current_ = kNone;  // the heap chunk Append fills
  size_t used_ = 0;
  StableRegion region_;
  std::vector<size_t> windows_;  // region window -> chunk index
  size_t live_bytes_ = 0;
  size_t dead_bytes_ = 0;
};

}  // namespace agentstore::internal
