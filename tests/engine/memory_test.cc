// user_memory: writes and their checks, per-user search against brute force (exact
// below the threshold, HNSW above it), filters that never shorten an answer, global
// search, hybrid search on real MiniLM embeddings, expiry, prune, touch, isolation and
// restart.
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "clustered_vectors.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

constexpr uint32_t kDim = 64;  // small vectors keep graph builds fast in tests

class Memories : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open(uint32_t dim = kDim, uint32_t threshold = 500) {
    EngineOptions o;
    o.data_dir = dir_.sub(data_name_);
    o.durability = storage::Durability::kNone;
    o.clock = &clock_;
    o.shards = 4;
    o.memory.dim = dim;
    o.memory.exact_threshold = threshold;
    o.memory.background = false;  // tests drive the indexer with DrainMemoryIndex
    auto r = Engine::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    engine_ = std::move(r).value();
  }
  void Reopen(uint32_t dim = kDim, uint32_t threshold = 500) {
    engine_.reset();
    Open(dim, threshold);
  }
  Engine& e() { return *engine_; }

  Uuid NewUser(const std::string& email) {
    fb::UserT u;
    u.email = email;
    return Id(Must(e().CreateUser(Scope::Service(), u))->id());
  }

  static fb::UserMemoryT Memory(const Uuid& user, const std::string& key,
                                const std::vector<float>& v, const std::string& content = "",
                                fb::MemoryType type = fb::MemoryType::fact, double importance = 0.5,
                                std::vector<std::string> tags = {}) {
    fb::UserMemoryT m;
    m.user_id = FbId(user);
    m.memory_key = key;
    m.memory_type = type;
    m.importance_score = importance;
    m.embedding = v;
    nlohmann::json value = {{"content", content}};
    if (!tags.empty()) value["tags"] = tags;
    m.memory_value = value.dump();
    return m;
  }

  std::vector<Uuid> Ids(const std::vector<MemoryHit>& hits) {
    std::vector<Uuid> out;
    for (const auto& h : hits) out.push_back(Id(h.memory->id()));
    return out;
  }

  TempDir dir_;
  std::string data_name_ = "data";
  ManualClock clock_{1'700'000'000'000'000};
  std::unique_ptr<Engine> engine_;
  ClusteredVectors gen_{kDim, 200, 11};
  std::mt19937_64 rng_{12};
};

TEST_F(Memories, UpsertByKeyUpdatesTheSameMemory) {
  Uuid u = NewUser("a@x.com");
  auto v1 = gen_.Sample(1, rng_), v2 = gen_.Sample(2, rng_);
  auto first = e().UpsertMemory(Scope::ForUser(u), Memory(u, "diet", v1, "vegetarian"));
  ASSERT_OK(first);
  EXPECT_EQ(first->get()->embedding(), nullptr) << "records leave the vector out by default";
  clock_.Advance(1000);
  auto second = e().UpsertMemory(Scope::Service(), Memory(u, "diet", v2, "vegan"));
  ASSERT_OK(second);
  EXPECT_EQ(Id(second->get()->id()), Id(first->get()->id()));
  EXPECT_EQ(second->get()->created_at(), first->get()->created_at());
  EXPECT_EQ(second->get()->updated_at(), first->get()->created_at() + 1000);
  auto got = e().GetMemory(Scope::ForUser(u), Id(first->get()->id()), /*with_vector=*/true);
  ASSERT_OK(got);
  ASSERT_NE(got->get()->embedding(), nullptr);
  ASSERT_EQ(got->get()->embedding()->size(), kDim);
  for (uint32_t i = 0; i < kDim; ++i) EXPECT_NEAR(got->get()->embedding()->Get(i), v2[i], 1e-6);
  EXPECT_EQ(Must(e().GetMemoryByKey(Scope::ForUser(u), u, "diet"))->memory_value()->str(),
            R"({"content":"vegan"})");
  // The old vector is gone from every index: searching for it finds the one memory once.
  MemoryQuery q;
  q.user = u;
  q.vector = v1;
  q.k = 5;
  EXPECT_EQ(Must(e().SearchMemories(Scope::ForUser(u), q)).size(), 1u);
  q.vector = v2;
  EXPECT_EQ(Must(e().GlobalSearchMemories(Scope::Service(), q)).size(), 1u);
  EXPECT_EQ(e().MemoryStats().memories, 1u);
}

