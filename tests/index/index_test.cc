// The index module on its own: vector checks, exact top-k, the HNSW wrapper (growth,
// tombstones, snapshots), BM25 and rank fusion.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <random>

#include "agentstore/index/hnsw_graph.h"
#include "agentstore/index/space.h"
#include "agentstore/index/text_index.h"
#include "clustered_vectors.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using index::Hit;
using index::Metric;
using index::Space;

std::shared_ptr<const Space> MakeSpace(uint32_t dim, Metric m = Metric::kCosine) {
  auto s = Space::Make(dim, m);
  EXPECT_TRUE(s.ok());
  return *s;
}

TEST(Space, RejectsBadVectorsAndNormalizesCosine) {
  auto space = MakeSpace(4);
  std::vector<float> wrong_dim = {1, 2, 3};
  EXPECT_CODE(space->Prepare(wrong_dim), kInvalidArgument);
  std::vector<float> nan = {1, std::numeric_limits<float>::quiet_NaN(), 0, 0};
  EXPECT_CODE(space->Prepare(nan), kInvalidArgument);
  std::vector<float> inf = {1, std::numeric_limits<float>::infinity(), 0, 0};
  EXPECT_CODE(space->Prepare(inf), kInvalidArgument);
  std::vector<float> zero = {0, 0, 0, 0};
  EXPECT_CODE(space->Prepare(zero), kInvalidArgument);
  std::vector<float> v = {3, 0, 4, 0};
  ASSERT_OK(space->Prepare(v));
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[2], 0.8f);
  EXPECT_NEAR(space->Distance(v.data(), v.data()), 0.0f, 1e-6);

  auto l2 = MakeSpace(4, Metric::kL2);
  std::vector<float> z = {0, 0, 0, 0}, w = {3, 0, 4, 0};
  ASSERT_OK(l2->Prepare(z)) << "a zero vector is a point for L2";
  ASSERT_OK(l2->Prepare(w));
  EXPECT_FLOAT_EQ(w[0], 3.0f) << "L2 keeps vectors as given";
  EXPECT_FLOAT_EQ(l2->Distance(z.data(), w.data()), 25.0f) << "squared Euclidean";
  EXPECT_FALSE(Space::Make(0, Metric::kCosine).ok());
}

TEST(ExactTopK, MatchesSortingEveryDistance) {
  auto space = MakeSpace(16);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> n01;
  std::vector<float> rows(500 * 16), q(16);
  for (auto& x : rows) x = n01(rng);
  for (auto& x : q) x = n01(rng);
  std::vector<std::pair<float, uint64_t>> all;
  for (size_t i = 0; i < 500; ++i)
    if (i % 3) all.push_back({space->Distance(q.data(), &rows[i * 16]), i});
  std::sort(all.begin(), all.end());
  std::vector<Hit> out;
  index::ExactTopK(
      *space, q.data(), rows.data(), 500, 10, [](size_t i) { return i % 3 != 0; }, &out);
  ASSERT_EQ(out.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(out[i].label, all[i].second) << i;
  // Fewer rows kept than k: all of them.
  index::ExactTopK(
      *space, q.data(), rows.data(), 500, 10, [](size_t i) { return i < 4; }, &out);
  EXPECT_EQ(out.size(), 4u);
}

TEST(HnswGraph, GrowsPastCapacityTombstonesAndSnapshots) {
  ClusteredVectors gen(32, 20, 3);
  std::mt19937_64 rng(5);
  auto space = MakeSpace(32);
  index::HnswGraph g(space, {}, /*capacity=*/16);
  std::vector<std::vector<float>> data;
  for (uint64_t i = 0; i < 2000; ++i) {
    data.push_back(gen.Sample(gen.ZipfCluster(rng), rng));
    ASSERT_OK(g.Add(i + 100, data.back().data()));
  }
  EXPECT_EQ(g.live(), 2000u);
  // The nearest of a stored vector is itself.
  auto hits = g.Search(data[42].data(), 1);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].label, 142u);
  g.Remove(142);
  g.Remove(999999);  // unknown: a no-op
  EXPECT_EQ(g.tombstones(), 1u);
  EXPECT_FALSE(g.Contains(142));
  for (const auto& h : g.Search(data[42].data(), 10)) EXPECT_NE(h.label, 142u);

  TempDir dir;
  ASSERT_OK(g.Save(dir.sub("g.hnsw")));
  auto loaded = index::HnswGraph::Load(space, {}, dir.sub("g.hnsw"));
  ASSERT_OK(loaded);
  EXPECT_EQ((*loaded)->live(), 1999u);
  EXPECT_EQ((*loaded)->VectorOf(143), g.VectorOf(143));
  EXPECT_EQ((*loaded)->Search(data[7].data(), 1)[0].label, 107u);
  EXPECT_CODE(index::HnswGraph::Load(space, {}, dir.sub("missing")), kNotFound);
  std::ofstream(dir.sub("junk")) << "not a graph";
  EXPECT_FALSE(index::HnswGraph::Load(space, {}, dir.sub("junk")).ok());
}

