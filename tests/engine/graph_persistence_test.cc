// Saved HNSW graphs (engine/src/graph_file.h): a clean restart loads the global and
// per-user graphs instead of rebuilding them; a stale, missing, truncated, corrupted or
// foreign saved graph is detected and rebuilt, and the store answers exactly as RocksDB
// holds it; kill -9 while graphs are being saved loses nothing.
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "clustered_vectors.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

namespace fs = std::filesystem;
constexpr uint32_t kDim = 32;

class SavedGraphs : public ::testing::Test {
 protected:
  void SetUp() override { Open(); }
  EngineOptions Options() const {
    EngineOptions o;
    o.data_dir = dir_.sub("data");
    o.durability = storage::Durability::kNone;
    o.shards = 4;
    o.memory.dim = kDim;
    o.memory.exact_threshold = 200;
    o.memory.background = false;  // the test drives the indexer
    o.memory.global_graph = {8, 40, 64, 100};
    o.memory.user_graph = {8, 40, 128, 100};
    o.memory.open_catch_up_ms = catch_up_ms_;
    return o;
  }
  void Open() { engine_ = Must(Engine::Open(Options())); }
  int catch_up_ms_ = 0;  // most tests watch what the indexer is left with
  void Reopen() {
    engine_.reset();
    Open();
  }
  Engine& e() { return *engine_; }
  std::string graphs() const { return dir_.sub("data") + "/graphs"; }

  Uuid NewUser(const std::string& email) {
    fb::UserT u;
    u.email = email;
    return Id(Must(e().CreateUser(Scope::Service(), u))->id());
  }
  void Put(const Uuid& user, const std::string& key, const std::vector<float>& v) {
    fb::UserMemoryT m;
    m.user_id = FbId(user);
    m.memory_key = key;
    m.embedding = v;
    m.memory_value = nlohmann::json{{"content", key}}.dump();
    ASSERT_OK(e().UpsertMemory(Scope::Service(), m));
    truth_[{user, key}] = v;
  }
  void Delete(const Uuid& user, const std::string& key) {
    auto m = Must(e().GetMemoryByKey(Scope::Service(), user, key));
    ASSERT_OK(e().DeleteMemory(Scope::Service(), Id(m->id())));
    truth_.erase({user, key});
  }

  // One big user (on a graph) and a few small ones.
  void Load() {
    big_ = NewUser("big@x.com");
    for (int j = 0; j < 400; ++j) Put(big_, "b" + std::to_string(j), Sample());
    for (int i = 0; i < 4; ++i) {
      Uuid u = NewUser("s" + std::to_string(i) + "@x.com");
      small_.push_back(u);
      for (int j = 0; j < 25; ++j) Put(u, "s" + std::to_string(j), Sample());
    }
    e().DrainMemoryIndex();
  }
  std::vector<float> Sample() {
    uint32_t cluster = gen_.ZipfCluster(rng_);
    return gen_.Sample(cluster, rng_);
  }

  // Every kind of vector answer, as bytes: global top-10 and per-user top-5 for a fixed
  // set of queries.
  std::string Answers() {
    std::string out;
    for (int i = 0; i < 20; ++i) {
      MemoryQuery q;
      q.vector = queries_[i];
      q.k = 10;
      for (const auto& h : Must(e().GlobalSearchMemories(Scope::Service(), q)))
        out += std::string(h.memory.bytes()) + std::to_string(h.distance);
      q.k = 5;
      for (const Uuid& u : {big_, small_[0]}) {
        q.user = u;
        for (const auto& h : Must(e().SearchMemories(Scope::ForUser(u), q)))
          out += std::string(h.memory.bytes()) + std::to_string(h.distance);
      }
    }
    return out;
  }

