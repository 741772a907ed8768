// In-process engine micro-benchmarks: record encode/decode (FlatBuffers, the stored and
// wire form), point read, last-20 messages, append_message and track_agent_usage under
// durability none and always (many threads, group commit), create user_agent. Each benchmark names
// its durability. Run: build/benchmarks/engine_bench
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

// track_agent_usage: 256 users of one tenant with tokens and api_calls quotas, each with
// a user_agent; threads spread over the users (so over the shards) and meet in the
// tenant/everyone rollups and the quotas.
struct TrackWorld {
  std::unique_ptr<Engine> engine;
  Uuid agent;
  std::vector<Uuid> users;
};

TrackWorld& GetTrack(storage::Durability d) {
  static std::mutex mu;
  static std::unique_ptr<TrackWorld> worlds[3];
  std::lock_guard lock(mu);
  auto& w = worlds[static_cast<int>(d)];
  if (!w) {
    w = std::make_unique<TrackWorld>();
    EngineOptions o;
    o.data_dir = TempPath(std::string("track-") + std::string(storage::DurabilityName(d)));
    o.durability = d;
    w->engine = std::move(Engine::Open(o).value());
    Engine& e = *w->engine;
    fb::TenantT t;
    t.name = "bench";
    t.slug = "bench";
    Uuid tenant = ToUuid(e.CreateTenant(Scope::Service(), t)->get()->id());
    for (auto type : {fb::QuotaType::tokens, fb::QuotaType::api_calls}) {
      fb::QuotaT q;
      q.tenant_id = FbId(tenant);
      q.quota_type = type;
      q.quota_limit = INT64_MAX / 2;
      q.period = fb::QuotaPeriod::month;
      if (!e.SetQuota(Scope::Service(), q).ok()) abort();
    }
    fb::AgentT a;
    a.name = "bench agent";
    a.is_public = true;
    w->agent = ToUuid(e.CreateAgent(Scope::Admin(), a)->get()->id());
    for (int i = 0; i < 256; ++i) {
      fb::UserT u;
      u.email = "track" + std::to_string(i) + "@example.com";
      u.tenant_id = FbId(tenant);
      Uuid uid = ToUuid(e.CreateUser(Scope::Service(), u)->get()->id());
      fb::UserAgentT ua;
      ua.user_id = FbId(uid);
      ua.agent_id = FbId(w->agent);
      if (!e.CreateUserAgent(Scope::Service(), ua).ok()) abort();
      w->users.push_back(uid);
    }
  }
  return *w;
}

void TrackLoop(benchmark::State& state, storage::Durability d) {
  TrackWorld& w = GetTrack(d);
  size_t i = state.thread_index() * 37;
  int n = 0;
  for (auto _ : state) {
    fb::UsageLogT l;
    l.user_id = FbId(w.users[i++ % w.users.size()]);
    l.agent_id = FbId(w.agent);
    l.model = n % 2 ? "gpt-4o" : "claude-3.5";
    l.provider = n % 2 ? "openai" : "anthropic";
    l.input_tokens = 300;
    l.output_tokens = 600 + n++ % 100;
    l.input_cost = 900;
    l.output_cost = 7200;
    auto r = w.engine->TrackAgentUsage(Scope::Service(), l);
    if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string("durability=") + std::string(storage::DurabilityName(d)));
}
void BM_TrackAgentUsage_None(benchmark::State& s) { TrackLoop(s, storage::Durability::kNone); }
void BM_TrackAgentUsage_Always(benchmark::State& s) { TrackLoop(s, storage::Durability::kAlways); }
BENCHMARK(BM_TrackAgentUsage_None)->Threads(1)->Threads(2)->Threads(8)->UseRealTime();
BENCHMARK(BM_TrackAgentUsage_Always)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

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

// Record encode / decode: a ~20-field user and a user_agent with its 54 columns, packed
// from the object form, verified (as every record from the wire or disk is) and read.
fb::UserAgentT SampleUserAgent() {
  fb::UserAgentT ua;
  ua.user_id = FbId(Uuid{{1, 2, 3}});
  ua.agent_id = FbId(Uuid{{4, 5, 6}});
  ua.custom_name = "My regulatory helper";
  ua.custom_system_prompt = "Always cite the FDA guidance you rely on.";
  ua.is_favorite = true;
  ua.folder = "work";
  ua.tags = {"work", "daily"};
  ua.usage_count = 42;
  ua.total_tokens_used = 123456;
  ua.status = "active";
  ua.settings = R"({"temperature":0.2})";
  ua.notification_settings = R"({"email": true, "in_app": true})";
  return ua;
}

template <typename T>
void EncodeLoop(benchmark::State& state, const typename T::NativeTableType& obj) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  size_t bytes = 0;
  for (auto _ : state) {
    fbb.Clear();
    fbb.Finish(T::Pack(fbb, &obj));
    bytes = fbb.GetSize();
    benchmark::DoNotOptimize(fbb.GetBufferPointer());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::to_string(bytes) + " bytes");
}

template <typename T>
void DecodeLoop(benchmark::State& state, const typename T::NativeTableType& obj, bool unpack) {
  flatbuffers::FlatBufferBuilder fbb(1024);
  fbb.Finish(T::Pack(fbb, &obj));
  std::string bytes(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
  for (auto _ : state) {
    flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (!v.VerifyBuffer<T>(nullptr)) state.SkipWithError("verify failed");
    const T* rec = flatbuffers::GetRoot<T>(bytes.data());
    if (unpack) {
      typename T::NativeTableType out;
      rec->UnPackTo(&out);
      benchmark::DoNotOptimize(out);
    } else {
      benchmark::DoNotOptimize(rec->id());
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(unpack ? "verify + unpack to object" : "verify + zero-copy read");
}

void BM_EncodeUser(benchmark::State& s) {
  EncodeLoop<fb::User>(s, SampleUser("ada@example.com", 7));
}
void BM_DecodeUserVerifyRead(benchmark::State& s) {
  DecodeLoop<fb::User>(s, SampleUser("ada@example.com", 7), false);
}
void BM_DecodeUserUnpack(benchmark::State& s) {
  DecodeLoop<fb::User>(s, SampleUser("ada@example.com", 7), true);
}
void BM_EncodeUserAgent(benchmark::State& s) { EncodeLoop<fb::UserAgent>(s, SampleUserAgent()); }
void BM_DecodeUserAgentUnpack(benchmark::State& s) {
  DecodeLoop<fb::UserAgent>(s, SampleUserAgent(), true);
}
BENCHMARK(BM_EncodeUser);
BENCHMARK(BM_DecodeUserVerifyRead);
BENCHMARK(BM_DecodeUserUnpack);
BENCHMARK(BM_EncodeUserAgent);
BENCHMARK(BM_DecodeUserAgentUnpack);

}  // namespace
}  // namespace agentstore::bench

BENCHMARK_MAIN();
