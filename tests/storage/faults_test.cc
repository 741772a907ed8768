// KvStore under faults: a full disk (StorageFaults), writes recovering once space is
// back, a WAL damaged mid-log (refused, with file and offset; the explicit recovery
// flag), and a torn tail (accepted).
#include "agentstore/storage/faults.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "agentstore/storage/fault_delay.h"
#include "agentstore/storage/kv_store.h"
#include "test_util.h"

namespace agentstore::storage {
namespace {

using agentstore::testing::TempDir;

std::string Key(int i) { return "\x01k" + std::to_string(100000 + i); }

Result<std::unique_ptr<KvStore>> OpenStore(const std::string& path, Durability d,
                                           std::shared_ptr<StorageFaults> faults = nullptr,
                                           bool recover = false) {
  StoreOptions o;
  o.path = path;
  o.durability = d;
  o.faults = std::move(faults);
  o.recover_damaged_wal = recover;
  o.resume_interval_ms = 20;
  return KvStore::Open(o);
}

Status PutDurable(KvStore& kv, int i) {
  WriteBatch b;
  b.Put(Key(i), "value-" + std::to_string(i) + std::string(100, 'x'));
  AS_ASSIGN_OR_RETURN(uint64_t t, kv.Write(b));
  return kv.AwaitDurable(t);
}

// Waits (up to 20 s) until the store accepts writes again.
void WaitWritable(KvStore& kv) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!kv.WriteHealth().ok() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

int CountKeys(KvStore& kv) {
  int n = 0;
  EXPECT_TRUE(kv.Scan("\x01", [&](std::string_view, std::string_view) {
                  ++n;
                  return Status::OK();
                }).ok());
  return n;
}

void DiskFullThenRecovers(Durability d) {
  TempDir dir;
  auto faults = std::make_shared<StorageFaults>();
  {
    auto kv = OpenStore(dir.path(), d, faults);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(PutDurable(**kv, i).ok());

    faults->SetDiskFull(true);
    // The first write after the disk fills fails (in Write, or when its group syncs), and
    // every later one fails fast with the same clear error; nothing aborts.
    Status first = PutDurable(**kv, 1000);
    EXPECT_EQ(first.code(), StatusCode::kResourceExhausted) << first.ToString();
    for (int i = 0; i < 20; ++i) {
      Status s = PutDurable(**kv, 2000 + i);
      EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
      EXPECT_NE(s.message().find("disk full"), std::string::npos) << s.ToString();
    }
    EXPECT_EQ((*kv)->WriteHealth().code(), StatusCode::kResourceExhausted);
    // Reads keep working.
    std::string v;
    EXPECT_TRUE((*kv)->Get(Key(7), &v).ok());
    EXPECT_EQ(CountKeys(**kv) >= 50, true);
    // Async waiters are failed too, not left hanging.
    WriteBatch b;
    b.Put(Key(3000), "x");
    auto t = (*kv)->Write(b);
    EXPECT_FALSE(t.ok());

    faults->SetDiskFull(false);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!(*kv)->WriteHealth().ok() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE((*kv)->WriteHealth().ok()) << (*kv)->WriteHealth().ToString();
    for (int i = 50; i < 100; ++i) ASSERT_TRUE(PutDurable(**kv, i).ok());
  }
  auto kv = OpenStore(dir.path(), d);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  std::string v;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE((*kv)->Get(Key(i), &v).ok()) << i;
  for (int i = 0; i < 20; ++i) EXPECT_FALSE((*kv)->Get(Key(2000 + i), &v).ok()) << i;
}

TEST(StorageFaults, DiskFullUnderAlwaysRefusesWritesAndRecovers) {
  DiskFullThenRecovers(Durability::kAlways);
}
TEST(StorageFaults, DiskFullUnderNoneRefusesWritesAndRecovers) {
  DiskFullThenRecovers(Durability::kNone);
}

// Many writers hit a full disk at once, three times over, while it fills and frees.
// This aborted inside RocksDB (`sync_without_flush_called_`) before the WAL gate in
// kv_store.cc; it must refuse with resource_exhausted, recover, and never abort.
TEST(StorageFaults, DiskFullWithManyConcurrentWritersNeverAborts) {
  TempDir dir;
  auto faults = std::make_shared<StorageFaults>();
  auto kv = OpenStore(dir.path(), Durability::kAlways, faults);
  ASSERT_TRUE(kv.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 8; ++w)
    writers.emplace_back([&, w] {
      for (int i = 0; !stop; ++i) {
        Status s = PutDurable(**kv, w * 1000000 + i);
        if (s.ok()) {
          ++ok;
        } else {
          EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
          ++refused;
        }
      }
    });
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    faults->SetDiskFull(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    faults->SetDiskFull(false);
    // Space stays free until writes resume (see WritesQueuedBehindAFailingLogFlush...).
    WaitWritable(**kv);
  }
  int before = ok;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  for (auto& t : writers) t.join();
  EXPECT_TRUE((*kv)->WriteHealth().ok());
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(ok.load(), before);  // writing again after the last recovery
}

// The sequence that aborted: the log thread's flush of the WAL buffer fails slowly (a
// full, slow device) while writers, HandToOs callers (memory touches) and writes too big
// for the log buffer queue behind it inside RocksDB. Without the gate, the first writer
// to get RocksDB's log mutex after the failure appends to the failed log file before
// RocksDB records the error, and RocksDB aborts the process.
TEST(StorageFaults, WritesQueuedBehindAFailingLogFlushNeverAbort) {
  TempDir dir;
  auto faults = std::make_shared<StorageFaults>();
  SetInjectedFailureDelayMs(20);
  struct ResetDelay {
    ~ResetDelay() { SetInjectedFailureDelayMs(0); }
  } reset_delay;
  auto kv = OpenStore(dir.path(), Durability::kAlways, faults);
  ASSERT_TRUE(kv.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, refused{0};
  std::vector<std::thread> threads;
  auto check = [&](const Status& s) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
      ++refused;
    }
  };
  for (int w = 0; w < 6; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; !stop; ++i) check(PutDurable(**kv, w * 1000000 + i));
    });
  // Writes nobody awaits, handed to the OS (as memory touches are).
  threads.emplace_back([&] {
    for (int i = 0; !stop; ++i) {
      WriteBatch b;
      b.Put(Key(7000000 + i), "touch");
      if ((*kv)->Write(b).ok()) check((*kv)->HandToOs());
    }
  });
  // Writes bigger than the log buffer's shared budget: they may flush it themselves.
  threads.emplace_back([&] {
    for (int i = 0; !stop; ++i) {
      WriteBatch b;
      b.Put(Key(8000000 + i), std::string(300 << 10, 'b'));
      auto t = (*kv)->Write(b);
      check(t.ok() ? (*kv)->AwaitDurable(*t) : t.status());
    }
  });
  for (int round = 0; round < 4; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    faults->SetDiskFull(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    faults->SetDiskFull(false);
    // Failures injected before the switch went off still land for another fail delay.
    // Then space stays free until writes resume: a disk that fills again while
    // RocksDB's Resume() flushes can leave an error only a restart clears (not what
    // this test is about).
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    WaitWritable(**kv);
  }
  int before = ok;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;
  for (auto& t : threads) t.join();
  WaitWritable(**kv);  // a failure injected just before the last round ended may land late
  EXPECT_TRUE((*kv)->WriteHealth().ok()) << (*kv)->WriteHealth().ToString();
  EXPECT_GT(refused.load(), 0);
  EXPECT_GT(ok.load(), before);
}

