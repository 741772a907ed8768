// WalReadAhead: reads RocksDB's WAL back ahead of its reader, on a thread of its own.
//
// Reading a logged batch back (TransactionLogIterator::GetBatch) costs a file read, a
// checksum and a copy; Debian's RocksDB computes CRC32C in software (no SSE4.2 build),
// which alone was 28% of the feed thread's time in a catch-up from 1M changes back
// (perf, benchmarks/README.md "Session 12"), and a page cache that had dropped the files
// added disk waits on top. Done here, that work overlaps the reader's filtering and
// fan-out instead of adding to it, and the checksums stay verified.
#pragma once

#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "log_tail.h"

namespace agentstore::storage {

class WalReadAhead {
 public:
  // One logged batch and its entries (which point into `batch`).
  struct Batch {
    std::unique_ptr<rocksdb::WriteBatch> batch;
    LogDecoder decoded;
  };

  // Reads `it` (already positioned) on its own thread until `max_bytes` of batches wait
  // to be taken, or the iterator runs out.
  WalReadAhead(std::unique_ptr<rocksdb::TransactionLogIterator> it, size_t max_bytes);
  ~WalReadAhead();  // stops the thread (after the batch it is reading) and joins it
  WalReadAhead(const WalReadAhead&) = delete;
  WalReadAhead& operator=(const WalReadAhead&) = delete;

  // The next batch, waiting for the thread if none is ready yet. The previous one (and
  // the views into it) is then given back. Null once the
  // iterator ran out (at the end of what was logged when it read there, or on an error)
  // or a batch failed to decode: status() then says which.
  Batch* Next();
  // Whether every batch was taken and the iterator ran out, so nothing logged later can
  // come from this reader.
  bool Exhausted();
  // After Next returned null: the iterator's status (ok at the end of the log), or the
  // decoding error, marked by `decode_failed`.
  rocksdb::Status status();
  bool decode_failed();

 private:
  void Run();

  std::unique_ptr<rocksdb::TransactionLogIterator> it_;  // the thread's only
  const size_t max_bytes_;
  std::mutex mu_;
  std::condition_variable ready_cv_;  // a batch is ready, or the thread finished
  std::condition_variable room_cv_;   // room for more, or stop
  // Batches pass in groups: the reader takes every ready batch at once, and waits (is
  // woken) only for a group of kGroup or the end. One hand-off per batch cost a futex
  // wake and a context switch per logged batch, more than the read it saved.
  static constexpr size_t kGroup = 64;
  std::deque<std::unique_ptr<Batch>> ready_;  // guarded by mu_
  size_t ready_bytes_ = 0;                    // guarded by mu_
  bool reader_waits_ = false;                 // guarded by mu_
  std::deque<std::unique_ptr<Batch>> taken_;  // the reader's (Next's) only
  // Batches the reader is done with go back to this thread, to be reused and their
  // WriteBatch freed here, where it was allocated: glibc frees another thread's memory
  // slowly (the arena's lock), and that free was the reader's largest cost after the
  // hand-off (perf).
  std::vector<std::unique_ptr<Batch>> spent_;     // the reader's only
  std::vector<std::unique_ptr<Batch>> returned_;  // guarded by mu_
  bool finished_ = false;                         // guarded by mu_: the thread read its last
  bool stop_ = false;                             // guarded by mu_
  bool decode_failed_ = false;                    // guarded by mu_
  rocksdb::Status status_;                        // guarded by mu_, once finished_
  std::thread thread_;
};

}  // namespace agentstore::storage