// The per-user lookups (by id, by key, by label for search results) and the keyword
// index are flat tables re-filed on every replace and on every delete (which moves the
// last memory into the hole): a random run of upserts and deletes against a model,
// checked before and after a restart.
TEST_F(Memories, LookupsFollowEveryReplaceAndDeleteAgainstAModel) {
  Uuid u = NewUser("model@x.com");
  struct Live {
    Uuid id;
    std::string word;
  };
  std::map<std::string, Live> model;  // memory_key -> the live memory
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) keys.push_back("key-" + std::to_string(i));
  std::uniform_int_distribution<size_t> pick(0, keys.size() - 1);
  for (int op = 0; op < 600; ++op) {
    const std::string& key = keys[pick(rng_)];
    auto it = model.find(key);
    if (it != model.end() && op % 3 == 0) {
      ASSERT_OK(e().DeleteMemory(Scope::ForUser(u), it->second.id));
      model.erase(it);
      continue;
    }
    std::string word = "w" + std::to_string(op);
    auto r = e().UpsertMemory(Scope::ForUser(u),
                              Memory(u, key, gen_.Sample(op % 200, rng_), "entry " + word));
    ASSERT_OK(r);
    Uuid id = Id(r->get()->id());
    if (it != model.end()) EXPECT_EQ(id, it->second.id) << key << " keeps its id";
    model[key] = {id, word};
  }
  ASSERT_GT(model.size(), 10u);
  auto check = [&](const char* when) {
    SCOPED_TRACE(when);
    EXPECT_EQ(e().MemoryStats().memories, model.size());
    for (const auto& key : keys) {
      auto got = e().GetMemoryByKey(Scope::ForUser(u), u, key);
      auto it = model.find(key);
      if (it == model.end()) {
        EXPECT_EQ(got.status().code(), StatusCode::kNotFound) << key;
        continue;
      }
      ASSERT_OK(got);
      EXPECT_EQ(Id(got->get()->id()), it->second.id) << key;
      EXPECT_EQ(Must(e().GetMemory(Scope::ForUser(u), it->second.id, false))->memory_key()->str(),
                key);
      // A word of one memory's content: the keyword side ranks it first, so hybrid
      // search (which fuses it with a vector ranking) puts it first.
      MemoryQuery q;
      q.user = u;
      q.vector = gen_.Sample(7, rng_);
      q.text = it->second.word;
      q.k = 1;
      auto hits = Must(e().HybridSearchMemories(Scope::ForUser(u), q));
      ASSERT_EQ(hits.size(), 1u);
      EXPECT_EQ(Id(hits[0].memory->id()), it->second.id) << key << " by " << it->second.word;
    }
    // Every live memory is found by vector search exactly once.
    MemoryQuery all;
    all.user = u;
    all.vector = gen_.Sample(3, rng_);
    all.k = static_cast<uint32_t>(model.size() + 5);
    auto hits = Ids(Must(e().SearchMemories(Scope::ForUser(u), all)));
    std::set<Uuid> found(hits.begin(), hits.end()), want;
    for (const auto& [key, live] : model) want.insert(live.id);
    EXPECT_EQ(hits.size(), model.size());
    EXPECT_EQ(found, want);
  };
  check("before restart");
  Reopen();
  check("after restart");
}

TEST_F(Memories, BadInputIsRefusedAndChangesNothing) {
  Uuid u = NewUser("a@x.com");
  auto v = gen_.Sample(1, rng_);
  ASSERT_OK(e().UpsertMemory(Scope::ForUser(u), Memory(u, "k", v, "kept")));
  auto before = e().GetMemoryByKey(Scope::Service(), u, "k", true);
  auto bad = [&](fb::UserMemoryT m, const char* why) {
    auto r = e().UpsertMemory(Scope::ForUser(u), m);
    EXPECT_EQ(CodeOf(r), StatusCode::kInvalidArgument) << why << ": " << TextOf(r);
  };
  auto wrong_dim = v;
  wrong_dim.push_back(1);
  bad(Memory(u, "k", wrong_dim), "wrong dimension");
  auto nan = v;
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  bad(Memory(u, "k", nan), "NaN");
  auto inf = v;
  inf[0] = -std::numeric_limits<float>::infinity();
  bad(Memory(u, "k", inf), "infinity");
  bad(Memory(u, "k", std::vector<float>(kDim, 0.f)), "zero length for cosine");
  bad(Memory(u, "k", {}), "no embedding");
  bad(Memory(u, "", v), "no key");
  bad(Memory(u, "k", v, "", fb::MemoryType::fact, 1.5), "importance above 1");
  bad(Memory(u, "k", v, "", fb::MemoryType::fact, -0.1), "importance below 0");
  bad(Memory(u, "k", v, "", fb::MemoryType::fact, std::nan("")), "importance NaN");
  bad(Memory(u, "k", v, "", static_cast<fb::MemoryType>(9)), "unknown memory_type");
  auto not_object = Memory(u, "k", v);
  not_object.memory_value = "[1,2]";
  bad(not_object, "memory_value not an object");
  auto bad_tags = Memory(u, "k", v);
  bad_tags.memory_value = R"({"content":"x","tags":"nope"})";
  bad(bad_tags, "tags not an array");
  auto past = Memory(u, "k", v);
  past.expires_at = clock_.NowMicros() - 1;
  bad(past, "already expired");
  EXPECT_EQ(BytesOf(e().GetMemoryByKey(Scope::Service(), u, "k", true)), BytesOf(before));
  EXPECT_EQ(e().MemoryStats().memories, 1u);
  // Search input too.
  MemoryQuery q;
  q.user = u;
  q.vector = wrong_dim;
  EXPECT_CODE(e().SearchMemories(Scope::ForUser(u), q), kInvalidArgument);
  q.vector = v;
  q.k = 0;
  EXPECT_CODE(e().SearchMemories(Scope::ForUser(u), q), kInvalidArgument);
  q.k = 5;
  EXPECT_CODE(e().HybridSearchMemories(Scope::ForUser(u), q), kInvalidArgument) << "no text";
}

