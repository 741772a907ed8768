// KvStore over RocksDB: WAL-backed atomic batches, the log pipeline (group commit on one
// log thread), write-failure recovery, the WAL check on open, the format-version check
// and checkpoints.
#include "agentstore/storage/kv_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "fault_fs.h"
#include "wal_check.h"

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
void WriteBatch::Merge(std::string_view key, std::string_view operand) {
  rep_->batch.Merge(ToSlice(key), ToSlice(operand));
}
int WriteBatch::Count() const { return static_cast<int>(rep_->batch.Count()); }
void WriteBatch::Clear() { rep_->batch.Clear(); }
void WriteBatch::Note(std::string_view blob) { rep_->batch.PutLogData(ToSlice(blob)); }

namespace {

// RocksDB's merge operator over StoreOptions::merge.
class MergeAdapter : public rocksdb::AssociativeMergeOperator {
 public:
  explicit MergeAdapter(decltype(StoreOptions::merge) fn) : fn_(std::move(fn)) {}
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* /*logger*/) const override {
    std::string_view have;
    if (existing) have = std::string_view(existing->data(), existing->size());
    return fn_(std::string_view(key.data(), key.size()), existing ? &have : nullptr,
               std::string_view(value.data(), value.size()), new_value);
  }
  const char* Name() const override { return "agentstore.merge"; }

 private:
  decltype(StoreOptions::merge) fn_;
};

Status WriteError(const rocksdb::Status& s) {
  if (s.IsNoSpace()) {
    return Status::ResourceExhausted(
        "disk full: the store refuses writes until space is freed (reads keep working; "
        "writes resume by themselves): " +
        s.ToString());
  }
  return FromRocks(s, "write");
}

}  // namespace

struct KvStore::Impl {
  StoreOptions options;
  std::unique_ptr<rocksdb::Env> env;  // only with faults: an Env over the fault file system
  std::unique_ptr<rocksdb::DB> db;
  bool manual_flush = false;  // kAlways: Write appends to the log buffer only
  std::string open_report;

  // The log pipeline. `written` counts batches appended to the log (tickets are handed
  // out after the append, so a flush+sync that starts after reading the count covers
  // them); `synced` is the highest count a completed sync covers. One log thread runs
  // every sync: it takes everything written so far as one group, syncs it while new
  // writes keep appending (they form the next group), then completes that group's
  // waiters in ticket order.
  std::atomic<uint64_t> written{0};
  mutable std::mutex mu;
  std::condition_variable log_cv;   // wakes the log thread
  std::condition_variable done_cv;  // wakes blocking AwaitDurable callers
  uint64_t synced = 0;              // guarded by mu
  std::atomic<uint64_t> sync_count{0};
  // The highest RocksDB sequence the last completed group sync covers (kAlways); see
  // DurableSequence. Under kNone/kBatch the durable point is the last written sequence.
  std::atomic<uint64_t> synced_sequence{0};
  std::function<void(uint64_t)> durable_listener;  // set once before concurrent use
  std::multimap<uint64_t, std::function<void(Status)>> waiters;  // guarded by mu
  bool stopping = false;                                         // guarded by mu

  // Write failures: once a log write fails, RocksDB holds the error and refuses writes;
  // a sync then must not touch the failed log file (RocksDB asserts), so the log thread
  // stops syncing, fails the waiters, and retries Resume() until it succeeds.
  std::atomic<bool> failed{false};
  Status fail_status;  // guarded by mu
  std::chrono::steady_clock::time_point failed_at;
  std::string last_resume_error;  // log thread only
  std::thread log_thread;

  void Fail(const rocksdb::Status& s) {  // caller holds mu
    if (failed.load()) return;
    fail_status = WriteError(s);
    failed_at = std::chrono::steady_clock::now();
    failed.store(true);
    std::fprintf(stderr, "agentstore storage: writes stopped: %s\n",
                 fail_status.ToString().c_str());
    log_cv.notify_all();
  }

