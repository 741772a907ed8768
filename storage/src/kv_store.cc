// KvStore over RocksDB: WAL-backed atomic batches, explicit durability with group
// commit, the format-version check and checkpoints.
#include "agentstore/storage/kv_store.h"

#include <rocksdb/db.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

namespace agentstore::storage {
namespace {

// Meta keys live under a 0x00 prefix that record keys never use.
constexpr std::string_view kFormatKey("\x00meta/format", 12);

Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::OK();
  std::string msg(what);
  msg += ": ";
  msg += s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return Status::Unavailable(msg);
  if (s.IsIOError()) {
    // RocksDB reports a held LOCK file as an IOError; name it plainly for operators.
    if (s.ToString().find("lock") != std::string::npos) {
      return Status::Unavailable("data directory is in use by another process (" + msg + ")");
    }
    return Status::IoError(msg);
  }
  return Status::IoError(msg);
}

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

}  // namespace

std::string_view DurabilityName(Durability d) {
  switch (d) {
    case Durability::kNone:
      return "none";
    case Durability::kBatch:
      return "batch";
    case Durability::kAlways:
      return "always";
  }
  return "unknown";
}

std::optional<Durability> ParseDurability(std::string_view name) {
  if (name == "none") return Durability::kNone;
  if (name == "batch") return Durability::kBatch;
  if (name == "always") return Durability::kAlways;
  return std::nullopt;
}

struct WriteBatch::Rep {
  rocksdb::WriteBatch batch;
};

WriteBatch::WriteBatch() : rep_(std::make_unique<Rep>()) {}
WriteBatch::~WriteBatch() = default;
void WriteBatch::Put(std::string_view key, std::string_view value) {
  rep_->batch.Put(ToSlice(key), ToSlice(value));
}
void WriteBatch::Delete(std::string_view key) { rep_->batch.Delete(ToSlice(key)); }
int WriteBatch::Count() const { return static_cast<int>(rep_->batch.Count()); }
void WriteBatch::Clear() { rep_->batch.Clear(); }
void WriteBatch::Note(std::string_view blob) { rep_->batch.PutLogData(ToSlice(blob)); }

struct KvStore::Impl {
  StoreOptions options;
  std::unique_ptr<rocksdb::DB> db;

  // Group commit: `written` counts batches that have reached the OS; `synced` is the
  // highest count an fsync is known to cover. A waiter whose ticket is not yet covered
  // either becomes the one thread that syncs (covering everything written so far) or
  // waits for the sync in progress.
  std::atomic<uint64_t> written{0};
  std::mutex sync_mu;
  std::condition_variable sync_cv;
  uint64_t synced = 0;        // guarded by sync_mu
  bool sync_running = false;  // guarded by sync_mu
  Status sync_error;          // guarded by sync_mu; sticky once a sync fails
  std::atomic<uint64_t> sync_count{0};
  // The highest RocksDB sequence an fsync covers (kAlways, kBatch); see DurableSequence.
  std::atomic<uint64_t> synced_sequence{0};
  std::function<void(uint64_t)> durable_listener;  // set once before concurrent use

  // kBatch: a background thread syncs every interval. kAlways: a background thread syncs
  // whenever asynchronous waiters are pending, then completes them.
  std::thread sync_thread;
  bool stopping = false;                                                  // guarded by sync_mu
  std::vector<std::pair<uint64_t, std::function<void(Status)>>> waiters;  // guarded by sync_mu

  Status SyncUpTo(uint64_t ticket) {
    std::unique_lock lock(sync_mu);
    while (synced < ticket) {
      if (!sync_error.ok()) return sync_error;
      if (sync_running) {
        sync_cv.wait(lock);
        continue;
      }
      sync_running = true;
      uint64_t target = written.load(std::memory_order_acquire);
      // A sequence is published only after its batch reached the WAL, so this sync
      // covers every change up to it.
      uint64_t target_seq = db->GetLatestSequenceNumber();
      lock.unlock();
      rocksdb::Status s = db->SyncWAL();
      sync_count.fetch_add(1, std::memory_order_relaxed);
      lock.lock();
      sync_running = false;
      bool advanced = false;
      if (!s.ok()) {
        sync_error = FromRocks(s, "WAL sync");
      } else {
        if (target > synced) synced = target;
        if (target_seq > synced_sequence.load(std::memory_order_relaxed)) {
          synced_sequence.store(target_seq, std::memory_order_release);
          advanced = true;
        }
      }
      sync_cv.notify_all();
      if (advanced && durable_listener) {
        lock.unlock();
        durable_listener(target_seq);
        lock.lock();
      }
    }
    return Status::OK();
  }

