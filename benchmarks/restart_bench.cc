// Restart time and memory. Without vectors: loads N records (users, one chat each, the
// rest messages) through the engine, closes it, and times Engine::Open rebuilding every
// table and index from RocksDB. Run: build/benchmarks/restart_bench --records 1000000
//
// With --vectors, in phases (each a fresh process, so RSS is the store's alone):
//   --phase load    records + memories (clustered 384-d vectors, --vector-users users
//                   with log-normal counts, plus --heavy users of --heavy-size memories
//                   searched through their own graph), every graph built, then a timed
//                   clean stop (which saves the graphs);
//   --phase reopen  times Engine::Open, then watches global top-10, per-user top-5
//                   (ordinary and heavy users) QPS in 0.5 s windows until the indexer is
//                   idle, measures the settled QPS and reports when every kind first ran
//                   at >= 90% of it for good; RSS against the raw size; a timed clean stop;
//   --phase crash   opens, upserts --crash-writes more memories (each acknowledged) and
//                   SIGKILLs itself, so the next reopen is a restart after kill -9.
// Run: benchmarks/README.md "Restart with vectors" has the commands.
#include <signal.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "bench_data.h"
#include "clustered_vectors.h"

using namespace agentstore;  // NOLINT
using testing::ClusteredVectors;
using SteadyClock = std::chrono::steady_clock;

static double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

static long StatusKiB(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  size_t n = std::strlen(field);
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(n));
  return 0;
}
static long RssKiB() { return StatusKiB("VmRSS:"); }
// CPU seconds this process has used (the machine is shared: wall time alone depends on
// everyone else's load).
static double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