TEST_F(Memories, UsersAreIsolated) {
  Uuid a = NewUser("a@x.com"), b = NewUser("b@x.com");
  auto v = gen_.Sample(3, rng_);
  auto mine = Must(e().UpsertMemory(Scope::ForUser(a), Memory(a, "k", v)));
  Uuid id = Id(mine->id());
  EXPECT_CODE(e().UpsertMemory(Scope::ForUser(b), Memory(a, "k2", v)), kPermissionDenied);
  EXPECT_CODE(e().UpsertMemory(Scope::Admin(), Memory(a, "k2", v)), kPermissionDenied);
  EXPECT_CODE(e().GetMemory(Scope::ForUser(b), id), kNotFound);
  EXPECT_CODE(e().GetMemoryByKey(Scope::ForUser(b), a, "k"), kNotFound);
  EXPECT_CODE(e().DeleteMemory(Scope::ForUser(b), id), kNotFound);
  EXPECT_CODE(e().PruneMemories(Scope::ForUser(b), a, 0), kNotFound);
  MemoryQuery q;
  q.user = a;
  q.vector = v;
  EXPECT_CODE(e().SearchMemories(Scope::ForUser(b), q), kNotFound);
  q.text = "anything";
  EXPECT_CODE(e().HybridSearchMemories(Scope::ForUser(b), q), kNotFound);
  EXPECT_CODE(e().GlobalSearchMemories(Scope::ForUser(b), q), kPermissionDenied);
  EXPECT_CODE(e().GlobalSearchMemories(Scope::ForUser(a), q), kPermissionDenied);
  q.user = b;
  EXPECT_TRUE(Must(e().SearchMemories(Scope::ForUser(b), q)).empty()) << "b has none";
  // Admins read; the owner, the service and an acting service see it.
  EXPECT_OK(e().GetMemory(Scope::Admin(), id));
  EXPECT_OK(e().GetMemory(Scope::Service(), id));
  EXPECT_OK(e().GetMemory(Must(Scope::Service().ActAs(a)), id));
  EXPECT_CODE(e().GetMemory(Must(Scope::Service().ActAs(b)), id), kNotFound);
  EXPECT_EQ(e().MemoryStats().memories, 1u);
}

// Users below the threshold are scanned exactly: recall 1.0, in brute force's order.
TEST_F(Memories, SmallUsersAreExact) {
  std::vector<Uuid> users;
  std::vector<std::vector<std::vector<float>>> data;
  std::vector<std::vector<Uuid>> ids;
  for (int i = 0; i < 20; ++i) {
    users.push_back(NewUser("u" + std::to_string(i) + "@x.com"));
    auto profile = gen_.MakeUser(rng_);
    size_t n = ClusteredVectors::MemoryCount(rng_) % 400 + 1;
    data.emplace_back();
    ids.emplace_back();
    for (size_t j = 0; j < n; ++j) {
      data.back().push_back(gen_.SampleFor(profile, rng_));
      auto r = e().UpsertMemory(Scope::Service(),
                                Memory(users.back(), "m" + std::to_string(j), data.back().back()));
      ASSERT_OK(r);
      ids.back().push_back(Id(r->get()->id()));
    }
  }
  for (int i = 0; i < 20; ++i) {
    for (int t = 0; t < 5; ++t) {
      MemoryQuery q;
      q.user = users[i];
      q.vector = gen_.SampleFor(gen_.MakeUser(rng_), rng_);
      q.k = 5;
      auto hits = Must(e().SearchMemories(Scope::ForUser(users[i]), q));
      auto truth = BruteForceTopK(data[i], q.vector, 5);
      ASSERT_EQ(hits.size(), truth.size());
      for (size_t j = 0; j < truth.size(); ++j)
        EXPECT_EQ(Id(hits[j].memory->id()), ids[i][truth[j]]);
    }
  }
}

