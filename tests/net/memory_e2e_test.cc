// user_memory over the wire: a real agentstored, the client library and agentctl. Every
// memory operation, its access rules and bad input as the server enforces them, touches
// and vectors across a kill -9 and restart.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "clustered_vectors.h"
#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

class MemoryWire : public ServerTest {
 protected:
  Uuid NewUser(const std::string& email) { return NewUserId(email); }
  fb::UserMemoryT Memory(const Uuid& user, const std::string& key, const std::vector<float>& v,
                         const std::string& content, fb::MemoryType type = fb::MemoryType::fact) {
    fb::UserMemoryT m;
    m.user_id = FbId(user);
    m.memory_key = key;
    m.memory_type = type;
    m.embedding = v;
    m.memory_value = nlohmann::json({{"content", content}, {"tags", {"t1"}}}).dump();
    return m;
  }

  ClusteredVectors gen_{384, 50, 21};
  std::mt19937_64 rng_{22};
};

TEST_F(MemoryWire, EveryMemoryOperationThroughTheClient) {
  Uuid ada = NewUser("ada@x.com");
  Client as_ada = UserClient(ada);
  std::vector<std::vector<float>> vecs;
  std::vector<Uuid> ids;
  for (int i = 0; i < 30; ++i) {
    vecs.push_back(gen_.Sample(i % 5, rng_));
    auto type = i % 3 == 0 ? fb::MemoryType::preference : fb::MemoryType::fact;
    auto r = as_ada
                 .UpsertMemory(Memory(
                     ada, "k" + std::to_string(i), vecs.back(),
                     i == 7 ? "likes kayaking on fjords" : "note " + std::to_string(i), type))
                 .get();
    ASSERT_OK(r);
    ids.push_back(Id(r->get()->id()));
  }
  auto got = Must(as_ada.GetMemory(ids[3], true).get());
  ASSERT_EQ(got->embedding()->size(), 384u);
  EXPECT_NEAR(got->embedding()->Get(0), vecs[3][0], 1e-6);
  EXPECT_EQ(Id(Must(svc().GetMemoryByKey(ada, "k3").get())->id()), ids[3]);

  MemoryQuery q;
  q.user = ada;
  q.vector = vecs[12];
  q.k = 5;
  auto hits = Must(as_ada.SearchMemories(q).get());
  ASSERT_EQ(hits.size(), 5u);
  EXPECT_EQ(Id(hits[0].memory->id()), ids[12]);
  EXPECT_NEAR(hits[0].distance, 0.0f, 1e-5);
  EXPECT_NEAR(hits[0].score, 1.0, 1e-5);
  for (size_t i = 1; i < hits.size(); ++i) EXPECT_GE(hits[i].distance, hits[i - 1].distance);
  q.memory_type = fb::MemoryType::preference;
  q.touch = true;
  hits = Must(as_ada.SearchMemories(q).get());
  ASSERT_EQ(hits.size(), 5u);
  for (const auto& h : hits) {
    EXPECT_EQ(h.memory->memory_type(), fb::MemoryType::preference);
    EXPECT_EQ(h.memory->access_count(), 1);
  }
  q = {};
  q.user = ada;
  q.vector = vecs[0];
  q.text = "kayaking fjords";
  q.k = 3;
  hits = Must(as_ada.HybridSearchMemories(q).get());
  ASSERT_EQ(hits.size(), 3u);
  bool found = false;
  for (const auto& h : hits) found |= Id(h.memory->id()) == ids[7];
  EXPECT_TRUE(found) << "the keyword match is fused into the answer";

  q = {};
  q.vector = vecs[20];
  q.k = 10;
  hits = Must(admin().GlobalSearchMemories(q).get());
  ASSERT_EQ(hits.size(), 10u);
  EXPECT_EQ(Id(hits[0].memory->id()), ids[20]);

  EXPECT_EQ(Must(as_ada.PruneMemories(ada, 25).get()), 5u);
  ASSERT_OK(as_ada.DeleteMemory(ids[29]).get());
  EXPECT_CODE(as_ada.GetMemory(ids[29]).get(), kNotFound);
  auto status = Must(svc().GetStatus().get());
  EXPECT_EQ(status.memory_dim, 384u);
  EXPECT_EQ(status.memory_metric, "cosine");
  for (const auto& [name, n] : status.records) {
    if (name == "user_memory") {
      EXPECT_EQ(n, 24u);
    }
  }
}

