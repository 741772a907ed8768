// agentstore-bench: the load generator of issue 6. Loads a dataset (targets.md scale S
// or M) into one system (agentstore, PostgreSQL or Redis) through its bulk path, runs
// the workload table (single operations and the app's request mixes) with the same
// connections, threads and pipeline depth, and writes a terminal table, JSON and CSV.
// `agentstore-bench compare` turns several such JSON files into the side-by-side report.
//
//   agentstore-bench run --system agentstore --port 7420 --key ask_... --scale S
//   agentstore-bench compare --in a.json --in pg.json --in redis.json --out-dir report/
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "agentstore/common/latency_histogram.h"
#include "driver.h"

using namespace agentstore;         // NOLINT
using namespace agentstore::bench;  // NOLINT
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

namespace agentstore::bench {

const char* OpName(Op op) {
  static const char* names[] = {"get_user",         "list_agents",    "list_chats",
                                "last_20_messages", "append_message", "track_agent_usage",
                                "rate_limit_check", "memory_top5",    "memory_top5_touch",
                                "get_user_agent",   "usage_summary",  "tenant_usage"};
  return names[static_cast<int>(op)];
}

}  // namespace agentstore::bench

namespace {

// ---- the workload table ----

struct Workload {
  std::string name;
  std::vector<Op> steps;  // one step: a single operation; more: a dependent mix
  bool mix = false;
  int pipeline = 1;     // requests in flight per connection (single operations only)
  bool heavy = false;   // memory search: users with 5-10k memories instead of ~55
  int connections = 0;  // 0: --connections
};

const std::vector<Workload>& Table() {
  static const std::vector<Workload> t = {
      {"get_user", {Op::kGetUser}},
      {"list_agents", {Op::kListAgents}},
      {"list_chats", {Op::kListChats}},
      {"last_20_messages", {Op::kLast20Messages}},
      {"append_message", {Op::kAppendMessage}},
      {"track_agent_usage", {Op::kTrackAgentUsage}},
      {"rate_limit_check", {Op::kRateLimitCheck}},
      {"memory_top5", {Op::kMemoryTop5}},
      {"memory_top5_heavy", {Op::kMemoryTop5}, false, 1, true},
      {"usage_summary", {Op::kUsageSummary}},
      // targets.md's mixes, each step waiting for the previous one like an app server.
      {"chat_turn",
       {Op::kRateLimitCheck, Op::kGetUser, Op::kGetUserAgent, Op::kMemoryTop5Touch,
        Op::kLast20Messages, Op::kAppendMessage, Op::kAppendMessage, Op::kTrackAgentUsage},
       true},
      {"sidebar", {Op::kListAgents, Op::kListChats, Op::kUsageSummary}, true},
      {"admin", {Op::kTenantUsage}, true},
  };
  return t;
}

// "name", optionally ":pN" (pipeline depth N, single operations) and ":cN" (N connections
// instead of --connections); "ingest" is the load phase, always measured.
std::optional<Workload> FindWorkload(const std::string& spec) {
  std::stringstream ss(spec);
  std::string name, part;
  std::getline(ss, name, ':');
  int pipeline = 1, connections = 0;
  while (std::getline(ss, part, ':')) {
    if (part.size() < 2 || (part[0] != 'p' && part[0] != 'c')) return std::nullopt;
    int v = std::atoi(part.c_str() + 1);
    if (v < 1) return std::nullopt;
    (part[0] == 'p' ? pipeline : connections) = v;
  }
  for (const auto& w : Table())
    if (w.name == name) {
      Workload out = w;
      out.pipeline = w.mix ? 1 : pipeline;
      out.connections = connections;
      out.name = spec;
      return out;
    }
  return std::nullopt;
}

// ---- machine ----

json Machine() {
  std::ifstream f("/proc/cpuinfo");
  std::string line, model = "unknown";
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return {{"cores", std::thread::hardware_concurrency()},
          {"cpu", model},
          {"memory_gib", static_cast<double>(pages) * page / (1ull << 30)},
          {"host", host}};
}

// ---- progress bar (only on a terminal) ----

class Progress : public LoadProgress {
 public:
  Progress(uint64_t total, bool tty) : total_(total), tty_(tty) {
    if (tty_) printer_ = std::thread([this] { Print(); });
  }
  ~Progress() override { Finish(); }
  void Add(uint64_t n) override { done_.fetch_add(n, std::memory_order_relaxed); }
  void Finish() {
    if (stop_.exchange(true)) return;
    if (printer_.joinable()) printer_.join();
    if (tty_) fprintf(stderr, "\n");
  }