  // kAlways: publishes the sequence a completed sync covers and tells the listener
  // (outside the lock; the log thread is the only caller, so calls stay in order).
  void AdvanceSynced(std::unique_lock<std::mutex>& lock, uint64_t seq) {
    if (options.durability != Durability::kAlways) return;
    if (seq <= synced_sequence.load(std::memory_order_relaxed)) return;
    synced_sequence.store(seq, std::memory_order_release);
    if (!durable_listener) return;
    lock.unlock();
    durable_listener(seq);
    lock.lock();
  }

  // Runs callbacks outside the lock, in ticket (= log) order.
  void Complete(std::unique_lock<std::mutex>& lock, uint64_t upto, Status s) {
    std::vector<std::function<void(Status)>> ready;
    auto end = s.ok() ? waiters.upper_bound(upto) : waiters.end();
    for (auto it = waiters.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters.erase(waiters.begin(), end);
    done_cv.notify_all();
    if (ready.empty()) return;
    lock.unlock();
    for (auto& done : ready) done(s);
    lock.lock();
  }

  rocksdb::Status SyncNow() {
    // kAlways writes only reached the log buffer; FlushWAL(true) writes it, then syncs.
    return manual_flush ? db->FlushWAL(/*sync=*/true) : db->SyncWAL();
  }

  // Enough room to flush a full memtable, roll the WAL and write the MANIFEST.
  bool RoomToResume() {
    uint64_t free = 0;
    rocksdb::Env* e = env ? env.get() : rocksdb::Env::Default();
    if (!e->GetFreeSpace(options.path, &free).ok()) return true;  // unknown: try
    return free >= kResumeFreeBytes;
  }
  static constexpr uint64_t kResumeFreeBytes = 96ull << 20;

  void TryResume(std::unique_lock<std::mutex>& lock) {
    lock.unlock();
    // RocksDB's Resume() on a disk that is still full fails its flush, and such a failed
    // recovery can leave the error unrecoverable; so wait for room first.
    if (!RoomToResume()) {
      lock.lock();
      return;
    }
    rocksdb::Status s = db->Resume();
    lock.lock();
    if (!s.ok()) {
      // Said once per distinct reason, not every retry.
      if (s.ToString() != last_resume_error) {
        last_resume_error = s.ToString();
        std::fprintf(stderr, "agentstore storage: writes still stopped (retrying): %s\n",
                     last_resume_error.c_str());
      }
      return;
    }
    last_resume_error.clear();
    // Resume flushed the memtables (everything written so far) into synced tables.
    synced = std::max(synced, written.load());
    AdvanceSynced(lock, db->GetLatestSequenceNumber());
    failed.store(false);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - failed_at).count();
    std::fprintf(stderr, "agentstore storage: writes resumed after %.1f s (was: %s)\n", secs,
                 fail_status.ToString().c_str());
    fail_status = Status::OK();
  }

  void LogLoop() {
    std::unique_lock lock(mu);
    auto interval = std::chrono::milliseconds(options.batch_sync_interval_ms);
    auto next_batch_sync = std::chrono::steady_clock::now() + interval;
    while (true) {
      if (failed.load()) {
        Complete(lock, 0, fail_status);
        if (stopping) break;
        log_cv.wait_for(lock, std::chrono::milliseconds(options.resume_interval_ms));
        if (stopping) continue;
        TryResume(lock);
        continue;
      }
      uint64_t target = written.load(std::memory_order_acquire);
      bool due = false;
      switch (options.durability) {
        case Durability::kAlways:
          // Sync whatever is written, awaited or not, so no write lingers in the buffer.
          due = target > synced;
          break;
        case Durability::kBatch:
          if (std::chrono::steady_clock::now() >= next_batch_sync) {
            next_batch_sync = std::chrono::steady_clock::now() + interval;
            due = target > synced;
          }
          break;
        case Durability::kNone:
          break;
      }
      if (!due) {
        if (stopping) break;
        if (options.durability == Durability::kBatch) {
          log_cv.wait_until(lock, next_batch_sync);
        } else if (options.durability == Durability::kAlways) {
          // Writes nobody awaits still reach the disk within a tick.
          log_cv.wait_for(lock, std::chrono::milliseconds(5));
        } else {
          log_cv.wait(lock);
        }
        continue;
      }
      // A sequence is published only after its batch reached the log buffer, so this
      // flush+sync covers every change up to it.
      uint64_t target_seq = db->GetLatestSequenceNumber();
      lock.unlock();
      rocksdb::Status s = SyncNow();
      sync_count.fetch_add(1, std::memory_order_relaxed);
      lock.lock();
      if (!s.ok()) {
        Fail(s);
        continue;
      }
      synced = std::max(synced, target);
      AdvanceSynced(lock, target_seq);
      Complete(lock, synced, Status::OK());
    }
  }
};

