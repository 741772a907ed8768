// KvStore: atomic batches, durability modes, format-version and lock checks.
#include "agentstore/storage/kv_store.h"

#include <gtest/gtest.h>

#include <thread>

#include "test_util.h"

namespace agentstore::storage {
namespace {

using agentstore::testing::TempDir;

std::unique_ptr<KvStore> OpenOrDie(const std::string& path, Durability d = Durability::kAlways,
                                   std::string format = "agentstore-format-1") {
  StoreOptions o;
  o.path = path;
  o.durability = d;
  o.format_version = format;
  auto r = KvStore::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

TEST(KvStore, BatchIsAtomicAndSurvivesReopen) {
  TempDir dir;
  {
    auto kv = OpenOrDie(dir.path());
    WriteBatch b;
    b.Put(
        "\x01"
        "a",
        "1");
    b.Put(
        "\x01"
        "b",
        "2");
    b.Delete(
        "\x01"
        "a");
    auto t = kv->Write(b);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(kv->AwaitDurable(*t).ok());
  }
  auto kv = OpenOrDie(dir.path());
  std::string v;
  EXPECT_EQ(kv->Get("\x01"
                    "a",
                    &v)
                .code(),
            StatusCode::kNotFound);
  ASSERT_TRUE(kv->Get("\x01"
                      "b",
                      &v)
                  .ok());
  EXPECT_EQ(v, "2");
  std::vector<std::string> keys;
  ASSERT_TRUE(kv->Scan("\x01", [&](std::string_view k, std::string_view) {
                  keys.emplace_back(k);
                  return Status::OK();
                }).ok());
  EXPECT_EQ(keys.size(), 1u);
}

TEST(KvStore, RefusesOtherFormatVersion) {
  TempDir dir;
  OpenOrDie(dir.path(), Durability::kAlways, "agentstore-format-1").reset();
  StoreOptions o;
  o.path = dir.path();
  o.format_version = "agentstore-format-99";
  auto r = KvStore::Open(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("agentstore-format-1"), std::string::npos);
}

TEST(KvStore, RefusesASecondOpenOfTheSameDirectory) {
  TempDir dir;
  auto first = OpenOrDie(dir.path());
  StoreOptions o;
  o.path = dir.path();
  auto second = KvStore::Open(o);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().ToString();
}

TEST(KvStore, GroupCommitSharesSyncs) {
  TempDir dir;
  auto kv = OpenOrDie(dir.path(), Durability::kAlways);
  constexpr int kThreads = 8, kWrites = 200;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        WriteBatch b;
        b.Put("\x01" + std::to_string(t) + ":" + std::to_string(i), "v");
        auto ticket = kv->Write(b);
        ASSERT_TRUE(ticket.ok());
        ASSERT_TRUE(kv->AwaitDurable(*ticket).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  // Every write waited for an fsync; with 8 writers many share one.
  EXPECT_GT(kv->SyncCount(), 0u);
  EXPECT_LT(kv->SyncCount(), static_cast<uint64_t>(kThreads * kWrites));
}

// The change log read back (ReadLog) from memory (the tail kept once a reader exists),
// from a resumed WAL iterator (reads in small steps) and from a fresh one (after a
// reopen) gives the same entries: sequences, keys, values, deletes and notes, also for
// batches written concurrently and so remembered out of order.
TEST(KvStore, ReadLogFromMemoryAndFromTheWalAgree) {
  TempDir dir;
  struct Seen {
    uint64_t seq;
    bool del;
    std::string key, value, note, batch_note;
    bool operator==(const Seen&) const = default;
  };
  auto read = [](KvStore& kv, uint64_t from, uint64_t to, size_t step) {
    std::vector<Seen> out;
    while (from <= to) {
      auto last = kv.ReadLog(from, to, step, [&](const LogEntry& e) {
        out.push_back({e.sequence, e.is_delete, std::string(e.key), std::string(e.value),
                       std::string(e.note), std::string(e.batch_note)});
        return Status::OK();
      });
      EXPECT_TRUE(last.ok()) << last.status().ToString();
      if (!last.ok() || *last < from) break;
      from = *last + 1;
    }
    return out;
  };
  auto write = [](KvStore& kv, int t, int i) {
    WriteBatch b;  // as the engine writes them: owner notes before deletes, 'T' last
    b.Put("\x01" + std::to_string(t) + ":" + std::to_string(i), std::string(i % 50, 'v'));
    if (i % 3 == 0) {
      b.Note("owner" + std::to_string(t));
      b.Delete("\x01" + std::to_string(t) + ":" + std::to_string(i - 1));
    }
    if (i % 5 == 0) b.Delete("\x01" + std::to_string(t) + ":" + std::to_string(i - 2));
    b.Note("T" + std::to_string(t) + ":" + std::to_string(i));
    auto ticket = kv.Write(b);
    ASSERT_TRUE(ticket.ok());
    ASSERT_TRUE(kv.AwaitDurable(*ticket).ok());
  };
  std::vector<Seen> before, after;
  uint64_t durable = 0;
  {
    auto kv = OpenOrDie(dir.path(), Durability::kAlways);
    for (int i = 0; i < 200; ++i) write(*kv, 0, i);
    before = read(*kv, 1, kv->DurableSequence(), 1000);  // from the WAL; turns the tail on
    std::vector<std::thread> threads;
    for (int t = 1; t <= 4; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 150; ++i) write(*kv, t, i);
      });
    for (auto& th : threads) th.join();
    durable = kv->DurableSequence();
    after = read(*kv, 1, durable, 7);  // WAL iterator resumed 7 by 7, then the tail
    auto tail_only = read(*kv, before.back().seq + 1, durable, 5);
    ASSERT_FALSE(tail_only.empty());
    EXPECT_EQ(std::vector<Seen>(after.end() - static_cast<long>(tail_only.size()), after.end()),
              tail_only);
  }
  auto kv = OpenOrDie(dir.path(), Durability::kAlways);
  auto fresh = read(*kv, 1, durable, 1u << 20);  // one fresh iterator, nothing in memory
  ASSERT_EQ(after.size(), fresh.size());
  for (size_t i = 0; i < after.size(); ++i)
    ASSERT_TRUE(after[i] == fresh[i])
        << "entry " << i << ": seq " << after[i].seq << " / " << fresh[i].seq << ", key "
        << after[i].key << " / " << fresh[i].key << ", note " << after[i].note << " / "
        << fresh[i].note << ", batch note " << after[i].batch_note << " / " << fresh[i].batch_note;
  ASSERT_GE(fresh.size(), before.size());
  EXPECT_EQ(std::vector<Seen>(fresh.begin(), fresh.begin() + static_cast<long>(before.size())),
            before);
  size_t puts = 0;
  for (const Seen& s : fresh) {
    if (s.key[0] != '\x01') continue;  // the store's own marker
    puts += !s.del;
    // Each change carries its own batch's notes, though RocksDB merges concurrent
    // writers' batches into one log record.
    std::string writer = s.key.substr(1, s.key.find(':') - 1);
    EXPECT_EQ(s.batch_note.substr(0, writer.size() + 2), "T" + writer + ":") << s.key;
    if (!s.del) {
      EXPECT_EQ(s.note, "") << s.key;
    } else if (!s.note.empty()) {
      EXPECT_EQ(s.note, "owner" + writer) << s.key;
    }
  }
  EXPECT_EQ(puts, 200u + 4 * 150u);
}

// A written batch is left empty, with the tail on (which takes its contents) and off,
// and can be filled again: what the tail kept of each write is that write's, not what
// the batch held later.
TEST(KvStore, AWrittenBatchIsLeftEmptyAndTheTailKeepsWhatWasWritten) {
  TempDir dir;
  auto kv = OpenOrDie(dir.path(), Durability::kAlways);
  WriteBatch b;
  auto write = [&](const std::string& key, const std::string& value) {
    b.Put(key, value);
    b.Note("T" + key);
    auto ticket = kv->Write(b);
    ASSERT_TRUE(ticket.ok());
    ASSERT_TRUE(kv->AwaitDurable(*ticket).ok());
    EXPECT_EQ(b.Count(), 0) << key;
  };
  write("\x01off", "before the tail");
  uint64_t start = kv->DurableSequence() + 1;
  ASSERT_TRUE(kv->ReadLog(1, kv->DurableSequence(), 100, [](const LogEntry&) {
                  return Status::OK();
                }).ok());  // a reader: the tail is on from here
  for (int i = 0; i < 20; ++i)
    write("\x01k" + std::to_string(i), std::string(100 + i, 'a' + i % 26));
  std::vector<std::pair<std::string, std::string>> seen;
  auto last = kv->ReadLog(start, kv->DurableSequence(), 100, [&](const LogEntry& e) {
    if (!e.is_delete && e.key.size() > 1 && e.key[1] == 'k')
      seen.emplace_back(std::string(e.key), std::string(e.value));
    return Status::OK();
  });
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  ASSERT_EQ(seen.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(seen[i].first, "\x01k" + std::to_string(i));
    EXPECT_EQ(seen[i].second, std::string(100 + i, 'a' + i % 26));
  }
}

// A WAL read runs ahead of its reader on a thread with a bounded budget (16 MiB): a log
// larger than that reads back whole and in order in small steps, and a store closed
// while that thread waits for room (a read stopped half-way) closes promptly.
TEST(KvStore, ReadLogReadsAheadPastItsBufferAndClosesMidRead) {
  TempDir dir;
  constexpr int kBatches = 6000;  // 4 KiB values: ~24 MiB of log
  {
    auto kv = OpenOrDie(dir.path(), Durability::kAlways);
    for (int i = 0; i < kBatches; ++i) {
      WriteBatch b;
      b.Put("\x01" + std::to_string(i), std::string(4096, static_cast<char>('a' + i % 26)));
      auto t = kv->Write(b);
      ASSERT_TRUE(t.ok());
      if (i % 500 == 499 || i == kBatches - 1) {
        ASSERT_TRUE(kv->AwaitDurable(*t).ok());
      }
    }
  }
  auto kv = OpenOrDie(dir.path(), Durability::kAlways);
  uint64_t from = 1, to = kv->DurableSequence();
  int next = 0;
  while (from <= to) {
    auto last = kv->ReadLog(from, to, 333, [&](const LogEntry& e) {
      if (e.key.empty() || e.key[0] != '\x01') return Status::OK();  // the store's own
      EXPECT_EQ(e.key.substr(1), std::to_string(next));
      EXPECT_EQ(e.value.size(), 4096u);
      EXPECT_EQ(e.value[0], static_cast<char>('a' + next % 26));
      ++next;
      return Status::OK();
    });
    ASSERT_TRUE(last.ok()) << last.status().ToString();
    if (*last < from) break;  // nothing logged there (the sequence moves on at open)
    from = *last + 1;
  }
  EXPECT_EQ(next, kBatches);
  // Stop a catch-up near the start: the second read continues the first one's cursor,
  // which starts its thread; that fills its buffer (16 MiB of the ~24 MiB) and waits for
  // room. Closing the store must stop and join it promptly.
  auto first = kv->ReadLog(1, to, 10, [](const LogEntry&) { return Status::OK(); });
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(kv->ReadLog(*first + 1, to, 10, [](const LogEntry&) { return Status::OK(); }).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  kv.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(KvStore, NoneModeNeverSyncsOnTheWritePath) {
  TempDir dir;
  auto kv = OpenOrDie(dir.path(), Durability::kNone);
  for (int i = 0; i < 50; ++i) {
    WriteBatch b;
    b.Put("\x01" + std::to_string(i), "v");
    auto t = kv->Write(b);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(kv->AwaitDurable(*t).ok());
  }
  EXPECT_EQ(kv->SyncCount(), 0u);
}

TEST(KvStore, CheckpointIsAConsistentCopy) {
  TempDir dir;
  auto kv = OpenOrDie(dir.sub("db"));
  WriteBatch b;
  b.Put("\x01k", "v");
  auto t = kv->Write(b);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(kv->Checkpoint(dir.sub("copy")).ok());
  auto copy = OpenOrDie(dir.sub("copy"));
  std::string v;
  ASSERT_TRUE(copy->Get("\x01k", &v).ok());
  EXPECT_EQ(v, "v");
}

TEST(KvStore, DurabilityNamesRoundTrip) {
  for (auto d : {Durability::kNone, Durability::kBatch, Durability::kAlways})
    EXPECT_EQ(ParseDurability(DurabilityName(d)), d);
  EXPECT_FALSE(ParseDurability("sometimes"));
}

}  // namespace
}  // namespace agentstore::storage
