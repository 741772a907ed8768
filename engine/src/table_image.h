// The table image: every key and value of the store at one RocksDB sequence number,
// written beside the store and mapped into memory at the next start, so a start no
// longer scans, decompresses and copies the whole store out of RocksDB. The arenas and
// the vector store refer to the mapped records and vectors in place (Arena, VectorStore:
// "stable region"), so they are held once, in pages the kernel can reload from the file.
// The values are mapped copy-on-write: the only in-place change, a memory's touch
// counters, makes that page private; the file never changes.
//
// RocksDB stays the source of truth. An image is used only when it is this store's and
// this data directory's (ImageIdentity), of this format, whole (XXH3-64 over the file), and not
// ahead of the store; the keys the log changed after its sequence are then read from RocksDB
// instead (RecordSource). A start that cannot read the log back that far, or that had to
// drop a damaged log's writes, rebuilds from RocksDB as before.
//
// Written (WriteTableImage) from a RocksDB snapshot, so writers never wait for it and
// nothing is copied in memory: the pass streams the snapshot to <dir>/table.image.tmp,
// fsyncs the log up to the snapshot (an image must never hold a write a crash could
// still take back), then renames the file into place. A crash while writing leaves the
// previous image. The file itself is not fsynced: a torn one fails its checksum.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agentstore/common/status.h"
#include "agentstore/storage/kv_store.h"

namespace agentstore::internal {

// A mapped, verified image (unmapped when the last holder lets go).
class TableImage {
 public:
  ~TableImage();
  TableImage(const TableImage&) = delete;
  TableImage& operator=(const TableImage&) = delete;

  uint64_t sequence() const { return sequence_; }
  uint64_t entries() const { return entries_; }
  size_t bytes() const { return size_; }
  const char* begin() const { return base_; }
  // Whether `p` points into the mapped file (bytes there live as long as the image).
  bool Holds(const void* p) const {
    auto* c = static_cast<const char*>(p);
    return c >= base_ && c < base_ + size_;
  }

  // Entry i in key order: its key, and its value (8-aligned; the 8 bytes before it hold
  // the value's length as a uint32 and four zero bytes, as an Arena record does).
  std::string_view Key(uint64_t i) const;
  std::string_view Value(uint64_t i) const;
  // The first entry whose key is >= `key`.
  uint64_t LowerBound(std::string_view key) const;
  // Gives the keys and index pages back to the kernel once the store is open: only the
  // values stay in use (Key/Value/LowerBound must not be called afterwards).
  void ReleaseIndex() const;

  // Maps <dir>/table.image and checks it (format, checksum, identity). kNotFound when
  // there is none; kCorruption (with the reason) when it cannot be used.
  static Result<std::shared_ptr<const TableImage>> Map(const std::string& dir,
                                                       const std::string& identity);

 private:
  TableImage() = default;
  const char* base_ = nullptr;
  size_t size_ = 0;
  uint64_t sequence_ = 0;
  uint64_t entries_ = 0;
  uint64_t keys_at_ = 0;
  const char* index_ = nullptr;
};

// What an image is checked against ("identity" above): the store's RocksDB identity and
// the data directory's inode. A copy of a stopped data directory (cp -a: a cold backup,
// a clone) keeps the RocksDB identity; with the inode, an image written in one of the
// two is not used in the other, whose log may have reused its sequence numbers for other
// writes. A renamed directory keeps its inode; a copied one rebuilds once.
std::string ImageIdentity(const std::string& store_identity, const std::string& data_dir);

// Writes <dir>/table.image from `store`, for `identity` (see above).
struct WrittenImage {
  uint64_t sequence = 0;  // the log sequence it covers
  uint64_t entries = 0;   // records (keys) it holds
};
Result<WrittenImage> WriteTableImage(storage::KvStore& store, const std::string& dir,
                                     const std::string& identity);
// Removes the image and any half-written one.
void RemoveTableImage(const std::string& dir);

// What recovery reads: the store's records by key prefix, in key order, either straight
// from RocksDB or from an image plus the keys changed after it (read from RocksDB).
class RecordSource {
 public:
  using Visit = std::function<Status(std::string_view key, std::string_view value)>;
  // From RocksDB alone.
  explicit RecordSource(storage::KvStore* store) : store_(store) {}
  // From `image`, except the keys the log changed after the image's sequence, which are
  // read from `store`. Fails (the caller then uses RocksDB alone) when the log does not
  // reach back to the image.
  static Result<std::unique_ptr<RecordSource>> WithImage(storage::KvStore* store,
                                                         std::shared_ptr<const TableImage> image);

  // Visits every record whose key starts with `prefix`, in key order. Values from the
  // image are 8-aligned and stay valid while the image lives; others only during `visit`.
  Status Scan(std::string_view prefix, const Visit& visit) const;

  const TableImage* image() const { return image_.get(); }
  // About how many records Scan(prefix) will visit (0 when unknown: no image), so the
  // caller can size its tables once instead of growing them.
  size_t CountHint(std::string_view prefix) const;
  size_t changed_keys() const { return changed_.size(); }

 private:
  storage::KvStore* store_;
  std::shared_ptr<const TableImage> image_;
  // Keys changed after the image, sorted, each with its value now (absent: deleted).
  struct Changed {
    std::string key;
    bool present = false;
    std::string value;
  };
  std::vector<Changed> changed_;
};

}  // namespace agentstore::internal