 private:
  void Print() {
    auto t0 = Clock::now();
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      uint64_t d = done_.load();
      double frac = total_ ? std::min(1.0, double(d) / total_) : 1;
      double s = std::chrono::duration<double>(Clock::now() - t0).count();
      int w = static_cast<int>(frac * 40);
      fprintf(stderr, "\r  loading [%s%s] %5.1f%% %llu/%llu records, %.0f/s ",
              std::string(w, '#').c_str(), std::string(40 - w, ' ').c_str(), frac * 100,
              static_cast<unsigned long long>(d), static_cast<unsigned long long>(total_),
              s > 0 ? d / s : 0.0);
    }
  }
  uint64_t total_;
  bool tty_;
  std::atomic<uint64_t> done_{0};
  std::atomic<bool> stop_{false};
  std::thread printer_;
};

// ---- the run ----

struct RunOptions {
  int connections = 8, threads = 0;
  double seconds = 5, warmup = 1, rate = 0;  // rate 0: closed loop
  uint64_t requests = 0;                     // >0: this many measured requests instead
};

struct PerThread {
  std::vector<std::unique_ptr<LatencyHistogram>> step;  // per step
  LatencyHistogram whole;                               // per request / mix iteration
  uint64_t ok = 0, errors = 0;
  std::string first_error;
};

Request MakeRequest(const Dataset& d, const Workload& w, Op op, std::mt19937_64& rng,
                    uint64_t seq) {
  Request r;
  r.op = op;
  r.seq = seq;
  r.user = static_cast<uint32_t>(rng() % d.users.size());
  const auto& qs = w.heavy ? d.heavy_queries : d.light_queries;
  if (op == Op::kMemoryTop5 && !qs.empty()) {
    r.query = qs[rng() % qs.size()];
    r.user = d.queries[r.query].user;
  }
  return r;
}

// Fills the fields every step of a mix shares from its user.
void Complete(const Dataset& d, Request& r, std::mt19937_64& rng) {
  uint32_t nua = d.ua_begin[r.user + 1] - d.ua_begin[r.user];
  r.user_agent = d.ua_begin[r.user] + (nua ? static_cast<uint32_t>(rng() % nua) : 0);
  uint32_t nchat = d.chat_begin[r.user + 1] - d.chat_begin[r.user];
  r.chat = d.chat_begin[r.user] + (nchat ? static_cast<uint32_t>(rng() % nchat) : 0);
  r.tenant = d.users[r.user].tenant;
  if (r.op != Op::kMemoryTop5 && !d.queries.empty())
    r.query = static_cast<uint32_t>(rng() % d.queries.size());
}

// Quantiles are bucket upper bounds, capped at the largest value seen.
json Percentiles(const LatencyHistogram& h) {
  auto q = [&](double x) { return std::min(h.Quantile(x), h.max()); };
  return {{"p50_us", q(0.5)},    {"p90_us", q(0.9)},  {"p99_us", q(0.99)},
          {"p999_us", q(0.999)}, {"max_us", h.max()}, {"count", h.count()}};
}