// A user past the threshold is searched through its graph: recall@5 >= 0.99, and
// filters never shorten the answer.
TEST_F(Memories, LargeUserRecallAndFiltersNeverShorten) {
  Uuid u = NewUser("big@x.com");
  auto profile = gen_.MakeUser(rng_);
  std::vector<std::vector<float>> data;
  std::vector<Uuid> ids;
  std::vector<fb::MemoryType> types;
  std::vector<double> importance;
  const int n = 6000;
  for (int j = 0; j < n; ++j) {
    data.push_back(gen_.SampleFor(profile, rng_));
    // instruction memories are rare (1%); importance uniform; every 50th is tagged.
    fb::MemoryType type = j % 100 == 0 ? fb::MemoryType::instruction : fb::MemoryType::fact;
    double imp = (j % 97) / 96.0;
    std::vector<std::string> tags;
    if (j % 50 == 0) tags = {"travel"};
    types.push_back(type);
    importance.push_back(imp);
    auto r = e().UpsertMemory(Scope::Service(),
                              Memory(u, "m" + std::to_string(j), data.back(), "", type, imp, tags));
    ASSERT_OK(r);
    ids.push_back(Id(r->get()->id()));
  }
  e().DrainMemoryIndex();
  ASSERT_EQ(e().MemoryStats().users_on_graph, 1u) << "past the threshold, the user has a graph";
  double found = 0, wanted = 0;
  for (int t = 0; t < 200; ++t) {
    MemoryQuery q;
    q.user = u;
    q.vector = gen_.SampleFor(profile, rng_);
    q.k = 5;
    auto hits = Must(e().SearchMemories(Scope::ForUser(u), q));
    ASSERT_EQ(hits.size(), 5u);
    std::set<Uuid> got;
    for (const auto& h : hits) got.insert(Id(h.memory->id()));
    for (size_t i : BruteForceTopK(data, q.vector, 5)) found += got.count(ids[i]);
    wanted += 5;
  }
  EXPECT_GE(found / wanted, 0.99) << "recall@5 through the graph";

  // Filters: always min(k, matching), each hit matching.
  for (int t = 0; t < 30; ++t) {
    MemoryQuery q;
    q.user = u;
    q.vector = gen_.SampleFor(profile, rng_);
    q.k = 10;
    switch (t % 3) {
      case 0:
        q.memory_type = fb::MemoryType::instruction;
        break;  // 60 match
      case 1:
        q.min_importance = 0.995;
        break;  // ~62 match
      case 2:
        q.tags = {"travel"};
        q.memory_type = fb::MemoryType::instruction;
        break;  // 12
    }
    std::vector<std::vector<float>> matching;
    std::vector<Uuid> matching_ids;
    for (int j = 0; j < n; ++j) {
      bool ok = (!q.memory_type || types[j] == *q.memory_type) &&
                (!q.min_importance || importance[j] >= *q.min_importance) &&
                (q.tags.empty() || j % 50 == 0);
      if (ok) {
        matching.push_back(data[j]);
        matching_ids.push_back(ids[j]);
      }
    }
    auto hits = Must(e().SearchMemories(Scope::ForUser(u), q));
    ASSERT_EQ(hits.size(), std::min<size_t>(10, matching.size())) << "case " << t % 3;
    auto truth = BruteForceTopK(matching, q.vector, 10);
    for (size_t j = 0; j < truth.size(); ++j)
      EXPECT_EQ(Id(hits[j].memory->id()), matching_ids[truth[j]]) << "selective: exact";
  }
  // A filter that matches most memories goes through the graph and still fills k.
  MemoryQuery q;
  q.user = u;
  q.vector = gen_.SampleFor(profile, rng_);
  q.k = 50;
  q.min_importance = 0.2;
  auto hits = Must(e().SearchMemories(Scope::ForUser(u), q));
  ASSERT_EQ(hits.size(), 50u);
  for (const auto& h : hits) EXPECT_GE(h.memory->importance_score(), 0.2);
}

TEST_F(Memories, UpdatesRebuildTheGraphInsteadOfPilingTombstones) {
  Reopen(kDim, /*threshold=*/200);
  Uuid u = NewUser("churn@x.com");
  auto profile = gen_.MakeUser(rng_);
  std::vector<std::vector<float>> data(800);
  std::vector<Uuid> ids(800);
  for (int j = 0; j < 800; ++j) {
    data[j] = gen_.SampleFor(profile, rng_);
    ids[j] =
        Id(Must(e().UpsertMemory(Scope::Service(), Memory(u, "m" + std::to_string(j), data[j])))
               ->id());
  }
  e().DrainMemoryIndex();
  // Rewrite every vector three times: without rebuilds the graph would hold 3x
  // tombstones; with them, searches stay exact against the current vectors.
  for (int round = 0; round < 3; ++round) {
    for (int j = 0; j < 800; ++j) {
      data[j] = gen_.SampleFor(profile, rng_);
      ASSERT_OK(e().UpsertMemory(Scope::Service(), Memory(u, "m" + std::to_string(j), data[j])));
    }
    e().DrainMemoryIndex();
  }
  EXPECT_EQ(e().MemoryStats().users_on_graph, 1u);
  double found = 0;
  for (int t = 0; t < 50; ++t) {
    MemoryQuery q;
    q.user = u;
    q.vector = gen_.SampleFor(profile, rng_);
    std::set<Uuid> got;
    for (const auto& h : Must(e().SearchMemories(Scope::ForUser(u), q)))
      got.insert(Id(h.memory->id()));
    for (size_t i : BruteForceTopK(data, q.vector, 5)) found += got.count(ids[i]);
  }
  EXPECT_GE(found / 250, 0.99);
  // Deleting down below half the threshold drops the graph (exact again).
  for (int j = 0; j < 750; ++j) ASSERT_OK(e().DeleteMemory(Scope::ForUser(u), ids[j]));
  e().DrainMemoryIndex();
  EXPECT_EQ(e().MemoryStats().users_on_graph, 0u);
  MemoryQuery q;
  q.user = u;
  q.vector = data[799];
  q.k = 100;
  EXPECT_EQ(Must(e().SearchMemories(Scope::ForUser(u), q)).size(), 50u);
}

