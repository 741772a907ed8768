// KvStore over RocksDB: WAL-backed atomic batches, the log pipeline (group commit on one
// log thread), write-failure recovery, the WAL check on open, the format-version check
// and checkpoints.
#include "agentstore/storage/kv_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "fault_fs.h"
#include "log_tail.h"
#include "wal_check.h"
#include "wal_read_ahead.h"

namespace agentstore::storage {
namespace {

// Meta keys live under a 0x00 prefix that record keys never use.
constexpr std::string_view kFormatKey("\x00meta/format", 12);
// Put into every new memtable; see Impl::PutMemtableMarker. The change feed skips it
// (keys under 0x00 are not records).
constexpr std::string_view kMemtableMarkerKey("\x00meta/memtable", 14);

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
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing, const rocksdb::Slice& value,
             std::string* new_value, rocksdb::Logger* /*logger*/) const override {
    std::string_view have;
    if (existing) have = std::string_view(existing->data(), existing->size());
    return fn_(std::string_view(key.data(), key.size()), existing ? &have : nullptr,
               std::string_view(value.data(), value.size()), new_value);
  }
  const char* Name() const override { return "agentstore.merge"; }

 private:
  decltype(StoreOptions::merge) fn_;
};

// Turns RocksDB's own recovery from background errors off (its SstFileManager thread
// would otherwise run Resume() at a moment of its choosing, concurrently with writes
// and WAL syncs; see "The WAL gate" below) and tells the log thread, which resumes
// under the gate instead.
class NoAutoRecovery : public rocksdb::EventListener {
 public:
  explicit NoAutoRecovery(std::atomic<bool>* flag) : flag_(flag) {}
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason /*reason*/, rocksdb::Status /*bg_error*/,
                            bool* auto_recovery) override {
    if (auto_recovery) *auto_recovery = false;
    flag_->store(true, std::memory_order_release);
  }
  const char* Name() const override { return "agentstore.no_auto_recovery"; }

 private:
  std::atomic<bool>* flag_;
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

// RocksDB's info LOG (<path>/LOG; the previous run's becomes LOG.old). RocksDB 7.8's own
// logger writes through a WritableFileWriter, which after one failed write (a full disk)
// asserts (`sync_without_flush_called_`) at its next message and aborts the process; a
// failed WAL flush logs an error at exactly that moment, so a real full disk aborted
// agentstored (the injected faults never made the LOG's buffer reach the disk). This
// one writes each line with stdio and ignores failures.
class InfoLog : public rocksdb::Logger {
 public:
  explicit InfoLog(const std::string& dir) {
    const std::string path = dir + "/LOG";
    std::error_code ec;
    std::filesystem::rename(path, path + ".old", ec);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0 && !(f_ = ::fdopen(fd, "w"))) ::close(fd);
  }
  ~InfoLog() override {
    if (f_) std::fclose(f_);
  }
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (!f_) return;
    auto now = std::chrono::system_clock::now();
    std::time_t secs = std::chrono::system_clock::to_time_t(now);
    auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
        1000000;
    std::tm tm{};
    ::localtime_r(&secs, &tm);
    std::lock_guard l(mu_);
    std::fprintf(f_, "%04d/%02d/%02d-%02d:%02d:%02d.%06lld ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
    std::vfprintf(f_, format, ap);
    std::fputc('\n', f_);
    std::fflush(f_);
    std::clearerr(f_);  // a full disk: this line is lost, the next ones are tried again
  }

 private:
  std::mutex mu_;
  FILE* f_ = nullptr;
};

