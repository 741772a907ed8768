#include "wal_read_ahead.h"

#include <pthread.h>

namespace agentstore::storage {

WalReadAhead::WalReadAhead(std::unique_ptr<rocksdb::TransactionLogIterator> it, size_t max_bytes)
    : it_(std::move(it)), max_bytes_(max_bytes) {}

WalReadAhead::~WalReadAhead() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  room_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WalReadAhead::Start() {
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    if (finished_) return;  // it read to the end already
    // The batch handed out last is given back through the thread like the ones it reads.
    for (const auto& b : taken_) in_flight_bytes_ += b->batch->GetDataSize();
  }
  // What the inline reads left over (spare_) is the thread's from now on.
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "wal-read-ahead");  // for top and perf
    Run();
  });
}

bool WalReadAhead::ReadOne(std::unique_ptr<Batch>* b, rocksdb::Status* status,
                           bool* decode_failed) {
  if (!it_->Valid()) {
    *status = it_->status();
    return false;
  }
  if (spare_.empty()) {
    *b = std::make_unique<Batch>();
  } else {
    *b = std::move(spare_.back());
    spare_.pop_back();
    (*b)->batch.reset();
  }
  rocksdb::BatchResult r = it_->GetBatch();
  (*b)->batch = std::move(r.writeBatchPtr);
  *status = (*b)->decoded.Decode(*(*b)->batch, r.sequence);
  if (!status->ok()) {
    *decode_failed = true;
    return false;
  }
  it_->Next();
  return true;
}

void WalReadAhead::Run() {
  std::vector<std::unique_ptr<Batch>> back;
  std::unique_lock lock(mu_);
  while (true) {
    if (!stop_ && in_flight_bytes_ >= max_bytes_) {
      writer_waits_ = true;
      if (reader_waits_) ready_cv_.notify_all();  // it takes what is ready, then gives back
      room_cv_.wait(lock, [&] { return stop_ || in_flight_bytes_ <= max_bytes_ / 2; });
      writer_waits_ = false;
    }
    if (stop_) break;
    back.swap(returned_);
    lock.unlock();
    // Outside the lock: the reader takes what is ready meanwhile. Given-back batches are
    // reused, their WriteBatch freed here, where GetBatch allocated it.
    for (auto& b : back) {
      b->batch.reset();
      spare_.push_back(std::move(b));
    }
    back.clear();
    std::unique_ptr<Batch> b;
    rocksdb::Status s;
    bool decode_failed = false;
    bool read = ReadOne(&b, &s, &decode_failed);
    // The end is found with the last batch, so a reader never sees the last batch taken
    // and the thread not yet finished (it would read on from a stale end).
    bool at_end = read && !it_->Valid();
    if (at_end) s = it_->status();
    lock.lock();
    if (read) {
      in_flight_bytes_ += b->batch->GetDataSize();
      ready_.push_back(std::move(b));
    }
    if (!read || at_end) {
      finished_ = true;
      status_ = s;
      decode_failed_ = decode_failed;
      ready_cv_.notify_all();
      break;
    }
    if (reader_waits_ && ready_.size() >= kGroup) ready_cv_.notify_all();
  }
}

void WalReadAhead::GiveBack(std::unique_lock<std::mutex>&) {
  if (spent_.empty()) return;
  size_t bytes = 0;
  for (const auto& b : spent_) bytes += b->batch->GetDataSize();
  in_flight_bytes_ -= bytes;
  returned_.insert(returned_.end(), std::make_move_iterator(spent_.begin()),
                   std::make_move_iterator(spent_.end()));
  spent_.clear();
  // A thread waiting for room is woken once half the budget is free, not per group given
  // back: each wake is a context switch.
  if (writer_waits_ && in_flight_bytes_ <= max_bytes_ / 2) room_cv_.notify_all();
}

WalReadAhead::Batch* WalReadAhead::Next() {
  if (!thread_.joinable()) {  // not started: read here, reusing the previous batch
    if (!taken_.empty()) {
      spare_.push_back(std::move(taken_.front()));
      taken_.pop_front();
    }
    std::unique_ptr<Batch> b;
    rocksdb::Status s;
    bool decode_failed = false;
    if (!ReadOne(&b, &s, &decode_failed)) {
      std::lock_guard lock(mu_);
      finished_ = true;
      status_ = s;
      decode_failed_ = decode_failed;
      return nullptr;
    }
    taken_.push_back(std::move(b));
    return taken_.front().get();
  }
  if (!taken_.empty()) {  // the front one was handed out last time
    spent_.push_back(std::move(taken_.front()));
    taken_.pop_front();
  }
  if (spent_.size() >= kGroup) {
    std::unique_lock lock(mu_);
    GiveBack(lock);
  }
  if (taken_.empty()) {
    std::unique_lock lock(mu_);
    GiveBack(lock);
    reader_waits_ = true;
    // A waiting thread has read its budget: what is ready is all that comes until some
    // is given back (so never wait for a whole group then).
    ready_cv_.wait(lock, [&] { return ready_.size() >= kGroup || writer_waits_ || finished_; });
    reader_waits_ = false;
    taken_.swap(ready_);
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