TEST_F(Memories, GlobalSearchRecallAcrossUsers) {
  std::vector<std::vector<float>> data;
  std::vector<Uuid> ids;
  std::vector<fb::MemoryType> types;
  for (int i = 0; i < 100; ++i) {
    Uuid u = NewUser("g" + std::to_string(i) + "@x.com");
    auto profile = gen_.MakeUser(rng_);
    for (int j = 0; j < 100; ++j) {
      data.push_back(gen_.SampleFor(profile, rng_));
      types.push_back(j % 4 == 0 ? fb::MemoryType::preference : fb::MemoryType::fact);
      ids.push_back(
          Id(Must(e().UpsertMemory(Scope::Service(), Memory(u, "m" + std::to_string(j), data.back(),
                                                            "", types.back())))
                 ->id()));
    }
  }
  // Before the indexer runs, global search is exact over the pending vectors.
  MemoryQuery q0;
  q0.vector = data[17];
  q0.k = 10;
  auto early = Must(e().GlobalSearchMemories(Scope::Admin(), q0));
  ASSERT_EQ(early.size(), 10u);
  EXPECT_EQ(Id(early[0].memory->id()), ids[17]);
  e().DrainMemoryIndex();
  EXPECT_EQ(e().MemoryStats().global_pending, 0u);
  EXPECT_EQ(e().MemoryStats().global_indexed, 10000u);
  double found = 0, wanted = 0;
  for (int t = 0; t < 100; ++t) {
    MemoryQuery q;
    q.vector = gen_.SampleFor(gen_.MakeUser(rng_), rng_);
    q.k = 10;
    std::set<Uuid> got;
    for (const auto& h : Must(e().GlobalSearchMemories(Scope::Service(), q)))
      got.insert(Id(h.memory->id()));
    for (size_t i : BruteForceTopK(data, q.vector, 10)) found += got.count(ids[i]);
    wanted += 10;
  }
  EXPECT_GE(found / wanted, 0.95) << "global recall@10 at default settings";
  // Filtered by memory_type: full k, all of that type.
  MemoryQuery q;
  q.vector = data[5];
  q.k = 10;
  q.memory_type = fb::MemoryType::preference;
  auto hits = Must(e().GlobalSearchMemories(Scope::Admin(), q));
  ASSERT_EQ(hits.size(), 10u);
  for (const auto& h : hits) EXPECT_EQ(h.memory->memory_type(), fb::MemoryType::preference);
  q.min_importance = 0.5;
  EXPECT_CODE(e().GlobalSearchMemories(Scope::Admin(), q), kInvalidArgument);
}

TEST_F(Memories, ExpiredMemoriesNeverComeBackAndAreSwept) {
  Uuid u = NewUser("e@x.com");
  auto v = gen_.Sample(4, rng_);
  auto m = Memory(u, "soon", v, "ephemeral");
  m.expires_at = clock_.NowMicros() + 1'000'000;
  Uuid id = Id(Must(e().UpsertMemory(Scope::ForUser(u), m))->id());
  ASSERT_OK(e().UpsertMemory(Scope::ForUser(u), Memory(u, "forever", gen_.Sample(4, rng_))));
  MemoryQuery q;
  q.user = u;
  q.vector = v;
  q.k = 5;
  EXPECT_EQ(Must(e().SearchMemories(Scope::ForUser(u), q)).size(), 2u);
  EXPECT_EQ(Must(e().SweepExpiredMemories()), 0u);
  clock_.Advance(1'000'000);
  EXPECT_EQ(Must(e().SearchMemories(Scope::ForUser(u), q)).size(), 1u) << "expired: not found";
  EXPECT_CODE(e().GetMemory(Scope::ForUser(u), id), kNotFound);
  EXPECT_EQ(Must(e().GlobalSearchMemories(Scope::Service(), q)).size(), 1u);
  q.text = "ephemeral";
  EXPECT_EQ(Must(e().HybridSearchMemories(Scope::ForUser(u), q)).size(), 1u);
  EXPECT_EQ(Must(e().SweepExpiredMemories()), 1u);
  EXPECT_EQ(e().MemoryStats().memories, 1u);
  Reopen();
  EXPECT_EQ(e().MemoryStats().memories, 1u) << "the sweep was durable";
}

