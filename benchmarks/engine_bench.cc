// In-process engine micro-benchmarks: point read, last-20 messages, append_message under
// durability none and always (many threads, group commit), create user_agent. Each
// benchmark names its durability. Run: build/benchmarks/engine_bench
#include <benchmark/benchmark.h>

#include <atomic>
#include <mutex>

#include "bench_data.h"

namespace agentstore::bench {
namespace {

constexpr int kUsers = 10000;
constexpr int kMessages = 40;

struct World {
  std::unique_ptr<Engine> engine;
  Dataset data;
};

World& Get(storage::Durability d) {
  static std::mutex mu;
  static std::unique_ptr<World> worlds[3];
  std::lock_guard lock(mu);
  auto& w = worlds[static_cast<int>(d)];
  if (!w) {
    w = std::make_unique<World>();
    EngineOptions o;
    o.data_dir = TempPath(std::string("engine-") + std::string(storage::DurabilityName(d)));
    o.durability = storage::Durability::kNone;  // load fast, then reopen in the mode
    auto e = Engine::Open(o);
    if (!e.ok()) abort();
    w->data = Load(**e, d == storage::Durability::kNone ? kUsers : 1000, kMessages);
    e->reset();
    o.durability = d;
    w->engine = std::move(Engine::Open(o).value());
  }
  return *w;
}

void BM_GetUserById(benchmark::State& state) {
  World& w = Get(storage::Durability::kNone);
  size_t i = state.thread_index() * 7919;
  for (auto _ : state) {
    const Uuid& id = w.data.users[i++ % w.data.users.size()];
    auto r = w.engine->GetUser(Scope::ForUser(id), id);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetUserById)->Threads(1)->Threads(2)->UseRealTime();

void BM_ListLast20Messages(benchmark::State& state) {
  World& w = Get(storage::Durability::kNone);
  size_t i = state.thread_index() * 7919;
  MessagePageRequest req;
  req.limit = 20;
  for (auto _ : state) {
    size_t k = i++ % w.data.chats.size();
    auto r = w.engine->ListMessages(Scope::ForUser(w.data.users[k]), w.data.chats[k], req);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ListLast20Messages)->Threads(1)->Threads(2)->UseRealTime();

void AppendLoop(benchmark::State& state, storage::Durability d) {
  World& w = Get(d);
  size_t i = state.thread_index() * 7919;
  int n = 0;
  for (auto _ : state) {
    size_t k = i++ % w.data.chats.size();
    auto r = w.engine->AppendMessage(Scope::Service(), Message(w.data.chats[k], n++));
    if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string("durability=") + std::string(storage::DurabilityName(d)));
}
void BM_AppendMessage_None(benchmark::State& s) { AppendLoop(s, storage::Durability::kNone); }
void BM_AppendMessage_Always(benchmark::State& s) { AppendLoop(s, storage::Durability::kAlways); }
BENCHMARK(BM_AppendMessage_None)->Threads(1)->Threads(2)->Threads(8)->UseRealTime();
BENCHMARK(BM_AppendMessage_Always)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

void BM_CreateUserAgent(benchmark::State& state) {
  World& w = Get(storage::Durability::kNone);
  static std::atomic<size_t> next{0};
  for (auto _ : state) {
    // Each (user, agent) pair once: walk users, then agents.
    size_t n = next++;
    size_t user = n % w.data.users.size(), agent = n / w.data.users.size();
    if (agent >= w.data.agents.size()) {
      state.SkipWithError("ran out of (user, agent) pairs");
      break;
    }
    fb::UserAgentT ua;
    ua.user_id = FbId(w.data.users[user]);
    ua.agent_id = FbId(w.data.agents[agent]);
    ua.custom_name = "My helper";
    ua.tags = {"work", "daily"};
    auto r = w.engine->CreateUserAgent(Scope::Service(), ua);
    if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("durability=none");
}
BENCHMARK(BM_CreateUserAgent)->Iterations(100000)->UseRealTime();

}  // namespace
}  // namespace agentstore::bench

BENCHMARK_MAIN();