  // The store equals what was written: each live memory is its own nearest neighbour in
  // global and per-user search, and the global top-k never names a deleted one.
  void ExpectComplete() {
    ASSERT_EQ(e().MemoryStats().memories, truth_.size());
    size_t n = 0;
    for (const auto& [key, v] : truth_) {
      if (n++ % 7) continue;  // a sample keeps the test fast
      MemoryQuery q;
      q.vector = v;
      q.k = 3;
      q.breadth = 200;
      auto hits = Must(e().GlobalSearchMemories(Scope::Service(), q));
      ASSERT_FALSE(hits.empty());
      bool found = false;
      for (const auto& h : hits) {
        Uuid user = Id(h.memory->user_id());
        EXPECT_TRUE(truth_.count({user, h.memory->memory_key()->str()})) << "a deleted memory";
        found |= user == key.first && h.memory->memory_key()->str() == key.second;
      }
      EXPECT_TRUE(found) << "global search misses " << key.second;
      q.user = key.first;
      q.k = 1;
      auto own = Must(e().SearchMemories(Scope::ForUser(key.first), q));
      ASSERT_EQ(own.size(), 1u);
      EXPECT_EQ(own[0].memory->memory_key()->str(), key.second);
    }
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
  ClusteredVectors gen_{kDim, 50, 3};
  std::mt19937_64 rng_{5};
  std::vector<std::vector<float>> queries_ = [] {
    ClusteredVectors g{kDim, 50, 3};
    std::mt19937_64 r{99};
    std::vector<std::vector<float>> q;
    for (int i = 0; i < 20; ++i) {
      uint32_t cluster = g.ZipfCluster(r);
      q.push_back(g.Sample(cluster, r));
    }
    return q;
  }();
  Uuid big_;
  std::vector<Uuid> small_;
  std::map<std::pair<Uuid, std::string>, std::vector<float>> truth_;
};

TEST_F(SavedGraphs, CleanRestartLoadsEveryGraphAndAnswersTheSame) {
  Load();
  ASSERT_EQ(e().MemoryStats().users_on_graph, 1u);
  std::string before = Answers();
  Reopen();
  auto s = e().MemoryStats();
  EXPECT_EQ(s.global_loaded, 500u);
  EXPECT_EQ(s.global_pending, 0u) << "nothing left to insert after a clean stop";
  EXPECT_EQ(s.global_indexed, 500u);
  EXPECT_EQ(s.user_graphs_loaded, 1u);
  EXPECT_EQ(s.users_on_graph, 1u);
  EXPECT_TRUE(Answers() == before) << "the same graphs give the same answers";
  e().DrainMemoryIndex();  // the queued build of the big user's graph is skipped
  EXPECT_TRUE(Answers() == before);
  ExpectComplete();
  // Twice: a loaded graph saves and loads again.
  Reopen();
  EXPECT_EQ(e().MemoryStats().global_loaded, 500u);
  EXPECT_TRUE(Answers() == before);
}

TEST_F(SavedGraphs, StaleGraphsKeepOnlyWhatRocksDbStillHolds) {
  Load();
  ASSERT_OK(e().SaveMemoryGraphs(Scope::Service()));
  EXPECT_CODE(e().SaveMemoryGraphs(Scope::ForUser(big_)), kPermissionDenied);
  fs::copy(graphs(), dir_.sub("old"), fs::copy_options::recursive);
  // Changed vectors, deletions and new memories after the save.
  for (int j = 0; j < 40; ++j) Put(big_, "b" + std::to_string(j), Sample());
  for (int j = 40; j < 60; ++j) Delete(big_, "b" + std::to_string(j));
  for (int j = 0; j < 10; ++j) Delete(small_[1], "s" + std::to_string(j));
  for (int j = 0; j < 30; ++j) Put(small_[2], "n" + std::to_string(j), Sample());
  e().DrainMemoryIndex();
  engine_.reset();
  // The saved graphs are now those of before the changes.
  fs::remove_all(graphs());
  fs::copy(dir_.sub("old"), graphs(), fs::copy_options::recursive);
  Open();
  auto s = e().MemoryStats();
  EXPECT_EQ(s.memories, truth_.size());
  EXPECT_EQ(s.global_loaded, 500u - 40 - 20 - 10) << "changed and deleted ones are dropped";
  EXPECT_EQ(s.global_pending, 40u + 30) << "changed and new ones are inserted again";
  EXPECT_EQ(s.user_graphs_loaded, 1u);
  ExpectComplete();  // complete before the indexer catches up
  e().DrainMemoryIndex();
  ExpectComplete();
  EXPECT_EQ(e().MemoryStats().global_pending, 0u);
}

// With open_catch_up_ms, the open inserts what the saved global graph lacks before it
// returns (on every core): nothing is left pending, and answers are complete.
TEST_F(SavedGraphs, OpenCatchesTheGlobalGraphUpWithWhatItLacks) {
  Load();
  ASSERT_OK(e().SaveMemoryGraphs(Scope::Service()));
  fs::copy(graphs(), dir_.sub("old"), fs::copy_options::recursive);
  for (int j = 0; j < 40; ++j) Put(big_, "b" + std::to_string(j), Sample());
  for (int j = 0; j < 30; ++j) Put(small_[2], "n" + std::to_string(j), Sample());
  e().DrainMemoryIndex();
  engine_.reset();
  fs::remove_all(graphs());
  fs::copy(dir_.sub("old"), graphs(), fs::copy_options::recursive);
  catch_up_ms_ = 60000;
  Open();
  auto s = e().MemoryStats();
  EXPECT_EQ(s.global_loaded, 500u - 40);
  EXPECT_EQ(s.global_caught_up, 40u + 30);
  EXPECT_EQ(s.global_pending, 0u);
  EXPECT_EQ(s.global_indexed, truth_.size());
  ExpectComplete();
  // The caught-up graph is saved at the next stop and loaded whole after it.
  engine_.reset();
  Open();
  EXPECT_EQ(e().MemoryStats().global_loaded, truth_.size());
  EXPECT_EQ(e().MemoryStats().global_caught_up, 0u);
  ExpectComplete();
}

// Each way a saved graph can be damaged: the open notices and rebuilds from RocksDB.
TEST_F(SavedGraphs, DamagedOrForeignGraphsAreRebuilt) {
  Load();
  std::string before = Answers();
  engine_.reset();
  fs::copy(graphs(), dir_.sub("good"), fs::copy_options::recursive);
  std::string user_base = graphs() + "/users/" + big_.ToString();
  // Flips one bit at `at` (a byte offset, or a fraction of the size when below 1).
  auto flip = [](const std::string& path, double where) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    auto size = static_cast<double>(fs::file_size(path));
    auto at = static_cast<std::streamoff>(where < 1 ? size * where : where);
    f.seekg(at);
    char c;
    f.get(c);
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x20));
  };
  const std::vector<std::pair<std::string, std::function<void(const std::string&)>>> damages = {
      {"missing graph", [](const std::string& b) { fs::remove(b + ".hnsw"); }},
      {"missing meta", [](const std::string& b) { fs::remove(b + ".meta"); }},
      {"truncated graph",
       [](const std::string& b) { fs::resize_file(b + ".hnsw", fs::file_size(b + ".hnsw") / 2); }},
      {"truncated meta", [](const std::string& b) { fs::resize_file(b + ".meta", 40); }},
      {"corrupted graph", [&](const std::string& b) { flip(b + ".hnsw", 0.6); }},
      {"corrupted meta", [&](const std::string& b) { flip(b + ".meta", 0.7); }},
      {"another format version", [&](const std::string& b) { flip(b + ".meta", 8); }},
      {"not a graph", [](const std::string& b) { std::ofstream(b + ".meta") << "hello"; }},
  };
  for (const auto& [name, damage] : damages) {
    SCOPED_TRACE(name);
    fs::remove_all(graphs());
    fs::copy(dir_.sub("good"), graphs(), fs::copy_options::recursive);
    damage(graphs() + "/global");
    damage(user_base);
    Open();
    auto s = e().MemoryStats();
    EXPECT_EQ(s.global_loaded, 0u);
    EXPECT_EQ(s.user_graphs_loaded, 0u);
    EXPECT_EQ(s.global_pending, 500u) << "every vector is inserted again";
    ExpectComplete();
    e().DrainMemoryIndex();
    ExpectComplete();
    EXPECT_EQ(e().MemoryStats().users_on_graph, 1u);
    engine_.reset();
  }
  // Graphs saved with other parameters (M) are not used either.
  fs::remove_all(graphs());
  fs::copy(dir_.sub("good"), graphs(), fs::copy_options::recursive);
  EngineOptions o = Options();
  o.memory.global_graph.M = 12;
  o.memory.user_graph.M = 12;
  engine_ = Must(Engine::Open(o));
  EXPECT_EQ(e().MemoryStats().global_loaded, 0u);
  EXPECT_EQ(e().MemoryStats().user_graphs_loaded, 0u);
  ExpectComplete();
  engine_.reset();
  // And the good files still load and answer as before.
  fs::remove_all(graphs());
  fs::copy(dir_.sub("good"), graphs(), fs::copy_options::recursive);
  Open();
  EXPECT_EQ(e().MemoryStats().global_loaded, 500u);
  EXPECT_TRUE(Answers() == before);
}

