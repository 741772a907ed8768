// Restart time: loads N records (users, one chat each, the rest messages) through the
// engine, closes it, and times Engine::Open rebuilding every table and index from
// RocksDB. Run: build/benchmarks/restart_bench --records 1000000
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>

#include "bench_data.h"

using namespace agentstore;  // NOLINT

static double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

static long RssKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

int main(int argc, char** argv) {
  CLI::App app{"restart_bench"};
  int64_t records = 1'000'000;
  int messages_per_chat = 8;
  std::string dir = bench::TempPath("restart");
  app.add_option("--records", records, "records to load")->capture_default_str();
  app.add_option("--messages-per-chat", messages_per_chat)->capture_default_str();
  app.add_option("--dir", dir)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  int users = static_cast<int>(records / (2 + messages_per_chat));
  EngineOptions o;
  o.data_dir = dir;
  o.durability = storage::Durability::kNone;
  auto t0 = std::chrono::steady_clock::now();
  {
    auto e = Engine::Open(o);
    if (!e.ok()) return fprintf(stderr, "%s\n", e.status().ToString().c_str()), 1;
    bench::Load(**e, users, messages_per_chat);
  }
  double load = Seconds(t0);
  long rss_before = RssKiB();
  auto t1 = std::chrono::steady_clock::now();
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