// kBatch syncs from the log thread while writers write the WAL file themselves: a sync
// entered on a log file a writer just failed aborted the same way.
TEST(StorageFaults, DiskFullUnderBatchWithConcurrentWritersNeverAborts) {
  TempDir dir;
  auto faults = std::make_shared<StorageFaults>();
  SetInjectedFailureDelayMs(5);
  struct ResetDelay {
    ~ResetDelay() { SetInjectedFailureDelayMs(0); }
  } reset_delay;
  StoreOptions o;
  o.path = dir.path();
  o.durability = Durability::kBatch;
  o.batch_sync_interval_ms = 1;
  o.faults = faults;
  o.resume_interval_ms = 20;
  auto kv = KvStore::Open(o);
  ASSERT_TRUE(kv.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 6; ++w)
    writers.emplace_back([&, w] {
      for (int i = 0; !stop; ++i)
        if (!PutDurable(**kv, w * 1000000 + i).ok()) ++refused;
    });
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    faults->SetDiskFull(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    faults->SetDiskFull(false);
    // Failures injected before the switch went off still land for another fail delay.
    // Then space stays free until writes resume: a disk that fills again while
    // RocksDB's Resume() flushes can leave an error only a restart clears (not what
    // this test is about).
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    WaitWritable(**kv);
  }
  stop = true;
  for (auto& t : writers) t.join();
  EXPECT_TRUE((*kv)->WriteHealth().ok()) << (*kv)->WriteHealth().ToString();
  EXPECT_GT(refused.load(), 0);
  EXPECT_TRUE(PutDurable(**kv, 9999999).ok());
}

