// Crash safety under kill -9: a child process appends messages (and creates chats)
// from several threads with durability `always`, reporting each acknowledged write to
// the parent through a pipe. The parent SIGKILLs it at a random moment, reopens the
// store, and checks that (1) every acknowledged write is there and (2) nothing is
// half-applied: every chat's counters equal what its messages add up to. The same
// pattern under a track_agent_usage load: logs, user_agent counters, rollups, quotas and
// chat totals agree with each other after every kill.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <random>
#include <set>
#include <thread>

#include "test_util.h"

namespace agentstore::testing {
namespace {

struct Ack {
  uint8_t kind;  // 1: chat created, 2: message appended
  uint8_t id[16];
  uint8_t chat[16];
};
static_assert(sizeof(Ack) < PIPE_BUF, "acks must be written atomically");

// A child's engine on `dir` (durability always; `seed` makes its ids its own); exits 3
// when it cannot open.
std::unique_ptr<Engine> OpenChildEngine(const std::string& dir, uint64_t seed) {
  EngineOptions o;
  o.data_dir = dir;
  o.durability = storage::Durability::kAlways;
  o.random_seed = seed;
  auto engine = Engine::Open(o);
  if (!engine.ok()) _exit(3);
  return std::move(engine).value();
}

// A new user for this cycle (exits 4 on failure).
Uuid ChildUser(Engine& e, const std::string& email) {
  fb::UserT u;
  u.email = email;
  auto user = e.CreateUser(Scope::Service(), u);
  if (!user.ok()) _exit(4);
  return ToUuid(user->get()->id());
}

[[noreturn]] void ChildWriter(const std::string& dir, int fd, uint64_t seed) {
  auto engine = OpenChildEngine(dir, seed);
  Engine& e = *engine;
  // Each cycle adds a user so that chats land in different shards.
  Uuid uid = ChildUser(e, "crash" + std::to_string(seed) + "@x.com");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 31 + t);
      Uuid chat;
      for (int i = 0;; ++i) {
        if (i % 25 == 0) {
          fb::ChatT c;
          c.user_id = std::make_unique<fb::Uuid>(ToFb(uid));
          auto r = e.CreateChat(Scope::Service(), c);
          if (!r.ok()) _exit(5);
          chat = ToUuid(r->get()->id());
          Ack a{1, {}, {}};
          memcpy(a.id, chat.bytes.data(), 16);
          memcpy(a.chat, chat.bytes.data(), 16);
          if (write(fd, &a, sizeof a) != sizeof a) _exit(6);
        }
        fb::MessageT m;
        m.chat_id = std::make_unique<fb::Uuid>(ToFb(chat));
        m.parts = R"([{"type":"text","text":"crash test"}])";
        m.input_tokens = static_cast<int64_t>(rng() % 100);
        m.output_tokens = static_cast<int64_t>(rng() % 100);
        m.cost = static_cast<int64_t>(rng() % 1000);
        auto r = e.AppendMessage(Scope::Service(), m);
        if (!r.ok()) _exit(7);
        Ack a{2, {}, {}};
        memcpy(a.id, ToUuid(r->get()->id()).bytes.data(), 16);
        memcpy(a.chat, chat.bytes.data(), 16);
        if (write(fd, &a, sizeof a) != sizeof a) _exit(8);
      }
    });
  }
  for (auto& th : threads) th.join();
  _exit(0);
}

// Forks a child that runs `child(write_fd)` (which writes Acks and never returns), reads
// its acks for `run_ms`, SIGKILLs it mid-flight and collects the acks still in the pipe.
// Fails if the child ended on its own.
template <typename Child>
::testing::AssertionResult RunThenKill(Child child, int run_ms, std::vector<Ack>* acked) {
  int fds[2];
  if (pipe(fds) != 0) return ::testing::AssertionFailure() << "pipe failed";
  pid_t pid = fork();
  if (pid < 0) return ::testing::AssertionFailure() << "fork failed";
  if (pid == 0) {
    close(fds[0]);
    child(fds[1]);
    _exit(0);  // children _exit themselves; never fall back into the test
  }
  close(fds[1]);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(run_ms);
  Ack a;
  size_t got = 0;
  auto drain = [&](int timeout_ms) {
    pollfd p{fds[0], POLLIN, 0};
    while (poll(&p, 1, timeout_ms) > 0) {
      ssize_t n = read(fds[0], reinterpret_cast<char*>(&a) + got, sizeof a - got);
      if (n <= 0) return;
      got += n;
      if (got == sizeof a) {
        acked->push_back(a);
        got = 0;
      }
    }
  };
  while (std::chrono::steady_clock::now() < deadline) drain(5);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  drain(0);  // acks written before the kill are still in the pipe
  close(fds[0]);
  if (!WIFSIGNALED(status))
    return ::testing::AssertionFailure() << "child exited early with " << WEXITSTATUS(status);
  return ::testing::AssertionSuccess();
}

