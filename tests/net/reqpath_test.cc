// The request path (issue 10) under what its threading could break, and the server
// against the four attacks found by testing it as an attacker would: answers that grow
// memory without bound, connections that hold the slots of authenticated clients, key
// flooding, and a zero-length first frame. Each test runs a real agentstored.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "agentstore/net/frame.h"
#include "protocol_generated.h"
#include "server_process.h"
#include "test_util.h"

namespace agentstore::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// A plain blocking socket speaking frames, for clients that misbehave on purpose.
class RawConn {
 public:
  explicit RawConn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawConn() { Close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool ok() const { return ok_; }
  void SetReceiveBuffer(int bytes) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  }
  bool Send(const std::vector<uint8_t>& b) {
    size_t off = 0;
    while (off < b.size()) {
      ssize_t n = ::send(fd_, b.data() + off, b.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Sends what the socket takes now; returns how many bytes.
  size_t SendSome(const std::vector<uint8_t>& b) {
    ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  // One whole frame body, or nullopt on EOF, error or timeout.
  std::optional<std::vector<uint8_t>> ReadFrame(int timeout_ms = 5000) {
    uint8_t h[4];
    if (!ReadExactly(h, 4, timeout_ms)) return std::nullopt;
    std::vector<uint8_t> body(net::DecodeFrameLength(h));
    if (!ReadExactly(body.data(), body.size(), timeout_ms)) return std::nullopt;
    return body;
  }
  // True once the server closed the connection (EOF or reset) within the timeout;
  // anything it sent before is read and dropped.
  bool ClosedWithin(int timeout_ms) {
    auto deadline = Clock::now() + milliseconds(timeout_ms);
    std::vector<uint8_t> sink(1 << 16);
    while (Clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::recv(fd_, sink.data(), sink.size(), 0);
      if (n <= 0) return true;
    }
    return false;
  }

 private:
  bool ReadExactly(uint8_t* p, size_t n, int timeout_ms) {
    auto deadline = Clock::now() + milliseconds(timeout_ms);
    size_t got = 0;
    while (got < n) {
      int left = static_cast<int>(
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return false;
      pollfd pf{fd_, POLLIN, 0};
      if (::poll(&pf, 1, left) <= 0) continue;
      ssize_t r = ::recv(fd_, p + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
  bool ok_ = false;
};

std::vector<uint8_t> Frame(const flatbuffers::FlatBufferBuilder& fbb) {
  std::vector<uint8_t> f(4 + fbb.GetSize());
  net::EncodeFrameLength(fbb.GetSize(), f.data());
  std::memcpy(f.data() + 4, fbb.GetBufferPointer(), fbb.GetSize());
  return f;
}
std::vector<uint8_t> AuthFrame(const std::string& key, uint64_t id = 1) {
  flatbuffers::FlatBufferBuilder fbb;
  auto args = proto::CreateAuthArgs(fbb, fbb.CreateString(key));
  fbb.Finish(proto::CreateRequest(fbb, id, proto::Op::authenticate, nullptr, proto::Args::AuthArgs,
                                  args.Union()));
  return Frame(fbb);
}
const proto::Response* AsResponse(const std::vector<uint8_t>& body) {
  return flatbuffers::GetRoot<proto::Response>(body.data());
}

// The server process's resident memory and open descriptors.
int64_t RssKiB(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string k;
  int64_t v = -1;
  while (f >> k)
    if (k == "VmRSS:") {
      f >> v;
      break;
    }
  return v;
}
int OpenFds(pid_t pid) {
  int n = 0;
  for ([[maybe_unused]] auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    ++n;
  return n;
}

// ---- threading ----

TEST(RequestPath, ClientDestroyedWithCallsInFlight) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  std::optional<Client> client(server.Connect(server.Key("service")));
  fb::UserT u;
  u.email = "gone@x.com";
  Uuid id = Id(Must(client->CreateUser(u).get())->id());
  std::vector<Pending<Row<fb::User>>> waiting;
  std::atomic<int> callbacks{0};
  for (int i = 0; i < 300; ++i) waiting.push_back(client->GetUser(id));
  for (int i = 0; i < 50; ++i)
    client->GetUser(id).then([&](Result<Row<fb::User>>) { ++callbacks; });
  client.reset();  // with all of that in flight
  auto start = Clock::now();
  for (auto& p : waiting) {
    auto r = p.get();  // answered, or failed as the client closed: never a hang or a crash
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
    }
  }
  for (int i = 0; i < 200 && callbacks < 50; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(callbacks.load(), 50) << "every callback runs once, with an answer or a failure";
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST(RequestPath, CallbackMakesACallAndWaitsForIt) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  Client client = server.Connect(server.Key("service"));
  fb::UserT u;
  u.email = "cb@x.com";
  Uuid id = Id(Must(client.CreateUser(u).get())->id());
  std::atomic<int> inner_ok{0};
  std::atomic<bool> done{false};
  client.GetUser(id).then([&](Result<Row<fb::User>> r) {
    EXPECT_TRUE(r.ok());
    // A call made and waited for on the thread that read the first answer.
    for (int i = 0; i < 20; ++i) inner_ok += client.GetUser(id).get().ok();
    client.GetUser(id).then([&](Result<Row<fb::User>> r2) {
      inner_ok += r2.ok();
      done = true;
    });
  });
  for (int i = 0; i < 500 && !done; ++i) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_TRUE(done.load());
  EXPECT_EQ(inner_ok.load(), 21);
}

TEST(RequestPath, ThirtyTwoThreadsShareOneClient) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  Client client = server.Connect(server.Key("service"), /*connections=*/1);
  constexpr int kThreads = 32, kCalls = 200;
  std::vector<Uuid> ids;
  for (int t = 0; t < kThreads; ++t) {
    fb::UserT u;
    u.email = "t" + std::to_string(t) + "@x.com";
    ids.push_back(Id(Must(client.CreateUser(u).get())->id()));
  }
  std::atomic<int> right{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      std::string want = "t" + std::to_string(t) + "@x.com";
      for (int i = 0; i < kCalls; ++i) {
        // Alternate waiting styles: each answer must reach its own caller.
        if (i % 2) {
          auto r = client.GetUser(ids[t]).get();
          (r.ok() && Str((*r)->email()) == want ? right : wrong)++;
        } else {
          auto a = client.GetUser(ids[t]);
          auto b = client.GetUser(ids[(t + 1) % kThreads]);
          auto rb = b.get();
          auto ra = a.get();
          (ra.ok() && Str((*ra)->email()) == want && rb.ok() ? right : wrong)++;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(right.load(), kThreads * kCalls);
}

TEST(RequestPath, ServerStopWithCallsInFlight) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  std::string key = server.Key("service");
  ClientOptions o = server.Options(key);
  o.connections = 4;
  o.timeout = milliseconds(5000);
  o.connect_timeout = milliseconds(200);
  Client client = Must(Client::Connect(o));
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> acknowledged;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        fb::UserT u;
        u.email = "s" + std::to_string(t) + "-" + std::to_string(i) + "@x.com";
        auto w = client.CreateUser(u);
        auto r1 = client.GetUserByEmail("nobody@x.com");
        auto r = w.get();
        r1.get();
        if (r.ok()) {
          std::lock_guard lock(mu);
          acknowledged.push_back(u.email);
        } else {
          ++failed;
        }
      }
    });
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(server.Stop(), 0) << "a clean stop with calls in flight";
  std::this_thread::sleep_for(milliseconds(300));
  stop = true;
  for (auto& th : threads) th.join();  // nothing hangs
  EXPECT_GT(failed.load(), 0) << "calls after the stop fail (unavailable)";
  ASSERT_FALSE(acknowledged.empty());
  ASSERT_TRUE(server.Start(dir.sub("data")));
  Client again = server.Connect(key);
  for (const auto& email : acknowledged)
    EXPECT_TRUE(again.GetUserByEmail(email).get().ok()) << email << " was acknowledged";
}

TEST(RequestPath, SlowReadingConnectionDoesNotSlowOthers) {
  TempDir dir;
  ServerProcess server;
  // One I/O thread: the slow reader and the others share it.
  ASSERT_TRUE(server.Start(dir.sub("data"), {"--io-threads", "1"}));
  std::string key = server.Key("service");
  RawConn slow(server.port());
  slow.SetReceiveBuffer(4096);
  ASSERT_TRUE(slow.Send(AuthFrame(key)));
  ASSERT_TRUE(slow.ReadFrame().has_value());
  flatbuffers::FlatBufferBuilder fbb;
  fbb.Finish(proto::CreateRequest(fbb, 2, proto::Op::status));
  std::vector<uint8_t> one = Frame(fbb), many;
  for (int i = 0; i < 5000; ++i) many.insert(many.end(), one.begin(), one.end());
  slow.SendSome(many);  // large answers it will never read

  Client client = server.Connect(key);
  fb::UserT u;
  u.email = "fast@x.com";
  Uuid id = Id(Must(client.CreateUser(u).get())->id());
  int64_t worst_us = 0;
  auto start = Clock::now();
  for (int i = 0; i < 2000; ++i) {
    auto t0 = Clock::now();
    ASSERT_TRUE(client.GetUser(id).get().ok());
    worst_us = std::max<int64_t>(
        worst_us, std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count());
  }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_LT(worst_us, 200'000) << "no call waits on the connection that does not read";
}

// ---- attacks ----

std::string BigParts(size_t bytes) { return "[\"" + std::string(bytes, 'x') + "\"]"; }

// Under AddressSanitizer freed memory sits in a quarantine (256 MB by default) before
// reuse, so the server's RSS grows with every answer it frees, bounded or not. The RSS
// bound below is about live memory: the server this test starts runs without quarantine.
void WithoutAsanQuarantine() {
#if defined(__SANITIZE_ADDRESS__)
  const char* old = getenv("ASAN_OPTIONS");
  std::string opts = old ? std::string(old) + ":" : "";
  setenv("ASAN_OPTIONS", (opts + "quarantine_size_mb=0").c_str(), 1);
#endif
}

TEST(Attacks, OneAnswerAndQueuedAnswersAreBounded) {
  TempDir dir;
  ServerProcess server;
  WithoutAsanQuarantine();
  ASSERT_TRUE(server.Start(dir.sub("data"), {"--max-response-bytes", "262144", "--max-queued-bytes",
                                             "1048576", "--durability", "none"}));
  std::string key = server.Key("service");
  Client client = server.Connect(key);
  fb::UserT u;
  u.email = "amp@x.com";
  Uuid user = Id(Must(client.CreateUser(u).get())->id());
  fb::ChatT c;
  c.user_id = FbId(user);
  Uuid chat = Id(Must(client.CreateChat(c).get())->id());
  constexpr int kMessages = 100;
  std::vector<Pending<AppendResult>> appends;
  for (int i = 0; i < kMessages; ++i) {
    fb::MessageT m;
    m.chat_id = FbId(chat);
    m.parts = BigParts(60'000);
    appends.push_back(client.AppendMessage(m));
  }
  for (auto& a : appends) ASSERT_TRUE(a.get().ok());

  // One answer holds at most the budget: the page is cut short with a cursor, and the
  // cursor continues after it (from the end, as last_N reads).
  MessagePageRequest p;
  p.limit = 1000;
  p.from_end = true;
  std::set<std::string> seen;
  int pages = 0;
  for (;;) {
    auto page = Must(client.ListMessages(chat, p).get());
    ++pages;
    size_t bytes = 0;
    for (auto& r : page.rows) {
      bytes += r.bytes().size();
      seen.insert(Uuid(ToUuid(r->id())).ToString());
    }
    EXPECT_LE(bytes, 262144u);
    ASSERT_FALSE(page.rows.empty());
    if (page.next_cursor.empty()) break;
    p.cursor = page.next_cursor;
    ASSERT_LT(pages, 100);
  }
  EXPECT_GT(pages, 1);
  EXPECT_EQ(seen.size(), size_t(kMessages)) << "paging by the cursor returns every message";

  // A client that asks for the whole chat over and over and never reads: the server
  // stops reading it instead of buffering every answer.
  int64_t rss_before = RssKiB(server.pid());
  RawConn greedy(server.port());
  greedy.SetReceiveBuffer(4096);
  ASSERT_TRUE(greedy.Send(AuthFrame(key)));
  ASSERT_TRUE(greedy.ReadFrame().has_value());
  flatbuffers::FlatBufferBuilder fbb;
  fb::Uuid cid = ToFb(chat);
  auto args = proto::CreatePageArgs(fbb, &cid, 1000, 0, false, true);
  fbb.Finish(proto::CreateRequest(fbb, 7, proto::Op::message_list, nullptr, proto::Args::PageArgs,
                                  args.Union()));
  std::vector<uint8_t> one = Frame(fbb), many;
  for (int i = 0; i < 2000; ++i) many.insert(many.end(), one.begin(), one.end());
  greedy.SendSome(many);
  std::this_thread::sleep_for(milliseconds(1500));
  int64_t rss_after = RssKiB(server.pid());
  EXPECT_LT(rss_after - rss_before, 64 * 1024)
      << "RSS " << rss_before << " KiB -> " << rss_after << " KiB";
  // Others are still served.
  EXPECT_TRUE(client.GetUser(user).get().ok());
}

TEST(Attacks, UnauthenticatedConnectionsCannotLockOutClients) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(
      server.Start(dir.sub("data"), {"--max-connections", "48", "--max-unauthenticated", "8",
                                     "--auth-timeout-ms", "1000", "--frame-timeout-ms", "1000"}));
  std::string key = server.Key("service");
  // Trickling connections: each announces a frame and sends one byte of it.
  std::vector<std::unique_ptr<RawConn>> trickle;
  for (int i = 0; i < 100; ++i) {
    trickle.push_back(std::make_unique<RawConn>(server.port()));
    trickle.back()->Send({200, 0, 0, 0, 1});
  }
  // An authenticated client still gets in at once, and is served.
  auto t0 = Clock::now();
  Client client = server.Connect(key);
  EXPECT_TRUE(client.GetStatus().get().ok());
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  // Every trickler is closed: most made room at once, the rest by the auth deadline.
  for (auto& t : trickle) EXPECT_TRUE(t->ClosedWithin(3000));
  // A closed socket is seen by the peer before the server's worker has released the
  // connection's slot (its handlers finish first), so the count converges shortly after.
  uint32_t connections = 0;
  for (int i = 0; i < 100; ++i) {
    connections = Must(client.GetStatus().get()).connections;
    if (connections == 1) break;
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_EQ(connections, 1u);
}

TEST(Attacks, AFrameMustArriveWholeInTime) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data"), {"--frame-timeout-ms", "500"}));
  RawConn c(server.port());
  ASSERT_TRUE(c.Send(AuthFrame(server.Key("service"))));
  ASSERT_TRUE(c.ReadFrame().has_value());
  // An authenticated connection announcing 100 bytes and trickling them.
  ASSERT_TRUE(c.Send({100, 0, 0, 0, 1, 2, 3}));
  auto t0 = Clock::now();
  EXPECT_TRUE(c.ClosedWithin(3000));
  EXPECT_GE(Clock::now() - t0, milliseconds(300));
}

TEST(Attacks, AuthFloodIsClosedAndDescriptorsReleased) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  Client good = server.Connect(server.Key("service"));
  int fds_before = OpenFds(server.pid());
  // Pipelined bad keys: five are answered permission_denied, then the server closes.
  RawConn c(server.port());
  std::vector<uint8_t> many;
  for (int i = 0; i < 50; ++i) {
    auto f = AuthFrame("ask_" + std::string(32, 'a') + "_" + std::string(64, 'b'), i + 1);
    many.insert(many.end(), f.begin(), f.end());
  }
  ASSERT_TRUE(c.Send(many));
  int denied = 0;
  while (auto f = c.ReadFrame(3000)) {
    EXPECT_EQ(AsResponse(*f)->code(), proto::ErrorCode::permission_denied);
    ++denied;
  }
  EXPECT_EQ(denied, 5);
  // Many flooding connections, then they go: the server holds no descriptor for them.
  {
    std::vector<std::unique_ptr<RawConn>> flood;
    for (int i = 0; i < 200; ++i) {
      flood.push_back(std::make_unique<RawConn>(server.port()));
      flood.back()->Send(many);
    }
    EXPECT_TRUE(good.GetStatus().get().ok());
  }
  int fds_after = fds_before + 1000;
  for (int i = 0; i < 100 && fds_after > fds_before; ++i) {
    std::this_thread::sleep_for(milliseconds(20));
    fds_after = OpenFds(server.pid());
  }
  EXPECT_LE(fds_after, fds_before);
  EXPECT_TRUE(good.GetStatus().get().ok());
}

TEST(Attacks, ZeroLengthFirstFrame) {
  TempDir dir;
  ServerProcess server;
  ASSERT_TRUE(server.Start(dir.sub("data")));
  RawConn c(server.port());
  ASSERT_TRUE(c.Send({0, 0, 0, 0}));
  auto f = c.ReadFrame();
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(AsResponse(*f)->id(), 0u);
  EXPECT_EQ(AsResponse(*f)->code(), proto::ErrorCode::invalid_argument);
  Client client = server.Connect(server.Key("service"));
  EXPECT_TRUE(client.GetStatus().get().ok()) << "the server lives on";
}

}  // namespace
}  // namespace agentstore::testing
