// The benchmark dataset (benchmarks/dataset.h) is what every system in the comparison
// loads: it must be the same for a seed and shaped as targets.md describes.
#include "dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace agentstore::bench {
namespace {

const Dataset& S() {
  static const Dataset d = GenerateDataset(DatasetSpec::ForScale("S"));
  return d;
}

float Dot(const float* a, const float* b, int dim) {
  float s = 0;
  for (int i = 0; i < dim; ++i) s += a[i] * b[i];
  return s;
}

TEST(BenchDataset, SameSeedSameData) {
  Dataset again = GenerateDataset(DatasetSpec::ForScale("S"));
  const Dataset& d = S();
  ASSERT_EQ(again.RecordCount(), d.RecordCount());
  EXPECT_EQ(again.users[17].id, d.users[17].id);
  EXPECT_EQ(again.messages.back().id, d.messages.back().id);
  EXPECT_EQ(again.embeddings, d.embeddings);
  Dataset other = GenerateDataset(DatasetSpec::ForScale("S", 7));
  EXPECT_NE(other.users[17].id, d.users[17].id);
}

TEST(BenchDataset, ScaleSCounts) {
  const Dataset& d = S();
  EXPECT_EQ(d.users.size(), 1000u);
  EXPECT_EQ(d.user_agents.size(), 10000u);
  EXPECT_EQ(d.chats.size(), 1000u);
  EXPECT_EQ(d.messages.size(), 24000u);  // 24 a chat, so last_20_messages reads 20
  EXPECT_EQ(d.usage_logs.size(), 50000u);
  EXPECT_EQ(d.ua_begin.size(), d.users.size() + 1);
  EXPECT_EQ(d.message_begin.back(), d.messages.size());
  for (const UsageLogRec& l : d.usage_logs) ASSERT_LT(l.request_ts, d.spec.now_us);
  EXPECT_LT(d.MonthStart(), d.spec.now_us);
  EXPECT_GT(d.MonthEnd(), d.spec.now_us);
}

TEST(BenchDataset, MemoriesLookLikeTargets) {
  const Dataset& d = S();
  std::vector<uint32_t> light;
  int heavy = 0;
  for (uint32_t u : d.memory_users) {
    uint32_t n = d.memory_begin[u + 1] - d.memory_begin[u];
    if (n >= 5000) {
      EXPECT_LE(n, 10000u);
      ++heavy;
    } else {
      light.push_back(n);
    }
  }
  EXPECT_EQ(heavy, d.spec.heavy_memory_users);
  ASSERT_FALSE(light.empty());
  std::sort(light.begin(), light.end());
  uint32_t median = light[light.size() / 2];
  EXPECT_GE(median, 30u);
  EXPECT_LE(median, 100u);
  for (size_t m = 0; m < d.memories.size(); m += 97)
    ASSERT_NEAR(Dot(d.Embedding(m), d.Embedding(m), d.spec.dim), 1.0f, 1e-4);
}

TEST(BenchDataset, QueriesAreNearTheirUsersMemories) {
  const Dataset& d = S();
  ASSERT_FALSE(d.light_queries.empty());
  ASSERT_FALSE(d.heavy_queries.empty());
  double own = 0, random = 0;
  for (uint32_t q : d.light_queries) {
    const QueryRec& query = d.queries[q];
    auto top = ExactTopK(d, query.user, query.vector.data(), 5);
    ASSERT_EQ(top.size(),
              std::min<size_t>(5, d.memory_begin[query.user + 1] - d.memory_begin[query.user]));
    for (size_t i = 1; i < top.size(); ++i)
      ASSERT_GE(Dot(d.Embedding(top[i - 1]), query.vector.data(), d.spec.dim),
                Dot(d.Embedding(top[i]), query.vector.data(), d.spec.dim));
    EXPECT_EQ(RecallAtK(d, query.user, query.vector.data(), 5, top), 1.0);
    own += Dot(d.Embedding(top[0]), query.vector.data(), d.spec.dim);
    random += Dot(d.Embedding((q * 7919u) % d.memories.size()), query.vector.data(), d.spec.dim);
  }
  own /= d.light_queries.size();
  random /= d.light_queries.size();
  // Clustered, not uniform noise: the best own memory is close, a random one is not.
  EXPECT_GT(own, 0.5);
  EXPECT_LT(random, own - 0.3);
}

}  // namespace
}  // namespace agentstore::bench