json RunWorkload(const Dataset& d, const std::vector<Session*>& sessions, const Workload& w,
                 const std::vector<Op>& steps, const RunOptions& o, int thread_index_base) {
  const int threads = o.threads > 0 ? std::min<int>(o.threads, static_cast<int>(sessions.size()))
                                    : static_cast<int>(sessions.size());
  std::vector<PerThread> per(threads);
  for (auto& p : per)
    for (size_t s = 0; s < steps.size(); ++s)
      p.step.push_back(std::make_unique<LatencyHistogram>());
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<uint64_t> measured_requests{0};
  const double per_thread_rate = o.rate > 0 ? o.rate / threads : 0;

  auto body = [&](int t) {
    std::mt19937_64 rng(0x9e3779b97f4a7c15ull * (t + 1) + thread_index_base);
    std::vector<Session*> mine;
    for (size_t i = t; i < sessions.size(); i += threads) mine.push_back(sessions[i]);
    PerThread& me = per[t];
    struct InFlight {
      Clock::time_point intended;
      bool measured;
    };
    std::vector<std::deque<InFlight>> inflight(mine.size());
    uint64_t seq = (uint64_t(t) << 40) + (uint64_t(thread_index_base) << 56), issued = 0;
    const auto start = Clock::now();
    auto record = [&](Status s, bool measured, LatencyHistogram& h, Clock::time_point from) {
      if (!measured) return;
      h.Record(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - from).count());
      if (s.ok()) return;
      ++me.errors;
      if (me.first_error.empty()) me.first_error = s.ToString();
    };
    auto recv_one = [&](size_t i) {
      InFlight f = inflight[i].front();
      inflight[i].pop_front();
      Status s = mine[i]->Recv();
      record(s, f.measured, *me.step[0], f.intended);
      if (f.measured && s.ok()) ++me.ok;
    };
    for (size_t k = 0; !stop.load(std::memory_order_relaxed); ++k) {
      size_t i = k % mine.size();
      Clock::time_point intended = Clock::now();
      if (per_thread_rate > 0) {
        intended = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(issued / per_thread_rate));
        // Ahead of schedule: collect what is outstanding first, so each answer is timed
        // when it arrives rather than when its slot is needed again.
        if (Clock::now() < intended)
          for (size_t j = 0; j < mine.size(); ++j)
            while (!inflight[j].empty()) recv_one(j);
        std::this_thread::sleep_until(intended);
      }
      ++issued;
      bool measured = measuring.load(std::memory_order_relaxed);
      if (measured && o.requests &&
          measured_requests.fetch_add(1, std::memory_order_relaxed) >= o.requests) {
        stop = true;
        break;
      }
      if (!w.mix) {
        if (inflight[i].size() >= size_t(w.pipeline)) recv_one(i);
        Request r = MakeRequest(d, w, steps[0], rng, ++seq);
        Complete(d, r, rng);
        inflight[i].push_back({intended, measured});
        mine[i]->Send(r);
        continue;
      }
      // A mix: one iteration, each step waiting for the one before.
      Request base = MakeRequest(d, w, steps[0], rng, ++seq);
      Complete(d, base, rng);
      Status overall = Status::OK();
      for (size_t s = 0; s < steps.size(); ++s) {
        Request r = base;
        r.op = steps[s];
        r.seq = ++seq;
        auto t0 = Clock::now();
        mine[i]->Send(r);
        Status st = mine[i]->Recv();
        record(st, measured, *me.step[s], t0);
        if (!st.ok() && overall.ok()) overall = st;
      }
      if (measured) {
        me.whole.Record(
            std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - intended).count());
        if (overall.ok()) ++me.ok;
      }
    }
    for (size_t i = 0; i < mine.size(); ++i)
      while (!inflight[i].empty()) recv_one(i);
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  measuring = true;
  auto t0 = Clock::now();
  if (o.requests) {
    while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  } else {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
    stop = true;
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& th : pool) th.join();

  LatencyHistogram whole;
  std::vector<LatencyHistogram> step(steps.size());
  uint64_t ok = 0, errors = 0;
  std::string first_error;
  for (auto& p : per) {
    for (size_t s = 0; s < steps.size(); ++s) step[s].Merge(*p.step[s]);
    whole.Merge(w.mix ? p.whole : *p.step[0]);
    ok += p.ok;
    errors += p.errors;
    if (first_error.empty()) first_error = p.first_error;
  }
  json r = {{"workload", w.name}, {"kind", w.mix ? "mix" : "operation"},
            {"status", "ok"},     {"pipeline", w.pipeline},
            {"seconds", elapsed}, {"ok", ok},
            {"errors", errors},   {"throughput", ok / elapsed}};
  r.update(Percentiles(whole));
  if (!first_error.empty()) r["first_error"] = first_error;
  if (w.mix) {
    json st = json::array();
    for (size_t s = 0; s < steps.size(); ++s) {
      json j = {{"op", OpName(steps[s])}};
      j.update(Percentiles(step[s]));
      st.push_back(j);
    }
    r["steps"] = st;
  }
  return r;
}

