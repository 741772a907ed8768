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
};

Dataset Load(Client& c, int users, int messages) {
  Dataset d;
  std::vector<Pending<Row<fb::User>>> made;
  for (int i = 0; i < users; ++i) {
    fb::UserT u = bench::SampleUser("bench" + std::to_string(i) + "-" +
                                        std::to_string(Clock::now().time_since_epoch().count()) +
                                        "@example.com",
                                    i);
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
  return d;
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
  app.add_option("--workload", workload, "get_user | append_message | last_20_messages")
      ->capture_default_str();
  app.add_option("--connections", connections)->capture_default_str();
  app.add_option("--pipeline", pipeline, "requests in flight per connection")
      ->capture_default_str();
  app.add_option("--seconds", seconds)->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--users", users, "dataset: users (one chat each)")->capture_default_str();
  app.add_option("--messages", messages, "dataset: messages per chat")->capture_default_str();
  app.add_option("--json", json_out, "append a JSON line with the result to this file");
  CLI11_PARSE(app, argc, argv);

  ClientOptions o;
  o.host = addr.substr(0, addr.rfind(':'));
  o.port = static_cast<uint16_t>(std::stoi(addr.substr(addr.rfind(':') + 1)));
  o.key = key;
  auto loader = Client::Connect(o);
  if (!loader.ok()) return fprintf(stderr, "%s\n", loader.status().ToString().c_str()), 1;
  Dataset data = Load(*loader, users, messages);
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