TEST_F(Memories, PruneKeepsTheMostImportant) {
  Uuid u = NewUser("p@x.com");
  for (int j = 0; j < 10; ++j) {
    clock_.Advance(1);
    ASSERT_OK(
        e().UpsertMemory(Scope::ForUser(u), Memory(u, "m" + std::to_string(j), gen_.Sample(j, rng_),
                                                   "", fb::MemoryType::fact, (j % 5) / 4.0)));
  }
  EXPECT_EQ(Must(e().PruneMemories(Scope::ForUser(u), u, 4)), 6u);
  EXPECT_EQ(Must(e().PruneMemories(Scope::ForUser(u), u, 4)), 0u);
  std::set<std::string> left;
  MemoryQuery q;
  q.user = u;
  q.vector = gen_.Sample(0, rng_);
  q.k = 100;
  for (const auto& h : Must(e().SearchMemories(Scope::ForUser(u), q))) {
    left.insert(h.memory->memory_key()->str());
    EXPECT_GE(h.memory->importance_score(), 0.75);
  }
  // Importance 1.0: m4, m9; 0.75: m3, m8.
  EXPECT_EQ(left, (std::set<std::string>{"m3", "m4", "m8", "m9"}));
  Reopen();
  EXPECT_EQ(e().MemoryStats().memories, 4u);
}

TEST_F(Memories, TouchCountsAccessesAndSurvivesRestart) {
  Uuid u = NewUser("t@x.com");
  auto v = gen_.Sample(9, rng_);
  Uuid id = Id(Must(e().UpsertMemory(Scope::ForUser(u), Memory(u, "k", v)))->id());
  MemoryQuery q;
  q.user = u;
  q.vector = v;
  q.touch = true;
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(10);
    auto hits = Must(e().SearchMemories(Scope::ForUser(u), q));
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].memory->access_count(), i + 1) << "the answer shows its own touch";
  }
  int64_t touched_at = clock_.NowMicros();
  q.touch = false;
  EXPECT_EQ(Must(e().SearchMemories(Scope::ForUser(u), q))[0].memory->access_count(), 3);
  Reopen();
  auto m = Must(e().GetMemory(Scope::ForUser(u), id));
  EXPECT_EQ(m->access_count(), 3);
  EXPECT_EQ(m->last_accessed_at(), touched_at);
  // An update keeps the counters.
  ASSERT_OK(e().UpsertMemory(Scope::ForUser(u), Memory(u, "k", gen_.Sample(8, rng_))));
  Reopen();
  EXPECT_EQ(Must(e().GetMemory(Scope::ForUser(u), id))->access_count(), 3);
}

TEST_F(Memories, RestartRebuildsEveryIndex) {
  std::vector<Uuid> users;
  std::vector<std::vector<float>> vecs;
  for (int i = 0; i < 5; ++i) {
    users.push_back(NewUser("r" + std::to_string(i) + "@x.com"));
    for (int j = 0; j < (i == 0 ? 700 : 30); ++j) {
      vecs.push_back(gen_.Sample(gen_.ZipfCluster(rng_), rng_));
      ASSERT_OK(
          e().UpsertMemory(Scope::Service(), Memory(users[i], "m" + std::to_string(j), vecs.back(),
                                                    "note number " + std::to_string(j))));
    }
  }
  e().DrainMemoryIndex();
  // Exact users answer byte for byte the same after a restart; the graph user (rebuilt in
  // another insertion order, so approximately the same) must find each memory itself.
  auto search_all = [&] {
    std::string out;
    for (size_t i = 1; i < users.size(); ++i) {
      const Uuid& u = users[i];
      MemoryQuery q;
      q.user = u;
      q.vector = vecs[7];
      q.k = 7;
      q.with_vectors = true;
      for (const auto& h : Must(e().SearchMemories(Scope::ForUser(u), q)))
        out += std::string(h.memory.bytes());
      q.text = "number 12";
      for (const auto& h : Must(e().HybridSearchMemories(Scope::ForUser(u), q)))
        out += h.memory->memory_key()->str();
    }
    return out;
  };
  std::string before = search_all();
  ASSERT_EQ(e().MemoryStats().memories, 820u);
  Reopen();
  e().DrainMemoryIndex();
  EXPECT_EQ(e().MemoryStats().memories, 820u);
  EXPECT_EQ(e().MemoryStats().users_on_graph, 1u);
  EXPECT_TRUE(search_all() == before) << "same records, same vectors, same answers";
  for (size_t j = 0; j < 700; j += 50) {
    MemoryQuery q;
    q.user = users[0];
    q.vector = vecs[j];
    q.k = 1;
    auto hits = Must(e().SearchMemories(Scope::ForUser(users[0]), q));
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].memory->memory_key()->str(), "m" + std::to_string(j));
  }
  // The store's vector configuration is fixed.
  engine_.reset();
  EngineOptions o;
  o.data_dir = dir_.sub("data");
  o.memory.dim = 128;
  EXPECT_CODE(Engine::Open(o), kInvalidArgument);
  o.memory.dim = 0;
  o.memory.metric = "l2";
  EXPECT_CODE(Engine::Open(o), kInvalidArgument);
  Open();
}

