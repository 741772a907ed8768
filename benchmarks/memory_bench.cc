// memory_bench: user_memory search, in process and through the server, on clustered
// sentence-embedding-like vectors (tests/clustered_vectors.h, as targets.md describes):
//   - per-user top-5 for ordinary users (~55 memories, exact) and heavy users (~7k, HNSW):
//     QPS, latency and recall@5 against brute force;
//   - global top-10 (one HNSW graph): QPS and recall@10, beside a bare hnswlib graph built
//     with the same M / ef_construction and searched with the same ef over the same
//     vectors (through index::HnswGraph, which is searchKnn plus a copy of the k results:
//     hnswlib's headers may be included by one translation unit of the program only);
//   - restart: reopen the store, time to serving and to a complete global graph;
//   - --threshold-sweep: exact scan vs HNSW latency by user size (how exact_threshold was
//     chosen).
// Run: benchmarks/run_memory_bench.sh (starts agentstored for the --addr part).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "agentstore/client.h"
#include "agentstore/engine/engine.h"
#include "agentstore/index/hnsw_graph.h"
#include "agentstore/index/space.h"
#include "clustered_vectors.h"

using namespace agentstore;  // NOLINT
using SteadyClock = std::chrono::steady_clock;
using testing::BruteForceTopK;
using testing::ClusteredVectors;

namespace {

double Seconds(SteadyClock::time_point a) {
  return std::chrono::duration<double>(SteadyClock::now() - a).count();
}

struct UserData {
  Uuid id;
  ClusteredVectors::User profile;
  std::vector<std::vector<float>> vecs;
  std::vector<Uuid> ids;
};

struct World {
  std::vector<UserData> users;  // ordinary users first, then the heavy ones
  size_t heavy_from = 0;
  std::vector<std::vector<float>> all;  // every memory vector, in load order
  std::vector<Uuid> all_ids;
};

std::unique_ptr<fb::Uuid> FbId(const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); }

fb::UserMemoryT Memory(const Uuid& user, size_t j, const std::vector<float>& v) {
  fb::UserMemoryT m;
  m.user_id = FbId(user);
  m.memory_key = "m" + std::to_string(j);
  m.memory_value = R"({"content":"memory number )" + std::to_string(j) + R"("})";
  m.importance_score = 0.5;
  m.embedding = v;
  return m;
}

// The latency percentiles of a sample (microseconds).
std::string Percentiles(std::vector<double> us) {
  if (us.empty()) return "-";
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[std::min(us.size() - 1, size_t(q * us.size()))]; };
  char buf[128];
  snprintf(buf, sizeof buf, "p50 %.1f us, p99 %.1f us, max %.1f us", at(0.5), at(0.99), us.back());
  return buf;
}

// Runs `fn(thread, i)` for `seconds` on `threads` threads; returns ops/s and the latencies.
template <typename Fn>
std::pair<double, std::vector<double>> Drive(int threads, double seconds, Fn fn) {
  std::atomic<uint64_t> ops{0};
  std::vector<std::vector<double>> lat(threads);
  auto start = SteadyClock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      uint64_t i = 0;
      while (Seconds(start) < seconds) {
        auto a = SteadyClock::now();
        fn(t, i++);
        lat[t].push_back(Seconds(a) * 1e6);
        ops.fetch_add(1, std::memory_order_relaxed);
      }
    });
  for (auto& th : ts) th.join();
  std::vector<double> all;
  for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  return {ops.load() / Seconds(start), all};
}

// The ids of a search's hits; a failed search ends the benchmark.
std::vector<Uuid> IdsOf(const Result<std::vector<MemoryHit>>& r) {
  if (!r.ok()) {
    fprintf(stderr, "search: %s\n", r.status().ToString().c_str());
    exit(1);
  }
  std::vector<Uuid> ids;
  for (const auto& h : *r) ids.push_back(ToUuid(h.memory->id()));
  return ids;
}

double Recall(const std::vector<Uuid>& got, const std::vector<size_t>& truth,
              const std::vector<Uuid>& ids) {
  std::set<Uuid> g(got.begin(), got.end());
  double hit = 0;
  for (size_t i : truth) hit += g.count(ids[i]);
  return truth.empty() ? 1.0 : hit / truth.size();
}

