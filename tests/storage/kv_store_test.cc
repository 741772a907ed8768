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