// Moves the WAL file `from` and every later one (by file number) of the store at `path`
// into <path>/wal-dropped, so that recovery does not replay them.
Status MoveWalsAside(const std::string& path, const std::string& from) {
  namespace fs = std::filesystem;
  const std::vector<WalFile> wals = ListWals(path);
  auto first = std::find_if(wals.begin(), wals.end(), [&](const WalFile& w) {
    return fs::path(w.path).filename() == fs::path(from).filename();
  });
  if (first == wals.end()) return Status::InvalidArgument("not a WAL file: " + from);
  const fs::path aside = fs::path(path) / "wal-dropped";
  std::error_code ec;
  fs::create_directories(aside, ec);
  if (ec) return Status::IoError("creating " + aside.string() + ": " + ec.message());
  for (auto w = first; w != wals.end(); ++w) {
    fs::rename(w->path, aside / fs::path(w->path).filename(), ec);
    if (ec) return Status::IoError("moving " + w->path + ": " + ec.message());
  }
  return Status::OK();
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
  std::function<void(uint64_t)> durable_listener;                // set once before concurrent use
  std::multimap<uint64_t, std::function<void(Status)>> waiters;  // guarded by mu
  bool stopping = false;                                         // guarded by mu

  // The WAL gate. RocksDB 7.8 aborts the process (assert `sync_without_flush_called_`
  // in WritableFileWriter, live in Debian's build) when a WAL file writer that saw a
  // failed write is touched again: by a Write's Append, or by SyncWAL. Its own guard,
  // the background error, is set only after the failing call returns, so concurrent
  // callers slip past it. The race that aborted under a full disk: the log thread's
  // FlushWAL fails (ENOSPC) while holding RocksDB's log_write_mutex_; a Write leader
  // that had passed the background-error check is waiting on that mutex and appends to
  // the failed writer as soon as it gets it. So every RocksDB call that can fail a WAL
  // write runs with no other one in flight:
  //  - Writes hold `gate` shared. Under kAlways a Write only appends to the log
  //    buffer, which cannot fail as long as the buffer has room: writes count their
  //    bytes in `unflushed`, and one that would exceed kSharedWriteBudget (well below
  //    the 1 MiB buffer, so the buffer never flushes itself) takes the exclusive path.
  //    (kNone/kBatch: each Write writes the log itself; RocksDB's write thread orders
  //    those, and records a failure before the next write group starts.)
  //  - WAL flushes (FlushWAL(false)), memtable switches, Resume(), Flush, Checkpoint
  //    and (kBatch) SyncWAL hold `gate` exclusively, and a failure marks the store
  //    failed before the gate is released, so no later Write reaches the failed writer.
  //  - Under kAlways the log thread's SyncWAL runs outside the gate, so the next group
  //    appends while one syncs; it holds `sync_mu` and sets `syncing`, and exclusive
  //    work that finds `syncing` waits for the sync to end (SyncWAL entered on a writer
  //    failed meanwhile would abort). Memtable switches, which flush the log buffer
  //    and so can fail, are made by the log thread under the gate before the memtable
  //    fills (kSwitchMemtableBytes), never by a Write.
  //  - Resume() abandons a failed log file only if it has a memtable to flush (it then
  //    switches to a new log); with an empty memtable it clears the error and keeps the
  //    failed file, and the next Write aborts (e.g. the first write after a resume
  //    fails). So every memtable gets a marker write as soon as it is made (at open and
  //    after each switch, all of which happen under the gate). The marker is logged
  //    like any write: a WAL-less one would leave a gap in the sequences the change
  //    feed reads back (ReadLog).
  // Lock order: sync_mu, then gate, then mu.
  std::shared_mutex gate;
  std::mutex sync_mu;
  std::atomic<bool> syncing{false};
  std::atomic<uint64_t> unflushed{0};  // kAlways: bytes appended since the last WAL flush
  uint64_t appended_since_check = 0;   // guarded by gate (exclusive)
  // Bytes Writes may append under the shared gate before one takes the exclusive path:
  // under kAlways, until the log thread flushes the buffer (record headers add < 50%);
  // else, until a write checks the memtable's size.
  static constexpr uint64_t kSharedWriteBudget = 512 << 10;
  static constexpr uint64_t kUnbufferedCheckBytes = 4 << 20;
  uint64_t SharedBudget() const {
    return manual_flush ? kSharedWriteBudget : kUnbufferedCheckBytes;
  }
  static constexpr uint64_t kWriteBufferBytes = 64 << 20;
  static constexpr uint64_t kSwitchMemtableBytes = kWriteBufferBytes / 2;

  // Runs `io` holding the gate exclusively, with no WAL sync in progress.
  template <class F>
  auto Exclusive(F&& io) {
    std::unique_lock g(gate);
    if (syncing.load(std::memory_order_acquire)) {
      g.unlock();
      std::lock_guard s(sync_mu);
      g.lock();
    }
    return io();
  }

  // Write failures: once a log write fails, RocksDB holds the error and refuses writes;
  // a sync then must not touch the failed log file (RocksDB asserts), so the log thread
  // stops syncing, fails the waiters, and retries Resume() until it succeeds.
  std::atomic<bool> failed{false};
  std::atomic<bool> rocks_error{false};  // RocksDB reported a background error
  Status fail_status;                    // guarded by mu
  std::chrono::steady_clock::time_point failed_at;
  std::string last_resume_error;  // log thread only
  std::thread log_thread;

  // ReadLog (log_tail.h): the newest batches in memory, and the WAL iterator the last
  // read stopped at (its next read usually starts there; a new iterator reads its file
  // from the start).
  static constexpr size_t kTailBytes = 32 << 20;
  LogTail tail{kTailBytes};
  // How far a WAL cursor's thread reads ahead of the reader (batches' bytes).
  static constexpr size_t kReadAheadBytes = 16 << 20;
  struct WalCursor {
    std::unique_ptr<WalReadAhead> ahead;   // reads and decodes the batches
    WalReadAhead::Batch* batch = nullptr;  // the one being visited (ahead's)
    size_t at = 0;                         // batch->decoded.entries[at..]: not visited yet
    uint64_t next = 0;                     // every sequence below it was passed
    size_t left() const { return batch ? batch->decoded.entries.size() - at : 0; }
  };
  std::mutex cursor_mu;
  std::unique_ptr<WalCursor> cursor;  // guarded by cursor_mu

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

  // Caller holds the gate exclusively with no sync in progress (or is alone).
  rocksdb::Status SyncNow() {
    // kAlways writes only reached the log buffer; FlushWAL(true) writes it, then syncs.
    if (manual_flush) appended_since_check += unflushed.exchange(0);
    return manual_flush ? db->FlushWAL(/*sync=*/true) : db->SyncWAL();
  }

  // Caller holds the gate exclusively (or is alone): see the gate's last point.
  rocksdb::Status PutMemtableMarker() {
    rocksdb::WriteBatch b;
    b.Put(ToSlice(kMemtableMarkerKey), rocksdb::Slice());
    rocksdb::Status s = db->Write(rocksdb::WriteOptions(), &b);
    if (s.ok()) tail.Remember(&b);  // it takes a sequence: no gap in the tail
    return s;
  }

  // Caller holds the gate exclusively: switches to a new memtable (and WAL) well
  // before the memtable fills, so that a Write never does (see the gate).
  rocksdb::Status MaybeSwitchMemtable() {
    if (appended_since_check < kSwitchMemtableBytes / 16) return rocksdb::Status::OK();
    appended_since_check = 0;
    uint64_t size = 0;
    if (!db->GetIntProperty("rocksdb.cur-size-active-mem-table", &size) ||
        size < kSwitchMemtableBytes) {
      return rocksdb::Status::OK();
    }
    // Not on a (nearly) full disk (see NoRoomToSwitch): put off, retried after the next
    // writes; but not past 3/4 of the write buffer, since a Write must never be the one
    // that switches (see the gate).
    if (size < kWriteBufferBytes / 4 * 3 && !RoomToResume()) return rocksdb::Status::OK();
    rocksdb::FlushOptions fo;
    fo.wait = false;  // switch now, write the table in the background
    fo.allow_write_stall = true;
    rocksdb::Status s = db->Flush(fo);
    return s.ok() ? PutMemtableMarker() : s;
  }

  // Enough room to flush a full memtable, roll the WAL and write the MANIFEST.
  bool RoomToResume() {
    uint64_t free = 0;
    rocksdb::Env* e = env ? env.get() : rocksdb::Env::Default();
    if (!e->GetFreeSpace(options.path, &free).ok()) return true;  // unknown: try
    return free >= kResumeFreeBytes;
  }
  static constexpr uint64_t kResumeFreeBytes = 96ull << 20;

  // A memtable switch creates a new WAL file, and RocksDB 7.8 classes a failure to create
  // it on a full disk (kMemTable, NoSpace) as a fatal error that Resume() never clears:
  // writes would stay stopped until a restart. So switches (ours, Flush, Checkpoint) are
  // made only with room to spare; a Flush or Checkpoint without it is refused up front.
  Status NoRoomToSwitch(std::string_view what) {
    if (RoomToResume()) return Status::OK();
    return Status::ResourceExhausted(
        std::string(what) +
        ": disk full (less than 96 MiB free), not attempted; writes are not affected");
  }

  // A Resume() in progress on the log thread, and a close that may have to cut it short:
  // RocksDB 7.8's Resume can wait forever for its recovery flush when the disk fills
  // again during it (gdb on a hung DiskFullAdversarial run: the log thread in
  // ResumeImpl -> FlushMemTable -> WaitForFlushMemTables, ~KvStore joining it). Cancelling
  // background work sets RocksDB's shutting-down flag, which that wait checks.
  std::mutex resume_mu;
  bool resuming = false;  // guarded by resume_mu
  bool closing = false;   // guarded by resume_mu

  void TryResume(std::unique_lock<std::mutex>& lock) {
    lock.unlock();
    // RocksDB's Resume() on a disk that is still full fails its flush, and such a failed
    // recovery can leave the error unrecoverable; so wait for room first.
    if (!RoomToResume()) {
      lock.lock();
      return;
    }
    rocksdb::Status s = Exclusive([&] {
      {
        std::lock_guard g(resume_mu);
        if (closing) return rocksdb::Status::ShutdownInProgress();
        resuming = true;
      }
      rocksdb::Status r = db->Resume();
      {
        std::lock_guard g(resume_mu);
        resuming = false;
      }
      return r.ok() ? PutMemtableMarker() : r;
    });
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
    rocks_error.store(false);
    if (!failed.load()) return;  // a background error that had not stopped writes
    // Resume flushed the memtables (everything written so far) into synced tables.
    synced = std::max(synced, written.load());
    AdvanceSynced(lock, db->GetLatestSequenceNumber());
    failed.store(false);
    double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - failed_at).count();
    std::fprintf(stderr, "agentstore storage: writes resumed after %.1f s (was: %s)\n", secs,
                 fail_status.ToString().c_str());
    fail_status = Status::OK();
  }

  void FailNow(const rocksdb::Status& s) {
    std::lock_guard l(mu);
    Fail(s);
  }

  // Makes everything written so far (`*target` writes) durable: kAlways flushes the log
  // buffer under the gate, then syncs outside it while the next group appends; kBatch
  // syncs under the gate. Marks the store failed (before releasing the gate) on error.
  rocksdb::Status SyncGroup(uint64_t* target, uint64_t* target_seq) {
    std::lock_guard s(sync_mu);
    std::unique_lock g(gate);
    if (failed.load()) return rocksdb::Status::Aborted("writes stopped");
    // Both read under the exclusive gate, which no Write holds: the tickets and the
    // sequence this sync covers describe the same writes. (Reading the sequence before
    // taking the gate let a write land between the two: acknowledged as durable, but
    // its change not published to the feed until some later sync.)
    *target = written.load(std::memory_order_acquire);
    *target_seq = db->GetLatestSequenceNumber();
    rocksdb::Status st;
    if (!manual_flush) {
      st = db->SyncWAL();
      sync_count.fetch_add(1, std::memory_order_relaxed);
      if (!st.ok()) FailNow(st);
      return st;
    }
    appended_since_check += unflushed.exchange(0);
    st = MaybeSwitchMemtable();
    if (st.ok()) st = db->FlushWAL(/*sync=*/false);
    if (!st.ok()) {
      FailNow(st);
      return st;
    }
    syncing.store(true, std::memory_order_release);
    g.unlock();
    st = db->SyncWAL();
    syncing.store(false, std::memory_order_release);
    sync_count.fetch_add(1, std::memory_order_relaxed);
    // A failed SyncWAL leaves the writer in a state RocksDB tolerates (it records that
    // the error came from a sync), so marking the store failed after the gate is safe.
    if (!st.ok()) FailNow(st);
    return st;
  }

  void LogLoop() {
    std::unique_lock lock(mu);
    auto interval = std::chrono::milliseconds(options.batch_sync_interval_ms);
    auto next_batch_sync = std::chrono::steady_clock::now() + interval;
    auto next_resume = std::chrono::steady_clock::now();
    while (true) {
      if (failed.load()) {
        Complete(lock, 0, fail_status);
        if (stopping) break;
        log_cv.wait_for(lock, std::chrono::milliseconds(options.resume_interval_ms));
        if (stopping) continue;
        TryResume(lock);
        continue;
      }
      if (rocks_error.load() && std::chrono::steady_clock::now() >= next_resume) {
        // RocksDB reported a background error (e.g. a failed table write) that has not
        // stopped writes yet; it no longer recovers by itself (NoAutoRecovery).
        next_resume = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(options.resume_interval_ms);
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
      uint64_t target_seq = 0;
      lock.unlock();
      rocksdb::Status s = SyncGroup(&target, &target_seq);
      lock.lock();
      if (!s.ok()) continue;  // the store is failed now: the loop's top handles it
      synced = std::max(synced, target);
      AdvanceSynced(lock, target_seq);
      Complete(lock, synced, Status::OK());
    }
  }
};

