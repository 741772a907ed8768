// Many threads at once: appends to shared and separate chats keep the chat totals equal
// to their messages; racing creates of one email leave exactly one user.
#include <atomic>
#include <thread>

#include "test_util.h"

namespace agentstore::testing {
namespace {

class Concurrency : public EngineFixture {};

TEST_F(Concurrency, AppendsKeepChatTotalsExact) {
  constexpr int kThreads = 8, kPerThread = 300, kUsers = 4;
  std::vector<Uuid> chats;
  for (int u = 0; u < kUsers; ++u)
    chats.push_back(Id(MakeChat(Id(MakeUser("u" + std::to_string(u) + "@x.com")->id()))->id()));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const Uuid& chat = chats[(t + i) % kUsers];
        if (!Append(Scope::Service(), chat, "x", 1, 2, 3).ok()) failures++;
        if (i % 10 == 0 && !e().ListMessages(Scope::Service(), chat, {}).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  int64_t total = 0;
  for (const Uuid& chat : chats) {
    auto c = e().GetChat(Scope::Service(), chat);
    ASSERT_OK(c);
    MessagePageRequest all;
    all.limit = 1000;
    all.from_end = false;
    int64_t listed = 0, prev = -1;
    std::string cursor;
    do {
      all.cursor = cursor;
      auto p = e().ListMessages(Scope::Service(), chat, all);
      ASSERT_OK(p);
      for (const auto& m : p->rows) {
        EXPECT_GT(m->created_at(), prev) << "strictly increasing within a chat";
        prev = m->created_at();
      }
      listed += p->rows.size();
      cursor = p->next_cursor;
    } while (!cursor.empty());
    EXPECT_EQ(c->get()->message_count(), listed);
    EXPECT_EQ(c->get()->total_input_tokens(), listed);
    EXPECT_EQ(c->get()->total_output_tokens(), 2 * listed);
    EXPECT_EQ(c->get()->total_cost(), 3 * listed);
    total += listed;
  }
  EXPECT_EQ(total, kThreads * kPerThread);
}

TEST_F(Concurrency, RacingCreatesOfOneEmailLeaveOneUser) {
  std::atomic<int> ok{0}, exists{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      fb::UserT u;
      u.email = t % 2 ? "Same@x.com" : "same@X.com";
      auto r = e().CreateUser(Scope::Service(), u);
      if (r.ok())
        ok++;
      else if (r.status().code() == StatusCode::kAlreadyExists)
        exists++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(exists.load(), 7);
}

TEST_F(Concurrency, ReadersRunBesideWritersAcrossShards) {
  std::vector<Uuid> users;
  for (int i = 0; i < 32; ++i)
    users.push_back(Id(MakeUser("r" + std::to_string(i) + "@x.com")->id()));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i)
      if (!e().UpdateUser(Scope::Service(), users[i % 32],
                          R"({"full_name":"n)" + std::to_string(i) + "\"}")
               .ok())
        bad++;
    stop = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t)
    readers.emplace_back([&] {
      size_t i = 0;
      while (!stop)
        if (!e().GetUser(Scope::ForUser(users[i % 32]), users[i % 32]).ok())
          bad++, ++i;
        else
          ++i;
    });
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace agentstore::testing
