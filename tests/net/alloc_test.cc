// Proof that the server's request path allocates nothing per read in steady state: this
// binary replaces operator new with a counting one, runs agentstored's Server in
// process, and drives get_user over a raw socket whose buffers are made up front (so
// the test itself allocates nothing while counting).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "agentstore/net/frame.h"
#include "agentstore/net/server.h"
#include "protocol_generated.h"
#include "test_util.h"

namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

void* operator new(size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

namespace agentstore::testing {
namespace {

std::vector<uint8_t> Frame(const flatbuffers::FlatBufferBuilder& fbb) {
  std::vector<uint8_t> f(4 + fbb.GetSize());
  net::EncodeFrameLength(fbb.GetSize(), f.data());
  std::memcpy(f.data() + 4, fbb.GetBufferPointer(), fbb.GetSize());
  return f;
}

bool WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
bool ReadAll(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}
// Reads `count` frames into `buf` (sized up front); false on error or a non-ok answer.
bool ReadAnswers(int fd, std::vector<uint8_t>& buf, int count) {
  for (int i = 0; i < count; ++i) {
    uint8_t h[4];
    if (!ReadAll(fd, h, 4)) return false;
    uint32_t len = net::DecodeFrameLength(h);
    if (len > buf.size() || !ReadAll(fd, buf.data(), len)) return false;
    if (flatbuffers::GetRoot<proto::Response>(buf.data())->code() != proto::ErrorCode::ok)
      return false;
  }
  return true;
}

TEST(RequestPathAllocations, GetUserAllocatesNothingPerRequestInSteadyState) {
  TempDir dir;
  EngineOptions eo;
  eo.data_dir = dir.sub("data");
  eo.durability = storage::Durability::kNone;
  auto engine = Must(Engine::Open(eo));
  fb::UserT u;
  u.email = "alloc@x.com";
  u.full_name = "A user with a name long enough to need the heap in a std::string";
  Uuid id = ToUuid(Must(engine->CreateUser(Scope::Service(), u))->id());
  fb::ApiKeyT k;
  k.role = fb::KeyRole::service;
  k.name = "alloc test";
  std::string secret = Must(engine->CreateApiKey(Scope::Service(), k)).secret;

  net::ServerOptions so;
  so.port = 0;
  so.io_threads = 1;
  auto server = Must(net::Server::Start(engine.get(), so));

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server->port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::vector<uint8_t> buf(1 << 20);
  {
    flatbuffers::FlatBufferBuilder fbb;
    auto args = proto::CreateAuthArgs(fbb, fbb.CreateString(secret));
    fbb.Finish(proto::CreateRequest(fbb, 1, proto::Op::authenticate, nullptr, proto::Args::AuthArgs,
                                    args.Union()));
    auto f = Frame(fbb);
    ASSERT_TRUE(WriteAll(fd, f.data(), f.size()));
    ASSERT_TRUE(ReadAnswers(fd, buf, 1));
  }
  flatbuffers::FlatBufferBuilder fbb;
  fb::Uuid fid = ToFb(id);
  auto args = proto::CreateIdArgs(fbb, &fid);
  fbb.Finish(proto::CreateRequest(fbb, 2, proto::Op::user_get, nullptr, proto::Args::IdArgs,
                                  args.Union()));
  std::vector<uint8_t> req = Frame(fbb), batch;
  for (int i = 0; i < 16; ++i) batch.insert(batch.end(), req.begin(), req.end());

  auto run = [&](int rounds) {
    for (int i = 0; i < rounds; ++i) {
      // One at a time, then 16 pipelined: both shapes of the benchmark.
      if (!WriteAll(fd, req.data(), req.size()) || !ReadAnswers(fd, buf, 1)) return false;
      if (!WriteAll(fd, batch.data(), batch.size()) || !ReadAnswers(fd, buf, 16)) return false;
    }
    return true;
  };
  ASSERT_TRUE(run(500));  // warm up: buffers reach their size, caches fill
  constexpr int kRounds = 2000, kRequests = kRounds * 17;
  uint64_t before = g_allocations.load();
  bool ok = run(kRounds);
  uint64_t allocations = g_allocations.load() - before;
  ASSERT_TRUE(ok);
  double per_request = double(allocations) / kRequests;
  std::printf("allocations: %llu over %d get_user requests (%.4f per request)\n",
              static_cast<unsigned long long>(allocations), kRequests, per_request);
  // The request path (framing, buffers, dispatch, encoding, I/O) allocates nothing; what
  // is left is Engine::GetUser's Row, an owned copy of the record (one allocation).
  EXPECT_LE(per_request, 1.01);
  ::close(fd);
  server->Stop();
}

}  // namespace
}  // namespace agentstore::testing
