// Change-feed benchmarks through a running agentstored and the public client
// (benchmarks/README.md, "Change feed", has the commands and results):
//   latency    commit-to-callback p50/p99 with N subscribers, each following its own user
//   throughput durable message appends/s from W writers with N such subscribers
//   catchup    events/s delivered to one subscriber resuming from C changes back
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>

#include "agentstore/client.h"

using namespace agentstore;  // NOLINT
using Clock = std::chrono::steady_clock;

namespace {

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename T>
T Must(Result<T> r, const char* what) {
  if (!r.ok()) {
    fprintf(stderr, "%s: %s\n", what, r.status().ToString().c_str());
    exit(1);
  }
  return std::move(r).value();
}

struct Setup {
  std::vector<Uuid> users, chats;
};

// N users with one chat each, created in pipelined batches.
Setup MakeUsers(Client& c, int n, const std::string& tag) {
  Setup s;
  for (int i = 0; i < n; i += 256) {
    std::vector<Pending<Row<fb::User>>> pend;
    for (int j = i; j < std::min(n, i + 256); ++j) {
      fb::UserT u;
      u.email = tag + std::to_string(j) + "-" + std::to_string(WallMicros()) + "@bench.x";
      pend.push_back(c.CreateUser(u));
    }
    for (auto& p : pend) s.users.push_back(ToUuid(Must(p.get(), "create user")->id()));
  }
  for (size_t i = 0; i < s.users.size(); i += 256) {
    std::vector<Pending<Row<fb::Chat>>> pend;
    for (size_t j = i; j < std::min(s.users.size(), i + 256); ++j) {
      fb::ChatT ch;
      ch.user_id = std::make_unique<fb::Uuid>(ToFb(s.users[j]));
      pend.push_back(c.CreateChat(ch));
    }
    for (auto& p : pend) s.chats.push_back(ToUuid(Must(p.get(), "create chat")->id()));
  }
  return s;
}

fb::MessageT Msg(const Uuid& chat) {
  fb::MessageT m;
  m.chat_id = std::make_unique<fb::Uuid>(ToFb(chat));
  m.parts = R"([{"type":"text","text":"feed bench message"}])";
  return m;
}

double Pct(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))] / 1000.0;
}

// The subscribers: each on a connection of its own (per_connection 1, Client::Subscribe)
// or multiplexed `per_connection` to a FeedChannel, as an app server would.
struct Subscribers {
  std::vector<std::unique_ptr<FeedChannel>> channels;
  std::vector<std::unique_ptr<FeedSubscription>> subs;
};

