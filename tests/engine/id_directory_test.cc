// The store-wide id directory (engine/src/id_directory.h): against a reference multiset,
// through growth and backward-shift deletes, it never loses a shard that holds an id, and
// the IdMap wrapper keeps it equal to the shards' maps.
#include "id_directory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <vector>

namespace agentstore::internal {
namespace {

Uuid RandomId(std::mt19937_64& rng) {
  Uuid u;
  for (size_t i = 0; i < 16; i += 8) {
    uint64_t v = rng();
    std::memcpy(u.bytes.data() + i, &v, 8);
  }
  return u;
}

TEST(IdDirectory, NamesEveryShardHoldingAnIdThroughGrowthAndDeletes) {
  IdDirectory dir;
  std::mt19937_64 rng(7);
  std::map<std::pair<Uuid, uint16_t>, int> held;  // (id, shard) -> count
  std::vector<std::pair<Uuid, uint16_t>> entries;
  std::vector<uint16_t> got;
  for (int round = 0; round < 200000; ++round) {
    if (entries.empty() || rng() % 3) {
      // A new id, or (sometimes) an id again in another shard (duplicates are legal in
      // the multiset; the engine's check is what refuses them).
      Uuid id =
          entries.empty() || rng() % 8 ? RandomId(rng) : entries[rng() % entries.size()].first;
      uint16_t shard = static_cast<uint16_t>(rng() % 1024);
      dir.Add(id, shard);
      ++held[{id, shard}];
      entries.push_back({id, shard});
    } else {
      size_t i = rng() % entries.size();
      auto e = entries[i];
      entries[i] = entries.back();
      entries.pop_back();
      dir.Remove(e.first, e.second);
      if (--held[e] == 0) held.erase(e);
    }
    if (round % 97 == 0 && !entries.empty()) {
      auto [id, shard] = entries[rng() % entries.size()];
      dir.Candidates(id, &got);
      EXPECT_NE(std::find(got.begin(), got.end(), shard), got.end());
    }
  }
  // Every remaining entry is found; ids never added find nothing (a 54-bit fingerprint
  // collision among this few is practically impossible).
  for (const auto& [e, n] : held) {
    dir.Candidates(e.first, &got);
    EXPECT_EQ(std::count(got.begin(), got.end(), e.second), n);
  }
  for (int i = 0; i < 1000; ++i) {
    dir.Candidates(RandomId(rng), &got);
    EXPECT_TRUE(got.empty());
  }
  // Removing what is not there changes nothing.
  auto [id, shard] = held.begin()->first;
  dir.Remove(id, (shard + 1) % 1024);
  dir.Candidates(id, &got);
  EXPECT_NE(std::find(got.begin(), got.end(), shard), got.end());
}

TEST(IdDirectory, IdMapKeepsTheDirectoryEqualToItsKeys) {
  IdDirectory dir;
  IdMap a, b;
  std::mt19937_64 rng(11);
  Uuid x = RandomId(rng), y = RandomId(rng), z = RandomId(rng);
  a[x] = 1;  // before Attach: Attach adds what is there
  a.Attach(&dir, 3);
  b.Attach(&dir, 9);
  a.insert_or_assign(y, 2);
  a.insert_or_assign(y, 5);  // an update adds nothing
  b[z] = 4;
  b[z] = 6;
  std::vector<uint16_t> got;
  dir.Candidates(x, &got);
  EXPECT_EQ(got, std::vector<uint16_t>{3});
  dir.Candidates(y, &got);
  EXPECT_EQ(got, std::vector<uint16_t>{3});
  dir.Candidates(z, &got);
  EXPECT_EQ(got, std::vector<uint16_t>{9});
  a.erase(y);
  dir.Candidates(y, &got);
  EXPECT_TRUE(got.empty());
  b.erase(b.find(z));
  dir.Candidates(z, &got);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(a.erase(y), 0u);
  dir.Candidates(x, &got);
  EXPECT_EQ(got, std::vector<uint16_t>{3});
}

}  // namespace
}  // namespace agentstore::internal