KvStore::KvStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

KvStore::~KvStore() {
  if (!impl_) return;
  impl_->cursor.reset();  // its read-ahead thread reads the WAL: before the DB closes
  if (impl_->log_thread.joinable()) {
    {
      std::lock_guard lock(impl_->mu);
      impl_->stopping = true;
    }
    impl_->log_cv.notify_all();
    {
      std::lock_guard g(impl_->resume_mu);
      impl_->closing = true;
      // Only a Resume that is running now is cut short; none starts after this.
      if (impl_->resuming) rocksdb::CancelAllBackgroundWork(impl_->db.get(), /*wait=*/false);
    }
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
  ro.write_buffer_size = Impl::kWriteBufferBytes;
  // The WAL buffer a kAlways Write appends to; the gate's budget stays far below it.
  ro.writable_file_max_buffer_size = 1 << 20;
  static_assert(Impl::kSharedWriteBudget * 3 / 2 < (1 << 20));
  ro.listeners.push_back(std::make_shared<NoAutoRecovery>(&impl->rocks_error));
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
    std::string where = d.gap.empty()
                            ? "WAL file " + d.file + " is damaged at byte offset " +
                                  std::to_string(d.offset) + ", and " + std::to_string(d.dropped) +
                                  " logged write(s) follow the damage"
                            : "WAL file " + d.file + " (byte offset 0) " + d.gap + ", and " +
                                  std::to_string(d.dropped) + " logged write(s) follow the gap";
    if (!options.recover_damaged_wal) {
      return Status::Corruption(where +
                                "; refusing to start. To start anyway from the last consistent "
                                "point (dropping those writes), restart with "
                                "--recover-damaged-wal");
    }
    impl->open_report = where +
                        "; started from the last consistent point (--recover-damaged-wal), "
                        "dropping those " +
                        std::to_string(d.dropped) + " write(s)";
    ro.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
    if (!d.gap.empty()) {
      // RocksDB's point-in-time recovery stops at damage but not at a gap between intact
      // files: move the files from the gap on aside (kept for inspection, not replayed).
      if (Status m = MoveWalsAside(options.path, d.file); !m.ok()) return m;
      impl->open_report +=
          "; the WAL files from " + d.file + " on were moved to " + options.path + "/wal-dropped";
    }
  } else if (scan.torn_tail) {
    impl->open_report =
        "the WAL ends in a record cut short (a crash during a write that was "
        "never acknowledged); ignored";
    // The cut record may be complete in length with a bad checksum (a torn write whose
    // length reached the disk): RocksDB's kTolerateCorruptedTailRecords refuses that
    // ("checksum mismatch"), point-in-time recovery drops it. The scan found no valid
    // record after it, so both replay the same writes.
    ro.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  }

  // Made here, after the WAL check: a refused start leaves the directory as it was.
  if (options.create_if_missing) ::mkdir(options.path.c_str(), 0700);
  ro.info_log = std::make_shared<InfoLog>(options.path);
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

  s = impl->PutMemtableMarker();
  if (!s.ok()) return FromRocks(s, "opening " + options.path);
  Impl* p = impl.get();
  impl->synced_sequence.store(impl->db->GetLatestSequenceNumber());
  impl->log_thread = std::thread([p] {
    pthread_setname_np(pthread_self(), "wal-sync");  // for top -H and perf
    p->LogLoop();
  });
  return std::unique_ptr<KvStore>(new KvStore(std::move(impl)));
}