TEST(Crash, AcknowledgedWritesSurviveKill9AndNothingIsHalfApplied) {
  TempDir dir;
  std::string data = dir.sub("data");
  std::mt19937 rng(20261123);
  std::vector<Ack> acked;
  constexpr int kCycles = 24;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    // Let it write for 50-400 ms, reading acks meanwhile, then kill it mid-flight.
    ASSERT_TRUE(RunThenKill([&](int fd) { ChildWriter(data, fd, cycle + 1); },
                            50 + static_cast<int>(rng() % 350), &acked));

    EngineOptions o;
    o.data_dir = data;
    auto engine = Engine::Open(o);
    ASSERT_OK(engine);
    Engine& e = **engine;
    for (const Ack& ack : acked) {
      Uuid id = Uuid::FromBytes(ack.id);
      if (ack.kind == 1) {
        ASSERT_OK(e.GetChat(Scope::Service(), id)) << "cycle " << cycle;
      } else {
        auto m = e.GetMessage(Scope::Service(), id);
        ASSERT_OK(m) << "cycle " << cycle;
        EXPECT_EQ(ToUuid(m->get()->chat_id()), Uuid::FromBytes(ack.chat));
      }
    }
    // Chat totals equal the sums over their messages: no append is half-applied.
    PageRequest all_users;
    all_users.limit = 1000;
    for (const auto& u : Must(e.ListUsers(Scope::Service(), all_users)).rows) {
      PageRequest pr;
      pr.limit = 1000;
      for (const auto& c : Must(e.ListChats(Scope::Service(), ToUuid(u->id()), pr)).rows) {
        MessagePageRequest mr;
        mr.limit = 1000;
        auto msgs = e.ListMessages(Scope::Service(), ToUuid(c->id()), mr);
        ASSERT_OK(msgs);
        int64_t in = 0, out = 0, cost = 0;
        for (const auto& m : msgs->rows)
          in += m->input_tokens(), out += m->output_tokens(), cost += m->cost();
        EXPECT_EQ(c->message_count(), static_cast<int64_t>(msgs->rows.size()));
        EXPECT_EQ(c->total_input_tokens(), in);
        EXPECT_EQ(c->total_output_tokens(), out);
        EXPECT_EQ(c->total_cost(), cost);
      }
    }
  }
  EXPECT_GT(acked.size(), static_cast<size_t>(kCycles * 10)) << "the child should have written";
  std::cout << "[ crash ] " << kCycles << " kill -9 cycles, " << acked.size()
            << " acknowledged writes verified\n";
}

// ---- batched import under kill -9 ----

constexpr int kImportBatch = 40;  // messages per record_import batch, all of one chat

// The id of message `j` of a batch whose first message is `first`: ids count up in
// their last six bytes, so an ack names its whole batch.
Uuid NthOfBatch(Uuid first, int j) {
  uint64_t tail = 0;
  for (int i = 10; i < 16; ++i) tail = tail << 8 | first.bytes[i];
  tail += static_cast<uint64_t>(j);
  for (int i = 15; i >= 10; --i, tail >>= 8) first.bytes[i] = static_cast<uint8_t>(tail);
  return first;
}

