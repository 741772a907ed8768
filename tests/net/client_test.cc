// The client library under stress: many threads re-dialing at once while the server
// restarts, a Client destroyed from its own callback, and callbacks that fan out more
// calls than the server will take before it pauses reading.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

TEST(ClientStress, ConcurrentCallersSurviveAServerRestart) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  uint16_t port = server.port();
  std::string key = server.Key("service");
  ClientOptions o = server.Options(key);
  o.connections = 2;
  o.timeout = std::chrono::milliseconds(3000);
  o.connect_timeout = std::chrono::milliseconds(3000);
  Client client = Must(Client::Connect(o));
  fb::UserT u;
  u.email = "r@x.com";
  Uuid id = Id(Must(client.CreateUser(u).get())->id());

  std::atomic<bool> stop{false};
  std::atomic<int> ok_before{0}, ok_after{0}, failed{0};
  std::atomic<bool> restarted{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      while (!stop) {
        auto r = client.GetUser(id).get();
        if (r.ok())
          (restarted ? ok_after : ok_before)++;
        else
          failed++;
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server.Kill();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(server.Start(dir.sub("data"), {}, port));
  restarted = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(ok_before.load(), 0);
  EXPECT_GT(ok_after.load(), 0) << "callers re-dial and carry on after the restart";
  EXPECT_GT(failed.load(), 0) << "calls in the gap fail (unavailable) rather than hang";
}

TEST(ClientStress, ClientDestroyedFromItsOwnCallback) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  auto holder = std::make_shared<std::optional<Client>>(server.Connect(server.Key("service")));
  fb::UserT u;
  u.email = "d@x.com";
  Uuid id = Id(Must((*holder)->CreateUser(u).get())->id());
  std::atomic<bool> done{false};
  // The callback drops the last Client handle while it runs on the client's reader thread.
  (*holder)->GetUser(id).then([holder, &done](Result<Row<fb::User>> r) {
    EXPECT_TRUE(r.ok());
    holder->reset();
    done = true;
  });
  for (int i = 0; i < 500 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(done.load());
  EXPECT_FALSE(holder->has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the reader winds down
}

// A guard, not a reproduction: on loopback the socket buffers absorbed the fan-out even
// with the old client, whose reader wrote callbacks' calls itself. Now the reader never
// writes (the link's writer does), so a full buffer cannot stall response reading.
TEST(ClientStress, LargeCallbackFanOutUnderBackPressureCompletes) {
  TempDir dir;
  ServerProcess server;
  // The server stops reading a connection at 4 unanswered requests.
  ASSERT_TRUE(server.Start(dir.sub("data"), {"--max-inflight", "4"}));
  Client client = server.Connect(server.Key("service"));
  fb::UserT u;
  u.email = "f@x.com";
  Uuid id = Id(Must(client.CreateUser(u).get())->id());
  constexpr int kFanOut = 50000;
  std::atomic<int> answered{0};
  // From a callback on the reader thread, issue many calls at once.
  client.GetUser(id).then([&](Result<Row<fb::User>>) {
    for (int i = 0; i < kFanOut; ++i)
      client.GetUser(id).then([&](Result<Row<fb::User>> r) { answered += r.ok(); });
  });
  for (int i = 0; i < 3000 && answered < kFanOut; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(answered.load(), kFanOut);
}

}  // namespace
}  // namespace agentstore::testing
