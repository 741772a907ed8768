// usage_bench: usage accounting in process at the scale of targets.md. Loads N users (one
// tenant, a user_agent each) and M usage logs spread over D days through
// Engine::TrackAgentUsage (durability `none` for loading), then times usage summaries
// answered from rollups: one user's month (the seeds' "monthly usage"), one user's most
// expensive models, one tenant's month by model. --keep leaves the data directory for
// agentstored (load_bench --workload usage_summary_month --existing).
//   usage_bench --users 100000 --logs 5000000 --days 90 --threads 2
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "agentstore/common/latency_histogram.h"
#include "bench_data.h"

using namespace agentstore;  // NOLINT
using SteadyClock = std::chrono::steady_clock;

namespace {

double Seconds(SteadyClock::time_point since) {
  return std::chrono::duration<double>(SteadyClock::now() - since).count();
}

uint64_t RssMiB() {
  std::ifstream f("/proc/self/statm");
  uint64_t pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * 4096 / (1 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"usage_bench - usage accounting at scale, in process"};
  int users = 100000, threads = 2, days = 90;
  int64_t logs = 5000000;
  double seconds = 5;
  std::string dir = bench::TempPath("usage");
  bool keep = false;
  app.add_option("--users", users)->capture_default_str();
  app.add_option("--logs", logs)->capture_default_str();
  app.add_option("--days", days, "logs spread over the last D days")->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  app.add_option("--seconds", seconds, "per query benchmark")->capture_default_str();
  app.add_option("--dir", dir, "data directory (emptied first)")->capture_default_str();
  app.add_flag("--keep", keep, "keep the data directory");
  CLI11_PARSE(app, argc, argv);
  std::filesystem::remove_all(dir);

  EngineOptions o;
  o.data_dir = dir;
  o.durability = storage::Durability::kNone;
  auto opened = Engine::Open(o);
  if (!opened.ok()) return fprintf(stderr, "%s\n", opened.status().ToString().c_str()), 1;
  std::unique_ptr<Engine> engine = std::move(opened).value();
  Engine& e = *engine;

  auto t0 = SteadyClock::now();
  fb::TenantT t;
  t.name = "bench";
  t.slug = "bench";
  Uuid tenant = ToUuid(e.CreateTenant(Scope::Admin(), t).value()->id());
  for (auto type : {fb::QuotaType::tokens, fb::QuotaType::api_calls}) {
    fb::QuotaT q;
    q.tenant_id = bench::FbId(tenant);
    q.quota_type = type;
    q.quota_limit = int64_t{1} << 60;
    if (!e.SetQuota(Scope::Admin(), q).ok()) return 1;
  }
  fb::AgentT a;
  a.name = "assistant";
  a.is_public = true;
  Uuid agent = ToUuid(e.CreateAgent(Scope::Admin(), a).value()->id());
  std::vector<Uuid> ids(users);
  {
    std::vector<std::thread> ts;
    for (int th = 0; th < threads; ++th)
      ts.emplace_back([&, th] {
        for (int i = th; i < users; i += threads) {
          fb::UserT u = bench::SampleUser("user" + std::to_string(i) + "@example.com", i);
          u.tenant_id = bench::FbId(tenant);
          ids[i] = ToUuid(e.CreateUser(Scope::Service(), u).value()->id());
          fb::UserAgentT ua;
          ua.user_id = bench::FbId(ids[i]);
          ua.agent_id = bench::FbId(agent);
          if (!e.CreateUserAgent(Scope::Service(), ua).ok()) abort();
        }
      });
    for (auto& th : ts) th.join();
  }
  printf("setup: %d users with a user_agent in %.1f s\n", users, Seconds(t0));

  // Logs: round-robin over users, request_ts uniform over the last `days` days.
  int64_t now = SystemClock::Default()->NowMicros();
  int64_t span = int64_t{days} * 86'400'000'000;
  static const char* kModels[] = {"gpt-4o", "gpt-4o-mini", "claude-sonnet", "llama-70b"};
  static const char* kProviders[] = {"openai", "openai", "anthropic", "meta"};
  std::atomic<int64_t> next{0};
  t0 = SteadyClock::now();
  {
    std::vector<std::thread> ts;
    for (int th = 0; th < threads; ++th)
      ts.emplace_back([&, th] {
        std::mt19937_64 rng(th + 1);
        for (;;) {
          int64_t n = next.fetch_add(1, std::memory_order_relaxed);
          if (n >= logs) break;
          int m = static_cast<int>(rng() % 4);
          fb::UsageLogT l;
          l.user_id = bench::FbId(ids[n % users]);
          l.agent_id = bench::FbId(agent);
          l.agent_type = static_cast<fb::AgentType>(rng() % 5);
          l.model = kModels[m];
          l.provider = kProviders[m];
          l.input_tokens = static_cast<int64_t>(200 + rng() % 2000);
          l.output_tokens = static_cast<int64_t>(50 + rng() % 800);
          l.input_cost = l.input_tokens * 3;
          l.output_cost = l.output_tokens * 12;
          l.success = rng() % 20 != 0;
          l.request_ts = now - static_cast<int64_t>(rng() % static_cast<uint64_t>(span));
          l.response_ts = l.request_ts + static_cast<int64_t>(200'000 + rng() % 2'000'000);
          auto r = e.TrackAgentUsage(Scope::Service(), l);
          if (!r.ok()) {
            fprintf(stderr, "track failed: %s\n", r.status().ToString().c_str());
            abort();
          }
        }
      });
    for (auto& th : ts) th.join();
  }
  double load_s = Seconds(t0);
  auto stats = e.Stats();
  printf(
      "load: %lld track_agent_usage calls (durability none, %d threads) in %.1f s = %.0f/s; "
      "usage_logs=%llu user_rollups=%llu tenant_rollups=%llu rss=%llu MiB\n",
      static_cast<long long>(logs), threads, load_s, logs / load_s,
      static_cast<unsigned long long>(stats.records[static_cast<int>(RecordType::kUsageLog)]),
      static_cast<unsigned long long>(
          stats.records[static_cast<int>(RecordType::kUserUsageRollup)]),
      static_cast<unsigned long long>(
          stats.records[static_cast<int>(RecordType::kTenantUsageRollup)]),
      static_cast<unsigned long long>(RssMiB()));

  auto run = [&](const char* name, auto&& query) {
    LatencyHistogram hist;
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> done{0}, rows{0};
    std::vector<std::thread> ts;
    for (int th = 0; th < threads; ++th)
      ts.emplace_back([&, th] {
        std::mt19937_64 rng(th + 7);
        while (!stop.load(std::memory_order_relaxed)) {
          auto s = SteadyClock::now();
          auto r = query(ids[rng() % ids.size()]);
          if (!r.ok()) abort();
          hist.Record(static_cast<uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - s)
                  .count()));
          rows.fetch_add(r->rows.size(), std::memory_order_relaxed);
          done.fetch_add(1, std::memory_order_relaxed);
        }
      });
    auto start = SteadyClock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& th : ts) th.join();
    double el = Seconds(start);
    printf("%-34s threads=%d ops/s=%10.0f  p50=%6.2fus p99=%6.2fus  rows/op=%.1f\n", name, threads,
           done / el, hist.Quantile(0.5) / 1000.0, hist.Quantile(0.99) / 1000.0,
           double(rows.load()) / double(done.load()));
  };
  run("user month summary (by month)", [&](const Uuid& u) {
    UsageSummaryRequest req;
    req.id = u;
    req.from = now - 30 * 86'400'000'000;
    req.to = now + 1;
    req.bucket = SummaryBucket::kMonth;
    return e.SummarizeUsage(Scope::ForUser(u), req);
  });
  run("user most expensive models (all)", [&](const Uuid& u) {
    UsageSummaryRequest req;
    req.id = u;
    req.bucket = SummaryBucket::kTotal;
    req.group = SummaryGroup::kModel;
    return e.SummarizeUsage(Scope::ForUser(u), req);
  });
  run("tenant month by model", [&](const Uuid&) {
    UsageSummaryRequest req;
    req.owner = SummaryOwner::kTenant;
    req.id = tenant;
    req.from = now - 30 * 86'400'000'000;
    req.to = now + 1;
    req.bucket = SummaryBucket::kMonth;
    req.group = SummaryGroup::kModel;
    return e.SummarizeUsage(Scope::Admin(), req);
  });
  run("user last 20 logs (usage_list)", [&](const Uuid& u) {
    UsageQuery q;
    q.user = u;
    q.limit = 20;
    return e.ListUsage(Scope::ForUser(u), q);
  });
  engine.reset();
  if (keep)
    printf("data kept in %s\n", dir.c_str());
  else
    std::filesystem::remove_all(dir);
  return 0;
}
