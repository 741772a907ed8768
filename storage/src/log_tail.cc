// The change log read back from memory (LogTail) and the decoding of a logged batch.
#include "log_tail.h"

#include <algorithm>

namespace agentstore::storage {
namespace {

// A WriteBatch's header is its first sequence (fixed64) and its count (fixed32), both
// little-endian (RocksDB's write_batch.cc format; RocksDB sets the sequence in the
// caller's batch when it writes it).
uint64_t FirstSequence(const rocksdb::WriteBatch& b) {
  const std::string& rep = b.Data();
  uint64_t seq = 0;
  for (int i = 7; i >= 0; --i) seq = (seq << 8) | static_cast<uint8_t>(rep[i]);
  return seq;
}

}  // namespace

rocksdb::Status LogDecoder::Decode(const rocksdb::WriteBatch& batch, uint64_t first) {
  entries.clear();
  note_ = {};
  noted_ = 0;
  seq_ = first;
  return batch.Iterate(this);
}

rocksdb::Status LogDecoder::PutCF(uint32_t, const rocksdb::Slice& key,
                                  const rocksdb::Slice& value) {
  Add(false, key, value);
  return rocksdb::Status::OK();
}

rocksdb::Status LogDecoder::DeleteCF(uint32_t, const rocksdb::Slice& key) {
  Add(true, key, rocksdb::Slice());
  return rocksdb::Status::OK();
}

rocksdb::Status LogDecoder::SingleDeleteCF(uint32_t, const rocksdb::Slice& key) {
  Add(true, key, rocksdb::Slice());
  return rocksdb::Status::OK();
}

// Usage counters (WriteBatch::Merge) take a sequence but are not changes the feed carries.
rocksdb::Status LogDecoder::MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) {
  ++seq_;
  return rocksdb::Status::OK();
}

void LogDecoder::LogData(const rocksdb::Slice& blob) {
  std::string_view b(blob.data(), blob.size());
  if (!b.empty() && b[0] == 'T') {
    // The end of one engine batch (RocksDB may have merged several into one logged
    // record): its changes get this note, and its other notes end with it.
    for (size_t i = noted_; i < entries.size(); ++i) entries[i].batch_note = b;
    noted_ = entries.size();
    note_ = {};
  } else {
    note_ = b;
  }
}

void LogDecoder::Add(bool del, const rocksdb::Slice& key, const rocksdb::Slice& value) {
  LogEntry e;
  e.sequence = seq_++;
  e.is_delete = del;
  e.key = std::string_view(key.data(), key.size());
  e.value = std::string_view(value.data(), value.size());
  e.note = note_;
  entries.push_back(e);
}

void LogTail::Remember(rocksdb::WriteBatch* batch) {
  if (!on_.load(std::memory_order_relaxed) || batch->Count() == 0) return;
  Batch b;
  b.seq = FirstSequence(*batch);
  b.count = batch->Count();
  // What it holds of memory: a taken batch keeps the capacity its writer grew it to (up
  // to twice its size), and the bound is on memory.
  b.bytes = batch->Data().capacity();
  b.batch = std::make_shared<const rocksdb::WriteBatch>(std::move(*batch));  // outside the lock
  batch->Clear();  // a moved-from batch has no header: make it a valid empty one
  std::lock_guard lock(mu_);
  bytes_ += b.bytes;
  // Writers finish out of order, but nearly in order: insert from the back.
  auto at = batches_.end();
  while (at != batches_.begin() && std::prev(at)->seq > b.seq) --at;
  batches_.insert(at, std::move(b));
  while (bytes_ > max_bytes_ && batches_.size() > 1) {
    bytes_ -= batches_.front().bytes;
    batches_.pop_front();
  }
}

std::optional<Result<uint64_t>> LogTail::Read(uint64_t from, uint64_t to, size_t max_entries,
                                              const std::function<Status(const LogEntry&)>& visit) {
  std::vector<Batch> run;  // contiguous batches from the one holding `from`
  uint64_t covered = 0;    // the run holds every sequence in [from, covered]
  {
    std::lock_guard lock(mu_);
    auto it = std::upper_bound(batches_.begin(), batches_.end(), from,
                               [](uint64_t s, const Batch& b) { return s < b.seq; });
    if (it == batches_.begin()) return std::nullopt;  // older than the tail
    --it;
    if (from >= it->seq + it->count) {  // past that batch: the next must start at `from`
      ++it;
      if (it == batches_.end() || it->seq != from) return std::nullopt;
    }
    uint64_t expect = it->seq, sequences = 0;
    for (; it != batches_.end() && it->seq <= to && sequences < max_entries; ++it) {
      if (it->seq != expect) break;  // a writer has not remembered its batch yet
      run.push_back(*it);
      expect = it->seq + it->count;
      sequences += it->count;
    }
    covered = expect - 1;
  }
  uint64_t last = from - 1;
  size_t visited = 0;
  LogDecoder d;
  for (const Batch& b : run) {
    rocksdb::Status s = d.Decode(*b.batch, b.seq);
    if (!s.ok()) return Result<uint64_t>(Status::Corruption("decoding the change log tail"));
    for (const LogEntry& e : d.entries) {
      if (e.sequence < from) continue;
      if (e.sequence > to) return Result<uint64_t>(last);
      if (Status v = visit(e); !v.ok()) return Result<uint64_t>(v);
      last = e.sequence;
      if (++visited >= max_entries) return Result<uint64_t>(last);
    }
  }
  // Nothing visited means "no change in [from, to]" to the caller, which then moves past
  // `to`: only true if the run reached it; else (a gap, or only counter merges up to the
  // limit) let the WAL answer.
  if (visited == 0 && covered < to) return std::nullopt;
  return Result<uint64_t>(last);
}

}  // namespace agentstore::storage