Result<uint64_t> KvStore::Write(WriteBatch& batch) {
  Impl& m = *impl_;
  // Fails fast while writes are stopped (also while the log thread resumes them).
  if (m.failed.load(std::memory_order_acquire)) {
    std::lock_guard lock(m.mu);
    if (!m.fail_status.ok()) return m.fail_status;
  }
  uint64_t bytes = batch.rep_->batch.GetDataSize();
  // Runs under the gate (shared or, with `alone`, exclusive; see Impl).
  auto write = [&](bool alone) -> Result<uint64_t> {
    if (m.failed.load(std::memory_order_acquire)) {
      std::lock_guard lock(m.mu);
      if (!m.fail_status.ok()) return m.fail_status;
    }
    rocksdb::WriteOptions wo;
    wo.sync = false;  // syncing is the log thread's job, so that writers share fsyncs
    rocksdb::Status s = m.db->Write(wo, &batch.rep_->batch);
    if (s.ok()) {
      m.tail.Remember(&batch.rep_->batch);  // may take its contents
      batch.rep_->batch.Clear();            // the same either way: written means empty
    }
    if (!s.ok()) {
      std::lock_guard lock(m.mu);
      if (s.IsIOError() || s.IsNoSpace()) m.Fail(s);
      return m.fail_status.ok() ? FromRocks(s, "write") : m.fail_status;
    }
    // The log thread learns of it from the waiter (AwaitDurable*), which notifies under
    // the lock, or within its idle tick.
    uint64_t ticket = m.written.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (alone) {
      // A big write may have filled the memtable: switch it now, while still alone,
      // rather than in the next (concurrent) Write. A failure fails this write's wait.
      // kAlways: also hand the log buffer to the OS (no sync is running), so that the
      // writes after this one fit in it again and need not come here too.
      m.appended_since_check += m.unflushed.exchange(0);
      rocksdb::Status sw = m.manual_flush ? m.db->FlushWAL(/*sync=*/false) : rocksdb::Status::OK();
      if (sw.ok()) sw = m.MaybeSwitchMemtable();
      if (!sw.ok()) m.FailNow(sw);
    }
    return ticket;
  };
  auto gated = [&]() -> Result<uint64_t> {
    {
      std::shared_lock g(m.gate);
      if (m.unflushed.fetch_add(bytes, std::memory_order_relaxed) + bytes <= m.SharedBudget()) {
        return write(false);  // kAlways: fits in the log buffer, an append that cannot fail
      }
    }
    // May make RocksDB write its log buffer out, or switch the memtable (and fail):
    // alone under the gate.
    return m.Exclusive([&] { return write(true); });
  };
  Result<uint64_t> ticket = gated();
  // kNone/kBatch acknowledge once written, so the written sequence is the durable point.
  if (ticket.ok() && m.options.durability != Durability::kAlways && m.durable_listener)
    m.durable_listener(m.db->GetLatestSequenceNumber());
  return ticket;
}