  void AsyncLoop() {
    std::unique_lock lock(sync_mu);
    while (true) {
      sync_cv.wait(lock, [&] { return stopping || !waiters.empty(); });
      if (stopping && waiters.empty()) break;
      uint64_t target = 0;
      for (const auto& w : waiters) target = std::max(target, w.first);
      lock.unlock();
      Status s = SyncUpTo(target);
      lock.lock();
      std::vector<std::pair<uint64_t, std::function<void(Status)>>> ready;
      for (auto it = waiters.begin(); it != waiters.end();) {
        if (!s.ok() || it->first <= synced) {
          ready.push_back(std::move(*it));
          it = waiters.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      for (auto& [ticket, done] : ready) done(s);
      lock.lock();
    }
  }

  void BatchLoop() {
    std::unique_lock lock(sync_mu);
    while (!stopping) {
      sync_cv.wait_for(lock, std::chrono::milliseconds(options.batch_sync_interval_ms));
      if (stopping) break;
      uint64_t target = written.load(std::memory_order_acquire);
      if (target <= synced) continue;
      lock.unlock();
      SyncUpTo(target);
      lock.lock();
    }
  }
};

KvStore::KvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KvStore::~KvStore() {
  if (!impl_) return;
  if (impl_->sync_thread.joinable()) {
    {
      std::lock_guard lock(impl_->sync_mu);
      impl_->stopping = true;
    }
    impl_->sync_cv.notify_all();
    impl_->sync_thread.join();
  }
  if (impl_->db) {
    impl_->db->SyncWAL();
    impl_->db->Close();
  }
}

Result<std::unique_ptr<KvStore>> KvStore::Open(const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;

  rocksdb::Options ro;
  ro.create_if_missing = options.create_if_missing;
  ro.IncreaseParallelism(2);
  ro.write_buffer_size = 64 << 20;
  ro.max_write_buffer_number = 3;
  ro.compression = rocksdb::kLZ4Compression;
  ro.bottommost_compression = rocksdb::kZSTD;
  ro.paranoid_checks = true;
  // The change feed reads the WAL back (ReadLog); keep it past recovery for a while.
  ro.WAL_ttl_seconds = options.log_retention_seconds;
  ro.WAL_size_limit_MB = options.log_retention_mb;
  // agentstore reads RocksDB only when it opens (a full scan); at run time the memtable
  // is write-only. A vector memtable makes each insert an append (sorted once, at flush)
  // instead of a skiplist insert, which was half of the write path's CPU.
  ro.memtable_factory.reset(new rocksdb::VectorRepFactory());
  ro.allow_concurrent_memtable_write = false;  // required by the vector memtable
  // Records are read back only on open (a full scan), so favour scan and write speed.
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 16 << 10;
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  if (options.log_retention_seconds == 0 && options.log_retention_mb == 0) {
    // RocksDB never purges an archive once retention is off; honour "keep nothing".
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(options.path) / "archive", ec);
  }
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(ro, options.path, &raw);
  if (!s.ok()) return FromRocks(s, "opening " + options.path);
  impl->db.reset(raw);

  // Format version: written once into an empty store, checked on every later open.
  std::string stored;
  s = impl->db->Get(rocksdb::ReadOptions(), ToSlice(kFormatKey), &stored);
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    if (it->Valid()) {
      return Status::InvalidArgument(options.path +
                                     " holds data but no agentstore format version; refusing "
                                     "to open a directory that is not an agentstore store");
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = impl->db->Put(wo, ToSlice(kFormatKey), options.format_version);
    if (!s.ok()) return FromRocks(s, "writing format version");
  } else if (!s.ok()) {
    return FromRocks(s, "reading format version");
  } else if (stored != options.format_version) {
    return Status::InvalidArgument(options.path + " was written in format '" + stored +
                                   "', this build reads '" + options.format_version + "'");
  }

  impl->synced_sequence.store(impl->db->GetLatestSequenceNumber());
  Impl* p = impl.get();
  if (options.durability == Durability::kBatch) {
    impl->sync_thread = std::thread([p] { p->BatchLoop(); });
  } else if (options.durability == Durability::kAlways) {
    impl->sync_thread = std::thread([p] { p->AsyncLoop(); });
  }
  return std::unique_ptr<KvStore>(new KvStore(std::move(impl)));
}

Result<uint64_t> KvStore::Write(WriteBatch& batch) {
  rocksdb::WriteOptions wo;
  wo.sync = false;  // syncing is AwaitDurable's job, so that writers can share fsyncs
  rocksdb::Status s = impl_->db->Write(wo, &batch.rep_->batch);
  if (!s.ok()) return FromRocks(s, "write");
  // Counted only after the batch reached the OS: a sync that starts after reading this
  // count covers this batch.
  uint64_t ticket = impl_->written.fetch_add(1, std::memory_order_acq_rel) + 1;
  if (impl_->options.durability == Durability::kNone && impl_->durable_listener)
    impl_->durable_listener(impl_->db->GetLatestSequenceNumber());
  return ticket;
}

Status KvStore::AwaitDurable(uint64_t ticket) {
  if (impl_->options.durability != Durability::kAlways) return Status::OK();
  return impl_->SyncUpTo(ticket);
}

void KvStore::AwaitDurableAsync(uint64_t ticket, std::function<void(Status)> done) {
  if (impl_->options.durability != Durability::kAlways) return done(Status::OK());
  {
    std::lock_guard lock(impl_->sync_mu);
    if (impl_->synced < ticket) {
      impl_->waiters.emplace_back(ticket, std::move(done));
      impl_->sync_cv.notify_all();
      return;
    }
  }
  done(Status::OK());
}

uint64_t KvStore::DurableSequence() const {
  if (impl_->options.durability == Durability::kNone) return impl_->db->GetLatestSequenceNumber();
  return impl_->synced_sequence.load(std::memory_order_acquire);
}

uint64_t KvStore::LatestSequence() const { return impl_->db->GetLatestSequenceNumber(); }

void KvStore::SetDurableListener(std::function<void(uint64_t)> listener) {
  impl_->durable_listener = std::move(listener);
}

Result<uint64_t> KvStore::OldestLogSequence() {
  rocksdb::VectorLogPtr files;
  AS_RETURN_IF_ERROR(FromRocks(impl_->db->GetSortedWalFiles(files), "listing WAL files"));
  // An empty file (just created) reports no start; the next non-empty one is the oldest.
  for (const auto& f : files) {
    if (f->StartSequence() > 0 && f->SizeFileBytes() > 0) return uint64_t{f->StartSequence()};
  }
  return impl_->db->GetLatestSequenceNumber() + 1;
}

namespace {

// Walks one WAL batch: each Put/Delete takes the next sequence; notes (LogData) travel
// with the changes after them.
class LogHandler : public rocksdb::WriteBatch::Handler {
 public:
  std::vector<LogEntry> entries;
  std::string_view note;
  std::string_view batch_note;
  uint64_t seq = 0;

  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key, const rocksdb::Slice& value) override {
    Add(false, key, value);
    return rocksdb::Status::OK();
  }
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice& key) override {
    Add(true, key, rocksdb::Slice());
    return rocksdb::Status::OK();
  }
  rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice& key) override {
    Add(true, key, rocksdb::Slice());
    return rocksdb::Status::OK();
  }
  void LogData(const rocksdb::Slice& blob) override {
    std::string_view b(blob.data(), blob.size());
    if (!b.empty() && b[0] == 'T')
      batch_note = b;
    else
      note = b;
  }

 private:
  void Add(bool del, const rocksdb::Slice& key, const rocksdb::Slice& value) {
    LogEntry e;
    e.sequence = seq++;
    e.is_delete = del;
    e.key = std::string_view(key.data(), key.size());
    e.value = std::string_view(value.data(), value.size());
    e.note = note;
    entries.push_back(e);
  }
};

}  // namespace