void ThresholdSweep(uint32_t dim, size_t ef) {
  auto space = index::Space::Make(dim, index::Metric::kCosine).value();
  ClusteredVectors gen(dim, 1000, 7);
  std::mt19937_64 rng(8);
  printf("\n## Exact scan vs HNSW by user size (%u-d, k=5, M=16 efc=200 ef=%zu, 1 thread)\n\n", dim,
         ef);
  printf(
      "| memories | exact scan | HNSW search | HNSW recall@5 | graph build "
      "|\n|---|---|---|---|---|\n");
  for (size_t n : {100, 500, 1000, 2000, 3000, 5000, 8000}) {
    auto profile = gen.MakeUser(rng);
    std::vector<std::vector<float>> data;
    std::vector<float> flat;
    for (size_t i = 0; i < n; ++i) {
      data.push_back(gen.SampleFor(profile, rng));
      flat.insert(flat.end(), data.back().begin(), data.back().end());
    }
    auto b = SteadyClock::now();
    index::HnswGraph g(space, {16, 200, ef, 100}, n);
    for (size_t i = 0; i < n; ++i) (void)g.Add(i, data[i].data());
    double build = Seconds(b);
    std::vector<std::vector<float>> qs;
    for (int i = 0; i < 300; ++i) qs.push_back(gen.SampleFor(profile, rng));
    std::vector<index::Hit> out;
    auto t0 = SteadyClock::now();
    for (int rep = 0; rep < 5; ++rep)
      for (auto& q : qs)
        index::ExactTopK(
            *space, q.data(), flat.data(), n, 5, [](size_t) { return true; }, &out);
    double exact_us = Seconds(t0) * 1e6 / (5 * qs.size());
    double recall = 0;
    auto t1 = SteadyClock::now();
    for (int rep = 0; rep < 5; ++rep)
      for (auto& q : qs) out = g.Search(q.data(), 5);
    double hnsw_us = Seconds(t1) * 1e6 / (5 * qs.size());
    for (auto& q : qs) {
      auto truth = BruteForceTopK(data, q, 5);
      std::set<uint64_t> got;
      for (auto& h : g.Search(q.data(), 5)) got.insert(h.label);
      for (size_t i : truth) recall += got.count(i);
    }
    printf("| %zu | %.1f us | %.1f us | %.3f | %.2f s |\n", n, exact_us, hnsw_us,
           recall / (5 * qs.size()), build);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"memory_bench - user_memory search benchmarks"};
  int users = 600, heavy = 2, heavy_size = 7000, threads = 2;
  double seconds = 3;
  uint32_t dim = 384, ef = 200;
  std::string addr, key, dir = "/tmp/agentstore-memory-bench";
  bool sweep = false;
  uint32_t exact_threshold = 0;
  size_t sweep_ef = 64;
  app.add_option("--users", users, "ordinary users (log-normal memories, median ~55)")
      ->capture_default_str();
  app.add_option("--heavy", heavy, "heavy users")->capture_default_str();
  app.add_option("--heavy-size", heavy_size, "memories per heavy user")->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--seconds", seconds, "per measurement")->capture_default_str();
  app.add_option("--global-ef", ef, "global search breadth (ours and raw hnswlib)")
      ->capture_default_str();
  app.add_option("--dir", dir, "data directory (in-process engine)")->capture_default_str();
  app.add_option("--addr", addr, "also run through a server at host:port");
  app.add_option("--key", key, "service key for --addr");
  app.add_option("--exact-threshold", exact_threshold,
                 "in-process engine's exact_threshold (0: the default; the server keeps its own)");
  app.add_flag("--threshold-sweep", sweep, "only measure exact scan vs HNSW by user size");
  app.add_option("--sweep-ef", sweep_ef, "HNSW search breadth in the sweep")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (sweep) {
    ThresholdSweep(dim, sweep_ef);
    return 0;
  }

  // ---- the data ----
  ClusteredVectors gen(dim, 1000, 42);
  std::mt19937_64 rng(43);
  World w;
  for (int u = 0; u < users + heavy; ++u) {
    UserData ud;
    ud.profile = gen.MakeUser(rng);
    size_t n = u < users ? ClusteredVectors::MemoryCount(rng) : size_t(heavy_size);
    for (size_t j = 0; j < n; ++j) ud.vecs.push_back(gen.SampleFor(ud.profile, rng));
    w.users.push_back(std::move(ud));
  }
  w.heavy_from = users;

  std::filesystem::remove_all(dir);
  EngineOptions o;
  o.data_dir = dir;
  o.durability = storage::Durability::kNone;
  o.memory.dim = dim;
  o.memory.global_graph.ef_search = ef;
  if (exact_threshold) o.memory.exact_threshold = exact_threshold;
  auto engine = Engine::Open(o).value();
  auto t0 = SteadyClock::now();
  size_t total = 0;
  for (auto& u : w.users) {
    fb::UserT user;
    user.email = "m" + std::to_string(total) + "@bench.example";
    u.id = ToUuid(engine->CreateUser(Scope::Service(), user).value()->id());
    for (size_t j = 0; j < u.vecs.size(); ++j) {
      auto r = engine->UpsertMemory(Scope::Service(), Memory(u.id, j, u.vecs[j]));
      if (!r.ok()) {
        fprintf(stderr, "upsert: %s\n", r.status().ToString().c_str());
        return 1;
      }
      u.ids.push_back(ToUuid(r.value()->id()));
      w.all.push_back(u.vecs[j]);
      w.all_ids.push_back(u.ids.back());
      ++total;
    }
  }
  double load_s = Seconds(t0);
  auto t1 = SteadyClock::now();
  engine->DrainMemoryIndex();
  double index_s = Seconds(t1);
  printf("# memory_bench: %d users (+%d of %d), %zu memories, %u-d cosine, %d threads\n\n", users,
         heavy, heavy_size, total, dim, threads);
  printf(
      "load (upserts, durability none): %.1f s = %.0f/s; graphs (global + heavy users): %.1f s\n\n",
      load_s, total / load_s, index_s);

  // ---- in process ----
  auto per_user = [&](bool heavy_users, auto search) {
    size_t lo = heavy_users ? w.heavy_from : 0, hi = heavy_users ? w.users.size() : w.heavy_from;
    // Recall on 200 fixed queries; QPS on a stream of fresh ones.
    double recall = 0;
    for (int i = 0; i < 200; ++i) {
      auto& u = w.users[lo + i % (hi - lo)];
      auto q = gen.SampleFor(u.profile, rng);
      recall += Recall(search(0, u.id, q), BruteForceTopK(u.vecs, q, 5), u.ids);
    }
    std::vector<std::vector<float>> qs;
    std::vector<size_t> who;
    for (int i = 0; i < 4096; ++i) {
      who.push_back(lo + rng() % (hi - lo));
      qs.push_back(gen.SampleFor(w.users[who.back()].profile, rng));
    }
    auto [qps, lat] = Drive(threads, seconds, [&](int t, uint64_t i) {
      size_t k = (i * 7919 + t * 104729) % qs.size();
      (void)search(t, w.users[who[k]].id, qs[k]);
    });
    return std::tuple(qps, lat, recall / 200);
  };
  auto top5 = [](const Uuid& user, const std::vector<float>& q) {
    MemoryQuery mq;
    mq.user = user;
    mq.vector = q;
    mq.k = 5;
    return mq;
  };
  auto engine_search = [&](int, const Uuid& user, const std::vector<float>& q) {
    return IdsOf(engine->SearchMemories(Scope::ForUser(user), top5(user, q)));
  };
  const char* heavy_label =
      size_t(heavy_size) > o.memory.exact_threshold ? "heavy (HNSW)" : "heavy (exact)";
  printf("| where | search | users | QPS | latency | recall |\n|---|---|---|---|---|---|\n");
  for (bool h : {false, true}) {
    if (h && heavy == 0) continue;
    auto [qps, lat, recall] = per_user(h, engine_search);
    printf("| in process | per-user top-5 | %s | %.0f | %s | %.3f |\n",
           h ? heavy_label : "ordinary (median 55, exact)", qps, Percentiles(lat).c_str(), recall);
  }
  // Global: ours vs raw hnswlib with the same parameters over the same vectors.
  std::vector<std::vector<float>> gq;
  for (int i = 0; i < 300; ++i) gq.push_back(gen.SampleFor(gen.MakeUser(rng), rng));
  std::vector<std::vector<size_t>> gtruth;
  for (auto& q : gq) gtruth.push_back(BruteForceTopK(w.all, q, 10));
  auto our_global = [&](const std::vector<float>& q) {
    MemoryQuery mq;
    mq.vector = q;
    mq.k = 10;
    std::vector<Uuid> ids;
    auto r = engine->GlobalSearchMemories(Scope::Service(), mq);
    if (!r.ok()) {
      fprintf(stderr, "global search: %s\n", r.status().ToString().c_str());
      exit(1);
    }
    for (auto& h : *r) ids.push_back(ToUuid(h.memory->id()));
    return ids;
  };
  double our_recall = 0;
  for (size_t i = 0; i < gq.size(); ++i)
    our_recall += Recall(our_global(gq[i]), gtruth[i], w.all_ids);
  auto [our_qps, our_lat] =
      Drive(1, seconds, [&](int, uint64_t i) { (void)our_global(gq[i % gq.size()]); });
  printf("| in process | global top-10, ef %u | all | %.0f | %s | %.3f |\n", ef, our_qps,
         Percentiles(our_lat).c_str(), our_recall / gq.size());
  {
    auto space = index::Space::Make(dim, index::Metric::kCosine).value();
    auto b = SteadyClock::now();
    index::HnswGraph raw(space, {16, 200, ef, 100}, w.all.size());
    for (size_t i = 0; i < w.all.size(); ++i) (void)raw.Add(i, w.all[i].data());
    double build = Seconds(b);
    double recall = 0;
    for (size_t i = 0; i < gq.size(); ++i) {
      std::set<size_t> got;
      for (auto& h : raw.Search(gq[i].data(), 10)) got.insert(h.label);
      for (size_t t : gtruth[i]) recall += got.count(t);
    }
    auto [raw_qps, raw_lat] =
        Drive(1, seconds, [&](int, uint64_t i) { (void)raw.Search(gq[i % gq.size()].data(), 10); });
    printf("| bare hnswlib 0.6.2 graph | global top-10, ef %u | all | %.0f | %s | %.3f |\n", ef,
           raw_qps, Percentiles(raw_lat).c_str(), recall / (10 * gq.size()));
    printf("\nglobal: agentstore at %.0f%% of the bare graph's QPS (raw build %.1f s, 1 thread)\n",
           100 * our_qps / raw_qps, build);
  }

  // ---- restart ----
  engine.reset();
  auto r0 = SteadyClock::now();
  engine = Engine::Open(o).value();
  double open_s = Seconds(r0);
  engine->DrainMemoryIndex();
  double graphs_s = Seconds(r0);
  printf(
      "\nrestart: %zu memories back and serving in %.2f s (exact for pending vectors); "
      "every graph rebuilt after %.1f s\n",
      total, open_s, graphs_s);

  // ---- through the server ----
  if (!addr.empty()) {
    ClientOptions co;
    co.host = addr.substr(0, addr.rfind(':'));
    co.port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
    co.key = key;
    auto client = Client::Connect(co).value();
    // Load the same users through the client, pipelined.
    std::vector<Pending<Row<fb::UserMemory>>> inflight;
    for (auto& u : w.users) {
      fb::UserT user;
      user.email = "srv" + u.id.ToString() + "@bench.example";
      u.id = ToUuid(client.CreateUser(user).get().value()->id());
      u.ids.clear();
      for (size_t j = 0; j < u.vecs.size(); ++j)
        inflight.push_back(client.UpsertMemory(Memory(u.id, j, u.vecs[j])));
      for (auto& p : inflight) u.ids.push_back(ToUuid(p.get().value()->id()));
      inflight.clear();
    }
    // Wait for the server's background indexer to finish the heavy users' graphs.
    for (;;) {
      auto st = client.GetStatus().get().value();
      // Heavy users get graphs only past the threshold (assumed the same as the
      // in-process engine's: pass the server the same --memory-exact-threshold).
      bool graphs_needed = size_t(heavy_size) > o.memory.exact_threshold;
      if (st.memory_global_pending == 0 &&
          (!graphs_needed || st.memory_users_on_graph >= size_t(heavy)))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::vector<Client> conns;
    for (int t = 0; t < threads; ++t) conns.push_back(Client::Connect(co).value());
    auto wire_search = [&](int t, const Uuid& user, const std::vector<float>& q) {
      return IdsOf(conns[t].SearchMemories(top5(user, q)).get());
    };
    for (bool h : {false, true}) {
      if (h && heavy == 0) continue;
      auto [qps, lat, recall] = per_user(h, wire_search);
      printf("| server, %d conns x 1 | per-user top-5 | %s | %.0f | %s | %.3f |\n", threads,
             h ? heavy_label : "ordinary (median 55, exact)", qps, Percentiles(lat).c_str(),
             recall);
    }
    auto [gqps, glat] = Drive(1, seconds, [&](int, uint64_t i) {
      MemoryQuery mq;
      mq.vector = gq[i % gq.size()];
      mq.k = 10;
      (void)conns[0].GlobalSearchMemories(mq).get().value();
    });
    printf("| server, 1 conn | global top-10, ef %u | all | %.0f | %s | - |\n", ef, gqps,
           Percentiles(glat).c_str());
  }
  return 0;
}
