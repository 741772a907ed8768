// WalReadAhead: reads RocksDB's WAL back, once resumed on a thread of its own ahead of
// its reader.
//
// Reading a logged batch back (TransactionLogIterator::GetBatch) costs a file read, a
// checksum and a copy; Debian's RocksDB computes CRC32C in software (no SSE4.2 build),
// which alone was 28% of the feed thread's time in a catch-up from 1M changes back
// (perf, benchmarks/README.md "Session 12"), and a page cache that had dropped the files
// added disk waits on top. Done here, that work overlaps the reader's filtering and
// fan-out instead of adding to it, and the checksums stay verified.
//
// A reader that reads once (a cursor never resumed) reads on its own thread, as before:
// the thread starts with Start(), when a second read continues where the first stopped.
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

  // Reads `it` (already positioned). Once started, about `max_bytes` of batches (their
  // logged size) may be read and not yet given back.
  WalReadAhead(std::unique_ptr<rocksdb::TransactionLogIterator> it, size_t max_bytes);
  ~WalReadAhead();  // stops the thread (after the batch it is reading) and joins it
  WalReadAhead(const WalReadAhead&) = delete;
  WalReadAhead& operator=(const WalReadAhead&) = delete;

  // Reads ahead on a thread from now on.
  void Start();
  // The next batch: read here before Start, else taken from the thread (waiting for a
  // group of them, or the end). The previous one (and the views into it) is then given
  // back. Null once the iterator ran out (at the end of what was logged when it read
  // there, or on an error) or a batch failed to decode: status() then says which.
  Batch* Next();
  // Whether every batch was taken and the iterator ran out, so nothing logged later can
  // come from this reader.
  bool Exhausted();
  // After Next returned null: the iterator's status (ok at the end of the log), or the
  // decoding error, marked by decode_failed().
  rocksdb::Status status();
  bool decode_failed();

 private:
  // Reads the next batch into `b` (a reused one, or new); false at the end or on an
  // error, with `status` and `decode_failed` set. `it_` is the reading thread's only.
  bool ReadOne(std::unique_ptr<Batch>* b, rocksdb::Status* status, bool* decode_failed);
  // Hands spent batches back (every kGroup of them, and before waiting).
  void GiveBack(std::unique_lock<std::mutex>& lock);
  void Run();

  std::unique_ptr<rocksdb::TransactionLogIterator> it_;
  const size_t max_bytes_;
  // Batches pass in groups: the reader takes every ready batch at once, and waits (is
  // woken) only for a group of kGroup, a thread out of budget, or the end. One hand-off per batch
  // cost a futex wake and a context switch per logged batch, more than the read it saved.
  static constexpr size_t kGroup = 64;
  std::mutex mu_;
  std::condition_variable ready_cv_;          // a group is ready, or the thread finished
  std::condition_variable room_cv_;           // half the budget is free again, or stop
  std::deque<std::unique_ptr<Batch>> ready_;  // guarded by mu_
  // Logged bytes of the batches read and not given back yet (ready_, taken_, spent_).
  size_t in_flight_bytes_ = 0;  // guarded by mu_
  bool reader_waits_ = false;   // guarded by mu_
  bool writer_waits_ = false;   // guarded by mu_: the thread waits for room
  bool finished_ = false;       // guarded by mu_: the thread read its last
  bool stop_ = false;           // guarded by mu_
  bool decode_failed_ = false;  // guarded by mu_
  rocksdb::Status status_;      // guarded by mu_, once finished_
  // Batches the reader is done with go back to the reading thread, which frees their
  // WriteBatch and reuses them: glibc frees another thread's memory slowly (the arena's
  // lock), and that free was the reader's largest cost after the hand-off (perf).
  std::vector<std::unique_ptr<Batch>> returned_;  // guarded by mu_
  std::deque<std::unique_ptr<Batch>> taken_;      // the reader's; front: the one handed out
  std::vector<std::unique_ptr<Batch>> spent_;     // the reader's
  std::vector<std::unique_ptr<Batch>> spare_;     // the reading side's (thread, or Next)
  std::thread thread_;                            // once started
};

}  // namespace agentstore::storage