Result<uint64_t> KvStore::ReadLog(uint64_t from, uint64_t to, size_t max_entries,
                                  const std::function<Status(const LogEntry&)>& visit) {
  if (from == 0) from = 1;
  uint64_t last = from - 1;
  if (from > to || max_entries == 0) return last;
  AS_ASSIGN_OR_RETURN(uint64_t oldest, OldestLogSequence());
  if (from < oldest) {
    return Status::OutOfRange("sequence " + std::to_string(from) +
                              " is no longer kept; the oldest kept is " + std::to_string(oldest));
  }
  std::unique_ptr<rocksdb::TransactionLogIterator> it;
  rocksdb::Status rs = impl_->db->GetUpdatesSince(from, &it);
  if (!rs.ok()) {
    // A file purged between the check and the read: report it as out of range.
    auto o = OldestLogSequence();
    if (o.ok() && from < *o)
      return Status::OutOfRange("sequence " + std::to_string(from) +
                                " is no longer kept; the oldest kept is " + std::to_string(*o));
    return FromRocks(rs, "reading the change log");
  }
  size_t visited = 0;
  for (; it->Valid(); it->Next()) {
    rocksdb::BatchResult batch = it->GetBatch();
    if (batch.sequence > to) break;
    LogHandler h;
    h.seq = batch.sequence;
    AS_RETURN_IF_ERROR(FromRocks(batch.writeBatchPtr->Iterate(&h), "decoding the change log"));
    for (LogEntry& e : h.entries) {
      if (e.sequence < from) continue;
      if (e.sequence > to) return last;
      e.batch_note = h.batch_note;
      AS_RETURN_IF_ERROR(visit(e));
      last = e.sequence;
      if (++visited >= max_entries) return last;
    }
  }
  rs = it->status();
  if (!rs.ok() && last < to) {
    // The live WAL's end may be mid-write; what was read stands.
    if (last >= from) return last;
    return FromRocks(rs, "reading the change log");
  }
  return last;
}