// Two threads, each importing batches of messages into its own chat (durability
// `always`) and acking a batch (kind 3: its first message id, its chat) once
// ImportRecords has returned.
[[noreturn]] void ChildImporter(const std::string& dir, int fd, uint64_t seed) {
  auto engine = OpenChildEngine(dir, seed);
  Engine& e = *engine;
  Uuid uid = ChildUser(e, "import" + std::to_string(seed) + "@x.com");
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      fb::ChatT c;
      c.user_id = std::make_unique<fb::Uuid>(ToFb(uid));
      auto chat = e.CreateChat(Scope::Service(), c);
      if (!chat.ok()) _exit(5);
      Uuid cid = ToUuid(chat->get()->id());
      for (uint32_t b = 0;; ++b) {
        char text[40];
        snprintf(text, sizeof text, "0190f3a2-%04x-7%03x-8000-%012llx", static_cast<unsigned>(seed),
                 t, static_cast<unsigned long long>(b) * 1000);
        Uuid first = *Uuid::Parse(text);
        std::vector<std::string> jsons;
        for (int j = 0; j < kImportBatch; ++j)
          jsons.push_back(R"({"id":")" + NthOfBatch(first, j).ToString() + R"(","chat_id":")" +
                          cid.ToString() + R"(","user_id":")" + uid.ToString() +
                          R"(","role":"user","parts":[{"type":"text","text":"imported"}],)" +
                          R"("input_tokens":)" + std::to_string(j + 1) +
                          R"(,"output_tokens":2,"cost":3,"created_at":)" +
                          std::to_string(1763596800000000 + b * 1000 + j) + "}");
        std::vector<std::string_view> views(jsons.begin(), jsons.end());
        if (!e.ImportRecords(Scope::Service(), RecordType::kMessage, views).ok()) _exit(7);
        Ack a{3, {}, {}};
        memcpy(a.id, first.bytes.data(), 16);
        memcpy(a.chat, cid.bytes.data(), 16);
        if (write(fd, &a, sizeof a) != sizeof a) _exit(8);
      }
    });
  }
  for (auto& th : threads) th.join();
  _exit(0);
}

// Every acknowledged batch is there whole; no batch is there in part (each chat holds a
// whole number of batches, and its totals are what its messages add up to).
TEST(Crash, AcknowledgedImportBatchesSurviveKill9Whole) {
  TempDir dir;
  std::string data = dir.sub("data");
  std::mt19937 rng(20261127);
  std::vector<Ack> acked;
  constexpr int kCycles = 12;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    ASSERT_TRUE(RunThenKill([&](int fd) { ChildImporter(data, fd, cycle + 1); },
                            50 + static_cast<int>(rng() % 350), &acked));
    EngineOptions o;
    o.data_dir = data;
    auto engine = Engine::Open(o);
    ASSERT_OK(engine);
    Engine& e = **engine;
    for (const Ack& ack : acked) {
      Uuid first = Uuid::FromBytes(ack.id);
      for (int j = 0; j < kImportBatch; ++j) {
        auto m = e.GetMessage(Scope::Service(), NthOfBatch(first, j));
        ASSERT_OK(m) << "cycle " << cycle << ", message " << j << " of an acknowledged batch";
        EXPECT_EQ(ToUuid(m->get()->chat_id()), Uuid::FromBytes(ack.chat));
      }
    }
    PageRequest all_users;
    all_users.limit = 1000;
    for (const auto& u : Must(e.ListUsers(Scope::Service(), all_users)).rows) {
      PageRequest pr;
      pr.limit = 1000;
      for (const auto& c : Must(e.ListChats(Scope::Service(), ToUuid(u->id()), pr)).rows) {
        int64_t n = 0, in = 0, out = 0, cost = 0;
        MessagePageRequest mr;
        mr.limit = 1000;
        mr.from_end = false;
        do {
          auto page = Must(e.ListMessages(Scope::Service(), ToUuid(c->id()), mr));
          for (const auto& m : page.rows)
            ++n, in += m->input_tokens(), out += m->output_tokens(), cost += m->cost();
          mr.cursor = page.next_cursor;
        } while (!mr.cursor.empty());
        EXPECT_EQ(n % kImportBatch, 0) << "a batch is there in part (cycle " << cycle << ")";
        EXPECT_EQ(c->message_count(), n);
        EXPECT_EQ(c->total_input_tokens(), in);
        EXPECT_EQ(c->total_output_tokens(), out);
        EXPECT_EQ(c->total_cost(), cost);
      }
    }
  }
  EXPECT_GT(acked.size(), static_cast<size_t>(kCycles)) << "the child should have imported";
  std::cout << "[ crash ] " << kCycles << " kill -9 cycles, " << acked.size()
            << " acknowledged import batches of " << kImportBatch << " verified\n";
}

// ---- track_agent_usage under kill -9 ----

const Uuid kCrashTenant = *Uuid::Parse("0190f3a2-7b1c-7def-8123-000000000001");
const Uuid kCrashAgent = *Uuid::Parse("0190f3a2-7b1c-7def-8123-000000000002");