// Recall@5 of the agentstore memory searches sampled during the workload, against
// ExactTopK (the peers' top-5 are exact scans by construction).
void AddRecall(const Dataset& d, json& r) {
  std::vector<RecallSample> samples = TakeRecallSamples();
  if (samples.empty()) return;
  double sum = 0, lowest = 1;
  size_t exact = 0;
  for (const RecallSample& s : samples) {
    double x = RecallAtK(d, s.user, d.queries[s.query].vector.data(), 5, s.got);
    sum += x;
    lowest = std::min(lowest, x);
    exact += ExactTopK(d, s.user, d.queries[s.query].vector.data(), 5) == s.got;
  }
  r["recall_at_5"] = {{"mean", sum / samples.size()},
                      {"min", lowest},
                      {"samples", samples.size()},
                      {"identical_to_exact", exact}};
}

std::string Ms(uint64_t us) {
  char b[32];
  if (us < 1000)
    snprintf(b, sizeof b, "%.3f", us / 1000.0);
  else
    snprintf(b, sizeof b, "%.1f", us / 1000.0);
  return b;
}

void PrintTable(const json& report) {
  printf("\n%s  (%s)\n", report["system"].get<std::string>().c_str(),
         report["settings"].get<std::string>().c_str());
  printf("machine: %d cores, %s; durability %s; %d connections, %d threads\n",
         report["machine"]["cores"].get<int>(), report["machine"]["cpu"].get<std::string>().c_str(),
         report["durability"].get<std::string>().c_str(),
         report["config"]["connections"].get<int>(), report["config"]["threads"].get<int>());
  printf("%-26s %12s %9s %9s %9s %9s %9s %7s\n", "workload", "ops/s", "p50 ms", "p90 ms", "p99 ms",
         "p99.9 ms", "max ms", "errors");
  for (const auto& r : report["results"]) {
    if (r["status"] != "ok") {
      printf("%-26s %s\n", r["workload"].get<std::string>().c_str(),
             ("not available: " + r["reason"].get<std::string>()).c_str());
      continue;
    }
    if (r["workload"] == "ingest") {
      printf("%-26s %12.0f %9s %9s %9s %9s %9s %7llu  (records/s)\n", "ingest",
             r["throughput"].get<double>(), "-", "-", "-", "-", "-",
             static_cast<unsigned long long>(r["errors"].get<uint64_t>()));
    } else
      printf("%-26s %12.0f %9s %9s %9s %9s %9s %7llu\n", r["workload"].get<std::string>().c_str(),
             r["throughput"].get<double>(), Ms(r["p50_us"]).c_str(), Ms(r["p90_us"]).c_str(),
             Ms(r["p99_us"]).c_str(), Ms(r["p999_us"]).c_str(), Ms(r["max_us"]).c_str(),
             static_cast<unsigned long long>(r["errors"].get<uint64_t>()));
    if (r.contains("skipped_steps"))
      printf("%-26s   skipped: %s\n", "", r["skipped_steps"].dump().c_str());
  }
}

void WriteCsv(const json& report, const std::string& path) {
  std::ofstream f(path);
  f << "system,durability,workload,kind,status,connections,pipeline,throughput,p50_us,p90_us,"
       "p99_us,p999_us,max_us,errors\n";
  for (const auto& r : report["results"]) {
    f << report["system"].get<std::string>() << ',' << report["durability"].get<std::string>()
      << ',' << r["workload"].get<std::string>() << ',' << r["kind"].get<std::string>() << ','
      << r["status"].get<std::string>() << ','
      << r.value("connections", report["config"]["connections"].get<int>()) << ','
      << r.value("pipeline", 1);
    if (r["status"] == "ok")
      f << ',' << r["throughput"].get<double>() << ',' << r["p50_us"] << ',' << r["p90_us"] << ','
        << r["p99_us"] << ',' << r["p999_us"] << ',' << r["max_us"] << ',' << r["errors"];
    else
      f << ",,,,,,,";
    f << '\n';
  }
}