Status KvStore::Get(std::string_view key, std::string* value) {
  return FromRocks(impl_->db->Get(rocksdb::ReadOptions(), ToSlice(key), value), "get");
}

Status KvStore::Scan(
    std::string_view prefix,
    const std::function<Status(std::string_view key, std::string_view value)>& visit,
    std::string_view after) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  ro.readahead_size = 2 << 20;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
  it->Seek(ToSlice(after.empty() ? prefix : after));
  if (!after.empty() && it->Valid() && it->key() == ToSlice(after)) it->Next();
  for (; it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key();
    if (!k.starts_with(ToSlice(prefix))) break;
    rocksdb::Slice v = it->value();
    AS_RETURN_IF_ERROR(
        visit(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size())));
  }
  return FromRocks(it->status(), "scan");
}

Status KvStore::Checkpoint(const std::string& dir) {
  rocksdb::Checkpoint* raw = nullptr;
  AS_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(impl_->db.get(), &raw), "checkpoint"));
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  return FromRocks(cp->CreateCheckpoint(dir), "checkpoint to " + dir);
}

Status KvStore::Flush() {
  AS_RETURN_IF_ERROR(FromRocks(impl_->db->Flush(rocksdb::FlushOptions()), "flush"));
  return FromRocks(impl_->db->SyncWAL(), "WAL sync");
}

Durability KvStore::durability() const { return impl_->options.durability; }
const std::string& KvStore::path() const { return impl_->options.path; }
uint64_t KvStore::SyncCount() const { return impl_->sync_count.load(); }

}  // namespace agentstore::storage