// `users` users of one tenant (one per thread when users == threads, so that calls run
// in different shards and meet only in the tenant/everyone rollups and the quotas).
[[noreturn]] void ChildTracker(const std::string& dir, int fd, uint64_t seed, int users = 1,
                               int threads_n = 4) {
  auto engine = OpenChildEngine(dir, seed);
  Engine& e = *engine;
  fb::TenantT t;
  t.id = std::make_unique<fb::Uuid>(ToFb(kCrashTenant));
  t.name = "crash";
  t.slug = "crash";
  if (!e.CreateTenant(Scope::Service(), t).ok()) _exit(4);
  fb::AgentT a;
  a.id = std::make_unique<fb::Uuid>(ToFb(kCrashAgent));
  a.name = "crash";
  a.is_public = true;
  if (!e.CreateAgent(Scope::Service(), a).ok()) _exit(4);
  for (auto type : {fb::QuotaType::tokens, fb::QuotaType::api_calls}) {
    fb::QuotaT q;
    q.tenant_id = std::make_unique<fb::Uuid>(ToFb(kCrashTenant));
    q.quota_type = type;
    q.quota_limit = 1'000'000'000;
    q.period = fb::QuotaPeriod::none;
    if (!e.SetQuota(Scope::Service(), q).ok()) _exit(4);
  }
  std::vector<Uuid> uids, chats;
  for (int n = 0; n < users; ++n) {
    fb::UserT u;
    u.email = "track" + std::to_string(seed) + "-" + std::to_string(n) + "@x.com";
    u.tenant_id = std::make_unique<fb::Uuid>(ToFb(kCrashTenant));
    auto user = e.CreateUser(Scope::Service(), u);
    if (!user.ok()) _exit(4);
    Uuid uid = ToUuid(user->get()->id());
    fb::UserAgentT ua;
    ua.user_id = std::make_unique<fb::Uuid>(ToFb(uid));
    ua.agent_id = std::make_unique<fb::Uuid>(ToFb(kCrashAgent));
    if (!e.CreateUserAgent(Scope::Service(), ua).ok()) _exit(4);
    fb::ChatT c;
    c.user_id = std::make_unique<fb::Uuid>(ToFb(uid));
    auto chat = e.CreateChat(Scope::Service(), c);
    if (!chat.ok()) _exit(4);
    uids.push_back(uid);
    chats.push_back(ToUuid(chat->get()->id()));
  }
  std::vector<std::thread> threads;
  for (int th = 0; th < threads_n; ++th) {
    threads.emplace_back([&, th] {
      std::mt19937_64 rng(seed * 31 + th);
      const Uuid& uid = uids[th % users];
      const Uuid& chat_id = chats[th % users];
      for (;;) {
        fb::UsageLogT l;
        l.user_id = std::make_unique<fb::Uuid>(ToFb(uid));
        l.agent_id = std::make_unique<fb::Uuid>(ToFb(kCrashAgent));
        if (rng() % 2) l.chat_id = std::make_unique<fb::Uuid>(ToFb(chat_id));
        l.model = rng() % 2 ? "gpt-4o" : "claude";
        l.input_tokens = static_cast<int64_t>(rng() % 1000);
        l.output_tokens = static_cast<int64_t>(rng() % 1000);
        l.input_cost = static_cast<int64_t>(rng() % 10000);
        l.success = rng() % 4 != 0;
        auto r = e.TrackAgentUsage(Scope::Service(), l);
        if (!r.ok()) _exit(7);
        Ack ack{3, {}, {}};
        memcpy(ack.id, ToUuid(r->log->id()).bytes.data(), 16);
        if (write(fd, &ack, sizeof ack) != sizeof ack) _exit(8);
      }
    });
  }
  for (auto& th : threads) th.join();
  _exit(0);
}