TEST(StorageFaults, ClosingWhileTheDiskIsFullLosesNothingAcknowledged) {
  TempDir dir;
  for (auto d : {Durability::kAlways, Durability::kBatch, Durability::kNone}) {
    auto faults = std::make_shared<StorageFaults>();
    {
      auto kv = OpenStore(dir.path(), d, faults);
      ASSERT_TRUE(kv.ok()) << kv.status().ToString();
      for (int i = 0; i < 30; ++i) ASSERT_TRUE(PutDurable(**kv, i).ok());
      faults->SetDiskFull(true);
      EXPECT_FALSE(PutDurable(**kv, 500).ok());
    }  // closes with writes stopped: no sync of the failed log, no abort
    auto kv = OpenStore(dir.path(), d);
    ASSERT_TRUE(kv.ok()) << kv.status().ToString();
    std::string v;
    for (int i = 0; i < 30; ++i) EXPECT_TRUE((*kv)->Get(Key(i), &v).ok()) << i;
  }
}

// The store's one live WAL file (the data stays in it: nothing here fills a memtable).
std::filesystem::path OnlyWal(const std::string& dir) {
  std::filesystem::path found;
  uintmax_t biggest = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".log" && e.file_size() > biggest) {
      biggest = e.file_size();
      found = e.path();
    }
  return found;
}

void WriteAcknowledged(const std::string& dir, int n) {
  auto kv = OpenStore(dir, Durability::kAlways);
  ASSERT_TRUE(kv.ok());
  for (int i = 0; i < n; ++i) ASSERT_TRUE(PutDurable(**kv, i).ok());
}

TEST(StorageFaults, DamagedWalIsRefusedNamingFileAndOffset) {
  TempDir dir;
  WriteAcknowledged(dir.path(), 200);
  auto wal = OnlyWal(dir.path());
  ASSERT_FALSE(wal.empty());
  auto size = std::filesystem::file_size(wal);
  uint64_t at = size / 3;
  {
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    std::mt19937 rng(42);
    for (int i = 0; i < 64; ++i) f.put(static_cast<char>(rng()));
  }
  auto refused = OpenStore(dir.path(), Durability::kAlways);
  ASSERT_FALSE(refused.ok());
  const Status& s = refused.status();
  EXPECT_EQ(s.code(), StatusCode::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find(wal.string()), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("byte offset"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("--recover-damaged-wal"), std::string::npos) << s.ToString();
  // The damage is within the 64 overwritten bytes or the record they hit (< 200 bytes).
  size_t pos = s.message().find("byte offset ");
  uint64_t offset = std::stoull(s.message().substr(pos + 12));
  EXPECT_LE(offset, at + 64);
  EXPECT_GE(offset + 300, at);

  // Refusing changed nothing: a second refusal says the same.
  auto again = OpenStore(dir.path(), Durability::kAlways);
  EXPECT_EQ(again.status().ToString(), s.ToString());

  // The explicit flag starts from the last consistent point and says what it dropped.
  auto kv = OpenStore(dir.path(), Durability::kAlways, nullptr, /*recover=*/true);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  const std::string& report = (*kv)->OpenReport();
  EXPECT_NE(report.find("dropping"), std::string::npos) << report;
  int kept = CountKeys(**kv);
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, 200);
  size_t d = report.find("dropping those ");
  ASSERT_NE(d, std::string::npos) << report;
  int dropped = std::stoi(report.substr(d + 15));
  // Every write after the damage is counted (the damaged one itself is lost too).
  EXPECT_GE(kept + dropped, 198) << report;
  EXPECT_LE(kept + dropped, 200) << report;
}

TEST(StorageFaults, TornTailIsAccepted) {
  TempDir dir;
  WriteAcknowledged(dir.path(), 200);
  auto wal = OnlyWal(dir.path());
  ASSERT_FALSE(wal.empty());
  // A crash in the middle of the last record's write: its tail never reached the file.
  std::filesystem::resize_file(wal, std::filesystem::file_size(wal) - 20);
  auto kv = OpenStore(dir.path(), Durability::kAlways);
  ASSERT_TRUE(kv.ok()) << kv.status().ToString();
  EXPECT_EQ(CountKeys(**kv), 199);
  EXPECT_NE((*kv)->OpenReport().find("cut short"), std::string::npos) << (*kv)->OpenReport();
}

TEST(StorageFaults, CleanWalOpensWithoutReport) {
  TempDir dir;
  WriteAcknowledged(dir.path(), 50);
  auto kv = OpenStore(dir.path(), Durability::kAlways);
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ((*kv)->OpenReport(), "");
  EXPECT_EQ(CountKeys(**kv), 50);
}

}  // namespace
}  // namespace agentstore::storage
