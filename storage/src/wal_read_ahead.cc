#include "wal_read_ahead.h"

#include <pthread.h>

namespace agentstore::storage {

WalReadAhead::WalReadAhead(std::unique_ptr<rocksdb::TransactionLogIterator> it, size_t max_bytes)
    : it_(std::move(it)), max_bytes_(max_bytes), thread_([this] {
        pthread_setname_np(pthread_self(), "wal-read-ahead");  // for top and perf
        Run();
      }) {}

WalReadAhead::~WalReadAhead() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  room_cv_.notify_all();
  thread_.join();
}

void WalReadAhead::Run() {
  // Given-back batches, reused: their WriteBatch is freed here and their entries keep
  // their capacity, so a batch read costs only the WriteBatch GetBatch allocates.
  std::vector<std::unique_ptr<Batch>> spare;
  std::unique_lock lock(mu_);
  while (true) {
    room_cv_.wait(lock, [&] { return stop_ || ready_bytes_ < max_bytes_; });
    if (stop_) break;
    if (!returned_.empty()) {
      spare.insert(spare.end(), std::make_move_iterator(returned_.begin()),
                   std::make_move_iterator(returned_.end()));
      returned_.clear();
    }
    lock.unlock();
    // Outside the lock: the reader takes what is ready meanwhile.
    std::unique_ptr<Batch> b;
    if (spare.empty()) {
      b = std::make_unique<Batch>();
    } else {
      b = std::move(spare.back());
      spare.pop_back();
      b->batch.reset();
    }
    rocksdb::Status s;
    bool decoded = false;
    if (it_->Valid()) {
      rocksdb::BatchResult r = it_->GetBatch();
      b->batch = std::move(r.writeBatchPtr);
      s = b->decoded.Decode(*b->batch, r.sequence);
      decoded = s.ok();
      if (decoded) it_->Next();
    } else {
      s = it_->status();
    }
    lock.lock();
    if (!decoded) {
      decode_failed_ = it_->Valid();  // a batch was read and did not decode
      status_ = s;
      finished_ = true;
      ready_cv_.notify_all();
      break;
    }
    ready_bytes_ += b->batch->GetDataSize();
    ready_.push_back(std::move(b));
    if (reader_waits_ && (ready_.size() >= kGroup || ready_bytes_ >= max_bytes_))
      ready_cv_.notify_all();
  }
}

WalReadAhead::Batch* WalReadAhead::Next() {
  if (!taken_.empty()) {  // the front one was handed out last time
    spent_.push_back(std::move(taken_.front()));
    taken_.pop_front();
  }
  if (taken_.empty()) {
    std::unique_lock lock(mu_);
    returned_.insert(returned_.end(), std::make_move_iterator(spent_.begin()),
                     std::make_move_iterator(spent_.end()));
    spent_.clear();
    reader_waits_ = true;
    ready_cv_.wait(
        lock, [&] { return ready_.size() >= kGroup || ready_bytes_ >= max_bytes_ || finished_; });
    reader_waits_ = false;
    taken_.swap(ready_);
    bool was_full = ready_bytes_ >= max_bytes_;
    ready_bytes_ = 0;
    if (was_full) room_cv_.notify_all();
  }
  return taken_.empty() ? nullptr : taken_.front().get();
}

bool WalReadAhead::Exhausted() {
  if (taken_.size() > 1) return false;  // the front one was handed out
  std::lock_guard lock(mu_);
  return finished_ && ready_.empty();
}

rocksdb::Status WalReadAhead::status() {
  std::lock_guard lock(mu_);
  return status_;
}

bool WalReadAhead::decode_failed() {
  std::lock_guard lock(mu_);
  return decode_failed_;
}

}  // namespace agentstore::storage