TEST_F(Memories, HardDeletingTheUserDeletesItsMemories) {
  Uuid u = NewUser("d@x.com"), other = NewUser("o@x.com");
  for (int j = 0; j < 20; ++j)
    ASSERT_OK(e().UpsertMemory(Scope::ForUser(u),
                               Memory(u, "m" + std::to_string(j), gen_.Sample(j, rng_))));
  ASSERT_OK(e().UpsertMemory(Scope::ForUser(other), Memory(other, "x", gen_.Sample(1, rng_))));
  ASSERT_OK(e().DeleteUser(Scope::Service(), u, DeleteMode::kHard));
  EXPECT_EQ(e().MemoryStats().memories, 1u);
  MemoryQuery q;
  q.vector = gen_.Sample(1, rng_);
  q.k = 50;
  EXPECT_EQ(Must(e().GlobalSearchMemories(Scope::Service(), q)).size(), 1u);
  Reopen();
  EXPECT_EQ(e().MemoryStats().memories, 1u);
}

// Writers, deleters and global searchers race the background indexer: no answer ever
// misses a live memory's own vector, and once drained every live memory is in the graph.
TEST_F(Memories, GlobalIndexUnderConcurrentWritesStaysComplete) {
  engine_.reset();
  EngineOptions o;
  o.data_dir = dir_.sub("concurrent");
  o.durability = storage::Durability::kNone;
  o.clock = &clock_;
  o.memory.dim = kDim;
  o.memory.background = true;  // the real indexer thread
  engine_ = Must(Engine::Open(o));
  std::vector<Uuid> users;
  for (int i = 0; i < 4; ++i) users.push_back(NewUser("c" + std::to_string(i) + "@x.com"));
  std::atomic<bool> stop{false};
  std::atomic<int> misses{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      for (int j = 0; j < 1500; ++j) {
        auto v = gen_.Sample(gen_.ZipfCluster(rng), rng);
        Uuid u = users[(t * 2 + j) % 4];
        auto m =
            e().UpsertMemory(Scope::Service(),
                             Memory(u, "t" + std::to_string(t) + "-" + std::to_string(j % 700), v));
        if (!m.ok()) continue;
        if (j % 5 == 0) (void)e().DeleteMemory(Scope::Service(), Id(m->get()->id()));
        if (j % 7 == 0 && j % 5 != 0) {
          // Just written and not deleted: a global search for its vector finds it first.
          MemoryQuery q;
          q.vector = v;
          q.k = 3;
          auto hits = e().GlobalSearchMemories(Scope::Service(), q);
          bool found = false;
          if (hits.ok())
            for (const auto& h : *hits) found |= Id(h.memory->id()) == Id(m->get()->id());
          misses += !found;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(misses.load(), 0);
  e().DrainMemoryIndex();
  auto stats = e().MemoryStats();
  EXPECT_EQ(stats.global_pending, 0u);
  EXPECT_EQ(stats.global_indexed, stats.memories) << "every live memory, and only those";
}

// ---- real MiniLM embeddings and texts (../shared/data/fiori-docs-minilm-384) ----

struct FioriDocs {
  std::vector<std::vector<float>> vectors;
  std::vector<std::string> texts;
};

FioriDocs LoadFiori() {
  FioriDocs d;
  std::string dir = std::string(AGENTSTORE_SHARED_DATA) + "/fiori-docs-minilm-384";
  std::ifstream bin(dir + "/embeddings.bin", std::ios::binary);
  std::ifstream lines(dir + "/records.jsonl");
  if (!bin || !lines) return d;
  std::vector<float> v(384);
  std::string line;
  while (bin.read(reinterpret_cast<char*>(v.data()), 384 * sizeof(float)) &&
         std::getline(lines, line)) {
    d.vectors.push_back(v);
    // A few chunks are far longer than the store's 64 KiB JSON cap: keep the first
    // 16 KiB (cut on a UTF-8 boundary).
    std::string text = nlohmann::json::parse(line)["content"].get<std::string>();
    if (text.size() > 16384) {
      size_t cut = 16384;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      text.resize(cut);
    }
    d.texts.push_back(std::move(text));
  }
  return d;
}

TEST_F(Memories, HybridFindsByKeywordWhatVectorsMissOnRealEmbeddings) {
  FioriDocs docs = LoadFiori();
  if (docs.vectors.empty())
    GTEST_SKIP() << "shared/data/fiori-docs-minilm-384 is not beside the repo";
  ASSERT_EQ(docs.vectors.size(), 778u);
  data_name_ = "fiori";  // a store of 384-d vectors
  Reopen(384, 2000);
  Uuid u = NewUser("fiori@x.com");
  std::vector<Uuid> ids;
  for (size_t i = 0; i < docs.vectors.size(); ++i)
    ids.push_back(
        Id(Must(e().UpsertMemory(Scope::Service(), Memory(u, "doc" + std::to_string(i),
                                                          docs.vectors[i], docs.texts[i])))
               ->id()));
  // A word that occurs in exactly one document...
  std::map<std::string, std::set<size_t>> where;
  auto words = [](const std::string& text) {
    std::vector<std::string> out;
    std::string w;
    for (char c : text + " ") {
      if (std::isalnum(static_cast<unsigned char>(c)))
        w += static_cast<char>(std::tolower(c));
      else if (!w.empty()) {
        out.push_back(w);
        w.clear();
      }
    }
    return out;
  };
  for (size_t i = 0; i < docs.texts.size(); ++i)
    for (const auto& w : words(docs.texts[i]))
      if (w.size() >= 6 && !std::isdigit(w[0])) where[w].insert(i);
  // ...and a query vector (another document's embedding) whose vector top-5 misses it.
  int checked = 0;
  for (const auto& [word, docs_with] : where) {
    if (docs_with.size() != 1 || checked == 5) continue;
    size_t target = *docs_with.begin();
    size_t far = 0;
    float worst = 2;
    for (size_t i = 0; i < docs.vectors.size(); ++i) {
      float dot = 0;
      for (int j = 0; j < 384; ++j) dot += docs.vectors[i][j] * docs.vectors[target][j];
      if (dot < worst) worst = dot, far = i;
    }
    MemoryQuery q;
    q.user = u;
    q.vector = docs.vectors[far];
    q.k = 5;
    auto by_vector = Ids(Must(e().SearchMemories(Scope::ForUser(u), q)));
    ASSERT_EQ(std::count(by_vector.begin(), by_vector.end(), ids[target]), 0);
    q.text = word;
    auto hybrid = Ids(Must(e().HybridSearchMemories(Scope::ForUser(u), q)));
    ASSERT_EQ(hybrid.size(), 5u);
    EXPECT_EQ(std::count(hybrid.begin(), hybrid.end(), ids[target]), 1)
        << "keyword '" << word << "' finds document " << target;
    ++checked;
  }
  EXPECT_EQ(checked, 5);
  // Real vectors round-trip through a restart bit for bit (they are unit length already,
  // so cosine normalization leaves them within float rounding).
  Reopen(384, 2000);
  for (size_t i = 0; i < docs.vectors.size(); i += 97) {
    auto m = Must(e().GetMemory(Scope::ForUser(u), ids[i], true));
    ASSERT_EQ(m->embedding()->size(), 384u);
    for (int j = 0; j < 384; ++j) ASSERT_NEAR(m->embedding()->Get(j), docs.vectors[i][j], 1e-6);
    auto again = Must(e().GetMemory(Scope::ForUser(u), ids[i], true));
    EXPECT_EQ(again.bytes(), m.bytes());
  }
}

// The same embedding stored more than once: equal distances rank by memory id, in the
// per-user search (exact and graph) and the global one, and so the answer is the same
// after a restart, which assigns slots and labels anew.
TEST_F(Memories, EqualDistancesRankByMemoryIdAlsoAfterARestart) {
  Reopen(kDim, /*threshold=*/8);  // past 8 memories the user's search walks its graph
  Uuid u = NewUser("twins@x.com");
  auto same = gen_.Sample(3, rng_);
  std::vector<Uuid> twins;
  for (int i = 0; i < 40; ++i) {
    auto v = i % 4 == 0 ? gen_.Sample(i % 7, rng_) : same;
    auto m = Must(e().UpsertMemory(Scope::ForUser(u), Memory(u, "k" + std::to_string(i), v)));
    if (i % 4 != 0) twins.push_back(Id(m->id()));
  }
  // Deletes move the last slots into the holes, so slot order is not insertion order.
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK(e().DeleteMemory(Scope::ForUser(u), twins[i * 4]));
    twins.erase(twins.begin() + i * 4);
  }
  e().DrainMemoryIndex();
  std::sort(twins.begin(), twins.end());
  const std::vector<Uuid> expect(twins.begin(), twins.begin() + 5);
  MemoryQuery q;
  q.user = u;
  q.vector = same;
  q.k = 5;
  auto check = [&](const char* when) {
    EXPECT_EQ(Ids(Must(e().SearchMemories(Scope::ForUser(u), q))), expect) << when;
    EXPECT_EQ(Ids(Must(e().GlobalSearchMemories(Scope::Service(), q))), expect) << when;
    MemoryQuery wide = q;
    wide.k = 100;  // past the user's memories: the exact answer
    auto all = Ids(Must(e().SearchMemories(Scope::ForUser(u), wide)));
    ASSERT_GE(all.size(), twins.size()) << when;
    EXPECT_EQ(std::vector<Uuid>(all.begin(), all.begin() + twins.size()), twins) << when;
  };
  check("before the restart");
  Reopen(kDim, 8);
  e().DrainMemoryIndex();
  check("after the restart");
}

}  // namespace
}  // namespace agentstore::testing