Subscribers SubscribeEach(Client& c, const ClientOptions& o, const Setup& s, int n,
                          int per_connection, const FeedSubscription::Callback& cb) {
  Subscribers out;
  for (int i = 0; i < n; ++i) {
    SubscribeFilter f;
    f.types = {RecordType::kMessage};
    f.user = s.users[i];
    if (per_connection <= 1) {
      out.subs.push_back(Must(c.Subscribe(f, std::nullopt, cb), "subscribe"));
      continue;
    }
    if (i % per_connection == 0) out.channels.push_back(Must(FeedChannel::Open(o), "open channel"));
    out.subs.push_back(Must(out.channels.back()->Subscribe(f, std::nullopt, cb), "subscribe"));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"feed_bench: the change feed through agentstored"};
  std::string mode = "latency", host = "127.0.0.1", key;
  int port = 7420, subscribers = 1, writers = 8, writes = 3000, seconds = 10;
  int per_connection = 1;
  int users = 0;
  int depth = 16;
  int64_t changes = 1'000'000;
  app.add_option("mode", mode, "latency | throughput | catchup")->required();
  app.add_option("--host", host);
  app.add_option("--port", port);
  app.add_option("--key", key, "a service key")->required();
  app.add_option("--subscribers", subscribers)->capture_default_str();
  app.add_option("--per-connection", per_connection,
                 "subscriptions per connection: 1 = a connection each, 2 and up = FeedChannels "
                 "of that many (up to FeedChannel::kMaxSubscriptions)")
      ->capture_default_str()
      ->check(CLI::Range(1, static_cast<int>(FeedChannel::kMaxSubscriptions)));
  app.add_option("--writers", writers, "throughput: concurrent writer connections")
      ->capture_default_str();
  app.add_option("--writes", writes, "latency: messages written (one at a time)")
      ->capture_default_str();
  app.add_option("--seconds", seconds, "throughput: duration")->capture_default_str();
  app.add_option("--depth", depth,
                 "throughput: appends in flight per writer (1: each waits for its fsync, the "
                 "shape of compare.sh's durable rows; 16: the writers keep the CPU busy)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--users", users,
                 "throughput: users (a chat each) the writers spread over; default the larger "
                 "of --subscribers and --writers. Give 1000 to a 0-subscriber run to write the "
                 "same records as a 1000-subscriber run");
  app.add_option("--changes", changes, "catchup: changes written before resuming")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  ClientOptions o;
  o.host = host;
  o.port = static_cast<uint16_t>(port);
  o.key = key;
  o.connections = std::max(1, writers);
  Client c = Must(Client::Connect(o), "connect");

  if (mode == "latency") {
    Setup s = MakeUsers(c, std::max(subscribers, 1), "lat");
    std::mutex mu;
    std::vector<int64_t> lat;  // commit (engine log time) to callback, micros
    std::atomic<int> got{0};
    auto subs = SubscribeEach(c, o, s, subscribers, per_connection, [&](const FeedChange& ch) {
      int64_t d = WallMicros() - ch.commit_time;
      std::lock_guard l(mu);
      lat.push_back(d);
      got.fetch_add(1);
    });
    // One writer, one message at a time, to a random subscriber's user.
    uint64_t rng = 88172645463325252ull;
    auto t0 = Clock::now();
    for (int i = 0; i < writes; ++i) {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      Must(c.AppendMessage(Msg(s.chats[rng % subscribers])).get(), "append");
    }
    while (got.load() < writes && Clock::now() - t0 < std::chrono::seconds(60))
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::lock_guard l(mu);
    printf(
        "latency subscribers=%d per_connection=%d writes=%d delivered=%d commit_to_callback_ms "
        "p50=%.3f p99=%.3f max=%.3f\n",
        subscribers, per_connection, writes, got.load(), Pct(lat, 0.5), Pct(lat, 0.99),
        Pct(lat, 1.0));
  } else if (mode == "throughput") {
    Setup s = MakeUsers(c, std::max({subscribers, writers, users}), "thr");
    std::atomic<uint64_t> delivered{0};
    auto subs = SubscribeEach(c, o, s, subscribers, per_connection,
                              [&](const FeedChange&) { delivered.fetch_add(1); });
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> done{0};
    std::vector<std::thread> ts;
    for (int w = 0; w < writers; ++w)
      ts.emplace_back([&, w] {
        uint64_t i = w;
        size_t n = s.chats.size();
        while (!stop) {
          // `depth` in flight per writer, spread over every subscriber's user.
          std::vector<Pending<AppendResult>> pend;
          for (int k = 0; k < depth; ++k, i += writers)
            pend.push_back(c.AppendMessage(Msg(s.chats[i % n])));
          for (auto& p : pend) Must(p.get(), "append");
          done.fetch_add(pend.size());
        }
      });
    auto t0 = Clock::now();
    fprintf(stderr, "throughput: writing for %d s\n", seconds);  // for profiling scripts
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    stop = true;
    for (auto& t : ts) t.join();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    auto w0 = Clock::now();
    while (subscribers > 0 && delivered.load() < done.load() &&
           Clock::now() - w0 < std::chrono::seconds(30))
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    printf(
        "throughput subscribers=%d per_connection=%d writers=%d x%d in flight users=%zu: %.0f "
        "durable appends/s (delivered %llu of %llu)\n",
        subscribers, per_connection, writers, depth, s.chats.size(), done.load() / secs,
        (unsigned long long)delivered.load(), (unsigned long long)done.load());
  } else if (mode == "catchup") {
    Setup s = MakeUsers(c, 64, "cu");
    // The resume point: subscribe from now, read where it starts, stop.
    uint64_t start = 0;
    {
      auto probe = Must(c.Subscribe({}, std::nullopt, [](const FeedChange&) {}), "subscribe");
      start = probe->last_sequence();
    }
    auto t0 = Clock::now();
    int64_t written = 0;
    while (written < changes) {
      std::vector<Pending<AppendResult>> pend;
      for (int k = 0; k < 512 && written < changes; ++k, ++written)
        pend.push_back(c.AppendMessage(Msg(s.chats[written % s.chats.size()])));
      for (auto& p : pend) Must(p.get(), "append");
    }
    double load = std::chrono::duration<double>(Clock::now() - t0).count();
    // Each append is two changes (the message and its chat's totals): follow messages.
    std::atomic<int64_t> got{0};
    SubscribeFilter f;
    f.types = {RecordType::kMessage};
    auto t1 = Clock::now();
    fprintf(stderr, "catchup: subscribing\n");  // for profiling scripts
    auto sub =
        Must(c.Subscribe(f, start, [&](const FeedChange&) { got.fetch_add(1); }), "subscribe");
    while (got.load() < changes && Clock::now() - t1 < std::chrono::seconds(300))
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    double secs = std::chrono::duration<double>(Clock::now() - t1).count();
    printf(
        "catchup changes=%lld (loaded in %.1fs) delivered=%lld in %.2fs: %.0f events/s "
        "(the log holds %lld changes in that range: messages and chat updates)\n",
        (long long)changes, load, (long long)got.load(), secs, got.load() / secs,
        (long long)(2 * changes));
  } else {
    fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  return 0;
}