TEST_F(MemoryWire, AccessRulesAndBadInput) {
  Uuid a = NewUser("a@x.com"), b = NewUser("b@x.com");
  Client as_a = UserClient(a), as_b = UserClient(b);
  auto v = gen_.Sample(1, rng_);
  Uuid id = Id(Must(as_a.UpsertMemory(Memory(a, "k", v, "secret")).get())->id());
  EXPECT_CODE(as_b.GetMemory(id).get(), kNotFound);
  EXPECT_CODE(as_b.UpsertMemory(Memory(a, "k2", v, "x")).get(), kPermissionDenied);
  EXPECT_CODE(admin().UpsertMemory(Memory(a, "k2", v, "x")).get(), kPermissionDenied);
  EXPECT_CODE(as_b.DeleteMemory(id).get(), kNotFound);
  EXPECT_CODE(as_b.PruneMemories(a, 0).get(), kNotFound);
  MemoryQuery q;
  q.user = a;
  q.vector = v;
  EXPECT_CODE(as_b.SearchMemories(q).get(), kNotFound);
  EXPECT_CODE(as_a.GlobalSearchMemories(q).get(), kPermissionDenied);
  EXPECT_CODE(svc().ActingAs(b).SearchMemories(q).get(), kNotFound);
  EXPECT_OK(svc().ActingAs(a).SearchMemories(q).get());

  auto before = BytesOf(svc().GetMemory(id, true).get());
  auto short_v = v;
  short_v.pop_back();
  EXPECT_CODE(as_a.UpsertMemory(Memory(a, "k", short_v, "x")).get(), kInvalidArgument);
  auto nan_v = v;
  nan_v[5] = std::nanf("");
  EXPECT_CODE(as_a.UpsertMemory(Memory(a, "k", nan_v, "x")).get(), kInvalidArgument);
  EXPECT_CODE(as_a.UpsertMemory(Memory(a, "k", v, "x", static_cast<fb::MemoryType>(42))).get(),
              kInvalidArgument);
  EXPECT_EQ(BytesOf(svc().GetMemory(id, true).get()), before) << "refused writes change nothing";
  q.vector = nan_v;
  EXPECT_CODE(as_a.SearchMemories(q).get(), kInvalidArgument);
  q.vector = v;
  q.memory_type = static_cast<fb::MemoryType>(42);
  EXPECT_CODE(as_a.SearchMemories(q).get(), kInvalidArgument);
  q.memory_type.reset();
  q.min_importance = 2;
  EXPECT_CODE(as_a.SearchMemories(q).get(), kInvalidArgument);
  q.min_importance.reset();
  q.k = 100000;
  EXPECT_CODE(as_a.SearchMemories(q).get(), kInvalidArgument);
  q.k = 5;
  EXPECT_CODE(as_a.HybridSearchMemories(q).get(), kInvalidArgument) << "hybrid needs text";
  EXPECT_OK(as_a.SearchMemories(q).get()) << "the connection is still good";
}