// A save that fails part-way (here: the .meta cannot be created; in the field, a full
// disk) reports the error and leaves no temporary file behind: a graph's .hnsw.tmp is
// as large as the graph, and on a full disk it kept the space the store needs to resume.
// The previous saved pair stays and still loads.
TEST_F(SavedGraphs, AFailedSaveLeavesNoTemporaryFiles) {
  Load();
  ASSERT_OK(e().SaveMemoryGraphs(Scope::Service()));
  Put(big_, "one more", Sample());
  e().DrainMemoryIndex();
  fs::create_directories(graphs() + "/global.meta.tmp/blocked");
  EXPECT_FALSE(e().SaveMemoryGraphs(Scope::Service()).ok());
  EXPECT_FALSE(fs::exists(graphs() + "/global.hnsw.tmp"));
  fs::remove_all(graphs() + "/global.meta.tmp");
  std::string user_base = graphs() + "/users/" + big_.ToString();
  fs::create_directories(user_base + ".meta.tmp/blocked");
  Put(big_, "and another", Sample());
  e().DrainMemoryIndex();
  EXPECT_FALSE(e().SaveMemoryGraphs(Scope::Service()).ok());
  EXPECT_FALSE(fs::exists(user_base + ".hnsw.tmp"));
  fs::remove_all(user_base + ".meta.tmp");
  Reopen();
  EXPECT_GT(e().MemoryStats().global_loaded, 0u);
  EXPECT_EQ(e().MemoryStats().user_graphs_loaded, 1u);
  ExpectComplete();
}

