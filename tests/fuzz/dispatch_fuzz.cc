// Fuzz target for the request path: frame bytes -> FlatBuffers verifier -> dispatch ->
// engine, on a real engine (temp dir) with sessions of every key scope (service, admin,
// user, tenant-scoped admin and service, unauthenticated). An input is one byte choosing
// the session, then one request frame body.
//
// Two ways to run it:
//  - built with clang and -DAGENTSTORE_LIBFUZZER (-fsanitize=fuzzer): libFuzzer drives
//    LLVMFuzzerTestOneInput;
//  - otherwise (gcc, CI): this file's own seeded mutation driver. It starts from a valid
//    frame of every operation for every session, mutates (bit flips, interesting
//    integers, inserted/erased/duplicated bytes, splices) for --seconds or --runs, and
//    checks every answer is one verified Response. Built with ASan+UBSan, any memory or
//    undefined-behaviour error aborts the run; the input is printed (hex) first, and
//    written to --crash-file, so CI fails and shows the input. A crash file given as an
//    argument is replayed.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "dispatch.h"
#include "request_frames.h"
#include "test_util.h"

// Present when a sanitizer runtime is linked (weak: the plain build runs without it).
extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace agentstore::fuzz {
namespace {

using testing::FrameIds;

struct World {
  testing::TempDir dir;
  ManualClock clock{1'700'000'000'000'000};
  std::unique_ptr<Engine> engine;
  net::ServerCounters counters;
  std::unique_ptr<net::Dispatcher> dispatcher;
  std::vector<net::Session> sessions;  // logged in once; a run works on a copy
  FrameIds ids;
  std::vector<std::vector<uint8_t>> seeds;  // session byte + frame
  std::vector<Op> seed_ops;                 // the operation of each seed
};

// The input being run, for the crash report.
const uint8_t* g_input = nullptr;
size_t g_input_size = 0;
std::string g_crash_file = "dispatch-fuzz-crash.bin";
uint64_t g_answered_ok = 0;  // inputs answered ok: the seeds and mutations reach the engine
// The engine keeps what earlier inputs wrote, so a finding may need the run before it:
// --seed S --runs N+1 replays the whole run up to mutated input N.
uint64_t g_seed = 0, g_run = 0;
bool g_mutating = false;

// Once: the sanitizer's death callback, the abort that follows and a failed check may each
// call it for the same input.
void ReportInput() {
  if (!g_input) return;
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < g_input_size; ++i) {
    hex.push_back(kHex[g_input[i] >> 4]);
    hex.push_back(kHex[g_input[i] & 15]);
  }
  fprintf(stderr, "\n==dispatch_fuzz== failing input (%zu bytes, session %d): %s\n", g_input_size,
          g_input_size ? g_input[0] : -1, hex.c_str());
  if (FILE* f = fopen(g_crash_file.c_str(), "wb")) {
    fwrite(g_input, 1, g_input_size, f);
    fclose(f);
    fprintf(stderr, "==dispatch_fuzz== written to %s\n", g_crash_file.c_str());
  }
  if (g_mutating)
    fprintf(stderr, "==dispatch_fuzz== mutated input %llu of the run: --seed %llu --runs %llu\n",
            static_cast<unsigned long long>(g_run), static_cast<unsigned long long>(g_seed),
            static_cast<unsigned long long>(g_run + 1));
  g_input = nullptr;
}

// One input running longer than this is reported as a hang (SIGALRM), with the input.
constexpr unsigned kHangSeconds = 60;

void OnSignal(int sig) {
  if (sig == SIGALRM)
    fprintf(stderr, "\n==dispatch_fuzz== one input ran for over %u s (a hang?)\n", kHangSeconds);
  ReportInput();
  signal(sig, SIG_DFL);
  raise(sig);
}

World& TheWorld() {
  static World* w = [] {
    auto* w = new World;
    // backup_create with a mutated relative directory lands in the temp dir.
    if (chdir(w->dir.path().c_str()) != 0) abort();
    EngineOptions o;
    o.data_dir = w->dir.sub("data");
    o.durability = storage::Durability::kNone;
    o.clock = &w->clock;
    o.shards = 2;
    o.random_seed = 42;
    o.memory.dim = 8;
    o.memory.background = false;
    w->engine = testing::Must(Engine::Open(o));
    Engine& e = *w->engine;
    Scope svc = Scope::Service();
    fb::TenantT t;
    t.name = "T";
    t.slug = "t";
    w->ids.tenant = ToUuid(testing::Must(e.CreateTenant(svc, t))->id());
    fb::TenantT t2;
    t2.name = "O";
    t2.slug = "o";
    Uuid other = ToUuid(testing::Must(e.CreateTenant(svc, t2))->id());
    fb::UserT u;
    u.email = "u@x.example";
    u.tenant_id = testing::FbId(w->ids.tenant);
    w->ids.user = ToUuid(testing::Must(e.CreateUser(svc, u))->id());
    fb::UserT v;
    v.email = "v@x.example";
    v.tenant_id = testing::FbId(other);
    Uuid victim = ToUuid(testing::Must(e.CreateUser(svc, v))->id());
    fb::AgentT a;
    a.name = "A";
    a.is_public = true;
    w->ids.agent = ToUuid(testing::Must(e.CreateAgent(svc, a))->id());
    fb::UserAgentT ua;
    ua.user_id = testing::FbId(w->ids.user);
    ua.agent_id = testing::FbId(w->ids.agent);
    w->ids.user_agent = ToUuid(testing::Must(e.CreateUserAgent(svc, ua))->id());
    fb::ChatT c;
    c.user_id = testing::FbId(w->ids.user);
    w->ids.chat = ToUuid(testing::Must(e.CreateChat(svc, c))->id());
    fb::MessageT m;
    m.chat_id = testing::FbId(w->ids.chat);
    m.parts = R"([{"type":"text","text":"hi"}])";
    w->ids.message = ToUuid(testing::Must(e.AppendMessage(svc, m))->id());
    fb::UserMemoryT mem;
    mem.user_id = testing::FbId(w->ids.user);
    mem.memory_key = "k0";
    mem.memory_value = R"({"content":"hello"})";
    mem.embedding = std::vector<float>(8, 0.5f);
    w->ids.memory = ToUuid(testing::Must(e.UpsertMemory(svc, mem))->id());
    fb::RateLimitConfigT rl;
    rl.scope = fb::LimitScope::user;
    rl.scope_id = testing::FbId(w->ids.user);
    rl.limit_type = fb::LimitType::requests_per_minute;
    rl.limit_value = 1000000;
    rl.is_active = true;
    w->ids.limit = ToUuid(testing::Must(e.PutLimitConfig(svc, rl))->id());
    // Targets for the destructive seeds, so the others keep finding their records.
    fb::TenantT dt;
    dt.name = "D";
    dt.slug = "d";
    w->ids.doomed_tenant = ToUuid(testing::Must(e.CreateTenant(svc, dt))->id());
    fb::UserT du;
    du.email = "doomed@x.example";
    du.tenant_id = testing::FbId(w->ids.tenant);
    w->ids.doomed_user = ToUuid(testing::Must(e.CreateUser(svc, du))->id());
    fb::AgentT da;
    da.name = "D";
    w->ids.doomed_agent = ToUuid(testing::Must(e.CreateAgent(svc, da))->id());
    fb::UserAgentT dua;
    dua.user_id = testing::FbId(w->ids.doomed_user);
    dua.agent_id = testing::FbId(w->ids.agent);
    w->ids.doomed_user_agent = ToUuid(testing::Must(e.CreateUserAgent(svc, dua))->id());
    fb::ChatT dc;
    dc.user_id = testing::FbId(w->ids.user);
    w->ids.doomed_chat = ToUuid(testing::Must(e.CreateChat(svc, dc))->id());
    mem.memory_key = "doomed";
    mem.id.reset();
    w->ids.doomed_memory = ToUuid(testing::Must(e.UpsertMemory(svc, mem))->id());
    fb::ApiKeyT dk;
    dk.role = fb::KeyRole::admin;
    dk.tenant_id = testing::FbId(w->ids.tenant);
    w->ids.doomed_key = ToUuid(testing::Must(e.CreateApiKey(svc, dk)).key->id());
    fb::AgentT sa;
    sa.name = "S";
    sa.is_public = true;
    w->ids.spare_agent = ToUuid(testing::Must(e.CreateAgent(svc, sa))->id());
    w->ids.backup_dir = w->dir.sub("backup");
    // A concurrent limit (the one the limit_config_put seed sets) and a lease of it.
    rl.id.reset();
    rl.limit_type = fb::LimitType::concurrent;
    rl.limit_value = 3;
    testing::Must(e.PutLimitConfig(svc, rl));
    LimitCheckRequest check;
    check.user = w->ids.user;
    auto lease = testing::Must(e.CheckLimits(svc, check)).lease;
    if (!lease) abort();
    w->ids.lease = *lease;
    // A collection with a kept record, a doomed one and an expired one (for coll_sweep).
    testing::Must(e.DeclareCollection(svc, testing::kFrameCollection));
    for (const auto& id : {w->ids.coll_record, w->ids.doomed_coll_record})
      testing::Must(
          e.PutRecord(svc, w->ids.collection, testing::FrameCollectionRecord(w->ids.user, id)));
    testing::Must(e.PutRecord(svc, w->ids.collection,
                              testing::FrameCollectionRecord(w->ids.user, "", /*expires_at=*/1)));
    w->dispatcher = std::make_unique<net::Dispatcher>(&e, &w->counters, 1u << 30);
    // One session per key scope, plus an unauthenticated one.
    auto key = [&](fb::KeyRole role, std::optional<Uuid> tenant, const Uuid* user) {
      fb::ApiKeyT k;
      k.role = role;
      if (tenant) k.tenant_id = testing::FbId(*tenant);
      if (user) k.user_id = testing::FbId(*user);
      return testing::Must(e.CreateApiKey(svc, k));
    };
    std::vector<NewApiKey> keys = {
        key(fb::KeyRole::service, std::nullopt, nullptr),
        key(fb::KeyRole::admin, std::nullopt, nullptr),
        key(fb::KeyRole::user, std::nullopt, &w->ids.user),
        key(fb::KeyRole::user, std::nullopt, &victim),
        key(fb::KeyRole::admin, w->ids.tenant, nullptr),
        key(fb::KeyRole::service, w->ids.tenant, nullptr),
    };
    w->ids.key = ToUuid(keys[3].key->id());
    for (const auto& k : keys) {
      net::Session s;
      FrameIds ids;
      ids.secret = k.secret;
      auto frame = testing::FrameFor(Op::authenticate, ids);
      flatbuffers::FlatBufferBuilder out;
      w->dispatcher->Handle(s, frame.data(), frame.size(), out);
      if (!s.scope) {
        fprintf(stderr, "fuzz setup: a key did not authenticate\n");
        abort();
      }
      w->sessions.push_back(s);
    }
    w->sessions.push_back(net::Session{});  // unauthenticated
    w->ids.secret = keys[2].secret;
    // Seeds: every operation, on every session, with and without act_as.
    for (size_t s = 0; s < w->sessions.size(); ++s)
      for (const auto& info : Operations())
        for (const Uuid* as : std::initializer_list<const Uuid*>{nullptr, &w->ids.user}) {
          std::vector<uint8_t> seed{static_cast<uint8_t>(s)};
          auto frame = testing::FrameFor(info.op, w->ids, 11, as);
          seed.insert(seed.end(), frame.begin(), frame.end());
          w->seeds.push_back(std::move(seed));
          w->seed_ops.push_back(info.op);
        }
    return w;
  }();
  return *w;
}

// Runs one input; aborts (with the input reported) when the answer is not one verified
// Response.
// Returns the answer's code.
proto::ErrorCode RunOne(const uint8_t* data, size_t size) {
  if (size < 1) return proto::ErrorCode::invalid_argument;
  World& w = TheWorld();
  g_input = data;
  g_input_size = size;
#ifndef AGENTSTORE_LIBFUZZER  // libFuzzer times inputs itself (-timeout), with SIGALRM too
  alarm(kHangSeconds);
#endif
  net::Session session = w.sessions[data[0] % w.sessions.size()];
  // The frame in an 8-aligned buffer, as the server hands it over (server.cc).
  std::vector<uint64_t> frame((size - 1 + 7) / 8);
  if (size > 1) std::memcpy(frame.data(), data + 1, size - 1);
  flatbuffers::FlatBufferBuilder out;
  w.dispatcher->Handle(session, reinterpret_cast<const uint8_t*>(frame.data()), size - 1, out);
  flatbuffers::Verifier v(out.GetBufferPointer(), out.GetSize());
  if (!v.VerifyBuffer<proto::Response>(nullptr)) {
    fprintf(stderr, "==dispatch_fuzz== the answer is not a valid Response\n");
    ReportInput();
    abort();
  }
  const auto* resp = flatbuffers::GetRoot<proto::Response>(out.GetBufferPointer());
#ifndef AGENTSTORE_LIBFUZZER
  alarm(0);
#endif
  g_answered_ok += resp->code() == proto::ErrorCode::ok;
  if (getenv("DISPATCH_FUZZ_VERBOSE"))
    fprintf(stderr, "session %d: %s %s\n", data[0], proto::EnumNameErrorCode(resp->code()),
            resp->message() ? resp->message()->c_str() : "");
  g_input = nullptr;
  return resp->code();
}

// ---- the mutation driver ----

void Mutate(std::vector<uint8_t>& in, std::mt19937_64& rng, const World& w) {
  static const int64_t kInteresting[] = {0,         1,         -1,     0x7f,      0x80,
                                         0xff,      0x7fff,    0xffff, INT32_MAX, INT32_MIN,
                                         INT64_MAX, INT64_MIN, 1000,   1001};
  auto pos = [&](size_t n) { return n ? rng() % n : 0; };
  int steps = 1 + static_cast<int>(rng() % 4);
  for (int s = 0; s < steps; ++s) {
    switch (rng() % 8) {
      case 0:  // flip a bit
        if (in.size() > 1) in[1 + pos(in.size() - 1)] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1:  // a random byte
        if (in.size() > 1) in[1 + pos(in.size() - 1)] = static_cast<uint8_t>(rng());
        break;
      case 2: {  // an interesting integer, 1/2/4/8 bytes, little-endian
        if (in.size() < 9) break;
        int64_t x = kInteresting[rng() % std::size(kInteresting)];
        size_t width = size_t{1} << (rng() % 4);
        size_t at = 1 + pos(in.size() - width);
        std::memcpy(&in[at], &x, width);
        break;
      }
      case 3:  // insert bytes
        in.insert(in.begin() + static_cast<long>(1 + pos(in.size())), 1 + rng() % 8,
                  static_cast<uint8_t>(rng()));
        break;
      case 4:  // erase bytes
        if (in.size() > 2) {
          size_t at = 1 + pos(in.size() - 1);
          size_t n = std::min<size_t>(1 + rng() % 8, in.size() - at);
          in.erase(in.begin() + static_cast<long>(at), in.begin() + static_cast<long>(at + n));
        }
        break;
      case 5: {  // duplicate a chunk
        if (in.size() < 3) break;
        size_t at = 1 + pos(in.size() - 1);
        size_t n = std::min<size_t>(1 + rng() % 16, in.size() - at);
        std::vector<uint8_t> chunk(in.begin() + static_cast<long>(at),
                                   in.begin() + static_cast<long>(at + n));
        in.insert(in.begin() + static_cast<long>(1 + pos(in.size())), chunk.begin(), chunk.end());
        break;
      }
      case 6: {  // splice the tail of another seed
        const auto& other = w.seeds[rng() % w.seeds.size()];
        size_t cut = 1 + pos(in.size());
        size_t from = 1 + pos(other.size() - 1);
        in.resize(cut);
        in.insert(in.end(), other.begin() + static_cast<long>(from), other.end());
        break;
      }
      case 7:  // another session
        in[0] = static_cast<uint8_t>(rng());
        break;
    }
    if (in.size() > (1u << 16)) in.resize(1u << 16);
  }
}

int Main(int argc, char** argv) {
  double seconds = 10;
  uint64_t runs = 0, seed = 1;
  std::vector<std::string> replay;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--seconds")
      seconds = std::stod(value());
    else if (a == "--runs")
      runs = std::stoull(value());
    else if (a == "--seed")
      seed = std::stoull(value());
    else if (a == "--crash-file")
      g_crash_file = value();
    else
      replay.push_back(std::filesystem::absolute(a).string());  // before the world's chdir
  }
  // Absolute: setting up the world moves into its temp dir.
  g_crash_file = std::filesystem::absolute(g_crash_file).string();
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM}) signal(sig, OnSignal);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(ReportInput);
  World& w = TheWorld();
  if (!replay.empty()) {
    for (const auto& path : replay) {
      std::ifstream f(path, std::ios::binary);
      if (!f) {
        fprintf(stderr, "dispatch_fuzz: cannot read %s\n", path.c_str());
        return 2;
      }
      std::vector<uint8_t> in((std::istreambuf_iterator<char>(f)), {});
      RunOne(in.data(), in.size());
      printf("replayed %s: ok\n", path.c_str());
    }
    return 0;
  }
  // Every operation of the op table must have a seed some session answers ok: a new
  // operation without arguments in request_frames.h (or whose seed no longer works) would
  // otherwise be fuzzed only as argument errors.
  std::vector<bool> reached(kOperationCount, false);
  for (size_t i = 0; i < w.seeds.size(); ++i)
    if (RunOne(w.seeds[i].data(), w.seeds[i].size()) == proto::ErrorCode::ok)
      reached[static_cast<size_t>(w.seed_ops[i])] = true;
  printf("dispatch_fuzz: %zu seeds, %llu answered ok\n", w.seeds.size(),
         static_cast<unsigned long long>(g_answered_ok));
  bool all = true;
  // subscribe/unsubscribe need a connection that carries push frames (feed_e2e_test
  // covers them); the in-process dispatcher answers not_implemented / not_found, so their
  // seeds reach argument decoding only.
  reached[static_cast<size_t>(Op::subscribe)] = reached[static_cast<size_t>(Op::unsubscribe)] =
      true;
  for (const auto& info : Operations())
    if (!reached[static_cast<size_t>(info.op)]) {
      fprintf(stderr,
              "dispatch_fuzz: no seed of %.*s is answered ok (tests/net/request_frames.h)\n",
              static_cast<int>(info.name.size()), info.name.data());
      all = false;
    }
  if (!all) return 1;
  std::mt19937_64 rng(seed);
  g_seed = seed;
  g_mutating = true;
  auto start = std::chrono::steady_clock::now();
  uint64_t n = 0;
  while (true) {
    g_run = n;
    if (runs ? n >= runs
             : std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >=
                   seconds)
      break;
    std::vector<uint8_t> in = w.seeds[rng() % w.seeds.size()];
    Mutate(in, rng, w);
    RunOne(in.data(), in.size());
    ++n;
  }
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string dir = w.dir.path();
  w.dispatcher.reset();
  w.engine.reset();
  std::error_code ec;
  if (chdir("/") == 0) std::filesystem::remove_all(dir, ec);
  printf(
      "dispatch_fuzz: %llu mutated inputs in %.1f s (seed %llu), %llu answered ok in all, "
      "no finding\n",
      static_cast<unsigned long long>(n), took, static_cast<unsigned long long>(seed),
      static_cast<unsigned long long>(g_answered_ok));
  return 0;
}

}  // namespace
}  // namespace agentstore::fuzz

#ifdef AGENTSTORE_LIBFUZZER
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  agentstore::fuzz::RunOne(data, size);
  return 0;
}
#else
int main(int argc, char** argv) { return agentstore::fuzz::Main(argc, argv); }
#endif
