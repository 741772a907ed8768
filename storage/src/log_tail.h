// Reading the change log back fast (KvStore::ReadLog). The change feed reads every group
// commit back as it becomes durable, and a subscriber catching up reads long runs of it.
// RocksDB's TransactionLogIterator has no index: a new one reads its WAL file from the
// start up to the sequence asked for (and checks every record's CRC on the way), so one
// per read made each read cost up to a whole WAL file. Two remedies live here:
// - LogTail: the batches written since the feed first read, newest ones only, kept in
//   memory as written, so reads near the live end never touch the file;
// - LogDecoder: turns one logged batch into LogEntry's (shared by the tail and the WAL
//   cursor in kv_store.cc, so both read the log identically).
#pragma once

#include <rocksdb/write_batch.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <vector>

#include "agentstore/common/status.h"
#include "agentstore/storage/kv_store.h"

namespace agentstore::storage {

// Walks one logged batch: each Put/Delete takes the next sequence; a Merge takes one but
// is not a change. Notes (LogData): a note whose first byte is 'T' ends an engine batch
// and is the batch note of the changes before it (since the previous 'T'); any other
// note is the note of the changes after it, until the next note or 'T'. So a logged
// record in which RocksDB merged several writers' batches reads as those batches did.
class LogDecoder : public rocksdb::WriteBatch::Handler {
 public:
  // Decodes `batch`, whose first sequence is `first`, into `entries` (replacing them);
  // the views point into `batch`.
  rocksdb::Status Decode(const rocksdb::WriteBatch& batch, uint64_t first);
  std::vector<LogEntry> entries;

  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override;
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice& key) override;
  rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice& key) override;
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override;
  void LogData(const rocksdb::Slice& blob) override;

 private:
  void Add(bool del, const rocksdb::Slice& key, const rocksdb::Slice& value);
  std::string_view note_;
  size_t noted_ = 0;  // entries[noted_..] have not met their batch's 'T' note yet
  uint64_t seq_ = 0;
};

class LogTail {
 public:
  explicit LogTail(size_t max_bytes) : max_bytes_(max_bytes) {}

  // From now on, remember what is written (the first reader turns it on: until a feed
  // reads, writers pay nothing).
  void Enable() { on_.store(true, std::memory_order_relaxed); }
  // Called by every writer right after RocksDB accepted `batch` (which then carries its
  // first sequence and its count in its header). Writers may call it out of order. When
  // on, it takes the batch's contents (leaving `batch` empty) rather than copying them:
  // a copy was a large allocation per write on the writer's thread, and most of what the
  // tail cost writers (perf: 1.9 us per message append of the I/O thread's 27).
  void Remember(rocksdb::WriteBatch* batch);

  // Visits the changes with sequences in [from, to], at most `max_entries`, from memory,
  // as KvStore::ReadLog does, and returns the last sequence visited. nullopt when the
  // tail does not hold `from` contiguously (older than the tail, or a writer between
  // its write and its Remember): the caller reads the WAL instead. Stops early, still
  // returning what it visited, where the tail has a gap before `to`.
  std::optional<Result<uint64_t>> Read(uint64_t from, uint64_t to, size_t max_entries,
                                       const std::function<Status(const LogEntry&)>& visit);

 private:
  struct Batch {
    uint64_t seq = 0;    // its first sequence
    uint64_t count = 0;  // sequences it takes
    size_t bytes = 0;    // the memory its contents hold (counted against max_bytes_)
    std::shared_ptr<const rocksdb::WriteBatch> batch;
  };
  const size_t max_bytes_;
  std::atomic<bool> on_{false};
  std::mutex mu_;
  std::deque<Batch> batches_;  // by sequence
  size_t bytes_ = 0;
};

}  // namespace agentstore::storage