// A kill -9 while graphs were being saved leaves .hnsw.tmp / .meta.tmp files (as large
// as the graphs); the next start removes them and still loads the previous graphs.
TEST_F(SavedGraphs, TemporaryFilesLeftByACrashAreRemovedAtStart) {
  Load();
  std::string before = Answers();
  engine_.reset();
  std::string user_base = graphs() + "/users/" + big_.ToString();
  for (const std::string& f : {graphs() + "/global.hnsw.tmp", graphs() + "/global.meta.tmp",
                               user_base + ".hnsw.tmp", user_base + ".meta.tmp"})
    std::ofstream(f) << std::string(4096, 'x');
  Open();
  for (const std::string& f : {graphs() + "/global.hnsw.tmp", graphs() + "/global.meta.tmp",
                               user_base + ".hnsw.tmp", user_base + ".meta.tmp"})
    EXPECT_FALSE(fs::exists(f)) << f;
  EXPECT_EQ(e().MemoryStats().global_loaded, 500u);
  EXPECT_EQ(e().MemoryStats().user_graphs_loaded, 1u);
  EXPECT_TRUE(Answers() == before);
}

// A child writes memories and saves graphs in a loop (the background saver too); the
// parent kills it with SIGKILL at several points, often mid-save. Every acknowledged
// memory is there afterwards and findable, whatever state the graph files were left in.
TEST_F(SavedGraphs, Kill9WhileSavingLosesNothing) {
  Load();
  engine_.reset();
  std::mt19937_64 timing{7};
  int next = 0;
  for (int cycle = 0; cycle < 4; ++cycle) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      EngineOptions o = Options();
      o.memory.background = true;
      o.memory.graph_save_interval_ms = 5;
      auto opened = Engine::Open(o);
      if (!opened.ok()) _exit(2);
      Engine& e = **opened;
      ClusteredVectors g{kDim, 50, 3};
      std::mt19937_64 r(1000 + next);
      for (int j = next;; ++j) {
        fb::UserMemoryT m;
        m.user_id = FbId(small_[3]);
        m.memory_key = "k" + std::to_string(j);
        uint32_t cluster = g.ZipfCluster(r);
        m.embedding = g.Sample(cluster, r);
        m.memory_value = "{}";
        if (!e.UpsertMemory(Scope::Service(), m).ok()) _exit(3);
        int32_t acked = j;
        if (write(fds[1], &acked, sizeof acked) != sizeof acked) _exit(4);
        if (j % 16 == 0) (void)e.SaveMemoryGraphs(Scope::Service());
      }
    }
    close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + timing() % 300));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    int32_t acked, last = next - 1;
    while (read(fds[0], &acked, sizeof acked) == sizeof acked) last = acked;
    close(fds[0]);
    // Rebuild the truth from the same generator the child used.
    ClusteredVectors g{kDim, 50, 3};
    std::mt19937_64 r(1000 + next);
    for (int j = next; j <= last; ++j) {
      uint32_t cluster = g.ZipfCluster(r);
      truth_[{small_[3], "k" + std::to_string(j)}] = g.Sample(cluster, r);
    }
    Open();
    // A write can land after its ack was read; anything unacknowledged may be there too.
    auto s = e().MemoryStats();
    ASSERT_GE(s.memories, truth_.size());
    for (int j = last + 1; s.memories > truth_.size(); ++j) {
      auto m = e().GetMemoryByKey(Scope::Service(), small_[3], "k" + std::to_string(j), true);
      ASSERT_TRUE(m.ok()) << "an unexpected extra memory";
      const auto* emb = (*m)->embedding();
      truth_[{small_[3], "k" + std::to_string(j)}] = std::vector<float>(emb->begin(), emb->end());
      last = j;
    }
    ExpectComplete();
    engine_.reset();
    next = last + 1;
  }
  EXPECT_GT(next, 0) << "the children wrote something";
}

}  // namespace
}  // namespace agentstore::testing