TEST_F(MemoryWire, VectorsAndTouchesSurviveKill9) {
  Uuid u = NewUser("k@x.com");
  std::vector<std::vector<float>> vecs;
  std::vector<Uuid> ids;
  for (int i = 0; i < 50; ++i) {
    vecs.push_back(gen_.Sample(i % 7, rng_));
    ids.push_back(
        Id(Must(svc().UpsertMemory(Memory(u, "m" + std::to_string(i), vecs.back(), "n")).get())
               ->id()));
  }
  MemoryQuery q;
  q.user = u;
  q.vector = vecs[9];
  q.k = 1;
  q.touch = true;
  ASSERT_EQ(Must(svc().SearchMemories(q).get())[0].memory->access_count(), 1);
  server_.Kill();
  svc_.reset();
  admin_.reset();
  ASSERT_TRUE(server_.Start(dir_.sub("data"))) << "agentstored did not restart";
  svc_.emplace(server_.Connect(server_.Key("service")));
  for (int i = 0; i < 50; i += 7) {
    auto m = Must(svc().GetMemory(ids[i], true).get());
    for (int j = 0; j < 384; ++j) ASSERT_FLOAT_EQ(m->embedding()->Get(j), vecs[i][j]);
  }
  EXPECT_EQ(Must(svc().GetMemory(ids[9]).get())->access_count(), 1) << "the touch was logged";
  q.touch = false;
  EXPECT_EQ(Id(Must(svc().SearchMemories(q).get())[0].memory->id()), ids[9]);
}

// ---- agentctl memory ----

TEST_F(MemoryWire, Agentctl) {
  Uuid u = NewUser("ctl@x.com");
  std::string key = server_.Key("service");
  auto write_vec = [&](const std::string& name, const std::vector<float>& v) {
    std::ofstream(dir_.sub(name)) << nlohmann::json(v).dump();
    return dir_.sub(name);
  };
  auto v1 = gen_.Sample(3, rng_), v2 = gen_.Sample(4, rng_);
  auto r = Agentctl(server_, key,
                    "memory upsert --user " + u.ToString() +
                        " --key diet --type preference --content "
                        "'eats no meat' --tag food --importance 0.9 --vector " +
                        write_vec("v1.json", v1));
  ASSERT_EQ(r.code, 0) << r.out;
  r = Agentctl(server_, key,
               "memory upsert --user " + u.ToString() + " --key job --content 'a pilot' --vector " +
                   write_vec("v2.json", v2));
  ASSERT_EQ(r.code, 0) << r.out;
  // The query vector from stdin, JSON output.
  auto piped = RunCommand("cat " + dir_.sub("v1.json") + " | " + AGENTCTL_PATH + " --addr " +
                          server_.addr() + " --key " + key + " --json memory search --user " +
                          u.ToString() + " -k 2 --vector -");
  ASSERT_EQ(piped.code, 0) << piped.out;
  auto hits = nlohmann::json::parse(piped.out);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0]["memory"]["memory_key"], "diet");
  EXPECT_LT(hits[0]["distance"].get<double>(), 1e-5);
  r = Agentctl(server_, key,
               "memory search --user " + u.ToString() + " --text pilot -k 1 --vector " +
                   dir_.sub("v1.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("job: a pilot"), std::string::npos) << r.out;
  r = Agentctl(server_, key, "memory global -k 1 --vector " + dir_.sub("v2.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("job"), std::string::npos) << r.out;
  r = Agentctl(server_, key, "memory get --user " + u.ToString() + " --key diet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("eats no meat"), std::string::npos) << r.out;
  // Errors exit non-zero with the server's message.
  r = Agentctl(server_, key,
               "memory upsert --user " + u.ToString() + " --key bad --vector " +
                   write_vec("short.json", {1, 2, 3}));
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.out.find("dimensions"), std::string::npos) << r.out;
  r = Agentctl(server_, key, "memory prune --user " + u.ToString() + " --keep 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("removed 1"), std::string::npos) << r.out;
  EXPECT_CODE(svc().GetMemoryByKey(u, "job").get(), kNotFound) << "the less important one went";
  r = Agentctl(server_, key, "status");
  EXPECT_NE(r.out.find("384-d cosine"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace agentstore::testing
