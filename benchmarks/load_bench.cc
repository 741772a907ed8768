// load_bench: a network load generator over the real client library. Loads a dataset
// through the server, then drives one workload from many connections, each keeping
// `pipeline` requests in flight (closed loop), and reports throughput and latency
// percentiles from a histogram that costs a few atomic adds per request.
//   load_bench --addr 127.0.0.1:7420 --key ask_... --workload get_user --connections 50 --pipeline
//   16
// benchmarks/run_net_bench.sh starts a server in a temp dir and runs the standard set.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "agentstore/client.h"
#include "agentstore/common/latency_histogram.h"
#include "sample_records.h"

using namespace agentstore;  // NOLINT
using Clock = std::chrono::steady_clock;

namespace {

std::unique_ptr<fb::Uuid> FbId(const Uuid& u) { return std::make_unique<fb::Uuid>(ToFb(u)); }

struct Dataset {
  std::vector<Uuid> users, chats;
  Uuid agent;  // usage workloads: every user has a user_agent for it
};

// Waits for every pending call, exiting on the first failure.
template <typename T>
void AwaitAll(std::vector<Pending<T>>& calls, const char* what) {
  for (auto& p : calls) {
    auto r = p.get();
    if (!r.ok()) {
      fprintf(stderr, "%s failed: %s\n", what, r.status().ToString().c_str());
      exit(1);
    }
  }
  calls.clear();
}

// For track_agent_usage and limit_check: a tenant holding every user, with tokens and
// api_calls quotas; an agent in every user's list; limits (global per-minute, tenant
// per-hour, per-user per-minute) high enough to allow every request, so each check walks
// and consumes three limits.
void SetUpUsage(Client& c, Dataset& d, const Uuid& tenant) {
  std::string tag = std::to_string(Clock::now().time_since_epoch().count());
  fb::AgentT a;
  a.name = "bench agent " + tag;
  a.is_public = true;
  a.model = "gpt-4o";
  d.agent = ToUuid(c.CreateAgent(a).get().value()->id());
  std::vector<Pending<Row<fb::UserAgent>>> uas;
  for (const Uuid& u : d.users) {
    fb::UserAgentT ua;
    ua.user_id = FbId(u);
    ua.agent_id = FbId(d.agent);
    uas.push_back(c.CreateUserAgent(ua));
    if (uas.size() >= 256) AwaitAll(uas, "user_agent create");
  }
  AwaitAll(uas, "user_agent create");
  for (auto type : {fb::QuotaType::tokens, fb::QuotaType::api_calls}) {
    fb::QuotaT q;
    q.tenant_id = FbId(tenant);
    q.quota_type = type;
    q.quota_limit = int64_t{1} << 60;
    if (!c.SetQuota(q).get().ok()) exit(1);
  }
  std::vector<Pending<Row<fb::RateLimitConfig>>> limits;
  auto limit = [&](fb::LimitScope scope, std::optional<Uuid> id, fb::LimitType type) {
    fb::RateLimitConfigT cfg;
    cfg.scope = scope;
    if (id) cfg.scope_id = FbId(*id);
    cfg.limit_type = type;
    cfg.limit_value = int64_t{1} << 50;
    limits.push_back(c.PutLimitConfig(cfg));
    if (limits.size() >= 256) AwaitAll(limits, "limit_config_put");
  };
  limit(fb::LimitScope::global, std::nullopt, fb::LimitType::requests_per_minute);
  limit(fb::LimitScope::tenant, tenant, fb::LimitType::requests_per_hour);
  for (const Uuid& u : d.users) limit(fb::LimitScope::user, u, fb::LimitType::requests_per_minute);
  AwaitAll(limits, "limit_config_put");
}

Dataset Load(Client& c, int users, int messages, bool usage) {
  Dataset d;
  std::optional<Uuid> tenant;
  if (usage) {
    fb::TenantT t;
    t.name = "bench";
    t.slug = "bench-" + std::to_string(Clock::now().time_since_epoch().count());
    tenant = ToUuid(c.CreateTenant(t).get().value()->id());
  }
  std::vector<Pending<Row<fb::User>>> made;
  for (int i = 0; i < users; ++i) {
    fb::UserT u = bench::SampleUser("bench" + std::to_string(i) + "-" +
                                        std::to_string(Clock::now().time_since_epoch().count()) +
                                        "@example.com",
                                    i);
    if (tenant) u.tenant_id = FbId(*tenant);
    made.push_back(c.CreateUser(u));
  }
  for (auto& p : made) {
    auto r = p.get();
    if (!r.ok()) {
      fprintf(stderr, "load failed: %s\n", r.status().ToString().c_str());
      exit(1);
    }
    d.users.push_back(ToUuid(r->get()->id()));
  }
  for (const Uuid& u : d.users) {
    fb::ChatT ch;
    ch.user_id = FbId(u);
    ch.title = "Planning the launch";
    d.chats.push_back(ToUuid(c.CreateChat(ch).get().value()->id()));
  }
  std::vector<Pending<AppendResult>> appends;
  for (int m = 0; m < messages; ++m)
    for (const Uuid& chat : d.chats) {
      appends.push_back(c.AppendMessage(bench::SampleMessage(chat, m)));
      if (appends.size() >= 256) {
        for (auto& a : appends) a.get();
        appends.clear();
      }
    }
  for (auto& a : appends) a.get();
  if (tenant) SetUpUsage(c, d, *tenant);
  return d;
}

// Every existing user (for a store loaded beforehand, e.g. by usage_bench).
Dataset ExistingUsers(Client& c) {
  Dataset d;
  PageRequest p;
  p.limit = 1000;
  for (;;) {
    auto page = c.ListUsers(p).get();
    if (!page.ok()) {
      fprintf(stderr, "user_list failed: %s\n", page.status().ToString().c_str());
      exit(1);
    }
    for (const auto& u : page->rows) d.users.push_back(ToUuid(u->id()));
    if (page->next_cursor.empty()) break;
    p.cursor = page->next_cursor;
  }
  return d;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Driver {
  Client client;
  const Dataset* data;
  std::string workload;
  LatencyHistogram* hist;
  std::atomic<uint64_t>* ok;
  std::atomic<uint64_t>* errors;
  std::atomic<bool>* stop;
  std::atomic<int>* outstanding;
  std::mt19937_64 rng;

  // Issues one request; its completion records latency and issues the next.
  void Issue() {
    if (stop->load(std::memory_order_relaxed)) {
      outstanding->fetch_sub(1);
      return;
    }
    auto start = Clock::now();
    size_t k = rng() % data->users.size();
    auto done = [this, start](bool success) {
      hist->Record(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
      (success ? ok : errors)->fetch_add(1, std::memory_order_relaxed);
      Issue();
    };
    if (workload == "get_user") {
      client.GetUser(data->users[k]).then([done](Result<Row<fb::User>> r) { done(r.ok()); });
    } else if (workload == "append_message") {
      client.AppendMessage(bench::SampleMessage(data->chats[k], static_cast<int>(k)))
          .then([done](Result<AppendResult> r) { done(r.ok()); });
    } else if (workload == "last_20_messages") {
      MessagePageRequest p;
      p.limit = 20;
      client.ListMessages(data->chats[k], p).then([done](Result<Page<fb::Message>> r) {
        done(r.ok() && r->rows.size() == 20);
      });
    } else if (workload == "track_agent_usage") {
      static const char* kModels[] = {"gpt-4o", "gpt-4o-mini", "claude-sonnet"};
      static const char* kProviders[] = {"openai", "openai", "anthropic"};
      int m = static_cast<int>(rng() % 3);
      fb::UsageLogT l;
      l.user_id = FbId(data->users[k]);
      l.agent_id = FbId(data->agent);
      l.model = kModels[m];
      l.provider = kProviders[m];
      l.input_tokens = static_cast<int64_t>(200 + rng() % 2000);
      l.output_tokens = static_cast<int64_t>(50 + rng() % 800);
      l.input_cost = l.input_tokens * 3;
      l.output_cost = l.output_tokens * 12;
      l.success = rng() % 20 != 0;
      l.response_ts = NowMicros();
      l.request_ts = l.response_ts - static_cast<int64_t>(200'000 + rng() % 2'000'000);
      client.TrackAgentUsage(l).then([done](Result<TrackResult> r) { done(r.ok()); });
    } else if (workload == "limit_check") {
      LimitCheckRequest req;
      req.user = data->users[k];
      client.CheckLimits(req).then(
          [done](Result<LimitDecision> r) { done(r.ok() && r->allowed && r->remaining > 0); });
    } else if (workload == "usage_summary_month") {
      // This month of one user, by month (the seeds' "monthly usage").
      UsageSummaryRequest req;
      req.id = data->users[k];
      int64_t now = NowMicros();
      req.from = now - 30 * 86'400'000'000;
      req.to = now;
      req.bucket = SummaryBucket::kMonth;
      client.SummarizeUsage(req).then([done](Result<UsageSummary> r) { done(r.ok()); });
    } else {
      fprintf(stderr, "unknown workload %s\n", workload.c_str());
      exit(2);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"load_bench - agentstore network load generator"};
  std::string addr = "127.0.0.1:7420", key, workload = "get_user", json_out;
  int connections = 50, pipeline = 1, users = 1000, messages = 20;
  double seconds = 5, warmup = 1;
  app.add_option("--addr", addr)->capture_default_str();
  app.add_option("--key", key, "service key")->required();
  bool existing = false;
  app.add_option("--workload", workload,
                 "get_user | append_message | last_20_messages | track_agent_usage | "
                 "limit_check | usage_summary_month")
      ->capture_default_str();
  app.add_option("--connections", connections)->capture_default_str();
  app.add_option("--pipeline", pipeline, "requests in flight per connection")
      ->capture_default_str();
  app.add_option("--seconds", seconds)->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--users", users, "dataset: users (one chat each)")->capture_default_str();
  app.add_option("--messages", messages, "dataset: messages per chat")->capture_default_str();
  app.add_option("--json", json_out, "append a JSON line with the result to this file");
  app.add_flag("--existing", existing, "load nothing; drive the users already in the store");
  CLI11_PARSE(app, argc, argv);

  ClientOptions o;
  o.host = addr.substr(0, addr.rfind(':'));
  o.port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
  o.key = key;
  auto loader = Client::Connect(o);
  if (!loader.ok()) return fprintf(stderr, "%s\n", loader.status().ToString().c_str()), 1;
  bool usage = workload == "track_agent_usage" || workload == "limit_check";
  Dataset data = existing ? ExistingUsers(*loader) : Load(*loader, users, messages, usage);
  if (data.users.empty()) return fprintf(stderr, "no users\n"), 1;
  std::string durability = loader->GetStatus().get().value().durability;

  std::atomic<uint64_t> ok{0}, errors{0};
  std::atomic<bool> stop{false};
  std::atomic<int> outstanding{0};
  LatencyHistogram warm_hist;
  auto hist = std::make_unique<LatencyHistogram>();
  std::vector<std::unique_ptr<Driver>> drivers;
  for (int i = 0; i < connections; ++i) {
    auto c = Client::Connect(o);
    if (!c.ok()) return fprintf(stderr, "%s\n", c.status().ToString().c_str()), 1;
    drivers.push_back(
        std::make_unique<Driver>(Driver{std::move(c).value(), &data, workload, &warm_hist, &ok,
                                        &errors, &stop, &outstanding, std::mt19937_64(i)}));
  }
  for (auto& d : drivers)
    for (int p = 0; p < pipeline; ++p) {
      outstanding.fetch_add(1);
      d->Issue();
    }
  std::this_thread::sleep_for(std::chrono::duration<double>(warmup));
  // Measure: switch histograms, reset counters.
  for (auto& d : drivers) d->hist = hist.get();
  uint64_t ok0 = ok.load(), err0 = errors.load();
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  uint64_t done = ok.load() - ok0, failed = errors.load() - err0;
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  for (int i = 0; i < 1000 && outstanding.load() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));

  double ops = done / elapsed;
  printf(
      "%-18s conns=%-3d pipeline=%-3d durability=%-6s ops/s=%9.0f  p50=%6.0fus p90=%6.0fus "
      "p99=%6.0fus p99.9=%6.0fus max=%6lluus errors=%llu\n",
      workload.c_str(), connections, pipeline, durability.c_str(), ops, double(hist->Quantile(0.5)),
      double(hist->Quantile(0.9)), double(hist->Quantile(0.99)), double(hist->Quantile(0.999)),
      static_cast<unsigned long long>(hist->max()), static_cast<unsigned long long>(failed));
  if (!json_out.empty()) {
    std::ofstream(json_out, std::ios::app)
        << "{\"workload\":\"" << workload << "\",\"connections\":" << connections
        << ",\"pipeline\":" << pipeline << ",\"durability\":\"" << durability
        << "\",\"ops_per_sec\":" << static_cast<uint64_t>(ops)
        << ",\"p50_us\":" << hist->Quantile(0.5) << ",\"p90_us\":" << hist->Quantile(0.9)
        << ",\"p99_us\":" << hist->Quantile(0.99) << ",\"p999_us\":" << hist->Quantile(0.999)
        << ",\"max_us\":" << hist->max() << ",\"errors\":" << failed << "}\n";
  }
  drivers.clear();
  return failed ? 1 : 0;
}