// Each cycle runs `min_ms` plus up to 300 ms (the child first sets up its users).
void TrackUnderKill9(int users, int threads, int cycles, uint32_t seed, int min_ms) {
  TempDir dir;
  std::string data = dir.sub("data");
  std::mt19937 rng(seed);
  std::vector<Ack> acked;
  const int kCycles = cycles;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    ASSERT_TRUE(RunThenKill([&](int fd) { ChildTracker(data, fd, cycle + 1, users, threads); },
                            min_ms + static_cast<int>(rng() % 300), &acked));

    EngineOptions o;
    o.data_dir = data;
    auto engine = Engine::Open(o);
    ASSERT_OK(engine);
    Engine& e = **engine;
    // Every log, page by page.
    std::set<Uuid> logs;
    std::map<Uuid, UsageTotals> by_user;
    std::map<Uuid, std::pair<int64_t, int64_t>> by_chat;  // tokens in, cost
    UsageTotals all;
    UsageQuery q;
    q.limit = 1000;
    for (;;) {
      auto page = Must(e.ListUsage(Scope::Service(), q));
      for (const auto& l : page.rows) {
        logs.insert(ToUuid(l->id()));
        for (UsageTotals* t : {&by_user[ToUuid(l->user_id())], &all}) {
          t->requests += 1;
          t->success_count += l->success();
          t->error_count += !l->success();
          t->total_tokens += l->total_tokens();
          t->total_cost += l->total_cost();
        }
        if (l->chat_id()) {
          by_chat[ToUuid(l->chat_id())].first += l->input_tokens();
          by_chat[ToUuid(l->chat_id())].second += l->total_cost();
        }
      }
      if (page.next_cursor.empty()) break;
      q.cursor = page.next_cursor;
    }
    for (const Ack& ack : acked)
      ASSERT_TRUE(logs.count(Uuid::FromBytes(ack.id))) << "an acknowledged log is missing";
    UsageSummaryRequest s;
    s.bucket = SummaryBucket::kTotal;
    for (const auto& [user, t] : by_user) {
      auto ua = Must(e.GetUserAgentFor(Scope::Service(), user, kCrashAgent));
      EXPECT_EQ(ua->usage_count(), t.requests) << "cycle " << cycle;
      EXPECT_EQ(ua->success_count(), t.success_count);
      EXPECT_EQ(ua->error_count(), t.error_count);
      EXPECT_EQ(ua->total_tokens_used(), t.total_tokens);
      EXPECT_EQ(ua->total_cost(), t.total_cost);
      s.id = user;
      auto sum = Must(e.SummarizeUsage(Scope::Service(), s));
      ASSERT_EQ(sum.rows.size(), 1u);
      EXPECT_EQ(sum.rows[0].totals.requests, t.requests);
      EXPECT_EQ(sum.rows[0].totals.total_tokens, t.total_tokens);
      EXPECT_EQ(sum.rows[0].totals.total_cost, t.total_cost);
      PageRequest pr;
      for (const auto& c : Must(e.ListChats(Scope::Service(), user, pr)).rows) {
        EXPECT_EQ(c->total_input_tokens(), by_chat[ToUuid(c->id())].first);
        EXPECT_EQ(c->total_cost(), by_chat[ToUuid(c->id())].second);
      }
    }
    for (SummaryOwner owner : {SummaryOwner::kTenant, SummaryOwner::kEveryone}) {
      s.owner = owner;
      s.id = kCrashTenant;
      auto sum = Must(e.SummarizeUsage(Scope::Service(), s));
      if (all.requests == 0) continue;
      ASSERT_EQ(sum.rows.size(), 1u);
      EXPECT_EQ(sum.rows[0].totals.requests, all.requests);
      EXPECT_EQ(sum.rows[0].totals.total_tokens, all.total_tokens);
      EXPECT_EQ(sum.rows[0].totals.total_cost, all.total_cost);
    }
    s.owner = SummaryOwner::kUser;
    auto quotas = Must(e.GetQuotas(Scope::Service(), kCrashTenant));
    if (!quotas.empty()) {
      ASSERT_EQ(quotas.size(), 2u);
      EXPECT_EQ(quotas[0]->current_usage(), all.total_tokens);
      EXPECT_EQ(quotas[1]->current_usage(), all.requests);
    }
  }
  EXPECT_GT(acked.size(), static_cast<size_t>(kCycles * 10)) << "the child should have written";
  std::cout << "[ crash ] " << kCycles << " kill -9 cycles, " << users << " user(s), " << threads
            << " threads, " << acked.size() << " acknowledged track_agent_usage calls verified\n";
}

TEST(Crash, TrackAgentUsageSurvivesKill9AndEverythingAgrees) {
  TrackUnderKill9(1, 4, 12, 20261124, 150);
}

// The ledger's concurrent path: calls in 8 shards at once meet only in the tenant and
// everyone rollups and the quotas, which they advance with merges; after every kill the
// merged values equal what the surviving logs add up to, across restarts (what was on
// disk at open plus each shard's part).
TEST(Crash, ConcurrentTrackAcrossShardsSurvivesKill9AndLedgerAgrees) {
  TrackUnderKill9(8, 8, 10, 20261127, 500);
}

}  // namespace
}  // namespace agentstore::testing
