// LogTail (storage/src/log_tail.h): the change log kept in memory for the feed. Read here
// directly, since KvStore::ReadLog falls back to the WAL whenever the tail has nothing,
// which would hide a tail that kept nothing or kept it wrong.
#include "log_tail.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace agentstore::storage {
namespace {

// A batch as RocksDB leaves it after writing it: its header carries its first sequence.
rocksdb::WriteBatch Written(uint64_t first, const std::vector<std::string>& keys,
                            size_t capacity = 0) {
  rocksdb::WriteBatch b;
  for (const auto& k : keys) b.Put(k, "value of " + k);
  b.PutLogData("T" + keys.front());
  std::string rep;
  rep.reserve(capacity);
  rep = b.Data();
  for (int i = 0; i < 8; ++i) rep[i] = static_cast<char>(first >> (8 * i));
  return rocksdb::WriteBatch(std::move(rep));
}

struct Seen {
  uint64_t seq;
  std::string key, value, batch_note;
  bool operator==(const Seen&) const = default;
};

std::optional<std::vector<Seen>> ReadAll(LogTail& tail, uint64_t from, uint64_t to) {
  std::vector<Seen> out;
  auto last = tail.Read(from, to, 1000, [&](const LogEntry& e) {
    out.push_back(
        {e.sequence, std::string(e.key), std::string(e.value), std::string(e.batch_note)});
    return Status::OK();
  });
  if (!last) return std::nullopt;
  EXPECT_TRUE(last->ok());
  return out;
}

// It takes the batch (the writer's is left a valid empty batch, free to refill) and
// answers from memory with what was written, not with what the writer put in it after.
TEST(LogTail, TakesTheBatchAndAnswersFromMemory) {
  LogTail tail(1 << 20);
  tail.Enable();
  rocksdb::WriteBatch b = Written(100, {"a", "b"});
  tail.Remember(&b);
  EXPECT_EQ(b.Count(), 0u);
  b.Put("c", "written later");  // the writer's next batch
  EXPECT_EQ(b.Count(), 1u);
  rocksdb::WriteBatch next = Written(102, {"d"});
  tail.Remember(&next);
  auto seen = ReadAll(tail, 100, 102);
  ASSERT_TRUE(seen.has_value()) << "the tail did not hold sequence 100";
  EXPECT_EQ(*seen, (std::vector<Seen>{{100, "a", "value of a", "Ta"},
                                      {101, "b", "value of b", "Ta"},
                                      {102, "d", "value of d", "Td"}}));
}

// Off (no reader yet), it keeps nothing and leaves the batch alone.
TEST(LogTail, OffKeepsNothing) {
  LogTail tail(1 << 20);
  rocksdb::WriteBatch b = Written(7, {"a"});
  tail.Remember(&b);
  EXPECT_EQ(b.Count(), 1u);
  EXPECT_FALSE(ReadAll(tail, 7, 7).has_value());
}

// The bound is on the memory the batches hold (their capacity), not on their data: the
// oldest go once the capacities pass it, and a read that needs them falls to the WAL.
TEST(LogTail, BoundsTheMemoryItsBatchesHold) {
  LogTail tail(8 << 10);
  tail.Enable();
  for (uint64_t i = 0; i < 4; ++i) {
    rocksdb::WriteBatch b = Written(10 + i, {"k" + std::to_string(i)}, /*capacity=*/3 << 10);
    ASSERT_GE(b.Data().capacity(), 3u << 10);
    ASSERT_LT(b.GetDataSize(), 100u);
    tail.Remember(&b);
  }
  // 4 x 3 KiB of capacity in an 8 KiB tail: the two oldest are gone (by data size, all
  // four would fit).
  EXPECT_FALSE(ReadAll(tail, 10, 13).has_value());
  EXPECT_FALSE(ReadAll(tail, 11, 13).has_value());
  auto kept = ReadAll(tail, 12, 13);
  ASSERT_TRUE(kept.has_value());
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ((*kept)[0].key, "k2");
  EXPECT_EQ((*kept)[1].key, "k3");
}

}  // namespace
}  // namespace agentstore::storage