namespace {

struct VectorOptions {
  int64_t vectors = 0;
  int users = 2000;
  int heavy = 2;
  int heavy_size = 12000;
  uint32_t dim = 384;
  int crash_writes = 2000;
};

fb::UserMemoryT Memory(const Uuid& user, size_t j, std::vector<float> v) {
  fb::UserMemoryT m;
  m.user_id = bench::FbId(user);
  m.memory_key = "m" + std::to_string(j);
  m.memory_value = R"({"content":"memory number )" + std::to_string(j) + R"("})";
  m.importance_score = 0.5;
  m.embedding = std::move(v);
  return m;
}

// The memory owners, kept beside the store so later phases can query them.
void SaveUsers(const std::string& dir, const std::vector<Uuid>& ordinary,
               const std::vector<Uuid>& heavy) {
  std::ofstream f(dir + "/bench-users");
  for (const auto& u : ordinary) f << "o " << u.ToString() << "\n";
  for (const auto& u : heavy) f << "h " << u.ToString() << "\n";
}
void LoadUsers(const std::string& dir, std::vector<Uuid>* ordinary, std::vector<Uuid>* heavy) {
  std::ifstream f(dir + "/bench-users");
  std::string kind, id;
  while (f >> kind >> id) (kind == "o" ? ordinary : heavy)->push_back(*Uuid::Parse(id));
}

int LoadPhase(EngineOptions o, int64_t records, int messages_per_chat, const VectorOptions& v) {
  std::filesystem::remove_all(o.data_dir);
  auto e = Engine::Open(o).value();
  auto t0 = SteadyClock::now();
  if (records > 0)
    bench::Load(*e, static_cast<int>(records / (2 + messages_per_chat)), messages_per_chat);
  double records_s = Seconds(t0);
  ClusteredVectors gen(v.dim, 1000, 42);
  std::mt19937_64 rng(43);
  // Log-normal counts for the ordinary users, scaled to the asked total.
  int64_t ordinary_total = v.vectors - int64_t{v.heavy} * v.heavy_size;
  std::vector<size_t> counts;
  double sum = 0;
  for (int u = 0; u < v.users; ++u)
    sum += static_cast<double>(counts.emplace_back(ClusteredVectors::MemoryCount(rng)));
  std::vector<Uuid> ordinary, heavy;
  auto t1 = SteadyClock::now();
  int64_t written = 0;
  auto add_user = [&](size_t n, std::vector<Uuid>* into) {
    fb::UserT user;
    user.email = "v" + std::to_string(ordinary.size() + heavy.size()) + "@bench.example";
    Uuid id = ToUuid(e->CreateUser(Scope::Service(), user).value()->id());
    into->push_back(id);
    auto profile = gen.MakeUser(rng);
    for (size_t j = 0; j < n; ++j) {
      auto r = e->UpsertMemory(Scope::Service(), Memory(id, j, gen.SampleFor(profile, rng)));
      if (!r.ok()) {
        fprintf(stderr, "upsert: %s\n", r.status().ToString().c_str());
        exit(1);
      }
      ++written;
    }
  };
  for (int u = 0; u < v.users; ++u) {
    size_t n = static_cast<size_t>(counts[u] * static_cast<double>(ordinary_total) / sum + 0.5);
    add_user(std::max<size_t>(n, 1), &ordinary);
  }
  for (int u = 0; u < v.heavy; ++u) add_user(v.heavy_size, &heavy);
  double vectors_s = Seconds(t1);
  SaveUsers(o.data_dir, ordinary, heavy);
  auto t2 = SteadyClock::now();
  e->DrainMemoryIndex();
  double graphs_s = Seconds(t2);
  auto s = e->Stats();
  uint64_t total = 0;
  for (uint64_t n : s.records) total += n;
  auto t3 = SteadyClock::now();
  Status closed = e->Close();
  double stop_s = Seconds(t3);
  auto t4 = SteadyClock::now();
  e.reset();
  double free_s = Seconds(t4);
  printf(
      "load: records=%llu (%lld memories) records %.1fs, memories %.1fs, graphs %.1fs; "
      "first clean stop (saves every graph) %.2fs (%s), then freeing memory %.2fs\n",
      static_cast<unsigned long long>(total), static_cast<long long>(written), records_s, vectors_s,
      graphs_s, stop_s, closed.ToString().c_str(), free_s);
  return 0;
}

int CrashPhase(EngineOptions o, const VectorOptions& v) {
  std::vector<Uuid> ordinary, heavy;
  LoadUsers(o.data_dir, &ordinary, &heavy);
  auto e = Engine::Open(o).value();
  ClusteredVectors gen(v.dim, 1000, 44);
  // New memories on every run (keys and vectors follow the count so far), so each crash
  // leaves vectors the saved graphs lack.
  const uint64_t before = e->MemoryStats().memories;
  std::mt19937_64 rng(45 + before);
  for (int i = 0; i < v.crash_writes; ++i) {
    const Uuid& u = ordinary[rng() % ordinary.size()];
    uint32_t cluster = gen.ZipfCluster(rng);
    auto r = e->UpsertMemory(
        Scope::Service(),
        Memory(u, static_cast<int64_t>(1'000'000 + before + i), gen.Sample(cluster, rng)));
    if (!r.ok()) return fprintf(stderr, "upsert: %s\n", r.status().ToString().c_str()), 1;
  }
  printf("crash: %d memories written and acknowledged, then SIGKILL\n", v.crash_writes);
  fflush(stdout);
  raise(SIGKILL);
  return 1;
}

int ReopenPhase(EngineOptions o, const VectorOptions& v) {
  std::vector<Uuid> ordinary, heavy;
  LoadUsers(o.data_dir, &ordinary, &heavy);
  ClusteredVectors gen(v.dim, 1000, 46);
  std::mt19937_64 rng(47);
  std::vector<std::vector<float>> queries;
  for (int i = 0; i < 4096; ++i) {
    uint32_t cluster = gen.ZipfCluster(rng);
    queries.push_back(gen.Sample(cluster, rng));
  }
  long rss0 = RssKiB();
  auto t0 = SteadyClock::now();
  double cpu0 = CpuSeconds();
  auto e = Engine::Open(o).value();
  double open_s = Seconds(t0), open_cpu = CpuSeconds() - cpu0;
  auto ms0 = e->MemoryStats();
  // One window: QPS of each kind for `seconds` / 3 each.
  size_t qi = 0;
  auto qps = [&](int kind, double seconds) {
    auto start = SteadyClock::now();
    size_t n = 0;
    while (Seconds(start) < seconds) {
      MemoryQuery q;
      q.vector = queries[qi++ % queries.size()];
      if (kind == 0) {
        q.k = 10;
        (void)e->GlobalSearchMemories(Scope::Service(), q);
      } else {
        const auto& who = kind == 1 || heavy.empty() ? ordinary : heavy;
        q.user = who[qi % who.size()];
        q.k = 5;
        (void)e->SearchMemories(Scope::Service(), q);
      }
      ++n;
    }
    return n / Seconds(start);
  };
  struct Window {
    double at, q[3];
  };
  std::vector<Window> windows;
  auto idle = [&] {
    auto s = e->MemoryStats();
    return s.global_pending == 0 && s.users_on_graph >= static_cast<uint64_t>(heavy.size());
  };
  while (!idle() && Seconds(t0) < 600) {
    Window w{Seconds(t0), {qps(0, 0.2), qps(1, 0.15), qps(2, 0.15)}};
    windows.push_back(w);
  }
  double settled_at = Seconds(t0), settled_cpu = CpuSeconds() - cpu0;
  double full[3] = {qps(0, 1.0), qps(1, 1.0), qps(2, 1.0)};
  // Full speed from the first window after which every window is >= 90% on every kind.
  double full_at = windows.empty() ? open_s : settled_at;
  for (size_t i = windows.size(); i-- > 0;) {
    bool ok = true;
    for (int k = 0; k < 3; ++k) ok &= windows[i].q[k] >= 0.9 * full[k];
    if (!ok) break;
    full_at = i == 0 ? open_s : windows[i].at;
  }
  long rss = RssKiB() - rss0;
  // Of it: file pages (the mapped table image, which the kernel can drop and reload)
  // and anonymous memory (heap: indexes, maps, graphs, records written since).
  long rss_file = StatusKiB("RssFile:"), rss_anon = StatusKiB("RssAnon:");
  auto img = e->Image();
  auto s = e->Stats();
  uint64_t total = 0;
  for (uint64_t n : s.records) total += n;
  uint64_t vector_bytes = ms0.memories * e->MemoryStats().dim * sizeof(float);
  double raw_mib = (s.arena_live_bytes + vector_bytes) / 1048576.0;
  // The clean stop is Engine::Close (everything on disk, RocksDB closed: what agentstored
  // waits for before it exits); freeing the in-memory store afterwards is timed apart.
  auto t1 = SteadyClock::now();
  Status closed = e->Close();
  double stop_s = Seconds(t1);
  auto t2 = SteadyClock::now();
  e.reset();
  double free_s = Seconds(t2);
  printf(
      "reopen: records=%llu memories=%llu open %.2fs (%.2fs cpu); graphs reused: global %llu "
      "of %llu (%llu more inserted at open), users %llu; indexer idle at %.2fs (%.2fs cpu, queries "
      "included); every query kind "
      "at >= 90%% of full speed from "
      "%.2fs (full: global top-10 %.0f/s, ordinary user top-5 %.0f/s, heavy user top-5 "
      "%.0f/s, one thread); rss %.0f MiB for raw %.0f MiB (arena %.0f + vectors %.0f) = "
      "%.2fx (anon %.0f MiB, file %.0f MiB); table image: %s; clean stop %.2fs (%s), then "
      "freeing memory %.2fs\n",
      static_cast<unsigned long long>(total), static_cast<unsigned long long>(ms0.memories), open_s,
      open_cpu, static_cast<unsigned long long>(ms0.global_loaded),
      static_cast<unsigned long long>(ms0.memories),
      static_cast<unsigned long long>(ms0.global_caught_up),
      static_cast<unsigned long long>(ms0.user_graphs_loaded), settled_at, settled_cpu, full_at,
      full[0], full[1], full[2], rss / 1024.0, raw_mib, s.arena_live_bytes / 1048576.0,
      vector_bytes / 1048576.0, rss / 1024.0 / raw_mib, rss_anon / 1024.0, rss_file / 1024.0,
      img.used ? ("used, " + std::to_string(img.mapped_bytes >> 20) + " MiB mapped, " +
                  std::to_string(img.changed_keys) + " keys read from RocksDB")
                     .c_str()
               : ("not used: " +
                  (img.rebuilt_because.empty() ? std::string("none") : img.rebuilt_because))
                     .c_str(),
      stop_s, closed.ToString().c_str(), free_s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"restart_bench"};
  int64_t records = 1'000'000;
  int messages_per_chat = 8;
  std::string dir = bench::TempPath("restart");
  std::string phase;
  VectorOptions v;
  app.add_option("--records", records, "records to load")->capture_default_str();
  app.add_option("--messages-per-chat", messages_per_chat)->capture_default_str();
  app.add_option("--dir", dir)->capture_default_str();
  app.add_option("--vectors", v.vectors, "memories with vectors (phases)")->capture_default_str();
  app.add_option("--vector-users", v.users, "ordinary memory owners")->capture_default_str();
  app.add_option("--heavy", v.heavy, "heavy users (own graph)")->capture_default_str();
  app.add_option("--heavy-size", v.heavy_size)->capture_default_str();
  app.add_option("--dim", v.dim)->capture_default_str();
  app.add_option("--crash-writes", v.crash_writes)->capture_default_str();
  app.add_option("--phase", phase, "load | reopen | crash (with --vectors)")
      ->check(CLI::IsMember({"load", "reopen", "crash"}));
  CLI11_PARSE(app, argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);

  EngineOptions o;
  o.data_dir = dir;
  o.durability = storage::Durability::kNone;
  if (!phase.empty()) {
    o.memory.dim = v.dim;
    if (phase == "load") return LoadPhase(o, records, messages_per_chat, v);
    if (phase == "crash") return CrashPhase(o, v);
    return ReopenPhase(o, v);
  }

  int users = static_cast<int>(records / (2 + messages_per_chat));
  auto t0 = SteadyClock::now();
  {
    auto e = Engine::Open(o);
    if (!e.ok()) return fprintf(stderr, "%s\n", e.status().ToString().c_str()), 1;
    bench::Load(**e, users, messages_per_chat);
  }
  double load = Seconds(t0);
  long rss_before = RssKiB();
  auto t1 = SteadyClock::now();
  auto e = Engine::Open(o);
  double open = Seconds(t1);
  if (!e.ok()) return fprintf(stderr, "%s\n", e.status().ToString().c_str()), 1;
  auto s = (*e)->Stats();
  uint64_t total = 0;
  for (uint64_t n : s.records) total += n;
  printf(
      "records=%llu users=%d load=%.1fs (%.0f records/s, durability none) reopen=%.2fs "
      "arena=%.1f MiB rss_growth=%.1f MiB\n",
      static_cast<unsigned long long>(total), users, load, total / load, open,
      s.arena_live_bytes / 1048576.0, (RssKiB() - rss_before) / 1024.0);
  return 0;
}
