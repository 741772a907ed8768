// The client library under stress: many threads re-dialing at once while the server
// restarts, a Client destroyed from its own callback, and callbacks that fan out more
// calls than the server will take before it pauses reading.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <thread>

#include "protocol_generated.h"
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
  // The callback drops the last Client handle while it runs on the client's helper thread.
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
// with the first client. Now callbacks run after the reader role is released, and a
// write the socket does not take makes the writing thread read answers meanwhile, so a
// full buffer cannot stall response reading.
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
  // From a callback, issue many calls at once.
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

namespace agentstore::testing {
namespace {

TEST(ClientStress, ConnectGivesUpOnAServerThatNeverAnswers) {
  // A listening socket that accepts (the kernel does) but never speaks.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor mute(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  ClientOptions o;
  o.port = mute.local_endpoint().port();
  o.key = "ask_whatever";
  o.connect_timeout = std::chrono::milliseconds(300);
  auto start = std::chrono::steady_clock::now();
  auto c = Client::Connect(o);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kUnavailable) << c.status().ToString();
  EXPECT_LT(took, std::chrono::seconds(3)) << "connect_timeout bounds dialing";
}

TEST(ClientStress, ServerClosesAConnectionThatStopsReading) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data"), {"--idle-timeout-ms", "500"}));
  ClientOptions o = server.Options(server.Key("service"));
  // Raw socket: authenticate, then flood requests and never read a response.
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), server.port()});
  s.set_option(boost::asio::socket_base::receive_buffer_size(4096));
  auto frame = [](flatbuffers::FlatBufferBuilder& fbb) {
    std::vector<uint8_t> f(4 + fbb.GetSize());
    uint32_t n = fbb.GetSize();
    std::memcpy(f.data(), &n, 4);
    std::memcpy(f.data() + 4, fbb.GetBufferPointer(), n);
    return f;
  };
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto args = proto::CreateAuthArgs(fbb, fbb.CreateString(o.key));
    fbb.Finish(proto::CreateRequest(fbb, 1, proto::Op::authenticate, nullptr, proto::Args::AuthArgs,
                                    args.Union()));
    boost::asio::write(s, boost::asio::buffer(frame(fbb)));
  }
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(proto::CreateRequest(fbb, 2, proto::Op::status));
  std::vector<uint8_t> one = frame(fbb), many;
  for (int i = 0; i < 20000; ++i) many.insert(many.end(), one.begin(), one.end());
  boost::system::error_code ec;
  // Status answers are large; the server's writes stall on our full receive buffer.
  s.non_blocking(true);
  boost::asio::write(s, boost::asio::buffer(many), ec);
  s.non_blocking(false);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    Client probe = server.Connect(server.Key("admin"));
    auto st = probe.GetStatus().get();
    closed = st.ok() && st->connections == 1;  // only the probe itself
  }
  EXPECT_TRUE(closed) << "a connection not reading its responses is closed after the idle timeout";
}

}  // namespace
}  // namespace agentstore::testing