Status KvStore::HandToOs() {
  Impl& m = *impl_;
  if (!m.manual_flush) return Status::OK();  // none / batch: Write already did
  // Writes add to `unflushed` and append under the gate, and the log thread zeroes it
  // when it flushes under the gate: zero means every write so far reached the OS.
  if (m.unflushed.load(std::memory_order_acquire) == 0) return Status::OK();
  return m.Exclusive([&]() -> Status {
    if (m.failed.load()) return WriteHealth();
    m.appended_since_check += m.unflushed.exchange(0);
    rocksdb::Status s = m.db->FlushWAL(/*sync=*/false);
    if (!s.ok()) {
      m.FailNow(s);
      return WriteHealth();
    }
    return Status::OK();
  });
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

Result<uint64_t> KvStore::ReadLog(uint64_t from, uint64_t to, size_t max_entries,
                                  const std::function<Status(const LogEntry&)>& visit) {
  Impl& m = *impl_;
  if (from == 0) from = 1;
  uint64_t last = from - 1;
  if (from > to || max_entries == 0) return last;
  m.tail.Enable();
  if (auto r = m.tail.Read(from, to, max_entries, visit)) return *r;

  // A WAL iterator from `at`: out_of_range once the files holding it are gone.
  auto open_cursor = [&](uint64_t at) -> Result<std::unique_ptr<Impl::WalCursor>> {
    AS_ASSIGN_OR_RETURN(uint64_t oldest, OldestLogSequence());
    auto gone = [&](uint64_t kept) {
      return Status::OutOfRange("sequence " + std::to_string(at) +
                                " is no longer kept; the oldest kept is " + std::to_string(kept));
    };
    if (at < oldest) return gone(oldest);
    std::unique_ptr<rocksdb::TransactionLogIterator> it;
    rocksdb::Status rs = m.db->GetUpdatesSince(at, &it);
    if (!rs.ok()) {
      // A file purged between the check and the read: report it as out of range.
      auto o = OldestLogSequence();
      if (o.ok() && at < *o) return gone(*o);
      return FromRocks(rs, "reading the change log");
    }
    auto c = std::make_unique<Impl::WalCursor>();
    c->ahead = std::make_unique<WalReadAhead>(std::move(it), Impl::kReadAheadBytes);
    c->next = at;
    return c;
  };
  // From the WAL: resume the iterator the last read stopped at if this one starts there.
  std::unique_ptr<Impl::WalCursor> c;
  {
    std::lock_guard lock(m.cursor_mu);
    if (m.cursor && m.cursor->next == from) c = std::move(m.cursor);
  }
  // One that had read everything logged when it stopped cannot see what came after.
  if (c && c->left() == 0 && c->ahead->Exhausted()) c.reset();
  // A second read in a row (a catch-up, read in steps): the rest is read ahead.
  bool resumed = c != nullptr;
  if (resumed) c->ahead->Start();
  if (!c) {
    AS_ASSIGN_OR_RETURN(c, open_cursor(from));
  }
  size_t visited = 0;
  bool stopped = false;  // by `to` or `max_entries`, with the iterator still usable
  while (!stopped) {
    if (c->left() == 0) {
      c->batch = c->ahead->Next();
      c->at = 0;
      if (!c->batch) {
        if (c->ahead->decode_failed())
          return FromRocks(c->ahead->status(), "decoding the change log");
        // Reading ahead, the thread met the end of the log as it was then: what was
        // logged since is read with a fresh iterator before this read says it ends here.
        if (resumed && c->ahead->status().ok() && last < to) {
          resumed = false;
          AS_ASSIGN_OR_RETURN(c, open_cursor(c->next));
          continue;
        }
        break;
      }
      continue;
    }
    const LogEntry& e = c->batch->decoded.entries[c->at];
    if (e.sequence < c->next) {  // before `from`, or read before a fresh iterator
      ++c->at;
      continue;
    }
    if (e.sequence > to) {
      c->next = to + 1;  // everything up to `to` was passed
      stopped = true;
      break;
    }
    AS_RETURN_IF_ERROR(visit(e));
    last = e.sequence;
    c->next = last + 1;
    ++c->at;
    if (++visited >= max_entries) stopped = true;
  }
  if (stopped) {
    std::lock_guard lock(m.cursor_mu);
    m.cursor = std::move(c);
    return last;
  }
  // The iterator ran out (the end of what is logged, or of its file list).
  rocksdb::Status rs = c->ahead->status();
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
  // It flushes the memtable and the log buffer, so it may fail a log write: alone under
  // the gate (writes wait for it). A log write it fails leaves RocksDB's background error
  // set before it returns, so the next Write is refused (and stops the store) without
  // touching the log; a failure to write `dir` itself does not stop writes.
  return impl_->Exclusive([&]() -> Status {
    if (impl_->failed.load()) return WriteHealth();
    AS_RETURN_IF_ERROR(impl_->NoRoomToSwitch("checkpoint"));  // it flushes the memtable
    Status s = FromRocks(cp->CreateCheckpoint(dir), "checkpoint to " + dir);
    impl_->PutMemtableMarker();  // it may have switched the memtable; harmless if not
    return s;
  });
}

Status KvStore::Flush() {
  return impl_->Exclusive([&]() -> Status {
    if (impl_->failed.load()) return WriteHealth();
    AS_RETURN_IF_ERROR(impl_->NoRoomToSwitch("flush"));
    rocksdb::Status s = impl_->db->Flush(rocksdb::FlushOptions());
    if (s.ok()) s = impl_->PutMemtableMarker();
    if (s.ok()) s = impl_->SyncNow();
    if (!s.ok()) {
      if (s.IsIOError() || s.IsNoSpace()) impl_->FailNow(s);
      return FromRocks(s, "flush");
    }
    return Status::OK();
  });
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

Result<uint64_t> KvStore::ScanAll(
    const std::function<Status(std::string_view key, std::string_view value)>& visit) {
  const rocksdb::Snapshot* snap = impl_->db->GetSnapshot();
  const uint64_t sequence = snap->GetSequenceNumber();
  rocksdb::ReadOptions ro;
  ro.snapshot = snap;
  ro.fill_cache = false;  // a whole-store pass must not evict what readers use
  ro.readahead_size = 2 << 20;
  Status s;
  {
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro));
    for (it->SeekToFirst(); s.ok() && it->Valid(); it->Next()) {
      rocksdb::Slice k = it->key(), v = it->value();
      s = visit(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size()));
    }
    if (s.ok()) s = FromRocks(it->status(), "scanning the store");
  }
  impl_->db->ReleaseSnapshot(snap);
  if (!s.ok()) return s;
  return sequence;
}