KvStore::KvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KvStore::~KvStore() {
  if (!impl_) return;
  if (impl_->log_thread.joinable()) {
    {
      std::lock_guard lock(impl_->mu);
      impl_->stopping = true;
    }
    impl_->log_cv.notify_all();
    impl_->log_thread.join();
  }
  if (impl_->db) {
    // After a failed log write RocksDB must not be asked to sync the failed file.
    if (!impl_->failed.load()) impl_->SyncNow();
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
  // Durable writes wait on the WAL's fdatasync, which shares the disk with flushes and
  // compactions. Writing a 64 MiB table and syncing it only at the end queues a burst of
  // writeback in front of the next WAL sync (a p99 spike); syncing every 1 MiB as it goes
  // keeps that queue short. Compactions (never on a write's path) get idle I/O priority.
  ro.bytes_per_sync = 1 << 20;
  rocksdb::Env::Default()->LowerThreadPoolIOPriority(rocksdb::Env::LOW);
  // agentstore reads RocksDB only when it opens (a full scan); at run time the memtable
  // is write-only. A vector memtable makes each insert an append (sorted once, at flush)
  // instead of a skiplist insert, which was half of the write path's CPU.
  ro.memtable_factory.reset(new rocksdb::VectorRepFactory());
  ro.allow_concurrent_memtable_write = false;  // required by the vector memtable
  // On 2 cores, writers spinning for the write-group leader burn the CPU the leader needs.
  ro.enable_write_thread_adaptive_yield = false;
  // kAlways: appends go to the log buffer; the log thread writes and syncs each group.
  impl->manual_flush = options.durability == Durability::kAlways;
  ro.manual_wal_flush = impl->manual_flush;
  if (options.merge) ro.merge_operator = std::make_shared<MergeAdapter>(options.merge);
  if (options.faults) {
    impl->env = rocksdb::NewCompositeEnv(NewFaultFileSystem(options.faults));
    ro.env = impl->env.get();
  }
  // Records are read back only on open (a full scan), so favour scan and write speed.
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 16 << 10;
  ro.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // The change feed reads the WAL back (ReadLog); keep it past recovery for a while.
  ro.WAL_ttl_seconds = options.log_retention_seconds;
  ro.WAL_size_limit_MB = options.log_retention_mb;
  if (options.log_retention_seconds == 0 && options.log_retention_mb == 0) {
    // RocksDB never purges an archive once retention is off; honour "keep nothing".
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(options.path) / "archive", ec);
  }

  // The WAL, checked before RocksDB replays it (wal_check.h).
  WalScan scan = ScanWal(options.path);
  ro.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  if (!scan.damage.empty()) {
    const WalDamage& d = scan.damage.front();
    std::string where = "WAL file " + d.file + " is damaged at byte offset " +
                        std::to_string(d.offset) + ", and " + std::to_string(d.dropped) +
                        " logged write(s) follow the damage";
    if (!options.recover_damaged_wal) {
      return Status::Corruption(where +
                                "; refusing to start. To start anyway from the last consistent "
                                "point (dropping those writes), restart with "
                                "--recover-damaged-wal");
    }
    impl->open_report = where + "; started from the last consistent point (--recover-damaged-wal), "
                                "dropping those " +
                        std::to_string(d.dropped) + " write(s)";
    ro.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  } else if (scan.torn_tail) {
    impl->open_report = "the WAL ends in a record cut short (a crash during a write that was "
                        "never acknowledged); ignored";
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
    s = impl->db->Put(rocksdb::WriteOptions(), ToSlice(kFormatKey), options.format_version);
    if (s.ok()) s = impl->SyncNow();
    if (!s.ok()) return FromRocks(s, "writing format version");
  } else if (!s.ok()) {
    return FromRocks(s, "reading format version");
  } else if (stored != options.format_version) {
    return Status::InvalidArgument(options.path + " was written in format '" + stored +
                                   "', this build reads '" + options.format_version + "'");
  }

  Impl* p = impl.get();
  impl->synced_sequence.store(impl->db->GetLatestSequenceNumber());
  impl->log_thread = std::thread([p] { p->LogLoop(); });
  return std::unique_ptr<KvStore>(new KvStore(std::move(impl)));
}

