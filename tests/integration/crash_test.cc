// Crash safety under kill -9: a child process appends messages (and creates chats)
// from several threads with durability `always`, reporting each acknowledged write to
// the parent through a pipe. The parent SIGKILLs it at a random moment, reopens the
// store, and checks that (1) every acknowledged write is there and (2) nothing is
// half-applied: every chat's counters equal what its messages add up to.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <random>
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

[[noreturn]] void ChildWriter(const std::string& dir, int fd, uint64_t seed) {
  EngineOptions o;
  o.data_dir = dir;
  o.durability = storage::Durability::kAlways;
  o.random_seed = seed;
  auto engine = Engine::Open(o);
  if (!engine.ok()) _exit(3);
  Engine& e = **engine;
  // Each cycle adds a user so that chats land in different shards.
  fb::UserT u;
  u.email = "crash" + std::to_string(seed) + "@x.com";
  auto user = e.CreateUser(Scope::Service(), u);
  if (!user.ok()) _exit(4);
  Uuid uid = ToUuid(user->get()->id());
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

TEST(Crash, AcknowledgedWritesSurviveKill9AndNothingIsHalfApplied) {
  TempDir dir;
  std::string data = dir.sub("data");
  std::mt19937 rng(20261123);
  std::vector<Ack> acked;
  constexpr int kCycles = 24;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      ChildWriter(data, fds[1], cycle + 1);
    }
    close(fds[1]);
    // Let it write for 50-400 ms, reading acks meanwhile, then kill it mid-flight.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50 + rng() % 350);
    Ack a;
    size_t got = 0;
    auto drain = [&](int timeout_ms) {
      pollfd p{fds[0], POLLIN, 0};
      while (poll(&p, 1, timeout_ms) > 0) {
        ssize_t n = read(fds[0], reinterpret_cast<char*>(&a) + got, sizeof a - got);
        if (n <= 0) return;
        got += n;
        if (got == sizeof a) {
          acked.push_back(a);
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
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited early with " << WEXITSTATUS(status);

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

}  // namespace
}  // namespace agentstore::testing