namespace {

// The keys a logged batch changes: puts, deletes and merges (a range delete, which the
// engine never writes, fails the walk so the caller cannot miss what it removed).
class ChangedKeys : public rocksdb::WriteBatch::Handler {
 public:
  ChangedKeys(uint64_t from, uint64_t first, const std::function<void(std::string_view)>& visit)
      : from_(from), seq_(first), visit_(visit) {}
  rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& k, const rocksdb::Slice&) override {
    return Change(k);
  }
  rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice& k) override { return Change(k); }
  rocksdb::Status SingleDeleteCF(uint32_t, const rocksdb::Slice& k) override { return Change(k); }
  rocksdb::Status MergeCF(uint32_t, const rocksdb::Slice& k, const rocksdb::Slice&) override {
    return Change(k);
  }
  void LogData(const rocksdb::Slice&) override {}

 private:
  rocksdb::Status Change(const rocksdb::Slice& k) {
    if (seq_++ >= from_) visit_(std::string_view(k.data(), k.size()));
    return rocksdb::Status::OK();
  }
  const uint64_t from_;
  uint64_t seq_;
  const std::function<void(std::string_view)>& visit_;
};

}  // namespace

Status KvStore::VisitChangedKeys(uint64_t from,
                                 const std::function<void(std::string_view key)>& visit) {
  if (from == 0) from = 1;
  const uint64_t latest = impl_->db->GetLatestSequenceNumber();
  if (from > latest) return Status::OK();
  auto out_of_range = [&](uint64_t oldest) {
    return Status::OutOfRange("sequence " + std::to_string(from) +
                              " is no longer kept; the oldest kept is " + std::to_string(oldest));
  };
  AS_ASSIGN_OR_RETURN(uint64_t oldest, OldestLogSequence());
  if (from < oldest) return out_of_range(oldest);
  std::unique_ptr<rocksdb::TransactionLogIterator> it;
  AS_RETURN_IF_ERROR(FromRocks(impl_->db->GetUpdatesSince(from, &it), "reading the log"));
  uint64_t next = from;  // every sequence below it was seen
  for (; it->Valid(); it->Next()) {
    rocksdb::BatchResult b = it->GetBatch();
    // The first batch must hold `from` and each next one follow on: a gap is a lost file.
    if (b.sequence > next) return out_of_range(b.sequence);
    ChangedKeys keys(from, b.sequence, visit);
    AS_RETURN_IF_ERROR(FromRocks(b.writeBatchPtr->Iterate(&keys), "decoding the log"));
    next = std::max<uint64_t>(next, b.sequence + b.writeBatchPtr->Count());
  }
  rocksdb::Status rs = it->status();
  // The live log's end may be mid-write; what was read stands if it reached `latest`.
  if (next <= latest) {
    if (!rs.ok()) return FromRocks(rs, "reading the log");
    return Status::Corruption("the log ends at sequence " + std::to_string(next - 1) +
                              " before the store's latest " + std::to_string(latest));
  }
  return Status::OK();
}

Status KvStore::SyncLog() {
  return impl_->Exclusive([&]() -> Status {
    if (impl_->failed.load()) return WriteHealth();
    rocksdb::Status s = impl_->SyncNow();
    if (!s.ok()) {
      if (s.IsIOError() || s.IsNoSpace()) impl_->FailNow(s);
      return FromRocks(s, "syncing the log");
    }
    return Status::OK();
  });
}

std::string KvStore::Identity() const {
  std::string id;
  if (!impl_->db->GetDbIdentity(id).ok()) id.clear();
  return id;
}

}  // namespace agentstore::storage