// A borrowing graph (the engine's: vectors held once, in its VectorStore) answers as a
// copying one built the same way, reads its vectors through the owner's memory, and a
// snapshot of it comes back only after Relabel points each element at a vector.
TEST(HnswGraph, BorrowedVectorsAnswerAsCopiedOnesAndRelabelAfterLoad) {
  ClusteredVectors gen(32, 20, 11);
  std::mt19937_64 rng(13);
  auto space = MakeSpace(32);
  std::vector<std::vector<float>> data;
  for (int i = 0; i < 1500; ++i) data.push_back(gen.Sample(gen.ZipfCluster(rng), rng));
  index::HnswGraph copy(space, {}, 16);
  index::HnswGraph borrow(space, {}, 16, index::VectorStorage::kBorrow);
  for (uint64_t i = 0; i < data.size(); ++i) {
    ASSERT_OK(copy.Add(i, data[i].data()));
    ASSERT_OK(borrow.Add(i, data[i].data()));
  }
  EXPECT_EQ(borrow.VectorAt(5), data[5].data()) << "the owner's vector, not a copy";
  EXPECT_EQ(borrow.VectorOf(5), data[5]);
  for (int q = 0; q < 50; ++q) {
    auto a = copy.Search(data[q * 7].data(), 10), b = borrow.Search(data[q * 7].data(), 10);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].label, b[i].label) << q;
  }
  borrow.Remove(3);

  TempDir dir;
  ASSERT_OK(borrow.Save(dir.sub("b.hnsw")));
  ASSERT_OK(copy.Save(dir.sub("c.hnsw")));
  // Another storage kind's snapshot has another element layout: refused.
  EXPECT_CODE(index::HnswGraph::Load(space, {}, dir.sub("b.hnsw")), kCorruption);
  EXPECT_CODE(index::HnswGraph::Load(space, {}, dir.sub("c.hnsw"), index::VectorStorage::kBorrow),
              kCorruption);
  auto loaded = index::HnswGraph::Load(space, {}, dir.sub("b.hnsw"), index::VectorStorage::kBorrow);
  ASSERT_OK(loaded);
  index::HnswGraph& g = **loaded;
  // Relabel from a copy of the vectors at other addresses; element 10 is dropped.
  std::vector<std::vector<float>> moved = data;
  g.Relabel([&](size_t i) -> std::optional<index::HnswGraph::Relabelled> {
    uint64_t label = g.LabelAt(i);
    if (label == 10) return std::nullopt;
    return index::HnswGraph::Relabelled{label + 1000, moved[label].data()};
  });
  EXPECT_EQ(g.live(), data.size() - 2);
  EXPECT_FALSE(g.Contains(1003)) << "tombstoned before the save";
  EXPECT_FALSE(g.Contains(1010));
  EXPECT_EQ(g.VectorOf(1042), data[42]);
  EXPECT_EQ(g.Search(data[42].data(), 1)[0].label, 1042u);
  moved.clear();  // (the graph is not used after its vectors go)
}

TEST(TextIndex, RanksByBm25AndForgetsRemovedDocuments) {
  index::TextIndex t;
  t.Add(1, "The quick brown fox");
  t.Add(2, "A fox, a fox, and another FOX");
  t.Add(3, "Nothing to see here");
  auto all = [](uint64_t) { return true; };
  auto r = t.Search("fox", 10, all);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].label, 2u) << "more occurrences rank higher";
  EXPECT_EQ(r[1].label, 1u);
  EXPECT_TRUE(t.Search("zebra", 10, all).empty());
  EXPECT_EQ(t.Search("fox", 10, [](uint64_t l) { return l != 2; }).size(), 1u);
  t.Remove(2, "A fox, a fox, and another FOX");
  r = t.Search("FOX", 10, all);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].label, 1u);
  EXPECT_EQ(t.documents(), 2u);
  // Removing what is not there changes nothing.
  t.Remove(2, "A fox, a fox, and another FOX");
  t.Remove(99, "The quick brown fox");
  EXPECT_EQ(t.documents(), 2u);
  EXPECT_EQ(t.Search("fox", 10, all).size(), 1u);
  // Non-ASCII words match whole.
  t.Add(4, "größe café");
  EXPECT_EQ(t.Search("café", 10, all).size(), 1u);
}

// BM25's length normalization uses each document's own length (carried in its
// postings): with the same term frequency the shorter document ranks first, with the
// exact score of the formula.
TEST(TextIndex, ShorterDocumentsRankFirstWithTheFormulasScore) {
  index::TextIndex t;
  t.Add(7, "fox one two three four five six seven");
  t.Add(8, "fox one");
  t.Add(9, "nothing");
  auto r = t.Search("fox", 10, [](uint64_t) { return true; });
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].label, 8u);
  EXPECT_EQ(r[1].label, 7u);
  const double docs = 3, df = 2, avg = (8.0 + 2.0 + 1.0) / 3, k1 = 1.2, b = 0.75;
  const double idf = std::log(1.0 + (docs - df + 0.5) / (df + 0.5));
  EXPECT_NEAR(r[0].score, idf * (k1 + 1) / (1 + k1 * (1 - b + b * 2 / avg)), 1e-12);
  EXPECT_NEAR(r[1].score, idf * (k1 + 1) / (1 + k1 * (1 - b + b * 8 / avg)), 1e-12);
}

TEST(FuseRankings, IsReciprocalRankFusion) {
  auto fused = index::FuseRankings({10, 20, 30}, {30, 40});
  ASSERT_EQ(fused.size(), 4u);
  EXPECT_EQ(fused[0].label, 30u) << "in both lists";
  EXPECT_NEAR(fused[0].score, 1.0 / 63 + 1.0 / 61, 1e-12);
  EXPECT_EQ(fused[1].label, 10u);
  EXPECT_NEAR(fused[1].score, 1.0 / 61, 1e-12);
  // 20 (vector rank 2) and 40 (text rank 2) tie at 1/62: the better vector rank wins.
  EXPECT_EQ(fused[2].label, 20u);
  EXPECT_EQ(fused[3].label, 40u);
}

}  // namespace
}  // namespace agentstore::testing