int Run(const std::string& system, const DriverOptions& dopt, const std::string& scale,
        uint64_t seed, const std::vector<std::string>& workloads, const RunOptions& o,
        const std::string& json_out, const std::string& csv_out, bool skip_load) {
  fprintf(stderr, "generating dataset %s (seed %llu)...\n", scale.c_str(),
          static_cast<unsigned long long>(seed));
  auto g0 = Clock::now();
  Dataset d = GenerateDataset(DatasetSpec::ForScale(scale, seed));
  fprintf(stderr, "  %zu records (%zu memories, %zu queries) in %.1f s\n", d.RecordCount(),
          d.memories.size(), d.queries.size(),
          std::chrono::duration<double>(Clock::now() - g0).count());
  DriverOptions opt = dopt;
  opt.data = &d;
  std::unique_ptr<Driver> driver = system == "agentstore" ? MakeAgentstoreDriver(opt)
                                   : system == "postgres" ? MakePostgresDriver(opt)
                                   : system == "redis"    ? MakeRedisDriver(opt)
                                                          : nullptr;
  if (!driver) return fprintf(stderr, "unknown system %s\n", system.c_str()), 2;

  json report = {{"system", driver->Name()}, {"machine", Machine()}};
  report["dataset"] = {{"scale", scale},
                       {"seed", seed},
                       {"tenants", d.tenants.size()},
                       {"users", d.users.size()},
                       {"agents", d.agents.size()},
                       {"user_agents", d.user_agents.size()},
                       {"chats", d.chats.size()},
                       {"messages", d.messages.size()},
                       {"usage_logs", d.usage_logs.size()},
                       {"memories", d.memories.size()},
                       {"memory_users", d.memory_users.size()}};
  int threads = o.threads > 0 ? o.threads : o.connections;
  report["config"] = {{"connections", o.connections},
                      {"threads", threads},
                      {"seconds", o.seconds},
                      {"warmup", o.warmup},
                      {"rate", o.rate},
                      {"requests", o.requests},
                      {"loop", o.rate > 0 ? "open (latency from intended send time)" : "closed"}};
  json results = json::array();

  if (!skip_load) {
    fprintf(stderr, "loading into %s over %d connections...\n", system.c_str(), o.connections);
    auto t0 = Clock::now();
    Progress progress(d.RecordCount(), isatty(2));
    Status s = driver->Load(d, o.connections, progress);
    progress.Finish();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!s.ok()) return fprintf(stderr, "load failed: %s\n", s.ToString().c_str()), 1;
    json ingest = {{"workload", "ingest"}, {"kind", "mix"},         {"status", "ok"},
                   {"seconds", secs},      {"ok", d.RecordCount()}, {"errors", 0}};
    uint64_t records = d.RecordCount();
    ingest["throughput"] = records / secs;
    for (const char* k : {"p50_us", "p90_us", "p99_us", "p999_us", "max_us"}) ingest[k] = 0;
    ingest["note"] = "records/s through the bulk path; latency not measured per record";
    results.push_back(ingest);
    fprintf(stderr, "  loaded %llu records in %.1f s (%.0f records/s)\n",
            static_cast<unsigned long long>(records), secs, records / secs);
  }

  std::vector<std::unique_ptr<Session>> sessions;
  for (int i = 0; i < o.connections; ++i) {
    auto s = driver->Connect();
    if (!s.ok()) return fprintf(stderr, "connect: %s\n", s.status().ToString().c_str()), 1;
    sessions.push_back(std::move(s).value());
  }
  report["settings"] = driver->Settings();
  report["durability"] = driver->Durability();

  int run_no = 0;
  for (const std::string& spec : workloads) {
    auto w = FindWorkload(spec);
    if (!w) return fprintf(stderr, "unknown workload %s\n", spec.c_str()), 2;
    // Two runs for a mix agentstore cannot fully run yet: the full mix (peers only) and
    // "<mix>-partial" with only the steps agentstore has, which every system runs so
    // the mix comparison is like for like.
    std::vector<Op> have, missing;
    for (Op op : w->steps) (AgentstoreSupports(op).ok() ? have : missing).push_back(op);
    std::vector<std::pair<Workload, std::vector<Op>>> runs;
    runs.push_back({*w, w->steps});
    if (w->mix && !missing.empty() && !have.empty()) {
      Workload p = *w;
      p.name += "-partial";
      runs.push_back({p, have});
    }
    for (auto& [wl, steps] : runs) {
      std::vector<Op> runnable;
      std::vector<std::string> skipped;
      std::string reason;
      for (Op op : steps) {
        Status s = driver->Supports(op);
        if (s.ok())
          runnable.push_back(op);
        else {
          skipped.push_back(std::string(OpName(op)) + " (" + s.ToString() + ")");
          if (reason.empty()) reason = std::string(OpName(op)) + ": " + s.ToString();
        }
      }
      json r;
      if (runnable.empty() || (!wl.mix && !skipped.empty()) ||
          (wl.mix && !skipped.empty() && wl.name.find("-partial") == std::string::npos)) {
        r = {{"workload", wl.name},
             {"kind", wl.mix ? "mix" : "operation"},
             {"status", "not available"},
             {"reason", reason}};
      } else {
        fprintf(stderr, "running %s...\n", wl.name.c_str());
        size_t conns = wl.connections ? wl.connections : o.connections;
        while (sessions.size() < conns) {
          auto more = driver->Connect();
          if (!more.ok())
            return fprintf(stderr, "connect: %s\n", more.status().ToString().c_str()), 1;
          sessions.push_back(std::move(more).value());
        }
        std::vector<Session*> use;
        for (size_t i = 0; i < conns; ++i) use.push_back(sessions[i].get());
        TakeRecallSamples();  // only this workload's
        r = RunWorkload(d, use, wl, runnable, o, ++run_no);
        AddRecall(d, r);
      }
      if (wl.mix) {
        json st = json::array();
        for (Op op : steps) st.push_back(OpName(op));
        r["mix_steps"] = st;
      }
      results.push_back(r);
    }
  }
  report["results"] = results;
  PrintTable(report);
  if (!json_out.empty()) std::ofstream(json_out) << report.dump(2) << "\n";
  if (!csv_out.empty()) WriteCsv(report, csv_out);
  return 0;
}