Result<uint64_t> KvStore::Write(WriteBatch& batch) {
  if (impl_->failed.load(std::memory_order_acquire)) {
    std::lock_guard lock(impl_->mu);
    if (!impl_->fail_status.ok()) return impl_->fail_status;
  }
  rocksdb::WriteOptions wo;
  wo.sync = false;  // syncing is the log thread's job, so that writers share fsyncs
  rocksdb::Status s = impl_->db->Write(wo, &batch.rep_->batch);
  if (!s.ok()) {
    std::lock_guard lock(impl_->mu);
    if (s.IsIOError() || s.IsNoSpace()) impl_->Fail(s);
    return impl_->fail_status.ok() ? FromRocks(s, "write") : impl_->fail_status;
  }
  // The log thread learns of it from the waiter (AwaitDurable*), which notifies under the
  // lock, or within its idle tick.
  uint64_t ticket = impl_->written.fetch_add(1, std::memory_order_acq_rel) + 1;
  // kNone/kBatch acknowledge once written, so the written sequence is the durable point.
  if (impl_->options.durability != Durability::kAlways && impl_->durable_listener)
    impl_->durable_listener(impl_->db->GetLatestSequenceNumber());
  return ticket;
}

Status KvStore::HandToOs() {
  if (!impl_->manual_flush) return Status::OK();  // none / batch: Write already did
  rocksdb::Status s = impl_->db->FlushWAL(/*sync=*/false);
  return s.ok() ? Status::OK() : FromRocks(s, "flush log");
}

Status KvStore::AwaitDurable(uint64_t ticket) {
  if (impl_->options.durability != Durability::kAlways) return Status::OK();
  std::unique_lock lock(impl_->mu);
  if (impl_->synced < ticket) impl_->log_cv.notify_one();
  while (impl_->synced < ticket) {
    if (impl_->failed.load()) return impl_->fail_status;
    impl_->done_cv.wait(lock);
  }
  return Status::OK();
}

void KvStore::AwaitDurableAsync(uint64_t ticket, std::function<void(Status)> done) {
  if (impl_->options.durability != Durability::kAlways) return done(Status::OK());
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->synced < ticket) {
      // The log thread completes it after the sync covering it (or fails it if writes
      // have stopped).
      impl_->waiters.emplace(ticket, std::move(done));
      impl_->log_cv.notify_one();
      return;
    }
  }
  done(Status::OK());
}

uint64_t KvStore::DurableSequence() const {
  if (impl_->options.durability != Durability::kAlways) return impl_->db->GetLatestSequenceNumber();
  return impl_->synced_sequence.load(std::memory_order_acquire);
}

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
  // Usage counters (WriteBatch::Merge) take a sequence but are not changes the feed
  // carries.
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice&, const rocksdb::Slice&) override {
    ++seq;
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
  if (impl_->failed.load()) return WriteHealth();
  AS_RETURN_IF_ERROR(FromRocks(impl_->db->Flush(rocksdb::FlushOptions()), "flush"));
  return FromRocks(impl_->SyncNow(), "WAL sync");
}

Durability KvStore::durability() const { return impl_->options.durability; }
const std::string& KvStore::path() const { return impl_->options.path; }
uint64_t KvStore::SyncCount() const { return impl_->sync_count.load(); }
Status KvStore::WriteHealth() const {
  if (!impl_->failed.load()) return Status::OK();
  std::lock_guard lock(impl_->mu);
  return impl_->fail_status;
}
const std::string& KvStore::OpenReport() const { return impl_->open_report; }
uint64_t KvStore::LatestSequence() const { return impl_->db->GetLatestSequenceNumber(); }

}  // namespace agentstore::storage