// ---- compare: several run reports -> one markdown + JSON + gnuplot inputs ----

int Compare(const std::vector<std::string>& inputs, const std::string& out_dir,
            const std::string& command) {
  std::vector<json> reports;
  for (const auto& p : inputs) {
    std::ifstream f(p);
    if (!f) return fprintf(stderr, "cannot read %s\n", p.c_str()), 1;
    reports.push_back(json::parse(f));
  }
  const json& base = reports[0];  // agentstore
  std::vector<std::string> order;
  for (const auto& r : reports)
    for (const auto& w : r["results"])
      if (std::find(order.begin(), order.end(), w["workload"]) == order.end())
        order.push_back(w["workload"]);
  auto find = [](const json& rep, const std::string& w) -> const json* {
    for (const auto& r : rep["results"])
      if (r["workload"] == w) return &r;
    return nullptr;
  };

  std::ostringstream md;
  md << "## Comparison: " << base["dataset"]["scale"].get<std::string>() << " scale\n\n";
  md << "Machine: " << base["machine"]["cores"] << " cores, "
     << base["machine"]["cpu"].get<std::string>() << ", "
     << static_cast<int>(base["machine"]["memory_gib"].get<double>())
     << " GiB. Dataset: " << base["dataset"].dump() << ".\n\n";
  md << "Load: " << base["config"]["connections"] << " connections, " << base["config"]["threads"]
     << " client threads, " << base["config"]["loop"].get<std::string>() << " loop, "
     << base["config"]["seconds"] << " s measured after " << base["config"]["warmup"]
     << " s warm-up, per workload; the same "
     << "for every system.\n\n";
  md << "Systems:\n\n";
  for (const auto& r : reports)
    md << "- **" << r["system"].get<std::string>() << "**: " << r["settings"].get<std::string>()
       << "\n";
  md << "\n| workload | system | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | agentstore / "
        "system ops/s | agentstore / system p99 |\n|---|---|---|---|---|---|---|---|---|\n";
  json cmp = json::array();
  std::ofstream tp(out_dir + "/throughput.dat"), lat(out_dir + "/p99.dat");
  tp << "workload";
  lat << "workload";
  for (const auto& r : reports) {
    tp << '\t' << r["system"].get<std::string>();
    lat << '\t' << r["system"].get<std::string>();
  }
  tp << '\n';
  lat << '\n';
  for (const auto& w : order) {
    const json* a = find(base, w);
    bool a_ok = a && (*a)["status"] == "ok";
    tp << w;
    std::ostringstream latrow;  // ingest has no latency: not charted
    latrow << w;
    for (const auto& rep : reports) {
      const json* r = find(rep, w);
      std::string sys = rep["system"];
      json row = {{"workload", w}, {"system", sys}};
      if (!r || (*r)["status"] != "ok") {
        std::string why = r ? r->value("reason", std::string("not available")) : "not run";
        md << "| " << w << " | " << sys << " | not available: " << why << " | | | | | | |\n";
        row["status"] = "not available";
        row["reason"] = why;
        tp << "\t-";
        latrow << "\t-";
        cmp.push_back(row);
        continue;
      }
      double ops = (*r)["throughput"];
      uint64_t p99 = (*r)["p99_us"];
      if (w == "ingest")
        md << "| " << w << " | " << sys << " | " << static_cast<uint64_t>(ops)
           << " records/s | - | - | - | - | ";
      else
        md << "| " << w << " | " << sys << " | " << static_cast<uint64_t>(ops) << " | "
           << Ms((*r)["p50_us"]) << " | " << Ms(p99) << " | " << Ms((*r)["p999_us"]) << " | "
           << Ms((*r)["max_us"]) << " | ";
      row["throughput"] = ops;
      row["p99_us"] = p99;
      if (a_ok && &rep != &base && ops > 0 && (p99 > 0 || w == "ingest")) {
        double tr = (*a)["throughput"].get<double>() / ops;
        char b[64];
        snprintf(b, sizeof b, "%.2fx | ", tr);
        md << b;
        row["throughput_ratio"] = tr;
        if (p99 > 0) {
          double lr = double((*a)["p99_us"].get<uint64_t>()) / p99;
          snprintf(b, sizeof b, "%.2fx |", lr);
          row["p99_ratio"] = lr;
        } else {
          snprintf(b, sizeof b, "- |");
        }
        md << b;
      } else {
        md << " | |";
      }
      md << "\n";
      if (r->contains("skipped_steps")) row["skipped_steps"] = (*r)["skipped_steps"];
      cmp.push_back(row);
      tp << '\t' << ops;
      latrow << '\t' << (w == "ingest" ? std::string("-") : Ms(p99));
    }
    tp << '\n';
    if (w != "ingest") lat << latrow.str() << '\n';
  }
  md << "\nRatios are agentstore divided by the peer: throughput above 1 and p99 below 1 favour "
        "agentstore. A `-partial` mix runs only the steps agentstore has today, on every "
        "system. Latencies are histogram bucket upper bounds (~19% resolution). `ingest` is the "
        "load phase (records/s through each system's bulk path).\n";
  for (const auto& rep : reports)
    for (const auto& r : rep["results"])
      if (r.contains("skipped_steps"))
        md << "\n"
           << rep["system"].get<std::string>() << " " << r["workload"].get<std::string>()
           << " skipped: " << r["skipped_steps"].dump() << "\n";
  for (const auto& rep : reports)
    for (const auto& r : rep["results"])
      if (r.contains("recall_at_5")) {
        const json& x = r["recall_at_5"];
        char b[256];
        snprintf(b, sizeof b,
                 "\n%s %s recall@5 against the exact top-5: mean %.4f, min %.2f over %zu sampled "
                 "searches (%zu identical to the exact answer, order included)\n",
                 rep["system"].get<std::string>().c_str(), r["workload"].get<std::string>().c_str(),
                 x["mean"].get<double>(), x["min"].get<double>(), x["samples"].get<size_t>(),
                 x["identical_to_exact"].get<size_t>());
        md << b;
      }
  if (!command.empty()) md << "\nCommand: `" << command << "`\n";
  std::ofstream(out_dir + "/comparison.md") << md.str();
  json out = {{"machine", base["machine"]},
              {"dataset", base["dataset"]},
              {"config", base["config"]},
              {"rows", cmp},
              {"systems", json::array()}};
  for (const auto& r : reports)
    out["systems"].push_back(
        {{"system", r["system"]}, {"settings", r["settings"]}, {"durability", r["durability"]}});
  std::ofstream(out_dir + "/comparison.json") << out.dump(2) << "\n";
  printf("%s", md.str().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"agentstore-bench: agentstore, PostgreSQL and Redis on the same workloads"};
  app.require_subcommand(1);

  auto* run = app.add_subcommand("run", "load a dataset into one system and run workloads");
  std::string system = "agentstore", scale = "S", json_out, csv_out, workloads_csv;
  DriverOptions dopt;
  dopt.user = "postgres";
  dopt.database = "bench";
  uint64_t seed = 42;
  RunOptions o;
  bool skip_load = false;
  run->add_option("--system", system, "agentstore | postgres | redis")->capture_default_str();
  run->add_option("--host", dopt.host)->capture_default_str();
  run->add_option("--port", dopt.port)->required();
  run->add_option("--key", dopt.key, "agentstore: service key");
  run->add_option("--pg-user", dopt.user)->capture_default_str();
  run->add_option("--pg-database", dopt.database)->capture_default_str();
  run->add_option("--scale", scale, "dataset: S or M (targets.md)")->capture_default_str();
  run->add_option("--seed", seed)->capture_default_str();
  run->add_option("--connections", o.connections)->capture_default_str();
  run->add_option("--threads", o.threads, "client threads (default: one per connection)");
  run->add_option("--seconds", o.seconds, "measured time per workload")->capture_default_str();
  run->add_option("--requests", o.requests, "measure this many requests instead of --seconds");
  run->add_option("--warmup", o.warmup, "seconds before measuring")->capture_default_str();
  run->add_option("--rate", o.rate,
                  "open loop: target requests/s over all threads, latency from the intended "
                  "send time (0: closed loop)")
      ->capture_default_str();
  std::string all;
  for (const auto& w : Table()) {
    all += (all.empty() ? "" : ",") + w.name;
    // targets.md's rows: 8 clients (PostgreSQL) and 50 (Redis), pipeline 1 and 16.
    // And Tarantool's net.box shapes: 64 in flight over 4 connections, 16 on 1.
    if (w.name == "get_user")
      all += ",get_user:p16,get_user:c50,get_user:p16:c50,get_user:p16:c4,get_user:p16:c1";
    if (w.name == "append_message")
      all += ",append_message:p16,append_message:p16:c4,append_message:p16:c1";
  }
  workloads_csv = all;
  run->add_option("--workloads", workloads_csv,
                  "comma-separated; name:pN sets pipeline depth N for a single operation")
      ->capture_default_str();
  run->add_option("--json", json_out, "write the report as JSON here");
  run->add_option("--csv", csv_out, "write the results as CSV here");
  run->add_flag("--skip-load", skip_load, "the dataset is already loaded (same scale and seed)");

  auto* cmp = app.add_subcommand("compare", "side-by-side report from run JSON files");
  std::vector<std::string> inputs;
  std::string out_dir = ".", command;
  cmp->add_option("--in", inputs, "run reports, agentstore first")->required();
  cmp->add_option("--out-dir", out_dir)->capture_default_str();
  cmp->add_option("--command", command, "the command that made them, for the report");

  CLI11_PARSE(app, argc, argv);
  if (*cmp) return Compare(inputs, out_dir, command);
  std::vector<std::string> workloads;
  std::stringstream ss(workloads_csv);
  for (std::string w; std::getline(ss, w, ',');)
    if (!w.empty()) workloads.push_back(w);
  return Run(system, dopt, scale, seed, workloads, o, json_out, csv_out, skip_load);
}
